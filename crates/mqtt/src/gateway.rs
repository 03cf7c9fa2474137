//! ThingsBoard's gateway API (`v1/gateway/*`): a device flagged as a gateway speaks for
//! its sub-devices, naming them in the payloads. Part of the session loop (a child module
//! of `session`).
//!
//! Behaviour follows ThingsBoard's `AbstractGatewaySessionHandler.java` (topics, payloads,
//! sub-devices created on first sight and "connected" to the session), its
//! `JsonConverter.java` (`getJsonObjectForGateway`, `toGatewayJson`) for what is sent back,
//! and its gateway MQTT API reference (`gateway-mqtt-api.md`).
//!
//! - **A gateway reaches only its own sub-devices.** A name is looked up in the gateway's
//!   tenant only (`Store::gateway_child`); a name held by a device that is not this
//!   gateway's sub-device is refused, never reached.
//! - **Connected sub-devices.** A sub-device is connected to the session by
//!   `v1/gateway/connect` or by the first message naming it, until `v1/gateway/disconnect`;
//!   its shared-attribute updates and commands go to the gateway while it is connected.
//! - **In order.** Sub-devices are found (or created) before the message's writes start,
//!   in arrival order, so the writes of one connection still start in the order received;
//!   the PUBACK goes out once all of a message's writes are committed.
//! - **Nothing personal in logs.** Sub-device names are personal (sealed at rest): they
//!   go back to the gateway in reason strings, never into logs, which name devices by id.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::join_all;
use rmqtt_codec::types::Publish;
use serde_json::{Map, Value as Json, json};
use thingsafe_core::model::provisioning::{ClaimRequest, parse_claim_request};
use thingsafe_core::payload::{self, PayloadError};
use thingsafe_core::{AttributeScope, Device, DeviceId, now_ms, validate};
use thingsafe_store::{Change, RpcRequest, Store, StoreError};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Outcome, Session, ready, stored};
use crate::codes::PublishRefusal;
use crate::error::SessionError;
use crate::render;
use crate::topic::{self, GatewayTopic, Subscription};

/// Sub-devices connected through one gateway session at most; beyond, naming a new one is
/// refused until others are disconnected. Bounds the session's memory.
pub const MAX_CONNECTED_SUB_DEVICES: usize = 10_000;

/// ThingsBoard's `DEFAULT_DEVICE_TYPE`.
const DEFAULT_TYPE: &str = "default";
/// ThingsBoard's longest device name and type.
const MAX_NAME_CHARS: usize = 255;

/// The sub-devices connected through this session, by name and by id.
#[derive(Default)]
pub(super) struct SubDevices {
    by_name: HashMap<String, Arc<Device>>,
    names: HashMap<DeviceId, String>,
}

impl SubDevices {
    fn get(&self, name: &str) -> Option<&Arc<Device>> {
        self.by_name.get(name)
    }

    /// Connects a sub-device; false when it was connected already.
    fn connect(&mut self, device: Arc<Device>) -> bool {
        let fresh = self.names.insert(device.id, device.name.clone()).is_none();
        self.by_name.insert(device.name.clone(), device);
        fresh
    }

    fn disconnect(&mut self, name: &str) -> Option<Arc<Device>> {
        let device = self.by_name.remove(name)?;
        self.names.remove(&device.id);
        Some(device)
    }

    fn name_of(&self, id: DeviceId) -> Option<&str> {
        self.names.get(&id).map(String::as_str)
    }

    fn ids(&self) -> Vec<DeviceId> {
        self.names.keys().copied().collect()
    }

    fn len(&self) -> usize {
        self.names.len()
    }
}

/// A refused gateway message: what the gateway is told (it may name its sub-devices) and
/// what is logged (it never does).
#[derive(Debug, PartialEq)]
pub(super) struct Refusal {
    pub refusal: PublishRefusal,
    pub message: String,
    pub logged: String,
}

impl Refusal {
    fn payload(message: impl Into<String>) -> Refusal {
        let message = message.into();
        Refusal {
            refusal: PublishRefusal::PayloadFormatInvalid,
            logged: message.clone(),
            message,
        }
    }

    fn not_authorized(message: impl Into<String>) -> Refusal {
        let message = message.into();
        Refusal {
            refusal: PublishRefusal::NotAuthorized,
            logged: message.clone(),
            message,
        }
    }

    /// A payload that does not parse: the parser's message names sub-devices in its path
    /// (`$["Device A"]...`), so only what kind of error it is gets logged.
    fn parse(e: PayloadError) -> Refusal {
        let logged = match &e {
            PayloadError::Empty { .. }
            | PayloadError::InvalidUtf8 { .. }
            | PayloadError::Json { .. }
            | PayloadError::NoDevices => e.to_string(),
            PayloadError::WrongType { expected, .. } => {
                format!("a gateway payload does not parse: expected {expected}")
            }
            PayloadError::BadTimestamp { .. } => {
                "a gateway payload does not parse: a ts is not a whole number of milliseconds"
                    .into()
            }
            PayloadError::BadNumber { reason, .. } => {
                format!("a gateway payload does not parse: a number cannot be stored: {reason}")
            }
            PayloadError::BlankKey { .. } | PayloadError::KeyTooLong { .. } => {
                "a gateway payload does not parse: a key is blank or too long".into()
            }
            PayloadError::BlankDeviceName { .. } => {
                "a gateway payload does not parse: a sub-device name is blank".into()
            }
            _ => "a gateway payload does not parse".into(),
        };
        Refusal {
            refusal: PublishRefusal::PayloadFormatInvalid,
            message: e.to_string(),
            logged,
        }
    }
}

// --- payloads ----------------------------------------------------------------------------

/// `v1/gateway/connect`: `{"device":"Device A","type":"sensor"}`; the type is optional
/// (ThingsBoard's `getDeviceType`: absent or null is `default`; so is blank here).
pub(super) fn parse_connect(body: &[u8]) -> Result<(String, String), Refusal> {
    const EXAMPLE: &str = r#"{"device":"Device A","type":"sensor"}"#;
    let json = object(body, EXAMPLE)?;
    let device = device_name(&json, EXAMPLE)?;
    let device_type = match json.get("type") {
        None | Some(Json::Null) => DEFAULT_TYPE.to_string(),
        Some(Json::String(t)) if t.trim().is_empty() => DEFAULT_TYPE.to_string(),
        Some(Json::String(t)) => validate::name("type", t, MAX_NAME_CHARS)
            .map_err(|e| Refusal::payload(e.to_string()))?,
        Some(_) => {
            return Err(Refusal::payload(format!(
                "\"type\" must be a string, the device profile's name, as in {EXAMPLE}"
            )));
        }
    };
    Ok((device, device_type))
}

/// `v1/gateway/disconnect`: `{"device":"Device A"}`.
pub(super) fn parse_disconnect(body: &[u8]) -> Result<String, Refusal> {
    const EXAMPLE: &str = r#"{"device":"Device A"}"#;
    device_name(&object(body, EXAMPLE)?, EXAMPLE)
}

/// `v1/gateway/attributes/request`: `{"id":1,"device":"Device A","client":true,"key":"k"}`
/// or `"keys":["k1","k2"]`, read as ThingsBoard's `onDeviceAttributesRequestJson` does.
#[derive(Debug, PartialEq)]
pub(super) struct AttributeRequest {
    pub id: i32,
    pub device: String,
    /// Client attributes; else shared ones.
    pub client: bool,
    /// Distinct, in the order asked; empty asks for every attribute of the scope.
    pub keys: Vec<String>,
}

impl AttributeRequest {
    pub fn scope(&self) -> AttributeScope {
        if self.client {
            AttributeScope::Client
        } else {
            AttributeScope::Shared
        }
    }
}

pub(super) fn parse_attribute_request(body: &[u8]) -> Result<AttributeRequest, Refusal> {
    const EXAMPLE: &str = r#"{"id":1,"device":"Device A","client":true,"keys":["a","b"]}"#;
    let json = object(body, EXAMPLE)?;
    let id = whole_number(json.get("id"))
        .and_then(|n| i32::try_from(n).ok())
        .ok_or_else(|| {
            Refusal::payload(format!(
                "\"id\" must be the request's id, a 32-bit whole number, as in {EXAMPLE}"
            ))
        })?;
    let device = device_name(&json, EXAMPLE)?;
    // Gson's getAsBoolean: a boolean, or its text.
    let client = match json.get("client") {
        Some(Json::Bool(b)) => *b,
        Some(Json::String(s)) if s.eq_ignore_ascii_case("true") => true,
        Some(Json::String(s)) if s.eq_ignore_ascii_case("false") => false,
        _ => {
            return Err(Refusal::payload(format!(
                "\"client\" must be true (client attributes) or false (shared attributes), as in {EXAMPLE}"
            )));
        }
    };
    let bad_keys = || {
        Refusal::payload(format!(
            "the attribute names go in \"key\" (one name) or \"keys\" (an array of names), as in {EXAMPLE}"
        ))
    };
    // ThingsBoard reads "key" when present, else "keys".
    let asked: Vec<String> = match (json.get("key"), json.get("keys")) {
        (Some(key), _) => vec![text(key).ok_or_else(bad_keys)?],
        (None, Some(Json::Array(keys))) => keys
            .iter()
            .map(text)
            .collect::<Option<_>>()
            .ok_or_else(bad_keys)?,
        _ => return Err(bad_keys()),
    };
    let mut keys: Vec<String> = Vec::with_capacity(asked.len());
    for key in asked {
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    Ok(AttributeRequest {
        id,
        device,
        client,
        keys,
    })
}

/// `v1/gateway/rpc` from the gateway: `{"device":"Device A","id":N,"data":{...}}`, the
/// answer of a sub-device to command `N`.
#[derive(Debug, PartialEq)]
pub(super) struct RpcReply {
    pub device: String,
    pub id: u32,
    pub data: Json,
}

pub(super) fn parse_rpc_reply(body: &[u8]) -> Result<RpcReply, Refusal> {
    const EXAMPLE: &str = r#"{"device":"Device A","id":1,"data":{"success":true}}"#;
    let mut json = object(body, EXAMPLE)?;
    let device = device_name(&json, EXAMPLE)?;
    let id = whole_number(json.get("id"))
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            Refusal::payload(format!(
                "\"id\" must be the id of the command answered, as in {EXAMPLE}"
            ))
        })?;
    let data = json.remove("data").ok_or_else(|| {
        Refusal::payload(format!(
            "\"data\" must hold the sub-device's answer, as in {EXAMPLE}"
        ))
    })?;
    Ok(RpcReply { device, id, data })
}

/// A JSON object, or a refusal that shows the expected form.
fn object(body: &[u8], example: &str) -> Result<Map<String, Json>, Refusal> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Refusal::payload(format!(
            "the payload is empty: expected a JSON object such as {example}"
        )));
    }
    match payload::parse_json(body) {
        Ok(Json::Object(map)) => Ok(map),
        Ok(_) => Err(Refusal::payload(format!(
            "expected a JSON object such as {example}"
        ))),
        // The message says where, never what.
        Err(e) => Err(Refusal::payload(e.to_string())),
    }
}

/// The `device` member: a sub-device's name, as ThingsBoard's `checkDeviceName` and device
/// validation take it (not blank, at most 255 characters), kept exactly as written.
fn device_name(json: &Map<String, Json>, example: &str) -> Result<String, Refusal> {
    match json.get("device") {
        Some(Json::String(name)) => {
            check_name(name)?;
            Ok(name.clone())
        }
        _ => Err(Refusal::payload(format!(
            "\"device\" must be the sub-device's name, as in {example}"
        ))),
    }
}

fn check_name(name: &str) -> Result<(), Refusal> {
    validate::name("device", name, MAX_NAME_CHARS)
        .map(|_| ())
        .map_err(|e| Refusal::payload(format!("a sub-device name is refused: {e}")))
}

/// `v1/gateway/claim`: `{"Device A": {"secretKey": "...", "durationMs": 60000}, ...}`, each
/// sub-device's request read as `v1/devices/me/claim` reads one (ThingsBoard's
/// `onDeviceClaim` and `JsonConverter.convertToClaimDeviceProto`).
fn parse_claim(body: &[u8]) -> Result<Vec<(String, ClaimRequest)>, Refusal> {
    const EXAMPLE: &str = r#"{"Device A":{"secretKey":"value_A","durationMs":60000}}"#;
    let map = object(body, EXAMPLE)?;
    if map.is_empty() {
        return Err(Refusal::payload(format!(
            "the payload names no device: expected {EXAMPLE}"
        )));
    }
    map.into_iter()
        .map(|(name, request)| {
            check_name(&name)?;
            if !request.is_object() {
                let why = format!("must be a JSON object, as in {EXAMPLE}");
                return Err(Refusal {
                    refusal: PublishRefusal::PayloadFormatInvalid,
                    message: format!("the claiming request of {name:?} {why}"),
                    logged: format!("a sub-device's claiming request {why}"),
                });
            }
            let request =
                parse_claim_request(request.to_string().as_bytes()).map_err(|e| Refusal {
                    refusal: PublishRefusal::PayloadFormatInvalid,
                    message: format!("{name:?}: {e}"),
                    logged: e,
                })?;
            Ok((name, request))
        })
        .collect()
}

/// Gson's `getAsInt`/`getAsLong` on what gateways send: a whole number, or its text.
fn whole_number(value: Option<&Json>) -> Option<i64> {
    match value? {
        Json::Number(n) => n.as_i64(),
        Json::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Gson's `getAsString`: a string, or the text of a number or boolean.
fn text(value: &Json) -> Option<String> {
    match value {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

// --- what the gateway receives -------------------------------------------------------------

/// `v1/gateway/attributes/response`: `{"id":1,"device":"Device A","value":v}` when one name
/// was asked and found, else `{"id":1,"device":"Device A","values":{...}}` (ThingsBoard's
/// `JsonConverter.getJsonObjectForGateway`, with `isMultipleAttributesRequest` when more
/// than one name was asked); neither when nothing was found.
pub(super) fn attribute_response(
    request: &AttributeRequest,
    found: Vec<thingsafe_core::Attribute>,
) -> Bytes {
    let mut out = Map::new();
    out.insert("id".into(), Json::from(request.id));
    out.insert("device".into(), Json::String(request.device.clone()));
    // Every attribute of the scope (no names asked) comes as "values" too.
    let one = request.keys.len() == 1;
    match found.as_slice() {
        [] => {}
        [single] if one => {
            out.insert("value".into(), single.value.to_json());
        }
        _ => {
            let values = found
                .into_iter()
                .map(|a| (a.key, a.value.to_json()))
                .collect();
            out.insert("values".into(), Json::Object(values));
        }
    }
    Bytes::from(Json::Object(out).to_string())
}

/// `v1/gateway/rpc`: `{"device":"Device A","data":{"id":N,"method":..,"params":..}}`
/// (ThingsBoard's `JsonConverter.toGatewayJson`).
pub(super) fn rpc_command(name: &str, request: &RpcRequest) -> Bytes {
    let body = json!({
        "device": name,
        "data": { "id": request.id, "method": request.method, "params": request.params },
    });
    Bytes::from(body.to_string())
}

/// `v1/gateway/attributes`: `{"device":"Device A","data":{...}}`, the data as a device gets
/// it on `v1/devices/me/attributes`.
pub(super) fn attribute_update(change: &Change, sub: DeviceId, name: &str) -> Option<Bytes> {
    let data = render::attribute_update_json(change, sub)?;
    Some(Bytes::from(
        json!({ "device": name, "data": data }).to_string(),
    ))
}

// --- the session's part ------------------------------------------------------------------

/// Sub-devices found for a message, in the order named; or why not.
enum Found {
    Devices(Vec<Arc<Device>>),
    Refused(Refusal),
    Failed(StoreError),
}

/// Completes `devices` (the sub-devices of `names` connected already) by finding or
/// creating the others, all at once.
async fn find_sub_devices(
    store: &dyn Store,
    gateway: &Device,
    names: &[String],
    mut devices: Vec<Option<Arc<Device>>>,
    device_type: &str,
) -> Found {
    let unknown: Vec<usize> = (0..devices.len())
        .filter(|&i| devices[i].is_none())
        .collect();
    let lookups = unknown
        .iter()
        .map(|&i| store.gateway_child(gateway, &names[i], device_type));
    for (&i, result) in unknown.iter().zip(join_all(lookups).await) {
        match result {
            Ok(device) => devices[i] = Some(Arc::new(device)),
            Err(e @ (StoreError::Conflict(_) | StoreError::Forbidden(_))) => {
                return Found::Refused(Refusal {
                    refusal: PublishRefusal::NotAuthorized,
                    message: format!("{:?}: {e}", names[i]),
                    logged: e.to_string(),
                });
            }
            // The tenant's key was destroyed: its devices are gone.
            Err(e @ StoreError::NotFound(_)) => {
                return Found::Refused(Refusal::not_authorized(e.to_string()));
            }
            Err(e) => return Found::Failed(e),
        }
    }
    Found::Devices(devices.into_iter().flatten().collect())
}

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// A PUBLISH of the gateway to a gateway topic.
    pub(super) async fn on_gateway_publish(
        &mut self,
        topic: GatewayTopic,
        p: Publish,
    ) -> Result<(), SessionError> {
        let (packet_id, qos) = (p.packet_id, p.qos);
        let store = self.store.clone();
        match topic {
            GatewayTopic::Claim => match parse_claim(&p.payload) {
                Ok(per_device) => {
                    let (names, requests): (Vec<_>, Vec<_>) = per_device.into_iter().unzip();
                    let Some(devices) = self.sub_devices(&p, names, DEFAULT_TYPE).await? else {
                        return Ok(());
                    };
                    let gateway = self.device.id;
                    let opens = devices
                        .into_iter()
                        .zip(requests)
                        .map(|(device, request)| {
                            let store = store.clone();
                            async move {
                                let opened = store.open_claim(&device, &request).await?;
                                tracing::info!(device = %device.id, %gateway, opened, "claiming request of a sub-device");
                                Ok(())
                            }
                        })
                        .collect::<Vec<_>>();
                    self.push(
                        packet_id,
                        qos,
                        Box::pin(
                            async move { stored(join_all(opens).await.into_iter().collect()) },
                        ),
                    );
                }
                Err(refusal) => self.refuse_gateway(&p, refusal),
            },
            GatewayTopic::Connect => match parse_connect(&p.payload) {
                Ok((name, device_type)) => {
                    if let Some(devices) = self.sub_devices(&p, vec![name], &device_type).await? {
                        tracing::debug!(
                            gateway = %self.device.id,
                            device = %devices[0].id,
                            "sub-device connected"
                        );
                        self.push(packet_id, qos, ready(Outcome::Stored));
                    }
                }
                Err(refusal) => self.refuse_gateway(&p, refusal),
            },
            GatewayTopic::Disconnect => match parse_disconnect(&p.payload) {
                // ThingsBoard acknowledges a name it does not know, too.
                Ok(name) => {
                    if let Some(device) = self.gateway.disconnect(&name) {
                        tracing::debug!(
                            gateway = %self.device.id,
                            device = %device.id,
                            "sub-device disconnected"
                        );
                    }
                    self.push(packet_id, qos, ready(Outcome::Stored));
                }
                Err(refusal) => self.refuse_gateway(&p, refusal),
            },
            GatewayTopic::Telemetry => match payload::parse_gateway_telemetry(&p.payload, now_ms())
            {
                Ok(per_device) => {
                    let (names, points): (Vec<_>, Vec<_>) = per_device.into_iter().unzip();
                    let Some(devices) = self.sub_devices(&p, names, DEFAULT_TYPE).await? else {
                        return Ok(());
                    };
                    // Started in order on the first poll: the writer's queue keeps it.
                    let writes = devices
                        .into_iter()
                        .zip(points)
                        .filter(|(_, points)| !points.is_empty())
                        .map(|(device, points)| {
                            let store = store.clone();
                            async move { store.append_telemetry(&device, points).await }
                        })
                        .collect::<Vec<_>>();
                    self.push(
                        packet_id,
                        qos,
                        Box::pin(
                            async move { stored(join_all(writes).await.into_iter().collect()) },
                        ),
                    );
                }
                Err(e) => self.refuse_gateway(&p, Refusal::parse(e)),
            },
            GatewayTopic::Attributes => match payload::parse_gateway_attributes(&p.payload) {
                Ok(per_device) => {
                    let (names, attributes): (Vec<_>, Vec<_>) = per_device.into_iter().unzip();
                    let Some(devices) = self.sub_devices(&p, names, DEFAULT_TYPE).await? else {
                        return Ok(());
                    };
                    let writes = devices
                        .into_iter()
                        .zip(attributes)
                        .filter(|(_, attributes)| !attributes.is_empty())
                        .map(|(device, attributes)| {
                            let store = store.clone();
                            async move {
                                store
                                    .save_attributes(&device, AttributeScope::Client, attributes)
                                    .await
                            }
                        })
                        .collect::<Vec<_>>();
                    self.push(
                        packet_id,
                        qos,
                        Box::pin(
                            async move { stored(join_all(writes).await.into_iter().collect()) },
                        ),
                    );
                }
                Err(e) => self.refuse_gateway(&p, Refusal::parse(e)),
            },
            GatewayTopic::AttributeRequest => match parse_attribute_request(&p.payload) {
                Ok(request) => {
                    let names = vec![request.device.clone()];
                    let Some(devices) = self.sub_devices(&p, names, DEFAULT_TYPE).await? else {
                        return Ok(());
                    };
                    let device = devices[0].clone();
                    let answer = Box::pin(async move {
                        let keys = (!request.keys.is_empty()).then(|| request.keys.clone());
                        match store
                            .device_attributes(&device, request.scope(), keys)
                            .await
                        {
                            Ok(found) => Outcome::Answer(
                                Some((
                                    topic::GATEWAY_ATTRIBUTES_RESPONSE.to_string(),
                                    attribute_response(&request, found),
                                )),
                                Subscription::GatewayAttributeResponses,
                            ),
                            Err(e) => Outcome::Failed(e),
                        }
                    });
                    // Answered once the writes before it are committed, so that it reads
                    // them.
                    self.held = Some((packet_id, qos, answer));
                }
                Err(refusal) => self.refuse_gateway(&p, refusal),
            },
            GatewayTopic::RpcReply => match parse_rpc_reply(&p.payload) {
                Ok(reply) => {
                    let names = vec![reply.device.clone()];
                    let Some(devices) = self.sub_devices(&p, names, DEFAULT_TYPE).await? else {
                        return Ok(());
                    };
                    self.store.rpc_respond(devices[0].id, reply.id, reply.data);
                    self.push(packet_id, qos, ready(Outcome::Stored));
                }
                Err(refusal) => self.refuse_gateway(&p, refusal),
            },
        }
        Ok(())
    }

    /// The sub-devices `names` name, created on first sight with `device_type`, and
    /// connected to this session; `None` when the message was refused or failed (it is
    /// queued as such, to be answered in its turn).
    async fn sub_devices(
        &mut self,
        p: &Publish,
        names: Vec<String>,
        device_type: &str,
    ) -> Result<Option<Vec<Arc<Device>>>, SessionError> {
        let found = match self.connected_sub_devices(&names) {
            Ok(connected) => {
                let (store, gateway) = (self.store.clone(), self.device.clone());
                find_sub_devices(&*store, &gateway, &names, connected, device_type).await
            }
            Err(refusal) => Found::Refused(refusal),
        };
        let devices = match found {
            Found::Devices(devices) => devices,
            Found::Refused(refusal) => {
                self.refuse_gateway(p, refusal);
                return Ok(None);
            }
            Found::Failed(e) => {
                // Answered (by closing) after the messages before it; nothing more is read.
                self.closing = true;
                self.push(p.packet_id, p.qos, ready(Outcome::Failed(e)));
                return Ok(None);
            }
        };
        let mut fresh = Vec::new();
        for device in &devices {
            if self.gateway.connect(device.clone()) {
                fresh.push(device.id);
            }
        }
        // Commands that waited for a sub-device go out as it connects.
        for id in fresh {
            self.deliver_sub_commands(id).await?;
        }
        Ok(Some(devices))
    }

    /// The sub-devices of `names` connected already (`None` for the others), or why a
    /// name is refused.
    fn connected_sub_devices(&self, names: &[String]) -> Result<Vec<Option<Arc<Device>>>, Refusal> {
        let mut devices = Vec::with_capacity(names.len());
        for name in names {
            check_name(name)?;
            devices.push(self.gateway.get(name).cloned());
        }
        let unknown = devices.iter().filter(|d| d.is_none()).count();
        if self.gateway.len() + unknown > MAX_CONNECTED_SUB_DEVICES {
            return Err(Refusal::not_authorized(format!(
                "this gateway session has {MAX_CONNECTED_SUB_DEVICES} sub-devices connected, the most allowed: disconnect some (v1/gateway/disconnect) first"
            )));
        }
        Ok(devices)
    }

    fn refuse_gateway(&mut self, p: &Publish, refusal: Refusal) {
        self.refuse_logged(p, refusal.refusal, refusal.message, &refusal.logged);
    }

    /// Hands the gateway the commands waiting for a connected sub-device, if it
    /// subscribed to them.
    async fn deliver_sub_commands(&mut self, sub: DeviceId) -> Result<(), SessionError> {
        let Some(qos) = self.subs.gateway_rpc else {
            return Ok(());
        };
        let Some(name) = self.gateway.name_of(sub).map(str::to_string) else {
            return Ok(());
        };
        let commands = self.store.rpc_take(sub);
        if commands.is_empty() {
            return Ok(());
        }
        for request in commands {
            tracing::debug!(
                gateway = %self.device.id,
                device = %sub,
                rpc = request.id,
                "delivering an RPC command through the gateway"
            );
            self.publish(topic::GATEWAY_RPC, rpc_command(&name, &request), qos)
                .await?;
            // Handed to the gateway, the device's agent: delivered (its PUBACK names no
            // command in its topic).
            self.store.rpc_delivered(sub, request.id);
        }
        self.flush().await
    }

    /// After subscribing to `v1/gateway/rpc`, or missing changes: every connected
    /// sub-device's waiting commands.
    pub(super) async fn deliver_all_sub_commands(&mut self) -> Result<(), SessionError> {
        for sub in self.gateway.ids() {
            self.deliver_sub_commands(sub).await?;
        }
        Ok(())
    }

    /// A committed change that may concern a connected sub-device.
    pub(super) async fn on_gateway_change(&mut self, change: &Change) -> Result<(), SessionError> {
        let sub = match change {
            Change::RpcWaiting { device } => return self.deliver_sub_commands(*device).await,
            Change::Attributes { device, .. } | Change::AttributesDeleted { device, .. } => *device,
            _ => return Ok(()),
        };
        let Some(qos) = self.subs.gateway_attributes else {
            return Ok(());
        };
        let Some(name) = self.gateway.name_of(sub) else {
            return Ok(());
        };
        if let Some(body) = attribute_update(change, sub, name) {
            self.publish(topic::GATEWAY_ATTRIBUTES, body, qos).await?;
            self.flush().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use thingsafe_core::payload::Value;
    use thingsafe_core::{Attribute, TenantId};

    fn payload_error(r: Result<impl std::fmt::Debug, Refusal>) -> String {
        let refusal = r.unwrap_err();
        assert_eq!(refusal.refusal, PublishRefusal::PayloadFormatInvalid);
        refusal.message
    }

    #[test]
    fn connect_and_disconnect() {
        assert_eq!(
            parse_connect(br#"{"device":"Device A","type":"Sensor A"}"#).unwrap(),
            ("Device A".into(), "Sensor A".into())
        );
        for body in [
            r#"{"device":"Device A"}"#,
            r#"{"device":"Device A","type":null}"#,
            r#"{"device":"Device A","type":"  "}"#,
        ] {
            assert_eq!(
                parse_connect(body.as_bytes()).unwrap(),
                ("Device A".into(), "default".into()),
                "{body}"
            );
        }
        // The name is kept as written.
        assert_eq!(
            parse_disconnect(br#"{"device":" Device A"}"#).unwrap(),
            " Device A"
        );
        for (body, message) in [
            ("", "the payload is empty"),
            ("  ", "the payload is empty"),
            ("{", "the payload is not valid JSON: EOF while parsing"),
            ("[]", "expected a JSON object such as"),
            ("{}", "\"device\" must be the sub-device's name"),
            (
                r#"{"device":3}"#,
                "\"device\" must be the sub-device's name",
            ),
            (r#"{"device":" "}"#, "device must not be empty"),
            (r#"{"device":"a\u0000b"}"#, "control characters"),
        ] {
            for result in [
                payload_error(parse_connect(body.as_bytes())),
                payload_error(parse_disconnect(body.as_bytes())),
            ] {
                assert!(result.contains(message), "{body}: {result}");
            }
        }
        let long = format!(r#"{{"device":"{}"}}"#, "x".repeat(256));
        assert!(payload_error(parse_connect(long.as_bytes())).contains("longer than 255"));
        assert!(
            payload_error(parse_connect(br#"{"device":"A","type":7}"#))
                .contains("\"type\" must be a string")
        );
        assert!(
            !payload_error(parse_connect(br#"{"device":"Secret Name","x":"#)).contains("Secret")
        );
    }

    #[test]
    fn attribute_requests_as_thingsboard_reads_them() {
        assert_eq!(
            parse_attribute_request(br#"{"id":1,"device":"Device A","client":true,"key":"fw"}"#)
                .unwrap(),
            AttributeRequest {
                id: 1,
                device: "Device A".into(),
                client: true,
                keys: vec!["fw".into()],
            }
        );
        let r = parse_attribute_request(
            br#"{"id":"-7","device":"D","client":"FALSE","keys":["a","b","a",5]}"#,
        )
        .unwrap();
        assert_eq!(
            (r.id, r.client, r.keys.clone()),
            (-7, false, vec!["a".into(), "b".into(), "5".into()])
        );
        assert_eq!(r.scope(), AttributeScope::Shared);
        // "key" wins over "keys".
        let r =
            parse_attribute_request(br#"{"id":2,"device":"D","client":true,"key":"k","keys":[1]}"#)
                .unwrap();
        assert_eq!(r.keys, vec!["k".to_string()]);
        for (body, message) in [
            (
                r#"{"device":"D","client":true,"key":"k"}"#,
                "\"id\" must be",
            ),
            (
                r#"{"id":1.5,"device":"D","client":true,"key":"k"}"#,
                "\"id\" must be",
            ),
            (
                r#"{"id":2147483648,"device":"D","client":true,"key":"k"}"#,
                "\"id\" must be",
            ),
            (r#"{"id":1,"client":true,"key":"k"}"#, "\"device\" must be"),
            (r#"{"id":1,"device":"D","key":"k"}"#, "\"client\" must be"),
            (
                r#"{"id":1,"device":"D","client":"yes","key":"k"}"#,
                "\"client\" must be",
            ),
            (
                r#"{"id":1,"device":"D","client":true}"#,
                "\"key\" (one name)",
            ),
            (
                r#"{"id":1,"device":"D","client":true,"keys":"a"}"#,
                "\"key\" (one name)",
            ),
            (
                r#"{"id":1,"device":"D","client":true,"keys":[{}]}"#,
                "\"key\" (one name)",
            ),
            (
                r#"{"id":1,"device":"D","client":true,"key":null}"#,
                "\"key\" (one name)",
            ),
        ] {
            let message_got = payload_error(parse_attribute_request(body.as_bytes()));
            assert!(message_got.contains(message), "{body}: {message_got}");
        }
    }

    #[test]
    fn rpc_replies() {
        assert_eq!(
            parse_rpc_reply(br#"{"device":"Device A","id":4,"data":{"success":true}}"#).unwrap(),
            RpcReply {
                device: "Device A".into(),
                id: 4,
                data: json!({"success": true}),
            }
        );
        assert_eq!(
            parse_rpc_reply(br#"{"device":"D","id":"4294967295","data":null}"#)
                .unwrap()
                .id,
            u32::MAX
        );
        for (body, message) in [
            (r#"{"device":"D","data":1}"#, "\"id\" must be"),
            (r#"{"device":"D","id":-1,"data":1}"#, "\"id\" must be"),
            (
                r#"{"device":"D","id":4294967296,"data":1}"#,
                "\"id\" must be",
            ),
            (r#"{"device":"D","id":1}"#, "\"data\" must hold"),
            (r#"{"id":1,"data":1}"#, "\"device\" must be"),
        ] {
            let got = payload_error(parse_rpc_reply(body.as_bytes()));
            assert!(got.contains(message), "{body}: {got}");
        }
    }

    fn attribute(key: &str, value: Value) -> Attribute {
        Attribute {
            scope: AttributeScope::Client,
            key: key.into(),
            value,
            last_update_ms: 1,
        }
    }

    #[test]
    fn attribute_responses_have_thingsboards_shape() {
        let request = |keys: &[&str]| AttributeRequest {
            id: 3,
            device: "Device A".into(),
            client: true,
            keys: keys.iter().map(|k| k.to_string()).collect(),
        };
        let json = |b: Bytes| serde_json::from_slice::<Json>(&b).unwrap();
        assert_eq!(
            json(attribute_response(
                &request(&["fw"]),
                vec![attribute("fw", Value::String("1.0".into()))]
            )),
            json!({"id": 3, "device": "Device A", "value": "1.0"})
        );
        assert_eq!(
            json(attribute_response(
                &request(&["fw", "hw"]),
                vec![attribute("fw", Value::Long(1))]
            )),
            json!({"id": 3, "device": "Device A", "values": {"fw": 1}}),
            "several names asked: values, even when one is found"
        );
        assert_eq!(
            json(attribute_response(
                &request(&["fw", "hw"]),
                vec![
                    attribute("fw", Value::Long(1)),
                    attribute("hw", Value::Bool(true))
                ]
            )),
            json!({"id": 3, "device": "Device A", "values": {"fw": 1, "hw": true}})
        );
        assert_eq!(
            json(attribute_response(&request(&["fw"]), vec![])),
            json!({"id": 3, "device": "Device A"}),
            "nothing found: neither"
        );
        assert_eq!(
            json(attribute_response(
                &request(&[]),
                vec![attribute("fw", Value::Long(1))]
            )),
            json!({"id": 3, "device": "Device A", "values": {"fw": 1}})
        );
    }

    #[test]
    fn commands_and_updates_name_the_sub_device() {
        let request = RpcRequest {
            id: 9,
            method: "toggle_gpio".into(),
            params: json!({"pin": 1}),
            oneway: false,
            expires_ms: 0,
        };
        assert_eq!(
            serde_json::from_slice::<Json>(&rpc_command("Device A", &request)).unwrap(),
            json!({"device": "Device A", "data": {"id": 9, "method": "toggle_gpio", "params": {"pin": 1}}})
        );
        let (sub, tenant) = (DeviceId::random(), TenantId::random());
        let set = Change::Attributes {
            device: sub,
            tenant,
            scope: AttributeScope::Shared,
            attributes: vec![("target".into(), Value::Long(22))],
        };
        assert_eq!(
            serde_json::from_slice::<Json>(&attribute_update(&set, sub, "Device A").unwrap())
                .unwrap(),
            json!({"device": "Device A", "data": {"target": 22}})
        );
        let deleted = Change::AttributesDeleted {
            device: sub,
            tenant,
            scope: AttributeScope::Shared,
            keys: vec!["target".into()],
        };
        assert_eq!(
            serde_json::from_slice::<Json>(&attribute_update(&deleted, sub, "Device A").unwrap())
                .unwrap(),
            json!({"device": "Device A", "data": {"deleted": ["target"]}})
        );
        assert_eq!(attribute_update(&set, DeviceId::random(), "Device A"), None);
        let client = Change::Attributes {
            device: sub,
            tenant,
            scope: AttributeScope::Client,
            attributes: vec![("x".into(), Value::Long(1))],
        };
        assert_eq!(attribute_update(&client, sub, "Device A"), None);
    }

    #[test]
    fn parse_errors_are_logged_without_sub_device_names() {
        let cases: [&[u8]; 6] = [
            br#"{"Secret Name":{"a":[1,"#,
            br#"{"Secret Name":[{"ts":"x","values":{}}]}"#,
            br#"{"Secret Name":{"a":1}}"#,
            br#"{"Secret Name":[{"":1}]}"#,
            br#"{"Secret Name":[3]}"#,
            br#"{"Secret Name":[{"n":1e999999}]}"#,
        ];
        for body in cases {
            let refusal = Refusal::parse(payload::parse_gateway_telemetry(body, 0).unwrap_err());
            assert!(!refusal.logged.contains("Secret"), "{}", refusal.logged);
            assert!(
                refusal.logged.contains("gateway payload") || refusal.logged.contains("JSON"),
                "{}",
                refusal.logged
            );
            assert!(
                refusal.message.contains("Secret") || refusal.message.contains("JSON"),
                "{}",
                refusal.message
            );
        }
    }

    /// The session over an in-memory pipe, against a real store, with MQTT 5.
    mod session {
        use std::num::NonZeroU16;
        use std::time::Duration;

        use bytestring::ByteString;
        use futures_util::{SinkExt, StreamExt};
        use rmqtt_codec::types::QoS;
        use rmqtt_codec::{MqttCodec, MqttPacket, v5};
        use thingsafe_core::{Authority, DeviceCredentials};
        use thingsafe_store::{NewDevice, NewUser, Scope, sqlite::SqliteStore};
        use thingsafe_vault::{MasterKey, Vault};
        use tokio::io::DuplexStream;
        use tokio_util::codec::Framed;

        use super::*;
        use crate::MqttSettings;

        const WAIT: Duration = Duration::from_secs(10);

        struct Fixture {
            _dir: tempfile::TempDir,
            store: Arc<dyn Store>,
            scope: Scope,
            gateway: Device,
        }

        async fn fixture() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let (master, _) = MasterKey::load_or_create(dir.path(), None).unwrap();
            let vault = Arc::new(Vault::open(dir.path(), master).unwrap());
            let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path(), vault).unwrap());
            let admin = NewUser {
                email: "admin@acme.test".into(),
                password_hash: None,
                authority: Authority::TenantAdmin,
                customer_id: None,
                first_name: None,
                last_name: None,
                birth_date: None,
            };
            let scope = Scope::Tenant(store.sign_up("Acme", admin).await.unwrap().0.id);
            let new = |name: &str, token: &str| NewDevice {
                name: name.into(),
                device_type: "default".into(),
                label: None,
                credentials: DeviceCredentials::AccessToken(token.into()),
            };
            let gateway = store.create_gateway(&scope, new("GW", "GW")).await.unwrap();
            store
                .create_device(&scope, new("Plain", "PLAIN"))
                .await
                .unwrap();
            Fixture {
                _dir: dir,
                store,
                scope,
                gateway,
            }
        }

        struct Client(Framed<DuplexStream, MqttCodec>);

        impl Client {
            async fn connect(f: &Fixture, token: &str) -> Client {
                let (client, server) = tokio::io::duplex(64 * 1024);
                // Never stopped: a dropped sender is a server that never stops.
                let (_, stop_rx) = tokio::sync::watch::channel(false);
                let settings = MqttSettings {
                    receive_maximum: 8,
                    ..MqttSettings::default()
                };
                tokio::spawn(crate::handle(
                    server,
                    f.store.clone(),
                    Arc::new(settings),
                    stop_rx,
                ));
                let mut c = Client(Framed::new(client, MqttCodec::V5(v5::Codec::new(0, 0))));
                c.send(v5::Packet::Connect(Box::new(v5::Connect {
                    clean_start: true,
                    keep_alive: 30,
                    client_id: ByteString::from_static("gw"),
                    username: Some(ByteString::from(token)),
                    ..v5::Connect::default()
                })))
                .await;
                match c.recv().await {
                    v5::Packet::ConnectAck(a) => {
                        assert_eq!(a.reason_code, v5::ConnectAckReason::Success)
                    }
                    other => panic!("expected a CONNACK, got {other:?}"),
                }
                c
            }

            async fn send(&mut self, packet: v5::Packet) {
                self.0.send(MqttPacket::V5(packet)).await.unwrap();
            }

            async fn recv(&mut self) -> v5::Packet {
                match tokio::time::timeout(WAIT, self.0.next()).await {
                    Ok(Some(Ok((MqttPacket::V5(p), _)))) => p,
                    other => panic!("expected a packet, got {other:?}"),
                }
            }

            async fn publish(&mut self, id: u16, topic: &str, payload: &str) {
                self.send(v5::Packet::Publish(Box::new(Publish {
                    dup: false,
                    retain: false,
                    qos: QoS::AtLeastOnce,
                    topic: ByteString::from(topic),
                    packet_id: NonZeroU16::new(id),
                    payload: Bytes::from(payload.to_string()),
                    properties: None,
                })))
                .await;
            }

            /// The PUBACK of `id`: its reason code and reason string.
            async fn puback(&mut self, id: u16) -> (u8, String) {
                match self.recv().await {
                    v5::Packet::PublishAck(a) => {
                        assert_eq!(a.packet_id.get(), id);
                        let why = a.reason_string.map(|r| r.to_string()).unwrap_or_default();
                        (a.reason_code.into(), why)
                    }
                    other => panic!("expected the PUBACK of {id}, got {other:?}"),
                }
            }

            async fn subscribe(&mut self, filter: &str) -> u8 {
                self.send(v5::Packet::Subscribe(v5::Subscribe {
                    packet_id: NonZeroU16::new(100).unwrap(),
                    id: None,
                    user_properties: Vec::new(),
                    topic_filters: vec![(
                        ByteString::from(filter),
                        v5::SubscriptionOptions {
                            qos: QoS::AtLeastOnce,
                            no_local: false,
                            retain_as_published: false,
                            retain_handling: v5::RetainHandling::AtSubscribe,
                        },
                    )],
                }))
                .await;
                match self.recv().await {
                    v5::Packet::SubscribeAck(a) => a.status[0].into(),
                    other => panic!("expected a SUBACK, got {other:?}"),
                }
            }

            /// The next PUBLISH: topic and JSON payload (acknowledged).
            async fn message(&mut self) -> (String, Json) {
                match self.recv().await {
                    v5::Packet::Publish(p) => {
                        if let Some(packet_id) = p.packet_id {
                            self.send(v5::Packet::PublishAck(v5::PublishAck {
                                packet_id,
                                reason_code: v5::PublishAckReason::Success,
                                properties: Vec::new(),
                                reason_string: None,
                            }))
                            .await;
                        }
                        (
                            p.topic.to_string(),
                            serde_json::from_slice(&p.payload).unwrap(),
                        )
                    }
                    other => panic!("expected a PUBLISH, got {other:?}"),
                }
            }

            /// Nothing was sent before the answer to a ping.
            async fn nothing_pending(&mut self) {
                self.send(v5::Packet::PingRequest).await;
                assert_eq!(self.recv().await, v5::Packet::PingResponse);
            }
        }

        async fn client_attribute(f: &Fixture, device: &Device, key: &str) -> Option<Value> {
            f.store
                .device_attributes(device, AttributeScope::Client, Some(vec![key.into()]))
                .await
                .unwrap()
                .pop()
                .map(|a| a.value)
        }

        #[tokio::test]
        async fn pipelined_messages_for_new_sub_devices_keep_their_order() {
            let f = fixture().await;
            let mut c = Client::connect(&f, "GW").await;
            // Eight messages in flight at once, each naming a sub-device not seen yet.
            for i in 1..=8u16 {
                let (topic, body) = if i % 2 == 1 {
                    (
                        "v1/gateway/attributes",
                        format!(r#"{{"Dev {i}":{{"n":{i}}},"Shared":{{"last":{i}}}}}"#),
                    )
                } else {
                    (
                        "v1/gateway/telemetry",
                        format!(r#"{{"Dev {i}":[{{"ts":{i},"values":{{"n":{i}}}}}]}}"#),
                    )
                };
                c.publish(i, topic, &body).await;
            }
            for i in 1..=8u16 {
                assert_eq!(c.puback(i).await, (0, String::new()));
            }
            let shared = f
                .store
                .gateway_child(&f.gateway, "Shared", "x")
                .await
                .unwrap();
            assert_eq!(
                client_attribute(&f, &shared, "last").await,
                Some(Value::Long(7))
            );
            for i in 1..=8 {
                let dev = f
                    .store
                    .gateway_child(&f.gateway, &format!("Dev {i}"), "x")
                    .await
                    .unwrap();
                assert_eq!(dev.device_type, "default");
                let latest = f.store.device_latest(&dev, None).await.unwrap();
                let attribute = client_attribute(&f, &dev, "n").await;
                if i % 2 == 1 {
                    assert_eq!(attribute, Some(Value::Long(i)));
                } else {
                    assert_eq!(latest[0].value, Value::Long(i));
                }
            }
        }

        #[tokio::test]
        async fn refusals_are_clear_and_the_session_goes_on() {
            let f = fixture().await;
            let mut plain = Client::connect(&f, "PLAIN").await;
            plain
                .publish(1, "v1/gateway/telemetry", r#"{"A":[{"x":1}]}"#)
                .await;
            let (code, why) = plain.puback(1).await;
            assert_eq!(code, 0x87);
            assert!(why.contains("flagged as a gateway"), "{why}");
            for filter in [
                "v1/gateway/rpc",
                "v1/gateway/attributes",
                "v1/gateway/attributes/response",
            ] {
                assert_eq!(plain.subscribe(filter).await, 0x87, "{filter}");
            }

            let mut c = Client::connect(&f, "GW").await;
            c.publish(1, "v1/gateway/claim", r#"{"A":"s"}"#).await;
            let (code, why) = c.puback(1).await;
            assert_eq!(code, 0x99);
            assert!(why.contains("claiming request"), "{why}");
            c.publish(2, "v1/gateway/telemetry", r#"{"A":{"x":1}}"#)
                .await;
            assert_eq!(c.puback(2).await.0, 0x99);
            c.publish(3, "v1/gateway/connect", r#"{"type":"x"}"#).await;
            assert_eq!(c.puback(3).await.0, 0x99);
            // A device of the tenant that is not its sub-device, and itself.
            for (id, name) in [(4, "Plain"), (5, "GW")] {
                c.publish(
                    id,
                    "v1/gateway/attributes",
                    &format!(r#"{{"{name}":{{"x":1}}}}"#),
                )
                .await;
                let (code, why) = c.puback(id).await;
                assert_eq!(code, 0x87);
                assert!(why.contains("not a sub-device of this gateway"), "{why}");
            }
            c.publish(
                6,
                "v1/gateway/connect",
                r#"{"device":"Device A","type":"sensor"}"#,
            )
            .await;
            assert_eq!(c.puback(6).await, (0, String::new()));
            let a = f
                .store
                .gateway_child(&f.gateway, "Device A", "other")
                .await
                .unwrap();
            assert_eq!(a.device_type, "sensor");
            assert_eq!(
                f.store.device(&f.scope, a.id).await.unwrap().gateway_id,
                Some(f.gateway.id)
            );
        }

        #[tokio::test]
        async fn commands_and_updates_reach_connected_sub_devices() {
            let f = fixture().await;
            let a = f
                .store
                .gateway_child(&f.gateway, "Device A", "default")
                .await
                .unwrap();
            let mut c = Client::connect(&f, "GW").await;
            assert_eq!(c.subscribe("v1/gateway/rpc").await, 1);
            assert_eq!(c.subscribe("v1/gateway/attributes").await, 1);
            assert_eq!(c.subscribe("v1/gateway/attributes/response").await, 1);

            // A command waits until its sub-device connects through the gateway.
            let waiting =
                f.store
                    .rpc_submit(&a, "toggle".into(), json!({"pin": 1}), false, i64::MAX);
            c.nothing_pending().await;
            c.publish(1, "v1/gateway/connect", r#"{"device":"Device A"}"#)
                .await;
            assert_eq!(
                c.message().await,
                (
                    "v1/gateway/rpc".into(),
                    json!({"device": "Device A", "data": {"id": waiting.id, "method": "toggle", "params": {"pin": 1}}})
                )
            );
            assert_eq!(c.puback(1).await.0, 0);
            // Commands sent while it is connected go at once; the answer reaches the caller.
            let mut changes = f.store.changes();
            let now = f
                .store
                .rpc_submit(&a, "read".into(), Json::Null, false, i64::MAX);
            let (_, command) = c.message().await;
            assert_eq!(command["data"]["id"], now.id);
            let reply = json!({"device": "Device A", "id": now.id, "data": {"on": true}});
            c.publish(2, "v1/gateway/rpc", &reply.to_string()).await;
            assert_eq!(c.puback(2).await.0, 0);
            loop {
                let change = tokio::time::timeout(WAIT, changes.recv())
                    .await
                    .unwrap()
                    .unwrap();
                if let Change::RpcResponse {
                    device,
                    id,
                    response,
                } = &*change
                {
                    assert_eq!(
                        (*device, *id, response),
                        (a.id, now.id, &json!({"on": true}))
                    );
                    break;
                }
            }

            // Shared attributes of the sub-device, set and deleted.
            let target = vec![("target".to_string(), Value::Long(22))];
            f.store
                .save_attributes(&a, AttributeScope::Shared, target)
                .await
                .unwrap();
            assert_eq!(
                c.message().await,
                (
                    "v1/gateway/attributes".into(),
                    json!({"device": "Device A", "data": {"target": 22}})
                )
            );
            c.publish(
                3,
                "v1/gateway/attributes/request",
                r#"{"id":5,"device":"Device A","client":false,"key":"target"}"#,
            )
            .await;
            assert_eq!(c.puback(3).await.0, 0);
            assert_eq!(
                c.message().await,
                (
                    "v1/gateway/attributes/response".into(),
                    json!({"id": 5, "device": "Device A", "value": 22})
                )
            );
            f.store
                .remove_attributes(&a, AttributeScope::Shared, vec!["target".into()])
                .await
                .unwrap();
            assert_eq!(
                c.message().await.1,
                json!({"device": "Device A", "data": {"deleted": ["target"]}})
            );

            // Disconnected: nothing more for it.
            c.publish(4, "v1/gateway/disconnect", r#"{"device":"Device A"}"#)
                .await;
            assert_eq!(c.puback(4).await.0, 0);
            let later = vec![("target".to_string(), Value::Long(23))];
            f.store
                .save_attributes(&a, AttributeScope::Shared, later)
                .await
                .unwrap();
            f.store
                .rpc_submit(&a, "later".into(), Json::Null, false, i64::MAX);
            c.nothing_pending().await;
            // An unknown name is acknowledged too, as ThingsBoard does.
            c.publish(5, "v1/gateway/disconnect", r#"{"device":"Nobody"}"#)
                .await;
            assert_eq!(c.puback(5).await.0, 0);
        }
    }

    #[test]
    fn claims_name_their_sub_devices_and_malformed_ones_say_why() {
        let claims = parse_claim(
            br#"{"Device A":{"secretKey":"value_A","durationMs":60000},"Device B":{}}"#,
        )
        .unwrap();
        assert_eq!(claims.len(), 2);
        assert_eq!(claims[0].0, "Device A");
        assert_eq!(claims[0].1.secret_key, "value_A");
        assert_eq!(claims[0].1.duration_ms, 60000);
        assert_eq!(claims[1].1.secret_key, "");
        // Lenient, as Gson reads it.
        assert_eq!(
            parse_claim(b"{'Device A':{secretKey:k}}").unwrap()[0]
                .1
                .secret_key,
            "k"
        );
        for (body, why) in [
            (
                &br#"{"A":"value"}"#[..],
                "the claiming request of \"A\" must be a JSON object",
            ),
            (br#"{"A":{"durationMs":"soon"}}"#, "\"A\": durationMs"),
            (br#"{"A":{"secretKey":5}}"#, "secretKey must be a string"),
            (b"{}", "names no device"),
            (b"[]", "expected a JSON object"),
            (br#"{" ":{}}"#, "sub-device name is refused"),
            (b"", "the payload is empty"),
            (br#"{"A":"#, "not valid JSON"),
        ] {
            let refusal = parse_claim(body).expect_err("refused");
            assert!(
                refusal.message.contains(why),
                "{}: {}",
                String::from_utf8_lossy(body),
                refusal.message
            );
            assert_eq!(refusal.refusal, PublishRefusal::PayloadFormatInvalid);
            assert!(
                !refusal.logged.contains("\"A\""),
                "names are not logged: {}",
                refusal.logged
            );
        }
    }

    #[test]
    fn sub_devices_connect_and_disconnect_by_name() {
        let mut subs = SubDevices::default();
        let device = Arc::new(Device {
            id: DeviceId::random(),
            tenant_id: TenantId::random(),
            customer_id: None,
            name: "Device A".into(),
            device_type: "default".into(),
            label: None,
            created_ms: 0,
            gateway: false,
            gateway_id: Some(DeviceId::random()),
            device_profile_id: None,
        });
        assert!(subs.connect(device.clone()));
        assert!(!subs.connect(device.clone()), "connected once");
        assert_eq!(subs.name_of(device.id), Some("Device A"));
        assert_eq!(subs.ids(), vec![device.id]);
        assert_eq!(subs.disconnect("Device A").map(|d| d.id), Some(device.id));
        assert_eq!(subs.name_of(device.id), None);
        assert!(subs.disconnect("Device A").is_none());
        assert!(subs.get("Device A").is_none());
    }
}
