//! Reason and return codes: what each refusal looks like on MQTT 3.1.1 and on MQTT 5.
//!
//! MQTT 3.1.1 has few codes: a CONNACK return code, SUBACK's 0x80, and otherwise closing
//! the connection. MQTT 5 has a reason code for everything. The mapping of refused
//! connections follows ThingsBoard's `ReturnCodeResolver.java`.

use rmqtt_codec::error::DecodeError;
use rmqtt_codec::v3;
use rmqtt_codec::v5::{self, DisconnectReasonCode, PublishAckReason, SubscribeAckReason};

/// The protocol a connection speaks, detected from its CONNECT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// MQTT 3.1 and 3.1.1 (one codec serves both).
    V3,
    V5,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::V3 => "3.1.1",
            Protocol::V5 => "5",
        }
    }
}

/// Why a CONNECT was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectRefusal {
    /// No user name, or an empty one: the access token is missing.
    MissingToken,
    /// The user name is no device's access token.
    UnknownToken,
    /// The store could not answer.
    Unavailable,
    /// MQTT 5 enhanced authentication, which we do not offer.
    AuthMethod,
    /// An empty client id without a clean session (MQTT-3.1.3-8).
    ClientId,
    /// The device, its type or its tenant is suspended by an administrator.
    Suspended,
}

impl ConnectRefusal {
    pub fn v3(self) -> v3::ConnectAckReason {
        match self {
            ConnectRefusal::MissingToken => v3::ConnectAckReason::BadUserNameOrPassword,
            ConnectRefusal::UnknownToken
            | ConnectRefusal::AuthMethod
            | ConnectRefusal::Suspended => v3::ConnectAckReason::NotAuthorized,
            ConnectRefusal::Unavailable => v3::ConnectAckReason::ServiceUnavailable,
            ConnectRefusal::ClientId => v3::ConnectAckReason::IdentifierRejected,
        }
    }

    pub fn v5(self) -> v5::ConnectAckReason {
        match self {
            ConnectRefusal::MissingToken => v5::ConnectAckReason::BadUserNameOrPassword,
            ConnectRefusal::UnknownToken => v5::ConnectAckReason::NotAuthorized,
            ConnectRefusal::Unavailable => v5::ConnectAckReason::ServerUnavailable,
            ConnectRefusal::AuthMethod => v5::ConnectAckReason::BadAuthenticationMethod,
            ConnectRefusal::ClientId => v5::ConnectAckReason::ClientIdentifierNotValid,
            ConnectRefusal::Suspended => v5::ConnectAckReason::Banned,
        }
    }

    /// The label of the refusal in metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            ConnectRefusal::MissingToken => "missing_token",
            ConnectRefusal::UnknownToken => "unknown_token",
            ConnectRefusal::Unavailable => "unavailable",
            ConnectRefusal::AuthMethod => "auth_method",
            ConnectRefusal::ClientId => "client_id",
            ConnectRefusal::Suspended => "suspended",
        }
    }
}

/// Why a PUBLISH was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishRefusal {
    /// A topic the device may not publish to.
    NotAuthorized,
    /// A payload (or request id) that does not parse.
    PayloadFormatInvalid,
    /// Over the device's or its tenant's rate limit.
    QuotaExceeded,
}

impl PublishRefusal {
    /// MQTT 5: the PUBACK (or PUBREC) reason of a refused QoS 1 (or 2) message.
    pub fn puback(self) -> PublishAckReason {
        match self {
            PublishRefusal::NotAuthorized => PublishAckReason::NotAuthorized,
            PublishRefusal::PayloadFormatInvalid => PublishAckReason::PayloadFormatInvalid,
            PublishRefusal::QuotaExceeded => PublishAckReason::QuotaExceeded,
        }
    }

    /// MQTT 5: the DISCONNECT reason when the message cannot be acknowledged (QoS 0).
    /// MQTT 3.1.1 has no way to refuse a message: the connection is closed, as
    /// ThingsBoard does (`sendAckOrCloseSession`).
    pub fn disconnect(self) -> DisconnectReasonCode {
        match self {
            PublishRefusal::NotAuthorized => DisconnectReasonCode::NotAuthorized,
            PublishRefusal::PayloadFormatInvalid => DisconnectReasonCode::PayloadFormatInvalid,
            PublishRefusal::QuotaExceeded => DisconnectReasonCode::QuotaExceeded,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            PublishRefusal::NotAuthorized => "topic",
            PublishRefusal::PayloadFormatInvalid => "payload",
            PublishRefusal::QuotaExceeded => "rate_limit",
        }
    }
}

/// A refused subscription: MQTT 3.1.1's only failure code, MQTT 5's Not authorized.
/// The SUBACK for `granted`: the QoS granted to each filter, or `None` where it was refused.
pub fn suback(
    proto: Protocol,
    packet_id: std::num::NonZeroU16,
    granted: Vec<Option<rmqtt_codec::types::QoS>>,
) -> rmqtt_codec::MqttPacket {
    match proto {
        Protocol::V3 => rmqtt_codec::MqttPacket::V3(v3::Packet::SubscribeAck {
            packet_id,
            status: granted
                .into_iter()
                .map(|g| match g {
                    Some(qos) => v3::SubscribeReturnCode::Success(qos),
                    None => suback_refused_v3(),
                })
                .collect(),
        }),
        Protocol::V5 => rmqtt_codec::MqttPacket::V5(v5::Packet::SubscribeAck(v5::SubscribeAck {
            packet_id,
            properties: Vec::new(),
            reason_string: None,
            status: granted
                .into_iter()
                .map(|g| match g {
                    Some(qos) => suback_granted_v5(qos),
                    None => suback_refused_v5(),
                })
                .collect(),
        })),
    }
}

pub fn suback_refused_v3() -> v3::SubscribeReturnCode {
    v3::SubscribeReturnCode::Failure
}

pub fn suback_refused_v5() -> SubscribeAckReason {
    SubscribeAckReason::NotAuthorized
}

/// A granted subscription's MQTT 5 reason code.
pub fn suback_granted_v5(qos: rmqtt_codec::types::QoS) -> SubscribeAckReason {
    match qos {
        rmqtt_codec::types::QoS::AtMostOnce => SubscribeAckReason::GrantedQos0,
        rmqtt_codec::types::QoS::AtLeastOnce => SubscribeAckReason::GrantedQos1,
        rmqtt_codec::types::QoS::ExactlyOnce => SubscribeAckReason::GrantedQos2,
    }
}

/// A frame that breaks the protocol, by the MQTT 5 reason code the spec gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// Bytes that are not a well-formed packet: bad lengths, reserved bits, bad UTF-8 in a
    /// topic (MQTT 5 §4.13, §1.5.4), an unknown packet type.
    Malformed,
    /// A well-formed packet that is not allowed here.
    Protocol,
    TooLarge,
    TopicName,
    TopicFilter,
    ClientId,
    /// The connection failed underneath.
    Io,
}

impl From<&DecodeError> for Violation {
    fn from(e: &DecodeError) -> Violation {
        match e {
            DecodeError::InvalidLength
            | DecodeError::MalformedPacket
            | DecodeError::Utf8Error
            | DecodeError::UnsupportedPacketType
            | DecodeError::ConnectReservedFlagSet
            | DecodeError::InvalidConnectFlags
            | DecodeError::ConnAckReservedFlagSet => Violation::Malformed,
            DecodeError::InvalidProtocol
            | DecodeError::UnsupportedProtocolLevel
            | DecodeError::PacketIdRequired => Violation::Protocol,
            DecodeError::MaxSizeExceeded { .. } => Violation::TooLarge,
            DecodeError::InvalidTopicName => Violation::TopicName,
            DecodeError::InvalidTopicFilter => Violation::TopicFilter,
            DecodeError::InvalidClientId => Violation::ClientId,
            DecodeError::Io(_) => Violation::Io,
        }
    }
}

impl Violation {
    /// The DISCONNECT an MQTT 5 client gets before the connection closes.
    pub fn disconnect(self) -> DisconnectReasonCode {
        match self {
            Violation::Malformed => DisconnectReasonCode::MalformedPacket,
            Violation::Protocol | Violation::ClientId => DisconnectReasonCode::ProtocolError,
            Violation::TooLarge => DisconnectReasonCode::PacketTooLarge,
            Violation::TopicName => DisconnectReasonCode::TopicNameInvalid,
            Violation::TopicFilter => DisconnectReasonCode::TopicFilterInvalid,
            Violation::Io => DisconnectReasonCode::UnspecifiedError,
        }
    }

    /// The CONNACK an MQTT 5 client gets when its CONNECT itself is at fault.
    pub fn connack(self) -> v5::ConnectAckReason {
        match self {
            Violation::Malformed => v5::ConnectAckReason::MalformedPacket,
            Violation::Protocol | Violation::TopicFilter => v5::ConnectAckReason::ProtocolError,
            Violation::TooLarge => v5::ConnectAckReason::PacketTooLarge,
            Violation::TopicName => v5::ConnectAckReason::TopicNameInvalid,
            Violation::ClientId => v5::ConnectAckReason::ClientIdentifierNotValid,
            Violation::Io => v5::ConnectAckReason::UnspecifiedError,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Violation::Malformed => "malformed",
            Violation::Protocol => "protocol",
            Violation::TooLarge => "too_large",
            Violation::TopicName => "topic_name",
            Violation::TopicFilter => "topic_filter",
            Violation::ClientId => "client_id",
            Violation::Io => "io",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_connections_use_thingsboards_codes() {
        // A bad token: 0x05 on 3.1.1, 0x87 on 5; a missing one: 0x04 / 0x86.
        assert_eq!(u8::from(ConnectRefusal::UnknownToken.v3()), 0x05);
        assert_eq!(u8::from(ConnectRefusal::UnknownToken.v5()), 0x87);
        assert_eq!(u8::from(ConnectRefusal::MissingToken.v3()), 0x04);
        assert_eq!(u8::from(ConnectRefusal::MissingToken.v5()), 0x86);
        assert_eq!(u8::from(ConnectRefusal::Unavailable.v3()), 0x03);
        assert_eq!(u8::from(ConnectRefusal::Unavailable.v5()), 0x88);
        assert_eq!(u8::from(ConnectRefusal::AuthMethod.v5()), 0x8C);
        assert_eq!(u8::from(ConnectRefusal::ClientId.v3()), 0x02);
        assert_eq!(u8::from(ConnectRefusal::ClientId.v5()), 0x85);
    }

    #[test]
    fn refused_messages_and_subscriptions() {
        assert_eq!(u8::from(PublishRefusal::NotAuthorized.puback()), 0x87);
        assert_eq!(
            u8::from(PublishRefusal::PayloadFormatInvalid.puback()),
            0x99
        );
        assert_eq!(u8::from(PublishRefusal::NotAuthorized.disconnect()), 0x87);
        assert_eq!(
            u8::from(PublishRefusal::PayloadFormatInvalid.disconnect()),
            0x99
        );
        assert_eq!(suback_refused_v3(), v3::SubscribeReturnCode::Failure);
        assert_eq!(u8::from(suback_refused_v5()), 0x87);
        assert_eq!(
            u8::from(suback_granted_v5(rmqtt_codec::types::QoS::AtLeastOnce)),
            0x01
        );
    }

    #[test]
    fn malformed_frames_get_the_specs_reason_codes() {
        let cases = [
            (DecodeError::MalformedPacket, 0x81),
            (DecodeError::InvalidLength, 0x81),
            (DecodeError::Utf8Error, 0x81),
            (DecodeError::UnsupportedPacketType, 0x81),
            (DecodeError::ConnectReservedFlagSet, 0x81),
            (DecodeError::InvalidProtocol, 0x82),
            (DecodeError::PacketIdRequired, 0x82),
            (DecodeError::MaxSizeExceeded { size: 9, max: 1 }, 0x95),
            (DecodeError::InvalidTopicName, 0x90),
            (DecodeError::InvalidTopicFilter, 0x8F),
            (DecodeError::Io("reset".into()), 0x80),
        ];
        for (error, code) in cases {
            assert_eq!(
                u8::from(Violation::from(&error).disconnect()),
                code,
                "{error:?}"
            );
        }
        assert_eq!(
            u8::from(Violation::from(&DecodeError::InvalidClientId).connack()),
            0x85
        );
        assert_eq!(
            u8::from(Violation::from(&DecodeError::MalformedPacket).connack()),
            0x81
        );
    }
}
