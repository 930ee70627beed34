//! The request-body and query decoders of the HTTP API as the fuzz targets and property tests drive them.
//!
//! The first input byte sets the agent up (`enable_script_checks`); the rest is what a client sent.
//! Each entry point returns the furthest stage the input reached, and asserts what must hold of whatever it accepted.

use super::definition;
use super::input::{Obj, parse_object};
use super::output;

/// A `PUT /v1/agent/service/register` body, as the handler reads it; what it accepts must survive being shown by
/// `/v1/agent/service/:id` and registered again unchanged.
pub(crate) fn service_definition(data: &[u8]) -> &'static str {
    let Some((&mode, body)) = data.split_first() else { return "empty" };
    let Ok(map) = parse_object(body) else { return "not-an-object" };
    let Ok((service, checks)) = definition::service(Obj(&map), mode & 1 != 0) else { return "refused" };
    assert!(!service.id.is_empty() && !service.service.is_empty(), "a service without a name or ID: {service:?}");
    for check in &checks {
        assert!(!check.check_id.is_empty() && check.service_id == service.id, "a check without an ID: {check:?}");
    }
    let shown = output::agent_service(&service, "dc1");
    let serde_json::Value::Object(shown) = shown else { panic!("a service shows as an object") };
    match definition::service(Obj(&shown), false) {
        Ok((again, _)) => assert_eq!(again, service, "registering what the API shows changed the service"),
        Err(why) => panic!("what the API shows of {service:?} does not register again: {why}"),
    }
    "registered"
}

#[cfg(test)]
mod tests;
