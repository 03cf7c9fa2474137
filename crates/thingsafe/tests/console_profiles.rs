//! The console's device profiles in a real browser (headless Chromium through
//! chromedriver) against the real binary: an X.509 profile made from the console with a CA
//! made by rcgen, then a device presenting a chain signed by that CA over MQTT with TLS,
//! which appears on the profile's page; a key-and-secret profile, a device put in it from
//! the device creation form, and deleting the profile: refused while the device is in it,
//! done once it moved out (from its page), its key free again.
//!
//! `THINGSAFE_SCREENSHOTS=1` also saves the pages into docs/screenshots/.

mod common;

use common::browser::{
    Browser, DESKTOP, click, document, element, error_next_to, fill, path_until, submit_sign_in,
    text_until,
};
use common::mqtt::v3;
use common::tls::{Authority, Role, file_fingerprint};
use common::{PASSWORD, Server};
use fantoccini::Client;
use serde_json::json;

/// Signs in with the form at `path` (a page that sends signed-out visitors to sign in).
async fn sign_in(c: &Client, s: &Server, email: &str, path: &str) {
    c.goto(&s.url(path)).await.unwrap();
    path_until(c, "/signin").await;
    submit_sign_in(c, email, PASSWORD).await;
    path_until(c, path).await;
}

async fn is_hidden(c: &Client, css: &str) -> bool {
    c.execute(
        "return document.querySelector(arguments[0]).hidden",
        vec![json!(css)],
    )
    .await
    .unwrap()
    .as_bool()
    .unwrap()
}

/// The profile's id, from the page the browser is on (`/device-profiles/{id}`).
async fn profile_id_on_page(c: &Client) -> String {
    let path = path_until(c, "/device-profiles/").await;
    path.trim_start_matches("/device-profiles/").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_x509_profile_made_in_the_console_provisions_a_device_by_its_chain() {
    let Some(browser) = Browser::start("console-x509-profile").await else {
        return;
    };
    let server = Server::start();
    let s = &server;
    let admin = s.sign_up("ada@example.com").await;
    let ca = Authority::root("Meters Root CA");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("meters-ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let ca_fingerprint = file_fingerprint(&ca_file);
    let (device_cert, device_key) = ca.issue("boiler-7.meters.example.com", Role::Device);
    let chain = format!("{device_cert}{}", ca.pem);
    let (ca_file, chain, device_key) = (&ca_file, &chain, &device_key);
    let admin = admin.as_str();
    browser
        .run(|c| async move {
            let c = &c;
            sign_in(c, s, "ada@example.com", "/device-profiles").await;
            // The default profile is listed, with no provisioning.
            text_until(c, "#profile-list tbody", |t| {
                t.contains("default") && t.contains("No provisioning")
            })
            .await;
            click(c, "button[data-open=add-profile]").await;
            // Key and secret by default; the CA's fields only for X.509.
            assert!(!is_hidden(c, "#profile-key-fields").await);
            assert!(is_hidden(c, "#profile-ca-fields").await);
            click(c, "#type-X509_CERTIFICATE_CHAIN").await;
            assert!(is_hidden(c, "#profile-key-fields").await);
            assert!(!is_hidden(c, "#profile-ca-fields").await);
            fill(c, "#profile-name", "Meters").await;

            // The API's refusals, each next to its field.
            fill(c, "#profile-ca", "not a certificate").await;
            click(c, "#add-profile-form button[type=submit]").await;
            let error = error_next_to(c, "#profile-ca-error").await;
            assert!(error.contains("PEM"), "{error}");
            // The file chosen fills the field in.
            element(c, "#profile-ca-file")
                .await
                .send_keys(&ca_file.display().to_string())
                .await
                .unwrap();
            text_until(c, "#profile-ca-error", |t| t.is_empty()).await;
            let pasted: String = c
                .execute("return document.getElementById('profile-ca').value", vec![])
                .await
                .unwrap()
                .as_str()
                .unwrap()
                .to_string();
            assert!(pasted.contains("BEGIN CERTIFICATE"), "{pasted}");
            fill(c, "#profile-pattern", "meters").await;
            click(c, "#add-profile-form button[type=submit]").await;
            let error = error_next_to(c, "#profile-pattern-error").await;
            assert!(error.contains("no group"), "{error}");
            fill(c, "#profile-pattern", r"(.*)\.meters\.example\.com").await;
            click(c, "#profile-allow-create").await;
            document(c, "device-profile-new", DESKTOP).await;
            click(c, "#add-profile-form button[type=submit]").await;

            // Its page: the CA's fingerprint, the pattern, no devices yet.
            let id = profile_id_on_page(c).await;
            text_until(c, "#ca-fingerprint", |t| t == ca_fingerprint).await;
            text_until(c, "#profile-pattern", |t| {
                t == r"(.*)\.meters\.example\.com"
            })
            .await;
            text_until(c, "#profile-allow-create", |t| t.contains("Created")).await;
            element(c, "#profile-no-devices").await;

            // A device presenting a chain signed by the CA connects and is created.
            let server_ca = s.tls_cert.clone().expect("the server's certificate");
            let mut device =
                v3::connect_tls(s, "boiler-7", None, &server_ca, Some((chain, device_key)))
                    .await
                    .expect("the chain to the profile's CA authenticates the device");
            device
                .publish("v1/devices/me/telemetry", r#"{"pressure":1.4}"#)
                .await;
            drop(device);
            c.refresh().await.unwrap();
            text_until(c, "#profile-devices tbody", |t| {
                t.contains("boiler-7") && t.contains("Online")
            })
            .await;
            document(c, "device-profile-x509", DESKTOP).await;
            let (_, listed) = s.get(&format!("/api/deviceProfile/{id}"), admin).await;
            assert_eq!(listed["name"], "Meters");

            // The list says what it is, in words, and counts the device.
            click(c, "nav a[href='/device-profiles']").await;
            text_until(c, "#profile-list tbody", |t| {
                t.contains("Meters") && t.contains("Devices with a certificate signed by your CA")
            })
            .await;
            let row = text_until(c, "#profile-list tbody tr:nth-child(2)", |t| {
                t.contains("Meters")
            })
            .await;
            assert!(row.ends_with('1'), "{row}");
            document(c, "device-profiles", DESKTOP).await;
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_with_a_device_is_not_deleted_and_an_empty_one_is() {
    let Some(browser) = Browser::start("console-delete-profile").await else {
        return;
    };
    let server = Server::start();
    let s = &server;
    let admin = s.sign_up("ada@example.com").await;
    let admin = admin.as_str();
    browser
        .run(|c| async move {
            let c = &c;
            sign_in(c, s, "ada@example.com", "/device-profiles").await;
            click(c, "button[data-open=add-profile]").await;
            // The key and secret come filled in with random values; ours replace them.
            let generated = c
                .execute(
                    "return document.getElementById('profile-key').value",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(generated.as_str().unwrap().len(), 20, "{generated}");
            fill(c, "#profile-name", "Sensors").await;
            fill(c, "#profile-key", "").await;
            click(c, "#add-profile-form button[type=submit]").await;
            let error = error_next_to(c, "#profile-key-error").await;
            assert!(error.contains("provisionDeviceKey"), "{error}");
            fill(c, "#profile-key", "console-key").await;
            fill(c, "#profile-secret", "console-secret").await;
            click(c, "#add-profile-form button[type=submit]").await;
            let id = profile_id_on_page(c).await;
            text_until(c, "main .meta", |t| {
                t == "Devices create themselves with a key and secret"
            })
            .await;
            text_until(c, "#profile-key", |t| t == "console-key").await;
            // The secret is shown only when asked for.
            let hidden = text_until(c, "#profile-secret", |t| !t.is_empty()).await;
            assert!(!hidden.contains("console-secret"), "{hidden}");
            document(c, "device-profile-key", DESKTOP).await;
            click(c, "#show-secret").await;
            text_until(c, "#profile-secret", |t| t == "console-secret").await;

            // A device put in the profile from the device creation form.
            c.goto(&s.url("/devices")).await.unwrap();
            click(c, "button[data-open=add-device]").await;
            fill(c, "#device-name", "Sensor 1").await;
            element(c, "#device-profile")
                .await
                .select_by_value(&id)
                .await
                .unwrap();
            click(c, "#add-device-form button[type=submit]").await;
            let device_link = element(c, "#device-created:not([hidden]) #created-link").await;
            let device_path = device_link.attr("href").await.unwrap().unwrap();
            let device = device_path.trim_start_matches("/devices/").to_string();
            let (_, body) = s.get(&format!("/api/device/{device}"), admin).await;
            assert_eq!(body["deviceProfileId"]["id"], id.as_str(), "{body}");
            // Its page names the profile.
            c.goto(&s.url(&device_path)).await.unwrap();
            text_until(c, "#device-profile-link", |t| t == "Sensors").await;

            // Deleting is refused while the device is in it, said readably.
            click(c, "#device-profile-link").await;
            text_until(c, "#profile-devices", |t| t.contains("Sensor 1")).await;
            click(c, "button[data-open-dialog=delete-profile-dialog]").await;
            click(c, "#confirm-delete-profile").await;
            let refusal = error_next_to(c, "#delete-profile-form [data-error-for='']").await;
            assert_eq!(
                refusal,
                "The device profile “Sensors” is used by 1 device: move or delete it first"
            );
            document(c, "device-profile-delete-refused", DESKTOP).await;
            click(c, "button[data-close-dialog=delete-profile-dialog]").await;
            let (status, _) = s.get(&format!("/api/deviceProfile/{id}"), admin).await;
            assert_eq!(status, 200, "the profile is still there");
            let (_, body) = s.get(&format!("/api/device/{device}"), admin).await;
            assert_eq!(body["name"], "Sensor 1", "the device is still there");

            // The device moved out from its page (back to the default profile), the
            // profile goes.
            click(c, "#profile-devices a").await;
            path_until(c, &device_path).await;
            element(c, "#move-profile")
                .await
                .select_by_value("")
                .await
                .unwrap();
            click(c, "#move-profile-form button[type=submit]").await;
            text_until(c, "main .meta", |t| !t.contains("profile")).await;
            let (_, body) = s.get(&format!("/api/device/{device}"), admin).await;
            assert_ne!(body["deviceProfileId"]["id"], id.as_str(), "{body}");
            let (_, default) = s
                .get(
                    &format!(
                        "/api/deviceProfile/{}",
                        body["deviceProfileId"]["id"].as_str().unwrap()
                    ),
                    admin,
                )
                .await;
            assert_eq!(default["default"], true, "{default}");
            c.goto(&s.url(&format!("/device-profiles/{id}")))
                .await
                .unwrap();
            element(c, "#profile-no-devices").await;
            click(c, "button[data-open-dialog=delete-profile-dialog]").await;
            click(c, "#confirm-delete-profile").await;
            element(c, "#profile-list").await;
            assert_eq!(c.current_url().await.unwrap().path(), "/device-profiles");
            let list = text_until(c, "#profile-list tbody", |t| t.contains("default")).await;
            assert!(!list.contains("Sensors"), "{list}");
            let (status, _) = s.get(&format!("/api/deviceProfile/{id}"), admin).await;
            assert_eq!(status, 404);
        })
        .await;

    // Its key is free again.
    let (status, body) = s
        .post(
            "/api/deviceProfile",
            admin,
            json!({"name": "Sensors again", "provisionType": "ALLOW_CREATE_NEW_DEVICES",
                   "provisionDeviceKey": "console-key", "provisionDeviceSecret": "other"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let again = body["id"]["id"].as_str().unwrap().to_string();

    // Another tenant's administrator reaches none of Ada's profiles.
    let bob = s.sign_up("bob@example.com").await;
    let (status, _) = s.delete(&format!("/api/deviceProfile/{again}"), &bob).await;
    assert_eq!(status, 404);
    // The default profile stays.
    let device = s.create_device(admin, "Plain").await;
    let (_, body) = s.get(&format!("/api/device/{device}"), admin).await;
    let default = body["deviceProfileId"]["id"].as_str().unwrap();
    let (status, body) = s
        .delete(&format!("/api/deviceProfile/{default}"), admin)
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["message"],
        "the tenant's default device profile cannot be deleted"
    );
    let (status, _) = s.get(&format!("/api/deviceProfile/{again}"), admin).await;
    assert_eq!(status, 200, "still there");
}
