//! Media over HTTP: uploads of prepared files and on-demand downloads into a size-capped
//! cache in the profile (docs/protocol.md, "Media").
//!
//! Uploads are steps of outbox items (a photo's full image goes up before its message): the
//! sync machine asks for one, the connection loop runs [`upload`] and hands the outcome
//! back. Downloads happen only when the user opens a full image ([`crate::Client::open_full`]);
//! catch-up never waits on them, because thumbnails and placeholders travel inside messages.
//! Cached files are evicted least recently used first once the cache passes its limit.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use tidings_proto::{bounded::Text, ErrorCode, ErrorInfo};
use tokio::io::AsyncWriteExt;

use crate::Error;

/// Default size limit of the full-size media cache.
pub const CACHE_LIMIT_BYTES: u64 = 512 * 1024 * 1024;

fn info(code: ErrorCode, message: impl Into<String>) -> ErrorInfo {
    let mut message = message.into();
    message.truncate(tidings_proto::limits::MAX_ERROR_BYTES);
    while !message.is_char_boundary(message.len()) {
        message.pop();
    }
    ErrorInfo { code, message: Text::new(message).unwrap_or_default(), retry_after_ms: None }
}

/// The server's `{code, message}` error body, or a code from the status.
async fn http_error(response: reqwest::Response) -> ErrorInfo {
    let status = response.status();
    let fallback = match status.as_u16() {
        401 => ErrorCode::Unauthenticated,
        404 => ErrorCode::NotFound,
        413 => ErrorCode::TooLarge,
        400 => ErrorCode::InvalidInput,
        503 => ErrorCode::ShuttingDown,
        _ => ErrorCode::Internal,
    };
    let body: Option<serde_json::Value> =
        response.bytes().await.ok().and_then(|b| serde_json::from_slice(&b).ok());
    let code = body
        .as_ref()
        .and_then(|b| b.get("code")?.as_str().map(str::to_owned))
        .and_then(|c| serde_json::from_value(serde_json::Value::String(c)).ok())
        .unwrap_or(fallback);
    let message = body
        .as_ref()
        .and_then(|b| b.get("message")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("HTTP {status}"));
    info(code, message)
}

/// Uploads the file at `path`; returns its media id and size. A network failure is
/// `internal` (the outbox retries it with backoff); the server's refusals keep their codes.
pub async fn upload(server: &str, token: &str, path: &Path) -> Result<(i64, u64), ErrorInfo> {
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|e| info(ErrorCode::InvalidInput, format!("the prepared file is gone: {e}")))?;
    let response = reqwest::Client::new()
        .post(format!("{}/v1/media", server.trim_end_matches('/')))
        .bearer_auth(token)
        .body(bytes)
        .send()
        .await
        .map_err(|e| info(ErrorCode::Internal, format!("upload failed: {e}")))?;
    if !response.status().is_success() {
        return Err(http_error(response).await);
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| info(ErrorCode::Internal, format!("upload failed: {e}")))?;
    let body: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| info(ErrorCode::Internal, format!("bad upload answer: {e}")))?;
    let media = body.get("media").and_then(serde_json::Value::as_i64);
    let size = body.get("size").and_then(serde_json::Value::as_u64);
    media.zip(size).ok_or_else(|| info(ErrorCode::Internal, "the upload answer has no media id"))
}

/// Downloads media `id` to `dest` (through a `.part` file, renamed when complete).
pub async fn download(server: &str, token: &str, id: i64, dest: &Path) -> Result<u64, Error> {
    let mut response = reqwest::Client::new()
        .get(format!("{}/v1/media/{id}", server.trim_end_matches('/')))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| Error::Network(e.to_string()))?;
    if !response.status().is_success() {
        return Err(Error::Server(http_error(response).await));
    }
    let part = dest.with_extension("part");
    let io = |e: std::io::Error| Error::Io(e.to_string());
    let mut file = tokio::fs::File::create(&part).await.map_err(io)?;
    let mut size = 0u64;
    while let Some(chunk) = response.chunk().await.map_err(|e| Error::Network(e.to_string()))? {
        size += chunk.len() as u64;
        file.write_all(&chunk).await.map_err(io)?;
    }
    file.sync_all().await.map_err(io)?;
    tokio::fs::rename(&part, dest).await.map_err(io)?;
    Ok(size)
}

/// The cached file of media `id` (relative to the profile), marking it used.
pub(crate) fn cached(c: &Connection, id: i64, now_ms: i64) -> Result<Option<String>, Error> {
    let path: Option<String> = c
        .prepare_cached("SELECT path FROM media_cache WHERE media_id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    if path.is_some() {
        c.execute("UPDATE media_cache SET used_ms = ?2 WHERE media_id = ?1", params![id, now_ms])?;
    }
    Ok(path)
}

/// Records a file as the cached copy of media `id`; returns the files to delete so the
/// cache stays under `limit` (least recently used first, never the one just added).
pub(crate) fn remember(
    c: &Connection,
    id: i64,
    path: &str,
    bytes: u64,
    now_ms: i64,
    limit: u64,
) -> Result<Vec<String>, Error> {
    c.execute(
        "INSERT INTO media_cache (media_id, path, bytes, used_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (media_id) DO UPDATE SET path = excluded.path, bytes = excluded.bytes,
             used_ms = excluded.used_ms",
        params![id, path, bytes as i64, now_ms],
    )?;
    let mut total: i64 =
        c.query_row("SELECT coalesce(sum(bytes), 0) FROM media_cache", [], |r| r.get(0))?;
    let mut evicted = Vec::new();
    let mut st = c.prepare_cached(
        "SELECT media_id, path, bytes FROM media_cache WHERE media_id != ?1 ORDER BY used_ms",
    )?;
    let rows: Vec<(i64, String, i64)> =
        st.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<_, _>>()?;
    for (old, path, size) in rows {
        if total <= limit as i64 {
            break;
        }
        c.execute("DELETE FROM media_cache WHERE media_id = ?1", [old])?;
        total -= size;
        evicted.push(path);
    }
    Ok(evicted)
}
