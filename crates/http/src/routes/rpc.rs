//! Server-side RPC: users send commands (`/api/rpc/oneway|twoway/{deviceId}`); devices on
//! HTTP take them by long polling (`GET /api/v1/{token}/rpc`) and answer with
//! `POST /api/v1/{token}/rpc/{id}`. MQTT devices take them from the same mailbox.
//! With `"persistent": true` (ThingsBoard 3.3+) the command is stored and answered at once
//! with its `rpcId`; `/api/rpc/persistent/...` reads and deletes such commands.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value as Json, json};
use thingsafe_core::{AttributeScope, Authority, DeviceId, RpcId, now_ms};
use thingsafe_store::{Change, NewPersistentRpc, PersistentRpc, RpcSort, RpcStatus};
use tokio::sync::broadcast;

use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::{Query, parse_id};
use crate::routes::device_api;
use crate::tb;

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

/// ThingsBoard's default number of deliveries of a persistent command after the first
/// when the device does not acknowledge it (`actors.rpc.max_retries`).
const DEFAULT_RETRIES: u32 = 5;
const MAX_RETRIES: u32 = 100;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RpcCommand {
    method: String,
    #[serde(default)]
    params: Json,
    timeout: Option<u64>,
    /// Stored until the device takes it (ThingsBoard's persistent RPC).
    #[serde(default)]
    persistent: bool,
    /// Not delivered after this time (ms since the epoch); overrides `timeout`.
    expiration_time: Option<i64>,
    retries: Option<u32>,
    additional_info: Option<Json>,
}

/// The command's JSON body. A body of the wrong shape (a field of the wrong type, no
/// `method`) is refused with 400 and what is wrong, as ThingsBoard's "Invalid request
/// body" (not the 422 of the shared extractor).
pub(super) struct CommandBody(RpcCommand);

impl<S: Send + Sync> axum::extract::FromRequest<S> for CommandBody {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<RpcCommand>::from_request(req, state).await {
            Ok(axum::Json(cmd)) => Ok(CommandBody(cmd)),
            Err(rejection) => {
                let status = rejection.status();
                let mut e = ApiError::bad_request(format!(
                    "Invalid request body: {}",
                    rejection.body_text()
                ));
                if status != StatusCode::UNPROCESSABLE_ENTITY {
                    e.status = status;
                }
                Err(e)
            }
        }
    }
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
    if cmd.persistent {
        let retries = cmd.retries.unwrap_or(DEFAULT_RETRIES);
        if retries > MAX_RETRIES {
            return Err(ApiError::bad_request(format!(
                "retries must be at most {MAX_RETRIES}"
            )));
        }
        let expires_ms = match cmd.expiration_time {
            Some(at) if at <= 0 => {
                return Err(ApiError::bad_request(
                    "expirationTime must be a time in ms since the epoch",
                ));
            }
            Some(at) => at,
            None => now_ms() + within.as_millis() as i64,
        };
        let rpc = state
            .store
            .rpc_persist(
                &device,
                NewPersistentRpc {
                    method: cmd.method,
                    params: cmd.params,
                    oneway,
                    expires_ms,
                    retries,
                    additional_info: cmd.additional_info,
                },
            )
            .await?;
        tracing::info!(device = %device.id, rpc = %rpc.id, oneway, status = rpc.status.as_str(), "persistent RPC stored");
        return Ok(Some(json!({ "rpcId": rpc.id })));
    }
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

/// 200 once the device took the command; a persistent one: `{"rpcId"}` at once.
pub(super) async fn oneway(
    State(state): State<AppState>,
    principal: Principal,
    Path(device): Path<String>,
    CommandBody(cmd): CommandBody,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    Ok(match send(&state, &principal, &device, cmd, true).await? {
        Some(stored) => axum::Json(stored).into_response(),
        None => StatusCode::OK.into_response(),
    })
}

pub(super) async fn twoway(
    State(state): State<AppState>,
    principal: Principal,
    Path(device): Path<String>,
    CommandBody(cmd): CommandBody,
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
        // A poll answers one command; any others wait for the next poll.
        if let Some(request) = state.store.rpc_take_one(device.id) {
            // Taken over HTTP: delivered (a persistent command is DELIVERED).
            state.store.rpc_delivered(device.id, request.id);
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

// --- persistent RPC (ThingsBoard's RpcV2Controller) ---------------------------------------

/// ThingsBoard's `Rpc`: the command as sent (`request`, its `ToDeviceRpcRequest`: `body`
/// with `method` and `params` as a JSON string), the device's answer and the status.
fn render(rpc: &PersistentRpc) -> Json {
    let additional_info = rpc.additional_info.clone().unwrap_or(Json::Null);
    json!({
        "id": tb::entity_id("RPC", rpc.id.as_uuid()),
        "createdTime": rpc.created_ms,
        "tenantId": tb::entity_id("TENANT", rpc.tenant_id.as_uuid()),
        "deviceId": tb::entity_id("DEVICE", rpc.device_id.as_uuid()),
        "expirationTime": rpc.expires_ms,
        "request": {
            "id": rpc.id,
            "tenantId": tb::entity_id("TENANT", rpc.tenant_id.as_uuid()),
            "deviceId": tb::entity_id("DEVICE", rpc.device_id.as_uuid()),
            "oneway": rpc.oneway,
            "expirationTime": rpc.expires_ms,
            "body": { "method": rpc.method, "params": rpc.params.to_string() },
            "persisted": true,
            "retries": rpc.retries,
            "additionalInfo": rpc.additional_info.as_ref().map(|i| i.to_string()),
        },
        "response": rpc.response,
        "status": rpc.status.as_str(),
        "additionalInfo": additional_info,
    })
}

pub(super) async fn persistent_get(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Json>> {
    principal.require(&[Authority::TenantAdmin, Authority::CustomerUser])?;
    let id: RpcId = parse_id("rpc", &id)?;
    let rpc = state.store.persistent_rpc(&principal.scope(), id).await?;
    Ok(axum::Json(render(&rpc)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PersistentParams {
    page_size: Option<usize>,
    page: Option<usize>,
    rpc_status: Option<String>,
    sort_property: Option<String>,
    sort_order: Option<String>,
    text_search: Option<String>,
}

pub(super) async fn persistent_by_device(
    State(state): State<AppState>,
    principal: Principal,
    Path(device): Path<String>,
    Query(params): Query<PersistentParams>,
) -> ApiResult<axum::Json<Json>> {
    principal.require(&[Authority::TenantAdmin, Authority::CustomerUser])?;
    let device: DeviceId = parse_id("device", &device)?;
    let page = tb::PageParams::of(params.page_size, params.page, params.text_search).request()?;
    let status = params
        .rpc_status
        .filter(|s| !s.is_empty())
        .map(|s| {
            RpcStatus::parse(&s).ok_or_else(|| {
                let known: Vec<&str> = RpcStatus::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::bad_request(format!(
                    "rpcStatus {s:?} is not one of {}",
                    known.join(", ")
                ))
            })
        })
        .transpose()?;
    let sort = match params.sort_property.as_deref().unwrap_or("createdTime") {
        "createdTime" => RpcSort::CreatedTime,
        "expirationTime" => RpcSort::ExpirationTime,
        "status" => RpcSort::Status,
        other => {
            return Err(ApiError::bad_request(format!(
                "sortProperty {other:?} is not one of createdTime, expirationTime, status"
            )));
        }
    };
    let descending = match params.sort_order.as_deref().unwrap_or("ASC") {
        o if o.eq_ignore_ascii_case("ASC") => false,
        o if o.eq_ignore_ascii_case("DESC") => true,
        other => {
            return Err(ApiError::bad_request(format!(
                "sortOrder {other:?} is not ASC or DESC"
            )));
        }
    };
    let found = state
        .store
        .persistent_rpcs(&principal.scope(), device, status, sort, descending, &page)
        .await?;
    Ok(axum::Json(tb::page(found, render)))
}

/// Deletes a persistent command; a waiting one is never delivered. Tenant administrators
/// only, as in ThingsBoard.
pub(super) async fn persistent_delete(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    principal.require(&[Authority::TenantAdmin])?;
    let id: RpcId = parse_id("rpc", &id)?;
    state
        .store
        .delete_persistent_rpc(&principal.scope(), id)
        .await?;
    Ok(StatusCode::OK)
}
