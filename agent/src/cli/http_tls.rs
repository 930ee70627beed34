//! TLS for the client subcommands: `-ca-file`, `-ca-path`, `-client-cert`, `-client-key`, `-tls-server-name` and
//! their `CONSUL_*` variables, turned into the HTTP client's TLS config.
//!
//! With none of them and verification on, the client keeps reqwest's own TLS, which trusts the system's roots.
//! `CONSUL_HTTP_SSL_VERIFY=false` turns every check of the agent's certificate off, with a warning, as in Consul.

use std::path::PathBuf;

use anyhow::Context;

use crate::cli::HttpArgs;
use crate::config::EnvSource;

/// The TLS config the HTTP client should use, or `None` to keep reqwest's default (system roots).
pub(super) fn client_tls(args: &HttpArgs, env: &dyn EnvSource) -> anyhow::Result<Option<rustls::ClientConfig>> {
    let path = |flag: &Option<PathBuf>, var: &str| {
        flag.clone().or_else(|| env.var(var).filter(|value| !value.trim().is_empty()).map(PathBuf::from))
    };
    let ca_file = path(&args.ca_file, "CONSUL_CACERT");
    let ca_path = path(&args.ca_path, "CONSUL_CAPATH");
    let cert_file = path(&args.client_cert, "CONSUL_CLIENT_CERT");
    let key_file = path(&args.client_key, "CONSUL_CLIENT_KEY");
    let server_name = args
        .tls_server_name
        .clone()
        .or_else(|| env.var("CONSUL_TLS_SERVER_NAME"))
        .filter(|name| !name.trim().is_empty());
    let verify = !env
        .var("CONSUL_HTTP_SSL_VERIFY")
        .is_some_and(|value| matches!(value.trim().to_ascii_lowercase().as_str(), "0" | "false"));
    let has_ca = ca_file.is_some() || ca_path.is_some();
    if verify && !has_ca && cert_file.is_none() && key_file.is_none() && server_name.is_none() {
        return Ok(None);
    }
    if verify && !has_ca {
        anyhow::bail!(
            "-client-cert, -client-key and -tls-server-name need -ca-file or -ca-path (or $CONSUL_CACERT / \
             $CONSUL_CAPATH): roster checks the agent's certificate against that CA"
        );
    }
    if !verify {
        eprintln!("Warning: CONSUL_HTTP_SSL_VERIFY is false: the agent's certificate is not checked");
    }
    let settings = roster_tls::Settings {
        ca_file,
        ca_path,
        cert_file,
        key_file,
        verify_outgoing: verify,
        verify_server_hostname: verify,
        server_name,
        ..roster_tls::Settings::default()
    };
    let tls = roster_tls::Tls::load(settings).context("loading the TLS files")?;
    Ok(Some((*tls.client_config()).clone()))
}
