//! What the bench binaries share: starting Thingsafe and mosquitto as real processes,
//! creating devices, and reading a process's CPU time and memory from /proc.
#![allow(dead_code)]

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use serde_json::{Value, json};

/// A server process, killed when dropped.
pub struct Server(pub Child);

impl Server {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct Thingsafe {
    pub server: Server,
    pub base: String,
    pub mqtt: SocketAddr,
    /// MQTT over TLS, and the certificate to trust for it.
    pub mqtts: Option<SocketAddr>,
    pub tls_cert: Option<std::path::PathBuf>,
    /// A tenant administrator's access token.
    pub token: String,
    pub rest: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// Starts the release binary on ephemeral ports with a fresh data directory and signs up a
/// tenant.
pub async fn start_thingsafe(env: &[(&str, &str)]) -> Thingsafe {
    // reqwest is built without a TLS provider of its own.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_thingsafe"));
    command
        .args(["serve", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("THINGSAFE_HTTP_ADDR", "127.0.0.1:0")
        .env("THINGSAFE_MQTT_ADDR", "127.0.0.1:0")
        .env("THINGSAFE_HTTP_TLS_ADDR", "127.0.0.1:0")
        .env("THINGSAFE_MQTT_TLS_ADDR", "127.0.0.1:0")
        .env("THINGSAFE_LOG_LEVEL", "warn,thingsafe=info")
        // One load generator opens thousands of connections from one address; the device
        // rate limits stay at their defaults, so their cost is measured.
        .env("THINGSAFE_LIMITS_MQTT_CONNECTS_PER_SECOND", "0")
        .stderr(Stdio::piped())
        .stdout(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    // Profiling the server's heap: heaptrack's raw output for the server process only
    // (read it with `heaptrack_interpret < FILE | gzip > FILE.gz; heaptrack_print FILE.gz`).
    if let Ok(raw) = std::env::var("BENCH_SERVER_HEAPTRACK") {
        command
            .env("LD_PRELOAD", "/usr/lib/heaptrack/libheaptrack_preload.so")
            .env("DUMP_HEAPTRACK_OUTPUT", raw);
    }
    let mut child = command.spawn().expect("start thingsafe");
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let server = Server(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The listeners are announced with the HTTP API's line last.
    let (mut mqtt, mut mqtts, mut tls_cert) = (None, None, None);
    let http = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("thingsafe reports its addresses");
        if let Some(a) = line.split("MQTT listening on mqtt://").nth(1) {
            mqtt = Some(a.trim().parse::<SocketAddr>().unwrap());
        }
        if let Some(a) = line.split("MQTT over TLS listening on mqtts://").nth(1) {
            mqtts = Some(a.trim().parse::<SocketAddr>().unwrap());
        }
        if let Some(rest) = line.split("TLS certificate: ").nth(1) {
            tls_cert = rest.split(" (").next().map(std::path::PathBuf::from);
        }
        if let Some(a) = line.split("HTTP API listening on http://").nth(1) {
            break a.split_whitespace().next().unwrap().to_string();
        }
    };
    let base = format!("http://{http}");
    let rest = reqwest::Client::new();
    let mut signup = json!({"email": "bench@example.com", "password": "bench password 1", "birthDate": "1990-01-01"});
    // Sign-up asks for the policy version accepted, where the server has one.
    if let Ok(resp) = rest.get(format!("{base}/api/privacy/policy")).send().await
        && resp.status().is_success()
        && let Ok(policy) = resp.json::<Value>().await
    {
        signup["acceptedPolicyVersion"] = policy["version"].clone();
    }
    let answer: Value = rest
        .post(format!("{base}/api/noauth/signup"))
        .json(&signup)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = answer["token"].as_str().expect("signed up").to_string();
    Thingsafe {
        server,
        base,
        mqtt: mqtt.expect("plain MQTT is on"),
        mqtts,
        tls_cert,
        token,
        rest,
        _dir: dir,
    }
}

impl Thingsafe {
    /// Creates devices `bench-{i}` with access tokens `bench{i}`, a few requests at a time.
    pub async fn create_devices(&self, count: usize) -> Vec<String> {
        let mut ids = vec![String::new(); count];
        for chunk in (0..count).collect::<Vec<_>>().chunks(16) {
            let requests = chunk.iter().map(|&i| {
                let request = self
                    .rest
                    .post(format!("{}/api/device?accessToken=bench{i}", self.base))
                    .header("X-Authorization", format!("Bearer {}", self.token))
                    .json(&json!({"name": format!("bench-{i}")}))
                    .send();
                async move {
                    let device: Value = request.await.unwrap().json().await.unwrap();
                    (
                        i,
                        device["id"]["id"]
                            .as_str()
                            .expect("device created")
                            .to_string(),
                    )
                }
            });
            for (i, id) in futures_util::future::join_all(requests).await {
                ids[i] = id;
            }
        }
        ids
    }
}

/// mosquitto on an ephemeral port, persistence off; `None` (with a SKIP line) when it is
/// not installed.
pub async fn start_mosquitto() -> Option<(Server, SocketAddr, tempfile::TempDir)> {
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
    std::fs::write(
        &config,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_connections -1\nmax_inflight_messages 20\nmax_queued_messages 100000\n"),
    )
    .unwrap();
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
    Some((server, format!("127.0.0.1:{port}").parse().unwrap(), dir))
}

/// CPU seconds (user + system) process `pid` has used so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may contain spaces.
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

/// Resident memory of process `pid`, in bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

pub const PAYLOAD: &str = r#"{"temperature_celsius":21.53,"relative_humidity_pct":40.12,"barometric_pressure_hpa":1013.25}"#;
pub const WARMUP: Duration = Duration::from_secs(2);

pub struct Load {
    pub acknowledged: u64,
    pub seconds: f64,
    /// Messages the subscriber received in the measured window (mosquitto only).
    pub delivered: Option<u64>,
    /// CPU seconds (user + system) the server process used in the measured window.
    pub server_cpu: f64,
}

/// Publishes from `devices` connections to `addr` for `duration` (after a warm-up) and counts
/// PUBACKs in the measured window. `login(i)` gives device i's username and topic. With
/// `subscribe`, each device first subscribes to that filter at QoS 1 (as ThingsBoard's SDKs
/// subscribe to shared-attribute updates on connecting).
#[allow(clippy::too_many_arguments)]
pub async fn publish_load(
    addr: std::net::SocketAddr,
    tls_ca: Option<&[u8]>,
    devices: usize,
    duration: Duration,
    login: impl Fn(usize) -> (String, String),
    delivered: Option<Arc<AtomicU64>>,
    server_pid: u32,
    subscribe: Option<&str>,
) -> Load {
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(AtomicU64::new(0));
    let connected = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(devices);
    for i in 0..devices {
        let (username, topic) = login(i);
        let mut options = match tls_ca {
            None => MqttOptions::new(format!("bench-{i}"), addr.ip().to_string(), addr.port()),
            Some(ca) => {
                let mut options = MqttOptions::new(format!("bench-{i}"), "localhost", addr.port());
                options.set_transport(rumqttc::Transport::tls_with_config(
                    rumqttc::TlsConfiguration::Simple {
                        ca: ca.to_vec(),
                        alpn: None,
                        client_auth: None,
                    },
                ));
                options
            }
        };
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
        let subscribe = subscribe.map(str::to_string);
        tasks.push(tokio::spawn(async move {
            let publisher = {
                let stop = stop.clone();
                tokio::spawn(async move {
                    if let Some(filter) = subscribe {
                        let _ = client.subscribe(filter, QoS::AtLeastOnce).await;
                    }
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
