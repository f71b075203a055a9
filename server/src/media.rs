//! Media upload and download over HTTP.
//!
//! `POST /v1/media` with `Authorization: Bearer <token>` streams the request body to a
//! temporary file, counting bytes against the upload limit (a declared `Content-Length` over
//! the limit is refused before reading anything), syncs it, renames it to a random name and
//! only then records it: a crash leaves at most an orphan file, never a row without bytes.
//!
//! Large files go in chunks that survive interruptions (a tus-like protocol):
//! `POST /v1/uploads` with `Upload-Length` opens an upload; `PATCH /v1/uploads/{id}` with
//! `Upload-Offset` appends a chunk at exactly the offset the server has (a chunk is synced to
//! disk before the offset is recorded, and a file found longer than its record is cut back,
//! so a crash at any point loses at most the chunk in flight); `GET /v1/uploads/{id}` tells
//! an interrupted client where to continue. The chunk that completes the file turns it into
//! media, and the upload keeps its media id so a lost answer can be asked again. Uploads older
//! than the upload TTL (a day by default) are forgotten when the next one opens, the partial
//! bytes of unfinished ones deleted.
//!
//! `GET /v1/media/{id}` streams the file to the uploader, or to a current member of a room
//! where a message references the media, from the offset of a `Range: bytes=N-` header if
//! given (a download resumes too). Anyone else gets 404, exactly as for a media id that does
//! not exist, so ids reveal nothing.

use std::sync::Arc;

use axum::{
    body::Body,
    extract::{Path, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use futures_util::StreamExt;
use rand::RngCore;
use rusqlite::{params, Connection, OptionalExtension};
use tidings_proto::{ErrorCode, MediaId, UserId};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::{auth, error::OpError, roomlog::Actor, unix_ms, Shared};

/// Longest pause between two chunks of an upload before it is abandoned.
const UPLOAD_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// The average rate of one upload body, against the server's minimum: after a grace period
/// (a slow start on a bad link is fine; a trickle that holds a connection for hours is not).
struct Pace {
    started: std::time::Instant,
    min_bytes_per_s: u64,
    grace: std::time::Duration,
}

impl Pace {
    fn new(shared: &Shared) -> Self {
        Self {
            started: std::time::Instant::now(),
            min_bytes_per_s: shared.config.min_upload_bytes_per_s,
            grace: shared.config.upload_grace,
        }
    }

    /// Whether `bytes` so far is too slow to go on with.
    fn too_slow(&self, bytes: u64) -> bool {
        let elapsed = self.started.elapsed();
        elapsed > self.grace && (bytes as f64) < self.min_bytes_per_s as f64 * elapsed.as_secs_f64()
    }
}

/// Whether `user` may download `media`.
pub(crate) fn may_read(conn: &Connection, user: UserId, media: MediaId) -> Result<bool, OpError> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM media WHERE id = ?1 AND uploader = ?2
             UNION ALL
             SELECT 1 FROM message_media mm
             JOIN members m ON m.room_id = mm.room_id AND m.user_id = ?2 AND m.active = 1
             WHERE mm.media_id = ?1
             LIMIT 1",
        )?
        .exists(params![media.0, user.0])?)
}

/// An HTTP error with a JSON body `{code, message}`.
fn http_error(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "code": code.as_str(), "message": message }))).into_response()
}

fn op_error_response(e: OpError) -> Response {
    let info = e.into_info();
    let status = match info.code {
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::NotFound | ErrorCode::Forbidden => StatusCode::NOT_FOUND,
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorCode::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::QuotaExceeded | ErrorCode::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    http_error(status, info.code, &info.message)
}

async fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<Actor, OpError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned)
        .ok_or_else(|| OpError::new(ErrorCode::Unauthenticated, "missing bearer token"))?;
    shared.store.read(move |conn| auth::check_token(conn, &token, unix_ms())).await
}

/// `POST /v1/media`.
pub(crate) async fn upload(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match upload_inner(&shared, &headers, body).await {
        Ok((media, size)) => {
            (StatusCode::CREATED, Json(serde_json::json!({ "media": media.0, "size": size })))
                .into_response()
        }
        Err(e) => op_error_response(e),
    }
}

async fn upload_inner(
    shared: &Shared,
    headers: &HeaderMap,
    body: Body,
) -> Result<(MediaId, u64), OpError> {
    let actor = authenticate(shared, headers).await?;
    shared.disk.check()?;
    let limit = shared.config.max_upload_bytes;
    let too_large =
        || OpError::new(ErrorCode::TooLarge, format!("uploads are at most {limit} bytes"));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    // Before taking a byte (what the body declares), and again once its size is known.
    let (quota, more) = (Quota::of(shared), declared.unwrap_or(0));
    shared.store.read(move |conn| check_quota(conn, quota, actor.user, more)).await?;
    let dir = shared.media_dir();
    let mut name = [0u8; 16];
    rand::rng().fill_bytes(&mut name);
    let file_name = hex::encode(name);
    let tmp = dir.join(format!("{file_name}.part"));
    let result = async {
        let mut file = tokio::fs::File::create(&tmp).await.map_err(OpError::internal)?;
        let mut size = 0u64;
        let mut stream = body.into_data_stream();
        let pace = Pace::new(shared);
        loop {
            // A client that stops sending mid-upload must not hold a task and a file forever.
            let next = tokio::time::timeout(UPLOAD_IDLE_TIMEOUT, stream.next())
                .await
                .map_err(|_| OpError::invalid("the upload stalled"))?;
            let Some(chunk) = next else { break };
            let chunk = chunk.map_err(|_| OpError::invalid("the upload was interrupted"))?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(too_large());
            }
            if pace.too_slow(size) {
                return Err(OpError::invalid("the upload is too slow"));
            }
            file.write_all(&chunk).await.map_err(OpError::internal)?;
        }
        file.sync_all().await.map_err(OpError::internal)?;
        tokio::fs::rename(&tmp, dir.join(&file_name)).await.map_err(OpError::internal)?;
        Ok(size)
    }
    .await;
    let size = match result {
        Ok(size) => size,
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
    };
    let file_name_kept = file_name.clone();
    let recorded = shared
        .store
        .write(move |tx| {
            check_quota(tx, quota, actor.user, size)?;
            Ok::<_, OpError>(MediaId(record_media(tx, actor.user, &file_name, size)?))
        })
        .await;
    if recorded.is_err() {
        let _ = tokio::fs::remove_file(dir.join(&file_name_kept)).await;
    }
    Ok((recorded?, size))
}

/// What `user` keeps: bytes and files of their media, plus what their open resumable
/// uploads have reserved.
fn usage(conn: &Connection, user: UserId) -> Result<(u64, u64), OpError> {
    let (media_bytes, media_files): (i64, i64) = conn
        .prepare_cached("SELECT COALESCE(SUM(size), 0), COUNT(*) FROM media WHERE uploader = ?1")?
        .query_row([user.0], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let (open_bytes, open_files): (i64, i64) = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(size), 0), COUNT(*) FROM uploads
             WHERE uploader = ?1 AND media IS NULL",
        )?
        .query_row([user.0], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(((media_bytes + open_bytes) as u64, (media_files + open_files) as u64))
}

/// A user's storage allowance (from the server's configuration).
#[derive(Debug, Clone, Copy)]
struct Quota {
    bytes: u64,
    files: u64,
}

impl Quota {
    fn of(shared: &Shared) -> Self {
        Self { bytes: shared.config.quota_bytes, files: shared.config.quota_files }
    }
}

/// `quota_exceeded` unless `user` may keep `more` bytes in one more file.
fn check_quota(conn: &Connection, quota: Quota, user: UserId, more: u64) -> Result<(), OpError> {
    let (bytes, files) = usage(conn, user)?;
    if files + 1 > quota.files {
        return Err(OpError::new(
            ErrorCode::QuotaExceeded,
            format!("you keep {files} files, the most this server allows"),
        ));
    }
    if bytes.saturating_add(more) > quota.bytes {
        return Err(OpError::new(
            ErrorCode::QuotaExceeded,
            format!(
                "this would take your media past the {} MB this server keeps per person",
                quota.bytes / 1_000_000
            ),
        ));
    }
    Ok(())
}

/// Deletes media that no message lists and that is older than the grace period, and
/// abandoned resumable uploads; run every `sweep_interval`.
pub(crate) async fn sweep(shared: &Shared) -> Result<(), OpError> {
    sweep_uploads(shared).await?;
    let cutoff = unix_ms() - shared.config.unreferenced_media_grace.as_millis() as i64;
    let files: Vec<String> = shared
        .store
        .write(move |tx| {
            let unreferenced: Vec<(i64, String)> = tx
                .prepare_cached(
                    "SELECT id, file FROM media WHERE created_ms < ?1
                     AND NOT EXISTS (SELECT 1 FROM message_media WHERE media_id = media.id)",
                )?
                .query_map([cutoff], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            for (id, _) in &unreferenced {
                tx.prepare_cached("DELETE FROM uploads WHERE media = ?1")?.execute([id])?;
                tx.prepare_cached("DELETE FROM media WHERE id = ?1")?.execute([id])?;
            }
            Ok::<_, OpError>(unreferenced.into_iter().map(|(_, file)| file).collect())
        })
        .await?;
    if !files.is_empty() {
        tracing::info!(files = files.len(), "Swept media no message lists.");
    }
    // After the commit: a crash in between leaves a file without a row, never a row
    // without its file.
    for file in files {
        let _ = tokio::fs::remove_file(shared.media_dir().join(file)).await;
    }
    Ok(())
}

/// Records a finished file in `<data>/media` as media of `uploader`; returns its id.
fn record_media(
    conn: &Connection,
    uploader: UserId,
    file: &str,
    size: u64,
) -> Result<i64, OpError> {
    conn.prepare_cached(
        "INSERT INTO media (uploader, file, size, created_ms) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![uploader.0, file, size as i64, unix_ms()])?;
    Ok(conn.last_insert_rowid())
}

/// `GET /v1/media/{id}`.
pub(crate) async fn download(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let actor = authenticate(&shared, &headers).await?;
        let media = MediaId(id);
        let found: Option<(String, i64)> = shared
            .store
            .read(move |conn| {
                if !may_read(conn, actor.user, media)? {
                    return Ok(None);
                }
                Ok::<_, OpError>(
                    conn.prepare_cached("SELECT file, size FROM media WHERE id = ?1")?
                        .query_row([media.0], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()?,
                )
            })
            .await?;
        let (file, size) =
            found.ok_or_else(|| OpError::new(ErrorCode::NotFound, "no such media"))?;
        let mut file = tokio::fs::File::open(shared.media_dir().join(file))
            .await
            .map_err(OpError::internal)?;
        let from = range_start(&headers);
        if let Some(from) = from {
            if from >= size as u64 {
                return Err(OpError::invalid("the range starts past the end"));
            }
            file.seek(std::io::SeekFrom::Start(from)).await.map_err(OpError::internal)?;
        }
        Ok::<_, OpError>((file, size as u64, from))
    }
    .await;
    match result {
        Ok((file, size, from)) => {
            let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
            let start = from.unwrap_or(0);
            let mut response = (
                [
                    (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
                    (header::CONTENT_LENGTH, (size - start).to_string()),
                    (header::ACCEPT_RANGES, "bytes".to_owned()),
                ],
                body,
            )
                .into_response();
            if from.is_some() {
                *response.status_mut() = StatusCode::PARTIAL_CONTENT;
                if let Ok(v) = format!("bytes {start}-{}/{size}", size - 1).parse() {
                    response.headers_mut().insert(header::CONTENT_RANGE, v);
                }
            }
            response
        }
        Err(e) => op_error_response(e),
    }
}

/// The start of a `Range: bytes=N-` header (the only form clients need to resume).
fn range_start(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::RANGE)?
        .to_str()
        .ok()?
        .strip_prefix("bytes=")?
        .strip_suffix('-')?
        .parse()
        .ok()
}

fn number_header(headers: &HeaderMap, name: &str) -> Result<u64, OpError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| OpError::invalid(format!("a numeric {name} header is required")))
}

/// Where an upload stands.
fn upload_json(received: u64, media: Option<i64>) -> serde_json::Value {
    match media {
        Some(media) => {
            serde_json::json!({ "received": received, "media": media, "size": received })
        }
        None => serde_json::json!({ "received": received }),
    }
}

/// An upload of `uploader`: (size, received, media).
fn find_upload(
    conn: &Connection,
    id: &str,
    uploader: UserId,
) -> Result<(u64, u64, Option<i64>), OpError> {
    conn.prepare_cached(
        "SELECT size, received, media FROM uploads WHERE id = ?1 AND uploader = ?2",
    )?
    .query_row(params![id, uploader.0], |r| {
        Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64, r.get(2)?))
    })
    .optional()?
    .ok_or_else(|| OpError::new(ErrorCode::NotFound, "no such upload"))
}

/// Forgets uploads older than the upload TTL: their rows, and the partial bytes of those
/// never finished. Runs before each new upload opens, so abandoned uploads cannot pile up.
async fn sweep_uploads(shared: &Shared) -> Result<(), OpError> {
    let cutoff = unix_ms() - shared.config.upload_ttl.as_millis() as i64;
    let abandoned: Vec<String> = shared
        .store
        .write(move |tx| {
            let abandoned = tx
                .prepare_cached("SELECT id FROM uploads WHERE created_ms < ?1 AND media IS NULL")?
                .query_map([cutoff], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            tx.prepare_cached("DELETE FROM uploads WHERE created_ms < ?1")?.execute([cutoff])?;
            Ok::<_, OpError>(abandoned)
        })
        .await?;
    for id in abandoned {
        let _ = tokio::fs::remove_file(shared.media_dir().join(format!("{id}.part"))).await;
    }
    Ok(())
}

/// `POST /v1/uploads` with `Upload-Length`: opens a resumable upload.
pub(crate) async fn start_upload(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let actor = authenticate(&shared, &headers).await?;
        shared.disk.check()?;
        let size = number_header(&headers, "upload-length")?;
        let limit = shared.config.max_upload_bytes;
        if size > limit {
            return Err(OpError::new(
                ErrorCode::TooLarge,
                format!("uploads are at most {limit} bytes"),
            ));
        }
        sweep_uploads(&shared).await?;
        let mut name = [0u8; 16];
        rand::rng().fill_bytes(&mut name);
        let id = hex::encode(name);
        tokio::fs::File::create(shared.media_dir().join(format!("{id}.part")))
            .await
            .map_err(OpError::internal)?;
        let row = id.clone();
        let (quota, max_open) = (Quota::of(&shared), shared.config.max_open_uploads);
        let opened = shared
            .store
            .write(move |tx| {
                // The whole length is reserved now: an upload that would not fit is refused
                // before its first byte, and empty uploads cannot pile up.
                check_quota(tx, quota, actor.user, size)?;
                let open: i64 = tx
                    .prepare_cached(
                        "SELECT COUNT(*) FROM uploads WHERE uploader = ?1 AND media IS NULL",
                    )?
                    .query_row([actor.user.0], |r| r.get(0))?;
                if open as u64 >= max_open {
                    return Err(OpError::new(
                        ErrorCode::QuotaExceeded,
                        format!("{open} uploads are open; finish one first"),
                    ));
                }
                tx.prepare_cached(
                    "INSERT INTO uploads (id, uploader, size, created_ms) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![row, actor.user.0, size as i64, unix_ms()])?;
                Ok::<_, OpError>(())
            })
            .await;
        if let Err(e) = opened {
            let _ = tokio::fs::remove_file(shared.media_dir().join(format!("{id}.part"))).await;
            return Err(e);
        }
        Ok(id)
    }
    .await;
    match result {
        Ok(id) => (StatusCode::CREATED, Json(serde_json::json!({ "upload": id, "received": 0 })))
            .into_response(),
        Err(e) => op_error_response(e),
    }
}

/// `GET /v1/uploads/{id}`: how much the server has (and the media id once complete).
pub(crate) async fn upload_state(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let actor = authenticate(&shared, &headers).await?;
        shared.store.read(move |conn| find_upload(conn, &id, actor.user)).await
    }
    .await;
    match result {
        Ok((_, received, media)) => Json(upload_json(received, media)).into_response(),
        Err(e) => op_error_response(e),
    }
}

/// `PATCH /v1/uploads/{id}` with `Upload-Offset`: appends a chunk at that offset.
pub(crate) async fn append_upload(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match append_inner(&shared, id, &headers, body).await {
        Ok((received, media)) => {
            let status = if media.is_some() { StatusCode::CREATED } else { StatusCode::OK };
            (status, Json(upload_json(received, media))).into_response()
        }
        Err(e) => op_error_response(e),
    }
}

async fn append_inner(
    shared: &Shared,
    id: String,
    headers: &HeaderMap,
    body: Body,
) -> Result<(u64, Option<i64>), OpError> {
    let actor = authenticate(shared, headers).await?;
    shared.disk.check()?;
    let offset = number_header(headers, "upload-offset")?;
    let key = id.clone();
    let (size, received, media) =
        shared.store.read(move |conn| find_upload(conn, &key, actor.user)).await?;
    if media.is_some() {
        return Ok((received, media));
    }
    if offset != received {
        return Err(OpError::new(
            ErrorCode::InvalidInput,
            format!("the upload continues at offset {received}"),
        ));
    }
    let part = shared.media_dir().join(format!("{id}.part"));
    let mut file =
        tokio::fs::OpenOptions::new().write(true).open(&part).await.map_err(OpError::internal)?;
    // A crash after a chunk reached the disk but before its offset was recorded leaves the
    // file longer than the record: the record wins.
    file.set_len(received).await.map_err(OpError::internal)?;
    file.seek(std::io::SeekFrom::Start(received)).await.map_err(OpError::internal)?;
    let mut stream = body.into_data_stream();
    let mut now = received;
    let pace = Pace::new(shared);
    loop {
        let next = tokio::time::timeout(UPLOAD_IDLE_TIMEOUT, stream.next())
            .await
            .map_err(|_| OpError::invalid("the upload stalled"))?;
        let Some(chunk) = next else { break };
        let Ok(chunk) = chunk else { break };
        if now + chunk.len() as u64 > size {
            return Err(OpError::new(ErrorCode::TooLarge, "more bytes than the upload's length"));
        }
        file.write_all(&chunk).await.map_err(OpError::internal)?;
        now += chunk.len() as u64;
        if pace.too_slow(now - received) {
            // Cut, keeping what arrived: the client continues from there on a new request.
            break;
        }
    }
    // What arrived is kept even if the chunk was cut short: the client continues from here.
    file.sync_all().await.map_err(OpError::internal)?;
    drop(file);
    let complete = now == size;
    let file_name = id.clone();
    if complete {
        tokio::fs::rename(&part, shared.media_dir().join(&file_name))
            .await
            .map_err(OpError::internal)?;
    }
    shared
        .store
        .write(move |tx| {
            tx.prepare_cached("UPDATE uploads SET received = ?2 WHERE id = ?1")?
                .execute(params![id, now as i64])?;
            if !complete {
                return Ok::<_, OpError>((now, None));
            }
            let media = record_media(tx, actor.user, &file_name, size)?;
            tx.prepare_cached("UPDATE uploads SET media = ?2 WHERE id = ?1")?
                .execute(params![id, media])?;
            Ok((now, Some(media)))
        })
        .await
}
