//! Attachments made ready to send: a photo or any file becomes a message body (with its
//! thumbnail, or a video's poster and duration) and a file in the profile's `outgoing/`
//! folder, which the send queue uploads first and which survives restarts. Each file gets a
//! key of its own, carried in its message, and is written to `outgoing/` already sealed with
//! it ([`crate::e2ee::file`]): what is uploaded, and all the profile keeps of it — no
//! plaintext copy stays in the profile (docs/storage.md). The key is only in the message, in
//! the encrypted database.
//!
//! This is the file and ffmpeg I/O of sending; the decoding rules are [`crate::photo`] and
//! [`crate::video`]. Nothing here touches the database or the network.

use std::{
    io::Read,
    path::{Path, PathBuf},
};

use tidings_proto::bounded::{Blob, TooLong};

use crate::{
    apply::{FileBody, ImageBody, MessageBody, SealedFile, VideoBody},
    e2ee::file::{FileCipher, FileError, FileKey},
    Error,
};

/// Largest file [`file`] accepts (the server may allow less; its refusal is then the send
/// queue item's reason).
pub const MAX_FILE_BYTES: u64 = 100 * 1024 * 1024;

/// Prepares a photo (decoded within limits, oriented, stripped, downscaled, thumbnailed, on
/// a bounded pool of blocking threads) into `dir/outgoing/`: the message body and the file,
/// relative to `dir`. A file that cannot be a photo is refused with [`Error::Photo`].
pub async fn photo(dir: &Path, path: &Path, caption: &str) -> Result<(MessageBody, String), Error> {
    let prepared = crate::photo::prepare_file(path, crate::photo::Limits::default()).await?;
    let thumbnail = tidings_proto::bounded::Blob::new(prepared.thumbnail.bytes)
        .map_err(|e| Error::Internal(format!("thumbnail: {e}")))?;
    let image = ImageBody {
        mime: prepared.full.mime.to_owned(),
        width: prepared.full.width,
        height: prepared.full.height,
        size: prepared.full.bytes.len() as u64,
        thumbnail,
        thumbnail_width: prepared.thumbnail.width,
        thumbnail_height: prepared.thumbnail.height,
        placeholder: prepared.placeholder,
    };
    let name = outgoing_name(dir).await?;
    let (bytes, len) = (prepared.full.bytes, image.size);
    let sealed = Some(seal(move || Ok(std::io::Cursor::new(bytes)), len, dir.join(&name)).await?);
    Ok((MessageBody { image: Some(image), sealed, ..MessageBody::text(caption) }, name))
}

/// Prepares any file (at most [`MAX_FILE_BYTES`]) with its name, size and type. A video
/// (MP4, WebM, QuickTime whose content is what its name says) also gets its duration,
/// dimensions and poster frame (through ffmpeg), so the receiver shows a preview first, and
/// is sent without its container metadata (location, device); a file whose content does not
/// match the image or video type its name claims goes as a plain file, unchanged. The copy
/// in `outgoing/` is sealed as it is written, so the sent version cannot change.
pub async fn file(dir: &Path, path: &Path) -> Result<(MessageBody, String), Error> {
    let io = |e: std::io::Error| Error::Io(format!("{}: {e}", path.display()));
    let size = tokio::fs::metadata(path).await.map_err(io)?.len();
    if size > MAX_FILE_BYTES {
        return Err(Error::Invalid(format!(
            "the file is {size} bytes; files are at most {MAX_FILE_BYTES} bytes"
        )));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "file".to_owned());
    let mut head = vec![0u8; 64];
    let mut opened = tokio::fs::File::open(path).await.map_err(io)?;
    let n = tokio::io::AsyncReadExt::read(&mut opened, &mut head).await.map_err(io)?;
    head.truncate(n);
    drop(opened);
    let mime = crate::video::checked_mime(&name, &head);
    let video = if mime.starts_with("video/") { video(path).await? } else { None };
    let stored = outgoing_name(dir).await?;
    let dest = dir.join(&stored);
    // A video is remuxed without its metadata (phones record where it was shot), into a
    // temporary file of the profile's `tmp/` that is deleted once sealed.
    let stripped = match &video {
        Some(_) => {
            let temporary = crate::media::temporary(dir, "video").await?;
            match crate::video::strip_metadata(path, &temporary, mime).await {
                Ok(()) => Some(temporary),
                Err(e) => {
                    tracing::info!(error = %e, "Sending a video with its metadata.");
                    let _ = tokio::fs::remove_file(&temporary).await;
                    None
                }
            }
        }
        None => None,
    };
    let source = stripped.clone().unwrap_or_else(|| path.to_owned());
    let size = tokio::fs::metadata(&source).await.map_err(io)?.len();
    let open = move || std::fs::File::open(source).map(std::io::BufReader::new);
    let sealed = seal(open, size, dest).await;
    if let Some(temporary) = stripped {
        let _ = tokio::fs::remove_file(temporary).await;
    }
    let file = FileBody { name, size, mime: mime.to_owned() };
    Ok((
        MessageBody { file: Some(file), video, sealed: Some(sealed?), ..MessageBody::text("") },
        stored,
    ))
}

/// Seals the `len` bytes of the prepared file that `open` reads into `dest` under a fresh
/// key (on a blocking thread, streaming), synced: what its message carries — the key and the
/// digest of the sealed bytes — so that the queue uploads it as it is and receivers can open
/// it ([`crate::e2ee::file`]).
async fn seal<R: Read>(
    open: impl FnOnce() -> std::io::Result<R> + Send + 'static,
    len: u64,
    dest: PathBuf,
) -> Result<SealedFile, Error> {
    let sealed = tokio::task::spawn_blocking(move || {
        let key = FileKey::random();
        let written = (|| {
            let mut plain = open()?;
            let mut out = std::io::BufWriter::new(std::fs::File::create(&dest)?);
            let digest = FileCipher::new(&key, len).seal_all(&mut plain, &mut out)?;
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            Ok::<_, FileError>(digest)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&dest);
        }
        written.map(|digest| (key, digest))
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?;
    let (key, digest) = sealed?;
    let internal = |e: TooLong| Error::Internal(e.to_string());
    Ok(SealedFile {
        key: Blob::new(key.as_bytes().to_vec()).map_err(internal)?,
        sha256: Blob::new(digest.to_vec()).map_err(internal)?,
    })
}

/// A video's preview, or `None` (sent as a plain file) when ffmpeg cannot make one.
async fn video(path: &Path) -> Result<Option<VideoBody>, Error> {
    match crate::video::probe(path).await {
        Ok(info) => Ok(Some(VideoBody {
            duration_ms: info.duration_ms,
            width: info.width,
            height: info.height,
            poster: tidings_proto::bounded::Blob::new(info.poster.bytes)
                .map_err(|e| Error::Internal(format!("poster: {e}")))?,
            poster_width: info.poster.width,
            poster_height: info.poster.height,
        })),
        Err(e) => {
            tracing::info!(error = %e, "Sending a video without a preview.");
            Ok(None)
        }
    }
}

/// A fresh name in `dir/outgoing/` (made if needed), relative to `dir`: a sealed file.
async fn outgoing_name(dir: &Path) -> Result<String, Error> {
    tokio::fs::create_dir_all(dir.join("outgoing")).await.map_err(|e| Error::Io(e.to_string()))?;
    let id = uuid::Uuid::new_v4().simple();
    Ok(format!("outgoing/{id}.{}", crate::media::SEALED_EXTENSION))
}
