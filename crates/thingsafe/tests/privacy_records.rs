//! Accountability records through the real HTTP API: the hash-chained audit log (tampering
//! shows, erasure leaves it verifiable but unreadable for the person), the disclosure log
//! and its yearly list, the breach register's 72-hour clock and affected people, the
//! records of processing and the fideslang data map, and the classification of telemetry
//! keys driving retention and export.

mod common;

use std::path::{Path, PathBuf};

use common::{PASSWORD, Server, assert_absent_from_files};
use reqwest::StatusCode;
use serde_json::{Value, json};
use thingsafe_store::records::SealedAuditEvent;

const ROOT: &str = "root@records.test";

fn admin_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("THINGSAFE_ADMIN_EMAIL", ROOT),
        ("THINGSAFE_ADMIN_PASSWORD", PASSWORD),
    ]
}

async fn token(s: &Server, email: &str) -> String {
    let (status, pair) = s.login(email, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    pair["token"].as_str().unwrap().to_string()
}

async fn put(s: &Server, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    s.call(reqwest::Method::PUT, path, Some(token), Some(body))
        .await
}

async fn user_id(s: &Server, token: &str) -> String {
    let (_, me) = s.get("/api/auth/user", token).await;
    me["id"]["id"].as_str().unwrap().to_string()
}

fn events(body: &Value) -> &Vec<Value> {
    body["events"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
}

fn actions(body: &Value) -> Vec<&str> {
    events(body)
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn write_policy(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("privacy.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The built-in policy with two processors, one outside the EEA.
fn policy_with_processors() -> String {
    let default = include_str!("../../core/privacy.toml");
    format!(
        "{default}\n[[processors]]\nname = \"Example Mail Ltd\"\nservice = \"Delivers our emails.\"\ncountry = \"IE\"\ncategories = [\"user.contact.email\", \"user.name\"]\n\n[[processors]]\nname = \"Example Cloud Inc.\"\nservice = \"Hosts our servers.\"\ncountry = \"US\"\ncategories = [\"user.contact.email\", \"user.device.telemetry\"]\nsafeguards = \"Standard contractual clauses.\"\n"
    )
}

// --- audit log ---------------------------------------------------------------------------------

#[tokio::test]
async fn the_audit_log_records_what_matters_and_each_tenant_sees_only_its_own() {
    let s = Server::start_with(&admin_env());
    let a = s.sign_up("alice@records.test").await;
    let b = s.sign_up("bob@records.test").await;
    let a_id = user_id(&s, &a).await;

    let (status, _) = s.login("alice@records.test", "wrong password!").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = s.login("nobody@records.test", "wrong password!").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let a = token(&s, "alice@records.test").await;
    let (status, _) = put(
        &s,
        "/api/privacy/me/consents",
        &a,
        json!({"purposes": {"marketing": true}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let device = s.create_device(&a, "Kitchen thermostat").await;
    let (status, _) = s.delete(&format!("/api/device/{device}"), &a).await;
    assert_eq!(status, StatusCode::OK);
    s.create_device(&b, "Bob's sensor").await;
    s.export(&a).await;

    let (status, log) = s.get("/api/privacy/audit", &a).await;
    assert_eq!(status, StatusCode::OK, "{log}");
    assert_eq!(
        actions(&log),
        [
            "auth.sign_up",
            "auth.login_failed",
            "auth.login",
            "privacy.consent_change",
            "device.create",
            "device.delete",
            "privacy.export"
        ],
        "{log}"
    );
    // Filtered in SQL to alice's tenant: nothing of bob's, nor the stranger's attempt.
    let failed = &events(&log)[1];
    assert_eq!(failed["details"]["reason"], "wrong password");
    assert_eq!(failed["target"], format!("user:{a_id}"));
    assert_eq!(failed["personal"]["email"], "alice@records.test");
    let created = &events(&log)[4];
    assert_eq!(created["actorId"], a_id);
    assert_eq!(created["personal"]["name"], "Kitchen thermostat");
    let consent = &events(&log)[3];
    assert_eq!(consent["personal"]["changes"][0]["purpose"], "marketing");
    assert_eq!(consent["personal"]["changes"][0]["granted"], true);

    let (_, only) = s.get("/api/privacy/audit?action=device.create", &a).await;
    assert_eq!(actions(&only), ["device.create"]);
    let (_, by_alice) = s.get(&format!("/api/privacy/audit?actor={a_id}"), &a).await;
    assert!(
        events(&by_alice)
            .iter()
            .all(|e| e["actorId"] == a_id.as_str())
    );
    assert_eq!(events(&by_alice).len(), 6, "{by_alice}");
    let sign_up_time = events(&log)[0]["time"].as_i64().unwrap();
    let (_, none) = s
        .get(&format!("/api/privacy/audit?to={}", sign_up_time - 1), &a)
        .await;
    assert_eq!(events(&none).len(), 0);
    let (_, from) = s
        .get("/api/privacy/audit?from=2000-01-01T00:00:00Z&limit=2", &a)
        .await;
    assert_eq!(events(&from).len(), 2);

    let root = token(&s, ROOT).await;
    let (status, all) = s.get("/api/privacy/audit", &root).await;
    assert_eq!(status, StatusCode::OK);
    let all_actions = actions(&all);
    assert_eq!(all_actions[0], "privacy.policy_published", "{all}");
    assert_eq!(
        all_actions.iter().filter(|a| **a == "auth.sign_up").count(),
        2
    );
    let stranger = events(&all)
        .iter()
        .find(|e| e["details"]["reason"] == "unknown account")
        .expect("the unknown account's attempt");
    assert_eq!(stranger["personal"], Value::Null);
    assert_eq!(stranger["personalPart"], "none");

    // Bad input is refused saying what is wrong; people without an admin role get nothing.
    let (status, body) = s.get("/api/privacy/audit?from=yesterday", &a).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["message"],
        "from \"yesterday\" is not a time: give milliseconds since 1970 or RFC 3339 (2026-11-23T10:00:00Z)"
    );
    let (status, body) = s.get("/api/privacy/audit?actor=alice", &a).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["message"],
        "Invalid actor id \"alice\": expected a UUID"
    );
    let (status, body) = s.get("/api/privacy/audit?colour=red", &a).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"].as_str().unwrap().contains("colour"),
        "{body}"
    );
    let (status, _) = s
        .post(
            "/api/user",
            &a,
            json!({"email": "carol@records.test", "authority": "CUSTOMER_USER",
                   "customerId": {"entityType": "CUSTOMER", "id": create_customer(&s, &a).await}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s.get("/api/privacy/audit", "not-a-token").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, log) = s.get("/api/privacy/audit?action=user.create", &a).await;
    assert_eq!(
        events(&log)[0]["personal"]["email"],
        "carol@records.test",
        "{log}"
    );

    let (status, verified) = s.get("/api/privacy/audit/verify", &root).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(verified["ok"], true, "{verified}");
    assert_eq!(verified["events"], all_actions.len() + 2);
}

async fn create_customer(s: &Server, token: &str) -> String {
    let (status, c) = s
        .post("/api/customer", token, json!({"title": "Customer One"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    c["id"]["id"].as_str().unwrap().to_string()
}

/// The audit log as stored, in order, read by the real store (the server is stopped).
async fn stored_events(data: &Path) -> Vec<SealedAuditEvent> {
    let (master, _) = thingsafe_vault::MasterKey::load_or_create(data, None).unwrap();
    let vault = std::sync::Arc::new(thingsafe_vault::Vault::open(data, master).unwrap());
    let store = thingsafe_store::sqlite::SqliteStore::open(data, vault).unwrap();
    thingsafe_store::Store::audit_chain(&store, 0, 100_000)
        .await
        .unwrap()
}

/// Starts the server on `data`, verifies the audit chain as the system administrator,
/// stops it; answers the verification.
async fn verify_in(data: &Path) -> Value {
    let s = Server::start_in(data, &admin_env());
    let root = token(&s, ROOT).await;
    let (status, verified) = s.get("/api/privacy/audit/verify", &root).await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    s.stop();
    verified
}

/// What someone with the database file but not the key store can do: change event `seq`
/// and re-compute every link from it on with plain SHA-256 (`mark_plain`: saying so).
async fn forge_with_plain_chain(data: &Path, seq: i64, mark_plain: bool) {
    let mut events = stored_events(data).await;
    let db = rusqlite::Connection::open(data.join("thingsafe.db")).unwrap();
    db.execute_batch("DROP TRIGGER IF EXISTS audit_no_update")
        .unwrap();
    let mut prev = Vec::new();
    for e in events.iter_mut().filter(|e| e.seq >= seq) {
        if e.seq == seq {
            e.details = "{\"gateway\":true}".into();
        } else {
            e.prev_hash = prev.clone();
        }
        e.keyed = e.keyed && !mark_plain;
        e.hash = e.link_hash(&e.prev_hash).to_vec();
        prev = e.hash.clone();
        db.execute(
            "UPDATE audit_event SET details = ?2, prev_hash = ?3, hash = ?4, keyed = ?5 WHERE seq = ?1",
            rusqlite::params![e.seq, e.details, e.prev_hash, e.hash, e.keyed],
        )
        .unwrap();
    }
}

#[tokio::test]
async fn a_forged_event_with_a_re_computed_plain_chain_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::start_in(&data, &admin_env());
    let a = s.sign_up("forger@records.test").await;
    s.create_device(&a, "Door").await;
    s.create_device(&a, "Window").await;
    let root = token(&s, ROOT).await;
    let (_, log) = s
        .get("/api/privacy/audit?action=device.create", &root)
        .await;
    let forged = events(&log)[0]["seq"].as_i64().unwrap();
    s.stop();
    // Every link the server made is keyed; the plain SHA-256 of an event is not its link.
    let stored = stored_events(&data).await;
    assert!(stored.iter().all(|e| e.keyed), "{stored:?}");
    assert!(
        stored
            .iter()
            .all(|e| e.hash != e.link_hash(&e.prev_hash).to_vec())
    );
    let does_not_match =
        "its content does not match its hash: the event was changed after it was recorded";

    // A forgery re-hashed with SHA-256 that still claims to be keyed: its link is wrong.
    forge_with_plain_chain(&data, forged, false).await;
    let verified = verify_in(&data).await;
    assert_eq!(verified["ok"], false, "{verified}");
    assert_eq!(verified["broken"]["seq"], forged, "{verified}");
    assert_eq!(verified["broken"]["reason"], does_not_match);

    // The same forgery marked as plain links: plain links may not follow keyed ones.
    forge_with_plain_chain(&data, forged, true).await;
    let verified = verify_in(&data).await;
    assert_eq!(verified["ok"], false, "{verified}");
    assert_eq!(verified["broken"]["seq"], forged, "{verified}");
    assert!(
        verified["broken"]["reason"]
            .as_str()
            .unwrap()
            .contains("plain SHA-256 after keyed ones"),
        "{verified}"
    );

    // The whole chain re-computed plain from the first event, then followed by keyed
    // events as the server goes on recording: the key store says it was keyed from event 1.
    forge_with_plain_chain(&data, 1, true).await;
    let verified = verify_in(&data).await;
    assert_eq!(verified["ok"], false, "{verified}");
    assert_eq!(verified["broken"]["seq"], 1, "{verified}");
    assert_eq!(verified["broken"]["reason"], does_not_match);
}

#[tokio::test]
async fn tampering_with_the_audit_log_in_the_file_is_named_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::start_in(&data, &admin_env());
    let a = s.sign_up("tamper@records.test").await;
    s.create_device(&a, "Door").await;
    s.create_device(&a, "Window").await;
    let root = token(&s, ROOT).await;
    let (_, verified) = s.get("/api/privacy/audit/verify", &root).await;
    assert_eq!(verified["ok"], true, "{verified}");
    let (_, log) = s
        .get("/api/privacy/audit?action=device.create", &root)
        .await;
    let forged = events(&log)[0]["seq"].as_i64().unwrap();
    s.stop();

    let db = rusqlite::Connection::open(data.join("thingsafe.db")).unwrap();
    // The triggers refuse a change through SQL...
    let refused = db
        .execute(
            "UPDATE audit_event SET action = 'device.rename' WHERE seq = ?1",
            [forged],
        )
        .unwrap_err();
    assert!(refused.to_string().contains("append-only"), "{refused}");
    let refused = db
        .execute("DELETE FROM audit_event WHERE seq = ?1", [forged])
        .unwrap_err();
    assert!(refused.to_string().contains("append-only"), "{refused}");
    // ...so an attacker with the file drops them first.
    db.execute_batch("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
        .unwrap();
    db.execute(
        "UPDATE audit_event SET details = '{\"gateway\":true}' WHERE seq = ?1",
        [forged],
    )
    .unwrap();
    drop(db);

    let s = Server::start_in(&data, &admin_env());
    let root = token(&s, ROOT).await;
    let (status, verified) = s.get("/api/privacy/audit/verify", &root).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(verified["ok"], false, "{verified}");
    assert_eq!(verified["broken"]["seq"], forged, "{verified}");
    assert_eq!(verified["broken"]["action"], "device.create");
    assert_eq!(
        verified["broken"]["reason"],
        "its content does not match its hash: the event was changed after it was recorded"
    );
    assert_eq!(verified["events"], forged - 1);
    s.stop();

    // Removing a row instead names the event after the gap.
    let db = rusqlite::Connection::open(data.join("thingsafe.db")).unwrap();
    db.execute("DELETE FROM audit_event WHERE seq = ?1", [forged])
        .unwrap();
    drop(db);
    let s = Server::start_in(&data, &admin_env());
    let root = token(&s, ROOT).await;
    let (_, verified) = s.get("/api/privacy/audit/verify", &root).await;
    assert_eq!(verified["broken"]["seq"], forged + 1, "{verified}");
    assert_eq!(
        verified["broken"]["reason"],
        format!(
            "event {forged} is missing: the log goes from {} to {}",
            forged - 1,
            forged + 1
        )
    );
}

#[tokio::test]
async fn erasing_a_person_leaves_the_chain_verifiable_and_their_part_unreadable() {
    let s = Server::start_with(&admin_env());
    let email = "erase-me@records.test";
    let user = s.sign_up(email).await;
    let id = user_id(&s, &user).await;
    s.create_device(&user, "Pacemaker monitor").await;
    let root = token(&s, ROOT).await;
    let by_person = format!("/api/privacy/audit?actor={id}");
    let (_, before) = s.get(&by_person, &root).await;
    let sign_up = &events(&before)[0];
    assert_eq!(sign_up["action"], "auth.sign_up");
    assert_eq!(sign_up["personalPart"], "readable");
    assert_eq!(sign_up["personal"]["email"], email);

    let (status, receipt) = s
        .call(
            reqwest::Method::DELETE,
            "/api/privacy/me",
            Some(&user),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{receipt}");

    let (status, verified) = s.get("/api/privacy/audit/verify", &root).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(verified["ok"], true, "{verified}");
    let (_, after) = s.get(&by_person, &root).await;
    let after = events(&after);
    assert_eq!(after.len(), events(&before).len() + 1);
    for event in &after[..after.len() - 1] {
        assert_eq!(event["personalPart"], "erased", "{event}");
        assert_eq!(event["personal"], Value::Null);
    }
    let erasure = after.last().unwrap();
    assert_eq!(erasure["action"], "privacy.erasure");
    assert_eq!(
        erasure["details"]["receipt"], receipt["receiptId"],
        "{receipt}"
    );
    assert_eq!(erasure["personalPart"], "none");
    let text = serde_json::to_string(&after).unwrap();
    assert!(!text.contains(email) && !text.contains("Pacemaker"));
    assert_absent_from_files(&s.data_dir, &[email, "Pacemaker monitor"]);
}

// --- disclosures -------------------------------------------------------------------------------

#[tokio::test]
async fn disclosures_are_logged_listed_by_year_and_given_to_the_person() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), &policy_with_processors());
    let mut env = admin_env();
    env.push(("THINGSAFE_PRIVACY_POLICY_FILE", policy.to_str().unwrap()));
    let s = Server::start_with(&env);
    let a = s.sign_up("disclosed@records.test").await;
    let b = s.sign_up("other@records.test").await;
    let a_id = user_id(&s, &a).await;
    let b_id = user_id(&s, &b).await;

    let (status, recorded) = s
        .post(
            "/api/privacy/disclosures",
            &a,
            json!({"subjectId": a_id, "categories": ["user.name", "user.contact.email", "user.name"],
                   "recipient": "Example Auditors LLP", "purpose": "Annual compliance audit"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{recorded}");
    assert_eq!(
        recorded["categories"],
        json!(["user.contact.email", "user.name"])
    );

    // Bad input, and a person of another tenant.
    for (body, message) in [
        (
            json!({"subjectId": a_id, "categories": ["user.financial"], "recipient": "X", "purpose": "Y"}),
            "\"user.financial\" is not a data category of the privacy policy: declare it there before disclosing it",
        ),
        (
            json!({"subjectId": a_id, "categories": [], "recipient": "X", "purpose": "Y"}),
            "a disclosure names the data categories that were disclosed",
        ),
        (
            json!({"subjectId": a_id, "categories": ["user.name"], "recipient": " ", "purpose": "Y"}),
            "a disclosure names its recipient and its purpose",
        ),
    ] {
        let (status, body) = s.post("/api/privacy/disclosures", &a, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["message"], message);
    }
    let (status, body) = s
        .post(
            "/api/privacy/disclosures",
            &a,
            json!({"subjectId": a_id, "categories": "user.name", "recipient": "X", "purpose": "Y"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["message"].as_str().unwrap().contains("categories"),
        "{body}"
    );
    let (status, _) = s
        .post(
            "/api/privacy/disclosures",
            &a,
            json!({"subjectId": b_id, "categories": ["user.name"], "recipient": "X", "purpose": "Y"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let year = 1970 + now_ms() / 31_556_952_000;
    let (status, report) = s
        .get(&format!("/api/privacy/disclosures?year={year}"), &a)
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let recipients = report["recipients"].as_array().unwrap();
    let auditor = recipients
        .iter()
        .find(|r| r["recipient"] == "Example Auditors LLP")
        .unwrap();
    assert_eq!(
        auditor["categories"],
        json!(["user.contact.email", "user.name"])
    );
    assert_eq!(auditor["disclosures"], 1);
    assert_eq!(auditor["subjects"], 1);
    assert_eq!(auditor["declaredProcessor"], false);
    let cloud = recipients
        .iter()
        .find(|r| r["recipient"] == "Example Cloud Inc.")
        .unwrap();
    assert_eq!(cloud["declaredProcessor"], true);
    assert_eq!(
        cloud["categories"],
        json!(["user.contact.email", "user.device.telemetry"])
    );
    // Another year, another tenant: only the declared processors.
    let (_, old) = s.get("/api/privacy/disclosures?year=2001", &a).await;
    assert_eq!(old["recipients"].as_array().unwrap().len(), 2, "{old}");
    let (_, theirs) = s
        .get(&format!("/api/privacy/disclosures?year={year}"), &b)
        .await;
    assert!(
        theirs["recipients"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["recipient"] != "Example Auditors LLP")
    );
    let (status, body) = s.get("/api/privacy/disclosures?year=last", &a).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("year"), "{body}");

    let (status, mine) = s.get("/api/privacy/me/disclosures", &a).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mine["disclosures"][0]["recipient"], "Example Auditors LLP");
    assert_eq!(mine["disclosures"][0]["purpose"], "Annual compliance audit");
    assert_eq!(mine["processors"].as_array().unwrap().len(), 2);
    let (_, bobs) = s.get("/api/privacy/me/disclosures", &b).await;
    assert_eq!(bobs["disclosures"], json!([]));

    let files = s.export(&a).await;
    let in_zip: Value = serde_json::from_str(&files["disclosures.json"]).unwrap();
    assert_eq!(in_zip["disclosures"], mine["disclosures"]);

    let root = token(&s, ROOT).await;
    let (_, log) = s
        .get("/api/privacy/audit?action=disclosure.record", &root)
        .await;
    assert_eq!(
        events(&log)[0]["details"]["recipient"],
        "Example Auditors LLP"
    );

    // The tenant-wide export hands the administrator the other people's account details:
    // a disclosure for each of them, which they see.
    let (carol_token, _) = s.customer_user(&a, "carol@records.test").await;
    let carol_id = user_id(&s, &carol_token).await;
    let (_, carol) = s.get("/api/auth/user", &carol_token).await;
    let (_, before) = s.get("/api/privacy/me/disclosures", &carol_token).await;
    assert_eq!(before["disclosures"], json!([]));
    let resp = s
        .http
        .get(s.url("/api/privacy/tenant/export"))
        .header("X-Authorization", format!("Bearer {a}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.bytes().await.unwrap();
    let (_, after) = s.get("/api/privacy/me/disclosures", &carol_token).await;
    assert_eq!(
        after["disclosures"],
        json!([{"subject": carol_id, "tenantId": carol["tenantId"]["id"],
                "categories": ["user.contact.email", "user.name"],
                "recipient": format!("tenant administrator {a_id}"),
                "purpose": "tenant-wide export",
                "time": after["disclosures"][0]["time"]}]),
        "{after}"
    );
    // The administrator's own details are not disclosed to themselves.
    let (_, mine) = s.get("/api/privacy/me/disclosures", &a).await;
    assert_eq!(mine["disclosures"].as_array().unwrap().len(), 1, "{mine}");
}

// --- breaches ----------------------------------------------------------------------------------

fn rfc3339_hours_ago(hours: i64) -> String {
    let t = now_ms() / 1000 - hours * 3600;
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Civil date from days since 1970 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn breach_body(detected_at: &str, categories: Value) -> Value {
    json!({
        "nature": "A copy of the user table was exposed by a misconfigured backup bucket",
        "categories": categories,
        "approxSubjects": 40,
        "consequences": "Email addresses and names may be used for phishing",
        "measures": "Bucket closed, access keys rotated, people told to beware of phishing",
        "detectedAt": detected_at,
    })
}

#[tokio::test]
async fn the_breach_register_keeps_the_72_hour_clock_and_finds_and_notifies_people() {
    let s = Server::start_with(&admin_env());
    let a = s.sign_up("breached@records.test").await;
    let b = s.sign_up("unbreached@records.test").await;
    let customer = create_customer(&s, &a).await;
    let (status, nameless) = s
        .post(
            "/api/user",
            &a,
            json!({"email": "nameless@records.test", "authority": "CUSTOMER_USER",
                   "customerId": {"entityType": "CUSTOMER", "id": customer}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{nameless}");

    let (status, late) = s
        .post(
            "/api/privacy/breaches",
            &a,
            breach_body(&rfc3339_hours_ago(80), json!(["user.name"])),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{late}");
    assert_eq!(late["overdue"], true, "{late}");
    assert!(late["hoursLeft"].as_f64().unwrap() < -7.0);
    let (status, fresh) = s
        .post(
            "/api/privacy/breaches",
            &a,
            breach_body(
                &(now_ms() - 3_600_000).to_string(),
                json!(["user.contact.email"]),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{fresh}");
    assert_eq!(fresh["overdue"], false);
    let left = fresh["hoursLeft"].as_f64().unwrap();
    assert!((70.8..=71.0).contains(&left), "{fresh}");
    assert_eq!(
        fresh["notifyByTime"],
        fresh["detectedTime"].as_i64().unwrap() + 72 * 3_600_000
    );

    // What Art. 33(3) asks must be there, and make sense.
    let mut no_nature = breach_body(&rfc3339_hours_ago(1), json!(["user.name"]));
    no_nature["nature"] = json!("");
    for (body, status, message) in [
        (
            no_nature,
            StatusCode::BAD_REQUEST,
            "\"nature\" is empty: GDPR Art. 33(3) asks the nature of the breach",
        ),
        (
            breach_body(&rfc3339_hours_ago(-2), json!(["user.name"])),
            StatusCode::BAD_REQUEST,
            "\"detectedAt\" is in the future",
        ),
        (
            breach_body("last tuesday", json!(["user.name"])),
            StatusCode::BAD_REQUEST,
            "detectedAt \"last tuesday\" is not a time: give milliseconds since 1970 or RFC 3339 (2026-11-23T10:00:00Z)",
        ),
        (
            json!({"nature": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing field `categories`",
        ),
    ] {
        let (got, body) = s.post("/api/privacy/breaches", &a, body).await;
        assert_eq!(got, status, "{body}");
        assert!(
            body["message"].as_str().unwrap().contains(message),
            "{body}"
        );
    }
    let (status, body) = s
        .post(
            "/api/privacy/breaches",
            &a,
            breach_body(
                &rfc3339_hours_ago(1),
                json!(["user.financial.bank_account"]),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("\"categories\": \"user.financial.bank_account\" is not a data category of the privacy policy")
    );

    let (_, list) = s.get("/api/privacy/breaches", &a).await;
    assert_eq!(list["breaches"].as_array().unwrap().len(), 2);
    let (_, theirs) = s.get("/api/privacy/breaches", &b).await;
    assert_eq!(theirs["breaches"], json!([]));
    let late_id = late["id"].as_str().unwrap();
    let (status, _) = s
        .get(&format!("/api/privacy/breaches/{late_id}/subjects"), &b)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let root = token(&s, ROOT).await;
    let (status, installation) = s
        .post(
            "/api/privacy/breaches",
            &root,
            breach_body(&rfc3339_hours_ago(2), json!(["user.contact.email"])),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{installation}");
    assert_eq!(installation["tenantId"], Value::Null);
    let (_, all) = s.get("/api/privacy/breaches", &root).await;
    assert_eq!(all["breaches"].as_array().unwrap().len(), 3);

    // The authority told (late: Art. 33(1) wants the reasons for the delay).
    let notified_path = format!("/api/privacy/breaches/{late_id}/notified");
    let (status, told) = s
        .post(
            &notified_path,
            &a,
            json!({"notifiedAt": rfc3339_hours_ago(0), "reference": "DPA-2026-0042"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{told}");
    assert_eq!(told["overdue"], false);
    assert_eq!(told["notifiedLate"], true);
    assert_eq!(told["hoursLeft"], Value::Null);
    assert_eq!(told["authorityReference"], "DPA-2026-0042");
    let (status, again) = s
        .post(
            &notified_path,
            &a,
            json!({"notifiedAt": rfc3339_hours_ago(0)}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        again["message"],
        "the supervisory authority's notification of this breach is already recorded"
    );

    // user.name: the administrator gave a name, the customer user none.
    let (status, subjects) = s
        .get(&format!("/api/privacy/breaches/{late_id}/subjects"), &a)
        .await;
    assert_eq!(status, StatusCode::OK, "{subjects}");
    let emails: Vec<&str> = subjects["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["breached@records.test"]);
    assert_eq!(subjects["notified"], json!([]));
    // user.contact.email: everyone of the tenant, nobody of the other.
    let fresh_id = fresh["id"].as_str().unwrap();
    let (_, subjects) = s
        .get(&format!("/api/privacy/breaches/{fresh_id}/subjects"), &a)
        .await;
    assert_eq!(subjects["subjects"].as_array().unwrap().len(), 2);

    let (status, sent) = s
        .post(
            &format!("/api/privacy/breaches/{fresh_id}/subjects/notify"),
            &a,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    assert_eq!(sent["notified"].as_array().unwrap().len(), 2);
    let notice = sent["notices"][0]["notice"].as_str().unwrap();
    assert!(notice.contains("misconfigured backup bucket"), "{notice}");
    assert!(notice.contains("dpo@example.com"), "{notice}");
    assert_eq!(sent["notices"][0]["mailed"], true, "{sent}");
    // Each affected person is mailed their notice (Art. 34), the unaffected nobody.
    for to in ["breached@records.test", "nameless@records.test"] {
        let mails = s.mails_to(to);
        assert_eq!(mails.len(), 1, "{to}: {mails:?}");
        assert!(
            mails[0].contains("Subject: A personal data breach concerning you"),
            "{}",
            mails[0]
        );
        assert!(
            mails[0].contains("misconfigured backup bucket"),
            "{}",
            mails[0]
        );
        assert!(mails[0].contains("dpo@example.com"), "{}", mails[0]);
    }
    assert!(s.mails_to("unbreached@records.test").is_empty());
    // Asking again tells nobody twice.
    let (status, again) = s
        .post(
            &format!("/api/privacy/breaches/{fresh_id}/subjects/notify"),
            &a,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["notices"], json!([]), "{again}");
    assert_eq!(s.mails_to("breached@records.test").len(), 1);
    let (_, subjects) = s
        .get(&format!("/api/privacy/breaches/{fresh_id}/subjects"), &a)
        .await;
    assert_eq!(subjects["notified"].as_array().unwrap().len(), 2);

    let (_, log) = s.get("/api/privacy/audit", &a).await;
    let breach_actions: Vec<&str> = actions(&log)
        .into_iter()
        .filter(|a| a.starts_with("breach."))
        .collect();
    assert_eq!(
        breach_actions,
        [
            "breach.record",
            "breach.record",
            "breach.authority_notified",
            "breach.subjects_notified"
        ]
    );
}

// --- records of processing and data map ------------------------------------------------------------

#[tokio::test]
async fn the_records_of_processing_and_the_data_map_follow_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), &policy_with_processors());
    let s = Server::start_with(&[("THINGSAFE_PRIVACY_POLICY_FILE", policy.to_str().unwrap())]);
    let a = s.sign_up("ropa@records.test").await;

    let (status, ropa) = s.get("/api/privacy/ropa", &a).await;
    assert_eq!(status, StatusCode::OK, "{ropa}");
    assert_eq!(ropa["controller"]["email"], "privacy@example.com");
    assert_eq!(ropa["dpo"]["email"], "dpo@example.com");
    assert_eq!(ropa["transfers"][0]["recipient"], "Example Cloud Inc.");
    assert_eq!(
        ropa["transfers"][0]["safeguards"],
        "Standard contractual clauses."
    );
    assert_eq!(ropa["transfers"].as_array().unwrap().len(), 1);
    assert_eq!(ropa["recipients"].as_array().unwrap().len(), 2);
    let (_, published) = s
        .call(reqwest::Method::GET, "/api/privacy/policy", None, None)
        .await;
    assert_eq!(ropa["policyVersion"], published["version"]);

    let resp = s
        .http
        .get(s.url("/api/privacy/ropa?format=csv"))
        .header("X-Authorization", format!("Bearer {a}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
    let csv_text = resp.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    assert_eq!(&reader.headers().unwrap()[4], "purpose");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let marketing = rows
        .iter()
        .find(|r| &r[4] == "marketing")
        .expect("a marketing row");
    assert_eq!(&marketing[6], "consent");
    assert_eq!(&marketing[7], "user.contact.email");
    assert_eq!(&marketing[13], "account_lifetime");

    let resp = s
        .http
        .get(s.url("/api/privacy/datamap"))
        .header("X-Authorization", format!("Bearer {a}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"],
        "application/yaml; charset=utf-8"
    );
    let yaml_text = resp.text().await.unwrap();
    fides_reads(&yaml_text);
    let yaml: Value = serde_yaml_ng::from_str(&yaml_text).expect("YAML");
    let system = &yaml["system"][0];
    assert_eq!(system["fides_key"], "thingsafe");
    let declarations = system["privacy_declarations"].as_array().unwrap();
    let uses: Vec<&str> = declarations
        .iter()
        .map(|d| d["data_use"].as_str().unwrap())
        .collect();
    assert_eq!(uses, ["essential", "functional", "marketing"]);
    let named: std::collections::BTreeSet<&str> = declarations
        .iter()
        .flat_map(|d| d["data_categories"].as_array().unwrap())
        .map(|c| c.as_str().unwrap())
        .collect();
    let declared: std::collections::BTreeSet<&str> = ropa["dataCategories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["category"].as_str().unwrap())
        .collect();
    assert_eq!(named, declared);
    assert!(
        declarations
            .iter()
            .all(|d| d["data_subjects"] == json!(["customer"]))
    );
    assert_eq!(yaml["system"].as_array().unwrap().len(), 3);

    let (status, body) = s.get("/api/privacy/ropa?format=xml", &a).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["message"],
        "format \"xml\" is not offered: use json or csv"
    );
    let (status, _) = s
        .call(reqwest::Method::GET, "/api/privacy/datamap", None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// Fides' own models (the `fideslang` package) read the data map, and know every data
/// category, data use and data subject it names.
fn fides_reads(yaml: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let Some(python) = common::python_with(
        "the_records_of_processing_and_the_data_map_follow_the_policy",
        "fideslang, yaml",
        "pip install fideslang==3.1.4",
    ) else {
        return;
    };
    let mut child = Command::new(&python)
        .args(["-c", FIDES_CHECK])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("ok:"),
        "fideslang refused the data map:\n{stdout}\n{}\n{yaml}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const FIDES_CHECK: &str = r#"
import sys, yaml
from fideslang.models import Taxonomy
from fideslang.default_taxonomy import DEFAULT_TAXONOMY
taxonomy = Taxonomy(**yaml.safe_load(sys.stdin))
known = lambda items: {i.fides_key for i in items}
categories = known(DEFAULT_TAXONOMY.data_category)
declared = taxonomy.data_category or []
problems = [f"{c.fides_key}: unknown parent {c.parent_key}" for c in declared if c.parent_key not in categories | known(declared)]
categories |= known(declared)
uses = known(DEFAULT_TAXONOMY.data_use)
subjects = known(DEFAULT_TAXONOMY.data_subject)
for system in taxonomy.system:
    for d in system.privacy_declarations:
        problems += [f"{system.fides_key}: unknown data category {c}" for c in d.data_categories if c not in categories]
        problems += [f"{system.fides_key}: unknown data use {d.data_use}"] if d.data_use not in uses else []
        problems += [f"{system.fides_key}: unknown data subject {s}" for s in d.data_subjects if s not in subjects]
for dataset in taxonomy.dataset:
    problems += [f"{dataset.fides_key}: unknown data category {c}" for c in dataset.data_categories if c not in categories]
print("\n".join(problems) or f"ok: {len(taxonomy.system)} systems, {len(taxonomy.dataset)} datasets")
"#;

// --- classification --------------------------------------------------------------------------------

#[tokio::test]
async fn classified_keys_follow_their_categorys_retention_and_are_named_in_the_export() {
    let dir = tempfile::tempdir().unwrap();
    // Precise location is kept for one hour here; telemetry for the account's lifetime.
    let text = include_str!("../../core/privacy.toml").replace(
        "purposes = { essential = \"contract\" }\nretention = \"account_lifetime\"\n\n# Processors",
        "purposes = { essential = \"contract\" }\nretention = \"1h\"\n\n# Processors",
    );
    assert!(
        text.contains("retention = \"1h\""),
        "the test policy changed"
    );
    let policy = write_policy(dir.path(), &text);
    let s = Server::start_with(&[("THINGSAFE_PRIVACY_POLICY_FILE", policy.to_str().unwrap())]);
    let a = s.sign_up("classify@records.test").await;
    let device = s.device_with_token(&a, "Tracker", "tracker-token").await;

    for (body, message) in [
        (
            json!({"lat": "user.location.imprecise"}),
            "\"lat\": \"user.location.imprecise\" is not declared in the privacy policy; it declares user.authorization.credentials",
        ),
        (
            json!({"lat": "system.operations"}),
            "\"lat\": \"system.operations\" is not a fideslang category of personal data (user.*)",
        ),
        (
            json!({"": "user.location.precise"}),
            "a telemetry key is empty",
        ),
    ] {
        let (status, body) = put(&s, "/api/privacy/classification", &a, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["message"].as_str().unwrap().starts_with(message),
            "{body}"
        );
    }
    let (status, body) = put(&s, "/api/privacy/classification", &a, json!(["lat"])).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    let (status, set) = put(
        &s,
        "/api/privacy/classification",
        &a,
        json!({"lat": "user.location.precise", "lon": "user.location.precise"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{set}");
    let (_, got) = s.get("/api/privacy/classification", &a).await;
    assert_eq!(
        got,
        json!({"lat": "user.location.precise", "lon": "user.location.precise"})
    );
    let other = s.sign_up("unclassified@records.test").await;
    let (_, theirs) = s.get("/api/privacy/classification", &other).await;
    assert_eq!(theirs, json!({}));

    let now = now_ms();
    let old = now - 3 * 3_600_000;
    let resp = s
        .http
        .post(s.url("/api/v1/tracker-token/telemetry"))
        .json(&json!([
            {"ts": old, "values": {"lat": 52.1, "lon": 4.3, "temperature": 21.5}},
            {"ts": now, "values": {"lat": 52.2, "lon": 4.4, "temperature": 22.0}},
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let (status, sweep) = s.post("/api/privacy/retention/sweep", &a, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{sweep}");
    assert_eq!(sweep["telemetryPoints"], 2, "{sweep}");
    assert_eq!(sweep["error"], Value::Null);
    let series = s
        .timeseries(
            &a,
            &device,
            &format!("keys=lat,lon,temperature&startTs=0&endTs={}", now + 1),
        )
        .await;
    let times = |key: &str| -> Vec<i64> {
        series[key]
            .as_array()
            .map(|points| points.iter().map(|p| p["ts"].as_i64().unwrap()).collect())
            .unwrap_or_default()
    };
    assert_eq!(times("lat"), [now], "{series}");
    assert_eq!(times("lon"), [now], "{series}");
    let mut temperature = times("temperature");
    temperature.sort();
    assert_eq!(temperature, [old, now], "{series}");

    let files = s.export(&a).await;
    let devices: Value = serde_json::from_str(&files["devices.json"]).unwrap();
    let keys = &devices[0]["telemetryKeys"];
    assert_eq!(
        keys,
        &json!([
            {"key": "lat", "category": "user.location.precise"},
            {"key": "lon", "category": "user.location.precise"},
            {"key": "temperature", "category": "user.device.telemetry"},
        ])
    );

    let (_, log) = s
        .get(
            "/api/privacy/audit?action=privacy.classification_change",
            &a,
        )
        .await;
    assert_eq!(events(&log)[0]["details"]["keys"], 2);
    assert!(!serde_json::to_string(&log).unwrap().contains("\"lat\""));
}
