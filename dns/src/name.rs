//! Query-name parsing: which Consul name form a question asks about. Pure: no I/O, no config beyond the domains.
//!
//! Forms, with `<domain>` the configured domain or alt domain (labels compared case-insensitively):
//! `[tag.]name.service[.dc].<domain>`, `_name._tag.service[.dc].<domain>` (RFC 2782; `_tcp` = no tag, any other
//! label, `_udp` included, filters by that tag, as Consul does), `node.node[.dc].<domain>` (a node name may contain
//! dots), `<hex>.addr[.dc].<domain>`, the apex `<domain>`, reverse names under `in-addr.arpa`/`ip6.arpa`, and the
//! domain-less `[tag.]name.service.`. Where `[.dc]` stands, Consul's explicit `.<dc>.dc` form is accepted too, and
//! `.<peer>.peer` names a cluster peer, which roster does not have (so the name does not exist).
//! For SRV questions, [`parse_srv_query_name`] also accepts RFC 2782 names without the `service` label
//! (`_name._tag[.dc].<domain>`), as Consul does.
//! Anything else under the domain is [`QueryKind::Invalid`] (NXDOMAIN); anything outside it is
//! [`QueryKind::External`] (recursors).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Longest name accepted, in presentation form without the final dot (RFC 1035 allows 255 octets on the wire).
const MAX_NAME_LEN: usize = 255;

/// Which zone a name was asked in; answers (SRV targets, SOA) are built in the same zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Zone {
    /// The configured `domain`.
    Primary,
    /// The configured `alt_domain`.
    Alt,
    /// The domain-less `<name>.service.` form; answers use the primary domain.
    Bare,
}

/// What a query name asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryKind {
    /// Instances of a service, optionally filtered by tag.
    Service {
        /// Service name, lower-cased.
        name: String,
        /// Tag filter, lower-cased.
        tag: Option<String>,
        /// The `.dc` label, if given.
        datacenter: Option<String>,
        /// The zone asked in.
        zone: Zone,
    },
    /// A node by name.
    Node {
        /// Node name, lower-cased; may contain dots.
        name: String,
        /// The `.dc` label, if given.
        datacenter: Option<String>,
        /// The zone asked in.
        zone: Zone,
    },
    /// An address encoded in hex (`c0a80001.addr.dc1.consul`).
    Addr {
        /// The decoded address.
        ip: IpAddr,
        /// The `.dc` label, if given.
        datacenter: Option<String>,
        /// The zone asked in.
        zone: Zone,
    },
    /// A prepared query by ID or name (`<name>.query.<domain>`, or RFC 2782 `_<name>._tcp.query.<domain>`).
    PreparedQuery {
        /// The ID or name, lower-cased; may contain dots.
        name: String,
        /// The `.dc` label, if given.
        datacenter: Option<String>,
        /// The zone asked in.
        zone: Zone,
    },
    /// The zone apex itself (SOA, NS).
    Apex {
        /// The zone asked in.
        zone: Zone,
    },
    /// A reverse lookup of a full address.
    Ptr {
        /// The address asked about.
        ip: IpAddr,
    },
    /// Under our domain but no form we answer: NXDOMAIN.
    Invalid {
        /// The zone asked in.
        zone: Zone,
    },
    /// Outside our domain (including partial reverse names): for the recursors.
    External,
}

/// Classifies `qname` (presentation form, with or without the final dot) against `domain` and `alt_domain`.
pub fn parse_query_name(qname: &str, domain: &str, alt_domain: Option<&str>) -> QueryKind {
    let qname = qname.strip_suffix('.').unwrap_or(qname);
    if qname.is_empty() || qname.len() > MAX_NAME_LEN {
        return QueryKind::External;
    }
    let lowered = qname.to_ascii_lowercase();
    let labels: Vec<&str> = lowered.split('.').collect();
    if labels.iter().any(|label| label.is_empty()) {
        return QueryKind::External;
    }
    if let Some(ip) = parse_reverse(&labels) {
        return QueryKind::Ptr { ip };
    }
    for (zone, zone_domain) in [(Zone::Primary, Some(domain)), (Zone::Alt, alt_domain)] {
        let Some(zone_labels) = zone_domain.and_then(domain_labels) else { continue };
        if let Some(rest) = strip_label_suffix(&labels, &zone_labels) {
            return parse_in_zone(rest, zone);
        }
    }
    parse_bare(&labels)
}

/// The lower-cased labels of a configured domain, or `None` if it is empty.
fn domain_labels(domain: &str) -> Option<Vec<String>> {
    let trimmed = domain.trim_matches('.');
    (!trimmed.is_empty()).then(|| trimmed.to_ascii_lowercase().split('.').map(str::to_owned).collect())
}

fn strip_label_suffix<'n>(labels: &'n [&'n str], suffix: &[String]) -> Option<&'n [&'n str]> {
    let split = labels.len().checked_sub(suffix.len())?;
    let (rest, tail) = labels.split_at(split);
    tail.iter().zip(suffix).all(|(label, want)| *label == want.as_str()).then_some(rest)
}

/// Classifies `qname` for an SRV question: as [`parse_query_name`], and an RFC 2782 name without the `service`
/// label (`_web._tcp.consul`, `_web._tcp.dc1.consul`) is a service lookup too, which Consul allows for SRV only.
pub fn parse_srv_query_name(qname: &str, domain: &str, alt_domain: Option<&str>) -> QueryKind {
    let kind = parse_query_name(qname, domain, alt_domain);
    let QueryKind::Invalid { zone } = &kind else { return kind };
    let zone_domain = match zone {
        Zone::Alt => alt_domain.unwrap_or(domain),
        Zone::Primary | Zone::Bare => domain,
    };
    let lowered = qname.strip_suffix('.').unwrap_or(qname).to_ascii_lowercase();
    let labels: Vec<&str> = lowered.split('.').collect();
    let rest = domain_labels(zone_domain).and_then(|zone_labels| strip_label_suffix(&labels, &zone_labels));
    // The protocol label is the rightmost label starting with `_`; what follows it is the datacenter part.
    let split = rest.and_then(|rest| Some((rest, rest.iter().rposition(|label| label.starts_with('_'))? + 1)));
    let Some((rest, split)) = split else { return kind };
    let (prefix, suffix) = rest.split_at(split);
    match (parse_service_prefix(prefix), parse_datacenter(suffix)) {
        (Some((name, tag)), Some(datacenter)) => QueryKind::Service { name, tag, datacenter, zone: zone.clone() },
        _ => kind,
    }
}

/// Parses the labels left of the domain (`rest` is in query order).
fn parse_in_zone(rest: &[&str], zone: Zone) -> QueryKind {
    let invalid = || QueryKind::Invalid { zone: zone.clone() };
    if rest.is_empty() {
        return QueryKind::Apex { zone };
    }
    // The keyword is the rightmost keyword label, as Consul finds it; what follows it names the datacenter.
    let Some(at) = rest.iter().rposition(|label| is_keyword(label)) else {
        return invalid();
    };
    let (keyword, prefix) = (rest[at], &rest[..at]);
    let Some(datacenter) = parse_datacenter(&rest[at + 1..]) else {
        return invalid();
    };
    match keyword {
        "service" => match parse_service_prefix(prefix) {
            Some((name, tag)) => QueryKind::Service { name, tag, datacenter, zone },
            None => invalid(),
        },
        // Consul lets node names contain dots, so every label before `.node` is the name.
        "node" if !prefix.is_empty() => QueryKind::Node { name: prefix.join("."), datacenter, zone },
        "addr" => match prefix {
            [hex] => match parse_hex_ip(hex) {
                Some(ip) => QueryKind::Addr { ip, datacenter, zone },
                None => invalid(),
            },
            _ => invalid(),
        },
        "query" => match prefix {
            // RFC 2782: `_<name>._tcp` (or `_udp`) asks for the query `<name>`.
            [first, second] if first.len() > 1 && first.starts_with('_') && matches!(*second, "_tcp" | "_udp") => {
                QueryKind::PreparedQuery { name: first[1..].to_owned(), datacenter, zone }
            }
            // Consul lets query names contain dots, so every label before `.query` is the name.
            [_, ..] => QueryKind::PreparedQuery { name: prefix.join("."), datacenter, zone },
            [] => invalid(),
        },
        _ => invalid(),
    }
}

/// The datacenter part after a keyword: nothing, `<dc>`, or `<dc>.dc`; `None` for anything else (a `<peer>.peer`
/// included: roster has no cluster peers, so such a name does not exist).
fn parse_datacenter(suffix: &[&str]) -> Option<Option<String>> {
    match suffix {
        [] => Some(None),
        [datacenter] | [datacenter, "dc"] => Some(Some((*datacenter).to_owned())),
        _ => None,
    }
}

fn is_keyword(label: &str) -> bool {
    matches!(label, "service" | "node" | "addr" | "query")
}

/// `name`, `tag.name`, or RFC 2782 `_name._tag` (where `_tcp` means no tag filter; Consul treats `_udp` as the tag
/// `udp`, so does roster).
fn parse_service_prefix(prefix: &[&str]) -> Option<(String, Option<String>)> {
    match prefix {
        [name] if !name.starts_with('_') => Some(((*name).to_owned(), None)),
        [first, second] => match (first.strip_prefix('_'), second.strip_prefix('_')) {
            (Some(name), Some(tag)) if !name.is_empty() && !tag.is_empty() => {
                let tag = (tag != "tcp").then(|| tag.to_owned());
                Some((name.to_owned(), tag))
            }
            (None, None) => Some(((*second).to_owned(), Some((*first).to_owned()))),
            _ => None,
        },
        _ => None,
    }
}

/// The domain-less forms `name.service.`, `tag.name.service.` and `_name._tag.service.`.
fn parse_bare(labels: &[&str]) -> QueryKind {
    match labels.split_last() {
        Some((&"service", prefix)) if !prefix.is_empty() => match parse_service_prefix(prefix) {
            Some((name, tag)) => QueryKind::Service { name, tag, datacenter: None, zone: Zone::Bare },
            None => QueryKind::External,
        },
        _ => QueryKind::External,
    }
}

/// 8 hex digits are an IPv4 address, 32 an IPv6 one.
fn parse_hex_ip(hex: &str) -> Option<IpAddr> {
    if !hex.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    match hex.len() {
        8 => u32::from_str_radix(hex, 16).ok().map(|bits| IpAddr::V4(Ipv4Addr::from(bits))),
        32 => u128::from_str_radix(hex, 16).ok().map(|bits| IpAddr::V6(Ipv6Addr::from(bits))),
        _ => None,
    }
}

/// A complete reverse name: four decimal octets under `in-addr.arpa`, or 32 nibbles under `ip6.arpa`.
fn parse_reverse(labels: &[&str]) -> Option<IpAddr> {
    match labels {
        [octets @ .., "in-addr", "arpa"] if octets.len() == 4 => {
            let mut bytes = [0u8; 4];
            for (slot, octet) in bytes.iter_mut().zip(octets.iter().rev()) {
                if octet.is_empty() || octet.len() > 3 || !octet.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                *slot = octet.parse().ok()?;
            }
            Some(IpAddr::V4(Ipv4Addr::from(bytes)))
        }
        [nibbles @ .., "ip6", "arpa"] if nibbles.len() == 32 => {
            let mut bits: u128 = 0;
            for nibble in nibbles.iter().rev() {
                let [digit] = nibble.as_bytes() else { return None };
                bits = (bits << 4) | u128::from(char::from(*digit).to_digit(16)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(bits)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
