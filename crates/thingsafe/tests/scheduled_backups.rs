//! Backups scheduled inside `thingsafe serve` (a short `backup.interval_seconds`, the key
//! meant for tests): recorded and visible to the system administrator only, pruned to
//! `backup.keep` after each good one, retried when they fail, and never at the cost of the
//! previous good backups.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{PASSWORD, Server};
use reqwest::StatusCode;
use serde_json::Value;

const ADMIN: &str = "sysadmin@example.com";

fn data_backups(dir: &Path) -> Vec<PathBuf> {
    common::files_ending(dir, ".tsbackup")
}

async fn runs(s: &Server, token: &str) -> Vec<Value> {
    let (status, body) = s.get("/api/admin/backups", token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().unwrap().clone()
}

/// Polls the record of runs until `done` holds (at most 30 s).
async fn wait_for_runs(
    s: &Server,
    token: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let r = runs(s, token).await;
        if done(&r) {
            return r;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "waited 30 s for {what}: {r:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn count(runs: &[Value], kind: &str, status: &str) -> usize {
    runs.iter()
        .filter(|r| r["kind"] == kind && r["status"] == status)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_backups_are_recorded_pruned_retried_and_never_lose_the_last_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let backups = dir.path().join("bk");
    let s = Server::start_in(
        &data,
        &[
            ("THINGSAFE_ADMIN_EMAIL", ADMIN),
            ("THINGSAFE_ADMIN_PASSWORD", PASSWORD),
            ("THINGSAFE_BACKUP_DIR", backups.to_str().unwrap()),
            ("THINGSAFE_BACKUP_INTERVAL_SECONDS", "1"),
            ("THINGSAFE_BACKUP_RETRY_DELAY_SECS", "1"),
            ("THINGSAFE_BACKUP_KEEP", "2"),
        ],
    );
    let (status, pair) = s.login(ADMIN, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    let admin = pair["token"].as_str().unwrap().to_string();

    // Only the system administrator sees the runs.
    let tenant_admin = s.sign_up("tenant@example.com").await;
    let (status, _) = s.get("/api/admin/backups", &tenant_admin).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = s
        .call(reqwest::Method::GET, "/api/admin/backups", None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Runs happen, each with a data and a key-store backup, recorded with their numbers.
    let r = wait_for_runs(&s, &admin, "3 good data backups", |r| {
        count(r, "data", "ok") >= 3
    })
    .await;
    assert!(count(&r, "keys", "ok") >= 2, "{r:#?}");
    for run in r.iter().filter(|r| r["status"] == "ok") {
        assert!(run["bytes"].as_u64().unwrap() > 0, "{run}");
        assert!(run["durationMs"].as_i64().unwrap() >= 0, "{run}");
        assert!(run["finishedTs"].as_i64().unwrap() >= run["startedTs"].as_i64().unwrap());
        assert!(
            Path::new(run["file"].as_str().unwrap()).starts_with(&backups),
            "{run}"
        );
    }
    // Pruned to backup.keep, newest kept.
    let kept = data_backups(&backups);
    assert_eq!(kept.len(), 2, "{kept:?}");
    let newest_ok = r
        .iter()
        .find(|r| r["kind"] == "data" && r["status"] == "ok")
        .unwrap();
    assert!(kept.contains(&PathBuf::from(newest_ok["file"].as_str().unwrap())));

    // The backup directory becomes unusable: runs fail, are recorded with the reason and
    // retried; the good backups made before stay.
    let good = dir.path().join("bk.good");
    std::fs::rename(&backups, &good).unwrap();
    std::fs::write(&backups, b"a file where the backup directory should be").unwrap();
    let good_before = data_backups(&good);
    assert_eq!(good_before.len(), 2, "{good_before:?}");
    let r = wait_for_runs(&s, &admin, "a retried failure", |r| {
        r.iter().any(|run| {
            run["kind"] == "data" && run["status"] == "failed" && run["attempt"].as_u64() >= Some(2)
        })
    })
    .await;
    let failed = r
        .iter()
        .find(|run| run["kind"] == "data" && run["status"] == "failed")
        .unwrap();
    assert!(failed["error"].as_str().unwrap().contains("bk"), "{failed}");
    assert!(failed["file"].is_null(), "{failed}");
    assert_eq!(
        data_backups(&good),
        good_before,
        "a failing run deleted nothing"
    );
    let name = |p: &PathBuf| p.file_name().unwrap().to_owned();
    let oldest = name(&good_before[0]);

    // Space returns: the next good run prunes to backup.keep again.
    let failures_before = count(&r, "data", "failed");
    let oks_before = count(&r, "data", "ok");
    std::fs::remove_file(&backups).unwrap();
    std::fs::rename(&good, &backups).unwrap();
    wait_for_runs(&s, &admin, "a good run after the failures", |r| {
        count(r, "data", "ok") >= oks_before + 2
    })
    .await;
    let now_kept = data_backups(&backups);
    assert_eq!(now_kept.len(), 2, "{now_kept:?}");
    assert!(
        !now_kept.iter().any(|p| name(p) == oldest),
        "the oldest was pruned after new good ones"
    );
    assert!(failures_before >= 2);

    // Logged too.
    let log = s.drain_output().join("\n");
    assert!(log.contains("backup failed"), "{log}");
}

fn partials(dir: &Path) -> Vec<PathBuf> {
    common::files_ending(dir, ".partial")
}

/// The server is killed (SIGKILL) while one of its scheduled backups is being written:
/// after the restart the run is recorded as interrupted, its partial file is listed as
/// incomplete and refused by restore, the database passes its integrity check, and the
/// schedule goes on with good backups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_backup_cut_short_by_sigkill_is_recorded_as_interrupted_and_never_taken_for_good()
 {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let backups = dir.path().join("bk");
    let env = [
        ("THINGSAFE_ADMIN_EMAIL", ADMIN),
        ("THINGSAFE_ADMIN_PASSWORD", PASSWORD),
        ("THINGSAFE_BACKUP_DIR", backups.to_str().unwrap()),
        ("THINGSAFE_BACKUP_INTERVAL_SECONDS", "1"),
        ("THINGSAFE_BACKUP_KEEP", "3"),
    ];
    let mut caught = false;
    for attempt in 0..5 {
        let s = Server::start_in(&data, &env);
        if attempt == 0 {
            // Enough data that writing a backup takes a while.
            let user = s.sign_up("grower@example.com").await;
            s.device_with_token(&user, "Greenhouse", "GREENHOUSE1")
                .await;
            for batch in 0..60 {
                let points: Vec<serde_json::Value> = (0..500)
                    .map(|i| {
                        serde_json::json!({"ts": batch * 500 + i, "values": {
                            "temperature": 20.0 + (i % 70) as f64 / 10.0,
                            "note": format!("reading {batch}-{i}"),
                        }})
                    })
                    .collect();
                let resp = s
                    .http
                    .post(s.url("/api/v1/GREENHOUSE1/telemetry"))
                    .json(&points)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), StatusCode::OK);
            }
        }
        let pid = s.pid().to_string();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && partials(&backups).is_empty() {
            std::thread::sleep(Duration::from_micros(200));
        }
        std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap();
        drop(s);
        if !partials(&backups).is_empty() {
            caught = true;
            break;
        }
    }
    assert!(caught, "never caught a scheduled backup mid-way in 5 tries");
    let integrity: String = rusqlite::Connection::open(data.join("thingsafe.db"))
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");

    // The partial file is not a backup: listed as incomplete, refused by restore.
    let partial = partials(&backups).remove(0);
    let name = partial.file_name().unwrap().to_string_lossy().to_string();
    let list = std::process::Command::new(common::binary())
        .args(["backup", "--list", "--data-dir"])
        .arg(&data)
        .env("THINGSAFE_BACKUP_DIR", &backups)
        .env_remove("THINGSAFE_MASTER_KEY")
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&list.stdout).to_string();
    let line = listing
        .lines()
        .find(|l| l.contains(&name))
        .unwrap_or_else(|| panic!("{name} not listed: {listing}"));
    assert!(
        line.contains("INCOMPLETE") && !line.contains("opens with"),
        "{listing}"
    );
    let restore = std::process::Command::new(common::binary())
        .args(["restore", partial.to_str().unwrap(), "--data-dir"])
        .arg(&data)
        .env_remove("THINGSAFE_MASTER_KEY")
        .output()
        .unwrap();
    assert!(!restore.status.success(), "the partial file was restored");

    // After the restart the run is recorded as interrupted, and the schedule goes on.
    let s = Server::start_in(&data, &env);
    s.wait_for_line("backup runs were interrupted");
    let (status, pair) = s.login(ADMIN, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    let admin = pair["token"].as_str().unwrap().to_string();
    let r = wait_for_runs(&s, &admin, "a good run after the interrupted one", |r| {
        let interrupted = r.iter().position(|run| run["status"] == "interrupted");
        let newest_ok = r
            .iter()
            .position(|run| run["kind"] == "data" && run["status"] == "ok");
        // Newest first: a good run recorded after the interrupted one.
        matches!((interrupted, newest_ok), (Some(i), Some(o)) if o < i)
    })
    .await;
    let interrupted = r.iter().find(|run| run["status"] == "interrupted").unwrap();
    assert!(
        interrupted["error"]
            .as_str()
            .unwrap()
            .contains("the server stopped during this backup"),
        "{interrupted}"
    );
    assert!(
        !data_backups(&backups)
            .iter()
            .any(|b| b.to_string_lossy().contains(&name)),
        "the partial never became a backup"
    );
}
