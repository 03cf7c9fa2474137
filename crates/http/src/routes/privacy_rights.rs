//! A person's privacy rights, self-service: consents (`/api/privacy/me/consents`), cookie
//! choices of visitors (`/api/privacy/cookies`, `/.well-known/gpc.json`), one-click
//! unsubscribe, the personal data export (`GET /api/privacy/me/export`) and erasure
//! (`DELETE /api/privacy/me`). The rules are the privacy engine's (`thingsafe-privacy`).

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use thingsafe_core::{Owner, now_ms};
use thingsafe_privacy::audit::{Audit, action};
use thingsafe_privacy::consent::{self, Signal};
use thingsafe_privacy::export::{ExportError, Sink};
use thingsafe_privacy::{receipt, retention, unsubscribe};
use thingsafe_store::{ConsentRecord, ConsentSubject};

use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query};

/// The necessary cookie that remembers a visitor's cookie choice (a random id; the choice
/// itself is in the ledger).
pub(crate) const CONSENT_COOKIE: &str = "ts_cookie_consent";
/// Cookie choices are asked again after this long.
const CONSENT_COOKIE_MAX_AGE_SECS: u64 = 180 * 24 * 60 * 60;

fn signal(headers: &HeaderMap) -> Option<Signal> {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    Signal::from_headers(value("sec-gpc"), value("dnt"))
}

fn bad(message: String) -> ApiError {
    ApiError::bad_request(message)
}

/// `/.well-known/gpc.json`: this server honours Global Privacy Control.
pub(super) async fn gpc() -> impl IntoResponse {
    (
        [(CACHE_CONTROL, "max-age=86400")],
        axum::Json(json!({"gpc": true, "lastUpdate": "2026-11-23"})),
    )
}

// --- consents of a signed-in person ----------------------------------------------------

fn unsubscribe_url(state: &AppState, user: thingsafe_core::UserId) -> String {
    format!(
        "{}/api/privacy/unsubscribe?token={}",
        state.settings.public_url.trim_end_matches('/'),
        unsubscribe::token(&state.vault, user)
    )
}

async fn consents_view(state: &AppState, principal: &Principal) -> ApiResult<Value> {
    let history = state
        .store
        .consent_history(ConsentSubject::User(principal.user.id))
        .await?;
    let purposes = consent::person_purposes(&state.policy.policy);
    let current = consent::current(&purposes, &history);
    let restricted = state.store.restricted_since(principal.user.id).await?;
    Ok(json!({
        "marketingAllowed": consent::marketing_allowed(&current, restricted.is_some()),
        "current": current,
        "history": history,
        "unsubscribeUrl": unsubscribe_url(state, principal.user.id),
    }))
}

pub(super) async fn my_consents(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(consents_view(&state, &principal).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub(super) struct ConsentChange {
    purposes: BTreeMap<String, bool>,
    /// Needed to give marketing consent again after objecting to marketing: a form's
    /// default must not undo an objection.
    #[serde(default)]
    withdraw_objection: bool,
}

/// Gives or withdraws consents: `{"purposes": {"marketing": false}}`. One call each way.
pub(super) async fn change_my_consents(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Json(change): Json<ConsentChange>,
) -> ApiResult<axum::Json<Value>> {
    let purposes = consent::person_purposes(&state.policy.policy);
    consent::check_choice(&purposes, &change.purposes).map_err(bad)?;
    let subject = ConsentSubject::User(principal.user.id);
    let history = state.store.consent_history(subject).await?;
    let current = consent::current(&purposes, &history);
    if !change.withdraw_objection {
        consent::check_objection(&current, &change.purposes).map_err(bad)?;
    }
    let signal = signal(&headers);
    let entries = consent::changes(
        &current,
        &change.purposes,
        "api",
        signal,
        state.policy.version.version,
        now_ms(),
    );
    let changed: Vec<Value> = entries
        .iter()
        .map(|e| json!({"purpose": e.purpose, "granted": e.granted, "method": e.method}))
        .collect();
    state.store.record_consents(subject, entries).await?;
    if !changed.is_empty() {
        Audit::new(action::CONSENT_CHANGE)
            .by(&principal.user)
            .target("user", principal.user.id)
            .personal(Owner::User(principal.user.id), json!({"changes": changed}))
            .record(state.store.as_ref())
            .await;
    }
    let mut view = consents_view(&state, &principal).await?;
    view["signal"] = json!(signal);
    Ok(axum::Json(view))
}

/// The consents given at sign-up, for the same transaction as the account.
pub(super) fn sign_up_consents(
    state: &AppState,
    headers: &HeaderMap,
    marketing: Option<bool>,
) -> Vec<ConsentRecord> {
    let purposes = consent::person_purposes(&state.policy.policy);
    let choice: BTreeMap<String, bool> = purposes
        .iter()
        .filter(|(p, _)| p == "marketing")
        .map(|(p, _)| (p.clone(), marketing.unwrap_or(false)))
        .collect();
    let current = consent::current(&purposes, &[]);
    consent::changes(
        &current,
        &choice,
        "signup",
        signal(headers),
        state.policy.version.version,
        now_ms(),
    )
}

#[derive(Deserialize)]
pub(super) struct UnsubscribeQuery {
    token: String,
}

/// One click, no sign-in: withdraws marketing consent for the person the link was made for.
pub(super) async fn unsubscribe(
    State(state): State<AppState>,
    Query(query): Query<UnsubscribeQuery>,
) -> ApiResult<Response> {
    let Some(user) = unsubscribe::verify(&state.vault, &query.token) else {
        return Ok(crate::console::unsubscribe_page(Some(
            "This unsubscribe link is not valid: it may have been cut short. Copy the whole link from the message, or sign in and change your consents.".into(),
        )));
    };
    let record = ConsentRecord {
        purpose: "marketing".into(),
        granted: false,
        method: "unsubscribe_link".into(),
        policy_version: Some(state.policy.version.version),
        at_ms: now_ms(),
    };
    match state
        .store
        .record_consents(ConsentSubject::User(user), vec![record])
        .await
    {
        Ok(()) => {
            Audit::new(action::CONSENT_CHANGE)
                .actor(user)
                .target("user", user)
                .personal(
                    Owner::User(user),
                    json!({"changes": [{"purpose": "marketing", "granted": false, "method": "unsubscribe_link"}]}),
                )
                .record(state.store.as_ref())
                .await;
        }
        // An erased person gets nothing anyway; say the same.
        Err(thingsafe_store::StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(crate::console::unsubscribe_page(None))
}

// --- cookie choices of visitors ---------------------------------------------------------

fn visitor(headers: &HeaderMap) -> Option<uuid::Uuid> {
    crate::auth::cookie(headers, CONSENT_COOKIE).and_then(|v| uuid::Uuid::parse_str(v).ok())
}

async fn cookie_view(
    state: &AppState,
    visitor: Option<uuid::Uuid>,
    signal: Option<Signal>,
) -> ApiResult<Value> {
    let purposes = consent::cookie_purposes(&state.policy.policy);
    let history = match visitor {
        Some(v) => {
            state
                .store
                .consent_history(ConsentSubject::Visitor(v))
                .await?
        }
        None => Vec::new(),
    };
    let current = consent::current(&purposes, &history);
    let categories: Vec<Value> = state
        .policy
        .policy
        .cookies
        .iter()
        .map(|c| {
            json!({
                "name": c.key(),
                "label": c.label(),
                "description": c.description(),
                "necessary": *c == thingsafe_core::policy::CookieCategory::Necessary,
            })
        })
        .collect();
    let choice: Option<BTreeMap<String, bool>> = (!history.is_empty()).then(|| {
        current
            .iter()
            .map(|c| {
                (
                    c.purpose
                        .trim_start_matches(consent::COOKIE_PREFIX)
                        .to_string(),
                    c.granted,
                )
            })
            .collect()
    });
    Ok(json!({
        "categories": categories,
        "choice": choice,
        "signal": signal,
        "allowed": consent::allowed_cookies(&state.policy.policy, &current)
            .iter().map(|c| c.key()).collect::<Vec<_>>(),
    }))
}

pub(super) async fn cookies(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(
        cookie_view(&state, visitor(&headers), signal(&headers)).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CookieChoice {
    cookies: BTreeMap<String, bool>,
}

/// Records a visitor's cookie choice: `{"cookies": {"functionality": true}}`. A GPC or DNT
/// signal turns every category but the necessary ones off, whatever the choice.
pub(super) async fn choose_cookies(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(choice): Json<CookieChoice>,
) -> ApiResult<Response> {
    let purposes = consent::cookie_purposes(&state.policy.policy);
    let mut ledger_choice = BTreeMap::new();
    for (category, granted) in choice.cookies {
        if category == "necessary" {
            if !granted {
                return Err(bad(
                    "\"necessary\" cookies cannot be turned off: they keep you signed in and the service secure, and need no consent".into(),
                ));
            }
            continue;
        }
        ledger_choice.insert(format!("{}{category}", consent::COOKIE_PREFIX), granted);
    }
    consent::check_choice(&purposes, &ledger_choice)
        .map_err(|e| bad(e.replace(consent::COOKIE_PREFIX, "")))?;
    let (visitor, new) = match visitor(&headers) {
        Some(v) => (v, false),
        None => (uuid::Uuid::new_v4(), true),
    };
    let subject = ConsentSubject::Visitor(visitor);
    let history = if new {
        Vec::new()
    } else {
        state.store.consent_history(subject).await?
    };
    let current = consent::current(&purposes, &history);
    let signal = signal(&headers);
    // Every category is recorded on the first choice, so "rejected" is on the ledger too.
    for c in &current {
        ledger_choice.entry(c.purpose.clone()).or_insert(false);
    }
    let entries = consent::changes(
        &current,
        &ledger_choice,
        "form",
        signal,
        state.policy.version.version,
        now_ms(),
    );
    state.store.record_consents(subject, entries).await?;
    let view = cookie_view(&state, Some(visitor), signal).await?;
    let cookie = format!(
        "{CONSENT_COOKIE}={visitor}; Path=/; Max-Age={CONSENT_COOKIE_MAX_AGE_SECS}; HttpOnly; SameSite=Lax"
    );
    Ok(([(SET_COOKIE, cookie)], axum::Json(view)).into_response())
}

// --- access and portability -------------------------------------------------------------

pub(super) struct ChannelSink(tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>);

impl Sink for ChannelSink {
    async fn send(&mut self, bytes: Vec<u8>) -> bool {
        self.0.send(Ok(bytes)).await.is_ok()
    }
}

/// A zip download named `filename`, streamed while `produce` writes it. A failure midway
/// breaks the download rather than ending it with a zip that looks whole.
pub(super) fn zip_download<F, Fut>(filename: &str, what: &'static str, produce: F) -> Response
where
    F: FnOnce(ChannelSink) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), ExportError>> + Send,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let failed = tx.clone();
    tokio::spawn(async move {
        match produce(ChannelSink(tx)).await {
            Ok(()) | Err(ExportError::Gone) => {}
            Err(e) => {
                tracing::error!(error = ?e, "{what} failed midway");
                let _ = failed
                    .send(Err(std::io::Error::other(format!("{what} failed midway"))))
                    .await;
            }
        }
    });
    zip_response(filename, rx)
}

/// A zip attachment named `filename` whose bytes arrive on `rx` (an `Err` breaks the
/// download).
pub(super) fn zip_response(
    filename: &str,
    rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> Response {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (
        StatusCode::OK,
        [
            (CONTENT_TYPE, "application/zip".to_string()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
            (CACHE_CONTROL, "no-store".to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// The caller's data as a zip, streamed while it is produced.
pub(super) async fn export(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<Response> {
    Audit::new(action::EXPORT)
        .by(&principal.user)
        .target("user", principal.user.id)
        .record(state.store.as_ref())
        .await;
    let user = principal.user.clone();
    let date = time::OffsetDateTime::now_utc().date();
    Ok(zip_download(
        &format!("thingsafe-my-data-{date}.zip"),
        "the personal data export",
        move |sink| async move {
            thingsafe_privacy::export::export_person(
                state.store.as_ref(),
                &state.policy,
                &user,
                sink,
            )
            .await
        },
    ))
}

// --- erasure ------------------------------------------------------------------------------

#[derive(Deserialize)]
pub(super) struct ErasureRequest {
    password: Option<String>,
}

/// Erases the caller's account after they re-enter their password; answers the receipt.
pub(super) async fn erase_me(
    State(state): State<AppState>,
    principal: Principal,
    Json(request): Json<ErasureRequest>,
) -> ApiResult<axum::Json<Value>> {
    let password = request.password.unwrap_or_default();
    if password.is_empty() {
        return Err(ApiError::bad_request(
            "Enter your password to confirm that you want your account and its data erased (\"password\")",
        ));
    }
    let record = state.store.login_record(&principal.user.email).await?;
    let stored = record
        .filter(|r| r.user.id == principal.user.id)
        .and_then(|r| r.password_hash);
    if !super::accounts::verify_password(password, stored).await? {
        return Err(ApiError::bad_request(
            "The password is not right: your account has not been erased",
        ));
    }
    let erasure = state.store.erase_account(principal.user.id).await?;
    // Art. 19: the processors that received the person's data are told (by pseudonymous id).
    super::privacy_requests::tell_recipients(
        &state,
        principal.user.id,
        thingsafe_privacy::recipients::Event::Erasure,
        None,
    )
    .await?;
    let keep = state.settings.key_backup_keep_days;
    let expires = match thingsafe_vault::list_backups(&state.settings.backup_dir) {
        Ok(files) => thingsafe_vault::key_backups_expire_at(keep, &files, erasure.erased_ms),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the key backups: the receipt states the longest window");
            receipt::key_backups_expire_bound(erasure.erased_ms, keep)
        }
    };
    let receipt = receipt::receipt(&erasure, keep, expires);
    state
        .store
        .save_erasure_receipt(&erasure.id, &receipt.to_string())
        .await?;
    // Recorded after the keys are gone: it holds nothing of the person, only the receipt.
    Audit::new(action::ERASURE)
        .by(&principal.user)
        .target("user", principal.user.id)
        .details(json!({
            "receipt": erasure.id,
            "tenantErased": erasure.tenant.is_some(),
            "keysDestroyed": erasure.destroyed_keys.len(),
        }))
        .record(state.store.as_ref())
        .await;
    tracing::info!(
        receipt = %erasure.id,
        tenant_erased = erasure.tenant.is_some(),
        keys = erasure.destroyed_keys.len(),
        "an account was erased at its owner's request"
    );
    state.purge_wanted.notify_one();
    Ok(axum::Json(receipt))
}

// --- retention ---------------------------------------------------------------------------

async fn retention_view(state: &AppState, principal: &Principal) -> ApiResult<Value> {
    let scope = principal.scope();
    let tenant = scope.tenant()?;
    let policy = &state.policy.policy;
    let days = state.store.tenant_retention(&scope).await?;
    let sweeps = state.store.sweeps(Some(tenant), 10).await?;
    Ok(json!({
        "policyRetention": policy
            .categories
            .get(retention::TELEMETRY_CATEGORY)
            .map(|c| c.retention.to_string()),
        "policyHours": retention::policy_hours(policy),
        "telemetryDays": days,
        "records": policy
            .records
            .iter()
            .map(|(name, r)| (name.clone(), r.retention.to_string()))
            .collect::<std::collections::BTreeMap<_, _>>(),
        "lastSweeps": sweeps,
    }))
}

/// The tenant's telemetry retention: the policy's, and the tenant's own shorter one.
pub(super) async fn get_retention(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(retention_view(&state, &principal).await?))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct RetentionChange {
    telemetry_days: Option<u32>,
}

/// Sets (or with `null` clears) the tenant's own telemetry retention.
pub(super) async fn set_retention(
    State(state): State<AppState>,
    principal: Principal,
    Json(change): Json<RetentionChange>,
) -> ApiResult<axum::Json<Value>> {
    if principal.user.authority != thingsafe_core::Authority::TenantAdmin {
        return Err(ApiError::forbidden(
            "Only a tenant administrator sets how long the tenant's telemetry is kept",
        ));
    }
    if let Some(days) = change.telemetry_days {
        retention::check_tenant_days(&state.policy.policy, days).map_err(bad)?;
    }
    state
        .store
        .set_tenant_retention(&principal.scope(), change.telemetry_days)
        .await?;
    Ok(axum::Json(retention_view(&state, &principal).await?))
}

/// Runs the retention sweep now: the caller's tenant, or every tenant for the system
/// administrator.
pub(super) async fn sweep_now(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<axum::Json<Value>> {
    let only = match principal.user.authority {
        thingsafe_core::Authority::SysAdmin => None,
        thingsafe_core::Authority::TenantAdmin => Some(principal.scope().tenant()?),
        thingsafe_core::Authority::CustomerUser => {
            return Err(ApiError::forbidden(
                "Only administrators run the retention sweep",
            ));
        }
    };
    let sweep = retention::sweep(state.store.as_ref(), &state.policy.policy, only).await;
    Ok(axum::Json(json!(sweep)))
}
