//! The self-signed certificate generated when the operator configured none.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::GeneralName;

use crate::TlsError;

pub(crate) const CERT_FILE: &str = "cert.pem";
pub(crate) const KEY_FILE: &str = "key.pem";
/// How long a generated certificate is valid: no longer than browsers accept (825 days).
const VALID_DAYS: i64 = 825;
/// A generated certificate this close to its expiry is replaced at start.
const RENEW_DAYS: i64 = 30;

/// The generated certificate and key in `dir`: reused when they name every host and are
/// not about to expire, generated otherwise.
pub(crate) fn ensure(dir: &Path, hostnames: &[String]) -> Result<(PathBuf, PathBuf), TlsError> {
    let names = names(hostnames);
    let (cert, key) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
    if cert.exists() && key.exists() {
        let pem = std::fs::read(&cert).map_err(|source| TlsError::Read {
            path: cert.clone(),
            source,
        })?;
        match why_replace(&pem, &names, OffsetDateTime::now_utc()) {
            None => return Ok((cert, key)),
            Some(why) => tracing::warn!(
                "replacing the generated TLS certificate {}: {why}; clients that trusted the old one must be given the new one",
                cert.display()
            ),
        }
    } else {
        tracing::info!(
            "no TLS certificate configured (tls.cert, tls.key): generating a self-signed one for {}",
            names.join(", ")
        );
    }
    write_new(dir, &names, &cert, &key)?;
    Ok((cert, key))
}

/// `localhost`, `127.0.0.1`, then the configured names.
fn names(hostnames: &[String]) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    for name in hostnames {
        let name = normalise(name);
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

fn normalise(name: &str) -> String {
    match name.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => name.to_ascii_lowercase(),
    }
}

/// Why the generated certificate in `pem` cannot be kept, if it cannot.
fn why_replace(pem: &[u8], names: &[String], now: OffsetDateTime) -> Option<String> {
    let Ok(der) = CertificateDer::from_pem_slice(pem) else {
        return Some("it holds no PEM certificate".into());
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else {
        return Some("it is not valid X.509".into());
    };
    if cert.validity().not_after.timestamp() < (now + Duration::days(RENEW_DAYS)).unix_timestamp() {
        return Some(format!("it expires within {RENEW_DAYS} days"));
    }
    let named: Vec<String> = match cert.subject_alternative_name() {
        Ok(Some(ext)) => ext
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
                GeneralName::IPAddress(bytes) => ip_from(bytes).map(|ip| ip.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    names
        .iter()
        .find(|name| !named.contains(name))
        .map(|missing| format!("it does not name {missing} (tls.hostnames)"))
}

fn ip_from(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

fn write_new(dir: &Path, names: &[String], cert: &Path, key: &Path) -> Result<(), TlsError> {
    let generate = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(write_error(dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(write_error(dir))?;
    }
    let key_pair = rcgen::KeyPair::generate().map_err(generate)?;
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(generate)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!(
            "Thingsafe self-signed ({})",
            names.last().expect("two or more")
        ),
    );
    let now = OffsetDateTime::now_utc();
    // An hour back: clocks of devices that just booted are often a little behind.
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(VALID_DAYS);
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let certificate = params.self_signed(&key_pair).map_err(generate)?;

    // Key first, each through a temporary file: a crash leaves either the old pair, or a
    // key without its certificate, which the next start replaces.
    let key_tmp = dir.join(format!("{KEY_FILE}.new"));
    let _ = std::fs::remove_file(&key_tmp);
    thingsafe_vault::create_private_file(&key_tmp).map_err(write_error(&key_tmp))?;
    std::fs::write(&key_tmp, key_pair.serialize_pem()).map_err(write_error(&key_tmp))?;
    std::fs::rename(&key_tmp, key).map_err(write_error(key))?;
    let cert_tmp = dir.join(format!("{CERT_FILE}.new"));
    std::fs::write(&cert_tmp, certificate.pem()).map_err(write_error(&cert_tmp))?;
    std::fs::rename(&cert_tmp, cert).map_err(write_error(cert))?;
    Ok(())
}

/// Whether `name` can stand in a certificate: an IP address or a DNS name (letters,
/// digits, `-`, dot-separated; a leading `*.` for a wildcard).
pub fn check_hostname(name: &str) -> Result<(), String> {
    if name.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let bad = || {
        format!(
            "{name:?} is not a host name or IP address (letters, digits, '-' and '.'; a leading '*.' for a wildcard)"
        )
    };
    let rest = name.strip_prefix("*.").unwrap_or(name);
    if rest.is_empty() || name.len() > 253 {
        return Err(bad());
    }
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if rest.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_checked() {
        for good in [
            "iot.example.com",
            "localhost",
            "*.example.com",
            "10.0.0.7",
            "::1",
        ] {
            assert_eq!(check_hostname(good), Ok(()), "{good}");
        }
        for bad in ["", "*.", "exa mple.com", "-a.com", "a..b", "ünï.com", "a/b"] {
            let e = check_hostname(bad).unwrap_err();
            assert!(e.contains("not a host name"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_configured_names_come_after_the_local_ones_once_each() {
        let given = ["IOT.example.com".to_string(), "127.0.0.1".to_string()];
        assert_eq!(names(&given), ["localhost", "127.0.0.1", "iot.example.com"]);
    }
}
