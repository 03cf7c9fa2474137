//! ThingsBoard's MQTT device provisioning: a client connecting with the user name
//! `provision` (any password, ThingsBoard's rule) may subscribe to `/provision/response`
//! and publish to `/provision/request`, nothing else. Each request is answered on
//! `/provision/response` with ThingsBoard's JSON (`JsonConverter.toJson(
//! ProvisionDeviceResponseMsg)`); the credentials then connect as any device.
//!
//! Nothing of the request (key, secret, name, token) is logged.

use std::num::NonZeroU16;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use bytestring::ByteString;
use futures_util::{SinkExt, StreamExt};
use rmqtt_codec::types::{Publish, QoS};
use rmqtt_codec::{MqttCodec, MqttPacket, v3, v5};
use thingsafe_core::model::provisioning::parse_provision_request;
use thingsafe_store::Store;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::timeout;
use tokio_util::codec::Framed;

use super::{Inbound, encode_error, inbound, reason_string, refused, stopped};
use crate::MqttSettings;
use crate::codes::{self, Protocol, PublishRefusal};
use crate::error::SessionError;

/// The MQTT user name of provisioning clients.
pub const USERNAME: &str = "provision";
/// Where provisioning clients publish their request.
pub const REQUEST_TOPIC: &str = "/provision/request";
/// Where the answer goes.
pub const RESPONSE_TOPIC: &str = "/provision/response";

/// Serves a connection of the `provision` user until it ends.
pub(super) async fn serve<S>(
    io: Framed<S, MqttCodec>,
    proto: Protocol,
    keep_alive: u16,
    store: Arc<dyn Store>,
    settings: Arc<MqttSettings>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    tracing::info!(
        protocol = proto.as_str(),
        "MQTT provisioning client connected"
    );
    let mut session = Provisioning {
        io,
        proto,
        store,
        settings,
        response_qos: None,
        next_id: 0,
    };
    // 1.5 times the keep-alive (MQTT-3.1.2-24); without one, the connect timeout.
    let idle = match keep_alive {
        0 => session
            .settings
            .connect_timeout
            .max(Duration::from_secs(60)),
        s => Duration::from_millis(u64::from(s) * 1500),
    };
    loop {
        let frame = tokio::select! {
            biased;
            _ = stopped(&mut stop) => {
                session.disconnect(v5::DisconnectReasonCode::ServerShuttingDown, None).await;
                return Err(SessionError::Shutdown);
            }
            frame = timeout(idle, session.io.next()) => frame,
        };
        let packet = match frame {
            Err(_) => {
                session
                    .disconnect(v5::DisconnectReasonCode::KeepAliveTimeout, None)
                    .await;
                return Err(SessionError::KeepAlive(keep_alive));
            }
            Ok(None) => return Err(SessionError::Closed),
            Ok(Some(Err(e))) => return Err(e.into()),
            Ok(Some(Ok((packet, _)))) => packet,
        };
        match inbound(packet) {
            Inbound::Publish(p) => session.on_publish(*p).await?,
            Inbound::Subscribe { packet_id, filters } => {
                session.on_subscribe(packet_id, filters).await?
            }
            Inbound::Unsubscribe { packet_id, filters } => {
                if filters.iter().any(|f| f == RESPONSE_TOPIC) {
                    session.response_qos = None;
                }
                let packet = match proto {
                    Protocol::V3 => MqttPacket::V3(v3::Packet::UnsubscribeAck { packet_id }),
                    Protocol::V5 => {
                        MqttPacket::V5(v5::Packet::UnsubscribeAck(v5::UnsubscribeAck {
                            packet_id,
                            properties: Vec::new(),
                            reason_string: None,
                            status: vec![v5::UnsubscribeAckReason::Success; filters.len()],
                        }))
                    }
                };
                session.send(packet).await?;
            }
            Inbound::PubRel(packet_id) => {
                let packet = match proto {
                    Protocol::V3 => MqttPacket::V3(v3::Packet::PublishComplete { packet_id }),
                    Protocol::V5 => MqttPacket::V5(v5::Packet::PublishComplete(v5::PublishAck2 {
                        packet_id,
                        reason_code: v5::PublishAck2Reason::Success,
                        properties: Vec::new(),
                        reason_string: None,
                    })),
                };
                session.send(packet).await?;
            }
            Inbound::Ping => {
                let packet = match proto {
                    Protocol::V3 => MqttPacket::V3(v3::Packet::PingResponse),
                    Protocol::V5 => MqttPacket::V5(v5::Packet::PingResponse),
                };
                session.send(packet).await?;
            }
            Inbound::Disconnect => {
                tracing::info!("MQTT provisioning client disconnected");
                return Ok(());
            }
            Inbound::PubAck(_) | Inbound::Ignored => {}
            Inbound::NotAllowed(what) => {
                refused("protocol");
                session
                    .disconnect(v5::DisconnectReasonCode::ProtocolError, Some(what))
                    .await;
                return Err(SessionError::Protocol(what));
            }
        }
    }
}

struct Provisioning<S> {
    io: Framed<S, MqttCodec>,
    proto: Protocol,
    store: Arc<dyn Store>,
    settings: Arc<MqttSettings>,
    /// Granted on `/provision/response`.
    response_qos: Option<QoS>,
    next_id: u16,
}

impl<S> Provisioning<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    async fn on_publish(&mut self, p: Publish) -> Result<(), SessionError> {
        if p.topic != REQUEST_TOPIC {
            return self
                .refuse(
                    &p,
                    PublishRefusal::NotAuthorized,
                    format!(
                        "publishing to {:?} is not allowed: the provision user publishes to {REQUEST_TOPIC} only",
                        &*p.topic
                    ),
                )
                .await;
        }
        let request = match parse_provision_request(&p.payload) {
            Ok(request) => request,
            Err(e) => {
                return self
                    .refuse(&p, PublishRefusal::PayloadFormatInvalid, e.to_string())
                    .await;
            }
        };
        let outcome = match self.store.provision_device(&request).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::error!(error = %e, "cannot provision a device");
                self.disconnect(v5::DisconnectReasonCode::UnspecifiedError, None)
                    .await;
                return Err(SessionError::Store(e));
            }
        };
        metrics::counter!("thingsafe_mqtt_provision_total", "outcome" => outcome.label())
            .increment(1);
        tracing::info!(
            outcome = outcome.label(),
            "MQTT provisioning request answered"
        );
        self.ack(&p, None).await?;
        let body = Bytes::from(outcome.to_json().to_string());
        self.publish(body).await
    }

    async fn on_subscribe(
        &mut self,
        packet_id: NonZeroU16,
        filters: Vec<(ByteString, QoS)>,
    ) -> Result<(), SessionError> {
        let mut granted = Vec::with_capacity(filters.len());
        for (filter, requested) in filters {
            if filter == RESPONSE_TOPIC {
                let qos = crate::topic::granted_qos(requested);
                self.response_qos = Some(qos);
                granted.push(Some(qos));
            } else {
                refused("subscription");
                tracing::info!(filter = %filter, "refused a provisioning client's subscription");
                granted.push(None);
            }
        }
        let packet = codes::suback(self.proto, packet_id, granted);
        self.send(packet).await
    }

    /// MQTT 5 refuses a QoS 1 or 2 message in its acknowledgement; otherwise the
    /// connection closes (MQTT 5 with a DISCONNECT saying why).
    async fn refuse(
        &mut self,
        p: &Publish,
        refusal: PublishRefusal,
        message: String,
    ) -> Result<(), SessionError> {
        refused(refusal.label());
        tracing::info!(
            reason = refusal.label(),
            "refused a provisioning client's message"
        );
        if self.proto == Protocol::V5 && p.qos != QoS::AtMostOnce {
            return self.ack(p, Some((refusal, message))).await;
        }
        self.disconnect(refusal.disconnect(), Some(&message)).await;
        Err(SessionError::PublishRefused { refusal, message })
    }

    async fn ack(
        &mut self,
        p: &Publish,
        refusal: Option<(PublishRefusal, String)>,
    ) -> Result<(), SessionError> {
        let Some(packet_id) = p.packet_id else {
            return Ok(());
        };
        let packet = match self.proto {
            Protocol::V3 => MqttPacket::V3(match p.qos {
                QoS::ExactlyOnce => v3::Packet::PublishReceived { packet_id },
                _ => v3::Packet::PublishAck { packet_id },
            }),
            Protocol::V5 => {
                let (reason_code, reason) = match refusal {
                    None => (v5::PublishAckReason::Success, None),
                    Some((refusal, message)) => (refusal.puback(), Some(reason_string(&message))),
                };
                let ack = v5::PublishAck {
                    packet_id,
                    reason_code,
                    properties: Vec::new(),
                    reason_string: reason,
                };
                MqttPacket::V5(match p.qos {
                    QoS::ExactlyOnce => v5::Packet::PublishReceived(ack),
                    _ => v5::Packet::PublishAck(ack),
                })
            }
        };
        self.send(packet).await
    }

    /// The answer, at the QoS granted on `/provision/response` (0 without a subscription,
    /// like ThingsBoard, which answers whether or not the client subscribed).
    async fn publish(&mut self, payload: Bytes) -> Result<(), SessionError> {
        let qos = self.response_qos.unwrap_or(QoS::AtMostOnce);
        let packet_id = (qos != QoS::AtMostOnce).then(|| {
            self.next_id = self.next_id.checked_add(1).unwrap_or(1);
            NonZeroU16::new(self.next_id).unwrap_or(NonZeroU16::MIN)
        });
        let publish = Box::new(Publish {
            dup: false,
            retain: false,
            qos: if packet_id.is_some() {
                QoS::AtLeastOnce
            } else {
                QoS::AtMostOnce
            },
            topic: ByteString::from_static(RESPONSE_TOPIC),
            packet_id,
            payload,
            properties: None,
        });
        let packet = match self.proto {
            Protocol::V3 => MqttPacket::V3(v3::Packet::Publish(publish)),
            Protocol::V5 => MqttPacket::V5(v5::Packet::Publish(publish)),
        };
        self.send(packet).await
    }

    async fn disconnect(&mut self, reason_code: v5::DisconnectReasonCode, why: Option<&str>) {
        if self.proto == Protocol::V5 {
            let packet = MqttPacket::V5(v5::Packet::Disconnect(v5::Disconnect {
                reason_code,
                session_expiry_interval_secs: None,
                server_reference: None,
                reason_string: why.map(reason_string),
                user_properties: Vec::new(),
            }));
            let _ = self.send(packet).await;
        }
    }

    async fn send(&mut self, packet: MqttPacket) -> Result<(), SessionError> {
        let limit = self.settings.write_timeout;
        match timeout(limit, self.io.send(packet)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(encode_error(e)),
            Err(_) => Err(SessionError::WriteTimeout(limit)),
        }
    }
}
