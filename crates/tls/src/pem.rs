//! Reading PEM certificate chains and private keys, with errors that say what is wrong.

use std::path::Path;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::TlsError;

/// The certificates of a PEM file, leaf first; at least one, each a parsable X.509
/// certificate.
pub(crate) fn certificates(
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |why: String| TlsError::Certificate {
        path: path.to_path_buf(),
        why,
    };
    let chain = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(describe(e)))?;
    if chain.is_empty() {
        let hint = if contains(bytes, b"PRIVATE KEY-----") {
            " (it holds a private key: are tls.cert and tls.key swapped?)"
        } else {
            ""
        };
        return Err(bad(format!(
            "no PEM certificate (-----BEGIN CERTIFICATE-----) in it{hint}"
        )));
    }
    for (i, der) in chain.iter().enumerate() {
        if let Err(e) = x509_parser::parse_x509_certificate(der) {
            return Err(bad(format!(
                "certificate {} of the file is not valid X.509: {e}",
                i + 1
            )));
        }
    }
    Ok(chain)
}

/// The first private key of a PEM file (PKCS#8, PKCS#1 RSA or SEC1 EC).
pub(crate) fn private_key(path: &Path, bytes: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    warn_if_readable_by_others(path);
    PrivateKeyDer::from_pem_slice(bytes).map_err(|e| TlsError::Key {
        path: path.to_path_buf(),
        why: match e {
            pem::Error::NoItemsFound => {
                let hint = if contains(bytes, b"BEGIN CERTIFICATE") {
                    " (it holds a certificate: are tls.cert and tls.key swapped?)"
                } else {
                    ""
                };
                format!(
                    "no PEM private key (BEGIN PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY) in it{hint}"
                )
            }
            other => describe(other),
        },
    })
}

/// The certificate's expiry as RFC 3339 and whether it is past, when it parses.
pub(crate) fn not_after(der: &[u8]) -> Option<(String, bool)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let at =
        time::OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp()).ok()?;
    let text = at
        .format(&time::format_description::well_known::Rfc3339)
        .ok()?;
    Some((text, at < time::OffsetDateTime::now_utc()))
}

fn describe(e: pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "a PEM section is not closed (missing {})",
            String::from_utf8_lossy(&end_marker)
        ),
        pem::Error::IllegalSectionStart { line } => format!(
            "malformed PEM section start: {}",
            String::from_utf8_lossy(&line)
        ),
        pem::Error::Base64Decode(why) => format!("the PEM body is not valid base64: {why}"),
        other => format!("{other:?}"),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                "the TLS private key {} can be read by other users (mode {:o}); chmod 600 it",
                path.display(),
                meta.permissions().mode() & 0o777
            );
        }
    }
}
