//! Password reset by emailed link, ThingsBoard's API: `POST /api/noauth/resetPasswordByEmail`
//! mails a single-use link valid for [`RESET_VALID_MINUTES`] (the answer is the same whether
//! or not the address has an account); `POST /api/noauth/resetPassword` sets the new
//! password with it and signs the person in (asking for the two-factor code first when it
//! is on); every other session of theirs ends.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use thingsafe_core::{now_ms, validate};

use super::accounts::hash_password;
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;

/// How long a reset link works.
pub(crate) const RESET_VALID_MINUTES: i64 = 30;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ResetByEmail {
    email: String,
}

/// Mails a reset link to `email` if it belongs to an active account. Failures to send are
/// logged, never told: the answer must not say whether the address has an account.
pub(crate) async fn send_link(state: &AppState, email: &str) -> ApiResult<()> {
    let email = email.trim();
    if validate::email(email).is_err() {
        return Err(ApiError::bad_request(format!(
            "{email:?} is not an email address"
        )));
    }
    let token = thingsafe_vault::random_token(32);
    let expires = now_ms() + RESET_VALID_MINUTES * 60_000;
    let Some(user) = state
        .store
        .start_password_reset(email, &token, expires)
        .await?
    else {
        tracing::info!("a password reset was asked for an address without an active account");
        return Ok(());
    };
    let link = format!(
        "{}/password-reset?token={token}",
        state.settings.public_url.trim_end_matches('/')
    );
    let text = format!(
        "Someone (we hope you) asked to reset the password of your Thingsafe account.\n\n\
         Choose a new password here within {RESET_VALID_MINUTES} minutes:\n\n{link}\n\n\
         The link works once. If you did not ask, ignore this message: your password stays as it is.\n"
    );
    if let Err(e) = state
        .mailer
        .send(&user.email, "Reset your Thingsafe password", &text)
        .await
    {
        tracing::error!(user = %user.id, error = %e, "the password reset message was not sent");
    }
    tracing::info!(user = %user.id, "password reset link sent");
    Ok(())
}

pub(super) async fn reset_by_email(
    State(state): State<AppState>,
    Json(req): Json<ResetByEmail>,
) -> ApiResult<StatusCode> {
    send_link(&state, &req.email).await?;
    Ok(StatusCode::OK)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ResetPassword {
    reset_token: String,
    password: String,
}

/// Sets the new password with the link's token; the answer signs the person in (or, with
/// two-factor sign-in on, asks for the code: a mailed link is not a second factor).
pub(crate) async fn complete(
    state: &AppState,
    token: &str,
    password: String,
) -> ApiResult<crate::two_factor::SignIn> {
    let invalid = || {
        ApiError::not_found(
            "This password reset link is not valid: it was used already, has expired, or was cut short. Ask for a new one",
        )
    };
    let user = state
        .store
        .password_reset_user(token)
        .await?
        .ok_or_else(invalid)?;
    validate::new_password(&password, &user.email)?;
    let hash = hash_password(password).await?;
    let user = state
        .store
        .reset_password(token, &hash)
        .await
        .map_err(|e| match e {
            thingsafe_store::StoreError::NotFound(_) => invalid(),
            other => other.into(),
        })?;
    tracing::info!(user = %user.id, "password reset");
    thingsafe_privacy::audit::Audit::new(thingsafe_privacy::audit::action::PASSWORD_RESET)
        .by(&user)
        .record(state.store.as_ref())
        .await;
    crate::two_factor::after_password(state, &user).await
}

pub(super) async fn reset_password(
    State(state): State<AppState>,
    Json(req): Json<ResetPassword>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let outcome = complete(&state, &req.reset_token, req.password).await?;
    Ok(axum::Json(outcome.into_json()))
}
