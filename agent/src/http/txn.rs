//! `PUT /v1/txn`: Consul's transactions. KV, Node, Service and Check operations applied all together in one Raft entry, or not at all.
//!
//! A body that does not parse, an unknown verb or too many operations is refused before anything is proposed (400 or 413).
//! A transaction with no write operation is served as a read (Consul's fast path), with the consistency the request asks for.
//! Success answers 200 `{"Results": [...], "Errors": null}`; a rollback answers 409 `{"Results": null, "Errors": [{"OpIndex", "What"}]}`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use base64::Engine;
use roster_kv::{
    Answer, CatalogVerb, HealthCheck, KvVerb, MAX_TXN_OPS, MAX_VALUE_SIZE, Node, Query as StateQuery, Service, TxnOp,
    TxnOutcome,
};
use serde_json::{Value, json};

use super::input::Obj;
use super::query::Query;
use super::reply::{ApiError, ApiResult, read_headers};
use super::{Api, definition, output, read, unexpected};

pub async fn txn(State(api): State<Api>, uri: Uri, body: Bytes) -> ApiResult {
    let q = Query::parse(uri.query());
    q.check_dc(&api)?;
    let ops = parse_ops(&api, &body)?;
    if ops.iter().any(TxnOp::is_write) {
        let now_ms = crate::clock::unix_ms();
        let outcome = api.backend.txn_as(&super::caller::secret(), ops, now_ms).await?;
        return Ok(reply(&outcome).into_response());
    }
    // Read-only transactions do not block (as in Consul), so `?index` is ignored.
    let opts = super::query::ReadOpts { min_index: 0, ..q.read_opts(&api)? };
    let (answer, index, meta) = read(&api, &opts, &StateQuery::Txn(ops)).await?;
    let Answer::Txn(outcome) = answer else { return Err(unexpected()) };
    Ok((read_headers(index, meta), reply(&outcome)).into_response())
}

/// The status and JSON body of an outcome.
fn reply(outcome: &TxnOutcome) -> (StatusCode, axum::Json<Value>) {
    match outcome {
        TxnOutcome::Applied(results) => {
            let results: Vec<Value> = results.iter().map(output::txn_result).collect();
            (StatusCode::OK, axum::Json(json!({"Results": results, "Errors": null})))
        }
        TxnOutcome::RolledBack(errors) => {
            let errors: Vec<Value> = errors.iter().map(output::txn_error).collect();
            (StatusCode::CONFLICT, axum::Json(json!({"Results": null, "Errors": errors})))
        }
    }
}

/// Parses and checks the whole body before anything is proposed.
fn parse_ops(api: &Api, body: &[u8]) -> Result<Vec<TxnOp>, ApiError> {
    let parse_error = |why: String| ApiError::bad_request(format!("Failed to parse body: {why}"));
    let items = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => items,
        Ok(_) => return Err(parse_error("expected a JSON array of operations".into())),
        Err(err) => return Err(parse_error(err.to_string())),
    };
    if items.len() > MAX_TXN_OPS {
        return Err(ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("Transaction contains too many operations ({} > {MAX_TXN_OPS})", items.len()),
        });
    }
    items.iter().map(|item| parse_op(api, item)).collect()
}

fn parse_op(api: &Api, item: &Value) -> Result<TxnOp, ApiError> {
    let decode = |why: String| ApiError::bad_request(format!("Failed to parse body: {why}"));
    let Some(map) = item.as_object() else { return Err(decode("each operation must be an object".into())) };
    let o = Obj(map);
    if let Some(kv) = o.obj(&["KV"]).map_err(decode)? {
        return kv_op(kv);
    }
    if let Some(op) = o.obj(&["Node"]).map_err(decode)? {
        let verb = catalog_verb(op, "Node")?;
        let node = op.obj(&["Node"]).map_err(decode)?.ok_or_else(|| decode("Node: missing Node".into()))?;
        return Ok(TxnOp::Node { verb, node: node_of(api, node).map_err(decode)? });
    }
    if let Some(op) = o.obj(&["Service"]).map_err(decode)? {
        let verb = catalog_verb(op, "Service")?;
        let node = op.str(&["Node"]).map_err(decode)?;
        let svc = op.obj(&["Service"]).map_err(decode)?.ok_or_else(|| decode("Service: missing Service".into()))?;
        return Ok(TxnOp::Service { verb, node, service: service_of(verb, svc).map_err(decode)? });
    }
    if let Some(op) = o.obj(&["Check"]).map_err(decode)? {
        let verb = catalog_verb(op, "Check")?;
        let check = op.obj(&["Check"]).map_err(decode)?.ok_or_else(|| decode("Check: missing Check".into()))?;
        return Ok(TxnOp::Check { verb, check: check_of(verb, check).map_err(decode)? });
    }
    Err(decode("an operation needs one of KV, Node, Service or Check".into()))
}

fn kv_op(o: Obj<'_>) -> Result<TxnOp, ApiError> {
    let decode = |why: String| ApiError::bad_request(format!("Failed to parse body: {why}"));
    let verb_name = o.str(&["Verb"]).map_err(decode)?;
    let verb =
        KvVerb::parse(&verb_name).ok_or_else(|| ApiError::bad_request(format!("unknown KV verb {verb_name:?}")))?;
    let key = o.str(&["Key"]).map_err(decode)?;
    roster_kv::check_key(&key).map_err(ApiError::bad_request)?;
    let value = match o.str(&["Value"]).map_err(decode)? {
        text if text.is_empty() => Vec::new(),
        text => base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|e| decode(format!("failed to decode value: {e}")))?,
    };
    if value.len() > MAX_VALUE_SIZE {
        return Err(ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("Value for key {key:?} is too large ({} > {MAX_VALUE_SIZE} bytes)", value.len()),
        });
    }
    let unsigned = |name: &str| o.int(&[name], 0, i64::MAX).map(|v| v.unwrap_or(0) as u64).map_err(decode);
    Ok(TxnOp::Kv {
        verb,
        key,
        value,
        flags: unsigned("Flags")?,
        index: unsigned("Index")?,
        session: o.str(&["Session"]).map_err(decode)?,
    })
}

fn catalog_verb(o: Obj<'_>, kind: &str) -> Result<CatalogVerb, ApiError> {
    let name = o.str(&["Verb"]).map_err(|e| ApiError::bad_request(format!("Failed to parse body: {e}")))?;
    CatalogVerb::parse(&name).ok_or_else(|| ApiError::bad_request(format!("unknown {kind} verb {name:?}")))
}

fn modify_index(o: Obj<'_>) -> Result<u64, String> {
    Ok(o.int(&["ModifyIndex"], 0, i64::MAX)?.unwrap_or(0) as u64)
}

fn node_of(api: &Api, o: Obj<'_>) -> Result<Node, String> {
    let datacenter = match o.str(&["Datacenter"])? {
        dc if dc.is_empty() => api.info.datacenter.clone(),
        dc => dc,
    };
    Ok(Node {
        id: o.str(&["ID"])?,
        node: o.str(&["Node"])?,
        address: o.str(&["Address"])?,
        datacenter,
        tagged_addresses: o.str_map(&["TaggedAddresses"])?,
        meta: o.str_map(&["Meta"])?,
        create_index: 0,
        modify_index: modify_index(o)?,
    })
}

/// A set or cas carries a whole service definition; get and delete need only its ID.
fn service_of(verb: CatalogVerb, o: Obj<'_>) -> Result<Service, String> {
    let mut service = match verb {
        CatalogVerb::Set | CatalogVerb::Cas => definition::service(o, true)?.0,
        _ => Service { id: o.str(&["ID"])?, service: o.str(&["Service", "Name"])?, ..Service::default() },
    };
    service.modify_index = modify_index(o)?;
    Ok(service)
}

/// A set or cas carries a whole check (catalog form, `Definition` inside); get and delete need only its node and ID.
fn check_of(verb: CatalogVerb, o: Obj<'_>) -> Result<HealthCheck, String> {
    let mut check = match verb {
        CatalogVerb::Set | CatalogVerb::Cas => definition::check(o, true)?,
        _ => HealthCheck {
            node: String::new(),
            check_id: o.str(&["CheckID", "ID"])?,
            name: String::new(),
            status: roster_kv::CheckStatus::Critical,
            notes: String::new(),
            output: String::new(),
            service_id: String::new(),
            service_name: String::new(),
            service_tags: Vec::new(),
            check_type: String::new(),
            interval: String::new(),
            timeout: String::new(),
            definition_json: String::new(),
            create_index: 0,
            modify_index: 0,
        },
    };
    check.node = o.str(&["Node"])?;
    check.modify_index = modify_index(o)?;
    Ok(check)
}
