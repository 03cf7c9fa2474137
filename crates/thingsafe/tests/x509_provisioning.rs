//! X.509 provisioning (ThingsBoard's `X509_CERTIFICATE_CHAIN` device profiles): a device
//! presenting, on MQTT over TLS, a certificate chain through the CA its tenant registered
//! on a device profile is found, or created, by the name in its certificate's Common Name,
//! and then authenticates by its certificate. Driven by mosquitto_pub with certificates
//! made by ThingsBoard's own openssl recipe, and by rumqttc with chains made by rcgen.

mod common;

use std::path::Path;
use std::process::Command;

use common::mqtt::v3;
use common::tls::{Authority, Role};
use common::{Server, tool_available};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn x509_profile(name: &str, ca_pem: &str, pattern: &str, allow_create: bool) -> Value {
    json!({
        "name": name,
        "provisionType": "X509_CERTIFICATE_CHAIN",
        "profileData": {"provisionConfiguration": {
            "type": "X509_CERTIFICATE_CHAIN",
            "provisionDeviceSecret": ca_pem,
            "certificateRegExPattern": pattern,
            "allowCreateNewDevicesByX509Certificate": allow_create,
        }},
    })
}

/// The tenant's devices named `name` (ThingsBoard's paged list, searched by text).
async fn devices_named(s: &Server, user: &str, name: &str) -> Vec<Value> {
    let (status, body) = s
        .get(
            &format!("/api/tenant/devices?pageSize=100&page=0&textSearch={name}"),
            user,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["name"] == name)
        .cloned()
        .collect()
}

async fn readings(s: &Server, user: &str, device: &str, key: &str) -> Vec<Value> {
    let values = s
        .timeseries(
            user,
            device,
            &format!("keys={key}&startTs=0&endTs=9999999999999&orderBy=ASC"),
        )
        .await;
    values[key]
        .as_array()
        .map(|a| a.iter().map(|p| p["value"].clone()).collect())
        .unwrap_or_default()
}

/// rumqttc presenting `chain` (PEM, the device's own first) with `key`, and no user name.
async fn connect_with_chain(
    s: &Server,
    id: &str,
    chain: &str,
    key: &str,
) -> Result<v3::Client, v3::ConnectReturnCode> {
    let server_ca = s.tls_cert.clone().expect("the server's certificate");
    v3::connect_tls(s, id, None, &server_ca, Some((chain, key))).await
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// ThingsBoard's guide, step by step: a root, an intermediate signed by it and a device
/// certificate signed by the intermediate, made by `openssl x509 -req` (X.509 v1
/// certificates); the intermediate registered on the profile; mosquitto_pub sending
/// `chain.pem`. The first connection creates the device, later ones find it.
#[tokio::test]
async fn thingsboards_openssl_recipe_provisions_a_device_that_mosquitto_pub_connects() {
    if !tool_available("openssl", "apt-get install openssl")
        || !tool_available("mosquitto_pub", "apt-get install mosquitto-clients")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let subj = |cn: &str| format!("/CN={cn}");
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-keyout",
            "rootKey.pem",
            "-out",
            "rootCert.pem",
            "-sha256",
            "-days",
            "365",
            "-nodes",
            "-subj",
            &subj("company.example.com"),
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-keyout",
            "intermediateKey.pem",
            "-out",
            "intermediate.csr",
            "-sha256",
            "-nodes",
            "-subj",
            &subj("meters.company.example.com"),
        ],
    );
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "intermediate.csr",
            "-out",
            "intermediateCert.pem",
            "-CA",
            "rootCert.pem",
            "-CAkey",
            "rootKey.pem",
            "-days",
            "365",
            "-sha256",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-keyout",
            "leafKey.pem",
            "-out",
            "leaf.csr",
            "-sha256",
            "-nodes",
            "-subj",
            &subj("meter-7.meters.company.example.com"),
        ],
    );
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-out",
            "leafCert.pem",
            "-CA",
            "intermediateCert.pem",
            "-CAkey",
            "intermediateKey.pem",
            "-days",
            "365",
            "-sha256",
        ],
    );
    let read = |f: &str| std::fs::read_to_string(d.join(f)).unwrap();
    let chain = format!(
        "{}{}{}",
        read("leafCert.pem"),
        read("intermediateCert.pem"),
        read("rootCert.pem")
    );
    std::fs::write(d.join("chain.pem"), &chain).unwrap();

    let s = Server::start().over_https();
    let user = s.sign_up("x509-chain@example.com").await;
    let (status, profile) = s
        .post(
            "/api/deviceProfile",
            &user,
            x509_profile(
                "Meters",
                &read("intermediateCert.pem"),
                r"(.*)\.meters\.company\.example\.com",
                true,
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{profile}");
    assert_eq!(profile["provisionType"], "X509_CERTIFICATE_CHAIN");
    let configuration = &profile["profileData"]["provisionConfiguration"];
    assert_eq!(
        configuration["allowCreateNewDevicesByX509Certificate"],
        true
    );
    assert_eq!(
        configuration["certificateRegExPattern"],
        r"(.*)\.meters\.company\.example\.com"
    );
    // The key is the CA's fingerprint, as openssl prints it.
    let fingerprint = common::tls::file_fingerprint(&d.join("intermediateCert.pem"))
        .replace(':', "")
        .to_lowercase();
    assert_eq!(profile["provisionDeviceKey"], fingerprint.as_str());

    let port = s.mqtts_addr.unwrap().port().to_string();
    let server_ca = s.tls_cert.clone().unwrap();
    // TLS 1.3 (mosquitto's choice) and 1.2: the handshake's signature is checked on the
    // key of an X.509 v1 certificate both ways.
    let publish = |value: u32, tls_version: &str| {
        let out = Command::new("mosquitto_pub")
            .args(["--tls-version", tls_version])
            .args([
                "-h",
                "localhost",
                "-p",
                &port,
                "--cafile",
                server_ca.to_str().unwrap(),
                "--cert",
                d.join("chain.pem").to_str().unwrap(),
                "--key",
                d.join("leafKey.pem").to_str().unwrap(),
                "-q",
                "1",
                "-t",
                "v1/devices/me/telemetry",
                "-m",
                &format!(r#"{{"kwh":{value}}}"#),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}\n{:#?}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            s.drain_output()
        );
    };
    publish(1, "tlsv1.3");
    publish(2, "tlsv1.2");

    let found = devices_named(&s, &user, "meter-7").await;
    assert_eq!(found.len(), 1, "one device, created once: {found:?}");
    let device = &found[0];
    assert_eq!(device["type"], "Meters");
    assert_eq!(device["deviceProfileId"]["id"], profile["id"]["id"]);
    let id = device["id"]["id"].as_str().unwrap();
    assert_eq!(
        readings(&s, &user, id, "kwh").await,
        [json!("1"), json!("2")]
    );
    let (status, credentials) = s.get(&format!("/api/device/{id}/credentials"), &user).await;
    assert_eq!(status, StatusCode::OK, "{credentials}");
    assert_eq!(credentials["credentialsType"], "X509_CERTIFICATE");
    let leaf_fingerprint = common::tls::file_fingerprint(&d.join("leafCert.pem"))
        .replace(':', "")
        .to_lowercase();
    assert_eq!(credentials["credentialsId"], leaf_fingerprint.as_str());
}

/// The profile's rules, each refusal leaving nothing changed: devices created beforehand
/// take their certificate once; creation only where allowed; a chain must lead to the
/// registered CA by valid signatures through CA certificates; the certificate must be for
/// clients; the pattern must find a name; a suspended device type gains no device; a CA
/// reaches only its own tenant.
#[tokio::test]
async fn a_provisioning_ca_binds_creates_and_refuses_devices_as_its_profile_says() {
    let s = Server::start().over_https();
    let user = s.sign_up("x509-rules@example.com").await;
    let other = s.sign_up("x509-other@example.com").await;

    // Profile inputs that cannot work are refused, saying why.
    let meters_ca = Authority::root("meters.test");
    for (body, why) in [
        (
            x509_profile("Bad", "MIIB", "(.*)", true),
            "provisionDeviceSecret must hold the CA's certificate in PEM",
        ),
        (
            x509_profile("Bad", &meters_ca.pem, ".*", true),
            "has no group",
        ),
        (
            x509_profile("Bad", &meters_ca.pem, "(.*", true),
            "not a regular expression",
        ),
        (
            json!({"name": "Bad", "provisionType": "X509_CERTIFICATE_CHAIN"}),
            "needs the CA certificate",
        ),
        (
            json!({"name": "Bad", "provisionType": "X509_CERTIFICATE_CHAIN", "profileData": {"provisionConfiguration": {
                "provisionDeviceSecret": meters_ca.pem, "allowCreateNewDevicesByX509Certificate": "yes"}}}),
            "must be true or false",
        ),
    ] {
        let (status, answer) = s.post("/api/deviceProfile", &user, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(why), "{why}: {message}");
    }

    // "Meters": devices are created beforehand; the CA may not create them.
    let (status, meters) = s
        .post(
            "/api/deviceProfile",
            &user,
            x509_profile("Meters", &meters_ca.pem, r"(.+)\.meters\.test", false),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{meters}");
    let meters_id = meters["id"]["id"].as_str().unwrap();
    // The same CA again, by anyone: refused (a CA reaches one profile, one tenant).
    let (status, answer) = s
        .post(
            "/api/deviceProfile",
            &other,
            x509_profile("Mine", &meters_ca.pem, "(.*)", true),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("already the provisioning CA of another device profile"),
        "{answer}"
    );
    // Another tenant's device of the same name stays theirs.
    let theirs = s.device_with_token(&other, "m-1", "THEIRM1TOKEN").await;

    let (status, m1) = s
        .post(
            "/api/device",
            &user,
            json!({"name": "m-1", "deviceProfileId": {"entityType": "DEVICE_PROFILE", "id": meters_id}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{m1}");
    let m1 = m1["id"]["id"].as_str().unwrap().to_string();
    let (_, before) = s.get(&format!("/api/device/{m1}/credentials"), &user).await;
    let m1_token = before["credentialsId"].as_str().unwrap().to_string();

    let (m1_cert, m1_key) = meters_ca.issue("m-1.meters.test", Role::Device);
    let m1_chain = format!("{m1_cert}{}", meters_ca.pem);
    let mut meter = connect_with_chain(&s, "m1", &m1_chain, &m1_key)
        .await
        .expect("the chain to the profile's CA authenticates m-1");
    meter
        .publish("v1/devices/me/telemetry", r#"{"kwh":11}"#)
        .await;
    drop(meter);
    assert_eq!(readings(&s, &user, &m1, "kwh").await, [json!("11")]);
    let (_, after) = s.get(&format!("/api/device/{m1}/credentials"), &user).await;
    assert_eq!(after["credentialsType"], "X509_CERTIFICATE", "{after}");
    // Its access token is gone with the binding; the other tenant's m-1 is untouched.
    let server_ca = s.tls_cert.clone().unwrap();
    assert_eq!(
        v3::connect_tls(&s, "old", Some(&m1_token), &server_ca, None)
            .await
            .err(),
        Some(v3::ConnectReturnCode::NotAuthorized)
    );
    assert!(
        v3::connect_tls(&s, "theirs", Some("THEIRM1TOKEN"), &server_ca, None)
            .await
            .is_ok()
    );
    let (_, theirs_now) = s
        .get(&format!("/api/device/{theirs}/credentials"), &other)
        .await;
    assert_eq!(theirs_now["credentialsType"], "ACCESS_TOKEN");
    // Again with the same chain: the same device (found by its certificate now).
    connect_with_chain(&s, "m1", &m1_chain, &m1_key)
        .await
        .unwrap();

    // Refused, each leaving the devices as they were:
    let refused = |what: &'static str, chain: String, key: String| {
        let s = &s;
        async move {
            let outcome = connect_with_chain(s, "x", &chain, &key).await;
            assert!(outcome.is_err(), "{what}: connected");
        }
    };
    // another certificate for m-1, which has its own already;
    let (again, again_key) = meters_ca.issue("m-1.meters.test", Role::Device);
    refused(
        "a second certificate for m-1",
        format!("{again}{}", meters_ca.pem),
        again_key,
    )
    .await;
    // a name no device has, where the profile does not create devices;
    let (m2, m2_key) = meters_ca.issue("m-2.meters.test", Role::Device);
    refused(
        "m-2, not created beforehand",
        format!("{m2}{}", meters_ca.pem),
        m2_key,
    )
    .await;
    for name in ["m-2"] {
        assert!(
            devices_named(&s, &user, name).await.is_empty(),
            "{name} was created"
        );
    }
    assert_eq!(readings(&s, &user, &m1, "kwh").await, [json!("11")]);

    // "Lamps": the CA is an intermediate under a root; devices create themselves.
    let root = Authority::root("example.test");
    let lamps_ca = root.intermediate("lamps.example.test");
    let (status, lamps) = s
        .post(
            "/api/deviceProfile",
            &user,
            x509_profile("Lamps", &lamps_ca.pem, r"^lamp-(\d+)$", true),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{lamps}");
    let (l1, l1_key) = lamps_ca.issue("lamp-1", Role::Device);
    let mut lamp = connect_with_chain(
        &s,
        "l1",
        &format!("{l1}{}{}", lamps_ca.pem, root.pem),
        &l1_key,
    )
    .await
    .expect("a new lamp creates itself");
    lamp.publish("v1/devices/me/telemetry", r#"{"on":true}"#)
        .await;
    drop(lamp);
    let created = devices_named(&s, &user, "1").await;
    assert_eq!(
        created.len(),
        1,
        "the pattern's group names the device: {created:?}"
    );
    assert_eq!(created[0]["type"], "Lamps");
    assert_eq!(created[0]["deviceProfileId"]["id"], lamps["id"]["id"]);
    let lamp_id = created[0]["id"]["id"].as_str().unwrap();
    assert_eq!(readings(&s, &user, lamp_id, "on").await, [json!("true")]);
    assert!(devices_named(&s, &other, "1").await.is_empty());

    // Where devices create themselves, only the chain can refuse them:
    // a CA with the same name and another key;
    let impostor = Authority::root("lamps.example.test");
    let (fake, fake_key) = impostor.issue("lamp-3", Role::Device);
    refused(
        "signed by a look-alike CA",
        format!("{fake}{}{}", impostor.pem, lamps_ca.pem),
        fake_key,
    )
    .await;
    // a device's certificate used as a CA to sign one for another name;
    let device_as_ca = Authority::from_device("lamp-1", &l1_key, &l1);
    let (forged, forged_key) = device_as_ca.issue("lamp-4", Role::Device);
    refused(
        "signed with lamp-1's key",
        format!("{forged}{l1}{}", lamps_ca.pem),
        forged_key,
    )
    .await;
    // a certificate for servers only;
    let (web, web_key) = lamps_ca.issue("lamp-5", Role::ServerOnly);
    refused(
        "a server-only certificate",
        format!("{web}{}", lamps_ca.pem),
        web_key,
    )
    .await;
    // a Common Name the pattern finds no name in.
    let (odd, odd_key) = lamps_ca.issue("lamp-six", Role::Device);
    refused(
        "a name outside the pattern",
        format!("{odd}{}", lamps_ca.pem),
        odd_key,
    )
    .await;
    for name in ["3", "4", "5", "lamp-six", "six"] {
        assert!(
            devices_named(&s, &user, name).await.is_empty(),
            "{name} was created"
        );
    }

    // A suspended device type gains no devices.
    let (status, body) = s
        .post(
            "/api/deviceType/Lamps/suspension",
            &user,
            json!({"reason": "recall of the lamp batch"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (l2, l2_key) = lamps_ca.issue("lamp-2", Role::Device);
    refused(
        "a lamp while Lamps are suspended",
        format!("{l2}{}", lamps_ca.pem),
        l2_key,
    )
    .await;
    assert!(devices_named(&s, &user, "2").await.is_empty());
}
