//! The gRPC probe: the standard `grpc.health.v1.Health/Check` call, spoken over reqwest's HTTP/2.
//!
//! The protocol is small enough to encode by hand: the request is a length-prefixed `HealthCheckRequest` whose only
//! field is the service name (field 1, string), the answer a `HealthCheckResponse` whose only field is the serving
//! status (field 1, enum; 1 = SERVING).
//! Errors come as `grpc-status`/`grpc-message` in the trailers, or in the headers of a trailers-only answer.

use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body_util::BodyExt;

use crate::runner::http::{ClientKey, HttpClients};
use crate::runner::{error_chain, format_duration};
use crate::status::Status;

/// The value of `HealthCheckResponse.status` that means healthy.
const SERVING: u64 = 1;

/// Asks `target` (`host:port` or `host:port/service`) whether it is serving.
pub(crate) async fn probe(
    clients: &HttpClients,
    target: &str,
    use_tls: bool,
    tls_skip_verify: bool,
    timeout: Duration,
) -> (Status, String) {
    let (authority, service) = target.split_once('/').unwrap_or((target, ""));
    let scheme = if use_tls { "https" } else { "http" };
    let url = format!("{scheme}://{authority}/grpc.health.v1.Health/Check");
    let key = ClientKey { tls_skip_verify, disable_redirects: true, http2_only: true };
    let call = async {
        let client = clients.client(key)?;
        let response = client
            .post(&url)
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(encode_request(service))
            .send()
            .await
            .map_err(|err| error_chain(&err))?;
        if !response.status().is_success() {
            return Err(format!("HTTP status {}", response.status()));
        }
        let response = http::Response::<reqwest::Body>::from(response);
        let header_status = grpc_status(response.headers());
        let collected = response.into_body().collect().await.map_err(|err| error_chain(&err))?;
        let trailer_status = collected.trailers().and_then(grpc_status);
        match header_status.or(trailer_status) {
            Some((0, _)) | None => decode_response(collected.to_bytes()),
            Some((code, message)) => Err(format!("rpc error: code = {code} desc = {message}")),
        }
    };
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(SERVING)) => (Status::Passing, format!("gRPC check {target}: success")),
        Ok(Ok(serving_status)) => {
            (Status::Critical, format!("gRPC {target} serving status: {}", serving_status_name(serving_status)))
        }
        Ok(Err(err)) => (Status::Critical, format!("gRPC check {target}: failed: {err}")),
        Err(_) => (Status::Critical, format!("gRPC check {target}: timed out after {}", format_duration(timeout))),
    }
}

/// `grpc-status` and `grpc-message` from a header map, if the status is there.
fn grpc_status(headers: &http::HeaderMap) -> Option<(u32, String)> {
    let code = headers.get("grpc-status")?.to_str().ok()?.trim().parse().ok()?;
    let message = headers.get("grpc-message").and_then(|value| value.to_str().ok()).unwrap_or("").to_string();
    Some((code, message))
}

/// A length-prefixed `HealthCheckRequest { service }` (no compression).
pub(crate) fn encode_request(service: &str) -> Vec<u8> {
    let mut message = Vec::new();
    if !service.is_empty() {
        message.push(0x0a); // field 1, length-delimited
        encode_varint(&mut message, service.len() as u64);
        message.extend_from_slice(service.as_bytes());
    }
    let mut frame = Vec::with_capacity(5 + message.len());
    frame.push(0); // not compressed
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    frame
}

/// The `status` of the first length-prefixed `HealthCheckResponse` in `body` (0, UNKNOWN, when absent).
pub(crate) fn decode_response(mut body: Bytes) -> Result<u64, String> {
    if body.len() < 5 {
        return Err("empty response".to_string());
    }
    if body.get_u8() != 0 {
        return Err("compressed responses are not supported".to_string());
    }
    let len = body.get_u32() as usize;
    if body.len() < len {
        return Err("truncated response".to_string());
    }
    let mut message = body.split_to(len);
    let mut status = 0;
    while message.has_remaining() {
        let tag = decode_varint(&mut message)?;
        match tag & 7 {
            0 => {
                let value = decode_varint(&mut message)?;
                if tag >> 3 == 1 {
                    status = value;
                }
            }
            2 => {
                let skip = usize::try_from(decode_varint(&mut message)?).map_err(|_| "bad length")?;
                if message.remaining() < skip {
                    return Err("truncated field".to_string());
                }
                message.advance(skip);
            }
            5 if message.remaining() >= 4 => message.advance(4),
            1 if message.remaining() >= 8 => message.advance(8),
            _ => return Err("malformed response".to_string()),
        }
    }
    Ok(status)
}

fn encode_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn decode_varint(buf: &mut Bytes) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        if !buf.has_remaining() {
            return Err("truncated varint".to_string());
        }
        let byte = buf.get_u8();
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint too long".to_string())
}

fn serving_status_name(status: u64) -> String {
    match status {
        0 => "UNKNOWN".to_string(),
        1 => "SERVING".to_string(),
        2 => "NOT_SERVING".to_string(),
        3 => "SERVICE_UNKNOWN".to_string(),
        other => other.to_string(),
    }
}
