use std::path::{Path, PathBuf};

use super::*;

/// A self-signed pair for `name`, as the operator would bring it.
fn pair(name: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

fn write_pair(dir: &Path, (cert, key): &(String, String)) -> (PathBuf, PathBuf) {
    let (c, k) = (dir.join("server.crt"), dir.join("server.key"));
    std::fs::write(&c, cert).unwrap();
    std::fs::write(&k, key).unwrap();
    (c, k)
}

fn files(cert: &Path, key: &Path) -> CertificateSource {
    CertificateSource::Files {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
    }
}

fn generated(dir: &Path, hostnames: &[&str]) -> CertificateSource {
    CertificateSource::Generated {
        dir: dir.to_path_buf(),
        hostnames: hostnames.iter().map(|h| h.to_string()).collect(),
    }
}

#[test]
fn the_generated_certificate_is_reused_until_the_host_names_change() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    let first = Certificates::open(&generated(&tls, &["iot.example.com"])).unwrap();
    assert!(first.is_generated());
    assert_eq!(first.cert_path(), tls.join("cert.pem"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(first.key_path()), 0o600);
        assert_eq!(mode(&tls), 0o700);
    }
    let fingerprint = first.summary().fingerprint;
    assert_eq!(fingerprint.len(), 32 * 3 - 1, "{fingerprint}");
    assert!(first.summary().not_after.is_some());

    let again = Certificates::open(&generated(&tls, &["IOT.example.com"])).unwrap();
    assert_eq!(again.summary().fingerprint, fingerprint, "reused");
    let renamed = Certificates::open(&generated(&tls, &["other.example.com"])).unwrap();
    assert_ne!(renamed.summary().fingerprint, fingerprint, "replaced");
    assert!(
        std::fs::read_dir(&tls).unwrap().count() == 2,
        "no temporary file left behind"
    );
}

#[test]
fn bad_files_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = write_pair(dir.path(), &pair("a.example.com"));
    let missing = dir.path().join("nope.pem");
    let e = Certificates::open(&files(&missing, &key)).unwrap_err();
    assert!(e.to_string().contains("nope.pem"), "{e}");

    let e = Certificates::open(&files(&key, &cert))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("server.key") && e.contains("no PEM certificate") && e.contains("swapped"),
        "{e}"
    );

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let e = Certificates::open(&files(&garbage, &key))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("garbage.pem") && e.contains("not valid X.509"),
        "{e}"
    );

    let (_, other_key) = pair("b.example.com");
    std::fs::write(&key, other_key).unwrap();
    let e = Certificates::open(&files(&cert, &key))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("does not belong") && e.contains("server.crt") && e.contains("server.key"),
        "{e}"
    );
}

#[test]
fn a_reload_puts_new_files_in_force_and_keeps_the_old_pair_when_the_new_one_is_bad() {
    let dir = tempfile::tempdir().unwrap();
    let first = pair("a.example.com");
    let (cert, key) = write_pair(dir.path(), &first);
    let certs = Certificates::open(&files(&cert, &key)).unwrap();
    let before = certs.summary();
    assert_eq!(certs.reload_if_changed().map(|r| r.unwrap()), None);
    assert_eq!(certs.reload().unwrap(), Reload::Unchanged);

    // A half-written pair (new certificate, old key) is refused, once.
    let second = pair("b.example.com");
    std::fs::write(&cert, &second.0).unwrap();
    assert!(matches!(
        certs.reload_if_changed(),
        Some(Err(TlsError::Mismatch { .. }))
    ));
    assert!(certs.reload_if_changed().is_none(), "reported once");
    assert_eq!(certs.summary(), before, "the old pair stays in force");

    std::fs::write(&key, &second.1).unwrap();
    let Some(Ok(Reload::Replaced(after))) = certs.reload_if_changed() else {
        panic!("the new pair is put in force");
    };
    assert_ne!(after, before);
    assert_eq!(certs.summary(), after);
}
