//! `roster acl ...` end to end: a `-dev` agent with ACLs on and no initial management token is
//! bootstrapped from the CLI, and the bootstrap secret then drives policies, tokens and the
//! agent's own token, all through the real binary. Outputs are Consul's formats, since scripts
//! grep `SecretID:` out of them.

use roster_tests::{AgentMode, CliOutput, TestAgent};
use serde_json::json;

/// Runs `roster ARGS...` against `agent`, its address given the way scripts give it (`CONSUL_HTTP_ADDR`).
async fn roster(agent: &TestAgent, args: &[&str]) -> CliOutput {
    let addr = agent.http_addr().to_string();
    let mut full_args = vec!["acl"];
    full_args.extend_from_slice(args);
    agent.cli_env(&full_args, &[("CONSUL_HTTP_ADDR", addr.as_str())]).await
}

/// The value of a `Field:   value` line of Consul's pretty output.
fn field(output: &str, name: &str) -> String {
    output
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name}:")))
        .map(|value| value.trim().to_owned())
        .unwrap_or_else(|| panic!("no {name} line in:\n{output}"))
}

#[tokio::test]
async fn bootstrap_then_policy_token_self_agent_token_and_delete() {
    let config = json!({"acl": {"enabled": true, "default_policy": "deny"}});
    let agent = TestAgent::start_with_config("acl-cli", AgentMode::Dev, config).await.expect("agent starts");

    let bootstrap = roster(&agent, &["bootstrap"]).await;
    bootstrap.expect_success();
    let root = field(&bootstrap.stdout, "SecretID");
    assert!(bootstrap.stdout.contains("global-management"), "{bootstrap:?}");
    assert!(bootstrap.stdout.contains("Create Time:"), "{bootstrap:?}");
    // A second bootstrap is refused, with the agent's status and message.
    let again = roster(&agent, &["bootstrap"]).await;
    assert_eq!(again.code, Some(1), "{again:?}");
    assert!(again.stderr.starts_with("Failed ACL bootstrapping: Unexpected response code: 403"), "{again:?}");

    let dir = tempfile::tempdir().expect("temp dir");
    let rules_file = dir.path().join("web.hcl");
    std::fs::write(&rules_file, "service \"web\" { policy = \"write\" }\nkey_prefix \"\" { policy = \"read\" }\n")
        .expect("write rules");
    let rules_arg = format!("@{}", rules_file.display());
    let policy = roster(
        &agent,
        &["policy", "create", "-token", &root, "-name", "web", "-description", "web access", "-rules", &rules_arg],
    )
    .await;
    policy.expect_success();
    assert_eq!(field(&policy.stdout, "Name"), "web");
    assert!(policy.stdout.contains("service \"web\" { policy = \"write\" }"), "{policy:?}");
    let policy_id = field(&policy.stdout, "ID");

    let create =
        roster(&agent, &["token", "create", "-token", &root, "-description", "web token", "-policy-name", "web"]).await;
    create.expect_success();
    let accessor = field(&create.stdout, "AccessorID");
    let secret = field(&create.stdout, "SecretID");
    assert!(create.stdout.contains(&format!("Policies:\n   {policy_id} - web\n")), "{create:?}");

    let list = roster(&agent, &["token", "list", "-token", &root]).await;
    list.expect_success();
    assert!(list.stdout.contains(&format!("AccessorID:       {accessor}")), "{list:?}");
    assert!(list.stdout.contains("\n\nAccessorID:"), "tokens are separated by a blank line: {list:?}");

    // The new token reads itself; -token-file is the same token from a file.
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{secret}\n")).expect("write token file");
    let token_file_arg = token_file.display().to_string();
    let own = roster(&agent, &["token", "read", "-self", "-token-file", &token_file_arg]).await;
    own.expect_success();
    assert_eq!(field(&own.stdout, "AccessorID"), accessor);
    assert_eq!(field(&own.stdout, "Description"), "web token");
    let json_read = roster(&agent, &["token", "read", "-self", "-token", &secret, "-format", "json"]).await;
    json_read.expect_success();
    let parsed: serde_json::Value = serde_json::from_str(&json_read.stdout).expect("-format json prints JSON");
    assert_eq!(parsed["AccessorID"], accessor.as_str());

    let set = roster(&agent, &["set-agent-token", "-token", &root, "agent", &secret]).await;
    set.expect_success();
    assert_eq!(set.stdout, "ACL token \"agent\" set successfully\n");

    let delete = roster(&agent, &["token", "delete", "-token", &root, "-accessor-id", &accessor]).await;
    delete.expect_success();
    assert_eq!(delete.stdout, format!("Token \"{accessor}\" deleted successfully\n"));
    let gone = roster(&agent, &["token", "read", "-token", &root, "-accessor-id", &accessor]).await;
    assert_eq!(gone.code, Some(1), "{gone:?}");
    assert!(gone.stderr.contains("Unexpected response code: "), "{gone:?}");

    let policy_delete = roster(&agent, &["policy", "delete", "-token", &root, "-name", "web"]).await;
    policy_delete.expect_success();
    assert_eq!(policy_delete.stdout, format!("Policy \"{policy_id}\" deleted successfully\n"));
}

#[tokio::test]
async fn without_a_token_acl_commands_are_refused_with_consuls_error_line() {
    let config = json!({"acl": {"enabled": true, "default_policy": "deny", "tokens": {"initial_management": "root"}}});
    let agent = TestAgent::start_with_config("acl-cli-denied", AgentMode::Dev, config).await.expect("agent starts");
    let denied = roster(&agent, &["policy", "list"]).await;
    assert_eq!(denied.code, Some(1), "{denied:?}");
    assert!(
        denied.stderr.starts_with("Failed to retrieve the policy list: Unexpected response code: 403"),
        "{denied:?}"
    );
    let allowed = roster(&agent, &["policy", "list", "-token", "root"]).await;
    allowed.expect_success();
    assert!(allowed.stdout.contains("global-management:"), "{allowed:?}");
}
