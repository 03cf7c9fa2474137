//! Retention of the records the server keeps, through the real HTTP API: the sweeper
//! deletes ended sessions, visitors' cookie choices, closed requests, disclosures and the
//! oldest audit events past the policy's `[records]` retention, records what went in its
//! run, and leaves the audit chain verifiable from an anchor.
//!
//! Time is made to pass by writing older times into the data directory while the server
//! is stopped (the audit events by the real store, before the server first starts, since
//! their times are under the chain's hashes).

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{PASSWORD, Server};
use reqwest::StatusCode;
use serde_json::{Value, json};
use thingsafe_store::Store;
use thingsafe_store::records::NewAuditEvent;

const ROOT: &str = "root@retention.test";
const DAY: i64 = 24 * 3600 * 1000;

fn admin_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("THINGSAFE_ADMIN_EMAIL", ROOT),
        ("THINGSAFE_ADMIN_PASSWORD", PASSWORD),
    ]
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

async fn token(s: &Server, email: &str) -> String {
    let (status, pair) = s.login(email, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    pair["token"].as_str().unwrap().to_string()
}

/// Appends `n` audit events dated `at_ms` to a new data directory, with the real store and
/// key store, as a server running years ago would have.
async fn old_audit_events(data: &Path, n: usize, at_ms: i64) {
    std::fs::create_dir_all(data).unwrap();
    let (master, _) = thingsafe_vault::MasterKey::load_or_create(data, None).unwrap();
    let vault = Arc::new(thingsafe_vault::Vault::open(data, master).unwrap());
    let store = thingsafe_store::sqlite::SqliteStore::open(data, vault).unwrap();
    for i in 0..n {
        store
            .append_audit(NewAuditEvent {
                at_ms: at_ms + i as i64,
                tenant: None,
                actor: None,
                action: "test.long_ago".into(),
                target: None,
                details: json!({}),
                personal: None,
            })
            .await
            .unwrap();
    }
}

fn ids(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .map(|x| x[field].to_string())
        .collect()
}

#[tokio::test]
async fn the_sweeper_deletes_every_record_past_its_retention_and_the_audit_chain_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let now = now_ms();
    // Three events from four years ago: past the built-in policy's 2 years.
    old_audit_events(&data, 3, now - 4 * 365 * DAY).await;

    let s = Server::start_in(&data, &admin_env());
    let ada = s.sign_up("ada@retention.test").await;
    let ada_id = s.get("/api/auth/user", &ada).await.1["id"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // A second session: the first one will have ended long ago.
    let ada_again = token(&s, "ada@retention.test").await;

    // Two visitors choose cookies; one of them did so long ago.
    let http = reqwest::Client::new();
    let mut visitors = Vec::new();
    for _ in 0..2 {
        let chose = http
            .post(s.url("/api/privacy/cookies"))
            .json(&json!({"cookies": {"functionality": true}}))
            .send()
            .await
            .unwrap();
        assert_eq!(chose.status(), StatusCode::OK);
        let cookie = chose.headers()["set-cookie"].to_str().unwrap();
        visitors.push(cookie.split(';').next().unwrap().to_string());
    }

    // Two requests, both answered; one of them long ago. One still open.
    let mut requests = Vec::new();
    for note in ["old", "recent", "open"] {
        let (status, r) = s
            .post(
                "/api/privacy/requests",
                &ada_again,
                json!({"type": "ACCESS", "password": PASSWORD, "details": note}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{r}");
        let id = r["id"].as_str().unwrap().to_string();
        if note != "open" {
            let (status, r) = s
                .post(
                    &format!("/api/privacy/requests/{id}/complete"),
                    &ada_again,
                    json!({"note": "sent"}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{r}");
        }
        requests.push(id);
    }

    // Disclosures three years and one year ago: only the first is past 2 years.
    for (years, recipient) in [(3, "Long Ago Auditors"), (1, "Last Year Auditors")] {
        let (status, body) = s
            .post(
                "/api/privacy/disclosures",
                &ada_again,
                json!({"subjectId": ada_id, "categories": ["user.name"], "recipient": recipient,
                       "purpose": "Audit", "time": rfc3339(now - years * 365 * DAY)}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    s.stop();

    // Time passes: the first session ended 100 days ago (past 90d), the first visitor chose
    // 400 days ago (past 1y), the first request was closed 4 years ago (past 3y).
    let db = rusqlite::Connection::open(data.join("thingsafe.db")).unwrap();
    db.execute(
        "UPDATE session SET created_ms = ?1, expires_ms = ?2 WHERE rowid =
             (SELECT rowid FROM session ORDER BY created_ms LIMIT 1)",
        [now - 110 * DAY, now - 100 * DAY],
    )
    .unwrap();
    let trigger: String = db
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'consent_no_update'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    db.execute_batch("DROP TRIGGER consent_no_update").unwrap();
    db.execute(
        "UPDATE consent SET at_ms = ?1 WHERE visitor_id =
             (SELECT visitor_id FROM consent WHERE visitor_id IS NOT NULL ORDER BY id LIMIT 1)",
        [now - 400 * DAY],
    )
    .unwrap();
    db.execute_batch(&trigger).unwrap();
    db.execute(
        "UPDATE privacy_request SET created_ms = ?1, closed_ms = ?1 WHERE id = ?2",
        rusqlite::params![now - 4 * 365 * DAY, requests[0]],
    )
    .unwrap();
    let ended: String = db
        .query_row(
            "SELECT id FROM session ORDER BY created_ms LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(db);

    let s = Server::start_in(&data, &admin_env());
    let root = token(&s, ROOT).await;
    let (_, before) = s.get("/api/privacy/audit/verify", &root).await;
    assert_eq!(before["ok"], true, "{before}");
    assert_eq!(before["anchor"], Value::Null);
    let events_before = before["events"].as_i64().unwrap();

    // A tenant administrator's sweep is of their telemetry only.
    let ada = token(&s, "ada@retention.test").await;
    let (status, own) = s
        .post("/api/privacy/retention/sweep", &ada, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{own}");
    assert_eq!(own["records"], json!({}), "{own}");

    let (status, sweep) = s
        .post("/api/privacy/retention/sweep", &root, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{sweep}");
    assert_eq!(sweep["error"], Value::Null, "{sweep}");
    assert_eq!(
        sweep["records"],
        json!({"login_history": 1, "visitor_consents": 1, "closed_requests": 1,
               "audit_events": 3, "disclosures": 1, "rpc_calls": 0}),
        "{sweep}"
    );

    // The run is recorded.
    let (_, view) = s.get("/api/privacy/retention", &ada).await;
    assert_eq!(view["records"]["login_history"], "90d", "{view}");
    assert_eq!(view["records"]["disclosures"], "2y", "{view}");

    // Sessions: only the one that ended long ago is gone.
    let db = rusqlite::Connection::open(data.join("thingsafe.db")).unwrap();
    let left: Vec<String> = db
        .prepare("SELECT id FROM session")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    drop(db);
    assert!(left.len() >= 2 && !left.contains(&ended), "{left:?}");
    let export = s.export(&ada).await;
    let history: Value = serde_json::from_str(&export["login_history.json"]).unwrap();
    assert!(
        history
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["signedInTime"].as_i64().unwrap() > now - DAY),
        "{history}"
    );

    // Visitors: the old choice is forgotten, the recent one remembered.
    let mut choices = Vec::new();
    for visitor in &visitors {
        let view: Value = http
            .get(s.url("/api/privacy/cookies"))
            .header("Cookie", visitor)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        choices.push(view["choice"]["functionality"].clone());
    }
    assert_eq!(choices, [Value::Null, Value::Bool(true)], "{choices:?}");

    // Requests: the one closed long ago is gone; the recent and the open one stay.
    let (status, _) = s
        .get(&format!("/api/privacy/requests/{}", requests[0]), &root)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for id in &requests[1..] {
        let (status, r) = s.get(&format!("/api/privacy/requests/{id}"), &root).await;
        assert_eq!(status, StatusCode::OK, "{r}");
    }

    // Disclosures: last year's stays (the yearly list needs it).
    let (_, mine) = s.get("/api/privacy/me/disclosures", &ada).await;
    assert_eq!(
        ids(&mine["disclosures"], "recipient"),
        ["\"Last Year Auditors\""],
        "{mine}"
    );

    // The audit log: the three old events are gone, the chain verifies from the anchor.
    let (_, after) = s.get("/api/privacy/audit/verify", &root).await;
    assert_eq!(after["ok"], true, "{after}");
    assert_eq!(after["anchor"]["seq"], 3, "{after}");
    assert!(
        after["anchor"]["note"]
            .as_str()
            .unwrap()
            .contains("events 1 to 3 were deleted by the retention sweeper"),
        "{after}"
    );
    assert!(after["events"].as_i64().unwrap() >= events_before - 3);
    let (_, log) = s
        .get("/api/privacy/audit?action=test.long_ago", &root)
        .await;
    assert_eq!(log["events"], json!([]), "{log}");
    s.stop();

    // A deletion past the anchor is still refused, and removing the anchor shows.
    let db = rusqlite::Connection::open(data.join("thingsafe.db")).unwrap();
    let refused = db
        .execute("DELETE FROM audit_event WHERE seq = 4", [])
        .unwrap_err();
    assert!(refused.to_string().contains("append-only"), "{refused}");
    let refused = db.execute("DELETE FROM audit_anchor", []).unwrap_err();
    assert!(refused.to_string().contains("kept"), "{refused}");
    db.execute_batch("DROP TRIGGER audit_anchor_no_delete; DELETE FROM audit_anchor;")
        .unwrap();
    drop(db);
    let s = Server::start_in(&data, &admin_env());
    let root = token(&s, ROOT).await;
    let (_, verified) = s.get("/api/privacy/audit/verify", &root).await;
    assert_eq!(verified["ok"], false, "{verified}");
    assert!(
        verified["broken"]["reason"]
            .as_str()
            .unwrap()
            .contains("event 1 is missing"),
        "{verified}"
    );
    s.stop();
}

/// The built-in policy with telemetry kept 30 days, then as hourly aggregates.
fn policy_with_aggregates(dir: &Path) -> std::path::PathBuf {
    let default = include_str!("../../core/privacy.toml");
    let from = "source = \"Your devices.\"\npurposes = { essential = \"contract\" }\nretention = \"account_lifetime\"\n\n[categories.\"user.location.precise\"]";
    assert!(default.contains(from));
    let text = default.replace(
        from,
        "source = \"Your devices.\"\npurposes = { essential = \"contract\" }\nretention = \"30d\"\naggregate = \"hourly\"\n\n[categories.\"user.location.precise\"]",
    );
    let path = dir.join("privacy.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn expired_telemetry_leaves_hourly_aggregates_that_name_no_device_tenant_or_person() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let policy = policy_with_aggregates(dir.path());
    let mut env = admin_env();
    env.push(("THINGSAFE_PRIVACY_POLICY_FILE", policy.to_str().unwrap()));
    let s = Server::start_in(&data, &env);
    let ada = s.sign_up("ada@aggregates.test").await;
    let bob = s.sign_up("bob@aggregates.test").await;
    let ada_device = s
        .device_with_token(&ada, "Boiler", "ada-boiler-token")
        .await;
    let bob_device = s
        .device_with_token(&bob, "Boiler", "bob-boiler-token")
        .await;
    let now = now_ms();
    // An hour 40 days ago (past 30 days), its start, and a time within it.
    let hour = (now - 40 * DAY) / 3_600_000 * 3_600_000;
    for (token, points) in [
        (
            "ada-boiler-token",
            json!([
                {"ts": hour + 1_000, "values": {"temperature": 10, "state": "on"}},
                {"ts": hour + 2_000, "values": {"temperature": 20.5}},
                {"ts": hour + 3_600_000, "values": {"temperature": 99}},
                {"ts": now - 1_000, "values": {"temperature": 21}},
            ]),
        ),
        (
            "bob-boiler-token",
            json!([{"ts": hour + 5_000, "values": {"temperature": 30}}]),
        ),
    ] {
        s.post_telemetry(token, points).await;
    }

    let root = token(&s, ROOT).await;
    let (status, sweep) = s
        .post("/api/privacy/retention/sweep", &root, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{sweep}");
    assert_eq!(sweep["telemetryPoints"], 5, "{sweep}");

    // The points past retention are gone from the devices...
    let all = format!(
        "keys=temperature,state&startTs=0&endTs={}&limit=100",
        now + DAY
    );
    let series = s.timeseries(&ada, &ada_device, &all).await;
    assert_eq!(
        series["temperature"].as_array().unwrap().len(),
        1,
        "{series}"
    );
    assert_eq!(series["state"], Value::Null, "{series}");
    let series = s.timeseries(&bob, &bob_device, &all).await;
    assert_eq!(series["temperature"], Value::Null, "{series}");

    // ...and the hourly aggregates hold them, across both tenants, numbers only.
    let path = format!(
        "/api/admin/statistics?key=temperature&from={}&to={}",
        hour - DAY,
        now
    );
    let (status, stats) = s.get(&path, &root).await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(
        stats["hours"],
        json!([
            {"key": "temperature", "hourTs": hour, "count": 3, "min": 10.0, "max": 30.0, "mean": 20.166666666666668},
            {"key": "temperature", "hourTs": hour + 3_600_000, "count": 1, "min": 99.0, "max": 99.0, "mean": 99.0},
        ]),
        "{stats}"
    );
    let (_, text) = s.get("/api/admin/statistics?key=state", &root).await;
    assert_eq!(
        text["hours"],
        json!([]),
        "text values are not aggregated: {text}"
    );

    // Nothing in the aggregates names a device, a tenant or a person.
    let (_, ada_me) = s.get("/api/auth/user", &ada).await;
    let (_, bob_me) = s.get("/api/auth/user", &bob).await;
    let stats_text = stats.to_string();
    for name in [
        ada_device.as_str(),
        bob_device.as_str(),
        ada_me["id"]["id"].as_str().unwrap(),
        ada_me["tenantId"]["id"].as_str().unwrap(),
        bob_me["tenantId"]["id"].as_str().unwrap(),
        "ada@aggregates.test",
        "Boiler",
    ] {
        assert!(!stats_text.contains(name), "{name} in {stats_text}");
    }
    s.stop();
    let db = rusqlite::Connection::open(data.join("thingsafe.db")).unwrap();
    let columns: Vec<String> = db
        .prepare("SELECT name FROM pragma_table_info('telemetry_aggregate')")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(columns, ["key", "hour_ms", "count", "min", "max", "sum"]);
    drop(db);

    // Only the system administrator reads them, and bad queries say what is wrong.
    let s = Server::start_in(&data, &env);
    let root = token(&s, ROOT).await;
    let ada = token(&s, "ada@aggregates.test").await;
    let (status, _) = s.get("/api/admin/statistics?key=temperature", &ada).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for (query, message) in [
        ("", "key is required: the telemetry key to read"),
        (
            "?key=temperature&from=yesterday",
            "from \"yesterday\" is not a time: give milliseconds since 1970 or RFC 3339 (2026-11-23T10:00:00Z)",
        ),
        ("?key=temperature&from=10&to=5", "from (10) is after to (5)"),
    ] {
        let (status, body) = s.get(&format!("/api/admin/statistics{query}"), &root).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["message"], message, "{query}");
    }
    let (status, body) = s
        .get("/api/admin/statistics?key=temperature&colour=red", &root)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    s.stop();
}
