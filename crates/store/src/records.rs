//! Accountability records: the audit log (and the hash that chains it), disclosures to
//! third parties, the breach register. The rules around them (what to record, the 72-hour
//! clock, verifying the chain) are the privacy engine's; this is what is kept.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thingsafe_core::{Owner, TenantId, TimestampMs, UserId};

/// The `prev_hash` of the first event.
pub const GENESIS: [u8; 32] = [0; 32];

/// An event to append to the audit log.
#[derive(Clone, Debug, PartialEq)]
pub struct NewAuditEvent {
    pub at_ms: TimestampMs,
    pub tenant: Option<TenantId>,
    /// Who acted; `None`: the server itself, or someone not signed in.
    pub actor: Option<UserId>,
    /// What happened, dotted: `auth.login`, `device.create`, `breach.record`.
    pub action: String,
    /// What it was done to: `device:<id>`, `user:<id>`, `breach:<id>`.
    pub target: Option<String>,
    /// Kept open: must say nothing about a person.
    pub details: serde_json::Value,
    /// What the event says about a person, sealed with this owner's key.
    pub personal: Option<(Owner, serde_json::Value)>,
}

/// An event as the audit log stores it, its personal part sealed: what the chain's hashes
/// are computed over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedAuditEvent {
    pub seq: i64,
    pub at_ms: TimestampMs,
    pub tenant: Option<String>,
    pub actor: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub details: String,
    pub sealed_for: Option<String>,
    pub personal: Option<Vec<u8>>,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
    /// Its link is an HMAC with the key store's audit-chain key ([`Self::link_mac`]);
    /// false: a plain SHA-256 ([`Self::link_hash`]), from before the chain was keyed.
    pub keyed: bool,
}

impl SealedAuditEvent {
    /// SHA-256(`prev` || the canonical bytes of this event): the link of events recorded
    /// before the chain was keyed. The canonical bytes are every stored column but the
    /// hashes, each length-prefixed (absent and empty differ), after a version tag.
    pub fn link_hash(&self, prev: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        self.feed(prev, b"thingsafe-audit-v1", |bytes| h.update(bytes));
        h.finalize().into()
    }

    /// HMAC-SHA256 with the key store's audit-chain key over `prev` and the canonical
    /// bytes (another version tag): the link of every event since the chain is keyed.
    pub fn link_mac(&self, key: &[u8], prev: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key");
        self.feed(prev, b"thingsafe-audit-v2", |bytes| mac.update(bytes));
        mac.finalize().into_bytes().into()
    }

    /// The link this event must carry: keyed or plain, as it says it is.
    pub fn link(&self, key: &[u8], prev: &[u8]) -> [u8; 32] {
        if self.keyed {
            self.link_mac(key, prev)
        } else {
            self.link_hash(prev)
        }
    }

    /// `prev`, the tag, seq and time as they are, then each field length-prefixed (the
    /// layout of the first, plain links: it must not change).
    fn feed(&self, prev: &[u8], tag: &[u8], mut update: impl FnMut(&[u8])) {
        update(prev);
        update(tag);
        update(&self.seq.to_be_bytes());
        update(&self.at_ms.to_be_bytes());
        let mut field = |value: Option<&[u8]>| match value {
            None => update(&[0u8]),
            Some(v) => {
                update(&[1u8]);
                update(&(v.len() as u64).to_be_bytes());
                update(v);
            }
        };
        field(self.tenant.as_deref().map(str::as_bytes));
        field(self.actor.as_deref().map(str::as_bytes));
        field(Some(self.action.as_bytes()));
        field(self.target.as_deref().map(str::as_bytes));
        field(Some(self.details.as_bytes()));
        field(self.sealed_for.as_deref().map(str::as_bytes));
        field(self.personal.as_deref());
    }
}

/// Where the audit chain starts after retention deleted its oldest events: the last
/// deleted event's seq and hash (the next event's `prev_hash`) and time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditAnchor {
    pub seq: i64,
    pub hash: Vec<u8>,
    pub at_ms: TimestampMs,
    pub swept_ms: TimestampMs,
}

/// Whether an event's personal part can be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PersonalPart {
    /// The event says nothing about a person.
    None,
    Readable,
    /// The key that sealed it was destroyed: the person was erased.
    Erased,
}

/// An audit event as people read it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub seq: i64,
    #[serde(rename = "time")]
    pub at_ms: TimestampMs,
    pub tenant_id: Option<TenantId>,
    pub actor_id: Option<UserId>,
    pub action: String,
    pub target: Option<String>,
    pub details: serde_json::Value,
    pub personal: Option<serde_json::Value>,
    pub personal_part: PersonalPart,
}

/// Which audit events to read (all bounds optional and inclusive).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditFilter {
    pub from_ms: Option<TimestampMs>,
    pub to_ms: Option<TimestampMs>,
    pub action: Option<String>,
    pub actor: Option<UserId>,
    pub limit: usize,
}

/// One disclosure of a person's data to a processor or third party.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Disclosure {
    /// The person the data was about.
    pub subject: UserId,
    pub tenant_id: Option<TenantId>,
    /// fideslang data categories.
    pub categories: Vec<String>,
    pub recipient: String,
    pub purpose: String,
    #[serde(rename = "time")]
    pub at_ms: TimestampMs,
}

/// Which disclosures to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisclosureFilter {
    /// Of one person.
    Subject(UserId),
    /// Made within `from_ms..to_ms` (a calendar year).
    Between {
        from_ms: TimestampMs,
        to_ms: TimestampMs,
    },
}

/// A breach to record (GDPR Art. 33(3)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBreach {
    /// `None`: the whole installation (system administrator only).
    pub tenant: Option<TenantId>,
    pub nature: String,
    pub categories: Vec<String>,
    pub approx_subjects: u64,
    pub consequences: String,
    pub measures: String,
    pub detected_ms: TimestampMs,
    pub recorded_by: Option<UserId>,
}

/// A recorded breach.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Breach {
    pub id: uuid::Uuid,
    pub tenant_id: Option<TenantId>,
    pub nature: String,
    pub categories: Vec<String>,
    pub approx_subjects: u64,
    pub consequences: String,
    pub measures: String,
    #[serde(rename = "detectedTime")]
    pub detected_ms: TimestampMs,
    #[serde(rename = "recordedTime")]
    pub recorded_ms: TimestampMs,
    pub recorded_by: Option<UserId>,
    #[serde(rename = "authorityNotifiedTime")]
    pub authority_notified_ms: Option<TimestampMs>,
    pub authority_reference: Option<String>,
}

/// A person told of a breach.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BreachNotification {
    pub user_id: UserId,
    #[serde(rename = "notifiedTime")]
    pub notified_ms: TimestampMs,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> SealedAuditEvent {
        SealedAuditEvent {
            seq: 7,
            at_ms: 1_700_000_000_000,
            tenant: Some("tenant-1".into()),
            actor: None,
            action: "device.create".into(),
            target: Some("device:42".into()),
            details: "{\"gateway\":false}".into(),
            sealed_for: Some("user:x".into()),
            personal: Some(vec![1, 2, 3]),
            prev_hash: GENESIS.to_vec(),
            hash: Vec::new(),
            keyed: false,
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn plain_links_keep_their_layout_and_keyed_links_need_the_key() {
        let e = event();
        // Computed apart from this code (Python's hashlib over the documented layout):
        // events recorded before the chain was keyed must still verify.
        assert_eq!(
            hex(&e.link_hash(&GENESIS)),
            "e2d74c9c536f35920437dddec3d8cf3712e7ab91112621188fd91f89a99a6c57"
        );
        assert_eq!(e.link(b"k", &GENESIS), e.link_hash(&GENESIS));
        let keyed = SealedAuditEvent {
            keyed: true,
            ..event()
        };
        assert_eq!(keyed.link(b"k", &GENESIS), keyed.link_mac(b"k", &GENESIS));
        assert_ne!(
            keyed.link_mac(b"k", &GENESIS),
            keyed.link_mac(b"j", &GENESIS)
        );
        assert_ne!(keyed.link_mac(b"k", &GENESIS), e.link_hash(&GENESIS));
    }
}
