//! The answer cache: local answers kept as pre-encoded records, so a repeat UDP question is answered by
//! copying bytes, not by a catalog read, record building and a full message encoding.
//!
//! An entry belongs to one question (lower-cased name and type) and one catalog generation
//! ([`CatalogView::generation`](crate::CatalogView::generation)); any catalog change retires every entry at
//! once, and no entry is used after [`MAX_AGE`], which bounds how long the SOA serial (the current time) and a
//! client agent's `max_stale` check can lag. Each record is encoded on its own after the question, so its names
//! compress only against the question, whose layout every query for the same name shares (case aside), and the
//! records can be reordered per answer: the cache shuffles them on every hit, as the full path does.
//! An answer that would not fit the client's UDP size is left to the full path, which trims it.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use hickory_proto::op::Query;
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};
use rand::seq::SliceRandom;

use crate::answer::Answer;
use crate::wire::{self, HEADER_LEN, PlainQuery};

/// The longest an entry is used, whatever the generation says.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(1);
/// The most questions cached; beyond it the cache starts over (a few distinct names dominate real traffic).
pub(crate) const MAX_ENTRIES: usize = 4096;

/// Cached answers by question.
#[derive(Default)]
pub(crate) struct AnswerCache {
    entries: RwLock<HashMap<Box<[u8]>, Arc<Entry>>>,
}

/// One local answer in wire form.
pub(crate) struct Entry {
    generation: u64,
    /// The [`SharedConfig`](crate::SharedConfig) version whose TTLs, filters and limits made it.
    settings: u64,
    born: Instant,
    response_code: u8,
    recursion_available: bool,
    /// The most answers a UDP response carries (`udp_answer_limit` for address questions).
    answer_limit: usize,
    answers: Vec<EncodedRecord>,
    authority: Option<Box<[u8]>>,
}

/// An answer record with the additional records that go with it (an SRV target's address).
struct EncodedRecord {
    record: Box<[u8]>,
    additionals: Vec<Box<[u8]>>,
}

impl AnswerCache {
    /// The entry for `key` if it was made at `generation` under the `settings` version and is young enough.
    pub(crate) fn get(&self, key: &[u8], generation: u64, settings: u64) -> Option<Arc<Entry>> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.get(key)?;
        let current = entry.generation == generation && entry.settings == settings;
        (current && entry.born.elapsed() < MAX_AGE).then(|| entry.clone())
    }

    /// Remembers `entry` as the answer to `key`.
    pub(crate) fn insert(&self, key: &[u8], entry: Entry) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(key) {
            entries.clear();
        }
        entries.insert(key.into(), Arc::new(entry));
    }
}

impl Entry {
    /// Encodes `answer` to the question `query` (as the request carried it) for reuse.
    ///
    /// `None` if a record does not encode, which leaves the question to the full path every time.
    pub(crate) fn build(
        answer: &Answer,
        query: &Query,
        (generation, settings): (u64, u64),
        recursion_available: bool,
        answer_limit: usize,
        compress: bool,
    ) -> Option<Entry> {
        let encode = |record: &Record| encode_after_question(query, record, compress);
        let answers = answer
            .answers
            .iter()
            .map(|(record, extra)| {
                Some(EncodedRecord {
                    record: encode(record)?,
                    additionals: extra.iter().map(encode).collect::<Option<_>>()?,
                })
            })
            .collect::<Option<_>>()?;
        let authority = match &answer.soa {
            Some(soa) => Some(encode(soa)?),
            None => None,
        };
        Some(Entry {
            generation,
            settings,
            born: Instant::now(),
            response_code: answer.response_code.low(),
            recursion_available,
            answer_limit,
            answers,
            authority,
        })
    }

    /// Writes the response to `query` (whose bytes are `packet`) into `out`, answers shuffled; `false` when it
    /// would exceed `max_len`, in which case `out` is garbage and the full path must answer.
    pub(crate) fn respond(&self, packet: &[u8], query: &PlainQuery, max_len: usize, out: &mut Vec<u8>) -> bool {
        let mut order: Vec<&EncodedRecord> = self.answers.iter().collect();
        order.shuffle(&mut rand::rng());
        order.truncate(self.answer_limit);
        // Every answer brings all of its additional records (one address per SRV record even when several share a
        // target). A trimmed answer needs Consul's minimal additional section instead, which the full path builds.
        if order.len() < self.answers.len() && order.iter().any(|record| !record.additionals.is_empty()) {
            return false;
        }
        let additionals = order.iter().flat_map(|record| &record.additionals);
        let n_additional = order.iter().map(|record| record.additionals.len()).sum::<usize>();
        let count = |n: usize| u16::try_from(n).unwrap_or(u16::MAX);
        let n_additional = n_additional + usize::from(query.edns_payload.is_some());
        let flags = wire::response_flags(query.flags, self.recursion_available, self.response_code);
        out.clear();
        out.extend_from_slice(&query.id.to_be_bytes());
        out.extend_from_slice(&flags.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&count(order.len()).to_be_bytes());
        out.extend_from_slice(&count(usize::from(self.authority.is_some())).to_be_bytes());
        out.extend_from_slice(&count(n_additional).to_be_bytes());
        out.extend_from_slice(&packet[HEADER_LEN..query.question_end]);
        for record in &order {
            out.extend_from_slice(&record.record);
        }
        if let Some(authority) = &self.authority {
            out.extend_from_slice(authority);
        }
        for extra in additionals {
            out.extend_from_slice(extra);
        }
        if let Some(payload) = query.edns_payload {
            out.extend_from_slice(&wire::opt_record(crate::handler::advertised_payload(payload)));
        }
        out.len() <= max_len
    }
}

/// `record` encoded as it would follow `query` in a message: names compressed against the question only, or not at
/// all without `compress`.
fn encode_after_question(query: &Query, record: &Record, compress: bool) -> Option<Box<[u8]>> {
    let mut bytes = Vec::with_capacity(128);
    let mut encoder = BinEncoder::new(&mut bytes);
    if !compress {
        encoder.set_name_encoding(NameEncoding::Uncompressed);
    }
    encoder.emit_vec(&[0u8; HEADER_LEN]).ok()?;
    query.emit(&mut encoder).ok()?;
    let start = encoder.offset();
    record.emit(&mut encoder).ok()?;
    Some(bytes[start..].into())
}

#[cfg(test)]
mod tests;
