//! `thingsafe backup` while the server runs and takes traffic, `thingsafe restore` into a
//! new data directory, and refusals of damaged, foreign and mistimed restores.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{PASSWORD, Server};
use reqwest::StatusCode;
use serde_json::json;

fn thingsafe(args: &[&str], data: &Path) -> Output {
    Command::new(common::binary())
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("THINGSAFE_MASTER_KEY")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A new data directory holding only the installation's key store and master key, as an
/// operator prepares one to restore into.
fn keys_only(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for file in ["keys.db", "master.key"] {
        std::fs::copy(from.join(file), to.join(file)).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_traffic_restores_into_a_new_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::start_in(&data, &[]);
    let user = s.sign_up("backup@example.com").await;
    let id = s.device_with_token(&user, "Meter", "BACKUPTOKEN").await;
    for ts in 1..=50 {
        let resp = s
            .http
            .post(s.url("/api/v1/BACKUPTOKEN/telemetry"))
            .body(json!({"ts": ts, "values": {"kwh": ts}}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }

    // Traffic goes on while the backup runs.
    let (http, url) = (s.http.clone(), s.url("/api/v1/BACKUPTOKEN/telemetry"));
    let traffic = tokio::spawn(async move {
        for ts in 1000..1200 {
            let _ = http
                .post(&url)
                .body(json!({"ts": ts, "values": {"kwh": ts}}).to_string())
                .send()
                .await;
        }
    });
    let file = dir.path().join("backups").join("one.tsbackup");
    let data_for_backup = data.clone();
    let file_for_backup = file.clone();
    let out = tokio::task::spawn_blocking(move || {
        thingsafe(
            &["backup", "--out", file_for_backup.to_str().unwrap()],
            &data_for_backup,
        )
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let report = text(&out);
    assert!(
        report.contains("sha256") && report.contains("bytes"),
        "{report}"
    );
    traffic.await.unwrap();
    assert!(file.exists());
    assert!(
        !std::fs::read_dir(file.parent().unwrap()).unwrap().any(|e| e
            .unwrap()
            .path()
            .to_string_lossy()
            .ends_with(".partial"))
    );
    // Encrypted whole: not even SQLite's header or schema text is readable in it.
    let bytes = std::fs::read(&file).unwrap();
    for needle in [&b"SQLite format 3"[..], b"CREATE TABLE", b"telemetry_log"] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "{:?} readable in the backup",
            String::from_utf8_lossy(needle)
        );
    }
    drop(s);

    // Restore into a new data directory with the installation's key store and master key.
    let restored = dir.path().join("restored");
    keys_only(&data, &restored);
    let out = thingsafe(&["restore", file.to_str().unwrap()], &restored);
    assert!(out.status.success(), "{}", text(&out));
    let s = Server::start_in(&restored, &[]);
    let (status, pair) = s.login("backup@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let token = pair["token"].as_str().unwrap();
    let points = s
        .timeseries(
            token,
            &id,
            "keys=kwh&startTs=0&endTs=100&limit=1000&orderBy=ASC",
        )
        .await;
    assert_eq!(
        points["kwh"].as_array().unwrap().len(),
        50,
        "every point acknowledged before the backup is in it"
    );
    let (_, creds) = s.get(&format!("/api/device/{id}/credentials"), token).await;
    assert_eq!(creds["credentialsId"], "BACKUPTOKEN");
}

#[tokio::test]
async fn damaged_foreign_and_mistimed_restores_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::start_in(&data, &[]);
    s.sign_up("refusals@example.com").await;
    let file = dir.path().join("good.tsbackup");
    let out = thingsafe(&["backup", "--out", file.to_str().unwrap()], &data);
    assert!(out.status.success(), "{}", text(&out));

    // While the server runs on it, a data directory cannot be restored into.
    let out = thingsafe(&["restore", file.to_str().unwrap()], &data);
    assert!(!out.status.success());
    assert!(text(&out).contains("stop it first"), "{}", text(&out));
    drop(s);

    let target = dir.path().join("target");
    keys_only(&data, &target);
    let out = thingsafe(&["restore", file.to_str().unwrap()], &target);
    assert!(out.status.success(), "{}", text(&out));
    let before = std::fs::read(target.join("thingsafe.db")).unwrap();

    let good = std::fs::read(&file).unwrap();
    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    let truncated = good[..good.len() - 100].to_vec();
    for (name, bytes, needle) in [
        ("flipped", flipped, "damaged"),
        ("truncated", truncated, "damaged"),
        (
            "alien",
            b"just some bytes, not a backup".to_vec(),
            "not a Thingsafe backup",
        ),
    ] {
        let path = dir.path().join(format!("{name}.tsbackup"));
        std::fs::write(&path, bytes).unwrap();
        let out = thingsafe(&["restore", path.to_str().unwrap()], &target);
        assert!(!out.status.success(), "{name}");
        let message = text(&out);
        assert!(
            message.contains(needle) && message.contains("untouched"),
            "{name}: {message}"
        );
        assert_eq!(
            std::fs::read(target.join("thingsafe.db")).unwrap(),
            before,
            "{name} changed the data"
        );
        assert!(!target.join("thingsafe.db.restoring").exists());
    }

    // Another installation's key store cannot open it.
    let other = dir.path().join("other");
    let s = Server::start_in(&other, &[]);
    drop(s);
    let out = thingsafe(&["restore", file.to_str().unwrap()], &other);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("another installation"),
        "{}",
        text(&out)
    );

    // Without the key store, restore says what it needs.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = thingsafe(&["restore", file.to_str().unwrap()], &empty);
    assert!(!out.status.success());
    assert!(text(&out).contains("keys.db"), "{}", text(&out));
}

#[test]
fn two_servers_cannot_share_a_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let _s = Server::start_in(&data, &[]);
    let out = Command::new(common::binary())
        .args(["serve", "--data-dir"])
        .arg(&data)
        .env("THINGSAFE_HTTP_ADDR", "127.0.0.1:0")
        .env("THINGSAFE_MQTT_ADDR", "127.0.0.1:0")
        .env("THINGSAFE_HTTP_TLS_ADDR", "127.0.0.1:0")
        .env("THINGSAFE_MQTT_TLS_ADDR", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("stop it first"), "{}", text(&out));
}

/// The erasure promise reaches backups: a customer deleted after a backup (its key and its
/// users' keys destroyed) stays unreadable when that backup is restored with the current
/// key store, while everyone else's data comes back.
#[tokio::test]
async fn what_was_erased_after_a_backup_stays_unreadable_when_it_is_restored() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::start_in(&data, &[]);
    let admin = s.sign_up("landlord@example.com").await;

    // Two households, each with a person and a device reporting readings.
    let mut households = Vec::new();
    for (name, email, token) in [
        ("Erased home", "erased.person@example.com", "ERASEDDEV"),
        ("Kept home", "kept.person@example.com", "KEPTDEV"),
    ] {
        let (_, customer) = s
            .post("/api/customer", &admin, json!({"title": name}))
            .await;
        let customer = customer["id"]["id"].as_str().unwrap().to_string();
        s.activated_customer_user(&admin, &customer, email, json!({"firstName": "Pat"}))
            .await;
        let device = s
            .device_with_token(&admin, &format!("{name} meter"), token)
            .await;
        s.post(
            &format!("/api/customer/{customer}/device/{device}"),
            &admin,
            json!({}),
        )
        .await;
        let resp = s
            .http
            .post(s.url(&format!("/api/v1/{token}/telemetry")))
            .body(r#"{"ts":1000,"values":{"heartRate":61}}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        households.push((customer, email, device));
    }
    let file = dir.path().join("before-erasure.tsbackup");
    let out = thingsafe(&["backup", "--out", file.to_str().unwrap()], &data);
    assert!(out.status.success(), "{}", text(&out));

    // Erase the first household after the backup: its keys are destroyed.
    let (status, _) = s
        .delete(&format!("/api/customer/{}", households[0].0), &admin)
        .await;
    assert_eq!(status, StatusCode::OK);
    drop(s);

    // Restore the old backup with the current key store and master key.
    let restored = dir.path().join("restored");
    keys_only(&data, &restored);
    let out = thingsafe(&["restore", file.to_str().unwrap()], &restored);
    assert!(out.status.success(), "{}", text(&out));
    let s = Server::start_in(&restored, &[]);

    // The erased person cannot sign in; the kept one can.
    let (status, _) = s.login("erased.person@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = s.login("kept.person@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);

    // The erased household is invisible, its readings unreadable; the rest is all there.
    let (_, pair) = s.login("landlord@example.com", PASSWORD).await;
    let admin = pair["token"].as_str().unwrap().to_string();
    let (_, customers) = s.get("/api/customers?pageSize=10&page=0", &admin).await;
    let titles: Vec<&str> = customers["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, vec!["Kept home"]);
    let (status, _) = s
        .get(&format!("/api/customer/{}", households[0].0), &admin)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let range = "keys=heartRate&startTs=0&endTs=5000";
    assert_eq!(
        s.timeseries(&admin, &households[0].2, range).await,
        json!({}),
        "the erased household's readings"
    );
    assert_eq!(
        s.timeseries(&admin, &households[1].2, range).await["heartRate"][0]["value"],
        "61"
    );

    // And no file of the restored installation holds the erased person's data readably.
    common::assert_absent_from_files(&restored, &["erased.person", "Erased home"]);
}

fn thingsafe_env(args: &[&str], data: &Path, env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(common::binary());
    cmd.args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("THINGSAFE_MASTER_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[tokio::test]
async fn backup_list_shows_data_and_key_backups_and_never_a_partial_as_good() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let backups = dir.path().join("bk");
    let env = [("THINGSAFE_BACKUP_DIR", backups.as_path())];
    let s = Server::start_in(&data, &[("THINGSAFE_BACKUP_SCHEDULE", "off")]);
    s.sign_up("list@example.com").await;
    let out = thingsafe_env(&["backup"], &data, &env);
    assert!(out.status.success(), "{}", text(&out));
    let out = thingsafe_env(&["backup", "--keys"], &data, &env);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("fingerprint"), "{}", text(&out));
    std::fs::write(
        backups.join("thingsafe-x.tsbackup.partial"),
        b"THINGSAFE-BACKUP",
    )
    .unwrap();
    std::fs::write(backups.join("readme.txt"), b"not a backup").unwrap();
    let out = thingsafe_env(&["backup", "--list"], &data, &env);
    assert!(out.status.success(), "{}", text(&out));
    let listing = text(&out);
    let lines: Vec<&str> = listing.lines().filter(|l| l.contains("UTC")).collect();
    assert_eq!(lines.len(), 3, "{listing}");
    let data_line = lines.iter().find(|l| l.contains(".tsbackup ")).unwrap();
    assert!(
        data_line.contains(" data ") && data_line.contains("opens with this installation"),
        "{listing}"
    );
    let keys_line = lines.iter().find(|l| l.contains(".tskeys")).unwrap();
    assert!(
        keys_line.contains(" keys ")
            && keys_line.contains("opens")
            && keys_line.contains("expires"),
        "{listing}"
    );
    let partial = lines.iter().find(|l| l.contains(".partial")).unwrap();
    assert!(
        partial.contains("INCOMPLETE") && !partial.contains("opens with"),
        "{listing}"
    );
    assert!(!listing.contains("readme.txt"), "{listing}");
    drop(s);
    // A partial file is refused by restore, by name and by content.
    let out = thingsafe(
        &[
            "restore",
            backups
                .join("thingsafe-x.tsbackup.partial")
                .to_str()
                .unwrap(),
        ],
        &data,
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("interrupted"), "{}", text(&out));
}

/// After `admin rotate-master-key`: old data backups restore with the current key store and
/// master key; an old key-store backup needs the master key that was in force when it was
/// made (docs/backups.md, "After a rotation").
#[tokio::test]
async fn after_a_rotation_old_data_backups_restore_and_old_key_backups_need_the_old_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let backups = dir.path().join("bk");
    let env = [("THINGSAFE_BACKUP_DIR", backups.as_path())];
    let s = Server::start_in(&data, &[("THINGSAFE_BACKUP_SCHEDULE", "off")]);
    let user = s.sign_up("rotate@example.com").await;
    let id = s.device_with_token(&user, "Meter", "ROTATETOKEN").await;
    let resp = s
        .http
        .post(s.url("/api/v1/ROTATETOKEN/telemetry"))
        .body(r#"{"ts":5,"values":{"kwh":42}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let data_backup = dir.path().join("before.tsbackup");
    let out = thingsafe_env(
        &["backup", "--out", data_backup.to_str().unwrap()],
        &data,
        &env,
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = thingsafe_env(&["backup", "--keys"], &data, &env);
    assert!(out.status.success(), "{}", text(&out));
    let old_key_backup = thingsafe_vault_list(&backups, ".tskeys")[0].clone();
    let old_master = std::fs::read(data.join("master.key")).unwrap();

    // Not while the server runs.
    let out = thingsafe_env(&["admin", "rotate-master-key"], &data, &env);
    assert!(!out.status.success());
    assert!(text(&out).contains("stop it first"), "{}", text(&out));
    drop(s);
    let out = thingsafe_env(&["admin", "rotate-master-key"], &data, &env);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("re-wrapped"), "{}", text(&out));
    assert_ne!(std::fs::read(data.join("master.key")).unwrap(), old_master);
    assert!(!data.join("master.key.new").exists());
    assert_eq!(
        thingsafe_vault_list(&backups, ".tskeys").len(),
        2,
        "a key backup under the new key"
    );

    // The server runs on with the new key; everything reads.
    let s = Server::start_in(&data, &[("THINGSAFE_BACKUP_SCHEDULE", "off")]);
    let (status, pair) = s.login("rotate@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let points = s
        .timeseries(
            pair["token"].as_str().unwrap(),
            &id,
            "keys=kwh&startTs=0&endTs=10",
        )
        .await;
    assert_eq!(points["kwh"][0]["value"], "42");
    drop(s);
    let listing = text(&thingsafe_env(&["backup", "--list"], &data, &env));
    assert!(
        listing.contains("does not open with the current master key"),
        "{listing}"
    );

    // The old data backup restores with the current key store and (new) master key.
    let restored = dir.path().join("restored");
    keys_only(&data, &restored);
    let out = thingsafe(&["restore", data_backup.to_str().unwrap()], &restored);
    assert!(out.status.success(), "{}", text(&out));
    let s = Server::start_in(&restored, &[("THINGSAFE_BACKUP_SCHEDULE", "off")]);
    let (status, pair) = s.login("rotate@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let points = s
        .timeseries(
            pair["token"].as_str().unwrap(),
            &id,
            "keys=kwh&startTs=0&endTs=10",
        )
        .await;
    assert_eq!(points["kwh"][0]["value"], "42");
    drop(s);

    // The old key backup does not open with the new master key...
    let lost = dir.path().join("lost-keys");
    std::fs::create_dir_all(&lost).unwrap();
    std::fs::copy(data.join("master.key"), lost.join("master.key")).unwrap();
    let out = thingsafe(
        &["restore", "--keys", old_key_backup.to_str().unwrap()],
        &lost,
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("fingerprint") && text(&out).contains("untouched"),
        "{}",
        text(&out)
    );
    assert!(!lost.join("keys.db").exists());

    // ...it does with the old one, and then the old data backup restores and opens.
    std::fs::write(lost.join("master.key"), &old_master).unwrap();
    let out = thingsafe(
        &["restore", "--keys", old_key_backup.to_str().unwrap()],
        &lost,
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = thingsafe(&["restore", data_backup.to_str().unwrap()], &lost);
    assert!(out.status.success(), "{}", text(&out));
    let s = Server::start_in(&lost, &[("THINGSAFE_BACKUP_SCHEDULE", "off")]);
    let (status, _) = s.login("rotate@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
}

/// The backup files in `dir` whose name ends with `ending`, sorted.
fn thingsafe_vault_list(dir: &Path, ending: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(ending))
        .collect();
    files.sort();
    files
}

/// The heart of the backup promise: a person who deletes their account after a backup
/// (`DELETE /api/privacy/me`, the last administrator of their tenant) stays erased when
/// that backup is restored with the current key store. The server starts, everyone
/// else's data is intact, the person cannot sign in, their device's token is refused over
/// HTTP and MQTT, and their email, names, device and readings are in no file, no API
/// answer and no export; the erasure is re-applied at start, so their address is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_who_deleted_their_account_after_a_backup_stays_erased_when_it_is_restored() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::start_in(&data, &[]);
    let email = "quimbleton.vandersnoot@example.test";
    let version = s.policy_version().await;
    let (status, body) = s
        .call(
            reqwest::Method::POST,
            "/api/noauth/signup",
            None,
            Some(json!({
                "email": email, "password": PASSWORD, "firstName": "Quimbleton",
                "lastName": "Vandersnoot", "birthDate": "1984-02-29",
                "acceptedPolicyVersion": version, "marketing": true
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let person = body["token"].as_str().unwrap().to_string();
    let kept = s.sign_up("kept.tenant@example.test").await;
    let kept_device = s.device_with_token(&kept, "Kept meter", "KEPTTOKEN1").await;
    s.device_with_token(&person, "Quimbleton greenhouse", "QUIMBTOKEN1")
        .await;
    for (token, value) in [
        ("QUIMBTOKEN1", "whisper-8815"),
        ("KEPTTOKEN1", "kept-reading"),
    ] {
        s.post_telemetry(token, json!({"ts": 1000, "values": {"note": value}}))
            .await;
    }
    let file = dir.path().join("before-erasure.tsbackup");
    let out = thingsafe(&["backup", "--out", file.to_str().unwrap()], &data);
    assert!(out.status.success(), "{}", text(&out));

    let (status, receipt) = s
        .call(
            reqwest::Method::DELETE,
            "/api/privacy/me",
            Some(&person),
            Some(json!({ "password": PASSWORD })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{receipt}");
    drop(s);

    let restored = dir.path().join("restored");
    keys_only(&data, &restored);
    let out = thingsafe(&["restore", file.to_str().unwrap()], &restored);
    assert!(out.status.success(), "{}", text(&out));
    let s = Server::start_in(&restored, &[]);
    let log = s
        .startup_output
        .iter()
        .find(|l| l.contains("being removed again"))
        .expect("the server says it re-applies the erasure");
    assert!(log.contains("tenants=1"), "{log}");

    // The person and their device are refused everywhere.
    let (status, _) = s.login(email, PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let resp = s
        .http
        .post(s.url("/api/v1/QUIMBTOKEN1/telemetry"))
        .json(&json!({"note": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let refused = common::mqtt::v3::connect(&s, "greenhouse", Some("QUIMBTOKEN1")).await;
    assert!(
        matches!(
            refused,
            Err(common::mqtt::v3::ConnectReturnCode::NotAuthorized)
        ),
        "MQTT with the erased device's token: {:?}",
        refused.err()
    );

    // Everyone else's data came back whole, and holds nothing of the person.
    let (status, pair) = s.login("kept.tenant@example.test", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let kept = pair["token"].as_str().unwrap().to_string();
    let series = s
        .timeseries(&kept, &kept_device, "keys=note&startTs=0&endTs=5000")
        .await;
    assert_eq!(series["note"][0]["value"], "kept-reading");
    let needles = [
        "quimbleton",
        "Quimbleton",
        "Vandersnoot",
        "greenhouse",
        "whisper-8815",
        "QUIMBTOKEN1",
    ];
    let export = s.export(&kept).await;
    let everything = format!("{export:?}");
    assert!(
        everything.contains("kept-reading"),
        "the export is complete"
    );
    for needle in needles {
        assert!(
            !everything.contains(needle),
            "{needle} in another person's export"
        );
    }

    // The erasure's rows are purged again; then no file holds the person's bytes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let db = rusqlite::Connection::open_with_flags(
            restored.join("thingsafe.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let (unpurged, devices): (i64, i64) = db
            .query_row(
                "SELECT (SELECT COUNT(*) FROM erasure WHERE purged_ms IS NULL),
                        (SELECT COUNT(*) FROM device)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        // Left: the kept tenant's device.
        if (unpurged, devices) == (0, 1) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{unpurged} erasures not purged, {devices} devices"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    common::assert_absent_from_files(&restored, &needles);

    // The address is free again: the keyed hash of the email went with the re-applied erasure.
    s.sign_up(email).await;
}
