//! A single-voter roster server in memory on a loopback RPC port, for unit tests that need a real catalog behind
//! `Backend` (the agent's local state, ACL resolution).

/// Starts a bootstrapped in-memory server enforcing `acl` (`None`: ACLs off) and waits until it leads.
pub(crate) async fn start(acl: Option<roster_server::AclSettings>) -> roster_server::Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let rpc = listener.local_addr().expect("addr");
    let config = roster_server::Config {
        node_id: 1,
        data_dir: None,
        rpc_listener: listener,
        rpc_advertise: rpc,
        bootstrap: true,
        acl,
        tls: None,
        limits: roster_server::RpcLimits::default(),
        raft_multiplier: 5,
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = roster_server::Server::start(config, shutdown).await.expect("server starts");
    server.wait_for_leader(std::time::Duration::from_secs(10)).await.expect("leader");
    server
}
