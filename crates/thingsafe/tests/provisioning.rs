//! ThingsBoard's device provisioning and claiming through the real binary: rumqttc (MQTT
//! 3.1.1 and 5), reqwest, and (when installed) ThingsBoard's own Python SDK.

mod common;

use std::path::Path;
use std::time::Duration;

use common::Server;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);
const SECRET_A: &str = "prov-secret-A-7f3e9c1d";
const SECRET_P: &str = "prov-secret-P-2b8a6e4f";
const KEY_A: &str = "prov-key-A-51c0d9";
const KEY_P: &str = "prov-key-P-93e7aa";

/// MQTT 3.1.1.
mod v3 {
    use super::*;
    pub use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};

    pub struct Client {
        pub client: AsyncClient,
        pub events: EventLoop,
    }

    pub async fn connect(s: &Server, id: &str, user: &str) -> Client {
        let mut options = MqttOptions::new(id, "127.0.0.1", s.mqtt_addr.port());
        options.set_credentials(user, "anything");
        let (client, mut events) = AsyncClient::new(options, 16);
        match tokio::time::timeout(WAIT, events.poll()).await.unwrap() {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success)
            }
            other => panic!("expected a CONNACK, got {other:?}"),
        }
        Client { client, events }
    }

    impl Client {
        /// The next packet `f` picks; `Err` with the error when the connection ends first.
        pub async fn until<T>(
            &mut self,
            mut f: impl FnMut(&Packet) -> Option<T>,
        ) -> Result<T, String> {
            loop {
                match tokio::time::timeout(WAIT, self.events.poll()).await {
                    Err(_) => panic!("nothing within {WAIT:?}"),
                    Ok(Ok(Event::Incoming(p))) => {
                        if let Some(t) = f(&p) {
                            return Ok(t);
                        }
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(e.to_string()),
                }
            }
        }

        pub async fn provision(&mut self, request: Value) -> Value {
            self.client
                .subscribe("/provision/response", QoS::AtLeastOnce)
                .await
                .unwrap();
            self.client
                .publish(
                    "/provision/request",
                    QoS::AtLeastOnce,
                    false,
                    request.to_string(),
                )
                .await
                .unwrap();
            self.until(|p| match p {
                Packet::Publish(p) if p.topic == "/provision/response" => {
                    Some(serde_json::from_slice(&p.payload).unwrap())
                }
                _ => None,
            })
            .await
            .unwrap()
        }

        /// Publishes at QoS 1 and waits for the PUBACK.
        pub async fn publish(&mut self, topic: &str, payload: Value) -> Result<(), String> {
            self.client
                .publish(topic, QoS::AtLeastOnce, false, payload.to_string())
                .await
                .unwrap();
            self.until(|p| matches!(p, Packet::PubAck(_)).then_some(()))
                .await
        }
    }
}

/// MQTT 5.
mod v5 {
    use super::*;
    pub use rumqttc::v5::mqttbytes::QoS;
    pub use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason, SubscribeReasonCode};
    pub use rumqttc::v5::{
        AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, StateError,
    };

    pub struct Client {
        pub client: AsyncClient,
        pub events: EventLoop,
    }

    pub async fn connect(s: &Server, id: &str, user: &str) -> Client {
        let mut options = MqttOptions::new(id, "127.0.0.1", s.mqtt_addr.port());
        options.set_credentials(user, "");
        let (client, mut events) = AsyncClient::new(options, 16);
        match tokio::time::timeout(WAIT, events.poll()).await.unwrap() {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {}
            other => panic!("expected a CONNACK, got {other:?}"),
        }
        Client { client, events }
    }

    impl Client {
        pub async fn until<T>(&mut self, mut f: impl FnMut(&Packet) -> Option<T>) -> T {
            self.until_or(|p| f(p), |e| panic!("connection ended: {e}"))
                .await
        }

        /// Like `until`; `g` picks from what ends the event loop (refusals, in rumqttc).
        pub async fn until_or<T>(
            &mut self,
            mut f: impl FnMut(&Packet) -> Option<T>,
            g: impl Fn(ConnectionError) -> T,
        ) -> T {
            loop {
                match tokio::time::timeout(WAIT, self.events.poll()).await {
                    Err(_) => panic!("nothing within {WAIT:?}"),
                    Ok(Ok(Event::Incoming(p))) => {
                        if let Some(t) = f(&p) {
                            return t;
                        }
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return g(e),
                }
            }
        }

        pub async fn provision(&mut self, request: Value) -> Value {
            self.client
                .subscribe("/provision/response", QoS::AtLeastOnce)
                .await
                .unwrap();
            self.client
                .publish(
                    "/provision/request",
                    QoS::AtLeastOnce,
                    false,
                    request.to_string(),
                )
                .await
                .unwrap();
            self.until(|p| match p {
                Packet::Publish(p) if p.topic == "/provision/response" => {
                    Some(serde_json::from_slice(&p.payload).unwrap())
                }
                _ => None,
            })
            .await
        }

        pub async fn puback(&mut self, topic: &str, payload: &str) -> PubAckReason {
            self.client
                .publish(topic, QoS::AtLeastOnce, false, payload.to_string())
                .await
                .unwrap();
            self.until_or(
                |p| match p {
                    Packet::PubAck(a) => Some(a.reason),
                    _ => None,
                },
                |e| match e {
                    ConnectionError::MqttState(StateError::PubAckFail { reason }) => reason,
                    other => panic!("connection ended: {other}"),
                },
            )
            .await
        }

        pub async fn suback(&mut self, filter: &str) -> SubscribeReasonCode {
            self.client
                .subscribe(filter, QoS::AtLeastOnce)
                .await
                .unwrap();
            self.until_or(
                |p| match p {
                    Packet::SubAck(a) => Some(a.return_codes[0]),
                    _ => None,
                },
                |e| match e {
                    ConnectionError::MqttState(StateError::SubFail { reason }) => reason,
                    other => panic!("connection ended: {other}"),
                },
            )
            .await
        }
    }
}

async fn create_profile(s: &Server, user: &str, body: Value) -> (StatusCode, Value) {
    s.post("/api/deviceProfile", user, body).await
}

async fn device_named(s: &Server, user: &str, name: &str) -> Option<Value> {
    let (status, page) = s
        .get("/api/tenant/devices?pageSize=1000&page=0", user)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .cloned()
}

fn assert_absent(dir: &Path, needles: &[&str]) {
    fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut all = Vec::new();
    files(dir, &mut all);
    assert!(all.iter().any(|f| f.ends_with("thingsafe.db")));
    for file in all {
        let bytes = std::fs::read(&file).unwrap();
        for needle in needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle:?} found in plaintext in {}",
                file.display()
            );
        }
    }
}

#[tokio::test]
async fn devices_provision_themselves_over_mqtt_and_http() {
    let s = Server::start();
    let admin = s.sign_up("owner@alpha.test").await;
    let other = s.sign_up("owner@bravo.test").await;

    // Profiles: one that creates devices, one for pre-provisioned devices.
    let (status, a) = create_profile(&s, &admin, json!({"name": "Thermostats", "provisionType": "ALLOW_CREATE_NEW_DEVICES", "provisionDeviceKey": KEY_A, "provisionDeviceSecret": SECRET_A})).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(a["provisionType"], "ALLOW_CREATE_NEW_DEVICES");
    let a_id = a["id"]["id"].as_str().unwrap().to_string();
    let (status, p) = create_profile(&s, &admin, json!({"name": "Meters", "profileData": {"provisionConfiguration": {"type": "CHECK_PRE_PROVISIONED_DEVICES", "provisionDeviceKey": KEY_P, "provisionDeviceSecret": SECRET_P}}})).await;
    assert_eq!(status, StatusCode::OK, "{p}");
    let p_id = p["id"]["id"].as_str().unwrap().to_string();
    let (status, got) = s.get(&format!("/api/deviceProfile/{a_id}"), &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        got["profileData"]["provisionConfiguration"]["provisionDeviceSecret"],
        SECRET_A
    );
    let (_, list) = s
        .get("/api/deviceProfiles?pageSize=10&page=0", &admin)
        .await;
    assert_eq!(list["totalElements"], 2, "{list}");
    // Keys are unique across the installation; another tenant sees none of these.
    let (status, e) = create_profile(&s, &other, json!({"name": "Mine", "provisionType": "ALLOW_CREATE_NEW_DEVICES", "provisionDeviceKey": KEY_A, "provisionDeviceSecret": "x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("provisionDeviceKey")
    );
    let (status, _) = s.get(&format!("/api/deviceProfile/{a_id}"), &other).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = s
        .get("/api/deviceProfiles?pageSize=10&page=0", &other)
        .await;
    assert_eq!(list["totalElements"], 0);
    let (status, e) = create_profile(
        &s,
        &admin,
        json!({"name": "No key", "provisionType": "ALLOW_CREATE_NEW_DEVICES"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");

    // A pre-provisioned device of the profile; another tenant cannot use the profile.
    let (status, pre) = s
        .post("/api/device", &admin, json!({"name": "Meter 1", "deviceProfileId": {"entityType": "DEVICE_PROFILE", "id": p_id}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{pre}");
    assert_eq!(pre["deviceProfileId"]["id"], p_id.as_str());
    let pre_id = pre["id"]["id"].as_str().unwrap().to_string();
    let (status, _) = s
        .post("/api/device", &other, json!({"name": "Sneaky", "deviceProfileId": {"entityType": "DEVICE_PROFILE", "id": p_id}}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(device_named(&s, &other, "Sneaky").await.is_none());

    // MQTT 3.1.1: ALLOW_CREATE_NEW_DEVICES creates the device in the profile's tenant.
    let mut c = v3::connect(&s, "prov3", "provision").await;
    let ok = c
        .provision(json!({"deviceName": "Thermostat 1", "provisionDeviceKey": KEY_A, "provisionDeviceSecret": SECRET_A}))
        .await;
    assert_eq!(ok["status"], "SUCCESS", "{ok}");
    assert_eq!(ok["credentialsType"], "ACCESS_TOKEN");
    let token = ok["credentialsValue"].as_str().unwrap().to_string();
    let again = c
        .provision(json!({"deviceName": "Thermostat 1", "provisionDeviceKey": KEY_A, "provisionDeviceSecret": SECRET_A}))
        .await;
    assert_eq!(
        again,
        json!({"status": "FAILURE", "errorMsg": "Failed to provision device!"})
    );
    for (key, secret) in [
        (KEY_A, "wrong"),
        ("wrong", SECRET_A),
        (KEY_A, SECRET_P),
        ("", ""),
    ] {
        let r = c
            .provision(json!({"deviceName": "X", "provisionDeviceKey": key, "provisionDeviceSecret": secret}))
            .await;
        assert_eq!(
            r,
            json!({"status": "NOT_FOUND", "errorMsg": "Provision data was not found!"})
        );
    }
    // The provision user publishes nowhere else: MQTT 3.1.1 closes the connection.
    let refused = c.publish("v1/devices/me/telemetry", json!({"t": 1})).await;
    assert!(refused.is_err(), "{refused:?}");

    // MQTT 5: CHECK_PRE_PROVISIONED_DEVICES hands out the device's credentials once.
    let mut c = v5::connect(&s, "prov5", "provision").await;
    let ok = c
        .provision(json!({"deviceName": "Meter 1", "provisionDeviceKey": KEY_P, "provisionDeviceSecret": SECRET_P}))
        .await;
    assert_eq!(ok["status"], "SUCCESS", "{ok}");
    let (_, creds) = s
        .get(&format!("/api/device/{pre_id}/credentials"), &admin)
        .await;
    assert_eq!(ok["credentialsValue"], creds["credentialsId"]);
    for name in ["Meter 1", "Meter 2"] {
        let r = c
            .provision(json!({"deviceName": name, "provisionDeviceKey": KEY_P, "provisionDeviceSecret": SECRET_P}))
            .await;
        assert_eq!(r["status"], "FAILURE", "{name}: {r}");
    }
    assert_eq!(
        c.puback("v1/devices/me/telemetry", "{\"t\":1}").await,
        v5::PubAckReason::NotAuthorized
    );
    assert_eq!(
        c.suback("v1/devices/me/attributes").await,
        v5::SubscribeReasonCode::NotAuthorized
    );
    assert_eq!(
        c.puback("/provision/request", "not json").await,
        v5::PubAckReason::PayloadFormatInvalid
    );

    // HTTP, with the device's own token.
    let (status, r) = s
        .call(Method::POST, "/api/v1/provision", None, Some(json!({"deviceName": "Thermostat 2", "provisionDeviceKey": KEY_A, "provisionDeviceSecret": SECRET_A, "credentialsType": "ACCESS_TOKEN", "token": "HTTPPROV1"})))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        r,
        json!({"status": "SUCCESS", "credentialsType": "ACCESS_TOKEN", "credentialsValue": "HTTPPROV1"})
    );
    let (_, r) = s
        .call(
            Method::POST,
            "/api/v1/provision",
            None,
            Some(json!({"provisionDeviceKey": KEY_A, "provisionDeviceSecret": "nope"})),
        )
        .await;
    assert_eq!(r["status"], "NOT_FOUND");

    // The provisioned token connects like any device; its data reads back over REST.
    let mut d = v3::connect(&s, "thermo1", &token).await;
    d.publish("v1/devices/me/telemetry", json!({"temperature": 21.5}))
        .await
        .unwrap();
    let dev = device_named(&s, &admin, "Thermostat 1").await.unwrap();
    assert_eq!(dev["type"], "Thermostats");
    let id = dev["id"]["id"].as_str().unwrap();
    let (_, ts) = s
        .get(
            &format!("/api/plugins/telemetry/DEVICE/{id}/values/timeseries?keys=temperature"),
            &admin,
        )
        .await;
    assert_eq!(ts["temperature"][0]["value"], "21.5", "{ts}");
    let (status, _) = s
        .call(
            Method::POST,
            "/api/v1/HTTPPROV1/telemetry",
            None,
            Some(json!({"humidity": 40})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Another tenant is unaffected.
    let (_, theirs) = s
        .get("/api/tenant/devices?pageSize=100&page=0", &other)
        .await;
    assert_eq!(theirs["totalElements"], 0, "{theirs}");

    // No key or secret in plaintext anywhere under the data directory.
    assert_absent(&s.data_dir, &[SECRET_A, SECRET_P, KEY_A, KEY_P]);
}

#[tokio::test]
async fn customers_claim_devices_within_the_window_with_the_right_key() {
    let s = Server::start();
    let admin = s.sign_up("owner@claim.test").await;
    let other = s.sign_up("owner@other.test").await;
    let kim = s.customer_user(&admin, "kim@home.test").await.0;
    let lee = s.customer_user(&admin, "lee@office.test").await.0;
    let outsider = s.customer_user(&other, "out@other.test").await.0;
    for (name, token) in [("Lamp", "CLAIMLAMP"), ("Kettle", "CLAIMKETTLE")] {
        let (status, _) = s
            .call(
                Method::POST,
                &format!("/api/device?accessToken={token}"),
                Some(&admin),
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }

    // No window yet: failure (ThingsBoard answers 400 "FAILURE").
    assert_eq!(
        s.claim_device(&kim, "Lamp", "k1").await,
        (StatusCode::BAD_REQUEST, json!("FAILURE"))
    );
    // MQTT 5: the device opens its window; a wrong key fails and closes it.
    let mut lamp = v5::connect(&s, "lamp", "CLAIMLAMP").await;
    assert_eq!(
        lamp.puback(
            "v1/devices/me/claim",
            "{\"secretKey\":\"k1\",\"durationMs\":60000}"
        )
        .await,
        v5::PubAckReason::Success
    );
    assert_eq!(
        s.claim_device(&kim, "Lamp", "wrong").await.1,
        json!("FAILURE")
    );
    assert_eq!(
        s.claim_device(&kim, "Lamp", "k1").await.1,
        json!("FAILURE"),
        "the window closed"
    );
    lamp.puback(
        "v1/devices/me/claim",
        "{\"secretKey\":\"k1\",\"durationMs\":60000}",
    )
    .await;
    // Another tenant's customer does not find it; a tenant admin does not claim.
    assert_eq!(
        s.claim_device(&outsider, "Lamp", "k1").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.claim_device(&admin, "Lamp", "k1").await.0,
        StatusCode::FORBIDDEN
    );
    let (status, ok) = s.claim_device(&kim, "Lamp", "k1").await;
    assert_eq!(status, StatusCode::OK, "{ok}");
    assert_eq!(ok["response"], "SUCCESS");
    assert_eq!(ok["device"]["name"], "Lamp");
    let lamp_id = ok["device"]["id"]["id"].as_str().unwrap().to_string();
    let (status, _) = s.get(&format!("/api/device/{lamp_id}"), &kim).await;
    assert_eq!(status, StatusCode::OK, "Kim's customer owns it now");
    // Claimed already.
    assert_eq!(
        s.claim_device(&lee, "Lamp", "k1").await,
        (
            StatusCode::BAD_REQUEST,
            json!({"device": null, "response": "CLAIMED"})
        )
    );
    // Lee cannot reclaim Kim's device; Kim can, and the device is the tenant's again.
    let (status, _) = s.delete("/api/customer/device/Lamp/claim", &lee).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s.delete("/api/customer/device/Lamp/claim", &kim).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s.get(&format!("/api/device/{lamp_id}"), &kim).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // HTTP, with an empty body (empty key, default duration): an empty key claims it.
    let (status, _) = s
        .call(Method::POST, "/api/v1/CLAIMKETTLE/claim", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        s.claim_device(&lee, "Kettle", "").await.1["response"],
        "SUCCESS"
    );
    let (status, _) = s.delete("/api/customer/device/Kettle/claim", &admin).await;
    assert_eq!(status, StatusCode::OK);

    // After expiry: failure.
    let (status, _) = s
        .call(
            Method::POST,
            "/api/v1/CLAIMKETTLE/claim",
            None,
            Some(json!({"secretKey": "s", "durationMs": 300})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        s.claim_device(&lee, "Kettle", "s").await.1,
        json!("FAILURE")
    );
    // MQTT 3.1.1 too, and a malformed claim is refused.
    let mut kettle = v3::connect(&s, "kettle", "CLAIMKETTLE").await;
    kettle
        .publish("v1/devices/me/claim", json!({"secretKey": "s3"}))
        .await
        .unwrap();
    assert_eq!(
        s.claim_device(&lee, "Kettle", "s3").await.1["response"],
        "SUCCESS"
    );
    let (status, _) = s
        .call(
            Method::POST,
            "/api/v1/CLAIMKETTLE/claim",
            None,
            Some(json!({"durationMs": "soon"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

fn python_with_sdk() -> Option<String> {
    let python = std::env::var("THINGSAFE_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = std::process::Command::new(&python)
        .args(["-c", "import tb_device_mqtt"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(python)
}

#[tokio::test]
async fn thingsboards_python_sdk_provisions_a_device() {
    let Some(python) = python_with_sdk() else {
        let message = "SKIP: tb-mqtt-client not installed for python3 (pip install tb-mqtt-client)";
        if std::env::var("THINGSAFE_REQUIRE_ALL").as_deref() == Ok("1") {
            panic!("{message}");
        }
        eprintln!("{message}");
        return;
    };
    let s = Server::start();
    let admin = s.sign_up("sdk@prov.test").await;
    let (status, _) = create_profile(&s, &admin, json!({"name": "SDK", "provisionType": "ALLOW_CREATE_NEW_DEVICES", "provisionDeviceKey": "sdk-key", "provisionDeviceSecret": "sdk-secret"})).await;
    assert_eq!(status, StatusCode::OK);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/tb_sdk_provision.py"
    );
    let port = s.mqtt_addr.port().to_string();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&python)
            .args([
                script,
                "127.0.0.1",
                &port,
                "sdk-key",
                "sdk-secret",
                "SDK device",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{e}: {stdout} {}", String::from_utf8_lossy(&output.stderr)));
    assert_eq!(report["credentials"]["status"], "SUCCESS", "{report}");
    assert_eq!(report["telemetry_rc"], report["success_code"], "{report}");
    let dev = device_named(&s, &admin, "SDK device").await.unwrap();
    let id = dev["id"]["id"].as_str().unwrap();
    let (_, ts) = s
        .get(
            &format!("/api/plugins/telemetry/DEVICE/{id}/values/timeseries?keys=provisioned"),
            &admin,
        )
        .await;
    assert_eq!(ts["provisioned"][0]["value"], "true", "{ts}");
}

#[tokio::test]
async fn every_device_shows_its_profile_the_tenants_default_one_unless_put_in_another() {
    let s = Server::start();
    let admin = s.sign_up("profiles-shown@example.com").await;
    let other = s.sign_up("profiles-shown-other@example.com").await;
    let plain = s.create_device(&admin, "Plain").await;
    let (status, device) = s.get(&format!("/api/device/{plain}"), &admin).await;
    assert_eq!(status, StatusCode::OK);
    let default_id = device["deviceProfileId"]["id"].as_str().unwrap().to_owned();
    assert_eq!(device["deviceProfileId"]["entityType"], "DEVICE_PROFILE");
    // The same default for every device of the tenant, on every read and in lists.
    let second = s.create_device(&admin, "Second").await;
    let (_, list) = s
        .get("/api/tenant/devices?pageSize=10&page=0", &admin)
        .await;
    for d in list["data"].as_array().unwrap() {
        assert_eq!(d["deviceProfileId"]["id"], default_id.as_str(), "{d}");
    }
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    let (_, again) = s.get(&format!("/api/device/{second}"), &admin).await;
    assert_eq!(again["deviceProfileId"]["id"], default_id.as_str());
    // It reads as ThingsBoard's default profile, for its tenant only.
    let (status, profile) = s
        .get(&format!("/api/deviceProfile/{default_id}"), &admin)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(profile["name"], "default");
    assert_eq!(profile["default"], true);
    assert_eq!(profile["provisionType"], "DISABLED");
    let (status, _) = s
        .get(&format!("/api/deviceProfile/{default_id}"), &other)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let other_device = s.create_device(&other, "Theirs").await;
    let (_, theirs) = s.get(&format!("/api/device/{other_device}"), &other).await;
    assert_ne!(theirs["deviceProfileId"]["id"], default_id.as_str());
    // Put in another profile, a device shows that one; naming the default is no profile.
    let (_, p) = create_profile(&s, &admin, json!({"name": "Meters"})).await;
    let p_id = p["id"]["id"].as_str().unwrap();
    assert_eq!(p["default"], false);
    let (_, meter) = s
        .post("/api/device", &admin, json!({"name": "Meter", "deviceProfileId": {"entityType": "DEVICE_PROFILE", "id": p_id}}))
        .await;
    let (_, meter) = s
        .get(
            &format!("/api/device/{}", meter["id"]["id"].as_str().unwrap()),
            &admin,
        )
        .await;
    assert_eq!(meter["deviceProfileId"]["id"], p_id);
    let (status, explicit) = s
        .post("/api/device", &admin, json!({"name": "Explicit", "deviceProfileId": {"entityType": "DEVICE_PROFILE", "id": default_id}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{explicit}");
    assert_eq!(explicit["deviceProfileId"]["id"], default_id.as_str());
}
