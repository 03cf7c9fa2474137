//! Runs the real `thingsafe` binary on an ephemeral port with a fresh data directory.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

pub mod browser;
pub mod mqtt;
pub mod oauth;
pub mod tls;

pub const PASSWORD: &str = "correct horse battery";

pub struct Server {
    child: Child,
    pub base: String,
    /// The MQTT listener's address; unspecified (`0.0.0.0:0`) when plain MQTT is off
    /// (`tls.required`).
    pub mqtt_addr: std::net::SocketAddr,
    /// The MQTT over TLS listener's address, when TLS is on.
    pub mqtts_addr: Option<std::net::SocketAddr>,
    /// `https://127.0.0.1:port`, when TLS is on.
    pub https_base: Option<String>,
    /// The certificate the TLS listeners present (the generated one is its own CA).
    pub tls_cert: Option<PathBuf>,
    /// Its SHA-256 fingerprint as the server printed it.
    pub tls_fingerprint: Option<String>,
    /// What the server printed up to its HTTP API's address.
    pub startup_output: Vec<String>,
    pub data_dir: PathBuf,
    _dir: Option<tempfile::TempDir>,
    /// What the server printed on stderr, line by line, as it comes.
    output: mpsc::Receiver<String>,
    pub setup_token: Option<String>,
    pub http: reqwest::Client,
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_thingsafe")
}

impl Server {
    pub fn start() -> Server {
        Self::start_with(&[])
    }

    pub fn start_with(env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let mut s = Self::start_in(&data_dir, env);
        s._dir = Some(dir);
        s
    }

    /// Starts on `data_dir` (kept by the caller, so that it can be restarted on it).
    pub fn start_in(data_dir: &Path, env: &[(&str, &str)]) -> Server {
        tls::install_provider();
        let mut cmd = Command::new(binary());
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .env("THINGSAFE_HTTP_ADDR", "127.0.0.1:0")
            .env("THINGSAFE_MQTT_ADDR", "127.0.0.1:0")
            .env("THINGSAFE_HTTP_TLS_ADDR", "127.0.0.1:0")
            .env("THINGSAFE_MQTT_TLS_ADDR", "127.0.0.1:0")
            .env("THINGSAFE_LOG_LEVEL", "info")
            // Tests sign many people up and in from one address; tests/limits.rs sets
            // its own limits.
            .env("THINGSAFE_LIMITS_SIGN_IN_PER_MINUTE", "100000")
            .env("THINGSAFE_LIMITS_SIGN_UP_PER_HOUR", "100000")
            .env("THINGSAFE_LIMITS_PUBLIC_REQUESTS_PER_HOUR", "100000")
            // Load and drill tests send faster than a device should.
            .env("THINGSAFE_LIMITS_DEVICE_MESSAGES", "")
            .env("THINGSAFE_LIMITS_DEVICE_TELEMETRY_DATA_POINTS", "")
            // Scheduled backups (if a test runs at backup.time) go next to the data
            // directory, never into the working directory.
            .env(
                "THINGSAFE_BACKUP_DIR",
                data_dir.with_file_name(format!(
                    "{}-backups",
                    data_dir.file_name().unwrap_or_default().to_string_lossy()
                )),
            )
            .env_remove("THINGSAFE_ADMIN_EMAIL")
            .env_remove("THINGSAFE_ADMIN_PASSWORD")
            .env_remove("THINGSAFE_MASTER_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start thingsafe");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut setup_token = None;
        let (mut mqtt_addr, mut mqtts_addr, mut https_base) = (None, None, None);
        let (mut tls_cert, mut tls_fingerprint) = (None, None);
        let mut startup_output = Vec::new();
        // The server announces its listeners with the HTTP API's line last.
        let base = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("thingsafe did not report its addresses within 30 s");
            if let Some(rest) = line.split("\"setupToken\":\"").nth(1) {
                setup_token = rest.split('"').next().map(str::to_string);
            }
            let after = |marker: &str| line.split(marker).nth(1).map(first_word);
            if let Some(rest) = line.split("TLS certificate: ").nth(1) {
                tls_cert = rest.split(" (").next().map(PathBuf::from);
                tls_fingerprint =
                    after("SHA-256 fingerprint ").map(|f| f.trim_end_matches(')').to_string());
            }
            if let Some(addr) = after("MQTT listening on mqtt://") {
                mqtt_addr = Some(addr.parse().expect("the MQTT address"));
            }
            if let Some(addr) = after("MQTT over TLS listening on mqtts://") {
                mqtts_addr = Some(addr.parse().expect("the MQTT over TLS address"));
            }
            if let Some(url) = after("HTTPS listening on ") {
                https_base = Some(url);
            }
            let http = after("HTTP API listening on ");
            startup_output.push(line);
            if let Some(url) = http {
                break url;
            }
        };
        let http = match &tls_cert {
            Some(cert) => tls::client_trusting(cert),
            None => reqwest::Client::new(),
        };
        Server {
            child,
            base,
            mqtt_addr: mqtt_addr.unwrap_or(std::net::SocketAddr::from(([0, 0, 0, 0], 0))),
            mqtts_addr,
            https_base,
            tls_cert,
            tls_fingerprint,
            startup_output,
            data_dir: data_dir.to_path_buf(),
            _dir: None,
            output: rx,
            setup_token,
            http,
        }
    }

    /// Sends the REST calls (`call`, `get`, `sign_up`...) over HTTPS from now on.
    pub fn over_https(mut self) -> Server {
        self.base = self.https_base.clone().expect("TLS is on");
        self
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (up to 30 s) for a printed line containing `needle`; returns it.
    pub fn wait_for_line(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.output.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no line containing {needle:?} within 30 s"),
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Lines printed so far.
    pub fn drain_output(&self) -> Vec<String> {
        self.output.try_iter().collect()
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap()
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.header("X-Authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// A command to a device (`POST /api/rpc/{kind}/{device}`, `kind` one of `oneway`,
    /// `twoway`) sent in the background: it answers once the device did (or the call timed
    /// out), while the test plays the device.
    pub fn rpc_call(
        &self,
        user: &str,
        kind: &str,
        device: &str,
        body: Value,
    ) -> tokio::task::JoinHandle<(StatusCode, Value)> {
        let request = self
            .http
            .post(self.url(&format!("/api/rpc/{kind}/{device}")))
            .header("X-Authorization", format!("Bearer {user}"))
            .json(&body)
            .send();
        tokio::spawn(async move {
            let resp = request.await.expect("request");
            let status = resp.status();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        })
    }

    /// A customer user claims the device named `name` with `key`.
    pub async fn claim_device(&self, user: &str, name: &str, key: &str) -> (StatusCode, Value) {
        self.post(
            &format!("/api/customer/device/{name}/claim"),
            user,
            json!({"secretKey": key}),
        )
        .await
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, Some(token), None)
            .await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::DELETE, path, Some(token), None)
            .await
    }

    /// The version of the privacy policy in force (sign-up must accept it).
    pub async fn policy_version(&self) -> u64 {
        let (status, body) = self
            .call(reqwest::Method::GET, "/api/privacy/policy", None, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["version"].as_u64().expect("the policy's version")
    }

    /// Signs up a new tenant, accepting the privacy policy in force; returns its admin's
    /// access token.
    pub async fn sign_up(&self, email: &str) -> String {
        let version = self.policy_version().await;
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/api/noauth/signup",
                None,
                Some(json!({
                    "email": email, "password": PASSWORD, "firstName": "Ada", "lastName": "Lovelace",
                    "birthDate": "1990-12-10", "acceptedPolicyVersion": version
                })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["token"].as_str().unwrap().to_string()
    }

    pub async fn login(&self, email: &str, password: &str) -> (StatusCode, Value) {
        self.call(
            reqwest::Method::POST,
            "/api/auth/login",
            None,
            Some(json!({ "username": email, "password": password })),
        )
        .await
    }

    /// Creates a device; returns its id.
    pub async fn create_device(&self, token: &str, name: &str) -> String {
        let (status, body) = self
            .post(
                "/api/device",
                token,
                json!({ "name": name, "type": "sensor" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["id"]["id"].as_str().unwrap().to_string()
    }

    /// Creates a device named `name` with the access token `token`; returns its id.
    pub async fn device_with_token(&self, user: &str, name: &str, token: &str) -> String {
        let (status, dev) = self
            .call(
                reqwest::Method::POST,
                &format!("/api/device?accessToken={token}"),
                Some(user),
                Some(json!({ "name": name })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{dev}");
        dev["id"]["id"].as_str().unwrap().to_string()
    }

    /// A customer user of a new customer of the tenant; returns its access token and the
    /// customer's id.
    pub async fn customer_user(&self, admin: &str, email: &str) -> (String, String) {
        let (_, customer) = self
            .post("/api/customer", admin, json!({"title": email}))
            .await;
        let customer = customer["id"]["id"].as_str().unwrap().to_string();
        self.activated_customer_user(admin, &customer, email, json!({}))
            .await;
        let (status, login) = self.login(email, PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "{login}");
        (login["token"].as_str().unwrap().to_string(), customer)
    }

    /// Invites a user of `customer` (with the extra fields of `more`, e.g. a first name)
    /// and activates the account with [`PASSWORD`] through the activation link, as the
    /// person would.
    pub async fn activated_customer_user(
        &self,
        admin: &str,
        customer: &str,
        email: &str,
        more: Value,
    ) {
        let mut body = json!({"email": email, "authority": "CUSTOMER_USER", "customerId": {"entityType": "CUSTOMER", "id": customer}});
        if let (Some(body), Some(more)) = (body.as_object_mut(), more.as_object()) {
            body.extend(more.clone());
        }
        let (status, user) = self.post("/api/user", admin, body).await;
        assert_eq!(status, StatusCode::OK, "{user}");
        let (_, link) = self
            .get(
                &format!(
                    "/api/user/{}/activationLink",
                    user["id"]["id"].as_str().unwrap()
                ),
                admin,
            )
            .await;
        let activate = link
            .as_str()
            .unwrap()
            .split("activateToken=")
            .nth(1)
            .unwrap()
            .to_string();
        let (status, _) = self
            .call(
                reqwest::Method::POST,
                "/api/noauth/activate",
                None,
                Some(json!({"activateToken": activate, "password": PASSWORD})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }

    /// A device's time series as the REST API returns them; `query` is the URL's query
    /// (`keys=...`, `startTs=...&endTs=...`).
    pub async fn timeseries(&self, user: &str, id: &str, query: &str) -> Value {
        let (status, body) = self
            .get(
                &format!("/api/plugins/telemetry/DEVICE/{id}/values/timeseries?{query}"),
                user,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// A device's attributes of one scope (`CLIENT_SCOPE`, `SHARED_SCOPE`, ...) as a
    /// JSON object, key to value.
    pub async fn attributes(&self, user: &str, id: &str, scope: &str) -> Value {
        let (status, body) = self
            .get(
                &format!("/api/plugins/telemetry/DEVICE/{id}/values/attributes/{scope}"),
                user,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let mut out = serde_json::Map::new();
        for a in body.as_array().unwrap() {
            out.insert(a["key"].as_str().unwrap().into(), a["value"].clone());
        }
        Value::Object(out)
    }

    /// Posts `body` to the HTTP device API's telemetry of the device with `token`;
    /// asserts it was stored (200).
    pub async fn post_telemetry(&self, token: &str, body: Value) {
        let resp = self
            .http
            .post(self.url(&format!("/api/v1/{token}/telemetry")))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "telemetry of {token}");
    }

    /// The messages in the outbox (`data/outbox/`) addressed to `to`, oldest first, with
    /// quoted-printable soft line breaks and `=3D` undone.
    pub fn mails_to(&self, to: &str) -> Vec<String> {
        let dir = self.data_dir.join("outbox");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        files
            .into_iter()
            .filter(|f| f.extension().is_some_and(|e| e == "eml"))
            .map(|f| {
                std::fs::read_to_string(f)
                    .unwrap()
                    .replace("=\r\n", "")
                    .replace("=3D", "=")
            })
            .filter(|m| m.contains(&format!("To: {to}")))
            .collect()
    }

    /// The caller's personal data export (`GET /api/privacy/me/export`), unzipped: file
    /// name → text.
    pub async fn export(&self, token: &str) -> std::collections::BTreeMap<String, String> {
        let resp = self
            .http
            .get(self.url("/api/privacy/me/export"))
            .header("X-Authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "application/zip");
        assert!(
            resp.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .contains("attachment")
        );
        unzip(&resp.bytes().await.unwrap())
    }
}

fn first_word(text: &str) -> String {
    text.split_whitespace().next().unwrap_or("").to_string()
}

/// Whether the outside tool `program` can be run; when it cannot, prints
/// `SKIP: <program> not installed (<install>)` and returns false, or fails the test under
/// `THINGSAFE_REQUIRE_ALL=1`.
pub fn tool_available(program: &str, install: &str) -> bool {
    let probe = Command::new(program)
        .arg("--help")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if matches!(&probe, Err(e) if e.kind() == std::io::ErrorKind::NotFound) {
        let message = format!("SKIP: {program} not installed ({install})");
        if std::env::var("THINGSAFE_REQUIRE_ALL").as_deref() == Ok("1") {
            panic!("{message}");
        }
        println!("{message}");
        return false;
    }
    true
}

/// The Python interpreter (`THINGSAFE_PYTHON`, else `python3`) if it can import `modules`;
/// when it cannot, prints `SKIP: <test> needs python3 with <modules> (<install>)` and
/// returns None, or fails the test under `THINGSAFE_REQUIRE_ALL=1`.
pub fn python_with(test: &str, modules: &str, install: &str) -> Option<String> {
    let python = std::env::var("THINGSAFE_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", &format!("import {modules}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(python);
    }
    let message = format!("SKIP: {test} needs python3 with {modules} ({install})");
    if std::env::var("THINGSAFE_REQUIRE_ALL").as_deref() == Ok("1") {
        panic!("{message}");
    }
    println!("{message}");
    None
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Panics if any file under `dir` contains one of `needles` as bytes.
pub fn assert_absent_from_files(dir: &Path, needles: &[&str]) {
    let files = files_under(dir);
    assert!(
        files.iter().any(|f| f.ends_with("thingsafe.db")),
        "no database in {}",
        dir.display()
    );
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        for needle in needles {
            let found = bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
                || bytes
                    .windows(needle.len())
                    .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()));
            assert!(
                !found,
                "{needle:?} found in plaintext in {}",
                file.display()
            );
        }
    }
}

/// The files of a zip archive as text, by name.
pub fn unzip(bytes: &[u8]) -> std::collections::BTreeMap<String, String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a valid zip");
    let mut files = std::collections::BTreeMap::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        files.insert(file.name().unwrap().to_string(), text);
    }
    files
}

/// The files of `dir` whose names end with `suffix`, sorted; none when `dir` is missing.
pub fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().path())
                .filter(|p| p.to_string_lossy().ends_with(suffix))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}
