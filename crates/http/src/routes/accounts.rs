//! Sign-in, sign-up, first-start setup, users.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};
use thingsafe_core::{Authority, CustomerId, Owner, Tenant, User, UserId, now_ms, validate};
use thingsafe_privacy::audit::{Audit, action};
use thingsafe_store::{LoginFailure, NewUser};

use crate::AppState;
use crate::auth::{self, Principal, SETUP_TOKEN_META};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::{Json, Query, parse_id};
use crate::tb::{self, EntityIdIn, JwtPair, PageParams};

pub(super) async fn hash_password(password: String) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || thingsafe_vault::password::hash(&password))
        .await
        .map_err(|e| ApiError::internal(format!("password hashing failed: {e}")))
}

pub(super) async fn verify_password(password: String, stored: Option<String>) -> ApiResult<bool> {
    tokio::task::spawn_blocking(move || match stored {
        Some(stored) => thingsafe_vault::password::verify(&password, &stored),
        None => {
            thingsafe_vault::password::burn_verification_time(&password);
            false
        }
    })
    .await
    .map_err(|e| ApiError::internal(format!("password check failed: {e}")))
}

fn bad_credentials() -> ApiError {
    ApiError::unauthorized("Invalid username or password")
}

fn locked(until_ms: i64) -> ApiError {
    let minutes = ((until_ms - now_ms()).max(0) + 59_999) / 60_000;
    ApiError::unauthorized(format!(
        "User account is locked due to security policy: too many failed sign-ins. Try again in {minutes} minute(s)."
    ))
}

#[derive(Deserialize)]
pub(super) struct LoginRequest {
    username: String,
    password: String,
}

/// ThingsBoard's login: a session, or, for a person with two-factor sign-in, a
/// pre-verification token (`scope: PRE_VERIFICATION_TOKEN`, no refresh token) to send
/// with the code to `/api/auth/2fa/verification/check`.
pub(super) async fn login(
    State(state): State<AppState>,
    Json(req): Json<LoginRequest>,
) -> ApiResult<axum::Json<Value>> {
    let user = check_credentials(&state, &req.username, req.password).await?;
    Ok(axum::Json(
        crate::two_factor::after_password(&state, &user)
            .await?
            .into_json(),
    ))
}

/// The user this email and password sign in; failures count towards the lockout.
pub(crate) async fn check_credentials(
    state: &AppState,
    username: &str,
    password: String,
) -> ApiResult<User> {
    let record = state.store.login_record(username).await?;
    let Some(record) = record else {
        verify_password(password, None).await?;
        // What was typed may be someone's address: it is not kept.
        Audit::new(action::LOGIN_FAILED)
            .details(json!({"reason": "unknown account"}))
            .record(state.store.as_ref())
            .await;
        return Err(bad_credentials());
    };
    let failed = |reason: &str| {
        Audit::new(action::LOGIN_FAILED)
            .tenant(record.user.tenant_id)
            .target("user", record.user.id)
            .details(json!({"reason": reason}))
            .personal(
                Owner::User(record.user.id),
                json!({"email": record.user.email}),
            )
    };
    if let Some(until) = record.locked_until_ms.filter(|&u| u > now_ms()) {
        failed("locked").record(state.store.as_ref()).await;
        return Err(locked(until));
    }
    if record.password_hash.is_none() {
        failed("not activated").record(state.store.as_ref()).await;
        return Err(ApiError::unauthorized(
            "User account is not active: set a password with the activation link first",
        ));
    }
    if !verify_password(password, record.password_hash).await? {
        let settings = &state.settings.auth;
        let outcome = state
            .store
            .record_login_failure(
                record.user.id,
                settings.max_failed_logins,
                settings.lockout_secs * 1000,
            )
            .await?;
        tracing::warn!(user = %record.user.id, ?outcome, "failed sign-in");
        let reason = match outcome {
            LoginFailure::Locked { .. } => "wrong password; account locked",
            LoginFailure::Counted { .. } => "wrong password",
        };
        failed(reason).record(state.store.as_ref()).await;
        return Err(match outcome {
            LoginFailure::Locked { until_ms } => locked(until_ms),
            LoginFailure::Counted { .. } => bad_credentials(),
        });
    }
    if record.failed_logins > 0 || record.locked_until_ms.is_some() {
        state.store.record_login_success(record.user.id).await?;
    }
    Audit::new(action::LOGIN)
        .by(&record.user)
        .personal(
            Owner::User(record.user.id),
            json!({"email": record.user.email}),
        )
        .record(state.store.as_ref())
        .await;
    Ok(record.user)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RefreshRequest {
    refresh_token: String,
}

pub(super) async fn refresh(
    State(state): State<AppState>,
    Json(req): Json<RefreshRequest>,
) -> ApiResult<axum::Json<JwtPair>> {
    let new = thingsafe_vault::random_token(32);
    let expires = now_ms() + state.settings.auth.refresh_token_ttl_secs * 1000;
    let (session, user) = state
        .store
        .rotate_refresh_token(&req.refresh_token, &new, expires)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::JwtTokenExpired,
                "Invalid or expired refresh token: sign in again",
            )
        })?;
    Ok(axum::Json(JwtPair {
        token: auth::access_token(&state, &user, session),
        refresh_token: new,
    }))
}

pub(super) async fn logout(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<StatusCode> {
    if let Some(session) = principal.session() {
        state.store.revoke_session(session).await?;
    }
    Ok(StatusCode::OK)
}

pub(super) async fn current_user(principal: Principal) -> axum::Json<Value> {
    axum::Json(tb::user(&principal.user))
}

/// The personal details a new account gives; the privacy fields (policy acceptance,
/// consents) are accepted here and handled by the privacy engine.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SignUpRequest {
    pub email: String,
    pub password: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub birth_date: Option<String>,
    /// The organisation's name; the tenant's title. Defaults to the person's name.
    pub organization: Option<String>,
    /// The version of the privacy policy the person read and accepted: the current one.
    pub accepted_policy_version: Option<u32>,
    /// Opt-in to marketing (off unless given).
    pub marketing: Option<bool>,
}

fn optional_name(field: &'static str, raw: Option<String>) -> ApiResult<Option<String>> {
    raw.filter(|s| !s.trim().is_empty())
        .map(|s| validate::name(field, &s, 255))
        .transpose()
        .map_err(ApiError::from)
}

fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

pub(super) async fn sign_up(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Json(req): Json<SignUpRequest>,
) -> ApiResult<impl IntoResponse> {
    let (tenant, user) = register(&state, &headers, req).await?;
    let pair = auth::start_session(&state, &user).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({
            "token": pair.token,
            "refreshToken": pair.refresh_token,
            "userId": tb::entity_id("USER", user.id.as_uuid()),
            "tenantId": tb::entity_id("TENANT", tenant.id.as_uuid()),
        })),
    ))
}

/// Creates a tenant and its first administrator from a sign-up, after the policy's gates;
/// `headers` carry the browser's privacy signals (GPC, DNT).
pub(crate) async fn register(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    req: SignUpRequest,
) -> ApiResult<(Tenant, User)> {
    if !state.settings.signup_enabled {
        return Err(ApiError::forbidden(
            "Self-service sign-up is turned off on this server (signup.enabled = false)",
        ));
    }
    let email = validate::email(&req.email)?;
    validate::new_password(&req.password, &email)?;
    let first_name = optional_name("firstName", req.first_name)?;
    let last_name = optional_name("lastName", req.last_name)?;
    let birth_raw = req.birth_date.ok_or_else(|| {
        ApiError::from(validate::Invalid::new(
            "birthDate",
            "a birth date (YYYY-MM-DD) is required",
        ))
    })?;
    let birth_date = validate::birth_date(&birth_raw, today())?;
    // The privacy policy's gates, before anything about the person is stored.
    super::privacy::check_age(state, birth_date, today())?;
    let policy_version = super::privacy::check_acceptance(state, req.accepted_policy_version)?;
    let title = match optional_name("organization", req.organization)? {
        Some(org) => org,
        None => [first_name.as_deref(), last_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" "),
    };
    let title = if title.is_empty() {
        email.clone()
    } else {
        title
    };
    let password_hash = hash_password(req.password).await?;
    let consents = super::privacy_rights::sign_up_consents(state, headers, req.marketing);
    let (tenant, user) = state
        .store
        .sign_up_with_consents(
            &title,
            NewUser {
                email,
                password_hash: Some(password_hash),
                authority: Authority::TenantAdmin,
                customer_id: None,
                first_name,
                last_name,
                birth_date: Some(birth_date),
            },
            policy_version,
            consents,
        )
        .await?;
    tracing::info!(tenant = %tenant.id, user = %user.id, policy_version, "new tenant signed up");
    Audit::new(action::SIGN_UP)
        .by(&user)
        .target("tenant", tenant.id)
        .details(json!({"policyVersion": policy_version}))
        .personal(Owner::User(user.id), json!({"email": user.email}))
        .record(state.store.as_ref())
        .await;
    Ok((tenant, user))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SetupRequest {
    setup_token: String,
    email: String,
    password: String,
    first_name: Option<String>,
    last_name: Option<String>,
}

/// Creates the system administrator with the one-time token printed at first start.
pub(super) async fn setup(
    State(state): State<AppState>,
    Json(req): Json<SetupRequest>,
) -> ApiResult<axum::Json<JwtPair>> {
    let expected = state.store.meta(SETUP_TOKEN_META).await?;
    let given = state
        .vault
        .blind_index("setup.token", req.setup_token.as_bytes());
    if state.store.sysadmin_exists().await? || expected.as_deref() != Some(given.as_slice()) {
        return Err(ApiError::unauthorized(
            "Invalid setup token (it is printed once, at the first start; a system administrator may already exist)",
        ));
    }
    let email = validate::email(&req.email)?;
    validate::new_password(&req.password, &email)?;
    let user = state
        .store
        .create_sysadmin(NewUser {
            email,
            password_hash: Some(hash_password(req.password).await?),
            authority: Authority::SysAdmin,
            customer_id: None,
            first_name: optional_name("firstName", req.first_name)?,
            last_name: optional_name("lastName", req.last_name)?,
            birth_date: None,
        })
        .await?;
    state.store.set_meta(SETUP_TOKEN_META, None).await?;
    tracing::info!(user = %user.id, "system administrator created with the setup token");
    Audit::new(action::USER_CREATE)
        .by(&user)
        .target("user", user.id)
        .details(json!({"authority": user.authority.as_str(), "via": "setup token"}))
        .record(state.store.as_ref())
        .await;
    Ok(axum::Json(auth::start_session(&state, &user).await?))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ActivateRequest {
    activate_token: String,
    password: String,
}

pub(super) async fn activate(
    State(state): State<AppState>,
    Json(req): Json<ActivateRequest>,
) -> ApiResult<axum::Json<JwtPair>> {
    let invalid = || ApiError::not_found("Invalid or already used activation token");
    let pending = state
        .store
        .user_by_activation_token(&req.activate_token)
        .await?
        .ok_or_else(invalid)?;
    validate::new_password(&req.password, &pending.email)?;
    let hash = hash_password(req.password).await?;
    let user = state
        .store
        .activate_user(&req.activate_token, &hash)
        .await
        .map_err(|e| match e {
            thingsafe_store::StoreError::NotFound(_) => invalid(),
            other => other.into(),
        })?;
    Ok(axum::Json(auth::start_session(&state, &user).await?))
}

pub(super) async fn tenants(
    State(state): State<AppState>,
    principal: Principal,
    Query(page): Query<PageParams>,
) -> ApiResult<axum::Json<Value>> {
    principal.require(&[Authority::SysAdmin])?;
    let page = state
        .store
        .tenants(&principal.scope(), &page.request()?)
        .await?;
    Ok(axum::Json(tb::page(page, tb::tenant)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreateUserRequest {
    email: String,
    authority: String,
    customer_id: Option<EntityIdIn>,
    first_name: Option<String>,
    last_name: Option<String>,
}

/// Creates a user without a password; they set one through the activation link.
pub(super) async fn create_user(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<CreateUserRequest>,
) -> ApiResult<axum::Json<Value>> {
    principal.require(&[Authority::TenantAdmin])?;
    let authority: Authority = req.authority.parse().map_err(ApiError::bad_request)?;
    let user = state
        .store
        .create_user(
            &principal.scope(),
            NewUser {
                email: validate::email(&req.email)?,
                password_hash: None,
                authority,
                customer_id: req.customer_id.map(|c| CustomerId(c.id)),
                first_name: optional_name("firstName", req.first_name)?,
                last_name: optional_name("lastName", req.last_name)?,
                birth_date: None,
            },
        )
        .await?;
    Audit::new(action::USER_CREATE)
        .by(&principal.user)
        .target("user", user.id)
        .details(json!({"authority": user.authority.as_str(), "customerId": user.customer_id}))
        .personal(Owner::User(user.id), json!({"email": user.email}))
        .record(state.store.as_ref())
        .await;
    Ok(axum::Json(tb::user(&user)))
}

pub(super) async fn user(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    principal.require(&[Authority::TenantAdmin, Authority::CustomerUser])?;
    let id: UserId = parse_id("user", &id)?;
    if principal.user.authority == Authority::CustomerUser && id != principal.user.id {
        return Err(ApiError::forbidden(
            "A customer user can read only their own account",
        ));
    }
    Ok(axum::Json(tb::user(
        &state.store.user(&principal.scope(), id).await?,
    )))
}

pub(super) async fn delete_user(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    principal.require(&[Authority::TenantAdmin])?;
    let id: UserId = parse_id("user", &id)?;
    if id == principal.user.id {
        return Err(ApiError::bad_request(
            "You cannot delete your own account here; use the privacy center's account deletion",
        ));
    }
    state.store.delete_user(&principal.scope(), id).await?;
    Audit::new(action::USER_DELETE)
        .by(&principal.user)
        .target("user", id)
        .record(state.store.as_ref())
        .await;
    Ok(StatusCode::OK)
}

/// ThingsBoard's activation link: the new user opens it to set a password.
pub(super) async fn activation_link(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<String> {
    principal.require(&[Authority::TenantAdmin])?;
    let id: UserId = parse_id("user", &id)?;
    let token = thingsafe_vault::random_token(24);
    state
        .store
        .set_activation_token(&principal.scope(), id, &token)
        .await?;
    Ok(format!(
        "{}/api/noauth/activate?activateToken={token}",
        state.settings.public_url.trim_end_matches('/')
    ))
}

pub(super) async fn users(
    State(state): State<AppState>,
    principal: Principal,
    Query(page): Query<PageParams>,
) -> ApiResult<axum::Json<Value>> {
    principal.require(&[Authority::TenantAdmin])?;
    let page = state
        .store
        .users(&principal.scope(), None, &page.request()?)
        .await?;
    Ok(axum::Json(tb::page(page, tb::user)))
}

pub(super) async fn customer_users(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Query(page): Query<PageParams>,
) -> ApiResult<axum::Json<Value>> {
    principal.require(&[Authority::TenantAdmin])?;
    let customer: CustomerId = parse_id("customer", &id)?;
    let scope = principal.scope();
    // Listing an unknown (or foreign) customer's users is a 404, not an empty page.
    state.store.customer(&scope, customer).await?;
    let page = state
        .store
        .users(&scope, Some(customer), &page.request()?)
        .await?;
    Ok(axum::Json(tb::page(page, tb::user)))
}
