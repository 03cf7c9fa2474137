//! End-to-end MQTT ingest, side by side in one run: acknowledged QoS 1 telemetry messages per
//! second from N devices (one connection each, ~100-byte JSON with 3 values, one message in
//! flight per device) into Thingsafe, where each PUBACK means the message is durably
//! stored, and into mosquitto (persistence off) relaying the same load to one subscriber.
//!
//! ```sh
//! cargo bench -p thingsafe --bench mqtt_load -- [devices] [seconds]
//! ```
//! Needs `mosquitto` on PATH for the comparison (Debian package `mosquitto`);
//! `SKIP_MOSQUITTO=1` measures Thingsafe alone (for quick before/after runs).

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};

const PAYLOAD: &str = r#"{"temperature_celsius":21.53,"relative_humidity_pct":40.12,"barometric_pressure_hpa":1013.25}"#;
const WARMUP: Duration = Duration::from_secs(2);

struct Load {
    acknowledged: u64,
    seconds: f64,
    /// Messages the subscriber received in the measured window (mosquitto only).
    delivered: Option<u64>,
    /// CPU seconds (user + system) the server process used in the measured window.
    server_cpu: f64,
}

/// CPU seconds (user + system) process `pid` has used so far, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| {
        f.iter().filter_map(|t| t.parse::<f64>().ok()).sum()
    });
    let hz = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0);
    ticks / hz
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let devices: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let seconds: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        eprintln!("{devices} devices, {PAYLOAD:?} ({} bytes), QoS 1, one message in flight each, {seconds} s after {WARMUP:?} warm-up", PAYLOAD.len());
        let thingsafe = thingsafe_run(devices, Duration::from_secs(seconds)).await;
        let mosquitto = mosquitto_run(devices, Duration::from_secs(seconds)).await;
        println!();
        println!("| server | acknowledged msg/s | delivered to the subscriber msg/s | server CPU µs per message | server cores busy | durable before PUBACK |");
        println!("|---|---|---|---|---|---|");
        let rate = |l: &Load| l.acknowledged as f64 / l.seconds;
        let cost = |l: &Load| 1e6 * l.server_cpu / l.acknowledged.max(1) as f64;
        let cores = |l: &Load| l.server_cpu / l.seconds;
        println!("| Thingsafe | {:.0} | (stored; no subscriber) | {:.1} | {:.2} | yes (SQLite WAL, synchronous=FULL) |", rate(&thingsafe), cost(&thingsafe), cores(&thingsafe));
        match &mosquitto {
            Some(m) => {
                let delivered = m.delivered.unwrap_or(0) as f64 / m.seconds;
                println!("| mosquitto 2 (persistence off, 1 QoS 1 subscriber) | {:.0} | {delivered:.0} | {:.1} | {:.2} | no |", rate(m), cost(m), cores(m));
                println!("\nThingsafe / mosquitto, acknowledged = {:.2}; Thingsafe stored / mosquitto delivered = {:.2}", rate(&thingsafe) / rate(m), rate(&thingsafe) / delivered);
            }
            None => println!("| mosquitto | SKIP: mosquitto not installed (apt-get install mosquitto) | | | | |"),
        }
    });
}

/// Publishes from `devices` connections to `addr` for `duration` (after a warm-up) and counts
/// PUBACKs in the measured window. `login(i)` gives device i's username and topic.
async fn publish_load(
    addr: std::net::SocketAddr,
    devices: usize,
    duration: Duration,
    login: impl Fn(usize) -> (String, String),
    delivered: Option<Arc<AtomicU64>>,
    server_pid: u32,
) -> Load {
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(AtomicU64::new(0));
    let connected = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(devices);
    for i in 0..devices {
        let (username, topic) = login(i);
        let mut options =
            MqttOptions::new(format!("bench-{i}"), addr.ip().to_string(), addr.port());
        options.set_credentials(username, "");
        options.set_keep_alive(Duration::from_secs(60));
        options.set_inflight(1);
        let (client, mut events) = AsyncClient::new(options, 4);
        let (counting, stop, acknowledged, connected) = (
            counting.clone(),
            stop.clone(),
            acknowledged.clone(),
            connected.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let publisher = {
                let stop = stop.clone();
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        if client
                            .publish(
                                topic.clone(),
                                QoS::AtLeastOnce,
                                false,
                                PAYLOAD.as_bytes().to_vec(),
                            )
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                    let _ = client.disconnect().await;
                })
            };
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        connected.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        if counting.load(Ordering::Relaxed) {
                            acknowledged.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if !stop.load(Ordering::Relaxed) {
                            eprintln!("device {i}: {e}");
                        }
                        break;
                    }
                }
                if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
            publisher.abort();
        }));
    }
    tokio::time::sleep(WARMUP).await;
    eprintln!(
        "  {} of {devices} connected",
        connected.load(Ordering::Relaxed)
    );
    counting.store(true, Ordering::Relaxed);
    let delivered_before = delivered.as_ref().map(|d| d.load(Ordering::Relaxed));
    let cpu_before = cpu_seconds(server_pid);
    let started = Instant::now();
    let mut last = 0;
    while started.elapsed() < duration {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = acknowledged.load(Ordering::Relaxed);
        eprintln!("  {:>8} acknowledged msg/s", now - last);
        last = now;
    }
    counting.store(false, Ordering::Relaxed);
    let server_cpu = cpu_seconds(server_pid) - cpu_before;
    let delivered = delivered
        .zip(delivered_before)
        .map(|(d, before)| d.load(Ordering::Relaxed) - before);
    let seconds = started.elapsed().as_secs_f64();
    let total = acknowledged.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    Load {
        acknowledged: total,
        seconds,
        delivered,
        server_cpu,
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn thingsafe_run(devices: usize, duration: Duration) -> Load {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_thingsafe"))
        .args(["serve", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("THINGSAFE_HTTP_ADDR", "127.0.0.1:0")
        .env("THINGSAFE_MQTT_ADDR", "127.0.0.1:0")
        .env("THINGSAFE_LOG_LEVEL", "warn,thingsafe=info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start thingsafe");
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let server = Server(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut http, mut mqtt) = (None, None);
    while http.is_none() || mqtt.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("thingsafe reports its addresses");
        if let Some(a) = line.split("HTTP API listening on http://").nth(1) {
            http = Some(a.trim().to_string());
        }
        if let Some(a) = line.split("MQTT listening on mqtt://").nth(1) {
            mqtt = Some(a.trim().parse::<std::net::SocketAddr>().unwrap());
        }
    }
    let base = format!("http://{}", http.unwrap());
    let rest = reqwest::Client::new();
    let signup: Value = rest
        .post(format!("{base}/api/noauth/signup"))
        .json(&json!({"email": "bench@example.com", "password": "bench password 1", "birthDate": "1990-01-01"}))
        .send().await.unwrap().json().await.unwrap();
    let token = signup["token"].as_str().unwrap().to_string();
    for i in 0..devices {
        let resp = rest
            .post(format!("{base}/api/device?accessToken=bench{i}"))
            .header("X-Authorization", format!("Bearer {token}"))
            .json(&json!({"name": format!("bench-{i}")}))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
    }
    eprintln!("Thingsafe (MQTT on {}):", mqtt.unwrap());
    let login = |i: usize| (format!("bench{i}"), "v1/devices/me/telemetry".into());
    let load = publish_load(mqtt.unwrap(), devices, duration, login, None, server.0.id()).await;
    drop(server);
    load
}

async fn mosquitto_run(devices: usize, duration: Duration) -> Option<Load> {
    if std::env::var("SKIP_MOSQUITTO").is_ok() {
        return None;
    }
    if Command::new("mosquitto")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("SKIP: mosquitto not installed (apt-get install mosquitto)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("mosquitto.conf");
    std::fs::write(&config, format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_connections -1\nmax_inflight_messages 20\nmax_queued_messages 100000\n")).unwrap();
    let server = Server(
        Command::new("mosquitto")
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    // One subscriber receives everything at QoS 1.
    let mut options = MqttOptions::new("bench-subscriber", "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(60));
    let (subscriber, mut events) = AsyncClient::new(options, 100);
    subscriber
        .subscribe("bench/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let sub_task = tokio::spawn(async move {
        while let Ok(event) = events.poll().await {
            if let Event::Incoming(Packet::Publish(_)) = event {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    eprintln!("mosquitto (port {port}, persistence off, one subscriber):");
    let login = |i: usize| (format!("bench{i}"), format!("bench/{i}"));
    let load = publish_load(
        addr,
        devices,
        duration,
        login,
        Some(received.clone()),
        server.0.id(),
    )
    .await;
    eprintln!(
        "  the subscriber received {} messages in all",
        received.load(Ordering::Relaxed)
    );
    sub_task.abort();
    drop(server);
    Some(load)
}
