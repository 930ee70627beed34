//! ACL auth methods, binding rules, `roster login` and `roster logout` end to end, as an operator and a workload use them.
//!
//! The test holds an ES256 key: it configures a `jwt` auth method with the public half as PEM, binds logins whose
//! `role` claim is `web` to the service identity named by their `service` claim, signs JWTs itself, and logs in through the
//! real binary's CLI. The minted token may register service `web` and may not write KV; logout deletes it; an expired,
//! wrongly signed or unmatched JWT gets no token; deleting the method deletes what it minted. A client agent joined to the
//! server forwards a login, and the token it returns works.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use roster_tests::{AgentMode, CliOutput, JwtIssuer as Issuer, Resp, TestAgent, eventually};
use serde_json::{Value, json};

const ISSUER: &str = "https://ci.example";
const AUDIENCE: &str = "roster";

fn now_secs() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970");
    i64::try_from(since.as_secs()).expect("seconds fit")
}

/// Claims a CI system would put in a workload's JWT, valid for five minutes from now.
fn claims(role: &str, service: &str) -> Value {
    let now = now_secs();
    json!({"iss": ISSUER, "aud": [AUDIENCE], "sub": service, "iat": now, "nbf": now, "exp": now + 300, "role": role, "service": service})
}

async fn roster(agent: &TestAgent, args: &[&str]) -> CliOutput {
    let addr = agent.http_addr().to_string();
    agent.cli_env(args, &[("CONSUL_HTTP_ADDR", addr.as_str())]).await
}

async fn call(agent: &TestAgent, token: &str, method: Method, path: &str, body: Option<Value>) -> Resp {
    let headers: Vec<(&str, &str)> = if token.is_empty() { vec![] } else { vec![("X-Consul-Token", token)] };
    agent.request_with_headers(method, path, &headers, body.map(|b| b.to_string().into_bytes())).await
}

/// A `-dev` agent with ACLs on under deny, bootstrapped; the agent and the management secret.
async fn dev_acl(name: &str) -> (TestAgent, String) {
    let config = json!({"acl": {"enabled": true, "default_policy": "deny"}});
    let agent = TestAgent::start_with_config(name, AgentMode::Dev, config).await.expect("agent starts");
    let res = agent.put("/v1/acl/bootstrap", "").await;
    res.expect_status(200);
    let root = res.json()["SecretID"].as_str().expect("SecretID").to_owned();
    (agent, root)
}

/// Creates the `ci` method trusting `issuer` and the web rule through the CLI, as an operator would.
async fn configure(agent: &TestAgent, root: &str, issuer: &Issuer, dir: &Path) {
    let config = json!({
        "JWTValidationPubKeys": [issuer.public_pem],
        "JWTSupportedAlgs": ["ES256"],
        "BoundIssuer": ISSUER,
        "BoundAudiences": [AUDIENCE],
        "ClaimMappings": {"role": "role", "service": "service"},
    });
    let config_file = dir.join("jwt.json");
    std::fs::write(&config_file, config.to_string()).expect("write config");
    let config_arg = format!("@{}", config_file.display());
    let create = roster(
        agent,
        &[
            "acl",
            "auth-method",
            "create",
            "-token",
            root,
            "-type",
            "jwt",
            "-name",
            "ci",
            "-max-token-ttl",
            "1h",
            "-description",
            "CI workloads",
            "-config",
            &config_arg,
        ],
    )
    .await;
    create.expect_success();
    assert!(
        create.stdout.contains("Name:          ci\n") && create.stdout.contains("MaxTokenTTL:   1h0m0s"),
        "{create:?}"
    );
    let rule = roster(
        agent,
        &[
            "acl",
            "binding-rule",
            "create",
            "-token",
            root,
            "-method",
            "ci",
            "-selector",
            r#"value.role == "web""#,
            "-bind-type",
            "service",
            "-bind-name",
            "${value.service}",
        ],
    )
    .await;
    rule.expect_success();
    assert!(rule.stdout.contains("BindName:     ${value.service}"), "{rule:?}");
}

/// `roster login` with `jwt` as the bearer token: the CLI's output and the sink file's contents.
async fn login(agent: &TestAgent, dir: &Path, jwt: &str, n: u32) -> (CliOutput, Option<String>) {
    let bearer = dir.join(format!("bearer-{n}"));
    std::fs::write(&bearer, jwt).expect("write bearer token");
    let sink = dir.join(format!("token-{n}"));
    let out = roster(
        agent,
        &[
            "login",
            "-method",
            "ci",
            "-bearer-token-file",
            &bearer.display().to_string(),
            "-token-sink-file",
            &sink.display().to_string(),
            "-meta",
            "pod=web-1",
        ],
    )
    .await;
    let secret = std::fs::read_to_string(&sink).ok();
    if secret.is_some() {
        let mode = std::fs::metadata(&sink).expect("sink metadata").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the sink file is private");
    }
    (out, secret)
}

#[tokio::test]
async fn jwt_login_mints_a_service_token_and_logout_and_method_delete_remove_it() {
    let (agent, root) = dev_acl("acl-login").await;
    let issuer = Issuer::new();
    let dir = tempfile::tempdir().expect("temp dir");
    configure(&agent, &root, &issuer, dir.path()).await;

    let (out, secret) = login(&agent, dir.path(), &issuer.sign(&claims("web", "web")), 1).await;
    out.expect_success();
    let secret = secret.expect("login wrote the sink file");

    // The token is a service identity for `web`: it registers `web`, and nothing more.
    let register =
        call(&agent, &secret, Method::PUT, "/v1/agent/service/register", Some(json!({"Name": "web", "Port": 80})))
            .await;
    register.expect_status(200);
    let other = call(&agent, &secret, Method::PUT, "/v1/agent/service/register", Some(json!({"Name": "db"}))).await;
    assert_eq!(other.status, 403, "{}", other.text());
    let kv = call(&agent, &secret, Method::PUT, "/v1/kv/app/x", Some(json!("v"))).await;
    assert_eq!(kv.status, 403, "{}", kv.text());
    assert!(kv.text().contains("lacks permission 'key:write'"), "{}", kv.text());

    // It says where it came from, as Consul's login tokens do.
    let own = call(&agent, &secret, Method::GET, "/v1/acl/token/self", None).await;
    own.expect_status(200);
    let own = own.json();
    assert_eq!(own["AuthMethod"], "ci");
    assert_eq!(own["Description"], r#"token created via login: {"pod":"web-1"}"#);
    assert_eq!(own["ServiceIdentities"], json!([{"ServiceName": "web"}]));
    assert!(own["Local"].as_bool().expect("Local"), "TokenLocality defaults to local");
    assert!(own["ExpirationTime"].is_string(), "MaxTokenTTL bounds the token: {own}");
    let minted = call(&agent, &root, Method::GET, "/v1/acl/tokens?authmethod=ci", None).await.json();
    assert_eq!(minted.as_array().map(Vec::len), Some(1), "{minted}");

    // Logout deletes the login token; the management token is not a login token.
    let not_login = roster(&agent, &["logout", "-token", &root]).await;
    assert_eq!(not_login.code, Some(1));
    assert!(not_login.stderr.contains("403 (Permission denied)"), "{not_login:?}");
    roster(&agent, &["logout", "-token", &secret]).await.expect_success();
    let gone = call(&agent, &secret, Method::GET, "/v1/acl/token/self", None).await;
    assert_eq!((gone.status, gone.text().trim()), (403, "ACL not found"));

    // Deleting the method deletes its rules and every token it minted.
    let (out, again) = login(&agent, dir.path(), &issuer.sign(&claims("web", "web")), 2).await;
    out.expect_success();
    let again = again.expect("second login");
    roster(&agent, &["acl", "auth-method", "delete", "-token", &root, "-name", "ci"]).await.expect_success();
    let gone = call(&agent, &again, Method::GET, "/v1/acl/token/self", None).await;
    assert_eq!((gone.status, gone.text().trim()), (403, "ACL not found"));
    let rules = call(&agent, &root, Method::GET, "/v1/acl/binding-rules", None).await;
    assert_eq!(rules.json(), json!([]));
}

#[tokio::test]
async fn bad_jwts_and_unmatched_claims_get_no_token() {
    let (agent, root) = dev_acl("acl-login-refused").await;
    let issuer = Issuer::new();
    let dir = tempfile::tempdir().expect("temp dir");
    configure(&agent, &root, &issuer, dir.path()).await;
    let mut expired = claims("web", "web");
    // Past Consul's default leeways (150 s for exp plus 60 s of clock skew).
    expired["exp"] = json!(now_secs() - 600);
    let mut wrong_audience = claims("web", "web");
    wrong_audience["aud"] = json!("someone-else");
    let cases = [
        (issuer.sign(&expired), "token is expired"),
        (Issuer::new().sign(&claims("web", "web")), "failed to verify signature"),
        (issuer.sign(&wrong_audience), "invalid audience"),
        (issuer.sign(&claims("db", "db")), "403 (Permission denied)"),
    ];
    for (n, (jwt, expect)) in (10..).zip(cases) {
        let (out, secret) = login(&agent, dir.path(), &jwt, n).await;
        assert_eq!(out.code, Some(1), "{out:?}");
        assert!(out.stderr.starts_with("Error logging in: Unexpected response code: 403"), "{out:?}");
        assert!(out.stderr.contains(expect), "{expect}: {out:?}");
        assert!(secret.is_none(), "no sink file is written");
    }
    let minted = call(&agent, &root, Method::GET, "/v1/acl/tokens?authmethod=ci", None).await.json();
    assert_eq!(minted, json!([]), "a refused login writes nothing");
}

#[tokio::test]
async fn methods_and_rules_in_consuls_shapes_and_refusals() {
    let (agent, root) = dev_acl("acl-login-api").await;
    let issuer = Issuer::new();
    let dir = tempfile::tempdir().expect("temp dir");
    configure(&agent, &root, &issuer, dir.path()).await;

    let method = call(&agent, &root, Method::GET, "/v1/acl/auth-method/ci", None).await;
    method.expect_status(200);
    let method = method.json();
    assert_eq!((method["Name"].as_str(), method["Type"].as_str()), (Some("ci"), Some("jwt")));
    assert_eq!(method["MaxTokenTTL"], "1h0m0s");
    assert_eq!(method["Config"]["BoundIssuer"], ISSUER);
    let list = call(&agent, &root, Method::GET, "/v1/acl/auth-methods", None).await.json();
    assert_eq!(list[0]["Name"], "ci");
    assert!(list[0].get("Config").is_none(), "the list shows stubs: {list}");
    let rules = call(&agent, &root, Method::GET, "/v1/acl/binding-rules?authmethod=ci", None).await.json();
    let rule_id = rules[0]["ID"].as_str().expect("rule ID").to_owned();
    let rule = call(&agent, &root, Method::GET, &format!("/v1/acl/binding-rule/{rule_id}"), None).await.json();
    assert_eq!(rule["Selector"], r#"value.role == "web""#);
    assert_eq!(rule["BindType"], "service");
    let none = call(&agent, &root, Method::GET, "/v1/acl/binding-rules?authmethod=other", None).await.json();
    assert_eq!(none, json!([]));

    // Reading needs acl:read: the anonymous token gets Consul's denial.
    let anonymous = call(&agent, "", Method::GET, "/v1/acl/auth-methods", None).await;
    assert_eq!(anonymous.status, 403, "{}", anonymous.text());
    let missing = call(&agent, &root, Method::GET, "/v1/acl/auth-method/nope", None).await;
    assert_eq!(missing.status, 404);

    let refusals = [
        (json!({"Name": "x", "Type": "jwt", "Config": {"JWKSURL": "https://keys"}}), "Config.JWKSURL is not supported"),
        (
            json!({"Name": "x", "Type": "jwt", "Config": {"JWTValidationPubKeys": [issuer.public_pem], "Typo": 1}}),
            "Config.Typo",
        ),
        (json!({"Name": "x", "Type": "kubernetes", "Config": {}}), "Type should be one of"),
        (json!({"Name": "x", "Type": "jwt", "Namespace": "team", "Config": {}}), "\"Namespace\" is not supported"),
        (
            json!({"Name": "ci", "Type": "jwt", "Config": {"JWTValidationPubKeys": [issuer.public_pem]}}),
            "already in use",
        ),
    ];
    for (body, expect) in refusals {
        let res = call(&agent, &root, Method::PUT, "/v1/acl/auth-method", Some(body.clone())).await;
        assert_eq!(res.status, 400, "{body}: {}", res.text());
        assert!(res.text().contains(expect), "{body}: {}", res.text());
    }
    let bad_rules = [
        (
            json!({"AuthMethod": "ci", "BindType": "service", "BindName": "${value.nope}"}),
            "unknown variable accessed: value.nope",
        ),
        (
            json!({"AuthMethod": "ci", "BindType": "service", "BindName": "web", "Selector": "value.role =="}),
            "invalid Selector",
        ),
        (json!({"AuthMethod": "missing", "BindType": "service", "BindName": "web"}), "unknown AuthMethod"),
        (
            json!({"AuthMethod": "ci", "BindType": "service", "BindName": "web", "Selector": "value.rol == web"}),
            "Selector \"value.rol\" is not valid",
        ),
    ];
    for (body, expect) in bad_rules {
        let res = call(&agent, &root, Method::PUT, "/v1/acl/binding-rule", Some(body.clone())).await;
        assert_eq!(res.status, 400, "{body}: {}", res.text());
        assert!(res.text().contains(expect), "{body}: {}", res.text());
    }
}

#[tokio::test]
async fn a_client_agent_forwards_login_to_a_server() {
    let (server, root) = dev_acl("acl-login-server").await;
    let issuer = Issuer::new();
    let dir = tempfile::tempdir().expect("temp dir");
    configure(&server, &root, &issuer, dir.path()).await;
    let serf = server.serf_addr().to_string();
    let data_dir = dir.path().join("client-data");
    let args = [
        "-data-dir",
        &data_dir.display().to_string(),
        "-retry-join",
        &serf,
        "-bind",
        "127.0.0.1",
        "-client",
        "127.0.0.1",
    ]
    .map(str::to_owned)
    .to_vec();
    let config = json!({"acl": {"enabled": true, "default_policy": "deny", "tokens": {"agent": root}}});
    let client =
        TestAgent::start_with_config("acl-login-client", AgentMode::Args(args), config).await.expect("client starts");
    // The client logs in as soon as it knows a server.
    let jwt = issuer.sign(&claims("web", "web"));
    let body = json!({"AuthMethod": "ci", "BearerToken": jwt});
    let token = eventually("the client agent forwards a login", Duration::from_secs(30), || async {
        let res = call(&client, "", Method::POST, "/v1/acl/login", Some(body.clone())).await;
        (res.status == 200).then(|| res.json())
    })
    .await;
    let secret = token["SecretID"].as_str().expect("SecretID");
    assert_eq!(token["AuthMethod"], "ci");
    // The server holds the token the client returned.
    let own = call(&server, secret, Method::GET, "/v1/acl/token/self", None).await;
    own.expect_status(200);
    assert_eq!(own.json()["AccessorID"], token["AccessorID"]);
    // Logout through the client deletes it on the server.
    call(&client, secret, Method::POST, "/v1/acl/logout", None).await.expect_status(200);
    let gone = call(&server, secret, Method::GET, "/v1/acl/token/self", None).await;
    assert_eq!(gone.status, 403);
}
