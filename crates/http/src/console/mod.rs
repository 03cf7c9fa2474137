//! The web console: server-rendered pages (askama templates in `templates/console/`) and
//! the small scripts and style sheet they use (`assets/`, compiled into the binary).
//!
//! Pages read through the store with the viewer's scope, like the API's handlers; every
//! change a page makes goes through the JSON API from its script, authenticated by the
//! session cookie and the page's CSRF token (`auth.rs`). Pages load nothing from other
//! hosts and run no inline script: the CSP says so.

mod admin;
mod devices;
mod privacy_admin;
mod privacy_center;
mod privacy_operations;
mod profiles;
mod public;
mod public_privacy;
mod session;

use std::sync::LazyLock;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Request};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use sha2::{Digest, Sha256};
use thingsafe_core::{TimestampMs, User};

use crate::AppState;
use crate::error::ApiError;
pub(crate) use public_privacy::unsubscribe_page;
pub(crate) use session::{Viewer, renew_expired_session, same_origin};

/// Pages load scripts, styles, images and connections from this server only; nothing
/// runs inline; no other site may frame them or receive their forms.
pub(crate) const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub(crate) fn router() -> Router<AppState> {
    let pages = Router::new()
        .route("/", get(public::root))
        .route("/signin", get(public::sign_in_page).post(public::sign_in))
        .route("/signin/code", post(public::sign_in_code))
        .route(
            "/password-reset",
            get(public::password_reset_page).post(public::password_reset_request),
        )
        .route("/password-reset/new", post(public::password_reset_complete))
        .route("/signup", get(public::sign_up_page).post(public::sign_up))
        .route("/signout", post(public::sign_out))
        .route("/privacy/request", get(public_privacy::request_page))
        .route("/dashboard", get(devices::dashboard))
        .route("/devices", get(devices::list))
        .route("/devices/{id}", get(devices::page))
        .route("/device-profiles", get(profiles::list))
        .route("/device-profiles/{id}", get(profiles::page))
        .route("/customers", get(admin::customers))
        .route("/customers/{id}", get(admin::customer))
        .route("/users", get(admin::users))
        .route("/profile", get(admin::profile))
        .route("/tenants", get(admin::tenants))
        .route("/admin", get(privacy_admin::home))
        .route("/admin/requests", get(privacy_admin::requests))
        .route("/admin/breaches", get(privacy_admin::breaches))
        .route("/admin/suspensions", get(privacy_admin::suspensions))
        .route("/admin/audit", get(privacy_admin::audit))
        .route("/admin/retention", get(privacy_operations::retention))
        .route("/admin/recipients", get(privacy_operations::recipients))
        .route("/admin/exports", get(privacy_operations::exports))
        .route("/admin/backups", get(privacy_operations::backups))
        .layer(middleware::from_fn(page_headers));
    Router::new()
        .merge(pages)
        .route("/assets/{name}", get(asset))
}

/// Security headers of every page; pages hold personal data and a CSRF token, so no
/// cache keeps them.
async fn page_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    set_page_headers(response.headers_mut(), CONSOLE_CSP);
    response
}

/// The console's security headers, with `csp` as the content security policy.
pub(crate) fn set_page_headers(headers: &mut axum::http::HeaderMap, csp: &str) {
    let set = |h: &mut axum::http::HeaderMap, name: &'static str, value: &'static str| {
        h.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    };
    if let Ok(csp) = HeaderValue::from_str(csp) {
        headers.insert(HeaderName::from_static("content-security-policy"), csp);
    }
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "x-frame-options", "DENY");
    set(headers, "referrer-policy", "same-origin");
    set(headers, "cache-control", "no-store");
}

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../assets/console.css"),
    },
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../assets/console.js"),
    },
    Asset {
        name: "charts.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../assets/charts.js"),
    },
];

/// A hash of all assets: pages link `/assets/x?v=<this>`, so a browser may keep an asset
/// for a year and still fetches the new one after an upgrade.
static ASSET_VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut hash = Sha256::new();
    for a in ASSETS {
        hash.update(a.body.as_bytes());
    }
    hash.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
});

async fn asset(Path(name): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return ApiError::not_found(format!("No asset named {name:?}")).into_response();
    };
    (
        [
            (CONTENT_TYPE, asset.content_type),
            (CACHE_CONTROL, "public, max-age=31536000, immutable"),
            (HeaderName::from_static("x-content-type-options"), "nosniff"),
        ],
        asset.body,
    )
        .into_response()
}

/// What every page's frame shows: title, navigation, who is signed in.
pub(crate) struct Layout {
    pub title: String,
    /// The navigation entry of this page (`devices`, `dashboard`, ...).
    pub nav: &'static str,
    pub csrf: String,
    /// The signed-in person's name, or None on public pages.
    pub user: Option<String>,
    pub tenant_admin: bool,
    /// The system administrator: sees tenants, not devices.
    pub system_admin: bool,
    /// A tenant or system administrator: sees the "Privacy & security" area.
    pub privacy_admin: bool,
    pub asset_version: &'static str,
}

impl Layout {
    pub fn public(title: &str) -> Layout {
        Layout {
            title: title.to_string(),
            nav: "",
            csrf: String::new(),
            user: None,
            tenant_admin: false,
            system_admin: false,
            privacy_admin: false,
            asset_version: ASSET_VERSION.as_str(),
        }
    }

    pub fn signed_in(title: impl Into<String>, nav: &'static str, viewer: &Viewer) -> Layout {
        Layout {
            title: title.into(),
            nav,
            csrf: viewer.csrf.clone(),
            user: Some(display_name(&viewer.principal.user)),
            tenant_admin: viewer.is_tenant_admin(),
            system_admin: viewer.is_system_admin(),
            privacy_admin: viewer.is_admin(),
            asset_version: ASSET_VERSION.as_str(),
        }
    }
}

pub(crate) fn display_name(user: &User) -> String {
    let name = [user.first_name.as_deref(), user.last_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    if name.is_empty() {
        user.email.clone()
    } else {
        name
    }
}

/// Renders a page, or a plain error page if the template fails.
pub(crate) fn render(page: &impl askama::Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a console page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be shown; the error is logged.",
            )
                .into_response()
        }
    }
}

/// Percent-encodes a query value.
pub(crate) fn url_encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `2026-05-01 14:03 UTC`; scripts rewrite it in the viewer's time zone.
pub(crate) fn utc_time(ms: TimestampMs) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02} UTC",
                t.year(),
                t.month() as u8,
                t.day(),
                t.hour(),
                t.minute()
            )
        })
        .unwrap_or_default()
}

/// A moment on a page: `<time datetime="2026-05-01T14:03:00Z" data-ts="…">2026-05-01 14:03
/// UTC</time>`. Without scripts the UTC text stays; console.js rewrites it in the viewer's
/// time zone (and keeps the UTC one in its tooltip). Templates write `{{ t }}`: the markup
/// holds only digits and fixed characters, so it needs no escaping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Time(pub TimestampMs);

impl std::fmt::Display for Time {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
        else {
            return Ok(());
        };
        write!(
            f,
            "<time datetime=\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z\" data-ts=\"{}\">{}</time>",
            t.year(),
            t.month() as u8,
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            self.0,
            utc_time(self.0)
        )
    }
}

impl askama::filters::HtmlSafe for Time {}

#[derive(Template)]
#[template(path = "console/problem.html")]
struct ProblemPage {
    layout: Layout,
    heading: String,
    message: String,
    /// Where the viewer's own pages start, and its name.
    home: &'static str,
    home_name: &'static str,
}

/// Where a signed-in person's pages start: tenants for the system administrator,
/// devices for everyone else.
pub(crate) fn home_of(viewer: &Viewer) -> (&'static str, &'static str) {
    if viewer.is_system_admin() {
        ("/tenants", "Tenants")
    } else {
        ("/devices", "Devices")
    }
}

fn problem_page(viewer: &Viewer, status: StatusCode, heading: &str, message: &str) -> Response {
    let (home, home_name) = home_of(viewer);
    let mut response = render(&ProblemPage {
        layout: Layout::signed_in(heading, "", viewer),
        heading: heading.to_string(),
        message: message.to_string(),
        home,
        home_name,
    });
    if response.status().is_success() {
        *response.status_mut() = status;
    }
    response
}

/// A page the viewer's role has no use for (403), said in words, with the way home.
pub(crate) fn not_for_role(viewer: &Viewer, message: &str) -> Response {
    problem_page(
        viewer,
        StatusCode::FORBIDDEN,
        "This page is not for your role",
        message,
    )
}

/// A page that could not be shown (not found, a bad id, a store failure), as a page with
/// the API's message and status.
pub(crate) fn error_page(viewer: &Viewer, e: impl Into<ApiError>) -> Response {
    let e = e.into();
    let heading = match e.status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "This page is not for your role",
        s if s.is_client_error() => "This address is not right",
        _ => "The page could not be shown",
    };
    if e.status.is_server_error() {
        tracing::error!(error = %e.message, "a console page failed");
    }
    problem_page(viewer, e.status, heading, &e.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_keeps_paths_readable_and_escapes_the_rest() {
        assert_eq!(
            url_encode("/devices?q=a b&page=2"),
            "/devices%3Fq%3Da%20b%26page%3D2"
        );
        assert_eq!(utc_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(
            Time(90_061_000).to_string(),
            "<time datetime=\"1970-01-02T01:01:01Z\" data-ts=\"90061000\">1970-01-02 01:01 UTC</time>"
        );
    }
}
