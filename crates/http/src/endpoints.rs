//! Every route the HTTP server answers, with the OAuth2 scope an access token needs for
//! it. The `Principal` extractor looks the matched route up here: a route absent from
//! this list, or listed without a scope, is closed to OAuth2 tokens (deny by default).
//! `docs/security.md` has the same list with the roles; `tests/roles.rs` walks it, and a
//! unit test below checks the router's source declares no route missing here.

use axum::http::Method;
use thingsafe_core::oauth2::ApiScope;

/// One method on one route (the path as the router declares it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    /// What an OAuth2 access token must hold; `None`: not open to OAuth2 tokens.
    pub scope: Option<ApiScope>,
}

const fn e(method: &'static str, path: &'static str, scope: Option<ApiScope>) -> Endpoint {
    Endpoint {
        method,
        path,
        scope,
    }
}

const DR: Option<ApiScope> = Some(ApiScope::DevicesRead);
const DW: Option<ApiScope> = Some(ApiScope::DevicesWrite);
const TR: Option<ApiScope> = Some(ApiScope::TelemetryRead);
const TW: Option<ApiScope> = Some(ApiScope::TelemetryWrite);
const RPC: Option<ApiScope> = Some(ApiScope::Rpc);
const ME: Option<ApiScope> = Some(ApiScope::PrivacySelf);

pub const ENDPOINTS: &[Endpoint] = &[
    e("GET", "/healthz", None),
    e("GET", "/metrics", None),
    e("POST", "/api/auth/login", None),
    e("POST", "/api/auth/token", None),
    e("POST", "/api/noauth/signup", None),
    e("POST", "/api/noauth/setup", None),
    e("POST", "/api/noauth/activate", None),
    e("POST", "/api/noauth/resetPasswordByEmail", None),
    e("POST", "/api/noauth/resetPassword", None),
    e("POST", "/api/auth/2fa/verification/check", None),
    e("GET", "/api/2fa/account/settings", None),
    e("POST", "/api/2fa/account/config/generate", None),
    e("POST", "/api/2fa/account/config", None),
    e("DELETE", "/api/2fa/account/config", None),
    e("GET", "/privacy", None),
    e("GET", "/.well-known/gpc.json", None),
    e("GET", "/api/privacy/cookies", None),
    e("POST", "/api/privacy/cookies", None),
    e("GET", "/api/privacy/unsubscribe", None),
    e("POST", "/api/privacy/unsubscribe", None),
    e("DELETE", "/api/privacy/me", None),
    e("GET", "/api/privacy/me/consents", ME),
    e("PUT", "/api/privacy/me/consents", ME),
    e("GET", "/api/privacy/me/export", ME),
    e("GET", "/api/privacy/retention", None),
    e("PUT", "/api/privacy/retention", None),
    e("POST", "/api/privacy/retention/sweep", None),
    e("GET", "/api/privacy/policy", None),
    e("GET", "/api/privacy/policy/versions", None),
    e("GET", "/api/privacy/policy/versions/{version}", None),
    e("POST", "/api/auth/logout", None),
    e("GET", "/api/auth/user", ME),
    e("GET", "/api/tenants", None),
    e("GET", "/api/admin/backups", None),
    e("GET", "/api/admin/statistics", None),
    e("POST", "/api/user", None),
    e("GET", "/api/users", None),
    e("GET", "/api/user/{id}", None),
    e("DELETE", "/api/user/{id}", None),
    e("GET", "/api/user/{id}/activationLink", None),
    e("POST", "/api/customer", None),
    e("GET", "/api/customers", None),
    e("GET", "/api/customer/{id}", None),
    e("DELETE", "/api/customer/{id}", None),
    e("GET", "/api/customer/{id}/users", None),
    e("GET", "/api/customer/{id}/devices", DR),
    e("POST", "/api/customer/{customer}/device/{device}", DW),
    e("DELETE", "/api/customer/device/{device}", DW),
    e("POST", "/api/device", DW),
    e("POST", "/api/deviceProfile", DW),
    e("GET", "/api/deviceProfile/{id}", DR),
    e("DELETE", "/api/deviceProfile/{id}", DW),
    e("GET", "/api/deviceProfiles", DR),
    e("POST", "/api/customer/device/{name}/claim", DW),
    e("DELETE", "/api/customer/device/{name}/claim", DW),
    e("POST", "/api/v1/provision", None),
    e("POST", "/api/v1/{token}/claim", None),
    e("POST", "/api/device/credentials", DW),
    e("GET", "/api/device/{id}", DR),
    e("DELETE", "/api/device/{id}", DW),
    e("GET", "/api/device/{id}/credentials", DW),
    e("GET", "/api/tenant/devices", DR),
    e(
        "GET",
        "/api/plugins/telemetry/{entity_type}/{id}/keys/timeseries",
        TR,
    ),
    e(
        "GET",
        "/api/plugins/telemetry/{entity_type}/{id}/values/timeseries",
        TR,
    ),
    e(
        "DELETE",
        "/api/plugins/telemetry/{entity_type}/{id}/timeseries/delete",
        TW,
    ),
    e(
        "GET",
        "/api/plugins/telemetry/{entity_type}/{id}/values/attributes",
        TR,
    ),
    e(
        "GET",
        "/api/plugins/telemetry/{entity_type}/{id}/values/attributes/{scope}",
        TR,
    ),
    e(
        "GET",
        "/api/plugins/telemetry/{entity_type}/{id}/keys/attributes",
        TR,
    ),
    e(
        "GET",
        "/api/plugins/telemetry/{entity_type}/{id}/keys/attributes/{scope}",
        TR,
    ),
    e(
        "POST",
        "/api/plugins/telemetry/{entity_type}/{id}/attributes/{scope}",
        TW,
    ),
    e(
        "DELETE",
        "/api/plugins/telemetry/{entity_type}/{id}/{scope}",
        TW,
    ),
    e(
        "POST",
        "/api/plugins/telemetry/{entity_type}/{id}/{scope}",
        TW,
    ),
    e("GET", "/api/ws", TR),
    e("GET", "/api/ws/plugins/telemetry", TR),
    e("POST", "/api/v1/{token}/telemetry", None),
    e("POST", "/api/v1/{token}/attributes", None),
    e("GET", "/api/v1/{token}/attributes", None),
    e("GET", "/api/v1/{token}/attributes/updates", None),
    e("GET", "/api/v1/{token}/rpc", None),
    e("POST", "/api/v1/{token}/rpc", None),
    e("POST", "/api/v1/{token}/rpc/{id}", None),
    e("POST", "/api/rpc/oneway/{device}", RPC),
    e("POST", "/api/rpc/twoway/{device}", RPC),
    e("GET", "/api/rpc/persistent/{rpc}", RPC),
    e("DELETE", "/api/rpc/persistent/{rpc}", RPC),
    e("GET", "/api/rpc/persistent/device/{device}", RPC),
    // Data-subject requests (privacy_requests.rs), tenant exports, suspensions.
    e("POST", "/api/privacy/me/restriction", None),
    e("GET", "/api/privacy/me/policy-review", ME),
    e("POST", "/api/privacy/me/policy-review", None),
    e("GET", "/api/privacy/me/recipients", ME),
    e("GET", "/api/privacy/me/requests", ME),
    e("GET", "/api/privacy/requests", None),
    e("POST", "/api/privacy/requests", None),
    e("POST", "/api/privacy/requests/public", None),
    e("GET", "/api/privacy/requests/{id}", None),
    e("POST", "/api/privacy/requests/{id}/verify", None),
    e("POST", "/api/privacy/requests/{id}/assign", None),
    e("POST", "/api/privacy/requests/{id}/extend", None),
    e("POST", "/api/privacy/requests/{id}/complete", None),
    e("POST", "/api/privacy/requests/{id}/reject", None),
    e("POST", "/api/privacy/requests/{id}/lift", None),
    e("GET", "/api/privacy/tenant/export", None),
    e("GET", "/api/privacy/tenant/exports", None),
    e("PUT", "/api/privacy/tenant/exports/schedule", None),
    e("GET", "/api/privacy/tenant/exports/{id}", None),
    e("GET", "/api/suspensions", None),
    e("POST", "/api/device/{id}/suspension", None),
    e("DELETE", "/api/device/{id}/suspension", None),
    e("POST", "/api/deviceType/{type}/suspension", None),
    e("DELETE", "/api/deviceType/{type}/suspension", None),
    e("POST", "/api/tenant/{id}/suspension", None),
    e("DELETE", "/api/tenant/{id}/suspension", None),
    // Accountability records (privacy_records.rs).
    e("GET", "/api/privacy/audit", None),
    e("GET", "/api/privacy/audit/verify", None),
    e("GET", "/api/privacy/disclosures", None),
    e("POST", "/api/privacy/disclosures", None),
    e("GET", "/api/privacy/me/disclosures", ME),
    e("GET", "/api/privacy/breaches", None),
    e("POST", "/api/privacy/breaches", None),
    e("POST", "/api/privacy/breaches/{id}/notified", None),
    e("GET", "/api/privacy/breaches/{id}/subjects", None),
    e("POST", "/api/privacy/breaches/{id}/subjects/notify", None),
    e("GET", "/api/privacy/ropa", None),
    e("GET", "/api/privacy/datamap", None),
    e("GET", "/api/privacy/classification", None),
    e("PUT", "/api/privacy/classification", None),
    // OAuth2 (oauth2/).
    e("GET", "/.well-known/oauth-authorization-server", None),
    e("GET", "/oauth2/authorize", None),
    e("POST", "/oauth2/authorize", None),
    e("POST", "/oauth2/token", None),
    e("POST", "/oauth2/revoke", None),
    e("POST", "/oauth2/introspect", None),
    e("POST", "/api/oauth2/clients", None),
    e("GET", "/api/oauth2/clients", None),
    e("DELETE", "/api/oauth2/clients/{clientId}", None),
    e("GET", "/api/oauth2/grants", ME),
    e("DELETE", "/api/oauth2/grants/{clientId}", None),
    // The console (console/): pages take the session cookie only.
    e("GET", "/", None),
    e("GET", "/signin", None),
    e("POST", "/signin", None),
    e("POST", "/signin/code", None),
    e("GET", "/signup", None),
    e("POST", "/signup", None),
    e("POST", "/signout", None),
    e("GET", "/password-reset", None),
    e("POST", "/password-reset", None),
    e("POST", "/password-reset/new", None),
    e("GET", "/dashboard", None),
    e("GET", "/devices", None),
    e("GET", "/devices/{id}", None),
    e("GET", "/device-profiles", None),
    e("GET", "/device-profiles/{id}", None),
    e("GET", "/customers", None),
    e("GET", "/customers/{id}", None),
    e("GET", "/users", None),
    e("GET", "/profile", None),
    e("GET", "/tenants", None),
    e("GET", "/privacy/request", None),
    e("GET", "/admin", None),
    e("GET", "/admin/requests", None),
    e("GET", "/admin/breaches", None),
    e("GET", "/admin/suspensions", None),
    e("GET", "/admin/audit", None),
    e("GET", "/admin/retention", None),
    e("GET", "/admin/recipients", None),
    e("GET", "/admin/exports", None),
    e("GET", "/admin/backups", None),
    e("GET", "/assets/{name}", None),
];

/// The scope an OAuth2 token needs for `method` on the route `path`; `None` when the
/// route is not open to OAuth2 tokens (or not listed).
pub fn scope_of(method: &Method, path: &str) -> Option<ApiScope> {
    ENDPOINTS
        .iter()
        .find(|e| e.path == path && e.method == method.as_str())
        .and_then(|e| e.scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(method, path)` of every `.route("path", get(..).post(..))` in a router's source.
    fn declared_routes(source: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut rest = source;
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let Some(path) = rest.split('"').nth(1) else {
                continue;
            };
            // The method router runs to the call's closing parenthesis.
            let mut depth = 1;
            let end = rest
                .char_indices()
                .find(|(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map(|(i, _)| i)
                .unwrap_or(rest.len());
            let call = &rest[..end];
            for (word, method) in [
                ("get(", "GET"),
                ("post(", "POST"),
                ("put(", "PUT"),
                ("delete(", "DELETE"),
            ] {
                let found = call.match_indices(word).any(|(i, _)| {
                    i == 0 || !call[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_')
                });
                if found {
                    out.push((method.to_string(), path.to_string()));
                }
            }
        }
        out
    }

    #[test]
    fn every_route_of_the_router_is_listed_and_every_listed_route_exists() {
        let sources = [
            include_str!("routes/mod.rs"),
            include_str!("console/mod.rs"),
            include_str!("oauth2/mod.rs"),
        ];
        let declared: Vec<(String, String)> =
            sources.iter().flat_map(|s| declared_routes(s)).collect();
        assert!(declared.len() > 50, "the parser found {}", declared.len());
        for (method, path) in &declared {
            assert!(
                ENDPOINTS
                    .iter()
                    .any(|e| e.method == method && e.path == path),
                "{method} {path} is routed but not in ENDPOINTS (and docs/security.md)"
            );
        }
        for e in ENDPOINTS {
            assert!(
                declared.iter().any(|(m, p)| m == e.method && p == e.path),
                "{} {} is listed but not routed",
                e.method,
                e.path
            );
        }
    }

    #[test]
    fn the_route_parser_sees_chained_methods() {
        let src = r#".route("/a/{id}", get(x::get).delete(x::delete)).route("/b", post(y))"#;
        assert_eq!(
            declared_routes(src),
            vec![
                ("GET".into(), "/a/{id}".into()),
                ("DELETE".into(), "/a/{id}".into()),
                ("POST".into(), "/b".into()),
            ]
        );
    }

    #[test]
    fn unlisted_routes_and_routes_without_scope_are_closed_to_tokens() {
        assert_eq!(scope_of(&Method::GET, "/api/tenant/devices"), DR);
        assert_eq!(scope_of(&Method::POST, "/api/device"), DW);
        assert_eq!(scope_of(&Method::GET, "/api/users"), None);
        assert_eq!(scope_of(&Method::GET, "/api/not/routed"), None);
        assert_eq!(scope_of(&Method::PUT, "/api/device"), None);
    }
}
