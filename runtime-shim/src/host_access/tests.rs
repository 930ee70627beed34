//! Which exec tasks and Docker mounts the host-access policy lets through, and what it says when it refuses.

use std::path::{Path, PathBuf};

use super::{HostAccess, HostPaths};
use crate::spec::JobSpec;

fn job(tasks: &str) -> JobSpec {
    JobSpec::from_json(&format!(r#"{{"name": "j", "tasks": [{tasks}]}}"#)).expect("a valid job")
}

fn docker_mount(source: &str) -> JobSpec {
    job(&format!(
        r#"{{"name": "t", "driver": "docker", "image": "i", "mounts": [{{"source": "{source}", "target": "/m"}}]}}"#
    ))
}

/// The refusal messages, `path: message`, joined; empty when allowed.
fn check(access: &HostAccess, job: &JobSpec) -> String {
    access.check_job(job).err().map(|err| err.to_string()).unwrap_or_default()
}

fn exec_mount(source: &str) -> JobSpec {
    job(&format!(
        r#"{{"name": "t", "driver": "exec", "rootfs": "/srv/root", "command": "/bin/true",
             "mounts": [{{"source": "{source}", "target": "/m"}}]}}"#
    ))
}

fn paths(paths: &[&Path]) -> HostPaths {
    HostPaths::Under(paths.iter().map(|p| p.to_path_buf()).collect())
}

/// Docker tasks may mount below `paths`; exec tasks nothing.
fn under(allowed: &[&Path]) -> HostAccess {
    HostAccess { docker_mounts: paths(allowed), ..HostAccess::default() }
}

#[test]
fn an_exec_task_without_rootfs_is_refused_by_default_naming_the_config_key() {
    let spec = job(r#"{"name": "t", "driver": "exec", "command": "/bin/true"}"#);
    let refused = check(&HostAccess::default(), &spec);
    assert!(
        refused.starts_with("tasks[0].rootfs: an exec task without a rootfs runs on the host's filesystem as root")
    );
    assert!(refused.contains("exec.allow_host_rootfs = true"), "{refused}");
    let allowed = HostAccess { allow_host_rootfs: true, ..HostAccess::default() };
    assert_eq!(check(&allowed, &spec), "");
}

#[test]
fn an_exec_task_with_a_rootfs_needs_no_permission() {
    let spec = job(r#"{"name": "t", "driver": "exec", "rootfs": "/srv/root", "command": "/bin/true"}"#);
    assert_eq!(check(&HostAccess::default(), &spec), "");
}

#[test]
fn docker_mounts_are_refused_without_an_allowlist() {
    let refused = check(&HostAccess::default(), &docker_mount("/etc"));
    assert!(refused.starts_with("tasks[0].mounts[0].source: host path /etc is not at or below"), "{refused}");
    assert!(refused.contains("docker.host_mounts: it is empty"), "{refused}");
}

#[test]
fn docker_mounts_inside_the_allowlist_pass_by_component_not_by_string() {
    let root = tempfile::tempdir().expect("dir");
    let data = root.path().join("data");
    std::fs::create_dir_all(data.join("sub")).expect("data/sub");
    std::fs::create_dir_all(root.path().join("data2")).expect("data2");
    let access = under(&[&data]);
    for inside in [data.clone(), data.join("sub"), data.join("not-yet-there/deeper")] {
        assert_eq!(check(&access, &docker_mount(&inside.display().to_string())), "", "{}", inside.display());
    }
    let sibling = root.path().join("data2");
    let refused = check(&access, &docker_mount(&sibling.display().to_string()));
    assert!(refused.contains("is not at or below a path the agent allows"), "{refused}");
}

#[test]
fn a_dotdot_path_is_refused_even_when_it_would_land_inside() {
    let root = tempfile::tempdir().expect("dir");
    let data = root.path().join("data");
    std::fs::create_dir_all(data.join("sub")).expect("data/sub");
    let sneaky = format!("{}/sub/../sub", data.display());
    let refused = check(&under(&[&data]), &docker_mount(&sneaky));
    assert!(refused.ends_with("contains \"..\"; write it without"), "{refused}");
}

#[test]
fn a_symlink_inside_the_allowlist_cannot_lead_out_of_it() {
    let root = tempfile::tempdir().expect("dir");
    let data = root.path().join("data");
    std::fs::create_dir_all(&data).expect("data");
    let outside = root.path().join("secret");
    std::fs::create_dir_all(&outside).expect("secret");
    std::os::unix::fs::symlink(&outside, data.join("escape")).expect("symlink");
    let refused = check(&under(&[&data]), &docker_mount(&format!("{}/escape/keys", data.display())));
    assert!(refused.contains(&format!("(it resolves to {}/keys)", outside.display())), "{refused}");
}

#[test]
fn an_allowlist_entry_that_is_a_symlink_allows_its_target() {
    let root = tempfile::tempdir().expect("dir");
    let real = root.path().join("real");
    std::fs::create_dir_all(real.join("x")).expect("real/x");
    let link: PathBuf = root.path().join("link");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    assert_eq!(check(&under(&[&link]), &docker_mount(&format!("{}/x", real.display()))), "");
    assert_eq!(check(&under(&[&link]), &docker_mount(&format!("{}/x", link.display()))), "");
}

#[test]
fn unrestricted_access_allows_host_rootfs_and_any_mount() {
    let access = HostAccess::unrestricted();
    assert_eq!(check(&access, &docker_mount("/")), "");
    assert_eq!(check(&access, &exec_mount("/")), "");
    assert_eq!(check(&access, &job(r#"{"name": "t", "driver": "exec", "command": "/bin/true"}"#)), "");
}

#[test]
fn every_refusal_of_a_job_is_reported_at_once() {
    let spec = job(r#"{"name": "a", "driver": "exec", "command": "/bin/true"},
           {"name": "b", "driver": "docker", "image": "i", "mounts": [
               {"source": "/var", "target": "/v"}, {"source": "/etc", "target": "/e"}]}"#);
    let errors = HostAccess::default().check_job(&spec).expect_err("refused");
    let paths: Vec<&str> = errors.errors.iter().map(|error| error.path.as_str()).collect();
    assert_eq!(paths, ["tasks[0].rootfs", "tasks[1].mounts[0].source", "tasks[1].mounts[1].source"]);
}

#[test]
fn an_exec_task_with_a_rootfs_may_not_mount_the_host_without_an_allowlist() {
    for source in ["/", "/etc"] {
        let refused = check(&HostAccess::default(), &exec_mount(source));
        assert!(
            refused.starts_with(&format!("tasks[0].mounts[0].source: host path {source} is not at or below")),
            "{refused}"
        );
        assert!(refused.ends_with("(exec.host_mounts: it is empty); add it to exec.host_mounts in the agent config"));
    }
}

#[test]
fn exec_and_docker_mounts_are_judged_by_their_own_allowlists() {
    let root = tempfile::tempdir().expect("dir");
    let exec_data = root.path().join("exec-data");
    let docker_data = root.path().join("docker-data");
    std::fs::create_dir_all(&exec_data).expect("exec-data");
    std::fs::create_dir_all(&docker_data).expect("docker-data");
    let access = HostAccess {
        exec_mounts: paths(&[&exec_data]),
        docker_mounts: paths(&[&docker_data]),
        ..HostAccess::default()
    };
    let shown = |path: &Path| format!("{}/x", path.display());
    assert_eq!(check(&access, &exec_mount(&shown(&exec_data))), "");
    assert_eq!(check(&access, &docker_mount(&shown(&docker_data))), "");
    let refused = check(&access, &exec_mount(&shown(&docker_data)));
    assert!(refused.contains(&format!("(exec.host_mounts: {:?})", exec_data.display().to_string())), "{refused}");
    let refused = check(&access, &docker_mount(&shown(&exec_data)));
    assert!(refused.ends_with("add it to docker.host_mounts in the agent config"), "{refused}");
}

#[test]
fn exec_mounts_get_the_same_component_dotdot_and_symlink_rules() {
    let root = tempfile::tempdir().expect("dir");
    let data = root.path().join("data");
    std::fs::create_dir_all(&data).expect("data");
    std::fs::create_dir_all(root.path().join("data2")).expect("data2");
    std::os::unix::fs::symlink(root.path(), data.join("up")).expect("symlink");
    let access = HostAccess { exec_mounts: paths(&[&data]), ..HostAccess::default() };
    let sibling = check(&access, &exec_mount(&root.path().join("data2").display().to_string()));
    assert!(sibling.contains("is not at or below a path the agent allows (exec.host_mounts:"), "{sibling}");
    let dotdot = check(&access, &exec_mount(&format!("{}/../data2", data.display())));
    assert!(dotdot.ends_with("contains \"..\"; write it without"), "{dotdot}");
    let escape = check(&access, &exec_mount(&format!("{}/up", data.display())));
    assert!(escape.contains(&format!("(it resolves to {})", root.path().display())), "{escape}");
}

#[test]
fn an_exec_task_on_the_host_rootfs_still_needs_its_mounts_allowed() {
    let spec = job(r#"{"name": "t", "driver": "exec", "command": "/bin/true",
                       "mounts": [{"source": "/etc", "target": "/m"}]}"#);
    let access = HostAccess { allow_host_rootfs: true, ..HostAccess::default() };
    let refused = check(&access, &spec);
    assert!(refused.starts_with("tasks[0].mounts[0].source: host path /etc"), "{refused}");
    assert_eq!(check(&HostAccess::unrestricted(), &spec), "");
}
