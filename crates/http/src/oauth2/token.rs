//! The token endpoint and its neighbours: revocation, introspection, metadata. Requests
//! are form-encoded; errors are RFC 6749 §5.2 bodies `{error, error_description}`, 400,
//! or 401 with `WWW-Authenticate` for a client that failed to authenticate.

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, PRAGMA, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use thingsafe_core::oauth2::{self as rules, ApiScope, ErrorCode, GrantType, OAuthError, Scopes};
use thingsafe_core::{Authority, now_ms};
use thingsafe_store::oauth2::{
    CodeRedemption, OAuthClient, RefreshRotation, TokenIssue, TokenKind,
};

use crate::AppState;

/// An RFC 6749 §5.2 error response.
pub(super) struct TokenError(OAuthError);

impl From<OAuthError> for TokenError {
    fn from(e: OAuthError) -> Self {
        TokenError(e)
    }
}

fn refuse(code: ErrorCode, description: impl Into<String>) -> TokenError {
    TokenError(OAuthError::new(code, description))
}

impl From<thingsafe_store::StoreError> for TokenError {
    fn from(e: thingsafe_store::StoreError) -> Self {
        tracing::error!(error = %e, "store failure at an OAuth2 endpoint");
        TokenError(OAuthError::new(
            ErrorCode::InvalidRequest,
            "the server could not complete the request; the error is logged",
        ))
    }
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        let status = if self.0.code == ErrorCode::InvalidClient {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        };
        let body = json!({"error": self.0.code.as_str(), "error_description": self.0.description});
        let mut response = (status, no_store(), Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Basic realm=\"thingsafe\""),
            );
        }
        response
    }
}

fn no_store() -> [(axum::http::HeaderName, &'static str); 2] {
    [(CACHE_CONTROL, "no-store"), (PRAGMA, "no-cache")]
}

/// A form body as name/value pairs; a parameter sent twice is refused (RFC 6749 §3.2).
pub(super) struct Params(Vec<(String, String)>);

impl Params {
    fn from_form(
        form: Result<Form<Vec<(String, String)>>, FormRejection>,
    ) -> Result<Params, TokenError> {
        let Form(pairs) = form.map_err(|e| {
            refuse(
                ErrorCode::InvalidRequest,
                format!(
                    "the body must be application/x-www-form-urlencoded: {}",
                    e.body_text()
                ),
            )
        })?;
        for (i, (name, _)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(n, _)| n == name) {
                return Err(refuse(
                    ErrorCode::InvalidRequest,
                    format!("parameter {name:?} is sent more than once"),
                ));
            }
        }
        Ok(Params(pairs))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    fn required(&self, name: &str) -> Result<&str, TokenError> {
        self.get(name).ok_or_else(|| {
            refuse(
                ErrorCode::InvalidRequest,
                format!("parameter {name:?} is required"),
            )
        })
    }
}

fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = raw.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The client's id and secret from HTTP Basic (RFC 6749 §2.3.1: each form-encoded).
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, TokenError> {
    let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some((scheme, encoded)) = value.trim().split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let malformed = || {
        refuse(
            ErrorCode::InvalidClient,
            "the Authorization header is not Basic base64(client_id:client_secret)",
        )
    };
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    Ok(Some((
        percent_decode(id).ok_or_else(malformed)?,
        percent_decode(secret).ok_or_else(malformed)?,
    )))
}

/// Authenticates the calling client: a confidential client by its secret (Basic or the
/// body's `client_secret`), a public client by its id alone.
async fn client_of(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
) -> Result<OAuthClient, TokenError> {
    let basic = basic_credentials(headers)?;
    if basic.is_some() && params.get("client_secret").is_some() {
        return Err(refuse(
            ErrorCode::InvalidRequest,
            "send the client's credentials one way: Basic or the body, not both",
        ));
    }
    let (id, secret) = match basic {
        Some((id, secret)) => (id, Some(secret)),
        None => match params.get("client_id") {
            Some(id) => (
                id.to_string(),
                params.get("client_secret").map(str::to_string),
            ),
            None => {
                return Err(refuse(
                    ErrorCode::InvalidClient,
                    "the client is not identified: send HTTP Basic credentials or client_id",
                ));
            }
        },
    };
    let unknown = || refuse(ErrorCode::InvalidClient, "unknown client or wrong secret");
    let client = state.store.oauth_client(&id).await?.ok_or_else(unknown)?;
    match (client.confidential, secret) {
        (true, Some(secret))
            if state
                .store
                .oauth_client_secret_matches(&id, &secret)
                .await? =>
        {
            Ok(client)
        }
        (true, _) => Err(unknown()),
        (false, None) => Ok(client),
        (false, Some(_)) => Err(refuse(
            ErrorCode::InvalidClient,
            "this is a public client: it has no secret to send",
        )),
    }
}

fn allows(client: &OAuthClient, grant: GrantType) -> Result<(), TokenError> {
    if client.grant_types.contains(&grant) {
        Ok(())
    } else {
        Err(refuse(
            ErrorCode::UnauthorizedClient,
            format!(
                "this client is not registered for the {} grant",
                grant.as_str()
            ),
        ))
    }
}

/// POST /oauth2/token
pub(super) async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, TokenError> {
    let params = Params::from_form(form)?;
    let grant_type = params.required("grant_type")?.to_string();
    let client = client_of(&state, &headers, &params).await?;
    let grant = GrantType::parse(&grant_type).ok_or_else(|| {
        refuse(
            ErrorCode::UnsupportedGrantType,
            format!(
                "grant_type {grant_type:?} is not supported: use authorization_code, client_credentials or refresh_token"
            ),
        )
    })?;
    allows(&client, grant)?;
    let settings = &state.settings.auth;
    let access_ttl_secs = settings.oauth2_access_token_ttl_secs;
    let access = (
        thingsafe_vault::random_token(32),
        now_ms() + access_ttl_secs * 1000,
    );
    let refresh = (
        thingsafe_vault::random_token(32),
        now_ms() + settings.oauth2_refresh_token_ttl_secs * 1000,
    );
    let with_refresh = client.grant_types.contains(&GrantType::RefreshToken);
    let scopes = match grant {
        GrantType::AuthorizationCode => {
            let code = params.required("code")?;
            let redirect_uri = params.required("redirect_uri")?;
            let issued = match state.store.redeem_oauth_code(code, &client.id).await? {
                CodeRedemption::Redeemed(c) => c,
                CodeRedemption::Invalid => {
                    return Err(refuse(
                        ErrorCode::InvalidGrant,
                        "the authorization code is not valid: unknown, expired, or issued to another client",
                    ));
                }
                CodeRedemption::Reused => {
                    return Err(refuse(
                        ErrorCode::InvalidGrant,
                        "the authorization code was used before: the tokens issued for it are revoked",
                    ));
                }
            };
            if issued.redirect_uri != redirect_uri {
                return Err(refuse(
                    ErrorCode::InvalidGrant,
                    "redirect_uri differs from the one of the authorization request",
                ));
            }
            rules::verify_pkce(&issued.code_challenge, params.get("code_verifier"))?;
            state
                .store
                .issue_oauth_tokens(TokenIssue {
                    family: issued.family,
                    client_id: client.id.clone(),
                    user: issued.user,
                    grant,
                    scopes: issued.scopes.clone(),
                    access_token: access.0.clone(),
                    access_expires_ms: access.1,
                    refresh_token: with_refresh.then(|| refresh.clone()),
                })
                .await?;
            issued.scopes
        }
        GrantType::ClientCredentials => {
            if !client.confidential {
                return Err(refuse(
                    ErrorCode::UnauthorizedClient,
                    "a public client cannot use client_credentials: it has no secret",
                ));
            }
            // No person is asked, so no token of this grant reaches a person's own data.
            let asked = params.get("scope");
            if asked.is_some_and(|s| s.split(' ').any(|w| w == ApiScope::PrivacySelf.as_str())) {
                return Err(refuse(
                    ErrorCode::InvalidScope,
                    "privacy:self needs a person's consent: use the authorization code grant",
                ));
            }
            let allowed = client.scopes.without(ApiScope::PrivacySelf);
            let scopes = rules::granted_scopes(asked, &allowed, Authority::TenantAdmin)?;
            state
                .store
                .issue_oauth_tokens(TokenIssue {
                    family: uuid::Uuid::new_v4().to_string(),
                    client_id: client.id.clone(),
                    user: client.owner,
                    grant,
                    scopes: scopes.clone(),
                    access_token: access.0.clone(),
                    access_expires_ms: access.1,
                    refresh_token: None,
                })
                .await?;
            return Ok(token_response(&access.0, access_ttl_secs, None, &scopes));
        }
        GrantType::RefreshToken => {
            let old = params.required("refresh_token")?;
            let narrow = params
                .get("scope")
                .map(Scopes::parse)
                .transpose()
                .map_err(|e| refuse(ErrorCode::InvalidScope, e))?;
            match state
                .store
                .rotate_oauth_refresh(&client.id, old, narrow, access.clone(), refresh.clone())
                .await?
            {
                RefreshRotation::Rotated { scopes, .. } => scopes,
                RefreshRotation::Invalid => {
                    return Err(refuse(
                        ErrorCode::InvalidGrant,
                        "the refresh token is not valid: unknown, expired, revoked, or issued to another client",
                    ));
                }
                RefreshRotation::Reused => {
                    return Err(refuse(
                        ErrorCode::InvalidGrant,
                        "the refresh token was used before: every token of this grant is revoked; authorize again",
                    ));
                }
                RefreshRotation::ScopeTooWide { granted } => {
                    return Err(refuse(
                        ErrorCode::InvalidScope,
                        format!("a refresh may only narrow the grant's scopes: {granted}"),
                    ));
                }
            }
        }
    };
    let refresh = with_refresh.then_some(refresh.0.as_str());
    Ok(token_response(&access.0, access_ttl_secs, refresh, &scopes))
}

fn token_response(access: &str, ttl_secs: i64, refresh: Option<&str>, scopes: &Scopes) -> Response {
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ttl_secs,
        "scope": scopes.to_string(),
    });
    if let Some(refresh) = refresh {
        body["refresh_token"] = json!(refresh);
    }
    (no_store(), Json(body)).into_response()
}

/// POST /oauth2/revoke (RFC 7009): the client's own token; unknown tokens are answered
/// 200 too, so nothing is learnt from the answer.
pub(super) async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, TokenError> {
    let params = Params::from_form(form)?;
    let client = client_of(&state, &headers, &params).await?;
    let token = params.required("token")?;
    state.store.revoke_oauth_token(&client.id, token).await?;
    Ok((StatusCode::OK, no_store()).into_response())
}

/// POST /oauth2/introspect (RFC 7662): a confidential client asks about its own tokens.
pub(super) async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, TokenError> {
    let params = Params::from_form(form)?;
    let client = client_of(&state, &headers, &params).await?;
    if !client.confidential {
        return Err(refuse(
            ErrorCode::InvalidClient,
            "introspection needs a confidential client's credentials",
        ));
    }
    let token = params.required("token")?;
    let body = match state.store.oauth_token(token).await? {
        Some((t, user)) if t.client_id == client.id => {
            let mut body = json!({
                "active": true,
                "scope": t.scopes.to_string(),
                "client_id": t.client_id,
                "sub": user.id.to_string(),
                "iat": t.issued_ms / 1000,
                "exp": t.expires_ms / 1000,
                "iss": state.settings.public_url.trim_end_matches('/'),
            });
            // RFC 7662 §2.2: the type of an access token; a refresh token has none.
            if t.kind == TokenKind::Access {
                body["token_type"] = json!("Bearer");
            }
            body
        }
        _ => json!({"active": false}),
    };
    Ok((no_store(), Json(body)).into_response())
}

/// GET /.well-known/oauth-authorization-server (RFC 8414).
pub(super) async fn metadata(State(state): State<AppState>) -> Json<Value> {
    let issuer = state.settings.public_url.trim_end_matches('/').to_string();
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth2/authorize"),
        "token_endpoint": format!("{issuer}/oauth2/token"),
        "revocation_endpoint": format!("{issuer}/oauth2/revoke"),
        "introspection_endpoint": format!("{issuer}/oauth2/introspect"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": GrantType::ALL.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ApiScope::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded_and_malformed_ones_refused() {
        let mut headers = HeaderMap::new();
        let encoded = STANDARD.encode("my%20id:s%3Acret");
        headers.insert(AUTHORIZATION, format!("Basic {encoded}").parse().unwrap());
        assert_eq!(
            basic_credentials(&headers).ok().flatten(),
            Some(("my id".to_string(), "s:cret".to_string()))
        );
        for bad in ["Basic !!!", "Basic bm9jb2xvbg==", "Basic JXp6Onk="] {
            headers.insert(AUTHORIZATION, bad.parse().unwrap());
            let Err(TokenError(e)) = basic_credentials(&headers) else {
                panic!("{bad} accepted");
            };
            assert_eq!(e.code, ErrorCode::InvalidClient, "{bad}");
        }
        headers.insert(AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert!(matches!(basic_credentials(&headers), Ok(None)));
    }

    #[test]
    fn a_parameter_sent_twice_is_an_invalid_request() {
        let pairs = vec![
            ("grant_type".to_string(), "client_credentials".to_string()),
            ("grant_type".to_string(), "password".to_string()),
        ];
        let Err(TokenError(e)) = Params::from_form(Ok(Form(pairs))) else {
            panic!("accepted");
        };
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert!(e.description.contains("grant_type"), "{}", e.description);
    }
}
