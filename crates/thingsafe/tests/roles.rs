//! The endpoint table of `docs/security.md`, walked against the running binary: every
//! row is called as each role, signed out, and with OAuth2 tokens with and without its
//! scope, and must be admitted or refused exactly as the row says. The table must list
//! exactly the routes the server declares (`thingsafe_http::ENDPOINTS`), with their scopes.

mod common;

use common::Server;
use common::oauth;
use reqwest::{Method, StatusCode};
use serde_json::json;

const ROLES: [&str; 3] = ["SYS_ADMIN", "TENANT_ADMIN", "CUSTOMER_USER"];
/// What a client-credentials token can hold (privacy:self needs a person's consent).
const MACHINE_SCOPES: [&str; 5] = [
    "devices:read",
    "devices:write",
    "telemetry:read",
    "telemetry:write",
    "rpc",
];

#[derive(Clone, Debug)]
struct Row {
    method: String,
    path: String,
    auth: String,
    /// Empty: anyone.
    roles: Vec<String>,
    scope: Option<String>,
}

/// The rows of the endpoint table in `docs/security.md`.
fn table() -> Vec<Row> {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/security.md"
    ))
    .unwrap();
    let after = doc
        .split("<!-- endpoint table")
        .nth(1)
        .expect("the endpoint table's marker in docs/security.md");
    let rows: Vec<Row> = after
        .lines()
        .skip(1)
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            assert_eq!(cells.len(), 5, "a row of five cells: {line}");
            let unquote = |c: &str| c.trim_matches('`').to_string();
            Row {
                method: cells[0].to_string(),
                path: unquote(cells[1]),
                auth: cells[2].to_string(),
                roles: match cells[3] {
                    "anyone" => vec![],
                    list => list.split(',').map(|r| r.trim().to_string()).collect(),
                },
                scope: match cells[4] {
                    "—" => None,
                    s => Some(unquote(s)),
                },
            }
        })
        .collect();
    for row in &rows {
        assert!(
            ["none", "bearer", "cookie", "client", "device", "secret"].contains(&row.auth.as_str()),
            "unknown auth {:?}",
            row.auth
        );
        for role in &row.roles {
            assert!(
                ROLES.contains(&role.as_str()),
                "unknown role {role:?} in {row:?}"
            );
        }
    }
    rows
}

#[test]
fn the_table_lists_exactly_the_servers_endpoints_and_their_scopes() {
    let rows = table();
    for e in thingsafe_http::ENDPOINTS {
        let row = rows
            .iter()
            .find(|r| r.method == e.method && r.path == e.path)
            .unwrap_or_else(|| panic!("{} {} has no row in docs/security.md", e.method, e.path));
        assert_eq!(
            row.scope.as_deref(),
            e.scope.map(|s| s.as_str()),
            "the scope of {} {}",
            e.method,
            e.path
        );
    }
    for r in &rows {
        assert!(
            thingsafe_http::ENDPOINTS
                .iter()
                .any(|e| e.method == r.method && e.path == r.path),
            "{} {} is in docs/security.md but the server has no such route",
            r.method,
            r.path
        );
    }
    assert_eq!(rows.len(), thingsafe_http::ENDPOINTS.len(), "a row twice");
}

struct Caller {
    role: &'static str,
    email: String,
    user_id: String,
    token: String,
    csrf: String,
}

struct World {
    callers: Vec<Caller>,
    device_token: String,
    /// Client-credentials tokens of the tenant admin's client: all machine scopes but
    /// the one named, and only the one named.
    without: Vec<(String, String)>,
    only: Vec<(String, String)>,
}

const UUID: &str = "6d1b7a54-1c1e-4d4a-9b7e-0d6c2f3a9e11";

/// The row's path with its parameters filled in; the device API's long polls wait 100 ms.
fn filled(row: &Row, device_token: &str) -> String {
    let uuid = UUID;
    let long_poll = row.method == "GET" && row.path.starts_with("/api/v1/{token}/");
    let path = row
        .path
        .replace("{entity_type}", "DEVICE")
        .replace("{scope}", "SERVER_SCOPE")
        .replace("{token}", device_token)
        .replace("{name}", "nothing")
        .replace("{version}", "1")
        .replace("{type}", "walked-type")
        .replace("{clientId}", "nobody")
        .replace("{id}", uuid)
        .replace("{customer}", uuid)
        .replace("{device}", uuid);
    if long_poll {
        format!("{path}?timeout=100")
    } else {
        path
    }
}

/// A body of the right shape, so that a refusal is the role's and not the parser's.
fn body_for(row: &Row) -> serde_json::Value {
    match row.path.as_str() {
        "/api/user" => json!({"email": "walked@roles.test", "authority": "CUSTOMER_USER",
                              "customerId": {"entityType": "CUSTOMER", "id": UUID}}),
        "/api/customer" => json!({"title": "Walked"}),
        "/api/device" | "/api/deviceProfile" => json!({"name": "Walked"}),
        "/api/device/credentials" => json!({"deviceId": {"entityType": "DEVICE", "id": UUID},
                                            "credentialsType": "ACCESS_TOKEN", "credentialsId": "walked"}),
        "/api/rpc/oneway/{device}" | "/api/rpc/twoway/{device}" => {
            json!({"method": "walk", "params": {}})
        }
        "/api/privacy/requests/{id}/extend" => json!({"days": 10, "reason": "Walked"}),
        "/api/privacy/requests/{id}/reject"
        | "/api/device/{id}/suspension"
        | "/api/deviceType/{type}/suspension"
        | "/api/tenant/{id}/suspension" => json!({"reason": "Walked"}),
        "/api/privacy/tenant/exports/schedule" => json!({"schedule": "off"}),
        "/api/privacy/disclosures" => json!({"subjectId": UUID, "categories": ["user.name"],
                                             "recipient": "Walked", "purpose": "Walked"}),
        "/api/privacy/breaches" => json!({"nature": "Walked", "categories": ["user.name"],
                                          "approxSubjects": 1, "consequences": "Walked",
                                          "measures": "Walked", "detectedAt": "2026-01-01T00:00:00Z"}),
        "/api/privacy/breaches/{id}/notified" => json!({"notifiedAt": "2026-01-02T00:00:00Z"}),
        "/api/oauth2/clients" => {
            json!({"name": "Walked", "grantTypes": ["client_credentials"], "scopes": ["rpc"]})
        }
        _ => json!({}),
    }
}

enum Credential<'a> {
    None,
    Bearer(&'a str),
    Cookie { jwt: &'a str, csrf: &'a str },
}

/// Calls `row` (at `path`) with `credential`; returns the status and any redirect.
async fn call(
    http: &reqwest::Client,
    s: &Server,
    row: &Row,
    path: &str,
    credential: Credential<'_>,
) -> (StatusCode, String) {
    let method = Method::from_bytes(row.method.as_bytes()).unwrap();
    let mut req = http.request(method.clone(), s.url(path));
    let changes = method != Method::GET;
    // The OAuth2 client endpoints read forms; without a client they must refuse.
    let form = [("grant_type", "client_credentials"), ("token", "x")];
    let cookie = matches!(credential, Credential::Cookie { .. });
    match credential {
        Credential::Cookie { jwt, csrf } => {
            req = req.header("Cookie", format!("ts_session={jwt}"));
            if changes {
                req = req.form(&[("csrf", csrf)]);
            }
        }
        Credential::Bearer(t) => req = req.header("X-Authorization", format!("Bearer {t}")),
        Credential::None => {}
    }
    if changes && !cookie {
        req = if row.auth == "client" {
            req.form(&form)
        } else {
            req.json(&body_for(row))
        };
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let location = resp
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, location)
}

fn refused(status: StatusCode, location: &str, auth: &str) -> bool {
    status == StatusCode::UNAUTHORIZED
        || status == StatusCode::FORBIDDEN
        || (auth == "cookie" && status.is_redirection() && location.starts_with("/signin"))
}

/// Every way the server's answers differ from the table's rows.
async fn walk(s: &Server, world: &World, rows: &[Row]) -> Vec<String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut wrong = Vec::new();
    // Signing out last: it ends the session the other rows use.
    let mut rows = rows.to_vec();
    rows.sort_by_key(|r| r.path == "/api/auth/logout");
    for row in &rows {
        let path = filled(row, &world.device_token);
        let what = format!("{} {}", row.method, row.path);
        let mut outcomes = Vec::new();
        for caller in &world.callers {
            let fresh;
            let token = if row.path == "/api/auth/logout" {
                let (_, pair) = s.login(&caller.email, common::PASSWORD).await;
                fresh = pair["token"].as_str().unwrap().to_string();
                &fresh
            } else {
                &caller.token
            };
            // A customer user may read only their own account.
            let own;
            let path = if row.method == "GET" && row.path == "/api/user/{id}" {
                own = row.path.replace("{id}", &caller.user_id);
                &own
            } else {
                &path
            };
            let credential = match row.auth.as_str() {
                "cookie" => Credential::Cookie {
                    jwt: token,
                    csrf: &caller.csrf,
                },
                _ => Credential::Bearer(token),
            };
            outcomes.push((
                Some(caller.role),
                call(&http, s, row, path, credential).await,
            ));
        }
        outcomes.push((None, call(&http, s, row, &path, Credential::None).await));
        for (role, (status, location)) in &outcomes {
            if status.is_server_error() {
                wrong.push(format!("{what} as {role:?}: server error {status}"));
                continue;
            }
            let denied = refused(*status, location, &row.auth);
            let expected_denied = match row.auth.as_str() {
                "none" | "device" => Some(false),
                "client" => Some(true),
                "secret" => None,
                _ => Some(match role {
                    Some(role) => !row.roles.iter().any(|r| r == role),
                    None => true,
                }),
            };
            if let Some(expected) = expected_denied
                && expected != denied
            {
                wrong.push(format!(
                    "{what} as {}: {status}, the table says {}",
                    role.unwrap_or("no one signed in"),
                    if expected { "refused" } else { "allowed" }
                ));
            }
        }
        if row.auth == "secret" {
            let first = outcomes[0].1.0;
            if outcomes.iter().any(|(_, (status, _))| *status != first) {
                wrong.push(format!(
                    "{what}: the answer depends on the caller: {outcomes:?}"
                ));
            }
        }
        if row.auth != "bearer" {
            continue;
        }
        // OAuth2 tokens: refused without the row's scope (every row without a scope
        // refuses every token); with it, as the tenant admin who owns the client.
        let lacking = match &row.scope {
            Some(scope) => world
                .without
                .iter()
                .find(|(s, _)| s == scope)
                .map(|(_, t)| t),
            None => world
                .without
                .iter()
                .find(|(s, _)| s == "none")
                .map(|(_, t)| t),
        };
        if let Some(token) = lacking {
            let (status, _) = call(&http, s, row, &path, Credential::Bearer(token)).await;
            if status != StatusCode::FORBIDDEN {
                wrong.push(format!(
                    "{what} with a token lacking {:?}: {status}, not 403",
                    row.scope
                ));
            }
        }
        if let Some((_, token)) = world
            .only
            .iter()
            .find(|(sc, _)| Some(sc) == row.scope.as_ref())
        {
            let (status, location) = call(&http, s, row, &path, Credential::Bearer(token)).await;
            let expected_denied = !row.roles.iter().any(|r| r == "TENANT_ADMIN");
            if refused(status, &location, "bearer") != expected_denied {
                wrong.push(format!("{what} with a token of its scope: {status}"));
            }
        }
    }
    wrong
}

async fn csrf_of(s: &Server, jwt: &str) -> String {
    let html = s
        .http
        .get(s.url("/profile"))
        .header("Cookie", format!("ts_session={jwt}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    html.split(r#"<meta name="csrf-token" content=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSRF token in the profile page")
        .to_string()
}

async fn world(s: &Server) -> World {
    let setup = s.setup_token.clone().expect("a setup token");
    let (status, pair) = s
        .call(
            Method::POST,
            "/api/noauth/setup",
            None,
            Some(json!({"setupToken": setup, "email": "root@roles.test", "password": common::PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    let sysadmin = pair["token"].as_str().unwrap().to_string();
    let admin = s.sign_up("admin@roles.test").await;
    let (customer_user, _) = s.customer_user(&admin, "customer@roles.test").await;
    s.device_with_token(&admin, "Walker", "ROLESDEVICETOKEN")
        .await;

    let client = oauth::full_client(s, &admin, &MACHINE_SCOPES, "https://app.example/cb").await;
    let (id, secret) = (
        client["clientId"].as_str().unwrap(),
        client["clientSecret"].as_str().unwrap(),
    );
    let mut without = vec![(
        "none".to_string(),
        oauth::client_credentials_token(s, id, secret, &MACHINE_SCOPES.join(" ")).await,
    )];
    let mut only = Vec::new();
    for scope in MACHINE_SCOPES {
        let rest: Vec<&str> = MACHINE_SCOPES.into_iter().filter(|s| *s != scope).collect();
        without.push((
            scope.into(),
            oauth::client_credentials_token(s, id, secret, &rest.join(" ")).await,
        ));
        only.push((
            scope.into(),
            oauth::client_credentials_token(s, id, secret, scope).await,
        ));
    }
    without.push((
        "privacy:self".into(),
        oauth::client_credentials_token(s, id, secret, &MACHINE_SCOPES.join(" ")).await,
    ));
    let mut callers = Vec::new();
    for (role, email, token) in [
        ("SYS_ADMIN", "root@roles.test", sysadmin),
        ("TENANT_ADMIN", "admin@roles.test", admin),
        ("CUSTOMER_USER", "customer@roles.test", customer_user),
    ] {
        let (_, me) = s.get("/api/auth/user", &token).await;
        callers.push(Caller {
            role,
            email: email.into(),
            user_id: me["id"]["id"].as_str().unwrap().to_string(),
            csrf: csrf_of(s, &token).await,
            token,
        });
    }
    World {
        callers,
        device_token: "ROLESDEVICETOKEN".into(),
        without,
        only,
    }
}

#[tokio::test]
async fn every_endpoint_admits_exactly_the_roles_and_scopes_the_table_says() {
    let s = Server::start();
    let world = world(&s).await;
    let rows = table();

    // A wrong row is noticed: a role added, a role missing, a scope that is not the route's.
    let row = |path: &str, method: &str| {
        rows.iter()
            .find(|r| r.path == path && r.method == method)
            .unwrap()
            .clone()
    };
    let mut too_open = row("/api/tenants", "GET");
    too_open.roles.push("TENANT_ADMIN".into());
    let mut too_closed = row("/api/tenant/devices", "GET");
    too_closed.roles.clear();
    too_closed.roles.push("SYS_ADMIN".into());
    let mut wrong_scope = row("/api/tenant/devices", "GET");
    wrong_scope.scope = Some("telemetry:read".into());
    let mut page_for_all = row("/users", "GET");
    page_for_all.roles.push("CUSTOMER_USER".into());
    for wrong in [too_open, too_closed, wrong_scope, page_for_all] {
        let found = walk(&s, &world, std::slice::from_ref(&wrong)).await;
        assert!(!found.is_empty(), "the walk missed a wrong row: {wrong:?}");
    }

    let wrong = walk(&s, &world, &rows).await;
    assert!(
        wrong.is_empty(),
        "{} answers differ from docs/security.md:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[tokio::test]
async fn https_answers_carry_hsts_and_plain_http_ones_do_not() {
    let s = Server::start();
    let https = common::tls::client_trusting(s.tls_cert.as_ref().unwrap());
    let secure = https
        .get(format!("{}/healthz", s.https_base.as_ref().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(secure.status(), StatusCode::OK);
    assert_eq!(
        secure.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let page = https
        .get(format!("{}/signin", s.https_base.as_ref().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        page.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let plain = s.http.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
    assert!(plain.headers().get("strict-transport-security").is_none());
}
