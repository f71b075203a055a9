//! The media cache at rest (docs/storage.md): every attachment file of the profile is kept
//! sealed ([`Sealing`], with the key its message carries), and what is in the clear for a
//! moment lives in `tmp/`. Apart from [`crate::media`]'s handle, so that opening a profile
//! ([`crate::client`]) can clean up without depending on the handle that depends on it.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection};
use tidings_proto::codec;

use crate::{
    apply::MessageBody,
    e2ee::file::{FileCipher, FileError, FileKey},
    Error,
};

/// The extension of a sealed file of the profile (a cached attachment, a file to upload).
pub(crate) const SEALED_EXTENSION: &str = "sealed";

/// The profile's folder for files in the clear for a moment (a video being stripped of its
/// metadata, an unsealed download): each is deleted once read; what a crash left is
/// deleted at the next open ([`seal_leftovers`]).
const TMP_DIR: &str = "tmp";

/// A fresh path in the profile's `tmp/` (made if needed).
pub(crate) async fn temporary(dir: &Path, what: &str) -> Result<PathBuf, Error> {
    let tmp = dir.join(TMP_DIR);
    tokio::fs::create_dir_all(&tmp).await.map_err(|e| Error::Io(e.to_string()))?;
    Ok(tmp.join(format!("{what}-{}", uuid::Uuid::new_v4().simple())))
}

/// Leaves no attachment in the clear in the profile in `dir`, at open (blocking):
/// - files of `tmp/` that a crash left behind (an hour old: another process using the
///   profile may be writing a new one);
/// - once, after an upgrade from a build that kept them in the clear (the
///   `clear_leftovers` row the migration to this build added): every cached file not
///   sealed is deleted (opening it downloads it sealed), files waiting to be uploaded are
///   sealed with their messages' keys, and the rest of `cache/` is emptied.
pub(crate) fn seal_leftovers(c: &mut Connection, dir: &Path) -> Result<(), Error> {
    if let Ok(entries) = std::fs::read_dir(dir.join(TMP_DIR)) {
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3_600);
        for entry in entries.flatten() {
            let old = entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t < hour_ago);
            if old {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let pending: bool =
        c.query_row("SELECT EXISTS (SELECT 1 FROM clear_leftovers)", [], |r| r.get(0))?;
    if !pending {
        return Ok(());
    }
    let suffix = format!(".{SEALED_EXTENSION}");
    let clear: Vec<(i64, String)> = c
        .prepare("SELECT media_id, path FROM media_cache")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<(i64, String)>, _>>()?
        .into_iter()
        .filter(|(_, path)| !path.ends_with(&suffix))
        .collect();
    for (media, path) in clear {
        let _ = std::fs::remove_file(dir.join(&path));
        c.execute("DELETE FROM media_cache WHERE media_id = ?1", [media])?;
    }
    type Waiting = (i64, String, Vec<u8>);
    let waiting: Vec<Waiting> = c
        .prepare(
            "SELECT id, upload_path, operation FROM outbox
             WHERE upload_path IS NOT NULL AND upload_media IS NULL",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for (item, path, operation) in waiting {
        if path.ends_with(&suffix) {
            continue;
        }
        let Ok(tidings_proto::Request::Send { body, .. }) = codec::decode(&operation) else {
            continue;
        };
        // Queued by a build before sealing: its message has no key; it goes as it is.
        let Some(sealing) = Sealing::of(body.as_bytes())? else { continue };
        let sealed_path = format!("{path}{suffix}");
        let sealed = (|| {
            let mut plain = std::io::BufReader::new(std::fs::File::open(dir.join(&path))?);
            let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join(&sealed_path))?);
            let digest = sealing.cipher().seal_all(&mut plain, &mut out)?;
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            Ok::<_, FileError>(digest)
        })();
        match sealed {
            // The same bytes the upload sealed as it read: a resumed upload continues.
            Ok(digest) if digest.as_slice() == sealing.digest.as_slice() => {
                c.execute(
                    "UPDATE outbox SET upload_path = ?2 WHERE id = ?1",
                    params![item, sealed_path],
                )?;
                let _ = std::fs::remove_file(dir.join(&path));
            }
            // Gone or changed: the upload will fail and say so, as it would have.
            _ => {
                let _ = std::fs::remove_file(dir.join(&sealed_path));
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir.join("cache")) {
        for entry in entries.flatten() {
            if !entry.file_name().to_string_lossy().ends_with(&suffix) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    c.execute("DELETE FROM clear_leftovers", [])?;
    tracing::info!("Attachments left in the clear by an earlier build were sealed or deleted.");
    Ok(())
}

/// How an attachment is sealed: its key, plaintext length and digest, as its message states
/// ([`crate::e2ee::file`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealing {
    key: FileKey,
    pub(crate) len: u64,
    /// SHA-256 of the sealed file (what a download is checked against).
    pub(crate) digest: Vec<u8>,
}

impl Sealing {
    /// The sealing of a file of `len` plaintext bytes under `key`, whose sealed bytes have
    /// SHA-256 `digest`.
    pub(crate) fn new(key: FileKey, len: u64, digest: Vec<u8>) -> Self {
        Self { key, len, digest }
    }

    /// The sealing of the attachment of message body `body` (encoded), if it is sealed.
    pub(crate) fn of(body: &[u8]) -> Result<Option<Self>, Error> {
        match crate::apply::decode_body(body) {
            Some(body) => Self::of_body(&body),
            None => Ok(None),
        }
    }

    pub(crate) fn of_body(body: &MessageBody) -> Result<Option<Self>, Error> {
        let Some(sealed) = &body.sealed else { return Ok(None) };
        let len = match (&body.image, &body.file) {
            (Some(image), _) => image.size,
            (None, Some(file)) => file.size,
            (None, None) => return Ok(None),
        };
        let key = FileKey::from_bytes(sealed.key.as_bytes())?;
        Ok(Some(Self { key, len, digest: sealed.sha256.as_bytes().to_vec() }))
    }

    pub(crate) fn cipher(&self) -> FileCipher {
        FileCipher::new(&self.key, self.len)
    }
}
