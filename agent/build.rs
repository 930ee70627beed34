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
    // A new commit (HEAD moves, or the branch it names does) changes both.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
    }
    if let Some(dir) = git(&["rev-parse", "--git-common-dir"]) {
        println!("cargo:rerun-if-changed={dir}/refs/heads");
        println!("cargo:rerun-if-changed={dir}/packed-refs");
    }
}
