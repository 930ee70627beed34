//! Cached answers: what a hit puts on the wire, shuffling, limits, and when an entry stops being used.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::*;
use crate::answer::soa_record;
use crate::wire::parse_query;

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

fn request(qname: &str, record_type: RecordType, edns: Option<u16>) -> (Vec<u8>, Query) {
    let query = Query::query(name(qname), record_type);
    let mut message = Message::new(7, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(query.clone());
    if let Some(payload) = edns {
        let mut opt = Edns::new();
        opt.set_max_payload(payload);
        message.set_edns(opt);
    }
    (message.to_vec().unwrap(), query)
}

fn a_answer(qname: &str, count: u8) -> Answer {
    let answers = (1..=count)
        .map(|i| (Record::from_rdata(name(qname), 0, RData::A(A(Ipv4Addr::new(10, 0, 0, i)))), Vec::new()))
        .collect();
    Answer { response_code: ResponseCode::NoError, answers, soa: None }
}

/// Answers `packet` from `entry`, decoded.
fn hit(entry: &Entry, packet: &[u8], max_len: usize) -> Option<Message> {
    let query = parse_query(packet, &mut Vec::new()).expect("plain query");
    let mut out = Vec::new();
    entry.respond(packet, &query, max_len, &mut out).then(|| Message::from_vec(&out).expect("a valid message"))
}

fn addresses(message: &Message) -> Vec<Ipv4Addr> {
    message
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

#[test]
fn a_hit_is_the_answer_to_this_request_with_its_id_and_case() {
    let (packet, query) = request("files.service.consul.", RecordType::A, None);
    let entry = Entry::build(&a_answer("files.service.consul.", 3), &query, (1, 0), false, usize::MAX, true).unwrap();
    // Same name in another case: the question and the owner names follow the asker's spelling.
    let (other, _) = request("FILES.service.consul.", RecordType::A, None);
    let message = hit(&entry, &other, 512).expect("fits");
    assert_eq!(message.metadata.id, 7);
    assert_eq!(message.metadata.message_type, MessageType::Response);
    assert!(message.metadata.authoritative && message.metadata.recursion_desired);
    assert!(!message.metadata.recursion_available);
    assert_eq!(message.metadata.response_code, ResponseCode::NoError);
    assert_eq!(message.queries[0].name().to_ascii(), "FILES.service.consul.");
    assert!(message.answers.iter().all(|record| record.name.to_ascii() == "FILES.service.consul."));
    let got: BTreeSet<_> = addresses(&message).into_iter().collect();
    assert_eq!(got, (1..=3).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect());
    assert!(message.edns.is_none());
    drop(packet);
}

#[test]
fn hits_are_shuffled_and_limited() {
    let (packet, query) = request("files.service.consul.", RecordType::A, Some(4096));
    let entry = Entry::build(&a_answer("files.service.consul.", 5), &query, (1, 0), true, 3, true).unwrap();
    let mut firsts = BTreeSet::new();
    for _ in 0..200 {
        let message = hit(&entry, &packet, 4096).expect("fits");
        assert_eq!(message.answers.len(), 3, "udp_answer_limit");
        assert!(message.metadata.recursion_available);
        assert_eq!(message.edns.as_ref().map(Edns::max_payload), Some(4096));
        firsts.insert(addresses(&message)[0]);
    }
    assert!(firsts.len() >= 4, "every instance leads some answers: {firsts:?}");
}

#[test]
fn an_answer_too_big_for_the_client_is_declined() {
    let (packet, query) = request("big.service.consul.", RecordType::A, None);
    let entry = Entry::build(&a_answer("big.service.consul.", 40), &query, (1, 0), false, usize::MAX, true).unwrap();
    assert!(hit(&entry, &packet, 512).is_none(), "40 A records exceed 512 bytes: the full path trims");
    assert_eq!(hit(&entry, &packet, 4096).expect("fits 4096").answers.len(), 40);
}

#[test]
fn every_srv_answer_keeps_its_own_additional_record_and_nxdomain_keeps_its_soa() {
    let qname = "files.service.consul.";
    let (packet, query) = request(qname, RecordType::SRV, None);
    let target = name("n1.node.dc1.consul.");
    let address = Record::from_rdata(target.clone(), 0, RData::A(A(Ipv4Addr::new(10, 0, 0, 1))));
    let srv = |port| Record::from_rdata(name(qname), 0, RData::SRV(SRV::new(1, 1, port, target.clone())));
    let answer = Answer {
        response_code: ResponseCode::NoError,
        answers: vec![(srv(80), vec![address.clone()]), (srv(81), vec![address])],
        soa: None,
    };
    let message = hit(&Entry::build(&answer, &query, (1, 0), false, usize::MAX, true).unwrap(), &packet, 512).unwrap();
    assert_eq!(message.answers.len(), 2);
    // Resolvers that pair additional records with SRV answers one to one need one address per SRV record.
    assert_eq!(message.additionals.len(), 2, "one address record per SRV answer, even for a shared target");
    assert!(message.additionals.iter().all(|record| record.name == target));
    let RData::SRV(first) = &message.answers[0].data else { panic!("an SRV answer") };
    assert_eq!(first.target, target);
    // Trimmed to fewer answers, the additional section must shrink to Consul's minimal one: the full path's job.
    let limited = Entry::build(&answer, &query, (1, 0), false, 1, true).unwrap();
    assert!(hit(&limited, &packet, 512).is_none(), "a trimmed SRV answer is left to the full path");

    let missing = Answer {
        response_code: ResponseCode::NXDomain,
        answers: Vec::new(),
        soa: Some(soa_record(&name("consul."), &crate::config::Soa::default())),
    };
    let (packet, query) = request("nope.service.consul.", RecordType::A, None);
    let message = hit(&Entry::build(&missing, &query, (1, 0), false, usize::MAX, true).unwrap(), &packet, 512).unwrap();
    assert_eq!(message.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(message.authorities.len(), 1);
    assert_eq!(message.authorities[0].record_type(), RecordType::SOA);
}

#[test]
fn entries_retire_with_their_generation_and_the_cache_is_bounded() {
    let cache = AnswerCache::default();
    let (packet, query) = request("files.service.consul.", RecordType::A, None);
    let mut key = Vec::new();
    parse_query(&packet, &mut key).unwrap();
    cache.insert(&key, Entry::build(&a_answer("files.service.consul.", 1), &query, (5, 0), false, 3, true).unwrap());
    assert!(cache.get(&key, 5, 0).is_some());
    assert!(cache.get(&key, 6, 0).is_none(), "a catalog change retires it");
    assert!(cache.get(&key, 5, 1).is_none(), "new settings (a config reload) retire it");
    for i in 0..MAX_ENTRIES {
        let other = format!("{i}.invalid");
        cache.insert(other.as_bytes(), Entry::build(&a_answer("x.", 1), &query, (5, 0), false, 3, true).unwrap());
    }
    let len = cache.entries.read().unwrap().len();
    assert!(len <= MAX_ENTRIES, "{len} entries");
    assert!(cache.get(&key, 5, 0).is_none(), "starting over dropped the old entries");
}
