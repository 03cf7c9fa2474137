//! Memory per idle MQTT connection: N devices connect (keep-alive 60 s) and stay idle; the
//! server's resident memory after they connected, less before, divided by N. Thingsafe
//! beside mosquitto, in one run.
//!
//! ```sh
//! cargo bench -p thingsafe --bench mqtt_idle -- [connections]    # default 10000
//! ```

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet};

fn main() {
    let connections: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let max = (connections + 100).to_string();
        let t = common::start_thingsafe(&[("THINGSAFE_MQTT_MAX_CONNECTIONS", &max)]).await;
        eprintln!("creating {connections} devices...");
        t.create_devices(connections).await;
        eprintln!("Thingsafe:");
        let ours = idle(t.mqtt, t.server.pid(), connections, |i| {
            Some(format!("bench{i}"))
        })
        .await;
        drop(t);
        let theirs = match common::start_mosquitto().await {
            Some((server, addr, _dir)) => {
                eprintln!("mosquitto:");
                Some(idle(addr, server.pid(), connections, |_| None).await)
            }
            None => None,
        };
        println!();
        println!("| server | idle connections | resident memory before | after | per connection |");
        println!("|---|---|---|---|---|");
        let row = |name: &str, (before, after): (u64, u64)| {
            println!(
                "| {name} | {connections} | {:.1} MiB | {:.1} MiB | {:.1} KiB |",
                before as f64 / 1048576.0,
                after as f64 / 1048576.0,
                after.saturating_sub(before) as f64 / 1024.0 / connections as f64
            )
        };
        row("Thingsafe", ours);
        match theirs {
            Some(m) => row("mosquitto 2 (persistence off)", m),
            None => println!("| mosquitto | SKIP: not installed | | | |"),
        }
    });
}

/// Connects `n` idle clients; returns the server's resident memory before and after.
async fn idle(
    addr: SocketAddr,
    pid: u32,
    n: usize,
    user: impl Fn(usize) -> Option<String>,
) -> (u64, u64) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = common::rss_bytes(pid);
    let connected = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let mut options = MqttOptions::new(format!("idle-{i}"), addr.ip().to_string(), addr.port());
        options.set_keep_alive(Duration::from_secs(60));
        if let Some(u) = user(i) {
            options.set_credentials(u, "");
        }
        let (client, mut events) = AsyncClient::new(options, 1);
        let connected = connected.clone();
        tasks.push(tokio::spawn(async move {
            let _client = client;
            while let Ok(event) = events.poll().await {
                if let Event::Incoming(Packet::ConnAck(_)) = event {
                    connected.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
        // Waves, so that the listen backlog is not overrun.
        if i % 500 == 499 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let started = Instant::now();
    while connected.load(Ordering::Relaxed) < n && started.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("  {} of {n} connected", connected.load(Ordering::Relaxed));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = common::rss_bytes(pid);
    for t in tasks {
        t.abort();
    }
    (before, after)
}
