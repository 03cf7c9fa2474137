//! Sign-in, sessions and the caller's identity.
//!
//! Access tokens are JWTs (HS256, signed with the vault's session-signing key) as
//! ThingsBoard's clients expect; each names a session in the store, checked on every
//! request, so sign-out, deletion and erasure end access at once. Refresh tokens are
//! opaque, stored only as keyed hashes, and rotate on every use.
//!
//! A bearer token may also be an OAuth2 access token (opaque, no dots): it acts for its
//! user (for client credentials, the client's owner) only on the routes whose scope it
//! holds (`endpoints.rs`); routes without a scope are closed to it.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use thingsafe_core::oauth2::ApiScope;
use thingsafe_core::{Authority, SessionId, User, now_ms};
use thingsafe_store::Scope;
use thingsafe_store::oauth2::TokenKind;

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::tb::JwtPair;

/// Meta key under which the hash of the first-start setup token is kept.
pub const SETUP_TOKEN_META: &str = "setup_token_index";

#[derive(Clone, Debug)]
pub struct AuthSettings {
    pub access_token_ttl_secs: i64,
    pub refresh_token_ttl_secs: i64,
    /// Lifetime of OAuth2 access tokens (short) and refresh tokens.
    pub oauth2_access_token_ttl_secs: i64,
    pub oauth2_refresh_token_ttl_secs: i64,
    /// Failed sign-ins in a row that lock an account.
    pub max_failed_logins: u32,
    pub lockout_secs: i64,
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Claims {
    sub: String,
    user_id: String,
    scopes: Vec<String>,
    session_id: String,
    tenant_id: Option<String>,
    customer_id: Option<String>,
    iss: String,
    iat: i64,
    exp: i64,
}

const JWT_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

fn sign(key: &[u8], signing_input: &str) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(signing_input.as_bytes());
    mac
}

fn encode_jwt(key: &[u8], claims: &Claims) -> String {
    let header = URL_SAFE_NO_PAD.encode(JWT_HEADER);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialise"));
    let input = format!("{header}.{payload}");
    let signature = URL_SAFE_NO_PAD.encode(sign(key, &input).finalize().into_bytes());
    format!("{input}.{signature}")
}

enum JwtError {
    Invalid,
    Expired,
}

fn decode_jwt(key: &[u8], token: &str) -> Result<Claims, JwtError> {
    let mut parts = token.rsplitn(2, '.');
    let (Some(signature), Some(input)) = (parts.next(), parts.next()) else {
        return Err(JwtError::Invalid);
    };
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| JwtError::Invalid)?;
    sign(key, input)
        .verify_slice(&signature)
        .map_err(|_| JwtError::Invalid)?;
    let (header, payload) = input.split_once('.').ok_or(JwtError::Invalid)?;
    if URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| JwtError::Invalid)?
        != JWT_HEADER.as_bytes()
    {
        return Err(JwtError::Invalid);
    }
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| JwtError::Invalid)?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| JwtError::Invalid)?;
    if claims.exp * 1000 <= now_ms() {
        return Err(JwtError::Expired);
    }
    Ok(claims)
}

/// Starts a session for `user` and returns its first token pair.
pub(crate) async fn start_session(state: &AppState, user: &User) -> ApiResult<JwtPair> {
    let refresh = thingsafe_vault::random_token(32);
    let expires = now_ms() + state.settings.auth.refresh_token_ttl_secs * 1000;
    let session = state
        .store
        .create_session(user.id, &refresh, expires)
        .await?;
    Ok(JwtPair {
        token: access_token(state, user, session),
        refresh_token: refresh,
    })
}

pub(crate) fn access_token(state: &AppState, user: &User, session: SessionId) -> String {
    let iat = now_ms() / 1000;
    let claims = Claims {
        sub: user.id.to_string(),
        user_id: user.id.to_string(),
        scopes: vec![user.authority.as_str().to_string()],
        session_id: session.to_string(),
        tenant_id: user.tenant_id.map(|t| t.to_string()),
        customer_id: user.customer_id.map(|c| c.to_string()),
        iss: "thingsafe".into(),
        iat,
        exp: iat + state.settings.auth.access_token_ttl_secs,
    };
    encode_jwt(state.vault.session_signing_key(), &claims)
}

/// The signed-in caller of a request.
#[derive(Clone, Debug)]
pub struct Principal {
    pub user: User,
    pub credential: Credential,
}

/// How the caller proved who they are.
#[derive(Clone, Debug)]
pub enum Credential {
    /// A sign-in session (API client or browser): the full rights of the user's role.
    Session(SessionId),
    /// An OAuth2 access token: the user's rights, on the routes its scopes open. Kept to
    /// check, for a long-lived WebSocket, that the token is still live.
    OAuth2 { token: String },
}

impl Principal {
    pub fn scope(&self) -> Scope {
        Scope::of(&self.user)
    }

    /// The sign-in session, unless the caller came with an OAuth2 token.
    pub fn session(&self) -> Option<SessionId> {
        match &self.credential {
            Credential::Session(s) => Some(*s),
            Credential::OAuth2 { .. } => None,
        }
    }

    /// Whether the session or token still opens the API (long-lived connections ask).
    pub(crate) async fn is_live(&self, state: &AppState) -> bool {
        match &self.credential {
            Credential::Session(s) => matches!(state.store.session_user(*s).await, Ok(Some(_))),
            Credential::OAuth2 { token, .. } => {
                matches!(state.store.oauth_token(token).await, Ok(Some(_)))
            }
        }
    }

    /// Refuses the call unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Authority]) -> ApiResult<()> {
        if roles.contains(&self.user.authority) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "You don't have permission to perform this operation: it needs {}",
                roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(" or ")
            )))
        }
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let header = parts
        .headers
        .get("x-authorization")
        .or_else(|| parts.headers.get(axum::http::header::AUTHORIZATION))?;
    let value = header.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// The caller holding this access token, if its session is live.
pub(crate) async fn authenticate(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let claims = decode_jwt(state.vault.session_signing_key(), token).map_err(|e| match e {
        JwtError::Expired => ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::JwtTokenExpired,
            "Token has expired: refresh it with POST /api/auth/token",
        ),
        JwtError::Invalid => {
            ApiError::unauthorized("Authentication failed: the token is not valid")
        }
    })?;
    let session: SessionId = claims
        .session_id
        .parse()
        .map_err(|_| ApiError::unauthorized("Authentication failed: the token is not valid"))?;
    let user = state.store.session_user(session).await?.ok_or_else(|| {
        ApiError::unauthorized("Authentication failed: the session has ended; sign in again")
    })?;
    Ok(Principal {
        user,
        credential: Credential::Session(session),
    })
}

/// The caller holding a bearer token: a session JWT, or an OAuth2 access token, which
/// must hold `needed` (a route without a scope, `None`, is closed to OAuth2 tokens).
pub(crate) async fn authenticate_bearer(
    state: &AppState,
    token: &str,
    needed: Option<ApiScope>,
) -> Result<Principal, ApiError> {
    if token.contains('.') {
        return authenticate(state, token).await;
    }
    let (access, user) = match state.store.oauth_token(token).await? {
        Some((access, user)) if access.kind == TokenKind::Access => (access, user),
        _ => {
            return Err(ApiError::unauthorized(
                "Authentication failed: the access token is not valid, has expired or was revoked",
            ));
        }
    };
    match needed {
        Some(scope) if access.scopes.contains(scope) => Ok(Principal {
            user,
            credential: Credential::OAuth2 {
                token: token.to_string(),
            },
        }),
        Some(scope) => Err(ApiError::forbidden(format!(
            "insufficient_scope: this call needs the OAuth2 scope {scope}; the token holds {}",
            access.scopes
        ))),
        None => Err(ApiError::forbidden(
            "insufficient_scope: this call is not open to OAuth2 access tokens; sign in instead",
        )),
    }
}

/// The browser session's cookies (set by the console's sign-in): the access token, and the
/// refresh token that renews it when it expires. `HttpOnly`, `SameSite=Lax`.
pub const SESSION_COOKIE: &str = "ts_session";
pub const REFRESH_COOKIE: &str = "ts_refresh";
/// The header carrying the session's CSRF token on cookie-authenticated changes.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// Whether `token` is a well-signed access token past its expiry (the console then renews
/// the browser session with its refresh cookie).
pub(crate) fn is_expired(state: &AppState, token: &str) -> bool {
    matches!(
        decode_jwt(state.vault.session_signing_key(), token),
        Err(JwtError::Expired)
    )
}

/// The session's CSRF token: a MAC of the session id, so it needs no storage and dies with
/// the session. Pages carry it in a meta tag; scripts send it as `X-CSRF-Token`.
pub fn csrf_token(state: &AppState, session: SessionId) -> String {
    let mac = sign(
        state.vault.session_signing_key(),
        &format!("csrf:{session}"),
    );
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// Whether `given` is the session's CSRF token (compared in constant time).
pub(crate) fn csrf_matches(state: &AppState, session: SessionId, given: &str) -> bool {
    let Ok(given) = URL_SAFE_NO_PAD.decode(given) else {
        return false;
    };
    sign(
        state.vault.session_signing_key(),
        &format!("csrf:{session}"),
    )
    .verify_slice(&given)
    .is_ok()
}

fn is_safe_method(method: &axum::http::Method) -> bool {
    matches!(
        *method,
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    )
}

/// API clients send a bearer token; browsers send the session cookie, and then every
/// change (any method but GET, HEAD, OPTIONS) must carry the session's CSRF token.
impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(token) = bearer(parts) {
            let route = parts
                .extensions
                .get::<axum::extract::MatchedPath>()
                .map(|p| p.as_str());
            let needed = route.and_then(|path| crate::endpoints::scope_of(&parts.method, path));
            return authenticate_bearer(state, token, needed).await;
        }
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(ApiError::unauthorized(
                "Authentication failed: send 'X-Authorization: Bearer <token>' (or Authorization) with the token from POST /api/auth/login",
            ));
        };
        let principal = authenticate(state, token).await?;
        if !is_safe_method(&parts.method) {
            let given = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let session = principal.session().expect("cookies carry sessions");
            if !csrf_matches(state, session, given) {
                return Err(ApiError::forbidden(
                    "This change came with the browser's session cookie but without the page's CSRF token (X-CSRF-Token); reload the page and try again",
                ));
            }
        }
        Ok(principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: "u".into(),
            user_id: "u".into(),
            scopes: vec!["TENANT_ADMIN".into()],
            session_id: "s".into(),
            tenant_id: None,
            customer_id: None,
            iss: "thingsafe".into(),
            iat: 0,
            exp,
        }
    }

    #[test]
    fn jwts_verify_only_with_their_key_and_until_they_expire() {
        let key = b"0123456789abcdef0123456789abcdef";
        let future = now_ms() / 1000 + 60;
        let token = encode_jwt(key, &claims(future));
        assert_eq!(token.split('.').count(), 3);
        assert!(decode_jwt(key, &token).is_ok());
        assert!(matches!(
            decode_jwt(b"another key", &token),
            Err(JwtError::Invalid)
        ));
        let expired = encode_jwt(key, &claims(1));
        assert!(matches!(decode_jwt(key, &expired), Err(JwtError::Expired)));
        for bad in ["", "a.b", "a.b.c", &token[..token.len() - 2]] {
            assert!(
                matches!(decode_jwt(key, bad), Err(JwtError::Invalid)),
                "{bad}"
            );
        }
        // A token whose payload was changed fails even with its old signature.
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(future + 999)).unwrap());
        parts[1] = &forged;
        assert!(matches!(
            decode_jwt(key, &parts.join(".")),
            Err(JwtError::Invalid)
        ));
    }
}
