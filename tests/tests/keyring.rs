//! Gossip encryption over the real binary: a 3-server cluster started with `encrypt`, its keys listed, rotated
//! (install, use, remove) through `roster keyring` and `/v1/operator/keyring`, a member restarted after the rotation,
//! and an agent with the wrong key kept out.

use roster_tests::{TestAgent, TestCluster, alive_members};
use serde_json::{Value, json};

const OLD_KEY: &str = "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=";

/// `GET /v1/operator/keyring` through `agent`: the LAN entry's key counts, primary counts and node count.
async fn keyring(agent: &TestAgent) -> (Value, Value, u64) {
    let res = agent.get("/v1/operator/keyring").await;
    assert_eq!(res.status, 200, "{}", res.text());
    let pools = res.json();
    let lan = &pools[0];
    assert_eq!(
        (lan["WAN"].clone(), lan["Datacenter"].clone(), lan["Messages"].clone()),
        (json!(false), json!("dc1"), json!({}))
    );
    (lan["Keys"].clone(), lan["PrimaryKeys"].clone(), lan["NumNodes"].as_u64().unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_across_an_encrypted_cluster_and_the_wrong_key_stays_out() {
    let mut cluster =
        TestCluster::try_start(3, 0, json!({"encrypt": OLD_KEY})).await.expect("an encrypted cluster forms");
    let s1 = &cluster.servers[0];

    let listed = s1.cli(&["keyring", "-list"]).await;
    listed.expect_success();
    assert_eq!(listed.stdout, format!("==> Gathering installed encryption keys...\n\ndc1 (LAN):\n  {OLD_KEY} [3/3]\n"));

    let generated = s1.cli_env(&["keygen"], &[]).await;
    let new_key = generated.expect_success().stdout.trim().to_owned();
    assert_eq!(new_key.len(), 44, "32 bytes in base64: {new_key}");

    let installed = s1.cli(&["keyring", "-install", &new_key]).await;
    assert_eq!(installed.expect_success().stdout, "==> Installing new gossip encryption key...\n");
    let (keys, primary, n_nodes) = keyring(&cluster.servers[1]).await;
    assert_eq!((keys, primary, n_nodes), (json!({OLD_KEY: 3, &new_key: 3}), json!({OLD_KEY: 3}), 3));

    // The old primary cannot be removed: every member refuses, and the answer names each of them.
    let refused = cluster.servers[1]
        .request(
            reqwest::Method::DELETE,
            "/v1/operator/keyring",
            Some(json!({"Key": OLD_KEY}).to_string().into_bytes()),
        )
        .await;
    assert_eq!(refused.status, 500);
    assert!(refused.text().starts_with("dc1 (LAN) error: 3/3 nodes reported failure"), "{}", refused.text());
    assert!(refused.text().contains("s3: Removing the primary key is not allowed"), "{}", refused.text());

    let used = cluster.servers[2].put_json("/v1/operator/keyring", &json!({"Key": new_key})).await;
    assert_eq!(used.status, 200, "{}", used.text());
    let primaries = s1.cli(&["keyring", "-list-primary"]).await;
    assert!(
        primaries.expect_success().stdout.ends_with(&format!("dc1 (LAN):\n  {new_key} [3/3]\n")),
        "{}",
        primaries.stdout
    );
    let removed = s1.cli(&["keyring", "-remove", OLD_KEY]).await;
    assert_eq!(removed.expect_success().stdout, "==> Removing gossip encryption key...\n");
    assert_eq!(keyring(s1).await, (json!({&new_key: 3}), json!({&new_key: 3}), 3));
    let local = s1.get("/v1/operator/keyring?local-only=true").await.json();
    assert_eq!((local[0]["Keys"].clone(), local[0]["NumNodes"].clone()), (json!({&new_key: 1}), json!(1)));
    let missing = s1.cli(&["keyring", "-use", OLD_KEY]).await;
    assert_eq!(missing.code, Some(1));
    assert!(missing.stderr.contains("Requested key is not in the keyring"), "{}", missing.stderr);

    // A restarted member reads its keyring file, not the (removed) `encrypt` key of its config, and rejoins.
    cluster.servers[2].restart().await;
    cluster.wait_formed().await.expect("the restarted member rejoins with the new key");
    assert!(cluster.servers[2].stderr_tail().contains("does not hold the configured `encrypt` key"));
    assert_eq!(keyring(&cluster.servers[2]).await, (json!({&new_key: 3}), json!({&new_key: 3}), 3));

    // An agent holding only the old key is refused, and never listed.
    let dir = tempfile::tempdir().expect("dir");
    let ip = cluster.ip(5).to_string();
    let args =
        ["-data-dir", &dir.path().display().to_string(), "-bind", &ip, "-client", &ip].map(str::to_owned).to_vec();
    let config = json!({"ports": {"http": 0, "dns": -1, "serf_lan": roster_tests::SERF_PORT}, "encrypt": OLD_KEY});
    let outsider = TestAgent::start_with_config("outsider", roster_tests::AgentMode::Args(args), config)
        .await
        .expect("a lone client with the old key starts");
    let res = outsider.put(&format!("/v1/agent/join/{}", cluster.servers[0].serf_addr()), "").await;
    assert_eq!(res.status, 500, "{}", res.text());
    let members = cluster.servers[0].cli(&["members"]).await;
    assert!(!members.expect_success().stdout.contains("outsider"), "{}", members.stdout);
    assert!(!alive_members(&cluster.servers[1]).await.contains(&"outsider".to_owned()));
    let key_file = std::fs::metadata(dir.path().join("serf/local.keyring")).expect("the seeded keyring file");
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&key_file.permissions()) & 0o777, 0o600);
}
