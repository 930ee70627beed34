//! roster's DNS interface: will hold the hickory-server `RequestHandler` that answers `*.service`, `*.node` and `*.addr` names from a read-only catalog view (issue "DNS"). Nothing lives here yet.
#![forbid(unsafe_code)]
