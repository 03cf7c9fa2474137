//! Thingsafe's HTTP API.
//!
//! - ThingsBoard's REST paths and JSON shapes for the common calls (`/api/auth/*`,
//!   `/api/device*`, `/api/customer*`, `/api/user*`), so ThingsBoard scripts and clients
//!   work unchanged; errors in ThingsBoard's body `{status, message, errorCode, timestamp}`.
//! - Our own additions: self-service sign-up and first-start setup under `/api/noauth/*`,
//!   `/healthz`, `/metrics`; the privacy policy rendered from `privacy.toml` (`/privacy`,
//!   `/api/privacy/policy*`).
//! - Served over TLS by [`serve_https`]; when TLS is required, the plain listener serves
//!   only [`redirect_to_https`] (308 to the same path over HTTPS).
//! - The web console (`console/`): pages for people, signed in with a session cookie.
//!
//! Handlers decide which *roles* may call what; which *rows* a caller reaches is decided by
//! the store from the caller's scope.

mod auth;
mod console;
mod endpoints;
mod error;
mod extract;
mod https;
mod limits;
mod oauth2;
mod routes;
mod tb;
mod two_factor;
mod ws;

use std::sync::Arc;

use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use thingsafe_store::Store;
use thingsafe_vault::Vault;

pub use auth::{AuthSettings, SETUP_TOKEN_META};
pub use endpoints::{ENDPOINTS, Endpoint};
pub use error::ApiError;
pub use https::{redirect_to_https, serve_https};
pub use limits::{AbuseLimitSettings, ClientAddr};
pub use two_factor::PendingSignIns;

/// What the HTTP layer is configured with.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    pub auth: AuthSettings,
    /// Self-service sign-up (`POST /api/noauth/signup`).
    pub signup_enabled: bool,
    /// The public base URL, used in links we hand out (activation links).
    pub public_url: String,
    /// How long key-store backups are kept (`backup.keys_keep_days`): an erasure is complete
    /// in every copy once the last key backup that may hold the destroyed key is gone.
    pub key_backup_keep_days: u32,
    /// Where backups are written (`backup.dir`): the receipt looks at the key backups there.
    pub backup_dir: std::path::PathBuf,
    /// Where tenants' scheduled exports are kept (`data/exports`), sealed with their keys.
    pub exports_dir: std::path::PathBuf,
    /// The port devices reach the MQTT listener on (the console's ready-to-paste commands).
    pub mqtt_port: u16,
    /// Attempts per client address on sign-in, sign-up and public requests.
    pub limits: AbuseLimitSettings,
    /// What devices may send, shared with the MQTT listener.
    pub rate_limits: Arc<thingsafe_core::rate_limit::DeviceRateLimits>,
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub vault: Arc<Vault>,
    pub settings: Arc<HttpSettings>,
    pub metrics: PrometheusHandle,
    /// The privacy policy in force (`privacy.toml`, published at start).
    pub policy: Arc<thingsafe_core::policy::PublishedPolicy>,
    /// Woken after an erasure: the background purge deletes the unreadable rows.
    pub purge_wanted: Arc<tokio::sync::Notify>,
    /// Outgoing mail (request receipts, verification codes, notices to people).
    pub mailer: Arc<thingsafe_mail::Mailer>,
    /// Woken when notices to recipients (Art. 19) are enqueued: the delivery job sends them.
    pub notices_wanted: Arc<tokio::sync::Notify>,
    /// Sign-ins waiting for their two-factor code.
    pub pending_sign_ins: Arc<two_factor::PendingSignIns>,
}

/// The whole HTTP API as one router.
pub fn router(state: AppState) -> Router {
    routes::router(state)
}
