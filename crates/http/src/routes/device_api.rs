//! ThingsBoard's HTTP device API: `/api/v1/{token}/...`. The access token in the path is the
//! device's identity.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value as Json};
use thingsafe_core::payload::{self, PayloadError};
use thingsafe_core::{AttributeScope, Device, now_ms};

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::Query;

/// ThingsBoard's `transport.http.max_payload_size` default.
pub(super) const MAX_PAYLOAD_BYTES: usize = 65_536;

/// The device whose access token this is, unless it is suspended (403, with the reason).
pub(super) async fn device(state: &AppState, token: &str) -> ApiResult<Device> {
    let device = state.store.device_by_token(token).await?.ok_or_else(|| {
        ApiError::unauthorized(
            "Unknown device access token: use the token from the device's credentials",
        )
    })?;
    if let Some(suspension) = state.store.suspension_of(&device) {
        tracing::info!(device = %device.id, "refused a suspended device over HTTP");
        return Err(ApiError::forbidden(format!(
            "This device is suspended by an administrator: {}",
            suspension.reason
        )));
    }
    Ok(device)
}

/// Counts a message of `device` (with its telemetry data points) against the rate limits;
/// over one: 429 saying which.
pub(super) fn admit(state: &AppState, device: &Device, telemetry_points: usize) -> ApiResult<()> {
    state
        .settings
        .rate_limits
        .admit(device, telemetry_points)
        .map_err(|exceeded| {
            tracing::info!(device = %device.id, %exceeded, "refused an HTTP device message");
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::TooManyRequests,
                format!("Rate limit exceeded: {exceeded}; nothing was stored"),
            )
        })
}

fn body(body: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    body.map_err(|rejection| {
        let mut e = ApiError::bad_request(format!(
            "{} (the limit is {MAX_PAYLOAD_BYTES} bytes)",
            rejection.body_text()
        ));
        e.status = rejection.status();
        e
    })
}

fn payload_error(device: &Device, e: PayloadError) -> ApiError {
    tracing::info!(device = %device.id, error = %e, "refused a malformed HTTP payload");
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::BadRequestParams,
        format!("Invalid payload: {e}"),
    )
}

pub(super) async fn post_telemetry(
    State(state): State<AppState>,
    Path(token): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<StatusCode> {
    let device = device(&state, &token).await?;
    let raw = body(raw)?;
    let points = payload::parse_telemetry(&raw, now_ms()).map_err(|e| payload_error(&device, e))?;
    admit(&state, &device, points.len())?;
    state.store.append_telemetry(&device, points).await?;
    Ok(StatusCode::OK)
}

pub(super) async fn post_attributes(
    State(state): State<AppState>,
    Path(token): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<StatusCode> {
    let device = device(&state, &token).await?;
    let raw = body(raw)?;
    let attributes = payload::parse_attributes(&raw).map_err(|e| payload_error(&device, e))?;
    admit(&state, &device, 0)?;
    state
        .store
        .save_attributes(&device, AttributeScope::Client, attributes)
        .await?;
    Ok(StatusCode::OK)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AttributeKeys {
    client_keys: Option<String>,
    shared_keys: Option<String>,
}

fn key_list(raw: &Option<String>) -> Option<Vec<String>> {
    raw.as_ref().map(|s| {
        s.split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .collect()
    })
}

/// `{"client": {...}, "shared": {...}}`: with no keys asked, every client and shared
/// attribute; with keys of one scope only, that scope only (ThingsBoard's rule).
pub(super) async fn get_attributes(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Query(keys): Query<AttributeKeys>,
) -> ApiResult<axum::Json<Json>> {
    let device = device(&state, &token).await?;
    let client = key_list(&keys.client_keys).filter(|k| !k.is_empty());
    let shared = key_list(&keys.shared_keys).filter(|k| !k.is_empty());
    let everything = client.is_none() && shared.is_none();
    let mut out = Map::new();
    for (name, scope, wanted) in [
        ("client", AttributeScope::Client, client),
        ("shared", AttributeScope::Shared, shared),
    ] {
        if !everything && wanted.is_none() {
            continue;
        }
        let attributes = state
            .store
            .device_attributes(&device, scope, wanted)
            .await?;
        let values: Map<String, Json> = attributes
            .into_iter()
            .map(|a| (a.key, a.value.to_json()))
            .collect();
        out.insert(name.to_string(), Json::Object(values));
    }
    Ok(axum::Json(Json::Object(out)))
}
