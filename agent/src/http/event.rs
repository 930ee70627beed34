//! User events: `PUT /v1/event/fire/:name` (payload in the body, `?node=`, `?service=`, `?tag=` regex filters) and
//! `GET /v1/event/list[?name=]`, which blocks with `?index=&wait=` until a new event is stored.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, Uri};
use axum::response::IntoResponse as _;
use base64::Engine as _;
use serde_json::{Value, json};

use super::Api;
use super::query::Query;
use super::reply::{ApiError, ApiResult};
use crate::events::{EventStore, Filters};
use crate::gossip::UserEvent;

pub async fn fire(State(api): State<Api>, Path(name): Path<String>, uri: Uri, body: Bytes) -> ApiResult {
    let q = Query::parse(uri.query());
    q.check_dc(&api)?;
    let (resource, level) = (roster_acl::Resource::Event, roster_acl::AccessLevel::Write);
    super::caller::require(&api, resource, level, Some(&name), |a| a.event_write(&name)).await?;
    let filters = Filters {
        node: q.get("node").unwrap_or("").to_owned(),
        service: q.get("service").unwrap_or("").to_owned(),
        tag: q.get("tag").unwrap_or("").to_owned(),
    };
    let event = store(&api)?.fire(&name, body.to_vec(), filters).await.map_err(ApiError::bad_request)?;
    Ok(Json(event_json(&event)).into_response())
}

pub async fn list(State(api): State<Api>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    let opts = q.read_opts(&api)?;
    let store = store(&api)?;
    let name = q.get("name").filter(|name| !name.is_empty());
    let mut changes = store.subscribe();
    let deadline = tokio::time::Instant::now() + opts.wait;
    let (events, index) = loop {
        changes.borrow_and_update();
        let (events, index) = store.list(name);
        if opts.min_index == 0 || index != opts.min_index {
            break (events, index);
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { break (events, index) },
            () = tokio::time::sleep_until(deadline) => break (events, index),
            () = api.draining.cancelled() => break (events, index),
        }
    };
    let mut events = events;
    let access = super::caller::access(&api).await?;
    super::caller::keep_visible(&mut events, |e| access.authorizer().event_read(&e.name));
    let body: Vec<Value> = events.iter().map(event_json).collect();
    let mut response = Json(body).into_response();
    response.headers_mut().insert("X-Consul-Index", HeaderValue::from(index));
    Ok(response)
}

fn store(api: &Api) -> Result<&EventStore, ApiError> {
    api.events.as_deref().ok_or_else(|| ApiError::internal("this agent keeps no events"))
}

/// Consul's event shape.
fn event_json(event: &UserEvent) -> Value {
    json!({
        "ID": event.id,
        "Name": event.name,
        "Payload": (!event.payload.is_empty()).then(|| base64::engine::general_purpose::STANDARD.encode(&event.payload)),
        "NodeFilter": event.node_filter,
        "ServiceFilter": event.service_filter,
        "TagFilter": event.tag_filter,
        "Version": 1,
        "LTime": event.ltime,
    })
}
