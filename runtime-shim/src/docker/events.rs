//! The Docker event stream of this node's containers as [`DriverEvent`]s, kept alive across engine restarts.
//!
//! The engine is asked for container events labelled `roster.node=<node>` since the moment the stream was made
//! (so an event that happens before the first poll is not lost) and, after a reconnect, since the last event seen,
//! which the engine replays from its in-memory buffer; events at or before that time are dropped as duplicates.
//! Each break yields one [`DriverEvent::Resync`]: events may have been lost (an engine restart empties its buffer),
//! so the agent re-inspects its tasks. Reconnects back off from 100 ms to 10 s.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use bollard::Docker;
use bollard::models::{EventMessage, EventMessageTypeEnum, HealthStatusEnum};
use bollard::query_parameters::EventsOptions;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};

use crate::driver::{DriverEvent, LABEL_JOB, LABEL_NODE, LABEL_TASK, TaskEventKind, TaskId};

/// The first wait before reconnecting.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between reconnects.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

type Events = BoxStream<'static, Result<EventMessage, bollard::errors::Error>>;

/// The stream's state between items.
struct Watch {
    docker: Docker,
    node: String,
    /// The engine's stream, `None` after a break until the reconnect.
    events: Option<Events>,
    /// Nanoseconds since the epoch of the last event delivered (or of the stream's creation).
    since_nanos: i64,
    /// The wait before the next reconnect.
    backoff: Duration,
    /// Whether a break has been reported and no event has arrived since, so an outage yields one `Resync`.
    broken: bool,
}

pub(super) fn stream(docker: Docker, node: String) -> BoxStream<'static, DriverEvent> {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let since_nanos = i64::try_from(now.as_nanos()).unwrap_or(i64::MAX);
    let watch = Watch { docker, node, events: None, since_nanos, backoff: FIRST_BACKOFF, broken: false };
    futures_util::stream::unfold(watch, next).boxed()
}

/// Produces the next event, reconnecting as often as needed.
async fn next(mut watch: Watch) -> Option<(DriverEvent, Watch)> {
    loop {
        let events = match &mut watch.events {
            Some(events) => events,
            None => watch.events.insert(connect(&watch.docker, &watch.node, watch.since_nanos).boxed()),
        };
        let reason = match events.next().await {
            Some(Ok(message)) => {
                let time_nano = message.time_nano.unwrap_or(i64::MAX);
                if time_nano <= watch.since_nanos {
                    continue;
                }
                watch.since_nanos = time_nano;
                watch.backoff = FIRST_BACKOFF;
                watch.broken = false;
                match translate(&message) {
                    Some(event) => return Some((event, watch)),
                    None => continue,
                }
            }
            Some(Err(err)) => err.to_string(),
            None => "the engine closed the event stream".to_string(),
        };
        watch.events = None;
        tracing::debug!(%reason, backoff = ?watch.backoff, "docker event stream broke; reconnecting");
        tokio::time::sleep(watch.backoff).await;
        watch.backoff = (watch.backoff * 2).min(MAX_BACKOFF);
        if !watch.broken {
            watch.broken = true;
            return Some((DriverEvent::Resync { reason }, watch));
        }
    }
}

/// The engine's stream of this node's container events since `since_nanos`.
fn connect(
    docker: &Docker,
    node: &str,
    since_nanos: i64,
) -> impl Stream<Item = Result<EventMessage, bollard::errors::Error>> + use<> {
    let filters = HashMap::from([
        ("type".to_string(), vec!["container".to_string()]),
        ("label".to_string(), vec![format!("{LABEL_NODE}={node}")]),
    ]);
    let since = format!("{}.{:09}", since_nanos / 1_000_000_000, since_nanos % 1_000_000_000);
    docker.events(Some(EventsOptions { since: Some(since), until: None, filters: Some(filters) }))
}

/// A container event as a task event; `None` for actions roster does not follow (create, attach, exec_*, ...).
pub(super) fn translate(message: &EventMessage) -> Option<DriverEvent> {
    if message.typ != Some(EventMessageTypeEnum::CONTAINER) {
        return None;
    }
    let actor = message.actor.as_ref()?;
    let attributes = actor.attributes.as_ref()?;
    let action = message.action.as_deref()?;
    let kind = match action {
        "start" => TaskEventKind::Started,
        "die" => TaskEventKind::Died { exit_code: attributes.get("exitCode")?.parse().ok()? },
        "oom" => TaskEventKind::Oom,
        _ => {
            let status = action.strip_prefix("health_status:")?.trim();
            let status: HealthStatusEnum =
                serde_json::from_value(serde_json::Value::String(status.to_string())).ok()?;
            TaskEventKind::Health(super::state::health_status(status)?)
        }
    };
    Some(DriverEvent::Task {
        id: TaskId(actor.id.clone()?),
        job: attributes.get(LABEL_JOB)?.clone(),
        task: attributes.get(LABEL_TASK)?.clone(),
        kind,
    })
}

#[cfg(test)]
mod tests;
