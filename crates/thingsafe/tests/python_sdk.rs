//! ThingsBoard's own Python SDK (`tb-mqtt-client` from PyPI), unmodified, against Thingsafe:
//! telemetry, attributes, attribute requests, shared-attribute updates and server-side RPC.
//! Needs `python3` with `tb-mqtt-client` installed (`pip install tb-mqtt-client`), or
//! `THINGSAFE_PYTHON` naming such an interpreter.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::Server;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn python_with_sdk() -> Option<String> {
    let python = std::env::var("THINGSAFE_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import tb_device_mqtt"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(python)
}

#[tokio::test]
async fn thingsboards_python_sdk_works_unchanged() {
    let Some(python) = python_with_sdk() else {
        let message = "SKIP: tb-mqtt-client not installed for python3 (pip install tb-mqtt-client)";
        if std::env::var("THINGSAFE_REQUIRE_ALL").as_deref() == Ok("1") {
            panic!("{message}");
        }
        eprintln!("{message}");
        return;
    };
    let s = Server::start();
    let user = s.sign_up("sdk@example.com").await;
    let id = s.device_with_token(&user, "SDK device", "SDKTOKEN1").await;
    let (_, _) = s
        .post(
            &format!("/api/plugins/telemetry/DEVICE/{id}/attributes/SHARED_SCOPE"),
            &user,
            json!({"target": 20}),
        )
        .await;

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/tb_sdk_device.py");
    let mqtt = s.mqtt_addr;
    let mut device = Command::new(&python)
        .args([
            script,
            &mqtt.ip().to_string(),
            &mqtt.port().to_string(),
            "SDKTOKEN1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(device.stdout.take().unwrap()).lines();
    let ready = tokio::task::spawn_blocking(move || {
        let first = lines.next();
        (first, lines)
    });
    let (first, mut lines) = tokio::time::timeout(std::time::Duration::from_secs(60), ready)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.map(|l| l.unwrap()).as_deref(), Some("READY"));

    // A shared attribute update and a two-way RPC, while the SDK device is connected.
    let (status, _) = s
        .post(
            &format!("/api/plugins/telemetry/DEVICE/{id}/attributes/SHARED_SCOPE"),
            &user,
            json!({"target": 23}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = s
        .post(
            &format!("/api/rpc/twoway/{id}"),
            &user,
            json!({"method": "setLight", "params": {"on": true}, "timeout": 20000}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer,
        json!({"handledBy": "tb-mqtt-client", "echo": {"on": true}})
    );

    let report = tokio::task::spawn_blocking(move || lines.next())
        .await
        .unwrap();
    let output = device.wait_with_output().unwrap();
    let report: Value = serde_json::from_str(&report.expect("a report line").unwrap())
        .unwrap_or_else(|e| panic!("{e}; stderr: {}", String::from_utf8_lossy(&output.stderr)));
    assert_eq!(report["connected"], true, "{report}");
    let success = &report["success_code"];
    assert_eq!(&report["telemetry_rc"], success, "{report}");
    assert_eq!(&report["telemetry_ts_rc"], success, "{report}");
    assert_eq!(&report["attributes_rc"], success, "{report}");
    assert_eq!(
        report["attribute_response"],
        json!({"client": {"firmware": "1.0.3"}}),
        "{report}"
    );
    assert_eq!(report["shared_update"], json!({"target": 23}), "{report}");
    assert_eq!(report["rpc"]["method"], "setLight");
    assert_eq!(
        report["session_limits"]["maxPayloadSize"], 65536,
        "{report}"
    );

    // What the SDK sent is stored.
    let (_, latest) = s
        .get(
            &format!(
                "/api/plugins/telemetry/DEVICE/{id}/values/timeseries?keys=temperature,humidity"
            ),
            &user,
        )
        .await;
    assert_eq!(latest["humidity"][0]["value"], "40", "{latest}");
    let (_, history) = s
        .get(&format!("/api/plugins/telemetry/DEVICE/{id}/values/timeseries?keys=temperature&startTs=0&endTs=9999999999999&orderBy=ASC"), &user)
        .await;
    assert_eq!(
        history["temperature"][0],
        json!({"ts": 1700000000000i64, "value": "19.0"}),
        "{history}"
    );
    let (_, attrs) = s
        .get(
            &format!("/api/plugins/telemetry/DEVICE/{id}/values/attributes/CLIENT_SCOPE"),
            &user,
        )
        .await;
    let keys: Vec<&str> = attrs
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, vec!["firmware", "model"]);
}
