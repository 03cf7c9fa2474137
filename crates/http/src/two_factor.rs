//! Two-factor sign-in with TOTP, in ThingsBoard's API: a person enables it from their
//! account (`/api/2fa/account/config/generate`, then `/api/2fa/account/config` with a code
//! from their authenticator); from then on `POST /api/auth/login` answers a short-lived
//! pre-verification token instead of a session, and
//! `POST /api/auth/2fa/verification/check?verificationCode=` with it starts the session.
//! The console's sign-in asks for the code the same way. A code works once.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use thingsafe_core::{User, now_ms};
use thingsafe_privacy::audit::{Audit, action};
use thingsafe_vault::totp;

use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::Query;
use crate::tb::JwtPair;

/// How long a pre-verification token waits for its code.
const PENDING_SECS: i64 = 5 * 60;
/// Wrong codes a pre-verification token survives.
const ATTEMPTS: u32 = 5;

struct Pending {
    user: User,
    expires_ms: i64,
    attempts_left: u32,
}

/// Sign-ins waiting for their second factor, by SHA-256 of their token (in memory: a
/// restart asks people to sign in again).
#[derive(Default)]
pub struct PendingSignIns(Mutex<HashMap<[u8; 32], Pending>>);

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl PendingSignIns {
    fn start(&self, user: &User) -> String {
        let token = thingsafe_vault::random_token(32);
        let now = now_ms();
        let mut pending = self.0.lock().expect("pending sign-ins");
        pending.retain(|_, p| p.expires_ms > now);
        pending.insert(
            digest(&token),
            Pending {
                user: user.clone(),
                expires_ms: now + PENDING_SECS * 1000,
                attempts_left: ATTEMPTS,
            },
        );
        token
    }

    fn user(&self, token: &str) -> Option<User> {
        let pending = self.0.lock().expect("pending sign-ins");
        pending
            .get(&digest(token))
            .filter(|p| p.expires_ms > now_ms())
            .map(|p| p.user.clone())
    }

    /// Counts a wrong code; false once the token has none left (it is gone).
    fn wrong_code(&self, token: &str) -> bool {
        let mut pending = self.0.lock().expect("pending sign-ins");
        let key = digest(token);
        match pending.get_mut(&key) {
            Some(p) if p.attempts_left > 1 => {
                p.attempts_left -= 1;
                true
            }
            _ => {
                pending.remove(&key);
                false
            }
        }
    }

    fn finish(&self, token: &str) {
        self.0
            .lock()
            .expect("pending sign-ins")
            .remove(&digest(token));
    }
}

/// What a correct password leads to: a session, or (with two-factor sign-in on) a
/// pre-verification token that waits for the code.
pub(crate) enum SignIn {
    Session(JwtPair),
    CodeNeeded { token: String },
}

impl SignIn {
    /// ThingsBoard's login answer: the session's tokens, or the pre-verification token
    /// (`scope: PRE_VERIFICATION_TOKEN`, no refresh token).
    pub(crate) fn into_json(self) -> Value {
        match self {
            SignIn::Session(pair) => json!(pair),
            SignIn::CodeNeeded { token } => json!({
                "token": token,
                "refreshToken": null,
                "scope": "PRE_VERIFICATION_TOKEN",
            }),
        }
    }
}

pub(crate) async fn after_password(state: &AppState, user: &User) -> ApiResult<SignIn> {
    match state.store.totp(user.id).await? {
        Some(t) if t.enabled => Ok(SignIn::CodeNeeded {
            token: state.pending_sign_ins.start(user),
        }),
        _ => Ok(SignIn::Session(
            crate::auth::start_session(state, user).await?,
        )),
    }
}

/// Checks the code for a pending sign-in and starts the session.
pub(crate) async fn verify(state: &AppState, token: &str, code: &str) -> ApiResult<JwtPair> {
    let expired = || {
        ApiError::unauthorized(
            "This sign-in waited too long for its code, or had too many wrong ones: sign in again",
        )
    };
    let user = state.pending_sign_ins.user(token).ok_or_else(expired)?;
    let secret = match state.store.totp(user.id).await? {
        Some(t) if t.enabled => t.secret,
        _ => return Err(expired()),
    };
    let now_secs = (now_ms() / 1000) as u64;
    let step = totp::matching_step(&secret, code, now_secs);
    let fresh = match step {
        Some(step) => state.store.use_totp_step(user.id, step).await?,
        None => false,
    };
    if !fresh {
        tracing::warn!(user = %user.id, "a wrong two-factor code");
        Audit::new(action::TWO_FACTOR_FAILED)
            .by(&user)
            .record(state.store.as_ref())
            .await;
        if !state.pending_sign_ins.wrong_code(token) {
            return Err(expired());
        }
        return Err(ApiError::bad_request(
            "That code is not right (or was used already): enter the 6-digit code your authenticator app shows now",
        ));
    }
    state.pending_sign_ins.finish(token);
    crate::auth::start_session(state, &user).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProviderQuery {
    provider_type: Option<String>,
    verification_code: Option<String>,
}

fn only_totp(q: &ProviderQuery) -> ApiResult<()> {
    match q.provider_type.as_deref() {
        None | Some("TOTP") => Ok(()),
        Some(other) => Err(ApiError::bad_request(format!(
            "two-factor provider {other:?} is not offered here: use TOTP (an authenticator app)"
        ))),
    }
}

fn settings_view(enabled: bool) -> Value {
    if enabled {
        json!({"configs": {"TOTP": {"providerType": "TOTP", "useByDefault": true}}})
    } else {
        json!({"configs": {}})
    }
}

/// `GET /api/2fa/account/settings`: whether the caller signs in with a second factor.
pub(crate) async fn account_settings(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<axum::Json<Value>> {
    let enabled = state
        .store
        .totp(principal.user.id)
        .await?
        .is_some_and(|t| t.enabled);
    Ok(axum::Json(settings_view(enabled)))
}

/// `POST /api/2fa/account/config/generate?providerType=TOTP`: a new secret to put into an
/// authenticator app; two-factor sign-in starts only once a code from it is confirmed.
pub(crate) async fn generate(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<ProviderQuery>,
) -> ApiResult<axum::Json<Value>> {
    only_totp(&q)?;
    let user = &principal.user;
    if state.store.totp(user.id).await?.is_some_and(|t| t.enabled) {
        return Err(ApiError::bad_request(
            "Two-factor sign-in is on already: turn it off first to change the authenticator",
        ));
    }
    let secret = totp::generate_secret();
    state.store.set_totp(user.id, Some(&secret), false).await?;
    Ok(axum::Json(json!({
        "providerType": "TOTP",
        "authUrl": totp::otpauth_url(&secret, &user.email),
        "secret": totp::secret_base32(&secret),
    })))
}

/// `POST /api/2fa/account/config?verificationCode=123456`: confirms the authenticator with
/// a code from it and turns two-factor sign-in on.
pub(crate) async fn enable(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<ProviderQuery>,
) -> ApiResult<axum::Json<Value>> {
    only_totp(&q)?;
    let user = principal.user.id;
    let Some(pending) = state.store.totp(user).await? else {
        return Err(ApiError::bad_request(
            "No authenticator to confirm: generate one first (POST /api/2fa/account/config/generate)",
        ));
    };
    let code = q.verification_code.as_deref().unwrap_or("");
    let step =
        totp::matching_step(&pending.secret, code, (now_ms() / 1000) as u64).ok_or_else(|| {
            ApiError::bad_request(
                "verificationCode is not the code the authenticator shows now: enter its 6 digits",
            )
        })?;
    state
        .store
        .set_totp(user, Some(&pending.secret), true)
        .await?;
    state.store.use_totp_step(user, step).await?;
    tracing::info!(user = %user, "two-factor sign-in turned on");
    Audit::new(action::TWO_FACTOR_ON)
        .by(&principal.user)
        .record(state.store.as_ref())
        .await;
    Ok(axum::Json(settings_view(true)))
}

/// `DELETE /api/2fa/account/config?providerType=TOTP`: turns two-factor sign-in off.
pub(crate) async fn disable(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<ProviderQuery>,
) -> ApiResult<axum::Json<Value>> {
    only_totp(&q)?;
    state.store.set_totp(principal.user.id, None, false).await?;
    tracing::info!(user = %principal.user.id, "two-factor sign-in turned off");
    Audit::new(action::TWO_FACTOR_OFF)
        .by(&principal.user)
        .record(state.store.as_ref())
        .await;
    Ok(axum::Json(settings_view(false)))
}

/// `POST /api/auth/2fa/verification/check?verificationCode=`, with the pre-verification
/// token as the bearer: the session.
pub(crate) async fn check(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Query(q): Query<ProviderQuery>,
) -> ApiResult<axum::Json<JwtPair>> {
    only_totp(&q)?;
    let token = headers
        .get("x-authorization")
        .or_else(|| headers.get(axum::http::header::AUTHORIZATION))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::unauthorized(
                "Send the pre-verification token from the sign-in as X-Authorization: Bearer <token>",
            )
        })?;
    let code = q.verification_code.as_deref().unwrap_or("");
    Ok(axum::Json(verify(&state, token, code).await?))
}
