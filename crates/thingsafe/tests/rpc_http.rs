//! Server-side RPC and long polls with the HTTP device API, through the real binary.

mod common;

use common::Server;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn setup(s: &Server, token: &str) -> (String, String) {
    let user = s
        .sign_up(&format!("{}@example.com", token.to_lowercase()))
        .await;
    let id = s.device_with_token(&user, "Valve", token).await;
    (user, id)
}

#[tokio::test]
async fn a_two_way_command_reaches_a_polling_device_and_its_answer_comes_back() {
    let s = Server::start();
    let (user, id) = setup(&s, "RPCTOKEN1").await;

    // The device polls for commands and answers the one it gets.
    let http = s.http.clone();
    let base = s.base.clone();
    let device = tokio::spawn(async move {
        let resp = http
            .get(format!("{base}/api/v1/RPCTOKEN1/rpc?timeout=20000"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let cmd: Value = resp.json().await.unwrap();
        let id = cmd["id"].as_u64().unwrap();
        let answer = json!({"ok": true, "echo": cmd["params"]["open"]});
        let resp = http
            .post(format!("{base}/api/v1/RPCTOKEN1/rpc/{id}"))
            .json(&answer)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        cmd
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (status, answer) = s
        .post(
            &format!("/api/rpc/twoway/{id}"),
            &user,
            json!({"method": "setValve", "params": {"open": 42}, "timeout": 15000}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, json!({"ok": true, "echo": 42}));
    let cmd = device.await.unwrap();
    assert_eq!(cmd["method"], "setValve");

    // A command sent while no device listens waits in the mailbox for the next poll.
    let http = s.http.clone();
    let base = s.base.clone();
    let oneway = tokio::spawn({
        let s_user = user.clone();
        let id = id.clone();
        let http = http.clone();
        let base = base.clone();
        async move {
            http.post(format!("{base}/api/rpc/oneway/{id}"))
                .header("X-Authorization", format!("Bearer {s_user}"))
                .json(&json!({"method": "reboot", "timeout": 15000}))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let cmd: Value = http
        .get(format!("{base}/api/v1/RPCTOKEN1/rpc?timeout=5000"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cmd["method"], "reboot");
    assert_eq!(
        oneway.await.unwrap(),
        StatusCode::OK,
        "one-way answers once the device took it"
    );
}

#[tokio::test]
async fn commands_time_out_clearly_and_stay_within_the_tenant() {
    let s = Server::start();
    let (user, id) = setup(&s, "RPCTOKEN2").await;
    let (status, err) = s
        .post(
            &format!("/api/rpc/twoway/{id}"),
            &user,
            json!({"method": "ping", "timeout": 300}),
        )
        .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("connected"),
        "{err}"
    );
    let (status, _) = s
        .post(
            &format!("/api/rpc/oneway/{id}"),
            &user,
            json!({"method": "ping", "timeout": 300}),
        )
        .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    let (status, _) = s
        .post(
            &format!("/api/rpc/twoway/{id}"),
            &user,
            json!({"method": ""}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A poll with nothing to take ends with 408.
    let resp = s
        .http
        .get(s.url("/api/v1/RPCTOKEN2/rpc?timeout=200"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT);

    // Another tenant cannot command the device.
    let other = s.sign_up("intruder@example.com").await;
    let (status, _) = s
        .post(
            &format!("/api/rpc/oneway/{id}"),
            &other,
            json!({"method": "unlock", "timeout": 300}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let resp = s
        .http
        .get(s.url("/api/v1/RPCTOKEN2/rpc?timeout=200"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::REQUEST_TIMEOUT,
        "the intruder's command never reached the mailbox"
    );
}

#[tokio::test]
async fn a_device_calls_the_server_over_http() {
    let s = Server::start();
    setup(&s, "RPCTOKEN4").await;
    let call = |body: &'static str| {
        let (http, url) = (s.http.clone(), s.url("/api/v1/RPCTOKEN4/rpc"));
        async move { http.post(url).body(body).send().await.unwrap() }
    };
    let resp = call(r#"{"method":"getCurrentTime","params":{}}"#).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.json::<Value>().await.unwrap()["time"]
            .as_i64()
            .unwrap()
            > 0
    );
    let resp = call(r#"{"method":"getSessionLimits"}"#).await;
    assert_eq!(resp.json::<Value>().await.unwrap()["maxPayloadSize"], 65536);
    let resp = call(r#"{"params":{}}"#).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = s
        .http
        .post(s.url("/api/v1/NOSUCHTOKEN/rpc"))
        .body(r#"{"method":"getCurrentTime"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_device_long_polls_for_shared_attribute_updates() {
    let s = Server::start();
    let (user, id) = setup(&s, "RPCTOKEN3").await;
    let http = s.http.clone();
    let url = s.url("/api/v1/RPCTOKEN3/attributes/updates?timeout=10000");
    let poll = tokio::spawn(async move {
        http.get(url)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (status, _) = s
        .post(
            &format!("/api/plugins/telemetry/DEVICE/{id}/attributes/SHARED_SCOPE"),
            &user,
            json!({"setpoint": 19.5}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(poll.await.unwrap(), json!({"setpoint": 19.5}));
    let resp = s
        .http
        .get(s.url("/api/v1/RPCTOKEN3/attributes/updates?timeout=200"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT);
}
