//! `roster tls ca create` and `roster tls cert create`: Consul's certificate commands, offline.
//!
//! Flags, defaults, file names, printed lines and error texts are those of Consul's
//! `command/tls`, so scripts written for `consul tls` work unchanged and the files work with
//! Consul agents and with CAs Consul made: `<domain>-agent-ca.pem` + `<domain>-agent-ca-key.pem`,
//! then `<dc>-<kind>-<domain>-<n>.pem` + `-key.pem` with the first free `n`. Where roster differs
//! it refuses rather than guesses: `-additional-dnsname` with `-cli` (Consul drops it silently),
//! an `-additional-ipaddress` that is no IP address (Consul writes an empty one), and
//! `-days` below 1 (Consul writes a certificate that is already expired).
//!
//! Layout: the arguments and the two commands are here; what goes into a certificate and the
//! signing are `tls/pki.rs`, PEM and key layouts `tls/encoding.rs`, and safe file writing
//! `tls/files.rs`.

mod encoding;
mod files;
mod pki;

use std::io::{self, Write};
use std::net::IpAddr;
use std::path::Path;

use clap::{Args, Subcommand};

use pki::{CaRequest, Kind, Profile, Request};

/// `roster tls ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum TlsCommand {
    /// Certificate authority commands.
    #[command(subcommand)]
    Ca(TlsCaCommand),
    /// Certificate commands.
    #[command(subcommand)]
    Cert(TlsCertCommand),
}

/// `roster tls ca ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum TlsCaCommand {
    /// Create a new agent CA: `<domain>-agent-ca.pem` and `<domain>-agent-ca-key.pem` here.
    Create(CaCreateArgs),
}

/// `roster tls cert ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum TlsCertCommand {
    /// Create a new server, client or CLI certificate signed by the agent CA.
    Create(CertCreateArgs),
}

/// `roster tls ca create`.
#[derive(Debug, Clone, Args)]
pub struct CaCreateArgs {
    /// Number of days the CA is valid for.
    #[arg(long, default_value_t = 1825, allow_negative_numbers = true, value_name = "DAYS")]
    pub days: i64,
    /// The DNS domain of the cluster: names the files, and is permitted with -name-constraint.
    #[arg(long, default_value = "consul", value_name = "DOMAIN")]
    pub domain: String,
    /// Common name of the CA (default: Consul Agent CA <serial number>).
    #[arg(long, default_value = "", value_name = "NAME")]
    pub common_name: String,
    /// Cluster ID: adds the URI spiffe://<cluster id>.<domain> to the CA.
    #[arg(long, default_value = "", value_name = "ID")]
    pub cluster_id: String,
    /// Let the CA sign only for localhost, -domain and each -additional-name-constraint.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub name_constraint: bool,
    /// Another DNS domain the CA may sign for with -name-constraint; may repeat.
    #[arg(long, value_name = "DOMAIN")]
    pub additional_name_constraint: Vec<String>,
}

/// `roster tls cert create`.
#[derive(Debug, Clone, Args)]
pub struct CertCreateArgs {
    /// The CA certificate; #DOMAIN# is replaced by -domain.
    #[arg(long, default_value = "#DOMAIN#-agent-ca.pem", value_name = "FILE")]
    pub ca: String,
    /// The CA's private key; #DOMAIN# is replaced by -domain.
    #[arg(long, default_value = "#DOMAIN#-agent-ca-key.pem", value_name = "FILE")]
    pub key: String,
    /// Create a server certificate.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub server: bool,
    /// Create a client certificate.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub client: bool,
    /// Create a CLI certificate.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub cli: bool,
    /// With -server, also name the certificate <node>.server.<dc>.<domain>.
    #[arg(long, default_value = "", value_name = "NAME")]
    pub node: String,
    /// Number of days the certificate is valid for.
    #[arg(long, default_value_t = 365, allow_negative_numbers = true, value_name = "DAYS")]
    pub days: i64,
    /// The datacenter.
    #[arg(long, default_value = "dc1", value_name = "DC")]
    pub dc: String,
    /// The DNS domain.
    #[arg(long, default_value = "consul", value_name = "DOMAIN")]
    pub domain: String,
    /// Another DNS name for the certificate (localhost is always there); may repeat.
    #[arg(long, value_name = "NAME")]
    pub additional_dnsname: Vec<String>,
    /// Another IP address for the certificate (127.0.0.1 is always there); may repeat.
    #[arg(long, value_name = "IP")]
    pub additional_ipaddress: Vec<String>,
}

/// Where a command prints: Consul's `Output`/`Info` lines to `out`, its `Error`s to `err`.
pub(super) struct Ui<'a> {
    /// Progress lines.
    pub out: &'a mut dyn Write,
    /// Error messages.
    pub err: &'a mut dyn Write,
}

/// Runs a `tls` command in the current directory; returns the exit code.
pub(super) fn run(command: &TlsCommand) -> anyhow::Result<i32> {
    let (mut stdout, mut stderr) = (io::stdout(), io::stderr());
    let mut ui = Ui { out: &mut stdout, err: &mut stderr };
    Ok(run_in(command, Path::new(""), &mut ui))
}

/// Runs a `tls` command with relative paths taken from `dir`.
pub(super) fn run_in(command: &TlsCommand, dir: &Path, ui: &mut Ui<'_>) -> i32 {
    let result = match command {
        TlsCommand::Ca(TlsCaCommand::Create(args)) => ca_create(args, dir, ui),
        TlsCommand::Cert(TlsCertCommand::Create(args)) => cert_create(args, dir, ui),
    };
    match result {
        Ok(()) => 0,
        Err(message) => {
            let _ = writeln!(ui.err, "{message}");
            1
        }
    }
}

fn ca_create(args: &CaCreateArgs, dir: &Path, ui: &mut Ui<'_>) -> Result<(), String> {
    let cert_name = format!("{}-agent-ca.pem", args.domain);
    let key_name = format!("{}-agent-ca-key.pem", args.domain);
    for name in [&cert_name, &key_name] {
        if !files::is_free(&dir.join(name)) {
            return Err(format!("{name} already exists."));
        }
    }
    let days = match args.days {
        // Consul's GenerateCA reads 0 as its default of a year.
        0 => 365,
        days => positive_days(days)?,
    };
    let mut permitted_dns_domains = Vec::new();
    if args.name_constraint {
        permitted_dns_domains.extend(args.additional_name_constraint.iter().cloned());
        permitted_dns_domains.extend([args.domain.clone(), "localhost".to_owned()]);
    }
    let request = CaRequest {
        common_name: args.common_name.clone(),
        days,
        domain: args.domain.clone(),
        cluster_id: args.cluster_id.clone(),
        permitted_dns_domains,
    };
    let ca = pki::create_ca(&request)?;
    save(dir, &cert_name, &ca.cert_pem, files::CERT_MODE, ui)?;
    save(dir, &key_name, &ca.key_pem, files::KEY_MODE, ui)
}

fn cert_create(args: &CertCreateArgs, dir: &Path, ui: &mut Ui<'_>) -> Result<(), String> {
    if args.ca.is_empty() {
        return Err("Please provide the ca".to_owned());
    }
    if args.key.is_empty() {
        return Err("Please provide the key".to_owned());
    }
    let kind = match (args.server, args.client, args.cli) {
        (true, false, false) => Kind::Server,
        (false, true, false) => Kind::Client,
        (false, false, true) => Kind::Cli,
        _ => return Err("Please provide either -server, -client, or -cli".to_owned()),
    };
    if !args.node.is_empty() && kind != Kind::Server {
        return Err("-node requires -server".to_owned());
    }
    let days = positive_days(args.days)?;
    let profile = Profile::new(kind, &request_of(args, kind)?);
    let (cert_name, key_name) =
        files::free_pair(dir, &profile.file_prefix).ok_or("Could not find a filename that doesn't already exist")?;
    let ca_file = args.ca.replacen("#DOMAIN#", &args.domain, 1);
    let key_file = args.key.replacen("#DOMAIN#", &args.domain, 1);
    let ca_pem = read_text(&dir.join(&ca_file), &ca_file).map_err(|err| format!("Error reading CA: {err}"))?;
    let ca_key_pem =
        read_text(&dir.join(&key_file), &key_file).map_err(|err| format!("Error reading CA key: {err}"))?;
    if kind == Kind::Server {
        say(ui, SERVER_WARNING)?;
    }
    say(ui, &format!("==> Using {ca_file} and {key_file}"))?;
    let issued = pki::issue(&profile, days, &ca_pem, &ca_key_pem)?;
    save(dir, &cert_name, &issued.cert_pem, files::CERT_MODE, ui)?;
    save(dir, &key_name, &issued.key_pem, files::KEY_MODE, ui)
}

/// Consul's warning before it makes a server certificate.
const SERVER_WARNING: &str = "==> WARNING: Server Certificates grants authority to become a
    server and access all state in the cluster including root keys
    and all ACL tokens. Do not distribute them to production hosts
    that are not server nodes. Store them as securely as CA keys.";

/// The names of `args` as values, each refused by its flag when it cannot go into a certificate.
fn request_of(args: &CertCreateArgs, kind: Kind) -> Result<Request, String> {
    let extra_dns_names: Vec<String> =
        args.additional_dnsname.iter().filter(|name| !name.is_empty()).map(|name| name.trim().to_owned()).collect();
    if kind == Kind::Cli && !extra_dns_names.is_empty() {
        // Consul's -cli drops these without a word; a name the user asked for must not go missing.
        return Err("-additional-dnsname cannot be used with -cli: a CLI certificate is named cli.<dc>.<domain> and localhost only".to_owned());
    }
    let extra_ip_addresses = args
        .additional_ipaddress
        .iter()
        .filter(|ip| !ip.is_empty())
        .map(|ip| {
            ip.trim().parse::<IpAddr>().map_err(|_| format!("-additional-ipaddress: {ip:?} is not an IP address"))
        })
        .collect::<Result<_, _>>()?;
    let node = Some(args.node.clone()).filter(|node| !node.is_empty());
    Ok(Request { datacenter: args.dc.clone(), domain: args.domain.clone(), node, extra_dns_names, extra_ip_addresses })
}

fn positive_days(days: i64) -> Result<u32, String> {
    u32::try_from(days)
        .ok()
        .filter(|days| *days > 0)
        .ok_or_else(|| format!("-days must be a positive number of days, not {days}"))
}

/// A file's text, with Go's `open <name>: <reason>` wording for the usual failures.
fn read_text(path: &Path, shown: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|err| {
        let reason = match err.kind() {
            io::ErrorKind::NotFound => "no such file or directory".to_owned(),
            io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
            _ => err.to_string(),
        };
        format!("open {shown}: {reason}")
    })
}

/// Writes a new file and prints Consul's `==> Saved <name>`.
fn save(dir: &Path, name: &str, contents: &str, mode: u32, ui: &mut Ui<'_>) -> Result<(), String> {
    files::write_new(&dir.join(name), contents.as_bytes(), mode).map_err(|err| match err.kind() {
        io::ErrorKind::AlreadyExists => format!("{name} already exists."),
        _ => format!("{name}: {err}"),
    })?;
    say(ui, &format!("==> Saved {name}"))
}

fn say(ui: &mut Ui<'_>, line: &str) -> Result<(), String> {
    writeln!(ui.out, "{line}").map_err(|err| format!("cannot print: {err}"))
}

#[cfg(test)]
mod tests;
