//! Persistent MQTT sessions through the real binary, with rumqttc: MQTT 3.1.1
//! CleanSession=0 and MQTT 5 Clean Start=0 with a Session Expiry Interval keep the
//! subscriptions and queue the QoS 1 messages for the device while it is away; a second
//! connection with the same client id takes the session over.

mod common;

use std::time::Duration;

use common::Server;
use common::mqtt::{WAIT, v3, v5};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// MQTT 3.1.1 with CleanSession as given; the client and the CONNACK's session present.
async fn connect_v3(s: &Server, id: &str, token: &str, clean: bool) -> (v3::Client, bool) {
    let mut options = v3::MqttOptions::new(id, "127.0.0.1", s.mqtt_addr.port());
    options.set_keep_alive(Duration::from_secs(30));
    options.set_credentials(token, "");
    options.set_clean_session(clean);
    let (client, mut events) = v3::AsyncClient::new(options, 16);
    match tokio::time::timeout(WAIT, events.poll())
        .await
        .expect("a CONNACK")
    {
        Ok(v3::Event::Incoming(v3::Packet::ConnAck(ack))) => {
            assert_eq!(ack.code, v3::ConnectReturnCode::Success);
            (v3::Client { client, events }, ack.session_present)
        }
        other => panic!("expected a CONNACK, got {other:?}"),
    }
}

/// MQTT 5 with Clean Start and Session Expiry Interval as given.
async fn connect_v5(
    s: &Server,
    id: &str,
    token: &str,
    clean_start: bool,
    expiry_secs: Option<u32>,
) -> (v5::Client, bool) {
    let mut options = rumqttc::v5::MqttOptions::new(id, "127.0.0.1", s.mqtt_addr.port());
    options.set_keep_alive(Duration::from_secs(30));
    options.set_credentials(token, "");
    options.set_clean_start(clean_start);
    options.set_manual_acks(true);
    let properties = rumqttc::v5::mqttbytes::v5::ConnectProperties {
        session_expiry_interval: expiry_secs,
        ..Default::default()
    };
    options.set_connect_properties(properties);
    let (client, mut events) = rumqttc::v5::AsyncClient::new(options, 16);
    match tokio::time::timeout(WAIT, events.poll())
        .await
        .expect("a CONNACK")
    {
        Ok(rumqttc::v5::Event::Incoming(rumqttc::v5::mqttbytes::v5::Packet::ConnAck(ack))) => {
            assert_eq!(ack.code, v5::ConnectReturnCode::Success);
            (
                v5::Client {
                    client,
                    events,
                    properties: ack.properties,
                },
                ack.session_present,
            )
        }
        other => panic!("expected a CONNACK, got {other:?}"),
    }
}

/// The next PUBLISH to the device.
async fn next_publish(c: &mut v5::Client) -> rumqttc::v5::mqttbytes::v5::Publish {
    c.until(|p| match p {
        v5::Packet::Publish(p) => Some(p.clone()),
        _ => None,
    })
    .await
}

/// Sends the PUBACK for `publish` (manual acks) and waits until it went out.
async fn acknowledge(c: &mut v5::Client, publish: &rumqttc::v5::mqttbytes::v5::Publish) {
    c.client.ack(publish).await.unwrap();
    tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(rumqttc::v5::Event::Outgoing(rumqttc::Outgoing::PubAck(_))) =
                c.events.poll().await
            {
                return;
            }
        }
    })
    .await
    .expect("the PUBACK went out");
}

async fn set_shared(s: &Server, user: &str, device: &str, body: Value) {
    let (status, _) = s
        .post(
            &format!("/api/plugins/telemetry/DEVICE/{device}/attributes/SHARED_SCOPE"),
            user,
            body,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

/// Nothing arrives for a while.
async fn quiet_v3(c: &mut v3::Client) {
    let stray = tokio::time::timeout(Duration::from_millis(500), c.message()).await;
    assert!(stray.is_err(), "unexpected: {stray:?}");
}

#[tokio::test]
async fn mqtt_3_clean_session_0_keeps_subscriptions_and_queues_while_away() {
    let s = Server::start();
    let user = s.sign_up("sessions3@example.com").await;
    let id = s.device_with_token(&user, "Keeper", "SESSION3").await;

    let (mut c, present) = connect_v3(&s, "keeper", "SESSION3", false).await;
    assert!(!present, "no session yet");
    c.subscribe("v1/devices/me/attributes", v3::QoS::AtLeastOnce)
        .await;
    c.subscribe("v1/devices/me/rpc/request/+", v3::QoS::AtLeastOnce)
        .await;
    drop(c); // the network goes away

    // While it is away: two updates and a command.
    tokio::time::sleep(Duration::from_millis(200)).await;
    set_shared(&s, &user, &id, json!({"mode": "eco"})).await;
    set_shared(&s, &user, &id, json!({"level": 3})).await;
    let command = s.rpc_call(
        &user,
        "oneway",
        &id,
        json!({"method": "reboot", "timeout": 10000}),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Back, without subscribing again: the session is there and so is what waited.
    let (mut c, present) = connect_v3(&s, "keeper", "SESSION3", false).await;
    assert!(present, "CONNACK session present");
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(c.message().await);
    }
    assert_eq!(
        got[0],
        ("v1/devices/me/attributes".into(), json!({"mode": "eco"}))
    );
    assert_eq!(
        got[1],
        ("v1/devices/me/attributes".into(), json!({"level": 3}))
    );
    assert!(
        got[2].0.starts_with("v1/devices/me/rpc/request/"),
        "{got:?}"
    );
    assert_eq!(got[2].1, json!({"method": "reboot", "params": null}));
    assert_eq!(command.await.unwrap().0, StatusCode::OK);
    // The subscription is live again.
    set_shared(&s, &user, &id, json!({"level": 4})).await;
    assert_eq!(c.message().await.1, json!({"level": 4}));
    c.client.disconnect().await.unwrap();
    let _ = tokio::time::timeout(WAIT, async { while c.events.poll().await.is_ok() {} }).await;

    // A clean session starts empty and ends with its connection.
    let (mut c, present) = connect_v3(&s, "keeper", "SESSION3", true).await;
    assert!(present.eq(&false), "a clean session is never present");
    set_shared(&s, &user, &id, json!({"level": 5})).await;
    quiet_v3(&mut c).await;
    drop(c);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_c, present) = connect_v3(&s, "keeper", "SESSION3", false).await;
    assert!(!present, "the clean session was not kept");

    // Another device's session of the same client id is its own.
    s.device_with_token(&user, "Other", "SESSION3B").await;
    let (_other, present) = connect_v3(&s, "keeper", "SESSION3B", false).await;
    assert!(!present);

    // An empty client id cannot keep a session (MQTT-3.1.3-8): CONNACK 0x02. (rumqttc
    // refuses to send such a CONNECT, so it is written by hand.)
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut raw = tokio::net::TcpStream::connect(s.mqtt_addr).await.unwrap();
    let token = b"SESSION3";
    let mut connect = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x80, 0x00, 0x3c];
    connect.extend_from_slice(&[0x00, 0x00, 0x00, token.len() as u8]);
    connect.extend_from_slice(token);
    raw.write_all(&[0x10, connect.len() as u8]).await.unwrap();
    raw.write_all(&connect).await.unwrap();
    let mut connack = [0u8; 4];
    tokio::time::timeout(WAIT, raw.read_exact(&mut connack))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x02]);
}

#[tokio::test]
async fn mqtt_3_a_second_connection_takes_the_session_over() {
    let s = Server::start();
    let user = s.sign_up("takeover3@example.com").await;
    let id = s.device_with_token(&user, "Twin", "TAKEOVER3").await;
    let (mut first, _) = connect_v3(&s, "twin", "TAKEOVER3", false).await;
    first
        .subscribe("v1/devices/me/attributes", v3::QoS::AtLeastOnce)
        .await;
    let (mut second, present) = connect_v3(&s, "twin", "TAKEOVER3", false).await;
    assert!(present, "the second connection has the first one's session");
    // The first is closed (MQTT-3.1.4-2).
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            if first.events.poll().await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the first connection was not closed");
    set_shared(&s, &user, &id, json!({"who": "second"})).await;
    assert_eq!(second.message().await.1, json!({"who": "second"}));
}

#[tokio::test]
async fn mqtt_5_clean_start_0_with_expiry_resumes_and_takeover_says_0x8e() {
    let s = Server::start();
    let user = s.sign_up("sessions5@example.com").await;
    let id = s.device_with_token(&user, "Keeper5", "SESSION5").await;

    let (mut c, present) = connect_v5(&s, "keeper5", "SESSION5", true, Some(60)).await;
    assert!(!present);
    c.subscribe("v1/devices/me/attributes", v5::QoS::AtLeastOnce)
        .await
        .unwrap();
    // Received but never acknowledged (manual acks): sent again, DUP, on resumption.
    set_shared(&s, &user, &id, json!({"mode": "away"})).await;
    let first = next_publish(&mut c).await;
    assert!(!first.dup);
    // A second connection takes over: the first hears why.
    let (mut second, present) = connect_v5(&s, "keeper5", "SESSION5", false, Some(60)).await;
    assert!(present);
    let (reason, why) = tokio::time::timeout(WAIT, async {
        loop {
            match c.events.poll().await {
                Ok(_) => {}
                Err(rumqttc::v5::ConnectionError::MqttState(
                    rumqttc::v5::StateError::ServerDisconnect {
                        reason_code,
                        reason_string,
                    },
                )) => return (reason_code, reason_string),
                Err(e) => panic!("closed without DISCONNECT: {e}"),
            }
        }
    })
    .await
    .expect("a DISCONNECT");
    assert_eq!(
        reason,
        rumqttc::v5::mqttbytes::v5::DisconnectReasonCode::SessionTakenOver
    );
    assert!(why.unwrap().contains("took the session over"));
    let again = next_publish(&mut second).await;
    assert!(again.dup, "a retransmission is marked DUP");
    assert_eq!(
        serde_json::from_slice::<Value>(&again.payload).unwrap(),
        json!({"mode": "away"})
    );
    acknowledge(&mut second, &again).await;
    drop(second);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Away: queued at QoS 1, delivered on return.
    set_shared(&s, &user, &id, json!({"mode": "home"})).await;
    let (mut third, present) = connect_v5(&s, "keeper5", "SESSION5", false, Some(60)).await;
    assert!(present);
    let queued = next_publish(&mut third).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&queued.payload).unwrap(),
        json!({"mode": "home"})
    );
    assert_eq!(queued.qos, v5::QoS::AtLeastOnce);
    acknowledge(&mut third, &queued).await;
    drop(third);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Session Expiry Interval 0: the session ends with the connection.
    let (c, present) = connect_v5(&s, "keeper5", "SESSION5", false, Some(0)).await;
    assert!(present, "resumed, but not kept after this connection");
    drop(c);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_c, present) = connect_v5(&s, "keeper5", "SESSION5", false, Some(60)).await;
    assert!(!present);

    // An expiry beyond the server's longest is capped, and the CONNACK says so.
    let (c, _) = connect_v5(&s, "capped", "SESSION5", true, Some(u32::MAX)).await;
    let props = c.properties.expect("CONNACK properties");
    assert_eq!(props.session_expiry_interval, Some(86_400));
}
