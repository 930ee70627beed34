//! Turning a parsed question into records: health filtering, shuffling, SRV targets, TXT from meta, SOA.
//!
//! Everything here is answered from the [`CatalogView`]; the caller bounds the whole lookup with
//! `query_timeout` and owns encoding and truncation.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use rand::seq::SliceRandom;

use crate::config::{Config, Soa};
use crate::name::{QueryKind, Zone};
use crate::view::{CatalogView, Health, Instance, NodeMeta, ViewError};

/// A TXT character-string holds at most 255 octets (RFC 1035 §3.3).
const TXT_CHUNK: usize = 255;

/// What to do with a question after looking at the catalog.
pub(crate) enum Outcome {
    /// Answer it ourselves.
    Local(Box<Answer>),
    /// Not ours after all (an unknown reverse address): the recursors' business.
    Forward,
}

/// A local answer before encoding.
pub(crate) struct Answer {
    /// NOERROR or NXDOMAIN.
    pub(crate) response_code: ResponseCode,
    /// Each answer record with the additional records that belong to it, so trimming keeps them together.
    pub(crate) answers: Vec<(Record, Vec<Record>)>,
    /// The zone's SOA, sent in the authority section of NXDOMAIN and NODATA answers.
    pub(crate) soa: Option<Record>,
}

/// The parts of [`Config`] the lookup needs in wire form, built once at start.
#[derive(Clone)]
pub(crate) struct Zones {
    /// The primary domain's apex, fully qualified.
    pub(crate) primary: Name,
    /// The alt domain's apex, fully qualified.
    pub(crate) alt: Option<Name>,
}

impl Zones {
    fn apex(&self, zone: &Zone) -> &Name {
        match (zone, &self.alt) {
            (Zone::Alt, Some(alt)) => alt,
            _ => &self.primary,
        }
    }
}

/// Answers `kind` for `qname`/`qtype` from `view`.
pub(crate) async fn lookup(
    config: &Config,
    zones: &Zones,
    view: &dyn CatalogView,
    kind: QueryKind,
    qname: &Name,
    qtype: RecordType,
    source: IpAddr,
) -> Result<Outcome, ViewError> {
    let lookup = Lookup { config, zones, qname, qtype };
    match kind {
        QueryKind::PreparedQuery { name, datacenter, zone } => {
            lookup.prepared_query(view, &name, datacenter.as_deref(), &zone, source).await
        }
        QueryKind::Service { name, tag, datacenter, zone } => {
            if !lookup.is_local_dc(datacenter.as_deref()) {
                return Ok(lookup.nxdomain(&zone));
            }
            let instances = healthy(view.service_instances(&name, tag.as_deref()).await?, config.only_passing);
            let meta = lookup.srv_node_meta(view, &instances).await?;
            Ok(lookup.service(&name, instances, &meta, &zone))
        }
        QueryKind::Node { name, datacenter, zone } => {
            if !lookup.is_local_dc(datacenter.as_deref()) {
                return Ok(lookup.nxdomain(&zone));
            }
            let node = view.node(&name).await?;
            Ok(node.map_or_else(|| lookup.nxdomain(&zone), |node| lookup.node(&node.address, &node.meta, &zone)))
        }
        QueryKind::Addr { ip, datacenter, zone } => {
            if !lookup.is_local_dc(datacenter.as_deref()) {
                return Ok(lookup.nxdomain(&zone));
            }
            let ttl = ttl_secs(config.node_ttl);
            let records = ip_record(qname, ttl, ip, qtype).into_iter().collect();
            Ok(lookup.records_or_nodata(records, &zone))
        }
        QueryKind::Apex { zone } => Ok(lookup.apex(&zone)),
        QueryKind::Invalid { zone } => Ok(lookup.nxdomain(&zone)),
        QueryKind::Ptr { ip } if matches!(qtype, RecordType::PTR | RecordType::ANY) => lookup.ptr(view, ip).await,
        QueryKind::Ptr { .. } | QueryKind::External => Ok(Outcome::Forward),
    }
}

/// One question being answered.
pub(crate) struct Lookup<'a> {
    pub(crate) config: &'a Config,
    zones: &'a Zones,
    qname: &'a Name,
    qtype: RecordType,
}

impl Lookup<'_> {
    pub(crate) fn is_local_dc(&self, datacenter: Option<&str>) -> bool {
        datacenter.is_none_or(|datacenter| datacenter.eq_ignore_ascii_case(&self.config.datacenter))
    }

    /// The meta of the instances' nodes when an SRV answer carries it: Consul adds each node's meta as TXT records
    /// after the SRV targets' addresses.
    pub(crate) async fn srv_node_meta(
        &self,
        view: &dyn CatalogView,
        instances: &[Instance],
    ) -> Result<NodeMeta, ViewError> {
        if self.qtype != RecordType::SRV || !self.config.node_meta_txt || instances.is_empty() {
            return Ok(NodeMeta::new());
        }
        let mut nodes: Vec<&str> = instances.iter().map(|instance| instance.node.name.as_str()).collect();
        nodes.sort_unstable();
        nodes.dedup();
        view.node_meta(&nodes).await
    }

    /// A service's answer from its healthy `instances`; `meta` holds their nodes' meta for SRV answers.
    fn service(&self, name: &str, mut instances: Vec<Instance>, meta: &NodeMeta, zone: &Zone) -> Outcome {
        if instances.is_empty() {
            // Consul answers NXDOMAIN, not NODATA, for a service with no healthy instance.
            return self.nxdomain(zone);
        }
        // Shuffle so clients that take the first record spread their load.
        instances.shuffle(&mut rand::rng());
        let ttl = ttl_secs(self.config.service_ttl_for(name));
        self.instance_answers(&instances, ttl, meta, zone)
    }

    /// The A/AAAA or SRV answers for `instances`, in their order, or NODATA for another type.
    pub(crate) fn instance_answers(&self, instances: &[Instance], ttl: u32, meta: &NodeMeta, zone: &Zone) -> Outcome {
        let entries = match self.qtype {
            RecordType::SRV => {
                // One SRV per node, address and port, as Consul: two registrations of one endpoint are one target.
                let mut seen = HashSet::new();
                instances
                    .iter()
                    .filter(|instance| seen.insert((&instance.node.name, &instance.address, instance.port)))
                    .filter_map(|instance| self.srv(instance, ttl, meta, zone))
                    .collect()
            }
            RecordType::A | RecordType::AAAA | RecordType::ANY => {
                let limit = match self.config.a_record_limit {
                    0 => usize::MAX,
                    limit => usize::try_from(limit).unwrap_or(usize::MAX),
                };
                let mut seen = HashSet::new();
                instances
                    .iter()
                    .map(effective_address)
                    // Several instances on one address would only repeat the same record.
                    .filter(|address| seen.insert(*address))
                    .filter_map(|address| address_record(self.qname, ttl, address, self.qtype))
                    .map(|record| (record, Vec::new()))
                    // After the shuffle, so the limit picks a different subset each time, as Consul's does.
                    .take(limit)
                    .collect()
            }
            _ => Vec::new(),
        };
        self.entries_or_nodata(entries, zone)
    }

    /// The SRV record of one instance and the address record of its target.
    ///
    /// The target is `<node>.node.<dc>.<domain>.` when the instance uses its node's address, and
    /// `<hex>.addr.<dc>.<domain>.` when it has its own IP (as Consul does), so the additional A record
    /// never contradicts a node lookup. A hostname address is itself the target.
    /// Every SRV record carries its own additional records, even when several share a target: resolvers that
    /// pair additional records with SRV answers one to one (HAProxy's `server-template`) would otherwise bring up
    /// only some instances. The handler removes the repeats only when it must trim an answer, as Consul does.
    /// With `node_meta_txt`, the node's meta follows as TXT records owned by `<node>.node.<dc>.<domain>.`.
    fn srv(&self, instance: &Instance, ttl: u32, meta: &NodeMeta, zone: &Zone) -> Option<(Record, Vec<Record>)> {
        let weight = match instance.health {
            Health::Warning => instance.weight_warning,
            Health::Passing | Health::Critical => instance.weight_passing,
        };
        let weight = u16::try_from(weight.max(0)).unwrap_or(u16::MAX);
        let address = effective_address(instance);
        let (target, additional) = match address.parse::<IpAddr>() {
            Ok(ip) => {
                let target = if instance.address.is_empty() || instance.address == instance.node.address {
                    self.in_zone(&format!("{}.node.{}", instance.node.name, self.config.datacenter), zone)?
                } else {
                    self.in_zone(&format!("{}.addr.{}", hex_ip(ip), self.config.datacenter), zone)?
                };
                let additional = ip_record(&target, ttl, ip, RecordType::ANY);
                (target, additional.into_iter().collect())
            }
            Err(_) => (hostname(address)?, Vec::new()),
        };
        let mut additional = additional;
        if let Some(pairs) = meta.get(&instance.node.name).filter(|pairs| !pairs.is_empty())
            && let Some(node_name) =
                self.in_zone(&format!("{}.node.{}", instance.node.name, self.config.datacenter), zone)
        {
            additional.extend(txt_records(&node_name, ttl, pairs));
        }
        let srv = SRV::new(1, weight, instance.port, target);
        Some((Record::from_rdata(self.qname.clone(), ttl, RData::SRV(srv)), additional))
    }

    /// A node's address record, and its meta as TXT records: in the answer for TXT and ANY questions, in the
    /// additional section of A and AAAA answers with `node_meta_txt` (Consul's placement).
    fn node(&self, address: &str, meta: &BTreeMap<String, String>, zone: &Zone) -> Outcome {
        let ttl = ttl_secs(self.config.node_ttl);
        let mut records: Vec<Record> = address_record(self.qname, ttl, address, self.qtype).into_iter().collect();
        if matches!(self.qtype, RecordType::TXT | RecordType::ANY) {
            records.extend(txt_records(self.qname, ttl, meta));
            return self.records_or_nodata(records, zone);
        }
        let mut entries: Vec<(Record, Vec<Record>)> = records.into_iter().map(|record| (record, Vec::new())).collect();
        if self.config.node_meta_txt
            && let Some((_, additional)) = entries.first_mut()
        {
            additional.extend(txt_records(self.qname, ttl, meta));
        }
        self.entries_or_nodata(entries, zone)
    }

    async fn ptr(&self, view: &dyn CatalogView, ip: IpAddr) -> Result<Outcome, ViewError> {
        let nodes = view.nodes_with_address(ip).await?;
        let services = view.services_with_address(ip).await?;
        let datacenter = &self.config.datacenter;
        let mut targets: Vec<Name> = Vec::new();
        let names = nodes
            .iter()
            .map(|node| format!("{}.node.{datacenter}", node.name))
            .chain(services.iter().map(|instance| format!("{}.service.{datacenter}", instance.service_name)));
        for name in names {
            if let Some(target) = self.in_zone(&name, &Zone::Primary)
                && !targets.contains(&target)
            {
                targets.push(target);
            }
        }
        if targets.is_empty() {
            return Ok(Outcome::Forward);
        }
        let ttl = ttl_secs(self.config.node_ttl);
        let records = targets
            .into_iter()
            .map(|target| (Record::from_rdata(self.qname.clone(), ttl, RData::PTR(PTR(target))), Vec::new()))
            .collect();
        Ok(Outcome::Local(Box::new(Answer { response_code: ResponseCode::NoError, answers: records, soa: None })))
    }

    fn apex(&self, zone: &Zone) -> Outcome {
        let apex = self.zones.apex(zone);
        let records = match self.qtype {
            RecordType::SOA | RecordType::ANY => vec![soa_record(apex, &self.config.soa)],
            RecordType::NS => {
                ns_name(apex).map(|ns| Record::from_rdata(apex.clone(), 0, RData::NS(NS(ns)))).into_iter().collect()
            }
            _ => Vec::new(),
        };
        self.records_or_nodata(records, zone)
    }

    pub(crate) fn nxdomain(&self, zone: &Zone) -> Outcome {
        Outcome::Local(Box::new(Answer {
            response_code: ResponseCode::NXDomain,
            answers: Vec::new(),
            soa: Some(soa_record(self.zones.apex(zone), &self.config.soa)),
        }))
    }

    fn records_or_nodata(&self, records: Vec<Record>, zone: &Zone) -> Outcome {
        self.entries_or_nodata(records.into_iter().map(|record| (record, Vec::new())).collect(), zone)
    }

    /// NOERROR with the records, or NODATA (NOERROR, no answers, SOA in authority) when there are none.
    fn entries_or_nodata(&self, answers: Vec<(Record, Vec<Record>)>, zone: &Zone) -> Outcome {
        let soa = answers.is_empty().then(|| soa_record(self.zones.apex(zone), &self.config.soa));
        Outcome::Local(Box::new(Answer { response_code: ResponseCode::NoError, answers, soa }))
    }

    /// `<relative>.<apex>.` in the zone asked, or `None` if that is not a valid DNS name (e.g. a node
    /// name with characters DNS cannot carry), in which case the record is left out.
    fn in_zone(&self, relative: &str, zone: &Zone) -> Option<Name> {
        Name::from_ascii(relative).ok()?.append_domain(self.zones.apex(zone)).ok()
    }
}

/// The SOA Consul serves: `ns.<domain>. hostmaster.<domain>.`, serial = the current Unix time, the timers of
/// `dns_config.soa`, and `min_ttl` as the record's own TTL too (Consul keeps them equal so the negative answer
/// it comes with is not cached longer than the zone says).
pub(crate) fn soa_record(apex: &Name, timers: &Soa) -> Record {
    let serial = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs() as u32);
    let mname = ns_name(apex).unwrap_or_else(|| apex.clone());
    let rname =
        Name::from_ascii("hostmaster").and_then(|label| label.append_domain(apex)).unwrap_or_else(|_| apex.clone());
    // SOA's refresh, retry and expire are signed on hickory's side; Consul's config keys are unsigned, so saturate.
    let signed = |secs: u32| i32::try_from(secs).unwrap_or(i32::MAX);
    let soa = SOA::new(
        mname,
        rname,
        serial,
        signed(timers.refresh),
        signed(timers.retry),
        signed(timers.expire),
        timers.min_ttl,
    );
    Record::from_rdata(apex.clone(), timers.min_ttl, RData::SOA(soa))
}

/// Instances a DNS answer may name: none critical, and none warning under `only_passing`.
fn healthy(mut instances: Vec<Instance>, only_passing: bool) -> Vec<Instance> {
    instances.retain(|instance| match instance.health {
        Health::Passing => true,
        Health::Warning => !only_passing,
        Health::Critical => false,
    });
    instances
}

/// A node's meta as TXT records owned by `owner`, one per pair.
fn txt_records<'m>(owner: &'m Name, ttl: u32, meta: &'m BTreeMap<String, String>) -> impl Iterator<Item = Record> + 'm {
    meta.iter()
        .map(move |(key, value)| Record::from_rdata(owner.clone(), ttl, RData::TXT(TXT::new(txt_strings(key, value)))))
}

fn ns_name(apex: &Name) -> Option<Name> {
    Name::from_ascii("ns").ok()?.append_domain(apex).ok()
}

fn effective_address(instance: &Instance) -> &str {
    if instance.address.is_empty() { &instance.node.address } else { &instance.address }
}

/// The record for `address` that answers `qtype`: A or AAAA for an IP of the right family, a CNAME for a hostname.
fn address_record(owner: &Name, ttl: u32, address: &str, qtype: RecordType) -> Option<Record> {
    match address.parse::<IpAddr>() {
        Ok(ip) => ip_record(owner, ttl, ip, qtype),
        Err(_) if matches!(qtype, RecordType::A | RecordType::AAAA | RecordType::ANY) => {
            Some(Record::from_rdata(owner.clone(), ttl, RData::CNAME(CNAME(hostname(address)?))))
        }
        Err(_) => None,
    }
}

fn ip_record(owner: &Name, ttl: u32, ip: IpAddr, qtype: RecordType) -> Option<Record> {
    let rdata = match (ip, qtype) {
        (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => RData::A(A(v4)),
        (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => RData::AAAA(AAAA(v6)),
        _ => return None,
    };
    Some(Record::from_rdata(owner.clone(), ttl, rdata))
}

fn hostname(address: &str) -> Option<Name> {
    let mut name = Name::from_ascii(address).ok()?;
    name.set_fqdn(true);
    (!name.is_root()).then_some(name)
}

/// An address as the hex label of `<hex>.addr.<dc>.<domain>`.
fn hex_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{:08x}", u32::from(v4)),
        IpAddr::V6(v6) => format!("{:032x}", u128::from(v6)),
    }
}

/// A meta pair as RFC 1464 `key=value` (Consul's form, backquotes in the value doubled too); a key starting
/// `rfc1035-` in any case gives the bare value. Long strings are split into 255-octet character-strings, which TXT
/// requires.
fn txt_strings(key: &str, value: &str) -> Vec<String> {
    let text = if key.get(..8).is_some_and(|prefix| prefix.eq_ignore_ascii_case("rfc1035-")) {
        value.to_owned()
    } else {
        let escaped = key.replace('`', "``").replace('=', "`=");
        // RFC 1464 drops unquoted leading and trailing spaces of a key, so backquote them.
        let trimmed_start = escaped.trim_start_matches(' ');
        let lead = escaped.len() - trimmed_start.len();
        let core = trimmed_start.trim_end_matches(' ');
        let trail = trimmed_start.len() - core.len();
        format!("{}{core}{}={}", "` ".repeat(lead), "` ".repeat(trail), value.replace('`', "``"))
    };
    chunk(&text)
}

fn chunk(text: &str) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut current = String::new();
    for character in text.chars() {
        if current.len() + character.len_utf8() > TXT_CHUNK {
            chunks.push(std::mem::take(&mut current));
        }
        current.push(character);
    }
    if !current.is_empty() || chunks.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// A TTL in whole seconds, saturating at the largest a record can carry.
pub(crate) fn ttl_secs(ttl: Duration) -> u32 {
    u32::try_from(ttl.as_secs()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests;
