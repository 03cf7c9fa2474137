//! Abuse limits per client address on the endpoints people guess passwords, create
//! accounts or send mail through: sign-in (API, console, OAuth2 token), sign-up, and the
//! public requests (privacy requests without an account, password reset). Each class has a
//! token bucket per IP address (GCRA, `governor`); a client over it gets 429 with
//! `Retry-After` and a sentence saying when to try again. Per account, failed sign-ins
//! lock the account (`auth.max_failed_logins`, `auth.lockout_secs`).

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

/// Limited requests between two clean-ups of idle addresses.
const FORGET_EVERY: u64 = 4096;

/// The address a request came from, for the limits: the TCP peer of the plain or the TLS
/// listener (serve with `into_make_service_with_connect_info::<ClientAddr>()`).
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub SocketAddr);

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for ClientAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

/// How many attempts a client address may make (0: no limit).
#[derive(Clone, Copy, Debug)]
pub struct AbuseLimitSettings {
    pub sign_in_per_minute: u32,
    pub sign_up_per_hour: u32,
    /// Privacy requests without an account and password resets: each may send mail.
    pub public_requests_per_hour: u32,
}

impl Default for AbuseLimitSettings {
    fn default() -> Self {
        AbuseLimitSettings {
            sign_in_per_minute: 20,
            sign_up_per_hour: 20,
            public_requests_per_hour: 10,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    SignIn,
    SignUp,
    PublicRequest,
}

impl Class {
    fn of(method: &Method, path: &str) -> Option<Class> {
        if method != Method::POST {
            return None;
        }
        match path {
            "/api/auth/login"
            | "/signin"
            | "/signin/code"
            | "/api/auth/2fa/verification/check"
            | "/oauth2/token" => Some(Class::SignIn),
            "/api/noauth/signup" | "/signup" => Some(Class::SignUp),
            "/api/privacy/requests/public"
            | "/api/noauth/resetPasswordByEmail"
            | "/password-reset" => Some(Class::PublicRequest),
            p if p.starts_with("/api/privacy/requests/") && p.ends_with("/verify") => {
                Some(Class::PublicRequest)
            }
            _ => None,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Class::SignIn => "sign-in attempts",
            Class::SignUp => "sign-ups",
            Class::PublicRequest => "requests",
        }
    }
}

pub(crate) struct Limiters {
    checks: std::sync::atomic::AtomicU64,
    sign_in: Option<DefaultKeyedRateLimiter<IpAddr>>,
    sign_up: Option<DefaultKeyedRateLimiter<IpAddr>>,
    public_requests: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

fn limiter(per: u32, period: Duration) -> Option<DefaultKeyedRateLimiter<IpAddr>> {
    let n = NonZeroU32::new(per)?;
    let quota = Quota::with_period(period / per)
        .expect("a positive period")
        .allow_burst(n);
    Some(RateLimiter::keyed(quota))
}

impl Limiters {
    pub(crate) fn new(settings: AbuseLimitSettings) -> Arc<Limiters> {
        Arc::new(Limiters {
            checks: Default::default(),
            sign_in: limiter(settings.sign_in_per_minute, Duration::from_secs(60)),
            sign_up: limiter(settings.sign_up_per_hour, Duration::from_secs(3600)),
            public_requests: limiter(settings.public_requests_per_hour, Duration::from_secs(3600)),
        })
    }

    fn of(&self, class: Class) -> Option<&DefaultKeyedRateLimiter<IpAddr>> {
        let checks = self
            .checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if checks % FORGET_EVERY == FORGET_EVERY - 1 {
            self.forget_idle();
        }
        match class {
            Class::SignIn => self.sign_in.as_ref(),
            Class::SignUp => self.sign_up.as_ref(),
            Class::PublicRequest => self.public_requests.as_ref(),
        }
    }

    /// Forgets addresses whose buckets are full again, so memory does not grow with the
    /// number of addresses ever seen.
    fn forget_idle(&self) {
        for l in [&self.sign_in, &self.sign_up, &self.public_requests]
            .into_iter()
            .flatten()
        {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

/// The middleware: counts the request against its class's bucket for the client's
/// address, or answers 429.
pub(crate) async fn limit(
    State(limiters): State<Arc<Limiters>>,
    request: Request,
    next: Next,
) -> Response {
    let class = Class::of(request.method(), request.uri().path());
    let peer = request
        .extensions()
        .get::<ConnectInfo<ClientAddr>>()
        .map(|c| c.0.0.ip());
    if let (Some(class), Some(ip)) = (class, peer)
        && let Some(limiter) = limiters.of(class)
        && let Err(not_until) = limiter.check_key(&ip)
    {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let secs = wait.as_secs() + 1;
        metrics::counter!("thingsafe_http_rate_limited_total", "class" => class.what())
            .increment(1);
        tracing::warn!(%ip, class = class.what(), "rate limited");
        let message = format!(
            "Too many {} from your address: try again in {secs} second(s)",
            class.what()
        );
        let path = request.uri().path();
        let mut response = if path.starts_with("/api/") || path.starts_with("/oauth2/") {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                crate::error::ErrorCode::TooManyRequests,
                message,
            )
            .into_response()
        } else {
            // A console form: a page a person can read, with the way back.
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                format!(
                    "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Please wait</title>\
                     <body><main><h1>Please wait</h1><p role=\"alert\">{message}.</p>\
                     <p><a href=\"{path}\">Back</a></p></main></body></html>"
                ),
            )
                .into_response()
        };
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_str(&secs.to_string()).expect("digits"),
        );
        return response;
    }
    next.run(request).await
}
