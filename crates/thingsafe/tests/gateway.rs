//! ThingsBoard's gateway MQTT API (`v1/gateway/*`) through the real binary, with rumqttc
//! (MQTT 3.1.1 and 5): a device flagged as a gateway speaks for its sub-devices.

mod common;

use std::time::Duration;

use common::Server;
use common::mqtt::{v3, v5};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Sub-device names: personal (sealed at rest), so never in logs or in plaintext on disk.
const SUB_A: &str = "Greenhouse Quokka A";
const SUB_B: &str = "Greenhouse Quokka B";

/// Creates a device with `token`, a gateway or not; returns its JSON.
async fn device(s: &Server, user: &str, name: &str, token: &str, gateway: bool) -> Value {
    let mut body = json!({ "name": name, "type": "default" });
    if gateway {
        body["additionalInfo"] = json!({ "gateway": true });
    }
    let (status, dev) = s
        .call(
            Method::POST,
            &format!("/api/device?accessToken={token}"),
            Some(user),
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{dev}");
    dev
}

fn id(device: &Value) -> String {
    device["id"]["id"].as_str().unwrap().to_string()
}

/// The tenant's devices by name.
async fn devices(s: &Server, user: &str) -> serde_json::Map<String, Value> {
    let (status, page) = s.get("/api/tenant/devices?pageSize=100&page=0", user).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["name"].as_str().unwrap().to_string(), d.clone()))
        .collect()
}

/// What the server logged so far.
async fn log(s: &Server) -> String {
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.drain_output().join("\n")
}

#[tokio::test]
async fn a_gateway_speaks_for_its_sub_devices_over_mqtt_3() {
    let s = Server::start();
    let user = s.sign_up("gateway3@example.com").await;
    let gateway = device(&s, &user, "Gateway", "GW3TOKEN", true).await;
    assert_eq!(gateway["additionalInfo"], json!({"gateway": true}));
    let (_, fetched) = s.get(&format!("/api/device/{}", id(&gateway)), &user).await;
    assert_eq!(fetched["additionalInfo"], json!({"gateway": true}));
    let plain = device(&s, &user, "Plain", "PLAIN3", false).await;
    assert_eq!(plain["additionalInfo"], Value::Null);
    // Sub-devices go to the gateway's customer.
    let (status, customer) = s
        .post("/api/customer", &user, json!({"title": "Farm"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{customer}");
    let customer = id(&customer);
    let (status, _) = s
        .post(
            &format!("/api/customer/{customer}/device/{}", id(&gateway)),
            &user,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let mut c = v3::connected(&s, "gw3", "GW3TOKEN").await;
    c.publish(
        "v1/gateway/connect",
        &json!({"device": SUB_A, "type": "thermometer"}).to_string(),
    )
    .await;
    c.publish(
        "v1/gateway/telemetry",
        &json!({
            SUB_A: [{"ts": 1000, "values": {"temperature": 21.5, "humidity": 60}},
                    {"ts": 2000, "values": {"temperature": 22}}],
            SUB_B: [{"ts": 1500, "values": {"co2": 400}}],
        })
        .to_string(),
    )
    .await;
    c.publish(
        "v1/gateway/attributes",
        &json!({SUB_A: {"fw": "v1.0", "serial": 7}, SUB_B: {"fw": "v2.0"}}).to_string(),
    )
    .await;

    // Both appear in the tenant, created by the gateway, assigned to its customer.
    let all = devices(&s, &user).await;
    let (a, b) = (&all[SUB_A], &all[SUB_B]);
    assert_eq!(a["type"], "thermometer");
    assert_eq!(b["type"], "default");
    for sub in [a, b] {
        assert_eq!(sub["customerId"]["id"], customer.as_str(), "{sub}");
        assert_eq!(
            sub["additionalInfo"]["lastConnectedGateway"],
            id(&gateway).as_str()
        );
    }
    let (a, b) = (id(a), id(b));
    assert_eq!(
        s.timeseries(&user, &a, "startTs=0&endTs=9999999999999")
            .await,
        json!({
            "temperature": [{"ts": 2000, "value": "22"}, {"ts": 1000, "value": "21.5"}],
            "humidity": [{"ts": 1000, "value": "60"}],
        })
    );
    assert_eq!(
        s.timeseries(&user, &b, "startTs=0&endTs=9999999999999")
            .await,
        json!({"co2": [{"ts": 1500, "value": "400"}]})
    );
    assert_eq!(
        s.attributes(&user, &a, "CLIENT_SCOPE").await,
        json!({"fw": "v1.0", "serial": 7})
    );
    assert_eq!(
        s.attributes(&user, &b, "CLIENT_SCOPE").await,
        json!({"fw": "v2.0"})
    );
    // Sub-devices have their own random access token.
    let (status, creds) = s.get(&format!("/api/device/{a}/credentials"), &user).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(creds["credentialsId"].as_str().unwrap().len(), 20);

    // Attribute requests: one name gets "value", several get "values".
    let (status, _) = s
        .post(
            &format!("/api/plugins/telemetry/DEVICE/{a}/attributes/SHARED_SCOPE"),
            &user,
            json!({"target": 20, "mode": "eco"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        c.subscribe("v1/gateway/attributes/response", v3::QoS::AtLeastOnce)
            .await,
        v3::SubscribeReasonCode::Success(v3::QoS::AtLeastOnce)
    );
    c.publish(
        "v1/gateway/attributes/request",
        &json!({"id": 1, "device": SUB_A, "client": true, "key": "fw"}).to_string(),
    )
    .await;
    assert_eq!(
        c.message().await,
        (
            "v1/gateway/attributes/response".into(),
            json!({"id": 1, "device": SUB_A, "value": "v1.0"})
        )
    );
    c.publish(
        "v1/gateway/attributes/request",
        &json!({"id": 2, "device": SUB_A, "client": false, "keys": ["target", "mode", "nope"]})
            .to_string(),
    )
    .await;
    assert_eq!(
        c.message().await.1,
        json!({"id": 2, "device": SUB_A, "values": {"target": 20, "mode": "eco"}})
    );
    // The request reads the writes before it.
    c.client
        .publish(
            "v1/gateway/attributes",
            v3::QoS::AtLeastOnce,
            false,
            json!({SUB_B: {"fw": "v2.1"}}).to_string(),
        )
        .await
        .unwrap();
    c.publish(
        "v1/gateway/attributes/request",
        &json!({"id": 3, "device": SUB_B, "client": true, "key": "fw"}).to_string(),
    )
    .await;
    assert_eq!(
        c.message().await.1,
        json!({"id": 3, "device": SUB_B, "value": "v2.1"})
    );

    // A malformed payload closes an MQTT 3.1.1 connection, as ThingsBoard does; nothing
    // accepted before is lost.
    c.publish_refused("v1/gateway/telemetry", r#"{"x":{"a":1}}"#)
        .await;
    assert_eq!(
        s.attributes(&user, &b, "CLIENT_SCOPE").await,
        json!({"fw": "v2.1"})
    );

    // Sub-device names are sealed: never logged, never in plaintext on disk.
    let log = log(&s).await;
    assert!(log.contains("refused an MQTT message"), "{log}");
    assert!(
        !log.contains("Quokka"),
        "a sub-device name was logged: {log}"
    );
    common::assert_absent_from_files(&s.data_dir, &[SUB_A, SUB_B, "Quokka"]);
}

#[tokio::test]
async fn shared_attributes_and_commands_reach_sub_devices_over_mqtt_5() {
    let s = Server::start();
    let user = s.sign_up("gateway5@example.com").await;
    device(&s, &user, "Gateway", "GW5TOKEN", true).await;
    let mut c = v5::connected(&s, "gw5", "GW5TOKEN").await;
    for filter in ["v1/gateway/attributes", "v1/gateway/rpc"] {
        assert_eq!(
            c.subscribe(filter, v5::QoS::AtLeastOnce).await,
            Ok(v5::QoS::AtLeastOnce),
            "{filter}"
        );
    }
    c.publish("v1/gateway/connect", &json!({"device": SUB_A}).to_string())
        .await;
    let a = id(&devices(&s, &user).await[SUB_A]);

    // A shared attribute set by a user reaches the gateway, naming the sub-device.
    let (status, _) = s
        .post(
            &format!("/api/plugins/telemetry/DEVICE/{a}/attributes/SHARED_SCOPE"),
            &user,
            json!({"interval": 30}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        c.message().await,
        (
            "v1/gateway/attributes".into(),
            json!({"device": SUB_A, "data": {"interval": 30}})
        )
    );
    let (status, _) = s
        .delete(
            &format!("/api/plugins/telemetry/DEVICE/{a}/SHARED_SCOPE?keys=interval"),
            &user,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        c.message().await.1,
        json!({"device": SUB_A, "data": {"deleted": ["interval"]}})
    );

    // Two-way RPC: the user's call returns the sub-device's answer, through the gateway.
    let (http, url, token) = (
        s.http.clone(),
        s.url(&format!("/api/rpc/twoway/{a}")),
        user.clone(),
    );
    let call = tokio::spawn(async move {
        let resp = http
            .post(url)
            .header("X-Authorization", format!("Bearer {token}"))
            .json(&json!({"method": "toggle_gpio", "params": {"pin": 1}, "timeout": 10000}))
            .send()
            .await
            .unwrap();
        (
            resp.status(),
            resp.json::<Value>().await.unwrap_or(Value::Null),
        )
    });
    let (topic, command) = c.message().await;
    assert_eq!(topic, "v1/gateway/rpc");
    assert_eq!(command["device"], SUB_A);
    assert_eq!(command["data"]["method"], "toggle_gpio");
    assert_eq!(command["data"]["params"], json!({"pin": 1}));
    let request_id = command["data"]["id"].as_u64().unwrap();
    c.publish(
        "v1/gateway/rpc",
        &json!({"device": SUB_A, "id": request_id, "data": {"success": true}}).to_string(),
    )
    .await;
    assert_eq!(
        call.await.unwrap(),
        (StatusCode::OK, json!({"success": true}))
    );

    // Disconnected, the sub-device gets nothing through this gateway.
    c.publish(
        "v1/gateway/disconnect",
        &json!({"device": SUB_A}).to_string(),
    )
    .await;
    let (status, _) = s
        .post(
            &format!("/api/rpc/oneway/{a}"),
            &user,
            json!({"method": "blink", "timeout": 500}),
        )
        .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test]
async fn only_gateways_reach_sub_devices_and_only_their_own() {
    let s = Server::start();
    let user = s.sign_up("gateway-scope@example.com").await;
    let other = s.sign_up("other-tenant@example.com").await;
    device(&s, &user, "Gateway", "GWSCOPE", true).await;
    let plain = id(&device(&s, &user, "Plain Pump", "PLAINSCOPE", false).await);
    // Another tenant's device with the name the gateway will use.
    let theirs = id(&device(&s, &other, SUB_A, "THEIRS", false).await);

    // A device that is not a gateway is refused on every gateway topic.
    let mut p = v5::connected(&s, "plain5", "PLAINSCOPE").await;
    for filter in [
        "v1/gateway/attributes",
        "v1/gateway/rpc",
        "v1/gateway/attributes/response",
    ] {
        assert_eq!(
            p.subscribe(filter, v5::QoS::AtLeastOnce).await,
            Err(v5::SubscribeReasonCode::NotAuthorized),
            "{filter}"
        );
    }
    let mut p = v5::connected(&s, "plain5b", "PLAINSCOPE").await;
    assert_eq!(
        p.publish_refused(
            "v1/gateway/telemetry",
            &json!({SUB_A: [{"x": 1}]}).to_string()
        )
        .await,
        v5::PubAckReason::NotAuthorized
    );
    let mut p3 = v3::connected(&s, "plain3", "PLAINSCOPE").await;
    p3.publish_refused("v1/gateway/connect", &json!({"device": SUB_A}).to_string())
        .await;

    // The gateway cannot reach a device of its tenant that is not its sub-device.
    let mut c = v5::connected(&s, "gwscope", "GWSCOPE").await;
    assert_eq!(
        c.publish_refused(
            "v1/gateway/attributes",
            &json!({"Plain Pump": {"hijacked": true}}).to_string()
        )
        .await,
        v5::PubAckReason::NotAuthorized
    );
    assert_eq!(s.attributes(&user, &plain, "CLIENT_SCOPE").await, json!({}));

    // Its own sub-device of that name is another device than the other tenant's.
    let mut c = v5::connected(&s, "gwscope2", "GWSCOPE").await;
    c.publish(
        "v1/gateway/telemetry",
        &json!({SUB_A: [{"ts": 5, "values": {"level": 3}}]}).to_string(),
    )
    .await;
    let mine = devices(&s, &user).await;
    let a = id(&mine[SUB_A]);
    assert_ne!(a, theirs);
    assert_eq!(
        s.timeseries(&user, &a, "startTs=0&endTs=9999999999999")
            .await,
        json!({"level": [{"ts": 5, "value": "3"}]})
    );
    assert_eq!(
        s.timeseries(&other, &theirs, "startTs=0&endTs=9999999999999")
            .await,
        json!({})
    );
    let theirs_now = devices(&s, &other).await;
    assert_eq!(theirs_now.len(), 1);
    assert_eq!(id(&theirs_now[SUB_A]), theirs);
    assert_eq!(theirs_now[SUB_A]["additionalInfo"], Value::Null);
    // And the other tenant cannot read the gateway's sub-device.
    let (status, _) = s.get(&format!("/api/device/{a}"), &other).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_gateway_opens_claiming_windows_for_its_sub_devices() {
    let s = Server::start();
    let admin = s.sign_up("gateway-claim@example.com").await;
    let kim = s.customer_user(&admin, "kim@gateway-claim.test").await.0;
    device(&s, &admin, "Claim Gateway", "GWCLAIM", true).await;
    let mut gw = v5::connected(&s, "claim-gw", "GWCLAIM").await;
    // gateway-mqtt-api.md's example: two sub-devices, created on first mention.
    gw.publish(
        "v1/gateway/claim",
        &json!({
            SUB_A: {"secretKey": "value_A", "durationMs": 60000},
            SUB_B: {"secretKey": "value_B", "durationMs": 300},
        })
        .to_string(),
    )
    .await;
    assert!(devices(&s, &admin).await.contains_key(SUB_A));
    assert_eq!(
        s.claim_device(&kim, SUB_A, "value_B").await.1,
        json!("FAILURE")
    );
    gw.publish(
        "v1/gateway/claim",
        &json!({ SUB_A: {"secretKey": "value_A", "durationMs": 60000} }).to_string(),
    )
    .await;
    let (status, ok) = s.claim_device(&kim, SUB_A, "value_A").await;
    assert_eq!(status, StatusCode::OK, "{ok}");
    assert_eq!(ok["response"], "SUCCESS");
    assert_eq!(ok["device"]["name"], SUB_A);
    // B's window (300 ms) expired.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        s.claim_device(&kim, SUB_B, "value_B").await.1,
        json!("FAILURE")
    );

    // Malformed requests are refused (the reasons: thingsafe-mqtt's unit tests).
    for payload in [
        r#"{"X":"value"}"#,
        r#"{"X":{"durationMs":"soon"}}"#,
        "{}",
        r#"{"X":"#,
    ] {
        let reason = gw.publish_refused("v1/gateway/claim", payload).await;
        assert_eq!(reason, v5::PubAckReason::PayloadFormatInvalid, "{payload}");
        gw = v5::connected(&s, "claim-gw", "GWCLAIM").await;
    }
    assert!(
        !devices(&s, &admin).await.contains_key("X"),
        "a refused claim creates no sub-device"
    );
    // Not a gateway: refused.
    device(&s, &admin, "Plain", "PLAINCLAIM", false).await;
    let mut plain = v5::connected(&s, "plain", "PLAINCLAIM").await;
    assert_eq!(
        plain
            .publish_refused("v1/gateway/claim", r#"{"Plain":{"secretKey":"k"}}"#)
            .await,
        v5::PubAckReason::NotAuthorized
    );
    // Over MQTT 3.1.1 too.
    let mut gw3 = v3::connected(&s, "claim-gw3", "GWCLAIM").await;
    gw3.publish(
        "v1/gateway/claim",
        &json!({ SUB_B: {"secretKey": "again"} }).to_string(),
    )
    .await;
    assert_eq!(
        s.claim_device(&kim, SUB_B, "again").await.1["response"],
        "SUCCESS"
    );
}
