//! The privacy policy as code, through the real binary: the page and the JSON rendered from
//! `privacy.toml`, versions published at start, an invalid policy refused, and the sign-up
//! gates it sets (minimum age, acceptance of the current version).

mod common;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use common::{PASSWORD, Server, assert_absent_from_files};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The built-in default, as shipped.
const DEFAULT_POLICY: &str = include_str!("../../core/privacy.toml");

/// The default plus an analytics purpose and two processors.
fn richer_policy() -> String {
    format!(
        r#"{DEFAULT_POLICY}
[purposes.analytics]
description = "Counting how often features are used, to decide what to improve."

[categories."user.behavior.browsing_history"]
description = "Which pages of the console you open."
source = "Your browser."
purposes = {{ analytics = "consent" }}
retention = "6mo"

[[processors]]
name = "Postbote Mail GmbH"
service = "Delivers the emails we send you."
country = "DE"
categories = ["user.contact.email", "user.name"]

[[processors]]
name = "Faraway Metrics Inc."
service = "Counts feature use for us."
country = "US"
categories = ["user.behavior.browsing_history"]
safeguards = "Standard contractual clauses (EU 2021/914)."
"#
    )
}

fn write_policy(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("privacy.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn with_policy(path: &Path) -> [(&'static str, &str); 1] {
    [(
        "THINGSAFE_PRIVACY_POLICY_FILE",
        path.to_str().expect("a UTF-8 path"),
    )]
}

/// `YYYY-01-01` of `n` years ago (within a year, which is all the tests need).
fn january_first_years_ago(n: i64) -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let year = 1970 + secs / 31_556_952;
    format!("{}-01-01", year - n)
}

fn signup_body(email: &str, accepted: Option<u64>) -> Value {
    let mut body = json!({
        "email": email, "password": PASSWORD, "firstName": "Ada", "lastName": "Lovelace",
        "birthDate": "1990-12-10"
    });
    if let Some(v) = accepted {
        body["acceptedPolicyVersion"] = json!(v);
    }
    body
}

async fn get_json(s: &Server, path: &str) -> (StatusCode, Value) {
    s.call(Method::GET, path, None, None).await
}

/// Rows of a table of the stopped server's database.
fn count(data_dir: &Path, sql: &str) -> i64 {
    let db = rusqlite::Connection::open(data_dir.join("thingsafe.db")).unwrap();
    db.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn the_policy_page_is_rendered_from_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), &richer_policy());
    let s = Server::start_in(&dir.path().join("data"), &with_policy(&policy));

    let resp = s.http.get(s.url("/privacy")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/html; charset=utf-8"
    );
    let csp = resp.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    let html = resp.text().await.unwrap();

    // Everything the JSON declares is on the page.
    let (_, current) = get_json(&s, "/api/privacy/policy").await;
    let policy = &current["policy"];
    for key in policy["categories"].as_object().unwrap().keys() {
        assert!(html.contains(key.as_str()), "category {key} missing");
    }
    for (key, purpose) in policy["purposes"].as_object().unwrap() {
        assert!(
            html.contains(&format!("<code>{key}</code>")),
            "purpose {key} missing"
        );
        let description = purpose["description"].as_str().unwrap();
        assert!(html.contains(description), "{description} missing");
    }
    for (name, record) in policy["records"].as_object().unwrap() {
        let description = record["description"].as_str().unwrap();
        // As HTML escapes it: askama writes an apostrophe as &#39;.
        let shown = description.replace('\'', "&#39;").replace('"', "&quot;");
        let shown_hex = description.replace('\'', "&#x27;").replace('"', "&quot;");
        assert!(
            html.contains(description) || html.contains(&shown) || html.contains(&shown_hex),
            "record {name} missing: {description}"
        );
    }
    for processor in policy["processors"].as_array().unwrap() {
        let name = processor["name"].as_str().unwrap();
        assert!(html.contains(name), "processor {name} missing");
    }
    assert_eq!(policy["processors"].as_array().unwrap().len(), 2);
    for needle in [
        "<html lang=\"en\">",
        "<h1>Privacy policy</h1>",
        "Version 1, published",
        "Germany (DE)",
        "United States (US), outside the European Economic Area",
        "Standard contractual clauses (EU 2021/914).",
        "Your consent (GDPR Art. 6(1)(a))",
        "Our contract with you (GDPR Art. 6(1)(b))",
        "6 months",
        "as long as your account exists",
        "not for people under 16",
        "We answer within 30 days",
        "privacy@example.com",
        "dpo@example.com",
        "(Art. 15)",
        "(Art. 16)",
        "(Art. 17)",
        "(Art. 18)",
        "(Art. 19)",
        "(Art. 20)",
        "(Art. 21)",
        "<caption>Personal data we collect</caption>",
        "<th scope=\"col\">",
    ] {
        assert!(html.contains(needle), "{needle} missing from the page");
    }
    for external in ["<script", "<img", "<link", "src=", "url("] {
        assert!(!html.contains(external), "{external} on the page");
    }
}

#[tokio::test]
async fn the_policy_as_json_with_its_versions() {
    let s = Server::start();
    let (status, current) = get_json(&s, "/api/privacy/policy").await;
    assert_eq!(status, StatusCode::OK, "{current}");
    assert_eq!(current["version"], 1);
    assert_eq!(current["material"], true);
    assert_eq!(current["sha256"].as_str().unwrap().len(), 64);
    assert!(current["publishedTime"].as_i64().unwrap() > 1_700_000_000_000);
    let policy = &current["policy"];
    assert_eq!(policy["minimumAge"], 16);
    assert_eq!(policy["requestDeadline"], "30d");
    assert_eq!(policy["automatedDecisionMaking"], Value::Null);
    assert_eq!(policy["cookies"], json!(["necessary", "functionality"]));
    assert_eq!(policy["controller"]["email"], "privacy@example.com");
    assert_eq!(
        policy["categories"]["user.demographic.date_of_birth"],
        json!({
            "description": "Your birth date, asked at sign-up to check that you are old enough to use the service.",
            "source": "You, when you sign up.",
            "purposes": {"essential": "legal_obligation"},
            "retention": "account_lifetime"
        })
    );
    assert_eq!(
        policy["categories"]["user.device.ip_address"]["retention"],
        "30d"
    );
    assert_eq!(policy["processors"], json!([]));

    let (status, versions) = get_json(&s, "/api/privacy/policy/versions").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        versions,
        json!([{
            "version": 1,
            "sha256": current["sha256"],
            "publishedTime": current["publishedTime"],
            "material": true
        }])
    );
    let (status, one) = get_json(&s, "/api/privacy/policy/versions/1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one, current);
    let (status, err) = get_json(&s, "/api/privacy/policy/versions/2").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        err["message"].as_str().unwrap().contains("never published"),
        "{err}"
    );
    let (status, err) = get_json(&s, "/api/privacy/policy/versions/latest").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        err["message"].as_str().unwrap().contains("whole number"),
        "{err}"
    );
}

#[tokio::test]
async fn a_changed_policy_is_published_as_a_new_version_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let path = write_policy(dir.path(), DEFAULT_POLICY);

    let s = Server::start_in(&data, &with_policy(&path));
    assert_eq!(s.policy_version().await, 1);
    s.sign_up("first@example.com").await;
    let (_, v1) = get_json(&s, "/api/privacy/policy").await;
    assert!(s.stop().success());

    // The same content, laid out differently and commented: no new version.
    let relaid = format!(
        "# Our policy.\n\n{}",
        DEFAULT_POLICY.replace(" = ", "   =   ")
    );
    std::fs::write(&path, relaid).unwrap();
    let s = Server::start_in(&data, &with_policy(&path));
    let (_, versions) = get_json(&s, "/api/privacy/policy/versions").await;
    assert_eq!(versions.as_array().unwrap().len(), 1, "{versions}");
    assert!(s.stop().success());

    // Longer retention: version 2, material.
    std::fs::write(
        &path,
        DEFAULT_POLICY.replace("retention = \"30d\"", "retention = \"90d\""),
    )
    .unwrap();
    let s = Server::start_in(&data, &with_policy(&path));
    let (_, v2) = get_json(&s, "/api/privacy/policy").await;
    assert_eq!(
        (v2["version"].clone(), v2["material"].clone()),
        (json!(2), json!(true))
    );
    assert_eq!(
        v2["policy"]["categories"]["user.device.ip_address"]["retention"],
        "90d"
    );
    assert_ne!(v2["sha256"], v1["sha256"]);
    // The version accepted before is no longer enough.
    let (status, err) = s
        .call(
            Method::POST,
            "/api/noauth/signup",
            None,
            Some(signup_body("second@example.com", Some(1))),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("version 1 is not the current privacy policy: version 2 is"),
        "{err}"
    );
    s.sign_up("second@example.com").await;
    // Version 1 stays readable as it was.
    let (_, old) = get_json(&s, "/api/privacy/policy/versions/1").await;
    assert_eq!(old, v1);
    assert!(s.stop().success());

    // New wording only: version 3, not material.
    std::fs::write(
        &path,
        DEFAULT_POLICY
            .replace("retention = \"30d\"", "retention = \"90d\"")
            .replace("dpo@example.com", "dpo@acme.example"),
    )
    .unwrap();
    let s = Server::start_in(&data, &with_policy(&path));
    let (_, versions) = get_json(&s, "/api/privacy/policy/versions").await;
    let summary: Vec<(u64, bool)> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_u64().unwrap(),
                v["material"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(summary, [(1, true), (2, true), (3, false)]);
    let html = s
        .http
        .get(s.url("/privacy"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Version 3, published") && html.contains("dpo@acme.example"));
    assert!(s.stop().success());

    // Each account records the version it accepted.
    let accepted: Vec<i64> = {
        let db = rusqlite::Connection::open(data.join("thingsafe.db")).unwrap();
        let mut stmt = db
            .prepare("SELECT accepted_policy_version FROM app_user ORDER BY created_ms")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(accepted, [1, 2]);
}

#[test]
fn an_invalid_policy_stops_start_up_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = DEFAULT_POLICY.replace(
        "purposes = { essential = \"legitimate_interest\" }",
        "purposes = { essential = \"legitimate_interests\" }",
    );
    let line = bad
        .lines()
        .position(|l| l.contains("legitimate_interests"))
        .unwrap()
        + 1;
    let age_line = DEFAULT_POLICY
        .lines()
        .position(|l| l.starts_with("minimum_age = 16"))
        .unwrap()
        + 1;
    for (text, needles) in [
        (
            bad,
            vec![
                format!("line {line}, column "),
                "unknown legal basis \"legitimate_interests\"".to_string(),
                format!("{line} | purposes = {{ essential = \"legitimate_interests\" }}"),
            ],
        ),
        (
            DEFAULT_POLICY.replace("minimum_age = 16", "minimum_age = 12"),
            vec![
                format!("line {}, column 15", age_line),
                "minimum_age 12 is out of range".to_string(),
            ],
        ),
        (
            "[controller\nname = 1\n".to_string(),
            vec!["line 1, column ".to_string()],
        ),
    ] {
        let path = write_policy(dir.path(), &text);
        let data = dir.path().join("data");
        let out = std::process::Command::new(common::binary())
            .args(["serve", "--data-dir"])
            .arg(&data)
            .env("THINGSAFE_PRIVACY_POLICY_FILE", &path)
            .env("THINGSAFE_HTTP_ADDR", "127.0.0.1:0")
            .env("THINGSAFE_MQTT_ADDR", "127.0.0.1:0")
            .env("THINGSAFE_HTTP_TLS_ADDR", "127.0.0.1:0")
            .env("THINGSAFE_MQTT_TLS_ADDR", "127.0.0.1:0")
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("invalid privacy policy {}", path.display())),
            "{err}"
        );
        for needle in needles {
            assert!(err.contains(&needle), "{needle:?} not in {err}");
        }
        assert!(!data.exists(), "the data directory was created");
    }
    // A missing file is named with its config key.
    let out = std::process::Command::new(common::binary())
        .args(["serve", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("THINGSAFE_PRIVACY_POLICY_FILE", "/nonexistent/privacy.toml")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/privacy.toml") && err.contains("privacy.policy_file"),
        "{err}"
    );
}

#[tokio::test]
async fn an_under_age_sign_up_is_refused_and_nothing_about_the_person_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::start_in(&data, &[]);
    let version = s.policy_version().await;
    let birth = january_first_years_ago(10);
    let (status, err) = s
        .call(
            Method::POST,
            "/api/noauth/signup",
            None,
            Some(json!({
                "email": "Kiddo.Youngling@underage-check.example", "password": PASSWORD,
                "firstName": "Kiddorino", "lastName": "Younglingsson", "birthDate": birth,
                "organization": "Younglingsson Toys", "acceptedPolicyVersion": version
            })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{err}");
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains("at least 16 years old")
            && message.contains("/privacy")
            && message.contains("Nothing you entered has been kept"),
        "{message}"
    );
    let (status, _) = s
        .login("kiddo.youngling@underage-check.example", PASSWORD)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(s.stop().success());

    assert_eq!(count(&data, "SELECT COUNT(*) FROM app_user"), 0);
    assert_eq!(count(&data, "SELECT COUNT(*) FROM tenant"), 0);
    assert_absent_from_files(
        &data,
        &[
            "kiddo.youngling",
            "underage-check",
            "Kiddorino",
            "Younglingsson",
            &birth,
            "correct horse",
        ],
    );
}

#[tokio::test]
async fn a_sign_up_must_accept_the_current_policy_version() {
    let s = Server::start();
    let current = s.policy_version().await;
    assert_eq!(current, 1);
    for (accepted, needle) in [
        (
            None,
            "accepting the privacy policy is required: read version 1 at http://",
        ),
        (
            Some(0),
            "version 0 is not the current privacy policy: version 1 is",
        ),
        (
            Some(2),
            "version 2 is not the current privacy policy: version 1 is",
        ),
    ] {
        let (status, err) = s
            .call(
                Method::POST,
                "/api/noauth/signup",
                None,
                Some(signup_body("late@example.com", accepted)),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
        let message = err["message"].as_str().unwrap();
        assert!(message.starts_with("acceptedPolicyVersion: "), "{message}");
        assert!(message.contains(needle), "{message}");
        assert!(
            message.contains("/privacy") && message.contains("\"acceptedPolicyVersion\": 1"),
            "{message}"
        );
        assert_eq!(err["errorCode"], 30);
        assert_eq!(
            s.login("late@example.com", PASSWORD).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    // Not a number: the JSON error names the field.
    let mut body = signup_body("late@example.com", None);
    body["acceptedPolicyVersion"] = json!("one");
    let (status, err) = s
        .call(Method::POST, "/api/noauth/signup", None, Some(body))
        .await;
    assert!(status.is_client_error(), "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("acceptedPolicyVersion"),
        "{err}"
    );

    let (status, body) = s
        .call(
            Method::POST,
            "/api/noauth/signup",
            None,
            Some(signup_body("late@example.com", Some(current))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        s.login("late@example.com", PASSWORD).await.0,
        StatusCode::OK
    );
}

/// After a material change, a person who accepted an older version is asked to review the
/// new one (wording-only changes do not ask); accepting records it on the account and in
/// the consent ledger.
#[tokio::test]
async fn people_are_asked_to_review_a_materially_changed_policy_and_their_acceptance_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let path = write_policy(dir.path(), DEFAULT_POLICY);
    let s = Server::start_in(&data, &with_policy(&path));
    let email = "reviewer@example.com";
    let user = s.sign_up(email).await;
    let (status, review) = s.get("/api/privacy/me/policy-review", &user).await;
    assert_eq!(status, StatusCode::OK, "{review}");
    assert_eq!(review["reviewNeeded"], false);
    assert_eq!(review["acceptedVersion"], 1);
    assert!(s.stop().success());

    // Wording only: nothing to ask.
    std::fs::write(
        &path,
        DEFAULT_POLICY.replace("dpo@example.com", "dpo@acme.example"),
    )
    .unwrap();
    let s = Server::start_in(&data, &with_policy(&path));
    let (_, pair) = s.login(email, PASSWORD).await;
    let user = pair["token"].as_str().unwrap().to_string();
    let (_, review) = s.get("/api/privacy/me/policy-review", &user).await;
    assert_eq!(review["currentVersion"], 2);
    assert_eq!(review["reviewNeeded"], false, "{review}");
    assert!(s.stop().success());

    // Longer retention: material, the person is asked.
    std::fs::write(
        &path,
        DEFAULT_POLICY
            .replace("dpo@example.com", "dpo@acme.example")
            .replace("retention = \"30d\"", "retention = \"90d\""),
    )
    .unwrap();
    let s = Server::start_in(&data, &with_policy(&path));
    let (_, pair) = s.login(email, PASSWORD).await;
    let user = pair["token"].as_str().unwrap().to_string();
    let (_, review) = s.get("/api/privacy/me/policy-review", &user).await;
    assert_eq!(review["reviewNeeded"], true, "{review}");
    let since: Vec<(u64, bool)> = review["sinceAccepted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_u64().unwrap(),
                v["material"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(since, [(2, false), (3, true)]);
    assert_eq!(review["policyUrl"], "/privacy");

    // Accepting an old version is refused and says which; the current one is recorded.
    let (status, body) = s
        .post(
            "/api/privacy/me/policy-review",
            &user,
            json!({"version": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"].as_str().unwrap().contains("read version 3"),
        "{body}"
    );
    let (status, review) = s
        .post(
            "/api/privacy/me/policy-review",
            &user,
            json!({"version": 3}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{review}");
    assert_eq!(review["reviewNeeded"], false);
    assert_eq!(review["acceptedVersion"], 3);
    let files = s.export(&user).await;
    let consents: Value = serde_json::from_str(&files["consents.json"]).unwrap();
    let entry = consents["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["purpose"] == "privacy_policy")
        .expect("the acceptance is in the ledger");
    assert_eq!(entry["method"], "review");
    assert_eq!(entry["policyVersion"], 3);
    let profile: Value = serde_json::from_str(&files["profile.json"]).unwrap();
    assert_eq!(profile["acceptedPolicyVersion"], 3);
}

#[tokio::test]
async fn telemetry_carries_the_policy_version_it_was_received_under_into_the_export() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let path = write_policy(dir.path(), DEFAULT_POLICY);
    let s = Server::start_in(&data, &with_policy(&path));
    let http = reqwest::Client::new();
    let post = |s: &Server, ts: i64, value: i64| {
        let request = http
            .post(s.url("/api/v1/stamped-token/telemetry"))
            .json(&json!([{"ts": ts, "values": {"level": value}}]));
        async move {
            assert_eq!(request.send().await.unwrap().status(), StatusCode::OK);
        }
    };
    let user = s.sign_up("stamped@example.com").await;
    let device = s.device_with_token(&user, "Tank", "stamped-token").await;
    post(&s, 1_000, 1).await;
    assert!(s.stop().success());

    // A new version; the first batch may still be in the log or already in a chunk.
    std::fs::write(
        &path,
        DEFAULT_POLICY.replace("dpo@example.com", "dpo@acme.example"),
    )
    .unwrap();
    let s = Server::start_in(&data, &with_policy(&path));
    assert_eq!(s.policy_version().await, 2);
    post(&s, 2_000, 2).await;
    let (_, pair) = s.login("stamped@example.com", PASSWORD).await;
    let user = pair["token"].as_str().unwrap().to_string();
    let read = |files: &std::collections::BTreeMap<String, String>| {
        files[&format!("telemetry/{device}.csv")]
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let before_flush = read(&s.export(&user).await);
    // Once the flush moved both batches into chunks, each keeps its version.
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    let after_flush = read(&s.export(&user).await);
    for lines in [before_flush, after_flush] {
        assert_eq!(
            lines,
            [
                "time,ts_ms,key,value,policy_version",
                "1970-01-01T00:00:01Z,1000,level,1,1",
                "1970-01-01T00:00:02Z,2000,level,2,2",
            ]
        );
    }
    assert!(s.stop().success());
}
