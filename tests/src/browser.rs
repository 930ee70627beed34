//! [`Browser`]: Debian's headless Chromium driven over WebDriver (chromedriver on a port the test picks), for the web
//! UI's tests: navigate, read and wait on the DOM, click, type, and take screenshots.
//!
//! The client is a few WebDriver calls over the harness's reqwest, which is all the tests need. chromedriver runs in
//! its own process group, killed with everything it started when the `Browser` is dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::http::http_client;

/// How long a DOM wait may take: a panel answers within milliseconds of a change, so this only trips on a bug.
pub const DOM_DEADLINE: Duration = Duration::from_secs(15);

/// Whether the browser tests may run: outside CI a missing Chromium or chromedriver skips them with the reason
/// printed; in CI (`CI` set) a missing one fails the test, so the UI is never silently left untested.
pub fn may_run() -> bool {
    let installed = |program: &str| Command::new(program).arg("--version").output().is_ok_and(|o| o.status.success());
    let missing: Vec<&str> = ["chromium", "chromedriver"].into_iter().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "CI must have {missing:?} installed (see .ci/run)");
    println!("skipped: {missing:?} not installed (apt-get install chromium chromium-driver)");
    false
}

/// A headless Chromium session.
pub struct Browser {
    driver: Child,
    client: reqwest::Client,
    /// `http://127.0.0.1:<port>/session/<id>`.
    session: String,
    _profile: TempDir,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a headless session with a fresh profile.
    pub async fn start() -> anyhow::Result<Browser> {
        let profile = tempfile::tempdir().context("a profile dir")?;
        let port = crate::etcd::free_port()?;
        let driver = std::os::unix::process::CommandExt::process_group(
            Command::new("chromedriver").arg(format!("--port={port}")).arg("--allowed-ips=127.0.0.1"),
            0,
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting chromedriver")?;
        let client = http_client(4);
        let base = format!("http://127.0.0.1:{port}");
        let mut browser = Browser { driver, client, session: String::new(), _profile: profile };
        let started = Instant::now();
        while browser.client.get(format!("{base}/status")).send().await.is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                bail!("chromedriver did not answer on port {port}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile_arg = format!("--user-data-dir={}", browser._profile.path().display());
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--no-first-run", "--disable-breakpad", profile_arg,
            ]},
        }}});
        let answer = browser.call(reqwest::Method::POST, &format!("{base}/session"), Some(capabilities)).await?;
        let id = answer["sessionId"].as_str().context("no session ID")?;
        browser.session = format!("{base}/session/{id}");
        Ok(browser)
    }

    async fn call(&self, method: reqwest::Method, url: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut request = self.client.request(method, url).timeout(Duration::from_secs(60));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.with_context(|| format!("WebDriver {url}"))?;
        let status = response.status();
        let value: Value = response.json().await.context("WebDriver answer")?;
        if !status.is_success() {
            bail!("WebDriver {url}: {status} {}", value["value"]);
        }
        Ok(value["value"].clone())
    }

    async fn session_call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.session);
        self.call(method, &url, body).await.unwrap_or_else(|err| panic!("{err:#}"))
    }

    /// Loads `url` and waits for the document (not its panels) to load.
    pub async fn goto(&self, url: &str) {
        self.session_call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.session_call(reqwest::Method::GET, "/url", None).await.as_str().unwrap_or_default().to_owned()
    }

    /// Runs `script` (a function body taking `arguments`) in the page and returns its result.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.session_call(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": args}))).await
    }

    /// The text of the first element matching `css`, or `None` when there is none.
    pub async fn text(&self, css: &str) -> Option<String> {
        let found = self
            .execute("const e = document.querySelector(arguments[0]); return e ? e.innerText : null;", json!([css]));
        found.await.as_str().map(str::to_owned)
    }

    /// Waits (up to [`DOM_DEADLINE`]) until an element matches `css` and its text satisfies `check`; returns the text.
    pub async fn wait_for(&self, css: &str, check: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let text = self.text(css).await;
            if let Some(text) = text.as_deref().filter(|text| check(text)) {
                return text.to_owned();
            }
            assert!(
                started.elapsed() < DOM_DEADLINE,
                "timed out waiting for {css:?} at {}; last text: {text:?}; body: {:?}",
                self.url().await,
                self.text("main").await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The WebDriver ID of the first element matching `css`; panics when none does.
    async fn element(&self, css: &str) -> String {
        let found = self
            .session_call(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css})))
            .await;
        let id = found.as_object().and_then(|o| o.values().next()).and_then(Value::as_str);
        id.unwrap_or_else(|| panic!("no element {css:?}")).to_owned()
    }

    /// Clicks the first element matching `css`, as a user would.
    pub async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.session_call(reqwest::Method::POST, &format!("/element/{id}/click"), Some(json!({}))).await;
    }

    /// Replaces the content of the field matching `css` with `text`, typed key by key.
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.session_call(reqwest::Method::POST, &format!("/element/{id}/clear"), Some(json!({}))).await;
        self.session_call(reqwest::Method::POST, &format!("/element/{id}/value"), Some(json!({"text": text}))).await;
    }

    /// Resizes the window (a phone-width screenshot, say).
    pub async fn resize(&self, width: u32, height: u32) {
        let rect = json!({"width": width, "height": height});
        self.session_call(reqwest::Method::POST, "/window/rect", Some(rect)).await;
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        let encoded = self.session_call(reqwest::Method::GET, "/screenshot", None).await;
        crate::http::unb64(encoded.as_str().unwrap_or_default())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver leads its own group, so this ends Chromium's processes too.
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.wait();
    }
}
