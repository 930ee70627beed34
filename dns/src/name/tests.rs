//! Table tests of `parse_query_name`, plus a property test that it never panics.

use std::net::IpAddr;

use proptest::prelude::*;

use super::{QueryKind, Zone, parse_query_name};

fn check(qname: &str, expect: QueryKind) {
    assert_eq!(parse_query_name(qname, "consul", Some("alt.example")), expect, "parsing {qname:?}");
}

fn service(name: &str, tag: Option<&str>, datacenter: Option<&str>, zone: Zone) -> QueryKind {
    QueryKind::Service {
        name: name.to_owned(),
        tag: tag.map(str::to_owned),
        datacenter: datacenter.map(str::to_owned),
        zone,
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address")
}

#[test]
fn service_forms() {
    check("web.service.consul.", service("web", None, None, Zone::Primary));
    check("web.service.consul", service("web", None, None, Zone::Primary));
    check("WEB.Service.CONSUL.", service("web", None, None, Zone::Primary));
    check("v1.web.service.consul.", service("web", Some("v1"), None, Zone::Primary));
    check("web.service.dc1.consul.", service("web", None, Some("dc1"), Zone::Primary));
    check("v1.web.service.dc2.consul.", service("web", Some("v1"), Some("dc2"), Zone::Primary));
    check("web.service.alt.example.", service("web", None, None, Zone::Alt));
    check("a.b.web.service.consul.", QueryKind::Invalid { zone: Zone::Primary });
    check("service.consul.", QueryKind::Invalid { zone: Zone::Primary });
}

#[test]
fn rfc2782_forms() {
    check("_web._tcp.service.consul.", service("web", None, None, Zone::Primary));
    // Consul strips only `_tcp`; `_udp` is a tag like any other.
    check("_web._udp.service.consul.", service("web", Some("udp"), None, Zone::Primary));
    check("_web._v1.service.consul.", service("web", Some("v1"), None, Zone::Primary));
    check("_web._v1.service.dc1.consul.", service("web", Some("v1"), Some("dc1"), Zone::Primary));
    check("_web.v1.service.consul.", QueryKind::Invalid { zone: Zone::Primary });
    check("_._tcp.service.consul.", QueryKind::Invalid { zone: Zone::Primary });
    check("_web.service.consul.", QueryKind::Invalid { zone: Zone::Primary });
}

#[test]
fn explicit_datacenter_forms() {
    check("web.service.dc1.dc.consul.", service("web", None, Some("dc1"), Zone::Primary));
    check("v1.web.service.dc2.dc.consul.", service("web", Some("v1"), Some("dc2"), Zone::Primary));
    check("_web._v1.service.dc1.dc.alt.example.", service("web", Some("v1"), Some("dc1"), Zone::Alt));
    let node = QueryKind::Node { name: "n1".to_owned(), datacenter: Some("dc1".to_owned()), zone: Zone::Primary };
    check("n1.node.dc1.dc.consul.", node);
    let addr = QueryKind::Addr { ip: ip("127.0.0.1"), datacenter: Some("dc1".to_owned()), zone: Zone::Primary };
    check("7f000001.addr.dc1.dc.consul.", addr);
    // Cluster peers do not exist in roster, and nothing else may follow a datacenter.
    check("web.service.other.peer.consul.", QueryKind::Invalid { zone: Zone::Primary });
    check("web.service.dc1.xx.consul.", QueryKind::Invalid { zone: Zone::Primary });
    check("web.service.a.b.dc.consul.", QueryKind::Invalid { zone: Zone::Primary });
}

#[test]
fn srv_names_without_the_service_label() {
    let srv = |qname: &str| super::parse_srv_query_name(qname, "consul", Some("alt.example"));
    assert_eq!(srv("_web._tcp.consul."), service("web", None, None, Zone::Primary));
    assert_eq!(srv("_web._v1.dc1.consul."), service("web", Some("v1"), Some("dc1"), Zone::Primary));
    assert_eq!(srv("_web._tcp.dc1.dc.alt.example."), service("web", None, Some("dc1"), Zone::Alt));
    // The usual forms are unchanged, and other questions do not get the shorthand.
    assert_eq!(srv("_web._tcp.service.consul."), service("web", None, None, Zone::Primary));
    assert_eq!(srv("web.consul."), QueryKind::Invalid { zone: Zone::Primary });
    assert_eq!(parse_query_name("_web._tcp.consul.", "consul", None), QueryKind::Invalid { zone: Zone::Primary });
}

#[test]
fn bare_service_forms() {
    check("files.service.", service("files", None, None, Zone::Bare));
    check("files.service", service("files", None, None, Zone::Bare));
    check("v2.files.service.", service("files", Some("v2"), None, Zone::Bare));
    check("_files._tcp.service.", service("files", None, None, Zone::Bare));
    check("service.", QueryKind::External);
    check("a.b.c.service.", QueryKind::External);
}

#[test]
fn node_forms() {
    let node = |name: &str, datacenter: Option<&str>| QueryKind::Node {
        name: name.to_owned(),
        datacenter: datacenter.map(str::to_owned),
        zone: Zone::Primary,
    };
    check("n1.node.consul.", node("n1", None));
    check("n1.node.dc1.consul.", node("n1", Some("dc1")));
    check("host.example.node.consul.", node("host.example", None));
    check("node.consul.", QueryKind::Invalid { zone: Zone::Primary });
}

#[test]
fn addr_forms() {
    let addr = |text: &str, datacenter: Option<&str>| QueryKind::Addr {
        ip: ip(text),
        datacenter: datacenter.map(str::to_owned),
        zone: Zone::Primary,
    };
    check("7f000001.addr.dc1.consul.", addr("127.0.0.1", Some("dc1")));
    check("C0A80001.addr.consul.", addr("192.168.0.1", None));
    check("20010db8000000000000000000000001.addr.dc1.consul.", addr("2001:db8::1", Some("dc1")));
    check("7f00001.addr.dc1.consul.", QueryKind::Invalid { zone: Zone::Primary });
    check("7f00000g.addr.dc1.consul.", QueryKind::Invalid { zone: Zone::Primary });
    check("a.7f000001.addr.dc1.consul.", QueryKind::Invalid { zone: Zone::Primary });
}

#[test]
fn reverse_forms() {
    check("1.0.0.127.in-addr.arpa.", QueryKind::Ptr { ip: ip("127.0.0.1") });
    check(
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
        QueryKind::Ptr { ip: ip("2001:db8::1") },
    );
    check("0.0.127.in-addr.arpa.", QueryKind::External);
    check("256.0.0.127.in-addr.arpa.", QueryKind::External);
    check("+1.0.0.127.in-addr.arpa.", QueryKind::External);
}

fn prepared(name: &str, datacenter: Option<&str>, zone: Zone) -> QueryKind {
    QueryKind::PreparedQuery { name: name.to_owned(), datacenter: datacenter.map(str::to_owned), zone }
}

#[test]
fn prepared_query_forms() {
    check("geo.query.consul.", prepared("geo", None, Zone::Primary));
    check("Geo-DB.Query.Consul", prepared("geo-db", None, Zone::Primary));
    check("geo.query.dc1.consul.", prepared("geo", Some("dc1"), Zone::Primary));
    check("a.b.query.consul.", prepared("a.b", None, Zone::Primary));
    check("_geo._tcp.query.consul.", prepared("geo", None, Zone::Primary));
    check("_geo._tcp.query.alt.example.", prepared("geo", None, Zone::Alt));
    check("query.consul.", QueryKind::Invalid { zone: Zone::Primary });
}

#[test]
fn apex_prepared_and_outside() {
    check("consul.", QueryKind::Apex { zone: Zone::Primary });
    check("alt.example.", QueryKind::Apex { zone: Zone::Alt });
    check("foo.consul.", QueryKind::Invalid { zone: Zone::Primary });
    check("example.com.", QueryKind::External);
    check("notconsul.", QueryKind::External);
    check(".", QueryKind::External);
    check("", QueryKind::External);
    check("a..consul.", QueryKind::External);
    check(&"a.".repeat(200), QueryKind::External);
}

#[test]
fn without_alt_domain_the_alt_name_is_outside() {
    assert_eq!(parse_query_name("web.service.alt.example.", "consul", None), QueryKind::External);
    // An empty domain matches nothing, so only the domain-less forms remain.
    assert_eq!(parse_query_name("web.service.consul.", "", None), QueryKind::External);
    assert_eq!(parse_query_name("web.service.", "", None), service("web", None, None, Zone::Bare));
}

proptest! {
    #[test]
    fn parser_never_panics_on_arbitrary_labels(
        labels in proptest::collection::vec("[a-zA-Z0-9_.\\-\\\\]{0,70}", 0..8),
        keyword in prop_oneof![Just(""), Just("service"), Just("node"), Just("addr"), Just("query"), Just("in-addr.arpa"), Just("ip6.arpa")],
        suffix in prop_oneof![Just(""), Just("consul"), Just("dc1.consul"), Just("alt.example")],
        domain in "[a-z.]{0,12}",
    ) {
        let mut parts = labels;
        parts.push(keyword.to_owned());
        parts.push(suffix.to_owned());
        let qname = parts.join(".");
        let _ = parse_query_name(&qname, &domain, Some("alt.example"));
        let _ = parse_query_name(&qname, "consul", None);
        let _ = super::parse_srv_query_name(&qname, &domain, Some("alt.example"));
    }

    #[test]
    fn parser_never_panics_on_arbitrary_text(text in "\\PC{0,300}") {
        let _ = parse_query_name(&text, "consul", Some("alt"));
        let _ = super::parse_srv_query_name(&text, "consul", Some("alt"));
    }
}
