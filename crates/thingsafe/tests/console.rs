//! The web console in a real browser (headless Chromium through chromedriver) against the
//! real binary; devices are real MQTT clients. Also the console's HTTP rules (security
//! headers, cookie sessions, CSRF) with a plain HTTP client.
//!
//! `THINGSAFE_SCREENSHOTS=1` also saves the README's screenshots into docs/screenshots/.

mod common;

use common::browser::{
    Browser, DESKTOP, PHONE, click, document, downloaded, element, fill, path_until,
    text_attr_until, text_until,
};
use common::mqtt::v3;
use common::{PASSWORD, Server};
use serde_json::json;

/// Sign-up in the browser: errors next to their field, then an account.
async fn sign_up_in_browser(c: &fantoccini::Client, s: &Server, email: &str) {
    c.goto(&s.url("/")).await.unwrap();
    path_until(c, "/signin").await;
    click(c, "a[href='/signup']").await;
    path_until(c, "/signup").await;
    // The policy is one click away; marketing is not pre-ticked.
    element(c, "label[for=accept_policy] a[href='/privacy']").await;
    let marketing = element(c, "#marketing").await;
    assert_eq!(
        marketing.prop("checked").await.unwrap().as_deref(),
        Some("false")
    );

    fill(c, "#email", email).await;
    fill(c, "#first_name", "Ada").await;
    fill(c, "#last_name", "Lovelace").await;
    fill(c, "#password", "short").await;
    // No birth date, no acceptance, a short password: said next to each field.
    click(c, "button[type=submit].primary").await;
    let birth = text_until(c, "#birth_date-error", |t| !t.is_empty()).await;
    assert!(birth.contains("date of birth"), "{birth}");
    let accept = text_until(c, "#accept_policy-error", |t| !t.is_empty()).await;
    assert!(accept.contains("privacy policy"), "{accept}");
    document(c, "signup-errors", DESKTOP).await;

    // A birth date (the browser's date field takes the digits in its locale order).
    c.execute(
        "document.getElementById('birth_date').value = '1990-12-10'",
        vec![],
    )
    .await
    .unwrap();
    click(c, "#accept_policy").await;
    fill(c, "#password", "short").await;
    click(c, "button[type=submit].primary").await;
    let password = text_until(c, "#password-error", |t| !t.is_empty()).await;
    assert!(password.to_lowercase().contains("10"), "{password}");
    // What was typed is kept, except the password.
    assert_eq!(
        element(c, "#email")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some(email)
    );
    fill(c, "#password", PASSWORD).await;
    click(c, "button[type=submit].primary").await;
    path_until(c, "/devices?welcome").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_create_device_live_chart_rpc_and_sign_out() {
    let Some(browser) = Browser::start("console-flow").await else {
        return;
    };
    let s = Server::start();
    let downloads = browser.downloads.clone();
    browser
        .run(|c| async move {
            let c = &c;
            sign_up_in_browser(c, &s, "ada@example.com").await;
            text_until(c, "main .notice", |t| t.contains("Welcome")).await;

            // First visit: the cookie banner asks; until then only necessary cookies exist.
            element(c, "#cookie-banner:not([hidden])").await;
            let before = cookie_names(c).await;
            assert_eq!(before, ["ts_refresh", "ts_session"], "before any choice");
            document(c, "cookie-banner", DESKTOP).await;
            click(c, "#cookie-choose").await;
            let functionality = element(c, "#cookie-functionality").await;
            assert_eq!(
                functionality.prop("checked").await.unwrap().as_deref(),
                Some("false")
            );
            functionality.click().await.unwrap();
            click(c, "#cookie-save").await;
            element(c, "#cookie-banner[hidden]").await;
            assert!(
                cookie_names(c)
                    .await
                    .contains(&"ts_cookie_consent".to_string())
            );
            let choice = fetch_json(c, "/api/privacy/cookies").await;
            assert_eq!(choice["choice"]["functionality"], true, "{choice}");
            // Seen again on the next page? No: the choice is remembered.
            c.refresh().await.unwrap();
            element(c, "#add-device-form").await;
            assert!(
                element(c, "#cookie-banner")
                    .await
                    .attr("hidden")
                    .await
                    .unwrap()
                    .is_some()
            );
            document(c, "devices-empty", DESKTOP).await;

            // Create a device: the token once, with commands for this server's real ports.
            click(c, "button[data-open=add-device]").await;
            fill(c, "#device-name", "Greenhouse").await;
            fill(c, "#device-type", "thermometer").await;
            click(c, "#add-device-form button[type=submit]").await;
            let token_field = element(c, "#device-created:not([hidden]) #created-token").await;
            let token = token_field.prop("value").await.unwrap().unwrap();
            assert_eq!(token.len(), 20, "{token}");
            let mqtt_command = element(c, "#created-mqtt")
                .await
                .prop("value")
                .await
                .unwrap()
                .unwrap();
            assert!(
                mqtt_command.contains(&format!("-p {} -u {token}", s.mqtt_addr.port())),
                "{mqtt_command}"
            );
            let curl = element(c, "#created-curl")
                .await
                .prop("value")
                .await
                .unwrap()
                .unwrap();
            assert!(
                curl.contains(&format!("{}/api/v1/{token}/telemetry", s.base)),
                "{curl}"
            );
            document(c, "device-created", DESKTOP).await;

            // The device sent an hour of readings (ThingsBoard's timestamped form); the
            // device page charts them from the REST API.
            let mut device = v3::connected(&s, "greenhouse", &token).await;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64;
            let history: Vec<_> = (1..=30)
                .map(|i| {
                    let minutes_ago = 61 - 2 * i;
                    json!({"ts": now - minutes_ago * 60_000, "values": {
                        "temperature": 19.0 + (i as f64 / 5.0).sin() * 1.5 + i as f64 * 0.05,
                        "humidity": 45 - i / 3,
                    }})
                })
                .collect();
            device
                .publish("v1/devices/me/telemetry", &json!(history).to_string())
                .await;
            click(c, "#created-link").await;
            path_until(c, "/devices/").await;
            text_attr_until(c, "figure[data-key=temperature] svg", "aria-label", |l| {
                l.contains("30 values")
            })
            .await;
            element(c, "figure[data-key=temperature] svg polyline").await;
            text_until(c, "#live-status", |t| t.starts_with("Live")).await;

            // Then it publishes now, over MQTT, and the page shows it live.
            device
                .publish(
                    "v1/devices/me/telemetry",
                    r#"{"temperature":21.5,"humidity":40}"#,
                )
                .await;
            text_until(c, "#latest tr[data-key=temperature] .value", |t| {
                t == "21.5"
            })
            .await;
            let label = text_attr_until(c, "figure[data-key=temperature] svg", "aria-label", |l| {
                l.contains("31 values") && l.contains("latest 21.5 °C")
            })
            .await;
            assert!(label.starts_with("temperature"), "{label}");
            device
                .publish("v1/devices/me/telemetry", r#"{"temperature":22.25}"#)
                .await;
            text_until(c, "#latest tr[data-key=temperature] .value", |t| {
                t == "22.25"
            })
            .await;
            text_until(c, "#device-state", |t| t.contains("Online")).await;

            // RPC round trip: the page sends, the device (this test) answers.
            device
                .subscribe("v1/devices/me/rpc/request/+", v3::QoS::AtLeastOnce)
                .await;
            let answering = tokio::spawn(async move {
                let (topic, request) = device.message().await;
                assert_eq!(request["method"], "getState", "{request}");
                assert_eq!(request["params"], json!({"verbose": true}));
                let id = topic.rsplit('/').next().unwrap().to_string();
                device
                    .publish(
                        &format!("v1/devices/me/rpc/response/{id}"),
                        r#"{"heating":"on"}"#,
                    )
                    .await;
                device
            });
            fill(c, "#rpc-method", "getState").await;
            fill(c, "#rpc-params", r#"{"verbose": true}"#).await;
            click(c, "#rpc-form button[type=submit]").await;
            text_until(c, "#rpc-log .rpc-answer", |t| {
                t.contains(r#"{"heating":"on"}"#)
            })
            .await;
            let mut device = answering.await.unwrap();

            // Bad parameters are refused next to the field, before anything is sent.
            fill(c, "#rpc-params", "{oops").await;
            click(c, "#rpc-form button[type=submit]").await;
            let error = text_until(c, "#rpc-params-error", |t| !t.is_empty()).await;
            assert!(error.contains("not JSON"), "{error}");

            // A shared attribute set on the page reaches the device.
            device
                .subscribe("v1/devices/me/attributes", v3::QoS::AtLeastOnce)
                .await;
            fill(c, "#attr-key", "target").await;
            fill(c, "#attr-value", "20.5").await;
            click(c, "#shared-form button[type=submit]").await;
            let (topic, update) = device.message().await;
            assert_eq!(topic, "v1/devices/me/attributes");
            assert_eq!(update, json!({"target": 20.5}));
            text_until(c, "#shared-attributes tr[data-key=target] .value", |t| {
                t == "20.5"
            })
            .await;
            fill(c, "#rpc-params", r#"{"verbose": true}"#).await;
            // An administrator can show the token again.
            click(c, "#show-token").await;
            let again = element(c, "#token-box:not([hidden]) #device-token").await;
            assert_eq!(
                again.prop("value").await.unwrap().as_deref(),
                Some(token.as_str())
            );
            document(c, "device", DESKTOP).await;
            document(c, "device-phone", PHONE).await;

            // The range picker: a custom range without an end is refused in words.
            let range = element(c, "#range-select").await;
            range.select_by_value("custom").await.unwrap();
            click(c, "#custom-range button[type=submit]").await;
            text_until(c, "#range-error", |t| t.contains("start and an end")).await;
            range.select_by_value("604800000").await.unwrap();
            element(c, "figure[data-key=temperature] svg polyline").await;

            // Dashboard: the device with its live values.
            click(c, "nav a[href='/dashboard']").await;
            element(c, ".device-card .spark[data-key=temperature] svg").await;
            text_until(c, "#live-status", |t| t.starts_with("Live")).await;
            device
                .publish("v1/devices/me/telemetry", r#"{"temperature":23}"#)
                .await;
            text_until(c, ".spark[data-key=temperature] .value", |t| {
                t.starts_with("23")
            })
            .await;
            document(c, "dashboard", DESKTOP).await;

            // The list: search and state.
            click(c, "nav a[href='/devices']").await;
            text_until(c, "table.list tbody", |t| {
                t.contains("Greenhouse") && t.contains("Online")
            })
            .await;
            fill(c, "#q", "nothing-like-this").await;
            click(c, "form.search button").await;
            text_until(c, ".empty", |t| t.contains("nothing-like-this")).await;
            c.goto(&s.url("/devices")).await.unwrap();
            document(c, "devices", DESKTOP).await;

            // Delete the device, with a confirmation.
            click(c, "table.list a").await;
            path_until(c, "/devices/").await;
            click(c, "button[data-open-dialog=delete-dialog]").await;
            click(c, "#confirm-delete").await;
            path_until(c, "/devices").await;
            text_until(c, "main", |t| t.contains("No devices yet")).await;

            // The privacy center: consents with one-click withdraw, and their history.
            click(c, "nav a[href='/profile']").await;
            text_until(c, "#consents tr[data-purpose=marketing]", |t| {
                t.contains("Not given")
            })
            .await;
            click(c, "#consents tr[data-purpose=marketing] button").await;
            text_until(c, "#consents tr[data-purpose=marketing]", |t| {
                t.contains("Given") && !t.contains("Not given")
            })
            .await;
            click(c, "#consents tr[data-purpose=marketing] button").await;
            text_until(c, "#consents tr[data-purpose=marketing]", |t| {
                t.contains("Not given")
            })
            .await;
            click(c, "#consent-history-box summary").await;
            text_until(c, "#consent-history tbody", |t| {
                t.matches("marketing").count() >= 3
            })
            .await;
            document(c, "profile-privacy", DESKTOP).await;

            // Download my data: the browser saves a zip.
            click(c, "#export-link").await;
            let zip = downloaded(&downloads, ".zip").await;
            let bytes = std::fs::read(&zip).unwrap();
            let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip");
            let mut everything = String::new();
            for i in 0..archive.len() {
                use std::io::Read;
                archive
                    .by_index(i)
                    .unwrap()
                    .read_to_string(&mut everything)
                    .unwrap();
            }
            assert!(
                everything.contains("ada@example.com"),
                "the export holds the account"
            );

            // Delete the account: a wrong password is said next to the field.
            click(c, "button[data-open-dialog=erase-dialog]").await;
            fill(c, "#erase-password", "not my password").await;
            click(c, "#confirm-erase").await;
            let error = text_until(c, "#erase-password-error", |t| !t.is_empty()).await;
            assert!(error.contains("password"), "{error}");
            fill(c, "#erase-password", PASSWORD).await;
            click(c, "#confirm-erase").await;
            let receipt = text_until(c, "#erasure-receipt", |t| t.contains("Receipt")).await;
            assert!(receipt.contains("Kept, and why"), "{receipt}");
            assert!(receipt.contains("key store"), "{receipt}");
            document(c, "erasure-receipt", DESKTOP).await;

            // Sign-in is refused now.
            c.goto(&s.url("/signin")).await.unwrap();
            fill(c, "#email", "ada@example.com").await;
            fill(c, "#password", PASSWORD).await;
            click(c, "main button[type=submit]").await;
            text_until(c, "#signin-error", |t| t.contains("do not match")).await;
            let (status, _) = s.login("ada@example.com", PASSWORD).await;
            assert_eq!(status, 401);
        })
        .await;
}

/// Names of the browser's cookies for the page's site, sorted (HttpOnly ones included).
async fn cookie_names(c: &fantoccini::Client) -> Vec<String> {
    let mut names: Vec<String> = c
        .get_all_cookies()
        .await
        .unwrap()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    names.sort();
    names
}

/// GETs `path` from the page (with its session), as JSON.
async fn fetch_json(c: &fantoccini::Client, path: &str) -> serde_json::Value {
    c.execute_async(
        "const [path, done] = arguments; fetch(path).then(r => r.json()).then(done);",
        vec![json!(path)],
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_users_and_assignment() {
    let Some(browser) = Browser::start("console-customers").await else {
        return;
    };
    let s = Server::start();
    let admin = s.sign_up("grace@example.com").await;
    s.create_device(&admin, "Boiler").await;
    browser
        .run(|c| async move {
            let c = &c;
            // Sign in with the form; wrong password said plainly.
            c.goto(&s.url("/customers")).await.unwrap();
            path_until(c, "/signin?next=/customers").await;
            // Rejecting is as easy as accepting.
            click(c, "#cookie-banner:not([hidden]) #cookie-reject").await;
            element(c, "#cookie-banner[hidden]").await;
            document(c, "signin", DESKTOP).await;
            fill(c, "#email", "grace@example.com").await;
            fill(c, "#password", "not the password").await;
            click(c, "main button[type=submit]").await;
            text_until(c, "#signin-error", |t| t.contains("do not match")).await;
            fill(c, "#password", PASSWORD).await;
            click(c, "main button[type=submit]").await;
            path_until(c, "/customers").await;

            fill(c, "#customer-title", "Acme Farms").await;
            click(c, "#add-customer-form button[type=submit]").await;
            click(c, "table.list a").await;
            path_until(c, "/customers/").await;
            // Assign the device, invite a user.
            click(c, "#assign-device-form button[type=submit]").await;
            text_until(c, "ul.plain", |t| t.contains("Boiler")).await;
            fill(c, "#invite-email", "not-an-email").await;
            click(c, ".invite-form button[type=submit]").await;
            let error = text_until(c, "#invite-email-error", |t| !t.is_empty()).await;
            assert!(error.contains("not an email address"), "{error}");
            fill(c, "#invite-email", "farmer@example.com").await;
            fill(c, "#invite-first", "Fran").await;
            click(c, ".invite-form button[type=submit]").await;
            let link = element(c, ".invite-result:not([hidden]) .invite-link")
                .await
                .prop("value")
                .await
                .unwrap()
                .unwrap();
            assert!(link.contains("activateToken="), "{link}");
            c.refresh().await.unwrap();
            text_until(c, "main", |t| {
                t.contains("farmer@example.com") && t.contains("Invited")
            })
            .await;
            document(c, "customer", DESKTOP).await;

            click(c, "nav a[href='/customers']").await;
            text_until(c, "table.list tbody", |t| t.contains("Acme Farms")).await;
            document(c, "customers", DESKTOP).await;
            click(c, "nav a[href='/users']").await;
            text_until(c, "table.list", |t| {
                t.contains("farmer@example.com") && t.contains("(you)")
            })
            .await;
            document(c, "users", DESKTOP).await;
            click(c, "nav a[href='/profile']").await;
            text_until(c, "main", |t| t.contains("You accepted version 1")).await;
            text_until(c, "#consents", |t| t.contains("marketing")).await;
            document(c, "profile", DESKTOP).await;

            // Sign out: the pages are closed again.
            click(c, "form.signout button").await;
            path_until(c, "/signin?done=signedout").await;
            c.goto(&s.url("/devices")).await.unwrap();
            path_until(c, "/signin?next=/devices").await;
        })
        .await;
}

/// The console's HTTP rules without a browser: headers, cookie sessions, CSRF.
#[tokio::test]
async fn console_sessions_need_the_csrf_token_and_pages_send_security_headers() {
    let s = Server::start();
    s.sign_up("csrf@example.com").await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Signed out: pages send you to sign in; security headers on every page.
    let page = http.get(s.url("/devices")).send().await.unwrap();
    assert_eq!(page.status(), 303, "{page:?}");
    assert_eq!(page.headers()["location"], "/signin?next=/devices");
    let signin = http.get(s.url("/signin")).send().await.unwrap();
    let csp = signin.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(signin.headers()["x-frame-options"], "DENY");
    assert_eq!(signin.headers()["x-content-type-options"], "nosniff");
    assert!(signin.headers().contains_key("referrer-policy"));

    // A form posted from another site is refused.
    let foreign = http
        .post(s.url("/signin"))
        .header("Origin", "https://evil.example")
        .form(&[("email", "csrf@example.com"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);

    // Sign in: HttpOnly, SameSite=Lax cookies.
    let signed_in = http
        .post(s.url("/signin"))
        .form(&[
            ("email", "csrf@example.com"),
            ("password", PASSWORD),
            ("next", "//evil.example"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    assert_eq!(
        signed_in.headers()["location"],
        "/devices",
        "no open redirect"
    );
    let cookies: Vec<String> = signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    for c in &cookies {
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax"), "{c}");
    }
    let cookie_header = cookies
        .iter()
        .map(|c| c.split(';').next().unwrap())
        .collect::<Vec<_>>()
        .join("; ");

    // The page carries the CSRF token.
    let html = http
        .get(s.url("/devices"))
        .header("Cookie", &cookie_header)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = html
        .split(r#"<meta name="csrf-token" content=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSRF token in the page")
        .to_string();

    // Reading with the cookie works; changing needs the token.
    let read = http
        .get(s.url("/api/tenant/devices?pageSize=10&page=0"))
        .header("Cookie", &cookie_header)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let create = |token: Option<&str>| {
        let mut req = http
            .post(s.url("/api/device"))
            .header("Cookie", &cookie_header)
            .json(&json!({"name": "Cookie device"}));
        if let Some(t) = token {
            req = req.header("X-CSRF-Token", t);
        }
        req.send()
    };
    let refused = create(None).await.unwrap();
    assert_eq!(refused.status(), 403);
    let body = refused.text().await.unwrap();
    assert!(body.contains("CSRF"), "{body}");
    assert_eq!(create(Some("forged")).await.unwrap().status(), 403);
    assert_eq!(create(Some(&csrf)).await.unwrap().status(), 200);

    // Assets: served by the binary, cached, typed.
    let css = http.get(s.url("/assets/console.css")).send().await.unwrap();
    assert_eq!(css.status(), 200);
    assert!(
        css.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    assert!(
        css.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );

    // Sign-out ends the session: the cookie no longer opens anything.
    let out = http
        .post(s.url("/signout"))
        .header("Cookie", &cookie_header)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    let after = http
        .get(s.url("/api/tenant/devices?pageSize=10&page=0"))
        .header("Cookie", &cookie_header)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
}
