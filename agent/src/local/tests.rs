//! Tests of the config reload's plan (which config-file services and checks are added, changed and removed) and of
//! applying a config file's registrations against a real in-memory server.

use serde_json::json;

use super::*;

/// A service definition as a config file gives it.
fn service(definition: serde_json::Value) -> (Service, Vec<HealthCheck>) {
    let map = definition.as_object().expect("an object").clone();
    crate::http::definition::service(crate::http::input::Obj(&map), false).expect("a valid service")
}

/// A node check definition as a config file gives it.
fn check(definition: serde_json::Value) -> HealthCheck {
    let map = definition.as_object().expect("an object").clone();
    crate::http::definition::check(crate::http::input::Obj(&map), false).expect("a valid check")
}

/// The local state after registering `services` and `checks`, with `from_config` of them marked as config-file ones.
fn held(services: &[(Service, Vec<HealthCheck>)], checks: &[HealthCheck], from_config: &[&str]) -> Inner {
    let mut inner = Inner::default();
    for (service, service_checks) in services {
        inner.services.insert(service.id.clone(), service.clone());
        for check in service_checks {
            let mut check = check.clone();
            check.node = "n1".into();
            inner.checks.insert(check.check_id.clone(), check);
        }
        if from_config.contains(&service.id.as_str()) {
            inner.config_services.insert(service.id.clone());
            inner.config_checks.extend(service_checks.iter().map(|c| c.check_id.clone()));
        }
    }
    for check in checks {
        let mut check = check.clone();
        check.node = "n1".into();
        if from_config.contains(&check.check_id.as_str()) {
            inner.config_checks.insert(check.check_id.clone());
        }
        inner.checks.insert(check.check_id.clone(), check);
    }
    inner
}

fn web() -> (Service, Vec<HealthCheck>) {
    service(json!({"Name": "web", "Port": 80, "Check": {"CheckID": "web-ttl", "TTL": "30s"}}))
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn new_definitions_are_added() {
    let wanted = ConfigDefinitions {
        services: vec![web()],
        checks: vec![check(json!({"CheckID": "mem", "Name": "mem", "TTL": "10s"}))],
    };
    let plan = plan(&Inner::default(), &wanted);
    assert_eq!(plan.upsert_services, ids(&["web"]));
    assert_eq!(plan.upsert_checks, ids(&["mem"]));
    assert!(plan.remove_services.is_empty() && plan.remove_checks.is_empty());
}

#[test]
fn unchanged_definitions_are_left_alone_whatever_their_checks_reached() {
    let mem = check(json!({"CheckID": "mem", "Name": "mem", "TTL": "10s"}));
    let mut inner = held(&[web()], std::slice::from_ref(&mem), &["web", "mem"]);
    // Running the checks changes their status and output; that is no change of definition.
    for check in inner.checks.values_mut() {
        check.status = CheckStatus::Passing;
        check.output = "fine".into();
        check.modify_index = 42;
    }
    let wanted = ConfigDefinitions { services: vec![web()], checks: vec![mem] };
    assert!(plan(&inner, &wanted).is_empty());
}

#[test]
fn a_changed_service_or_check_is_replaced() {
    let inner = held(&[web()], &[check(json!({"CheckID": "mem", "Name": "mem", "TTL": "10s"}))], &["web", "mem"]);
    let moved = service(json!({"Name": "web", "Port": 8080, "Check": {"CheckID": "web-ttl", "TTL": "30s"}}));
    let slower = check(json!({"CheckID": "mem", "Name": "mem", "TTL": "60s"}));
    let plan = plan(&inner, &ConfigDefinitions { services: vec![moved], checks: vec![slower] });
    assert_eq!(plan.upsert_services, ids(&["web"]));
    assert_eq!(plan.upsert_checks, ids(&["mem"]));
    assert!(plan.remove_services.is_empty() && plan.remove_checks.is_empty());

    let new_check = service(json!({"Name": "web", "Port": 80, "Check": {"CheckID": "web-ttl", "TTL": "5s"}}));
    let inner = held(&[web()], &[], &["web"]);
    assert_eq!(plan_of(&inner, vec![new_check], vec![]).upsert_services, ids(&["web"]));
}

fn plan_of(inner: &Inner, services: Vec<(Service, Vec<HealthCheck>)>, checks: Vec<HealthCheck>) -> ConfigPlan {
    plan(inner, &ConfigDefinitions { services, checks })
}

#[test]
fn only_config_file_registrations_are_removed() {
    let api_service = service(json!({"Name": "api", "Port": 90}));
    let api_check = check(json!({"CheckID": "disk", "Name": "disk", "TTL": "10s"}));
    let mem = check(json!({"CheckID": "mem", "Name": "mem", "TTL": "10s"}));
    let inner = held(&[web(), api_service], &[api_check, mem], &["web", "mem"]);
    let plan = plan_of(&inner, vec![], vec![]);
    assert_eq!(plan.remove_services, ids(&["web"]));
    // web's own check goes with web; the API's service and check stay.
    assert_eq!(plan.remove_checks, ids(&["mem"]));
    assert!(plan.upsert_services.is_empty() && plan.upsert_checks.is_empty());
}

#[test]
fn a_check_dropped_from_a_kept_service_is_removed_alone() {
    let two = service(json!({"Name": "web", "Port": 80, "Checks": [
        {"CheckID": "web-ttl", "TTL": "30s"}, {"CheckID": "web-extra", "TTL": "30s"}]}));
    let inner = held(&[two], &[], &["web"]);
    let plan = plan_of(&inner, vec![web()], vec![]);
    assert_eq!(plan.remove_checks, ids(&["web-extra"]));
    assert!(plan.remove_services.is_empty() && plan.upsert_services.is_empty());
}

#[test]
fn an_api_registration_deregistered_or_gone_is_not_removed_twice() {
    // Marked as from config but already deregistered through the API: nothing left to remove.
    let mut inner = held(&[web()], &[], &["web"]);
    inner.services.clear();
    inner.checks.clear();
    assert!(plan_of(&inner, vec![], vec![]).is_empty());
}

#[test]
fn saved_allocation_services_and_their_checks_are_forgotten_at_load_and_nothing_else() {
    let alloc = service(json!({
        "ID": "n1:web-0:t:http", "Name": "web", "Meta": {"roster-alloc": "web-0"},
        "Check": {"CheckID": "n1:web-0:t:http:task", "TTL": "87600h"},
    }));
    let own = service(json!({"ID": "n1:t:http", "Name": "web", "Meta": {"roster-job": "web"}}));
    let mut inner = held(&[alloc, web(), own], &[check(json!({"CheckID": "mem", "Name": "mem", "TTL": "10s"}))], &[]);
    forget_allocation_services(&mut inner);
    assert_eq!(inner.services.keys().collect::<Vec<_>>(), ["n1:t:http", "web"]);
    assert_eq!(inner.checks.keys().collect::<Vec<_>>(), ["mem", "web-ttl"]);
}

/// A single-server cluster in memory and a `Local` for node `n1` writing to it, with its `local.json` in `dir`.
async fn local_on_a_server(dir: &Path) -> (roster_server::Server, Local) {
    let server = crate::test_server::start(None).await;
    let node = Node { node: "n1".into(), address: "127.0.0.1".into(), ..Node::default() };
    let local = Local::load(Backend::Local(server.clone()), node, Some(dir)).expect("load");
    (server, local)
}

/// `count` config-file services `svc-<i>`, each with a TTL check.
fn many_services(count: usize) -> ConfigDefinitions {
    let services = (0..count)
        .map(|i| service(json!({"Name": format!("svc-{i}"), "Port": 1000 + i, "Check": {"TTL": "30s"}})))
        .collect();
    ConfigDefinitions { services, checks: Vec::new() }
}

/// What the catalog holds for node `n1`: service IDs and check IDs.
async fn catalog_of_n1(server: &roster_server::Server) -> (usize, usize) {
    let (services_query, checks_query) =
        (Query::NodeServices { name: "n1".into() }, Query::NodeChecks { name: "n1".into() });
    let query = |query| server.query(Consistency::Default, 0, Duration::ZERO, query);
    let (services, _, _) = query(&services_query).await.expect("services");
    let (checks, _, _) = query(&checks_query).await.expect("checks");
    let services = match services {
        Answer::NodeServices { services, .. } => services.len(),
        other => panic!("unexpected answer {other:?}"),
    };
    let checks = match checks {
        Answer::Checks(checks) => checks.len(),
        other => panic!("unexpected answer {other:?}"),
    };
    (services, checks)
}

#[tokio::test]
async fn a_config_file_with_many_services_is_registered_and_saved_in_one_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, local) = local_on_a_server(dir.path()).await;
    let changes = local.changes();
    let before = *changes.borrow();

    let plan = local.apply_config(many_services(50)).await.expect("apply");

    assert_eq!(plan.upsert_services.len(), 50);
    assert_eq!(catalog_of_n1(&server).await, (50, 50), "every service and its check is in the catalog");
    assert_eq!(*changes.borrow() - before, 1, "the whole set is one local change, saved once");
    let saved: Persisted = serde_json::from_slice(&std::fs::read(dir.path().join("local.json")).expect("read"))
        .expect("local.json parses");
    assert_eq!((saved.services.len(), saved.checks.len(), saved.config_services.len()), (50, 50, 50));

    // Applying the same files again (a reload with nothing changed) changes and saves nothing.
    let again = local.apply_config(many_services(50)).await.expect("apply again");
    assert!(again.is_empty(), "nothing to do: {again:?}");
    assert_eq!(*changes.borrow() - before, 1);

    // Dropping half of them removes exactly those, again in one change.
    let plan = local.apply_config(many_services(25)).await.expect("apply fewer");
    assert_eq!(plan.remove_services.len(), 25);
    assert_eq!(catalog_of_n1(&server).await, (25, 25));
    assert_eq!(*changes.borrow() - before, 2);
}

#[tokio::test]
async fn with_no_server_known_a_config_file_is_kept_locally_and_synced_once_one_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, on_server) = local_on_a_server(tempfile::tempdir().expect("tempdir").path()).await;
    drop(on_server);
    let remote = roster_server::Remote::new(CancellationToken::new());
    let node = Node { node: "n1".into(), address: "127.0.0.1".into(), ..Node::default() };
    let local = Local::load(Backend::Remote(remote.clone()), node, Some(dir.path())).expect("load");

    local.apply_config(many_services(20)).await.expect("a client without a server still starts");
    assert!(local.out_of_sync.load(Ordering::SeqCst), "the catalog writes wait for anti-entropy");
    assert_eq!(local.snapshot().await.0.len(), 20, "every service is held locally");
    assert_eq!(catalog_of_n1(&server).await, (0, 0));

    remote.set_servers(vec![server.rpc_addr()]);
    local.sync_full().await.expect("sync");
    assert_eq!(catalog_of_n1(&server).await, (20, 20));
    assert!(!local.out_of_sync.load(Ordering::SeqCst));
}
