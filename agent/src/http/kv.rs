//! `/v1/kv/<key>`: get (single, `?recurse`, `?keys&separator`, `?raw`), put (`?flags`, `?cas`, `?acquire`, `?release`) and delete (`?recurse`, `?cas`), with blocking reads on exactly the key or prefix asked for.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use percent_encoding::percent_decode_str;
use roster_kv::{Answer, Command, CommandResult, MAX_VALUE_SIZE, Query as StateQuery, check_key};

use super::output::KvOut;
use super::query::Query;
use super::reply::{ApiError, ApiResult, bool_reply, json_read_reply, read_headers, read_not_found, to_json};
use super::{Api, encoded, read, unexpected, write};

/// The key is everything after `/v1/kv/`, percent-decoded; its `/`s are part of it.
fn key_of(uri: &Uri) -> String {
    let raw = uri.path().strip_prefix("/v1/kv").unwrap_or("");
    let raw = raw.strip_prefix('/').unwrap_or(raw);
    percent_decode_str(raw).decode_utf8_lossy().into_owned()
}

/// What a KV read found, encoded for the reply.
enum Found {
    Json(Vec<u8>),
    Raw(Vec<u8>),
    Nothing,
}

pub async fn get(State(api): State<Api>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    let opts = q.read_opts(&api)?;
    let key = key_of(&uri);
    let query = if q.flag("keys") {
        StateQuery::KvKeys { prefix: key, separator: q.get("separator").map(str::to_owned) }
    } else if q.flag("recurse") {
        StateQuery::KvList { prefix: key }
    } else {
        StateQuery::KvGet { key }
    };
    let list = matches!(query, StateQuery::KvKeys { .. } | StateQuery::KvList { .. });
    let slot =
        if list { encoded::Slot::new(&api, uri.path(), uri.query(), &q, &opts) } else { encoded::Slot::unused() };
    let compute = std::pin::pin!(async {
        let (answer, index, meta) = read(&api, &opts, &query).await?;
        if let Some(reply) = slot.reuse(&api, index, meta) {
            return Ok(reply);
        }
        reply(&q, answer, index, meta)
    });
    // A load balancer's helper watches a prefix: its list is what is worth keeping encoded, not one small entry.
    // Boxed: a parked watcher's handler future is as large as its largest branch, and a single key's (the common
    // watch) need not carry the encoded path's state.
    if list {
        return Box::pin(encoded::read(&api, &slot, &opts, compute)).await;
    }
    compute.await
}

/// A KV read's reply: JSON entries or keys, one raw value, or Consul's 404 for nothing.
fn reply(q: &Query, answer: Answer, index: u64, meta: roster_server::ReadMeta) -> ApiResult {
    let found = match answer {
        Answer::Keys(keys) if keys.is_empty() => Found::Nothing,
        Answer::Keys(keys) => json(&keys),
        Answer::Entries(entries) if entries.is_empty() => Found::Nothing,
        Answer::Entries(entries) => json(&entries.iter().map(KvOut::from).collect::<Vec<_>>()),
        Answer::Entry(Some(entry)) if q.flag("raw") => Found::Raw(entry.value),
        Answer::Entry(Some(entry)) => json(&[KvOut::from(&entry)]),
        Answer::Entry(None) => Found::Nothing,
        _ => return Err(unexpected()),
    };
    Ok(match found {
        Found::Json(bytes) => json_read_reply(bytes, index, meta),
        Found::Raw(bytes) => (StatusCode::OK, read_headers(index, meta), bytes).into_response(),
        Found::Nothing => read_not_found(index, meta),
    })
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> Found {
    // Encoding plain strings and integers cannot fail.
    Found::Json(to_json(value).unwrap_or_default())
}

pub async fn put(State(api): State<Api>, uri: Uri, body: Bytes) -> ApiResult {
    let q = Query::parse(uri.query());
    q.check_dc(&api)?;
    let key = key_of(&uri);
    if key.is_empty() {
        return Err(ApiError::bad_request("Missing key name"));
    }
    check_key(&key).map_err(ApiError::bad_request)?;
    if body.len() > MAX_VALUE_SIZE {
        return Err(ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("Request body({} bytes) too large, max size: {MAX_VALUE_SIZE} bytes", body.len()),
        });
    }
    let flags = q.u64("flags")?.unwrap_or(0);
    let value = body.to_vec();
    let cmd = if let Some(session) = q.get("acquire") {
        Command::KvLock { key, value, flags, session: session.to_owned(), now_ms: crate::clock::unix_ms() }
    } else if let Some(session) = q.get("release") {
        if session.is_empty() {
            return Err(ApiError::internal("missing session"));
        }
        Command::KvUnlock { key, value, flags, session: session.to_owned() }
    } else {
        match q.u64("cas")? {
            Some(index) => Command::KvCas { key, value, flags, index },
            None => Command::KvSet { key, value, flags },
        }
    };
    match write(&api, cmd).await? {
        CommandResult::Bool(b) => Ok(bool_reply(b)),
        // Only a lock refers to a session that may not exist; Consul's server refuses it with a 500.
        CommandResult::Rejected(why) => Err(ApiError::internal(why)),
    }
}

pub async fn delete(State(api): State<Api>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    q.check_dc(&api)?;
    let key = key_of(&uri);
    // The server refuses a longer key too; saying so here makes it a 400 rather than a refused write.
    check_key(&key).map_err(ApiError::bad_request)?;
    let cmd = if q.flag("recurse") {
        Command::KvDeleteTree { prefix: key }
    } else if key.is_empty() {
        return Err(ApiError::bad_request("Missing key name"));
    } else if let Some(index) = q.u64("cas")? {
        Command::KvDeleteCas { key, index }
    } else {
        Command::KvDelete { key }
    };
    bool_result(write(&api, cmd).await?)
}

fn bool_result(result: CommandResult) -> ApiResult {
    match result {
        CommandResult::Bool(b) => Ok(bool_reply(b)),
        CommandResult::Rejected(why) => Err(ApiError::bad_request(why)),
    }
}

#[cfg(test)]
mod tests {
    //! Tests for key extraction from the request path.
    use super::*;

    #[test]
    fn key_keeps_slashes_and_decodes_escapes() {
        let key = |p: &str| key_of(&p.parse::<Uri>().expect("uri"));
        assert_eq!(key("/v1/kv/lb/web/1?recurse"), "lb/web/1");
        assert_eq!(key("/v1/kv/a%20b/c%23d"), "a b/c#d");
        assert_eq!(key("/v1/kv/"), "");
        assert_eq!(key("/v1/kv"), "");
        assert_eq!(key("/v1/kv/dir/"), "dir/");
    }
}
