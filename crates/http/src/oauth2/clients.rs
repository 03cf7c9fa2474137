//! Registered applications (`/api/oauth2/clients`, tenant administrators) and the grants
//! a person gave them (`/api/oauth2/grants`, the privacy center).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use thingsafe_core::oauth2::{self as rules, GrantType, Scopes};
use thingsafe_core::{Authority, UserId, validate};
use thingsafe_store::oauth2::{NewOAuthClient, OAuthClient, OAuthGrant};

use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct RegisterClient {
    name: String,
    #[serde(default)]
    redirect_uris: Vec<String>,
    grant_types: Vec<String>,
    scopes: Vec<String>,
    /// `confidential` (the default: gets a secret) or `public` (a browser or mobile app:
    /// no secret, PKCE only).
    client_type: Option<String>,
}

/// Checks a registration and turns it into the client to store (with a fresh secret for
/// a confidential client).
fn new_client(req: RegisterClient, owner: UserId) -> ApiResult<NewOAuthClient> {
    let name = validate::name("name", &req.name, 255)?;
    let confidential = match req.client_type.as_deref() {
        None | Some("confidential") => true,
        Some("public") => false,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "clientType {other:?} is not known: use \"confidential\" or \"public\""
            ))
            .on_field("clientType"));
        }
    };
    let mut grant_types = Vec::new();
    for g in &req.grant_types {
        let grant = GrantType::parse(g).ok_or_else(|| {
            let why = match g.as_str() {
                "password" | "implicit" => " (it exposes credentials or tokens; this server does not offer it)",
                _ => "",
            };
            ApiError::bad_request(format!(
                "grant type {g:?} is not supported{why}: use authorization_code, client_credentials, refresh_token"
            ))
            .on_field("grantTypes")
        })?;
        if !grant_types.contains(&grant) {
            grant_types.push(grant);
        }
    }
    if grant_types.is_empty() {
        return Err(
            ApiError::bad_request("grantTypes must name at least one grant").on_field("grantTypes"),
        );
    }
    let has = |g| grant_types.contains(&g);
    if has(GrantType::RefreshToken) && !has(GrantType::AuthorizationCode) {
        return Err(ApiError::bad_request(
            "refresh_token comes with authorization_code: client_credentials tokens are not refreshed",
        )
        .on_field("grantTypes"));
    }
    if has(GrantType::ClientCredentials) && !confidential {
        return Err(ApiError::bad_request(
            "a public client cannot use client_credentials: it cannot keep a secret",
        )
        .on_field("grantTypes"));
    }
    if has(GrantType::AuthorizationCode) && req.redirect_uris.is_empty() {
        return Err(ApiError::bad_request(
            "redirectUris must name at least one URI for the authorization_code grant",
        )
        .on_field("redirectUris"));
    }
    if req.redirect_uris.len() > 10 {
        return Err(ApiError::bad_request("at most 10 redirectUris").on_field("redirectUris"));
    }
    for uri in &req.redirect_uris {
        rules::check_redirect_uri(uri)
            .map_err(|e| ApiError::bad_request(e).on_field("redirectUris"))?;
    }
    let scopes = Scopes::parse(&req.scopes.join(" "))
        .map_err(|e| ApiError::bad_request(e).on_field("scopes"))?;
    if scopes.is_empty() || req.scopes.iter().any(|s| s.contains(' ')) {
        return Err(ApiError::bad_request(
            "scopes must be a list of one or more scopes, each its own string",
        )
        .on_field("scopes"));
    }
    Ok(NewOAuthClient {
        name,
        secret: confidential.then(|| thingsafe_vault::random_token(32)),
        redirect_uris: req.redirect_uris,
        grant_types,
        scopes,
        owner,
    })
}

fn client_json(c: &OAuthClient) -> Value {
    json!({
        "clientId": c.id,
        "name": c.name,
        "clientType": if c.confidential { "confidential" } else { "public" },
        "redirectUris": c.redirect_uris,
        "grantTypes": c.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "scopes": c.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "createdTime": c.created_ms,
    })
}

/// POST /api/oauth2/clients: the secret is in this answer only.
pub(super) async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<RegisterClient>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    principal.require(&[Authority::TenantAdmin])?;
    let client = new_client(req, principal.user.id)?;
    let secret = client.secret.clone();
    let stored = state
        .store
        .create_oauth_client(&principal.scope(), client)
        .await?;
    let mut body = client_json(&stored);
    if let Some(secret) = secret {
        body["clientSecret"] = json!(secret);
    }
    Ok((StatusCode::CREATED, axum::Json(body)))
}

pub(super) async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<axum::Json<Value>> {
    principal.require(&[Authority::TenantAdmin])?;
    let clients = state.store.oauth_clients(&principal.scope()).await?;
    Ok(axum::Json(Value::Array(
        clients.iter().map(client_json).collect(),
    )))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    principal.require(&[Authority::TenantAdmin])?;
    state
        .store
        .delete_oauth_client(&principal.scope(), &id)
        .await?;
    Ok(StatusCode::OK)
}

pub(crate) fn grant_json(g: &OAuthGrant) -> Value {
    json!({
        "clientId": g.client_id,
        "clientName": g.client_name,
        "scopes": g.scopes.iter().map(|s| json!({"scope": s.as_str(), "description": s.describe()})).collect::<Vec<_>>(),
        "since": g.since_ms,
    })
}

/// The applications holding live grants for `user`.
pub(crate) async fn grants_of(state: &AppState, user: UserId) -> ApiResult<Vec<OAuthGrant>> {
    Ok(state.store.oauth_grants(user).await?)
}

/// GET /api/oauth2/grants: the caller's own.
pub(super) async fn grants(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<axum::Json<Value>> {
    let grants = grants_of(&state, principal.user.id).await?;
    Ok(axum::Json(Value::Array(
        grants.iter().map(grant_json).collect(),
    )))
}

/// DELETE /api/oauth2/grants/{clientId}: the application's tokens stop working at once.
pub(super) async fn revoke_grant(
    State(state): State<AppState>,
    principal: Principal,
    Path(client_id): Path<String>,
) -> ApiResult<StatusCode> {
    if state
        .store
        .revoke_oauth_grant(principal.user.id, &client_id)
        .await?
    {
        Ok(StatusCode::OK)
    } else {
        Err(ApiError::not_found(format!(
            "No application {client_id:?} holds a grant to your data"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: Value) -> Result<RegisterClient, String> {
        serde_json::from_value(json).map_err(|e| e.to_string())
    }

    fn owner() -> UserId {
        UserId::random()
    }

    #[test]
    fn a_good_registration_gets_a_secret_unless_public() {
        let ok = request(json!({
            "name": "Grafana", "redirectUris": ["https://grafana.example/cb"],
            "grantTypes": ["authorization_code", "refresh_token", "client_credentials"],
            "scopes": ["devices:read", "telemetry:read"]
        }))
        .unwrap();
        let client = new_client(ok, owner()).unwrap();
        assert!(client.secret.as_ref().is_some_and(|s| s.len() >= 43));
        assert_eq!(client.scopes.to_string(), "devices:read telemetry:read");
        let public = request(json!({
            "name": "Phone app", "redirectUris": ["com.example.app:/cb"],
            "grantTypes": ["authorization_code"], "scopes": ["rpc"], "clientType": "public"
        }))
        .unwrap();
        assert!(new_client(public, owner()).unwrap().secret.is_none());
    }

    #[test]
    fn malformed_registrations_say_what_is_wrong() {
        let base = json!({
            "name": "App", "redirectUris": ["https://app.example/cb"],
            "grantTypes": ["authorization_code"], "scopes": ["devices:read"]
        });
        let with = |key: &str, value: Value| {
            let mut v = base.clone();
            v[key] = value;
            v
        };
        let cases = [
            (
                with("grantTypes", json!(["password"])),
                "grantTypes",
                "password",
            ),
            (
                with("grantTypes", json!(["implicit"])),
                "grantTypes",
                "implicit",
            ),
            (with("grantTypes", json!([])), "grantTypes", "at least one"),
            (
                with("grantTypes", json!(["refresh_token"])),
                "grantTypes",
                "authorization_code",
            ),
            (
                with("scopes", json!(["devices:admin"])),
                "scopes",
                "devices:admin",
            ),
            (with("scopes", json!([])), "scopes", "one or more"),
            (
                with("scopes", json!(["devices:read rpc"])),
                "scopes",
                "each its own",
            ),
            (
                with("redirectUris", json!([])),
                "redirectUris",
                "at least one",
            ),
            (
                with("redirectUris", json!(["http://evil.example/cb"])),
                "redirectUris",
                "loopback",
            ),
            (
                with("redirectUris", json!(["https://a.example/cb#x"])),
                "redirectUris",
                "fragment",
            ),
            (with("name", json!("  ")), "name", ""),
            (with("clientType", json!("secret")), "clientType", "public"),
            (
                with("clientType", json!("public"))
                    .as_object()
                    .map(|o| {
                        let mut o = o.clone();
                        o.insert("grantTypes".into(), json!(["client_credentials"]));
                        Value::Object(o)
                    })
                    .unwrap(),
                "grantTypes",
                "public client",
            ),
        ];
        for (body, field, says) in cases {
            let e = new_client(request(body.clone()).unwrap(), owner()).unwrap_err();
            assert_eq!(e.field, Some(field), "{body}: {}", e.message);
            assert!(e.message.contains(says), "{body}: {}", e.message);
        }
        // Unknown or mistyped fields are refused by the JSON extractor's parser.
        assert!(request(with("scope", json!("devices:read"))).is_err());
        assert!(request(json!({"name": "x"})).is_err());
        assert!(request(with("grantTypes", json!("authorization_code"))).is_err());
    }
}
