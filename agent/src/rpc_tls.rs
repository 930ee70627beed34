//! The server RPC port's TLS and limits from the agent's config: `tls.internal_rpc` loaded through `roster-tls`
//! and handed to `roster-server` as its per-connection configs, `limits.rpc_*` as its `RpcLimits`.

use std::sync::Arc;

use anyhow::Context;

use crate::config::Config;

/// The RPC TLS settings, or `None` when `tls.internal_rpc` (with its fallbacks) names no certificate and asks
/// for no verification: the port then stays plaintext, as Consul's does.
pub(crate) fn rpc_tls(config: &Config) -> anyhow::Result<Option<(roster_server::RpcTls, Arc<roster_tls::Tls>)>> {
    let settings = &config.tls.internal_rpc;
    if settings.cert_file.is_none() && !settings.verify_incoming && !settings.verify_outgoing {
        return Ok(None);
    }
    let tls = Arc::new(roster_tls::Tls::load(settings.clone()).context("loading tls.internal_rpc")?);
    let rpc = roster_server::RpcTls {
        configs: Arc::new(Configs { tls: tls.clone(), no_certificate: no_certificate() }),
        verify_incoming: settings.verify_incoming,
        verify_outgoing: settings.verify_outgoing,
        verify_server_hostname: settings.verify_server_hostname,
        datacenter: config.datacenter.clone(),
        domain: config.domain.clone(),
    };
    Ok(Some((rpc, tls)))
}

/// `limits.rpc_max_conns_per_client` and `limits.rpc_handshake_timeout` over the server's other defaults.
pub(crate) fn rpc_limits(config: &Config) -> roster_server::RpcLimits {
    roster_server::RpcLimits {
        max_conns_per_client: usize::try_from(config.limits.rpc_max_conns_per_client).unwrap_or(usize::MAX),
        handshake_timeout: config.limits.rpc_handshake_timeout,
        ..roster_server::RpcLimits::default()
    }
}

/// The current configs of the loaded material, asked for per connection, so a reload reaches new connections.
struct Configs {
    tls: Arc<roster_tls::Tls>,
    /// For an agent whose settings name no certificate (a client that only verifies servers): it never serves
    /// the RPC port, and should it be asked to, every handshake fails for want of a certificate.
    no_certificate: Arc<rustls::ServerConfig>,
}

impl roster_server::TlsConfigs for Configs {
    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.tls.server_config().unwrap_or_else(|| self.no_certificate.clone())
    }

    fn client_config(&self) -> Arc<rustls::ClientConfig> {
        self.tls.client_config()
    }
}

fn no_certificate() -> Arc<rustls::ServerConfig> {
    let config = rustls::ServerConfig::builder().with_no_client_auth().with_cert_resolver(Arc::new(NoCertificate));
    Arc::new(config)
}

#[derive(Debug)]
struct NoCertificate;

impl rustls::server::ResolvesServerCert for NoCertificate {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        None
    }
}
