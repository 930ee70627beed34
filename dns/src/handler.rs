//! The hickory `RequestHandler`: screens a request, answers our domain from the catalog view, forwards
//! the rest to the recursors, and trims answers to what the transport can carry.
//!
//! Every path is bounded in time: catalog lookups by `query_timeout`, forwarding by `recursor_timeout` per recursor,
//! and each ends in SERVFAIL rather than silence, because a resolver that times out retries and then
//! gives up on the whole name, while SERVFAIL lets it move on at once.

use std::collections::HashSet;
use std::sync::Arc;

use hickory_proto::op::{Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncoder, NameEncoding};
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tracing::{debug, warn};

use crate::answer::{self, Answer, Outcome, Zones};
use crate::cache::{AnswerCache, Entry};
use crate::config::SharedConfig;
use crate::forward::{self, Transport};
use crate::name::{QueryKind, parse_query_name, parse_srv_query_name};
use crate::view::CatalogView;
use crate::wire;

/// RFC 1035 §4.2.1: a UDP message without EDNS0 carries at most 512 octets.
pub(crate) const UDP_MIN_PAYLOAD: u16 = 512;

/// Largest UDP payload we fill and advertise, whatever a client asks for: Consul's ceiling, a 64 KiB datagram less
/// the largest IP and UDP headers, since a larger answer could not be delivered at all.
const UDP_MAX_PAYLOAD: u16 = u16::MAX - 68;

/// A TCP message is prefixed by a 16-bit length, so 64 KiB is the ceiling.
const TCP_MAX_MESSAGE: usize = u16::MAX as usize;

/// A compressed owner name (2) plus type, class, TTL and RDLENGTH (10) plus at least one octet of data.
const MIN_RECORD_LEN: usize = 13;

/// The DNS request handler the hickory `Server` drives (TCP) and our own UDP loop falls back to.
#[derive(Clone)]
pub(crate) struct DnsHandler {
    /// The settings; each request reads the newest.
    pub(crate) config: SharedConfig,
    /// The apex names of `domain` and `alt_domain`.
    pub(crate) zones: Zones,
    /// Where the answers come from.
    pub(crate) view: Arc<dyn CatalogView>,
    /// Local answers in wire form, filled here and read by the UDP loop.
    pub(crate) cache: Arc<AnswerCache>,
}

#[async_trait::async_trait]
impl RequestHandler for DnsHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(&self, request: &Request, response_handle: R) -> ResponseInfo {
        let start = std::time::Instant::now();
        let response_edns = response_edns(request);
        if let Some(response_code) = screen(request) {
            return send_error(request, response_edns.as_ref(), response_code, response_handle).await;
        }
        let Ok(info) = request.request_info() else {
            return send_error(request, response_edns.as_ref(), ResponseCode::FormErr, response_handle).await;
        };
        let qname: Name = info.query.name().into();
        let qtype = info.query.query_type();
        // Zone transfers would hand out the whole catalog; nobody gets one.
        if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
            return send_error(request, response_edns.as_ref(), ResponseCode::Refused, response_handle).await;
        }
        // The version first: an answer is never filed under settings newer than those it was made with.
        let settings = self.config.version();
        let config = self.config.current();
        let kind = if qtype == RecordType::SRV {
            parse_srv_query_name(&qname.to_ascii(), &config.domain, config.alt_domain.as_deref())
        } else {
            parse_query_name(&qname.to_ascii(), &config.domain, config.alt_domain.as_deref())
        };
        debug!(%qname, %qtype, ?kind, "dns query");
        // Consul times reverse lookups apart from the rest of its domain.
        let timer =
            if matches!(kind, QueryKind::Ptr { .. }) { "consul.dns.ptr_query" } else { "consul.dns.domain_query" };
        // Read before the lookup, so a write racing it leaves an entry that is already out of date, never a stale
        // answer filed under the new generation.
        // A prepared query's answer is ordered for its asker (`Near`) and its query may change without a catalog
        // write, so it is never cached (a cache hit would reshuffle it, and the generation would not retire it).
        let generation = self.view.generation().filter(|_| !matches!(kind, QueryKind::PreparedQuery { .. }));
        let source = request.src().ip();
        let lookup = answer::lookup(&config, &self.zones, self.view.as_ref(), kind, &qname, qtype, source);
        match tokio::time::timeout(config.query_timeout, lookup).await {
            Ok(Ok(Outcome::Local(answer))) => {
                if let Some(generation) = generation {
                    self.remember(request, info.query.original(), qtype, &answer, (generation, settings));
                }
                // Recorded before the answer leaves, so a client that got it finds it counted.
                metrics::histogram!(timer).record(start.elapsed().as_secs_f64() * 1000.0);
                self.send_answer(request, response_edns.as_ref(), qtype, answer, response_handle).await
            }
            Ok(Ok(Outcome::Forward)) => self.forward(request, response_edns.as_ref(), response_handle).await,
            Ok(Err(error)) => {
                warn!(%qname, %error, "catalog lookup failed");
                send_error(request, response_edns.as_ref(), ResponseCode::ServFail, response_handle).await
            }
            Err(_) => {
                warn!(%qname, timeout = ?config.query_timeout, "catalog lookup timed out");
                send_error(request, response_edns.as_ref(), ResponseCode::ServFail, response_handle).await
            }
        }
    }
}

impl DnsHandler {
    /// Hands a name outside our domain to the recursors (`forward.rs`), each bounded by `recursor_timeout`, and
    /// relays the first acceptable reply; SERVFAIL when none gave one, REFUSED at once when there are none.
    async fn forward<R: ResponseHandler>(
        &self,
        request: &Request,
        response_edns: Option<&Edns>,
        mut response_handle: R,
    ) -> ResponseInfo {
        let config = self.config.current();
        if config.recursors.is_empty() {
            // Consul refuses at once rather than pretending to recurse.
            return send_error(request, response_edns, ResponseCode::Refused, response_handle).await;
        }
        let transport = if request.protocol() == Protocol::Udp { Transport::Udp } else { Transport::Tcp };
        metrics::counter!("roster.dns.recursor_queries_total").increment(1);
        let Some(reply) = forward::forward(&config, request.as_slice(), transport).await else {
            metrics::counter!("roster.dns.recursor_failures_total").increment(1);
            warn!(recursors = config.recursors.len(), "no recursor answered");
            return send_error(request, response_edns, ResponseCode::ServFail, response_handle).await;
        };
        let mut metadata = reply.metadata;
        metadata.id = request.metadata.id;
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(edns) = &reply.edns {
            builder.edns(edns);
        }
        let response =
            builder.build(metadata, reply.answers.iter(), reply.authorities.iter(), [], reply.additionals.iter());
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(error) => {
                warn!(%error, "failed to relay a recursor's reply");
                servfail_info(request)
            }
        }
    }

    /// Files a local answer to a UDP question in the answer cache, for the UDP loop's next identical question.
    fn remember(&self, request: &Request, query: &Query, qtype: RecordType, answer: &Answer, made: (u64, u64)) {
        if request.protocol() != Protocol::Udp {
            return;
        }
        let mut key = Vec::with_capacity(64);
        if wire::parse_query(request.as_slice(), &mut key).is_none() {
            return;
        }
        let (answer_limit, _) = self.limits(request, qtype);
        let recursion_available = !self.config.current().recursors.is_empty();
        let compress = !self.config.current().disable_compression;
        if let Some(entry) = Entry::build(answer, query, made, recursion_available, answer_limit, compress) {
            self.cache.insert(&key, entry);
        }
    }

    /// Encodes `answer`, trimming the answer section until the message fits the transport.
    async fn send_answer<R: ResponseHandler>(
        &self,
        request: &Request,
        response_edns: Option<&Edns>,
        qtype: RecordType,
        answer: Box<Answer>,
        mut response_handle: R,
    ) -> ResponseInfo {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = true;
        metadata.recursion_available = !self.config.current().recursors.is_empty();
        metadata.response_code = answer.response_code;
        let soa: Vec<Record> = answer.soa.into_iter().collect();

        let (max_answers, max_bytes) = self.limits(request, qtype);
        let config = self.config.current();
        let compress = request.protocol() != Protocol::Udp || !config.disable_compression;
        let n_answers = answer.answers.len();
        let encoded = |n_kept: usize, trimmed: bool| {
            let (answers, additionals) = flatten(&answer.answers[..n_kept], trimmed);
            encoded_len(request, response_edns, metadata, (&answers, &soa, &additionals), compress)
        };
        // Consul sends every answer's additional records as they are, and only when it must trim an answer does it
        // cut the additional section down to one address per SRV target; so does this.
        let whole_fits = n_answers <= max_answers && encoded(n_answers, false) <= max_bytes;
        let (n_kept, trimmed) = if whole_fits {
            (n_answers, false)
        } else {
            // No record encodes in fewer than MIN_RECORD_LEN octets, which bounds the search cheaply for huge services.
            let upper = n_answers.min(max_answers).min(max_bytes / MIN_RECORD_LEN);
            (largest_fitting(upper, |n_kept| encoded(n_kept, true) <= max_bytes), true)
        };
        if n_kept < n_answers {
            debug!(n_answers, n_kept, "answer trimmed");
            // Consul sets TC only when asked to; by default a trimmed UDP answer is still a usable answer.
            metadata.truncation = config.enable_truncate && request.protocol() == Protocol::Udp;
        }
        let (answers, additionals) = flatten(&answer.answers[..n_kept], trimmed);
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(edns) = response_edns {
            builder.edns(edns);
        }
        let response = builder.build(metadata, answers.iter().copied(), [], soa.iter(), additionals.iter().copied());
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(error) => {
                warn!(%error, "failed to send DNS response");
                servfail_info(request)
            }
        }
    }

    /// The most answers and bytes a response on this request's transport may carry.
    fn limits(&self, request: &Request, qtype: RecordType) -> (usize, usize) {
        if request.protocol() != Protocol::Udp {
            return (usize::MAX, TCP_MAX_MESSAGE);
        }
        let max_bytes =
            usize::from(request.edns.as_ref().map_or(UDP_MIN_PAYLOAD, |edns| advertised_payload(edns.max_payload())));
        let limit = self.config.current().udp_answer_limit;
        let max_answers = if limit > 0 && matches!(qtype, RecordType::A | RecordType::AAAA | RecordType::ANY) {
            usize::try_from(limit).unwrap_or(usize::MAX)
        } else {
            usize::MAX
        };
        (max_answers, max_bytes)
    }
}

/// Rejects what is not a plain query: responses (FORMERR), other opcodes (NOTIMP), EDNS versions above 0 (BADVERS).
fn screen(request: &Request) -> Option<ResponseCode> {
    if request.metadata.message_type != MessageType::Query {
        return Some(ResponseCode::FormErr);
    }
    if request.metadata.op_code != OpCode::Query {
        return Some(ResponseCode::NotImp);
    }
    if request.edns.as_ref().is_some_and(|edns| edns.version() > 0) {
        return Some(ResponseCode::BADVERS);
    }
    None
}

/// Our OPT record when the client sent one (RFC 6891 §6.1.1), advertising the payload we fill.
fn response_edns(request: &Request) -> Option<Edns> {
    let request_edns = request.edns.as_ref()?;
    let mut edns = Edns::new();
    edns.set_max_payload(advertised_payload(request_edns.max_payload()));
    edns.set_version(0);
    Some(edns)
}

/// The UDP payload we fill, and advertise, for a client that advertised `payload`.
pub(crate) fn advertised_payload(payload: u16) -> u16 {
    payload.clamp(UDP_MIN_PAYLOAD, UDP_MAX_PAYLOAD)
}

/// The answer records and their additionals, in order.
///
/// Untrimmed, every answer keeps all of its additional records, repeats included. Trimmed, the additional section
/// is Consul's minimal one: the first address record of each distinct SRV target, and nothing else (node meta TXT
/// records go), which is what lets a trimmed answer carry as many SRV records as possible.
pub(crate) fn flatten(entries: &[(Record, Vec<Record>)], trimmed: bool) -> (Vec<&Record>, Vec<&Record>) {
    let answers = entries.iter().map(|(record, _)| record).collect();
    if !trimmed {
        return (answers, entries.iter().flat_map(|(_, extra)| extra).collect());
    }
    let mut targets: HashSet<Name> = HashSet::new();
    let additionals = entries
        .iter()
        .filter_map(|(record, extra)| match &record.data {
            RData::SRV(srv) => Some((srv.target.to_lowercase(), extra)),
            _ => None,
        })
        .filter_map(|(target, extra)| {
            let address = extra.iter().find(|extra| extra.name.to_lowercase() == target)?;
            targets.insert(target).then_some(address)
        })
        .collect();
    (answers, additionals)
}

/// The exact size hickory will encode for this response (same builder, no size cap).
fn encoded_len(
    request: &Request,
    response_edns: Option<&Edns>,
    metadata: Metadata,
    (answers, soa, additionals): (&[&Record], &[Record], &[&Record]),
    compress: bool,
) -> usize {
    let mut builder = MessageResponseBuilder::from_message_request(request);
    if let Some(edns) = response_edns {
        builder.edns(edns);
    }
    let response = builder.build(metadata, answers.iter().copied(), [], soa.iter(), additionals.iter().copied());
    let mut bytes = Vec::with_capacity(512);
    let mut encoder = BinEncoder::new(&mut bytes);
    if !compress {
        encoder.set_name_encoding(NameEncoding::Uncompressed);
    }
    match response.destructive_emit(&mut encoder) {
        Ok(_) => bytes.len(),
        Err(_) => usize::MAX,
    }
}

/// The largest `n` in `0..=upper` with `fits(n)`, assuming `fits` is monotone (fewer records never grow a message).
fn largest_fitting(upper: usize, fits: impl Fn(usize) -> bool) -> usize {
    if fits(upper) {
        return upper;
    }
    let (mut low, mut high) = (0, upper);
    // Invariant: `low` fits (zero answers always does in practice) and `high` does not.
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if fits(mid) { low = mid } else { high = mid }
    }
    low
}

async fn send_error<R: ResponseHandler>(
    request: &Request,
    response_edns: Option<&Edns>,
    response_code: ResponseCode,
    mut response_handle: R,
) -> ResponseInfo {
    let mut response =
        MessageResponseBuilder::from_message_request(request).error_msg(&request.metadata, response_code);
    if let Some(edns) = response_edns {
        response.set_edns(edns);
    }
    match response_handle.send_response(response).await {
        Ok(info) => info,
        Err(error) => {
            warn!(%error, "failed to send DNS error response");
            servfail_info(request)
        }
    }
}

/// What we report to hickory when not even an error response could be sent.
fn servfail_info(request: &Request) -> ResponseInfo {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.response_code = ResponseCode::ServFail;
    ResponseInfo::from(Header { metadata, counts: HeaderCounts::default() })
}

#[cfg(test)]
mod tests;
