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
    let started = Instant::now();
    while started.elapsed() < LOAD_TIME
        && acknowledged
            .lock()
            .unwrap()
            .iter()
            .map(Vec::len)
            .sum::<usize>()
            < WRITERS * 1000
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
    let s = Server::start_in(&data, &[]);
    let (status, pair) = s.login("durable@example.com", common::PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let token = pair["token"].as_str().unwrap();
    for (w, seqs) in acknowledged.iter().enumerate() {
        let (status, stored) = s
            .get(&format!("/api/plugins/telemetry/DEVICE/{id}/values/timeseries?keys=w{w}&startTs=0&endTs=100000&limit=100000&orderBy=ASC"), token)
            .await;
        assert_eq!(status, StatusCode::OK);
        let stored: std::collections::HashSet<i64> = stored[format!("w{w}")]
            .as_array()
            .map(|a| a.iter().map(|p| p["ts"].as_i64().unwrap()).collect())
            .unwrap_or_default();
        let lost: Vec<&i64> = seqs.iter().filter(|s| !stored.contains(s)).collect();
        assert!(
            lost.is_empty(),
            "writer {w}: {} acknowledged points lost, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        );
    }
    eprintln!(
        "durability: {total} acknowledged messages from {WRITERS} writers, all present after SIGKILL"
    );
}
