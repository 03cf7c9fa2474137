//! Fault drills: the server and a running backup are killed with SIGKILL while devices
//! publish QoS 1 telemetry; the database fills up. Bounded in time and count.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{PASSWORD, Server};
use reqwest::StatusCode;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::json;

const DEVICES: usize = 10;
const MAX_MESSAGES: i64 = 3_000;

fn integrity(data: &Path) -> String {
    let db = rusqlite::Connection::open(data.join("thingsafe.db")).unwrap();
    db.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

/// A device publishing numbered QoS 1 messages, one in flight; records what was PUBACKed.
fn publisher(
    addr: std::net::SocketAddr,
    token: String,
    acked: Arc<Mutex<Vec<i64>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut options = MqttOptions::new(token.clone(), addr.ip().to_string(), addr.port());
        options.set_credentials(token, "");
        options.set_inflight(1);
        let (client, mut events) = AsyncClient::new(options, 4);
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
        for seq in 1..=MAX_MESSAGES {
            let body = json!({"ts": seq, "values": {"seq": seq}}).to_string();
            if client
                .publish("v1/devices/me/telemetry", QoS::AtLeastOnce, false, body)
                .await
                .is_err()
            {
                break;
            }
            match tokio::time::timeout(Duration::from_secs(3), acks.recv()).await {
                Ok(Some(())) => acked.lock().unwrap().push(seq),
                _ => break,
            }
        }
        poller.abort();
    })
}

fn partials(dir: &Path) -> Vec<std::path::PathBuf> {
    common::files_ending(dir, ".partial")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_a_backup_under_mqtt_load_loses_nothing_acknowledged_and_leaves_no_good_looking_backup()
 {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let backups = dir.path().join("bk");
    let s = Server::start_in(&data, &[("THINGSAFE_BACKUP_SCHEDULE", "off")]);
    let user = s.sign_up("drill@example.com").await;
    let mut ids = Vec::new();
    for d in 0..DEVICES {
        ids.push(
            s.device_with_token(&user, &format!("Drill {d}"), &format!("DRILL{d}"))
                .await,
        );
    }
    let acked: Vec<Arc<Mutex<Vec<i64>>>> = (0..DEVICES).map(|_| Arc::default()).collect();
    let devices: Vec<_> = (0..DEVICES)
        .map(|d| publisher(s.mqtt_addr, format!("DRILL{d}"), acked[d].clone()))
        .collect();
    let total =
        |a: &[Arc<Mutex<Vec<i64>>>]| a.iter().map(|v| v.lock().unwrap().len()).sum::<usize>();
    let started = Instant::now();
    while total(&acked) < 500 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A backup starts under the load; both it and the server die mid-way.
    let out = backups.join("drill.tsbackup");
    let mut caught = false;
    for _ in 0..20 {
        let mut backup = Command::new(common::binary())
            .args(["backup", "--out", out.to_str().unwrap(), "--data-dir"])
            .arg(&data)
            .env_remove("THINGSAFE_MASTER_KEY")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !partials(&backups).is_empty() {
                let _ = backup.kill(); // SIGKILL
                caught = true;
                break;
            }
            if backup.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let _ = backup.wait();
        if caught {
            break;
        }
        let _ = std::fs::remove_file(&out); // finished before it could be caught: again
    }
    assert!(caught, "never caught a backup mid-way in 20 tries");
    drop(s); // SIGKILL the server too, while devices publish.
    for d in devices {
        d.await.unwrap();
    }
    let acknowledged: Vec<Vec<i64>> = acked.iter().map(|a| a.lock().unwrap().clone()).collect();
    let count: usize = acknowledged.iter().map(Vec::len).sum();
    assert!(count > 100, "the load ran: {count}");
    assert_eq!(integrity(&data), "ok");

    // The interrupted backup is nothing but a partial file: not a backup, not restorable.
    assert!(!out.exists(), "the interrupted backup has no final name");
    let left = partials(&backups);
    assert!(!left.is_empty());
    let list = Command::new(common::binary())
        .args(["backup", "--list", "--data-dir"])
        .arg(&data)
        .env("THINGSAFE_BACKUP_DIR", &backups)
        .env_remove("THINGSAFE_MASTER_KEY")
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(
        !listing.contains("opens with this installation"),
        "{listing}"
    );
    for p in &left {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if let Some(line) = listing.lines().find(|l| l.contains(&name)) {
            assert!(line.contains("INCOMPLETE"), "{listing}");
        }
        let restore = Command::new(common::binary())
            .args(["restore", p.to_str().unwrap(), "--data-dir"])
            .arg(&data)
            .env_remove("THINGSAFE_MASTER_KEY")
            .output()
            .unwrap();
        assert!(!restore.status.success(), "{name} was restored");
    }

    // After a restart every acknowledged message is there.
    let s = Server::start_in(&data, &[("THINGSAFE_BACKUP_SCHEDULE", "off")]);
    let (status, pair) = s.login("drill@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let token = pair["token"].as_str().unwrap();
    for (d, seqs) in acknowledged.iter().enumerate() {
        let stored = s
            .timeseries(
                token,
                &ids[d],
                "keys=seq&startTs=0&endTs=100000&limit=100000&orderBy=ASC",
            )
            .await;
        let stored: std::collections::HashSet<i64> = stored["seq"]
            .as_array()
            .map(|a| a.iter().map(|p| p["ts"].as_i64().unwrap()).collect())
            .unwrap_or_default();
        let lost: Vec<_> = seqs.iter().filter(|q| !stored.contains(q)).collect();
        assert!(
            lost.is_empty(),
            "device {d}: {} acknowledged messages lost",
            lost.len()
        );
    }
    eprintln!(
        "backup drill: {count} acknowledged QoS 1 messages from {DEVICES} devices, all present after SIGKILL of the server and of a backup mid-way"
    );
}

/// The database reaches its size limit (`store.max_size_mib`, SQLITE_FULL as on a full
/// disk): devices get HTTP 507 and no PUBACK, the error is logged, nothing acknowledged is
/// lost, and writes succeed again once space returns (a device's data is deleted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_database_refuses_writes_clearly_loses_nothing_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let limit = [
        ("THINGSAFE_STORE_MAX_SIZE_MIB", "2"),
        ("THINGSAFE_BACKUP_SCHEDULE", "off"),
    ];
    let s = Server::start_in(&data, &limit);
    let user = s.sign_up("full@example.com").await;
    let kept = s.device_with_token(&user, "Kept", "KEPTTOKEN").await;
    let filler = s.device_with_token(&user, "Filler", "FILLTOKEN").await;
    let post = |token: &str, body: String| {
        s.http
            .post(s.url(&format!("/api/v1/{token}/telemetry")))
            .body(body)
            .send()
    };
    let mut acked = Vec::new();
    for ts in 1..=20 {
        let r = post(
            "KEPTTOKEN",
            json!({"ts": ts, "values": {"t": ts}}).to_string(),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        acked.push(ts);
    }
    // Fill: incompressible 8 KiB strings until the store says it is full.
    let mut full = None;
    for i in 0..2_000 {
        let noise: String = (0..8192)
            .map(|j| char::from(b'a' + ((i * 7919 + j * 104729) % 26) as u8))
            .collect();
        let r = post(
            "FILLTOKEN",
            json!({"ts": i, "values": {"blob": noise}}).to_string(),
        )
        .await
        .unwrap();
        if r.status() != StatusCode::OK {
            full = Some((r.status(), r.text().await.unwrap()));
            break;
        }
    }
    let (status, body) = full.expect("the database never filled up");
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{body}");
    assert!(body.contains("storage is full"), "{body}");
    // Small points may still fit in the last pages; they are acknowledged until those fill.
    let mut refused = false;
    for ts in 1_000..3_000 {
        let r = post(
            "KEPTTOKEN",
            json!({"ts": ts, "values": {"t": ts}}).to_string(),
        )
        .await
        .unwrap();
        match r.status() {
            StatusCode::OK => acked.push(ts),
            StatusCode::INSUFFICIENT_STORAGE => {
                refused = true;
                break;
            }
            other => panic!("{other}: {}", r.text().await.unwrap()),
        }
    }
    assert!(refused, "small writes were never refused");

    // MQTT QoS 1: no PUBACK while full.
    let got_puback = |token: &'static str, ts: i64| {
        let addr = s.mqtt_addr;
        async move {
            let mut options =
                MqttOptions::new(format!("{token}-{ts}"), addr.ip().to_string(), addr.port());
            options.set_credentials(token, "");
            let (client, mut events) = AsyncClient::new(options, 4);
            client
                .publish(
                    "v1/devices/me/telemetry",
                    QoS::AtLeastOnce,
                    false,
                    json!({"ts": ts, "values": {"t": ts}}).to_string(),
                )
                .await
                .unwrap();
            let wait = tokio::time::timeout(Duration::from_secs(3), async {
                loop {
                    match events.poll().await {
                        Ok(Event::Incoming(Packet::PubAck(_))) => return true,
                        Ok(_) => {}
                        Err(_) => return false,
                    }
                }
            })
            .await;
            matches!(wait, Ok(true))
        }
    };
    assert!(
        !got_puback("KEPTTOKEN", 3500).await,
        "a PUBACK while the store is full"
    );
    let log = s.drain_output().join("\n");
    assert!(log.contains("storage is full"), "not logged: {log}");

    // What was acknowledged is readable while full.
    let points = s
        .timeseries(&user, &kept, "keys=t&startTs=0&endTs=5000&limit=5000")
        .await;
    assert_eq!(points["t"].as_array().unwrap().len(), acked.len());

    // Space returns: the filler's data goes; writes succeed again, by themselves.
    let (status, _) = s.delete(&format!("/api/device/{filler}"), &user).await;
    assert_eq!(status, StatusCode::OK);
    let r = post(
        "KEPTTOKEN",
        json!({"ts": 4000, "values": {"t": 4000}}).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    acked.push(4000);
    assert!(
        got_puback("KEPTTOKEN", 4001).await,
        "no PUBACK after space returned"
    );
    acked.push(4001);
    drop(s);

    assert_eq!(integrity(&data), "ok");
    let s = Server::start_in(&data, &limit);
    let (_, pair) = s.login("full@example.com", PASSWORD).await;
    let points = s
        .timeseries(
            pair["token"].as_str().unwrap(),
            &kept,
            "keys=t&startTs=0&endTs=5000&limit=5000&orderBy=ASC",
        )
        .await;
    let stored: Vec<i64> = points["t"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["ts"].as_i64().unwrap())
        .collect();
    assert_eq!(stored, acked, "every acknowledged point, and only those");
}
