//! `/v1/operator/keyring`: list (GET), install (POST), use (PUT) and remove (DELETE) gossip encryption keys on every
//! alive member, in Consul's shapes: one LAN entry with per-key node counts and per-node errors, and a 500 naming
//! the failures when any member refused or did not answer.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, Uri};
use serde_json::{Value, json};

use roster_acl::{AccessLevel, Resource};

use super::input::{Obj, parse_object};
use super::query::Query;
use super::reply::{ApiError, ApiResult, empty_ok, local_reply};
use super::{Api, caller};
use crate::gossip::{GossipError, Key, KeyOp, KeyringReport};

/// Consul's largest `relay-factor`.
const MAX_RELAY_FACTOR: i64 = 5;

/// Every method of the endpoint.
pub async fn keyring(State(api): State<Api>, method: Method, uri: Uri, body: Bytes) -> ApiResult {
    let q = Query::parse(uri.query());
    q.check_dc(&api)?;
    let key =
        if matches!(method, Method::POST | Method::PUT | Method::DELETE) { Some(request_key(&body)?) } else { None };
    check_relay_factor(&q)?;
    let local_only = local_only(&q, &method)?;
    if method == Method::GET {
        caller::require(&api, Resource::Keyring, AccessLevel::Read, None, |a| a.keyring_read()).await?;
    } else {
        caller::require(&api, Resource::Keyring, AccessLevel::Write, None, |a| a.keyring_write()).await?;
    }
    let gossip = api.gossip.as_ref().ok_or_else(|| ApiError::internal(GossipError::EncryptionDisabled.to_string()))?;
    let op = match (method.clone(), key) {
        (Method::GET, _) => KeyOp::List,
        (Method::POST, Some(key)) => KeyOp::Install(key),
        (Method::PUT, Some(key)) => KeyOp::Use(key),
        (Method::DELETE, Some(key)) => KeyOp::Remove(key),
        (other, _) => {
            let message = format!("method {other} not allowed");
            return Err(ApiError { status: axum::http::StatusCode::METHOD_NOT_ALLOWED, message });
        }
    };
    let report = if local_only {
        let keys =
            gossip.local_keys().ok_or_else(|| ApiError::internal(GossipError::EncryptionDisabled.to_string()))?;
        KeyringReport { num_nodes: 1, responses: BTreeMap::from([(api.info.node_name.clone(), Ok(keys))]) }
    } else {
        gossip.keyring(op).await.map_err(|error| ApiError::internal(error.to_string()))?
    };
    if report.failures().next().is_some() {
        return Err(ApiError::internal(failure_text(&api.info.datacenter, &report)));
    }
    if method == Method::GET {
        local_reply(&api, &[response_json(&api.info.datacenter, &report)]).await
    } else {
        Ok(empty_ok())
    }
}

/// The `Key` of a write's body; 400 with Consul's "Request decode failed" when the body is not an object.
fn request_key(body: &[u8]) -> Result<Key, ApiError> {
    let object = parse_object(body).map_err(ApiError::decode)?;
    let text = Obj(&object).str(&["Key"]).map_err(ApiError::decode)?;
    if text.is_empty() {
        return Err(ApiError::bad_request("Request decode failed: Key is required"));
    }
    Key::parse(&text).map_err(|why| ApiError::bad_request(format!("Invalid key: {why}")))
}

/// `?relay-factor`: Consul's range check; roster answers directly and retries instead of relaying, so only 0 is taken.
fn check_relay_factor(q: &Query) -> Result<(), ApiError> {
    let Some(text) = q.get("relay-factor").filter(|text| !text.is_empty()) else { return Ok(()) };
    let factor: i64 =
        text.parse().map_err(|why| ApiError::bad_request(format!("Error parsing relay factor: {why}")))?;
    if !(0..=MAX_RELAY_FACTOR).contains(&factor) {
        return Err(ApiError::bad_request("Invalid relay-factor: Relay factor must be in range: [0, 5]"));
    }
    if factor > 0 {
        return Err(ApiError::bad_request(
            "Invalid relay-factor: roster does not relay keyring responses (members answer directly, with retries); \
             leave relay-factor at 0",
        ));
    }
    Ok(())
}

/// `?local-only`: Go's boolean spellings, and only for GET.
fn local_only(q: &Query, method: &Method) -> Result<bool, ApiError> {
    let Some(text) = q.get("local-only").filter(|text| !text.is_empty()) else { return Ok(false) };
    let local_only = match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => true,
        "0" | "f" | "F" | "false" | "FALSE" | "False" => false,
        other => {
            return Err(ApiError::bad_request(format!(
                "Error parsing local-only: strconv.ParseBool: parsing {other:?}: invalid syntax"
            )));
        }
    };
    if local_only && *method != Method::GET {
        return Err(ApiError::bad_request("Invalid use of local-only: local-only can only be set for GET requests"));
    }
    Ok(local_only)
}

/// Consul's `KeyringResponse` for the LAN pool.
fn response_json(datacenter: &str, report: &KeyringReport) -> Value {
    let mut keys: BTreeMap<String, usize> = BTreeMap::new();
    let mut primary_keys: BTreeMap<String, usize> = BTreeMap::new();
    for held in report.responses.values().filter_map(|result| result.as_ref().ok()) {
        for key in held {
            *keys.entry(key.to_base64()).or_default() += 1;
        }
        if let Some(primary) = held.first() {
            *primary_keys.entry(primary.to_base64()).or_default() += 1;
        }
    }
    let messages: BTreeMap<&str, &str> = report.failures().collect();
    json!({
        "WAN": false,
        "Datacenter": datacenter,
        "Segment": "",
        "Partition": "",
        "Keys": keys,
        "PrimaryKeys": primary_keys,
        "NumNodes": report.num_nodes,
        "Messages": messages,
    })
}

/// Consul's error text: the pool's failure count, then one line per failing node.
fn failure_text(datacenter: &str, report: &KeyringReport) -> String {
    let failures: Vec<(&str, &str)> = report.failures().collect();
    let mut text = format!("{datacenter} (LAN) error: {}/{} nodes reported failure", failures.len(), report.num_nodes);
    for (node, message) in failures {
        text.push_str(&format!("\n{node}: {message}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Key {
        Key::parse(&base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [byte; 32])).expect("32 bytes")
    }

    #[test]
    fn list_counts_each_key_and_primary_over_the_nodes_that_answered() {
        let (old, new) = (key(1), key(2));
        let report = KeyringReport {
            num_nodes: 3,
            responses: BTreeMap::from([
                ("a".to_owned(), Ok(vec![new.clone(), old.clone()])),
                ("b".to_owned(), Ok(vec![old.clone(), new.clone()])),
                ("c".to_owned(), Err("no response within 3s".to_owned())),
            ]),
        };
        let body = response_json("dc1", &report);
        assert_eq!(body["Keys"], json!({old.to_base64(): 2, new.to_base64(): 2}));
        assert_eq!(body["PrimaryKeys"], json!({old.to_base64(): 1, new.to_base64(): 1}));
        assert_eq!(body["NumNodes"], 3);
        assert_eq!(body["Messages"], json!({"c": "no response within 3s"}));
        assert_eq!(
            failure_text("dc1", &report),
            "dc1 (LAN) error: 1/3 nodes reported failure\nc: no response within 3s"
        );
    }

    #[test]
    fn bad_bodies_and_parameters_are_refused_with_consul_texts() {
        let message = |result: Result<Key, ApiError>| result.err().map(|error| error.message);
        assert_eq!(
            message(request_key(b"[1]")).as_deref(),
            Some("Request decode failed: expected a JSON object, got an array")
        );
        assert_eq!(message(request_key(b"{}")).as_deref(), Some("Request decode failed: Key is required"));
        assert!(
            message(request_key(br#"{"Key":"c2hvcnQ="}"#))
                .is_some_and(|m| m.starts_with("Invalid key: the key is 5 bytes"))
        );
        assert_eq!(request_key(format!(r#"{{"key":"{}"}}"#, key(3).to_base64()).as_bytes()).ok(), Some(key(3)));

        let relay = |raw: &str| check_relay_factor(&Query::parse(Some(raw))).err().map(|error| error.message);
        assert_eq!(relay("relay-factor=0"), None);
        assert_eq!(
            relay("relay-factor=6").as_deref(),
            Some("Invalid relay-factor: Relay factor must be in range: [0, 5]")
        );
        assert!(relay("relay-factor=2").is_some_and(|m| m.contains("does not relay")));
        assert!(relay("relay-factor=x").is_some_and(|m| m.starts_with("Error parsing relay factor")));

        let local = |raw: &str, method: Method| local_only(&Query::parse(Some(raw)), &method).map_err(|e| e.message);
        assert_eq!(local("local-only=true", Method::GET), Ok(true));
        assert_eq!(local("local-only=false", Method::PUT), Ok(false));
        assert_eq!(
            local("local-only=1", Method::POST),
            Err("Invalid use of local-only: local-only can only be set for GET requests".to_owned())
        );
        assert!(local("local-only=maybe", Method::GET).is_err());
    }
}
