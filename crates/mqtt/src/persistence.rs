//! MQTT sessions that outlive their connection (MQTT 3.1.1 CleanSession=0, MQTT 5 Clean
//! Start=0 with a Session Expiry Interval), and the takeover of a client id by a new
//! connection (MQTT-3.1.4-2).
//!
//! A session is named by its device and its client id: the access token says who the
//! device is, so a client id only names a session of that device (two devices that both
//! call themselves `esp32` never take each other's session over).
//!
//! While no connection uses a kept session, a keeper task follows the store's change feed
//! for it and queues the shared-attribute updates the device subscribed to at QoS 1, at
//! most `MqttSettings::session_queue` of them: beyond, the oldest is dropped (counted in
//! `thingsafe_mqtt_session_dropped_total` and logged), since the newest value of an
//! attribute is the one that matters and the device can always ask for the current values.
//! Commands need no queue here: they wait in the device's RPC mailbox until delivered or
//! expired. Sessions live in memory: a restart of the server ends them, as it closes the
//! claiming windows and empties the RPC mailboxes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use rmqtt_codec::types::QoS;
use thingsafe_core::{Device, DeviceId};
use thingsafe_store::Change;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::render;
use crate::session::Subs;

/// A message for the device that waits for a connection (or for room in its window).
#[derive(Clone, Debug)]
pub(crate) struct Queued {
    pub topic: String,
    pub payload: Bytes,
    /// Sent before, not acknowledged: sent again with the DUP flag (MQTT-4.4.0-1).
    pub dup: bool,
}

/// What a kept session holds between connections.
pub(crate) struct Saved {
    pub subs: Subs,
    /// The shared-attribute subscription's QoS and topic, if any: what the keeper queues for.
    pub attributes: Option<(QoS, &'static str)>,
    pub queue: VecDeque<Queued>,
    pub expires: Instant,
}

/// Pushes `message` onto a bounded queue, dropping the oldest beyond `max`.
pub(crate) fn push_bounded(
    queue: &mut VecDeque<Queued>,
    message: Queued,
    max: usize,
    device: DeviceId,
) {
    if queue.len() >= max.max(1) {
        queue.pop_front();
        metrics::counter!("thingsafe_mqtt_session_dropped_total").increment(1);
        tracing::warn!(
            device = %device,
            max,
            "an MQTT session's queue is full: dropped its oldest message for the device"
        );
    }
    queue.push_back(message);
}

type Key = (DeviceId, String);
type Kept = Arc<Mutex<Option<Saved>>>;

fn lock_kept(kept: &Kept) -> MutexGuard<'_, Option<Saved>> {
    kept.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Default)]
struct Slot {
    /// The connection using the session now: told to leave when another takes over.
    live: Option<Live>,
    /// Emptied (`None` inside) when a connection resumes it, which also stops the keeper.
    saved: Option<Kept>,
    keeper: Option<JoinHandle<()>>,
}

struct Live {
    connection: u64,
    /// Sent a way to say "gone" when another connection takes over.
    leave: oneshot::Sender<oneshot::Sender<()>>,
}

/// Every device's sessions, shared by the plain and the TLS listener.
pub struct SessionRegistry {
    slots: Mutex<HashMap<Key, Slot>>,
    next_connection: std::sync::atomic::AtomicU64,
}

impl Default for SessionRegistry {
    fn default() -> Self {
        SessionRegistry {
            slots: Mutex::new(HashMap::new()),
            next_connection: std::sync::atomic::AtomicU64::new(1),
        }
    }
}

impl std::fmt::Debug for SessionRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRegistry")
            .field("sessions", &self.lock().len())
            .finish()
    }
}

/// A connection's hold on its session.
pub(crate) struct Claim {
    pub key: (DeviceId, String),
    pub connection: u64,
    /// Fires when another connection takes the session over.
    pub leave: oneshot::Receiver<oneshot::Sender<()>>,
    /// The kept state, if there was any (the caller drops it for a clean start).
    pub saved: Option<Saved>,
}

impl SessionRegistry {
    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Slot>> {
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes the session of `device` named `client_id` for a new connection: a connection
    /// using it is told to leave, and is waited for (at most `grace`) so that what it
    /// held is kept for this one.
    pub(crate) async fn claim(&self, device: DeviceId, client_id: &str, grace: Duration) -> Claim {
        let key = (device, client_id.to_string());
        loop {
            let gone = {
                let mut slots = self.lock();
                let slot = slots.entry(key.clone()).or_default();
                match slot.live.take() {
                    Some(live) => {
                        let (gone_tx, gone_rx) = oneshot::channel();
                        let _ = live.leave.send(gone_tx);
                        Some(gone_rx)
                    }
                    None => {
                        let connection = self
                            .next_connection
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let (leave_tx, leave) = oneshot::channel();
                        slot.live = Some(Live {
                            connection,
                            leave: leave_tx,
                        });
                        if let Some(keeper) = slot.keeper.take() {
                            keeper.abort();
                        }
                        let saved = slot.saved.take().and_then(|kept| lock_kept(&kept).take());
                        return Claim {
                            key,
                            connection,
                            leave,
                            saved,
                        };
                    }
                }
            };
            if let Some(gone) = gone {
                metrics::counter!("thingsafe_mqtt_session_takeovers_total").increment(1);
                let _ = tokio::time::timeout(grace, gone).await;
            }
        }
    }

    /// The connection `claim` ended: keeps `saved` (if the session outlives it) and has a
    /// keeper queue for it from `changes` until it expires.
    pub(crate) fn release(
        self: &Arc<Self>,
        claim_key: (DeviceId, String),
        connection: u64,
        saved: Option<(Saved, Arc<Device>, broadcast::Receiver<Arc<Change>>)>,
        queue_max: usize,
    ) {
        let mut slots = self.lock();
        let Some(slot) = slots.get_mut(&claim_key) else {
            return;
        };
        if slot
            .live
            .as_ref()
            .is_some_and(|l| l.connection == connection)
        {
            slot.live = None;
        }
        if let Some(keeper) = slot.keeper.take() {
            keeper.abort();
        }
        slot.saved = None;
        if let Some((saved, device, changes)) = saved {
            let saved = Arc::new(Mutex::new(Some(saved)));
            slot.saved = Some(saved.clone());
            slot.keeper = Some(tokio::spawn(keep(
                Arc::downgrade(self),
                claim_key.clone(),
                saved,
                device,
                changes,
                queue_max,
            )));
        }
        if slot.live.is_none() && slot.saved.is_none() {
            slots.remove(&claim_key);
        }
    }

    /// Ends a kept session that expired (if it is still the one kept).
    fn expire(&self, key: &Key, saved: &Kept) {
        let mut slots = self.lock();
        if let Some(slot) = slots.get_mut(key)
            && slot.saved.as_ref().is_some_and(|s| Arc::ptr_eq(s, saved))
        {
            slot.saved = None;
            slot.keeper = None;
            if slot.live.is_none() {
                slots.remove(key);
            }
        }
    }

    /// How many sessions are kept or in use (for tests and metrics).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Queues what a kept session's device subscribed to while it is away, until it expires.
async fn keep(
    registry: std::sync::Weak<SessionRegistry>,
    key: Key,
    saved: Kept,
    device: Arc<Device>,
    mut changes: broadcast::Receiver<Arc<Change>>,
    queue_max: usize,
) {
    let Some((expires, attributes)) = lock_kept(&saved)
        .as_ref()
        .map(|s| (s.expires, s.attributes))
    else {
        return;
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(expires) => break,
            change = changes.recv() => match change {
                Ok(change) => {
                    if let Some((QoS::AtLeastOnce, topic)) = attributes
                        && let Some(payload) = render::attribute_update(&change, device.id)
                    {
                        let mut kept = lock_kept(&saved);
                        // Resumed meanwhile: the connection has it now.
                        let Some(s) = kept.as_mut() else { return };
                        let message = Queued { topic: topic.to_string(), payload, dup: false };
                        push_bounded(&mut s.queue, message, queue_max, device.id);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(device = %device.id, missed, "a kept MQTT session fell behind the change feed; some attribute updates were not queued");
                }
                Err(broadcast::error::RecvError::Closed) => {
                    // The store is going away: keep what is queued until expiry.
                    tokio::time::sleep_until(expires).await;
                    break;
                }
            },
        }
    }
    if let Some(registry) = registry.upgrade() {
        tracing::debug!(device = %device.id, "a kept MQTT session expired");
        registry.expire(&key, &saved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use thingsafe_core::TenantId;

    fn message(n: u8) -> Queued {
        Queued {
            topic: "v1/devices/me/attributes".into(),
            payload: Bytes::from(vec![n]),
            dup: false,
        }
    }

    #[test]
    fn a_full_queue_drops_its_oldest() {
        let mut queue = VecDeque::new();
        for n in 0..5 {
            push_bounded(&mut queue, message(n), 3, DeviceId::random());
        }
        let kept: Vec<u8> = queue.iter().map(|m| m.payload[0]).collect();
        assert_eq!(kept, [2, 3, 4]);
    }

    fn device() -> Arc<Device> {
        Arc::new(Device {
            id: DeviceId::random(),
            tenant_id: TenantId::random(),
            customer_id: None,
            name: "d".into(),
            device_type: "default".into(),
            label: None,
            created_ms: 0,
            gateway: false,
            gateway_id: None,
            device_profile_id: None,
        })
    }

    fn saved(expires_in: Duration) -> Saved {
        Saved {
            subs: Subs::default(),
            attributes: Some((QoS::AtLeastOnce, "v1/devices/me/attributes")),
            queue: VecDeque::from([message(7)]),
            expires: Instant::now() + expires_in,
        }
    }

    #[tokio::test]
    async fn a_kept_session_is_resumed_once_and_expires() {
        let registry = Arc::new(SessionRegistry::default());
        let device = device();
        let grace = Duration::from_millis(100);
        let (_feed, changes) = broadcast::channel(4);
        let claim = registry.claim(device.id, "c", grace).await;
        assert!(claim.saved.is_none());
        let kept = (saved(Duration::from_secs(60)), device.clone(), changes);
        registry.release(claim.key, claim.connection, Some(kept), 10);
        // Another device's client "c" is another session.
        assert!(
            registry
                .claim(DeviceId::random(), "c", grace)
                .await
                .saved
                .is_none()
        );
        let claim = registry.claim(device.id, "c", grace).await;
        assert_eq!(claim.saved.expect("kept").queue[0].payload[0], 7);
        // Released without keeping: gone.
        registry.release(claim.key, claim.connection, None, 10);
        assert!(registry.claim(device.id, "c", grace).await.saved.is_none());

        // Kept for 50 ms only.
        let claim = registry.claim(device.id, "short", grace).await;
        let (_feed, changes) = broadcast::channel(4);
        let kept = (saved(Duration::from_millis(50)), device.clone(), changes);
        registry.release(claim.key, claim.connection, Some(kept), 10);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            registry
                .claim(device.id, "short", grace)
                .await
                .saved
                .is_none()
        );
    }

    #[tokio::test]
    async fn the_keeper_queues_attribute_updates_boundedly() {
        let registry = Arc::new(SessionRegistry::default());
        let device = device();
        let grace = Duration::from_millis(100);
        let (feed, changes) = broadcast::channel(16);
        let claim = registry.claim(device.id, "k", grace).await;
        let kept = (saved(Duration::from_secs(60)), device.clone(), changes);
        registry.release(claim.key, claim.connection, Some(kept), 2);
        for n in 0..3i64 {
            let change = Change::Attributes {
                device: device.id,
                tenant: device.tenant_id,
                scope: thingsafe_core::AttributeScope::Shared,
                attributes: vec![("n".into(), thingsafe_core::payload::Value::Long(n))],
            };
            feed.send(Arc::new(change)).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let claim = registry.claim(device.id, "k", grace).await;
        let queue: Vec<String> = claim
            .saved
            .unwrap()
            .queue
            .iter()
            .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
            .collect();
        assert_eq!(queue, [r#"{"n":1}"#, r#"{"n":2}"#], "the oldest two went");
    }
}
