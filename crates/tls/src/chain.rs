//! Device certificate chains and a device profile's provisioning CA (ThingsBoard's
//! `X509_CERTIFICATE_CHAIN`): the device presents its certificate and the certificates
//! above it, one of which the profile registered; the chain must lead from the device's
//! certificate to that CA by valid signatures.
//!
//! The registered CA is trusted as it is, like any trust anchor (it may be an X.509 v1
//! certificate: `openssl x509 -req`, as ThingsBoard's guide uses it, makes those). Between
//! the device's certificate and the CA, every certificate must be a CA certificate
//! (basic constraints `cA`), or any device could sign a certificate for another name.

use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::{OID_PKCS1_SHA1WITHRSA, OID_SHA1_WITH_RSA};
use x509_parser::prelude::FromDer;

/// The longest chain looked at, the device's certificate and the CA included.
const MAX_DEPTH: usize = 8;

/// A chain that leads to the CA: what the device's certificate says of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedDevice {
    /// The first Common Name of the device certificate's subject.
    pub common_name: String,
}

/// Checks a device's presented chain (its own certificate first, in DER) against `ca`
/// (DER) at `now` (seconds since the epoch). The error says why, for the log.
pub fn verify_device_chain<C: AsRef<[u8]>>(
    chain: &[C],
    ca: &[u8],
    now: i64,
) -> Result<VerifiedDevice, String> {
    let ca = parse(ca)?;
    let (leaf, above) = chain
        .split_first()
        .ok_or("the client presented no certificate")?;
    let leaf = parse(leaf.as_ref())?;
    let above = above
        .iter()
        .map(|der| parse(der.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;

    in_date(&leaf, "the device's certificate", now)?;
    in_date(&ca, "the profile's CA certificate", now)?;
    if let Ok(Some(usage)) = leaf.extended_key_usage()
        && !(usage.value.client_auth || usage.value.any)
    {
        return Err(
            "the device's certificate is not for client authentication (extended key usage)".into(),
        );
    }
    if let Ok(Some(basic)) = leaf.basic_constraints()
        && basic.value.ca
    {
        return Err("the device's certificate is a CA certificate".into());
    }

    let mut current = &leaf;
    let mut intermediates = 0usize;
    let mut used = vec![false; above.len()];
    loop {
        if signed_by(current, &ca) {
            break;
        }
        if intermediates + 2 >= MAX_DEPTH {
            return Err(format!(
                "no path of at most {MAX_DEPTH} certificates leads to the profile's CA"
            ));
        }
        let found = above
            .iter()
            .enumerate()
            .find(|(i, c)| !used[*i] && signed_by(current, c));
        let Some((at, issuer)) = found else {
            return Err(
                "a certificate of the chain is signed neither by the profile's CA nor by another certificate of the chain"
                    .into(),
            );
        };
        used[at] = true;
        in_date(issuer, "an intermediate certificate", now)?;
        match issuer.basic_constraints() {
            Ok(Some(basic)) if basic.value.ca => {
                if let Some(limit) = basic.value.path_len_constraint
                    && intermediates > limit as usize
                {
                    return Err(
                        "an intermediate certificate's path length limit is exceeded".into(),
                    );
                }
            }
            _ => {
                return Err(
                    "an intermediate certificate is not a CA certificate (basic constraints)"
                        .into(),
                );
            }
        }
        if let Ok(Some(usage)) = issuer.key_usage()
            && !usage.value.key_cert_sign()
        {
            return Err("an intermediate certificate may not sign certificates (key usage)".into());
        }
        current = issuer;
        intermediates += 1;
    }
    let common_name = common_name(&leaf)
        .ok_or("the device's certificate has no Common Name to take its name from")?
        .to_string();
    Ok(VerifiedDevice { common_name })
}

/// A certificate a device profile can register as its provisioning CA: readable and in
/// date now. The error says what is wrong.
pub fn check_provisioning_ca(der: &[u8], now: i64) -> Result<(), String> {
    let (_, ca) = X509Certificate::from_der(der)
        .map_err(|e| format!("the CA certificate cannot be read: {e}"))?;
    in_date(&ca, "the CA certificate", now)
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    X509Certificate::from_der(der)
        .map(|(_, c)| c)
        .map_err(|e| format!("a certificate of the chain cannot be read: {e}"))
}

fn in_date(cert: &X509Certificate, what: &str, now: i64) -> Result<(), String> {
    let validity = cert.validity();
    if now < validity.not_before.timestamp() {
        return Err(format!(
            "{what} is not valid before {}",
            validity.not_before
        ));
    }
    if now > validity.not_after.timestamp() {
        return Err(format!("{what} expired on {}", validity.not_after));
    }
    Ok(())
}

/// `cert` names `issuer` as its issuer and carries its valid signature (SHA-1 refused).
fn signed_by(cert: &X509Certificate, issuer: &X509Certificate) -> bool {
    let algorithm = &cert.signature_algorithm.algorithm;
    if *algorithm == OID_PKCS1_SHA1WITHRSA || *algorithm == OID_SHA1_WITH_RSA {
        return false;
    }
    cert.issuer().as_raw() == issuer.subject().as_raw()
        && cert.verify_signature(Some(issuer.public_key())).is_ok()
}

fn common_name<'a>(cert: &'a X509Certificate) -> Option<&'a str> {
    cert.subject().iter_common_name().next()?.as_str().ok()
}

#[cfg(test)]
mod tests {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };

    use super::*;

    const NOW: i64 = 1_800_000_000;

    struct Made {
        params: CertificateParams,
        key: KeyPair,
        der: Vec<u8>,
    }

    fn params(cn: &str, ca: Option<BasicConstraints>) -> CertificateParams {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.not_before = time::OffsetDateTime::from_unix_timestamp(NOW - 86_400).unwrap();
        p.not_after = time::OffsetDateTime::from_unix_timestamp(NOW + 86_400).unwrap();
        if let Some(c) = ca {
            p.is_ca = IsCa::Ca(c);
        }
        p
    }

    fn root(cn: &str) -> Made {
        let params = params(cn, Some(BasicConstraints::Unconstrained));
        let key = KeyPair::generate().unwrap();
        let der = params.self_signed(&key).unwrap().der().to_vec();
        Made { params, key, der }
    }

    fn signed(params: CertificateParams, by: &Made) -> Made {
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&by.params, &by.key);
        let der = params.signed_by(&key, &issuer).unwrap().der().to_vec();
        Made { params, key, der }
    }

    #[test]
    fn a_device_certificate_signed_by_the_ca_names_its_device() {
        let ca = root("meters.example.com");
        let leaf = signed(params("m-1.meters.example.com", None), &ca);
        let ok = verify_device_chain(&[&leaf.der, &ca.der], &ca.der, NOW).unwrap();
        assert_eq!(ok.common_name, "m-1.meters.example.com");
        // The CA need not be sent again: it is the profile's.
        verify_device_chain(&[&leaf.der], &ca.der, NOW).unwrap();
    }

    #[test]
    fn intermediates_must_be_ca_certificates_signed_up_to_the_registered_ca() {
        let top = root("example.com");
        let group = signed(
            params("group.example.com", Some(BasicConstraints::Unconstrained)),
            &top,
        );
        let leaf = signed(params("d-1.group.example.com", None), &group);
        verify_device_chain(&[&leaf.der, &group.der, &top.der], &top.der, NOW).unwrap();
        // The intermediate is not sent: no path.
        let e = verify_device_chain(&[&leaf.der, &top.der], &top.der, NOW).unwrap_err();
        assert!(e.contains("signed neither by the profile's CA"), "{e}");

        // A device's own certificate used to sign another one is no CA.
        let device = signed(params("d-2.group.example.com", None), &group);
        let forged = signed(params("d-3.group.example.com", None), &device);
        let e = verify_device_chain(&[&forged.der, &device.der, &group.der], &group.der, NOW)
            .unwrap_err();
        assert!(e.contains("not a CA certificate"), "{e}");

        // A path length of 0 allows no intermediate below it.
        let strict = root("strict.example.com");
        let mid = signed(
            params(
                "mid.strict.example.com",
                Some(BasicConstraints::Constrained(0)),
            ),
            &strict,
        );
        let below = signed(
            params(
                "below.strict.example.com",
                Some(BasicConstraints::Unconstrained),
            ),
            &mid,
        );
        let leaf = signed(params("d.strict.example.com", None), &below);
        let e =
            verify_device_chain(&[&leaf.der, &below.der, &mid.der], &strict.der, NOW).unwrap_err();
        assert!(e.contains("path length"), "{e}");
        let leaf = signed(params("d.strict.example.com", None), &mid);
        verify_device_chain(&[&leaf.der, &mid.der], &strict.der, NOW).unwrap();
    }

    #[test]
    fn a_lookalike_ca_with_the_same_name_is_not_the_registered_one() {
        let ca = root("meters.example.com");
        let impostor = root("meters.example.com");
        let leaf = signed(params("m-1.meters.example.com", None), &impostor);
        let e = verify_device_chain(&[&leaf.der, &impostor.der], &ca.der, NOW).unwrap_err();
        assert!(e.contains("signed neither"), "{e}");
    }

    #[test]
    fn dates_usages_and_names_are_checked() {
        let ca = root("meters.example.com");
        let mut p = params("old.meters.example.com", None);
        p.not_after = time::OffsetDateTime::from_unix_timestamp(NOW - 10).unwrap();
        let old = signed(p, &ca);
        let e = verify_device_chain(&[&old.der], &ca.der, NOW).unwrap_err();
        assert!(e.contains("device's certificate expired"), "{e}");

        let mut p = params("later.meters.example.com", None);
        p.not_before = time::OffsetDateTime::from_unix_timestamp(NOW + 10).unwrap();
        let later = signed(p, &ca);
        let e = verify_device_chain(&[&later.der], &ca.der, NOW).unwrap_err();
        assert!(e.contains("not valid before"), "{e}");

        let mut p = params("web.meters.example.com", None);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_only = signed(p, &ca);
        let e = verify_device_chain(&[&server_only.der], &ca.der, NOW).unwrap_err();
        assert!(e.contains("client authentication"), "{e}");
        let mut p = params("ok.meters.example.com", None);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        verify_device_chain(&[&signed(p, &ca).der], &ca.der, NOW).unwrap();

        let sub_ca = signed(
            params(
                "sub.meters.example.com",
                Some(BasicConstraints::Unconstrained),
            ),
            &ca,
        );
        let e = verify_device_chain(&[&sub_ca.der], &ca.der, NOW).unwrap_err();
        assert!(e.contains("is a CA certificate"), "{e}");

        let mut p = CertificateParams::new(vec!["nameless.example.com".to_string()]).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.not_before = time::OffsetDateTime::from_unix_timestamp(NOW - 10).unwrap();
        let nameless = signed(p, &ca);
        let e = verify_device_chain(&[&nameless.der], &ca.der, NOW).unwrap_err();
        assert!(e.contains("no Common Name"), "{e}");

        let mut p = params("meters.example.com", Some(BasicConstraints::Unconstrained));
        p.not_after = time::OffsetDateTime::from_unix_timestamp(NOW - 1).unwrap();
        let key = KeyPair::generate().unwrap();
        let expired_ca = Made {
            der: p.self_signed(&key).unwrap().der().to_vec(),
            params: p,
            key,
        };
        let leaf = signed(params("m.meters.example.com", None), &expired_ca);
        let e = verify_device_chain(&[&leaf.der], &expired_ca.der, NOW).unwrap_err();
        assert!(e.contains("CA certificate expired"), "{e}");
        assert!(
            check_provisioning_ca(&expired_ca.der, NOW)
                .unwrap_err()
                .contains("expired")
        );
        check_provisioning_ca(&ca.der, NOW).unwrap();
    }

    /// Made with openssl (RSA, valid for 100 years): one CA, and the same request signed by
    /// it with SHA-256 and with SHA-1.
    #[test]
    fn a_sha1_signature_is_refused() {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let der = |pem: &str| {
            CertificateDer::from_pem_slice(pem.as_bytes())
                .unwrap()
                .to_vec()
        };
        let ca = der(include_str!("../testdata/chain-ca.pem"));
        let sha256 = der(include_str!("../testdata/chain-leaf-sha256.pem"));
        let sha1 = der(include_str!("../testdata/chain-leaf-sha1.pem"));
        let now = 1_800_000_000;
        assert_eq!(
            verify_device_chain(&[&sha256], &ca, now)
                .unwrap()
                .common_name,
            "old-1.example"
        );
        let e = verify_device_chain(&[&sha1], &ca, now).unwrap_err();
        assert!(e.contains("signed neither"), "{e}");
    }

    #[test]
    fn unreadable_or_missing_certificates_are_refused() {
        let ca = root("meters.example.com");
        let none: [&[u8]; 0] = [];
        assert!(
            verify_device_chain(&none, &ca.der, NOW)
                .unwrap_err()
                .contains("no certificate")
        );
        let e = verify_device_chain(&[b"not DER".as_slice()], &ca.der, NOW).unwrap_err();
        assert!(e.contains("cannot be read"), "{e}");
        let leaf = signed(params("m.meters.example.com", None), &ca);
        let mut flipped = leaf.der.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 0x01;
        assert!(verify_device_chain(&[&flipped], &ca.der, NOW).is_err());
        assert!(
            check_provisioning_ca(b"junk", NOW)
                .unwrap_err()
                .contains("cannot be read")
        );
    }
}
