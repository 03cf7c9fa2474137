//! The change feed: every committed change for the installation's live consumers
//! (WebSocket sessions, waiting RPC callers, gateways), and, beside it, a channel per
//! device carrying only what is addressed to that device (its shared attributes set or
//! deleted, a command waiting in its mailbox). A device's MQTT session listens to its own
//! channel, so it wakes for its own changes only, not for every change of the
//! installation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use thingsafe_core::{AttributeScope, DeviceId};
use tokio::sync::broadcast;

use crate::Change;

/// Changes addressed to one device are few (a person sets attributes, sends commands).
const DEVICE_BUFFER: usize = 64;

pub(crate) struct ChangeFeed {
    all: broadcast::Sender<Arc<Change>>,
    /// Channels of devices someone listens to; a channel whose listeners are all gone is
    /// removed at its next change.
    devices: Mutex<HashMap<DeviceId, broadcast::Sender<Arc<Change>>>>,
}

impl ChangeFeed {
    pub(crate) fn new(buffer: usize) -> Self {
        ChangeFeed {
            all: broadcast::channel(buffer).0,
            devices: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.all.subscribe()
    }

    pub(crate) fn subscribe_device(&self, device: DeviceId) -> broadcast::Receiver<Arc<Change>> {
        let mut devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        devices
            .entry(device)
            .or_insert_with(|| broadcast::channel(DEVICE_BUFFER).0)
            .subscribe()
    }

    /// Announces a committed change; no listener is not an error.
    pub(crate) fn send(&self, change: Change) {
        let change = Arc::new(change);
        if let Some(device) = addressed_to(&change) {
            let mut devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(tx) = devices.get(&device)
                && tx.send(change.clone()).is_err()
            {
                devices.remove(&device);
            }
        }
        let _ = self.all.send(change);
    }
}

/// The device a change is for, when it is one the device itself receives.
fn addressed_to(change: &Change) -> Option<DeviceId> {
    match change {
        Change::Attributes {
            device,
            scope: AttributeScope::Shared,
            ..
        }
        | Change::AttributesDeleted {
            device,
            scope: AttributeScope::Shared,
            ..
        }
        | Change::RpcWaiting { device } => Some(*device),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use thingsafe_core::TenantId;

    fn shared(device: DeviceId, scope: AttributeScope) -> Change {
        Change::Attributes {
            device,
            tenant: TenantId::random(),
            scope,
            attributes: vec![],
        }
    }

    #[test]
    fn a_device_hears_only_what_is_addressed_to_it() {
        let feed = ChangeFeed::new(16);
        let (me, other) = (DeviceId::random(), DeviceId::random());
        let mut mine = feed.subscribe_device(me);
        let mut all = feed.subscribe();
        feed.send(shared(other, AttributeScope::Shared));
        feed.send(shared(me, AttributeScope::Client));
        feed.send(Change::Telemetry {
            device: me,
            tenant: TenantId::random(),
            points: vec![],
        });
        feed.send(Change::RpcWaiting { device: me });
        feed.send(shared(me, AttributeScope::Shared));
        assert_eq!(*mine.try_recv().unwrap(), Change::RpcWaiting { device: me });
        assert!(matches!(
            &*mine.try_recv().unwrap(),
            Change::Attributes { device, scope: AttributeScope::Shared, .. } if *device == me
        ));
        assert!(mine.try_recv().is_err());
        let mut everything = 0;
        while all.try_recv().is_ok() {
            everything += 1;
        }
        assert_eq!(everything, 5, "the installation's feed has them all");
    }

    #[test]
    fn channels_nobody_listens_to_go() {
        let feed = ChangeFeed::new(16);
        let device = DeviceId::random();
        drop(feed.subscribe_device(device));
        assert_eq!(feed.devices.lock().unwrap().len(), 1);
        feed.send(Change::RpcWaiting { device });
        assert!(feed.devices.lock().unwrap().is_empty());
    }
}
