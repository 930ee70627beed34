//! `dig` (Debian's bind9-dnsutils) against an agent's DNS port, with its output split into the parts DNS tests look
//! at: the status, the header flags, the EDNS UDP size and the records of each section, one line each.

use std::process::Command;

use crate::TestAgent;

/// What `dig` printed.
#[derive(Debug, Default)]
pub struct Dig {
    /// The response code (`NOERROR`, `NXDOMAIN`, ...).
    pub status: String,
    /// The header flags (`qr aa rd`, with `tc` when truncated).
    pub flags: String,
    /// The UDP payload size of the response's OPT record, when it had one.
    pub edns_udp: Option<u16>,
    /// The answer section, one whitespace-normalised record per entry.
    pub answer: Vec<String>,
    /// The authority section.
    pub authority: Vec<String>,
    /// The additional section (without the OPT pseudo-record, which dig prints apart).
    pub additional: Vec<String>,
}

/// Runs `dig` against `agent`'s DNS port without EDNS (`+noedns`; a later `+edns`/`+bufsize` argument turns it back
/// on), with retries generous enough for a loaded machine.
pub fn dig(agent: &TestAgent, args: &[&str]) -> Dig {
    if std::env::var_os("CI").is_none() && Command::new("dig").arg("-v").output().is_err() {
        panic!("dig is not installed: apt-get install bind9-dnsutils (.ci/run does)");
    }
    let addr = agent.dns_addr();
    let output = Command::new("dig")
        .arg(format!("@{}", addr.ip()))
        .args(["-p", &addr.port().to_string(), "+time=5", "+tries=3", "+nocookie", "+noedns"])
        .args(args)
        .output()
        .expect("run dig");
    parse_dig(&String::from_utf8_lossy(&output.stdout))
}

/// Splits dig's default output into a [`Dig`].
pub fn parse_dig(text: &str) -> Dig {
    let mut dig = Dig::default();
    let mut section = "";
    for line in text.lines() {
        if let Some(rest) = line.split("status: ").nth(1) {
            dig.status = rest.split(',').next().unwrap_or("").to_owned();
        }
        if let Some(rest) = line.strip_prefix(";; flags: ") {
            dig.flags = rest.split(';').next().unwrap_or("").to_owned();
        }
        if let Some(rest) = line.strip_prefix("; EDNS:").and_then(|rest| rest.split("udp: ").nth(1)) {
            dig.edns_udp = rest.trim().parse().ok();
        }
        if line.starts_with(";; ANSWER SECTION") {
            section = "answer";
        } else if line.starts_with(";; AUTHORITY SECTION") {
            section = "authority";
        } else if line.starts_with(";; ADDITIONAL SECTION") {
            section = "additional";
        } else if line.trim().is_empty() || line.starts_with(';') {
            if line.trim().is_empty() {
                section = "";
            }
        } else {
            let record = line.split_whitespace().collect::<Vec<_>>().join(" ");
            match section {
                "answer" => dig.answer.push(record),
                "authority" => dig.authority.push(record),
                "additional" => dig.additional.push(record),
                _ => {}
            }
        }
    }
    dig
}

/// The last field of each record (the address for A, the target for SRV, ...), sorted.
pub fn rdata(records: &[String]) -> Vec<String> {
    let mut out: Vec<String> = records.iter().filter_map(|r| r.split(' ').next_back()).map(str::to_owned).collect();
    out.sort();
    out
}
