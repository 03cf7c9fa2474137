//! ThingsBoard's device topics and what a device may do with them.
//!
//! A device only ever names itself (`v1/devices/me/...`, or ThingsBoard's short `v2/...`
//! forms, which have no device in them at all): the connection's access token decides
//! which device that is, so no topic can reach another device's data. Everything that is
//! not listed here is refused.
//!
//! The short topics (`MqttTopics.*_SHORT_*`): `v2/t` telemetry, `v2/a` attributes (publish,
//! and subscribe for shared-attribute updates), `v2/a/req/$id` answered on `v2/a/res/$id`,
//! `v2/r/req/+` server-side commands answered on `v2/r/res/$id`, and the device's own calls
//! on `v2/r/req/$id` answered on `v2/r/res/$id`. Each has a `/j` form (`v2/t/j`,
//! `v2/a/req/j/$id`, ...) that says the payload is JSON; answers and deliveries take the
//! form of the topic asked on or subscribed to. The `/p` (protobuf) forms are refused with
//! a message that says so: devices here speak JSON.
//!
//! Topic names and their handling follow ThingsBoard's `MqttTopics.java` and
//! `MqttTransportHandler.java` (`processDevicePublish`, `processSubscribe`).

use rmqtt_codec::types::QoS;

/// Telemetry from the device (`JsonConverter.convertToTelemetryProto`).
pub const TELEMETRY: &str = "v1/devices/me/telemetry";
/// Client attributes from the device; subscribing to it delivers shared-attribute updates.
pub const ATTRIBUTES: &str = "v1/devices/me/attributes";
/// `v1/devices/me/attributes/request/$id`: the device asks for attribute values.
pub const ATTRIBUTES_REQUEST_PREFIX: &str = "v1/devices/me/attributes/request/";
/// `v1/devices/me/attributes/response/$id`: the answer to a request.
pub const ATTRIBUTES_RESPONSE_PREFIX: &str = "v1/devices/me/attributes/response/";
pub const ATTRIBUTES_RESPONSE_FILTER: &str = "v1/devices/me/attributes/response/+";
/// `v1/devices/me/rpc/request/$id`: server-side commands to the device (we publish), and
/// the device's own calls to the server (it publishes).
pub const RPC_REQUEST_PREFIX: &str = "v1/devices/me/rpc/request/";
/// `v1/devices/me/rpc/response/$id`: the device's answers to our commands (it publishes),
/// and our answers to its calls (we publish).
pub const RPC_RESPONSE_PREFIX: &str = "v1/devices/me/rpc/response/";
pub const RPC_REQUEST_FILTER: &str = "v1/devices/me/rpc/request/+";
/// Answers to the device's own RPC requests.
pub const RPC_RESPONSE_FILTER: &str = "v1/devices/me/rpc/response/+";

/// The device opens its claiming window (ThingsBoard's device-side claiming).
pub const CLAIM: &str = "v1/devices/me/claim";

/// ThingsBoard's gateway topics (`MqttTopics.GATEWAY_*`), for a device flagged as a
/// gateway only: it speaks for its sub-devices, naming them in the payload.
pub const GATEWAY_CONNECT: &str = "v1/gateway/connect";
pub const GATEWAY_DISCONNECT: &str = "v1/gateway/disconnect";
pub const GATEWAY_TELEMETRY: &str = "v1/gateway/telemetry";
/// Client attributes of sub-devices; subscribing to it delivers their shared-attribute
/// updates.
pub const GATEWAY_ATTRIBUTES: &str = "v1/gateway/attributes";
pub const GATEWAY_ATTRIBUTES_REQUEST: &str = "v1/gateway/attributes/request";
pub const GATEWAY_ATTRIBUTES_RESPONSE: &str = "v1/gateway/attributes/response";
/// Commands to sub-devices (we publish) and their answers (the gateway publishes).
pub const GATEWAY_RPC: &str = "v1/gateway/rpc";
pub const GATEWAY_CLAIM: &str = "v1/gateway/claim";

/// Which of ThingsBoard's topic families a request came on or a subscription was made
/// on (its `TopicType`): answers and deliveries go out in the same family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Family {
    /// `v1/devices/me/...`
    #[default]
    V1,
    /// `v2/a`, `v2/a/res/`, `v2/r/req/`, `v2/r/res/`
    V2,
    /// `v2/a/j`, `v2/a/res/j/`, `v2/r/req/j/`, `v2/r/res/j/`
    V2Json,
}

impl Family {
    /// Where shared-attribute updates go.
    pub fn attributes(self) -> &'static str {
        match self {
            Family::V1 => ATTRIBUTES,
            Family::V2 => "v2/a",
            Family::V2Json => "v2/a/j",
        }
    }

    fn attribute_response_prefix(self) -> &'static str {
        match self {
            Family::V1 => ATTRIBUTES_RESPONSE_PREFIX,
            Family::V2 => "v2/a/res/",
            Family::V2Json => "v2/a/res/j/",
        }
    }

    fn rpc_request_prefix(self) -> &'static str {
        match self {
            Family::V1 => RPC_REQUEST_PREFIX,
            Family::V2 => "v2/r/req/",
            Family::V2Json => "v2/r/req/j/",
        }
    }

    fn rpc_response_prefix(self) -> &'static str {
        match self {
            Family::V1 => RPC_RESPONSE_PREFIX,
            Family::V2 => "v2/r/res/",
            Family::V2Json => "v2/r/res/j/",
        }
    }
}

/// What a PUBLISH from the device asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishTopic {
    Telemetry,
    Attributes,
    /// The request id, as ThingsBoard reads it (`Integer.parseInt`). ThingsBoard answers
    /// only requests with an id of 0 or more (`JsonMqttAdaptor`); so do we.
    AttributeRequest(i32, Family),
    /// The device calls the server (client-side RPC); answered on
    /// `v1/devices/me/rpc/response/$id` (or its family's form).
    RpcCall(i32, Family),
    /// The device answers our command `$id`.
    RpcReply(u32),
    /// A gateway speaks for its sub-devices.
    Gateway(GatewayTopic),
    /// `v1/devices/me/claim`: a customer may claim the device for a while.
    Claim,
}

/// The gateway topics a gateway publishes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GatewayTopic {
    Connect,
    Disconnect,
    Telemetry,
    Attributes,
    AttributeRequest,
    /// A sub-device's answer to a command.
    RpcReply,
    /// Sub-devices open their claiming windows.
    Claim,
}

impl GatewayTopic {
    /// The label of the topic in metrics.
    pub fn label(self) -> &'static str {
        match self {
            GatewayTopic::Connect => "gateway_connect",
            GatewayTopic::Disconnect => "gateway_disconnect",
            GatewayTopic::Telemetry => "gateway_telemetry",
            GatewayTopic::Attributes => "gateway_attributes",
            GatewayTopic::AttributeRequest => "gateway_attribute_request",
            GatewayTopic::RpcReply => "gateway_rpc_reply",
            GatewayTopic::Claim => "gateway_claim",
        }
    }
}

/// Why a PUBLISH topic was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// Not a topic this device may publish to.
    #[error(
        "publishing to {0:?} is not allowed: a device publishes to {TELEMETRY}, {ATTRIBUTES}, {ATTRIBUTES_REQUEST_PREFIX}$id, {RPC_REQUEST_PREFIX}$id, {RPC_RESPONSE_PREFIX}$id or {CLAIM}, or the short forms v2/t, v2/a, v2/a/req/$id, v2/r/req/$id, v2/r/res/$id"
    )]
    NotAllowed(String),
    /// A gateway topic, from a device that is not flagged as a gateway.
    #[error(
        "publishing to {0:?} is not allowed: only a device flagged as a gateway (additionalInfo.gateway) uses the v1/gateway/ topics"
    )]
    NotAGateway(String),
    /// A request id that is not a 32-bit whole number (ThingsBoard refuses it as a
    /// malformed request).
    #[error("the request id {0:?} is not a whole number")]
    BadRequestId(String),
    /// One of ThingsBoard's protobuf topics (`v2/.../p`).
    #[error(
        "publishing to {0:?} is refused: protobuf payloads are not supported by this server; publish JSON to the same topic without /p (e.g. v2/t or v2/t/j)"
    )]
    Protobuf(String),
}

/// The short topics' table: (topic or prefix, what it is, its family). A prefix ends in
/// `/` and is followed by the request id.
const SHORT_TOPICS: &[(&str, Short, Family)] = &[
    ("v2/t", Short::Telemetry, Family::V2),
    ("v2/t/j", Short::Telemetry, Family::V2Json),
    ("v2/a", Short::Attributes, Family::V2),
    ("v2/a/j", Short::Attributes, Family::V2Json),
    ("v2/a/req/j/", Short::AttributeRequest, Family::V2Json),
    ("v2/a/req/", Short::AttributeRequest, Family::V2),
    ("v2/r/req/j/", Short::RpcCall, Family::V2Json),
    ("v2/r/req/", Short::RpcCall, Family::V2),
    ("v2/r/res/j/", Short::RpcReply, Family::V2Json),
    ("v2/r/res/", Short::RpcReply, Family::V2),
];

#[derive(Clone, Copy)]
enum Short {
    Telemetry,
    Attributes,
    AttributeRequest,
    RpcCall,
    RpcReply,
}

/// ThingsBoard's protobuf forms of the short topics: `v2/t/p`, `v2/a/p`, and the request
/// and answer prefixes followed by `p/`.
fn is_protobuf(topic: &str) -> bool {
    matches!(topic, "v2/t/p" | "v2/a/p")
        || ["v2/a/req/p/", "v2/a/res/p/", "v2/r/req/p/", "v2/r/res/p/"]
            .iter()
            .any(|prefix| topic.starts_with(prefix))
}

/// Reads a short (`v2/...`) PUBLISH topic.
fn short_publish_topic(topic: &str) -> Result<PublishTopic, TopicError> {
    if is_protobuf(topic) {
        return Err(TopicError::Protobuf(topic.to_string()));
    }
    let bad_id = |id: &str| TopicError::BadRequestId(id.to_string());
    for &(name, short, family) in SHORT_TOPICS {
        let id = if name.ends_with('/') {
            match topic.strip_prefix(name) {
                Some(id) => id,
                None => continue,
            }
        } else if topic == name {
            ""
        } else {
            continue;
        };
        return match short {
            Short::Telemetry => Ok(PublishTopic::Telemetry),
            Short::Attributes => Ok(PublishTopic::Attributes),
            Short::AttributeRequest => java_parse_int(id)
                .map(|id| PublishTopic::AttributeRequest(id, family))
                .ok_or_else(|| bad_id(id)),
            Short::RpcCall => java_parse_int(id)
                .map(|id| PublishTopic::RpcCall(id, family))
                .ok_or_else(|| bad_id(id)),
            Short::RpcReply => id
                .parse()
                .map(PublishTopic::RpcReply)
                .map_err(|_| bad_id(id)),
        };
    }
    Err(TopicError::NotAllowed(topic.to_string()))
}

/// Reads a PUBLISH topic name.
pub fn publish_topic(topic: &str) -> Result<PublishTopic, TopicError> {
    match topic {
        TELEMETRY => Ok(PublishTopic::Telemetry),
        ATTRIBUTES => Ok(PublishTopic::Attributes),
        CLAIM => Ok(PublishTopic::Claim),
        _ if topic.starts_with("v2/") => short_publish_topic(topic),
        _ => {
            let bad_id = |id: &str| TopicError::BadRequestId(id.to_string());
            if let Some(id) = topic.strip_prefix(ATTRIBUTES_REQUEST_PREFIX) {
                java_parse_int(id)
                    .map(|id| PublishTopic::AttributeRequest(id, Family::V1))
                    .ok_or_else(|| bad_id(id))
            } else if let Some(id) = topic.strip_prefix(RPC_REQUEST_PREFIX) {
                java_parse_int(id)
                    .map(|id| PublishTopic::RpcCall(id, Family::V1))
                    .ok_or_else(|| bad_id(id))
            } else if let Some(id) = topic.strip_prefix(RPC_RESPONSE_PREFIX) {
                id.parse()
                    .map(PublishTopic::RpcReply)
                    .map_err(|_| bad_id(id))
            } else {
                Err(TopicError::NotAllowed(topic.to_string()))
            }
        }
    }
}

/// Reads a PUBLISH topic name from a device that is a gateway (`gateway`) or not: a
/// gateway also publishes to the `v1/gateway/` topics.
pub fn publish_topic_for(topic: &str, gateway: bool) -> Result<PublishTopic, TopicError> {
    let gateway_topic = match topic {
        GATEWAY_CONNECT => GatewayTopic::Connect,
        GATEWAY_DISCONNECT => GatewayTopic::Disconnect,
        GATEWAY_TELEMETRY => GatewayTopic::Telemetry,
        GATEWAY_ATTRIBUTES => GatewayTopic::Attributes,
        GATEWAY_ATTRIBUTES_REQUEST => GatewayTopic::AttributeRequest,
        GATEWAY_RPC => GatewayTopic::RpcReply,
        GATEWAY_CLAIM => GatewayTopic::Claim,
        _ => return publish_topic(topic),
    };
    if gateway {
        Ok(PublishTopic::Gateway(gateway_topic))
    } else {
        Err(TopicError::NotAGateway(topic.to_string()))
    }
}

/// Java's `Integer.parseInt`: an optional sign and ASCII digits, within 32 bits.
fn java_parse_int(s: &str) -> Option<i32> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// What a device may subscribe to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subscription {
    /// `v1/devices/me/attributes`: shared-attribute updates and deletions.
    Attributes,
    /// `v1/devices/me/attributes/response/+`.
    AttributeResponses,
    /// `v1/devices/me/rpc/request/+`.
    RpcRequests,
    /// `v1/devices/me/rpc/response/+`.
    RpcResponses,
    /// `v1/gateway/attributes`: shared-attribute updates of the gateway's sub-devices.
    GatewayAttributes,
    /// `v1/gateway/attributes/response`.
    GatewayAttributeResponses,
    /// `v1/gateway/rpc`: commands to the gateway's sub-devices.
    GatewayRpc,
}

impl Subscription {
    /// Only a gateway may subscribe to it.
    pub fn is_gateway(self) -> bool {
        matches!(
            self,
            Subscription::GatewayAttributes
                | Subscription::GatewayAttributeResponses
                | Subscription::GatewayRpc
        )
    }

    /// It delivers what happens elsewhere (from the store's change feed), not answers.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            Subscription::Attributes
                | Subscription::RpcRequests
                | Subscription::GatewayAttributes
                | Subscription::GatewayRpc
        )
    }
}

/// Reads a SUBSCRIBE topic filter; `None` for anything a device may not subscribe to
/// (including the protobuf forms, see [`is_protobuf_filter`]). Like ThingsBoard, only these
/// exact filters are granted (no other wildcards).
pub fn subscription(filter: &str) -> Option<Subscription> {
    subscription_in_family(filter).map(|(sub, _)| sub)
}

/// [`subscription`], with the family its deliveries take.
pub fn subscription_in_family(filter: &str) -> Option<(Subscription, Family)> {
    let sub = |s| Some((s, Family::V1));
    match filter {
        "v2/a" => Some((Subscription::Attributes, Family::V2)),
        "v2/a/j" => Some((Subscription::Attributes, Family::V2Json)),
        "v2/a/res/+" => Some((Subscription::AttributeResponses, Family::V2)),
        "v2/a/res/j/+" => Some((Subscription::AttributeResponses, Family::V2Json)),
        "v2/r/req/+" => Some((Subscription::RpcRequests, Family::V2)),
        "v2/r/req/j/+" => Some((Subscription::RpcRequests, Family::V2Json)),
        "v2/r/res/+" => Some((Subscription::RpcResponses, Family::V2)),
        "v2/r/res/j/+" => Some((Subscription::RpcResponses, Family::V2Json)),
        _ => v1_subscription(filter).and_then(sub),
    }
}

/// A protobuf filter (`v2/a/p`, `v2/r/req/p/+`, ...): refused, and the log says why.
pub fn is_protobuf_filter(filter: &str) -> bool {
    is_protobuf(filter)
}

fn v1_subscription(filter: &str) -> Option<Subscription> {
    match filter {
        ATTRIBUTES => Some(Subscription::Attributes),
        ATTRIBUTES_RESPONSE_FILTER => Some(Subscription::AttributeResponses),
        RPC_REQUEST_FILTER => Some(Subscription::RpcRequests),
        RPC_RESPONSE_FILTER => Some(Subscription::RpcResponses),
        GATEWAY_ATTRIBUTES => Some(Subscription::GatewayAttributes),
        GATEWAY_ATTRIBUTES_RESPONSE => Some(Subscription::GatewayAttributeResponses),
        GATEWAY_RPC => Some(Subscription::GatewayRpc),
        _ => None,
    }
}

/// The QoS granted for a requested one: at most 1, ThingsBoard's `MAX_SUPPORTED_QOS_LVL`.
pub fn granted_qos(requested: QoS) -> QoS {
    requested.less_value(QoS::AtLeastOnce)
}

/// Where our command `id` goes to the device, in the family it subscribed in.
pub fn rpc_request_topic(id: u32, family: Family) -> String {
    format!("{}{id}", family.rpc_request_prefix())
}

/// The command id of a topic [`rpc_request_topic`] made (to tell which command a PUBACK
/// acknowledges).
pub fn rpc_request_id(topic: &str) -> Option<u32> {
    [Family::V2Json, Family::V2, Family::V1]
        .into_iter()
        .find_map(|f| topic.strip_prefix(f.rpc_request_prefix()))
        .and_then(|id| id.parse().ok())
}

/// Where our answer to the device's call `id` goes.
pub fn rpc_response_topic(id: i32, family: Family) -> String {
    format!("{}{id}", family.rpc_response_prefix())
}

/// The topic of the answer to attribute request `id`.
pub fn attribute_response_topic(id: i32, family: Family) -> String {
    format!("{}{id}", family.attribute_response_prefix())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_publishes_only_to_its_own_topics() {
        assert_eq!(publish_topic(TELEMETRY), Ok(PublishTopic::Telemetry));
        assert_eq!(publish_topic(ATTRIBUTES), Ok(PublishTopic::Attributes));
        assert_eq!(
            publish_topic("v1/devices/me/attributes/request/42"),
            Ok(PublishTopic::AttributeRequest(42, Family::V1))
        );
        // Integer.parseInt: a sign and leading zeros are fine.
        assert_eq!(
            publish_topic("v1/devices/me/attributes/request/+007"),
            Ok(PublishTopic::AttributeRequest(7, Family::V1))
        );
        assert_eq!(
            publish_topic("v1/devices/me/attributes/request/-1"),
            Ok(PublishTopic::AttributeRequest(-1, Family::V1))
        );
        for bad in ["", "x", "2147483648", "1.5", " 1", "1/2", "+", "0x10"] {
            assert_eq!(
                publish_topic(&format!("{ATTRIBUTES_REQUEST_PREFIX}{bad}")),
                Err(TopicError::BadRequestId(bad.into())),
                "{bad:?}"
            );
        }
        assert_eq!(
            publish_topic("v1/devices/me/rpc/request/3"),
            Ok(PublishTopic::RpcCall(3, Family::V1))
        );
        assert_eq!(
            publish_topic("v1/devices/me/rpc/response/9"),
            Ok(PublishTopic::RpcReply(9))
        );
        assert_eq!(
            publish_topic("v1/devices/me/rpc/response/-9"),
            Err(TopicError::BadRequestId("-9".into()))
        );
        for foreign in [
            "v1/devices/other/telemetry",
            "v1/devices/me/telemetry/",
            "v1/devices/me/telemetry/x",
            "v1/devices/+/telemetry",
            "v1/devices/#",
            "V1/devices/me/telemetry",
            "/v1/devices/me/telemetry",
            "v1/devices/me/attributes/response/1",
            "v1/devices/me/attributes/request",
            "v1/devices/me/rpc/request",
            "v1/gateway/telemetry",
            "$SYS/broker",
            "#",
        ] {
            assert_eq!(
                publish_topic(foreign),
                Err(TopicError::NotAllowed(foreign.into())),
                "{foreign}"
            );
        }
    }

    #[test]
    fn a_device_subscribes_only_to_what_thingsboard_grants() {
        assert_eq!(subscription(ATTRIBUTES), Some(Subscription::Attributes));
        assert_eq!(
            subscription("v1/devices/me/attributes/response/+"),
            Some(Subscription::AttributeResponses)
        );
        assert_eq!(
            subscription("v1/devices/me/rpc/request/+"),
            Some(Subscription::RpcRequests)
        );
        assert_eq!(
            subscription("v1/devices/me/rpc/response/+"),
            Some(Subscription::RpcResponses)
        );
        for refused in [
            "#",
            "+/+/+/+",
            "v1/devices/#",
            "v1/devices/+/attributes",
            "v1/devices/other/attributes",
            "v1/devices/me/telemetry",
            "v1/devices/me/attributes/#",
            "v1/devices/me/attributes/response/1",
            "$share/g/v1/devices/me/attributes",
            "$SYS/#",
        ] {
            assert_eq!(subscription(refused), None, "{refused}");
        }
    }

    #[test]
    fn gateway_topics_are_for_gateways_only() {
        for (topic, expected) in [
            (GATEWAY_CONNECT, GatewayTopic::Connect),
            (GATEWAY_DISCONNECT, GatewayTopic::Disconnect),
            (GATEWAY_TELEMETRY, GatewayTopic::Telemetry),
            (GATEWAY_ATTRIBUTES, GatewayTopic::Attributes),
            (GATEWAY_ATTRIBUTES_REQUEST, GatewayTopic::AttributeRequest),
            (GATEWAY_RPC, GatewayTopic::RpcReply),
            (GATEWAY_CLAIM, GatewayTopic::Claim),
        ] {
            assert_eq!(
                publish_topic_for(topic, true),
                Ok(PublishTopic::Gateway(expected))
            );
            assert_eq!(
                publish_topic_for(topic, false),
                Err(TopicError::NotAGateway(topic.into()))
            );
            assert_eq!(
                publish_topic(topic),
                Err(TopicError::NotAllowed(topic.into()))
            );
        }
        // A gateway is a device too.
        for gateway in [true, false] {
            assert_eq!(
                publish_topic_for(TELEMETRY, gateway),
                Ok(PublishTopic::Telemetry)
            );
            assert_eq!(
                publish_topic_for("v1/devices/me/rpc/response/3", gateway),
                Ok(PublishTopic::RpcReply(3))
            );
        }
        for foreign in [
            "v1/gateway/",
            "v1/gateway/telemetry/",
            "v1/gateway/attributes/response",
            "v1/gateway/rpc/1",
            "v1/gateway/#",
            "v1/gateway/+",
            "V1/gateway/telemetry",
            "v2/gateway/telemetry",
        ] {
            assert_eq!(
                publish_topic_for(foreign, true),
                Err(TopicError::NotAllowed(foreign.into())),
                "{foreign}"
            );
        }
        assert_eq!(
            subscription(GATEWAY_ATTRIBUTES),
            Some(Subscription::GatewayAttributes)
        );
        assert_eq!(
            subscription(GATEWAY_ATTRIBUTES_RESPONSE),
            Some(Subscription::GatewayAttributeResponses)
        );
        assert_eq!(subscription(GATEWAY_RPC), Some(Subscription::GatewayRpc));
        for refused in [
            "v1/gateway/#",
            "v1/gateway/+",
            "v1/gateway/telemetry",
            "v1/gateway/connect",
            "v1/gateway/attributes/response/+",
            "v1/gateway/rpc/+",
        ] {
            assert_eq!(subscription(refused), None, "{refused}");
        }
        for sub in [
            Subscription::GatewayAttributes,
            Subscription::GatewayAttributeResponses,
            Subscription::GatewayRpc,
        ] {
            assert!(sub.is_gateway());
        }
        assert!(!Subscription::Attributes.is_gateway());
        assert!(Subscription::GatewayRpc.is_live() && Subscription::RpcRequests.is_live());
        assert!(!Subscription::GatewayAttributeResponses.is_live());
    }

    #[test]
    fn thingsboards_short_topics_and_their_json_forms() {
        use Family::{V2, V2Json};
        for (topic, expected) in [
            ("v2/t", PublishTopic::Telemetry),
            ("v2/t/j", PublishTopic::Telemetry),
            ("v2/a", PublishTopic::Attributes),
            ("v2/a/j", PublishTopic::Attributes),
            ("v2/a/req/5", PublishTopic::AttributeRequest(5, V2)),
            ("v2/a/req/j/5", PublishTopic::AttributeRequest(5, V2Json)),
            ("v2/r/req/-2", PublishTopic::RpcCall(-2, V2)),
            ("v2/r/req/j/7", PublishTopic::RpcCall(7, V2Json)),
            ("v2/r/res/9", PublishTopic::RpcReply(9)),
            ("v2/r/res/j/9", PublishTopic::RpcReply(9)),
        ] {
            assert_eq!(publish_topic(topic), Ok(expected), "{topic}");
            assert_eq!(publish_topic_for(topic, true), Ok(expected), "{topic}");
        }
        for proto in [
            "v2/t/p",
            "v2/a/p",
            "v2/a/req/p/1",
            "v2/r/req/p/1",
            "v2/r/res/p/1",
        ] {
            let e = publish_topic(proto).unwrap_err();
            assert_eq!(e, TopicError::Protobuf(proto.into()));
            assert!(
                e.to_string()
                    .contains("protobuf payloads are not supported"),
                "{e}"
            );
        }
        for bad in [
            "v2/a/req/x",
            "v2/a/req/",
            "v2/r/res/-1",
            "v2/a/req/j/",
            "v2/r/req/1.5",
        ] {
            assert!(
                matches!(publish_topic(bad), Err(TopicError::BadRequestId(_))),
                "{bad}"
            );
        }
        for foreign in [
            "v2",
            "v2/",
            "v2/t/",
            "v2/t/x",
            "v2/a/res/1",
            "v2/r",
            "v2/fw/request/1/chunk/0",
            "v2/T",
            "v3/t",
        ] {
            assert_eq!(
                publish_topic(foreign),
                Err(TopicError::NotAllowed(foreign.into())),
                "{foreign}"
            );
        }
        for (filter, expected) in [
            ("v2/a", (Subscription::Attributes, V2)),
            ("v2/a/j", (Subscription::Attributes, V2Json)),
            ("v2/a/res/+", (Subscription::AttributeResponses, V2)),
            ("v2/a/res/j/+", (Subscription::AttributeResponses, V2Json)),
            ("v2/r/req/+", (Subscription::RpcRequests, V2)),
            ("v2/r/req/j/+", (Subscription::RpcRequests, V2Json)),
            ("v2/r/res/+", (Subscription::RpcResponses, V2)),
            ("v2/r/res/j/+", (Subscription::RpcResponses, V2Json)),
            (ATTRIBUTES, (Subscription::Attributes, Family::V1)),
        ] {
            assert_eq!(subscription_in_family(filter), Some(expected), "{filter}");
        }
        for refused in [
            "v2/#",
            "v2/+",
            "v2/a/p",
            "v2/r/req/p/+",
            "v2/a/res/#",
            "v2/r/req/1",
            "v2/t",
        ] {
            assert_eq!(subscription(refused), None, "{refused}");
        }
        assert!(is_protobuf_filter("v2/r/req/p/+") && !is_protobuf_filter("v2/r/req/+"));
        assert_eq!(attribute_response_topic(3, V2), "v2/a/res/3");
        assert_eq!(attribute_response_topic(3, V2Json), "v2/a/res/j/3");
        assert_eq!(rpc_request_topic(4, V2), "v2/r/req/4");
        for family in [Family::V1, V2, V2Json] {
            assert_eq!(rpc_request_id(&rpc_request_topic(7, family)), Some(7));
        }
        assert_eq!(rpc_request_id("v1/devices/me/attributes"), None);
        assert_eq!(rpc_response_topic(5, V2Json), "v2/r/res/j/5");
        assert_eq!(
            rpc_response_topic(5, Family::V1),
            "v1/devices/me/rpc/response/5"
        );
        assert_eq!(V2Json.attributes(), "v2/a/j");
    }

    #[test]
    fn qos_2_is_granted_as_qos_1() {
        assert_eq!(granted_qos(QoS::AtMostOnce), QoS::AtMostOnce);
        assert_eq!(granted_qos(QoS::AtLeastOnce), QoS::AtLeastOnce);
        assert_eq!(granted_qos(QoS::ExactlyOnce), QoS::AtLeastOnce);
    }
}
