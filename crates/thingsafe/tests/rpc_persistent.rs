//! ThingsBoard's persistent RPC (`"persistent": true`), through the real binary: commands
//! stored for devices that are away, delivered when they connect (MQTT with rumqttc, the
//! HTTP device API's long poll), across a restart, their statuses and answers over REST.

mod common;

use std::time::Duration;

use common::Server;
use common::mqtt::v3;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn setup(s: &Server, token: &str) -> (String, String) {
    let user = s
        .sign_up(&format!("{}@example.com", token.to_lowercase()))
        .await;
    let id = s.device_with_token(&user, "Valve", token).await;
    (user, id)
}

/// Stores a persistent command; its `rpcId`.
async fn persist(s: &Server, user: &str, device: &str, kind: &str, body: Value) -> String {
    let (status, answer) = s
        .post(&format!("/api/rpc/{kind}/{device}"), user, body)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let id = answer["rpcId"].as_str().expect("an rpcId").to_string();
    assert_eq!(
        answer,
        json!({ "rpcId": id }),
        "answered at once with its id only"
    );
    id
}

/// The command's status once it is `want` (statuses are stored as they happen).
async fn status_becomes(s: &Server, user: &str, rpc: &str, want: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        let (status, body) = s.get(&format!("/api/rpc/persistent/{rpc}"), user).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["status"] == want {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("status never became {want}: {last}");
}

/// Connects and subscribes to commands at QoS 1 (rumqttc acknowledges each at once).
async fn device(s: &Server, client: &str, token: &str) -> v3::Client {
    let mut c = v3::connected(s, client, token).await;
    assert_eq!(
        c.subscribe("v1/devices/me/rpc/request/+", v3::QoS::AtLeastOnce)
            .await,
        v3::SubscribeReasonCode::Success(v3::QoS::AtLeastOnce)
    );
    c
}

/// No PUBLISH comes within `within`.
async fn nothing_comes(c: &mut v3::Client, within: Duration) {
    let got = tokio::time::timeout(within, async {
        loop {
            if let Ok(v3::Event::Incoming(v3::Packet::Publish(m))) = c.events.poll().await {
                return m.topic.clone();
            }
        }
    })
    .await;
    assert!(got.is_err(), "a command was delivered: {got:?}");
}

#[tokio::test]
async fn a_command_waits_for_an_offline_device_then_its_answer_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::start_in(&data, &[]);
    let (user, id) = setup(&s, "PERSIST1").await;
    let expires = now_ms() + 120_000;
    let twoway = persist(
        &s,
        &user,
        &id,
        "twoway",
        json!({"method": "setValve", "params": {"open": 42, "owner": "Zelda Quartermain"},
               "persistent": true, "expirationTime": expires, "retries": 2,
               "additionalInfo": {"ticket": 7}}),
    )
    .await;
    let oneway = persist(
        &s,
        &user,
        &id,
        "oneway",
        json!({"method": "blink", "params": {"times": 3}, "persistent": true,
               "expirationTime": expires}),
    )
    .await;

    // ThingsBoard's Rpc, QUEUED while the device is away.
    let (status, rpc) = s.get(&format!("/api/rpc/persistent/{twoway}"), &user).await;
    assert_eq!(status, StatusCode::OK, "{rpc}");
    assert_eq!(rpc["id"], json!({"entityType": "RPC", "id": twoway}));
    assert_eq!(rpc["deviceId"], json!({"entityType": "DEVICE", "id": id}));
    assert_eq!(rpc["tenantId"]["entityType"], "TENANT");
    assert_eq!(rpc["status"], "QUEUED");
    assert_eq!(rpc["expirationTime"], expires);
    assert!(rpc["createdTime"].as_i64().unwrap() <= now_ms());
    assert_eq!(rpc["request"]["body"]["method"], "setValve");
    let params: Value =
        serde_json::from_str(rpc["request"]["body"]["params"].as_str().unwrap()).unwrap();
    assert_eq!(params["open"], 42);
    assert_eq!(rpc["request"]["oneway"], false);
    assert_eq!(rpc["request"]["retries"], 2);
    assert_eq!(rpc["response"], Value::Null);
    assert_eq!(rpc["additionalInfo"], json!({"ticket": 7}));

    // The device connects later: both commands, in the order they were sent.
    let mut c = device(&s, "valve", "PERSIST1").await;
    let (topic, body) = c.message().await;
    assert_eq!(body["method"], "setValve", "{topic}");
    assert_eq!(body["params"]["open"], 42);
    let request_id = topic.rsplit('/').next().unwrap().to_string();
    let (_, body) = c.message().await;
    assert_eq!(body, json!({"method": "blink", "params": {"times": 3}}));

    // Acknowledged: two-way DELIVERED, one-way done (SUCCESSFUL).
    status_becomes(&s, &user, &twoway, "DELIVERED").await;
    status_becomes(&s, &user, &oneway, "SUCCESSFUL").await;

    c.publish(
        &format!("v1/devices/me/rpc/response/{request_id}"),
        r#"{"open":true,"level":42}"#,
    )
    .await;
    let done = status_becomes(&s, &user, &twoway, "SUCCESSFUL").await;
    assert_eq!(done["response"], json!({"open": true, "level": 42}));

    // By device, with ThingsBoard's paging, status filter and sort.
    let (status, page) = s
        .get(
            &format!(
                "/api/rpc/persistent/device/{id}?pageSize=10&page=0&rpcStatus=SUCCESSFUL&sortProperty=createdTime&sortOrder=DESC"
            ),
            &user,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["totalElements"], 2);
    assert_eq!(page["data"][0]["id"]["id"], oneway, "newest first");
    assert_eq!(page["data"][1]["id"]["id"], twoway);
    let (_, queued) = s
        .get(
            &format!("/api/rpc/persistent/device/{id}?pageSize=10&page=0&rpcStatus=QUEUED"),
            &user,
        )
        .await;
    assert_eq!(queued["totalElements"], 0);

    // Another tenant sees none of it: 404 as for what does not exist.
    let other = s.sign_up("persist-other@example.com").await;
    for path in [
        format!("/api/rpc/persistent/{twoway}"),
        format!("/api/rpc/persistent/device/{id}?pageSize=10&page=0"),
    ] {
        let (status, body) = s.get(&path, &other).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    let (status, _) = s
        .delete(&format!("/api/rpc/persistent/{twoway}"), &other)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s.get(&format!("/api/rpc/persistent/{twoway}"), &user).await;
    assert_eq!(status, StatusCode::OK, "still there for its tenant");

    // Lightweight commands are as before: not stored, 504 when nobody takes them.
    drop(c);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = s
        .post(
            &format!("/api/rpc/oneway/{id}"),
            &user,
            json!({"method": "blink", "timeout": 500}),
        )
        .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    let (_, all) = s
        .get(
            &format!("/api/rpc/persistent/device/{id}?pageSize=10&page=0"),
            &user,
        )
        .await;
    assert_eq!(all["totalElements"], 2);

    // Method, params and answer are sealed: not in any file of the data directory.
    assert_eq!(s.stop().code(), Some(0));
    common::assert_absent_from_files(&data, &["Zelda Quartermain", "setValve", "\"level\""]);
}

#[tokio::test]
async fn queued_commands_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::start_in(&data, &[]);
    let (user, id) = setup(&s, "PERSIST2").await;
    let expires = now_ms() + 120_000;
    let first = persist(
        &s,
        &user,
        &id,
        "twoway",
        json!({"method": "first", "params": {"n": 1}, "persistent": true, "expirationTime": expires}),
    )
    .await;
    let second = persist(
        &s,
        &user,
        &id,
        "oneway",
        json!({"method": "second", "params": {"n": 2}, "persistent": true, "expirationTime": expires}),
    )
    .await;
    assert_eq!(s.stop().code(), Some(0));

    let s = Server::start_in(&data, &[]);
    let (status, login) = s.login("persist2@example.com", common::PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let user = login["token"].as_str().unwrap().to_string();
    status_becomes(&s, &user, &first, "QUEUED").await;

    let mut c = device(&s, "valve", "PERSIST2").await;
    let (topic, body) = c.message().await;
    assert_eq!(body["method"], "first");
    let (_, next) = c.message().await;
    assert_eq!(next["method"], "second", "in order");
    let request_id = topic.rsplit('/').next().unwrap().to_string();
    c.publish(
        &format!("v1/devices/me/rpc/response/{request_id}"),
        r#"{"done":1}"#,
    )
    .await;
    let done = status_becomes(&s, &user, &first, "SUCCESSFUL").await;
    assert_eq!(done["response"], json!({"done": 1}));
    status_becomes(&s, &user, &second, "SUCCESSFUL").await;
    drop(c);

    // And what is done stays done after another restart: nothing delivered again.
    assert_eq!(s.stop().code(), Some(0));
    let s = Server::start_in(&data, &[]);
    let (_, login) = s.login("persist2@example.com", common::PASSWORD).await;
    let user = login["token"].as_str().unwrap().to_string();
    let (_, rpc) = s.get(&format!("/api/rpc/persistent/{first}"), &user).await;
    assert_eq!(rpc["status"], "SUCCESSFUL");
    assert_eq!(rpc["response"], json!({"done": 1}));
    let mut c = device(&s, "valve", "PERSIST2").await;
    nothing_comes(&mut c, Duration::from_millis(800)).await;
}

#[tokio::test]
async fn expired_and_deleted_commands_are_never_delivered() {
    let s = Server::start();
    let (user, id) = setup(&s, "PERSIST3").await;
    let soon = persist(
        &s,
        &user,
        &id,
        "twoway",
        json!({"method": "soon", "persistent": true, "expirationTime": now_ms() + 1000}),
    )
    .await;
    let past = persist(
        &s,
        &user,
        &id,
        "oneway",
        json!({"method": "past", "persistent": true, "expirationTime": now_ms() - 1}),
    )
    .await;
    let deleted = persist(
        &s,
        &user,
        &id,
        "oneway",
        json!({"method": "deleted", "persistent": true, "expirationTime": now_ms() + 60_000}),
    )
    .await;
    let (_, rpc) = s.get(&format!("/api/rpc/persistent/{past}"), &user).await;
    assert_eq!(rpc["status"], "EXPIRED", "expired when sent");

    let (status, body) = s
        .delete(&format!("/api/rpc/persistent/{deleted}"), &user)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = s
        .get(&format!("/api/rpc/persistent/{deleted}"), &user)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    tokio::time::sleep(Duration::from_millis(1500)).await;
    status_becomes(&s, &user, &soon, "EXPIRED").await;
    let mut c = device(&s, "valve", "PERSIST3").await;
    nothing_comes(&mut c, Duration::from_millis(1000)).await;
    let (_, expired) = s
        .get(
            &format!("/api/rpc/persistent/device/{id}?pageSize=10&page=0&rpcStatus=EXPIRED"),
            &user,
        )
        .await;
    assert_eq!(expired["totalElements"], 2, "{expired}");
}

#[tokio::test]
async fn the_http_long_poll_takes_a_queued_command() {
    let s = Server::start();
    let (user, id) = setup(&s, "PERSIST4").await;
    let rpc = persist(
        &s,
        &user,
        &id,
        "twoway",
        json!({"method": "readMeter", "params": {"unit": "kWh"}, "persistent": true,
               "expirationTime": now_ms() + 60_000}),
    )
    .await;
    let resp = s
        .http
        .get(s.url("/api/v1/PERSIST4/rpc?timeout=5000"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cmd: Value = resp.json().await.unwrap();
    assert_eq!(cmd["method"], "readMeter");
    assert_eq!(cmd["params"], json!({"unit": "kWh"}));
    status_becomes(&s, &user, &rpc, "DELIVERED").await;
    let resp = s
        .http
        .post(s.url(&format!("/api/v1/PERSIST4/rpc/{}", cmd["id"])))
        .json(&json!({"kWh": 1234.5}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let done = status_becomes(&s, &user, &rpc, "SUCCESSFUL").await;
    assert_eq!(done["response"], json!({"kWh": 1234.5}));
}

#[tokio::test]
async fn malformed_requests_are_refused_with_the_reason() {
    let s = Server::start();
    let (user, id) = setup(&s, "PERSIST5").await;
    for (body, says) in [
        (json!({"method": "m", "persistent": "yes"}), "persistent"),
        (
            json!({"method": "m", "persistent": true, "expirationTime": "tomorrow"}),
            "expirationTime",
        ),
        (
            json!({"method": "m", "persistent": true, "retries": -1}),
            "retries",
        ),
        (
            json!({"method": "m", "persistent": true, "retries": 1000}),
            "retries",
        ),
        (json!({"persistent": true}), "method"),
        (json!({"method": " ", "persistent": true}), "method"),
    ] {
        let (status, answer) = s
            .post(&format!("/api/rpc/twoway/{id}"), &user, body.clone())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{body}: {message}");
    }
    for (path, says) in [
        ("/api/rpc/persistent/not-a-uuid".to_string(), "rpc id"),
        (
            format!("/api/rpc/persistent/device/{id}?pageSize=10&page=0&rpcStatus=DONE"),
            "rpcStatus",
        ),
        (
            format!("/api/rpc/persistent/device/{id}?pageSize=10&page=0&sortProperty=method"),
            "sortProperty",
        ),
        (
            format!("/api/rpc/persistent/device/{id}?page=0"),
            "pageSize",
        ),
    ] {
        let (status, answer) = s.get(&path, &user).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{path}: {message}");
    }
    let (status, _) = s
        .get(&format!("/api/rpc/persistent/{}", uuid_like()), &user)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

fn uuid_like() -> &'static str {
    "0b6e6833-d276-4fd0-9e30-33ececd18b23"
}
