//! Device provisioning and claiming: ThingsBoard's device profiles (`/api/deviceProfile*`,
//! the provisioning subset), `POST /api/v1/provision`, device-side claiming
//! (`POST /api/v1/{token}/claim`) and the customer's claim (`/api/customer/device/{name}/claim`).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use thingsafe_core::model::provisioning::{parse_claim_request, parse_provision_request};
use thingsafe_core::model::{
    DeviceProfile, DeviceProfileId, PemCertificate, ProvisionType, X509ChainProvisioning,
};
use thingsafe_core::{Authority, DeviceId, validate};
use thingsafe_privacy::audit::{Audit, action};
use thingsafe_store::{ClaimOutcome, NewDeviceProfile};

use super::devices;
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query, parse_id};
use crate::tb::{self, EntityIdIn, PageParams};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreateProfile {
    name: String,
    provision_type: Option<String>,
    provision_device_key: Option<String>,
    provision_device_secret: Option<String>,
    /// ThingsBoard's full shape: `profileData.provisionConfiguration.provisionDeviceSecret`.
    profile_data: Option<Value>,
}

pub(super) async fn create_profile(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<CreateProfile>,
) -> ApiResult<axum::Json<Value>> {
    principal.require(&[Authority::TenantAdmin])?;
    let name = validate::name("name", &req.name, 255)?;
    let configuration = req
        .profile_data
        .as_ref()
        .and_then(|d| d.get("provisionConfiguration"));
    let from_configuration = |field: &str| {
        configuration
            .and_then(|c| c.get(field))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let provision_type = match req.provision_type.or_else(|| from_configuration("type")) {
        None => ProvisionType::Disabled,
        Some(t) => t.parse::<ProvisionType>().map_err(ApiError::bad_request)?,
    };
    let secret = req
        .provision_device_secret
        .or_else(|| from_configuration("provisionDeviceSecret"));
    let key = req
        .provision_device_key
        .or_else(|| from_configuration("provisionDeviceKey"));
    let (key, x509) = if provision_type == ProvisionType::X509CertificateChain {
        // The key is the CA's fingerprint, which the store sets.
        (
            None,
            Some(x509_configuration(configuration, secret.as_deref())?),
        )
    } else {
        for (field, value) in [
            ("provisionDeviceKey", &key),
            ("provisionDeviceSecret", &secret),
        ] {
            if let Some(v) = value
                && (v.chars().count() > 255 || v.chars().any(char::is_control))
            {
                return Err(ApiError::bad_request(format!(
                    "{field} must have at most 255 characters and no control characters"
                )));
            }
        }
        (key, None)
    };
    let profile = state
        .store
        .create_device_profile(
            &principal.scope(),
            NewDeviceProfile {
                name,
                provision_type,
                provision_device_key: key,
                provision_device_secret: secret,
                x509,
            },
        )
        .await?;
    tracing::info!(profile = %profile.id, tenant = %profile.tenant_id, "device profile created");
    Ok(axum::Json(tb::device_profile(&profile)))
}

/// ThingsBoard's `X509CertificateChainProvisionConfiguration`: the CA certificate (PEM, as
/// `provisionDeviceSecret`), `certificateRegExPattern` (default `(.*)`, the whole Common
/// Name) and `allowCreateNewDevicesByX509Certificate` (default false).
fn x509_configuration(
    configuration: Option<&Value>,
    ca_pem: Option<&str>,
) -> ApiResult<X509ChainProvisioning> {
    let field = |name: &str| configuration.and_then(|c| c.get(name));
    let ca_pem = ca_pem.filter(|p| !p.trim().is_empty()).ok_or_else(|| {
        ApiError::bad_request(
            "provisionType X509_CERTIFICATE_CHAIN needs the CA certificate in PEM as profileData.provisionConfiguration.provisionDeviceSecret",
        )
    })?;
    let ca = PemCertificate::parse("provisionDeviceSecret", "the CA's", ca_pem)
        .map_err(ApiError::bad_request)?;
    thingsafe_tls::check_provisioning_ca(&ca.der, thingsafe_core::now_ms() / 1000)
        .map_err(ApiError::bad_request)?;
    let pattern = match field("certificateRegExPattern") {
        None | Some(Value::Null) => "(.*)",
        Some(Value::String(p)) => p.as_str(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "certificateRegExPattern must be a string",
            ));
        }
    };
    let allow_create = match field("allowCreateNewDevicesByX509Certificate") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ApiError::bad_request(
                "allowCreateNewDevicesByX509Certificate must be true or false",
            ));
        }
    };
    X509ChainProvisioning::new(pattern, allow_create).map_err(ApiError::bad_request)
}

pub(super) async fn get_profile(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    principal.require(&[Authority::TenantAdmin])?;
    let id: DeviceProfileId = parse_id("device profile", &id)?;
    let scope = principal.scope();
    let tenant = scope.tenant()?;
    let profile = if id == DeviceProfileId::default_of(tenant) {
        DeviceProfile::tenant_default(tenant)
    } else {
        state.store.device_profile(&scope, id).await?
    };
    Ok(axum::Json(tb::device_profile(&profile)))
}

/// `DELETE /api/deviceProfile/{id}`, as ThingsBoard's: a tenant administrator deletes a
/// profile of their tenant that no device is in; the tenant's default profile stays.
pub(super) async fn delete_profile(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    principal.require(&[Authority::TenantAdmin])?;
    let id: DeviceProfileId = parse_id("device profile", &id)?;
    let scope = principal.scope();
    if id == DeviceProfileId::default_of(scope.tenant()?) {
        return Err(ApiError::bad_request(
            "the tenant's default device profile cannot be deleted",
        ));
    }
    state.store.delete_device_profile(&scope, id).await?;
    tracing::info!(profile = %id, "device profile deleted");
    Audit::new(action::DEVICE_PROFILE_DELETE)
        .by(&principal.user)
        .target("device_profile", id)
        .record(state.store.as_ref())
        .await;
    Ok(StatusCode::OK)
}

pub(super) async fn list_profiles(
    State(state): State<AppState>,
    principal: Principal,
    Query(params): Query<PageParams>,
) -> ApiResult<axum::Json<Value>> {
    principal.require(&[Authority::TenantAdmin])?;
    let page = state
        .store
        .device_profiles(&principal.scope(), &params.request()?)
        .await?;
    Ok(axum::Json(tb::page(page, tb::device_profile)))
}

/// `POST /api/device` with ThingsBoard's optional `deviceProfileId`: the device is created
/// (or, with an `id`, saved) as always (routes/devices.rs), then put in the profile (which
/// must be the tenant's); naming the default profile takes a saved device out of its
/// profile.
pub(super) async fn create_device(
    State(state): State<AppState>,
    principal: Principal,
    Query(params): Query<devices::CreateParams>,
    Json(body): Json<Value>,
) -> ApiResult<axum::Json<Value>> {
    // None: no profile named; Some(None): the default one.
    let profile = match body.get("deviceProfileId") {
        None | Some(Value::Null) => None,
        Some(v) => Some({
            let id: EntityIdIn = serde_json::from_value(v.clone()).map_err(|_| {
                ApiError::bad_request(
                    "deviceProfileId must be {\"entityType\": \"DEVICE_PROFILE\", \"id\": UUID}",
                )
            })?;
            principal.require(&[Authority::TenantAdmin])?;
            let id = DeviceProfileId(id.id);
            let scope = principal.scope();
            if id == DeviceProfileId::default_of(scope.tenant()?) {
                None
            } else {
                // Checked before the device is created: a foreign profile creates nothing.
                state.store.device_profile(&scope, id).await?;
                Some(id)
            }
        }),
    };
    let saved = body.get("id").is_some_and(|id| !id.is_null());
    // Refused as axum's JSON extractor refuses a body of the wrong shape.
    let req: devices::CreateDevice = serde_json::from_value(body).map_err(|e| {
        let mut error = ApiError::bad_request(format!(
            "Failed to deserialize the JSON body into the target type: {e}"
        ));
        error.status = StatusCode::UNPROCESSABLE_ENTITY;
        error
    })?;
    let axum::Json(mut device) = devices::create(
        State(state.clone()),
        principal.clone(),
        Query(params),
        Json(req),
    )
    .await?;
    match profile {
        Some(Some(profile)) => {
            let id: DeviceId = parse_id("device", device["id"]["id"].as_str().unwrap_or_default())?;
            state
                .store
                .set_device_profile(&principal.scope(), id, Some(profile))
                .await?;
            device["deviceProfileId"] = tb::entity_id("DEVICE_PROFILE", profile.as_uuid());
        }
        Some(None) if saved => {
            let id: DeviceId = parse_id("device", device["id"]["id"].as_str().unwrap_or_default())?;
            let scope = principal.scope();
            state.store.set_device_profile(&scope, id, None).await?;
            device["deviceProfileId"] = tb::entity_id(
                "DEVICE_PROFILE",
                DeviceProfileId::default_of(scope.tenant()?).as_uuid(),
            );
        }
        _ => {}
    }
    Ok(axum::Json(device))
}

fn body(raw: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    raw.map_err(|rejection| {
        let mut e = ApiError::bad_request(rejection.body_text());
        e.status = rejection.status();
        e
    })
}

/// `POST /api/v1/provision`: the same request and answer as `/provision/request` over MQTT.
pub(super) async fn provision(
    State(state): State<AppState>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<axum::Json<Value>> {
    let request = parse_provision_request(&body(raw)?)
        .map_err(|e| ApiError::bad_request(format!("Invalid provisioning request: {e}")))?;
    let outcome = state.store.provision_device(&request).await?;
    tracing::info!(
        outcome = outcome.label(),
        "HTTP provisioning request answered"
    );
    Ok(axum::Json(outcome.to_json()))
}

/// `POST /api/v1/{token}/claim`: the device opens its claiming window.
pub(super) async fn device_claim(
    State(state): State<AppState>,
    Path(token): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<StatusCode> {
    let device = super::device_api::device(&state, &token).await?;
    let request = parse_claim_request(&body(raw)?)
        .map_err(|e| ApiError::bad_request(format!("Invalid payload: {e}")))?;
    let opened = state.store.open_claim(&device, &request).await?;
    tracing::info!(device = %device.id, opened, "claiming request");
    Ok(StatusCode::OK)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct ClaimBody {
    secret_key: Option<String>,
}

/// `POST /api/customer/device/{deviceName}/claim`, as ThingsBoard's `DeviceController`:
/// 200 `{"device", "response": "SUCCESS"}`; 400 `"FAILURE"`; 400 `{"device": null,
/// "response": "CLAIMED"}`.
pub(super) async fn claim(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    principal.require(&[Authority::CustomerUser])?;
    let raw = body(raw)?;
    let req: ClaimBody = if raw.iter().all(u8::is_ascii_whitespace) {
        ClaimBody::default()
    } else {
        serde_json::from_slice(&raw)
            .map_err(|e| ApiError::bad_request(format!("Invalid claiming request: {e}")))?
    };
    let outcome = state
        .store
        .claim_device(
            &principal.scope(),
            &name,
            req.secret_key.as_deref().unwrap_or_default(),
        )
        .await?;
    Ok(match outcome {
        ClaimOutcome::Success(device) => (
            StatusCode::OK,
            axum::Json(json!({ "device": tb::device(&device), "response": "SUCCESS" })),
        )
            .into_response(),
        ClaimOutcome::Failure => {
            (StatusCode::BAD_REQUEST, axum::Json(json!("FAILURE"))).into_response()
        }
        ClaimOutcome::Claimed => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "device": null, "response": "CLAIMED" })),
        )
            .into_response(),
    })
}

/// `DELETE /api/customer/device/{deviceName}/claim`: the device is unassigned.
pub(super) async fn reclaim(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    principal.require(&[Authority::TenantAdmin, Authority::CustomerUser])?;
    state
        .store
        .reclaim_device(&principal.scope(), &name)
        .await?;
    Ok(StatusCode::OK)
}
