//! Registrator's grammar: names, IDs, ports, tags, meta and checks from `SERVICE_*` labels and env.

use std::net::IpAddr;

use serde_json::json;

use super::{ContainerInfo, registrations};

fn host() -> IpAddr {
    "10.0.0.5".parse().expect("ip")
}

fn web(labels: &[(&str, &str)], env: &[&str], ports: Vec<(u16, String, Option<u16>)>) -> ContainerInfo {
    ContainerInfo {
        id: "abc".into(),
        name: "web1".into(),
        image: "registry:5000/team/web:1.2".into(),
        labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        env: env.iter().map(|e| (*e).to_owned()).collect(),
        ports,
        ip: Some("172.18.0.7".parse().expect("ip")),
    }
}

#[test]
fn a_container_that_asks_for_nothing_is_left_alone() {
    assert!(registrations("n1", host(), &web(&[], &["PATH=/bin"], vec![(80, "tcp".into(), None)])).is_empty());
    let ignored = web(&[("SERVICE_IGNORE", "true"), ("SERVICE_NAME", "x")], &[], vec![]);
    assert!(registrations("n1", host(), &ignored).is_empty());
}

#[test]
fn one_exposed_port_gives_one_service_at_the_container_address_or_the_published_host_port() {
    let internal = web(&[("SERVICE_TAGS", "a, b")], &["SERVICE_ENV=prod"], vec![(80, "tcp".into(), None)]);
    let defs = registrations("n1", host(), &internal);
    assert_eq!(
        defs,
        [
            json!({"ID": "n1:web1:80", "Name": "web", "Tags": ["a", "b"], "Meta": {"env": "prod"}, "Address": "172.18.0.7", "Port": 80})
        ]
    );
    let published = web(&[("SERVICE_NAME", "files")], &[], vec![(80, "tcp".into(), Some(8080))]);
    let defs = registrations("n1", host(), &published);
    assert_eq!(
        (defs[0]["Name"].clone(), defs[0]["Address"].clone(), defs[0]["Port"].clone()),
        (json!("files"), json!("10.0.0.5"), json!(8080))
    );
}

#[test]
fn several_ports_get_suffixed_names_and_port_scoped_keys_win() {
    let c = web(
        &[("SERVICE_NAME", "app"), ("SERVICE_9000_NAME", "metrics"), ("SERVICE_53_IGNORE", "1")],
        &[],
        vec![(80, "tcp".into(), None), (9000, "tcp".into(), None), (53, "udp".into(), None)],
    );
    let names: Vec<_> = registrations("n1", host(), &c).iter().map(|d| d["Name"].clone()).collect();
    assert_eq!(names, [json!("app-80"), json!("metrics")]);
}

#[test]
fn labels_win_over_env_and_checks_follow_the_keys() {
    let c = web(
        &[("SERVICE_NAME", "from-label"), ("SERVICE_CHECK_HTTP", "/health"), ("SERVICE_CHECK_INTERVAL", "5s")],
        &["SERVICE_NAME=from-env", "SERVICE_CHECK_TIMEOUT=1s", "SERVICE_CHECK_INITIAL_STATUS=passing"],
        vec![(8080, "tcp".into(), None)],
    );
    let def = &registrations("n1", host(), &c)[0];
    assert_eq!(def["Name"], "from-label");
    assert_eq!(
        def["Check"],
        json!({"HTTP": "http://172.18.0.7:8080/health", "Interval": "5s", "Timeout": "1s", "Status": "passing"})
    );
    let ttl = web(&[("SERVICE_CHECK_TTL", "30s"), ("SERVICE_CHECK_DEREGISTER_AFTER", "1m")], &[], vec![]);
    let def = &registrations("n1", host(), &ttl)[0];
    assert_eq!(def["Check"], json!({"TTL": "30s", "DeregisterCriticalServiceAfter": "1m"}));
    assert_eq!(def["ID"], "n1:web1:0");
    assert!(def.get("Port").is_none());
}
