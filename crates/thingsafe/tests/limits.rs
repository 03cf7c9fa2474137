//! Abuse limits per client address: sign-in (API and console share one bucket), sign-up
//! and MQTT connections. Over a limit HTTP answers 429 with Retry-After and says when to
//! try again; an MQTT connection over the rate is closed before CONNECT is read.

mod common;

use common::{PASSWORD, Server};
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An MQTT 3.1.1 CONNECT with `token` as user name; true when a CONNACK came back, false
/// when the server closed the connection first.
async fn mqtt_connack(s: &Server, token: &str) -> bool {
    let mut stream = tokio::net::TcpStream::connect(s.mqtt_addr).await.unwrap();
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0x82, 0, 60, 0, 1, b'c'];
    body.extend_from_slice(&(token.len() as u16).to_be_bytes());
    body.extend_from_slice(token.as_bytes());
    let mut packet = vec![0x10, body.len() as u8];
    packet.extend_from_slice(&body);
    if stream.write_all(&packet).await.is_err() {
        return false;
    }
    let mut answer = [0u8; 4];
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(5), stream.read_exact(&mut answer)).await,
        Ok(Ok(_)) if answer[0] == 0x20
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_sign_up_and_mqtt_connections_are_limited_per_address() {
    let s = Server::start_with(&[
        ("THINGSAFE_LIMITS_SIGN_IN_PER_MINUTE", "3"),
        ("THINGSAFE_LIMITS_SIGN_UP_PER_HOUR", "2"),
        ("THINGSAFE_LIMITS_MQTT_CONNECTS_PER_SECOND", "1"),
    ]);
    let user = s.sign_up("limited@example.test").await;
    s.device_with_token(&user, "Meter", "LIMITED1").await;

    // Sign-in: three tries a minute from one address, API and console together.
    for _ in 0..2 {
        let (status, _) = s.login("limited@example.test", "wrong password").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let console = s
        .http
        .post(s.url("/signin"))
        .header("Origin", s.url(""))
        .form(&[("email", "limited@example.test"), ("password", "wrong")])
        .send()
        .await
        .unwrap();
    assert_ne!(console.status(), StatusCode::TOO_MANY_REQUESTS);
    let over = s
        .http
        .post(s.url("/api/auth/login"))
        .json(&json!({"username": "limited@example.test", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        over.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password"
    );
    let retry: u64 = over.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let body: serde_json::Value = over.json().await.unwrap();
    assert_eq!(body["status"], 429);
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("Too many sign-in attempts") && message.contains("try again in"),
        "{message}"
    );
    let console = s
        .http
        .post(s.url("/signin"))
        .header("Origin", s.url(""))
        .form(&[("email", "limited@example.test"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(console.status(), StatusCode::TOO_MANY_REQUESTS);
    let page = console.text().await.unwrap();
    assert!(
        page.contains("<h1>Please wait</h1>") && page.contains("try again in"),
        "{page}"
    );

    // Sign-up: two an hour (the first was above).
    let version = s.policy_version().await;
    let sign_up = |email: &'static str| {
        s.call(
            reqwest::Method::POST,
            "/api/noauth/signup",
            None,
            Some(json!({
                "email": email, "password": PASSWORD, "birthDate": "1990-01-01",
                "acceptedPolicyVersion": version
            })),
        )
    };
    assert_eq!(sign_up("second@example.test").await.0, StatusCode::CREATED);
    let (status, body) = sign_up("third@example.test").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Too many sign-ups")
    );

    // Other endpoints are not limited.
    let (status, _) = s.get("/api/auth/user", &user).await;
    assert_eq!(status, StatusCode::OK);

    // MQTT: one new connection a second, bursts of ten; beyond, closed without CONNACK.
    let mut answered = 0;
    let mut closed = 0;
    for _ in 0..20 {
        if mqtt_connack(&s, "LIMITED1").await {
            answered += 1;
        } else {
            closed += 1;
        }
    }
    assert!(answered >= 10, "the burst is served: {answered}");
    assert!(
        closed >= 5,
        "beyond the burst, connections are closed: {closed}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert!(mqtt_connack(&s, "LIMITED1").await, "the rate refills");
}

/// Device and tenant rate limits, in ThingsBoard's notation, across MQTT and HTTP: what a
/// device is told by getSessionLimits, what is refused (MQTT 5 PUBACK 0x97, HTTP 429) and
/// that a refused message is not stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_and_tenants_over_their_rate_limits_are_refused_and_nothing_is_stored() {
    let s = Server::start_with(&[
        ("THINGSAFE_LIMITS_DEVICE_MESSAGES", "5:60"),
        ("THINGSAFE_LIMITS_DEVICE_TELEMETRY_DATA_POINTS", "12:60"),
        ("THINGSAFE_LIMITS_TENANT_MESSAGES", "9:60"),
    ]);
    let user = s.sign_up("rates@example.test").await;
    let a = s.device_with_token(&user, "A", "RATEA").await;
    s.device_with_token(&user, "B", "RATEB").await;
    s.device_with_token(&user, "C", "RATEC").await;
    let other = s.sign_up("rates.elsewhere@example.test").await;
    s.device_with_token(&other, "D", "RATED").await;
    let post = |token: &'static str, body: serde_json::Value| {
        let s = &s;
        async move {
            let resp = s
                .http
                .post(s.url(&format!("/api/v1/{token}/telemetry")))
                .json(&body)
                .send()
                .await
                .unwrap();
            (resp.status(), resp.text().await.unwrap())
        }
    };

    // What the device is told (this call is a message too: A has sent 1).
    let limits: serde_json::Value = s
        .http
        .post(s.url("/api/v1/RATEA/rpc"))
        .json(&json!({"method": "getSessionLimits", "params": {}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(limits["rateLimits"]["messages"], "5:60", "{limits}");
    assert_eq!(
        limits["rateLimits"]["telemetryDataPoints"], "12:60",
        "{limits}"
    );

    // MQTT 5: three messages of one point (4 sent), then ten points (13 > 12), then one
    // more message (6 > 5).
    let mut device = common::mqtt::v5::connected(&s, "rate-a", "RATEA").await;
    for i in 0..3 {
        device
            .publish(
                "v1/devices/me/telemetry",
                &format!(r#"{{"ts":{i},"values":{{"n":{i}}}}}"#),
            )
            .await;
    }
    let ten: String = format!(
        r#"{{"ts":100,"values":{{{}}}}}"#,
        (0..10)
            .map(|k| format!(r#""k{k}":1"#))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert_eq!(
        device
            .publish_refused("v1/devices/me/telemetry", &ten)
            .await,
        common::mqtt::v5::PubAckReason::QuotaExceeded
    );
    let mut device = common::mqtt::v5::connected(&s, "rate-a2", "RATEA").await;
    assert_eq!(
        device
            .publish_refused(
                "v1/devices/me/telemetry",
                r#"{"ts":200,"values":{"n":200}}"#
            )
            .await,
        common::mqtt::v5::PubAckReason::QuotaExceeded
    );
    let stored = s
        .timeseries(&user, &a, "keys=n,k0&startTs=0&endTs=1000")
        .await;
    assert_eq!(stored["n"].as_array().unwrap().len(), 3, "{stored}");
    assert!(
        stored.get("k0").is_none(),
        "the refused message was not stored: {stored}"
    );

    // The tenant: 4 of A, 5 of B fill its 9; C is refused though C sent nothing yet.
    for i in 0..5 {
        assert_eq!(post("RATEB", json!({"n": i})).await.0, StatusCode::OK);
    }
    let (status, text) = post("RATEC", json!({"n": 1})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{text}");
    assert!(
        text.contains("tenant") && text.contains("nothing was stored"),
        "{text}"
    );
    // Another tenant is not concerned.
    assert_eq!(post("RATED", json!({"n": 1})).await.0, StatusCode::OK);
}
