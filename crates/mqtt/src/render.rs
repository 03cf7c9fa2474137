//! What the server publishes to a device, in ThingsBoard's JSON shapes
//! (`JsonConverter.toJson` for `AttributeUpdateNotificationMsg` and
//! `GetAttributeResponseMsg`).

use bytes::Bytes;
use serde_json::{Map, Value as Json};
use thingsafe_core::payload::{AttributeRequest, Value};
use thingsafe_core::{AttributeScope, Device, DeviceId};
use thingsafe_store::{Change, Store, StoreError};

/// A committed change as the payload of `v1/devices/me/attributes`, if it is one the
/// device gets: shared attributes of this device set (`{"key":value,...}`) or deleted
/// (`{"deleted":["key",...]}`).
pub fn attribute_update(change: &Change, me: DeviceId) -> Option<Bytes> {
    attribute_update_json(change, me).map(|json| Bytes::from(json.to_string()))
}

/// The JSON of [`attribute_update`]; a gateway gets it as the `data` of its sub-device's
/// update.
pub fn attribute_update_json(change: &Change, me: DeviceId) -> Option<Json> {
    let json = match change {
        Change::Attributes {
            device,
            scope: AttributeScope::Shared,
            attributes,
            ..
        } if *device == me && !attributes.is_empty() => Json::Object(object(attributes)),
        Change::AttributesDeleted {
            device,
            scope: AttributeScope::Shared,
            keys,
            ..
        } if *device == me && !keys.is_empty() => {
            let mut out = Map::new();
            out.insert(
                "deleted".into(),
                Json::Array(keys.iter().cloned().map(Json::String).collect()),
            );
            Json::Object(out)
        }
        _ => return None,
    };
    Some(json)
}

fn object(attributes: &[(String, Value)]) -> Map<String, Json> {
    attributes
        .iter()
        .map(|(k, v)| (k.clone(), v.to_json()))
        .collect()
}

/// Which scopes an attribute request reads, and which keys of each (`None`: all). Like
/// ThingsBoard (`DeviceActorMessageProcessor.getAttributesKvEntries`) and our HTTP device
/// API: with no keys asked, every client and shared attribute; with keys of one scope
/// only, that scope only.
pub fn requested_scopes(
    request: &AttributeRequest,
) -> Vec<(&'static str, AttributeScope, Option<Vec<String>>)> {
    let client = request.client_keys.clone().filter(|k| !k.is_empty());
    let shared = request.shared_keys.clone().filter(|k| !k.is_empty());
    let everything = client.is_none() && shared.is_none();
    [
        ("client", AttributeScope::Client, client),
        ("shared", AttributeScope::Shared, shared),
    ]
    .into_iter()
    .filter(|(_, _, wanted)| everything || wanted.is_some())
    .collect()
}

/// The answer to an attribute request: `{"client":{...},"shared":{...}}`, the same
/// shape the HTTP device API returns.
pub async fn attribute_response(
    store: &dyn Store,
    device: &Device,
    request: &AttributeRequest,
) -> Result<Bytes, StoreError> {
    let mut out = Map::new();
    for (name, scope, keys) in requested_scopes(request) {
        let attributes = store.device_attributes(device, scope, keys).await?;
        let values: Map<String, Json> = attributes
            .into_iter()
            .map(|a| (a.key, a.value.to_json()))
            .collect();
        out.insert(name.to_string(), Json::Object(values));
    }
    Ok(Bytes::from(Json::Object(out).to_string()))
}

/// A command as the device receives it on `v1/devices/me/rpc/request/$id`:
/// `{"method": ..., "params": ...}`.
pub fn rpc_command(request: &thingsafe_store::RpcRequest) -> Bytes {
    let body = serde_json::json!({ "method": request.method, "params": request.params });
    Bytes::from(body.to_string())
}

/// A device's answer to a command: its JSON (read as Gson reads it, leniently), or its
/// text when it is not JSON.
pub fn rpc_reply(payload: &[u8]) -> Json {
    thingsafe_core::payload::parse_json(payload)
        .unwrap_or_else(|_| Json::String(String::from_utf8_lossy(payload).into_owned()))
}

/// The server's answer to a device's own call, as the payload of
/// `v1/devices/me/rpc/response/$id` (the answers themselves are transport-independent:
/// `thingsafe_core::device_rpc`).
pub fn rpc_call_answer(payload: &[u8], limits: &crate::MqttSettings) -> Result<Bytes, String> {
    let limits = thingsafe_core::device_rpc::SessionLimits {
        max_payload_size: limits.max_packet_size,
        max_inflight_messages: limits.receive_maximum,
        rate_limits: limits.rate_limits.settings(),
    };
    thingsafe_core::device_rpc::answer(payload, limits)
        .map(|answer| Bytes::from(answer.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use thingsafe_core::TenantId;

    fn ids() -> (DeviceId, DeviceId, TenantId) {
        (DeviceId::random(), DeviceId::random(), TenantId::random())
    }

    #[test]
    fn shared_updates_and_deletions_reach_their_device_only() {
        let (me, other, tenant) = ids();
        let set = Change::Attributes {
            device: me,
            tenant,
            scope: AttributeScope::Shared,
            attributes: vec![
                ("target".into(), Value::Long(22)),
                ("mode".into(), Value::String("eco".into())),
            ],
        };
        assert_eq!(
            attribute_update(&set, me).unwrap(),
            r#"{"mode":"eco","target":22}"#
        );
        assert_eq!(attribute_update(&set, other), None);
        let deleted = Change::AttributesDeleted {
            device: me,
            tenant,
            scope: AttributeScope::Shared,
            keys: vec!["target".into()],
        };
        assert_eq!(
            attribute_update(&deleted, me).unwrap(),
            r#"{"deleted":["target"]}"#
        );
        // Client and server attributes, and telemetry, are not sent to the device.
        for scope in [AttributeScope::Client, AttributeScope::Server] {
            let c = Change::Attributes {
                device: me,
                tenant,
                scope,
                attributes: vec![("x".into(), Value::Bool(true))],
            };
            assert_eq!(attribute_update(&c, me), None);
        }
        let t = Change::Telemetry {
            device: me,
            tenant,
            points: vec![],
        };
        assert_eq!(attribute_update(&t, me), None);
    }

    #[test]
    fn attribute_requests_read_the_scopes_thingsboard_reads() {
        let scopes = |client: Option<&[&str]>, shared: Option<&[&str]>| {
            let request = AttributeRequest {
                client_keys: client.map(|k| k.iter().map(|s| s.to_string()).collect()),
                shared_keys: shared.map(|k| k.iter().map(|s| s.to_string()).collect()),
            };
            requested_scopes(&request)
                .into_iter()
                .map(|(name, _, keys)| (name, keys.map(|k| k.join(","))))
                .collect::<Vec<_>>()
        };
        assert_eq!(scopes(None, None), vec![("client", None), ("shared", None)]);
        assert_eq!(
            scopes(Some(&[]), Some(&[])),
            vec![("client", None), ("shared", None)]
        );
        assert_eq!(
            scopes(Some(&["a", "b"]), None),
            vec![("client", Some("a,b".into()))]
        );
        assert_eq!(
            scopes(Some(&[]), Some(&["c"])),
            vec![("shared", Some("c".into()))]
        );
        assert_eq!(
            scopes(Some(&["a"]), Some(&["c"])),
            vec![("client", Some("a".into())), ("shared", Some("c".into()))]
        );
    }
}
