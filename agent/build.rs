//! Build facts for `/v1/agent/self` and the gossip `build` tag: the git revision this binary was built from and that
//! commit's date (not the clock's, so the same commit builds the same binary). Outside a git checkout they are
//! `unknown` and Go's zero time, unless `ROSTER_REVISION`/`ROSTER_BUILD_DATE` say otherwise.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).env("TZ", "UTC").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=ROSTER_REVISION");
    println!("cargo:rerun-if-env-changed=ROSTER_BUILD_DATE");
    let revision = std::env::var("ROSTER_REVISION")
        .ok()
        .or_else(|| git(&["rev-parse", "--short=8", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    let date = std::env::var("ROSTER_BUILD_DATE")
        .ok()
        .or_else(|| git(&["log", "-1", "--format=%cd", "--date=format-local:%Y-%m-%dT%H:%M:%SZ"]))
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_owned());
    println!("cargo:rustc-env=ROSTER_REVISION={revision}");
    println!("cargo:rustc-env=ROSTER_BUILD_DATE={date}");
    // A new commit (HEAD moves, or the branch it names does) changes both. Only paths that exist are named: cargo
    // reruns a build script on every build when a named path is missing, and the agent would then be recompiled
    // for every `cargo build` (the test harness runs one per test).
    let watch = |path: String| {
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    };
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        watch(format!("{dir}/HEAD"));
    }
    if let Some(dir) = git(&["rev-parse", "--git-common-dir"]) {
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watch(format!("{dir}/{branch}"));
        }
        watch(format!("{dir}/packed-refs"));
    }
}
