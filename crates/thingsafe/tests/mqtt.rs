//! ThingsBoard's MQTT device API through the real binary, with real MQTT clients:
//! rumqttc (MQTT 3.1.1 and 5) and, when installed, mosquitto_pub.

mod common;

use std::time::Duration;

use common::Server;
use common::mqtt::{v3, v5};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// What the server logged so far, once it contains `needle` (it comes on its own time).
async fn log_with(s: &Server, needle: &str) -> String {
    let mut log = String::new();
    for _ in 0..100 {
        for line in s.drain_output() {
            log.push_str(&line);
            log.push('\n');
        }
        if log.contains(needle) {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{needle:?} not logged: {log}");
}
#[tokio::test]
async fn access_tokens_decide_who_connects() {
    let s = Server::start();
    let user = s.sign_up("tokens@example.com").await;
    s.device_with_token(&user, "Thermostat", "MQTTTOKEN1").await;

    // MQTT 3.1.1: 0x05 not authorized for a wrong token, 0x04 without one.
    assert!(v3::connect(&s, "a", Some("MQTTTOKEN1")).await.is_ok());
    assert_eq!(
        v3::connect(&s, "b", Some("WRONGTOKEN")).await.err(),
        Some(v3::ConnectReturnCode::NotAuthorized)
    );
    assert_eq!(
        v3::connect(&s, "c", Some("")).await.err(),
        Some(v3::ConnectReturnCode::BadUserNamePassword)
    );
    assert_eq!(
        v3::connect(&s, "d", None).await.err(),
        Some(v3::ConnectReturnCode::BadUserNamePassword)
    );

    // MQTT 5: 0x87 and 0x86; the CONNACK says how much the server takes, as
    // ThingsBoard's Python SDK reads it.
    let c = v5::connect(&s, "e", Some("MQTTTOKEN1")).await.ok().unwrap();
    let props = c.properties.expect("CONNACK properties");
    assert_eq!(props.max_packet_size, Some(65_536));
    assert_eq!(props.receive_max, Some(64));
    assert_eq!(
        v5::connect(&s, "f", Some("WRONGTOKEN")).await.err(),
        Some(v5::ConnectReturnCode::NotAuthorized)
    );
    assert_eq!(
        v5::connect(&s, "g", Some("")).await.err(),
        Some(v5::ConnectReturnCode::BadUserNamePassword)
    );
    assert_eq!(
        v5::connect(&s, "h", None).await.err(),
        Some(v5::ConnectReturnCode::BadUserNamePassword)
    );
    // Connections are logged by device id; a refused token does not appear in the log.
    let log = log_with(&s, "MQTT device connected").await;
    assert!(!log.contains("WRONGTOKEN"), "{log}");
}

#[tokio::test]
async fn every_telemetry_form_is_stored_before_its_puback() {
    let s = Server::start();
    let user = s.sign_up("telemetry@example.com").await;
    let id3 = s.device_with_token(&user, "Boiler", "MQTTV3TOKEN").await;
    let id5 = s.device_with_token(&user, "Heater", "MQTTV5TOKEN").await;
    let mut c3 = v3::connected(&s, "boiler", "MQTTV3TOKEN").await;
    let mut c5 = v5::connected(&s, "heater", "MQTTV5TOKEN").await;

    for (mqtt5, id) in [(false, &id3), (true, &id5)] {
        // One client or the other, by protocol version.
        macro_rules! publish {
            ($topic:expr, $payload:expr) => {
                if mqtt5 {
                    c5.publish($topic, $payload).await
                } else {
                    c3.publish($topic, $payload).await
                }
            };
        }
        // A PUBACK means stored: read back at once, no waiting.
        publish!("v1/devices/me/telemetry", r#"{"temperature":21.5}"#);
        let latest = s.timeseries(&user, id, "keys=temperature").await;
        assert_eq!(latest["temperature"][0]["value"], "21.5", "{latest}");

        publish!(
            "v1/devices/me/telemetry",
            r#"{"ts":1000,"values":{"temperature":20}}"#
        );
        let range = "keys=temperature&startTs=0&endTs=5000";
        assert_eq!(
            s.timeseries(&user, id, range).await["temperature"],
            json!([{"ts": 1000, "value": "20"}])
        );

        publish!(
            "v1/devices/me/telemetry",
            r#"[{"ts":2000,"values":{"temperature":22}},{"ts":3000,"values":{"temperature":24,"on":true}}]"#
        );
        assert_eq!(
            s.timeseries(&user, id, range).await["temperature"],
            json!([{"ts": 3000, "value": "24"}, {"ts": 2000, "value": "22"}, {"ts": 1000, "value": "20"}])
        );

        // Client attributes.
        publish!(
            "v1/devices/me/attributes",
            r#"{"firmware":"v2","serial":"SN-1","config":{"a":1}}"#
        );
        assert_eq!(
            s.attributes(&user, id, "CLIENT_SCOPE").await,
            json!({"config": {"a": 1}, "firmware": "v2", "serial": "SN-1"})
        );
    }
}

#[tokio::test]
async fn attribute_requests_and_shared_attribute_updates() {
    let s = Server::start();
    let user = s.sign_up("attributes@example.com").await;
    let id = s.device_with_token(&user, "Valve", "MQTTATTRS").await;
    let (status, _) = s
        .post(
            &format!("/api/plugins/telemetry/DEVICE/{id}/attributes/SHARED_SCOPE"),
            &user,
            json!({"target": 21, "mode": "eco"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // MQTT 3.1.1: request and response.
    let mut c = v3::connected(&s, "valve3", "MQTTATTRS").await;
    assert_eq!(
        c.subscribe("v1/devices/me/attributes/response/+", v3::QoS::AtLeastOnce)
            .await,
        v3::SubscribeReasonCode::Success(v3::QoS::AtLeastOnce)
    );
    c.publish("v1/devices/me/attributes", r#"{"fw":"v1.2"}"#)
        .await;
    c.publish(
        "v1/devices/me/attributes/request/1",
        r#"{"clientKeys":"fw","sharedKeys":"target"}"#,
    )
    .await;
    assert_eq!(
        c.message().await,
        (
            "v1/devices/me/attributes/response/1".into(),
            json!({"client": {"fw": "v1.2"}, "shared": {"target": 21}})
        )
    );
    c.publish("v1/devices/me/attributes/request/2", "{}").await;
    assert_eq!(
        c.message().await,
        (
            "v1/devices/me/attributes/response/2".into(),
            json!({"client": {"fw": "v1.2"}, "shared": {"mode": "eco", "target": 21}})
        )
    );
    c.publish(
        "v1/devices/me/attributes/request/3",
        r#"{"sharedKeys":"mode"}"#,
    )
    .await;
    assert_eq!(
        c.message().await.1,
        json!({"shared": {"mode": "eco"}}),
        "keys of one scope: that scope only"
    );

    // MQTT 5: subscribed to attribute updates, QoS 2 granted as 1.
    let mut c5 = v5::connected(&s, "valve5", "MQTTATTRS").await;
    assert_eq!(
        c5.subscribe("v1/devices/me/attributes", v5::QoS::ExactlyOnce)
            .await,
        Ok(v5::QoS::AtLeastOnce)
    );
    assert_eq!(
        c5.subscribe("v1/devices/me/rpc/request/+", v5::QoS::AtLeastOnce)
            .await,
        Ok(v5::QoS::AtLeastOnce)
    );
    let (status, _) = s
        .post(
            &format!("/api/plugins/telemetry/DEVICE/{id}/attributes/SHARED_SCOPE"),
            &user,
            json!({"target": 22}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        c5.message().await,
        ("v1/devices/me/attributes".into(), json!({"target": 22}))
    );
    let (status, _) = s
        .delete(
            &format!("/api/plugins/telemetry/DEVICE/{id}/SHARED_SCOPE?keys=target"),
            &user,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        c5.message().await,
        (
            "v1/devices/me/attributes".into(),
            json!({"deleted": ["target"]})
        )
    );
    // And the request/response round trip on MQTT 5.
    c5.publish(
        "v1/devices/me/attributes/request/7",
        r#"{"clientKeys":"fw"}"#,
    )
    .await;
    assert_eq!(
        c5.message().await,
        (
            "v1/devices/me/attributes/response/7".into(),
            json!({"client": {"fw": "v1.2"}})
        )
    );
}

#[tokio::test]
async fn refused_messages_lose_nothing_accepted_before() {
    let s = Server::start();
    let user = s.sign_up("refusals@example.com").await;
    let id = s.device_with_token(&user, "Meter", "MQTTREFUSE").await;

    // MQTT 5: a malformed payload gets PUBACK 0x99, a foreign topic 0x87.
    let mut c = v5::connected(&s, "meter5", "MQTTREFUSE").await;
    c.publish("v1/devices/me/telemetry", r#"{"ts":1,"values":{"kwh":5}}"#)
        .await;
    assert_eq!(
        c.publish_refused("v1/devices/me/telemetry", r#"{"kwh":"#)
            .await,
        v5::PubAckReason::PayloadFormatInvalid
    );
    let mut c = v5::connected(&s, "meter5b", "MQTTREFUSE").await;
    assert_eq!(
        c.publish_refused("v1/devices/other/telemetry", r#"{"kwh":6}"#)
            .await,
        v5::PubAckReason::NotAuthorized
    );
    let mut c = v5::connected(&s, "meter5c", "MQTTREFUSE").await;
    assert_eq!(
        c.subscribe("v1/devices/+/attributes", v5::QoS::AtLeastOnce)
            .await,
        Err(v5::SubscribeReasonCode::NotAuthorized)
    );

    // MQTT 3.1.1: the connection closes (ThingsBoard's behaviour); SUBACK 0x80.
    let mut c = v3::connected(&s, "meter3", "MQTTREFUSE").await;
    c.publish("v1/devices/me/telemetry", r#"{"ts":2,"values":{"kwh":7}}"#)
        .await;
    assert_eq!(
        c.subscribe("#", v3::QoS::AtMostOnce).await,
        v3::SubscribeReasonCode::Failure
    );
    c.publish_refused("v1/devices/me/telemetry", "[1,2]").await;
    let mut c = v3::connected(&s, "meter3b", "MQTTREFUSE").await;
    c.publish_refused("v1/gateway/telemetry", r#"{"dev":[{"kwh":1}]}"#)
        .await;

    // What was acknowledged is all there, and nothing else.
    assert_eq!(
        s.timeseries(&user, &id, "startTs=0&endTs=9999999999999")
            .await,
        json!({"kwh": [{"ts": 2, "value": "7"}, {"ts": 1, "value": "5"}]})
    );
    let log = log_with(&s, "not valid JSON").await;
    assert!(
        log.lines()
            .any(|l| l.contains("refused an MQTT message") && l.contains(&id)),
        "a clear log line with the device id: {log}"
    );
}

#[tokio::test]
async fn a_device_reaches_only_its_own_data() {
    let s = Server::start();
    let alice = s.sign_up("alice-mqtt@example.com").await;
    let bob = s.sign_up("bob-mqtt@example.com").await;
    let a = s
        .device_with_token(&alice, "Heart monitor", "MQTTALICE")
        .await;
    let b = s.device_with_token(&bob, "Door lock", "MQTTBOB").await;
    let (status, _) = s
        .post(
            &format!("/api/plugins/telemetry/DEVICE/{b}/attributes/SHARED_SCOPE"),
            &bob,
            json!({"pin": "1234"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let mut ca = v5::connected(&s, "alice", "MQTTALICE").await;
    // Naming the other device in a topic gets nowhere.
    for topic in [
        format!("v1/devices/{b}/telemetry"),
        format!("v1/devices/{b}/attributes"),
    ] {
        assert_eq!(
            ca.publish_refused(&topic, r#"{"locked":false}"#).await,
            v5::PubAckReason::NotAuthorized
        );
        ca = v5::connected(&s, "alice", "MQTTALICE").await;
    }
    for filter in [
        format!("v1/devices/{b}/attributes"),
        "v1/devices/+/attributes".to_string(),
        "#".to_string(),
    ] {
        assert_eq!(
            ca.subscribe(&filter, v5::QoS::AtLeastOnce).await,
            Err(v5::SubscribeReasonCode::NotAuthorized),
            "{filter}"
        );
        ca = v5::connected(&s, "alice", "MQTTALICE").await;
    }
    // Alice's own topics are hers: she sees her attributes only, and Bob's updates do
    // not reach her.
    assert_eq!(
        ca.subscribe("v1/devices/me/attributes", v5::QoS::AtLeastOnce)
            .await,
        Ok(v5::QoS::AtLeastOnce)
    );
    ca.publish("v1/devices/me/attributes/request/1", "{}").await;
    assert_eq!(ca.message().await.1, json!({"client": {}, "shared": {}}));
    let (status, _) = s
        .post(
            &format!("/api/plugins/telemetry/DEVICE/{b}/attributes/SHARED_SCOPE"),
            &bob,
            json!({"pin": "9999"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s
        .post(
            &format!("/api/plugins/telemetry/DEVICE/{a}/attributes/SHARED_SCOPE"),
            &alice,
            json!({"rate": 60}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        ca.message().await,
        ("v1/devices/me/attributes".into(), json!({"rate": 60})),
        "the first update Alice gets is her own"
    );
    ca.publish("v1/devices/me/telemetry", r#"{"bpm":61}"#).await;

    // Bob's device has nothing of Alice's.
    assert_eq!(
        s.timeseries(&bob, &b, "startTs=0&endTs=9999999999999")
            .await,
        json!({})
    );
    assert_eq!(s.attributes(&bob, &b, "CLIENT_SCOPE").await, json!({}));
    assert_eq!(
        s.timeseries(&alice, &a, "keys=bpm").await["bpm"][0]["value"],
        "61"
    );
}

#[tokio::test]
async fn mosquitto_pub_publishes_telemetry() {
    let probe = std::process::Command::new("mosquitto_pub")
        .arg("--help")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    if matches!(&probe, Err(e) if e.kind() == std::io::ErrorKind::NotFound) {
        let message = "SKIP: mosquitto_pub not installed (apt-get install mosquitto-clients)";
        if std::env::var("THINGSAFE_REQUIRE_ALL").as_deref() == Ok("1") {
            panic!("{message}");
        }
        println!("{message}");
        return;
    }
    let s = Server::start();
    let user = s.sign_up("mosquitto@example.com").await;
    let id = s
        .device_with_token(&user, "Greenhouse", "MQTTMOSQUITTO")
        .await;
    let port = s.mqtt_addr.port().to_string();
    let publish = |token: &str, version: &str, payload: &str| {
        let output = std::process::Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port, "-u", token])
            .args(["-V", version, "-q", "1", "-t", "v1/devices/me/telemetry"])
            .args(["-m", payload])
            .output()
            .expect("run mosquitto_pub");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    for (version, temperature) in [("mqttv311", 25), ("mqttv5", 26)] {
        let (ok, stderr) = publish(
            "MQTTMOSQUITTO",
            version,
            &format!(r#"{{"temperature":{temperature}}}"#),
        );
        assert!(ok, "{version}: {stderr}");
        // mosquitto_pub exits after the PUBACK: the value is stored.
        let latest = s.timeseries(&user, &id, "keys=temperature").await;
        assert_eq!(
            latest["temperature"][0]["value"],
            temperature.to_string(),
            "{version}: {latest}"
        );
    }
    let (ok, stderr) = publish("NOT-A-TOKEN", "mqttv311", r#"{"temperature":99}"#);
    assert!(
        !ok && stderr.to_lowercase().contains("not authori"),
        "{stderr}"
    );
}

#[tokio::test]
async fn rpc_both_ways_over_mqtt() {
    let s = Server::start();
    let user = s.sign_up("rpc-mqtt@example.com").await;
    let id = s.device_with_token(&user, "Lamp", "MQTTRPC").await;
    let rest = |path: String, body: Value| {
        let (http, url, token) = (s.http.clone(), s.url(&path), user.clone());
        tokio::spawn(async move {
            let resp = http
                .post(url)
                .header("X-Authorization", format!("Bearer {token}"))
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = resp.status();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        })
    };

    // A command sent while the device is away waits for it in its mailbox.
    let oneway = rest(
        format!("/api/rpc/oneway/{id}"),
        json!({"method": "blink", "params": {"times": 3}, "timeout": 10000}),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut c = v3::connected(&s, "lamp", "MQTTRPC").await;
    assert_eq!(
        c.subscribe("v1/devices/me/rpc/request/+", v3::QoS::AtLeastOnce)
            .await,
        v3::SubscribeReasonCode::Success(v3::QoS::AtLeastOnce)
    );
    let (topic, body) = c.message().await;
    assert!(topic.starts_with("v1/devices/me/rpc/request/"), "{topic}");
    assert_eq!(body, json!({"method": "blink", "params": {"times": 3}}));
    assert_eq!(oneway.await.unwrap().0, StatusCode::OK);

    // Two-way: the user's call returns the device's answer.
    let twoway = rest(
        format!("/api/rpc/twoway/{id}"),
        json!({"method": "getState", "timeout": 10000}),
    );
    let (topic, body) = c.message().await;
    assert_eq!(body["method"], "getState");
    let request_id = topic.rsplit('/').next().unwrap().to_string();
    c.publish(
        &format!("v1/devices/me/rpc/response/{request_id}"),
        r#"{"on":true,"level":70}"#,
    )
    .await;
    assert_eq!(
        twoway.await.unwrap(),
        (StatusCode::OK, json!({"on": true, "level": 70}))
    );

    // Subscribed to commands only: a shared-attribute change is not pushed to it.
    let (status, _) = s
        .post(
            &format!("/api/plugins/telemetry/DEVICE/{id}/attributes/SHARED_SCOPE"),
            &user,
            json!({"color": "red"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let stray = tokio::time::timeout(Duration::from_millis(500), c.message()).await;
    assert!(stray.is_err(), "pushed without a subscription: {stray:?}");

    // Device to server: getSessionLimits, as ThingsBoard's SDKs ask on connecting.
    c.subscribe("v1/devices/me/rpc/response/+", v3::QoS::AtLeastOnce)
        .await;
    c.publish(
        "v1/devices/me/rpc/request/7",
        r#"{"method":"getSessionLimits","params":{}}"#,
    )
    .await;
    let (topic, limits) = c.message().await;
    assert_eq!(topic, "v1/devices/me/rpc/response/7");
    assert_eq!(limits["maxPayloadSize"], 65536);
    assert!(limits["maxInflightMessages"].as_u64().unwrap() > 0);
    assert!(limits["rateLimits"].is_object());
    c.publish(
        "v1/devices/me/rpc/request/8",
        r#"{"method":"selfDestruct"}"#,
    )
    .await;
    let (_, unknown) = c.message().await;
    assert!(
        unknown["error"].as_str().unwrap().contains("selfDestruct"),
        "{unknown}"
    );
}
