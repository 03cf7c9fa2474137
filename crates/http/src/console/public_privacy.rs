//! Privacy pages for people without an account: the request form (an emailed code proves
//! the address; console.js drives `/api/privacy/requests/public` and `/verify`), and the
//! page an unsubscribe link answers with.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::privacy_center::{KindOption, kind_options};
use super::{CONSOLE_CSP, Layout, render, set_page_headers};
use crate::AppState;

#[derive(Template)]
#[template(path = "console/privacy_request.html")]
struct RequestPage {
    layout: Layout,
    kinds: Vec<KindOption>,
    code_minutes: i64,
    deadline: String,
}

pub(super) async fn request_page(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Response {
    render(&RequestPage {
        layout: Layout::public("Ask about your data"),
        kinds: kind_options(),
        code_minutes: thingsafe_privacy::requests::CODE_TTL_MS / 60_000,
        deadline: state.policy.policy.request_deadline.human(),
    })
}

#[derive(Template)]
#[template(path = "console/unsubscribed.html")]
struct UnsubscribedPage {
    layout: Layout,
    /// None: unsubscribed; Some: why the link did nothing.
    problem: Option<String>,
}

/// The page an unsubscribe link answers with: done, or why not (`problem`), in the
/// console's look and under its security headers.
pub(crate) fn unsubscribe_page(problem: Option<String>) -> Response {
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let title = if problem.is_some() {
        "This link did not work"
    } else {
        "You are unsubscribed"
    };
    let mut response = render(&UnsubscribedPage {
        layout: Layout::public(title),
        problem,
    });
    *response.status_mut() = status;
    set_page_headers(response.headers_mut(), CONSOLE_CSP);
    response.into_response()
}
