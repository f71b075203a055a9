//! Media over HTTP: uploads of prepared files and on-demand downloads into a size-capped
//! cache in the profile (docs/protocol.md, "Media").
//!
//! Uploads are steps of outbox items (a photo's full image or a file goes up before its
//! message): the sync machine asks for one, the connection loop runs [`upload`] and hands the
//! outcome back. Uploads are resumable, in chunks of [`CHUNK_BYTES`]: the upload's id is
//! stored with the outbox item as soon as the server opens it, so after kill -9 the next sync
//! continues at the offset the server has. Downloads happen only when the user opens a full image ([`Media::open_full`]);
//! catch-up never waits on them, because thumbnails and placeholders travel inside messages.
//! Cached files are evicted least recently used first once the cache passes its limit.
//!
//! **At rest** (docs/storage.md): the cache holds attachments as they travel, sealed with
//! their own keys ([`crate::e2ee::file`]), which are only in their messages, in the
//! encrypted database. A received one is downloaded to `cache/<media>.sealed` and opened in
//! memory each time it is shown; a sent one stays as it was prepared, sealed, in
//! `outgoing/`. [`Media::open_full`] gives the bytes, never a path. What a build before this
//! one left in the clear is dealt with once ([`seal_leftovers`]). An attachment from a build
//! that did not seal them (no key in its message) is not cached: it is downloaded each time
//! through the profile's `tmp/`, whose files are deleted as soon as they are read (and, if a
//! crash left any, at the next open).

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};
use tidings_proto::{bounded::Text, codec, ErrorCode, ErrorInfo, EventContent, Seq};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

pub(crate) mod at_rest;

pub use at_rest::Sealing;
pub(crate) use at_rest::{temporary, SEALED_EXTENSION};

use crate::{
    apply::MessageBody, e2ee::file::FileError, endpoint::Endpoint, model::RoomKey, stamp::now_ms,
    Client, Error,
};

impl Client {
    /// Thumbnails and full files of messages (the media cache).
    pub fn media(&self) -> Media<'_> {
        Media { client: self }
    }
}

/// See [`Client::media`].
#[derive(Debug, Clone, Copy)]
pub struct Media<'a> {
    client: &'a Client,
}

impl Media<'_> {
    /// The thumbnail (JPEG bytes) of the photo, or the poster of the video, in message `seq`
    /// of `room`, from the store (no network).
    pub async fn thumbnail(&self, room: RoomKey, seq: Seq) -> Result<Vec<u8>, Error> {
        let (body, _) = self.client.db(move |c| attachment_of(c, room, seq)).await?;
        match (body.image, body.video) {
            (Some(image), _) => Ok(image.thumbnail.into_vec()),
            (None, Some(video)) => Ok(video.poster.into_vec()),
            (None, None) => Err(Error::NoSuchImage { room, seq }),
        }
    }

    /// The full photo, file or video of message `seq` in `room`, opened from the profile's
    /// media cache, downloaded now if it is not there (the only call that waits on the network
    /// for media; an interrupted download continues where it stopped). The bytes are in the
    /// clear only in memory: the cache keeps them sealed.
    pub async fn open_full(&self, room: RoomKey, seq: Seq) -> Result<Vec<u8>, Error> {
        let (body, media) = self.client.db(move |c| attachment_of(c, room, seq)).await?;
        let media = media.ok_or(Error::NoSuchImage { room, seq })?;
        let Some(sealing) = Sealing::of_body(&body)? else {
            return self.unsealed(media).await;
        };
        let now = now_ms();
        if let Some(path) = self.client.db(move |c| cached(c, media, now)).await? {
            let path = self.client.dir().join(path);
            if path.exists() {
                match open_sealed(sealing.clone(), path.clone()).await {
                    Ok(bytes) => return Ok(bytes),
                    // Damaged on this disk: fetched again.
                    Err(e) => tracing::warn!(error = %e, "A cached attachment did not open."),
                }
                let _ = tokio::fs::remove_file(&path).await;
            }
        }
        let account = self.client.require_account().await?;
        let name = format!("cache/{media}.{SEALED_EXTENSION}");
        let io = |e: std::io::Error| Error::Io(e.to_string());
        tokio::fs::create_dir_all(self.client.dir().join("cache")).await.map_err(io)?;
        let dest = self.client.dir().join(&name);
        let size = sealing.cipher().sealed_len();
        download(&account.endpoint()?, &account.token, media, &dest, Some(size)).await?;
        let bytes = match open_sealed(sealing, dest.clone()).await {
            Ok(bytes) => bytes,
            Err(e) => {
                // Nothing of it is kept: opening it again downloads it again.
                let _ = tokio::fs::remove_file(&dest).await;
                return Err(e);
            }
        };
        let evicted = self
            .client
            .db(move |c| remember(c, media, &name, size, now_ms(), CACHE_LIMIT_BYTES))
            .await?;
        for old in evicted {
            let _ = tokio::fs::remove_file(self.client.dir().join(old)).await;
        }
        Ok(bytes)
    }

    /// An attachment its sender did not seal (a build before sealing): downloaded through
    /// `tmp/` each time, never cached in the clear.
    async fn unsealed(&self, media: i64) -> Result<Vec<u8>, Error> {
        let account = self.client.require_account().await?;
        let temporary = temporary(self.client.dir(), "download").await?;
        let downloaded =
            download(&account.endpoint()?, &account.token, media, &temporary, None).await;
        let bytes = match downloaded {
            Ok(_) => tokio::fs::read(&temporary).await.map_err(|e| Error::Io(e.to_string())),
            Err(e) => Err(e),
        };
        let _ = tokio::fs::remove_file(&temporary).await;
        let _ = tokio::fs::remove_file(temporary.with_extension("part")).await;
        bytes
    }
}

/// The body of message `seq` in `room`, if it has an attachment, and its media id.
fn attachment_of(
    c: &Connection,
    room: RoomKey,
    seq: Seq,
) -> Result<(MessageBody, Option<i64>), Error> {
    let content: Option<Vec<u8>> = c
        .prepare_cached("SELECT content FROM events WHERE room_id = ?1 AND seq = ?2")?
        .query_row(params![room, seq as i64], |r| r.get(0))
        .optional()?;
    let missing = || Error::NoSuchImage { room, seq };
    let content: EventContent =
        codec::decode(&content.ok_or_else(missing)?).map_err(|_| missing())?;
    let EventContent::Message { body, attachments } = content else { return Err(missing()) };
    let body = crate::apply::decode_body(body.as_bytes()).ok_or_else(missing)?;
    if body.image.is_none() && body.file.is_none() {
        return Err(missing());
    }
    Ok((body, attachments.iter().next().map(|m| m.0)))
}

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
        .and_then(|b| b.get("code")?.as_str())
        .map(ErrorCode::from_name)
        .unwrap_or(fallback);
    let message = body
        .as_ref()
        .and_then(|b| b.get("message")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("HTTP {status}"));
    info(code, message)
}

/// Opens the sealed file at `path` in memory (on a blocking thread): all of it must open
/// and match its digest.
async fn open_sealed(sealing: Sealing, path: PathBuf) -> Result<Vec<u8>, Error> {
    let opened = tokio::task::spawn_blocking(move || {
        let mut input = std::io::BufReader::new(std::fs::File::open(&path)?);
        let mut output = Vec::with_capacity(usize::try_from(sealing.len).unwrap_or(0));
        sealing.cipher().open_all(&sealing.digest, &mut input, &mut output)?;
        Ok::<_, FileError>(output)
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?;
    Ok(opened?)
}

/// Bytes per chunk of a resumable upload: what an interruption can cost at most.
pub const CHUNK_BYTES: u64 = 4 * 1024 * 1024;

/// Uploads the file at `path` through the server's resumable uploads, continuing `session`
/// (an upload opened earlier, maybe by a process that was killed) where the server stands.
/// With a `sealing`, what goes up is the file sealed with it: the file as it is when it is
/// kept sealed (`.sealed`, as [`crate::attachments`] prepares them), else each chunk sealed
/// as it is read (the same bytes at every attempt). `opened` is called with a new session's id before
/// any byte is sent, so the caller can persist it. Returns the media id and the size of the
/// local file. A network failure is `internal` (the outbox retries it with backoff); the
/// server's refusals keep their codes.
pub async fn upload(
    server: &Endpoint,
    token: &str,
    path: &Path,
    sealing: Option<Sealing>,
    mut session: Option<String>,
    mut opened: impl FnMut(&str) -> Result<(), Error>,
) -> Result<(i64, u64), ErrorInfo> {
    let base = server.http_url("/v1/uploads");
    let http = server.http().map_err(|e| info(ErrorCode::Internal, e.to_string()))?;
    let io =
        |e: std::io::Error| info(ErrorCode::InvalidInput, format!("the file to send is gone: {e}"));
    // A refused certificate is said in words (the outbox retries it: a renewed certificate
    // or a fixed clock cures it), never as a plain connection.
    let net = |e: reqwest::Error| match server.http_failure(&e) {
        Some(tls) => info(ErrorCode::Internal, tls.to_string()),
        None => info(ErrorCode::Internal, format!("upload failed: {e}")),
    };
    let local = tokio::fs::metadata(path).await.map_err(io)?.len();
    let size = sealing.as_ref().map_or(local, |s| s.cipher().sealed_len());
    let sealed_at_rest = path.extension().is_some_and(|e| e == SEALED_EXTENSION);
    let sealing = sealing.filter(|_| !sealed_at_rest);
    let mut file = tokio::fs::File::open(path).await.map_err(io)?;
    loop {
        let id = match session.take() {
            Some(id) => id,
            None => {
                let response = http
                    .post(&base)
                    .bearer_auth(token)
                    .header("upload-length", size.to_string())
                    .send()
                    .await
                    .map_err(net)?;
                let answer = json_answer(response).await?;
                let id = answer
                    .get("upload")
                    .and_then(serde_json::Value::as_str)
                    .ok_or_else(|| info(ErrorCode::Internal, "no upload id in the answer"))?
                    .to_owned();
                opened(&id).map_err(|e| info(ErrorCode::Internal, e.to_string()))?;
                id
            }
        };
        let url = format!("{base}/{id}");
        let state = http.get(&url).bearer_auth(token).send().await.map_err(net)?;
        if state.status().as_u16() == 404 {
            // The server no longer has it (expired or lost): start a new one.
            continue;
        }
        let mut answer = json_answer(state).await?;
        loop {
            if let Some((media, _)) = media_of(&answer) {
                return Ok((media, local));
            }
            let offset = answer.get("received").and_then(serde_json::Value::as_u64).unwrap_or(0);
            let len = CHUNK_BYTES.min(size.saturating_sub(offset));
            let chunk = match &sealing {
                Some(sealing) => sealed_range(path, sealing, offset..offset + len).await?,
                None => {
                    let mut chunk = vec![0u8; len as usize];
                    file.seek(std::io::SeekFrom::Start(offset)).await.map_err(io)?;
                    file.read_exact(&mut chunk).await.map_err(io)?;
                    chunk
                }
            };
            let response = http
                .patch(&url)
                .bearer_auth(token)
                .header("upload-offset", offset.to_string())
                .body(chunk)
                .send()
                .await
                .map_err(net)?;
            answer = json_answer(response).await?;
        }
    }
}

/// The bytes `range` of the file at `path` sealed with `sealing` (on a blocking thread).
async fn sealed_range(
    path: &Path,
    sealing: &Sealing,
    range: std::ops::Range<u64>,
) -> Result<Vec<u8>, ErrorInfo> {
    let (path, cipher) = (path.to_owned(), sealing.cipher());
    let sealed = tokio::task::spawn_blocking(move || {
        let mut file = std::io::BufReader::new(std::fs::File::open(path)?);
        cipher.seal_range(&mut file, range)
    })
    .await
    .map_err(|e| info(ErrorCode::Internal, e.to_string()))?;
    sealed.map_err(|e| info(ErrorCode::InvalidInput, format!("the file to send is gone: {e}")))
}

fn media_of(answer: &serde_json::Value) -> Option<(i64, u64)> {
    let media = answer.get("media").and_then(serde_json::Value::as_i64)?;
    let size = answer.get("size").and_then(serde_json::Value::as_u64)?;
    Some((media, size))
}

/// The JSON body of a successful answer, or the server's error.
async fn json_answer(response: reqwest::Response) -> Result<serde_json::Value, ErrorInfo> {
    if !response.status().is_success() {
        return Err(http_error(response).await);
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| info(ErrorCode::Internal, format!("the answer was cut: {e}")))?;
    serde_json::from_slice(&body).map_err(|e| info(ErrorCode::Internal, format!("bad answer: {e}")))
}

/// Downloads media `id` to `dest`, streaming to disk through a `.part` file that a later call
/// continues (`Range`) if this one is interrupted; renamed to `dest` when complete. With a
/// `limit`, more bytes than that are refused as damaged (and the part deleted): a sealed
/// file's size is known from its message.
pub async fn download(
    server: &Endpoint,
    token: &str,
    id: i64,
    dest: &Path,
    limit: Option<u64>,
) -> Result<u64, Error> {
    let part = dest.with_extension("part");
    let io = |e: std::io::Error| Error::Io(e.to_string());
    let net = |e: reqwest::Error| match server.http_failure(&e) {
        Some(tls) => Error::Tls(tls),
        None => Error::Network(e.to_string()),
    };
    let have = tokio::fs::metadata(&part).await.map(|m| m.len()).unwrap_or(0);
    let mut request =
        server.http()?.get(server.http_url(&format!("/v1/media/{id}"))).bearer_auth(token);
    if have > 0 {
        request = request.header("range", format!("bytes={have}-"));
    }
    let mut response = request.send().await.map_err(net)?;
    if !response.status().is_success() {
        return Err(Error::Server(http_error(response).await));
    }
    let resumed = response.status().as_u16() == 206;
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(resumed)
        .write(true)
        .truncate(!resumed)
        .open(&part)
        .await
        .map_err(io)?;
    let mut size = if resumed { have } else { 0 };
    while let Some(chunk) = response.chunk().await.map_err(net)? {
        size += chunk.len() as u64;
        if limit.is_some_and(|limit| size > limit) {
            drop(file);
            let _ = tokio::fs::remove_file(&part).await;
            return Err(FileError::Damaged.into());
        }
        file.write_all(&chunk).await.map_err(io)?;
    }
    file.sync_all().await.map_err(io)?;
    tokio::fs::rename(&part, dest).await.map_err(io)?;
    Ok(size)
}

/// Remembers the resumable upload opened for outbox item `item`.
pub(crate) fn set_upload_session(c: &Connection, item: i64, session: &str) -> Result<(), Error> {
    c.execute("UPDATE outbox SET upload_session = ?2 WHERE id = ?1", params![item, session])?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use tidings_proto::{
        bounded::{Blob, List},
        Body, Request, RequestId, RoomId,
    };

    use super::{at_rest::seal_leftovers, *};
    use crate::{
        apply::{FileBody, SealedFile},
        e2ee::file::{FileCipher, FileKey},
    };

    /// A profile as a build before sealing at rest left it: a cached attachment and a stray
    /// file in `cache/`, and a file waiting to be uploaded, all in the clear.
    #[test]
    fn what_an_earlier_build_left_in_the_clear_is_sealed_or_deleted_once() {
        let dir = tempfile::tempdir().unwrap();
        let at = |p: &str| dir.path().join(p);
        let mut c = crate::store::open(&at("tidings.sqlite"), None).unwrap();
        std::fs::create_dir_all(at("cache")).unwrap();
        std::fs::create_dir_all(at("outgoing")).unwrap();
        std::fs::write(at("cache/5.jpg"), b"a cached photo").unwrap();
        std::fs::write(at("cache/6.opening"), b"half of another").unwrap();
        remember(&c, 5, "cache/5.jpg", 14, 1, CACHE_LIMIT_BYTES).unwrap();
        let plain = b"a file waiting to go up".repeat(5_000);
        let key = FileKey::random();
        let cipher = FileCipher::new(&key, plain.len() as u64);
        let digest = cipher.digest(&mut plain.as_slice()).unwrap();
        let body = MessageBody {
            file: Some(FileBody {
                name: "f.txt".into(),
                size: plain.len() as u64,
                mime: "text/plain".into(),
            }),
            sealed: Some(SealedFile {
                key: Blob::new(key.as_bytes().to_vec()).unwrap(),
                sha256: Blob::new(digest.to_vec()).unwrap(),
            }),
            ..MessageBody::text("")
        };
        let body = Body::new(codec::encode(&body).unwrap()).unwrap();
        let request = RequestId([7; 16]);
        let send = Request::Send {
            request,
            room: RoomId(1),
            body,
            attachments: List::empty(),
            redacts: None,
        };
        std::fs::write(at("outgoing/x.txt"), &plain).unwrap();
        c.execute(
            "INSERT INTO outbox (request_id, operation, state, created_ms, upload_path)
             VALUES (?1, ?2, 'pending', 1, 'outgoing/x.txt')",
            params![&request.0[..], codec::encode(&send).unwrap()],
        )
        .unwrap();

        seal_leftovers(&mut c, dir.path()).unwrap();

        // The cache: emptied, its index too (opening downloads again, sealed).
        assert_eq!(std::fs::read_dir(at("cache")).unwrap().count(), 0);
        assert_eq!(cached(&c, 5, 2).unwrap(), None);
        // The waiting file: sealed with its message's key, the very bytes an upload sends.
        let path: String = c.query_row("SELECT upload_path FROM outbox", [], |r| r.get(0)).unwrap();
        assert_eq!(path, "outgoing/x.txt.sealed");
        assert!(!at("outgoing/x.txt").exists(), "no copy in the clear");
        let sealed = std::fs::read(at(&path)).unwrap();
        let whole = cipher.seal_range(&mut std::io::Cursor::new(&plain), 0..u64::MAX).unwrap();
        assert_eq!(sealed, whole);

        // Once: what comes later is not this step's (the row is gone).
        std::fs::write(at("cache/7.part"), b"a download going on").unwrap();
        seal_leftovers(&mut c, dir.path()).unwrap();
        assert!(at("cache/7.part").exists());
    }
}
