//! Password reset by emailed link (ThingsBoard's `resetPasswordByEmail` and
//! `resetPassword`, and the console's pages): the same answer whether or not the address
//! has an account, a single-use link in the mail (the outbox here), a new password that
//! passes the rules, every old session ended, the old password refused.

mod common;

use common::{PASSWORD, Server};
use reqwest::StatusCode;
use serde_json::json;

const NEW_PASSWORD: &str = "a brand new passphrase";

fn reset_token(mail: &str) -> String {
    mail.split("/password-reset?token=")
        .nth(1)
        .expect("a reset link in the mail")
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_forgotten_password_is_reset_once_by_the_mailed_link_and_old_sessions_end() {
    let s = Server::start();
    let email = "forgetful@example.test";
    s.sign_up(email).await;
    let (_, pair) = s.login(email, PASSWORD).await;
    let refresh = |token: String| {
        s.call(
            reqwest::Method::POST,
            "/api/auth/token",
            None,
            Some(json!({ "refreshToken": token })),
        )
    };
    let (status, renewed) = refresh(pair["refreshToken"].as_str().unwrap().to_string()).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a session that works until the reset: {renewed}"
    );
    let old_refresh = renewed["refreshToken"].as_str().unwrap().to_string();

    // Asking: the same answer for an unknown address, and no mail to it.
    for address in ["nobody@example.test", email] {
        let (status, body) = s
            .call(
                reqwest::Method::POST,
                "/api/noauth/resetPasswordByEmail",
                None,
                Some(json!({ "email": address })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert!(s.mails_to("nobody@example.test").is_empty());
    let mails = s.mails_to(email);
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("Subject: Reset your Thingsafe password"));
    assert!(mails[0].contains("30 minutes"));
    let token = reset_token(&mails[0]);
    let (status, body) = s
        .call(
            reqwest::Method::POST,
            "/api/noauth/resetPasswordByEmail",
            None,
            Some(json!({ "email": "not an address" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("not an email address")
    );

    // Using the link: a bad token and a weak password are refused, and say why.
    let reset = |token: String, password: &'static str| {
        s.call(
            reqwest::Method::POST,
            "/api/noauth/resetPassword",
            None,
            Some(json!({ "resetToken": token, "password": password })),
        )
    };
    let (status, body) = reset(format!("{token}x"), NEW_PASSWORD).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["message"].as_str().unwrap().contains("not valid"),
        "{body}"
    );
    let (status, body) = reset(token.clone(), "short").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, pair) = reset(token.clone(), NEW_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    assert!(pair["token"].as_str().is_some(), "signed in: {pair}");

    // Once only; the old password and old sessions are gone, the new password works.
    let (status, _) = reset(token, "yet another passphrase").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(s.login(email, PASSWORD).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(s.login(email, NEW_PASSWORD).await.0, StatusCode::OK);
    let (status, _) = refresh(old_refresh).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old session ended");
}

#[tokio::test]
async fn the_console_resets_a_password_through_its_pages() {
    let s = Server::start();
    let email = "console.forgetful@example.test";
    s.sign_up(email).await;
    let signin = s.http.get(s.url("/signin")).send().await.unwrap();
    assert!(
        signin
            .text()
            .await
            .unwrap()
            .contains("href=\"/password-reset\"")
    );
    let page = s.http.get(s.url("/password-reset")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("<label for=\"email\">Email address</label>")
    );

    let form = |path: &str, fields: &[(&str, &str)]| {
        s.http
            .post(s.url(path))
            .header("Origin", s.url(""))
            .form(fields)
            .send()
    };
    let sent = form("/password-reset", &[("email", email)]).await.unwrap();
    assert!(sent.text().await.unwrap().contains("is on its way"));
    let token = reset_token(&s.mails_to(email)[0]);

    let page = s
        .http
        .get(s.url(&format!("/password-reset?token={token}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("New password") && page.contains(&token));
    let weak = form(
        "/password-reset/new",
        &[("token", &token), ("password", "short")],
    )
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(
        weak.contains("role=\"alert\""),
        "the reason is shown next to the form"
    );
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let done = no_redirects
        .post(s.url("/password-reset/new"))
        .header("Origin", s.url(""))
        .form(&[("token", token.as_str()), ("password", NEW_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert!(done.status().is_redirection(), "{}", done.status());
    assert_eq!(done.headers()["location"], "/signin?done=reset");
    assert_eq!(s.login(email, NEW_PASSWORD).await.0, StatusCode::OK);
    let from_elsewhere = s
        .http
        .post(s.url("/password-reset"))
        .header("Origin", "https://evil.example")
        .form(&[("email", email)])
        .send()
        .await
        .unwrap();
    assert_eq!(from_elsewhere.status(), StatusCode::FORBIDDEN);
}
