//! The browser session: cookies carrying the session's tokens, their renewal, the page
//! extractor that sends signed-out visitors to the sign-in page, and the same-origin check
//! of the console's own form posts.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{COOKIE, HOST, ORIGIN, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use thingsafe_core::{Authority, now_ms};

use crate::AppState;
use crate::auth::{self, Principal, REFRESH_COOKIE, SESSION_COOKIE};
use crate::tb::JwtPair;

/// `Secure` is added when the console is served over HTTPS (`http.public_url` says so).
fn cookie_attributes(state: &AppState) -> &'static str {
    if state.settings.public_url.starts_with("https://") {
        "; Path=/; HttpOnly; SameSite=Lax; Secure"
    } else {
        "; Path=/; HttpOnly; SameSite=Lax"
    }
}

/// `Set-Cookie` values that carry `pair` as the browser's session.
pub(crate) fn session_cookies(state: &AppState, pair: &JwtPair) -> [String; 2] {
    let attrs = cookie_attributes(state);
    let max_age = state.settings.auth.refresh_token_ttl_secs;
    [
        format!("{SESSION_COOKIE}={}{attrs}; Max-Age={max_age}", pair.token),
        format!(
            "{REFRESH_COOKIE}={}{attrs}; Max-Age={max_age}",
            pair.refresh_token
        ),
    ]
}

/// `Set-Cookie` values that end the browser's session.
pub(crate) fn cleared_cookies(state: &AppState) -> [String; 2] {
    let attrs = cookie_attributes(state);
    [
        format!("{SESSION_COOKIE}={attrs}; Max-Age=0"),
        format!("{REFRESH_COOKIE}={attrs}; Max-Age=0"),
    ]
}

/// A response that sets `cookies` and sends the browser to `to`.
pub(crate) fn redirect_with_cookies(to: &str, cookies: [String; 2]) -> Response {
    let mut response = Redirect::to(to).into_response();
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            response.headers_mut().append(SET_COOKIE, v);
        }
    }
    response
}

/// Middleware: when the session cookie's access token has expired, renews it with the
/// refresh cookie (which rotates) before the request is handled, and hands the browser the
/// new cookies with the response.
pub(crate) async fn renew_expired_session(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let (Some(token), Some(refresh)) = (
        auth::cookie(headers, SESSION_COOKIE),
        auth::cookie(headers, REFRESH_COOKIE),
    ) else {
        return next.run(request).await;
    };
    if !auth::is_expired(&state, token) {
        return next.run(request).await;
    }
    let new_refresh = thingsafe_vault::random_token(32);
    let expires = now_ms() + state.settings.auth.refresh_token_ttl_secs * 1000;
    let rotated = state
        .store
        .rotate_refresh_token(refresh, &new_refresh, expires)
        .await;
    let Ok(Some((session, user))) = rotated else {
        return next.run(request).await;
    };
    let pair = JwtPair {
        token: auth::access_token(&state, &user, session),
        refresh_token: new_refresh,
    };
    let cookie_header = format!(
        "{SESSION_COOKIE}={}; {REFRESH_COOKIE}={}",
        pair.token, pair.refresh_token
    );
    let headers = request.headers_mut();
    headers.remove(COOKIE);
    if let Ok(v) = HeaderValue::from_str(&cookie_header) {
        headers.insert(COOKIE, v);
    }
    let mut response = next.run(request).await;
    for c in session_cookies(&state, &pair) {
        if let Ok(v) = HeaderValue::from_str(&c) {
            response.headers_mut().append(SET_COOKIE, v);
        }
    }
    response
}

/// Whether a browser request comes from one of our own pages: its `Origin` (browsers send
/// it with every form post and WebSocket) names this host. Clients that send no `Origin`
/// are not browsers acting for someone else.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get(HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

/// The signed-in person viewing a console page. Signed-out visitors are sent to the
/// sign-in page, which brings them back afterwards.
pub(crate) struct Viewer {
    pub principal: Principal,
    pub csrf: String,
}

impl Viewer {
    pub fn is_tenant_admin(&self) -> bool {
        self.principal.user.authority == Authority::TenantAdmin
    }

    pub fn is_system_admin(&self) -> bool {
        self.principal.user.authority == Authority::SysAdmin
    }

    /// A tenant administrator or the system administrator.
    pub fn is_admin(&self) -> bool {
        matches!(
            self.principal.user.authority,
            Authority::TenantAdmin | Authority::SysAdmin
        )
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let to_sign_in = || {
            let next = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            Redirect::to(&format!("/signin?next={}", super::url_encode(next))).into_response()
        };
        let Some(token) = auth::cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_sign_in());
        };
        let principal = auth::authenticate(state, token)
            .await
            .map_err(|_| to_sign_in())?;
        let session = principal.session().expect("cookies carry sessions");
        let csrf = auth::csrf_token(state, session);
        Ok(Viewer { principal, csrf })
    }
}
