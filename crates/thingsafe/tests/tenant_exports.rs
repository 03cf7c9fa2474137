//! A tenant administrator's copy of the whole tenant: downloaded at any time, or made on a
//! schedule they opt into and kept for them, sealed with the tenant's key (pruned to
//! `keep`, readable by no other tenant, gone with the tenant's erasure).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{PASSWORD, Server};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn download(s: &Server, token: &str, path: &str) -> (StatusCode, Vec<u8>) {
    let resp = s
        .http
        .get(s.url(path))
        .header("X-Authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.bytes().await.unwrap().to_vec())
}

fn kept_files(dir: &Path) -> Vec<PathBuf> {
    common::files_ending(dir, ".tsexport")
}

async fn wait_until<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "waited 30 s for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_downloads_its_data_and_its_scheduled_exports_are_kept_sealed_pruned_and_erased() {
    let s = Server::start_with(&[("THINGSAFE_BACKUP_TENANT_EXPORT_INTERVAL_SECONDS", "1")]);
    let admin = s.sign_up("farm.admin@example.test").await;
    let other = s.sign_up("other.tenant@example.test").await;
    let (_, me) = s.get("/api/auth/user", &admin).await;
    let tenant = me["tenantId"]["id"].as_str().unwrap().to_string();
    let device = s
        .device_with_token(&admin, "Barn thermometer", "BARNTOKEN1")
        .await;
    s.device_with_token(&other, "Other kiln", "KILNTOKEN1")
        .await;
    for (token, value) in [
        ("BARNTOKEN1", "alpha-reading"),
        ("KILNTOKEN1", "other-reading"),
    ] {
        s.post_telemetry(token, json!({"ts": 1000, "values": {"note": value}}))
            .await;
    }

    // At any time: the whole tenant as a zip, and nothing of another tenant.
    let (status, zip) = download(&s, &admin, "/api/privacy/tenant/export").await;
    assert_eq!(status, StatusCode::OK);
    let files = common::unzip(&zip);
    for name in [
        "README.txt",
        "tenant.json",
        "users.json",
        "users.csv",
        "customers.json",
        "devices.json",
        "processing.json",
    ] {
        assert!(
            files.contains_key(name),
            "{name} missing: {:?}",
            files.keys()
        );
    }
    assert!(files["users.csv"].contains("farm.admin@example.test"));
    assert!(files["devices.json"].contains("Barn thermometer"));
    assert!(files[&format!("telemetry/{device}.csv")].contains("alpha-reading"));
    let everything = format!("{files:?}");
    assert!(
        !everything.contains("1990-12-10"),
        "birth dates are not handed out"
    );
    assert!(!everything.contains("other.tenant") && !everything.contains("other-reading"));
    let (status, _) = download(&s, &other, "/api/privacy/tenant/export").await;
    assert_eq!(status, StatusCode::OK, "each tenant exports its own");

    // Opting in: bad choices are named; a good one makes exports that are kept.
    let (_, view) = s.get("/api/privacy/tenant/exports", &admin).await;
    assert_eq!(view["schedule"], "off");
    assert_eq!(view["exports"], json!([]));
    let put = |body: Value| {
        s.call(
            reqwest::Method::PUT,
            "/api/privacy/tenant/exports/schedule",
            Some(&admin),
            Some(body),
        )
    };
    let (status, body) = put(json!({"schedule": "hourly"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("\"daily\", \"weekly\" or \"off\""),
        "{body}"
    );
    let (status, body) = put(json!({"schedule": "daily", "keep": 0})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("between 1 and 30"),
        "{body}"
    );
    let (status, body) = put(json!({"schedule": "daily", "keep": 2})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["schedule"], "daily");

    let folder = s.data_dir.join("exports").join(&tenant);
    // Three good runs happened once a run was pruned away: only two kept, files and records.
    let view = wait_until("pruned scheduled exports", async || {
        let (_, view) = s.get("/api/privacy/tenant/exports", &admin).await;
        let log = s.drain_output().join("\n");
        let made = log.matches("tenant export made").count();
        (made > 0).then_some(())?;
        let ok = view["exports"]
            .as_array()?
            .iter()
            .filter(|e| e["status"] == "ok")
            .count();
        (ok == 2 && kept_files(&folder).len() == 2).then_some(view)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, view_later) = s.get("/api/privacy/tenant/exports", &admin).await;
    let ok: Vec<&Value> = view_later["exports"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["status"] == "ok")
        .collect();
    assert_eq!(ok.len(), 2, "pruned to keep = 2: {view_later:#}");
    assert_eq!(kept_files(&folder).len(), 2);
    assert_ne!(
        view["exports"][0]["id"], view_later["exports"][0]["id"],
        "runs go on"
    );

    // A kept export opens for its tenant only; on disk it is sealed.
    let newest = ok[0]["download"].as_str().unwrap().to_string();
    let (status, zip) = download(&s, &admin, &newest).await;
    assert_eq!(status, StatusCode::OK);
    let files = common::unzip(&zip);
    assert!(files[&format!("telemetry/{device}.csv")].contains("alpha-reading"));
    let (status, _) = download(&s, &other, &newest).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for file in kept_files(&folder) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            bytes.starts_with(b"THINGSAFE-OWNED1")
                && !bytes.windows(2).take(64).any(|w| w == b"PK"),
            "{} is a sealed file, not a zip",
            file.display()
        );
    }
    common::assert_absent_from_files(
        &s.data_dir,
        &["alpha-reading", "farm.admin", "Barn thermometer"],
    );

    // Opting out stops the runs.
    let (status, _) = put(json!({"schedule": "off"})).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, before) = s.get("/api/privacy/tenant/exports", &admin).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, after) = s.get("/api/privacy/tenant/exports", &admin).await;
    assert_eq!(
        before["exports"], after["exports"],
        "no run after opting out"
    );

    // The tenant's erasure takes the kept exports with it.
    let (status, receipt) = s
        .call(
            reqwest::Method::DELETE,
            "/api/privacy/me",
            Some(&admin),
            Some(json!({ "password": PASSWORD })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{receipt}");
    wait_until("the erased tenant's exports to go", async || {
        (!folder.exists()).then_some(())
    })
    .await;
}
