//! Two-factor sign-in with TOTP in ThingsBoard's API, driven with codes from an
//! authenticator implementation we did not write (the totp-rs crate reading the
//! `otpauth://` URL, as an app reads the QR code): enabling needs a code, sign-in then
//! needs one (API and console), a code works once, wrong codes run out, turning it off
//! restores plain sign-in.

mod common;

use common::{PASSWORD, Server};
use reqwest::StatusCode;
use serde_json::{Value, json};

const STEP: u64 = 30;

fn authenticator(url: &str) -> totp_rs::TOTP {
    totp_rs::TOTP::from_url(url).expect("an otpauth URL an authenticator app reads")
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn login(s: &Server, email: &str) -> Value {
    let (status, body) = s.login(email, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn check(s: &Server, pre: &str, code: &str) -> (StatusCode, Value) {
    let resp = s
        .http
        .post(s.url(&format!(
            "/api/auth/2fa/verification/check?providerType=TOTP&verificationCode={code}"
        )))
        .header("X-Authorization", format!("Bearer {pre}"))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Generates a secret and confirms it with the code of `t0`; the authenticator.
async fn turn_on(s: &Server, token: &str, t0: u64) -> totp_rs::TOTP {
    let (status, generated) = s
        .post(
            "/api/2fa/account/config/generate?providerType=TOTP",
            token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{generated}");
    let app = authenticator(generated["authUrl"].as_str().unwrap());
    let (status, body) = s
        .post(
            &format!(
                "/api/2fa/account/config?verificationCode={}",
                app.generate(t0)
            ),
            token,
            json!({"providerType": "TOTP", "useByDefault": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["configs"]["TOTP"]["providerType"], "TOTP");
    app
}

#[tokio::test]
async fn sign_in_asks_for_a_totp_code_once_it_is_turned_on() {
    let s = Server::start();
    let email = "careful@example.test";
    let token = s.sign_up(email).await;
    let (_, settings) = s.get("/api/2fa/account/settings", &token).await;
    assert_eq!(settings, json!({"configs": {}}));

    // Turning it on needs a right code; a wrong one is refused and says why.
    let (_, generated) = s
        .post(
            "/api/2fa/account/config/generate?providerType=TOTP",
            &token,
            json!({}),
        )
        .await;
    assert!(
        generated["authUrl"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/Thingsafe:")
    );
    let (status, body) = s
        .post(
            "/api/2fa/account/config?verificationCode=000000",
            &token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"].as_str().unwrap().contains("6 digits"),
        "{body}"
    );
    let (status, body) = s
        .post(
            "/api/2fa/account/config/generate?providerType=SMS",
            &token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("TOTP"), "{body}");
    let t0 = now_secs();
    let app = turn_on(&s, &token, t0).await;
    let (_, settings) = s.get("/api/2fa/account/settings", &token).await;
    assert_eq!(settings["configs"]["TOTP"]["useByDefault"], true);

    // The password alone gives a pre-verification token, which opens nothing else.
    let pre = login(&s, email).await;
    assert_eq!(pre["scope"], "PRE_VERIFICATION_TOKEN");
    assert!(pre["refreshToken"].is_null());
    let pre = pre["token"].as_str().unwrap().to_string();
    assert_eq!(
        s.get("/api/auth/user", &pre).await.0,
        StatusCode::UNAUTHORIZED
    );

    // The code used to turn it on does not work again; the next one does, once.
    let (status, body) = check(&s, &pre, &app.generate(t0)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("used already"),
        "{body}"
    );
    let next = app.generate(t0 + STEP);
    let (status, pair) = check(&s, &pre, &next).await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    let session = pair["token"].as_str().unwrap();
    assert_eq!(s.get("/api/auth/user", session).await.0, StatusCode::OK);
    let (status, _) = check(&s, &pre, &next).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a pre-verification token works once"
    );

    // Wrong codes run out.
    let pre = login(&s, email).await["token"]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..4 {
        assert_eq!(check(&s, &pre, "123456").await.0, StatusCode::BAD_REQUEST);
    }
    let (status, body) = check(&s, &pre, "123456").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("sign in again"),
        "{body}"
    );

    // Off again: the password is enough.
    let (status, _) = s
        .call(
            reqwest::Method::DELETE,
            "/api/2fa/account/config?providerType=TOTP",
            Some(session),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(login(&s, email).await["refreshToken"].is_string());

    // The audit log has each step.
    for (action, at_least) in [
        ("auth.two_factor_on", 1),
        ("auth.two_factor_failed", 6),
        ("auth.two_factor_off", 1),
    ] {
        let (status, events) = s
            .get(&format!("/api/privacy/audit?action={action}"), session)
            .await;
        assert_eq!(status, StatusCode::OK, "{events}");
        let n = events["events"]
            .as_array()
            .or(events.as_array())
            .map_or(0, Vec::len);
        assert!(n >= at_least, "{action}: {events}");
    }
}

#[tokio::test]
async fn the_console_asks_for_the_code_after_the_password() {
    let s = Server::start();
    let email = "careful.console@example.test";
    let token = s.sign_up(email).await;
    let t0 = now_secs();
    let app = turn_on(&s, &token, t0).await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = no_redirects
        .post(s.url("/signin"))
        .header("Origin", s.url(""))
        .form(&[
            ("email", email),
            ("password", PASSWORD),
            ("next", "/devices"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK, "no session yet");
    assert!(
        page.headers().get("set-cookie").is_none(),
        "no session cookie before the code"
    );
    let page = page.text().await.unwrap();
    assert!(page.contains("Enter your sign-in code"), "{page}");
    let pre = page
        .split("name=\"token\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let wrong = no_redirects
        .post(s.url("/signin/code"))
        .header("Origin", s.url(""))
        .form(&[
            ("token", pre.as_str()),
            ("code", "123456"),
            ("next", "/devices"),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        wrong.contains("role=\"alert\"") && wrong.contains("not right"),
        "{wrong}"
    );
    let done = no_redirects
        .post(s.url("/signin/code"))
        .header("Origin", s.url(""))
        .form(&[
            ("token", pre.as_str()),
            ("code", app.generate(t0 + STEP).as_str()),
            ("next", "/devices"),
        ])
        .send()
        .await
        .unwrap();
    assert!(done.status().is_redirection(), "{}", done.status());
    assert_eq!(done.headers()["location"], "/devices");
    assert!(
        done.headers()
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap().starts_with("ts_session=")),
        "signed in"
    );
}
