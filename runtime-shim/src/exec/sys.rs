//! The crate's only `unsafe`: `unshare(2)` for the task's namespaces (the supervisor's network namespace included).
//!
//! rustix marks `unshare` unsafe because `CLONE_FILES` would leave other threads using descriptors from a table
//! the caller no longer shares. These wrappers never pass `CLONE_FILES`, and they run only in the supervisor's
//! and the init stage's own processes, which are single-threaded (they are fresh executions of the supervisor
//! command, started for this and nothing else), so no other thread exists to observe anything.
#![allow(unsafe_code)]

use std::io;

use rustix::thread::UnshareFlags;

/// Makes the caller's next child PID 1 of a new PID namespace (the caller itself stays where it is).
pub(super) fn unshare_pid_for_children() -> io::Result<()> {
    // SAFETY: no CLONE_FILES, and the caller is single-threaded (see the module doc).
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWPID) }.map_err(io::Error::from)
}

/// Moves the caller into new mount, UTS and IPC namespaces.
pub(super) fn unshare_task_namespaces() -> io::Result<()> {
    let flags = UnshareFlags::NEWNS | UnshareFlags::NEWUTS | UnshareFlags::NEWIPC;
    // SAFETY: no CLONE_FILES, and the caller is single-threaded (see the module doc).
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(io::Error::from)
}

/// Moves the calling thread into a new network namespace (the supervisor does this for a task with a network of its
/// own, spawns the task into it, and returns to the host's with `setns`).
pub(super) fn unshare_network() -> io::Result<()> {
    // SAFETY: no CLONE_FILES, so no descriptor table changes under another thread. (The supervisor is
    // single-threaded anyway; a test calls this from one thread of its harness, and only that thread moves.)
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNET) }.map_err(io::Error::from)
}
