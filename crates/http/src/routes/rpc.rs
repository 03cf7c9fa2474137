//! Server-side RPC: users send commands (`/api/rpc/oneway|twoway/{deviceId}`); devices on
//! HTTP take them by long polling (`GET /api/v1/{token}/rpc`) and answer with
//! `POST /api/v1/{token}/rpc/{id}`. MQTT devices take them from the same mailbox.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value as Json, json};
use thingsafe_core::{AttributeScope, Authority, DeviceId, now_ms};
use thingsafe_store::Change;
use tokio::sync::broadcast;

use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::{Json as JsonBody, Query, parse_id};
use crate::routes::device_api;

/// ThingsBoard's default RPC timeout.
const DEFAULT_RPC_TIMEOUT_MS: u64 = 10_000;
/// ThingsBoard's default long-poll timeout of the HTTP device API.
const DEFAULT_POLL_TIMEOUT_MS: u64 = 60_000;
const MAX_TIMEOUT_MS: u64 = 600_000;

fn timeout(raw: Option<u64>, default: u64) -> ApiResult<Duration> {
    match raw.unwrap_or(default) {
        0 => Err(ApiError::bad_request("timeout must be above 0 ms")),
        ms if ms > MAX_TIMEOUT_MS => Err(ApiError::bad_request(format!(
            "timeout must be at most {MAX_TIMEOUT_MS} ms"
        ))),
        ms => Ok(Duration::from_millis(ms)),
    }
}

/// Waits on the change feed until `pick` finds what it wants, or `within` passes.
async fn wait_for<T>(
    changes: &mut broadcast::Receiver<Arc<Change>>,
    within: Duration,
    mut pick: impl FnMut(&Change) -> Option<T>,
) -> Option<T> {
    tokio::time::timeout(within, async {
        loop {
            match changes.recv().await {
                Ok(change) => {
                    if let Some(found) = pick(&change) {
                        return Some(found);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .await
    .ok()
    .flatten()
}

fn gateway_timeout(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        ErrorCode::General,
        what.to_string(),
    )
}

#[derive(Deserialize)]
pub(super) struct RpcCommand {
    method: String,
    #[serde(default)]
    params: Json,
    timeout: Option<u64>,
}

async fn send(
    state: &AppState,
    principal: &Principal,
    device: &str,
    cmd: RpcCommand,
    oneway: bool,
) -> ApiResult<Option<Json>> {
    principal.require(&[Authority::TenantAdmin, Authority::CustomerUser])?;
    let id: DeviceId = parse_id("device", device)?;
    if cmd.method.trim().is_empty() {
        return Err(ApiError::bad_request("method must not be empty"));
    }
    let within = timeout(cmd.timeout, DEFAULT_RPC_TIMEOUT_MS)?;
    let device = state.store.device(&principal.scope(), id).await?;
    let mut changes = state.store.changes();
    let expires = now_ms() + within.as_millis() as i64;
    let request = state
        .store
        .rpc_submit(&device, cmd.method, cmd.params, oneway, expires);
    tracing::info!(device = %device.id, rpc = request.id, oneway, "RPC sent");
    if oneway {
        wait_for(&mut changes, within, |c| {
            matches!(c, Change::RpcDelivered { device: d, id } if *d == device.id && *id == request.id)
                .then_some(())
        })
        .await
        .ok_or_else(|| gateway_timeout("The device did not take the command in time: is it connected?"))?;
        Ok(None)
    } else {
        let response = wait_for(&mut changes, within, |c| match c {
            Change::RpcResponse {
                device: d,
                id,
                response,
            } if *d == device.id && *id == request.id => Some(response.clone()),
            _ => None,
        })
        .await
        .ok_or_else(|| gateway_timeout("The device did not answer in time: is it connected?"))?;
        Ok(Some(response))
    }
}

pub(super) async fn oneway(
    State(state): State<AppState>,
    principal: Principal,
    Path(device): Path<String>,
    JsonBody(cmd): JsonBody<RpcCommand>,
) -> ApiResult<StatusCode> {
    send(&state, &principal, &device, cmd, true).await?;
    Ok(StatusCode::OK)
}

pub(super) async fn twoway(
    State(state): State<AppState>,
    principal: Principal,
    Path(device): Path<String>,
    JsonBody(cmd): JsonBody<RpcCommand>,
) -> ApiResult<axum::Json<Json>> {
    let response = send(&state, &principal, &device, cmd, false).await?;
    Ok(axum::Json(response.unwrap_or(Json::Null)))
}

#[derive(Deserialize)]
pub(super) struct PollParams {
    timeout: Option<u64>,
}

fn request_timeout() -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        ErrorCode::General,
        "Nothing arrived before the timeout",
    )
}

/// Long poll for the device's next command: `{"id", "method", "params"}`, or 408.
pub(super) async fn device_poll(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Query(params): Query<PollParams>,
) -> ApiResult<axum::Json<Json>> {
    let device = device_api::device(&state, &token).await?;
    let within = timeout(params.timeout, DEFAULT_POLL_TIMEOUT_MS)?;
    let mut changes = state.store.changes();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(request) = state.store.rpc_take(device.id).into_iter().next() {
            // A poll answers one command; any others wait for the next poll.
            return Ok(axum::Json(
                json!({ "id": request.id, "method": request.method, "params": request.params }),
            ));
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let woke = wait_for(&mut changes, left, |c| {
            matches!(c, Change::RpcWaiting { device: d } if *d == device.id).then_some(())
        })
        .await;
        if woke.is_none() {
            return Err(request_timeout());
        }
    }
}

/// The device's answer to command `id`; any JSON, or text.
pub(super) async fn device_reply(
    State(state): State<AppState>,
    Path((token, id)): Path<(String, u32)>,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let device = device_api::device(&state, &token).await?;
    device_api::admit(&state, &device, 0)?;
    let response = thingsafe_core::payload::parse_json(&body)
        .unwrap_or_else(|_| Json::String(String::from_utf8_lossy(&body).into_owned()));
    state.store.rpc_respond(device.id, id, response);
    Ok(StatusCode::OK)
}

/// The device calls the server (client-side RPC): `{"method", "params"}` → the answer.
pub(super) async fn device_call(
    State(state): State<AppState>,
    Path(token): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<axum::Json<Json>> {
    let device = device_api::device(&state, &token).await?;
    device_api::admit(&state, &device, 0)?;
    let limits = thingsafe_core::device_rpc::SessionLimits {
        max_payload_size: device_api::MAX_PAYLOAD_BYTES as u32,
        max_inflight_messages: 1,
        rate_limits: state.settings.rate_limits.settings(),
    };
    thingsafe_core::device_rpc::answer(&body, limits)
        .map(axum::Json)
        .map_err(|e| ApiError::bad_request(format!("Invalid RPC call: {e}")))
}

/// Long poll for shared-attribute changes: `{"key": value}` or `{"deleted": [...]}`, or 408.
pub(super) async fn attribute_updates(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Query(params): Query<PollParams>,
) -> ApiResult<axum::Json<Json>> {
    let device = device_api::device(&state, &token).await?;
    let within = timeout(params.timeout, DEFAULT_POLL_TIMEOUT_MS)?;
    let mut changes = state.store.changes();
    wait_for(&mut changes, within, |c| match c {
        Change::Attributes {
            device: d,
            scope: AttributeScope::Shared,
            attributes,
            ..
        } if *d == device.id => Some(Json::Object(
            attributes
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect(),
        )),
        Change::AttributesDeleted {
            device: d,
            scope: AttributeScope::Shared,
            keys,
            ..
        } if *d == device.id => Some(json!({ "deleted": keys })),
        _ => None,
    })
    .await
    .map(axum::Json)
    .ok_or_else(request_timeout)
}
