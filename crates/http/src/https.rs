//! The HTTP API over TLS, and what the plain listener answers when TLS is required: a
//! permanent redirect to the same path over HTTPS.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, Uri, header, uri::Authority};
use axum::response::{IntoResponse, Response};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a new connection has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes under way at once; beyond it, no new connection is accepted until one ends.
const MAX_HANDSHAKES: usize = 1024;

/// Serves `router` over TLS on `listener` until `shutdown` resolves; then lets the requests
/// in flight finish.
pub async fn serve_https(
    listener: TcpListener,
    tls: TlsAcceptor,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = router.layer(axum::middleware::map_response(strict_transport_security));
    let listener = TlsListener {
        tcp: listener,
        tls,
        handshakes: JoinSet::new(),
    };
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<crate::limits::ClientAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for crate::limits::ClientAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        crate::limits::ClientAddr(*stream.remote_addr())
    }
}

/// HSTS on every HTTPS answer (never on plain HTTP, where a browser ignores it anyway and
/// a proxy might cache it): browsers then use HTTPS only, for a year.
async fn strict_transport_security(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::STRICT_TRANSPORT_SECURITY,
        header::HeaderValue::from_static("max-age=31536000"),
    );
    response
}

/// Accepts TCP connections and hands axum those whose handshake succeeded. Handshakes run
/// in their own tasks, so a slow or silent client holds up no one else.
struct TlsListener {
    tcp: TcpListener,
    tls: TlsAcceptor,
    handshakes: JoinSet<Option<(TlsStream<TcpStream>, SocketAddr)>>,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                accepted = self.tcp.accept(), if self.handshakes.len() < MAX_HANDSHAKES => {
                    match accepted {
                        Ok((stream, peer)) => {
                            let _ = stream.set_nodelay(true);
                            let tls = self.tls.clone();
                            self.handshakes.spawn(async move {
                                match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                                    Ok(Ok(stream)) => Some((stream, peer)),
                                    Ok(Err(e)) => {
                                        tracing::debug!(error = %e, "TLS handshake failed");
                                        None
                                    }
                                    Err(_) => None,
                                }
                            });
                        }
                        Err(e) => {
                            // Out of file descriptors and the like: wait a little, go on.
                            tracing::warn!(error = %e, "cannot accept an HTTPS connection");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
                Some(done) = self.handshakes.join_next() => {
                    if let Ok(Some(connection)) = done {
                        return connection;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// What the plain HTTP listener serves when TLS is required: every request gets a 308
/// Permanent Redirect (method and body kept) to the same path and query over HTTPS, at
/// `https_base` when given (`http.public_url`), else at the host the client asked for on
/// `https_port`.
pub fn redirect_to_https(https_port: u16, https_base: Option<String>) -> Router {
    Router::new().fallback(move |headers: HeaderMap, uri: Uri| {
        let https_base = https_base.clone();
        async move { redirect(https_port, https_base.as_deref(), &headers, &uri) }
    })
}

fn redirect(https_port: u16, https_base: Option<&str>, headers: &HeaderMap, uri: &Uri) -> Response {
    let base = match https_base {
        Some(base) => base.trim_end_matches('/').to_string(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.parse::<Authority>().ok());
            let Some(host) = host else {
                return (
                    StatusCode::BAD_REQUEST,
                    "HTTPS is required here, and without a valid Host header there is no address to send you to\n",
                )
                    .into_response();
            };
            match https_port {
                443 => format!("https://{}", host.host()),
                port => format!("https://{}:{port}", host.host()),
            }
        }
    };
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let location = format!("{base}{path}");
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, location.clone())],
        format!("HTTPS is required: {location}\n"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(port: u16, base: Option<&str>, host: Option<&str>, uri: &str) -> (u16, String) {
        let mut headers = HeaderMap::new();
        if let Some(host) = host {
            headers.insert(header::HOST, host.parse().unwrap());
        }
        let response = redirect(port, base, &headers, &uri.parse().unwrap());
        let location = response
            .headers()
            .get(header::LOCATION)
            .map(|l| l.to_str().unwrap().to_string())
            .unwrap_or_default();
        (response.status().as_u16(), location)
    }

    #[test]
    fn the_redirect_keeps_host_path_and_query_and_changes_scheme_and_port() {
        assert_eq!(
            location(8443, None, Some("127.0.0.1:8080"), "/api/device/1?x=1&y=2"),
            (308, "https://127.0.0.1:8443/api/device/1?x=1&y=2".into())
        );
        assert_eq!(
            location(443, None, Some("iot.example.com"), "/"),
            (308, "https://iot.example.com/".into())
        );
        assert_eq!(
            location(8443, None, Some("[::1]:8080"), "/healthz"),
            (308, "https://[::1]:8443/healthz".into())
        );
        assert_eq!(
            location(
                8443,
                Some("https://iot.example.com/"),
                Some("x:1"),
                "/privacy"
            ),
            (308, "https://iot.example.com/privacy".into())
        );
        assert_eq!(location(8443, None, None, "/"), (400, String::new()));
        assert_eq!(location(8443, None, Some("a b"), "/"), (400, String::new()));
    }
}
