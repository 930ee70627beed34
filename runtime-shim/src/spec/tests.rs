//! Tests of job-spec parsing (TOML and JSON give the same job) and of every validation message.

use std::time::Duration;

use serde_json::json;

use super::{AddressMode, DriverKind, JobSpec, LogsSpec, Protocol, RestartPolicy, service_id};
use crate::duration::GoDuration;

const FULL_TOML: &str = r#"
name = "files"

[[tasks]]
name = "httpd"
driver = "docker"
image = "roster-example/files:latest"
command = "/bin/httpd"
args = ["-f", "-p", "80"]
env = { GREETING = "hello", MODE = "prod" }
ports = [
  { label = "http", container_port = 80, host_port = 8080 },
  { label = "dns", container_port = 53, protocol = "udp" },
]
network = "roster"
mounts = [{ source = "/srv/www", target = "/www", read_only = true }]
resources = { memory_mb = 64, cpu = 250, pids = 32 }
restart = { policy = "on-failure", attempts = 5, delay = "500ms", max_delay = "1m30s", backoff = 1.5, reset_after = "1m" }
stop_signal = "SIGINT"
stop_timeout = "5s"
healthcheck = { test = ["CMD", "/bin/true"], interval = "10s", timeout = "2s", retries = 3, start_period = "1s" }
pull = true

[[tasks.services]]
name = "files"
port = "http"
tags = ["v1"]
meta = { team = "web" }
checks = [{ http = "http://${address}:${port}/", interval = "10s" }]

[[tasks.services]]
name = "files-dns"
port = "dns"
address_mode = "container"

[[tasks]]
name = "sidecar"
driver = "exec"
command = "/usr/bin/env"
rootfs = "/srv/rootfs"
"#;

const FULL_JSON: &str = r#"{
  "name": "files",
  "tasks": [
    {
      "name": "httpd",
      "driver": "docker",
      "image": "roster-example/files:latest",
      "command": "/bin/httpd",
      "args": ["-f", "-p", "80"],
      "env": {"MODE": "prod", "GREETING": "hello"},
      "ports": [
        {"label": "http", "container_port": 80, "host_port": 8080},
        {"label": "dns", "container_port": 53, "protocol": "udp"}
      ],
      "network": "roster",
      "mounts": [{"source": "/srv/www", "target": "/www", "read_only": true}],
      "resources": {"memory_mb": 64, "cpu": 250, "pids": 32},
      "restart": {"policy": "on-failure", "attempts": 5, "delay": "500ms", "max_delay": "90s", "backoff": 1.5,
                  "reset_after": "60s"},
      "stop_signal": "SIGINT",
      "stop_timeout": "5s",
      "healthcheck": {"test": ["CMD", "/bin/true"], "interval": "10s", "timeout": "2s", "retries": 3,
                      "start_period": "1s"},
      "pull": true,
      "services": [
        {"name": "files", "port": "http", "tags": ["v1"], "meta": {"team": "web"},
         "checks": [{"http": "http://${address}:${port}/", "interval": "10s"}]},
        {"name": "files-dns", "port": "dns", "address_mode": "container"}
      ]
    },
    {"name": "sidecar", "driver": "exec", "command": "/usr/bin/env", "rootfs": "/srv/rootfs"}
  ]
}"#;

/// A minimal valid TOML job with `task_extra` appended to its only (docker) task.
fn toml_job(task_extra: &str) -> String {
    format!("name = \"web\"\n[[tasks]]\nname = \"app\"\ndriver = \"docker\"\nimage = \"app:1\"\n{task_extra}\n")
}

/// Parses `text` as TOML and compares the error (or "ok").
fn check(text: &str, expect: &str) {
    let got = match JobSpec::from_toml(text) {
        Ok(_) => "ok".to_string(),
        Err(err) => err.to_string(),
    };
    assert_eq!(got, expect, "for\n{text}");
}

#[test]
fn toml_and_json_give_the_same_job() {
    let from_toml = JobSpec::from_toml(FULL_TOML).expect("TOML");
    let from_json = JobSpec::from_json(FULL_JSON).expect("JSON");
    assert_eq!(from_toml, from_json);

    let httpd = from_toml.task("httpd").expect("httpd");
    assert_eq!(httpd.driver, DriverKind::Docker);
    assert_eq!(httpd.ports[1].protocol, Protocol::Udp);
    assert_eq!(httpd.port("http").and_then(|port| port.host_port), Some(8080));
    assert_eq!(httpd.restart.policy, RestartPolicy::OnFailure);
    assert_eq!(httpd.restart.max_delay, GoDuration(Duration::from_secs(90)));
    assert_eq!(httpd.services[1].address_mode, AddressMode::Container);
    assert_eq!(httpd.services[0].checks[0]["interval"], json!("10s"));

    // What the agent serializes back (for a job API or its data dir) reads back the same.
    let round_trip = serde_json::to_string(&from_toml).expect("serialize");
    assert_eq!(JobSpec::from_json(&round_trip).expect("reparse"), from_toml);
}

#[test]
fn defaults_fill_what_is_absent() {
    let job = JobSpec::from_toml(&toml_job("ports = [{ label = \"http\", container_port = 80, host_port = 80 }]"))
        .expect("valid");
    let task = &job.tasks[0];
    assert_eq!(task.stop_signal, "SIGTERM");
    assert_eq!(task.stop_timeout, GoDuration::from_secs(10));
    assert_eq!(task.restart.policy, RestartPolicy::No);
    assert_eq!(task.restart.delay, GoDuration::from_secs(1));
    assert!(!task.pull);
    assert_eq!(task.ports[0].protocol, Protocol::Tcp);
    assert_eq!(task.resources.memory_mb, None);
}

#[test]
fn checks_render_address_and_port() {
    let job = JobSpec::from_toml(FULL_TOML).expect("valid");
    let service = &job.tasks[0].services[0];
    assert_eq!(
        service.render_checks("10.0.0.5", Some(8080)),
        [json!({"http": "http://10.0.0.5:8080/", "interval": "10s"})]
    );
    assert_eq!(service.id_key(), "http");
    assert_eq!(service_id("node-1", "httpd", service.id_key()), "node-1:httpd:http");
}

#[test]
fn parse_errors_name_the_field() {
    check(
        &toml_job("restart = { policy = \"sometimes\" }"),
        "tasks[0].restart.policy: unknown policy \"sometimes\" (want no, on-failure or always) (line 6)",
    );
    check(
        &toml_job("driver2 = 1"),
        "tasks[0].driver2: unknown field `driver2`, expected one of `name`, `driver`, `image`, `rootfs`, `command`, `args`, `env`, `ports`, `network`, `mounts`, `resources`, `logs`, `restart`, `stop_signal`, `stop_timeout`, `healthcheck`, `pull`, `services`, `after`, `requires` (line 6)",
    );
    check(
        "name = \"web\"\n[[tasks]]\nname = \"app\"\ndriver = \"podman\"\n",
        "tasks[0].driver: unknown driver \"podman\" (want docker or exec) (line 4)",
    );
    check(
        &toml_job("stop_timeout = \"-5s\""),
        "tasks[0].stop_timeout: invalid duration \"-5s\": negative durations are not allowed (line 6)",
    );
    check(
        &toml_job("stop_timeout = \"10\""),
        "tasks[0].stop_timeout: invalid duration \"10\": missing unit (use ns, us, ms, s, m or h) (line 6)",
    );
    check(
        &toml_job("ports = [{ label = \"http\", container_port = 80, protocol = \"sctp\" }]"),
        "tasks[0].ports[0].protocol: unknown protocol \"sctp\" (want tcp or udp) (line 6)",
    );
    check(
        &toml_job("[[tasks.services]]\nname = \"x\"\naddress_mode = \"bridge\""),
        "tasks[0].services[0].address_mode: unknown address_mode \"bridge\" (want host or container) (line 8)",
    );
    check("name = \"web\"\n", "missing field `tasks` (line 1)");
    check("name = ", "string values must be quoted, expected literal string (line 1)");

    let json_err = JobSpec::from_json(r#"{"name": "web", "tasks": [{"name": "a", "driver": "docker", "imag": "x"}]}"#)
        .expect_err("unknown field");
    assert_eq!(
        json_err.to_string(),
        "tasks[0].imag: unknown field `imag`, expected one of `name`, `driver`, `image`, `rootfs`, `command`, `args`, `env`, `ports`, `network`, `mounts`, `resources`, `logs`, `restart`, `stop_signal`, `stop_timeout`, `healthcheck`, `pull`, `services`, `after`, `requires` (line 1, column 66)"
    );
}

#[test]
fn names_must_be_dns_labels() {
    check(&toml_job("").replace("\"web\"", "\"\""), "name: must not be empty");
    check(&toml_job("").replace("\"web\"", "\"Web\""), "name: \"Web\" contains 'W' (want a DNS label: a-z, 0-9 and -)");
    check(&toml_job("").replace("\"app\"", "\"-app\""), "tasks[0].name: \"-app\" must not start or end with -");
    check(
        &toml_job("").replace("\"app\"", &format!("\"{}\"", "a".repeat(64))),
        &format!("tasks[0].name: \"{}\" is longer than 63 characters", "a".repeat(64)),
    );
    check(
        &toml_job("[[tasks.services]]\nname = \"my_svc\""),
        "tasks[0].services[0].name: \"my_svc\" contains '_' (want a DNS label: a-z, 0-9 and -)",
    );
    check("name = \"web\"\ntasks = []\n", "tasks: a job needs at least one task");
}

#[test]
fn mount_targets_stay_inside_the_task() {
    let mounts = |target: &str| toml_job(&format!("mounts = [{{ source = \"/srv\", target = {target:?} }}]"));
    for fine in ["/www", "/a/b.c/d", "/a/./b", "/www/", "//www", "/..a/b..", "/a/...", "/./a"] {
        JobSpec::from_toml(&mounts(fine)).unwrap_or_else(|err| panic!("{fine:?}: {err}"));
    }
    check(&mounts("www"), "tasks[0].mounts[0].target: \"www\" is not an absolute path");
    check(&mounts(""), "tasks[0].mounts[0].target: \"\" is not an absolute path");
    check(&mounts("./www"), "tasks[0].mounts[0].target: \"./www\" is not an absolute path");
    for climbing in ["/..", "/../etc", "/www/../../etc", "/www/..", "/a/../b"] {
        check(
            &mounts(climbing),
            &format!(
                "tasks[0].mounts[0].target: {climbing:?} has a .. component (name the path inside the task without ..)"
            ),
        );
    }
    for root in ["/", "//", "/.", "/./"] {
        check(
            &mounts(root),
            &format!("tasks[0].mounts[0].target: {root:?} is the task's root (mount at a path below /)"),
        );
    }
    // Both ends of one mount are reported, under their own paths, and the rule is the same for exec tasks.
    let exec = "name = \"web\"\n[[tasks]]\nname = \"a\"\ndriver = \"exec\"\ncommand = \"sh\"\n\
                mounts = [{ source = \"/srv\", target = \"/ok\" }, { source = \"srv\", target = \"/x/../..\" }]\n";
    check(
        exec,
        "tasks[0].mounts[1].source: \"srv\" is not an absolute path; \
         tasks[0].mounts[1].target: \"/x/../..\" has a .. component (name the path inside the task without ..)",
    );
}

#[test]
fn task_rules() {
    let two = "name = \"web\"\n[[tasks]]\nname = \"a\"\ndriver = \"docker\"\nimage = \"x\"\n[[tasks]]\nname = \"a\"\ndriver = \"docker\"\nimage = \"x\"\n";
    check(two, "tasks[1].name: duplicate task name \"a\"");
    check(
        "name = \"web\"\n[[tasks]]\nname = \"a\"\ndriver = \"docker\"\n",
        "tasks[0].image: a docker task needs an image",
    );
    check(&toml_job("").replace("\"app:1\"", "\" \""), "tasks[0].image: must not be empty");
    check(&toml_job("rootfs = \"/srv\""), "tasks[0].rootfs: only exec tasks have a rootfs (docker uses image)");
    check(&toml_job("network = \"\""), "tasks[0].network: must not be empty");
    check(&toml_job("stop_signal = \"\""), "tasks[0].stop_signal: must not be empty");
    check(&toml_job("env = { \"A=B\" = \"1\" }"), "tasks[0].env: invalid variable name \"A=B\"");
    check(
        &toml_job("mounts = [{ source = \"srv\", target = \"/srv\" }]"),
        "tasks[0].mounts[0].source: \"srv\" is not an absolute path",
    );
    let exec = "name = \"web\"\n[[tasks]]\nname = \"a\"\ndriver = \"exec\"\nimage = \"x\"\nnetwork = \"n\"\npull = true\nrootfs = \"srv\"\nhealthcheck = { test = [\"NONE\"] }\n";
    check(
        exec,
        "tasks[0].image: only docker tasks have this field; tasks[0].healthcheck: only docker tasks have this field; \
         tasks[0].pull: only docker tasks have this field; tasks[0].command: an exec task needs a command; \
         tasks[0].rootfs: \"srv\" is not an absolute path; \
         tasks[0].network: \"n\" is not an exec network (want host, none, bridge)",
    );
}

#[test]
fn exec_network_rules() {
    let exec =
        |extra: &str| format!("name = \"web\"\n[[tasks]]\nname = \"a\"\ndriver = \"exec\"\ncommand = \"sh\"\n{extra}");
    for network in ["host", "none", "bridge"] {
        let job = JobSpec::from_toml(&exec(&format!("network = \"{network}\""))).expect(network);
        assert_eq!(job.tasks[0].network.as_deref(), Some(network));
    }
    check(
        &exec("network = \"roster\""),
        "tasks[0].network: \"roster\" is not an exec network (want host, none, bridge)",
    );
    check(
        &exec("network = \"bridge\"\nports = [{ label = \"http\", container_port = 80, host_port = 8080 }]"),
        "tasks[0].ports[0].host_port: an exec task on the bridge network publishes no host ports (reach it at its own \
         address, address_mode = \"container\")",
    );
    JobSpec::from_toml(&exec(
        "network = \"host\"\nports = [{ label = \"http\", container_port = 80, host_port = 80 }]",
    ))
    .expect("a host-network exec task binds the host's port");
}

#[test]
fn port_rules() {
    check(
        &toml_job(
            "ports = [{ label = \"http\", container_port = 0 }, { label = \"http\", container_port = 70000, host_port = 65536 }]",
        ),
        "tasks[0].ports[0].container_port: port 0 is out of range (want 1-65535); \
         tasks[0].ports[1].label: duplicate port label \"http\"; \
         tasks[0].ports[1].container_port: port 70000 is out of range (want 1-65535); \
         tasks[0].ports[1].host_port: port 65536 is out of range (want 1-65535)",
    );
    check(
        &toml_job(
            "ports = [{ label = \"a\", container_port = 80, host_port = 8080 }, { label = \"b\", container_port = 81, host_port = 8080 }]",
        ),
        "tasks[0].ports[1].host_port: host port 8080/tcp is already published by this task",
    );
    check(
        &toml_job("ports = [{ label = \"a\", container_port = -1 }]"),
        "tasks[0].ports[0].container_port: invalid value: integer `-1`, expected u32 (line 6)",
    );
}

#[test]
fn logs_bounds_are_checked_and_default_when_left_out() {
    check(
        &toml_job("logs = { max_size_kb = 8, max_files = 0 }"),
        "tasks[0].logs.max_size_kb: 8 is out of range (want 16-1048576); \
         tasks[0].logs.max_files: 0 is out of range (want 1-100)",
    );
    let job = JobSpec::from_toml(&toml_job("logs = { max_files = 5 }")).expect("valid");
    assert_eq!(job.tasks[0].logs, Some(LogsSpec { max_size_kb: 10 * 1024, max_files: 5 }));
    let job = JobSpec::from_toml(&toml_job("")).expect("valid");
    assert_eq!(job.tasks[0].logs, None, "absent: Docker keeps its daemon's settings, exec uses the defaults");
}

#[test]
fn resource_restart_and_healthcheck_rules() {
    check(
        &toml_job("resources = { memory_mb = 4, cpu = 0, pids = 0 }"),
        "tasks[0].resources.memory_mb: 4 is below the minimum of 6; \
         tasks[0].resources.cpu: must be at least 1 millicore (omit it for no limit); \
         tasks[0].resources.pids: must be at least 1 (omit it for no limit)",
    );
    check(
        &toml_job("restart = { policy = \"always\", delay = \"0s\", reset_after = \"0s\", backoff = 0.5 }"),
        "tasks[0].restart.delay: must be above zero, so a crash loop cannot spin; \
         tasks[0].restart.backoff: 0.5 is not a factor of at least 1; tasks[0].restart.reset_after: must be above zero",
    );
    check(
        &toml_job("restart = { delay = \"2m\", max_delay = \"1m\" }"),
        "tasks[0].restart.max_delay: 1m is shorter than delay 2m",
    );
    check(
        &toml_job("healthcheck = { test = [], interval = \"0s\", timeout = \"0s\" }"),
        "tasks[0].healthcheck.test: must not be empty (want [\"CMD\", ...], [\"CMD-SHELL\", \"...\"] \
         or [\"NONE\"]); tasks[0].healthcheck.interval: must be at least 1ms; tasks[0].healthcheck.timeout: must be at \
         least 1ms",
    );
    for (test, message) in [
        ("[\"CMD\"]", "CMD needs a program after it"),
        ("[\"CMD-SHELL\", \"a\", \"b\"]", "CMD-SHELL takes exactly one shell line"),
        ("[\"NONE\", \"x\"]", "NONE takes nothing after it"),
        ("[\"RUN\", \"x\"]", "unknown test kind \"RUN\" (want CMD, CMD-SHELL or NONE)"),
    ] {
        check(
            &toml_job(&format!("healthcheck = {{ test = {test} }}")),
            &format!("tasks[0].healthcheck.test: {message}"),
        );
    }
    check(&toml_job("healthcheck = { test = [\"CMD-SHELL\", \"true\"], start_period = \"0s\" }"), "ok");
}

#[test]
fn service_rules() {
    let ports = "ports = [{ label = \"http\", container_port = 80 }]\n";
    check(
        &toml_job(&format!("{ports}[[tasks.services]]\nname = \"web\"\nport = \"web\"")),
        "tasks[0].services[0].port: no port labelled \"web\" in this task (ports: http)",
    );
    check(
        &toml_job("[[tasks.services]]\nname = \"web\"\nport = \"web\""),
        "tasks[0].services[0].port: no port labelled \"web\" in this task (ports: none)",
    );
    check(
        &toml_job(&format!("{ports}[[tasks.services]]\nname = \"web\"\nport = \"http\"")),
        "tasks[0].services[0].address_mode: port \"http\" has no host_port, which address_mode \
         \"host\" registers (set one, or use \"container\")",
    );
    check(
        &toml_job(&format!(
            "{ports}[[tasks.services]]\nname = \"web\"\nport = \"http\"\naddress_mode = \"container\"\n\
             [[tasks.services]]\nname = \"web2\"\nport = \"http\"\naddress_mode = \"container\""
        )),
        "tasks[0].services[1]: another service of this task has ID key \"http\" (IDs are \
         <node>:<task>:<port>)",
    );
    check(
        &toml_job("[[tasks.services]]\nname = \"web\"\nchecks = [\"http://x\"]"),
        "tasks[0].services[0].checks[0]: a check definition must be a table",
    );
    let long_value = "v".repeat(513);
    check(
        &toml_job(&format!("[[tasks.services]]\nname = \"web\"\nmeta = {{ \"\" = \"a\", k = \"{long_value}\" }}")),
        "tasks[0].services[0].meta: key \"\" must be 1-128 characters; \
         tasks[0].services[0].meta.k: value longer than 512 characters",
    );
    let many: Vec<String> = (0..65).map(|idx| format!("k{idx} = \"v\"")).collect();
    check(
        &toml_job(&format!("[[tasks.services]]\nname = \"web\"\nmeta = {{ {} }}", many.join(", "))),
        "tasks[0].services[0].meta: 65 pairs, at most 64 allowed",
    );
}

#[test]
fn the_example_job_is_valid() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/files/job.toml"))
        .expect("examples/files/job.toml");
    let job = JobSpec::from_toml(&text).expect("the example parses and validates");
    assert_eq!(job.name, "files");
    let task = &job.tasks[0];
    assert_eq!(task.image.as_deref(), Some("roster-example/files:latest"));
    assert_eq!(task.services[0].name, "files");
    assert!(task.services[0].checks[0].get("http").is_some());
}
