//! Live data over ThingsBoard's WebSocket API, through the real binary.

mod common;

use std::time::Duration;

use common::Server;
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(s: &Server, query: &str) -> Socket {
    let url = format!("{}/api/ws{query}", s.base.replace("http://", "ws://"));
    tokio_tungstenite::connect_async(url)
        .await
        .expect("WebSocket connects")
        .0
}

async fn send(ws: &mut Socket, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

async fn next(ws: &mut Socket) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("an update within 10 s")
            .expect("socket open")
            .unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

async fn device_post(s: &Server, path: &str, body: &str) -> StatusCode {
    s.http
        .post(s.url(path))
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn telemetry_and_attributes_arrive_live() {
    let s = Server::start();
    let user = s.sign_up("watcher@example.com").await;
    let id = s.device_with_token(&user, "Boiler", "WSTOKEN1").await;
    assert_eq!(
        device_post(
            &s,
            "/api/v1/WSTOKEN1/telemetry",
            r#"{"ts":1000,"values":{"temperature":20}}"#
        )
        .await,
        StatusCode::OK
    );

    let mut ws = connect(&s, "").await;
    send(&mut ws, json!({
        "authCmd": {"cmdId": 0, "token": user},
        "cmds": [{"entityType": "DEVICE", "entityId": id, "scope": "LATEST_TELEMETRY", "cmdId": 10, "type": "TIMESERIES"}]
    })).await;
    // First the current values...
    let first = next(&mut ws).await;
    assert_eq!(first["subscriptionId"], 10);
    assert_eq!(first["errorCode"], 0);
    assert_eq!(first["data"]["temperature"], json!([[1000, "20"]]));
    assert_eq!(first["latestValues"]["temperature"], 1000);

    // ...then each new value as it is committed.
    assert_eq!(
        device_post(
            &s,
            "/api/v1/WSTOKEN1/telemetry",
            r#"{"ts":2000,"values":{"temperature":21.5,"humidity":40}}"#
        )
        .await,
        StatusCode::OK
    );
    let live = next(&mut ws).await;
    assert_eq!(live["subscriptionId"], 10);
    assert_eq!(live["data"]["temperature"], json!([[2000, "21.5"]]));
    assert_eq!(live["data"]["humidity"], json!([[2000, "40"]]));

    // Attributes in the older command form, narrowed to one scope and key.
    send(&mut ws, json!({"attrSubCmds": [{"cmdId": 11, "entityType": "DEVICE", "entityId": id, "scope": "SHARED_SCOPE", "keys": "target"}]})).await;
    let empty = next(&mut ws).await;
    assert_eq!(empty["subscriptionId"], 11);
    assert_eq!(empty["data"], json!({}));
    let (status, _) = s
        .post(
            &format!("/api/plugins/telemetry/DEVICE/{id}/attributes/SHARED_SCOPE"),
            &user,
            json!({"target": 22, "other": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let attr = next(&mut ws).await;
    assert_eq!(attr["subscriptionId"], 11);
    assert_eq!(attr["data"]["target"][0][1], "22");
    assert!(attr["data"].get("other").is_none());

    // Unsubscribing stops the updates of that subscription only.
    send(
        &mut ws,
        json!({"cmds": [{"cmdId": 10, "type": "TIMESERIES", "unsubscribe": true}]}),
    )
    .await;
    device_post(&s, "/api/v1/WSTOKEN1/telemetry", r#"{"temperature":30}"#).await;
    s.post(
        &format!("/api/plugins/telemetry/DEVICE/{id}/attributes/SHARED_SCOPE"),
        &user,
        json!({"target": 23}),
    )
    .await;
    let after = next(&mut ws).await;
    assert_eq!(
        after["subscriptionId"], 11,
        "only the attribute subscription is left: {after}"
    );
}

#[tokio::test]
async fn subscriptions_need_a_valid_token_and_a_visible_device() {
    let s = Server::start();
    let alice = s.sign_up("alice@example.com").await;
    let bob = s.sign_up("bob@example.com").await;
    let id = s.device_with_token(&alice, "Private", "WSTOKEN2").await;

    // No authCmd yet.
    let mut ws = connect(&s, "").await;
    send(&mut ws, json!({"cmds": [{"cmdId": 1, "type": "TIMESERIES", "entityType": "DEVICE", "entityId": id}]})).await;
    let refused = next(&mut ws).await;
    assert_eq!(refused["errorCode"], 3, "{refused}");

    // A forged token.
    let mut ws = connect(&s, "").await;
    send(
        &mut ws,
        json!({"authCmd": {"cmdId": 0, "token": format!("{alice}x")}}),
    )
    .await;
    assert_eq!(next(&mut ws).await["errorCode"], 3);

    // Another tenant's device, with the token in the query string (older clients).
    let mut ws = connect(&s, &format!("/plugins/telemetry?token={bob}")).await;
    send(
        &mut ws,
        json!({"tsSubCmds": [{"cmdId": 5, "entityType": "DEVICE", "entityId": id}]}),
    )
    .await;
    let hidden = next(&mut ws).await;
    assert_eq!(hidden["subscriptionId"], 5);
    assert_eq!(hidden["errorCode"], 2);
    assert!(
        hidden["errorMsg"]
            .as_str()
            .unwrap()
            .contains("wasn't found"),
        "{hidden}"
    );
    // Bob's socket gets nothing of Alice's device.
    device_post(&s, "/api/v1/WSTOKEN2/telemetry", r#"{"secret":1}"#).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(500), ws.next())
            .await
            .is_err(),
        "no update may reach another tenant"
    );

    // Garbage is answered, not fatal.
    let mut ws = connect(&s, "").await;
    ws.send(Message::text("{not json")).await.unwrap();
    let bad = next(&mut ws).await;
    assert_eq!(bad["errorCode"], 2);
    assert!(
        bad["errorMsg"].as_str().unwrap().contains("line 1"),
        "{bad}"
    );
}
