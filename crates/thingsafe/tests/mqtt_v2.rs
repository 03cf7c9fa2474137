//! ThingsBoard's short MQTT topics (`v2/t`, `v2/a`, `v2/a/req/$id`, `v2/r/...`, and their
//! `/j` JSON forms) through the real binary, with rumqttc (MQTT 3.1.1 and 5): the same
//! device API and the same rules as `v1/devices/me/...`; the `/p` protobuf forms refused.

mod common;

use std::time::Duration;

use common::Server;
use common::mqtt::{v3, v5};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn short_topics_over_mqtt_3() {
    let s = Server::start();
    let user = s.sign_up("short3@example.com").await;
    let id = s.device_with_token(&user, "Short", "SHORTV3").await;
    let other = s.device_with_token(&user, "Other", "SHORTOTHER").await;
    let mut c = v3::connected(&s, "short3", "SHORTV3").await;

    // Telemetry and attributes, stored before the PUBACK.
    c.publish("v2/t", r#"{"temperature":21}"#).await;
    c.publish("v2/t/j", r#"{"ts":1000,"values":{"humidity":40}}"#)
        .await;
    c.publish("v2/a", r#"{"firmware":"fw-1"}"#).await;
    c.publish("v2/a/j", r#"{"serial":"S-1"}"#).await;
    assert_eq!(
        s.timeseries(&user, &id, "keys=temperature").await["temperature"][0]["value"],
        "21"
    );
    assert_eq!(
        s.timeseries(&user, &id, "keys=humidity&startTs=0&endTs=5000")
            .await["humidity"],
        json!([{"ts": 1000, "value": "40"}])
    );
    assert_eq!(
        s.attributes(&user, &id, "CLIENT_SCOPE").await,
        json!({"firmware": "fw-1", "serial": "S-1"})
    );
    // Nothing reached the other device.
    assert_eq!(s.attributes(&user, &other, "CLIENT_SCOPE").await, json!({}));

    // Attribute requests, answered in the family asked in.
    let (status, _) = s
        .post(
            &format!("/api/plugins/telemetry/DEVICE/{id}/attributes/SHARED_SCOPE"),
            &user,
            json!({"interval": 5}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    c.subscribe("v2/a/res/+", v3::QoS::AtLeastOnce).await;
    c.publish(
        "v2/a/req/1",
        r#"{"clientKeys":"firmware","sharedKeys":"interval"}"#,
    )
    .await;
    let (topic, body) = c.message().await;
    assert_eq!(topic, "v2/a/res/1");
    assert_eq!(
        body,
        json!({"client": {"firmware": "fw-1"}, "shared": {"interval": 5}})
    );
    c.subscribe("v2/a/res/j/+", v3::QoS::AtLeastOnce).await;
    c.publish("v2/a/req/j/2", r#"{"sharedKeys":"interval"}"#)
        .await;
    let (topic, body) = c.message().await;
    assert_eq!(topic, "v2/a/res/j/2");
    assert_eq!(body, json!({"shared": {"interval": 5}}));

    // Shared-attribute updates on v2/a.
    c.subscribe("v2/a", v3::QoS::AtLeastOnce).await;
    s.post(
        &format!("/api/plugins/telemetry/DEVICE/{id}/attributes/SHARED_SCOPE"),
        &user,
        json!({"interval": 10}),
    )
    .await;
    let (topic, body) = c.message().await;
    assert_eq!((topic.as_str(), body), ("v2/a", json!({"interval": 10})));

    // Server-side RPC on v2/r/req/+, answered on v2/r/res/$id.
    c.subscribe("v2/r/req/+", v3::QoS::AtLeastOnce).await;
    let call = s.rpc_call(
        &user,
        "twoway",
        &id,
        json!({"method": "getState", "timeout": 10000}),
    );
    let (topic, body) = c.message().await;
    assert!(topic.starts_with("v2/r/req/"), "{topic}");
    assert_eq!(body["method"], "getState");
    let request = topic.rsplit('/').next().unwrap().to_string();
    c.publish(&format!("v2/r/res/{request}"), r#"{"on":true}"#)
        .await;
    assert_eq!(call.await.unwrap(), (StatusCode::OK, json!({"on": true})));

    // Client-side RPC on v2/r/req/$id, answered on v2/r/res/$id.
    c.subscribe("v2/r/res/+", v3::QoS::AtLeastOnce).await;
    c.publish("v2/r/req/7", r#"{"method":"getCurrentTime","params":{}}"#)
        .await;
    let (topic, body) = c.message().await;
    assert_eq!(topic, "v2/r/res/7");
    assert!(body["time"].as_i64().unwrap() > 0, "{body}");

    // A protobuf topic: MQTT 3.1.1 cannot refuse a message, so the connection closes.
    c.publish_refused("v2/t/p", "\x0a\x01\x02").await;
    assert_eq!(
        s.timeseries(&user, &id, "keys=temperature").await["temperature"][0]["value"],
        "21",
        "nothing stored from it"
    );
}

#[tokio::test]
async fn short_topics_over_mqtt_5_and_protobuf_refused() {
    let s = Server::start();
    let user = s.sign_up("short5@example.com").await;
    let id = s.device_with_token(&user, "Short5", "SHORTV5").await;
    let mut c = v5::connected(&s, "short5", "SHORTV5").await;
    c.publish("v2/t", r#"{"pressure":1013}"#).await;
    assert_eq!(
        s.timeseries(&user, &id, "keys=pressure").await["pressure"][0]["value"],
        "1013"
    );
    // JSON commands on the /j form; one sent while away waits for the subscription.
    let oneway = s.rpc_call(
        &user,
        "oneway",
        &id,
        json!({"method": "blink", "params": {"n": 2}, "timeout": 10000}),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    c.subscribe("v2/r/req/j/+", v5::QoS::AtLeastOnce)
        .await
        .unwrap();
    let (topic, body) = c.message().await;
    assert!(topic.starts_with("v2/r/req/j/"), "{topic}");
    assert_eq!(body, json!({"method": "blink", "params": {"n": 2}}));
    assert_eq!(oneway.await.unwrap().0, StatusCode::OK);

    // Protobuf subscriptions are refused; so are foreign and wildcard filters.
    for filter in ["v2/a/p", "v2/r/req/p/+", "v2/#", "v2/+/t"] {
        assert_eq!(
            c.subscribe(filter, v5::QoS::AtLeastOnce).await,
            Err(v5::SubscribeReasonCode::NotAuthorized),
            "{filter}"
        );
    }
    // A protobuf publish: PUBACK 0x99, nothing stored.
    assert_eq!(
        c.publish_refused("v2/a/p", "\x0a\x01").await,
        v5::PubAckReason::PayloadFormatInvalid
    );
    let mut c = v5::connected(&s, "short5b", "SHORTV5").await;
    assert_eq!(
        c.publish_refused("v2/t/x", r#"{"a":1}"#).await,
        v5::PubAckReason::NotAuthorized
    );
    assert_eq!(s.attributes(&user, &id, "CLIENT_SCOPE").await, json!({}));
    let log = {
        tokio::time::sleep(Duration::from_millis(300)).await;
        s.drain_output().join("\n")
    };
    assert!(
        log.contains("protobuf payloads are not supported"),
        "the refusal says why: {log}"
    );
}
