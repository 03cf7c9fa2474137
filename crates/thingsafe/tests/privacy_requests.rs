//! Data-subject requests through the real HTTP API: the signed-in lifecycle (due date from
//! the policy, extension, audit trail, mails), requests without an account verified by
//! the code mailed into `data/outbox/`, tenant isolation of the queue, rectification,
//! restriction, objection, and the Art. 19 notices to a processor's webhook with retries.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{PASSWORD, Server};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;
const ROOT: &str = "root@example.test";

/// Every file of the data directory but the outbox (mail is plaintext, as sent mail is).
fn assert_absent_outside_outbox(s: &Server, needles: &[&str]) {
    let outbox = s.data_dir.join("outbox");
    let files: Vec<_> = common::files_under(&s.data_dir)
        .into_iter()
        .filter(|f| !f.starts_with(&outbox))
        .collect();
    assert!(files.iter().any(|f| f.ends_with("thingsafe.db")));
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        for needle in needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle:?} in plaintext in {}",
                file.display()
            );
        }
    }
}

fn code_in(mail: &str) -> String {
    let at = mail.find("your code is: ").expect("a code in the message") + 14;
    mail[at..at + 6].to_string()
}

fn actions(request: &Value) -> Vec<String> {
    request["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

async fn patch(s: &Server, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    s.call(Method::PATCH, path, Some(token), Some(body)).await
}

async fn root_token(s: &Server) -> String {
    let (status, body) = s.login(ROOT, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["token"].as_str().unwrap().to_string()
}

fn with_root<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("THINGSAFE_ADMIN_EMAIL", ROOT),
        ("THINGSAFE_ADMIN_PASSWORD", PASSWORD),
    ];
    env.extend_from_slice(extra);
    env
}

#[tokio::test]
async fn a_signed_in_request_is_due_by_the_policy_deadline_extended_once_and_audited() {
    let s = Server::start();
    let ada = s.sign_up("ada@example.test").await;
    let me: Value = s.get("/api/auth/user", &ada).await.1;
    let ada_id = me["id"]["id"].as_str().unwrap().to_string();

    // Access needs the password again; malformed bodies say what is wrong.
    let (status, body) = s
        .post("/api/privacy/requests", &ada, json!({"type": "ACCESS"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("password"),
        "{body}"
    );
    let (status, body) = s
        .post(
            "/api/privacy/requests",
            &ada,
            json!({"type": "ACCESS", "password": "not the password"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["message"], "The password is not right");
    let (status, body) = s
        .post("/api/privacy/requests", &ada, json!({"type": "DELETE"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["message"],
        "\"type\" \"DELETE\" is not a kind of request: use one of ACCESS, PORTABILITY, RECTIFICATION, ERASURE, RESTRICTION, OBJECTION"
    );
    let (status, body) = s
        .post(
            "/api/privacy/requests",
            &ada,
            json!({"type": "ACCESS", "colour": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `colour`"),
        "{body}"
    );
    assert!(
        s.get("/api/privacy/me/requests", &ada)
            .await
            .1
            .as_array()
            .unwrap()
            .is_empty()
    );

    let (status, request) = s
        .post(
            "/api/privacy/requests",
            &ada,
            json!({"type": "ACCESS", "details": "my thermostat's history", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{request}");
    assert_eq!(request["status"], "VERIFIED");
    assert_eq!(request["user"], ada_id);
    let created = request["createdTime"].as_i64().unwrap();
    assert_eq!(request["dueTime"].as_i64().unwrap(), created + 30 * DAY_MS);
    let id = request["id"].as_str().unwrap().to_string();
    let receipts = s.mails_to("ada@example.test");
    assert_eq!(receipts.len(), 1, "a receipt is mailed");
    assert!(receipts[0].contains(&id), "{}", receipts[0]);

    // Ada is her tenant's administrator: her queue shows it; not overdue, due within 30 days.
    let (status, queue) = s.get("/api/privacy/requests", &ada).await;
    assert_eq!(status, StatusCode::OK, "{queue}");
    assert_eq!(queue.as_array().unwrap().len(), 1);
    assert!(
        s.get("/api/privacy/requests?due=overdue", &ada)
            .await
            .1
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        s.get("/api/privacy/requests?due=soon", &ada)
            .await
            .1
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.get("/api/privacy/requests?status=VERIFIED", &ada)
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (status, body) = s.get("/api/privacy/requests?due=later", &ada).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"].as_str().unwrap().contains("\"overdue\""),
        "{body}"
    );
    let (status, body) = s.get("/api/privacy/requests?status=DONE", &ada).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"].as_str().unwrap().contains("COMPLETED"),
        "{body}"
    );

    let path = |action: &str| format!("/api/privacy/requests/{id}/{action}");
    let (status, r) = s.post(&path("assign"), &ada, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(
        (r["status"].as_str(), r["assignee"].as_str()),
        (Some("IN_PROGRESS"), Some(ada_id.as_str()))
    );
    let (status, body) = s
        .post(
            &path("extend"),
            &ada,
            json!({"days": 61, "reason": "many devices"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = s.post(&path("extend"), &ada, json!({"days": "ten"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["message"].as_str().unwrap().contains("days"), "{body}");
    let (status, r) = s
        .post(
            &path("extend"),
            &ada,
            json!({"days": 30, "reason": "many devices"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["dueTime"].as_i64().unwrap(), created + 60 * DAY_MS);
    assert_eq!(r["extended"], true);
    let (status, body) = s
        .post(&path("extend"), &ada, json!({"days": 10, "reason": "more"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("extended already"),
        "{body}"
    );
    assert!(
        s.mails_to("ada@example.test")
            .iter()
            .any(|m| m.contains("many devices")),
        "the person is told why it takes longer"
    );
    let (status, r) = s
        .post(&path("complete"), &ada, json!({"note": "export sent"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["status"], "COMPLETED");
    assert!(r["closedTime"].as_i64().is_some());
    let (status, body) = s.post(&path("reject"), &ada, json!({"reason": "x"})).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a closed request stays closed: {body}"
    );

    let (status, r) = s.get(&format!("/api/privacy/requests/{id}"), &ada).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        actions(&r),
        ["RECEIVED", "VERIFIED", "ASSIGNED", "EXTENDED", "COMPLETED"]
    );
    let events = r["events"].as_array().unwrap();
    assert_eq!(events[0]["actor"], "requester");
    assert_eq!(events[2]["actor"], ada_id);
    assert_eq!(events[3]["note"], "30 days: many devices");
    assert!(
        events
            .iter()
            .all(|e| e["time"].as_i64().unwrap() >= created)
    );
    assert!(
        s.mails_to("ada@example.test")
            .last()
            .unwrap()
            .contains("is complete"),
        "the person is told of the completion"
    );
    let mine = s.get("/api/privacy/me/requests", &ada).await.1;
    assert_eq!(mine[0]["status"], "COMPLETED");
    // The details and notes are sealed: in plaintext only in the mails of the outbox.
    assert_absent_outside_outbox(&s, &["my thermostat's history", "many devices"]);
}

#[tokio::test]
async fn a_short_policy_deadline_puts_a_request_in_the_due_soon_queue() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("privacy.toml");
    let text = thingsafe_core::policy::DEFAULT_POLICY
        .replace("request_deadline = \"30d\"", "request_deadline = \"2h\"");
    std::fs::write(&policy, text).unwrap();
    let s = Server::start_with(&[("THINGSAFE_PRIVACY_POLICY_FILE", policy.to_str().unwrap())]);
    let ada = s.sign_up("ada@example.test").await;
    let (status, r) = s
        .post(
            "/api/privacy/requests",
            &ada,
            json!({"type": "RECTIFICATION", "details": "my name"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    let created = r["createdTime"].as_i64().unwrap();
    assert_eq!(r["dueTime"].as_i64().unwrap(), created + 2 * 60 * 60 * 1000);
    let soon = s.get("/api/privacy/requests?due=soon", &ada).await.1;
    assert_eq!(soon.as_array().unwrap().len(), 1, "{soon}");
    let overdue = s.get("/api/privacy/requests?due=overdue", &ada).await.1;
    assert!(overdue.as_array().unwrap().is_empty(), "{overdue}");
}

#[tokio::test]
async fn a_request_without_an_account_is_verified_by_the_mailed_code() {
    let s = Server::start_with(&with_root(&[]));
    let root = root_token(&s).await;
    let ada = s.sign_up("ada@example.test").await;
    let public = |body: Value| {
        s.call(
            Method::POST,
            "/api/privacy/requests/public",
            None,
            Some(body),
        )
    };

    let (status, body) = public(json!({"email": "not-an-address", "type": "ERASURE"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("not an email address"),
        "{body}"
    );
    let (status, body) = public(json!({"type": "ERASURE"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("missing field `email`"),
        "{body}"
    );

    let (status, body) = public(json!({
        "email": "Grace@Example.test", "type": "ERASURE", "details": "the newsletter list"
    }))
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "RECEIVED");
    let id = body["id"].as_str().unwrap().to_string();
    let mails = s.mails_to("grace@example.test");
    assert_eq!(mails.len(), 1);
    let code = code_in(&mails[0]);
    let wrong = if code == "000000" { "111111" } else { "000000" };

    let verify_path = format!("/api/privacy/requests/{id}/verify");
    let verify = |code: &str| {
        s.call(
            Method::POST,
            &verify_path,
            None,
            Some(json!({ "code": code })),
        )
    };
    let (status, body) = verify(wrong).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["message"], "The code is not right: 4 attempts left");
    let (status, body) = verify(&code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "VERIFIED");
    let (status, body) = verify(&code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a code works once: {body}");
    assert_eq!(
        s.mails_to("grace@example.test").len(),
        2,
        "and a receipt follows"
    );

    // The system administrator handles requests of people without an account; a tenant
    // administrator does not see them.
    let (status, r) = s.get(&format!("/api/privacy/requests/{id}"), &root).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["email"], "grace@example.test");
    assert_eq!(r["details"], "the newsletter list");
    assert_eq!(actions(&r), ["RECEIVED", "CODE_REFUSED", "VERIFIED"]);
    let (status, _) = s.get(&format!("/api/privacy/requests/{id}"), &ada).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        s.get("/api/privacy/requests", &ada)
            .await
            .1
            .as_array()
            .unwrap()
            .is_empty()
    );
    let (status, r) = s
        .post(
            &format!("/api/privacy/requests/{id}/reject"),
            &root,
            json!({"reason": "  "}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{r}");
    let (status, r) = s
        .post(
            &format!("/api/privacy/requests/{id}/reject"),
            &root,
            json!({"reason": "we hold nothing about this address"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert!(
        s.mails_to("grace@example.test")
            .last()
            .unwrap()
            .contains("we hold nothing")
    );
}

#[tokio::test]
async fn a_tenant_administrator_sees_only_the_requests_of_their_tenant() {
    let s = Server::start();
    let a = s.sign_up("a@example.test").await;
    let b = s.sign_up("b@example.test").await;
    let mut ids = Vec::new();
    for token in [&a, &b] {
        let (status, r) = s
            .post(
                "/api/privacy/requests",
                token,
                json!({"type": "RECTIFICATION"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{r}");
        ids.push(r["id"].as_str().unwrap().to_string());
    }
    let (ra, rb) = (ids[0].clone(), ids[1].clone());
    let queue = s.get("/api/privacy/requests", &a).await.1;
    let ids: Vec<&str> = queue
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [ra.as_str()]);
    let (status, _) = s.get(&format!("/api/privacy/requests/{rb}"), &a).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s
        .post(
            &format!("/api/privacy/requests/{rb}/complete"),
            &a,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s.get(&format!("/api/privacy/requests/{rb}"), &b).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = s.get("/api/privacy/requests/not-a-uuid", &b).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

fn unzip(bytes: &[u8]) -> std::collections::BTreeMap<String, String> {
    use std::io::Read;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut file = archive.by_index(i).unwrap();
            let mut text = String::new();
            file.read_to_string(&mut text).unwrap();
            (file.name().unwrap().to_string(), text)
        })
        .collect()
}

async fn exported_profile(s: &Server, token: &str) -> Value {
    let resp = reqwest::Client::new()
        .get(s.url("/api/privacy/me/export"))
        .header("X-Authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let files = unzip(&resp.bytes().await.unwrap());
    serde_json::from_str(&files["profile.json"]).unwrap()
}

#[tokio::test]
async fn rectification_changes_what_the_export_shows_and_keeps_emails_unique() {
    let s = Server::start();
    let ada = s.sign_up("ada@example.test").await;
    s.sign_up("taken@example.test").await;

    let (status, body) = patch(&s, "/api/privacy/me", &ada, json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Nothing to change"),
        "{body}"
    );
    let (status, body) = patch(&s, "/api/privacy/me", &ada, json!({"nickname": "A"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = patch(&s, "/api/privacy/me", &ada, json!({"firstName": "Augusta"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(exported_profile(&s, &ada).await["firstName"], "Augusta");

    let (status, body) = patch(
        &s,
        "/api/privacy/me",
        &ada,
        json!({"email": "king@example.test"}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "an email change needs the password: {body}"
    );
    let (status, body) = patch(
        &s,
        "/api/privacy/me",
        &ada,
        json!({"email": "taken@example.test", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["message"], "another account has this email address");
    let (status, body) = patch(
        &s,
        "/api/privacy/me",
        &ada,
        json!({"email": "King@Example.test", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        exported_profile(&s, &ada).await["email"],
        "king@example.test"
    );
    // The blind index follows: the new address signs in, the old one no longer does.
    assert_eq!(
        s.login("king@example.test", PASSWORD).await.0,
        StatusCode::OK
    );
    assert_eq!(
        s.login("ada@example.test", PASSWORD).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_absent_outside_outbox(&s, &["Augusta", "king@example.test"]);
}

/// A processor's webhook on 127.0.0.1: answers 500 to the first notice, 200 afterwards,
/// and keeps every body it was sent with the status it answered.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<(u16, Value)>>>,
}

async fn receiver() -> Receiver {
    let got: Arc<Mutex<Vec<(u16, Value)>>> = Arc::default();
    let kept = got.clone();
    let app = axum::Router::new().route(
        "/notices",
        axum::routing::post(move |body: axum::Json<Value>| {
            let kept = kept.clone();
            async move {
                let mut kept = kept.lock().unwrap();
                let status = if kept.is_empty() { 500 } else { 200 };
                kept.push((status, body.0));
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notices", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver { url, got }
}

impl Receiver {
    fn bodies(&self) -> Vec<(u16, Value)> {
        self.got.lock().unwrap().clone()
    }

    /// Waits (up to 20 s) until `n` notices were answered 200.
    async fn wait_delivered(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok: Vec<Value> = self
                .bodies()
                .into_iter()
                .filter(|(s, _)| *s == 200)
                .map(|(_, b)| b)
                .collect();
            if ok.len() >= n {
                return ok;
            }
            assert!(Instant::now() < deadline, "only {ok:?} delivered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn policy_with_processor(dir: &std::path::Path, url: &str) -> std::path::PathBuf {
    let path = dir.join("privacy.toml");
    let text = format!(
        "{}\n[[processors]]\nname = \"Mailer\"\nservice = \"Sends our emails.\"\ncountry = \"FR\"\ncategories = [\"user.contact.email\", \"user.name\"]\nnotify_url = \"{url}\"\n",
        thingsafe_core::policy::DEFAULT_POLICY
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn rectification_reaches_the_processor_with_retries_and_restriction_holds_it_back() {
    let hook = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_with_processor(dir.path(), &hook.url);
    let s = Server::start_with(&with_root(&[(
        "THINGSAFE_PRIVACY_POLICY_FILE",
        policy.to_str().unwrap(),
    )]));
    let root = root_token(&s).await;
    let ada = s.sign_up("ada@example.test").await;
    let me: Value = s.get("/api/auth/user", &ada).await.1;
    let ada_id = me["id"]["id"].as_str().unwrap().to_string();
    let (status, _) = s
        .call(
            Method::PUT,
            "/api/privacy/me/consents",
            Some(&ada),
            Some(json!({"purposes": {"marketing": true}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Art. 19: a rectification is posted to the processor; its first answer is 500, the
    // retry (after a second's backoff) succeeds.
    let (status, body) = patch(&s, "/api/privacy/me", &ada, json!({"lastName": "King"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let delivered = hook.wait_delivered(1).await;
    let all = hook.bodies();
    assert_eq!(all[0].0, 500, "the first attempt failed");
    assert_eq!(all[0].1, all[1].1, "the same notice was retried");
    assert_eq!(delivered[0]["event"], "rectification");
    assert_eq!(delivered[0]["subject"], ada_id);
    assert_eq!(delivered[0]["categories"], json!(["user.name"]));
    assert!(!delivered[0].to_string().contains("ada@example.test"));
    // The receiver has answered; the server records the delivery right after.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let seen = loop {
        let (status, seen) = s.get("/api/privacy/me/recipients", &ada).await;
        assert_eq!(status, StatusCode::OK, "{seen}");
        if seen["notices"][0]["deliveredTime"].as_i64().is_some()
            || std::time::Instant::now() > deadline
        {
            break seen;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(seen["recipients"][0]["name"], "Mailer");
    assert_eq!(seen["recipients"][0]["toldOfChanges"], true);
    let notice = &seen["notices"][0];
    assert_eq!(
        (notice["processor"].as_str(), notice["attempts"].as_u64()),
        (Some("Mailer"), Some(2))
    );
    assert!(notice["deliveredTime"].as_i64().is_some());

    // Restriction: marketing stops, the processor is told of the restriction only; a
    // rectification meanwhile is held back.
    let (status, restriction) = s.post("/api/privacy/me/restriction", &ada, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{restriction}");
    let consents = s.get("/api/privacy/me/consents", &ada).await.1;
    assert_eq!(consents["marketingAllowed"], false, "{consents}");
    let delivered = hook.wait_delivered(2).await;
    assert_eq!(delivered[1]["event"], "restriction");
    let (status, _) = patch(&s, "/api/privacy/me", &ada, json!({"firstName": "Augusta"})).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        hook.bodies().len(),
        3,
        "nothing but the restriction went out: {:?}",
        hook.bodies()
    );
    let held = s.get("/api/privacy/me/recipients", &ada).await.1;
    assert!(held["restrictedSince"].as_i64().is_some());
    assert!(held["notices"][2]["deliveredTime"].is_null(), "{held}");

    // Lifting: the person is told first, then the held notice and the lifting go out.
    let rid = restriction["id"].as_str().unwrap();
    let (status, lifted) = s
        .post(
            &format!("/api/privacy/requests/{rid}/lift"),
            &root,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{lifted}");
    assert_eq!(lifted["status"], "COMPLETED");
    assert!(
        s.mails_to("ada@example.test")
            .iter()
            .any(|m| m.contains("about to be lifted"))
    );
    let delivered = hook.wait_delivered(4).await;
    let events: Vec<&str> = delivered[2..]
        .iter()
        .map(|d| d["event"].as_str().unwrap())
        .collect();
    assert!(
        events.contains(&"rectification") && events.contains(&"restriction_lifted"),
        "{events:?}"
    );
    let consents = s.get("/api/privacy/me/consents", &ada).await.1;
    assert_eq!(consents["marketingAllowed"], true, "{consents}");
}

#[tokio::test]
async fn an_objection_to_marketing_withdraws_it_at_once_and_a_form_cannot_undo_it() {
    let s = Server::start();
    let ada = s.sign_up("ada@example.test").await;
    let put = |body: Value| {
        s.call(
            Method::PUT,
            "/api/privacy/me/consents",
            Some(&ada),
            Some(body),
        )
    };
    assert_eq!(
        put(json!({"purposes": {"marketing": true}})).await.0,
        StatusCode::OK
    );

    let (status, body) = s
        .post(
            "/api/privacy/requests",
            &ada,
            json!({"type": "OBJECTION", "purpose": "profiling"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, r) = s
        .post(
            "/api/privacy/requests",
            &ada,
            json!({"type": "OBJECTION", "purpose": "marketing"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    assert_eq!(r["status"], "COMPLETED");
    let consents = s.get("/api/privacy/me/consents", &ada).await.1;
    let marketing = consents["current"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["purpose"] == "marketing")
        .unwrap()
        .clone();
    assert_eq!(
        (marketing["granted"].as_bool(), marketing["method"].as_str()),
        (Some(false), Some("objection"))
    );
    assert_eq!(consents["marketingAllowed"], false);

    let (status, body) = put(json!({"purposes": {"marketing": true}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("withdrawObjection"),
        "{body}"
    );
    let (status, body) =
        put(json!({"purposes": {"marketing": true}, "withdrawObjection": true})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["marketingAllowed"], true);
}
