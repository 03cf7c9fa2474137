//! The handler over an in-memory pipe, against a real store: ordering, durability,
//! refusals, and any bytes at all closing cleanly.

use std::num::NonZeroU16;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use bytestring::ByteString;
use futures_util::{SinkExt, StreamExt};
use rmqtt_codec::types::{Publish, QoS};
use rmqtt_codec::{MqttCodec, MqttPacket, v3, v5};
use thingsafe_core::payload::Value;
use thingsafe_core::{AttributeScope, Authority, Device, DeviceCredentials};
use thingsafe_store::{NewDevice, NewUser, Scope, Store, TelemetryQuery, sqlite::SqliteStore};
use thingsafe_vault::{MasterKey, Vault};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::codec::{Encoder, Framed};

use crate::{MqttSettings, SessionError, handle, topic};

const TOKEN: &str = "UNIT-TEST-TOKEN";
const OTHER_TOKEN: &str = "OTHER-TEST-TOKEN";
const WAIT: Duration = Duration::from_secs(10);

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    device: Device,
    other: Device,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (master, _) = MasterKey::load_or_create(dir.path(), None).unwrap();
    let vault = Arc::new(Vault::open(dir.path(), master).unwrap());
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path(), vault).unwrap());
    let (tenant, _) = store
        .sign_up(
            "Acme",
            NewUser {
                email: "admin@acme.test".into(),
                password_hash: None,
                authority: Authority::TenantAdmin,
                customer_id: None,
                first_name: None,
                last_name: None,
                birth_date: None,
            },
        )
        .await
        .unwrap();
    let scope = Scope::Tenant(tenant.id);
    let mut devices = Vec::new();
    for (name, token) in [("Thermostat", TOKEN), ("Neighbour", OTHER_TOKEN)] {
        let device = store
            .create_device(
                &scope,
                NewDevice {
                    name: name.into(),
                    device_type: "sensor".into(),
                    label: None,
                    credentials: DeviceCredentials::AccessToken(token.into()),
                },
            )
            .await
            .unwrap();
        devices.push(device);
    }
    let other = devices.pop().unwrap();
    let device = devices.pop().unwrap();
    Fixture {
        _dir: dir,
        store,
        device,
        other,
    }
}

fn settings() -> MqttSettings {
    MqttSettings {
        max_packet_size: 4096,
        receive_maximum: 8,
        connect_timeout: Duration::from_secs(5),
        write_timeout: Duration::from_secs(5),
        ..MqttSettings::default()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Version {
    V3,
    V5,
}

struct Client {
    io: Framed<DuplexStream, MqttCodec>,
    server: JoinHandle<Result<(), SessionError>>,
    stop: watch::Sender<bool>,
}

impl Client {
    fn start(f: &Fixture, version: Version) -> Client {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (stop, stop_rx) = watch::channel(false);
        let server = tokio::spawn(handle(
            server,
            f.store.clone(),
            Arc::new(settings()),
            stop_rx,
        ));
        let codec = match version {
            Version::V3 => MqttCodec::V3(v3::Codec::new(0)),
            Version::V5 => MqttCodec::V5(v5::Codec::new(0, 0)),
        };
        Client {
            io: Framed::new(client, codec),
            server,
            stop,
        }
    }

    /// Connects with `token`; returns the client and the CONNACK.
    async fn connect(f: &Fixture, version: Version, token: Option<&str>) -> (Client, MqttPacket) {
        let mut c = Client::start(f, version);
        c.send(connect(version, token, 30)).await;
        let connack = c.recv().await.expect("a CONNACK");
        (c, connack)
    }

    async fn connected(f: &Fixture, version: Version) -> Client {
        let (c, connack) = Client::connect(f, version, Some(TOKEN)).await;
        match connack {
            MqttPacket::V3(v3::Packet::ConnectAck(a)) => {
                assert_eq!(a.return_code, v3::ConnectAckReason::ConnectionAccepted)
            }
            MqttPacket::V5(v5::Packet::ConnectAck(a)) => {
                assert_eq!(a.reason_code, v5::ConnectAckReason::Success);
                assert_eq!(a.receive_max.get(), 8);
                assert_eq!(a.max_packet_size, Some(4096));
            }
            other => panic!("expected a CONNACK, got {other:?}"),
        }
        c
    }

    async fn send(&mut self, packet: MqttPacket) {
        self.io.send(packet).await.unwrap();
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.io.get_mut().write_all(bytes).await.unwrap();
    }

    /// The next packet; `None` once the server closed the connection.
    async fn recv(&mut self) -> Option<MqttPacket> {
        match tokio::time::timeout(WAIT, self.io.next()).await {
            Ok(Some(Ok((packet, _)))) => Some(packet),
            Ok(_) => None,
            Err(_) => panic!("the server neither answered nor closed within {WAIT:?}"),
        }
    }

    /// Waits for the server to close and returns how its session ended.
    async fn ended(mut self) -> Result<(), SessionError> {
        if let Some(p) = self.recv().await {
            panic!("expected the connection to close, got {p:?}");
        }
        tokio::time::timeout(WAIT, self.server)
            .await
            .expect("the session ends")
            .expect("the session does not panic")
    }
}

fn connect(version: Version, token: Option<&str>, keep_alive: u16) -> MqttPacket {
    let username = token.map(ByteString::from);
    match version {
        Version::V3 => MqttPacket::V3(v3::Packet::Connect(Box::new(v3::Connect {
            protocol: rmqtt_codec::types::Protocol(4),
            clean_session: true,
            keep_alive,
            client_id: ByteString::from_static("unit"),
            username,
            ..v3::Connect::default()
        }))),
        Version::V5 => MqttPacket::V5(v5::Packet::Connect(Box::new(v5::Connect {
            clean_start: true,
            keep_alive,
            client_id: ByteString::from_static(""),
            username,
            ..v5::Connect::default()
        }))),
    }
}

fn publish(version: Version, topic: &str, qos: QoS, id: u16, payload: &str) -> MqttPacket {
    let p = Box::new(Publish {
        dup: false,
        retain: false,
        qos,
        topic: ByteString::from(topic),
        packet_id: NonZeroU16::new(id),
        payload: Bytes::from(payload.to_string()),
        properties: None,
    });
    match version {
        Version::V3 => MqttPacket::V3(v3::Packet::Publish(p)),
        Version::V5 => MqttPacket::V5(v5::Packet::Publish(p)),
    }
}

fn encode(version: Version, packet: MqttPacket) -> Vec<u8> {
    let mut codec = match version {
        Version::V3 => MqttCodec::V3(v3::Codec::new(0)),
        Version::V5 => MqttCodec::V5(v5::Codec::new(0, 0)),
    };
    let mut buf = bytes::BytesMut::new();
    codec.encode(packet, &mut buf).unwrap();
    buf.to_vec()
}

/// (packet id, reason code) of a PUBACK.
fn puback(packet: &MqttPacket) -> (u16, u8) {
    match packet {
        MqttPacket::V3(v3::Packet::PublishAck { packet_id }) => (packet_id.get(), 0),
        MqttPacket::V5(v5::Packet::PublishAck(a)) => (a.packet_id.get(), a.reason_code.into()),
        other => panic!("expected a PUBACK, got {other:?}"),
    }
}

fn v3_packet(packet: Option<MqttPacket>) -> v3::Packet {
    match packet {
        Some(MqttPacket::V3(p)) => p,
        other => panic!("expected an MQTT 3.1.1 packet, got {other:?}"),
    }
}

fn disconnect_reason(packet: &MqttPacket) -> u8 {
    match packet {
        MqttPacket::V5(v5::Packet::Disconnect(d)) => d.reason_code.into(),
        other => panic!("expected a DISCONNECT, got {other:?}"),
    }
}

async fn points(f: &Fixture, device: &Device) -> Vec<(String, Value)> {
    f.store
        .device_telemetry(
            device,
            TelemetryQuery {
                keys: vec![],
                start_ms: 0,
                end_ms: i64::MAX,
                limit: 10_000,
                descending: false,
            },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.key, p.value))
        .collect()
}

#[tokio::test]
async fn tokens_decide_who_connects() {
    let f = fixture().await;
    for (version, token, expected) in [
        (Version::V3, Some("NOT-A-TOKEN"), 0x05),
        (Version::V3, Some(""), 0x04),
        (Version::V3, None, 0x04),
        (Version::V5, Some("NOT-A-TOKEN"), 0x87),
        (Version::V5, Some(""), 0x86),
        (Version::V5, None, 0x86),
    ] {
        let (c, connack) = Client::connect(&f, version, token).await;
        let code: u8 = match connack {
            MqttPacket::V3(v3::Packet::ConnectAck(a)) => a.return_code.into(),
            MqttPacket::V5(v5::Packet::ConnectAck(a)) => a.reason_code.into(),
            other => panic!("{other:?}"),
        };
        assert_eq!(code, expected, "{version:?} {token:?}");
        assert!(matches!(c.ended().await, Err(SessionError::Refused(_))));
    }
    // MQTT 5 gets an assigned client id when it sent none.
    let (c, connack) = Client::connect(&f, Version::V5, Some(TOKEN)).await;
    let MqttPacket::V5(v5::Packet::ConnectAck(a)) = connack else {
        panic!()
    };
    assert!(a.assigned_client_id.is_some());
    assert!(!a.retain_available);
    drop(c);
}

#[tokio::test]
async fn acknowledgements_follow_commits_in_arrival_order() {
    let f = fixture().await;
    let mut c = Client::connected(&f, Version::V5).await;
    // More than the window of 8, pipelined, with refusals among them.
    for id in 1..=40u16 {
        let packet = match id {
            10 => publish(
                Version::V5,
                topic::TELEMETRY,
                QoS::AtLeastOnce,
                id,
                "{\"t\":",
            ),
            20 => publish(
                Version::V5,
                "v1/devices/other/telemetry",
                QoS::AtLeastOnce,
                id,
                "{\"t\":1}",
            ),
            _ => publish(
                Version::V5,
                topic::TELEMETRY,
                QoS::AtLeastOnce,
                id,
                &format!("{{\"ts\":{id},\"values\":{{\"n\":{id}}}}}"),
            ),
        };
        c.send(packet).await;
    }
    for id in 1..=40u16 {
        let ack = c.recv().await.expect("a PUBACK");
        let expected = match id {
            10 => 0x99,
            20 => 0x87,
            _ => 0,
        };
        assert_eq!(puback(&ack), (id, expected));
        if let MqttPacket::V5(v5::Packet::PublishAck(a)) = &ack
            && id == 10
        {
            let why = a.reason_string.as_deref().unwrap_or_default();
            assert!(why.contains("not valid JSON"), "{why}");
        }
    }
    // Every PUBACK'd message is stored, nothing else.
    let stored = points(&f, &f.device).await;
    assert_eq!(stored.len(), 38);
    assert!(points(&f, &f.other).await.is_empty());
    c.send(MqttPacket::V5(v5::Packet::Disconnect(v5::Disconnect {
        reason_code: v5::DisconnectReasonCode::NormalDisconnection,
        session_expiry_interval_secs: None,
        server_reference: None,
        reason_string: None,
        user_properties: vec![],
    })))
    .await;
    assert!(c.ended().await.is_ok());
}

#[tokio::test]
async fn mqtt_3_closes_on_a_bad_payload_after_acknowledging_what_came_before() {
    let f = fixture().await;
    let mut c = Client::connected(&f, Version::V3).await;
    c.send(publish(
        Version::V3,
        topic::TELEMETRY,
        QoS::AtLeastOnce,
        1,
        "{\"a\":1}",
    ))
    .await;
    c.send(publish(
        Version::V3,
        topic::TELEMETRY,
        QoS::AtLeastOnce,
        2,
        "[1,2]",
    ))
    .await;
    c.send(publish(
        Version::V3,
        topic::TELEMETRY,
        QoS::AtLeastOnce,
        3,
        "{\"b\":1}",
    ))
    .await;
    assert_eq!(puback(&c.recv().await.unwrap()), (1, 0));
    assert!(matches!(
        c.ended().await,
        Err(SessionError::PublishRefused { .. })
    ));
    assert_eq!(
        points(&f, &f.device).await,
        vec![("a".into(), Value::Long(1))]
    );

    // A foreign topic, too; at QoS 0 on MQTT 5 (no PUBACK to refuse with): DISCONNECT 0x87.
    let mut c = Client::connected(&f, Version::V3).await;
    c.send(publish(
        Version::V3,
        "v1/devices/x/attributes",
        QoS::AtLeastOnce,
        1,
        "{}",
    ))
    .await;
    assert!(c.ended().await.is_err());
    let mut c = Client::connected(&f, Version::V5).await;
    c.send(publish(
        Version::V5,
        "v1/devices/x/attributes",
        QoS::AtMostOnce,
        0,
        "{}",
    ))
    .await;
    assert_eq!(disconnect_reason(&c.recv().await.unwrap()), 0x87);
    assert!(c.ended().await.is_err());
}

#[tokio::test]
async fn an_attribute_request_reads_the_writes_before_it() {
    let f = fixture().await;
    f.store
        .save_attributes(
            &f.device,
            AttributeScope::Shared,
            vec![("target".into(), Value::Long(21))],
        )
        .await
        .unwrap();
    let mut c = Client::connected(&f, Version::V5).await;
    c.send(publish(
        Version::V5,
        topic::ATTRIBUTES,
        QoS::AtMostOnce,
        0,
        "{\"fw\":\"v1.0\"}",
    ))
    .await;
    c.send(publish(
        Version::V5,
        "v1/devices/me/attributes/request/7",
        QoS::AtLeastOnce,
        3,
        "{\"clientKeys\":\"fw\",\"sharedKeys\":\"target\"}",
    ))
    .await;
    assert_eq!(puback(&c.recv().await.unwrap()), (3, 0));
    let MqttPacket::V5(v5::Packet::Publish(answer)) = c.recv().await.unwrap() else {
        panic!("expected the answer")
    };
    assert_eq!(&*answer.topic, "v1/devices/me/attributes/response/7");
    assert_eq!(answer.qos, QoS::AtMostOnce, "not subscribed: QoS 0");
    assert_eq!(
        answer.payload,
        r#"{"client":{"fw":"v1.0"},"shared":{"target":21}}"#
    );
    // A request with a bad body or id is a malformed payload.
    c.send(publish(
        Version::V5,
        "v1/devices/me/attributes/request/x",
        QoS::AtLeastOnce,
        4,
        "{}",
    ))
    .await;
    assert_eq!(puback(&c.recv().await.unwrap()), (4, 0x99));
    c.send(publish(
        Version::V5,
        "v1/devices/me/attributes/request/8",
        QoS::AtLeastOnce,
        5,
        "[]",
    ))
    .await;
    assert_eq!(puback(&c.recv().await.unwrap()), (5, 0x99));
}

#[tokio::test]
async fn subscriptions_are_granted_at_most_qos_1_or_refused() {
    let f = fixture().await;
    let mut c = Client::connected(&f, Version::V3).await;
    c.send(MqttPacket::V3(v3::Packet::Subscribe {
        packet_id: NonZeroU16::new(9).unwrap(),
        topic_filters: vec![
            (topic::ATTRIBUTES.into(), QoS::ExactlyOnce),
            (topic::ATTRIBUTES_RESPONSE_FILTER.into(), QoS::AtMostOnce),
            ("#".into(), QoS::AtMostOnce),
            ("v1/devices/other/attributes".into(), QoS::AtLeastOnce),
        ],
    }))
    .await;
    match c.recv().await.unwrap() {
        MqttPacket::V3(v3::Packet::SubscribeAck { packet_id, status }) => {
            assert_eq!(packet_id.get(), 9);
            assert_eq!(
                status,
                vec![
                    v3::SubscribeReturnCode::Success(QoS::AtLeastOnce),
                    v3::SubscribeReturnCode::Success(QoS::AtMostOnce),
                    v3::SubscribeReturnCode::Failure,
                    v3::SubscribeReturnCode::Failure,
                ]
            );
        }
        other => panic!("{other:?}"),
    }
    // Shared-attribute changes of this device arrive, at the granted QoS; others' do not.
    for device in [&f.other, &f.device] {
        f.store
            .save_attributes(
                device,
                AttributeScope::Shared,
                vec![("target".into(), Value::Long(22))],
            )
            .await
            .unwrap();
    }
    f.store
        .remove_attributes(&f.device, AttributeScope::Shared, vec!["target".into()])
        .await
        .unwrap();
    for expected in [r#"{"target":22}"#, r#"{"deleted":["target"]}"#] {
        match c.recv().await.unwrap() {
            MqttPacket::V3(v3::Packet::Publish(p)) => {
                assert_eq!(&*p.topic, topic::ATTRIBUTES);
                assert_eq!(p.qos, QoS::AtLeastOnce);
                assert_eq!(p.payload, expected);
                c.send(MqttPacket::V3(v3::Packet::PublishAck {
                    packet_id: p.packet_id.unwrap(),
                }))
                .await;
            }
            other => panic!("{other:?}"),
        }
    }
    // MQTT 5: refused with 0x87.
    let mut c = Client::connected(&f, Version::V5).await;
    c.send(MqttPacket::V5(v5::Packet::Subscribe(v5::Subscribe {
        packet_id: NonZeroU16::new(1).unwrap(),
        id: None,
        user_properties: vec![],
        topic_filters: vec![
            ("v1/devices/+/attributes".into(), Default::default()),
            (topic::RPC_REQUEST_FILTER.into(), Default::default()),
        ],
    })))
    .await;
    match c.recv().await.unwrap() {
        MqttPacket::V5(v5::Packet::SubscribeAck(a)) => {
            let codes: Vec<u8> = a.status.into_iter().map(u8::from).collect();
            assert_eq!(codes, vec![0x87, 0x00]);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn qos_2_is_stored_once() {
    let f = fixture().await;
    let mut c = Client::connected(&f, Version::V3).await;
    let id = NonZeroU16::new(5).unwrap();
    for _ in 0..2 {
        c.send(publish(
            Version::V3,
            topic::TELEMETRY,
            QoS::ExactlyOnce,
            5,
            "{\"q\":2}",
        ))
        .await;
        assert_eq!(
            v3_packet(c.recv().await),
            v3::Packet::PublishReceived { packet_id: id }
        );
    }
    c.send(MqttPacket::V3(v3::Packet::PublishRelease { packet_id: id }))
        .await;
    assert_eq!(
        v3_packet(c.recv().await),
        v3::Packet::PublishComplete { packet_id: id }
    );
    assert_eq!(points(&f, &f.device).await.len(), 1);
    c.send(MqttPacket::V3(v3::Packet::PingRequest)).await;
    assert_eq!(v3_packet(c.recv().await), v3::Packet::PingResponse);
    c.send(MqttPacket::V3(v3::Packet::Disconnect)).await;
    assert!(c.ended().await.is_ok());
}

#[tokio::test]
async fn silence_beyond_the_keep_alive_ends_the_session() {
    let f = fixture().await;
    let mut c = Client::start(&f, Version::V5);
    c.send(connect(Version::V5, Some(TOKEN), 1)).await;
    c.recv().await.unwrap();
    let started = tokio::time::Instant::now();
    assert_eq!(disconnect_reason(&c.recv().await.unwrap()), 0x8D);
    assert!(started.elapsed() >= Duration::from_millis(1400));
    assert!(matches!(c.ended().await, Err(SessionError::KeepAlive(1))));
}

#[tokio::test]
async fn shutdown_finishes_what_is_in_flight_and_says_why() {
    let f = fixture().await;
    let mut c = Client::connected(&f, Version::V5).await;
    c.send(publish(
        Version::V5,
        topic::TELEMETRY,
        QoS::AtLeastOnce,
        1,
        "{\"x\":1}",
    ))
    .await;
    assert_eq!(puback(&c.recv().await.unwrap()), (1, 0));
    c.stop.send(true).unwrap();
    assert_eq!(disconnect_reason(&c.recv().await.unwrap()), 0x8B);
    assert!(matches!(c.ended().await, Err(SessionError::Shutdown)));
}

#[tokio::test]
async fn protocol_errors_close_with_the_specs_reason_codes() {
    let f = fixture().await;
    // A second CONNECT.
    let mut c = Client::connected(&f, Version::V5).await;
    c.send(connect(Version::V5, Some(TOKEN), 30)).await;
    assert_eq!(disconnect_reason(&c.recv().await.unwrap()), 0x82);
    assert!(matches!(c.ended().await, Err(SessionError::Protocol(_))));
    // A packet larger than the limit.
    let mut c = Client::connected(&f, Version::V5).await;
    c.send_raw(&[0x30, 0xff, 0xff, 0x03]).await;
    assert_eq!(disconnect_reason(&c.recv().await.unwrap()), 0x95);
    assert!(c.ended().await.is_err());
    // A reserved packet type.
    let mut c = Client::connected(&f, Version::V5).await;
    c.send_raw(&[0x00, 0x00]).await;
    assert_eq!(disconnect_reason(&c.recv().await.unwrap()), 0x81);
    assert!(c.ended().await.is_err());
    // An unsupported protocol level: CONNACK 0x01.
    let mut c = Client::start(&f, Version::V3);
    c.send_raw(b"\x10\x0c\x00\x04MQTT\x07\x02\x00\x3c\x00\x00")
        .await;
    assert_eq!(
        v3_packet(c.recv().await),
        v3::Packet::ConnectAck(v3::ConnectAck {
            return_code: v3::ConnectAckReason::UnacceptableProtocolVersion,
            session_present: false,
        })
    );
    assert!(c.ended().await.is_err());
}

/// Feeds `bytes` to a fresh connection, then closes the client's side; the session must
/// end, without panicking, whatever it answered.
async fn survives(f: &Fixture, bytes: &[u8]) {
    let (mut client, server) = tokio::io::duplex(1024 * 1024);
    let (_stop, stop_rx) = watch::channel(false);
    let session = tokio::spawn(handle(
        server,
        f.store.clone(),
        Arc::new(settings()),
        stop_rx,
    ));
    // The server may have closed already: that is fine.
    let _ = client.write_all(bytes).await;
    let _ = client.shutdown().await;
    let mut sink = Vec::new();
    tokio::time::timeout(WAIT, client.read_to_end(&mut sink))
        .await
        .unwrap_or_else(|_| panic!("no close after {bytes:02x?}"))
        .unwrap();
    let ended = tokio::time::timeout(WAIT, session)
        .await
        .unwrap_or_else(|_| panic!("the session outlived {bytes:02x?}"));
    assert!(ended.is_ok(), "panicked on {bytes:02x?}");
}

#[tokio::test]
async fn garbage_and_truncated_input_close_cleanly() {
    let f = fixture().await;
    let v3_connect = encode(Version::V3, connect(Version::V3, Some(TOKEN), 30));
    let v5_connect = encode(Version::V5, connect(Version::V5, Some(TOKEN), 30));
    let v3_publish = encode(
        Version::V3,
        publish(
            Version::V3,
            topic::TELEMETRY,
            QoS::AtLeastOnce,
            1,
            "{\"a\":1}",
        ),
    );
    let v5_publish = encode(
        Version::V5,
        publish(
            Version::V5,
            topic::TELEMETRY,
            QoS::AtLeastOnce,
            1,
            "{\"a\":1}",
        ),
    );
    let mut inputs: Vec<Vec<u8>> = vec![
        vec![],
        b"GET / HTTP/1.1\r\nHost: example\r\n\r\n".to_vec(),
        vec![0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc], // a TLS ClientHello
        vec![0x10],
        vec![0x10, 0xff, 0xff, 0xff, 0xff, 0xff],
        vec![0x10, 0xff, 0xff, 0xff, 0x7f],
        b"\x10\x7f\x7f\x00\x04MQTT\x06\xC0\x00\x3C\x00\x0512345".to_vec(),
        b"\x10\x0a\x00\x04MQTT\x04\x01\x00\x3c".to_vec(), // reserved flag set
        vec![0xc0, 0x00],
        vec![0xe0, 0x00],
        vec![0x00; 64],
        vec![0xff; 64],
    ];
    // Every prefix of a valid conversation.
    for (connect, publish) in [(&v3_connect, &v3_publish), (&v5_connect, &v5_publish)] {
        let whole: Vec<u8> = connect.iter().chain(publish.iter()).copied().collect();
        for end in 0..=whole.len() {
            inputs.push(whole[..end].to_vec());
        }
        // A valid CONNECT followed by garbage.
        for tail in [
            &[0xff; 8][..],
            &[0x30, 0x02, 0x00],
            &[0x82, 0x00],
            &[0x62, 0x00],
        ] {
            inputs.push(connect.iter().chain(tail.iter()).copied().collect());
        }
    }
    // A CONNECT with each single byte flipped.
    for i in 0..v5_connect.len() {
        let mut bytes = v5_connect.clone();
        bytes[i] ^= 0xa5;
        inputs.push(bytes);
    }
    for bytes in &inputs {
        survives(&f, bytes).await;
    }
}

mod random {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn random_bytes_never_panic(
            v5 in any::<bool>(),
            tail in proptest::collection::vec(any::<u8>(), 0..512),
            raw in any::<bool>(),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let f = fixture().await;
                let version = if v5 { Version::V5 } else { Version::V3 };
                let mut bytes = if raw {
                    Vec::new()
                } else {
                    encode(version, connect(version, Some(TOKEN), 30))
                };
                bytes.extend_from_slice(&tail);
                survives(&f, &bytes).await;
            });
        }
    }
}

/// Each idle connection holds its task: the plain one must not be sized for the TLS path
/// (one future holding both made every plain connection's task 12.4 KB in release builds
/// instead of 4; BENCHMARKS.md, idle connections).
#[tokio::test]
async fn a_plain_connection_task_is_not_sized_for_tls() {
    let f = fixture().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let _client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (stream, _) = listener.accept().await.unwrap();
    let slot = Arc::new(tokio::sync::Semaphore::new(1))
        .try_acquire_owned()
        .unwrap();
    let (_stop, stop) = watch::channel(false);
    let task = crate::plain_connection(
        stream,
        f.store.clone(),
        Arc::new(MqttSettings::default()),
        stop,
        slot,
    );
    let bytes = std::mem::size_of_val(&task);
    let tls_stream = std::mem::size_of::<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>();
    eprintln!("plain connection task: {bytes} bytes; a TLS stream: {tls_stream} bytes");
    assert!(
        bytes < 6 * 1024,
        "a plain connection's task takes {bytes} bytes"
    );
}
