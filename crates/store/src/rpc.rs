//! Per-device mailboxes of server-side RPC commands, kept in memory: a command waits until
//! a transport holding the device takes it, or until it expires.
//!
//! Persistent commands (ThingsBoard's `"persistent": true`) are also tracked here while
//! they are pending (QUEUED, SENT, DELIVERED), each by its device and `$id`: their status
//! changes are returned as [`Update`]s for the backend to store, and [`Mailboxes::sweep`]
//! expires them and sends again (or fails) those the device did not acknowledge.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use thingsafe_core::{DeviceId, RpcId, TenantId, TimestampMs};

use crate::{RpcRequest, RpcStatus};

/// Commands waiting per device at most; the oldest lightweight one is dropped beyond it
/// (persistent ones are never dropped: they are bounded by their expiry).
const MAILBOX_CAPACITY: usize = 256;

/// A pending persistent command.
#[derive(Clone, Debug)]
pub(crate) struct Tracked {
    pub rpc: RpcId,
    pub tenant: TenantId,
    pub status: RpcStatus,
    pub retries: u32,
    pub attempts: u32,
    /// When it was last given to a transport.
    pub sent_ms: TimestampMs,
    pub request: RpcRequest,
}

/// A status change of a persistent command, to store.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Update {
    pub rpc: RpcId,
    pub tenant: TenantId,
    pub status: RpcStatus,
    pub attempts: u32,
    pub response: Option<serde_json::Value>,
}

impl Update {
    fn of(t: &Tracked, response: Option<serde_json::Value>) -> Update {
        Update {
            rpc: t.rpc,
            tenant: t.tenant,
            status: t.status,
            attempts: t.attempts,
            response,
        }
    }
}

#[derive(Default)]
struct Inner {
    boxes: HashMap<DeviceId, VecDeque<RpcRequest>>,
    tracked: HashMap<(DeviceId, u32), Tracked>,
}

#[derive(Default)]
pub(crate) struct Mailboxes {
    next_id: AtomicU32,
    inner: Mutex<Inner>,
}

impl Mailboxes {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("rpc mailboxes")
    }

    /// A new `$id`, unique among the commands of this run (and those restored).
    pub(crate) fn next_id(&self) -> u32 {
        self.next_id.fetch_add(1, Ordering::Relaxed).wrapping_add(1)
    }

    /// Ids restored from storage go up to `last`: new ones follow.
    pub(crate) fn ids_after(&self, last: u32) {
        self.next_id.fetch_max(last, Ordering::Relaxed);
    }

    pub(crate) fn submit(
        &self,
        device: DeviceId,
        method: String,
        params: serde_json::Value,
        oneway: bool,
        expires_ms: TimestampMs,
    ) -> RpcRequest {
        let request = RpcRequest {
            id: self.next_id(),
            method,
            params,
            oneway,
            expires_ms,
        };
        let mut inner = self.lock();
        let Inner { boxes, tracked } = &mut *inner;
        let mailbox = boxes.entry(device).or_default();
        if mailbox.len() >= MAILBOX_CAPACITY
            && let Some(oldest) = mailbox
                .iter()
                .position(|r| !tracked.contains_key(&(device, r.id)))
        {
            mailbox.remove(oldest);
        }
        mailbox.push_back(request.clone());
        request
    }

    /// Queues a persistent command (`tracked.request`), in its turn after those waiting.
    pub(crate) fn enqueue(&self, device: DeviceId, tracked: Tracked) {
        let mut inner = self.lock();
        if tracked.status == RpcStatus::Queued {
            inner
                .boxes
                .entry(device)
                .or_default()
                .push_back(tracked.request.clone());
        }
        inner.tracked.insert((device, tracked.request.id), tracked);
    }

    /// Takes up to `limit` of the device's unexpired commands, oldest first; persistent
    /// ones become SENT (returned in the updates).
    pub(crate) fn take(
        &self,
        device: DeviceId,
        now_ms: TimestampMs,
        limit: usize,
    ) -> (Vec<RpcRequest>, Vec<Update>) {
        let mut inner = self.lock();
        let Inner { boxes, tracked } = &mut *inner;
        let Some(mailbox) = boxes.get_mut(&device) else {
            return (Vec::new(), Vec::new());
        };
        let mut taken = Vec::new();
        let mut updates = Vec::new();
        while taken.len() < limit {
            let Some(request) = mailbox.pop_front() else {
                break;
            };
            // An expired persistent command is left to the sweep, which records it.
            if request.expires_ms <= now_ms {
                continue;
            }
            if let Some(t) = tracked.get_mut(&(device, request.id)) {
                t.status = RpcStatus::Sent;
                t.attempts += 1;
                t.sent_ms = now_ms;
                updates.push(Update::of(t, None));
            }
            taken.push(request);
        }
        if mailbox.is_empty() {
            boxes.remove(&device);
        }
        (taken, updates)
    }

    /// The device acknowledged command `id`: DELIVERED, or SUCCESSFUL when one-way.
    pub(crate) fn delivered(&self, device: DeviceId, id: u32) -> Option<Update> {
        let mut inner = self.lock();
        let t = inner.tracked.get_mut(&(device, id))?;
        if t.status != RpcStatus::Sent {
            return None;
        }
        if t.request.oneway {
            t.status = RpcStatus::Successful;
            let update = Update::of(t, None);
            inner.tracked.remove(&(device, id));
            Some(update)
        } else {
            t.status = RpcStatus::Delivered;
            Some(Update::of(t, None))
        }
    }

    /// The device answered command `id`: a pending two-way persistent command is
    /// SUCCESSFUL with its response.
    pub(crate) fn respond(
        &self,
        device: DeviceId,
        id: u32,
        response: &serde_json::Value,
    ) -> Option<Update> {
        let mut inner = self.lock();
        let t = inner.tracked.get(&(device, id))?;
        if t.request.oneway || t.status == RpcStatus::Queued {
            return None;
        }
        let mut t = inner.tracked.remove(&(device, id))?;
        t.status = RpcStatus::Successful;
        Some(Update::of(&t, Some(response.clone())))
    }

    /// Forgets a persistent command (deleted): it is never delivered.
    pub(crate) fn forget(&self, device: DeviceId, rpc: RpcId) {
        let mut inner = self.lock();
        let Some(id) = inner
            .tracked
            .iter()
            .find(|((d, _), t)| *d == device && t.rpc == rpc)
            .map(|((_, id), _)| *id)
        else {
            return;
        };
        inner.tracked.remove(&(device, id));
        if let Some(mailbox) = inner.boxes.get_mut(&device) {
            mailbox.retain(|r| r.id != id);
        }
    }

    /// The device's pending persistent commands.
    pub(crate) fn pending(&self, device: DeviceId) -> usize {
        self.lock()
            .tracked
            .keys()
            .filter(|(d, _)| *d == device)
            .count()
    }

    /// Forgets everything waiting for a device (deleted or erased).
    pub(crate) fn forget_device(&self, device: DeviceId) {
        let mut inner = self.lock();
        inner.boxes.remove(&device);
        inner.tracked.retain(|(d, _), _| *d != device);
    }

    /// Pending persistent commands past their expiration time become EXPIRED (TIMEOUT
    /// once delivered); those sent and not acknowledged within `ack_ms` are queued again,
    /// at the head of their mailbox, or FAILED when their retries are spent. Returns the
    /// updates and the devices that have commands waiting again.
    pub(crate) fn sweep(&self, now_ms: TimestampMs, ack_ms: i64) -> (Vec<Update>, Vec<DeviceId>) {
        let mut inner = self.lock();
        let Inner { boxes, tracked } = &mut *inner;
        let mut updates = Vec::new();
        let mut again: Vec<(DeviceId, RpcRequest)> = Vec::new();
        tracked.retain(|(device, id), t| {
            if t.request.expires_ms <= now_ms {
                t.status = t.status.expired();
                updates.push(Update::of(t, None));
                if let Some(mailbox) = boxes.get_mut(device) {
                    mailbox.retain(|r| r.id != *id);
                }
                return false;
            }
            if t.status == RpcStatus::Sent && t.sent_ms + ack_ms <= now_ms {
                if t.attempts > t.retries {
                    t.status = RpcStatus::Failed;
                    let error = format!(
                        "The device did not acknowledge the command; retries spent: {}",
                        t.retries
                    );
                    updates.push(Update::of(t, Some(serde_json::json!({ "error": error }))));
                    return false;
                }
                t.status = RpcStatus::Queued;
                updates.push(Update::of(t, None));
                again.push((*device, t.request.clone()));
            }
            true
        });
        // Sent first, sent again first: in the order they were sent.
        again.sort_by_key(|(_, r)| std::cmp::Reverse(r.id));
        let mut devices = Vec::new();
        for (device, request) in again {
            boxes.entry(device).or_default().push_front(request);
            if !devices.contains(&device) {
                devices.push(device);
            }
        }
        (updates, devices)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take_all(m: &Mailboxes, d: DeviceId, now: TimestampMs) -> Vec<RpcRequest> {
        m.take(d, now, usize::MAX).0
    }

    #[test]
    fn commands_are_taken_once_in_order_and_expire() {
        let m = Mailboxes::default();
        let d = DeviceId::random();
        let a = m.submit(d, "a".into(), serde_json::json!({}), false, 100);
        let b = m.submit(d, "b".into(), serde_json::json!(1), true, 10);
        assert_ne!(a.id, b.id);
        assert_eq!(take_all(&m, d, 50), vec![a]);
        assert!(take_all(&m, d, 50).is_empty(), "taken once");
        assert!(take_all(&m, DeviceId::random(), 0).is_empty());
        for i in 0..MAILBOX_CAPACITY + 5 {
            m.submit(d, format!("{i}"), serde_json::Value::Null, true, 1000);
        }
        let taken = take_all(&m, d, 0);
        assert_eq!(taken.len(), MAILBOX_CAPACITY);
        assert_eq!(taken[0].method, "5", "the oldest were dropped");
    }

    fn persistent(m: &Mailboxes, d: DeviceId, oneway: bool, expires: i64, retries: u32) -> Tracked {
        let request = RpcRequest {
            id: m.next_id(),
            method: "m".into(),
            params: serde_json::Value::Null,
            oneway,
            expires_ms: expires,
        };
        let t = Tracked {
            rpc: RpcId::random(),
            tenant: TenantId::random(),
            status: RpcStatus::Queued,
            retries,
            attempts: 0,
            sent_ms: 0,
            request,
        };
        m.enqueue(d, t.clone());
        t
    }

    #[test]
    fn persistent_commands_go_through_their_statuses() {
        let m = Mailboxes::default();
        let d = DeviceId::random();
        let two = persistent(&m, d, false, 1000, 0);
        let one = persistent(&m, d, true, 1000, 0);
        let (taken, updates) = m.take(d, 10, 1);
        assert_eq!(taken, vec![two.request.clone()], "one at a time, in order");
        assert_eq!(updates[0].status, RpcStatus::Sent);
        assert_eq!(
            m.delivered(d, two.request.id).unwrap().status,
            RpcStatus::Delivered
        );
        let answered = m.respond(d, two.request.id, &serde_json::json!(1)).unwrap();
        assert_eq!(answered.status, RpcStatus::Successful);
        assert_eq!(answered.response, Some(serde_json::json!(1)));
        assert!(
            m.respond(d, two.request.id, &serde_json::json!(2))
                .is_none(),
            "once"
        );
        let (taken, _) = m.take(d, 10, 1);
        assert_eq!(taken, vec![one.request.clone()]);
        let u = m.delivered(d, one.request.id).unwrap();
        assert_eq!(
            u.status,
            RpcStatus::Successful,
            "one-way: done once delivered"
        );
        assert!(m.delivered(d, one.request.id).is_none());
    }

    #[test]
    fn persistent_commands_expire_and_are_sent_again_then_fail() {
        let m = Mailboxes::default();
        let d = DeviceId::random();
        let late = persistent(&m, d, false, 100, 0);
        let flaky = persistent(&m, d, false, 10_000, 1);
        let (updates, _) = m.sweep(100, 50);
        assert_eq!(updates.len(), 1);
        assert_eq!(
            (updates[0].rpc, updates[0].status),
            (late.rpc, RpcStatus::Expired)
        );
        assert_eq!(
            take_all(&m, d, 100),
            vec![flaky.request.clone()],
            "never the expired one"
        );
        let (updates, devices) = m.sweep(200, 50);
        assert_eq!(
            updates[0].status,
            RpcStatus::Queued,
            "not acknowledged: sent again"
        );
        assert_eq!(devices, vec![d]);
        assert_eq!(take_all(&m, d, 200), vec![flaky.request.clone()]);
        let (updates, _) = m.sweep(300, 50);
        assert_eq!(updates[0].status, RpcStatus::Failed, "retries spent");
        assert!(take_all(&m, d, 300).is_empty());
    }
}
