//! Latency from an MQTT publish to the value appearing on a WebSocket subscription
//! (ThingsBoard's `/api/ws` protocol): one device publishes QoS 1 telemetry at a steady
//! rate, each value a sequence number; a WebSocket client subscribed to the device gets
//! each update; latency is the time from handing the PUBLISH to the client library to
//! receiving the update (one process, one clock). Measured idle, and with N other devices
//! publishing as fast as they can.
//!
//! ```sh
//! cargo bench -p thingsafe --bench ws_latency -- [background devices] [seconds]
//! ```

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const RATE_PER_SECOND: u64 = 200;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let background: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(500);
    let seconds: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let t = common::start_thingsafe(&[]).await;
        let ids = t.create_devices(background + 1).await;
        // Device 0 is the one watched; the others make the background load.
        println!("| load | samples | p50 | p99 | max |");
        println!("|---|---|---|---|---|");
        let idle = measure(&t, &ids[0], Duration::from_secs(seconds)).await;
        print_row("idle", &idle);
        let load = {
            let mqtt = t.mqtt;
            let pid = t.server.pid();
            tokio::spawn(async move {
                common::publish_load(
                    mqtt,
                    None,
                    background + 1,
                    Duration::from_secs(seconds + 4),
                    |i| {
                        (
                            format!("bench{}", i.max(1)),
                            "v1/devices/me/telemetry".into(),
                        )
                    },
                    None,
                    pid,
                    None,
                )
                .await
            })
        };
        tokio::time::sleep(common::WARMUP + Duration::from_secs(1)).await;
        let busy = measure(&t, &ids[0], Duration::from_secs(seconds)).await;
        let background_rate = load.await.unwrap();
        print_row(
            &format!(
                "{background} devices publishing, {:.0} msg/s",
                background_rate.acknowledged as f64 / background_rate.seconds
            ),
            &busy,
        );
    });
}

fn print_row(load: &str, samples: &[Duration]) {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let at = |q: f64| {
        sorted
            .get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "| {load} | {} | {:.2} ms | {:.2} ms | {:.2} ms |",
        sorted.len(),
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        sorted.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
}

/// Publishes sequence numbers from device `bench0` and times their arrival on a WebSocket.
async fn measure(t: &common::Thingsafe, device: &str, duration: Duration) -> Vec<Duration> {
    let url = format!("{}/api/ws", t.base.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::text(
        json!({
            "authCmd": {"cmdId": 0, "token": t.token},
            "cmds": [{"cmdId": 1, "type": "TIMESERIES", "entityType": "DEVICE", "entityId": device, "keys": "seq"}]
        })
        .to_string(),
    ))
    .await
    .unwrap();
    let _initial = ws.next().await;
    let sent: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let mut options = MqttOptions::new("latency-probe", t.mqtt.ip().to_string(), t.mqtt.port());
    options.set_credentials("bench0", "");
    let (client, mut events) = AsyncClient::new(options, 64);
    let driver = tokio::spawn(async move { while events.poll().await.is_ok() {} });
    let publisher = {
        let sent = sent.clone();
        tokio::spawn(async move {
            let mut tick =
                tokio::time::interval(Duration::from_micros(1_000_000 / RATE_PER_SECOND));
            let end = Instant::now() + duration;
            let mut seq = 0u64;
            while Instant::now() < end {
                tick.tick().await;
                seq += 1;
                sent.lock().unwrap().insert(seq, Instant::now());
                let body = json!({ "seq": seq }).to_string();
                client
                    .publish("v1/devices/me/telemetry", QoS::AtLeastOnce, false, body)
                    .await
                    .unwrap();
            }
            seq
        })
    };
    let mut samples = Vec::new();
    let deadline = Instant::now() + duration + Duration::from_secs(3);
    while let Ok(Some(Ok(Message::Text(text)))) =
        tokio::time::timeout_at(deadline.into(), ws.next()).await
    {
        let arrived = Instant::now();
        let update: Value = serde_json::from_str(&text).unwrap();
        for point in update["data"]["seq"].as_array().into_iter().flatten() {
            if let Some(seq) = point[1].as_str().and_then(|s| s.parse::<u64>().ok())
                && let Some(at) = sent.lock().unwrap().remove(&seq)
            {
                samples.push(arrived - at);
            }
        }
    }
    let published = publisher.await.unwrap();
    driver.abort();
    eprintln!(
        "  {} of {published} published values arrived on the WebSocket",
        samples.len()
    );
    samples
}
