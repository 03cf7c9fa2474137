//! Nothing acknowledged is lost: devices write while the server is killed with SIGKILL.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Server;
use reqwest::{Method, StatusCode};
use serde_json::json;

const WRITERS: usize = 8;
/// Bounds of the load: it stops at whichever comes first.
const MAX_MESSAGES_PER_WRITER: i64 = 2_000;
const LOAD_TIME: Duration = Duration::from_millis(1500);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_load_loses_no_acknowledged_telemetry() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::start_in(&data, &[]);
    let user = s.sign_up("durable@example.com").await;
    let (status, dev) = s
        .call(
            Method::POST,
            "/api/device?accessToken=KILLTOKEN",
            Some(&user),
            Some(json!({"name": "Logger"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let id = dev["id"]["id"].as_str().unwrap().to_string();

    // Each writer sends numbered points of its own key and records what was acknowledged.
    let acknowledged: Arc<Mutex<Vec<Vec<i64>>>> = Arc::new(Mutex::new(vec![Vec::new(); WRITERS]));
    let url = s.url("/api/v1/KILLTOKEN/telemetry");
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let acknowledged = acknowledged.clone();
        let url = url.clone();
        writers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            for seq in 1..=MAX_MESSAGES_PER_WRITER {
                let body = json!({"ts": seq, "values": {format!("w{w}"): seq}}).to_string();
                match http.post(&url).body(body).send().await {
                    Ok(resp) if resp.status() == StatusCode::OK => {
                        acknowledged.lock().unwrap()[w].push(seq)
                    }
                    _ => break,
                }
            }
        }));
    }
    let total = kill_and_check(
        s,
        &data,
        "durable@example.com",
        acknowledged,
        WRITERS * 1000,
        writers,
        |w| (id.clone(), format!("w{w}")),
    )
    .await;
    eprintln!(
        "durability: {total} acknowledged messages from {WRITERS} writers, all present after SIGKILL"
    );
}

/// Lets the load run (for `LOAD_TIME`, or until `enough` acknowledgements), kills the
/// server with SIGKILL, checks the database's integrity, restarts it and checks that every
/// acknowledged point of every series is stored. `series(i)` names writer i's device id and
/// key. Returns how many messages were acknowledged.
async fn kill_and_check(
    s: Server,
    data: &std::path::Path,
    email: &str,
    acknowledged: Arc<Mutex<Vec<Vec<i64>>>>,
    enough: usize,
    writers: Vec<tokio::task::JoinHandle<()>>,
    series: impl Fn(usize) -> (String, String),
) -> usize {
    let started = Instant::now();
    while started.elapsed() < LOAD_TIME
        && acknowledged
            .lock()
            .unwrap()
            .iter()
            .map(Vec::len)
            .sum::<usize>()
            < enough
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(s); // SIGKILL, mid-stream.
    for w in writers {
        w.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let total: usize = acknowledged.iter().map(Vec::len).sum();
    assert!(total > 100, "the load ran: {total} acknowledged");

    // The database is intact...
    let db = rusqlite::Connection::open(data.join("thingsafe.db")).unwrap();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(db);

    // ...and after a restart every acknowledged point is there.
    let s = Server::start_in(data, &[]);
    let (status, pair) = s.login(email, common::PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let token = pair["token"].as_str().unwrap();
    for (i, seqs) in acknowledged.iter().enumerate() {
        let (device, key) = series(i);
        let (status, stored) = s
            .get(&format!("/api/plugins/telemetry/DEVICE/{device}/values/timeseries?keys={key}&startTs=0&endTs=100000&limit=100000&orderBy=ASC"), token)
            .await;
        assert_eq!(status, StatusCode::OK);
        let stored: std::collections::HashSet<i64> = stored[key.as_str()]
            .as_array()
            .map(|a| a.iter().map(|p| p["ts"].as_i64().unwrap()).collect())
            .unwrap_or_default();
        let lost: Vec<&i64> = seqs.iter().filter(|s| !stored.contains(s)).collect();
        assert!(
            lost.is_empty(),
            "writer {i} ({key}): {} acknowledged messages lost, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        );
    }
    total
}

const MQTT_DEVICES: usize = 20;

/// The same drill over MQTT: each device publishes numbered QoS 1 messages, one in flight,
/// and records each PUBACK; the server is killed mid-stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_mqtt_load_loses_no_acknowledged_message() {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::start_in(&data, &[]);
    let user = s.sign_up("mqtt-durable@example.com").await;
    let mut ids = Vec::new();
    for d in 0..MQTT_DEVICES {
        let (status, dev) = s
            .call(
                Method::POST,
                &format!("/api/device?accessToken=KILLMQTT{d}"),
                Some(&user),
                Some(json!({"name": format!("Logger {d}")})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        ids.push(dev["id"]["id"].as_str().unwrap().to_string());
    }

    let acknowledged: Arc<Mutex<Vec<Vec<i64>>>> =
        Arc::new(Mutex::new(vec![Vec::new(); MQTT_DEVICES]));
    let mut devices = Vec::new();
    for d in 0..MQTT_DEVICES {
        let mut options = MqttOptions::new(
            format!("logger-{d}"),
            s.mqtt_addr.ip().to_string(),
            s.mqtt_addr.port(),
        );
        options.set_credentials(format!("KILLMQTT{d}"), "");
        options.set_inflight(1);
        let (client, mut events) = AsyncClient::new(options, 4);
        let acknowledged = acknowledged.clone();
        devices.push(tokio::spawn(async move {
            // PUBACKs come back in the order of the publishes (one in flight): the k-th
            // PUBACK acknowledges message k.
            let (acks_tx, mut acks) = tokio::sync::mpsc::unbounded_channel();
            let poller = tokio::spawn(async move {
                while let Ok(event) = events.poll().await {
                    if let Event::Incoming(Packet::PubAck(_)) = event
                        && acks_tx.send(()).is_err()
                    {
                        break;
                    }
                }
            });
            for seq in 1..=MAX_MESSAGES_PER_WRITER {
                let body = json!({"ts": seq, "values": {"seq": seq}}).to_string();
                if client
                    .publish("v1/devices/me/telemetry", QoS::AtLeastOnce, false, body)
                    .await
                    .is_err()
                {
                    break;
                }
                match tokio::time::timeout(Duration::from_secs(5), acks.recv()).await {
                    Ok(Some(())) => acknowledged.lock().unwrap()[d].push(seq),
                    _ => break,
                }
            }
            poller.abort();
        }));
    }
    let total = kill_and_check(
        s,
        &data,
        "mqtt-durable@example.com",
        acknowledged,
        MQTT_DEVICES * 500,
        devices,
        |d| (ids[d].clone(), "seq".to_string()),
    )
    .await;
    eprintln!(
        "durability (MQTT): {total} acknowledged messages from {MQTT_DEVICES} devices, all present after SIGKILL"
    );
}
