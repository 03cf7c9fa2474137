//! Thingsafe's MQTT transport: ThingsBoard's device API over MQTT 3.1.1 and 5 on one port.
//!
//! Devices written for ThingsBoard connect unchanged: the access token is the MQTT user
//! name, and they publish to `v1/devices/me/telemetry` and `v1/devices/me/attributes`,
//! ask for attributes on `v1/devices/me/attributes/request/$id` and subscribe to
//! `v1/devices/me/attributes` for shared-attribute updates. A device flagged as a gateway
//! also speaks for its sub-devices on ThingsBoard's `v1/gateway/...` topics (gateway.rs).
//! The codec is `rmqtt-codec`; the session loop (one task per connection) is ours, with no
//! broker behind it.
//!
//! # Invariants
//!
//! - **An acknowledgement means stored.** A QoS 1 PUBACK (QoS 2 PUBREC) is sent only
//!   after `Store::append_telemetry` / `Store::save_attributes` returned `Ok`, which is
//!   after the durable commit. A message that fails to store is never acknowledged: the
//!   connection closes and the client sends it again.
//! - **Acknowledgements in arrival order** (MQTT-4.6.0-2). Up to `receive_maximum`
//!   messages per connection are stored at once (the store commits many connections'
//!   messages together); their outcomes are taken in the order the messages arrived. A
//!   refusal (MQTT 5 PUBACK 0x87/0x99) waits its turn like a success.
//! - **Backpressure, bounded memory.** While `receive_maximum` messages are in flight, or
//!   an attribute request waits for the writes before it, the socket is not read. Each
//!   connection holds at most one packet of `max_packet_size` being decoded and
//!   `receive_maximum` parsed messages; connections beyond `max_connections` are closed
//!   on accept.
//! - **A device reaches only itself.** Its identity is the token given at CONNECT; every
//!   topic is `v1/devices/me/...` or a short form (`v2/t`, `v2/a`, `v2/r/...`, which name
//!   no device); anything else is refused (MQTT 5: PUBACK or
//!   DISCONNECT 0x87, SUBACK 0x87; MQTT 3.1.1: the connection closes, SUBACK 0x80).
//!   Attribute updates are filtered by the connection's device id. A gateway also reaches
//!   `v1/gateway/...`, and through it only its own sub-devices (created by it, in its
//!   tenant); a device that is not a gateway is refused there like anywhere else.
//! - **Writes of one connection are committed in the order received.** Each message's
//!   store call starts in arrival order (the store's writer queue is FIFO); an attribute
//!   request is answered only after the writes before it are committed, so it reads them.
//! - **Bad input is refused, clearly, and loses nothing.** A payload that does not parse
//!   is logged (device id, topic, parser message) and refused (MQTT 5: PUBACK 0x99 with the
//!   message as reason string; MQTT 3.1.1: the connection closes, as ThingsBoard does). A
//!   malformed frame closes the connection (MQTT 5: DISCONNECT with the spec's reason
//!   code). Before any connection closes, the messages in flight are finished and
//!   acknowledged. No input panics.
//! - **Nothing personal in logs.** Tokens, client ids, payloads and peer addresses are
//!   not logged; devices appear by id.
//! - **Plain or TLS, the same session.** [`serve_tls`] hands the session a TLS stream
//!   once the handshake is done (within `connect_timeout`, in the connection's task, so a
//!   slow handshake holds up no one else); a failed handshake ends the connection before
//!   any MQTT byte is read. Certificates are the binary's business (`thingsafe-tls`).
//! - **A client certificate is an identity only when a device claims it.** Over TLS, a
//!   certificate the client presented (and proved it holds the key of, in the handshake)
//!   authenticates the device whose `X509_CERTIFICATE` credentials have its SHA-256, or,
//!   when the chain sent with it leads to a device profile's provisioning CA, the device
//!   the profile names by it (certificate.rs); one that is no device's changes nothing:
//!   the access token decides.
//! - **A session outlives its connection only when asked, and boundedly.** MQTT 3.1.1
//!   CleanSession=0 and MQTT 5 Clean Start=0 resume the subscriptions of the device's
//!   session named by the client id (CONNACK session present), with the QoS 1 messages
//!   queued while it was away and those sent but not acknowledged (again, DUP). Queues hold
//!   at most `session_queue` messages (the oldest goes); sessions are kept at most
//!   `max_session_expiry`, in memory. A new connection with the same device and client id
//!   takes the session over: the old one finishes what is in flight and is closed (MQTT 5:
//!   DISCONNECT 0x8E).
//! - **Depends on `core`, `store` and `tls`** (for checking device certificate chains)
//!   only, never on `http`.

mod certificate;
pub mod codes;
mod error;
mod persistence;
pub mod render;
mod session;
pub mod topic;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use thingsafe_store::Store;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

pub use certificate::ClientCertificate;
pub use error::SessionError;
pub use persistence::SessionRegistry;
pub use session::{handle, handle_with_certificate};

/// Limits of the MQTT listener.
#[derive(Clone, Debug)]
pub struct MqttSettings {
    /// The largest packet accepted, in bytes; advertised to MQTT 5 clients as Maximum
    /// Packet Size. ThingsBoard's `transport.mqtt.netty.max_payload_size` is 65536.
    pub max_packet_size: u32,
    /// QoS 1 and 2 messages of one connection being stored at once; advertised to MQTT 5
    /// clients as Receive Maximum.
    pub receive_maximum: u16,
    /// How long a new connection has to send its CONNECT and be authenticated.
    pub connect_timeout: Duration,
    /// How long a client may leave what we send unread before it is dropped.
    pub write_timeout: Duration,
    /// Most connections at once.
    pub max_connections: usize,
    /// How long connections have, at shutdown, to finish the messages in flight.
    pub shutdown_grace: Duration,
    /// New connections per second from one address, in bursts of ten times as many
    /// (0: no limit). Over it, the connection is closed before its CONNECT is read.
    pub connects_per_second: u32,
    /// What devices may send (shared with the HTTP device API, reported by
    /// `getSessionLimits`).
    pub rate_limits: Arc<thingsafe_core::rate_limit::DeviceRateLimits>,
    /// Sessions kept between connections, and which connection holds each (persistence.rs).
    /// Shared by the plain and the TLS listener.
    pub sessions: Arc<SessionRegistry>,
    /// Messages kept for a device whose session waits for it (or whose receive window is
    /// full); beyond, the oldest is dropped.
    pub session_queue: usize,
    /// The longest a session is kept after its connection ended: an MQTT 5 client's
    /// Session Expiry Interval is capped to it (and told so in the CONNACK), an MQTT 3.1.1
    /// CleanSession=0 session is kept this long.
    pub max_session_expiry: Duration,
}

impl Default for MqttSettings {
    fn default() -> Self {
        MqttSettings {
            max_packet_size: 65_536,
            receive_maximum: 64,
            connect_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            shutdown_grace: Duration::from_secs(10),
            connects_per_second: 200,
            rate_limits: Arc::new(thingsafe_core::rate_limit::DeviceRateLimits::new(
                Default::default(),
            )),
            sessions: Arc::new(SessionRegistry::default()),
            session_queue: 100,
            max_session_expiry: Duration::from_secs(86_400),
        }
    }
}

/// Accepts MQTT connections on `listener` until `shutdown` resolves; then stops accepting,
/// lets every connection finish (and acknowledge) the messages in flight, and returns.
pub async fn serve(
    listener: TcpListener,
    store: Arc<dyn Store>,
    settings: MqttSettings,
    shutdown: impl Future<Output = ()> + Send,
) {
    serve_on(listener, None, store, settings, shutdown).await
}

/// [`serve`] over TLS: each connection's handshake is done by `tls` in the connection's
/// own task, within `connect_timeout`, before the MQTT session starts.
pub async fn serve_tls(
    listener: TcpListener,
    tls: TlsAcceptor,
    store: Arc<dyn Store>,
    settings: MqttSettings,
    shutdown: impl Future<Output = ()> + Send,
) {
    serve_on(listener, Some(tls), store, settings, shutdown).await
}

async fn serve_on(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    store: Arc<dyn Store>,
    settings: MqttSettings,
    shutdown: impl Future<Output = ()> + Send,
) {
    static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);
    let settings = Arc::new(settings);
    let (stop_tx, stop_rx) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let connect_rate = std::num::NonZeroU32::new(settings.connects_per_second).map(|n| {
        governor::RateLimiter::<std::net::IpAddr, _, _>::keyed(
            governor::Quota::per_second(n)
                .allow_burst(n.saturating_mul(std::num::NonZeroU32::new(10).expect("ten"))),
        )
    });
    let mut accepted_since_cleanup = 0u32;
    let mut sessions = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, peer)) => {
                        if let Some(rate) = &connect_rate {
                            accepted_since_cleanup += 1;
                            if accepted_since_cleanup == 4096 {
                                accepted_since_cleanup = 0;
                                rate.retain_recent();
                            }
                            if rate.check_key(&peer.ip()).is_err() {
                                metrics::counter!("thingsafe_mqtt_refused_total", "reason" => "connect_rate")
                                    .increment(1);
                                tracing::debug!(ip = %peer.ip(), "closed an MQTT connection: too many connections from its address");
                                continue;
                            }
                        }
                        stream
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: wait a little, go on.
                        tracing::warn!(error = %e, "cannot accept an MQTT connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                metrics::counter!("thingsafe_mqtt_connections_total").increment(1);
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    metrics::counter!("thingsafe_mqtt_refused_total", "reason" => "max_connections")
                        .increment(1);
                    tracing::warn!(
                        max = settings.max_connections,
                        "refused an MQTT connection: too many connections"
                    );
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let connection = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
                let (store, settings, stop) = (store.clone(), settings.clone(), stop_rx.clone());
                let span = tracing::info_span!("mqtt", connection);
                // Two kinds of task, each sized for its own path: one future holding both
                // would give every plain connection the room of a TLS one (measured: 12.4
                // against 4 KB per idle connection).
                match &tls {
                    None => {
                        let task = plain_connection(stream, store, settings, stop, slot);
                        tracing::trace!(bytes = std::mem::size_of_val(&task), "an MQTT connection's task");
                        sessions.spawn(task.instrument(span));
                    }
                    Some(tls) => {
                        let task = tls_connection(stream, tls.clone(), store, settings, stop, slot);
                        tracing::trace!(bytes = std::mem::size_of_val(&task), "an MQTT over TLS connection's task");
                        sessions.spawn(task.instrument(span));
                    }
                }
            }
            Some(ended) = sessions.join_next(), if !sessions.is_empty() => {
                if let Err(e) = ended {
                    tracing::error!(error = %e, "an MQTT session task failed");
                }
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(settings.shutdown_grace, async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = sessions.len(),
            "MQTT connections did not finish within the shutdown grace period; closing them"
        );
        sessions.shutdown().await;
    }
}

/// One plain connection's task.
async fn plain_connection(
    stream: TcpStream,
    store: Arc<dyn Store>,
    settings: Arc<MqttSettings>,
    stop: watch::Receiver<bool>,
    slot: OwnedSemaphorePermit,
) {
    metrics::gauge!("thingsafe_mqtt_connections").increment(1.0);
    let result = handle(stream, store, settings, stop).await;
    ended(result, slot);
}

/// One TLS connection's task: the handshake, then the session over a boxed stream (rustls'
/// connection state is large: boxed, it is not copied into each future that holds the
/// stream).
async fn tls_connection(
    stream: TcpStream,
    tls: TlsAcceptor,
    store: Arc<dyn Store>,
    settings: Arc<MqttSettings>,
    stop: watch::Receiver<bool>,
    slot: OwnedSemaphorePermit,
) {
    metrics::gauge!("thingsafe_mqtt_connections").increment(1.0);
    let result = match handshake(&tls, stream, &settings).await {
        Ok(stream) => {
            let certificate = client_certificate(&stream);
            handle_with_certificate(Box::new(stream), certificate, store, settings, stop).await
        }
        Err(e) => Err(e),
    };
    ended(result, slot);
}

fn ended(result: Result<(), SessionError>, slot: OwnedSemaphorePermit) {
    metrics::gauge!("thingsafe_mqtt_connections").decrement(1.0);
    drop(slot);
    if let Err(e) = result {
        tracing::debug!(reason = %e, "MQTT connection ended");
    }
}

/// The certificates the TLS client presented, if any: what X.509 devices are found by.
fn client_certificate(
    stream: &tokio_rustls::server::TlsStream<TcpStream>,
) -> Option<ClientCertificate> {
    let chain = stream.get_ref().1.peer_certificates()?;
    ClientCertificate::new(chain.iter().map(|c| c.to_vec()).collect())
}

/// The TLS handshake of a new connection, bounded by `connect_timeout`.
async fn handshake(
    tls: &TlsAcceptor,
    stream: TcpStream,
    settings: &MqttSettings,
) -> Result<tokio_rustls::server::TlsStream<TcpStream>, SessionError> {
    let outcome = tokio::time::timeout(settings.connect_timeout, tls.accept(stream)).await;
    let error = match outcome {
        Ok(Ok(stream)) => return Ok(stream),
        Ok(Err(e)) => SessionError::Tls(e),
        Err(_) => SessionError::ConnectTimeout(settings.connect_timeout),
    };
    metrics::counter!("thingsafe_mqtt_refused_total", "reason" => "tls_handshake").increment(1);
    Err(error)
}

#[cfg(test)]
mod tests;
