//! The console's privacy pages in a real browser (headless Chromium through chromedriver)
//! against the real binary: the privacy center's requests, rectification, restriction and
//! objection; the request form for people without an account (the code read from the
//! outbox); and the administrators' "Privacy & security" area: the request queue, the
//! breach register's 72-hour clock, suspending a device from its page and lifting it, the
//! audit log with its chain check.
//!
//! `THINGSAFE_SCREENSHOTS=1` also saves the README's screenshots into docs/screenshots/.

mod common;

use common::browser::{
    Browser, DESKTOP, PHONE, click, document, downloaded, element, error_next_to, fill, path_until,
    submit_sign_in, text_until,
};
use common::{PASSWORD, Server};
use fantoccini::{Client, Locator};
use serde_json::json;

const ROOT: &str = "root@example.test";

/// Signs in with the form at `path` (a page that sends signed-out visitors to sign in).
async fn sign_in(c: &Client, s: &Server, email: &str, path: &str) {
    c.goto(&s.url(path)).await.unwrap();
    path_until(c, "/signin").await;
    submit_sign_in(c, email, PASSWORD).await;
    path_until(c, path).await;
    // The system administrator accepted no policy at sign-up: the review banner asks.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    if let Ok(accept) = c
        .find(Locator::Css("#policy-review:not([hidden]) #policy-accept"))
        .await
    {
        accept.click().await.unwrap();
    }
}

/// Sets a `datetime-local` input to `hours_ago` hours before now, in the browser's zone.
async fn set_hours_ago(c: &Client, css: &str, hours_ago: f64) {
    c.execute(
        "const [css, hours] = arguments; const at = new Date(Date.now() - hours * 3600e3);\
         document.querySelector(css).value = new Date(at - at.getTimezoneOffset() * 60000).toISOString().slice(0, 16);",
        vec![json!(css), json!(hours_ago)],
    )
    .await
    .unwrap();
}

/// Clicks `css` and accepts the confirmation it asks for.
async fn click_and_confirm(c: &Client, css: &str) {
    click(c, css).await;
    let deadline = std::time::Instant::now() + common::browser::WAIT;
    while c.accept_alert().await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{css} asked for no confirmation"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_privacy_center_makes_requests_corrects_details_restricts_and_objects() {
    let Some(browser) = Browser::start("console-privacy-center").await else {
        return;
    };
    let server = Server::start();
    let s = &server;
    let admin = s.sign_up("ada@example.com").await;
    let me = s.get("/api/auth/user", &admin).await.1;
    let my_id = me["id"]["id"].as_str().unwrap().to_string();
    // A disclosure of Ada's email, as a tenant administrator records one.
    let (status, body) = s
        .post(
            "/api/privacy/disclosures",
            &admin,
            json!({"subjectId": my_id, "categories": ["user.contact.email"],
                   "recipient": "Example Mail Ltd", "purpose": "deliver the newsletter"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let admin_token = admin.as_str();
    browser
        .run(|c| async move {
            let c = &c;
            sign_in(c, s, "ada@example.com", "/profile").await;
            // The version accepted at sign-up, and to whom the data went.
            text_until(c, "#accepted-versions", |t| {
                t.contains("Version 1") && t.contains("when you signed up")
            })
            .await;
            text_until(c, "#disclosure-list", |t| {
                t.contains("Example Mail Ltd") && t.contains("deliver the newsletter")
            })
            .await;
            element(c, "#no-requests").await;

            // A request to see my data asks for the password, said next to the field.
            click(c, "#new-request-box summary").await;
            click(c, "#kind-ACCESS").await;
            click(c, "#new-request-form button[type=submit]").await;
            let error = error_next_to(c, "#request-password-error").await;
            assert!(error.contains("password"), "{error}");
            fill(c, "#request-password", "not my password").await;
            click(c, "#new-request-form button[type=submit]").await;
            text_until(c, "#request-password-error", |t| t.contains("not right")).await;
            fill(c, "#request-password", PASSWORD).await;
            fill(c, "#request-details", "everything about my thermostat").await;
            click(c, "#new-request-form button[type=submit]").await;
            let row = text_until(c, "#request-list tbody", |t| t.contains("See my data")).await;
            assert!(row.contains("Received, not started yet"), "{row}");
            // The due date in the viewer's time zone; the UTC one is the <time>'s datetime.
            let due = element(c, "#request-list tbody td[data-label='Answer due by'] time").await;
            let utc = due.attr("datetime").await.unwrap().unwrap_or_default();
            assert!(utc.ends_with('Z'), "a due date: {row} ({utc})");
            let shown = due.text().await.unwrap();
            assert!(!shown.is_empty() && !shown.contains("UTC"), "{shown}");
            // A correction needs no password: the field is not even shown for it.
            click(c, "#new-request-box summary").await;
            click(c, "#kind-RECTIFICATION").await;
            assert!(
                element(c, "#request-password-field")
                    .await
                    .attr("hidden")
                    .await
                    .unwrap()
                    .is_some()
            );

            // Rectification: a bad email next to its field; a new name is saved.
            fill(c, "#rectify-email", "not-an-email").await;
            click(c, "#rectify-form button[type=submit]").await;
            let error = error_next_to(c, "#rectify-email-error").await;
            assert!(error.contains("not an email address"), "{error}");
            fill(c, "#rectify-email", "ada@example.com").await;
            fill(c, "#rectify-first", "Augusta").await;
            click(c, "#rectify-form button[type=submit]").await;
            text_until(c, "#rectify-done", |t| t.starts_with("Saved")).await;
            c.refresh().await.unwrap();
            text_until(c, "dl.facts", |t| t.contains("Augusta")).await;

            // Pause the use of my data: restricted now, said on the page.
            fill(c, "#restrict-details", "my birth date is wrong").await;
            click(c, "#restrict-form button[type=submit]").await;
            text_until(c, "#restriction-state", |t| t.contains("paused since")).await;
            element(c, "#accepted-versions").await;
            // Object to marketing: done at once, and marketing consent is withdrawn.
            click_and_confirm(c, "#object-form button[type=submit]").await;
            text_until(c, "#request-list tbody", |t| {
                t.contains("Object to a use of my data") && t.contains("Done")
            })
            .await;
            text_until(c, "#consents tr[data-purpose=marketing]", |t| {
                t.contains("Not given") && t.contains("by your objection")
            })
            .await;
            text_until(c, "#objection-state", |t| t.contains("You objected")).await;
            document(c, "privacy-center", DESKTOP).await;
            document(c, "privacy-center-phone", PHONE).await;

            // The unsubscribe link of a message opens a page in the console's look; a cut
            // link says what to do instead.
            let consents = s.get("/api/privacy/me/consents", admin_token).await.1;
            let link = consents["unsubscribeUrl"].as_str().unwrap().to_string();
            let path = format!("/api/{}", link.split_once("/api/").unwrap().1);
            c.goto(&s.url(&path)).await.unwrap();
            text_until(c, "main h1", |t| t == "You are unsubscribed").await;
            element(c, "link[rel=stylesheet][href^='/assets/console.css']").await;
            c.goto(&s.url(&path[..path.len() - 3])).await.unwrap();
            text_until(c, "main h1", |t| t == "This link did not work").await;
            text_until(c, "main .error", |t| t.contains("cut short")).await;
        })
        .await;
    let mine = s.get("/api/privacy/me/requests", &admin).await.1;
    let kinds: Vec<&str> = mine
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 3, "{mine}");
    for kind in ["ACCESS", "RESTRICTION", "OBJECTION"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administrators_handle_requests_breaches_suspensions_and_read_the_audit_log() {
    let Some(browser) = Browser::start("console-admin").await else {
        return;
    };
    let server = Server::start_with(&[
        ("THINGSAFE_ADMIN_EMAIL", ROOT),
        ("THINGSAFE_ADMIN_PASSWORD", PASSWORD),
    ]);
    let s = &server;
    let grace = s.sign_up("grace@example.com").await;
    let device = s.create_device(&grace, "Boiler").await;
    let credentials = s
        .get(&format!("/api/device/{device}/credentials"), &grace)
        .await
        .1;
    let device_token = credentials["credentialsId"].as_str().unwrap().to_string();
    let send = |token: String| {
        let url = s.url(&format!("/api/v1/{token}/telemetry"));
        async move {
            reqwest::Client::new()
                .post(url)
                .json(&json!({"temperature": 20}))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(send(device_token.clone()).await, 200);
    browser
        .run(|c| async move {
            let c = &c;
            // Someone without an account asks to be erased: a code by email, then a
            // reference and a due date.
            c.goto(&s.url("/privacy/request")).await.unwrap();
            fill(c, "#public-email", "no-at-sign").await;
            click(c, "#public-request-form button[type=submit]").await;
            let error = error_next_to(c, "#public-email-error").await;
            assert!(error.contains("not an email address"), "{error}");
            document(c, "public-request-error", DESKTOP).await;
            fill(c, "#public-email", "walter@example.org").await;
            click(c, "#public-kind-ERASURE").await;
            fill(c, "#public-details", "the newsletter list").await;
            click(c, "#public-request-form button[type=submit]").await;
            text_until(c, "#request-step-code:not([hidden])", |t| {
                t.contains("walter@example.org")
            })
            .await;
            let mails = s.mails_to("walter@example.org");
            assert_eq!(mails.len(), 1);
            let at = mails[0].find("your code is: ").expect("a code") + 14;
            let code = mails[0][at..at + 6].to_string();
            let wrong = if code == "000000" { "111111" } else { "000000" };
            fill(c, "#public-code", wrong).await;
            click(c, "#public-code-form button[type=submit]").await;
            let error = error_next_to(c, "#public-code-error").await;
            assert!(error.contains("not right"), "{error}");
            fill(c, "#public-code", &code).await;
            click(c, "#public-code-form button[type=submit]").await;
            let reference = text_until(c, "#request-reference", |t| t.len() == 36).await;
            text_until(c, "#request-due", |t| !t.is_empty()).await;
            document(c, "public-request-done", DESKTOP).await;

            // The system administrator handles it from the queue.
            sign_in(c, s, ROOT, "/admin/requests").await;
            let row = format!("#request-queue tr[data-request='{reference}']");
            let text = text_until(c, &row, |t| t.contains("Erase my data")).await;
            assert!(text.contains("walter@example.org"), "{text}");
            assert!(text.contains("Due in"), "{text}");
            document(c, "admin-requests", DESKTOP).await;
            click(c, &format!("{row} details.actions summary")).await;
            // Refusing without a reason is said next to the field.
            click(c, &format!("{row} form[data-action=reject] button")).await;
            let error = error_next_to(c, &format!("#reason-{reference}-error")).await;
            assert!(error.contains("why you refuse"), "{error}");
            fill(c, &format!("#note-{reference}"), "Erased from the list").await;
            click(c, &format!("{row} form[data-action=complete] button")).await;
            text_until(c, &format!("{row} .status"), |t| t.contains("Done")).await;
            assert!(
                s.mails_to("walter@example.org")
                    .last()
                    .unwrap()
                    .contains("Erased from the list")
            );
            // Filters: nothing overdue.
            element(c, "#filter-due")
                .await
                .select_by_value("overdue")
                .await
                .unwrap();
            click(c, "form.search button").await;
            text_until(c, "#no-requests", |t| t.contains("No request matches")).await;
            c.goto(&s.url("/admin/audit?action=request.complete"))
                .await
                .unwrap();
            text_until(c, "#audit-list tbody", |t| t.contains(&reference)).await;
            click(c, "form.signout button").await;
            path_until(c, "/signin").await;

            // A tenant administrator records a breach noticed 80 hours ago: overdue, in
            // words; one noticed 2 hours ago: about 70 hours left.
            sign_in(c, s, "grace@example.com", "/admin/breaches").await;
            element(c, "#no-breaches").await;
            click(c, "button[data-open=record-breach]").await;
            fill(
                c,
                "#breach-nature",
                "A laptop with a customer list was stolen",
            )
            .await;
            click(c, "#breach-form button[type=submit]").await;
            let error = error_next_to(c, "#breach-detected-error").await;
            assert!(error.contains("noticed"), "{error}");
            set_hours_ago(c, "#breach-detected", 80.0).await;
            fill(c, "#breach-subjects", "120").await;
            click(c, "#breach-form input[value='user.contact.email']").await;
            fill(c, "#breach-consequences", "Phishing mails to customers").await;
            fill(
                c,
                "#breach-measures",
                "Passwords reset; laptop wiped remotely",
            )
            .await;
            click(c, "#breach-form button[type=submit]").await;
            let clock = text_until(c, "#breach-list .clock", |t| t.contains("Overdue")).await;
            assert!(clock.contains("Overdue by 8 hours"), "{clock}");
            click(c, "button[data-open=record-breach]").await;
            fill(c, "#breach-nature", "A backup tape went missing").await;
            set_hours_ago(c, "#breach-detected", 2.0).await;
            fill(c, "#breach-subjects", "5").await;
            click(c, "#breach-form input[value='user.contact.email']").await;
            fill(c, "#breach-consequences", "Unlikely: the tape is encrypted").await;
            fill(c, "#breach-measures", "Searching the office").await;
            click(c, "#breach-form button[type=submit]").await;
            text_until(c, "#breach-list", |t| {
                t.contains("A backup tape went missing")
                    && (t.contains("69 hours left") || t.contains("70 hours left"))
            })
            .await;
            // Who is affected: Grace holds an email address.
            click(c, "#breach-list li:first-child details.affected summary").await;
            text_until(c, "#breach-list li:first-child [data-affected-list]", |t| {
                t.contains("grace@example.com")
            })
            .await;
            document(c, "admin-breaches", DESKTOP).await;
            // The authority is told: the clock stops.
            set_hours_ago(c, "#breach-list li:first-child input[name=notifiedAt]", 0.5).await;
            click(c, "#breach-list li:first-child form.notified-form button").await;
            text_until(c, "#breach-list li:first-child .clock", |t| {
                t.contains("Authority told") && t.contains("in time")
            })
            .await;

            // Suspend the device from its page: a reason is needed; then it is refused.
            c.goto(&s.url(&format!("/devices/{device}"))).await.unwrap();
            click(c, "#suspend-form button[type=submit]").await;
            let error = error_next_to(c, "#suspend-reason-error").await;
            assert!(error.contains("why"), "{error}");
            fill(c, "#suspend-reason", "Sends readings every millisecond").await;
            click(c, "#suspend-form button[type=submit]").await;
            text_until(c, "#suspended-note", |t| {
                t.contains("Sends readings every millisecond")
            })
            .await;
            assert_ne!(send(device_token.clone()).await, 200, "a suspended device");
            // And lifted from the list of suspensions.
            click(c, "nav a[href='/admin']").await;
            click(c, ".subnav a[href='/admin/suspensions']").await;
            text_until(c, "#suspension-list", |t| {
                t.contains("Boiler") && t.contains("every millisecond")
            })
            .await;
            document(c, "admin-suspensions", DESKTOP).await;
            click_and_confirm(c, "#suspension-list button[data-lift]").await;
            element(c, "#no-suspensions").await;
            assert_eq!(send(device_token.clone()).await, 200, "lifted");

            // The audit log shows all of it, and its chain holds.
            click(c, ".subnav a[href='/admin/audit']").await;
            text_until(c, "#chain-state", |t| t.contains("intact")).await;
            let log = text_until(c, "#audit-list tbody", |t| t.contains("Suspension lifted")).await;
            for action in [
                "breach.record",
                "breach.authority_notified",
                "suspension.add",
                "suspension.lift",
            ] {
                assert!(log.contains(action), "{action} in {log}");
            }
            document(c, "admin-audit", DESKTOP).await;
            element(c, "#audit-action")
                .await
                .select_by_value("suspension.add")
                .await
                .unwrap();
            click(c, "form.search button").await;
            text_until(c, "#audit-list caption", |t| t.starts_with("1 event")).await;
            c.goto(&s.url("/admin/audit?from=yesterday")).await.unwrap();
            text_until(c, "main .error", |t| t.contains("is not a date")).await;
            click(c, "nav a[href='/admin']").await;
            text_until(c, "main .cards", |t| {
                t.contains("past the 72 hours") || t.contains("not yet reported")
            })
            .await;
            document(c, "admin-overview", DESKTOP).await;
            document(c, "admin-overview-phone", PHONE).await;
        })
        .await;
}

/// The built-in policy with two processors, one outside the EEA, and device data kept a
/// year.
fn policy_with_processors() -> String {
    let builtin = include_str!("../../core/privacy.toml");
    let at = builtin
        .find("[categories.\"user.device.telemetry\"]")
        .expect("the telemetry category");
    let (head, tail) = builtin.split_at(at);
    let default = format!(
        "{head}{}",
        tail.replacen("retention = \"account_lifetime\"", "retention = \"1y\"", 1)
    );
    format!(
        "{default}\n[[processors]]\nname = \"Example Mail Ltd\"\nservice = \"Delivers our emails.\"\ncountry = \"IE\"\ncategories = [\"user.contact.email\", \"user.name\"]\n\n[[processors]]\nname = \"Example Cloud Inc.\"\nservice = \"Hosts our servers.\"\ncountry = \"US\"\ncategories = [\"user.contact.email\", \"user.device.telemetry\"]\nsafeguards = \"Standard contractual clauses.\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administrators_set_retention_read_recipients_export_the_tenant_and_see_backups() {
    let Some(browser) = Browser::start("console-records").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("privacy.toml");
    std::fs::write(&policy, policy_with_processors()).unwrap();
    let backups = dir.path().join("backups");
    let server = Server::start_with(&[
        ("THINGSAFE_ADMIN_EMAIL", ROOT),
        ("THINGSAFE_ADMIN_PASSWORD", PASSWORD),
        ("THINGSAFE_PRIVACY_POLICY_FILE", policy.to_str().unwrap()),
        ("THINGSAFE_BACKUP_DIR", backups.to_str().unwrap()),
        ("THINGSAFE_BACKUP_INTERVAL_SECONDS", "2"),
    ]);
    let s = &server;
    let grace = s.sign_up("grace@example.com").await;
    let me = s.get("/api/auth/user", &grace).await.1;
    let (status, body) = s
        .post(
            "/api/privacy/disclosures",
            &grace,
            json!({"subjectId": me["id"]["id"], "categories": ["user.contact.email"],
                   "recipient": "Acme Analytics", "purpose": "usage statistics"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let downloads = browser.downloads.clone();
    browser
        .run(|c| async move {
            let c = &c;
            // Retention: longer than the policy allows is refused next to the field.
            sign_in(c, s, "grace@example.com", "/admin/retention").await;
            text_until(c, "main", |t| t.contains("at most")).await;
            fill(c, "#retention-days", "100000").await;
            click(c, "#retention-form button[type=submit]").await;
            let error = error_next_to(c, "#retention-days-error").await;
            assert!(
                error.contains("longer than the privacy policy allows"),
                "{error}"
            );
            fill(c, "#retention-days", "30").await;
            click(c, "#retention-form button[type=submit]").await;
            text_until(c, "#tenant-retention", |t| t.contains("30 days")).await;
            click(c, "#sweep-now").await;
            text_until(c, "#sweep-list tbody", |t| t.contains("Done")).await;
            document(c, "admin-retention", DESKTOP).await;

            // Processors from the policy; the yearly list with the recorded disclosure.
            click(c, ".subnav a[href='/admin/recipients']").await;
            text_until(c, "#processor-list", |t| {
                t.contains("Example Mail Ltd") && t.contains("Standard contractual clauses")
            })
            .await;
            text_until(c, "#recipient-report", |t| {
                t.contains("Acme Analytics")
                    && t.contains("usage statistics")
                    && t.contains("Email address")
            })
            .await;
            document(c, "admin-recipients", DESKTOP).await;

            // Tenant exports: a schedule (a bad number said next to it) and a download.
            click(c, ".subnav a[href='/admin/exports']").await;
            element(c, "#export-schedule")
                .await
                .select_by_value("weekly")
                .await
                .unwrap();
            fill(c, "#export-keep", "0").await;
            click(c, "#export-schedule-form button[type=submit]").await;
            let error = error_next_to(c, "#export-keep-error").await;
            assert!(error.contains("between 1 and 30"), "{error}");
            fill(c, "#export-keep", "5").await;
            click(c, "#export-schedule-form button[type=submit]").await;
            element(c, "#export-schedule-saved:not([hidden])").await;
            let schedule = s.get("/api/privacy/tenant/exports", &grace).await.1;
            assert_eq!(schedule["schedule"], "weekly", "{schedule}");
            assert_eq!(schedule["keep"], 5, "{schedule}");
            click(c, "#export-now").await;
            let zip = downloaded(&downloads, ".zip").await;
            let files = common::unzip(&std::fs::read(zip).unwrap());
            assert!(!files.is_empty(), "a zip with files");
            document(c, "admin-exports", DESKTOP).await;
            // Backups are the system administrator's: not in a tenant's navigation.
            assert!(
                c.find(Locator::Css(".subnav a[href='/admin/backups']"))
                    .await
                    .is_err()
            );
            click(c, "form.signout button").await;
            path_until(c, "/signin").await;

            // The system administrator sees the backup runs.
            sign_in(c, s, ROOT, "/admin/backups").await;
            let deadline = std::time::Instant::now() + common::browser::WAIT;
            loop {
                let state = element(c, "#backup-state").await.text().await.unwrap();
                if state.contains("last good data backup") {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "no good backup: {state}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                c.refresh().await.unwrap();
            }
            text_until(c, "#backup-list tbody", |t| {
                t.contains("Key store") && t.contains("Done")
            })
            .await;
            assert!(
                c.find(Locator::Css(".subnav a[href='/admin/exports']"))
                    .await
                    .is_err()
            );
            document(c, "admin-backups", DESKTOP).await;
        })
        .await;
}

/// Two-step sign-in turned on from the profile page with a code from an authenticator
/// (totp-rs reading the page's `otpauth://` link), then asked for at the next sign-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_step_sign_in_is_turned_on_from_the_profile_and_asked_for_at_sign_in() {
    let Some(browser) = Browser::start("console-two-step").await else {
        return;
    };
    let server = Server::start();
    let s = &server;
    s.sign_up("grace@example.com").await;
    browser
        .run(|c| async move {
            let c = &c;
            sign_in(c, s, "grace@example.com", "/profile").await;
            text_until(c, "#two-factor-state", |t| t.starts_with("Off.")).await;
            click(c, "#two-factor-start").await;
            text_until(c, "#two-factor-secret", |t| t.len() >= 32).await;
            let url = element(c, "#two-factor-link")
                .await
                .attr("href")
                .await
                .unwrap()
                .unwrap();
            let app = totp_rs::TOTP::from_url(&url).expect("an otpauth link");
            fill(c, "#two-factor-code", "000000").await;
            click(c, "#two-factor-confirm button[type=submit]").await;
            let error = error_next_to(c, "#two-factor-confirm [data-error-for=code]").await;
            assert!(error.contains("6 digits"), "{error}");
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            fill(c, "#two-factor-code", &app.generate(now)).await;
            click(c, "#two-factor-confirm button[type=submit]").await;
            text_until(c, "#two-factor-state", |t| t.starts_with("On:")).await;
            document(c, "profile-two-step", DESKTOP).await;

            // Signing in again: the password, then the code.
            click(c, "form.signout button").await;
            path_until(c, "/signin").await;
            fill(c, "#email", "grace@example.com").await;
            fill(c, "#password", PASSWORD).await;
            click(c, "main button[type=submit]").await;
            text_until(c, "main h1", |t| t == "Enter your sign-in code").await;
            document(c, "signin-code", DESKTOP).await;
            fill(c, "#code", &app.generate(now + 30)).await;
            click(c, "main button[type=submit]").await;
            path_until(c, "/devices").await;
        })
        .await;
}

/// Signs in from the sign-in page itself (no `next`): where the role lands.
async fn sign_in_plain(c: &Client, s: &Server, email: &str) {
    c.goto(&s.url("/signin")).await.unwrap();
    submit_sign_in(c, email, PASSWORD).await;
}

/// The texts of the main navigation's links.
async fn main_nav(c: &Client) -> Vec<String> {
    let mut names = Vec::new();
    for link in c
        .find_all(Locator::Css("header.top nav[aria-label=Main] a"))
        .await
        .unwrap()
    {
        names.push(link.text().await.unwrap());
    }
    names
}

/// The page at `path` as a browser without scripts gets it, with `token`'s session
/// cookie: its status and HTML.
async fn page_without_scripts(s: &Server, token: &str, path: &str) -> (u16, String) {
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(s.url(path))
        .header("Cookie", format!("ts_session={token}"))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// Creates a device of `device_type` with the access token `token`.
async fn device_of_type(s: &Server, admin: &str, name: &str, device_type: &str, token: &str) {
    let (status, body) = s
        .call(
            reqwest::Method::POST,
            &format!("/api/device?accessToken={token}"),
            Some(admin),
            Some(json!({"name": name, "type": device_type})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administrators_suspend_a_device_type_and_a_tenant_and_the_system_administrator_sees_tenants()
 {
    use common::mqtt::v3;
    let Some(browser) = Browser::start("console-suspend-types-tenants").await else {
        return;
    };
    let server = Server::start_with(&[
        ("THINGSAFE_ADMIN_EMAIL", ROOT),
        ("THINGSAFE_ADMIN_PASSWORD", PASSWORD),
    ]);
    let s = &server;
    let grace = s.sign_up("grace@example.com").await;
    device_of_type(s, &grace, "Hall thermostat", "thermostat", "THERMO1").await;
    device_of_type(s, &grace, "Door camera", "camera", "CAMERA1").await;
    let ada = s.sign_up("ada@example.org").await;
    device_of_type(s, &ada, "Ada's meter", "meter", "ADAMETER1").await;
    let ada_tenant = s.get("/api/auth/user", &ada).await.1["tenantId"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, pair) = s.login(ROOT, PASSWORD).await;
    let root = pair["token"].as_str().unwrap().to_string();
    let tenants = s.get("/api/tenants?pageSize=10&page=0", &root).await.1;
    let ada_title = tenants["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"]["id"] == ada_tenant.as_str())
        .map(|t| t["title"].as_str().unwrap().to_string())
        .expect("Ada's tenant listed");
    // All three connect before anything is suspended.
    for token in ["THERMO1", "CAMERA1", "ADAMETER1"] {
        v3::connected(s, token, token).await;
    }
    let grace_token = grace.clone();
    let root_token = root.clone();
    let ada_tenant = &ada_tenant;
    browser
        .run(|c| async move {
            let c = &c;
            // A tenant administrator suspends the type "thermostat": the type and a reason
            // are asked for next to their fields.
            sign_in(c, s, "grace@example.com", "/admin/suspensions").await;
            element(c, "#no-suspensions").await;
            assert!(
                c.find(Locator::Css("#suspend-tenant-form")).await.is_err(),
                "a tenant administrator cannot suspend tenants"
            );
            click(c, "#suspend-type-form button[type=submit]").await;
            let error = error_next_to(c, "#suspend-type-error").await;
            assert!(error.contains("Choose the device type"), "{error}");
            let types = element(c, "#suspend-type").await.text().await.unwrap();
            assert!(
                types.contains("thermostat (1 device)") && types.contains("camera (1 device)"),
                "{types}"
            );
            element(c, "#suspend-type")
                .await
                .select_by_value("thermostat")
                .await
                .unwrap();
            click(c, "#suspend-type-form button[type=submit]").await;
            let error = error_next_to(c, "#suspend-type-reason-error").await;
            assert!(error.contains("why"), "{error}");
            fill(
                c,
                "#suspend-type-reason",
                "Firmware 2.1 leaks the Wi-Fi password",
            )
            .await;
            click_and_confirm(c, "#suspend-type-form button[type=submit]").await;
            text_until(c, "#suspension-list", |t| {
                t.contains("Every device of type “thermostat”") && t.contains("leaks the Wi-Fi")
            })
            .await;
            // Times in the viewer's zone, the UTC one kept in the markup.
            let since = element(c, "#suspension-list time").await;
            let datetime = since.attr("datetime").await.unwrap().unwrap();
            assert!(
                datetime.ends_with('Z') && datetime.len() == 20,
                "{datetime}"
            );
            let shown = since.text().await.unwrap();
            assert!(!shown.contains("UTC") && !shown.is_empty(), "{shown}");
            text_until(c, "#suspension-list [data-tz-note]", |t| {
                t.contains("your time zone")
            })
            .await;
            document(c, "admin-suspend-type", DESKTOP).await;
            click(c, "form.signout button").await;
            path_until(c, "/signin").await;

            // The system administrator lands on the tenants, with a navigation of their own.
            sign_in_plain(c, s, ROOT).await;
            path_until(c, "/tenants").await;
            // They accepted no version of the policy: asked to read it, not told it changed.
            let title = text_until(
                c,
                "#policy-review:not([hidden]) #policy-first-title:not([hidden])",
                |t| !t.is_empty(),
            )
            .await;
            assert_eq!(title, "Please read our privacy policy");
            assert!(
                c.find(Locator::Css("#policy-review-title:not([hidden])"))
                    .await
                    .is_err(),
                "the 'has changed' wording is hidden"
            );
            click(c, "#policy-review #policy-accept").await;
            assert_eq!(
                main_nav(c).await,
                [
                    "Tenants",
                    "Privacy & security",
                    "Backups",
                    "Profile & privacy"
                ]
            );
            let row = format!("#tenant-list tr[data-tenant='{ada_tenant}']");
            text_until(c, &row, |t| t.contains(&ada_title) && t.contains("Active")).await;
            document(c, "tenants", DESKTOP).await;
            // Suspending Ada's tenant: the page opens with it chosen; the API's refusal of a
            // too long reason is shown next to the field.
            click(c, &format!("{row} a")).await;
            path_until(c, "/admin/suspensions?tenant=").await;
            let chosen = element(c, "#suspend-tenant")
                .await
                .prop("value")
                .await
                .unwrap();
            assert_eq!(chosen.as_deref(), Some(ada_tenant.as_str()));
            fill(c, "#suspend-tenant-reason", &"x".repeat(501)).await;
            click_and_confirm(c, "#suspend-tenant-form button[type=submit]").await;
            let error = error_next_to(c, "#suspend-tenant-reason-error").await;
            assert!(error.contains("1 to 500 characters"), "{error}");
            fill(c, "#suspend-tenant-reason", "Unpaid for three months").await;
            click_and_confirm(c, "#suspend-tenant-form button[type=submit]").await;
            text_until(c, "#suspension-list", |t| {
                t.contains(&format!(
                    "The whole tenant “{ada_title}” ({})",
                    &ada_tenant[..8]
                )) && t.contains("Unpaid for three months")
                    && t.contains("Every device of type “thermostat” of the tenant")
            })
            .await;
            document(c, "admin-suspend-tenant", DESKTOP).await;
            click(c, "header.top nav a[href='/tenants']").await;
            text_until(c, &row, |t| t.contains("Suspended since")).await;

            // Pages for other roles answer with a page saying so, and the way back.
            for path in ["/devices", "/dashboard", "/customers", "/admin/exports"] {
                c.goto(&s.url(path)).await.unwrap();
                text_until(c, "#problem-title", |t| {
                    t == "This page is not for your role"
                })
                .await;
                element(c, "#problem a[href='/tenants']").await;
            }
            c.goto(&s.url("/devices")).await.unwrap();
            text_until(c, "#problem-message", |t| t.contains("manages tenants")).await;
            document(c, "not-for-role", DESKTOP).await;
        })
        .await;
    // What the console did, as the API and the devices see it.
    let list = s.get("/api/suspensions", &root_token).await.1;
    let kinds: Vec<(String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["kind"].as_str().unwrap().to_string(),
                x["target"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        kinds.contains(&("DEVICE_TYPE".into(), "thermostat".into())),
        "{list}"
    );
    assert!(
        kinds.contains(&("TENANT".into(), ada_tenant.clone())),
        "{list}"
    );
    for token in ["THERMO1", "ADAMETER1"] {
        assert!(
            matches!(
                v3::connect(s, token, Some(token)).await.err(),
                Some(v3::ConnectReturnCode::NotAuthorized)
            ),
            "{token} is refused at connect"
        );
    }
    v3::connected(s, "CAMERA1", "CAMERA1").await;
    // Without scripts: the UTC time in a <time> element; a page not for the role is a
    // 403 page, not an error body.
    let (status, html) = page_without_scripts(s, &grace_token, "/admin/suspensions").await;
    assert_eq!(status, 200);
    assert!(
        html.contains(" UTC</time>") && html.contains("<time datetime=\""),
        "{html}"
    );
    let (status, html) = page_without_scripts(s, &root_token, "/devices").await;
    assert_eq!(status, 403);
    assert!(html.contains("This page is not for your role"), "{html}");
    let (status, html) = page_without_scripts(s, &grace_token, "/tenants").await;
    assert_eq!(status, 403);
    assert!(html.contains("href=\"/devices\""), "{html}");
    // A wrong address is a page too, with the API's words.
    let (status, html) = page_without_scripts(s, &grace_token, "/devices/not-an-id").await;
    assert_eq!(status, 400);
    assert!(
        html.contains("id=\"problem-title\"") && html.contains("not-an-id"),
        "{html}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breach_notices_are_sent_once_to_each_affected_person_after_a_confirmation() {
    let Some(browser) = Browser::start("console-breach-notices").await else {
        return;
    };
    let server = Server::start();
    let s = &server;
    let grace = s.sign_up("grace@example.com").await;
    s.customer_user(&grace, "carol@example.net").await;
    let detected = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        - 3_600_000)
        .to_string();
    let (status, breach) = s
        .post(
            "/api/privacy/breaches",
            &grace,
            json!({"nature": "The mailing list was sent in the open", "categories": ["user.contact.email"],
                   "approxSubjects": 2, "consequences": "Spam and phishing",
                   "measures": "Apologised; the list is now sent with BCC", "detectedAt": detected}),
        )
        .await;
    assert_eq!(status, 200, "{breach}");
    let id = breach["id"].as_str().unwrap().to_string();
    let id = &id;
    let notice = "Subject: A personal data breach concerning you";
    let notices = |to: &str| s.mails_to(to).iter().filter(|m| m.contains(notice)).count();
    browser
        .run(|c| async move {
            let c = &c;
            sign_in(c, s, "grace@example.com", "/admin/breaches").await;
            let card = format!("#breach-list li[data-breach='{id}']");
            // Asking first: how many will be told. Cancelling sends nothing.
            click(c, &format!("{card} [data-notify-start]")).await;
            let count =
                text_until(c, &format!("{card} [data-notify-count]"), |t| !t.is_empty()).await;
            assert!(count.starts_with("2 people will be told"), "{count}");
            click(c, &format!("{card} [data-notify-cancel]")).await;
            assert_eq!(
                notices("grace@example.com") + notices("carol@example.net"),
                0
            );
            click(c, &format!("{card} [data-notify-start]")).await;
            text_until(c, &format!("{card} [data-notify-count]"), |t| {
                t.starts_with("2 people")
            })
            .await;
            document(c, "admin-breach-notices-confirm", DESKTOP).await;
            click(c, &format!("{card} [data-notify-send]")).await;
            let result = text_until(c, &format!("{card} [data-notify-result]"), |t| {
                !t.is_empty()
            })
            .await;
            assert!(result.starts_with("Sent 2 notices"), "{result}");
            assert_eq!(notices("grace@example.com"), 1);
            assert_eq!(notices("carol@example.net"), 1);
            click(c, &format!("{card} details.affected summary")).await;
            text_until(c, &format!("{card} [data-affected-list]"), |t| {
                t.matches("(told)").count() == 2
            })
            .await;
            document(c, "admin-breach-notices", DESKTOP).await;
            // A second press tells nobody again.
            click(c, &format!("{card} [data-notify-start]")).await;
            let count = text_until(c, &format!("{card} [data-notify-count]"), |t| {
                t.contains("told already")
            })
            .await;
            assert!(count.starts_with("All 2 people affected"), "{count}");
            assert!(
                !element(c, &format!("{card} [data-notify-send]"))
                    .await
                    .is_displayed()
                    .await
                    .unwrap()
            );
            // The register's times are in the viewer's zone.
            let noticed = element(c, &format!("{card} dl.facts time")).await;
            assert!(!noticed.text().await.unwrap().contains("UTC"));
        })
        .await;
    assert_eq!(notices("grace@example.com"), 1);
    assert_eq!(notices("carol@example.net"), 1);
    // And the API, pressed again, sends none.
    let (status, again) = s
        .post(
            &format!("/api/privacy/breaches/{id}/subjects/notify"),
            &grace,
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["notices"].as_array().unwrap().len(), 0, "{again}");
    assert_eq!(again["notified"].as_array().unwrap().len(), 2, "{again}");
}
