//! TLS clients for tests: reqwest trusting one certificate, and a bare rustls handshake
//! that tells what the server presented, or why the client refused it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// rustls' ring provider as the process default (reqwest is built without one).
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A reqwest client that trusts only the PEM certificate `cert`.
pub fn client_trusting(cert: &Path) -> reqwest::Client {
    install_provider();
    let pem = std::fs::read(cert).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .build()
        .unwrap()
}

/// What a completed handshake showed.
pub struct Handshake {
    pub version: rustls::ProtocolVersion,
    /// SHA-256 of the server's leaf certificate, `AB:CD:...`.
    pub fingerprint: String,
    pub stream: TlsStream<TcpStream>,
}

/// A TLS handshake with `addr`, checking the server's certificate for `name` against the
/// PEM certificates `trusted`. Err: rustls' reason when the client refused the server.
pub async fn handshake(
    addr: SocketAddr,
    name: &str,
    trusted: &[&Path],
) -> Result<Handshake, rustls::Error> {
    install_provider();
    let mut roots = rustls::RootCertStore::empty();
    for path in trusted {
        for cert in CertificateDer::pem_file_iter(path).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.expect("TCP connect");
    let name = ServerName::try_from(name.to_string()).unwrap();
    let stream = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| {
            let inner = e.into_inner().expect("a TLS error");
            *inner.downcast::<rustls::Error>().expect("a rustls error")
        })?;
    let (_, session) = stream.get_ref();
    let version = session.protocol_version().unwrap();
    let leaf = &session.peer_certificates().unwrap()[0];
    Ok(Handshake {
        version,
        fingerprint: fingerprint(leaf),
        stream,
    })
}

/// SHA-256 of `der`, as openssl prints it (`AB:CD:...`).
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The fingerprint of the (first) certificate in the PEM file `path`.
pub fn file_fingerprint(path: &Path) -> String {
    fingerprint(&CertificateDer::from_pem_file(path).unwrap())
}

/// A self-signed certificate and key (PEM) for `names`, valid from `not_before` to
/// `not_after`, as an operator would bring them.
pub fn self_signed(
    names: &[&str],
    not_before: time::OffsetDateTime,
    not_after: time::OffsetDateTime,
) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    // A subject of its own: a client that trusts another test certificate must not take
    // this one for that one's.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let serial = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("Thingsafe test {} {serial}", std::process::id()),
    );
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A self-signed pair for `localhost` and `127.0.0.1`, valid now.
pub fn local_pair() -> (String, String) {
    let now = time::OffsetDateTime::now_utc();
    self_signed(
        &["localhost", "127.0.0.1"],
        now - time::Duration::days(1),
        now + time::Duration::days(30),
    )
}

/// A certificate authority for device certificate chains (X.509 provisioning).
pub struct Authority {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
    /// Its certificate, PEM.
    pub pem: String,
}

/// What a certificate made by [`Authority::issue`] is for.
#[derive(Clone, Copy, PartialEq)]
pub enum Role {
    /// A device's certificate.
    Device,
    /// A device's certificate for servers only (extended key usage serverAuth).
    ServerOnly,
    /// An intermediate CA.
    Intermediate,
}

fn params_for(cn: &str, role: Role) -> rcgen::CertificateParams {
    let now = time::OffsetDateTime::now_utc();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(30);
    match role {
        Role::Device => {}
        Role::ServerOnly => {
            params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth]
        }
        Role::Intermediate => {
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained)
        }
    }
    params
}

impl Authority {
    /// A self-signed root CA named `cn`.
    pub fn root(cn: &str) -> Authority {
        let params = params_for(cn, Role::Intermediate);
        let key = rcgen::KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Authority { params, key, pem }
    }

    /// A certificate named `cn` signed by this CA: (certificate PEM, key PEM).
    pub fn issue(&self, cn: &str, role: Role) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let cert = params_for(cn, role).signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// An intermediate CA signed by this one.
    pub fn intermediate(&self, cn: &str) -> Authority {
        let params = params_for(cn, Role::Intermediate);
        let key = rcgen::KeyPair::generate().unwrap();
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let pem = params.signed_by(&key, &issuer).unwrap().pem();
        Authority { params, key, pem }
    }

    /// A CA that uses a device's certificate and key as if they were a CA's (what a device
    /// owner could try with the certificate it was given).
    pub fn from_device(cn: &str, key_pem: &str, pem: &str) -> Authority {
        Authority {
            params: params_for(cn, Role::Device),
            key: rcgen::KeyPair::from_pem(key_pem).unwrap(),
            pem: pem.to_string(),
        }
    }
}
