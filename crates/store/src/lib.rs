//! The store: everything Thingsafe keeps, behind one trait.
//!
//! Two invariants hold for every backend:
//! - **Sealed at rest.** Personal fields are sealed with their owner's data key before they
//!   reach a backend; lookups go through keyed hashes (blind indexes). Device tokens and
//!   passwords are never written in plaintext.
//! - **Scoped below the API.** Every call on tenant data takes the caller's [`Scope`] and the
//!   backend's queries filter by it. A row of another tenant (or another customer) is
//!   indistinguishable from a row that does not exist: [`StoreError::NotFound`].
//!
//! - **One caller's writes commit in the order it made them.** A write started after
//!   another one's future was created commits no earlier than it (the SQLite backend's
//!   writer queue is first-in, first-out). The MQTT session relies on this: a later
//!   attribute write wins, and an attribute request reads the writes sent before it.
//!
//! Which *roles* may call what is the API's business; which *rows* a caller can reach is
//! decided here.

pub mod codec;
mod error;
mod feed;
pub mod oauth2;
pub mod records;
mod requests;
mod rpc;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use thingsafe_core::payload::{Point, Value};
use thingsafe_core::{
    Attribute, AttributeScope, Authority, Customer, CustomerId, Device, DeviceCredentials,
    DeviceId, Page, PageRequest, SessionId, Tenant, TenantId, TimestampMs, User, UserId,
};

pub use error::StoreError;
pub use requests::{
    CodeCheck, NewNotice, NewPrivacyRequest, PrivacyRequest, ProfileChange, RecipientNotice,
    RequestEvent, RequestFilter, RequestKind, RequestStatus, RequestUpdate,
};
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Whose data a call may reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The system administrator: tenants, not their data.
    System,
    /// A tenant administrator: everything of one tenant.
    Tenant(TenantId),
    /// A customer user: what is assigned to one customer of one tenant.
    Customer {
        tenant: TenantId,
        customer: CustomerId,
    },
}

impl Scope {
    pub fn of(user: &User) -> Scope {
        match (user.authority, user.tenant_id, user.customer_id) {
            (Authority::TenantAdmin, Some(tenant), _) => Scope::Tenant(tenant),
            (Authority::CustomerUser, Some(tenant), Some(customer)) => {
                Scope::Customer { tenant, customer }
            }
            _ => Scope::System,
        }
    }

    /// The tenant this scope is confined to; the system scope holds no tenant data.
    pub fn tenant(&self) -> Result<TenantId> {
        match self {
            Scope::System => Err(StoreError::Forbidden(
                "the system administrator has no tenant data; sign in as a tenant administrator"
                    .into(),
            )),
            Scope::Tenant(t) | Scope::Customer { tenant: t, .. } => Ok(*t),
        }
    }

    pub fn customer(&self) -> Option<CustomerId> {
        match self {
            Scope::Customer { customer, .. } => Some(*customer),
            _ => None,
        }
    }
}

/// A person to create. The password, if any, is already an Argon2id PHC string.
#[derive(Clone, Debug)]
pub struct NewUser {
    pub email: String,
    pub password_hash: Option<String>,
    pub authority: Authority,
    pub customer_id: Option<CustomerId>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub birth_date: Option<time::Date>,
}

#[derive(Clone, Debug)]
pub struct NewDevice {
    pub name: String,
    pub device_type: String,
    pub label: Option<String>,
    pub credentials: DeviceCredentials,
}

/// What a sign-in attempt needs to know about an account.
#[derive(Clone, Debug)]
pub struct LoginRecord {
    pub user: User,
    pub password_hash: Option<String>,
    pub failed_logins: u32,
    pub locked_until_ms: Option<TimestampMs>,
}

/// The outcome of a failed sign-in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginFailure {
    /// The account may try again.
    Counted { failures: u32 },
    /// Too many failures: locked until this time.
    Locked { until_ms: TimestampMs },
}

/// A time range of telemetry for some keys of a device.
#[derive(Clone, Debug, PartialEq)]
pub struct TelemetryQuery {
    /// Keys to read; empty reads every key.
    pub keys: Vec<String>,
    /// Inclusive bounds, in ms.
    pub start_ms: TimestampMs,
    pub end_ms: TimestampMs,
    /// Most points per key.
    pub limit: usize,
    /// Newest first (ThingsBoard's `orderBy=DESC`, its default).
    pub descending: bool,
}

/// A command for a device (server-side RPC).
#[derive(Clone, Debug, PartialEq)]
pub struct RpcRequest {
    /// Unique within this server's run; the `$id` of `v1/devices/me/rpc/request/$id`.
    pub id: u32,
    pub method: String,
    pub params: serde_json::Value,
    /// One-way: no response is awaited.
    pub oneway: bool,
    /// Not delivered after this time.
    pub expires_ms: TimestampMs,
}

/// ThingsBoard's `RpcStatus` of a persistent RPC: QUEUED (stored, not yet given to the
/// device), SENT (given to a connection), DELIVERED (acknowledged by the device: MQTT
/// PUBACK, or taken by an HTTP long poll; a one-way command is then SUCCESSFUL), and the
/// final ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RpcStatus {
    Queued,
    Sent,
    Delivered,
    Successful,
    /// Delivered, and not answered before its expiration time.
    Timeout,
    /// Not delivered before its expiration time.
    Expired,
    /// Sent more times than its retries allowed without being acknowledged.
    Failed,
}

impl RpcStatus {
    pub const ALL: [RpcStatus; 7] = [
        RpcStatus::Queued,
        RpcStatus::Sent,
        RpcStatus::Delivered,
        RpcStatus::Successful,
        RpcStatus::Timeout,
        RpcStatus::Expired,
        RpcStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RpcStatus::Queued => "QUEUED",
            RpcStatus::Sent => "SENT",
            RpcStatus::Delivered => "DELIVERED",
            RpcStatus::Successful => "SUCCESSFUL",
            RpcStatus::Timeout => "TIMEOUT",
            RpcStatus::Expired => "EXPIRED",
            RpcStatus::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<RpcStatus> {
        RpcStatus::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// No further change: the command is done with.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            RpcStatus::Queued | RpcStatus::Sent | RpcStatus::Delivered
        )
    }

    /// The status a pending command has once its expiration time passed.
    pub fn expired(self) -> RpcStatus {
        match self {
            RpcStatus::Queued | RpcStatus::Sent => RpcStatus::Expired,
            RpcStatus::Delivered => RpcStatus::Timeout,
            done => done,
        }
    }
}

/// A persistent RPC to store (ThingsBoard's `"persistent": true`).
#[derive(Clone, Debug, PartialEq)]
pub struct NewPersistentRpc {
    pub method: String,
    pub params: serde_json::Value,
    pub oneway: bool,
    pub expires_ms: TimestampMs,
    /// Deliveries allowed after the first when the device does not acknowledge.
    pub retries: u32,
    pub additional_info: Option<serde_json::Value>,
}

/// A persistent RPC as stored (ThingsBoard's `Rpc`).
#[derive(Clone, Debug, PartialEq)]
pub struct PersistentRpc {
    pub id: thingsafe_core::RpcId,
    pub tenant_id: TenantId,
    pub device_id: DeviceId,
    pub created_ms: TimestampMs,
    pub expires_ms: TimestampMs,
    pub method: String,
    pub params: serde_json::Value,
    pub oneway: bool,
    pub retries: u32,
    pub additional_info: Option<serde_json::Value>,
    pub response: Option<serde_json::Value>,
    /// As of the read: a pending command past its expiration time reads as expired.
    pub status: RpcStatus,
}

/// How `Store::persistent_rpcs` orders a device's commands (ThingsBoard's
/// `sortProperty`: `createdTime`, `expirationTime`, `status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RpcSort {
    CreatedTime,
    ExpirationTime,
    Status,
}

/// What was just committed or happened, for live subscribers (WebSocket, MQTT sessions,
/// waiting RPC callers).
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    Telemetry {
        device: DeviceId,
        tenant: TenantId,
        points: Vec<Point>,
    },
    Attributes {
        device: DeviceId,
        tenant: TenantId,
        scope: AttributeScope,
        attributes: Vec<(String, Value)>,
    },
    AttributesDeleted {
        device: DeviceId,
        tenant: TenantId,
        scope: AttributeScope,
        keys: Vec<String>,
    },
    /// A command waits in the device's RPC mailbox: transports holding the device take it.
    RpcWaiting { device: DeviceId },
    /// A transport handed the command to the device.
    RpcDelivered { device: DeviceId, id: u32 },
    /// The device answered a command.
    RpcResponse {
        device: DeviceId,
        id: u32,
        response: serde_json::Value,
    },
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Succeeds when the backend answers a query.
    async fn ping(&self) -> Result<()>;

    // --- installation --------------------------------------------------------------------

    async fn sysadmin_exists(&self) -> Result<bool>;
    async fn create_sysadmin(&self, user: NewUser) -> Result<User>;
    /// A small value of the installation (e.g. the setup token's hash).
    async fn meta(&self, key: &str) -> Result<Option<Vec<u8>>>;
    async fn set_meta(&self, key: &str, value: Option<Vec<u8>>) -> Result<()>;
    async fn tenants(&self, scope: &Scope, page: &PageRequest) -> Result<Page<Tenant>>;

    // --- accounts and sessions -----------------------------------------------------------

    /// Creates a tenant and its first tenant administrator in one transaction.
    async fn sign_up(&self, tenant_title: &str, admin: NewUser) -> Result<(Tenant, User)>;
    async fn login_record(&self, email: &str) -> Result<Option<LoginRecord>>;
    async fn record_login_failure(
        &self,
        user: UserId,
        max_failures: u32,
        lock_ms: i64,
    ) -> Result<LoginFailure>;
    async fn record_login_success(&self, user: UserId) -> Result<()>;
    async fn create_session(
        &self,
        user: UserId,
        refresh_token: &str,
        expires_ms: TimestampMs,
    ) -> Result<SessionId>;
    /// The live (unrevoked, unexpired) session's user.
    async fn session_user(&self, session: SessionId) -> Result<Option<User>>;
    /// Exchanges a live refresh token for a new one (the old one stops working).
    async fn rotate_refresh_token(
        &self,
        old: &str,
        new: &str,
        expires_ms: TimestampMs,
    ) -> Result<Option<(SessionId, User)>>;
    async fn revoke_session(&self, session: SessionId) -> Result<()>;
    /// The not yet activated user holding this activation token.
    async fn user_by_activation_token(&self, activation_token: &str) -> Result<Option<User>>;
    /// Sets the password of the user holding this activation token; the token is spent.
    async fn activate_user(&self, activation_token: &str, password_hash: &str) -> Result<User>;
    /// Starts a password reset for the active account of `email` with `token` (kept as a
    /// keyed hash), replacing any unused one; `None` when there is no such account.
    async fn start_password_reset(
        &self,
        email: &str,
        token: &str,
        expires_ms: TimestampMs,
    ) -> Result<Option<User>>;
    /// The person a password reset token is for, while it is unused and not expired.
    async fn password_reset_user(&self, token: &str) -> Result<Option<User>>;
    /// Sets the new password with a valid reset token and spends it; the person's sessions
    /// end and their failed sign-ins are cleared. `NotFound` for a bad, used or expired one.
    async fn reset_password(&self, token: &str, password_hash: &str) -> Result<User>;
    /// Sets (sealed with the person's key) or clears the person's TOTP secret; `enabled`
    /// once a code from it was confirmed.
    async fn set_totp(&self, user: UserId, secret: Option<&[u8]>, enabled: bool) -> Result<()>;
    async fn totp(&self, user: UserId) -> Result<Option<TotpState>>;
    /// Records that a code of time step `step` was used; false when that step (or a later
    /// one) was used already: a code works once.
    async fn use_totp_step(&self, user: UserId, step: u64) -> Result<bool>;

    // --- tenant data: every call is confined to `scope` ----------------------------------

    async fn create_customer(&self, scope: &Scope, title: &str) -> Result<Customer>;
    async fn customer(&self, scope: &Scope, id: CustomerId) -> Result<Customer>;
    async fn customers(&self, scope: &Scope, page: &PageRequest) -> Result<Page<Customer>>;
    async fn rename_customer(&self, scope: &Scope, id: CustomerId, title: &str)
    -> Result<Customer>;
    async fn delete_customer(&self, scope: &Scope, id: CustomerId) -> Result<()>;

    async fn create_user(&self, scope: &Scope, user: NewUser) -> Result<User>;
    async fn user(&self, scope: &Scope, id: UserId) -> Result<User>;
    async fn users(
        &self,
        scope: &Scope,
        customer: Option<CustomerId>,
        page: &PageRequest,
    ) -> Result<Page<User>>;
    async fn delete_user(&self, scope: &Scope, id: UserId) -> Result<()>;
    /// Stores a new activation token for a user who has not set a password yet.
    async fn set_activation_token(&self, scope: &Scope, id: UserId, token: &str) -> Result<()>;

    async fn create_device(&self, scope: &Scope, device: NewDevice) -> Result<Device>;
    async fn device(&self, scope: &Scope, id: DeviceId) -> Result<Device>;
    async fn devices(
        &self,
        scope: &Scope,
        customer: Option<CustomerId>,
        page: &PageRequest,
    ) -> Result<Page<Device>>;
    /// Renames or retypes a device; `label: None` clears the label.
    async fn update_device(
        &self,
        scope: &Scope,
        id: DeviceId,
        name: &str,
        device_type: &str,
        label: Option<&str>,
    ) -> Result<Device>;
    async fn delete_device(&self, scope: &Scope, id: DeviceId) -> Result<()>;
    async fn device_credentials(&self, scope: &Scope, id: DeviceId) -> Result<DeviceCredentials>;
    async fn set_device_credentials(
        &self,
        scope: &Scope,
        id: DeviceId,
        credentials: DeviceCredentials,
    ) -> Result<()>;
    /// When each device in `scope` last sent telemetry: the newest timestamp among its
    /// latest values and its not yet flushed log rows. Devices that never sent anything
    /// are absent. One statement over the scope's devices, however many.
    async fn devices_last_activity(
        &self,
        scope: &Scope,
    ) -> Result<std::collections::HashMap<DeviceId, TimestampMs>>;
    /// Assigns the device to `customer`, or back to the tenant with `None`.
    async fn assign_device(
        &self,
        scope: &Scope,
        id: DeviceId,
        customer: Option<CustomerId>,
    ) -> Result<Device>;

    // --- transports ----------------------------------------------------------------------

    /// The device whose access token this is (the token is the device's proof of identity).
    async fn device_by_token(&self, token: &str) -> Result<Option<Device>>;
    /// The device whose X.509 credentials have this SHA-256 fingerprint (lower-case hex):
    /// the TLS handshake proved the client holds that certificate's key.
    async fn device_by_certificate(&self, fingerprint: &str) -> Result<Option<Device>>;

    // --- device data: `device` was obtained through a scope or the device's token --------

    /// Stores telemetry sealed with the device's data owner's key; resolves once the
    /// points are durably committed.
    async fn append_telemetry(&self, device: &Device, points: Vec<Point>) -> Result<()>;
    async fn save_attributes(
        &self,
        device: &Device,
        scope: AttributeScope,
        attributes: Vec<(String, Value)>,
    ) -> Result<()>;
    async fn remove_attributes(
        &self,
        device: &Device,
        scope: AttributeScope,
        keys: Vec<String>,
    ) -> Result<()>;
    /// Attributes of one scope; `keys` narrows to those names.
    async fn device_attributes(
        &self,
        device: &Device,
        scope: AttributeScope,
        keys: Option<Vec<String>>,
    ) -> Result<Vec<Attribute>>;
    /// The newest point of each key (of `keys`, or all).
    async fn device_latest(&self, device: &Device, keys: Option<Vec<String>>)
    -> Result<Vec<Point>>;
    async fn device_telemetry(&self, device: &Device, query: TelemetryQuery) -> Result<Vec<Point>>;
    /// [`Store::device_telemetry`] with the policy version in force when each point's batch
    /// was received (`None`: received before versions were stamped).
    async fn device_telemetry_stamped(
        &self,
        device: &Device,
        query: TelemetryQuery,
    ) -> Result<Vec<(Point, Option<u32>)>>;
    /// Deletes the points of `keys` within `start_ms..=end_ms`; returns how many. A latest
    /// value in the range goes too, replaced by the newest remaining point when
    /// `rewrite_latest` (ThingsBoard's `rewriteLatestIfDeleted`).
    async fn delete_telemetry(
        &self,
        device: &Device,
        keys: Vec<String>,
        start_ms: TimestampMs,
        end_ms: TimestampMs,
        rewrite_latest: bool,
    ) -> Result<usize>;

    /// Committed telemetry and attribute changes and RPC events, as they happen.
    fn changes(&self) -> tokio::sync::broadcast::Receiver<Arc<Change>>;

    /// The changes addressed to `device` only (its shared attributes set or deleted, a
    /// command waiting for it): what a device's own transport session listens to, so that
    /// it wakes for its device's changes only.
    fn device_changes(&self, device: DeviceId) -> tokio::sync::broadcast::Receiver<Arc<Change>> {
        let _ = device;
        self.changes()
    }

    /// Puts a command in the device's mailbox (and announces `Change::RpcWaiting`); returns
    /// its id. Commands are not persisted: they live until taken or expired.
    fn rpc_submit(
        &self,
        device: &Device,
        method: String,
        params: serde_json::Value,
        oneway: bool,
        expires_ms: TimestampMs,
    ) -> RpcRequest;
    /// Takes the device's unexpired commands out of its mailbox (each is delivered once) and
    /// announces `Change::RpcDelivered` for each.
    fn rpc_take(&self, device: DeviceId) -> Vec<RpcRequest>;
    /// Announces the device's answer to command `id` (and stores it, for a persistent one:
    /// SUCCESSFUL).
    fn rpc_respond(&self, device: DeviceId, id: u32, response: serde_json::Value);
    /// Takes the device's oldest unexpired command only (an HTTP long poll answers one);
    /// the others stay in the mailbox.
    fn rpc_take_one(&self, device: DeviceId) -> Option<RpcRequest> {
        self.rpc_take(device).into_iter().next()
    }
    /// The device acknowledged command `id` (MQTT PUBACK, or an HTTP poll took it): a
    /// persistent one is DELIVERED (a one-way one SUCCESSFUL). Nothing for others.
    fn rpc_delivered(&self, device: DeviceId, id: u32) {
        let _ = (device, id);
    }

    // --- persistent RPC (ThingsBoard 3.3+): `device` must be in `scope` ----------------

    /// Stores a persistent command (QUEUED), sealed with the tenant's key, and puts it in
    /// the device's mailbox; it survives restarts until delivered and done with or expired.
    async fn rpc_persist(&self, device: &Device, rpc: NewPersistentRpc) -> Result<PersistentRpc>;
    async fn persistent_rpc(
        &self,
        scope: &Scope,
        id: thingsafe_core::RpcId,
    ) -> Result<PersistentRpc>;
    /// A device's persistent commands, of one status if given.
    async fn persistent_rpcs(
        &self,
        scope: &Scope,
        device: DeviceId,
        status: Option<RpcStatus>,
        sort: RpcSort,
        descending: bool,
        page: &PageRequest,
    ) -> Result<Page<PersistentRpc>>;
    /// Deletes a persistent command (a waiting one is never delivered).
    async fn delete_persistent_rpc(&self, scope: &Scope, id: thingsafe_core::RpcId) -> Result<()>;

    // --- device data for signed-in users: the device must be in `scope` -----------------

    async fn telemetry_keys(&self, scope: &Scope, device: DeviceId) -> Result<Vec<String>> {
        let device = self.device(scope, device).await?;
        let mut keys: Vec<String> = self
            .device_latest(&device, None)
            .await?
            .into_iter()
            .map(|p| p.key)
            .collect();
        keys.sort();
        Ok(keys)
    }

    async fn latest_telemetry(
        &self,
        scope: &Scope,
        device: DeviceId,
        keys: Option<Vec<String>>,
    ) -> Result<Vec<Point>> {
        let device = self.device(scope, device).await?;
        self.device_latest(&device, keys).await
    }

    async fn telemetry(
        &self,
        scope: &Scope,
        device: DeviceId,
        query: TelemetryQuery,
    ) -> Result<Vec<Point>> {
        let device = self.device(scope, device).await?;
        self.device_telemetry(&device, query).await
    }

    async fn attributes(
        &self,
        scope: &Scope,
        device: DeviceId,
        attribute_scope: AttributeScope,
        keys: Option<Vec<String>>,
    ) -> Result<Vec<Attribute>> {
        let device = self.device(scope, device).await?;
        self.device_attributes(&device, attribute_scope, keys).await
    }

    // --- gateways ---

    /// Creates a device flagged as a gateway (ThingsBoard's `additionalInfo.gateway`): it
    /// may speak for sub-devices over the gateway API.
    async fn create_gateway(&self, scope: &Scope, device: NewDevice) -> Result<Device>;
    /// The sub-device of `gateway` named `name`, created on first sight in the gateway's
    /// tenant, assigned to the gateway's customer (if any), with a random access token and
    /// the type `device_type`. Refused (`Conflict`) when the name belongs to a device of the
    /// tenant that is not this gateway's sub-device, and (`Forbidden`) when `gateway` is no
    /// longer a gateway.
    async fn gateway_child(
        &self,
        gateway: &Device,
        name: &str,
        device_type: &str,
    ) -> Result<Device>;

    // --- privacy policy ---

    /// Publishes the policy as the next version, unless the latest version has the same
    /// content (`sha256`); returns the version in force and whether it was published now.
    /// A new version is material when its `material_sha256` differs from the previous
    /// version's; the first version is material. Versions are never changed or removed.
    async fn publish_policy(
        &self,
        policy: &thingsafe_core::policy::Canonical,
    ) -> Result<(thingsafe_core::policy::PolicyVersion, bool)>;
    /// Every published version, oldest first.
    async fn policy_versions(&self) -> Result<Vec<thingsafe_core::policy::PolicyVersion>>;
    /// The canonical JSON of a published version.
    async fn policy_content(&self, version: u32) -> Result<Option<String>>;
    /// [`Store::sign_up`], recording on the new administrator's account the policy version
    /// they accepted, in the same transaction; a version never published is `Invalid`.
    async fn sign_up_accepting_policy(
        &self,
        tenant_title: &str,
        admin: NewUser,
        policy_version: u32,
    ) -> Result<(Tenant, User)>;
    /// The policy version the user accepted at sign-up (`None` for accounts made otherwise).
    async fn accepted_policy_version(&self, user: UserId) -> Result<Option<u32>>;
    /// Records that the person reviewed and accepted a published version (after a
    /// material change), with `entry` in their consent ledger, in one transaction.
    async fn accept_policy_version(
        &self,
        user: UserId,
        version: u32,
        entry: ConsentRecord,
    ) -> Result<()>;

    // --- consent ledger and erasure ---

    /// [`Store::sign_up_accepting_policy`] with the person's first consent choices recorded
    /// in the same transaction.
    async fn sign_up_with_consents(
        &self,
        tenant_title: &str,
        admin: NewUser,
        policy_version: u32,
        consents: Vec<ConsentRecord>,
    ) -> Result<(Tenant, User)>;
    /// Appends to the ledger (entries are never changed or removed while the person has
    /// an account).
    async fn record_consents(
        &self,
        subject: ConsentSubject,
        consents: Vec<ConsentRecord>,
    ) -> Result<()>;
    /// The subject's ledger, oldest first.
    async fn consent_history(&self, subject: ConsentSubject) -> Result<Vec<ConsentRecord>>;
    /// The sessions a person signed in with (login history), newest first.
    async fn sessions_of(&self, user: UserId) -> Result<Vec<SessionRecord>>;

    /// Erases a person: one transaction records the erasure and ends their sessions, then
    /// their data key is destroyed — and, when they are the last administrator of their
    /// tenant, the tenant's, its customers' and its other users' keys too. The work does
    /// not depend on how much data they have: rows are purged later by
    /// [`Store::purge_erased`]. A system administrator cannot be erased this way.
    async fn erase_account(&self, user: UserId) -> Result<Erasure>;
    /// Stores the receipt given to the person (it names no personal data).
    async fn save_erasure_receipt(&self, erasure: &str, receipt: &str) -> Result<()>;
    async fn erasure_receipt(&self, erasure: &str) -> Result<Option<String>>;
    /// Deletes the telemetry of the tenant's devices older than `before_ms` (latest values
    /// included), first folding it into the hourly aggregates when `aggregate`; returns how
    /// many points went.
    async fn expire_telemetry(
        &self,
        tenant: TenantId,
        before_ms: TimestampMs,
        aggregate: bool,
    ) -> Result<u64>;
    /// The anonymised hourly aggregates of `key` whose hour starts between the bounds
    /// (inclusive), oldest first, at most 10,000.
    async fn telemetry_aggregates(
        &self,
        key: &str,
        from_ms: TimestampMs,
        to_ms: TimestampMs,
    ) -> Result<Vec<HourlyAggregate>>;
    /// The tenant's own telemetry retention in days (shorter than the policy's), if set.
    async fn tenant_retention(&self, scope: &Scope) -> Result<Option<u32>>;
    async fn set_tenant_retention(&self, scope: &Scope, telemetry_days: Option<u32>) -> Result<()>;
    /// Every tenant and its own retention, for the sweeper.
    async fn retention_settings(&self) -> Result<Vec<(TenantId, Option<u32>)>>;
    async fn record_sweep(&self, sweep: &Sweep) -> Result<()>;
    /// The latest sweeps, newest first: those asked for `tenant`, or all of them.
    async fn sweeps(&self, tenant: Option<TenantId>, limit: usize) -> Result<Vec<Sweep>>;
    /// Deletes the records older than their cut (see [`RecordCuts`]); returns how many
    /// rows went per record.
    async fn expire_records(
        &self,
        cuts: &RecordCuts,
    ) -> Result<std::collections::BTreeMap<String, u64>>;
    /// Physically deletes up to `max_rows` rows of erased people and tenants (destroying
    /// any key an interrupted erasure left); returns how many went. Zero: nothing is left.
    async fn purge_erased(&self, max_rows: usize) -> Result<usize>;
    /// Re-applies erasures the key store knows of and the database does not (a data
    /// backup from before them was restored with the current key store): their rows,
    /// keyed email hashes and sessions go as the erasure made them go. Run at start.
    async fn reapply_erasures(&self) -> Result<Reapplied>;

    // --- tenant-level scheduled exports ---

    async fn tenant_export_schedule(&self, scope: &Scope) -> Result<Option<TenantExportSchedule>>;
    /// Opts the scope's tenant into scheduled exports, or out (`None`).
    async fn set_tenant_export_schedule(
        &self,
        scope: &Scope,
        schedule: Option<TenantExportSchedule>,
    ) -> Result<()>;
    /// The tenants whose schedule wants an export at `now_ms`; `every_ms` (tests) replaces
    /// every schedule's daily or weekly period.
    async fn due_tenant_exports(
        &self,
        now_ms: TimestampMs,
        every_ms: Option<i64>,
    ) -> Result<Vec<(TenantId, TenantExportSchedule)>>;
    async fn start_tenant_export(&self, tenant: TenantId, id: &str) -> Result<()>;
    /// Records how a run ended: its file's size, or the error.
    async fn finish_tenant_export(
        &self,
        id: &str,
        outcome: std::result::Result<u64, String>,
    ) -> Result<()>;
    /// Marks runs a stop cut short as interrupted; returns how many.
    async fn interrupt_tenant_exports(&self) -> Result<u64>;
    /// Exports of `tenant` (`None`: all), newest first.
    async fn tenant_exports(&self, tenant: Option<TenantId>) -> Result<Vec<TenantExport>>;
    async fn delete_tenant_export(&self, id: &str) -> Result<()>;

    // --- suspensions ---

    /// Suspends a device, a device type or a tenant (`tenant`: whose device type, for the
    /// system administrator). A tenant administrator suspends their own tenant's devices
    /// and types; only the system administrator suspends tenants.
    async fn suspend(
        &self,
        scope: &Scope,
        target: SuspensionTarget,
        tenant: Option<TenantId>,
        reason: String,
    ) -> Result<Suspension>;
    /// Lifts a suspension; `NotFound` when there is none.
    async fn lift_suspension(
        &self,
        scope: &Scope,
        target: SuspensionTarget,
        tenant: Option<TenantId>,
    ) -> Result<()>;
    /// The suspensions in the scope, oldest first.
    async fn suspensions(&self, scope: &Scope) -> Result<Vec<Suspension>>;
    /// The suspension that stops `device` (its own, its type's or its tenant's), if any.
    /// Answered from memory: transports ask on every connection and request.
    fn suspension_of(&self, device: &Device) -> Option<Suspension>;
    /// Changes whenever a suspension is made or lifted: connected sessions re-check.
    fn suspension_changes(&self) -> tokio::sync::watch::Receiver<u64>;

    // --- provisioning and claiming ---

    /// Creates a device profile of the scope's tenant; a provisioning key already used by
    /// any profile of the installation is a `Conflict`.
    async fn create_device_profile(
        &self,
        scope: &Scope,
        profile: NewDeviceProfile,
    ) -> Result<thingsafe_core::model::DeviceProfile>;
    async fn device_profile(
        &self,
        scope: &Scope,
        id: thingsafe_core::model::DeviceProfileId,
    ) -> Result<thingsafe_core::model::DeviceProfile>;
    async fn device_profiles(
        &self,
        scope: &Scope,
        page: &PageRequest,
    ) -> Result<Page<thingsafe_core::model::DeviceProfile>>;
    /// Deletes a profile of the scope's tenant (`NotFound` for any other); `Invalid` while
    /// devices are in it. Its provisioning key or CA is free again afterwards.
    async fn delete_device_profile(
        &self,
        scope: &Scope,
        id: thingsafe_core::model::DeviceProfileId,
    ) -> Result<()>;
    /// Puts a device of the scope's tenant in one of its profiles (or none).
    async fn set_device_profile(
        &self,
        scope: &Scope,
        device: DeviceId,
        profile: Option<thingsafe_core::model::DeviceProfileId>,
    ) -> Result<()>;
    /// The profile a device of the scope belongs to.
    async fn device_profile_of(
        &self,
        scope: &Scope,
        device: DeviceId,
    ) -> Result<Option<thingsafe_core::model::DeviceProfileId>>;
    /// ThingsBoard's `DeviceProvisionServiceImpl.provisionDevice`: the key finds one
    /// profile (so one tenant); its secret must match. Refusals are outcomes, not errors.
    async fn provision_device(
        &self,
        request: &thingsafe_core::model::provisioning::ProvisionRequest,
    ) -> Result<thingsafe_core::model::provisioning::ProvisionOutcome>;
    /// The `X509_CERTIFICATE_CHAIN` profile whose CA certificate has one of these
    /// fingerprints (those of a client's chain above its own certificate, nearest first):
    /// the nearest found.
    async fn certificate_chain_profile(
        &self,
        fingerprints: &[String],
    ) -> Result<Option<thingsafe_core::model::DeviceProfile>>;
    /// A device whose certificate chain was verified to `profile`'s CA, named `name` by its
    /// certificate: the profile's device of that name still waiting for credentials takes
    /// `certificate` as its credentials, or, if the profile allows, a device is created
    /// with it. Refusals are outcomes, not errors.
    async fn provision_by_certificate(
        &self,
        profile: &thingsafe_core::model::DeviceProfile,
        name: &str,
        certificate: DeviceCredentials,
    ) -> Result<CertificateProvisioning>;
    /// The device opens its claiming window (kept in memory, like RPC mailboxes); false
    /// when the device is assigned to a customer already (nothing is opened).
    async fn open_claim(
        &self,
        device: &Device,
        request: &thingsafe_core::model::provisioning::ClaimRequest,
    ) -> Result<bool>;
    /// A customer user claims the device of its tenant named `name` with `secret_key`.
    async fn claim_device(
        &self,
        scope: &Scope,
        name: &str,
        secret_key: &str,
    ) -> Result<ClaimOutcome>;
    /// Unassigns the claimed device named `name` (a customer user: only its own).
    async fn reclaim_device(&self, scope: &Scope, name: &str) -> Result<Device>;

    // --- data-subject requests, restriction, notices to recipients ---

    /// Records a request and the first entries of its trail.
    async fn create_privacy_request(&self, request: NewPrivacyRequest) -> Result<PrivacyRequest>;
    /// A request with its trail: the system administrator reaches every request, a tenant
    /// administrator those of their tenant's people; anything else is `NotFound`.
    async fn privacy_request(&self, scope: &Scope, id: uuid::Uuid) -> Result<PrivacyRequest>;
    /// The queue of `scope` (as [`Store::privacy_request`]), soonest due first.
    async fn privacy_requests(
        &self,
        scope: &Scope,
        filter: &RequestFilter,
    ) -> Result<Vec<PrivacyRequest>>;
    /// The requests a person made while signed in, newest first.
    async fn requests_of(&self, user: UserId) -> Result<Vec<PrivacyRequest>>;
    /// Applies `update` if the request (in `scope`) still has `update.from` status (else
    /// `Conflict`), appending its event to the trail.
    async fn update_privacy_request(
        &self,
        scope: &Scope,
        id: uuid::Uuid,
        update: RequestUpdate,
    ) -> Result<PrivacyRequest>;
    /// Checks the emailed code of a no-account request (counting attempts); a right code
    /// moves it to VERIFIED.
    async fn check_request_code(
        &self,
        id: uuid::Uuid,
        code: &str,
        max_attempts: u32,
        now_ms: TimestampMs,
    ) -> Result<CodeCheck>;
    /// Changes a person's profile (rectification); a new email keeps the blind index right
    /// and is a `Conflict` when another account has it.
    async fn update_profile(&self, user: UserId, change: ProfileChange) -> Result<User>;
    /// Restricts (or lifts the restriction of) a person's processing; returns whether the
    /// state changed.
    async fn set_restricted(&self, user: UserId, restricted: bool) -> Result<bool>;
    /// Since when a person's processing is restricted, if it is.
    async fn restricted_since(&self, user: UserId) -> Result<Option<TimestampMs>>;
    async fn enqueue_notices(&self, notices: Vec<NewNotice>) -> Result<()>;
    /// Undelivered notices due at `now_ms`; those of a restricted person are held, except
    /// the restriction notices themselves.
    async fn due_notices(&self, now_ms: TimestampMs, limit: usize) -> Result<Vec<RecipientNotice>>;
    /// Records a delivery attempt: delivered, or failed with `error` and tried again at
    /// `retry_ms`.
    async fn record_notice_attempt(
        &self,
        id: i64,
        now_ms: TimestampMs,
        result: std::result::Result<(), (String, TimestampMs)>,
    ) -> Result<()>;
    /// The notices sent (or to send) about a person, oldest first.
    async fn notices_of(&self, user: UserId) -> Result<Vec<RecipientNotice>>;
    /// Destroys the own keys of no-account requests closed before `closed_before_ms`: their
    /// requester's email and details become unreadable; the record (kind, dates, trail
    /// actions) stays. Returns how many.
    async fn shred_closed_requests(&self, closed_before_ms: TimestampMs) -> Result<usize>;

    // --- backup runs ---

    /// Records that a backup of `kind` ("data" or "keys") started; returns the run's id.
    async fn start_backup_run(&self, kind: &str, attempt: u32, started_ms: i64) -> Result<i64>;
    /// Records how the run `id` ended.
    async fn finish_backup_run(&self, id: i64, outcome: BackupOutcome) -> Result<()>;
    /// Marks runs still "running" as "interrupted" (the server stopped mid-way); returns
    /// how many. Called at start, before any run.
    async fn interrupt_backup_runs(&self) -> Result<u64>;
    /// The newest `limit` runs, newest first.
    async fn backup_runs(&self, limit: u32) -> Result<Vec<BackupRun>>;

    // --- OAuth2 authorization server (oauth2.rs) ---

    /// Registers a client of the scope's tenant (tenant administrators only).
    async fn create_oauth_client(
        &self,
        scope: &Scope,
        client: oauth2::NewOAuthClient,
    ) -> Result<oauth2::OAuthClient>;
    async fn oauth_clients(&self, scope: &Scope) -> Result<Vec<oauth2::OAuthClient>>;
    /// Deletes a client of the scope's tenant, and with it every code and token it holds.
    async fn delete_oauth_client(&self, scope: &Scope, id: &str) -> Result<()>;
    /// The client with this id, for the protocol endpoints (the id is public).
    async fn oauth_client(&self, id: &str) -> Result<Option<oauth2::OAuthClient>>;
    /// Whether `secret` is the confidential client's secret (compared as keyed hashes).
    async fn oauth_client_secret_matches(&self, id: &str, secret: &str) -> Result<bool>;
    async fn create_oauth_code(&self, code: oauth2::NewOAuthCode) -> Result<()>;
    /// Spends a code presented by `client_id`; a second use revokes what the first got.
    async fn redeem_oauth_code(
        &self,
        code: &str,
        client_id: &str,
    ) -> Result<oauth2::CodeRedemption>;
    async fn issue_oauth_tokens(&self, issue: oauth2::TokenIssue) -> Result<()>;
    /// The live token (access or refresh) and the user it acts for.
    async fn oauth_token(&self, token: &str) -> Result<Option<(oauth2::OAuthToken, User)>>;
    /// Exchanges `client_id`'s refresh token for a new access and refresh token of the
    /// same grant; a refresh token used before revokes the grant's every token.
    async fn rotate_oauth_refresh(
        &self,
        client_id: &str,
        old: &str,
        narrow: Option<thingsafe_core::oauth2::Scopes>,
        access: (String, TimestampMs),
        refresh: (String, TimestampMs),
    ) -> Result<oauth2::RefreshRotation>;
    /// Revokes `client_id`'s token (RFC 7009); a refresh token takes its grant with it.
    /// Unknown tokens and other clients' tokens are left alone.
    async fn revoke_oauth_token(&self, client_id: &str, token: &str) -> Result<()>;
    /// The applications holding live grants (authorization code) for `user`.
    async fn oauth_grants(&self, user: UserId) -> Result<Vec<oauth2::OAuthGrant>>;
    /// Revokes every token `client_id` holds for `user`; false when it held none.
    async fn revoke_oauth_grant(&self, user: UserId, client_id: &str) -> Result<bool>;
    // --- accountability records (records.rs) ---

    /// Appends an event to the audit log, chained to the one before; returns its sequence
    /// number. The personal part is sealed with its owner's key (dropped if that key is
    /// already destroyed).
    async fn append_audit(&self, event: records::NewAuditEvent) -> Result<i64>;
    /// Audit events oldest first: the tenant's own for a tenant scope, all for the system.
    async fn audit_events(
        &self,
        scope: &Scope,
        filter: &records::AuditFilter,
    ) -> Result<Vec<records::AuditEvent>>;
    /// Up to `limit` events after `after_seq` exactly as stored, for verifying the chain.
    async fn audit_chain(
        &self,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<records::SealedAuditEvent>>;
    /// The link `event` must carry after `prev`: an HMAC with the key store's audit-chain
    /// key, or for events from before the chain was keyed, a plain SHA-256.
    fn audit_link(&self, event: &records::SealedAuditEvent, prev: &[u8]) -> [u8; 32];
    /// Where the chain starts once retention deleted its oldest events; `None`: it starts
    /// at the first event.
    async fn audit_anchor(&self) -> Result<Option<records::AuditAnchor>>;
    async fn record_disclosure(&self, disclosure: records::Disclosure) -> Result<()>;
    /// Disclosures oldest first, within the scope (a customer user: only of one person).
    async fn disclosures(
        &self,
        scope: &Scope,
        filter: records::DisclosureFilter,
    ) -> Result<Vec<records::Disclosure>>;
    /// Records a breach of the scope's tenant (the system: of any tenant or of none).
    async fn record_breach(
        &self,
        scope: &Scope,
        breach: records::NewBreach,
    ) -> Result<records::Breach>;
    /// The scope's breaches, newest detection first.
    async fn breaches(&self, scope: &Scope) -> Result<Vec<records::Breach>>;
    async fn breach(&self, scope: &Scope, id: uuid::Uuid) -> Result<records::Breach>;
    /// Records when the supervisory authority was notified (once).
    async fn breach_authority_notified(
        &self,
        scope: &Scope,
        id: uuid::Uuid,
        at_ms: TimestampMs,
        reference: Option<String>,
    ) -> Result<records::Breach>;
    /// Records that `users` were told of the breach; returns everyone told so far.
    async fn record_breach_notifications(
        &self,
        scope: &Scope,
        id: uuid::Uuid,
        users: Vec<UserId>,
        at_ms: TimestampMs,
    ) -> Result<Vec<records::BreachNotification>>;
    async fn breach_notifications(
        &self,
        scope: &Scope,
        id: uuid::Uuid,
    ) -> Result<Vec<records::BreachNotification>>;
    /// The scope's tenant's classification of its telemetry keys: key → data category.
    async fn telemetry_classification(
        &self,
        scope: &Scope,
    ) -> Result<std::collections::BTreeMap<String, String>>;
    /// Replaces the tenant's classification (a tenant administrator's scope only).
    async fn set_telemetry_classification(
        &self,
        scope: &Scope,
        classification: std::collections::BTreeMap<String, String>,
    ) -> Result<()>;
    /// Every tenant's classification, for the retention sweeper.
    async fn telemetry_classifications(
        &self,
    ) -> Result<Vec<(TenantId, std::collections::BTreeMap<String, String>)>>;
    /// Deletes the tenant's points of `key` older than `before_ms`, first folding them into
    /// the hourly aggregates when `aggregate`; returns how many.
    async fn expire_telemetry_key(
        &self,
        tenant: TenantId,
        key: &str,
        before_ms: TimestampMs,
        aggregate: bool,
    ) -> Result<u64>;
}

/// How a backup run ended.
#[derive(Clone, Debug, PartialEq)]
pub struct BackupOutcome {
    pub finished_ms: i64,
    /// `Ok` with the file written and its size, or `Err` with what went wrong.
    pub result: std::result::Result<(String, u64), String>,
}

/// One recorded backup run.
#[derive(Clone, Debug, PartialEq)]
pub struct BackupRun {
    pub id: i64,
    pub kind: String,
    pub attempt: u32,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    /// running, ok, failed, or interrupted.
    pub status: String,
    pub bytes: Option<u64>,
    pub file: Option<String>,
    pub error: Option<String>,
}

/// Whose consent an entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsentSubject {
    /// A person with an account.
    User(UserId),
    /// A visitor without an account, known by the random id in their consent cookie.
    Visitor(uuid::Uuid),
}

/// One entry of the consent ledger.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentRecord {
    /// A purpose of the policy (`marketing`) or a cookie category (`cookie:functionality`).
    pub purpose: String,
    pub granted: bool,
    /// How it was given or withdrawn: `signup`, `form`, `api`, `signal:GPC`, `signal:DNT`,
    /// `unsubscribe_link`.
    pub method: String,
    /// The policy version in force.
    pub policy_version: Option<u32>,
    #[serde(rename = "time")]
    pub at_ms: TimestampMs,
}

/// One run of the retention sweeper.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sweep {
    #[serde(rename = "startedTime")]
    pub started_ms: TimestampMs,
    #[serde(rename = "finishedTime")]
    pub finished_ms: TimestampMs,
    pub tenant: Option<TenantId>,
    pub telemetry_points: u64,
    /// Rows deleted per record (`login_history`, `audit_events`, ...).
    #[serde(default)]
    pub records: std::collections::BTreeMap<String, u64>,
    pub error: Option<String>,
}

/// Expired telemetry of one key and hour, kept without device, owner or tenant.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HourlyAggregate {
    pub key: String,
    /// The hour's start (ms since the epoch).
    #[serde(rename = "hourTs")]
    pub hour_ms: TimestampMs,
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
}

/// For one sweep, the time before which each record goes (`None`: kept). Sessions by
/// when they ended, requests by when they were closed, the rest by when they were made.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordCuts {
    pub login_history: Option<TimestampMs>,
    pub visitor_consents: Option<TimestampMs>,
    pub closed_requests: Option<TimestampMs>,
    /// The oldest events before it go; the newest event is always kept.
    pub audit_events: Option<TimestampMs>,
    pub disclosures: Option<TimestampMs>,
    /// Persistent RPC commands that finished before it go.
    pub rpc_calls: Option<TimestampMs>,
}

/// A session a person signed in with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    pub created_ms: TimestampMs,
    pub expires_ms: TimestampMs,
    pub revoked_ms: Option<TimestampMs>,
}

/// What an erasure destroyed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Erasure {
    /// The receipt's id.
    pub id: String,
    pub user: UserId,
    pub erased_ms: TimestampMs,
    /// Set when the person was the last administrator of their tenant: it went with them.
    pub tenant: Option<TenantId>,
    /// Counts of what went with the tenant.
    pub devices: u64,
    pub customers: u64,
    pub other_users: u64,
    /// The data keys destroyed, by name (`user:…`, `tenant:…`, `customer:…`).
    pub destroyed_keys: Vec<String>,
}

/// What [`Store::reapply_erasures`] found erased in the key store but present in the database.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reapplied {
    /// Tenants whose key is destroyed: recorded as erasures, their rows purged later.
    pub tenants: usize,
    /// Customers and people whose key is destroyed: their rows deleted now.
    pub customers: usize,
    pub users: usize,
}

/// How often a tenant's scheduled export runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportSchedule {
    Daily,
    Weekly,
}

impl ExportSchedule {
    pub fn parse(s: &str) -> Option<ExportSchedule> {
        match s {
            "daily" => Some(ExportSchedule::Daily),
            "weekly" => Some(ExportSchedule::Weekly),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ExportSchedule::Daily => "daily",
            ExportSchedule::Weekly => "weekly",
        }
    }
    pub fn period_ms(self) -> i64 {
        match self {
            ExportSchedule::Daily => 24 * 60 * 60 * 1000,
            ExportSchedule::Weekly => 7 * 24 * 60 * 60 * 1000,
        }
    }
}

/// A tenant's opt-in to scheduled exports: how often, and how many files are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TenantExportSchedule {
    pub schedule: ExportSchedule,
    pub keep: u32,
}

/// One run of a tenant's scheduled export.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantExport {
    pub id: String,
    pub tenant: TenantId,
    pub started_ms: TimestampMs,
    pub finished_ms: Option<TimestampMs>,
    /// `running`, `ok`, `failed` or `interrupted`.
    pub status: String,
    pub bytes: Option<u64>,
    pub error: Option<String>,
}

/// What an administrator suspended.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SuspensionTarget {
    Device(DeviceId),
    /// A device type (ThingsBoard's `type`) of a tenant.
    DeviceType(String),
    Tenant(TenantId),
}

/// A suspension in force: devices it covers are refused at connect and dropped if connected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suspension {
    pub target: SuspensionTarget,
    pub tenant: TenantId,
    pub reason: String,
    pub since_ms: TimestampMs,
}

/// A person's two-factor (TOTP) secret and whether a code from it was confirmed.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpState {
    pub secret: Vec<u8>,
    pub enabled: bool,
}

impl std::fmt::Debug for TotpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpState")
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// A profile to create; the key and secret are the tenant's choice, except for
/// `X509_CERTIFICATE_CHAIN`: the secret is the CA certificate in PEM and the key its
/// fingerprint, which the store sets.
#[derive(Clone)]
pub struct NewDeviceProfile {
    pub name: String,
    pub provision_type: thingsafe_core::model::ProvisionType,
    pub provision_device_key: Option<String>,
    pub provision_device_secret: Option<String>,
    /// Required for `X509_CERTIFICATE_CHAIN`, refused with any other type.
    pub x509: Option<thingsafe_core::model::X509ChainProvisioning>,
}

/// What a verified certificate chain came to (see [`Store::provision_by_certificate`]).
#[derive(Clone, Debug, PartialEq)]
pub enum CertificateProvisioning {
    /// A new device of the profile, with the certificate as its credentials.
    Created(Device),
    /// The profile's device of that name, created beforehand, now has the certificate.
    Bound(Device),
    /// Nothing changed; why, for the log.
    Refused(&'static str),
}

/// ThingsBoard's `ClaimResponse`.
#[derive(Clone, Debug, PartialEq)]
pub enum ClaimOutcome {
    /// Now assigned to the caller's customer.
    Success(Device),
    /// No open window, it expired, or the key is wrong (the window closes).
    Failure,
    /// Already assigned to a customer.
    Claimed,
}
