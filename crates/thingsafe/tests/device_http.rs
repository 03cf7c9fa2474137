//! ThingsBoard's HTTP device API and the telemetry REST, through the real binary.

mod common;

use common::Server;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn device_post(s: &Server, path: &str, body: &str) -> (StatusCode, String) {
    let resp = s
        .http
        .post(s.url(path))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

#[tokio::test]
async fn devices_post_telemetry_and_attributes_and_users_read_them_back() {
    let s = Server::start();
    let user = s.sign_up("owner@example.com").await;
    let id = s.device_with_token(&user, "Thermostat", "HTTPTOKEN1").await;

    // Every ThingsBoard telemetry form.
    for body in [
        r#"{"temperature":21.5,"on":true,"mode":"eco"}"#,
        r#"{"ts":1000,"values":{"temperature":20}}"#,
        r#"[{"ts":2000,"values":{"temperature":22}},{"ts":3000,"values":{"temperature":24,"count":7}}]"#,
        r#"{"config":{"nested":[1,2]}}"#,
    ] {
        let (status, text) = device_post(&s, "/api/v1/HTTPTOKEN1/telemetry", body).await;
        assert_eq!(status, StatusCode::OK, "{body}: {text}");
    }
    let (status, keys) = s
        .get(
            &format!("/api/plugins/telemetry/DEVICE/{id}/keys/timeseries"),
            &user,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        keys,
        json!(["config", "count", "mode", "on", "temperature"])
    );

    // Latest values, as strings by default.
    let (_, latest) = s
        .get(
            &format!("/api/plugins/telemetry/DEVICE/{id}/values/timeseries?keys=temperature,on"),
            &user,
        )
        .await;
    assert_eq!(latest["temperature"][0]["value"], "21.5");
    assert_eq!(latest["on"][0]["value"], "true");
    assert!(latest.get("mode").is_none());

    // A range, newest first, typed on request; a limit per key.
    let base = format!(
        "/api/plugins/telemetry/DEVICE/{id}/values/timeseries?keys=temperature&startTs=0&endTs=5000"
    );
    let (_, range) = s
        .get(&format!("{base}&useStrictDataTypes=true"), &user)
        .await;
    assert_eq!(
        range["temperature"],
        json!([{"ts": 3000, "value": 24}, {"ts": 2000, "value": 22}, {"ts": 1000, "value": 20}])
    );
    let (_, asc) = s.get(&format!("{base}&orderBy=ASC&limit=2"), &user).await;
    assert_eq!(
        asc["temperature"],
        json!([{"ts": 1000, "value": "20"}, {"ts": 2000, "value": "22"}])
    );
    let (_, avg) = s.get(&format!("{base}&agg=AVG&interval=5000"), &user).await;
    assert_eq!(avg["temperature"], json!([{"ts": 2500, "value": "22.0"}]));
    let (_, max) = s
        .get(&format!("{base}&agg=MAX&interval=2000&orderBy=ASC"), &user)
        .await;
    assert_eq!(
        max["temperature"],
        json!([{"ts": 1000, "value": "20"}, {"ts": 3000, "value": "24"}])
    );
    let (status, err) = s
        .get(&format!("{base}&agg=MEDIAN&interval=10"), &user)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(err["message"].as_str().unwrap().contains("MEDIAN"), "{err}");
    let (status, _) = s
        .get(
            &format!("/api/plugins/telemetry/DEVICE/{id}/values/timeseries?startTs=10"),
            &user,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Client attributes from the device, shared ones from the user.
    let (status, _) = device_post(
        &s,
        "/api/v1/HTTPTOKEN1/attributes",
        r#"{"firmware":"v2","serial":"SN-1"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s
        .post(
            &format!("/api/plugins/telemetry/DEVICE/{id}/attributes/SHARED_SCOPE"),
            &user,
            json!({"target": 21, "schedule": {"on": "07:00"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, err) = s
        .post(
            &format!("/api/plugins/telemetry/DEVICE/{id}/attributes/CLIENT_SCOPE"),
            &user,
            json!({"x": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    let (_, all) = s
        .get(
            &format!("/api/plugins/telemetry/DEVICE/{id}/values/attributes"),
            &user,
        )
        .await;
    let keys: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, vec!["firmware", "serial", "schedule", "target"]);
    let (_, client) = s
        .get(
            &format!(
                "/api/plugins/telemetry/DEVICE/{id}/values/attributes/CLIENT_SCOPE?keys=serial"
            ),
            &user,
        )
        .await;
    assert_eq!(client[0]["value"], "SN-1");
    assert!(client[0]["lastUpdateTs"].as_i64().unwrap() > 0);
    let (_, shared_keys) = s
        .get(
            &format!("/api/plugins/telemetry/DEVICE/{id}/keys/attributes/SHARED_SCOPE"),
            &user,
        )
        .await;
    assert_eq!(shared_keys, json!(["schedule", "target"]));

    // The device reads its attributes: all, or by scope.
    let resp: Value = s
        .http
        .get(s.url("/api/v1/HTTPTOKEN1/attributes"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        resp,
        json!({"client": {"firmware": "v2", "serial": "SN-1"}, "shared": {"schedule": {"on": "07:00"}, "target": 21}})
    );
    let resp: Value = s
        .http
        .get(s.url("/api/v1/HTTPTOKEN1/attributes?sharedKeys=target"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp, json!({"shared": {"target": 21}}));

    // Deleting telemetry of a key in a range, then all of another key.
    let (status, _) = s.delete(&format!("/api/plugins/telemetry/DEVICE/{id}/timeseries/delete?keys=temperature&startTs=0&endTs=2500&rewriteLatestIfDeleted=true"), &user).await;
    assert_eq!(status, StatusCode::OK);
    let (_, range) = s.get(&format!("{base}&orderBy=ASC"), &user).await;
    assert_eq!(range["temperature"], json!([{"ts": 3000, "value": "24"}]));
    let (status, _) = s.delete(&format!("/api/plugins/telemetry/DEVICE/{id}/timeseries/delete?keys=count&deleteAllDataForKeys=true"), &user).await;
    assert_eq!(status, StatusCode::OK);
    let (_, keys) = s
        .get(
            &format!("/api/plugins/telemetry/DEVICE/{id}/keys/timeseries"),
            &user,
        )
        .await;
    assert_eq!(keys, json!(["config", "mode", "on", "temperature"]));
    let (status, err) = s
        .delete(
            &format!("/api/plugins/telemetry/DEVICE/{id}/timeseries/delete?keys=count"),
            &user,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");

    // Deleting a shared attribute.
    let (status, _) = s
        .delete(
            &format!("/api/plugins/telemetry/DEVICE/{id}/SHARED_SCOPE?keys=target"),
            &user,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, shared_keys) = s
        .get(
            &format!("/api/plugins/telemetry/DEVICE/{id}/keys/attributes/SHARED_SCOPE"),
            &user,
        )
        .await;
    assert_eq!(shared_keys, json!(["schedule"]));
}

#[tokio::test]
async fn bad_device_input_is_refused_clearly_and_loses_nothing() {
    let s = Server::start();
    let user = s.sign_up("strict@example.com").await;
    let id = s.device_with_token(&user, "Meter", "HTTPTOKEN2").await;
    let (status, _) = device_post(
        &s,
        "/api/v1/HTTPTOKEN2/telemetry",
        r#"{"ts":1,"values":{"kwh":5}}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    for (body, needle) in [
        (r#"{"kwh":"#, "line 1 column"),
        ("42", "object"),
        (r#"{"":1}"#, "key"),
        (r#"{"ts":"soon","values":{"kwh":1}}"#, "ts"),
    ] {
        let (status, text) = device_post(&s, "/api/v1/HTTPTOKEN2/telemetry", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {text}");
        assert!(text.contains(needle), "{body}: {text}");
    }
    let (status, text) = device_post(&s, "/api/v1/WRONGTOKEN/telemetry", r#"{"kwh":1}"#).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    let big = format!(r#"{{"blob":"{}"}}"#, "x".repeat(70_000));
    let (status, text) = device_post(&s, "/api/v1/HTTPTOKEN2/telemetry", &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");

    // What was accepted before is all there, and nothing else.
    let (_, range) = s
        .get(
            &format!(
                "/api/plugins/telemetry/DEVICE/{id}/values/timeseries?startTs=0&endTs=9999999999999"
            ),
            &user,
        )
        .await;
    assert_eq!(range, json!({"kwh": [{"ts": 1, "value": "5"}]}));
}

#[tokio::test]
async fn device_data_stays_within_its_tenant_and_customer() {
    let s = Server::start();
    let alice = s.sign_up("alice@example.com").await;
    let bob = s.sign_up("bob@example.com").await;
    let id = s
        .device_with_token(&alice, "Heart monitor", "HTTPTOKEN3")
        .await;
    device_post(&s, "/api/v1/HTTPTOKEN3/telemetry", r#"{"bpm":61}"#).await;
    device_post(&s, "/api/v1/HTTPTOKEN3/attributes", r#"{"patient":"A"}"#).await;

    for path in [
        format!("/api/plugins/telemetry/DEVICE/{id}/keys/timeseries"),
        format!("/api/plugins/telemetry/DEVICE/{id}/values/timeseries"),
        format!(
            "/api/plugins/telemetry/DEVICE/{id}/values/timeseries?startTs=0&endTs=9999999999999"
        ),
        format!("/api/plugins/telemetry/DEVICE/{id}/values/attributes"),
        format!("/api/plugins/telemetry/DEVICE/{id}/keys/attributes/CLIENT_SCOPE"),
    ] {
        let (status, body) = s.get(&path, &bob).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    let (status, _) = s
        .post(
            &format!("/api/plugins/telemetry/DEVICE/{id}/attributes/SHARED_SCOPE"),
            &bob,
            json!({"x": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s
        .delete(
            &format!("/api/plugins/telemetry/DEVICE/{id}/CLIENT_SCOPE?keys=patient"),
            &bob,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, attrs) = s
        .get(
            &format!("/api/plugins/telemetry/DEVICE/{id}/values/attributes"),
            &alice,
        )
        .await;
    assert_eq!(attrs.as_array().unwrap().len(), 1, "{attrs}");
}
