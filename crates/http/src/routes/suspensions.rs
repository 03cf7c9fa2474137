//! Suspending devices, device types and tenants — the refusal of products that device
//! clouds reserve. A suspended device is refused at connect and over the HTTP device API,
//! and dropped if connected, until the suspension is lifted. Tenant administrators suspend
//! their own devices and types; the system administrator any device, any tenant's types
//! (`?tenantId=`) and whole tenants.

use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};
use thingsafe_core::{Authority, DeviceId, TenantId};
use thingsafe_privacy::audit::{Audit, action};
use thingsafe_store::{Suspension, SuspensionTarget};

use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query};

const ADMINS: &[Authority] = &[Authority::SysAdmin, Authority::TenantAdmin];

fn view(s: &Suspension) -> Value {
    let (kind, target) = match &s.target {
        SuspensionTarget::Device(id) => ("DEVICE", id.to_string()),
        SuspensionTarget::DeviceType(t) => ("DEVICE_TYPE", t.clone()),
        SuspensionTarget::Tenant(t) => ("TENANT", t.to_string()),
    };
    json!({
        "kind": kind, "target": target, "tenantId": s.tenant,
        "reason": s.reason, "sinceTs": s.since_ms,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Reason {
    reason: String,
}

fn reason(body: Reason) -> ApiResult<String> {
    let reason = body.reason.trim().to_string();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::bad_request(
            "reason must say why, in 1 to 500 characters (devices and their owners are told it)",
        ));
    }
    Ok(reason)
}

fn parse<T: std::str::FromStr>(what: &str, raw: &str) -> ApiResult<T> {
    raw.parse()
        .map_err(|_| ApiError::bad_request(format!("{what} is not a valid id: {raw:?}")))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct OfTenant {
    tenant_id: Option<String>,
}

fn tenant_param(q: &OfTenant) -> ApiResult<Option<TenantId>> {
    q.tenant_id
        .as_deref()
        .map(|t| parse("tenantId", t))
        .transpose()
}

pub(super) async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<axum::Json<Value>> {
    principal.require(ADMINS)?;
    let all = state.store.suspensions(&principal.scope()).await?;
    Ok(axum::Json(json!(all.iter().map(view).collect::<Vec<_>>())))
}

async fn suspend(
    state: &AppState,
    principal: &Principal,
    target: SuspensionTarget,
    tenant: Option<TenantId>,
    body: Reason,
) -> ApiResult<axum::Json<Value>> {
    principal.require(ADMINS)?;
    let reason = reason(body)?;
    let s = state
        .store
        .suspend(&principal.scope(), target, tenant, reason)
        .await?;
    tracing::warn!(by = %principal.user.id, suspension = %view(&s), "suspended");
    audit(
        state,
        principal,
        action::SUSPENSION,
        &s.target,
        Some(s.tenant),
    )
    .await;
    Ok(axum::Json(view(&s)))
}

async fn lift(
    state: &AppState,
    principal: &Principal,
    target: SuspensionTarget,
    tenant: Option<TenantId>,
) -> ApiResult<axum::Json<Value>> {
    principal.require(ADMINS)?;
    state
        .store
        .lift_suspension(&principal.scope(), target.clone(), tenant)
        .await?;
    let tenant = tenant.or(principal.user.tenant_id);
    audit(state, principal, action::SUSPENSION_LIFT, &target, tenant).await;
    Ok(axum::Json(json!({"lifted": true})))
}

/// Suspending and lifting are audited, naming what (`device:<id>`, `deviceType:<type>`,
/// `tenant:<id>`); the reason stays in the suspension.
async fn audit(
    state: &AppState,
    principal: &Principal,
    what: &'static str,
    target: &SuspensionTarget,
    tenant: Option<TenantId>,
) {
    let audit = Audit::new(what).by(&principal.user).tenant(tenant);
    let audit = match target {
        SuspensionTarget::Device(id) => audit.target("device", id),
        SuspensionTarget::DeviceType(t) => audit.target("deviceType", t),
        SuspensionTarget::Tenant(t) => audit.target("tenant", t),
    };
    audit.record(state.store.as_ref()).await;
}

pub(super) async fn suspend_device(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(body): Json<Reason>,
) -> ApiResult<axum::Json<Value>> {
    let id: DeviceId = parse("deviceId", &id)?;
    suspend(&state, &principal, SuspensionTarget::Device(id), None, body).await
}

pub(super) async fn lift_device(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let id: DeviceId = parse("deviceId", &id)?;
    lift(&state, &principal, SuspensionTarget::Device(id), None).await
}

pub(super) async fn suspend_type(
    State(state): State<AppState>,
    principal: Principal,
    Path(device_type): Path<String>,
    Query(q): Query<OfTenant>,
    Json(body): Json<Reason>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = tenant_param(&q)?;
    suspend(
        &state,
        &principal,
        SuspensionTarget::DeviceType(device_type),
        tenant,
        body,
    )
    .await
}

pub(super) async fn lift_type(
    State(state): State<AppState>,
    principal: Principal,
    Path(device_type): Path<String>,
    Query(q): Query<OfTenant>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = tenant_param(&q)?;
    lift(
        &state,
        &principal,
        SuspensionTarget::DeviceType(device_type),
        tenant,
    )
    .await
}

pub(super) async fn suspend_tenant(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(body): Json<Reason>,
) -> ApiResult<axum::Json<Value>> {
    let id: TenantId = parse("tenantId", &id)?;
    suspend(&state, &principal, SuspensionTarget::Tenant(id), None, body).await
}

pub(super) async fn lift_tenant(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let id: TenantId = parse("tenantId", &id)?;
    lift(&state, &principal, SuspensionTarget::Tenant(id), None).await
}
