//! Headless Chromium driven through chromedriver (fantoccini): the browser a person uses,
//! against the real server. chromedriver runs on a free port with its own temporary
//! profile, and is stopped when the `Browser` is dropped, whether the test passed or not.
#![allow(dead_code)]

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use serde_json::json;

/// How long any one thing may take to appear on a page.
pub const WAIT: Duration = Duration::from_secs(15);

pub const DESKTOP: (u32, u32) = (1280, 900);
pub const PHONE: (u32, u32) = (390, 844);

fn find(program: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(format!("THINGSAFE_{}", program.to_uppercase())) {
        return Some(PathBuf::from(p));
    }
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .or_else(|| {
            let out = Command::new("which").arg(program).output().ok()?;
            let path = String::from_utf8(out.stdout).ok()?.trim().to_string();
            (!path.is_empty()).then(|| PathBuf::from(path))
        })
}

/// chromedriver, killed on drop.
struct Driver {
    child: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Browser {
    pub client: Client,
    /// Where the browser saves downloads.
    pub downloads: PathBuf,
    driver: Driver,
    /// Where a failing test's screenshot goes.
    name: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// Starts Chromium, or None (after printing a SKIP line) when it or chromedriver is
    /// missing; with `THINGSAFE_REQUIRE_ALL=1` a missing tool fails the test instead.
    pub async fn start(test: &str) -> Option<Browser> {
        let chromium = find(
            "chromium",
            &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
        );
        let chromedriver = find("chromedriver", &["/usr/bin/chromedriver"]);
        let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
            let message = "SKIP: chromium or chromedriver not found (apt-get install chromium chromium-driver)";
            if std::env::var("THINGSAFE_REQUIRE_ALL").as_deref() == Ok("1") {
                panic!("{message}");
            }
            println!("{message}");
            return None;
        };
        let port = free_port();
        let child = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().unwrap();
        let downloads = profile.path().join("downloads");
        std::fs::create_dir_all(&downloads).unwrap();
        let driver = Driver {
            child,
            _profile: profile,
        };
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--lang=en-GB".into(),
            format!("--user-data-dir={}", driver._profile.path().display()),
            format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": args,
                "prefs": {
                    "download.default_directory": downloads,
                    "download.prompt_for_download": false,
                },
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        // chromedriver takes a moment to listen.
        let deadline = std::time::Instant::now() + WAIT;
        let client = loop {
            let attempt =
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(caps.clone())
                    .connect(&url)
                    .await;
            match attempt {
                Ok(c) => break c,
                Err(e) if std::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("chromedriver did not start a browser: {e}"),
            }
        };
        Some(Browser {
            client,
            downloads,
            driver,
            name: test.to_string(),
        })
    }

    /// Runs `body`; on failure saves a screenshot (its path is printed) before failing.
    pub async fn run<F, Fut>(self, body: F)
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = ()>,
    {
        let client = self.client.clone();
        let outcome = std::panic::AssertUnwindSafe(body(client.clone()))
            .catch_unwind()
            .await;
        if let Err(panic) = outcome {
            let path = std::env::temp_dir().join(format!("thingsafe-{}-failure.png", self.name));
            match client.screenshot().await {
                Ok(png) => {
                    std::fs::write(&path, png).unwrap();
                    eprintln!("screenshot of the failing page: {}", path.display());
                }
                Err(e) => eprintln!("no screenshot of the failing page: {e}"),
            }
            if let Ok(url) = client.current_url().await {
                eprintln!("the page was {url}");
            }
            let _ = client.close().await;
            std::panic::resume_unwind(panic);
        }
        let _ = client.close().await;
    }
}

/// Where the README's screenshots go, when asked for (`THINGSAFE_SCREENSHOTS=1`).
pub fn screenshot_dir() -> Option<PathBuf> {
    (std::env::var("THINGSAFE_SCREENSHOTS").as_deref() == Ok("1")).then(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs/screenshots")
            .to_path_buf()
    })
}

/// Saves the whole page as `docs/screenshots/<name>.png` when screenshots are asked for.
pub async fn document(client: &Client, name: &str, size: (u32, u32)) {
    let Some(dir) = screenshot_dir() else { return };
    std::fs::create_dir_all(&dir).unwrap();
    // The whole page, not just the window: as tall as the document.
    let height: u64 = client
        .execute(
            "return Math.ceil(document.documentElement.scrollHeight)",
            vec![],
        )
        .await
        .unwrap()
        .as_u64()
        .unwrap_or(u64::from(size.1));
    client
        .set_window_size(size.0, (height as u32).clamp(size.1, 4000))
        .await
        .unwrap();
    client
        .execute("window.scrollTo(0, 0)", vec![])
        .await
        .unwrap();
    // Charts redraw for the new width.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let png = client.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    client.set_window_size(DESKTOP.0, DESKTOP.1).await.unwrap();
}

/// The element `css` once it is on the page.
pub async fn element(client: &Client, css: &str) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} did not appear: {e}"))
}

/// Waits until `css`'s text satisfies `check`; returns the text.
pub async fn text_until(client: &Client, css: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    let mut last = String::new();
    while std::time::Instant::now() < deadline {
        if let Ok(e) = client.find(Locator::Css(css)).await
            && let Ok(text) = e.text().await
        {
            if check(&text) {
                return text;
            }
            last = text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} never showed what was expected; last text: {last:?}");
}

/// Waits until the page's path (and query) starts with `prefix`.
pub async fn path_until(client: &Client, prefix: &str) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    let mut last = String::new();
    while std::time::Instant::now() < deadline {
        let url = client.current_url().await.unwrap();
        last = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        if last.starts_with(prefix) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the browser never reached {prefix}; it is at {last}");
}

/// Types `text` into the field `css` (cleared first).
pub async fn fill(client: &Client, css: &str, text: &str) {
    let e = element(client, css).await;
    e.clear().await.unwrap();
    e.send_keys(text).await.unwrap();
}

/// On the sign-in page: declines the cookie banner if it asks, then signs in with the form.
pub async fn submit_sign_in(client: &Client, email: &str, password: &str) {
    if let Ok(reject) = client
        .find(Locator::Css("#cookie-banner:not([hidden]) #cookie-reject"))
        .await
    {
        reject.click().await.unwrap();
    }
    fill(client, "#email", email).await;
    fill(client, "#password", password).await;
    click(client, "main button[type=submit]").await;
}

/// The text in the error slot `css` (next to a field), once it shows one.
pub async fn error_next_to(client: &Client, css: &str) -> String {
    text_until(client, &format!("{css}:not([hidden])"), |t| !t.is_empty()).await
}

pub async fn click(client: &Client, css: &str) {
    element(client, css).await.click().await.unwrap();
}

/// Waits until attribute `name` of `css` satisfies `check`; returns it.
pub async fn text_attr_until(
    client: &Client,
    css: &str,
    name: &str,
    check: impl Fn(&str) -> bool,
) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    let mut last = String::new();
    while std::time::Instant::now() < deadline {
        if let Ok(e) = client.find(Locator::Css(css)).await
            && let Ok(Some(value)) = e.attr(name).await
        {
            if check(&value) {
                return value;
            }
            last = value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css}[{name}] never showed what was expected; last: {last:?}");
}

/// The file ending in `suffix` the browser finished downloading into `dir`.
pub async fn downloaded(dir: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    for _ in 0..150 {
        let done = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.to_string_lossy().ends_with(suffix));
        if let Some(p) = done {
            return p;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no {suffix} file was downloaded into {}", dir.display());
}
