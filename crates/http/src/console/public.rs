//! Pages without a session: sign-in, sign-up; and sign-out.

use std::collections::HashMap;

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::session::{cleared_cookies, redirect_with_cookies, session_cookies};
use super::{Layout, render};
use crate::AppState;
use crate::auth::{self, SESSION_COOKIE};
use crate::error::ApiError;
use crate::routes::accounts::{self, SignUpRequest};

/// Where to go after signing in: a path of ours, never another site.
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p,
        // The root sends each role to its own first page.
        _ => "/",
    }
}

/// The first page of a role: the system administrator manages tenants (devices are
/// tenants' own); everyone else starts at the devices.
fn home_of_role(authority: thingsafe_core::Authority) -> &'static str {
    match authority {
        thingsafe_core::Authority::SysAdmin => "/tenants",
        _ => "/devices",
    }
}

fn forbidden_origin() -> Response {
    (
        axum::http::StatusCode::FORBIDDEN,
        "This form was sent from another site; open the page on this server and send it again.",
    )
        .into_response()
}

pub(super) async fn root(State(state): State<AppState>, headers: HeaderMap) -> Redirect {
    let principal = match auth::cookie(&headers, SESSION_COOKIE) {
        Some(token) => auth::authenticate(&state, token).await.ok(),
        None => None,
    };
    Redirect::to(principal.map_or("/signin", |p| home_of_role(p.user.authority)))
}

#[derive(Template)]
#[template(path = "console/signin.html")]
struct SignInPage {
    layout: Layout,
    email: String,
    next: String,
    /// A message for the whole form (wrong email or password, lockout).
    error: Option<String>,
    notice: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct SignInQuery {
    next: Option<String>,
    /// `deleted`, `signedout`: why the visitor is here.
    done: Option<String>,
}

pub(super) async fn sign_in_page(Query(q): Query<SignInQuery>) -> Response {
    let notice = match q.done.as_deref() {
        Some("signedout") => Some("You are signed out.".to_string()),
        Some("deleted") => Some("Your account is deleted.".to_string()),
        Some("reset") => Some(
            "Your password is changed, and every other session of yours has ended. Sign in with the new one."
                .to_string(),
        ),
        _ => None,
    };
    render(&SignInPage {
        layout: Layout::public("Sign in"),
        email: String::new(),
        next: local_path(q.next.as_deref()).to_string(),
        error: None,
        notice,
    })
}

#[derive(Deserialize)]
pub(super) struct SignInForm {
    email: String,
    password: String,
    next: Option<String>,
}

pub(super) async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    if !super::same_origin(&headers) {
        return forbidden_origin();
    }
    let next = local_path(form.next.as_deref()).to_string();
    let failed = |message: String| {
        render(&SignInPage {
            layout: Layout::public("Sign in"),
            email: form.email.clone(),
            next: next.clone(),
            error: Some(message),
            notice: None,
        })
    };
    let user = match accounts::check_credentials(&state, &form.email, form.password.clone()).await {
        Ok(user) => user,
        Err(e) if e.message == "Invalid username or password" => {
            return failed(
                "That email address and password do not match an account. Check both and try again."
                    .into(),
            );
        }
        Err(e) => return failed(e.message),
    };
    match crate::two_factor::after_password(&state, &user).await {
        Ok(crate::two_factor::SignIn::Session(pair)) => {
            // No page asked for: the role's own first page, without a detour by the root.
            let to = if next == "/" {
                home_of_role(user.authority)
            } else {
                &next
            };
            redirect_with_cookies(to, session_cookies(&state, &pair))
        }
        Ok(crate::two_factor::SignIn::CodeNeeded { token }) => render(&SignInCodePage {
            layout: Layout::public("Enter your sign-in code"),
            token,
            next,
            error: None,
        }),
        Err(e) => failed(e.message),
    }
}

#[derive(Template)]
#[template(path = "console/signin_code.html")]
struct SignInCodePage {
    layout: Layout,
    token: String,
    next: String,
    error: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct SignInCodeForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    code: String,
    next: Option<String>,
}

/// The second step of a sign-in with two-factor sign-in on.
pub(super) async fn sign_in_code(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignInCodeForm>,
) -> Response {
    if !super::same_origin(&headers) {
        return forbidden_origin();
    }
    let next = local_path(form.next.as_deref()).to_string();
    match crate::two_factor::verify(&state, &form.token, &form.code).await {
        Ok(pair) => redirect_with_cookies(&next, session_cookies(&state, &pair)),
        Err(e) if e.status == axum::http::StatusCode::UNAUTHORIZED => render(&SignInPage {
            layout: Layout::public("Sign in"),
            email: String::new(),
            next,
            error: Some(e.message),
            notice: None,
        }),
        Err(e) => render(&SignInCodePage {
            layout: Layout::public("Enter your sign-in code"),
            token: form.token,
            next,
            error: Some(e.message),
        }),
    }
}

#[derive(Template)]
#[template(path = "console/signup.html")]
struct SignUpPage {
    layout: Layout,
    form: SignUpForm,
    policy_version: u32,
    minimum_age: u8,
    /// Field name → what is wrong with it.
    errors: HashMap<&'static str, String>,
    /// A problem that belongs to no one field.
    error: Option<String>,
}

impl SignUpPage {
    fn error_for(&self, field: &str) -> Option<&String> {
        self.errors.get(field)
    }

    fn age_hint(&self) -> String {
        format!(
            "You must be at least {} years old to have an account.",
            self.minimum_age
        )
    }
}

#[derive(Deserialize, Default)]
pub(super) struct SignUpForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    #[serde(default)]
    organization: String,
    #[serde(default)]
    birth_date: String,
    #[serde(default)]
    password: String,
    /// The policy version on the page when the box was ticked.
    accept_policy: Option<u32>,
    marketing: Option<String>,
}

pub(super) async fn sign_up_page(State(state): State<AppState>) -> Response {
    render(&SignUpPage {
        layout: Layout::public("Create your account"),
        form: SignUpForm::default(),
        policy_version: state.policy.version.version,
        minimum_age: state.policy.policy.minimum_age,
        errors: HashMap::new(),
        error: None,
    })
}

/// The API's field names, as the form names them.
fn form_field(api_field: &str) -> &'static str {
    match api_field {
        "email" => "email",
        "password" => "password",
        "firstName" => "first_name",
        "lastName" => "last_name",
        "organization" => "organization",
        "birthDate" => "birth_date",
        "acceptedPolicyVersion" => "accept_policy",
        _ => "",
    }
}

/// The message without the API's `field: ` prefix, first letter up.
fn plain_message(e: &ApiError) -> String {
    let text = match e.field {
        Some(f) => e
            .message
            .strip_prefix(&format!("{f}: "))
            .unwrap_or(&e.message),
        None => &e.message,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

pub(super) async fn sign_up(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignUpForm>,
) -> Response {
    if !super::same_origin(&headers) {
        return forbidden_origin();
    }
    let mut page = SignUpPage {
        layout: Layout::public("Create your account"),
        policy_version: state.policy.version.version,
        minimum_age: state.policy.policy.minimum_age,
        errors: HashMap::new(),
        error: None,
        form,
    };
    let f = &page.form;
    if f.accept_policy.is_none() {
        page.errors.insert(
            "accept_policy",
            "Tick the box to accept the privacy policy; an account cannot be created without it."
                .into(),
        );
    }
    if f.birth_date.trim().is_empty() {
        page.errors
            .insert("birth_date", "Enter your date of birth.".into());
    }
    if !page.errors.is_empty() {
        return render(&page);
    }
    let request = SignUpRequest {
        email: f.email.clone(),
        password: f.password.clone(),
        first_name: Some(f.first_name.clone()),
        last_name: Some(f.last_name.clone()),
        birth_date: Some(f.birth_date.clone()),
        organization: Some(f.organization.clone()),
        accepted_policy_version: f.accept_policy,
        marketing: Some(f.marketing.is_some()),
    };
    match accounts::register(&state, &headers, request).await {
        Ok((_, user)) => match auth::start_session(&state, &user).await {
            Ok(pair) => redirect_with_cookies("/devices?welcome=1", session_cookies(&state, &pair)),
            Err(e) => {
                page.error = Some(plain_message(&e));
                render(&page)
            }
        },
        Err(e) => {
            match e.field.map(form_field).filter(|f| !f.is_empty()) {
                Some(field) => {
                    page.errors.insert(field, plain_message(&e));
                }
                None => page.error = Some(plain_message(&e)),
            }
            // The password is never sent back to the browser.
            page.form.password.clear();
            render(&page)
        }
    }
}

#[derive(Deserialize)]
pub(super) struct SignOutForm {
    csrf: String,
}

pub(super) async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignOutForm>,
) -> Response {
    if let Some(token) = auth::cookie(&headers, SESSION_COOKIE)
        && let Ok(principal) = auth::authenticate(&state, token).await
    {
        let session = principal.session().expect("cookies carry sessions");
        if !auth::csrf_matches(&state, session, &form.csrf) {
            return forbidden_origin();
        }
        if let Err(e) = state.store.revoke_session(session).await {
            return ApiError::from(e).into_response();
        }
    }
    redirect_with_cookies("/signin?done=signedout", cleared_cookies(&state))
}

#[derive(Template)]
#[template(path = "console/password_reset.html")]
struct PasswordResetPage {
    layout: Layout,
    /// Set: the link was followed; the form asks for the new password.
    token: Option<String>,
    email: String,
    valid_minutes: i64,
    error: Option<String>,
    notice: Option<String>,
}

impl PasswordResetPage {
    fn new(token: Option<String>) -> Self {
        PasswordResetPage {
            layout: Layout::public("Reset your password"),
            token,
            email: String::new(),
            valid_minutes: crate::routes::password_reset::RESET_VALID_MINUTES,
            error: None,
            notice: None,
        }
    }
}

#[derive(Deserialize)]
pub(super) struct ResetQuery {
    token: Option<String>,
}

pub(super) async fn password_reset_page(Query(q): Query<ResetQuery>) -> Response {
    render(&PasswordResetPage::new(q.token.filter(|t| !t.is_empty())))
}

#[derive(Deserialize)]
pub(super) struct ResetRequestForm {
    #[serde(default)]
    email: String,
}

pub(super) async fn password_reset_request(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<ResetRequestForm>,
) -> Response {
    if !super::same_origin(&headers) {
        return forbidden_origin();
    }
    let mut page = PasswordResetPage::new(None);
    match crate::routes::password_reset::send_link(&state, &form.email).await {
        Ok(()) => {
            page.notice = Some(format!(
                "If {} belongs to an account, a link to choose a new password is on its way. Check your inbox.",
                form.email.trim()
            ))
        }
        Err(e) => {
            page.email = form.email;
            page.error = Some(e.message);
        }
    }
    render(&page)
}

#[derive(Deserialize)]
pub(super) struct NewPasswordForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
}

pub(super) async fn password_reset_complete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<NewPasswordForm>,
) -> Response {
    if !super::same_origin(&headers) {
        return forbidden_origin();
    }
    match crate::routes::password_reset::complete(&state, &form.token, form.password).await {
        Ok(_) => Redirect::to("/signin?done=reset").into_response(),
        Err(e) => {
            let mut page = PasswordResetPage::new(Some(form.token));
            page.error = Some(e.message);
            render(&page)
        }
    }
}
