//! `roster-lb-helper` driving a real nginx: two backends registered as `web` with TTL checks;
//! traffic through nginx reaches both, only the healthy one while the other's check is
//! critical, and both again once it passes.
//!
//! Needs `nginx` on the PATH. Skipped (with the reason) when it is missing, except under
//! `ROSTER_REQUIRE_DOCKER=1` (CI, whose `.ci/run` installs it), where it must run.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use roster_tests::{TestAgent, eventually};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A child process killed and reaped on drop (nginx is stopped with `-s stop` first, so its
/// workers do not outlive the master).
struct Proc {
    child: Child,
    stop: Option<Command>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(stop) = &mut self.stop {
            let _ = stop.stdout(Stdio::null()).stderr(Stdio::null()).status();
            for _ in 0..50 {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether nginx is installed; panics when CI requires it.
fn nginx_or_skip(test: &str) -> bool {
    let found = Command::new("nginx").arg("-v").stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if found {
        return true;
    }
    if std::env::var("ROSTER_REQUIRE_DOCKER").as_deref() == Ok("1") {
        panic!("ROSTER_REQUIRE_DOCKER=1 but nginx is not installed (needed by {test})");
    }
    eprintln!("skipping {test}: nginx is not installed");
    false
}

/// The `roster-lb-helper` binary, built once per process next to this test's profile directory
/// (`CARGO_BIN_EXE_*` only exists for the package that owns a binary).
fn lb_helper_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("current exe");
        let mut profile_dir = exe.parent().expect("exe dir").to_path_buf();
        if profile_dir.file_name().is_some_and(|name| name == "deps") {
            profile_dir.pop();
        }
        let target_dir = profile_dir.parent().expect("target dir");
        let profile = match profile_dir.file_name().and_then(|name| name.to_str()) {
            Some("debug") => "dev".to_owned(),
            Some(other) => other.to_owned(),
            None => panic!("cannot tell the profile from {}", profile_dir.display()),
        };
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let mut build = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        // The runner's variables would make cargo rebuild half the tree (see the harness).
        for (name, _) in std::env::vars_os() {
            let name_text = name.to_string_lossy();
            let runner =
                (name_text.starts_with("CARGO_") && name_text != "CARGO_HOME" && name_text != "CARGO_TARGET_DIR")
                    || name_text.starts_with("NEXTEST")
                    || name_text.starts_with("__NEXTEST")
                    || name_text == "OUT_DIR"
                    || name_text == "RUSTFLAGS";
            if runner {
                build.env_remove(&name);
            }
        }
        let output = build
            .args(["build", "--quiet", "-p", "roster-lb-helper", "--profile", &profile, "--manifest-path"])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(target_dir)
            .output()
            .expect("running cargo build");
        assert!(output.status.success(), "building roster-lb-helper: {}", String::from_utf8_lossy(&output.stderr));
        profile_dir.join("roster-lb-helper")
    })
    .clone()
}

/// A backend that answers every request with its own name; runs until the test's runtime ends.
async fn name_server(name: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind backend");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let response =
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}", name.len());
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    port
}

/// A free loopback port for nginx.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// nginx's config: foreground, everything under `dir`, the upstream file included.
fn nginx_conf(dir: &Path, port: u16, upstream: &Path) -> String {
    let d = dir.display();
    format!(
        "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/tmp/body;\n  proxy_temp_path {d}/tmp/proxy;\n\
         \x20 fastcgi_temp_path {d}/tmp/fastcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n\
         \x20 include {};\n\
         \x20 server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://web; }} }}\n}}\n",
        upstream.display()
    )
}

/// Names of the backends that answered `n` requests through nginx (errors are left out).
async fn answers(client: &reqwest::Client, port: u16, n: usize) -> Vec<String> {
    let mut names = Vec::new();
    for _ in 0..n {
        if let Ok(res) = client.get(format!("http://127.0.0.1:{port}/")).send().await
            && res.status().is_success()
            && let Ok(text) = res.text().await
        {
            names.push(text);
        }
    }
    names
}

/// Waits until `n` requests in a row are all answered and their set of names is `expect`.
async fn wait_for_backends(client: &reqwest::Client, port: u16, expect: &[&str]) {
    let expect: BTreeSet<String> = expect.iter().map(|name| (*name).to_owned()).collect();
    eventually(&format!("nginx answering from exactly {expect:?}"), Duration::from_secs(30), || async {
        let names = answers(client, port, 12).await;
        (names.len() == 12 && names.iter().cloned().collect::<BTreeSet<_>>() == expect).then_some(())
    })
    .await;
}

#[tokio::test]
async fn nginx_follows_the_health_of_web_through_lb_helper() {
    if !nginx_or_skip("nginx_follows_the_health_of_web_through_lb_helper") {
        return;
    }
    let agent = TestAgent::dev("lb-helper").await;
    let (port_a, port_b) = (name_server("a").await, name_server("b").await);
    for (id, port) in [("web-a", port_a), ("web-b", port_b)] {
        let service = json!({"Name": "web", "ID": id, "Address": "127.0.0.1", "Port": port, "Check": {"TTL": "10m"}});
        agent.put_json("/v1/agent/service/register", &service).await.expect_status(200);
        agent.put(&format!("/v1/agent/check/pass/service:{id}"), "").await.expect_status(200);
    }

    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("tmp")).expect("tmp dir");
    let upstream = dir.path().join("upstream.conf");
    let conf = dir.path().join("nginx.conf");
    let nginx_port = free_port();
    std::fs::write(&conf, nginx_conf(dir.path(), nginx_port, &upstream)).expect("nginx.conf");
    let nginx_args = |extra: &[&str]| {
        let mut command = Command::new("nginx");
        command.arg("-p").arg(dir.path()).arg("-e").arg(dir.path().join("error.log")).arg("-c").arg(&conf);
        command.args(extra);
        command
    };
    let reload = format!("nginx -p {0} -e {0}/error.log -c {1} -s reload", dir.path().display(), conf.display());

    let _helper = Proc {
        child: Command::new(lb_helper_bin())
            .arg(format!("-http-addr={}", agent.http_addr()))
            .args(["-service", "web", "-out"])
            .arg(&upstream)
            .args(["-reload", &reload])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawning roster-lb-helper"),
        stop: None,
    };
    let both_ports = |text: &str| text.contains(&format!(":{port_a} ")) && text.contains(&format!(":{port_b} "));
    eventually("the first upstream file", Duration::from_secs(60), || async {
        both_ports(&std::fs::read_to_string(&upstream).unwrap_or_default()).then_some(())
    })
    .await;

    // The helper's first reload found no nginx running, which it only logs; nginx now starts
    // from the file as it is.
    let _nginx = Proc {
        child: nginx_args(&[]).stdin(Stdio::null()).spawn().expect("spawning nginx"),
        stop: Some(nginx_args(&["-s", "stop"])),
    };
    let client =
        reqwest::Client::builder().pool_max_idle_per_host(0).timeout(Duration::from_secs(5)).build().expect("client");
    wait_for_backends(&client, nginx_port, &["a", "b"]).await;

    agent.put("/v1/agent/check/fail/service:web-b", "").await.expect_status(200);
    wait_for_backends(&client, nginx_port, &["a"]).await;
    let names = answers(&client, nginx_port, 30).await;
    assert!(names.len() == 30 && names.iter().all(|name| name == "a"), "no traffic to the critical b: {names:?}");

    agent.put("/v1/agent/check/pass/service:web-b", "").await.expect_status(200);
    wait_for_backends(&client, nginx_port, &["a", "b"]).await;
}
