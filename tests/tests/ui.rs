//! The web UI in a real headless Chromium (Debian's `chromium` and `chromium-driver`): every page against a `-dev`
//! agent with services, nodes, keys, a session and a job; a failing check turning the service page critical without a
//! reload; keys created, edited and deleted through the UI and read back through the API; a lost check-and-set
//! reported with the new value; an ACL-denied panel naming its permission; `/` redirecting; the UI off and moved.
//!
//! Skipped with a printed reason when Chromium or chromedriver is missing, unless `CI` is set. With
//! `ROSTER_UI_SCREENSHOTS=<dir>` the first test also saves the screenshots README shows (`docs/ui/`).

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use roster_tests::browser::{self, Browser};
use roster_tests::{AgentMode, TestAgent, eventually};
use serde_json::{Value, json};

/// How long an API read may take to show what the UI wrote: the write is acknowledged within milliseconds.
const API_DEADLINE: Duration = Duration::from_secs(10);

async fn register(agent: &TestAgent, path: &str, body: Value) {
    agent.put_json(path, &body).await.expect_status(200);
}

/// Two local services with TTL checks, a node with a service registered through the catalog, and keys (one of them
/// binary) under names with spaces and unicode.
async fn seed(agent: &TestAgent) {
    let web = json!({"Name": "web", "ID": "web-1", "Port": 8080, "Tags": ["v1", "blue"], "Meta": {"team": "edge"},
        "Check": {"CheckID": "web-ttl", "Name": "web alive", "TTL": "10m", "Status": "passing"}});
    register(agent, "/v1/agent/service/register", web).await;
    let db = json!({"Name": "db", "ID": "db-1", "Port": 5432,
        "Check": {"CheckID": "db-ttl", "TTL": "10m", "Status": "passing"}});
    register(agent, "/v1/agent/service/register", db).await;
    let edge = json!({"Node": "edge-1", "Address": "10.1.2.3", "Service": {"Service": "legacy lb", "Port": 80}});
    register(agent, "/v1/catalog/register", edge).await;
    agent.put("/v1/kv/app/config/db%20url", "postgres://db").await.expect_status(200);
    agent.put("/v1/kv/app/%C3%BCn%C3%AF/blob", vec![0xff, 0x00, 0xfe]).await.expect_status(200);
}

/// Starts an exec job on the host's filesystem (`-dev` allows it); `None`, with the reason printed, when not root.
async fn start_job(agent: &TestAgent) -> Option<&'static str> {
    let root = std::fs::read_to_string("/proc/self/status")
        .is_ok_and(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")));
    if !root {
        assert!(std::env::var("ROSTER_REQUIRE_EXEC").as_deref() != Ok("1"), "ROSTER_REQUIRE_EXEC=1 but not root");
        println!("skipping the jobs page: exec tasks need root");
        return None;
    }
    let spec = json!({"name": "ticker", "tasks": [{
        "name": "main", "driver": "exec", "command": "/bin/sh",
        "args": ["-c", "echo hello from the job; exec sleep 600"],
        "stop_timeout": "1s", "services": [{"name": "ticker-svc"}],
    }]});
    agent.put_json("/v1/agent/job", &spec).await.expect_status(200);
    eventually("the job's first log line", API_DEADLINE, || async {
        let logs = agent.get("/v1/agent/job/ticker/logs").await;
        logs.text().contains("hello from the job").then_some(())
    })
    .await;
    Some("ticker")
}

/// Saves a screenshot of the current page when `ROSTER_UI_SCREENSHOTS` names a directory.
async fn screenshot(browser: &Browser, name: &str) {
    let Some(dir) = std::env::var_os("ROSTER_UI_SCREENSHOTS").map(PathBuf::from) else { return };
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    std::fs::write(dir.join(format!("{name}.png")), browser.screenshot().await).expect("write screenshot");
}

async fn kv_raw(agent: &TestAgent, path: &str) -> Option<String> {
    let read = agent.get(&format!("{path}?raw")).await;
    (read.status == 200).then(|| read.text())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_shows_the_cluster_live_and_edits_keys() {
    if !browser::may_run() {
        return;
    }
    let agent = TestAgent::dev("ui-node").await;
    seed(&agent).await;
    let job = start_job(&agent).await;
    let session = agent.put_json("/v1/session/create", &json!({"Name": "ui-lock"})).await.json()["ID"].clone();
    let session = session.as_str().expect("session ID").to_owned();
    agent.put(&format!("/v1/kv/locks/leader?acquire={session}"), "me").await.expect_status(200);
    let browser = Browser::start().await.expect("browser");
    let base = format!("http://{}", agent.http_addr());

    // `/` sends the browser to the UI, whose front page lists the services.
    browser.goto(&format!("{base}/")).await;
    assert_eq!(browser.url().await, format!("{base}/ui/"));
    let web = browser.wait_for(r#"tr[data-service="web"]"#, |text| text.contains("2 passing")).await;
    assert!(web.contains("v1") && web.contains("blue"), "{web}");
    browser.wait_for(r#"tr[data-service="legacy lb"]"#, |text| text.contains("no checks")).await;

    // A failing check shows on the open service page, without a reload.
    browser.goto(&format!("{base}/ui/services/web")).await;
    let instance = r#"article[data-instance="web-1"]"#;
    let shown = browser.wait_for(&format!("{instance}[data-status=\"passing\"]"), |t| t.contains("ui-node")).await;
    assert!(shown.contains("team") && shown.contains("edge") && shown.contains(":8080"), "{shown}");
    browser.execute("window.sameDocument = true; return null;", json!([])).await;
    agent.put("/v1/agent/check/fail/web-ttl?note=disk%20full", "").await.expect_status(200);
    let critical = format!("{instance}[data-status=\"critical\"]");
    browser.wait_for(&critical, |text| text.contains("disk full") && text.contains("ttl")).await;
    let same = browser.execute("return window.sameDocument === true;", json!([])).await;
    assert_eq!(same, json!(true), "the page changed without a reload");
    screenshot(&browser, "service").await;

    // The list now has the failing service first; the filter box narrows it.
    browser.goto(&format!("{base}/ui/")).await;
    let first = "table[data-filterable] tbody tr:first-child";
    browser.wait_for(first, |text| text.starts_with("web") && text.contains("1 critical")).await;
    screenshot(&browser, "services").await;
    browser.type_into("#filter", "legacy").await;
    let visible = browser
        .execute(
            "return [...document.querySelectorAll('tbody tr')].filter(r => !r.hidden).map(r => r.dataset.service);",
            json!([]),
        )
        .await;
    assert_eq!(visible, json!(["legacy lb"]));
    // At phone width nothing needs sideways scrolling.
    browser.resize(390, 844).await;
    let fits = browser.execute("return document.documentElement.scrollWidth <= window.innerWidth;", json!([])).await;
    assert_eq!(fits, json!(true), "the services page fits a phone-width screen");
    browser.resize(1280, 900).await;

    // Nodes and a node.
    browser.goto(&format!("{base}/ui/nodes/")).await;
    let own = browser.wait_for(r#"tr[data-node="ui-node"]"#, |text| text.contains("passing")).await;
    assert!(own.contains("web") && own.contains("db"), "{own}");
    browser.wait_for(r#"tr[data-node="edge-1"]"#, |text| text.contains("10.1.2.3") && text.contains("legacy lb")).await;
    screenshot(&browser, "nodes").await;
    browser.click(r#"tr[data-node="edge-1"] th a"#).await;
    browser.wait_for(".panel", |text| text.contains("legacy lb") && text.contains("10.1.2.3:80")).await;

    // KV: folders, a binary value, then a key created, edited and deleted through the UI.
    browser.goto(&format!("{base}/ui/kv/")).await;
    browser.wait_for(r#"li[data-key="app/"]"#, |_| true).await;
    browser.click(r#"li[data-key="app/"] a"#).await;
    browser.wait_for(r#"li[data-key="app/ünï/"]"#, |_| true).await;
    browser.goto(&format!("{base}/ui/kv/app/%C3%BCn%C3%AF/blob")).await;
    browser.wait_for("pre.value", |text| text == "/wD+").await;

    browser.goto(&format!("{base}/ui/kv/app/config/")).await;
    browser.wait_for(r#"li[data-key="app/config/db url"]"#, |_| true).await;
    screenshot(&browser, "kv").await;
    browser.type_into("#kv-new-name", "flags ü/dark mode").await;
    browser.type_into("#kv-new-value", "on").await;
    browser.click("form.kv-create button[type=submit]").await;
    let key = "/v1/kv/app/config/flags%20%C3%BC/dark%20mode";
    eventually("the key created in the UI", API_DEADLINE, || async {
        kv_raw(&agent, key).await.filter(|value| value == "on")
    })
    .await;
    browser.wait_for(r#"li[data-key="app/config/flags ü/"]"#, |_| true).await;

    browser.goto(&format!("{base}/ui/kv/app/config/flags%20%C3%BC/dark%20mode")).await;
    browser.wait_for("pre.value", |text| text == "on").await;
    browser.type_into("#kv-value", "off").await;
    browser.click("form.kv-edit button[type=submit]").await;
    browser.wait_for("#status", |text| text.contains("Saved")).await;
    browser.wait_for("pre.value", |text| text == "off").await;
    assert_eq!(kv_raw(&agent, key).await.as_deref(), Some("off"));

    // Someone else writes while the form is being edited: the save is refused, and the new value shown.
    browser.type_into("#kv-value", "mine").await;
    agent.put(key, "theirs").await.expect_status(200);
    browser.click("form.kv-edit button[type=submit]").await;
    browser.wait_for("#status", |text| text.contains("changed by someone else")).await;
    browser.wait_for("pre.value", |text| text == "theirs").await;
    assert_eq!(kv_raw(&agent, key).await.as_deref(), Some("theirs"));

    let delete = r#"button[data-action="kv-delete"]"#;
    browser.click(delete).await;
    browser.wait_for(delete, |text| text.contains("Confirm")).await;
    browser.click(delete).await;
    eventually("the key deleted in the UI", API_DEADLINE, || async {
        kv_raw(&agent, key).await.is_none().then_some(())
    })
    .await;
    browser.wait_for(".panel", |text| text.contains("No key named")).await;

    // A folder goes with everything in it, and nothing else.
    browser.goto(&format!("{base}/ui/kv/app/")).await;
    let folder = r#"li[data-key="app/config/"] button"#;
    browser.wait_for(folder, |_| true).await;
    browser.click(folder).await;
    browser.wait_for(folder, |text| text.contains("everything in it")).await;
    browser.click(folder).await;
    eventually("the folder deleted in the UI", API_DEADLINE, || async {
        (agent.get("/v1/kv/app/config/?recurse").await.status == 404).then_some(())
    })
    .await;
    browser.wait_for(".panel", |text| !text.contains("config/")).await;
    assert!(kv_raw(&agent, "/v1/kv/app/%C3%BCn%C3%AF/blob").await.is_some(), "the neighbouring folder is kept");

    // Sessions and locks, Raft, and the job.
    browser.goto(&format!("{base}/ui/sessions/")).await;
    browser.wait_for(&format!("tr[data-session=\"{session}\"]"), |text| text.contains("ui-lock")).await;
    browser.wait_for(r#"tr[data-lock="locks/leader"]"#, |text| text.contains(&session)).await;
    browser.goto(&format!("{base}/ui/raft/")).await;
    browser.wait_for(".leader", |text| text.contains("ui-node")).await;
    if let Some(job) = job {
        browser.goto(&format!("{base}/ui/jobs/")).await;
        let shown = browser.wait_for(&format!("article[data-job=\"{job}\"]"), |t| t.contains("running")).await;
        assert!(
            shown.contains("exec") && shown.contains("ticker-svc") && shown.contains("hello from the job"),
            "{shown}"
        );
        agent.delete(&format!("/v1/agent/job/{job}")).await.expect_status(200);
    }
}

const ROOT_TOKEN: &str = "5f0c7a4e-9d1b-4c63-8f2e-0a1b2c3d4e5f";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_denied_panel_names_the_missing_permission_until_a_token_is_given() {
    if !browser::may_run() {
        return;
    }
    let acl = json!({"acl": {"enabled": true, "default_policy": "deny", "tokens": {"initial_management": ROOT_TOKEN}}});
    let agent = TestAgent::start_with_config("ui-acl", AgentMode::Dev, acl).await.expect("agent");
    let browser = Browser::start().await.expect("browser");
    let base = format!("http://{}", agent.http_addr());

    browser.goto(&format!("{base}/ui/acl/")).await;
    let denied = browser.wait_for(".panel .denied", |text| text.contains("acl:read")).await;
    assert!(denied.contains("This panel needs acl:read"), "{denied}");
    browser.goto(&format!("{base}/ui/services/")).await;
    browser.wait_for(".panel .note", |text| text.contains("service:read")).await;

    // The token typed once is kept in the browser and sent with every panel's request.
    browser.type_into("#token", ROOT_TOKEN).await;
    browser.click("#token-form button").await;
    browser.wait_for(r#"tr[data-service="consul"]"#, |_| true).await;
    browser.goto(&format!("{base}/ui/acl/")).await;
    browser.wait_for(r#"tr[data-token="00000000-0000-0000-0000-000000000002"]"#, |_| true).await;
    browser.wait_for(r#"tr[data-policy="global-management"]"#, |_| true).await;
}

/// The status line and headers of a plain `GET path`, read off the socket (no client-side redirect following).
fn raw_get(agent: &TestAgent, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(agent.http_addr()).expect("connect");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: roster\r\nConnection: close\r\n\r\n").expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    answer.split("\r\n\r\n").next().unwrap_or_default().to_ascii_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_is_404_when_off_and_follows_its_content_path() {
    let off = json!({"ui_config": {"enabled": false}});
    let off = TestAgent::start_with_config("ui-off", AgentMode::Dev, off).await.expect("agent");
    assert_eq!(off.get("/ui/").await.status, 404);
    assert_eq!(off.get("/ui/services/web").await.status, 404);
    assert_eq!(off.get("/").await.status, 404);

    let moved = json!({"ui_config": {"content_path": "/dash"}});
    let moved = TestAgent::start_with_config("ui-moved", AgentMode::Dev, moved).await.expect("agent");
    let root = raw_get(&moved, "/");
    assert!(root.starts_with("http/1.1 301") && root.contains("\r\nlocation: /dash/\r\n"), "{root}");
    let bare = raw_get(&moved, "/dash");
    assert!(bare.starts_with("http/1.1 301") && bare.contains("\r\nlocation: /dash/\r\n"), "{bare}");
    assert_eq!(moved.get("/ui/").await.status, 404);
    let page = moved.get("/dash/services/web").await;
    page.expect_status(200);
    assert_eq!(
        page.header("content-security-policy").as_deref(),
        Some(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        )
    );
    assert_eq!(page.header("x-content-type-options").as_deref(), Some("nosniff"));
    let html = page.text();
    assert!(html.contains(r#"data-panel="/dash/-/panel/service/web""#), "{html}");
    let script = html.split(r#"<script src=""#).nth(1).and_then(|rest| rest.split('"').next()).expect("script");
    let asset = moved.get(script).await;
    asset.expect_status(200);
    assert!(asset.header("cache-control").is_some_and(|v| v.contains("immutable")), "{:?}", asset.headers);
    assert!(asset.header("content-security-policy").is_some());

    // A panel is a blocking read: it answers an index, and refuses what it does not take by name.
    let panel = moved.get("/dash/-/panel/services").await;
    panel.expect_status(200);
    assert!(panel.header("x-consul-index").is_some());
    assert!(panel.text().contains(r#"data-service="consul""#), "{}", panel.text());
    let refused = moved.get("/dash/-/panel/services?recurse").await;
    assert_eq!(refused.status, 400);
    assert!(refused.text().contains("\"recurse\""), "{}", refused.text());
}
