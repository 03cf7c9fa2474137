//! ThingsBoard's device topics and what a device may do with them.
//!
//! A device only ever names itself (`v1/devices/me/...`): the connection's access token
//! decides which device that is, so no topic can reach another device's data. Everything
//! that is not listed here is refused.
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

/// What a PUBLISH from the device asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishTopic {
    Telemetry,
    Attributes,
    /// The request id, as ThingsBoard reads it (`Integer.parseInt`). ThingsBoard answers
    /// only requests with an id of 0 or more (`JsonMqttAdaptor`); so do we.
    AttributeRequest(i32),
    /// The device calls the server (client-side RPC); answered on
    /// `v1/devices/me/rpc/response/$id`.
    RpcCall(i32),
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
        "publishing to {0:?} is not allowed: a device publishes to {TELEMETRY}, {ATTRIBUTES}, {ATTRIBUTES_REQUEST_PREFIX}$id, {RPC_REQUEST_PREFIX}$id, {RPC_RESPONSE_PREFIX}$id or {CLAIM}"
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
}

/// Reads a PUBLISH topic name.
pub fn publish_topic(topic: &str) -> Result<PublishTopic, TopicError> {
    match topic {
        TELEMETRY => Ok(PublishTopic::Telemetry),
        ATTRIBUTES => Ok(PublishTopic::Attributes),
        CLAIM => Ok(PublishTopic::Claim),
        _ => {
            let bad_id = |id: &str| TopicError::BadRequestId(id.to_string());
            if let Some(id) = topic.strip_prefix(ATTRIBUTES_REQUEST_PREFIX) {
                java_parse_int(id)
                    .map(PublishTopic::AttributeRequest)
                    .ok_or_else(|| bad_id(id))
            } else if let Some(id) = topic.strip_prefix(RPC_REQUEST_PREFIX) {
                java_parse_int(id)
                    .map(PublishTopic::RpcCall)
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

/// Reads a SUBSCRIBE topic filter; `None` for anything a device may not subscribe to.
/// Like ThingsBoard, only these exact filters are granted (no other wildcards).
pub fn subscription(filter: &str) -> Option<Subscription> {
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

/// The topic of the answer to attribute request `id`.
/// Where our command `id` goes to the device.
pub fn rpc_request_topic(id: u32) -> String {
    format!("{RPC_REQUEST_PREFIX}{id}")
}

/// Where our answer to the device's call `id` goes.
pub fn rpc_response_topic(id: i32) -> String {
    format!("{RPC_RESPONSE_PREFIX}{id}")
}

pub fn attribute_response_topic(id: i32) -> String {
    format!("{ATTRIBUTES_RESPONSE_PREFIX}{id}")
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
            Ok(PublishTopic::AttributeRequest(42))
        );
        // Integer.parseInt: a sign and leading zeros are fine.
        assert_eq!(
            publish_topic("v1/devices/me/attributes/request/+007"),
            Ok(PublishTopic::AttributeRequest(7))
        );
        assert_eq!(
            publish_topic("v1/devices/me/attributes/request/-1"),
            Ok(PublishTopic::AttributeRequest(-1))
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
            Ok(PublishTopic::RpcCall(3))
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
    fn qos_2_is_granted_as_qos_1() {
        assert_eq!(granted_qos(QoS::AtMostOnce), QoS::AtMostOnce);
        assert_eq!(granted_qos(QoS::AtLeastOnce), QoS::AtLeastOnce);
        assert_eq!(granted_qos(QoS::ExactlyOnce), QoS::AtLeastOnce);
    }
}
