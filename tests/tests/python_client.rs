//! The unmodified Python Consul client (`py-consul`) against a dev agent: KV with CAS, recurse, keys and a blocking watch, agent service registration with a TTL check, health, catalog, self and members.
//! A second agent runs with ACLs on (`default_policy = "deny"`) for py-consul's ACL API: tokens, policies, roles,
//! templated policies and the agent's tokens, a KV write refused to a read-only token, and a `jwt` auth method with a
//! binding rule, login (with JWTs this test signs) and logout.
//! The client-side steps live in `tests/py/py_consul_client.py` and `tests/py/py_consul_acl.py`; these tests start the
//! agents and run them.
//! `.ci/run` installs py-consul; elsewhere the test says why it skips when the module is missing.

use roster_tests::py_consul::{may_run, run_script};
use roster_tests::{AgentMode, JwtIssuer, TestAgent};
use serde_json::json;

/// The `acl.tokens.initial_management` secret of the ACL agent.
const MANAGEMENT_SECRET: &str = "5c0a9d3e-7b41-4e8f-a2c6-1d9e3f7b5a20";

#[tokio::test]
async fn py_consul_client_works_unchanged() {
    if !may_run() {
        return;
    }
    let agent = TestAgent::dev("py-consul").await;
    let stdout = run_script(&agent, "py_consul_client.py", &[]).await;
    assert!(stdout.contains("all py-consul steps passed"), "{stdout}");
}

#[tokio::test]
async fn py_consul_acl_api_works_unchanged() {
    if !may_run() {
        return;
    }
    let acl = json!({"acl": {"enabled": true, "default_policy": "deny", "tokens": {"initial_management": MANAGEMENT_SECRET}}});
    let agent = TestAgent::start_with_config("py-consul-acl", AgentMode::Dev, acl)
        .await
        .unwrap_or_else(|err| panic!("starting a dev agent with ACLs: {err:#}"));
    let issuer = JwtIssuer::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let pem_file = dir.path().join("jwt.pem");
    std::fs::write(&pem_file, &issuer.public_pem).expect("write the public key");
    let web_jwt = issuer.sign(&json!({"role": "web", "service": "web"}));
    let other_jwt = issuer.sign(&json!({"role": "db", "service": "db"}));
    let pem_arg = pem_file.display().to_string();
    let stdout = run_script(&agent, "py_consul_acl.py", &[MANAGEMENT_SECRET, &pem_arg, &web_jwt, &other_jwt]).await;
    assert!(stdout.contains("all py-consul acl steps passed"), "{stdout}");
}
