//! Devices: ThingsBoard's `/api/device*`, `/api/tenant/devices`, customer assignment.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use thingsafe_core::{Authority, CustomerId, DeviceCredentials, DeviceId, Owner, validate};
use thingsafe_privacy::audit::{Audit, action};
use thingsafe_store::NewDevice;

use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query, parse_id};
use crate::tb::{self, EntityIdIn, PageParams};

/// Length of generated access tokens (ThingsBoard generates 20 characters).
const GENERATED_TOKEN_LEN: usize = 20;

#[derive(Deserialize)]
pub(super) struct CreateDevice {
    id: Option<EntityIdIn>,
    name: String,
    #[serde(rename = "type")]
    device_type: Option<String>,
    label: Option<String>,
    /// ThingsBoard's `{"gateway": true}` makes the new device a gateway.
    #[serde(rename = "additionalInfo")]
    additional_info: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreateParams {
    access_token: Option<String>,
}

fn credentials_json(device: DeviceId, credentials: &DeviceCredentials) -> Value {
    // ThingsBoard's shape: the id is what devices are found by, the value the certificate.
    let (id, value) = match credentials {
        DeviceCredentials::AccessToken(token) => (token, None),
        DeviceCredentials::X509Certificate { fingerprint, pem } => (fingerprint, Some(pem)),
    };
    json!({
        "deviceId": tb::entity_id("DEVICE", device.as_uuid()),
        "credentialsType": credentials.kind(),
        "credentialsId": id,
        "credentialsValue": value,
    })
}

pub(super) async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Query(params): Query<CreateParams>,
    Json(req): Json<CreateDevice>,
) -> ApiResult<axum::Json<Value>> {
    principal.require(&[Authority::TenantAdmin])?;
    let name = validate::name("name", &req.name, 255)?;
    let device_type = match req.device_type {
        Some(t) if !t.trim().is_empty() => validate::name("type", &t, 255)?,
        _ => "default".to_string(),
    };
    let label = req
        .label
        .filter(|l| !l.trim().is_empty())
        .map(|l| validate::name("label", &l, 255))
        .transpose()?;
    // ThingsBoard saves: with an id the device is updated.
    if let Some(id) = req.id {
        let device = state
            .store
            .update_device(
                &principal.scope(),
                DeviceId(id.id),
                &name,
                &device_type,
                label.as_deref(),
            )
            .await?;
        return Ok(axum::Json(tb::device(&device)));
    }
    let token = match params.access_token {
        Some(t) => validate::access_token(&t)?,
        None => thingsafe_vault::random_alphanumeric(GENERATED_TOKEN_LEN),
    };
    let new = NewDevice {
        name,
        device_type,
        label,
        credentials: DeviceCredentials::AccessToken(token),
    };
    let gateway = req
        .additional_info
        .as_ref()
        .and_then(|info| info.get("gateway"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let device = if gateway {
        state.store.create_gateway(&principal.scope(), new).await?
    } else {
        state.store.create_device(&principal.scope(), new).await?
    };
    tracing::info!(device = %device.id, tenant = %device.tenant_id, gateway, "device created");
    Audit::new(action::DEVICE_CREATE)
        .by(&principal.user)
        .target("device", device.id)
        .details(json!({"gateway": gateway}))
        .personal(
            Owner::Tenant(device.tenant_id),
            json!({"name": device.name, "label": device.label}),
        )
        .record(state.store.as_ref())
        .await;
    Ok(axum::Json(tb::device(&device)))
}

pub(super) async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    principal.require(&[Authority::TenantAdmin, Authority::CustomerUser])?;
    let id: DeviceId = parse_id("device", &id)?;
    Ok(axum::Json(tb::device(
        &state.store.device(&principal.scope(), id).await?,
    )))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    principal.require(&[Authority::TenantAdmin])?;
    let id: DeviceId = parse_id("device", &id)?;
    state.store.delete_device(&principal.scope(), id).await?;
    tracing::info!(device = %id, "device deleted");
    Audit::new(action::DEVICE_DELETE)
        .by(&principal.user)
        .target("device", id)
        .record(state.store.as_ref())
        .await;
    Ok(StatusCode::OK)
}

pub(super) async fn credentials(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    principal.require(&[Authority::TenantAdmin, Authority::CustomerUser])?;
    let id: DeviceId = parse_id("device", &id)?;
    let credentials = state
        .store
        .device_credentials(&principal.scope(), id)
        .await?;
    Ok(axum::Json(credentials_json(id, &credentials)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SetCredentials {
    device_id: EntityIdIn,
    credentials_type: String,
    credentials_id: Option<String>,
    /// `X509_CERTIFICATE`: the device's certificate, PEM.
    credentials_value: Option<String>,
}

pub(super) async fn set_credentials(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<SetCredentials>,
) -> ApiResult<axum::Json<Value>> {
    principal.require(&[Authority::TenantAdmin])?;
    let credentials = match req.credentials_type.as_str() {
        "ACCESS_TOKEN" => DeviceCredentials::AccessToken(match req.credentials_id {
            Some(t) => validate::access_token(&t)?,
            None => thingsafe_vault::random_alphanumeric(GENERATED_TOKEN_LEN),
        }),
        // The id is derived from the certificate (its SHA-256); one given is ignored, as
        // ThingsBoard does.
        "X509_CERTIFICATE" => {
            let pem = req.credentials_value.ok_or_else(|| {
                ApiError::bad_request(
                    "X509_CERTIFICATE credentials need credentialsValue: the device's certificate in PEM",
                )
            })?;
            DeviceCredentials::x509_certificate(&pem).map_err(ApiError::bad_request)?
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "credentialsType {other:?} is not supported; use ACCESS_TOKEN or X509_CERTIFICATE"
            )));
        }
    };
    let id = DeviceId(req.device_id.id);
    state
        .store
        .set_device_credentials(&principal.scope(), id, credentials.clone())
        .await?;
    Ok(axum::Json(credentials_json(id, &credentials)))
}

async fn list(
    state: &AppState,
    principal: &Principal,
    customer: Option<CustomerId>,
    mut params: PageParams,
) -> ApiResult<axum::Json<Value>> {
    let device_type = params.entity_type.take();
    let request = params.request()?;
    let mut page = state
        .store
        .devices(&principal.scope(), customer, &request)
        .await?;
    if let Some(t) = device_type.filter(|t| !t.is_empty()) {
        // The type filter narrows the whole listing, so page again after filtering.
        let all = state
            .store
            .devices(
                &principal.scope(),
                customer,
                &thingsafe_core::PageRequest {
                    page_size: usize::MAX,
                    page: 0,
                    text_search: request.text_search.clone(),
                },
            )
            .await?;
        page = request.apply(
            all.data
                .into_iter()
                .filter(|d| d.device_type == t)
                .collect(),
        );
    }
    Ok(axum::Json(tb::page(page, tb::device)))
}

pub(super) async fn tenant_devices(
    State(state): State<AppState>,
    principal: Principal,
    Query(params): Query<PageParams>,
) -> ApiResult<axum::Json<Value>> {
    principal.require(&[Authority::TenantAdmin])?;
    list(&state, &principal, None, params).await
}

pub(super) async fn customer_devices(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Query(params): Query<PageParams>,
) -> ApiResult<axum::Json<Value>> {
    principal.require(&[Authority::TenantAdmin, Authority::CustomerUser])?;
    let customer: CustomerId = parse_id("customer", &id)?;
    state.store.customer(&principal.scope(), customer).await?;
    list(&state, &principal, Some(customer), params).await
}

pub(super) async fn assign(
    State(state): State<AppState>,
    principal: Principal,
    Path((customer, device)): Path<(String, String)>,
) -> ApiResult<axum::Json<Value>> {
    principal.require(&[Authority::TenantAdmin])?;
    let customer: CustomerId = parse_id("customer", &customer)?;
    let device: DeviceId = parse_id("device", &device)?;
    let device = state
        .store
        .assign_device(&principal.scope(), device, Some(customer))
        .await?;
    Ok(axum::Json(tb::device(&device)))
}

pub(super) async fn unassign(
    State(state): State<AppState>,
    principal: Principal,
    Path(device): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    principal.require(&[Authority::TenantAdmin])?;
    let device: DeviceId = parse_id("device", &device)?;
    let device = state
        .store
        .assign_device(&principal.scope(), device, None)
        .await?;
    Ok(axum::Json(tb::device(&device)))
}
