//! TLS on every listener: MQTT over TLS and HTTPS with the generated or the operator's
//! certificate, driven by real clients (mosquitto_pub, rumqttc with rustls, reqwest, curl,
//! openssl s_client, a bare rustls client); `tls.required`; reloading without dropping
//! connections.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::mqtt::v3;
use common::tls::{self, handshake};
use common::{Server, tool_available};
use reqwest::StatusCode;
use rustls::{CertificateError, Error as TlsError, ProtocolVersion};
use serde_json::json;

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn cert_of(s: &Server) -> PathBuf {
    s.tls_cert
        .clone()
        .expect("the server printed its certificate")
}

fn mqtts(s: &Server) -> SocketAddr {
    s.mqtts_addr.expect("MQTT over TLS is on")
}

fn https(s: &Server) -> SocketAddr {
    let base = s.https_base.as_ref().expect("HTTPS is on");
    base.trim_start_matches("https://").parse().unwrap()
}

/// A device on a server whose REST calls go over HTTPS; returns (user token, device id).
async fn tenant_with_device(s: &Server, email: &str, token: &str) -> (String, String) {
    let user = s.sign_up(email).await;
    let id = s.device_with_token(&user, "Thermostat", token).await;
    (user, id)
}

#[tokio::test]
async fn mosquitto_pub_publishes_over_tls_trusting_the_generated_certificate() {
    if !tool_available("mosquitto_pub", "apt-get install mosquitto-clients") {
        return;
    }
    let s = Server::start().over_https();
    let cert = cert_of(&s);
    assert_eq!(cert, s.data_dir.join("tls/cert.pem"));
    // The printed fingerprint is the certificate's, as openssl computes it too.
    let printed = s.tls_fingerprint.clone().unwrap();
    assert_eq!(printed, tls::file_fingerprint(&cert));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(s.data_dir.join("tls/key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the generated key is the server's alone"
        );
    }
    let (user, id) = tenant_with_device(&s, "mosquitto-tls@example.com", "MOSQTLS").await;

    let port = mqtts(&s).port().to_string();
    let cafile = cert.to_str().unwrap();
    let out = run(
        "mosquitto_pub",
        &[
            "-h",
            "localhost",
            "-p",
            &port,
            "--cafile",
            cafile,
            "-u",
            "MOSQTLS",
            "-q",
            "1",
            "-t",
            "v1/devices/me/telemetry",
            "-m",
            r#"{"temperature":21.5}"#,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let values = s.timeseries(&user, &id, "keys=temperature").await;
    assert_eq!(values["temperature"][0]["value"], json!("21.5"), "{values}");

    // Without the certificate trusted, mosquitto_pub refuses the server (system CAs only).
    let out = run(
        "mosquitto_pub",
        &[
            "-h",
            "localhost",
            "-p",
            &port,
            "--capath",
            "/etc/ssl/certs",
            "-u",
            "MOSQTLS",
            "-q",
            "1",
            "-t",
            "v1/devices/me/telemetry",
            "-m",
            r#"{"temperature":99}"#,
        ],
    );
    assert!(!out.status.success(), "{}", text(&out));
    let values = s
        .timeseries(&user, &id, "keys=temperature&startTs=0&endTs=9999999999999")
        .await;
    assert_eq!(
        values["temperature"].as_array().unwrap().len(),
        1,
        "{values}"
    );
}

#[tokio::test]
async fn rumqttc_over_rustls_publishes_and_reqwest_reads_it_back_over_https() {
    let s = Server::start().over_https();
    assert!(s.base.starts_with("https://127.0.0.1:"), "{}", s.base);
    let (user, id) = tenant_with_device(&s, "rumqttc-tls@example.com", "RUMQTLS").await;

    let mut device = v3::connected_tls(&s, "thermostat", "RUMQTLS", &cert_of(&s)).await;
    device
        .publish("v1/devices/me/telemetry", r#"{"humidity":40}"#)
        .await;
    device
        .publish("v1/devices/me/attributes", r#"{"firmware":"1.2.3"}"#)
        .await;
    // Read back over HTTPS by reqwest (the server's client trusts only its certificate).
    let values = s.timeseries(&user, &id, "keys=humidity").await;
    assert_eq!(values["humidity"][0]["value"], json!("40"), "{values}");
    let attributes = s.attributes(&user, &id, "CLIENT_SCOPE").await;
    assert_eq!(attributes["firmware"], json!("1.2.3"));
}

#[tokio::test]
async fn curl_reads_the_api_over_https_with_cacert_and_refuses_without_it() {
    if !tool_available("curl", "apt-get install curl") {
        return;
    }
    let s = Server::start().over_https();
    let (user, id) = tenant_with_device(&s, "curl-tls@example.com", "CURLTLS").await;
    let cert = cert_of(&s);
    let base = s.https_base.clone().unwrap();
    // The device HTTP API over HTTPS.
    let out = run(
        "curl",
        &[
            "-sS",
            "--fail",
            "--cacert",
            cert.to_str().unwrap(),
            "-X",
            "POST",
            &format!("{base}/api/v1/CURLTLS/telemetry"),
            "-d",
            r#"{"pressure":1013}"#,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = run(
        "curl",
        &[
            "-sS",
            "--fail",
            "--cacert",
            cert.to_str().unwrap(),
            "-H",
            &format!("X-Authorization: Bearer {user}"),
            &format!("{base}/api/plugins/telemetry/DEVICE/{id}/values/timeseries?keys=pressure"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["pressure"][0]["value"], json!("1013"), "{body}");

    // Without --cacert, curl does not trust the self-signed certificate (exit 60).
    let out = run("curl", &["-sS", &format!("{base}/healthz")]);
    assert_eq!(out.status.code(), Some(60), "{}", text(&out));
}

#[tokio::test]
async fn openssl_s_client_negotiates_tls_1_3_and_1_2_and_is_refused_below() {
    if !tool_available("openssl", "apt-get install openssl") {
        return;
    }
    let s = Server::start();
    let cert = cert_of(&s);
    for addr in [mqtts(&s), https(&s)] {
        let connect = addr.to_string();
        let s_client = |extra: &[&str]| {
            let mut args = vec![
                "s_client",
                "-connect",
                &connect,
                "-servername",
                "localhost",
                "-CAfile",
                cert.to_str().unwrap(),
                "-verify_return_error",
            ];
            args.extend_from_slice(extra);
            Command::new("openssl")
                .args(&args)
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap()
        };
        let out = s_client(&[]);
        let said = text(&out);
        assert!(said.contains("New, TLSv1.3"), "{said}");
        assert!(said.contains("Verify return code: 0 (ok)"), "{said}");
        let out = s_client(&["-tls1_2"]);
        let said = text(&out);
        assert!(said.contains("Protocol  : TLSv1.2"), "{said}");
        assert!(said.contains("ECDHE"), "forward secrecy: {said}");
        // The client allows TLS 1.1 and even weak ciphers; the server refuses (alert 70:
        // protocol version, or 40: handshake failure).
        for old in ["-tls1_1", "-tls1"] {
            let out = s_client(&[old, "-cipher", "DEFAULT:@SECLEVEL=0"]);
            let said = text(&out);
            assert!(!out.status.success(), "{old}: {said}");
            assert!(
                said.contains("New, (NONE), Cipher is (NONE)"),
                "{old}: {said}"
            );
            assert!(said.contains("alert"), "{old}: {said}");
        }
    }
}

#[tokio::test]
async fn clients_refuse_an_untrusted_a_wrong_host_or_an_expired_certificate() {
    let s = Server::start_with(&[("THINGSAFE_TLS_HOSTNAMES", "iot.example.test")]);
    let cert = cert_of(&s);
    for addr in [mqtts(&s), https(&s)] {
        // Trusted, for each name the certificate carries.
        for name in ["localhost", "127.0.0.1", "iot.example.test"] {
            let ok = handshake(addr, name, &[&cert]).await.expect(name);
            assert_eq!(ok.version, ProtocolVersion::TLSv1_3);
            assert_eq!(Some(ok.fingerprint), s.tls_fingerprint);
        }
        // A client that trusts another certificate.
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("other.pem");
        std::fs::write(&other, tls::local_pair().0).unwrap();
        let refused = handshake(addr, "localhost", &[&other]).await.err();
        assert!(
            matches!(
                refused,
                Some(TlsError::InvalidCertificate(
                    CertificateError::UnknownIssuer
                ))
            ),
            "{refused:?}"
        );
        // A name the certificate does not carry.
        let refused = handshake(addr, "wrong.example.test", &[&cert]).await.err();
        assert!(
            matches!(
                refused,
                Some(TlsError::InvalidCertificate(
                    CertificateError::NotValidForName
                        | CertificateError::NotValidForNameContext { .. }
                ))
            ),
            "{refused:?}"
        );
    }
    // reqwest with the system's trust store only.
    let untrusting = reqwest::Client::new();
    let e = untrusting
        .get(format!("{}/healthz", s.https_base.as_ref().unwrap()))
        .send()
        .await
        .unwrap_err();
    assert!(e.is_connect(), "{e:?}");

    // An expired certificate of the operator's is served (with a warning), and refused.
    let dir = tempfile::tempdir().unwrap();
    let now = time::OffsetDateTime::now_utc();
    let (pem, key) = tls::self_signed(
        &["localhost"],
        now - time::Duration::days(60),
        now - time::Duration::days(1),
    );
    let (cert, key_path) = (dir.path().join("old.crt"), dir.path().join("old.key"));
    std::fs::write(&cert, pem).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let s = Server::start_with(&[
        ("THINGSAFE_TLS_CERT", cert.to_str().unwrap()),
        ("THINGSAFE_TLS_KEY", key_path.to_str().unwrap()),
    ]);
    let warned = s
        .startup_output
        .iter()
        .any(|l| l.contains("expired on") && l.contains("old.crt"));
    assert!(warned, "a warning about the expired certificate");
    let refused = handshake(mqtts(&s), "localhost", &[&cert]).await.err();
    assert!(
        matches!(
            refused,
            Some(TlsError::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. }
            ))
        ),
        "{refused:?}"
    );
}

#[tokio::test]
async fn tls_required_closes_plain_mqtt_and_redirects_plain_http_to_https() {
    // A port that was free a moment ago, for the plain MQTT listener that must not open.
    let plain_mqtt = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let s = Server::start_with(&[
        ("THINGSAFE_TLS_REQUIRED", "true"),
        ("THINGSAFE_MQTT_ADDR", &plain_mqtt.to_string()),
    ]);
    assert!(
        s.mqtt_addr.ip().is_unspecified(),
        "no plain MQTT listener announced"
    );
    let refused = tokio::net::TcpStream::connect(plain_mqtt)
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);

    // Plain HTTP answers every request, whatever the method, with a 308 to HTTPS.
    let https_port = https(&s).port();
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let plain = s.base.clone();
    assert!(plain.starts_with("http://"), "{plain}");
    for (method, path) in [
        (
            reqwest::Method::GET,
            "/api/tenant/devices?pageSize=10&page=0",
        ),
        (reqwest::Method::POST, "/api/v1/SOMETOKEN/telemetry"),
        (reqwest::Method::GET, "/healthz"),
    ] {
        let response = no_redirects
            .request(method.clone(), format!("{plain}{path}"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::PERMANENT_REDIRECT,
            "{method} {path}"
        );
        assert_eq!(
            response.headers()["location"],
            format!("https://127.0.0.1:{https_port}{path}").as_str()
        );
    }

    // Everything works over TLS; a client that follows the redirect gets there too, with
    // its POST body.
    let s = s.over_https();
    let (user, id) = tenant_with_device(&s, "required@example.com", "REQTLS").await;
    let response = s
        .http
        .post(format!("{plain}/api/v1/REQTLS/telemetry"))
        .body(r#"{"speed":7}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.url().as_str().starts_with("https://"),
        "{}",
        response.url()
    );
    let mut device = v3::connected_tls(&s, "car", "REQTLS", &cert_of(&s)).await;
    device
        .publish("v1/devices/me/telemetry", r#"{"speed":8}"#)
        .await;
    let values = s
        .timeseries(
            &user,
            &id,
            "keys=speed&startTs=0&endTs=9999999999999&orderBy=ASC",
        )
        .await;
    let speeds: Vec<_> = values["speed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].clone())
        .collect();
    assert_eq!(speeds, [json!("7"), json!("8")], "{values}");
    // Links handed out name the HTTPS address.
    let (status, created) = s
        .post(
            "/api/user",
            &user,
            json!({"email": "colleague@example.com", "authority": "TENANT_ADMIN"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let path = format!(
        "/api/user/{}/activationLink",
        created["id"]["id"].as_str().unwrap()
    );
    let (status, link) = s.get(&path, &user).await;
    assert_eq!(status, StatusCode::OK, "{link}");
    let link = link.as_str().unwrap();
    assert!(
        link.starts_with(&format!("https://127.0.0.1:{https_port}/")),
        "{link}"
    );
}

/// Writes the pair to `cert` and `key` (what an operator's renewal does).
fn install(pair: &(String, String), cert: &Path, key: &Path) {
    std::fs::write(cert, &pair.0).unwrap();
    std::fs::write(key, &pair.1).unwrap();
}

fn sighup(s: &Server) {
    let status = Command::new("kill")
        .args(["-HUP", &s.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn sighup_serves_the_new_certificate_to_new_connections_and_keeps_the_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    let (first, second) = (tls::local_pair(), tls::local_pair());
    install(&first, &cert, &key);
    let first_ca = dir.path().join("first.pem");
    std::fs::write(&first_ca, &first.0).unwrap();
    let s = Server::start_with(&[
        ("THINGSAFE_TLS_CERT", cert.to_str().unwrap()),
        ("THINGSAFE_TLS_KEY", key.to_str().unwrap()),
        // Only the signal reloads here.
        ("THINGSAFE_TLS_RELOAD_CHECK_SECS", "0"),
    ])
    .over_https();
    assert_eq!(cert_of(&s), cert);
    let first_fingerprint = tls::file_fingerprint(&first_ca);
    assert_eq!(
        s.tls_fingerprint.as_deref(),
        Some(first_fingerprint.as_str())
    );
    let (user, id) = tenant_with_device(&s, "reload@example.com", "RELOADTLS").await;
    let mut old = v3::connected_tls(&s, "old", "RELOADTLS", &first_ca).await;
    old.publish("v1/devices/me/telemetry", r#"{"n":1}"#).await;

    install(&second, &cert, &key);
    sighup(&s);
    let line = s.wait_for_line("reloaded the TLS certificate");
    let second_fingerprint = tls::file_fingerprint(&cert);
    assert!(line.contains(&second_fingerprint), "{line}");

    // New connections get the new certificate: a client trusting only the old one is
    // refused, one trusting the new one is served.
    for addr in [mqtts(&s), https(&s)] {
        let refused = handshake(addr, "localhost", &[&first_ca]).await.err();
        assert!(
            matches!(
                refused,
                Some(TlsError::InvalidCertificate(
                    CertificateError::UnknownIssuer
                ))
            ),
            "{refused:?}"
        );
        let served = handshake(addr, "localhost", &[&cert]).await.unwrap();
        assert_eq!(served.fingerprint, second_fingerprint);
    }
    // The connection made before the reload still works, acknowledged and stored.
    old.publish("v1/devices/me/telemetry", r#"{"n":2}"#).await;

    // A bad file on reload: logged naming it, the certificate in use stays.
    std::fs::write(&cert, "not a certificate").unwrap();
    sighup(&s);
    let line = s.wait_for_line("cannot reload the TLS certificate");
    assert!(
        line.contains("server.crt") && line.contains("keeping the one in use"),
        "{line}"
    );
    let ca = dir.path().join("second.pem");
    std::fs::write(&ca, &second.0).unwrap();
    let served = handshake(mqtts(&s), "localhost", &[&ca]).await.unwrap();
    assert_eq!(served.fingerprint, second_fingerprint);
    old.publish("v1/devices/me/telemetry", r#"{"n":3}"#).await;

    let values = s
        .timeseries(&user, &id, "keys=n&startTs=0&endTs=9999999999999")
        .await;
    assert_eq!(values["n"].as_array().unwrap().len(), 3, "{values}");
    let status = s.stop();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn a_changed_certificate_file_is_put_in_force_without_a_signal() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    install(&tls::local_pair(), &cert, &key);
    let s = Server::start_with(&[
        ("THINGSAFE_TLS_CERT", cert.to_str().unwrap()),
        ("THINGSAFE_TLS_KEY", key.to_str().unwrap()),
        ("THINGSAFE_TLS_RELOAD_CHECK_SECS", "1"),
    ]);
    install(&tls::local_pair(), &cert, &key);
    let line = s.wait_for_line("reloaded the TLS certificate");
    let fingerprint = tls::file_fingerprint(&cert);
    assert!(line.contains(&fingerprint), "{line}");
    let served = handshake(https(&s), "localhost", &[&cert]).await.unwrap();
    assert_eq!(served.fingerprint, fingerprint);
}

#[test]
fn a_bad_certificate_or_key_stops_start_up_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    install(&tls::local_pair(), &cert, &key);
    let other_key = dir.path().join("other.key");
    std::fs::write(&other_key, tls::local_pair().1).unwrap();
    let garbage = dir.path().join("garbage.crt");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
    let cases: [(&Path, &Path, &[&str]); 4] = [
        (&garbage, &key, &["garbage.crt", "tls.cert"]),
        (
            &cert,
            &other_key,
            &["does not belong", "server.crt", "other.key"],
        ),
        (
            &key,
            &cert,
            &["server.key", "no PEM certificate", "swapped"],
        ),
        (
            &dir.path().join("missing.crt"),
            &key,
            &["missing.crt", "cannot read"],
        ),
    ];
    for (cert, key, needles) in cases {
        let data = dir.path().join("data");
        let out = Command::new(common::binary())
            .args(["serve", "--data-dir"])
            .arg(&data)
            .env("THINGSAFE_HTTP_ADDR", "127.0.0.1:0")
            .env("THINGSAFE_MQTT_ADDR", "127.0.0.1:0")
            .env("THINGSAFE_HTTP_TLS_ADDR", "127.0.0.1:0")
            .env("THINGSAFE_MQTT_TLS_ADDR", "127.0.0.1:0")
            .env("THINGSAFE_TLS_CERT", cert)
            .env("THINGSAFE_TLS_KEY", key)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let said = text(&out);
        assert!(!said.contains("listening on"), "{said}");
        for needle in needles {
            assert!(said.contains(needle), "{needle:?} not in {said}");
        }
    }
}

#[tokio::test]
async fn the_generated_certificate_is_kept_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::start_in(&data, &[]);
    let fingerprint = s.tls_fingerprint.clone().unwrap();
    assert!(s.stop().success());
    let s = Server::start_in(&data, &[]);
    assert_eq!(s.tls_fingerprint, Some(fingerprint.clone()));
    assert!(s.stop().success());
    // A new host name needs a certificate that names it.
    let s = Server::start_in(&data, &[("THINGSAFE_TLS_HOSTNAMES", "iot.example.test")]);
    assert_ne!(s.tls_fingerprint, Some(fingerprint));
    handshake(mqtts(&s), "iot.example.test", &[&cert_of(&s)])
        .await
        .expect("the new certificate names the host");
}

#[tokio::test]
async fn tls_can_be_turned_off() {
    let s = Server::start_with(&[("THINGSAFE_TLS_ENABLED", "false")]);
    assert!(s.mqtts_addr.is_none() && s.https_base.is_none() && s.tls_cert.is_none());
    assert!(!s.data_dir.join("tls").exists());
    let user = s.sign_up("plain@example.com").await;
    s.device_with_token(&user, "Plain", "PLAINTOKEN").await;
    v3::connected(&s, "plain", "PLAINTOKEN").await;
}

/// ThingsBoard's `X509_CERTIFICATE` credentials: the device's own certificate, registered by
/// its owner, authenticates it on MQTT over TLS with no access token.
#[tokio::test]
async fn a_device_authenticates_with_its_registered_x509_certificate() {
    let s = Server::start().over_https();
    let server_ca = cert_of(&s);
    let user = s.sign_up("x509@example.com").await;
    let id = s.device_with_token(&user, "Meter", "X509TOKEN").await;
    // The device's certificate and key, as its firmware holds them.
    let now = time::OffsetDateTime::now_utc();
    let day = time::Duration::days(1);
    let (device_cert, device_key) = tls::self_signed(&["meter-1"], now - day, now + 30 * day);
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = (dir.path().join("meter.crt"), dir.path().join("meter.key"));
    std::fs::write(&cert_file, &device_cert).unwrap();
    std::fs::write(&key_file, &device_key).unwrap();
    let fingerprint = tls::file_fingerprint(&cert_file)
        .replace(':', "")
        .to_lowercase();

    // Bad PEM is refused, saying what is wrong.
    let set = |value: serde_json::Value| json!({"deviceId": {"entityType": "DEVICE", "id": id}, "credentialsType": "X509_CERTIFICATE", "credentialsValue": value});
    let (status, body) = s
        .post("/api/device/credentials", &user, set(json!("MIIB...")))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap().contains("PEM"), "{body}");

    let (status, body) = s
        .post("/api/device/credentials", &user, set(json!(device_cert)))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["credentialsType"], "X509_CERTIFICATE");
    assert_eq!(body["credentialsId"], fingerprint.as_str());
    let (status, body) = s.get(&format!("/api/device/{id}/credentials"), &user).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["credentialsValue"], device_cert.as_str());

    // rumqttc presenting the certificate, with no user name, is the device.
    let mut meter = v3::connect_tls(
        &s,
        "meter",
        None,
        &server_ca,
        Some((&device_cert, &device_key)),
    )
    .await
    .expect("the certificate authenticates the device");
    meter
        .publish("v1/devices/me/telemetry", r#"{"kwh":5}"#)
        .await;
    // So is mosquitto_pub with --cert/--key.
    let mut expected = vec![json!("5")];
    if tool_available("mosquitto_pub", "apt-get install mosquitto-clients") {
        expected.push(json!("6"));
        let port = mqtts(&s).port().to_string();
        let out = run(
            "mosquitto_pub",
            &[
                "-h",
                "localhost",
                "-p",
                &port,
                "--cafile",
                server_ca.to_str().unwrap(),
                "--cert",
                cert_file.to_str().unwrap(),
                "--key",
                key_file.to_str().unwrap(),
                "-q",
                "1",
                "-t",
                "v1/devices/me/telemetry",
                "-m",
                r#"{"kwh":6}"#,
            ],
        );
        assert!(out.status.success(), "{}", text(&out));
    }
    let values = s
        .timeseries(
            &user,
            &id,
            "keys=kwh&startTs=0&endTs=9999999999999&orderBy=ASC",
        )
        .await;
    let kwh: Vec<_> = values["kwh"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].clone())
        .collect();
    assert_eq!(kwh, expected, "{values}");

    // The credentials replaced the token; a certificate nobody registered is no one.
    let refused = v3::connect_tls(&s, "old", Some("X509TOKEN"), &server_ca, None)
        .await
        .err();
    assert_eq!(refused, Some(v3::ConnectReturnCode::NotAuthorized));
    let (stranger_cert, stranger_key) = tls::self_signed(&["stranger"], now - day, now + 30 * day);
    let refused = v3::connect_tls(
        &s,
        "x",
        None,
        &server_ca,
        Some((&stranger_cert, &stranger_key)),
    )
    .await
    .err();
    assert!(refused.is_some(), "an unregistered certificate is refused");
    // An expired certificate fails the handshake even though registered.
    let (old_cert, old_key) = tls::self_signed(&["meter-old"], now - 60 * day, now - day);
    let other = s.device_with_token(&user, "Old meter", "OLDMETER").await;
    let (status, body) = s
        .post(
            "/api/device/credentials",
            &user,
            json!({"deviceId": {"entityType": "DEVICE", "id": other}, "credentialsType": "X509_CERTIFICATE", "credentialsValue": old_cert}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let options = {
        let mut o = rumqttc::MqttOptions::new("old", "localhost", mqtts(&s).port());
        o.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Simple {
                ca: std::fs::read(&server_ca).unwrap(),
                alpn: None,
                client_auth: Some((old_cert.into(), old_key.into())),
            },
        ));
        o
    };
    let (_client, mut events) = rumqttc::AsyncClient::new(options, 4);
    let outcome = tokio::time::timeout(common::mqtt::WAIT, events.poll())
        .await
        .unwrap();
    assert!(
        matches!(
            outcome,
            Err(rumqttc::ConnectionError::Tls(_) | rumqttc::ConnectionError::Io(_))
        ),
        "{outcome:?}"
    );
    drop(meter);
}
