//! A person's privacy rights through the real HTTP API: consents (off until given, withdrawn
//! in one call or one click), cookie choices and GPC, the personal data export, and erasure
//! by crypto-shredding.

mod common;

use common::{PASSWORD, Server, assert_absent_from_files};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn put(s: &Server, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    s.call(reqwest::Method::PUT, path, Some(token), Some(body))
        .await
}

fn current<'a>(consents: &'a Value, purpose: &str) -> &'a Value {
    consents["current"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["purpose"] == purpose)
        .unwrap_or_else(|| panic!("{purpose} in {consents}"))
}

#[tokio::test]
async fn consents_are_off_until_given_and_withdrawn_in_one_call_or_one_click() {
    let s = Server::start();
    let user = s.sign_up("consent@example.test").await;

    let (status, consents) = s.get("/api/privacy/me/consents", &user).await;
    assert_eq!(status, StatusCode::OK, "{consents}");
    let marketing = current(&consents, "marketing");
    assert_eq!(marketing["granted"], false, "marketing is off unless given");
    assert_eq!(marketing["method"], "signup");
    let version = s.policy_version().await;
    assert_eq!(marketing["policyVersion"], version);

    let (status, consents) = put(
        &s,
        "/api/privacy/me/consents",
        &user,
        json!({"purposes": {"marketing": true}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{consents}");
    assert_eq!(current(&consents, "marketing")["granted"], true);
    assert_eq!(consents["history"].as_array().unwrap().len(), 2);

    let (status, body) = put(
        &s,
        "/api/privacy/me/consents",
        &user,
        json!({"purposes": {"analytics": true}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["message"],
        "\"analytics\" cannot be consented to: the privacy policy asks consent for marketing"
    );

    // One click in a message, without signing in.
    let link = consents["unsubscribeUrl"].as_str().unwrap().to_string();
    let path = link
        .split_once("/api/")
        .map(|(_, p)| format!("/api/{p}"))
        .unwrap();
    let page = reqwest::get(s.url(&path)).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("You are unsubscribed"));
    let (_, consents) = s.get("/api/privacy/me/consents", &user).await;
    let marketing = current(&consents, "marketing");
    assert_eq!(marketing["granted"], false);
    assert_eq!(marketing["method"], "unsubscribe_link");

    // A forged or cut link does nothing and says why.
    let last = if path.ends_with('A') { "B" } else { "A" };
    let forged = format!("{}{last}", &path[..path.len() - 1]);
    let (status, body) = s.call(reqwest::Method::GET, &forged, None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // A browser sending Global Privacy Control opts out, whatever the form says.
    let resp = reqwest::Client::new()
        .put(s.url("/api/privacy/me/consents"))
        .header("X-Authorization", format!("Bearer {user}"))
        .header("Sec-GPC", "1")
        .json(&json!({"purposes": {"marketing": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let consents: Value = resp.json().await.unwrap();
    assert_eq!(consents["signal"], "GPC");
    assert_eq!(current(&consents, "marketing")["granted"], false);
    let history = consents["history"].as_array().unwrap();
    assert_eq!(
        history.len(),
        3,
        "the signal did not record a second withdrawal"
    );
}

#[tokio::test]
async fn sign_up_records_a_marketing_opt_in_and_gpc_overrides_it() {
    let s = Server::start();
    let version = s.policy_version().await;
    let sign_up = |email: &'static str, gpc: bool| {
        let mut req = reqwest::Client::new()
            .post(s.url("/api/noauth/signup"))
            .json(&json!({
                "email": email, "password": PASSWORD, "birthDate": "1990-01-01",
                "acceptedPolicyVersion": version, "marketing": true
            }));
        if gpc {
            req = req.header("Sec-GPC", "1");
        }
        async move {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::CREATED);
            let body: Value = resp.json().await.unwrap();
            body["token"].as_str().unwrap().to_string()
        }
    };
    let opted_in = sign_up("optin@example.test", false).await;
    let (_, consents) = s.get("/api/privacy/me/consents", &opted_in).await;
    assert_eq!(current(&consents, "marketing")["granted"], true);
    let signalled = sign_up("gpc@example.test", true).await;
    let (_, consents) = s.get("/api/privacy/me/consents", &signalled).await;
    let marketing = current(&consents, "marketing");
    assert_eq!(marketing["granted"], false);
    assert_eq!(marketing["method"], "signal:GPC");
}

#[tokio::test]
async fn visitors_choose_cookies_by_category_and_gpc_is_honoured() {
    let s = Server::start();
    let http = reqwest::Client::new();

    let gpc = http
        .get(s.url("/.well-known/gpc.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(gpc.status(), StatusCode::OK);
    assert_eq!(gpc.json::<Value>().await.unwrap()["gpc"], true);

    let first = http
        .get(s.url("/api/privacy/cookies"))
        .send()
        .await
        .unwrap();
    assert!(
        first.headers().get("set-cookie").is_none(),
        "no cookie before a choice"
    );
    let view: Value = first.json().await.unwrap();
    let names: Vec<&str> = view["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["necessary", "functionality"]);
    assert_eq!(view["choice"], Value::Null);
    assert_eq!(view["allowed"], json!(["necessary"]));

    let chose = http
        .post(s.url("/api/privacy/cookies"))
        .json(&json!({"cookies": {"functionality": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(chose.status(), StatusCode::OK);
    let cookie = chose.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("ts_cookie_consent="), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
    let visitor = cookie.split(';').next().unwrap().to_string();
    let view: Value = chose.json().await.unwrap();
    assert_eq!(view["choice"]["functionality"], true);
    assert_eq!(view["allowed"], json!(["necessary", "functionality"]));

    // The choice is remembered by the necessary cookie alone.
    let again: Value = http
        .get(s.url("/api/privacy/cookies"))
        .header("Cookie", &visitor)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["choice"]["functionality"], true);

    // Reject all is one call too; a GPC browser is opted out whatever it sends.
    let signalled: Value = http
        .post(s.url("/api/privacy/cookies"))
        .header("Cookie", &visitor)
        .header("Sec-GPC", "1")
        .json(&json!({"cookies": {"functionality": true}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(signalled["signal"], "GPC");
    assert_eq!(signalled["choice"]["functionality"], false);
    assert_eq!(signalled["allowed"], json!(["necessary"]));

    for (body, needle, code) in [
        (
            json!({"cookies": {"advertising": true}}),
            "advertising",
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"cookies": {"necessary": false}}),
            "cannot be turned off",
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"cookie": {}}),
            "unknown field",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let resp = http
            .post(s.url("/api/privacy/cookies"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), code, "{body}");
        let message = resp.json::<Value>().await.unwrap()["message"].to_string();
        assert!(message.contains(needle), "{message}");
    }
}

#[tokio::test]
async fn a_person_downloads_a_complete_zip_of_their_data() {
    let s = Server::start();
    let user = s.sign_up("export@example.test").await;
    let other = s.sign_up("someone-else@example.test").await;
    let device = s
        .device_with_token(&user, "Greenhouse", "export-token-1")
        .await;
    s.device_with_token(&other, "NotMine", "other-token-1")
        .await;
    let http = reqwest::Client::new();
    for batch in 0..6 {
        let points: Vec<Value> = (batch * 500..(batch + 1) * 500)
            .map(|i| json!({"ts": 1_700_000_000_000i64 + i, "values": {"temperature": i, "note": format!("n{i}")}}))
            .collect();
        let resp = http
            .post(s.url("/api/v1/export-token-1/telemetry"))
            .json(&points)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let resp = http
        .post(s.url("/api/v1/export-token-1/attributes"))
        .json(&json!({"firmware": "1.2.3"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let files = s.export(&user).await;
    for name in [
        "README.txt",
        "profile.json",
        "consents.json",
        "consents.csv",
        "login_history.json",
        "login_history.csv",
        "devices.json",
        "disclosures.json",
        "processing.json",
    ] {
        assert!(
            files.contains_key(name),
            "{name} missing: {:?}",
            files.keys()
        );
    }
    let profile: Value = serde_json::from_str(&files["profile.json"]).unwrap();
    assert_eq!(profile["email"], "export@example.test");
    assert_eq!(profile["firstName"], "Ada");
    assert_eq!(profile["birthDate"], "1990-12-10");
    assert_eq!(profile["acceptedPolicyVersion"], s.policy_version().await);

    let devices: Value = serde_json::from_str(&files["devices.json"]).unwrap();
    let devices = devices.as_array().unwrap();
    assert_eq!(devices.len(), 1, "only the caller's devices: {devices:?}");
    assert_eq!(devices[0]["name"], "Greenhouse");
    assert_eq!(devices[0]["attributes"][0]["key"], "firmware");
    assert_eq!(devices[0]["attributes"][0]["value"], "1.2.3");

    let csv = &files[&format!("telemetry/{device}.csv")];
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "time,ts_ms,key,value,policy_version");
    assert_eq!(lines.len(), 1 + 6_000, "every point of both keys");
    let version = s.policy_version().await;
    assert!(csv.contains(&format!(",1700000000000,temperature,0,{version}\r\n")));
    assert!(csv.contains(",1700000002999,note,n2999"));

    assert!(files["login_history.csv"].lines().count() >= 2);
    assert!(files["consents.csv"].contains("marketing,no,signup"));
    let processing: Value = serde_json::from_str(&files["processing.json"]).unwrap();
    let categories: Vec<&str> = processing["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["category"].as_str().unwrap())
        .collect();
    assert!(categories.contains(&"user.device.telemetry"));
    assert!(processing["controller"]["email"].is_string());

    // Without a session there is nothing to download.
    let (status, _) = s
        .call(reqwest::Method::GET, "/api/privacy/me/export", None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn erasure_destroys_the_key_and_takes_the_tenant_with_its_last_administrator() {
    let kept_dir = tempfile::tempdir().unwrap();
    let s = Server::start_in(&kept_dir.path().join("data"), &[]);
    let email = "erase-me@example.test";
    let user = s.sign_up(email).await;
    let other = s.sign_up("stays@example.test").await;
    let (_, me) = s.get("/api/auth/user", &user).await;
    let user_id = me["id"]["id"].as_str().unwrap().to_string();
    s.device_with_token(&user, "Bedroom sensor Quimby", "erase-token-77")
        .await;
    let kept = s.device_with_token(&other, "Kitchen", "kept-token-1").await;
    let http = reqwest::Client::new();
    for (token, value) in [
        ("erase-token-77", "heartbeat-zyxwvu"),
        ("kept-token-1", "kept-value"),
    ] {
        s.post_telemetry(token, json!({"pulse": value})).await;
    }
    let erase = |password: Option<&str>| {
        let body = match password {
            Some(p) => json!({ "password": p }),
            None => json!({}),
        };
        s.call(
            reqwest::Method::DELETE,
            "/api/privacy/me",
            Some(&user),
            Some(body),
        )
    };

    let (status, body) = erase(None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap().contains("password"));
    let (status, body) = erase(Some("not the password")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("has not been erased")
    );
    let (status, _) = s.get("/api/auth/user", &user).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "still signed in after a wrong password"
    );

    let (status, receipt) = erase(Some(PASSWORD)).await;
    assert_eq!(status, StatusCode::OK, "{receipt}");
    assert_eq!(receipt["accountId"], user_id.as_str());
    let keys: Vec<&str> = receipt["destroyedKeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert!(
        keys.contains(&format!("user:{user_id}").as_str()),
        "{keys:?}"
    );
    assert!(keys.iter().any(|k| k.starts_with("tenant:")), "{keys:?}");
    assert!(receipt["erased"].to_string().contains("1 device(s)"));
    let erased: i64 = receipt["erasedTime"].as_i64().unwrap();
    let expires = time::OffsetDateTime::parse(
        receipt["backups"]["keyBackupsExpireAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(
        (expires.unix_timestamp_nanos() / 1_000_000) as i64,
        erased,
        "no key backup exists, so none holds the key: the erasure is complete everywhere now"
    );
    assert_eq!(receipt["backups"]["keyBackupsKeepDays"], 7);
    assert!(!receipt.to_string().contains(email));

    // Nothing works for the erased person or their devices any more.
    let (status, _) = s.get("/api/auth/user", &user).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = s.login(email, PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let resp = http
        .post(s.url("/api/v1/erase-token-77/telemetry"))
        .json(&json!({"pulse": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // Others are untouched.
    let series = s.timeseries(&other, &kept, "keys=pulse").await;
    assert_eq!(series["pulse"][0]["value"], "kept-value");
    // The address is free again.
    s.sign_up(email).await;

    // The rows are purged in the background; then the key store keeps only a tombstone.
    let dir = s.data_dir.clone();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let db = rusqlite::Connection::open_with_flags(
            dir.join("thingsafe.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let left: i64 = db
            .query_row(
                "SELECT COUNT(*) FROM erasure WHERE purged_ms IS NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        if left == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the purge did not finish"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    s.stop();
    let keys = rusqlite::Connection::open(dir.join("keys.db")).unwrap();
    let (wrapped, destroyed): (Option<Vec<u8>>, Option<i64>) = keys
        .query_row(
            "SELECT wrapped, destroyed_ms FROM data_key WHERE name = ?1",
            [format!("user:{user_id}")],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(wrapped.is_none() && destroyed.is_some());
    assert_absent_from_files(
        &dir,
        &[
            "Bedroom sensor Quimby",
            "erase-token-77",
            "heartbeat-zyxwvu",
            "Lovelace",
        ],
    );
}

#[tokio::test]
async fn expired_telemetry_is_gone_after_a_sweep_and_the_run_is_recorded() {
    let s = Server::start();
    let user = s.sign_up("retention@example.test").await;
    let other = s.sign_up("keeps-all@example.test").await;
    let device = s.device_with_token(&user, "Meter", "retention-token").await;
    let kept = s.device_with_token(&other, "Meter", "keeps-token").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let day = 24 * 3600 * 1000;
    let http = reqwest::Client::new();
    for token in ["retention-token", "keeps-token"] {
        let resp = http
            .post(s.url(&format!("/api/v1/{token}/telemetry")))
            .json(&json!([
                {"ts": now - 3 * day, "values": {"power": 1}},
                {"ts": now - 2 * day, "values": {"power": 2}},
                {"ts": now - 1000, "values": {"power": 3}},
            ]))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }

    // The built-in policy keeps telemetry for the account's lifetime; a tenant may choose
    // less, and nothing invalid.
    let (status, view) = s.get("/api/privacy/retention", &user).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["policyRetention"], "account_lifetime");
    assert_eq!(view["telemetryDays"], Value::Null);
    let (status, body) = put(
        &s,
        "/api/privacy/retention",
        &user,
        json!({"telemetryDays": 0}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, view) = put(
        &s,
        "/api/privacy/retention",
        &user,
        json!({"telemetryDays": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["telemetryDays"], 1);

    let (status, sweep) = s
        .post("/api/privacy/retention/sweep", &user, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{sweep}");
    assert_eq!(sweep["telemetryPoints"], 2, "{sweep}");
    assert_eq!(sweep["error"], Value::Null);

    let all = format!("keys=power&startTs=0&endTs={}&limit=100", now + day);
    let series = s.timeseries(&user, &device, &all).await;
    let values: Vec<&Value> = series["power"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["value"])
        .collect();
    assert_eq!(values, [&json!("3")], "only the point within a day is left");
    let series = s.timeseries(&other, &kept, &all).await;
    assert_eq!(
        series["power"].as_array().unwrap().len(),
        3,
        "another tenant's data follows its own retention"
    );
    let (_, view) = s.get("/api/privacy/retention", &user).await;
    assert_eq!(view["lastSweeps"][0]["telemetryPoints"], 2);
}
