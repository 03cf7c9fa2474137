//! ThingsBoard's WebSocket API for live data: `/api/ws` (authenticate with an `authCmd`) and
//! `/api/ws/plugins/telemetry?token=JWT`. Commands come as
//! `{"authCmd": {...}, "cmds": [{"cmdId", "type": "TIMESERIES" | "ATTRIBUTES", "entityType",
//! "entityId", "keys", "scope", "unsubscribe"}]}` or in the older form
//! `{"tsSubCmds": [...], "attrSubCmds": [...]}`. Each subscription first gets the current
//! values, then every committed change, as
//! `{"subscriptionId", "errorCode", "errorMsg", "data": {"key": [[ts, "value"]]}, "latestValues"}`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};
use thingsafe_core::oauth2::ApiScope;
use thingsafe_core::payload::{Point, Value};
use thingsafe_core::{AttributeScope, DeviceId};
use thingsafe_store::Change;
use tokio::sync::broadcast::error::RecvError;

use crate::AppState;
use crate::auth::{self, Principal};
use crate::extract::Query;

/// ThingsBoard's WebSocket error codes.
const NO_ERROR: u8 = 0;
const INTERNAL_ERROR: u8 = 1;
const BAD_REQUEST: u8 = 2;
const UNAUTHORIZED: u8 = 3;

/// How often a session re-checks that its sign-in is still valid.
const SESSION_RECHECK: Duration = Duration::from_secs(30);

#[derive(Deserialize)]
pub(crate) struct WsParams {
    token: Option<String>,
}

/// A browser's session cookie signs the connection in, when the page opening it is ours
/// (same origin): a page of another site cannot use a visitor's session this way.
pub(crate) async fn upgrade(
    State(state): State<AppState>,
    Query(params): Query<WsParams>,
    headers: axum::http::HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let cookie_token = crate::console::same_origin(&headers)
        .then(|| auth::cookie(&headers, auth::SESSION_COOKIE).map(str::to_owned))
        .flatten();
    let token = params.token.or(cookie_token);
    ws.on_upgrade(move |socket| session(socket, state, token))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Commands {
    auth_cmd: Option<AuthCmd>,
    #[serde(default)]
    cmds: Vec<SubscriptionCmd>,
    #[serde(default)]
    ts_sub_cmds: Vec<SubscriptionCmd>,
    #[serde(default)]
    attr_sub_cmds: Vec<SubscriptionCmd>,
}

#[derive(Deserialize)]
struct AuthCmd {
    token: String,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct SubscriptionCmd {
    cmd_id: i64,
    #[serde(rename = "type")]
    kind: Option<String>,
    entity_type: Option<String>,
    entity_id: Option<String>,
    keys: Option<String>,
    scope: Option<String>,
    #[serde(default)]
    unsubscribe: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Timeseries,
    Attributes(Option<AttributeScope>),
}

struct Subscription {
    device: DeviceId,
    kind: Kind,
    keys: Option<HashSet<String>>,
}

impl Subscription {
    fn wants(&self, key: &str) -> bool {
        self.keys.as_ref().is_none_or(|k| k.contains(key))
    }
}

fn update(id: i64, data: Map<String, Json>, latest: Map<String, Json>) -> String {
    json!({
        "subscriptionId": id, "errorCode": NO_ERROR, "errorMsg": null,
        "data": data, "latestValues": latest,
    })
    .to_string()
}

fn error(id: i64, code: u8, message: &str) -> String {
    json!({
        "subscriptionId": id, "errorCode": code, "errorMsg": message,
        "data": null, "latestValues": {},
    })
    .to_string()
}

/// `{"key": [[ts, "value"]]}` and `{"key": ts}` for points.
fn points_update(id: i64, points: &[Point], sub: &Subscription) -> Option<String> {
    let mut data = Map::new();
    let mut latest = Map::new();
    for p in points.iter().filter(|p| sub.wants(&p.key)) {
        let series = data
            .entry(p.key.clone())
            .or_insert_with(|| Json::Array(vec![]));
        series
            .as_array_mut()
            .expect("array")
            .push(json!([p.ts, p.value.as_string()]));
        let newest = latest.entry(p.key.clone()).or_insert(json!(p.ts));
        if newest.as_i64() < Some(p.ts) {
            *newest = json!(p.ts);
        }
    }
    (!data.is_empty()).then(|| update(id, data, latest))
}

fn attributes_update(
    id: i64,
    ts: i64,
    attributes: &[(String, Value)],
    sub: &Subscription,
) -> Option<String> {
    let points: Vec<Point> = attributes
        .iter()
        .map(|(key, value)| Point {
            ts,
            key: key.clone(),
            value: value.clone(),
        })
        .collect();
    points_update(id, &points, sub)
}

async fn session(mut socket: WebSocket, state: AppState, query_token: Option<String>) {
    let mut principal: Option<Principal> = None;
    if let Some(token) = query_token {
        match auth::authenticate_bearer(&state, &token, Some(ApiScope::TelemetryRead)).await {
            Ok(p) => principal = Some(p),
            Err(e) => {
                let _ = socket
                    .send(Message::Text(error(0, UNAUTHORIZED, &e.message).into()))
                    .await;
                return;
            }
        }
    }
    let mut changes = state.store.changes();
    let mut subscriptions: HashMap<i64, Subscription> = HashMap::new();
    let mut recheck = tokio::time::interval(SESSION_RECHECK);
    recheck.tick().await;
    metrics::gauge!("thingsafe_ws_sessions").increment(1.0);
    loop {
        let outgoing: Vec<String> = tokio::select! {
            message = socket.recv() => match message {
                Some(Ok(Message::Text(text))) => {
                    handle_commands(&state, &mut principal, &mut subscriptions, text.as_str()).await
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => continue,
            },
            change = changes.recv() => match change {
                Ok(change) => deliver(&subscriptions, &change),
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "a WebSocket session fell behind the live feed");
                    subscriptions.keys().map(|id| error(*id, INTERNAL_ERROR, &format!("{missed} updates were dropped because the connection is too slow"))).collect()
                }
                Err(RecvError::Closed) => break,
            },
            _ = recheck.tick() => {
                if let Some(p) = &principal {
                    match p.is_live(&state).await {
                        true => vec![],
                        false => {
                            let _ = socket.send(Message::Text(error(0, UNAUTHORIZED, "the session has ended; sign in again").into())).await;
                            break;
                        }
                    }
                } else {
                    vec![]
                }
            }
        };
        for text in outgoing {
            if socket.send(Message::Text(text.into())).await.is_err() {
                metrics::gauge!("thingsafe_ws_sessions").decrement(1.0);
                return;
            }
        }
    }
    metrics::gauge!("thingsafe_ws_sessions").decrement(1.0);
}

fn deliver(subscriptions: &HashMap<i64, Subscription>, change: &Change) -> Vec<String> {
    let mut out = Vec::new();
    for (id, sub) in subscriptions {
        let message = match change {
            Change::Telemetry { device, points, .. }
                if *device == sub.device && sub.kind == Kind::Timeseries =>
            {
                points_update(*id, points, sub)
            }
            Change::Attributes {
                device,
                scope,
                attributes,
                ..
            } if *device == sub.device => match sub.kind {
                Kind::Attributes(wanted) if wanted.is_none_or(|w| w == *scope) => {
                    attributes_update(*id, thingsafe_core::now_ms(), attributes, sub)
                }
                _ => None,
            },
            _ => None,
        };
        out.extend(message);
    }
    out
}

async fn handle_commands(
    state: &AppState,
    principal: &mut Option<Principal>,
    subscriptions: &mut HashMap<i64, Subscription>,
    text: &str,
) -> Vec<String> {
    let commands: Commands = match serde_json::from_str(text) {
        Ok(c) => c,
        Err(e) => {
            return vec![error(
                0,
                BAD_REQUEST,
                &format!("Failed to parse the command: {e}"),
            )];
        }
    };
    if let Some(auth_cmd) = commands.auth_cmd {
        match auth::authenticate_bearer(state, &auth_cmd.token, Some(ApiScope::TelemetryRead)).await
        {
            Ok(p) => *principal = Some(p),
            Err(e) => return vec![error(0, UNAUTHORIZED, &e.message)],
        }
    }
    let mut out = Vec::new();
    let typed = commands.cmds.into_iter().map(|c| (c.kind.clone(), c));
    let legacy_ts = commands
        .ts_sub_cmds
        .into_iter()
        .map(|c| (Some("TIMESERIES".into()), c));
    let legacy_attr = commands
        .attr_sub_cmds
        .into_iter()
        .map(|c| (Some("ATTRIBUTES".into()), c));
    for (kind, cmd) in typed.chain(legacy_ts).chain(legacy_attr) {
        let Some(principal) = principal.as_ref() else {
            out.push(error(
                cmd.cmd_id,
                UNAUTHORIZED,
                "send an authCmd with your access token first",
            ));
            continue;
        };
        out.extend(subscribe(state, principal, subscriptions, kind.as_deref(), cmd).await);
    }
    out
}

async fn subscribe(
    state: &AppState,
    principal: &Principal,
    subscriptions: &mut HashMap<i64, Subscription>,
    kind: Option<&str>,
    cmd: SubscriptionCmd,
) -> Option<String> {
    let id = cmd.cmd_id;
    let kind = match kind {
        Some(k) if k.ends_with("_UNSUBSCRIBE") => {
            subscriptions.remove(&id);
            return None;
        }
        Some("TIMESERIES") => Kind::Timeseries,
        Some("ATTRIBUTES") => match cmd.scope.as_deref().filter(|s| !s.is_empty()) {
            None => Kind::Attributes(None),
            Some(s) => match s.parse() {
                Ok(scope) => Kind::Attributes(Some(scope)),
                Err(e) => return Some(error(id, BAD_REQUEST, &e)),
            },
        },
        other => {
            return Some(error(
                id,
                BAD_REQUEST,
                &format!("command type {other:?} is not supported: use TIMESERIES or ATTRIBUTES"),
            ));
        }
    };
    if cmd.unsubscribe {
        subscriptions.remove(&id);
        return None;
    }
    if cmd.entity_type.as_deref().unwrap_or("DEVICE") != "DEVICE" {
        return Some(error(
            id,
            BAD_REQUEST,
            "only DEVICE entities can be subscribed to",
        ));
    }
    let Some(device) = cmd
        .entity_id
        .as_deref()
        .and_then(|s| s.parse::<DeviceId>().ok())
    else {
        return Some(error(
            id,
            BAD_REQUEST,
            "entityId must be a device id (UUID)",
        ));
    };
    let keys: Option<HashSet<String>> = cmd
        .keys
        .as_deref()
        .map(|k| {
            k.split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_string)
                .collect::<HashSet<_>>()
        })
        .filter(|k| !k.is_empty());
    let sub = Subscription { device, kind, keys };
    let scope = principal.scope();
    let initial = match kind {
        Kind::Timeseries => state
            .store
            .latest_telemetry(&scope, device, None)
            .await
            .map(|points| points_update(id, &points, &sub)),
        Kind::Attributes(wanted) => {
            let scopes = wanted.map_or(AttributeScope::ALL.to_vec(), |s| vec![s]);
            let mut points = Vec::new();
            let mut result = Ok(());
            for s in scopes {
                match state.store.attributes(&scope, device, s, None).await {
                    Ok(attrs) => points.extend(attrs.into_iter().map(|a| Point {
                        ts: a.last_update_ms,
                        key: a.key,
                        value: a.value,
                    })),
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            result.map(|_| points_update(id, &points, &sub))
        }
    };
    match initial {
        Ok(message) => {
            subscriptions.insert(id, sub);
            Some(message.unwrap_or_else(|| update(id, Map::new(), Map::new())))
        }
        Err(thingsafe_store::StoreError::NotFound(_)) => Some(error(
            id,
            BAD_REQUEST,
            "Requested item wasn't found: no such device",
        )),
        Err(e) => {
            tracing::error!(error = %e, "WebSocket subscription failed");
            Some(error(
                id,
                INTERNAL_ERROR,
                "the subscription failed; the error is logged",
            ))
        }
    }
}
