//! An OAuth2 client we did not write, from outside the Rust world: Authlib (PyPI) over
//! requests, against the server's HTTPS. Code + PKCE through the console's sign-in and
//! consent, refresh rotation and reuse, revocation, introspection, a wrong verifier, and
//! client credentials. Needs `python3` with `authlib` and `requests`
//! (`pip install authlib requests`), or `THINGSAFE_PYTHON` naming such an interpreter.

mod common;

use std::process::Command;

use common::Server;
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn authlib_does_code_with_pkce_and_client_credentials() {
    let Some(python) = common::python_with(
        "authlib_does_code_with_pkce_and_client_credentials",
        "authlib, requests",
        "pip install authlib requests",
    ) else {
        return;
    };
    let s = Server::start();
    let admin = s.sign_up("authlib@oauth.test").await;
    s.create_device(&admin, "Seen by authlib").await;
    let redirect = "https://app.example/callback";
    let client =
        common::oauth::full_client(&s, &admin, &["devices:read", "telemetry:read"], redirect).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/authlib_client.py"
    );
    let out = tokio::task::spawn_blocking({
        let args = [
            s.https_base.clone().unwrap(),
            s.tls_cert.as_ref().unwrap().display().to_string(),
            client["clientId"].as_str().unwrap().to_string(),
            client["clientSecret"].as_str().unwrap().to_string(),
            redirect.to_string(),
            "authlib@oauth.test".to_string(),
            common::PASSWORD.to_string(),
        ];
        move || {
            Command::new(python)
                .arg(script)
                .args(args)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(seen["code_scope"], "devices:read telemetry:read", "{seen}");
    assert_eq!(seen["has_refresh"], true);
    assert_eq!(seen["devices_status"], StatusCode::OK.as_u16());
    assert_eq!(seen["create_status"], StatusCode::FORBIDDEN.as_u16());
    assert_eq!(seen["rotated"], true);
    assert_eq!(seen["reuse"], "invalid_grant");
    assert_eq!(seen["introspect_before"], true);
    assert_eq!(seen["introspect_after_reuse"], false);
    assert_eq!(seen["after_revoke"], StatusCode::UNAUTHORIZED.as_u16());
    assert_eq!(seen["introspect_after"], false);
    assert_eq!(seen["wrong_verifier"], "invalid_grant");
    assert_eq!(seen["cc_scope"], "telemetry:read");
    assert_eq!(seen["cc_refresh"], false);
    assert_eq!(seen["cc_create_status"], StatusCode::FORBIDDEN.as_u16());
}
