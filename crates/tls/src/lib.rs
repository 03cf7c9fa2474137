//! Thingsafe's TLS: the one certificate every TLS listener (MQTT over TLS, HTTPS) presents,
//! and the rustls server configuration around it.
//!
//! - With no certificate configured, the first start generates a self-signed one (ECDSA
//!   P-256; names `localhost`, `127.0.0.1` and the configured host names) into
//!   `data/tls/` (generate.rs); later starts reuse it, and replace it only when it no
//!   longer names a configured host or is about to expire.
//! - The operator's PEM files (`tls.cert`, `tls.key`) are read at start, where a missing,
//!   unreadable or mismatched pair stops start-up naming the file (pem.rs).
//! - [`Certificates::reload`] (SIGHUP) and [`Certificates::reload_if_changed`] (a file
//!   watch) read the files again; a bad pair is logged and the certificate in use stays.
//!
//! # Invariants
//!
//! - **Swapping the certificate drops no connection.** [`Certificates`] is the rustls
//!   certificate resolver: each new handshake gets the certificate in force at that moment;
//!   established connections keep what they negotiated.
//! - **Modern TLS only.** TLS 1.3 and 1.2 with rustls' default cipher suites (AEAD with
//!   forward secrecy); nothing older is negotiated.
//! - **The private key is for the server alone.** A generated key is written with mode
//!   0600 in a 0700 directory, and is never logged.
//! - **Depends on `vault` only**, for its private-file helper; the transports take the
//!   acceptor it builds and know nothing of certificates.

mod chain;
mod client_auth;
mod generate;
mod pem;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
pub use tokio_rustls::TlsAcceptor;

pub use chain::{VerifiedDevice, check_provisioning_ca, verify_device_chain};
pub use generate::check_hostname;

/// ALPN protocol names, offered by the listener that speaks them.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Where the certificate comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertificateSource {
    /// The operator's PEM files: the certificate chain (leaf first) and its private key.
    Files { cert: PathBuf, key: PathBuf },
    /// Generated self-signed into `dir`, naming `localhost`, `127.0.0.1` and `hostnames`.
    Generated {
        dir: PathBuf,
        hostnames: Vec<String>,
    },
}

/// What went wrong with a certificate or key file; always names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a usable certificate: {why}")]
    Certificate { path: PathBuf, why: String },
    #[error("{path} is not a usable private key: {why}")]
    Key { path: PathBuf, why: String },
    #[error("the private key {key} does not belong to the certificate {cert}")]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("cannot generate a certificate: {0}")]
    Generate(String),
}

/// The certificate in force, and where it came from.
pub struct Certificates {
    cert_path: PathBuf,
    key_path: PathBuf,
    generated: bool,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<Loaded>,
    /// The digest of the files' contents last tried, loaded or refused: a watch reports a
    /// bad file once, not at every look.
    last_tried: Mutex<[u8; 32]>,
}

struct Loaded {
    key: Arc<CertifiedKey>,
    summary: Summary,
    files_digest: [u8; 32],
}

/// What the log and the operator need to know about a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// SHA-256 of the leaf certificate's DER, upper-case hex pairs joined by colons (the
    /// form `openssl x509 -fingerprint -sha256` prints).
    pub fingerprint: String,
    /// The leaf's expiry, RFC 3339, when it could be read.
    pub not_after: Option<String>,
}

/// How a reload went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reload {
    /// The files hold what is already in force.
    Unchanged,
    /// A new certificate is in force.
    Replaced(Summary),
}

impl Certificates {
    /// Loads the operator's certificate, or generates (or reuses) the self-signed one. An
    /// error names the file at fault: the server must not start without its certificate.
    pub fn open(source: &CertificateSource) -> Result<Arc<Certificates>, TlsError> {
        let (cert_path, key_path, generated) = match source {
            CertificateSource::Files { cert, key } => (cert.clone(), key.clone(), false),
            CertificateSource::Generated { dir, hostnames } => {
                let (cert, key) = generate::ensure(dir, hostnames)?;
                (cert, key, true)
            }
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (cert_pem, key_pem) = read_pair(&cert_path, &key_path)?;
        let loaded = load(&cert_path, &key_path, &cert_pem, &key_pem, &provider)?;
        let digest = loaded.files_digest;
        Ok(Arc::new(Certificates {
            cert_path,
            key_path,
            generated,
            provider,
            current: ArcSwap::from_pointee(loaded),
            last_tried: Mutex::new(digest),
        }))
    }

    /// The certificate file in force (what clients that pin it, `--cafile`, need).
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    pub fn key_path(&self) -> &Path {
        &self.key_path
    }

    /// Whether the certificate is the generated self-signed one.
    pub fn is_generated(&self) -> bool {
        self.generated
    }

    pub fn summary(&self) -> Summary {
        self.current.load().summary.clone()
    }

    /// Reads the files again and puts what they hold in force; on error the certificate in
    /// use stays. Logs the outcome.
    pub fn reload(&self) -> Result<Reload, TlsError> {
        let result = self.try_reload(None);
        self.log_reload(&result);
        result
    }

    /// Like [`reload`](Self::reload), but only when the files differ from what was last
    /// tried; `None` when they do not.
    pub fn reload_if_changed(&self) -> Option<Result<Reload, TlsError>> {
        let (cert_pem, key_pem) = read_pair(&self.cert_path, &self.key_path).ok()?;
        let digest = files_digest(&cert_pem, &key_pem);
        if *self.last_tried.lock().expect("not poisoned") == digest {
            return None;
        }
        let result = self.try_reload(Some((cert_pem, key_pem)));
        self.log_reload(&result);
        Some(result)
    }

    fn try_reload(&self, read: Option<(Vec<u8>, Vec<u8>)>) -> Result<Reload, TlsError> {
        let (cert_pem, key_pem) = match read {
            Some(pair) => pair,
            None => read_pair(&self.cert_path, &self.key_path)?,
        };
        let digest = files_digest(&cert_pem, &key_pem);
        *self.last_tried.lock().expect("not poisoned") = digest;
        if self.current.load().files_digest == digest {
            return Ok(Reload::Unchanged);
        }
        let loaded = load(
            &self.cert_path,
            &self.key_path,
            &cert_pem,
            &key_pem,
            &self.provider,
        )?;
        let summary = loaded.summary.clone();
        self.current.store(Arc::new(loaded));
        Ok(Reload::Replaced(summary))
    }

    fn log_reload(&self, result: &Result<Reload, TlsError>) {
        match result {
            Ok(Reload::Unchanged) => {
                tracing::info!(path = %self.cert_path.display(), "TLS certificate unchanged")
            }
            Ok(Reload::Replaced(summary)) => tracing::info!(
                not_after = summary.not_after.as_deref().unwrap_or("unknown"),
                "reloaded the TLS certificate: {} (SHA-256 fingerprint {})",
                self.cert_path.display(),
                summary.fingerprint
            ),
            Err(e) => {
                tracing::error!("cannot reload the TLS certificate: {e}; keeping the one in use")
            }
        }
    }

    /// A TLS acceptor presenting the certificate in force, TLS 1.3 and 1.2 only, offering
    /// `alpn` (empty: no ALPN).
    pub fn acceptor(self: &Arc<Self>, alpn: &[&[u8]]) -> TlsAcceptor {
        self.build(alpn, false)
    }

    /// [`acceptor`](Self::acceptor) for devices: also asks for a client certificate,
    /// without requiring one and without trusting any CA (client_auth.rs). The session
    /// reads the one presented and looks it up among devices' X.509 credentials.
    pub fn device_acceptor(self: &Arc<Self>) -> TlsAcceptor {
        self.build(&[], true)
    }

    fn build(self: &Arc<Self>, alpn: &[&[u8]], device_certificates: bool) -> TlsAcceptor {
        let builder = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .expect("the ring provider speaks TLS 1.3 and 1.2");
        let builder = match device_certificates {
            true => builder.with_client_cert_verifier(Arc::new(client_auth::DeviceCertificates {
                provider: self.provider.clone(),
            })),
            false => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(self.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        TlsAcceptor::from(Arc::new(config))
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load().key.clone())
    }
}

impl fmt::Debug for Certificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificates")
            .field("cert_path", &self.cert_path)
            .field("generated", &self.generated)
            .field("fingerprint", &self.current.load().summary.fingerprint)
            .finish_non_exhaustive()
    }
}

fn read_pair(cert: &Path, key: &Path) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    Ok((read(cert)?, read(key)?))
}

fn files_digest(cert_pem: &[u8], key_pem: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update((cert_pem.len() as u64).to_be_bytes());
    hash.update(cert_pem);
    hash.update(key_pem);
    hash.finalize().into()
}

fn load(
    cert_path: &Path,
    key_path: &Path,
    cert_pem: &[u8],
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<Loaded, TlsError> {
    let chain = pem::certificates(cert_path, cert_pem)?;
    let key = pem::private_key(key_path, key_pem)?;
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Key {
            path: key_path.to_path_buf(),
            why: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(_)) => {
            return Err(TlsError::Mismatch {
                cert: cert_path.to_path_buf(),
                key: key_path.to_path_buf(),
            });
        }
        Err(e) => {
            return Err(TlsError::Certificate {
                path: cert_path.to_path_buf(),
                why: e.to_string(),
            });
        }
    }
    let leaf = &certified.cert[0];
    let (not_after, expired) = match pem::not_after(leaf) {
        Some((at, expired)) => (Some(at), expired),
        None => (None, false),
    };
    if expired {
        tracing::warn!(
            "the TLS certificate {} expired on {}: clients will refuse it",
            cert_path.display(),
            not_after.as_deref().unwrap_or("?")
        );
    }
    let summary = Summary {
        fingerprint: fingerprint(leaf),
        not_after,
    };
    Ok(Loaded {
        key: Arc::new(certified),
        summary,
        files_digest: files_digest(cert_pem, key_pem),
    })
}

/// SHA-256 of `der`, as `AB:CD:...`.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests;
