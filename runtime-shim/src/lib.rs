//! roster's runtime shim: will hold the `Driver` trait with its `docker` (bollard) and `exec` (namespaces + cgroups) drivers and the job spec (issue "Runtime shim"). Nothing lives here yet.
#![forbid(unsafe_code)]
