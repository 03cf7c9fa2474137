//! Thingsafe's domain: identifiers, entities, roles, data owners and the validation
//! rules for what people and devices send us. This crate does no I/O; everything here is
//! a pure function of its input.

pub mod device_rpc;
pub mod ids;
pub mod model;
pub mod oauth2;
pub mod owner;
pub mod payload;
pub mod policy;
pub mod rate_limit;
pub mod validate;

pub use ids::{CustomerId, DeviceId, RpcId, SessionId, TenantId, UserId};
pub use model::{
    Attribute, AttributeScope, Authority, Customer, Device, DeviceCredentials, Page, PageRequest,
    Tenant, User,
};
pub use owner::Owner;

/// Milliseconds since the Unix epoch, the timestamp unit of ThingsBoard's APIs.
pub type TimestampMs = i64;

/// The current time in milliseconds since the Unix epoch.
pub fn now_ms() -> TimestampMs {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}
