//! Records of data-subject requests, restrictions and notices to recipients (what the
//! store keeps; the rules over them are the privacy engine's).

use serde::{Deserialize, Serialize};
use thingsafe_core::{TenantId, TimestampMs, UserId};

macro_rules! text_enum {
    ($name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant,)*
        }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }
            pub fn parse(text: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.as_str() == text)
            }
        }
    };
}

text_enum!(RequestKind {
    Access = "ACCESS",
    Portability = "PORTABILITY",
    Rectification = "RECTIFICATION",
    Erasure = "ERASURE",
    Restriction = "RESTRICTION",
    Objection = "OBJECTION",
});

text_enum!(RequestStatus {
    Received = "RECEIVED",
    Verified = "VERIFIED",
    InProgress = "IN_PROGRESS",
    Completed = "COMPLETED",
    Rejected = "REJECTED",
});

impl RequestStatus {
    pub fn is_closed(&self) -> bool {
        matches!(self, RequestStatus::Completed | RequestStatus::Rejected)
    }
}

/// One entry of a request's audit trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestEvent {
    #[serde(rename = "time")]
    pub at_ms: TimestampMs,
    /// A user id, `requester` or `system`.
    pub actor: String,
    /// RECEIVED, VERIFIED, CODE_REFUSED, ASSIGNED, EXTENDED, COMPLETED, REJECTED, ...
    pub action: String,
    pub note: Option<String>,
}

/// A data-subject request as the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrivacyRequest {
    pub id: uuid::Uuid,
    #[serde(rename = "type")]
    pub kind: RequestKind,
    pub status: RequestStatus,
    /// The signed-in person who made it; `None` for someone without an account.
    pub user: Option<UserId>,
    pub tenant: Option<TenantId>,
    /// `None` once unreadable (the key that sealed it is destroyed).
    pub email: Option<String>,
    pub details: Option<String>,
    #[serde(rename = "createdTime")]
    pub created_ms: TimestampMs,
    #[serde(rename = "dueTime")]
    pub due_ms: TimestampMs,
    pub extended: bool,
    pub assignee: Option<UserId>,
    #[serde(rename = "closedTime")]
    pub closed_ms: Option<TimestampMs>,
    pub events: Vec<RequestEvent>,
}

/// A request to record.
#[derive(Clone, Debug)]
pub struct NewPrivacyRequest {
    pub id: uuid::Uuid,
    pub kind: RequestKind,
    /// Set: a signed-in person (their key seals the request); else a no-account request
    /// (its own key).
    pub user: Option<UserId>,
    pub tenant: Option<TenantId>,
    pub email: String,
    pub details: Option<String>,
    pub status: RequestStatus,
    pub created_ms: TimestampMs,
    pub due_ms: TimestampMs,
    /// The emailed verification code of a no-account request and when it expires.
    pub code: Option<(String, TimestampMs)>,
    /// The trail's first entries (RECEIVED, and VERIFIED for a signed-in person).
    pub events: Vec<RequestEvent>,
}

/// A change the rules decided on; applied only if the request still has `from` status.
#[derive(Clone, Debug)]
pub struct RequestUpdate {
    pub from: RequestStatus,
    pub status: RequestStatus,
    pub due_ms: TimestampMs,
    pub extended: bool,
    pub assignee: Option<UserId>,
    pub closed_ms: Option<TimestampMs>,
    pub event: RequestEvent,
}

/// Which requests an administrator's queue shows.
#[derive(Clone, Debug, Default)]
pub struct RequestFilter {
    pub status: Option<RequestStatus>,
    /// Open requests due before this time (overdue: now; due soon: now + a week).
    pub open_due_before_ms: Option<TimestampMs>,
}

/// How a verification code attempt went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodeCheck {
    Verified,
    Wrong {
        attempts_left: u32,
    },
    Expired,
    /// Too many wrong codes, or already verified: no more attempts.
    Closed,
}

/// A notice to one processor (GDPR Art. 19).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecipientNotice {
    pub id: i64,
    pub processor: String,
    #[serde(skip)]
    pub url: String,
    pub event: String,
    #[serde(skip)]
    pub payload: String,
    #[serde(rename = "createdTime")]
    pub created_ms: TimestampMs,
    pub attempts: u32,
    #[serde(rename = "deliveredTime")]
    pub delivered_ms: Option<TimestampMs>,
    pub last_error: Option<String>,
}

/// A notice to enqueue.
#[derive(Clone, Debug)]
pub struct NewNotice {
    pub user: UserId,
    pub processor: String,
    pub url: String,
    pub event: String,
    pub payload: String,
}

/// A person's changed profile fields (`None`: unchanged; `Some(None)`: cleared).
#[derive(Clone, Debug, Default)]
pub struct ProfileChange {
    pub email: Option<String>,
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
}
