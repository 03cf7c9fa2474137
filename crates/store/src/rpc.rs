//! Per-device mailboxes of server-side RPC commands, kept in memory: a command waits until
//! a transport holding the device takes it, or until it expires.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use thingsafe_core::{DeviceId, TimestampMs};

use crate::RpcRequest;

/// Commands waiting per device at most; the oldest is dropped beyond it.
const MAILBOX_CAPACITY: usize = 256;

#[derive(Default)]
pub(crate) struct Mailboxes {
    next_id: AtomicU32,
    boxes: Mutex<HashMap<DeviceId, VecDeque<RpcRequest>>>,
}

impl Mailboxes {
    pub(crate) fn submit(
        &self,
        device: DeviceId,
        method: String,
        params: serde_json::Value,
        oneway: bool,
        expires_ms: TimestampMs,
    ) -> RpcRequest {
        let request = RpcRequest {
            id: self.next_id.fetch_add(1, Ordering::Relaxed).wrapping_add(1),
            method,
            params,
            oneway,
            expires_ms,
        };
        let mut boxes = self.boxes.lock().expect("rpc mailboxes");
        let mailbox = boxes.entry(device).or_default();
        if mailbox.len() == MAILBOX_CAPACITY {
            mailbox.pop_front();
        }
        mailbox.push_back(request.clone());
        request
    }

    pub(crate) fn take(&self, device: DeviceId, now_ms: TimestampMs) -> Vec<RpcRequest> {
        let mut boxes = self.boxes.lock().expect("rpc mailboxes");
        let Some(mailbox) = boxes.remove(&device) else {
            return Vec::new();
        };
        mailbox
            .into_iter()
            .filter(|r| r.expires_ms > now_ms)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_taken_once_in_order_and_expire() {
        let m = Mailboxes::default();
        let d = DeviceId::random();
        let a = m.submit(d, "a".into(), serde_json::json!({}), false, 100);
        let b = m.submit(d, "b".into(), serde_json::json!(1), true, 10);
        assert_ne!(a.id, b.id);
        assert_eq!(m.take(d, 50), vec![a]);
        assert!(m.take(d, 50).is_empty(), "taken once");
        assert!(m.take(DeviceId::random(), 0).is_empty());
        for i in 0..MAILBOX_CAPACITY + 5 {
            m.submit(d, format!("{i}"), serde_json::Value::Null, true, 1000);
        }
        let taken = m.take(d, 0);
        assert_eq!(taken.len(), MAILBOX_CAPACITY);
        assert_eq!(taken[0].method, "5", "the oldest were dropped");
    }
}
