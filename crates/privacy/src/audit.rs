//! The audit log: what is recorded ([`Audit`]) and the check that the chain is whole
//! ([`verify`]).
//!
//! Each stored event carries `hash = HMAC-SHA256(audit-chain key, prev_hash || canonical
//! bytes of the stored event)` (`SealedAuditEvent::link_mac`; events recorded before the
//! chain was keyed carry a plain SHA-256, `link_hash`). The key lives in the key store, not
//! in the database: someone with only the database file cannot re-compute the links after
//! changing an event. The personal part is sealed before hashing, so erasing a person
//! (destroying their key) leaves every hash as it was: the chain still verifies, their
//! part no longer opens. Rows are append-only by triggers; someone with the database file
//! can still drop those, and then the walk names the first event that no longer fits.

use serde::Serialize;
use serde_json::Value;
use thingsafe_core::{Owner, TenantId, User, UserId, now_ms};
use thingsafe_store::Store;
use thingsafe_store::records::{AuditAnchor, GENESIS, NewAuditEvent, SealedAuditEvent};

/// The actions recorded, by name.
pub mod action {
    pub const LOGIN: &str = "auth.login";
    pub const LOGIN_FAILED: &str = "auth.login_failed";
    pub const TWO_FACTOR_ON: &str = "auth.two_factor_on";
    pub const TWO_FACTOR_OFF: &str = "auth.two_factor_off";
    pub const TWO_FACTOR_FAILED: &str = "auth.two_factor_failed";
    pub const PASSWORD_RESET: &str = "auth.password_reset";
    pub const SIGN_UP: &str = "auth.sign_up";
    pub const CONSENT_CHANGE: &str = "privacy.consent_change";
    pub const EXPORT: &str = "privacy.export";
    pub const ERASURE: &str = "privacy.erasure";
    pub const POLICY_PUBLISHED: &str = "privacy.policy_published";
    pub const CLASSIFICATION_CHANGE: &str = "privacy.classification_change";
    pub const USER_CREATE: &str = "user.create";
    pub const USER_DELETE: &str = "user.delete";
    pub const DEVICE_CREATE: &str = "device.create";
    pub const DEVICE_DELETE: &str = "device.delete";
    pub const DEVICE_PROFILE_DELETE: &str = "device_profile.delete";
    pub const CUSTOMER_CREATE: &str = "customer.create";
    pub const CUSTOMER_DELETE: &str = "customer.delete";
    pub const BREACH_RECORD: &str = "breach.record";
    pub const BREACH_AUTHORITY_NOTIFIED: &str = "breach.authority_notified";
    pub const BREACH_SUBJECTS_NOTIFIED: &str = "breach.subjects_notified";
    pub const DISCLOSURE: &str = "disclosure.record";
    pub const BACKUP: &str = "backup.run";
    pub const SUSPENSION: &str = "suspension.add";
    pub const SUSPENSION_LIFT: &str = "suspension.lift";
    /// A data-subject request's status changed by an administrator (`.assign`, `.extend`,
    /// `.complete`, `.reject` follow the prefix).
    pub const REQUEST_PREFIX: &str = "request.";
}

/// An audit event being put together; [`Audit::record`] appends it.
#[must_use = "an audit event is kept only once recorded"]
pub struct Audit(NewAuditEvent);

impl Audit {
    pub fn new(action: &str) -> Audit {
        Audit(NewAuditEvent {
            at_ms: now_ms(),
            tenant: None,
            actor: None,
            action: action.to_string(),
            target: None,
            details: Value::Object(Default::default()),
            personal: None,
        })
    }

    /// Done by `user`, in their tenant.
    pub fn by(mut self, user: &User) -> Audit {
        self.0.actor = Some(user.id);
        self.0.tenant = self.0.tenant.or(user.tenant_id);
        self
    }

    pub fn actor(mut self, user: UserId) -> Audit {
        self.0.actor = Some(user);
        self
    }

    pub fn tenant(mut self, tenant: Option<TenantId>) -> Audit {
        self.0.tenant = tenant;
        self
    }

    /// What it was done to: `kind:id`.
    pub fn target(mut self, kind: &str, id: impl std::fmt::Display) -> Audit {
        self.0.target = Some(format!("{kind}:{id}"));
        self
    }

    /// Open details: nothing personal.
    pub fn details(mut self, details: Value) -> Audit {
        self.0.details = details;
        self
    }

    /// What the event says about a person (or a tenant's data), sealed with `owner`'s key.
    pub fn personal(mut self, owner: Owner, personal: Value) -> Audit {
        self.0.personal = Some((owner, personal));
        self
    }

    /// Appends the event. What was done is done: a failure to record is logged loudly
    /// rather than undoing or hiding it from the caller.
    pub async fn record(self, store: &dyn Store) {
        let action = self.0.action.clone();
        if let Err(e) = store.append_audit(self.0).await {
            tracing::error!(%action, error = %e, "an audit event could not be recorded");
        }
    }
}

/// Why the chain breaks at an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokenLink {
    pub seq: i64,
    pub action: String,
    pub reason: String,
}

/// The outcome of walking the whole chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub ok: bool,
    /// Events checked (up to the first broken one).
    pub events: u64,
    /// The last good event's hash (hex): keep it elsewhere to notice a cut-off tail.
    pub head_hash: String,
    pub broken: Option<BrokenLink>,
    /// Where the walk started when retention deleted the oldest events; `None`: at the
    /// first event ever recorded.
    pub anchor: Option<AnchorView>,
}

/// Where the chain starts after retention: the last deleted event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnchorView {
    /// Events up to this one were deleted by retention; the walk starts after it.
    pub seq: i64,
    /// Its hash (hex): the next event's link.
    pub hash: String,
    /// When it was recorded, and when the sweep deleted it (ms).
    #[serde(rename = "eventTime")]
    pub at_ms: i64,
    #[serde(rename = "sweptTime")]
    pub swept_ms: i64,
    pub note: String,
}

impl From<&AuditAnchor> for AnchorView {
    fn from(a: &AuditAnchor) -> AnchorView {
        AnchorView {
            seq: a.seq,
            hash: hex(&a.hash),
            at_ms: a.at_ms,
            swept_ms: a.swept_ms,
            note: format!(
                "events 1 to {} were deleted by the retention sweeper (the policy's audit_events retention); the chain is verified from the anchor, the hash of event {}",
                a.seq, a.seq
            ),
        }
    }
}

/// Checks events one by one, in order.
pub struct Walk {
    expected_seq: i64,
    prev: Vec<u8>,
    events: u64,
    anchor: Option<AnchorView>,
    /// A keyed event was seen: every later one must be keyed too.
    keyed: bool,
}

impl Default for Walk {
    fn default() -> Self {
        Walk {
            expected_seq: 1,
            prev: GENESIS.to_vec(),
            events: 0,
            anchor: None,
            keyed: false,
        }
    }
}

impl Walk {
    /// A walk that starts after the anchor retention left (or at the first event).
    pub fn from_anchor(anchor: Option<&AuditAnchor>) -> Walk {
        match anchor {
            None => Walk::default(),
            Some(a) => Walk {
                expected_seq: a.seq + 1,
                prev: a.hash.clone(),
                anchor: Some(a.into()),
                ..Walk::default()
            },
        }
    }

    /// Takes the next stored event and the link it must carry (`Store::audit_link`); `Err`
    /// names why the chain breaks there.
    pub fn next(&mut self, event: &SealedAuditEvent, link: &[u8]) -> Result<(), BrokenLink> {
        let broken = |reason: String| BrokenLink {
            seq: event.seq,
            action: event.action.clone(),
            reason,
        };
        if event.seq != self.expected_seq {
            return Err(broken(format!(
                "event {} is missing: the log goes from {} to {}",
                self.expected_seq,
                self.expected_seq - 1,
                event.seq
            )));
        }
        if event.prev_hash != self.prev {
            return Err(broken(format!(
                "it does not follow event {}: its link to the previous event was changed, or that event was",
                event.seq - 1
            )));
        }
        if self.keyed && !event.keyed {
            return Err(broken(format!(
                "its link is a plain SHA-256 after keyed ones: the chain from event {} on was re-computed without the key store's audit-chain key",
                event.seq
            )));
        }
        if link != event.hash.as_slice() {
            return Err(broken(
                "its content does not match its hash: the event was changed after it was recorded"
                    .into(),
            ));
        }
        self.keyed |= event.keyed;
        self.prev = event.hash.clone();
        self.expected_seq += 1;
        self.events += 1;
        Ok(())
    }

    pub fn finish(self, broken: Option<BrokenLink>) -> Verification {
        Verification {
            ok: broken.is_none(),
            events: self.events,
            head_hash: hex(&self.prev),
            broken,
            anchor: self.anchor,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Events read per page while verifying.
const PAGE: usize = 1000;

/// Walks the whole chain from the first event (or the anchor retention left) and reports
/// the first broken link.
pub async fn verify(store: &dyn Store) -> thingsafe_store::Result<Verification> {
    let anchor = store.audit_anchor().await?;
    let mut walk = Walk::from_anchor(anchor.as_ref());
    let mut after = anchor.as_ref().map_or(0, |a| a.seq);
    loop {
        let page = store.audit_chain(after, PAGE).await?;
        for event in &page {
            if let Err(broken) = walk.next(event, &store.audit_link(event, &event.prev_hash)) {
                return Ok(walk.finish(Some(broken)));
            }
        }
        match page.last() {
            Some(last) if page.len() == PAGE => after = last.seq,
            _ => return Ok(walk.finish(None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"the key store's audit-chain key";

    /// `n` events linked as the store links them (keyed).
    fn chain(n: i64) -> Vec<SealedAuditEvent> {
        let mut prev = GENESIS.to_vec();
        (1..=n)
            .map(|seq| {
                let mut e = SealedAuditEvent {
                    seq,
                    at_ms: 1_000 + seq,
                    tenant: Some("t".into()),
                    actor: None,
                    action: format!("test.{seq}"),
                    target: None,
                    details: "{}".into(),
                    sealed_for: Some("user:x".into()),
                    personal: Some(vec![seq as u8; 8]),
                    prev_hash: prev.clone(),
                    hash: Vec::new(),
                    keyed: true,
                };
                e.hash = e.link_mac(KEY, &e.prev_hash).to_vec();
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    /// Walks as the store checks: links keyed from `keyed_from` on (the key store's record),
    /// or where the row says so.
    fn walk_keyed_from(keyed_from: i64, events: &[SealedAuditEvent]) -> Verification {
        walk_on(Walk::default(), keyed_from, events)
    }

    fn walk(events: &[SealedAuditEvent]) -> Verification {
        walk_keyed_from(1, events)
    }

    fn walk_on(mut w: Walk, keyed_from: i64, events: &[SealedAuditEvent]) -> Verification {
        for e in events {
            let link = if e.keyed || e.seq >= keyed_from {
                e.link_mac(KEY, &e.prev_hash)
            } else {
                e.link_hash(&e.prev_hash)
            };
            if let Err(b) = w.next(e, &link) {
                return w.finish(Some(b));
            }
        }
        w.finish(None)
    }

    /// What someone with the database but not the key store can do: change an event and
    /// re-compute the links from it on with plain SHA-256.
    fn rehash_plain(events: &mut [SealedAuditEvent], from: usize, mark_plain: bool) {
        for i in from..events.len() {
            if i > 0 {
                events[i].prev_hash = events[i - 1].hash.clone();
            }
            if mark_plain {
                events[i].keyed = false;
            }
            events[i].hash = events[i].link_hash(&events[i].prev_hash).to_vec();
        }
    }

    #[test]
    fn a_forgery_re_hashed_without_the_key_is_detected_however_it_is_marked() {
        // Marked keyed: the link is not the HMAC.
        let mut events = chain(5);
        events[2].details = "{\"forged\":true}".into();
        rehash_plain(&mut events, 2, false);
        let broken = walk(&events).broken.unwrap();
        assert_eq!(broken.seq, 3);
        assert!(
            broken.reason.contains("does not match its hash"),
            "{broken:?}"
        );

        // Marked plain from the forgery on: plain links may not follow keyed ones.
        let mut events = chain(5);
        events[2].details = "{\"forged\":true}".into();
        rehash_plain(&mut events, 2, true);
        let broken = walk(&events).broken.unwrap();
        assert_eq!(broken.seq, 3);
        assert!(
            broken.reason.contains("plain SHA-256 after keyed ones"),
            "{broken:?}"
        );

        // The whole chain re-computed plain and followed by a keyed event (the next one the
        // server records): the key store says the chain was keyed from event 1.
        let mut events = chain(6);
        events[2].details = "{\"forged\":true}".into();
        rehash_plain(&mut events[..5], 0, true);
        events[5].prev_hash = events[4].hash.clone();
        events[5].hash = events[5].link_mac(KEY, &events[5].prev_hash).to_vec();
        let broken = walk(&events).broken.unwrap();
        assert_eq!(broken.seq, 1);
        assert!(
            broken.reason.contains("does not match its hash"),
            "{broken:?}"
        );

        // Another key does not verify either.
        let mut w = Walk::default();
        let events = chain(2);
        let wrong = events[0].link_mac(b"another installation", &events[0].prev_hash);
        assert!(w.next(&events[0], &wrong).is_err());
    }

    #[test]
    fn plain_events_from_before_the_chain_was_keyed_verify_when_keyed_ones_follow() {
        let mut events = chain(4);
        rehash_plain(&mut events, 0, true);
        // The store keys the chain at start: the next event is keyed, over the plain ones.
        events[3].keyed = true;
        events[3].hash = events[3].link_mac(KEY, &events[3].prev_hash).to_vec();
        let v = walk_keyed_from(4, &events);
        assert!(v.ok, "{v:?}");
        assert_eq!(v.events, 4);
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let v = walk(&chain(5));
        assert!(v.ok, "{v:?}");
        assert_eq!(v.events, 5);
        assert_eq!(walk(&[]).head_hash, hex(&GENESIS));
    }

    #[test]
    fn a_changed_field_breaks_the_chain_at_that_event() {
        type Tamper = fn(&mut SealedAuditEvent);
        let tampers: [Tamper; 8] = [
            |e| e.action = "forged".into(),
            |e| e.at_ms += 1,
            |e| e.tenant = None,
            |e| e.actor = Some("someone".into()),
            |e| e.details = "{\"x\":1}".into(),
            |e| e.sealed_for = Some("user:y".into()),
            |e| e.personal.as_mut().unwrap()[0] ^= 1,
            |e| e.target = Some(String::new()),
        ];
        for tamper in tampers {
            let mut events = chain(5);
            tamper(&mut events[2]);
            let v = walk(&events);
            assert!(!v.ok);
            assert_eq!(v.events, 2);
            let broken = v.broken.unwrap();
            assert_eq!(broken.seq, 3);
            assert!(
                broken.reason.contains("does not match its hash"),
                "{broken:?}"
            );
        }
    }

    #[test]
    fn a_rehashed_forgery_breaks_the_next_link_and_a_removed_event_shows() {
        let mut events = chain(5);
        events[1].action = "forged".into();
        events[1].hash = events[1].link_mac(KEY, &events[1].prev_hash).to_vec();
        let broken = walk(&events).broken.unwrap();
        assert_eq!(broken.seq, 3);
        assert!(
            broken.reason.contains("does not follow event 2"),
            "{broken:?}"
        );

        let mut events = chain(5);
        events.remove(3);
        let broken = walk(&events).broken.unwrap();
        assert_eq!(broken.seq, 5);
        assert!(broken.reason.contains("event 4 is missing"), "{broken:?}");
    }

    #[test]
    fn a_chain_cut_by_retention_verifies_from_its_anchor_and_only_from_it() {
        let events = chain(5);
        let anchor = AuditAnchor {
            seq: 2,
            hash: events[1].hash.clone(),
            at_ms: events[1].at_ms,
            swept_ms: 9_000,
        };
        let rest = &events[2..];
        let walk_from = |anchor: Option<&AuditAnchor>| walk_on(Walk::from_anchor(anchor), 1, rest);
        let v = walk_from(Some(&anchor));
        assert!(v.ok, "{v:?}");
        assert_eq!(v.events, 3);
        assert_eq!(v.anchor.as_ref().unwrap().seq, 2);
        assert!(
            v.anchor
                .unwrap()
                .note
                .contains("events 1 to 2 were deleted")
        );

        // Without the anchor the gap shows; with a forged anchor the first link does not fit.
        let broken = walk_from(None).broken.unwrap();
        assert!(broken.reason.contains("event 1 is missing"), "{broken:?}");
        let forged = AuditAnchor {
            hash: events[0].hash.clone(),
            ..anchor.clone()
        };
        let broken = walk_from(Some(&forged)).broken.unwrap();
        assert_eq!(broken.seq, 3);
        assert!(
            broken.reason.contains("does not follow event 2"),
            "{broken:?}"
        );
        // An anchor that claims fewer events were deleted than were: a gap.
        let short = AuditAnchor { seq: 1, ..anchor };
        let broken = walk_from(Some(&short)).broken.unwrap();
        assert!(broken.reason.contains("event 2 is missing"), "{broken:?}");
    }

    #[test]
    fn absent_and_empty_fields_hash_differently() {
        let mut a = chain(1).remove(0);
        let mut b = a.clone();
        a.target = None;
        b.target = Some(String::new());
        assert_ne!(a.link_hash(&GENESIS), b.link_hash(&GENESIS));
        assert_ne!(a.link_mac(KEY, &GENESIS), b.link_mac(KEY, &GENESIS));
    }
}
