//! `roster operator raft remove-peer|transfer-leader`: Consul's Raft operator commands, with its flags and output.

use clap::Args;
use reqwest::Method;

use super::HttpArgs;
use super::client::{AgentClient, segment};
use crate::config::EnvSource;

/// `roster operator raft remove-peer -id ID | -address IP:PORT`.
#[derive(Debug, Clone, Default, Args)]
pub struct RemovePeerArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// The address to remove from the Raft configuration.
    #[arg(long, value_name = "IP:PORT")]
    pub address: Option<String>,
    /// The ID to remove from the Raft configuration.
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
}

/// `roster operator raft transfer-leader [-id ID]`.
#[derive(Debug, Clone, Default, Args)]
pub struct TransferLeaderArgs {
    /// Agent address and token.
    #[command(flatten)]
    pub http: HttpArgs,
    /// The ID of the node to transfer leadership to (default: the leader picks a voter).
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
}

/// The DELETE path of a remove-peer, or Consul's complaint about the flags.
fn remove_peer_path(args: &RemovePeerArgs) -> Result<String, &'static str> {
    let address = args.address.as_deref().filter(|a| !a.is_empty());
    let id = args.id.as_deref().filter(|i| !i.is_empty());
    match (address, id) {
        (None, None) => Err("an address or id is required for the peer to remove"),
        (Some(_), Some(_)) => Err("cannot give both an address and id"),
        (Some(address), None) => Ok(format!("/v1/operator/raft/peer?address={}", segment(address))),
        (None, Some(id)) => Ok(format!("/v1/operator/raft/peer?id={}", segment(id))),
    }
}

/// Removes the peer; prints Consul's `Removed peer with address "..."` or the error (exit 1).
pub async fn remove_peer(args: &RemovePeerArgs, env: &dyn EnvSource) -> anyhow::Result<i32> {
    let path = match remove_peer_path(args) {
        Ok(path) => path,
        Err(why) => {
            eprintln!("Error removing peer: {why}");
            return Ok(1);
        }
    };
    let agent = AgentClient::new(&args.http, env)?;
    if let Err(err) = agent.expect_ok(Method::DELETE, &path, None).await {
        eprintln!("Error removing peer: {err:#}");
        return Ok(1);
    }
    match (&args.address, &args.id) {
        (Some(address), _) if !address.is_empty() => println!("Removed peer with address {address:?}"),
        (_, id) => println!("Removed peer with id {:?}", id.as_deref().unwrap_or_default()),
    }
    Ok(0)
}

/// Transfers leadership; prints `Success`, or Consul's error text (exit 1).
pub async fn transfer_leader(args: &TransferLeaderArgs, env: &dyn EnvSource) -> anyhow::Result<i32> {
    let path = match &args.id {
        Some(id) => format!("/v1/operator/raft/transfer-leader?id={}", segment(id)),
        None => "/v1/operator/raft/transfer-leader".to_owned(),
    };
    let agent = AgentClient::new(&args.http, env)?;
    if let Err(err) = agent.expect_ok(Method::POST, &path, None).await {
        eprintln!("Error transfering leadership: Failed to transfer leadership {err:#}");
        return Ok(1);
    }
    println!("Success");
    Ok(0)
}

#[cfg(test)]
mod tests {
    //! Flag checks that need no agent.
    use super::*;

    #[test]
    fn remove_peer_needs_exactly_one_of_address_and_id() {
        let mut args = RemovePeerArgs::default();
        assert_eq!(remove_peer_path(&args), Err("an address or id is required for the peer to remove"));
        args.address = Some("127.0.0.1:8300".into());
        assert_eq!(remove_peer_path(&args).unwrap(), "/v1/operator/raft/peer?address=127.0.0.1%3A8300");
        args.id = Some("12".into());
        assert_eq!(remove_peer_path(&args), Err("cannot give both an address and id"));
        args.address = None;
        assert_eq!(remove_peer_path(&args).unwrap(), "/v1/operator/raft/peer?id=12");
    }
}
