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
}

/// Why a PUBLISH topic was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// Not a topic this device may publish to.
    #[error(
        "publishing to {0:?} is not allowed: a device publishes to {TELEMETRY}, {ATTRIBUTES}, {ATTRIBUTES_REQUEST_PREFIX}$id, {RPC_REQUEST_PREFIX}$id or {RPC_RESPONSE_PREFIX}$id"
    )]
    NotAllowed(String),
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
}

/// Reads a SUBSCRIBE topic filter; `None` for anything a device may not subscribe to.
/// Like ThingsBoard, only these exact filters are granted (no other wildcards).
pub fn subscription(filter: &str) -> Option<Subscription> {
    match filter {
        ATTRIBUTES => Some(Subscription::Attributes),
        ATTRIBUTES_RESPONSE_FILTER => Some(Subscription::AttributeResponses),
        RPC_REQUEST_FILTER => Some(Subscription::RpcRequests),
        RPC_RESPONSE_FILTER => Some(Subscription::RpcResponses),
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
    fn qos_2_is_granted_as_qos_1() {
        assert_eq!(granted_qos(QoS::AtMostOnce), QoS::AtMostOnce);
        assert_eq!(granted_qos(QoS::AtLeastOnce), QoS::AtLeastOnce);
        assert_eq!(granted_qos(QoS::ExactlyOnce), QoS::AtLeastOnce);
    }
}
