//! `/v1/snapshot`: save (`GET`) and restore (`PUT`) the whole replicated state as a snapshot archive
//! (`roster_snapshot`: Consul's gzip'd tar layout with roster's contents). Both need `acl:write`, which the server
//! that serves them decides.
//!
//! A restore is checked whole before anything is proposed (checksums, versions, and that the state decodes), so a bad
//! archive is a 400 naming the problem with nothing changed; then the server proposes it through the log in chunks and
//! every server replaces its state at the same index.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::IntoResponse;
use roster_server::Consistency;

use super::Api;
use super::caller;
use super::query::Query;
use super::reply::{ApiError, ApiResult, empty_ok, read_headers};

/// The largest archive `PUT /v1/snapshot` reads: the largest state a restore stages, with room for an archive of
/// data that does not compress.
pub const MAX_ARCHIVE_SIZE: usize = roster_kv::MAX_RESTORE_LEN as usize + (16 << 20);

/// `GET /v1/snapshot` (`?stale` lets any server answer from its own state).
pub async fn save(State(api): State<Api>, uri: Uri) -> ApiResult {
    let q = Query::parse(uri.query());
    q.only(&["dc", "stale", "token"])?;
    q.check_dc(&api)?;
    let consistency = if q.flag("stale") { Consistency::Stale } else { Consistency::Default };
    let (archive, index) = api.backend.save_snapshot_as(&caller::secret(), consistency).await?;
    // The save went through the barrier (or, stale, through a server's own state): a leader was known when it began.
    let meta = roster_server::ReadMeta { known_leader: true, last_contact_ms: 0, state_index: 0 };
    let mut headers = read_headers(index, meta);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-gzip"));
    Ok((StatusCode::OK, headers, archive).into_response())
}

/// `PUT /v1/snapshot` with the archive as the body.
pub async fn restore(State(api): State<Api>, uri: Uri, body: Bytes) -> ApiResult {
    let q = Query::parse(uri.query());
    q.only(&["dc", "token"])?;
    q.check_dc(&api)?;
    // Gunzipping, hashing and decoding a large archive is CPU work: off the async workers.
    let state = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, roster_snapshot::Error> {
        let archive = roster_snapshot::read(&body[..])?;
        archive.decode_state()?;
        Ok(archive.state)
    })
    .await
    .map_err(|e| ApiError::internal(format!("checking the snapshot failed: {e}")))?
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    api.backend.restore_snapshot_as(&caller::secret(), &state).await?;
    Ok(empty_ok())
}
