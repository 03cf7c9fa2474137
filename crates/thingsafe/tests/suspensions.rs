//! Suspending devices, device types and tenants: a suspended device is refused at connect
//! (MQTT 3.1.1 and 5, HTTP device API), dropped if connected (MQTT 5 DISCONNECT 0x98,
//! administrative action), and works again when the suspension is lifted. Who may suspend
//! what is enforced below the API.

mod common;

use common::mqtt::{v3, v5};
use common::{PASSWORD, Server};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ADMIN: &str = "operator@example.test";

async fn telemetry(s: &Server, token: &str) -> (StatusCode, String) {
    let resp = s
        .http
        .post(s.url(&format!("/api/v1/{token}/telemetry")))
        .json(&json!({"temperature": 21.5}))
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

/// Waits for the server to end the MQTT 5 session; the DISCONNECT's reason code.
async fn dropped(client: &mut v5::Client) -> String {
    loop {
        match tokio::time::timeout(common::mqtt::WAIT, client.events.poll())
            .await
            .expect("dropped within 10 s")
        {
            Ok(v5::Event::Incoming(v5::Packet::Disconnect(d))) => {
                return format!("{:?}", d.reason_code);
            }
            Ok(_) => {}
            Err(v5::ConnectionError::MqttState(v5::StateError::ServerDisconnect {
                reason_code,
                ..
            })) => return format!("{reason_code:?}"),
            Err(e) => return format!("closed without DISCONNECT: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspended_devices_types_and_tenants_are_refused_and_dropped_until_lifted() {
    let s = Server::start_with(&[
        ("THINGSAFE_ADMIN_EMAIL", ADMIN),
        ("THINGSAFE_ADMIN_PASSWORD", PASSWORD),
    ]);
    let (_, pair) = s.login(ADMIN, PASSWORD).await;
    let sysadmin = pair["token"].as_str().unwrap().to_string();
    let tenant = s.sign_up("fleet@example.test").await;
    let other = s.sign_up("elsewhere@example.test").await;
    let (_, me) = s.get("/api/auth/user", &tenant).await;
    let tenant_id = me["tenantId"]["id"].as_str().unwrap().to_string();
    let meter = s.device_with_token(&tenant, "Meter 1", "METER1").await;
    let (status, camera) = s
        .call(
            reqwest::Method::POST,
            "/api/device?accessToken=CAMERA1",
            Some(&tenant),
            Some(json!({"name": "Camera 1", "type": "camera"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{camera}");
    s.device_with_token(&other, "Elsewhere", "ELSEWHERE1").await;

    // A device suspended while connected is dropped, then refused everywhere.
    let mut connected = v5::connected(&s, "meter-1", "METER1").await;
    let suspend = |path: String, token: String, body: Value| {
        let s = &s;
        async move { s.post(&path, &token, body).await }
    };
    let (status, body) = suspend(
        format!("/api/device/{meter}/suspension"),
        tenant.clone(),
        json!({"reason": "firmware floods the network"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["kind"], "DEVICE");
    assert_eq!(dropped(&mut connected).await, "AdministrativeAction");
    assert!(matches!(
        v5::connect(&s, "meter-1", Some("METER1")).await.err(),
        Some(v5::ConnectReturnCode::Banned)
    ));
    assert!(matches!(
        v3::connect(&s, "meter-1", Some("METER1")).await.err(),
        Some(v3::ConnectReturnCode::NotAuthorized)
    ));
    let (status, text) = telemetry(&s, "METER1").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        text.contains("suspended") && text.contains("firmware floods"),
        "{text}"
    );
    assert_eq!(
        telemetry(&s, "CAMERA1").await.0,
        StatusCode::OK,
        "others go on"
    );

    // Who may: not another tenant, not a bad body; the list shows it.
    let (status, _) = suspend(
        format!("/api/device/{meter}/suspension"),
        other.clone(),
        json!({"reason": "not mine"}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another tenant's device is not found"
    );
    let (status, body) = suspend(
        format!("/api/device/{meter}/suspension"),
        tenant.clone(),
        json!({"reason": "  "}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"].as_str().unwrap().contains("reason"),
        "{body}"
    );
    let (status, body) = suspend(
        format!("/api/tenant/{tenant_id}/suspension"),
        tenant.clone(),
        json!({"reason": "myself"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (_, list) = s.get("/api/suspensions", &tenant).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let (_, list) = s.get("/api/suspensions", &other).await;
    assert_eq!(list, json!([]), "each tenant sees its own");

    // Lifted: the device connects again.
    let (status, _) = s
        .delete(&format!("/api/device/{meter}/suspension"), &tenant)
        .await;
    assert_eq!(status, StatusCode::OK);
    v5::connected(&s, "meter-1", "METER1").await;
    assert_eq!(telemetry(&s, "METER1").await.0, StatusCode::OK);
    let (status, _) = s
        .delete(&format!("/api/device/{meter}/suspension"), &tenant)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing left to lift");

    // A device type: its devices only.
    let (status, body) = suspend(
        "/api/deviceType/camera/suspension".into(),
        tenant.clone(),
        json!({"reason": "recalled camera model"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(telemetry(&s, "CAMERA1").await.0, StatusCode::FORBIDDEN);
    assert_eq!(telemetry(&s, "METER1").await.0, StatusCode::OK);
    s.delete("/api/deviceType/camera/suspension", &tenant).await;
    assert_eq!(telemetry(&s, "CAMERA1").await.0, StatusCode::OK);

    // A whole tenant, by the system administrator: every device of it, no other tenant's.
    let mut connected = v5::connected(&s, "camera-1", "CAMERA1").await;
    let (status, body) = suspend(
        format!("/api/tenant/{tenant_id}/suspension"),
        sysadmin.clone(),
        json!({"reason": "unpaid invoices"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(dropped(&mut connected).await, "AdministrativeAction");
    assert_eq!(telemetry(&s, "METER1").await.0, StatusCode::FORBIDDEN);
    assert_eq!(telemetry(&s, "CAMERA1").await.0, StatusCode::FORBIDDEN);
    assert_eq!(telemetry(&s, "ELSEWHERE1").await.0, StatusCode::OK);
    let (_, list) = s.get("/api/suspensions", &sysadmin).await;
    assert_eq!(list[0]["kind"], "TENANT", "{list}");
    drop(s);
}

/// Suspensions are kept across restarts.
#[tokio::test]
async fn a_suspension_outlives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::start_in(&data, &[]);
    let tenant = s.sign_up("restart@example.test").await;
    let device = s.device_with_token(&tenant, "Pump", "PUMP1").await;
    let (status, _) = s
        .post(
            &format!("/api/device/{device}/suspension"),
            &tenant,
            json!({"reason": "leaking"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    s.stop();
    let s = Server::start_in(&data, &[]);
    assert_eq!(telemetry(&s, "PUMP1").await.0, StatusCode::FORBIDDEN);
}
