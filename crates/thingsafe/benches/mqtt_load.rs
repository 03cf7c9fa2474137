//! End-to-end MQTT ingest, side by side in one run: acknowledged QoS 1 telemetry messages per
//! second from N devices (one connection each, ~100-byte JSON with 3 values, one message in
//! flight per device) into Thingsafe, where each PUBACK means the message is durably
//! stored, and into mosquitto (persistence off) relaying the same load to one subscriber.
//!
//! ```sh
//! cargo bench -p thingsafe --bench mqtt_load -- [devices] [seconds] [--tls]
//! ```
//! `--tls` also runs the same load into Thingsafe's MQTT over TLS listener (rumqttc over
//! rustls, TLS 1.3), right after the plain run on the same server. `--subscribed` has every
//! Thingsafe device subscribe to `v1/devices/me/attributes` first, as ThingsBoard's SDKs do.
//! Needs `mosquitto` on PATH for the comparison (Debian package `mosquitto`);
//! `SKIP_MOSQUITTO=1` measures Thingsafe alone (for quick before/after runs).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

mod common;

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
        eprintln!("{devices} devices, {:?} ({} bytes), QoS 1, one message in flight each, {seconds} s after {:?} warm-up", common::PAYLOAD, common::PAYLOAD.len(), common::WARMUP);
        let tls = std::env::args().any(|a| a == "--tls");
        let thingsafe = thingsafe_runs(devices, Duration::from_secs(seconds), tls).await;
        let mosquitto = mosquitto_run(devices, Duration::from_secs(seconds)).await;
        println!();
        println!("| server | acknowledged msg/s | delivered to the subscriber msg/s | server CPU µs per message | server cores busy | durable before PUBACK |");
        println!("|---|---|---|---|---|---|");
        let rate = |l: &common::Load| l.acknowledged as f64 / l.seconds;
        let cost = |l: &common::Load| 1e6 * l.server_cpu / l.acknowledged.max(1) as f64;
        let cores = |l: &common::Load| l.server_cpu / l.seconds;
        for (name, run) in &thingsafe {
            println!("| {name} | {:.0} | (stored; no subscriber) | {:.1} | {:.2} | yes (SQLite WAL, synchronous=FULL) |", rate(run), cost(run), cores(run));
        }
        let thingsafe = &thingsafe[0].1;
        match &mosquitto {
            Some(m) => {
                let delivered = m.delivered.unwrap_or(0) as f64 / m.seconds;
                println!("| mosquitto 2 (persistence off, 1 QoS 1 subscriber) | {:.0} | {delivered:.0} | {:.1} | {:.2} | no |", rate(m), cost(m), cores(m));
                println!("\nThingsafe / mosquitto, acknowledged = {:.2}; Thingsafe stored / mosquitto delivered = {:.2}", rate(thingsafe) / rate(m), rate(thingsafe) / delivered);
            }
            None => println!("| mosquitto | SKIP: mosquitto not installed (apt-get install mosquitto) | | | | |"),
        }
    });
}

/// The plain run, then (with `tls`) the TLS run on the same server.
async fn thingsafe_runs(
    devices: usize,
    duration: Duration,
    tls: bool,
) -> Vec<(&'static str, common::Load)> {
    let t = common::start_thingsafe(&[]).await;
    t.create_devices(devices).await;
    eprintln!("Thingsafe (MQTT on {}):", t.mqtt);
    let login = |i: usize| (format!("bench{i}"), "v1/devices/me/telemetry".into());
    let pid = t.server.pid();
    // `--subscribed`: every device also subscribes to its shared-attribute updates.
    let subscribe = std::env::args()
        .any(|a| a == "--subscribed")
        .then_some("v1/devices/me/attributes");
    let plain =
        common::publish_load(t.mqtt, None, devices, duration, login, None, pid, subscribe).await;
    let mut runs = vec![("Thingsafe", plain)];
    if tls {
        let addr = t.mqtts.expect("MQTT over TLS is on");
        let ca = std::fs::read(t.tls_cert.as_ref().expect("a certificate")).unwrap();
        eprintln!("Thingsafe (MQTT over TLS on {addr}):");
        let load = common::publish_load(
            addr,
            Some(&ca),
            devices,
            duration,
            login,
            None,
            pid,
            subscribe,
        )
        .await;
        runs.push(("Thingsafe, MQTT over TLS 1.3", load));
    }
    runs
}

async fn mosquitto_run(devices: usize, duration: Duration) -> Option<common::Load> {
    if std::env::var("SKIP_MOSQUITTO").is_ok() {
        return None;
    }
    let (server, addr, _dir) = common::start_mosquitto().await?;
    let port = addr.port();

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
    let load = common::publish_load(
        addr,
        None,
        devices,
        duration,
        login,
        Some(received.clone()),
        server.pid(),
        None,
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
