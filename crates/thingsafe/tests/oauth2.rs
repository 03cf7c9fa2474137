//! The OAuth2 authorization server against a client library we did not write (the
//! `oauth2` crate over its reqwest client, HTTPS with the generated certificate): code +
//! PKCE through the console's sign-in and consent page, client credentials, refresh
//! rotation, revocation, introspection; and every misuse refused with the RFC's code.

mod common;

use std::borrow::Cow;
use std::time::Duration;

use common::Server;
use common::oauth::{self, Browser, form_post, query_param};
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AccessToken, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, IntrospectionUrl, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RequestTokenError, ResourceOwnerPassword, ResourceOwnerUsername, RevocationUrl, Scope,
    StandardRevocableToken, TokenIntrospectionResponse, TokenResponse, TokenUrl,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

const REDIRECT: &str = "http://127.0.0.1:9/callback";

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointSet, EndpointSet, EndpointSet>;

/// The outside client, configured as its documentation says, for the server's HTTPS.
fn outside_client(s: &Server, registered: &Value) -> Client {
    let base = s.https_base.clone().expect("TLS is on");
    let mut client = BasicClient::new(ClientId::new(
        registered["clientId"].as_str().unwrap().into(),
    ))
    .set_auth_uri(AuthUrl::new(format!("{base}/oauth2/authorize")).unwrap())
    .set_token_uri(TokenUrl::new(format!("{base}/oauth2/token")).unwrap())
    .set_revocation_url(RevocationUrl::new(format!("{base}/oauth2/revoke")).unwrap())
    .set_introspection_url(IntrospectionUrl::new(format!("{base}/oauth2/introspect")).unwrap())
    .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());
    if let Some(secret) = registered["clientSecret"].as_str() {
        client = client.set_client_secret(ClientSecret::new(secret.into()));
    }
    client
}

/// The library's HTTP client (reqwest 0.12 inside `oauth2`), trusting the server's
/// certificate and following no redirects (RFC 6749 §10.4's advice to clients).
fn library_http(s: &Server) -> oauth2::reqwest::Client {
    let pem = std::fs::read(s.tls_cert.as_ref().unwrap()).unwrap();
    oauth2::reqwest::Client::builder()
        .add_root_certificate(oauth2::reqwest::Certificate::from_pem(&pem).unwrap())
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The browser: reqwest over HTTPS, following no redirects.
fn browser_http(s: &Server) -> reqwest::Client {
    common::tls::install_provider();
    let pem = std::fs::read(s.tls_cert.as_ref().unwrap()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .unwrap_or_else(|| panic!("no redirect: {}", resp.status()))
        .to_str()
        .unwrap()
        .to_string()
}

/// A signed-in browser of `email` (who signs in on the way to `authorize_url`).
async fn signed_in(s: &Server, email: &str, authorize_url: &str) -> Browser {
    let https = s.https_base.clone().unwrap();
    let path = authorize_url.strip_prefix(&https).unwrap();
    // Signed out: the consent page sends the person to sign in, and back afterwards.
    let http = browser_http(s);
    let first = http.get(authorize_url).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let to_sign_in = location(&first);
    assert!(to_sign_in.starts_with("/signin?next="), "{to_sign_in}");
    let next = query_param(&to_sign_in, "next").unwrap();
    assert_eq!(next, path, "the sign-in page brings the person back");
    let (browser, back) = Browser::sign_in(http, &https, email, &next).await;
    assert_eq!(back, path);
    browser
}

/// Runs the browser's part: opens the authorize URL, checks the consent page, answers
/// `allow`; returns the code after checking `state`.
async fn consent(browser: &Browser, authorize_url: &str, state: &CsrfToken) -> String {
    let page = browser.get(authorize_url).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:9;"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Allow Outside app to use your account?"),
        "{html}"
    );
    let answer = browser.answer(&html, "allow").await;
    if answer.status() != StatusCode::SEE_OTHER {
        panic!("{}: {}", answer.status(), answer.text().await.unwrap());
    }
    let back = location(&answer);
    assert!(back.starts_with(&format!("{REDIRECT}?code=")), "{back}");
    assert_eq!(
        query_param(&back, "state").as_deref(),
        Some(state.secret().as_str())
    );
    query_param(&back, "code").unwrap()
}

/// An authorize URL of `client` for `scopes` with a fresh PKCE pair.
fn authorize(client: &Client, scopes: &[&str]) -> (String, CsrfToken, PkceCodeVerifier) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(challenge);
    for s in scopes {
        request = request.add_scope(Scope::new(s.to_string()));
    }
    let (url, state) = request.url();
    (url.to_string(), state, verifier)
}

/// The code flow for a signed-in browser: authorize, consent, exchange with the verifier.
async fn code_grant(
    client: &Client,
    http: &oauth2::reqwest::Client,
    browser: &Browser,
    scopes: &[&str],
) -> oauth2::basic::BasicTokenResponse {
    let (url, state, verifier) = authorize(client, scopes);
    let code = consent(browser, &url, &state).await;
    client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(http)
        .await
        .expect("code + PKCE exchange")
}

/// Whether introspection (RFC 7662) calls the token active.
async fn active(client: &Client, http: &oauth2::reqwest::Client, token: impl Into<String>) -> bool {
    client
        .introspect(&AccessToken::new(token.into()))
        .request_async(http)
        .await
        .expect("introspection")
        .active()
}

fn rfc_error<RE: std::error::Error + 'static>(
    result: Result<
        impl std::fmt::Debug,
        RequestTokenError<RE, oauth2::StandardErrorResponse<BasicErrorResponseType>>,
    >,
) -> BasicErrorResponseType {
    match result {
        Err(RequestTokenError::ServerResponse(e)) => e.error().clone(),
        other => panic!("expected an RFC 6749 error response, got {other:?}"),
    }
}

async fn bearer_get(s: &Server, path: &str, token: &str) -> StatusCode {
    s.get(path, token).await.0
}

const DEVICES: &str = "/api/tenant/devices?pageSize=10&page=0";

#[tokio::test]
async fn code_with_pkce_refresh_rotation_revocation_and_introspection() {
    let s = Server::start();
    let admin = s.sign_up("owner@oauth.test").await;
    s.create_device(&admin, "Boiler").await;
    let registered =
        oauth::full_client(&s, &admin, &["devices:read", "telemetry:read"], REDIRECT).await;
    let client = outside_client(&s, &registered);
    let http = library_http(&s);

    let (url, state, verifier) = authorize(&client, &["devices:read", "telemetry:read"]);
    let browser = signed_in(&s, "owner@oauth.test", &url).await;
    let code = consent(&browser, &url, &state).await;
    let token = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code + PKCE exchange");
    let scopes: Vec<String> = token
        .scopes()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(scopes, ["devices:read", "telemetry:read"]);
    assert_eq!(token.expires_in(), Some(Duration::from_secs(3600)));
    let access = token.access_token().secret().clone();
    let refresh = token.refresh_token().expect("a refresh token").clone();

    // The token reads devices; it cannot create one, nor reach what no scope opens.
    assert_eq!(bearer_get(&s, DEVICES, &access).await, StatusCode::OK);
    let (status, body) = s
        .post("/api/device", &access, json!({"name": "Sneaky"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("devices:write"),
        "{body}"
    );
    assert_eq!(
        bearer_get(&s, "/api/users?pageSize=10&page=0", &access).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        bearer_get(&s, "/api/oauth2/clients", &access).await,
        StatusCode::FORBIDDEN
    );

    // Introspection knows it.
    let seen = client
        .introspect(&AccessToken::new(access.clone()))
        .request_async(&http)
        .await
        .unwrap();
    assert!(seen.active());
    assert_eq!(seen.scopes().unwrap().len(), 2);

    // The privacy center lists the application.
    let (status, grants) = s.get("/api/oauth2/grants", &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(grants[0]["clientName"], "Outside app", "{grants}");
    let profile = browser.get("/profile").await.text().await.unwrap();
    assert!(
        profile.contains("Outside app") && profile.contains("data-revoke-grant"),
        "{profile}"
    );

    // Refresh: a new pair; the old refresh token is spent, and using it again revokes
    // the grant's every token (reuse detection).
    let rotated = client
        .exchange_refresh_token(&refresh)
        .request_async(&http)
        .await
        .expect("refresh");
    let new_access = rotated.access_token().secret().clone();
    let new_refresh = rotated.refresh_token().unwrap().clone();
    assert_ne!(new_refresh.secret(), refresh.secret());
    assert_eq!(bearer_get(&s, DEVICES, &new_access).await, StatusCode::OK);
    let reuse = client
        .exchange_refresh_token(&refresh)
        .request_async(&http)
        .await;
    assert_eq!(rfc_error(reuse), BasicErrorResponseType::InvalidGrant);
    assert_eq!(
        bearer_get(&s, DEVICES, &new_access).await,
        StatusCode::UNAUTHORIZED
    );
    let after = client
        .exchange_refresh_token(&new_refresh)
        .request_async(&http)
        .await;
    assert_eq!(rfc_error(after), BasicErrorResponseType::InvalidGrant);
    assert!(!active(&client, &http, new_access).await);

    // Revocation (RFC 7009) of a refresh token ends its access tokens too.
    let token = code_grant(&client, &http, &browser, &["devices:read"]).await;
    let access = token.access_token().secret().clone();
    assert_eq!(bearer_get(&s, DEVICES, &access).await, StatusCode::OK);
    client
        .revoke_token(StandardRevocableToken::from(
            token.refresh_token().unwrap().clone(),
        ))
        .unwrap()
        .request_async(&http)
        .await
        .expect("revocation");
    assert_eq!(
        bearer_get(&s, DEVICES, &access).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(!active(&client, &http, access).await);

    // The person revokes the application in the privacy center: its token dies at once.
    let token = code_grant(&client, &http, &browser, &["telemetry:read"]).await;
    let access = token.access_token().secret().clone();
    let id = registered["clientId"].as_str().unwrap();
    let (status, _) = s.delete(&format!("/api/oauth2/grants/{id}"), &admin).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s
        .get(
            &format!(
                "/api/plugins/telemetry/DEVICE/{}/keys/timeseries",
                uuid_zero()
            ),
            &access,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, grants) = s.get("/api/oauth2/grants", &admin).await;
    assert_eq!(grants, json!([]));
    let (status, _) = s.delete(&format!("/api/oauth2/grants/{id}"), &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Neither the client's secret nor a token is stored as it is.
    common::assert_absent_from_files(
        &s.data_dir,
        &[
            registered["clientSecret"].as_str().unwrap(),
            refresh.secret(),
            &access,
            "Outside app",
        ],
    );
}

fn uuid_zero() -> &'static str {
    "00000000-0000-0000-0000-000000000000"
}

#[tokio::test]
async fn every_misuse_is_refused_with_the_rfcs_error_code() {
    let s = Server::start();
    let admin = s.sign_up("misuse@oauth.test").await;
    let registered = oauth::full_client(&s, &admin, &["devices:read"], REDIRECT).await;
    let client = outside_client(&s, &registered);
    let http = library_http(&s);
    let (url, state, _) = authorize(&client, &["devices:read"]);
    let browser = signed_in(&s, "misuse@oauth.test", &url).await;

    // A wrong PKCE verifier.
    let code = consent(&browser, &url, &state).await;
    let wrong = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(PkceCodeVerifier::new("x".repeat(43)))
        .request_async(&http)
        .await;
    assert_eq!(rfc_error(wrong), BasicErrorResponseType::InvalidGrant);

    // No verifier at all.
    let (url, state, _) = authorize(&client, &["devices:read"]);
    let code = consent(&browser, &url, &state).await;
    let missing = client
        .exchange_code(AuthorizationCode::new(code))
        .request_async(&http)
        .await;
    assert_eq!(rfc_error(missing), BasicErrorResponseType::InvalidGrant);

    // A code used twice: refused, and the tokens it gave are revoked.
    let (url, state, verifier) = authorize(&client, &["devices:read"]);
    let code = consent(&browser, &url, &state).await;
    let verifier_again = PkceCodeVerifier::new(verifier.secret().clone());
    let first = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let access = first.access_token().secret().clone();
    assert_eq!(bearer_get(&s, DEVICES, &access).await, StatusCode::OK);
    let again = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier_again)
        .request_async(&http)
        .await;
    assert_eq!(rfc_error(again), BasicErrorResponseType::InvalidGrant);
    assert_eq!(
        bearer_get(&s, DEVICES, &access).await,
        StatusCode::UNAUTHORIZED
    );

    // A redirect URI other than the authorization request's, at the token endpoint.
    let (url, state, verifier) = authorize(&client, &["devices:read"]);
    let code = consent(&browser, &url, &state).await;
    let other_uri = RedirectUrl::new("http://127.0.0.1:9/elsewhere".into()).unwrap();
    let mismatch = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .set_redirect_uri(Cow::Owned(other_uri))
        .request_async(&http)
        .await;
    assert_eq!(rfc_error(mismatch), BasicErrorResponseType::InvalidGrant);

    // An unregistered redirect URI at the authorization endpoint: an error page, never
    // a redirect there.
    let foreign = url.replace("127.0.0.1%3A9%2Fcallback", "evil.example%2Fcallback");
    assert_ne!(foreign, url);
    let page = browser.get(&foreign).await;
    assert_eq!(page.status(), StatusCode::BAD_REQUEST);
    assert!(page.headers().get("location").is_none());
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("not one of its registered redirect URIs")
    );

    // An unknown client: an error page too.
    let unknown = url.replace(registered["clientId"].as_str().unwrap(), "nobody");
    let page = browser.get(&unknown).await;
    assert_eq!(page.status(), StatusCode::BAD_REQUEST);

    // With a valid redirect URI, errors go back to the application with its state.
    let https = s.https_base.clone().unwrap();
    let id = registered["clientId"].as_str().unwrap();
    let (pkce, _) = PkceCodeChallenge::new_random_sha256();
    let base = format!(
        "{https}/oauth2/authorize?client_id={id}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback&state=s1"
    );
    for (query, error) in [
        (
            format!(
                "&response_type=token&code_challenge={}&code_challenge_method=S256",
                pkce.as_str()
            ),
            "unsupported_response_type",
        ),
        ("&response_type=code".to_string(), "invalid_request"),
        (
            format!(
                "&response_type=code&code_challenge={}&code_challenge_method=plain",
                pkce.as_str()
            ),
            "invalid_request",
        ),
        (
            format!(
                "&response_type=code&code_challenge={}&code_challenge_method=S256&scope=rpc",
                pkce.as_str()
            ),
            "invalid_scope",
        ),
        (
            format!(
                "&response_type=code&code_challenge={}&code_challenge_method=S256&scope=root",
                pkce.as_str()
            ),
            "invalid_scope",
        ),
    ] {
        let resp = browser.get(&format!("{base}{query}")).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{query}");
        let back = location(&resp);
        assert!(back.starts_with(REDIRECT), "{back}");
        assert_eq!(
            query_param(&back, "error").as_deref(),
            Some(error),
            "{query}: {back}"
        );
        assert_eq!(query_param(&back, "state").as_deref(), Some("s1"));
        assert!(query_param(&back, "code").is_none());
    }

    // The person denies: access_denied, no code.
    let (url, state, _) = authorize(&client, &["devices:read"]);
    let html = browser.get(&url).await.text().await.unwrap();
    let denied = browser.answer(&html, "deny").await;
    let back = location(&denied);
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(
        query_param(&back, "state").as_deref(),
        Some(state.secret().as_str())
    );
    assert!(query_param(&back, "code").is_none());

    // A consent posted without the page's CSRF token (another site's form) grants nothing.
    let mut forged = oauth::hidden_inputs(&html);
    forged.retain(|(name, _)| name != "csrf");
    forged.push(("csrf".into(), "forged".into()));
    forged.push(("decision".into(), "allow".into()));
    let refused = browser.post_consent(&forged).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused.headers().get("location").is_none());

    // A wrong client secret: invalid_client, 401 with WWW-Authenticate.
    let (status, body) = form_post(
        &s,
        "/oauth2/token",
        id,
        Some("not-the-secret"),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client", "{body}");
    let wrong_secret = BasicClient::new(ClientId::new(id.into()))
        .set_client_secret(ClientSecret::new("guess".into()))
        .set_token_uri(TokenUrl::new(format!("{https}/oauth2/token")).unwrap())
        .exchange_client_credentials()
        .request_async(&http)
        .await;
    assert_eq!(
        rfc_error(wrong_secret),
        BasicErrorResponseType::InvalidClient
    );

    // No password grant.
    let password = client
        .exchange_password(
            &ResourceOwnerUsername::new("misuse@oauth.test".into()),
            &ResourceOwnerPassword::new(common::PASSWORD.into()),
        )
        .request_async(&http)
        .await;
    assert_eq!(
        rfc_error(password),
        BasicErrorResponseType::UnsupportedGrantType
    );

    // A scope the client was not registered with.
    let wider = client
        .exchange_client_credentials()
        .add_scope(Scope::new("devices:write".into()))
        .request_async(&http)
        .await;
    assert_eq!(rfc_error(wider), BasicErrorResponseType::InvalidScope);

    // A refresh token that does not exist.
    let bogus = client
        .exchange_refresh_token(&RefreshToken::new("bogus".into()))
        .request_async(&http)
        .await;
    assert_eq!(rfc_error(bogus), BasicErrorResponseType::InvalidGrant);

    // A public client may not use client credentials, nor anything it is not registered for.
    let public = oauth::register_client(
        &s,
        &admin,
        json!({"name": "Phone", "redirectUris": [REDIRECT], "grantTypes": ["authorization_code"],
               "scopes": ["devices:read"], "clientType": "public"}),
    )
    .await;
    assert!(public.get("clientSecret").is_none());
    let (status, body) = form_post(
        &s,
        "/oauth2/token",
        public["clientId"].as_str().unwrap(),
        None,
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unauthorized_client", "{body}");
    let (_, body) = form_post(
        &s,
        "/oauth2/token",
        public["clientId"].as_str().unwrap(),
        None,
        &[("grant_type", "refresh_token"), ("refresh_token", "x")],
    )
    .await;
    assert_eq!(body["error"], "unauthorized_client", "{body}");

    // Malformed token requests say what is wrong.
    for (form, error, says) in [
        (
            vec![
                ("grant_type", "client_credentials"),
                ("grant_type", "password"),
            ],
            "invalid_request",
            "more than once",
        ),
        (
            vec![("scope", "devices:read")],
            "invalid_request",
            "grant_type",
        ),
        (
            vec![("grant_type", "authorization_code")],
            "invalid_request",
            "code",
        ),
        (
            vec![("grant_type", "urn:ietf:params:oauth:grant-type:device_code")],
            "unsupported_grant_type",
            "device_code",
        ),
    ] {
        let (status, body) = form_post(
            &s,
            "/oauth2/token",
            id,
            registered["clientSecret"].as_str(),
            &form,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{form:?}");
        assert_eq!(body["error"], error, "{form:?}: {body}");
        assert!(
            body["error_description"].as_str().unwrap().contains(says),
            "{body}"
        );
    }
    let json_body = s
        .http
        .post(s.url("/oauth2/token"))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_body.status(), StatusCode::BAD_REQUEST);
    let body: Value = json_body.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request", "{body}");
}

#[tokio::test]
async fn client_credentials_tokens_act_within_their_scopes_and_expire() {
    let s = Server::start_with(&[("THINGSAFE_AUTH_OAUTH2_ACCESS_TOKEN_TTL_SECS", "2")]);
    let admin = s.sign_up("machine@oauth.test").await;
    let device = s.create_device(&admin, "Meter").await;
    let registered = oauth::full_client(
        &s,
        &admin,
        &[
            "devices:read",
            "devices:write",
            "telemetry:read",
            "privacy:self",
        ],
        REDIRECT,
    )
    .await;
    let client = outside_client(&s, &registered);
    let http = library_http(&s);

    // Only telemetry:read: it reads telemetry, it cannot create a device.
    let token = client
        .exchange_client_credentials()
        .add_scope(Scope::new("telemetry:read".into()))
        .request_async(&http)
        .await
        .expect("client credentials");
    assert!(
        token.refresh_token().is_none(),
        "no refresh token for client credentials"
    );
    let reader = token.access_token().secret().clone();
    let telemetry = format!("/api/plugins/telemetry/DEVICE/{device}/values/timeseries?keys=t");
    assert_eq!(bearer_get(&s, &telemetry, &reader).await, StatusCode::OK);
    let (status, _) = s
        .post("/api/device", &reader, json!({"name": "Nope"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        bearer_get(&s, DEVICES, &reader).await,
        StatusCode::FORBIDDEN
    );

    // With devices:write it may (it acts with its owner's, a tenant admin's, rights).
    let writer = oauth::client_credentials_token(
        &s,
        registered["clientId"].as_str().unwrap(),
        registered["clientSecret"].as_str().unwrap(),
        "devices:write",
    )
    .await;
    let (status, body) = s
        .post("/api/device", &writer, json!({"name": "Made by a machine"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A person's own data needs a person's consent.
    let personal = client
        .exchange_client_credentials()
        .add_scope(Scope::new("privacy:self".into()))
        .request_async(&http)
        .await;
    assert_eq!(rfc_error(personal), BasicErrorResponseType::InvalidScope);

    // Expired: refused, and inactive for introspection.
    let seen = client
        .introspect(&AccessToken::new(reader.clone()))
        .request_async(&http)
        .await
        .unwrap();
    assert!(seen.active());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        bearer_get(&s, &telemetry, &reader).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(!active(&client, &http, reader).await);
}

#[tokio::test]
async fn a_customer_users_token_never_sees_another_customers_devices() {
    let s = Server::start();
    let admin = s.sign_up("tenant@oauth.test").await;
    let (_, kim_customer) = s.customer_user(&admin, "kim@oauth.test").await;
    let (_, lee_customer) = s.customer_user(&admin, "lee@oauth.test").await;
    let kims = s.create_device(&admin, "Kim's meter").await;
    let lees = s.create_device(&admin, "Lee's meter").await;
    for (customer, device) in [(&kim_customer, &kims), (&lee_customer, &lees)] {
        let (status, body) = s
            .post(
                &format!("/api/customer/{customer}/device/{device}"),
                &admin,
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let registered =
        oauth::full_client(&s, &admin, &["devices:read", "devices:write"], REDIRECT).await;
    let client = outside_client(&s, &registered);
    let http = library_http(&s);

    let (url, state, verifier) = authorize(&client, &[]);
    let browser = signed_in(&s, "kim@oauth.test", &url).await;
    let code = consent(&browser, &url, &state).await;
    let token = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    // A customer user cannot hold devices:write, so the token does not either.
    let scopes: Vec<String> = token
        .scopes()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(scopes, ["devices:read"]);
    let kim = token.access_token().secret().clone();

    let (status, own) = s
        .get(
            &format!("/api/customer/{kim_customer}/devices?pageSize=10&page=0"),
            &kim,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = own["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Kim's meter"]);
    let (status, _) = s
        .get(
            &format!("/api/customer/{lee_customer}/devices?pageSize=10&page=0"),
            &kim,
        )
        .await;
    assert!(
        status == StatusCode::NOT_FOUND || status == StatusCode::FORBIDDEN,
        "{status}"
    );
    assert_eq!(
        bearer_get(&s, &format!("/api/device/{lees}"), &kim).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        bearer_get(&s, &format!("/api/device/{kims}"), &kim).await,
        StatusCode::OK
    );

    // The consent page of another tenant's client refuses (access_denied).
    let other_admin = s.sign_up("other@oauth.test").await;
    let foreign = oauth::full_client(&s, &other_admin, &["devices:read"], REDIRECT).await;
    let (url, _, _) = authorize(&outside_client(&s, &foreign), &["devices:read"]);
    let resp = browser.get(&url).await;
    assert_eq!(
        query_param(&location(&resp), "error").as_deref(),
        Some("access_denied")
    );
}

#[tokio::test]
async fn metadata_and_client_registration() {
    let s = Server::start();
    let admin = s.sign_up("meta@oauth.test").await;
    let (status, meta) = s
        .call(
            reqwest::Method::GET,
            "/.well-known/oauth-authorization-server",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let issuer = meta["issuer"].as_str().unwrap();
    assert_eq!(meta["token_endpoint"], format!("{issuer}/oauth2/token"));
    assert_eq!(
        meta["authorization_endpoint"],
        format!("{issuer}/oauth2/authorize")
    );
    assert_eq!(
        meta["revocation_endpoint"],
        format!("{issuer}/oauth2/revoke")
    );
    assert_eq!(
        meta["introspection_endpoint"],
        format!("{issuer}/oauth2/introspect")
    );
    assert_eq!(meta["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(meta["response_types_supported"], json!(["code"]));
    assert_eq!(
        meta["grant_types_supported"],
        json!(["authorization_code", "client_credentials", "refresh_token"])
    );
    assert!(
        meta["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("telemetry:read"))
    );

    // Registration: the secret is shown once; the list never shows it.
    let client = oauth::full_client(&s, &admin, &["rpc"], "https://app.example/cb").await;
    assert!(client["clientSecret"].as_str().unwrap().len() >= 43);
    let (_, list) = s.get("/api/oauth2/clients", &admin).await;
    assert_eq!(list[0]["clientId"], client["clientId"]);
    assert!(list[0].get("clientSecret").is_none(), "{list}");
    // Malformed registrations are refused saying what is wrong.
    for (body, says) in [
        (
            json!({"name": "x", "grantTypes": ["password"], "scopes": ["rpc"]}),
            "password",
        ),
        (
            json!({"name": "x", "grantTypes": ["authorization_code"], "scopes": ["rpc"], "redirectUris": ["http://app.example/cb"]}),
            "loopback",
        ),
        (
            json!({"name": "x", "grantTypes": ["client_credentials"], "scopes": ["all"]}),
            "unknown scope",
        ),
        (
            json!({"name": "x", "grantTypes": "client_credentials", "scopes": ["rpc"]}),
            "grantTypes",
        ),
    ] {
        let (status, err) = s.post("/api/oauth2/clients", &admin, body.clone()).await;
        // 422 when the JSON has the wrong shape (the extractor's), 400 when a value is wrong.
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {status}"
        );
        assert!(
            err["message"].as_str().unwrap().contains(says),
            "{body}: {err}"
        );
    }
    // Only a tenant administrator registers; another tenant does not see or delete it.
    let (customer_user, _) = s.customer_user(&admin, "cu@oauth.test").await;
    let (status, _) = s
        .post(
            "/api/oauth2/clients",
            &customer_user,
            json!({"name": "x", "grantTypes": ["client_credentials"], "scopes": ["rpc"]}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let other = s.sign_up("meta-other@oauth.test").await;
    let (_, theirs) = s.get("/api/oauth2/clients", &other).await;
    assert_eq!(theirs, json!([]));
    let id = client["clientId"].as_str().unwrap();
    let (status, _) = s.delete(&format!("/api/oauth2/clients/{id}"), &other).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s.delete(&format!("/api/oauth2/clients/{id}"), &admin).await;
    assert_eq!(status, StatusCode::OK);
}
