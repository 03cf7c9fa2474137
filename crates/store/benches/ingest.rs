//! Store ingest throughput: many devices, each awaiting the durable commit of its message
//! before sending the next (as a QoS 1 client with one message in flight does).
//!
//! `cargo bench -p thingsafe-store --bench ingest -- [devices] [seconds]`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use thingsafe_core::payload::{Point, Value};
use thingsafe_core::{Authority, DeviceCredentials};
use thingsafe_store::sqlite::SqliteStore;
use thingsafe_store::{NewDevice, NewUser, Scope, Store};
use thingsafe_vault::{MasterKey, Vault};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let devices: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let seconds: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(devices, Duration::from_secs(seconds)));
}

async fn run(devices: usize, duration: Duration) {
    let dir = tempfile::tempdir().unwrap();
    let (master, _) = MasterKey::load_or_create(dir.path(), None).unwrap();
    let vault = Arc::new(Vault::open(dir.path(), master).unwrap());
    let store = Arc::new(SqliteStore::open(dir.path(), vault).unwrap());
    let (tenant, _) = store
        .sign_up(
            "Bench",
            NewUser {
                email: "bench@example.com".into(),
                password_hash: None,
                authority: Authority::TenantAdmin,
                customer_id: None,
                first_name: None,
                last_name: None,
                birth_date: None,
            },
        )
        .await
        .unwrap();
    let scope = Scope::Tenant(tenant.id);
    let mut all = Vec::with_capacity(devices);
    for i in 0..devices {
        let d = NewDevice {
            name: format!("device-{i}"),
            device_type: "bench".into(),
            label: None,
            credentials: DeviceCredentials::AccessToken(format!("token-{i}")),
        };
        all.push(store.create_device(&scope, d).await.unwrap());
    }
    eprintln!(
        "{devices} devices; each sends 3-value messages for {duration:?}, awaiting each commit"
    );
    let messages = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for device in all {
        let store = store.clone();
        let messages = messages.clone();
        tasks.push(tokio::spawn(async move {
            let mut ts = 1_700_000_000_000i64;
            while Instant::now() < deadline {
                ts += 1;
                let points = vec![
                    Point {
                        ts,
                        key: "temperature".into(),
                        value: Value::Double(21.5),
                    },
                    Point {
                        ts,
                        key: "humidity".into(),
                        value: Value::Long(40),
                    },
                    Point {
                        ts,
                        key: "status".into(),
                        value: Value::String("ok".into()),
                    },
                ];
                store.append_telemetry(&device, points).await.unwrap();
                messages.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let progress = {
        let messages = messages.clone();
        tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = messages.load(Ordering::Relaxed);
                eprintln!("  {:>8} msg/s", now - last);
                last = now;
            }
        })
    };
    for t in tasks {
        t.await.unwrap();
    }
    progress.abort();
    let elapsed = started.elapsed().as_secs_f64();
    let total = messages.load(Ordering::Relaxed);
    println!(
        "store ingest: {total} messages in {elapsed:.1} s = {:.0} acknowledged msg/s ({:.0} points/s), {devices} devices",
        total as f64 / elapsed,
        3.0 * total as f64 / elapsed
    );
}
