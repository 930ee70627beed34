//! Tests of the spec-to-container mapping.

use std::collections::BTreeMap;
use std::net::IpAddr;

use bollard::models::{MountType, RestartPolicyNameEnum};

use super::container_body;
use crate::driver::{DnsOptions, StartOptions};
use crate::spec::JobSpec;

const JOB: &str = r#"
name = "files"
[[tasks]]
name = "httpd"
driver = "docker"
image = "files:1"
command = "/bin/httpd"
args = ["-f"]
env = { A = "spec", B = "2" }
ports = [{ label = "http", container_port = 80, host_port = 8080 }, { label = "dns", container_port = 53, protocol = "udp" }]
network = "roster"
mounts = [{ source = "/srv", target = "/www", read_only = true }]
resources = { memory_mb = 64, cpu = 250, pids = 32 }
stop_signal = "SIGINT"
stop_timeout = "7s"
healthcheck = { test = ["CMD-SHELL", "true"], interval = "2s", retries = 4 }
"#;

#[test]
fn maps_every_field() {
    let job = JobSpec::from_toml(JOB).expect("valid");
    let options = StartOptions {
        dns: DnsOptions {
            servers: vec!["172.17.0.1".parse::<IpAddr>().expect("ip")],
            search: vec!["service.consul".to_string()],
            ndots: Some(2),
        },
        env: BTreeMap::from([("A".to_string(), "agent".to_string()), ("C".to_string(), "3".to_string())]),
    };
    let body = container_body("node-1", "files", &job.tasks[0], &options, "abc").expect("body");
    assert_eq!(body.image.as_deref(), Some("files:1"));
    assert_eq!(body.cmd, Some(vec!["/bin/httpd".to_string(), "-f".to_string()]));
    assert_eq!(body.env, Some(vec!["A=spec".to_string(), "B=2".to_string(), "C=3".to_string()]));
    let labels = body.labels.expect("labels");
    assert_eq!(labels["roster.node"], "node-1");
    assert_eq!(labels["roster.job"], "files");
    assert_eq!(labels["roster.task"], "httpd");
    assert_eq!(labels["roster.spec-hash"], "abc");
    assert_eq!(body.exposed_ports, Some(vec!["80/tcp".to_string(), "53/udp".to_string()]));
    assert_eq!(body.stop_signal.as_deref(), Some("SIGINT"));
    assert_eq!(body.stop_timeout, Some(7));
    let health = body.healthcheck.expect("healthcheck");
    assert_eq!(health.test, Some(vec!["CMD-SHELL".to_string(), "true".to_string()]));
    assert_eq!((health.interval, health.timeout, health.retries), (Some(2_000_000_000), None, Some(4)));

    let host = body.host_config.expect("host config");
    assert_eq!(host.memory, Some(64 * 1024 * 1024));
    assert_eq!(host.memory_swap, host.memory);
    assert_eq!(host.nano_cpus, Some(250_000_000));
    assert_eq!(host.pids_limit, Some(32));
    let bindings = host.port_bindings.expect("bindings");
    assert_eq!(bindings.len(), 1, "only ports with a host_port are published");
    assert_eq!(bindings["80/tcp"].as_ref().expect("80")[0].host_port.as_deref(), Some("8080"));
    assert_eq!(host.network_mode.as_deref(), Some("roster"));
    let mounts = host.mounts.expect("mounts");
    assert_eq!(mounts[0].typ, Some(MountType::BIND));
    assert_eq!((mounts[0].source.as_deref(), mounts[0].read_only), (Some("/srv"), Some(true)));
    assert_eq!(host.dns, Some(vec!["172.17.0.1".to_string()]));
    assert_eq!(host.dns_search, Some(vec!["service.consul".to_string()]));
    assert_eq!(host.dns_options, Some(vec!["ndots:2".to_string()]));
    assert_eq!(host.restart_policy.and_then(|policy| policy.name), Some(RestartPolicyNameEnum::NO));
}

#[test]
fn image_defaults_stay_when_the_spec_is_silent() {
    let text = "name = \"a\"\n[[tasks]]\nname = \"b\"\ndriver = \"docker\"\nimage = \"x\"\n";
    let job = JobSpec::from_toml(text).expect("valid");
    let body = container_body("n", "a", &job.tasks[0], &StartOptions::default(), "h").expect("body");
    assert_eq!(body.cmd, None);
    assert_eq!(body.healthcheck, None);
    let host = body.host_config.expect("host config");
    assert_eq!((host.memory, host.nano_cpus, host.pids_limit), (None, None, None));
    assert_eq!((host.dns, host.dns_search, host.dns_options), (None, None, None));

    let mut args_only = job.tasks[0].clone();
    args_only.args = vec!["-x".to_string()];
    let body = container_body("n", "a", &args_only, &StartOptions::default(), "h").expect("body");
    assert_eq!(body.cmd, Some(vec!["-x".to_string()]));
}

#[test]
fn oversized_limits_are_refused() {
    let text = "name = \"a\"\n[[tasks]]\nname = \"b\"\ndriver = \"docker\"\nimage = \"x\"\n";
    let mut task = JobSpec::from_toml(text).expect("valid").tasks.remove(0);
    task.resources.memory_mb = Some(u64::MAX / 2);
    let err = container_body("n", "a", &task, &StartOptions::default(), "h").expect_err("too large");
    assert!(err.to_string().contains("resources.memory_mb"), "{err}");
}
