//! One MQTT connection: version detection, CONNECT and authentication, then the session
//! loop that stores what the device publishes and delivers what it subscribed to.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::num::NonZeroU16;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, SinkExt, StreamExt};
use rmqtt_codec::error::EncodeError;
use rmqtt_codec::types::{Publish, QoS};
use rmqtt_codec::version::{ProtocolVersion, VersionCodec};
use rmqtt_codec::{MqttCodec, MqttPacket, v3, v5};
use thingsafe_core::payload::{self, PayloadError};
use thingsafe_core::{AttributeScope, Device, now_ms};
use thingsafe_store::{Change, Store, StoreError};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, oneshot, watch};
use tokio::time::{Instant, timeout};
use tokio_util::codec::Framed;

/// Bytes each connection's read and write buffers start with.
const IO_BUFFER_START: usize = 1024;

use crate::MqttSettings;
use crate::certificate::{self, ClientCertificate};
use crate::codes::{self, ConnectRefusal, Protocol, PublishRefusal, Violation};
use crate::error::SessionError;
use crate::persistence::{self, Queued};
use crate::render;
use crate::topic::{self, Family, PublishTopic, Subscription, TopicError};

#[path = "gateway.rs"]
mod gateway;
#[path = "provision.rs"]
pub(crate) mod provision;

/// The longest parser message sent back in an MQTT 5 reason string.
const MAX_REASON_CHARS: usize = 256;

/// Serves one connection until it ends. `Ok` when the client disconnected cleanly.
pub async fn handle<S>(
    stream: S,
    store: Arc<dyn Store>,
    settings: Arc<MqttSettings>,
    stop: watch::Receiver<bool>,
) -> Result<(), SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    handle_with_certificate(stream, None, store, settings, stop).await
}

/// [`handle`] for a connection whose TLS client presented a certificate: the device it is
/// (certificate.rs) is authenticated by it; otherwise the access token decides, as without.
pub async fn handle_with_certificate<S>(
    stream: S,
    certificate: Option<ClientCertificate>,
    store: Arc<dyn Store>,
    settings: Arc<MqttSettings>,
    stop: watch::Receiver<bool>,
) -> Result<(), SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Small buffers that grow with the traffic: most devices are idle most of the time
    // (tokio-util's default is 8 KiB each way per connection).
    let mut io = Framed::with_capacity(stream, MqttCodec::Version(VersionCodec), IO_BUFFER_START);
    // A connection still without CONNECT holds nothing to finish: at shutdown it just ends.
    let mut stop_connecting = stop.clone();
    // Boxed: CONNECT's state is freed once the device is in, not kept in every session.
    let connecting = timeout(
        settings.connect_timeout,
        Box::pin(connect(&mut io, certificate, &*store, &settings)),
    );
    let (proto, hello, device, held) = tokio::select! {
        accepted = connecting => match accepted {
            Ok(accepted) => accepted?,
            Err(_) => return Err(SessionError::ConnectTimeout(settings.connect_timeout)),
        },
        () = stopped(&mut stop_connecting) => return Err(SessionError::Shutdown),
    };
    // Only what the session needs of the CONNECT: its strings share the read buffer's
    // allocation, which they would keep alive.
    let (keep_alive, receive_max) = (hello.keep_alive, hello.receive_max);
    drop(hello);
    // The `provision` user only asks for credentials (provision.rs); boxed, as it is rare.
    let Some(device) = device else {
        return Box::pin(provision::serve(
            io, proto, keep_alive, store, settings, stop,
        ))
        .await;
    };
    // An idle device needs no room to send: the write buffer grows again with what is sent.
    if io.write_buffer().is_empty() {
        *io.write_buffer_mut() = BytesMut::new();
    }
    tracing::info!(
        device = %device.id,
        protocol = proto.as_str(),
        keep_alive,
        "MQTT device connected"
    );
    metrics::gauge!("thingsafe_mqtt_sessions").increment(1.0);
    // Our QoS 1 messages in flight to the device are kept until acknowledged: at most the
    // client's Receive Maximum, and at most `session_queue`.
    let out_limit = receive_max
        .map(|n| usize::from(n.get()))
        .unwrap_or(usize::from(u16::MAX))
        .min(settings.session_queue.max(1));
    let (held, leave, resumed) = match held {
        Some(h) => (
            Some(Held {
                key: h.claim.key,
                connection: h.claim.connection,
                keep_for: h.keep_for,
            }),
            Some(h.claim.leave),
            h.claim.saved.map(|saved| (saved, h.changes)),
        ),
        None => (None, None, None),
    };
    let mut session = Session {
        io,
        proto,
        device: Arc::new(device),
        store: store.clone(),
        settings,
        keep_alive,
        inflight: FuturesOrdered::new(),
        held: None,
        closing: false,
        subs: Subs::default(),
        changes: None,
        out: OutIds {
            next: 0,
            pending: HashSet::new(),
            limit: out_limit,
        },
        awaiting_release: HashSet::new(),
        gateway: Default::default(),
        suspensions: store.suspension_changes(),
        backlog: VecDeque::new(),
        unacked: VecDeque::new(),
        session: held,
        leave,
        gone: None,
    };
    let device = session.device.id;
    let result = match resumed {
        Some((saved, changes)) => match session.resume(saved, changes).await {
            Ok(()) => session.run(stop).await,
            Err(e) => Err(e),
        },
        None => session.run(stop).await,
    };
    session.release();
    metrics::gauge!("thingsafe_mqtt_sessions").decrement(1.0);
    match &result {
        Ok(()) => tracing::info!(device = %device, "MQTT device disconnected"),
        Err(e) if e.is_quiet() => {
            tracing::info!(device = %device, reason = %e, "MQTT device disconnected")
        }
        Err(e) => tracing::info!(device = %device, error = %e, "MQTT connection closed"),
    }
    result
}

/// What we need of a CONNECT, whichever the version.
struct Hello {
    keep_alive: u16,
    client_id: ByteString,
    /// MQTT 3.1.1 CleanSession, MQTT 5 Clean Start.
    clean_start: bool,
    /// MQTT 5's Session Expiry Interval (seconds); `None` for MQTT 3.1.1.
    session_expiry: Option<u32>,
    username: Option<ByteString>,
    auth_method: bool,
    receive_max: Option<NonZeroU16>,
    max_packet_size: Option<u32>,
}

/// The session a device's connection holds, by its client id (persistence.rs).
struct HeldAtConnect {
    claim: persistence::Claim,
    /// How long the session outlives the connection; `None`: it ends with it.
    keep_for: Option<Duration>,
    /// Subscribed to before the session was claimed, so that a resumed session misses no
    /// change between its keeper and this connection.
    changes: Option<broadcast::Receiver<Arc<Change>>>,
}

/// How long a session outlives its connection, as the client asked and the server allows.
fn keep_for(hello: &Hello, settings: &MqttSettings) -> Option<Duration> {
    match hello.session_expiry {
        None => (!hello.clean_start).then_some(settings.max_session_expiry),
        Some(0) => None,
        Some(secs) => Some(Duration::from_secs(u64::from(secs)).min(settings.max_session_expiry)),
    }
}

/// Reads the CONNECT (after detecting the version), authenticates the device, takes its
/// session (over) and answers with a CONNACK.
async fn connect<S>(
    io: &mut Framed<S, MqttCodec>,
    certificate: Option<ClientCertificate>,
    store: &dyn Store,
    settings: &MqttSettings,
) -> Result<(Protocol, Hello, Option<Device>, Option<HeldAtConnect>), SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let version = match io.next().await {
        None => return Err(SessionError::Closed),
        Some(Ok((MqttPacket::Version(v), _))) => v,
        Some(Ok(_)) => return Err(SessionError::Protocol("expected CONNECT")),
        Some(Err(e)) => {
            let buf = io.read_buffer();
            if buf.first().is_some_and(|b| *b != 0x10) {
                refused("protocol");
                return Err(SessionError::Protocol("the first packet must be CONNECT"));
            }
            if unsupported_level(buf) {
                // MQTT 3.1.1 §3.1.2.2: CONNACK 0x01, unacceptable protocol level.
                refused("protocol_level");
                let _ = timeout(settings.write_timeout, async {
                    io.get_mut().write_all(&[0x20, 0x02, 0x00, 0x01]).await?;
                    io.get_mut().flush().await
                })
                .await;
            }
            return Err(e.into());
        }
    };
    let (proto, codec) = match version {
        ProtocolVersion::MQTT3 => (
            Protocol::V3,
            MqttCodec::V3(v3::Codec::new(settings.max_packet_size)),
        ),
        ProtocolVersion::MQTT5 => (
            Protocol::V5,
            MqttCodec::V5(v5::Codec::new(settings.max_packet_size, 0)),
        ),
    };
    *io.codec_mut() = codec;
    let hello = match io.next().await {
        None => return Err(SessionError::Closed),
        Some(Ok((MqttPacket::V3(v3::Packet::Connect(c)), _))) => Hello {
            keep_alive: c.keep_alive,
            client_id: c.client_id,
            clean_start: c.clean_session,
            session_expiry: None,
            username: c.username,
            auth_method: false,
            receive_max: None,
            max_packet_size: None,
        },
        Some(Ok((MqttPacket::V5(v5::Packet::Connect(c)), _))) => Hello {
            keep_alive: c.keep_alive,
            client_id: c.client_id,
            clean_start: c.clean_start,
            session_expiry: Some(c.session_expiry_interval_secs),
            username: c.username,
            auth_method: c.auth_method.is_some(),
            receive_max: c.receive_max,
            max_packet_size: c.max_packet_size.map(|n| n.get()),
        },
        Some(Ok(_)) => return Err(SessionError::Protocol("expected CONNECT")),
        Some(Err(e)) => {
            let error = SessionError::from(e);
            if let SessionError::Decode { violation, .. } = &error {
                refused(violation.label());
                let answer = match (proto, violation) {
                    (Protocol::V5, v) => Some(connack_v5_refused(v.connack())),
                    (Protocol::V3, Violation::ClientId) => {
                        Some(connack_v3(ConnectRefusal::ClientId.v3()))
                    }
                    (Protocol::V3, _) => None,
                };
                if let Some(packet) = answer {
                    let _ = timeout(settings.write_timeout, io.send(packet)).await;
                }
            }
            return Err(error);
        }
    };

    // ThingsBoard's X509_CERTIFICATE(_CHAIN): the certificate is the device's identity,
    // whatever the user name says.
    let by_certificate = match certificate {
        None => Ok(None),
        Some(certificate) => Box::pin(certificate::device_of(store, &certificate)).await,
    };
    let refusal = match (hello.auth_method, by_certificate) {
        (true, _) => Err(ConnectRefusal::AuthMethod),
        (false, Err(e)) => {
            tracing::error!(error = %e, "cannot look up an MQTT client certificate");
            Err(ConnectRefusal::Unavailable)
        }
        (false, Ok(Some(device))) => Ok(Some(device)),
        (false, Ok(None)) => match hello.username.as_deref().filter(|u| !u.is_empty()) {
            None => Err(ConnectRefusal::MissingToken),
            // ThingsBoard's provisioning user, whatever the password.
            Some(provision::USERNAME) => Ok(None),
            Some(token) => match store.device_by_token(token).await {
                Ok(Some(device)) => Ok(Some(device)),
                Ok(None) => Err(ConnectRefusal::UnknownToken),
                Err(e) => {
                    tracing::error!(error = %e, "cannot look up an MQTT access token");
                    Err(ConnectRefusal::Unavailable)
                }
            },
        },
    };
    let refusal = refusal.and_then(|device| match &device {
        Some(d) if store.suspension_of(d).is_some() => {
            tracing::info!(device = %d.id, "refused a suspended device over MQTT");
            Err(ConnectRefusal::Suspended)
        }
        // MQTT-3.1.3-8: a session to keep needs a name.
        _ if proto == Protocol::V3 && hello.client_id.is_empty() && !hello.clean_start => {
            Err(ConnectRefusal::ClientId)
        }
        _ => Ok(device),
    });
    let device = match refusal {
        Ok(device) => device,
        Err(refusal) => {
            refused(refusal.label());
            let packet = match proto {
                Protocol::V3 => connack_v3(refusal.v3()),
                Protocol::V5 => connack_v5_refused(refusal.v5()),
            };
            let _ = timeout(settings.write_timeout, io.send(packet)).await;
            return Err(SessionError::Refused(refusal));
        }
    };

    let held = match &device {
        Some(d) if !hello.client_id.is_empty() => {
            let changes = (!hello.clean_start).then(|| feed_of(store, d));
            let grace = settings.connect_timeout / 2;
            let mut claim = settings.sessions.claim(d.id, &hello.client_id, grace).await;
            if hello.clean_start {
                claim.saved = None;
            }
            Some(HeldAtConnect {
                claim,
                keep_for: keep_for(&hello, settings),
                changes,
            })
        }
        _ => None,
    };
    let session_present = held.as_ref().is_some_and(|h| h.claim.saved.is_some());
    // MQTT 5: the Session Expiry Interval used, when it is not the one asked for.
    let granted_expiry = match (&held, hello.session_expiry) {
        (_, None | Some(0)) => None,
        (None, Some(_)) => Some(0),
        (Some(h), Some(asked)) => h
            .keep_for
            .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
            .filter(|granted| *granted != asked),
    };
    let connack = match proto {
        Protocol::V3 => MqttPacket::V3(v3::Packet::ConnectAck(v3::ConnectAck {
            return_code: v3::ConnectAckReason::ConnectionAccepted,
            session_present,
        })),
        Protocol::V5 => {
            if let (MqttCodec::V5(codec), Some(max)) = (io.codec_mut(), hello.max_packet_size) {
                codec.set_max_outbound_size(max);
            }
            MqttPacket::V5(v5::Packet::ConnectAck(Box::new(v5::ConnectAck {
                session_present,
                session_expiry_interval_secs: granted_expiry,
                receive_max: NonZeroU16::new(settings.receive_maximum).unwrap_or(NonZeroU16::MIN),
                max_packet_size: Some(settings.max_packet_size),
                // An empty client id gets one (MQTT-3.2.2-16); its session is not kept.
                assigned_client_id: hello.client_id.is_empty().then(|| match &device {
                    Some(device) => ByteString::from(format!("thingsafe-{}", device.id)),
                    None => ByteString::from(format!(
                        "thingsafe-provision-{}",
                        thingsafe_core::DeviceId::random()
                    )),
                }),
                retain_available: false,
                subscription_identifiers_available: false,
                shared_subscription_available: false,
                ..v5::ConnectAck::default()
            })))
        }
    };
    match timeout(settings.write_timeout, io.send(connack)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(encode_error(e)),
        Err(_) => return Err(SessionError::WriteTimeout(settings.write_timeout)),
    }
    metrics::counter!("thingsafe_mqtt_connects_total").increment(1);
    Ok((proto, hello, device, held))
}

/// Whether `buf` starts with a CONNECT of a protocol level we do not speak.
fn unsupported_level(buf: &[u8]) -> bool {
    if buf.first() != Some(&0x10) {
        return false;
    }
    // Skip the remaining length (1 to 4 bytes).
    let Some(len_bytes) = buf[1..]
        .iter()
        .take(4)
        .position(|b| b & 0x80 == 0)
        .map(|i| i + 1)
    else {
        return false;
    };
    let rest = &buf[1 + len_bytes..];
    match rest {
        [0, 4, b'M', b'Q', b'T', b'T', level, ..] => !matches!(level, 3..=5),
        [0, 6, b'M', b'Q', b'I', b's', b'd', b'p', level, ..] => *level != 3,
        _ => false,
    }
}

fn refused(reason: &'static str) {
    metrics::counter!("thingsafe_mqtt_refused_total", "reason" => reason).increment(1);
}

fn connack_v3(return_code: v3::ConnectAckReason) -> MqttPacket {
    MqttPacket::V3(v3::Packet::ConnectAck(v3::ConnectAck {
        return_code,
        session_present: false,
    }))
}

fn connack_v5_refused(reason_code: v5::ConnectAckReason) -> MqttPacket {
    MqttPacket::V5(v5::Packet::ConnectAck(Box::new(v5::ConnectAck {
        reason_code,
        ..v5::ConnectAck::default()
    })))
}

fn encode_error(e: EncodeError) -> SessionError {
    match e {
        EncodeError::Io(_) => SessionError::Closed,
        other => SessionError::Encode(other),
    }
}

/// The handling of one message: resolves when its outcome is known (for writes, after
/// the commit). Boxed so that one queue holds every kind.
type Work = Pin<Box<dyn Future<Output = Outcome> + Send>>;
type Pending = Pin<Box<dyn Future<Output = Done> + Send>>;

struct Done {
    packet_id: Option<NonZeroU16>,
    qos: QoS,
    outcome: Outcome,
}

enum Outcome {
    /// Durably stored (or, for a QoS 2 retransmission, stored before): acknowledge.
    Stored,
    /// An attribute request answered: acknowledge, then publish the answer (if the id
    /// asks for one).
    Answer(Option<(String, Bytes)>, Subscription),
    /// MQTT 5, QoS 1 or 2: acknowledge with a failure reason; the session goes on.
    Refused {
        refusal: PublishRefusal,
        message: String,
    },
    /// The session ends here, after everything before it was acknowledged.
    Close {
        refusal: PublishRefusal,
        message: String,
    },
    /// The store failed: the message is not acknowledged and the session ends.
    Failed(StoreError),
}

/// What the device subscribed to, with the QoS granted.
#[derive(Clone, Default)]
pub(crate) struct Subs {
    attributes: Option<QoS>,
    attribute_responses: Option<QoS>,
    rpc_requests: Option<QoS>,
    rpc_responses: Option<QoS>,
    gateway_attributes: Option<QoS>,
    gateway_attribute_responses: Option<QoS>,
    gateway_rpc: Option<QoS>,
    /// The topic families shared-attribute updates and commands go out in.
    attributes_family: Family,
    rpc_requests_family: Family,
}

impl Subs {
    fn slot(&mut self, sub: Subscription) -> &mut Option<QoS> {
        match sub {
            Subscription::Attributes => &mut self.attributes,
            Subscription::AttributeResponses => &mut self.attribute_responses,
            Subscription::RpcRequests => &mut self.rpc_requests,
            Subscription::RpcResponses => &mut self.rpc_responses,
            Subscription::GatewayAttributes => &mut self.gateway_attributes,
            Subscription::GatewayAttributeResponses => &mut self.gateway_attribute_responses,
            Subscription::GatewayRpc => &mut self.gateway_rpc,
        }
    }

    /// Whether anything subscribed to needs the change feed.
    fn live(&self) -> bool {
        [
            self.attributes,
            self.rpc_requests,
            self.gateway_attributes,
            self.gateway_rpc,
        ]
        .iter()
        .any(Option::is_some)
    }
}

/// Packet ids of our QoS 1 publishes that the device has not acknowledged yet.
struct OutIds {
    next: u16,
    pending: HashSet<u16>,
    /// The client's Receive Maximum (MQTT 5), else 65535.
    limit: usize,
}

impl OutIds {
    /// A free id, or `None` when the client's window is full.
    fn take(&mut self) -> Option<NonZeroU16> {
        if self.pending.len() >= self.limit.min(usize::from(u16::MAX)) {
            return None;
        }
        loop {
            self.next = self.next.wrapping_add(1);
            if self.next != 0 && self.pending.insert(self.next) {
                return NonZeroU16::new(self.next);
            }
        }
    }

    fn release(&mut self, id: u16) {
        self.pending.remove(&id);
    }
}

/// Client packets, whichever the version.
enum Inbound {
    Publish(Box<Publish>),
    PubAck(NonZeroU16),
    PubRel(NonZeroU16),
    Subscribe {
        packet_id: NonZeroU16,
        filters: Vec<(ByteString, QoS)>,
    },
    Unsubscribe {
        packet_id: NonZeroU16,
        filters: Vec<ByteString>,
    },
    Ping,
    Disconnect,
    /// PUBREC and PUBCOMP: we never publish at QoS 2, so there is nothing to do.
    Ignored,
    /// A packet a client must not send now.
    NotAllowed(&'static str),
}

fn inbound(packet: MqttPacket) -> Inbound {
    match packet {
        MqttPacket::V3(p) => match p {
            v3::Packet::Publish(p) => Inbound::Publish(p),
            v3::Packet::PublishAck { packet_id } => Inbound::PubAck(packet_id),
            v3::Packet::PublishRelease { packet_id } => Inbound::PubRel(packet_id),
            v3::Packet::PublishReceived { .. } | v3::Packet::PublishComplete { .. } => {
                Inbound::Ignored
            }
            v3::Packet::Subscribe {
                packet_id,
                topic_filters,
            } => Inbound::Subscribe {
                packet_id,
                filters: topic_filters,
            },
            v3::Packet::Unsubscribe {
                packet_id,
                topic_filters,
            } => Inbound::Unsubscribe {
                packet_id,
                filters: topic_filters,
            },
            v3::Packet::PingRequest => Inbound::Ping,
            v3::Packet::Disconnect => Inbound::Disconnect,
            v3::Packet::Connect(_) => Inbound::NotAllowed("a second CONNECT"),
            _ => Inbound::NotAllowed("a packet only a server sends"),
        },
        MqttPacket::V5(p) => match p {
            v5::Packet::Publish(p) => Inbound::Publish(p),
            v5::Packet::PublishAck(a) => Inbound::PubAck(a.packet_id),
            v5::Packet::PublishRelease(a) => Inbound::PubRel(a.packet_id),
            v5::Packet::PublishReceived(_) | v5::Packet::PublishComplete(_) => Inbound::Ignored,
            v5::Packet::Subscribe(s) => Inbound::Subscribe {
                packet_id: s.packet_id,
                filters: s
                    .topic_filters
                    .into_iter()
                    .map(|(f, o)| (f, o.qos))
                    .collect(),
            },
            v5::Packet::Unsubscribe(u) => Inbound::Unsubscribe {
                packet_id: u.packet_id,
                filters: u.topic_filters,
            },
            v5::Packet::PingRequest => Inbound::Ping,
            v5::Packet::Disconnect(_) => Inbound::Disconnect,
            v5::Packet::Connect(_) => Inbound::NotAllowed("a second CONNECT"),
            v5::Packet::Auth(_) => Inbound::NotAllowed("AUTH without an authentication method"),
            _ => Inbound::NotAllowed("a packet only a server sends"),
        },
        MqttPacket::Version(_) => Inbound::NotAllowed("a second CONNECT"),
    }
}

struct Session<S> {
    io: Framed<S, MqttCodec>,
    proto: Protocol,
    device: Arc<Device>,
    store: Arc<dyn Store>,
    settings: Arc<MqttSettings>,
    /// Seconds, as the client asked; 0 turns the check off.
    keep_alive: u16,
    /// Messages being handled, in arrival order: their acknowledgements go out in this
    /// order (MQTT-4.6.0-2). At most `receive_maximum` at once; while full, the socket is
    /// not read.
    inflight: FuturesOrdered<Pending>,
    /// An attribute request waiting for the writes before it, so that it reads them.
    held: Option<(Option<NonZeroU16>, QoS, Work)>,
    /// A refusal ends the session once the messages before it are acknowledged: nothing
    /// more is read.
    closing: bool,
    subs: Subs,
    /// Committed changes, while the device subscribes to attribute updates.
    changes: Option<broadcast::Receiver<Arc<Change>>>,
    out: OutIds,
    /// QoS 2 messages stored and PUBREC'd, waiting for their PUBREL: a retransmission is
    /// acknowledged again, not stored twice.
    awaiting_release: HashSet<NonZeroU16>,
    /// A gateway's sub-devices connected through this session.
    gateway: gateway::SubDevices,
    /// Moves when an administrator suspends or lifts: the device is then checked again.
    suspensions: watch::Receiver<u64>,
    /// QoS 1 messages for the device waiting for room in its receive window (bounded by
    /// `session_queue`), in order.
    backlog: VecDeque<Queued>,
    /// QoS 1 messages sent and not acknowledged yet, in the order sent: kept with the
    /// session, and sent again (DUP) when it resumes.
    unacked: VecDeque<(u16, Queued)>,
    /// The session this connection holds (by client id), if it names one.
    session: Option<Held>,
    /// Fires when another connection with the same client id takes the session over.
    leave: Option<oneshot::Receiver<oneshot::Sender<()>>>,
    /// Told once this connection is gone and its session kept, after a takeover.
    gone: Option<oneshot::Sender<()>>,
}

/// The session a connection holds in the registry.
struct Held {
    key: (thingsafe_core::DeviceId, String),
    connection: u64,
    keep_for: Option<Duration>,
}

enum Step {
    Continue,
    /// The client said DISCONNECT.
    Disconnect,
}

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Rare paths (subscriptions, change delivery, shutdown, protocol violations) are
    /// boxed: their state lives on the heap while they run, not in every idle session's
    /// future (measured: idle connections took 5 KiB of task memory each).
    async fn run(&mut self, mut stop: watch::Receiver<bool>) -> Result<(), SessionError> {
        let mut last_seen = Instant::now();
        let window = usize::from(self.settings.receive_maximum.max(1));
        loop {
            if self.inflight.is_empty()
                && let Some((packet_id, qos, request)) = self.held.take()
            {
                self.push(packet_id, qos, request);
            }
            let reading = !self.closing && self.held.is_none() && self.inflight.len() < window;
            // 1.5 times the keep-alive (MQTT-3.1.2-24), counted while we read.
            let deadline = (self.keep_alive > 0 && reading)
                .then(|| last_seen + Duration::from_millis(u64::from(self.keep_alive) * 1500));
            tokio::select! {
                biased;
                _ = stopped(&mut stop) => {
                    return Box::pin(self.shut_down()).await;
                }
                Ok(()) = self.suspensions.changed() => {
                    if self.store.suspension_of(&self.device).is_some() {
                        return Box::pin(self.suspended()).await;
                    }
                }
                gone = taken_over(&mut self.leave), if self.leave.is_some() => {
                    self.gone = Some(gone);
                    return Box::pin(self.taken_over()).await;
                }
                Some(done) = self.inflight.next(), if !self.inflight.is_empty() => {
                    // While the window was full nothing was read: the client is not idle.
                    last_seen = Instant::now();
                    self.finish(done).await?;
                    while let Some(Some(done)) = self.inflight.next().now_or_never() {
                        self.finish(done).await?;
                    }
                    self.flush().await?;
                }
                frame = self.io.next(), if reading => {
                    last_seen = Instant::now();
                    let packet = match frame {
                        None => return Err(SessionError::Closed),
                        Some(Err(e)) => return Box::pin(self.violation(e.into())).await,
                        Some(Ok((packet, _))) => packet,
                    };
                    match self.on_packet(packet).await? {
                        Step::Continue => self.flush().await?,
                        Step::Disconnect => {
                            Box::pin(self.drain()).await?;
                            return Ok(());
                        }
                    }
                }
                change = next_change(&mut self.changes), if self.changes.is_some() => {
                    Box::pin(self.on_change(change)).await?;
                }
                _ = sleep_until_opt(deadline), if deadline.is_some() => {
                    Box::pin(self.drain()).await?;
                    self.disconnect(v5::DisconnectReasonCode::KeepAliveTimeout, None).await;
                    return Err(SessionError::KeepAlive(self.keep_alive));
                }
            }
        }
    }

    async fn on_packet(&mut self, packet: MqttPacket) -> Result<Step, SessionError> {
        match inbound(packet) {
            Inbound::Publish(p) => self.on_publish(*p).await?,
            Inbound::PubAck(id) => {
                self.out.release(id.get());
                if let Some(at) = self.unacked.iter().position(|(sent, _)| *sent == id.get())
                    && let Some((_, acked)) = self.unacked.remove(at)
                    && let Some(rpc) = topic::rpc_request_id(&acked.topic)
                {
                    // A command acknowledged: a persistent one is DELIVERED.
                    self.store.rpc_delivered(self.device.id, rpc);
                }
                self.send_backlog().await?;
            }
            Inbound::PubRel(id) => {
                let known = self.awaiting_release.remove(&id);
                let packet = match self.proto {
                    Protocol::V3 => MqttPacket::V3(v3::Packet::PublishComplete { packet_id: id }),
                    Protocol::V5 => MqttPacket::V5(v5::Packet::PublishComplete(v5::PublishAck2 {
                        packet_id: id,
                        reason_code: if known {
                            v5::PublishAck2Reason::Success
                        } else {
                            v5::PublishAck2Reason::PacketIdNotFound
                        },
                        properties: Vec::new(),
                        reason_string: None,
                    })),
                };
                self.feed(packet).await?;
            }
            Inbound::Subscribe { packet_id, filters } => {
                Box::pin(self.on_subscribe(packet_id, filters)).await?
            }
            Inbound::Unsubscribe { packet_id, filters } => {
                Box::pin(self.on_unsubscribe(packet_id, filters)).await?
            }
            Inbound::Ping => {
                let packet = match self.proto {
                    Protocol::V3 => MqttPacket::V3(v3::Packet::PingResponse),
                    Protocol::V5 => MqttPacket::V5(v5::Packet::PingResponse),
                };
                self.feed(packet).await?;
            }
            Inbound::Disconnect => return Ok(Step::Disconnect),
            Inbound::Ignored => {}
            Inbound::NotAllowed(what) => {
                refused("protocol");
                Box::pin(self.drain()).await?;
                self.disconnect(v5::DisconnectReasonCode::ProtocolError, Some(what))
                    .await;
                return Err(SessionError::Protocol(what));
            }
        }
        Ok(Step::Continue)
    }

    async fn on_publish(&mut self, p: Publish) -> Result<(), SessionError> {
        let (packet_id, qos) = (p.packet_id, p.qos);
        let retransmitted = match (qos, packet_id) {
            (QoS::ExactlyOnce, Some(id)) => self.awaiting_release.contains(&id),
            _ => false,
        };
        if retransmitted {
            // A retransmission of a QoS 2 message we already stored.
            self.push(packet_id, qos, ready(Outcome::Stored));
            return Ok(());
        }
        let parsed = topic::publish_topic_for(&p.topic, self.device.gateway);
        let kind = match &parsed {
            Ok(PublishTopic::Telemetry) => "telemetry",
            Ok(PublishTopic::Attributes) => "attributes",
            Ok(PublishTopic::AttributeRequest(..)) => "attribute_request",
            Ok(PublishTopic::RpcCall(..)) => "rpc_call",
            Ok(PublishTopic::RpcReply(_)) => "rpc_reply",
            Ok(PublishTopic::Gateway(t)) => t.label(),
            Ok(PublishTopic::Claim) => "claim",
            Err(_) => "refused",
        };
        metrics::counter!("thingsafe_mqtt_messages_in_total", "topic" => kind).increment(1);
        let store = self.store.clone();
        let device = self.device.clone();
        // Telemetry is counted with its data points once parsed.
        if matches!(&parsed, Ok(t) if *t != PublishTopic::Telemetry)
            && let Err(exceeded) = self.settings.rate_limits.admit(&device, 0)
        {
            self.refuse(&p, PublishRefusal::QuotaExceeded, exceeded.to_string());
            return Ok(());
        }
        match parsed {
            Err(e @ (TopicError::NotAllowed(_) | TopicError::NotAGateway(_))) => {
                self.refuse(&p, PublishRefusal::NotAuthorized, e.to_string())
            }
            Ok(PublishTopic::Gateway(t)) => return Box::pin(self.on_gateway_publish(t, p)).await,
            Err(e @ (TopicError::BadRequestId(_) | TopicError::Protobuf(_))) => {
                self.refuse(&p, PublishRefusal::PayloadFormatInvalid, e.to_string())
            }
            Ok(PublishTopic::Telemetry) => match payload::parse_telemetry(&p.payload, now_ms()) {
                Ok(points) => match self.settings.rate_limits.admit(&device, points.len()) {
                    Ok(()) => self.push(
                        packet_id,
                        qos,
                        Box::pin(
                            async move { stored(store.append_telemetry(&device, points).await) },
                        ),
                    ),
                    Err(exceeded) => {
                        self.refuse(&p, PublishRefusal::QuotaExceeded, exceeded.to_string())
                    }
                },
                Err(e) => self.malformed(&p, e),
            },
            Ok(PublishTopic::Attributes) => match payload::parse_attributes(&p.payload) {
                Ok(attributes) => self.push(
                    packet_id,
                    qos,
                    Box::pin(async move {
                        stored(
                            store
                                .save_attributes(&device, AttributeScope::Client, attributes)
                                .await,
                        )
                    }),
                ),
                Err(e) => self.malformed(&p, e),
            },
            Ok(PublishTopic::AttributeRequest(id, family)) => {
                match payload::parse_attribute_request(&p.payload) {
                    Ok(request) => {
                        let answer = Box::pin(async move {
                            match render::attribute_response(&*store, &device, &request).await {
                                // ThingsBoard answers only ids of 0 or more.
                                Ok(body) => Outcome::Answer(
                                    (id >= 0).then(|| {
                                        (topic::attribute_response_topic(id, family), body)
                                    }),
                                    Subscription::AttributeResponses,
                                ),
                                Err(e) => Outcome::Failed(e),
                            }
                        });
                        // Answered once the writes before it are committed, so that it
                        // reads them.
                        self.held = Some((packet_id, qos, answer));
                    }
                    Err(e) => self.malformed(&p, e),
                }
            }
            Ok(PublishTopic::Claim) => {
                match thingsafe_core::model::provisioning::parse_claim_request(&p.payload) {
                    Ok(request) => self.push(
                        packet_id,
                        qos,
                        Box::pin(async move {
                            match store.open_claim(&device, &request).await {
                                Ok(opened) => {
                                    tracing::info!(device = %device.id, opened, "claiming request");
                                    Outcome::Stored
                                }
                                Err(e) => Outcome::Failed(e),
                            }
                        }),
                    ),
                    Err(message) => self.refuse(&p, PublishRefusal::PayloadFormatInvalid, message),
                }
            }
            Ok(PublishTopic::RpcReply(id)) => {
                self.store
                    .rpc_respond(self.device.id, id, render::rpc_reply(&p.payload));
                self.push(packet_id, qos, ready(Outcome::Stored));
            }
            Ok(PublishTopic::RpcCall(id, family)) => {
                match render::rpc_call_answer(&p.payload, &self.settings) {
                    Ok(body) => self.push(
                        packet_id,
                        qos,
                        ready(Outcome::Answer(
                            (id >= 0).then(|| (topic::rpc_response_topic(id, family), body)),
                            Subscription::RpcResponses,
                        )),
                    ),
                    Err(message) => self.refuse(&p, PublishRefusal::PayloadFormatInvalid, message),
                }
            }
        }
        Ok(())
    }

    /// Hands the device the commands waiting in its mailbox, if it subscribed to them.
    async fn deliver_commands(&mut self) -> Result<(), SessionError> {
        let Some(qos) = self.subs.rpc_requests else {
            return Ok(());
        };
        for request in self.store.rpc_take(self.device.id) {
            tracing::debug!(device = %self.device.id, rpc = request.id, "delivering an RPC command");
            let topic = topic::rpc_request_topic(request.id, self.subs.rpc_requests_family);
            self.publish(&topic, render::rpc_command(&request), qos)
                .await?;
            if qos == QoS::AtMostOnce {
                // No acknowledgement will come: sent is delivered (as ThingsBoard).
                self.store.rpc_delivered(self.device.id, request.id);
            }
        }
        self.flush().await
    }

    fn malformed(&mut self, p: &Publish, e: PayloadError) {
        self.refuse(p, PublishRefusal::PayloadFormatInvalid, e.to_string());
    }

    /// Refuses a message: MQTT 5 acknowledges it with the reason when it can (QoS 1 or
    /// 2); otherwise the session ends, after the messages before it are acknowledged.
    fn refuse(&mut self, p: &Publish, refusal: PublishRefusal, message: String) {
        let logged = message.clone();
        self.refuse_logged(p, refusal, message, &logged);
    }

    /// [`Self::refuse`], logging `logged` instead of the message the client gets.
    fn refuse_logged(
        &mut self,
        p: &Publish,
        refusal: PublishRefusal,
        message: String,
        logged: &str,
    ) {
        refused(refusal.label());
        tracing::info!(
            device = %self.device.id,
            topic = %p.topic,
            error = %logged,
            "refused an MQTT message"
        );
        let outcome = if self.proto == Protocol::V5 && p.qos != QoS::AtMostOnce {
            Outcome::Refused { refusal, message }
        } else {
            self.closing = true;
            Outcome::Close { refusal, message }
        };
        self.push(p.packet_id, p.qos, ready(outcome));
    }

    fn push(&mut self, packet_id: Option<NonZeroU16>, qos: QoS, work: Work) {
        self.inflight
            .push_back(Box::pin(work.map(move |outcome| Done {
                packet_id,
                qos,
                outcome,
            })));
    }

    /// Sends what a handled message calls for.
    async fn finish(&mut self, done: Done) -> Result<(), SessionError> {
        let Done {
            packet_id,
            qos,
            outcome,
        } = done;
        match outcome {
            Outcome::Stored => self.ack(packet_id, qos, None).await,
            Outcome::Answer(answer, via) => {
                self.ack(packet_id, qos, None).await?;
                if let Some((topic, body)) = answer {
                    // At the QoS the device subscribed with, or 0 (ThingsBoard's rule).
                    let qos = self.subs.slot(via).unwrap_or(QoS::AtMostOnce);
                    self.publish(&topic, body, qos).await?;
                }
                Ok(())
            }
            Outcome::Refused { refusal, message } => {
                self.ack(packet_id, qos, Some((refusal, message))).await
            }
            Outcome::Close { refusal, message } => {
                self.disconnect(refusal.disconnect(), Some(&message)).await;
                Err(SessionError::PublishRefused { refusal, message })
            }
            Outcome::Failed(e) => {
                tracing::error!(device = %self.device.id, error = %e, "cannot store an MQTT message");
                self.disconnect(v5::DisconnectReasonCode::UnspecifiedError, None)
                    .await;
                Err(SessionError::Store(e))
            }
        }
    }

    /// PUBACK (QoS 1) or PUBREC (QoS 2); nothing for QoS 0.
    async fn ack(
        &mut self,
        packet_id: Option<NonZeroU16>,
        qos: QoS,
        refusal: Option<(PublishRefusal, String)>,
    ) -> Result<(), SessionError> {
        let Some(packet_id) = packet_id else {
            return Ok(());
        };
        if qos == QoS::ExactlyOnce && refusal.is_none() {
            self.awaiting_release.insert(packet_id);
        }
        let packet = match self.proto {
            Protocol::V3 => MqttPacket::V3(match qos {
                QoS::ExactlyOnce => v3::Packet::PublishReceived { packet_id },
                _ => v3::Packet::PublishAck { packet_id },
            }),
            Protocol::V5 => {
                let (reason_code, reason_string) = match refusal {
                    None => (v5::PublishAckReason::Success, None),
                    Some((refusal, message)) => (refusal.puback(), Some(reason_string(&message))),
                };
                let ack = v5::PublishAck {
                    packet_id,
                    reason_code,
                    properties: Vec::new(),
                    reason_string,
                };
                MqttPacket::V5(match qos {
                    QoS::ExactlyOnce => v5::Packet::PublishReceived(ack),
                    _ => v5::Packet::PublishAck(ack),
                })
            }
        };
        self.feed(packet).await
    }

    async fn on_subscribe(
        &mut self,
        packet_id: NonZeroU16,
        filters: Vec<(ByteString, QoS)>,
    ) -> Result<(), SessionError> {
        let mut granted = Vec::with_capacity(filters.len());
        let (mut commands, mut sub_commands) = (false, false);
        for (filter, requested) in filters {
            // The gateway topics are a gateway's only.
            let gateway = self.device.gateway;
            match topic::subscription_in_family(&filter).filter(|(s, _)| gateway || !s.is_gateway())
            {
                Some((sub, family)) => {
                    let qos = topic::granted_qos(requested);
                    *self.subs.slot(sub) = Some(qos);
                    match sub {
                        Subscription::Attributes => self.subs.attributes_family = family,
                        Subscription::RpcRequests => self.subs.rpc_requests_family = family,
                        _ => {}
                    }
                    if sub.is_live() && self.changes.is_none() {
                        // Before the SUBACK: every change committed after it is seen.
                        self.changes = Some(feed_of(&*self.store, &self.device));
                    }
                    granted.push(Some(qos));
                    commands |= sub == Subscription::RpcRequests;
                    sub_commands |= sub == Subscription::GatewayRpc;
                }
                None => {
                    refused("subscription");
                    tracing::info!(
                        device = %self.device.id,
                        filter = %filter,
                        "refused an MQTT subscription{}",
                        if topic::is_protobuf_filter(&filter) {
                            ": protobuf topics are not supported, subscribe to the JSON form"
                        } else {
                            ""
                        }
                    );
                    granted.push(None);
                }
            }
        }
        let packet = codes::suback(self.proto, packet_id, granted);
        self.feed(packet).await?;
        if commands {
            // Commands sent while the device was away wait in its mailbox.
            self.deliver_commands().await?;
        }
        if sub_commands {
            self.deliver_all_sub_commands().await?;
        }
        Ok(())
    }

    async fn on_unsubscribe(
        &mut self,
        packet_id: NonZeroU16,
        filters: Vec<ByteString>,
    ) -> Result<(), SessionError> {
        let mut status = Vec::with_capacity(filters.len());
        for filter in filters {
            let existed = match topic::subscription(&filter) {
                Some(sub) => self.subs.slot(sub).take().is_some(),
                None => false,
            };
            status.push(if existed {
                v5::UnsubscribeAckReason::Success
            } else {
                v5::UnsubscribeAckReason::NoSubscriptionExisted
            });
        }
        if !self.subs.live() {
            self.changes = None;
        }
        let packet = match self.proto {
            Protocol::V3 => MqttPacket::V3(v3::Packet::UnsubscribeAck { packet_id }),
            Protocol::V5 => MqttPacket::V5(v5::Packet::UnsubscribeAck(v5::UnsubscribeAck {
                packet_id,
                properties: Vec::new(),
                reason_string: None,
                status,
            })),
        };
        self.feed(packet).await
    }

    async fn on_change(
        &mut self,
        change: Result<Arc<Change>, broadcast::error::RecvError>,
    ) -> Result<(), SessionError> {
        match change {
            Ok(change) => {
                if matches!(&*change, Change::RpcWaiting { device } if *device == self.device.id) {
                    return self.deliver_commands().await;
                }
                if self.device.gateway {
                    self.on_gateway_change(&change).await?;
                }
                // Only to a device that subscribed: the feed is also open for RPC or
                // gateway subscriptions.
                if let Some(qos) = self.subs.attributes
                    && let Some(body) = render::attribute_update(&change, self.device.id)
                {
                    let topic = self.subs.attributes_family.attributes();
                    self.publish(topic, body, qos).await?;
                    self.flush().await?;
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(
                    device = %self.device.id,
                    missed,
                    "an MQTT session fell behind the change feed; some attribute updates were not delivered"
                );
                // Commands wait in mailboxes: none is lost, only its announcement.
                if self.device.gateway {
                    self.deliver_all_sub_commands().await?;
                }
                self.deliver_commands().await?;
            }
            Err(broadcast::error::RecvError::Closed) => self.changes = None,
        }
        Ok(())
    }

    /// Publishes to the device at the QoS it subscribed with: QoS 1 messages go out in
    /// order as its receive window has room, waiting in the bounded backlog meanwhile.
    async fn publish(&mut self, topic: &str, payload: Bytes, qos: QoS) -> Result<(), SessionError> {
        if qos == QoS::AtMostOnce {
            let packet = self.publish_packet(topic, payload, None, false);
            self.feed_or_drop(packet).await?;
            return Ok(());
        }
        let message = Queued {
            topic: topic.to_string(),
            payload,
            dup: false,
        };
        let max = self.settings.session_queue;
        persistence::push_bounded(&mut self.backlog, message, max, self.device.id);
        self.send_backlog().await
    }

    /// Sends the backlog's QoS 1 messages while the device's window has room.
    async fn send_backlog(&mut self) -> Result<(), SessionError> {
        while !self.backlog.is_empty() {
            let Some(id) = self.out.take() else {
                break;
            };
            let Some(message) = self.backlog.pop_front() else {
                break;
            };
            let packet = self.publish_packet(
                &message.topic,
                message.payload.clone(),
                Some(id),
                message.dup,
            );
            if self.feed_or_drop(packet).await? {
                self.unacked.push_back((id.get(), message));
            } else {
                self.out.release(id.get());
            }
        }
        Ok(())
    }

    fn publish_packet(
        &self,
        topic: &str,
        payload: Bytes,
        packet_id: Option<NonZeroU16>,
        dup: bool,
    ) -> MqttPacket {
        let publish = Box::new(Publish {
            dup,
            retain: false,
            qos: if packet_id.is_some() {
                QoS::AtLeastOnce
            } else {
                QoS::AtMostOnce
            },
            topic: ByteString::from(topic),
            packet_id,
            payload,
            properties: None,
        });
        match self.proto {
            Protocol::V3 => MqttPacket::V3(v3::Packet::Publish(publish)),
            Protocol::V5 => MqttPacket::V5(v5::Packet::Publish(publish)),
        }
    }

    /// A resumed session: its subscriptions back, then what waited for the device (sent
    /// but unacknowledged first, again), then the commands in its mailbox.
    async fn resume(
        &mut self,
        saved: persistence::Saved,
        changes: Option<broadcast::Receiver<Arc<Change>>>,
    ) -> Result<(), SessionError> {
        tracing::info!(device = %self.device.id, queued = saved.queue.len(), "MQTT session resumed");
        self.subs = saved.subs;
        if self.subs.live() {
            self.changes = Some(changes.unwrap_or_else(|| feed_of(&*self.store, &self.device)));
        }
        self.backlog = saved.queue;
        self.send_backlog().await?;
        if self.subs.rpc_requests.is_some() {
            self.deliver_commands().await?;
        }
        if self.subs.gateway_rpc.is_some() {
            self.deliver_all_sub_commands().await?;
        }
        self.flush().await
    }

    /// Another connection took the session over: what was received is acknowledged, then
    /// this one is told why (MQTT 5) and closed.
    async fn taken_over(&mut self) -> Result<(), SessionError> {
        tracing::info!(device = %self.device.id, "another connection took the MQTT session over");
        let reason = v5::DisconnectReasonCode::SessionTakenOver;
        self.close_for(reason, SessionError::TakenOver).await
    }

    /// Ends the session for a reason of the server's: what was received is acknowledged,
    /// then the device is told why (MQTT 5: `reason` and the error's text) and closed.
    async fn close_for(
        &mut self,
        reason: v5::DisconnectReasonCode,
        error: SessionError,
    ) -> Result<(), SessionError> {
        self.closing = true;
        self.drain().await?;
        self.disconnect(reason, Some(&error.to_string())).await;
        Err(error)
    }

    /// The connection ended: its session is kept if it asked so (what was not
    /// acknowledged first, marked DUP), and a connection taking it over is told.
    fn release(&mut self) {
        let Some(held) = self.session.take() else {
            return;
        };
        let kept = held.keep_for.map(|keep_for| {
            let mut queue: VecDeque<Queued> = self
                .unacked
                .drain(..)
                .map(|(_, message)| Queued {
                    dup: true,
                    ..message
                })
                .collect();
            queue.extend(self.backlog.drain(..));
            let saved = persistence::Saved {
                subs: self.subs.clone(),
                attributes: self
                    .subs
                    .attributes
                    .map(|qos| (qos, self.subs.attributes_family.attributes())),
                queue,
                expires: Instant::now() + keep_for,
            };
            let changes = self
                .changes
                .take()
                .unwrap_or_else(|| feed_of(&*self.store, &self.device));
            (saved, self.device.clone(), changes)
        });
        self.settings.sessions.release(
            held.key,
            held.connection,
            kept,
            self.settings.session_queue,
        );
        if let Some(gone) = self.gone.take() {
            let _ = gone.send(());
        }
    }

    /// After a malformed frame: MQTT 5 gets a DISCONNECT with the spec's reason code.
    async fn violation(&mut self, error: SessionError) -> Result<(), SessionError> {
        if let SessionError::Decode { violation, source } = &error {
            refused(violation.label());
            tracing::info!(device = %self.device.id, error = %source, "malformed MQTT packet");
            Box::pin(self.drain()).await?;
            self.disconnect(violation.disconnect(), None).await;
        }
        Err(error)
    }

    /// Stops reading, acknowledges what is in flight, says goodbye.
    async fn shut_down(&mut self) -> Result<(), SessionError> {
        self.closing = true;
        Box::pin(self.drain()).await?;
        self.disconnect(v5::DisconnectReasonCode::ServerShuttingDown, None)
            .await;
        Err(SessionError::Shutdown)
    }

    /// Finishes every message in flight, in order.
    async fn drain(&mut self) -> Result<(), SessionError> {
        if let Some((packet_id, qos, request)) = self.held.take() {
            self.push(packet_id, qos, request);
        }
        while let Some(done) = self.inflight.next().await {
            self.finish(done).await?;
        }
        self.flush().await
    }

    /// Sends what is queued and, on MQTT 5, a DISCONNECT; best effort, as the connection
    /// closes anyway. MQTT 3.1.1 has no DISCONNECT from the server.
    /// Suspended while connected: what was received is acknowledged, then the device is
    /// told why (MQTT 5) and the connection closes.
    async fn suspended(&mut self) -> Result<(), SessionError> {
        tracing::info!(device = %self.device.id, "dropping a device an administrator suspended");
        let reason = v5::DisconnectReasonCode::AdministrativeAction;
        self.close_for(reason, SessionError::Suspended).await
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
            let _ = self.feed(packet).await;
        }
        let _ = self.flush().await;
    }

    async fn feed(&mut self, packet: MqttPacket) -> Result<(), SessionError> {
        self.feed_or_drop(packet).await.map(|_| ())
    }

    /// Queues a packet for sending; false when it was dropped because it is larger than
    /// the client's Maximum Packet Size (MQTT-3.1.2-25).
    async fn feed_or_drop(&mut self, packet: MqttPacket) -> Result<bool, SessionError> {
        let limit = self.settings.write_timeout;
        match timeout(limit, self.io.feed(packet)).await {
            Ok(Ok(())) => Ok(true),
            Ok(Err(EncodeError::OverMaxPacketSize { size, max })) => {
                tracing::warn!(
                    device = %self.device.id,
                    size,
                    max,
                    "dropped a message larger than the client's Maximum Packet Size"
                );
                Ok(false)
            }
            Ok(Err(e)) => Err(encode_error(e)),
            Err(_) => Err(SessionError::WriteTimeout(limit)),
        }
    }

    async fn flush(&mut self) -> Result<(), SessionError> {
        let limit = self.settings.write_timeout;
        match timeout(limit, SinkExt::<MqttPacket>::flush(&mut self.io)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(encode_error(e)),
            Err(_) => Err(SessionError::WriteTimeout(limit)),
        }
    }
}

fn ready(outcome: Outcome) -> Work {
    Box::pin(std::future::ready(outcome))
}

fn stored(result: Result<(), StoreError>) -> Outcome {
    match result {
        Ok(()) => Outcome::Stored,
        Err(e) => Outcome::Failed(e),
    }
}

/// An MQTT 5 reason string: the message, cut to a readable length.
fn reason_string(message: &str) -> ByteString {
    let mut cut: String = message.chars().take(MAX_REASON_CHARS).collect();
    if cut.len() < message.len() {
        cut.push('…');
    }
    ByteString::from(cut)
}

/// Resolves when the server stops; never if it cannot (the sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|stopping| *stopping).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The changes a device's session listens to: its own only; a gateway's, the
/// installation's (it speaks for its sub-devices, and filters their changes itself).
fn feed_of(store: &dyn Store, device: &Device) -> broadcast::Receiver<Arc<Change>> {
    if device.gateway {
        store.changes()
    } else {
        store.device_changes(device.id)
    }
}

/// Resolves when another connection takes the session over, with the way to tell it
/// that this one is gone; never if the registry let go of this connection.
async fn taken_over(
    leave: &mut Option<oneshot::Receiver<oneshot::Sender<()>>>,
) -> oneshot::Sender<()> {
    if let Some(rx) = leave.as_mut()
        && let Ok(gone) = rx.await
    {
        return gone;
    }
    *leave = None;
    std::future::pending().await
}

async fn next_change(
    changes: &mut Option<broadcast::Receiver<Arc<Change>>>,
) -> Result<Arc<Change>, broadcast::error::RecvError> {
    match changes {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsupported_protocol_level_is_recognised() {
        assert!(unsupported_level(b"\x10\x10\x00\x04MQTT\x06\x02\x00\x3c"));
        assert!(unsupported_level(b"\x10\x10\x00\x04MQTT\x02\x02\x00\x3c"));
        assert!(unsupported_level(b"\x10\x10\x00\x06MQIsdp\x04\x02"));
        assert!(!unsupported_level(b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c"));
        assert!(!unsupported_level(b"\x10\x10\x00\x04MQTT\x05\x02\x00\x3c"));
        assert!(!unsupported_level(b"\x10\x10\x00\x04HTTP\x07"));
        assert!(!unsupported_level(b"\x10\xff\xff\xff\xff\xff"));
        assert!(!unsupported_level(b"\x20\x10"));
        assert!(!unsupported_level(b""));
    }

    #[test]
    fn packet_ids_for_the_device_skip_zero_and_those_in_use() {
        let mut ids = OutIds {
            next: u16::MAX - 1,
            pending: HashSet::from([1]),
            limit: 3,
        };
        assert_eq!(ids.take().map(NonZeroU16::get), Some(u16::MAX));
        assert_eq!(ids.take().map(NonZeroU16::get), Some(2));
        assert_eq!(ids.take(), None, "the client's window is full");
        ids.release(1);
        assert_eq!(ids.take().map(NonZeroU16::get), Some(3));
    }

    #[test]
    fn reason_strings_are_cut() {
        assert_eq!(&*reason_string("short"), "short");
        let long = "é".repeat(300);
        assert_eq!(reason_string(&long).chars().count(), MAX_REASON_CHARS + 1);
    }
}
