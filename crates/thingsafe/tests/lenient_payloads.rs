//! Payloads as ThingsBoard's Gson reads them, leniently, through the real binary: unquoted
//! keys (what ThingsBoard's own `mosquitto_pub -m "{"temperature":25}"` example sends once
//! the shell took the quotes), single quotes, comments; over MQTT (rumqttc 3.1.1 and 5,
//! mosquitto_pub) and HTTP. What Gson refuses too is still refused, with the reason.

mod common;

use common::Server;
use common::mqtt::{v3, v5};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn lenient_telemetry_attributes_and_rpc_over_mqtt() {
    let s = Server::start();
    let user = s.sign_up("lenient-mqtt@example.com").await;
    let id3 = s.device_with_token(&user, "Boiler", "LENIENT3").await;
    let id5 = s.device_with_token(&user, "Heater", "LENIENT5").await;

    let mut c3 = v3::connected(&s, "boiler", "LENIENT3").await;
    c3.publish("v1/devices/me/telemetry", "{temperature:25}")
        .await;
    c3.publish(
        "v1/devices/me/attributes",
        "{firmware:'v2.1', serial=>SN1; /* note */ active:true}",
    )
    .await;
    assert_eq!(
        s.timeseries(&user, &id3, "keys=temperature").await["temperature"][0]["value"],
        "25"
    );
    assert_eq!(
        s.attributes(&user, &id3, "CLIENT_SCOPE").await,
        json!({"active": true, "firmware": "v2.1", "serial": "SN1"})
    );
    // Client-side RPC with a lenient call.
    c3.subscribe("v1/devices/me/rpc/response/+", v3::QoS::AtLeastOnce)
        .await;
    c3.publish(
        "v1/devices/me/rpc/request/1",
        "{method:getSessionLimits, params:{}}",
    )
    .await;
    let (topic, limits) = c3.message().await;
    assert_eq!(topic, "v1/devices/me/rpc/response/1");
    assert_eq!(limits["maxPayloadSize"], 65536, "{limits}");

    let mut c5 = v5::connected(&s, "heater", "LENIENT5").await;
    c5.publish("v1/devices/me/telemetry", "{ts:1000, values:{t:'21.5'}}")
        .await;
    assert_eq!(
        s.timeseries(&user, &id5, "keys=t&startTs=0&endTs=5000")
            .await["t"],
        json!([{"ts": 1000, "value": "21.5"}])
    );
    // Malformed even for Gson: PUBACK 0x99 with where it went wrong.
    assert_eq!(
        c5.publish_refused("v1/devices/me/telemetry", "{temperature:}")
            .await,
        v5::PubAckReason::PayloadFormatInvalid
    );

    // A lenient answer to a server-side command reaches the waiting caller as JSON.
    let mut c5 = v5::connected(&s, "heater-rpc", "LENIENT5").await;
    c5.subscribe("v1/devices/me/rpc/request/+", v5::QoS::AtLeastOnce)
        .await
        .unwrap();
    let twoway = s.rpc_call(
        &user,
        "twoway",
        &id5,
        json!({"method": "getState", "timeout": 10000}),
    );
    let (topic, _) = c5.message().await;
    let request_id = topic.rsplit('/').next().unwrap().to_string();
    c5.publish(
        &format!("v1/devices/me/rpc/response/{request_id}"),
        "{on:true, level:70}",
    )
    .await;
    assert_eq!(
        twoway.await.unwrap(),
        (StatusCode::OK, json!({"on": true, "level": 70}))
    );
}

#[tokio::test]
async fn thingsboards_mosquitto_pub_example_works_as_written() {
    if !common::tool_available("mosquitto_pub", "apt-get install mosquitto-clients") {
        return;
    }
    let s = Server::start();
    let user = s.sign_up("lenient-mosquitto@example.com").await;
    let id = s
        .device_with_token(&user, "Greenhouse", "LENIENTMOSQ")
        .await;
    // ThingsBoard's docs, character for character, through a shell.
    let command = format!(
        r#"mosquitto_pub -d -q 1 -h 127.0.0.1 -p {} -t v1/devices/me/telemetry -u "LENIENTMOSQ" -m "{{"temperature":25}}""#,
        s.mqtt_addr.port()
    );
    let output = std::process::Command::new("sh")
        .args(["-c", &command])
        .output()
        .expect("run sh");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        s.timeseries(&user, &id, "keys=temperature").await["temperature"][0]["value"],
        "25"
    );
}

#[tokio::test]
async fn lenient_payloads_over_http() {
    let s = Server::start();
    let user = s.sign_up("lenient-http@example.com").await;
    let id = s.device_with_token(&user, "Meter", "LENIENTHTTP").await;
    let post = |path: &str, body: &'static str| {
        s.http
            .post(s.url(&format!("/api/v1/LENIENTHTTP/{path}")))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    assert_eq!(
        post("telemetry", "{kwh:5}").await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        post("attributes", "{'model':'M-1'}")
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        s.timeseries(&user, &id, "keys=kwh").await["kwh"][0]["value"],
        "5"
    );
    assert_eq!(
        s.attributes(&user, &id, "CLIENT_SCOPE").await,
        json!({"model": "M-1"})
    );
    let refused = post("telemetry", "{kwh:5").await.unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let body = refused.text().await.unwrap();
    assert!(body.contains("not valid JSON"), "{body}");
    let call = post("rpc", "{method:getCurrentTime}").await.unwrap();
    assert_eq!(call.status(), StatusCode::OK);
    assert!(
        call.json::<Value>().await.unwrap()["time"]
            .as_i64()
            .unwrap()
            > 0
    );
}
