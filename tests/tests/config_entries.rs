//! Config entries over HTTP, the CLI and py-consul against a dev agent: `service-defaults` and `proxy-defaults` written,
//! read, listed and deleted with Consul's check-and-set, a blocking list woken by a write, other kinds and mesh-only
//! fields refused with a 400 that names them (and nothing stored), and Consul's per-kind ACLs.

use roster_tests::{AgentMode, TestAgent};
use serde_json::{Value, json};

#[tokio::test]
async fn entries_are_written_read_listed_and_deleted_with_check_and_set() {
    let agent = TestAgent::dev("config-crud").await;
    let web = json!({"Kind": "service-defaults", "Name": "web", "Protocol": "HTTP", "Meta": {"team": "a"}});
    assert_eq!(agent.put_json("/v1/config?cas=0", &web).await.expect_status(200).json(), json!(true));
    // cas=0 writes only a new entry.
    let grpc = json!({"Kind": "service-defaults", "Name": "web", "Protocol": "grpc"});
    assert_eq!(agent.put_json("/v1/config?cas=0", &grpc).await.json(), json!(false));

    let res = agent.get("/v1/config/service-defaults/web").await;
    let entry = res.expect_status(200).json();
    assert_eq!((entry["Kind"].clone(), entry["Name"].clone()), (json!("service-defaults"), json!("web")));
    assert_eq!(entry["Protocol"], "http", "the protocol is lowercased as Consul's Normalize does");
    assert_eq!(entry["Meta"], json!({"team": "a"}));
    let index = entry["ModifyIndex"].as_u64().expect("ModifyIndex");
    assert_eq!(entry["CreateIndex"].as_u64(), Some(index));
    assert!(res.index() >= index);

    // A CAS on a stale index changes nothing; on the current one it writes.
    assert_eq!(agent.put_json(&format!("/v1/config?cas={}", index + 100), &grpc).await.json(), json!(false));
    assert_eq!(agent.get("/v1/config/service-defaults/web").await.json()["Protocol"], "http");
    assert_eq!(agent.put_json(&format!("/v1/config?cas={index}"), &grpc).await.json(), json!(true));
    let entry = agent.get("/v1/config/service-defaults/web").await.json();
    assert_eq!((entry["Protocol"].clone(), entry["CreateIndex"].as_u64()), (json!("grpc"), Some(index)));
    let modified = entry["ModifyIndex"].as_u64().expect("ModifyIndex");

    agent.put_json("/v1/config", &json!({"Kind": "service-defaults", "Name": "api"})).await.expect_status(200);
    agent
        .put_json("/v1/config", &json!({"Kind": "proxy-defaults", "Config": {"protocol": "http"}}))
        .await
        .expect_status(200);
    let names = |list: &Value| -> Vec<String> {
        list.as_array().expect("a list").iter().map(|e| e["Name"].as_str().unwrap_or_default().to_owned()).collect()
    };
    assert_eq!(names(&agent.get("/v1/config/service-defaults").await.json()), ["api", "web"]);
    let proxy = agent.get("/v1/config/proxy-defaults/global").await.expect_status(200).json();
    assert_eq!(proxy["Config"], json!({"protocol": "http"}));

    // Delete with a stale CAS is false, with 0 never deletes, with the current index deletes; a plain delete is `{}`.
    let path = "/v1/config/service-defaults/web";
    assert_eq!(agent.delete(&format!("{path}?cas={}", modified + 1)).await.json(), json!(false));
    assert_eq!(agent.delete(&format!("{path}?cas=0")).await.json(), json!(false));
    assert_eq!(agent.delete(&format!("{path}?cas={modified}")).await.json(), json!(true));
    let missing = agent.get(path).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.text().trim(), r#"Config entry not found for "service-defaults" / "web""#);
    assert!(missing.index() > 0, "a 404 still carries X-Consul-Index");
    assert_eq!(agent.delete("/v1/config/service-defaults/api").await.expect_status(200).json(), json!({}));
    assert_eq!(agent.get("/v1/config/service-defaults").await.json(), json!([]));
}

#[tokio::test]
async fn a_blocking_list_wakes_when_an_entry_is_written() {
    let agent = TestAgent::dev("config-blocking").await;
    let index = agent.get("/v1/config/service-defaults").await.expect_status(200).index();
    let waiter = {
        let client = agent.client().clone();
        let url = agent.url(&format!("/v1/config/service-defaults?index={index}&wait=60s"));
        tokio::spawn(async move { client.get(url).send().await.expect("blocking list").json::<Value>().await })
    };
    let body = json!({"Kind": "service-defaults", "Name": "web", "Protocol": "http"});
    agent.put_json("/v1/config", &body).await.expect_status(200);
    let list = waiter.await.expect("join").expect("JSON");
    assert_eq!(list[0]["Name"], "web", "{list}");
}

#[tokio::test]
async fn other_kinds_and_bad_fields_are_refused_and_nothing_is_stored() {
    let agent = TestAgent::dev("config-refusals").await;
    let cases = [
        (
            json!({"Kind": "service-router", "Name": "web"}),
            "config entry kind \"service-router\" is not supported by roster",
        ),
        (json!({"Kind": "made-up", "Name": "web"}), "invalid config entry kind: made-up"),
        (json!({"Name": "web"}), "Payload does not contain a kind/Kind key at the top level"),
        (
            json!({"Kind": "service-defaults", "Name": "web", "Protocol": "carrier-pigeon"}),
            "invalid value for Protocol",
        ),
        (json!({"Kind": "service-defaults", "Name": "web", "Colour": "blue"}), "invalid config key \"Colour\""),
        (
            json!({"Kind": "service-defaults", "Name": "web", "RateLimits": {"InstanceLevel": {"RequestsPerSecond": 5}}}),
            "RateLimits is not supported",
        ),
        (json!({"Kind": "service-defaults", "Name": "web", "MutualTLSMode": "loose"}), "Invalid MutualTLSMode"),
        (json!({"Kind": "proxy-defaults", "Name": "local"}), r#"invalid name ("local"), only "global" is supported"#),
        (json!({"Kind": "service-defaults"}), "Name is required"),
    ];
    for (body, want) in cases {
        let res = agent.put_json("/v1/config", &body).await;
        assert_eq!(res.status, 400, "{body}: {}", res.text());
        assert!(res.text().contains(want), "{body}: {}", res.text());
    }
    let res = agent.get("/v1/config/ingress-gateway").await;
    assert_eq!(res.status, 400);
    assert!(res.text().contains("\"ingress-gateway\" is not supported by roster"), "{}", res.text());
    assert_eq!(agent.get("/v1/config/service-defaults?filter=Name%3D%3Dweb").await.status, 400);
    assert_eq!(agent.get("/v1/config/service-defaults").await.json(), json!([]));
    assert_eq!(agent.get("/v1/config/proxy-defaults").await.json(), json!([]));
}

#[tokio::test]
async fn the_cli_writes_reads_lists_and_deletes() {
    let agent = TestAgent::dev("config-cli").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("web.json");
    std::fs::write(&file, r#"{"Kind": "service-defaults", "Name": "web", "Protocol": "http"}"#).expect("write");
    let file = file.display().to_string();
    let out = agent.cli(&["config", "write", &file]).await;
    assert_eq!(out.expect_success().stdout, "Config entry written: service-defaults/web\n");
    let out = agent.cli(&["config", "write", "-cas", "-modify-index", "0", &file]).await;
    assert_eq!((out.code, out.stderr.as_str()), (Some(1), "Config entry not updated: service-defaults/web\n"));
    let hcl = dir.path().join("web.hcl");
    std::fs::write(&hcl, "Kind = \"service-defaults\"\nName = \"web\"\n").expect("write");
    let out = agent.cli(&["config", "write", &hcl.display().to_string()]).await;
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("HCL config entries are not supported by roster"), "{}", out.stderr);

    let out = agent.cli(&["config", "read", "-kind", "service-defaults", "-name", "web"]).await;
    let entry: Value = serde_json::from_str(&out.expect_success().stdout).expect("JSON");
    assert_eq!(entry["Protocol"], "http");
    assert!(out.stdout.contains("\n    \"Kind\": \"service-defaults\""), "four-space indent: {}", out.stdout);
    let index = entry["ModifyIndex"].as_u64().expect("index").to_string();
    let out = agent.cli(&["config", "list", "-kind", "service-defaults"]).await;
    assert_eq!(out.expect_success().stdout, "web\n");

    let stale = (entry["ModifyIndex"].as_u64().expect("index") + 1).to_string();
    let args = ["config", "delete", "-kind", "service-defaults", "-name", "web", "-cas", "-modify-index"];
    let out = agent.cli(&[&args[..], &[stale.as_str()]].concat()).await;
    assert_eq!((out.code, out.stderr.as_str()), (Some(1), "Config entry not deleted: service-defaults/web\n"));
    let out = agent.cli(&[&args[..], &[index.as_str()]].concat()).await;
    assert_eq!(out.expect_success().stdout, "Config entry deleted: service-defaults/web\n");
    let out = agent.cli(&["config", "read", "-kind", "service-defaults", "-name", "web"]).await;
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("Config entry not found"), "{}", out.stderr);
}

#[tokio::test]
async fn acls_follow_consuls_rules_per_kind() {
    let acl = json!({"acl": {"enabled": true, "default_policy": "deny"}});
    let agent = TestAgent::start_with_config("config-acl", AgentMode::Dev, acl).await.expect("agent with ACLs");
    // Bootstrapping answers once the management token is stored, unlike `initial_management`, which a leader duty
    // creates some time after start.
    let root = agent.put("/v1/acl/bootstrap", "").await.expect_status(200).json()["SecretID"]
        .as_str()
        .expect("SecretID")
        .to_owned();
    let admin = [("X-Consul-Token", root.as_str())];
    let request = |method: reqwest::Method, path: &str, token: &str, body: Option<Value>| {
        let req = agent.client().request(method, agent.url(path)).header("X-Consul-Token", token.to_owned());
        let req = match body {
            Some(body) => req.body(body.to_string()),
            None => req,
        };
        async move { req.send().await.expect("request").status().as_u16() }
    };
    let policy = json!({"Name": "web-only", "Rules": "service \"web\" { policy = \"write\" }"});
    let res = agent
        .client()
        .put(agent.url("/v1/acl/policy"))
        .header(admin[0].0, admin[0].1)
        .body(policy.to_string())
        .send()
        .await
        .expect("policy");
    assert_eq!(res.status().as_u16(), 200);
    let token = json!({"Policies": [{"Name": "web-only"}]});
    let res = agent
        .client()
        .put(agent.url("/v1/acl/token"))
        .header(admin[0].0, admin[0].1)
        .body(token.to_string())
        .send()
        .await
        .expect("token");
    let web_secret = res.json::<Value>().await.expect("token JSON")["SecretID"].as_str().expect("secret").to_owned();

    let web = json!({"Kind": "service-defaults", "Name": "web"});
    let db = json!({"Kind": "service-defaults", "Name": "db"});
    let proxy = json!({"Kind": "proxy-defaults", "Config": {"protocol": "http"}});
    assert_eq!(request(reqwest::Method::PUT, "/v1/config", &web_secret, Some(web)).await, 200);
    assert_eq!(request(reqwest::Method::PUT, "/v1/config", &web_secret, Some(db.clone())).await, 403);
    assert_eq!(
        request(reqwest::Method::PUT, "/v1/config", &web_secret, Some(proxy.clone())).await,
        403,
        "needs mesh:write"
    );
    assert_eq!(request(reqwest::Method::PUT, "/v1/config", &root, Some(db)).await, 200);
    assert_eq!(request(reqwest::Method::PUT, "/v1/config", &root, Some(proxy)).await, 200);

    // service:read on the name to read an entry; the list leaves out the others; proxy defaults are open to all.
    assert_eq!(request(reqwest::Method::GET, "/v1/config/service-defaults/db", &web_secret, None).await, 403);
    let list = agent
        .client()
        .get(agent.url("/v1/config/service-defaults"))
        .header("X-Consul-Token", &web_secret)
        .send()
        .await
        .expect("list");
    assert_eq!(
        list.headers().get("X-Consul-Results-Filtered-By-ACLs").map(|v| v.as_bytes().to_vec()),
        Some(b"true".to_vec())
    );
    let names: Vec<Value> =
        list.json::<Vec<Value>>().await.expect("JSON").into_iter().map(|e| e["Name"].clone()).collect();
    assert_eq!(names, [json!("web")]);
    assert_eq!(request(reqwest::Method::GET, "/v1/config/proxy-defaults/global", "anonymous", None).await, 200);
    assert_eq!(request(reqwest::Method::DELETE, "/v1/config/service-defaults/db", &web_secret, None).await, 403);
    assert_eq!(request(reqwest::Method::DELETE, "/v1/config/service-defaults/web", &web_secret, None).await, 200);
}

#[tokio::test]
async fn py_consul_config_methods_work_unchanged() {
    if !roster_tests::py_consul::may_run() {
        return;
    }
    let agent = TestAgent::dev("config-py").await;
    let stdout = roster_tests::py_consul::run_script(&agent, "py_consul_config.py", &[]).await;
    assert!(stdout.contains("all py-consul config steps passed"), "{stdout}");
}

#[tokio::test]
async fn merge_central_config_fills_a_sidecars_proxy_from_the_entries() {
    let agent = TestAgent::dev("config-merge").await;
    let sidecar = json!({
        "Kind": "connect-proxy", "ID": "web-sidecar", "Name": "web-sidecar-proxy", "Port": 21000,
        "Proxy": {"DestinationServiceName": "web", "Config": {"connect_timeout_ms": 900}}
    });
    agent.put_json("/v1/agent/service/register", &sidecar).await.expect_status(200);
    agent.put_json("/v1/agent/service/register", &json!({"Name": "web", "Port": 8080})).await.expect_status(200);
    let global = json!({"Kind": "proxy-defaults", "Config": {"protocol": "tcp", "connect_timeout_ms": 500}, "MeshGateway": {"Mode": "local"}});
    agent.put_json("/v1/config", &global).await.expect_status(200);
    agent
        .put_json("/v1/config", &json!({"Kind": "service-defaults", "Name": "web", "Protocol": "grpc"}))
        .await
        .expect_status(200);

    // Without the parameter the registration is returned as it was made.
    let plain = agent.get("/v1/catalog/service/web-sidecar-proxy").await.expect_status(200).json();
    assert_eq!(plain[0]["ServiceProxy"]["Config"], json!({"connect_timeout_ms": 900}));

    // With it, service-defaults' protocol beats proxy-defaults', and the registration's own value beats both.
    let want_config = json!({"connect_timeout_ms": 900, "protocol": "grpc"});
    let merged =
        agent.get("/v1/catalog/service/web-sidecar-proxy?merge-central-config").await.expect_status(200).json();
    assert_eq!(merged[0]["ServiceProxy"]["Config"], want_config);
    assert_eq!(merged[0]["ServiceProxy"]["MeshGateway"], json!({"Mode": "local"}));
    let health = agent.get("/v1/health/service/web-sidecar-proxy?merge-central-config").await.expect_status(200).json();
    assert_eq!(health[0]["Service"]["Proxy"]["Config"], want_config);
    let own = agent.get("/v1/agent/service/web-sidecar?merge-central-config").await.expect_status(200).json();
    assert_eq!(own["Proxy"]["Config"], want_config);

    // A typical service is not a proxy: nothing is merged into it.
    let web = agent.get("/v1/catalog/service/web?merge-central-config").await.expect_status(200).json();
    assert!(web[0]["ServiceProxy"].get("Config").is_none(), "{}", web[0]["ServiceProxy"]);

    // Blocking on a merged answer is refused rather than left unwoken by entry changes.
    let index = merged_index(&agent).await;
    let res = agent.get(&format!("/v1/health/service/web-sidecar-proxy?merge-central-config&index={index}")).await;
    assert_eq!(res.status, 400);
    assert!(res.text().contains("merge-central-config"), "{}", res.text());
}

async fn merged_index(agent: &TestAgent) -> u64 {
    agent.get("/v1/health/service/web-sidecar-proxy").await.index()
}
