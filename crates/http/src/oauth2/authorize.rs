//! `/oauth2/authorize`: the console's consent page. A signed-out visitor signs in first
//! and comes back; the page names the application and what each scope lets it do; the
//! answer is a CSRF-protected form post. Errors go back to the application (`error=` on
//! its redirect URI) only once the client and the redirect URI are known to be right;
//! before that an error page is shown, so a forged link cannot send anyone elsewhere.

use askama::Template;
use axum::Form;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use thingsafe_core::now_ms;
use thingsafe_core::oauth2::{self as rules, ErrorCode, GrantType, OAuthError, Scopes};
use thingsafe_store::oauth2::{NewOAuthCode, OAuthClient};

use crate::AppState;
use crate::auth;
use crate::console::{
    CONSOLE_CSP, Layout, Viewer, render, same_origin, set_page_headers, url_encode,
};

/// The authorization request's parameters (RFC 6749 §4.1.1, RFC 7636 §4.3).
#[derive(Deserialize, Default, Clone)]
pub(super) struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    /// The consent form's answer only: the page's CSRF token and `allow` or `deny`.
    csrf: Option<String>,
    decision: Option<String>,
}

/// A request checked far enough to answer the application on its redirect URI.
struct Checked {
    client: OAuthClient,
    redirect_uri: String,
    state: Option<String>,
}

/// What went wrong: shown on a page, or sent back to the application.
enum Refusal {
    Page(String),
    Redirect(Box<Checked>, OAuthError),
}

#[derive(Template)]
#[template(path = "console/consent.html")]
struct ConsentPage {
    layout: Layout,
    client_name: String,
    /// The redirect URI's host (or scheme for an app): where the code goes.
    destination: String,
    scopes: Vec<(String, String)>,
    params: AuthorizeParams,
    scope_text: String,
}

#[derive(Template)]
#[template(path = "console/oauth2_error.html")]
struct ErrorPage {
    layout: Layout,
    message: String,
}

fn error_page(message: String) -> Response {
    let mut response = render(&ErrorPage {
        layout: Layout::public("Authorization refused"),
        message,
    });
    *response.status_mut() = StatusCode::BAD_REQUEST;
    set_page_headers(response.headers_mut(), CONSOLE_CSP);
    response
}

/// `uri` with the query parameters `pairs` added.
fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = uri.to_string();
    for (name, value) in pairs {
        out.push(if out.contains('?') { '&' } else { '?' });
        out.push_str(name);
        out.push('=');
        out.push_str(&url_encode(value));
    }
    out
}

fn back_to_client(checked: &Checked, answer: &[(&str, &str)]) -> Response {
    let mut pairs = answer.to_vec();
    if let Some(state) = checked.state.as_deref() {
        pairs.push(("state", state));
    }
    Redirect::to(&with_query(&checked.redirect_uri, &pairs)).into_response()
}

fn refused(refusal: Refusal) -> Response {
    match refusal {
        Refusal::Page(message) => error_page(message),
        Refusal::Redirect(checked, e) => back_to_client(
            &checked,
            &[
                ("error", e.code.as_str()),
                ("error_description", &e.description),
            ],
        ),
    }
}

/// Checks the request for `viewer`; returns it with the scopes they would grant.
async fn check(
    state: &AppState,
    params: &AuthorizeParams,
    viewer: &Viewer,
) -> Result<(Checked, Scopes), Refusal> {
    let Some(client_id) = params.client_id.as_deref() else {
        return Err(Refusal::Page(
            "The application's link is incomplete: it has no client_id.".into(),
        ));
    };
    let client = match state.store.oauth_client(client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Err(Refusal::Page(format!(
                "No application is registered with the client_id {client_id:?}."
            )));
        }
        Err(e) => {
            tracing::error!(error = %e, "looking up an OAuth2 client failed");
            return Err(Refusal::Page(
                "The application could not be looked up; the error is logged.".into(),
            ));
        }
    };
    // Exact match only (RFC 6749 §3.1.2.3); without one, the only registered URI.
    let redirect_uri = match params.redirect_uri.as_deref() {
        Some(uri) if client.redirect_uris.iter().any(|r| r == uri) => uri.to_string(),
        Some(uri) => {
            return Err(Refusal::Page(format!(
                "The application asked to send you to {uri:?}, which is not one of its registered redirect URIs."
            )));
        }
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => {
            return Err(Refusal::Page(
                "The application's link has no redirect_uri, and it has several registered.".into(),
            ));
        }
    };
    let checked = Checked {
        client,
        redirect_uri,
        state: params.state.clone(),
    };
    let fail = |checked, code, text: String| {
        Err(Refusal::Redirect(
            Box::new(checked),
            OAuthError::new(code, text),
        ))
    };
    if params.response_type.as_deref() != Some("code") {
        return fail(
            checked,
            ErrorCode::UnsupportedResponseType,
            "response_type must be code (no implicit grant)".into(),
        );
    }
    if !checked
        .client
        .grant_types
        .contains(&GrantType::AuthorizationCode)
    {
        return fail(
            checked,
            ErrorCode::UnauthorizedClient,
            "this client is not registered for the authorization_code grant".into(),
        );
    }
    // PKCE is required of every client (RFC 9700 §2.1.1), public or confidential.
    let Some(challenge) = params.code_challenge.as_deref() else {
        return fail(
            checked,
            ErrorCode::InvalidRequest,
            "code_challenge is required (PKCE with S256)".into(),
        );
    };
    if let Err(e) = rules::check_code_challenge(challenge, params.code_challenge_method.as_deref())
    {
        return Err(Refusal::Redirect(Box::new(checked), e));
    }
    let me = &viewer.principal.user;
    if me.tenant_id != Some(checked.client.tenant) {
        return fail(
            checked,
            ErrorCode::AccessDenied,
            "this application belongs to another organisation".into(),
        );
    }
    match rules::granted_scopes(
        params.scope.as_deref(),
        &checked.client.scopes,
        me.authority,
    ) {
        Ok(scopes) => Ok((checked, scopes)),
        Err(e) => Err(Refusal::Redirect(Box::new(checked), e)),
    }
}

/// Where the code goes, as the consent page says it: the host, or an app's scheme.
fn destination(uri: &str) -> String {
    match uri.split_once("://") {
        Some((_, rest)) => rest.split(['/', '?']).next().unwrap_or(rest).to_string(),
        None => uri.split(':').next().unwrap_or(uri).to_string(),
    }
}

/// A CSP source for the redirect URI: the browser follows the form's redirect there.
fn form_target(uri: &str) -> String {
    match uri.split_once("://") {
        Some((scheme, rest)) => {
            format!("{scheme}://{}", rest.split(['/', '?']).next().unwrap_or(""))
        }
        None => format!("{}:", uri.split(':').next().unwrap_or("")),
    }
}

fn consent_csp(redirect_uri: &str) -> String {
    let target = form_target(redirect_uri);
    let target: String = target
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, ';' | ',' | '\''))
        .collect();
    CONSOLE_CSP.replace(
        "form-action 'self'",
        &format!("form-action 'self' {target}"),
    )
}

/// GET /oauth2/authorize
pub(super) async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    query: Result<Query<AuthorizeParams>, QueryRejection>,
) -> Response {
    let Ok(Query(params)) = query else {
        return error_page(
            "The application's link is malformed: each parameter may appear once.".into(),
        );
    };
    let (checked, scopes) = match check(&state, &params, &viewer).await {
        Ok(x) => x,
        Err(refusal) => return refused(refusal),
    };
    let mut response = render(&ConsentPage {
        layout: Layout::signed_in("Allow access?", "", &viewer),
        client_name: checked.client.name.clone(),
        destination: destination(&checked.redirect_uri),
        scopes: scopes
            .iter()
            .map(|s| (s.as_str().to_string(), s.describe().to_string()))
            .collect(),
        scope_text: scopes.to_string(),
        params: AuthorizeParams {
            redirect_uri: Some(checked.redirect_uri.clone()),
            ..params
        },
    });
    set_page_headers(response.headers_mut(), &consent_csp(&checked.redirect_uri));
    response
}

/// POST /oauth2/authorize: the person's answer.
pub(super) async fn decide(
    State(state): State<AppState>,
    headers: HeaderMap,
    viewer: Viewer,
    form: Result<Form<AuthorizeParams>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return error_page(
            "The answer could not be read; go back to the application and start again.".into(),
        );
    };
    let session = viewer.principal.session().expect("pages carry sessions");
    let csrf = form.csrf.as_deref().unwrap_or_default();
    if !same_origin(&headers) || !auth::csrf_matches(&state, session, csrf) {
        let mut response = error_page(
            "This answer did not come from the consent page of this server; nothing was granted."
                .into(),
        );
        *response.status_mut() = StatusCode::FORBIDDEN;
        return response;
    }
    let (checked, scopes) = match check(&state, &form, &viewer).await {
        Ok(x) => x,
        Err(refusal) => return refused(refusal),
    };
    if form.decision.as_deref() != Some("allow") {
        return back_to_client(
            &checked,
            &[
                ("error", ErrorCode::AccessDenied.as_str()),
                ("error_description", "the person declined"),
            ],
        );
    }
    let code = thingsafe_vault::random_token(32);
    let stored = state
        .store
        .create_oauth_code(NewOAuthCode {
            code: code.clone(),
            client_id: checked.client.id.clone(),
            user: viewer.principal.user.id,
            redirect_uri: checked.redirect_uri.clone(),
            scopes,
            code_challenge: form.code_challenge.clone().unwrap_or_default(),
            expires_ms: now_ms() + super::CODE_TTL_MS,
        })
        .await;
    if let Err(e) = stored {
        tracing::error!(error = %e, "storing an authorization code failed");
        return error_page("The grant could not be stored; the error is logged. Try again.".into());
    }
    back_to_client(&checked, &[("code", &code)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_added_to_the_redirect_uris_query() {
        assert_eq!(
            with_query("https://a.example/cb", &[("code", "x y"), ("state", "s&t")]),
            "https://a.example/cb?code=x%20y&state=s%26t"
        );
        assert_eq!(
            with_query("https://a.example/cb?tenant=1", &[("code", "c")]),
            "https://a.example/cb?tenant=1&code=c"
        );
    }

    #[test]
    fn the_consent_page_may_send_its_form_to_the_redirect_uri_only() {
        let csp = consent_csp("https://a.example:8443/cb?x=1");
        assert!(
            csp.contains("form-action 'self' https://a.example:8443;"),
            "{csp}"
        );
        assert!(
            consent_csp("com.example.app:/cb").contains("form-action 'self' com.example.app:;")
        );
        assert_eq!(destination("https://a.example:8443/cb"), "a.example:8443");
        assert_eq!(destination("com.example.app:/cb"), "com.example.app");
    }
}
