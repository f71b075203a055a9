//! History for a linked device (issue 17; docs/e2ee.md, "History for a linked device";
//! docs/protocol.md, "Linking a device"): the device that shows a link code may send, if the
//! person chooses, an archive of the past chats it has opened, so that the new device shows
//! them too — MLS gives a device that joins later no keys for what was sent before.
//!
//! **Sending** ([`crate::sessions::Sessions::offer_link_with_history`]): the archive is built
//! from this profile's store — per room, the plaintext of every message it opened (with the
//! attachment keys inside, so photos open), its name, and how far it is synced — newest
//! first across rooms until [`MAX_ARCHIVE_BYTES`] compressed; deflated; sealed like an
//! attachment ([`crate::e2ee::file`], a fresh key) and uploaded through the resumable
//! uploads. Its media id, length, key and digest go inside the link offer's sealed payload
//! ([`crate::link`]): the server can neither read nor replace it. The size is shown before
//! the person chooses ([`History::size`], an upper bound from the store) and after
//! ([`HistorySize`] in the offer).
//!
//! **Importing** ([`History::import`]): the new device keeps the reference until it has
//! caught up (the CLI's `sync`, the live session once online, in the background), then
//! downloads at most the sealed length, opens it whole (digest and every chunk), and fills in,
//! in one transaction, the events it could not open itself: same room (by server id, and
//! only rooms it is a member of), same seq, still sealed here. The log's own sender, time and
//! media ids stay; only the plaintext comes from the archive. A naming the sending device
//! passed over (a group's name told to newcomers) is passed over here too, and a rename shows
//! as one. Nothing it opened itself is touched, so importing twice changes nothing. A damaged,
//! oversized or malformed archive is a typed [`HistoryError`] and the transaction is rolled
//! back: nothing already saved is lost.
//!
//! The archive format (inside the deflate stream; big-endian integers):
//!
//! ```text
//! "tidings history\0" 0x01                       magic and version
//! 0x01 room:i64 through:u64 name_len:u8 name     a room
//! 0x03 request:16 bytes                          a naming the sending device sent whose
//!                                                event its log has not brought back yet
//!                                                (rooms and these come before any event)
//! 0x02 room_index:u32 seq:u64 len:u32 body       an event: the plaintext message body, or
//!                                                len = 0xFFFFFFFF: the sender has the event
//!                                                but no plaintext for it
//! 0x00 from:u64 × rooms                          the end: per room, the seq at or below
//!                                                which the archive describes nothing
//! ```
//!
//! Per room, the archive describes every event the sending device stored with a seq in
//! `(from, …]`; a seq in `(from, through]` it does not list was passed over there (a naming,
//! a handshake), and so was a naming it sent itself after `through` (listed by request id:
//! its own echo of the log comes back only with the next catch-up).

use std::{
    collections::{BTreeSet, BinaryHeap, HashSet, VecDeque},
    io::Write,
    path::PathBuf,
    sync::Mutex,
};

use rusqlite::{params, Connection, OptionalExtension};
use tidings_proto::{
    codec,
    limits::{MAX_JOIN_ROOMS, MAX_ROOM_NAME_BYTES},
    EventContent,
};

mod archive;

use archive::{ArchivedRoom, Reader, Record, Writer, MAX_QUIET};

use crate::{
    apply::{self, MessageBody},
    e2ee::file::{self, FileCipher, FileError, FileKey, KEY_BYTES},
    media,
    model::{Event, RoomKey},
    Client, Error,
};

/// The largest archive a device sends or takes: its deflated bytes, before sealing (sealed,
/// a little more: [`file::sealed_len`]). What does not fit is the oldest history.
pub const MAX_ARCHIVE_BYTES: u64 = 64 * 1024 * 1024;

/// The most an archive may inflate to (deflate can compress a repetitive text a thousandfold:
/// a reader stops here).
pub const MAX_INFLATED_BYTES: u64 = 1024 * 1024 * 1024;

/// The bounds an archive is written and read within (smaller in tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Deflated bytes.
    pub archive: u64,
    /// Inflated bytes.
    pub inflated: u64,
}

/// The protocol's bounds.
pub(crate) const LIMITS: Limits =
    Limits { archive: MAX_ARCHIVE_BYTES, inflated: MAX_INFLATED_BYTES };

/// Why an archive was not imported. Nothing of it was kept; what the device had stays.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// The archive says it is, or inflates to, more than a device takes.
    #[error("the history archive is larger than the {max} bytes a device takes")]
    TooLarge {
        /// The bound it passed.
        max: u64,
    },
    /// The bytes on the server are not what the link offer sealed: damaged, cut, or replaced.
    #[error(
        "the history archive does not match its link code (damaged or replaced on the server)"
    )]
    Damaged,
    /// The server no longer has the archive (it keeps unsent media a week).
    #[error("the history archive is no longer on the server")]
    Gone,
    /// It opened, but is not an archive this version reads.
    #[error("the history archive is not one this version reads: {0}")]
    Malformed(&'static str),
}

/// The size of a history archive, shown to the person who chooses to send it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistorySize {
    /// Messages in it.
    pub messages: u64,
    /// Bytes it takes on the network, sealed.
    pub bytes: u64,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    /// Messages this device now shows that it could not open.
    pub messages: u64,
    /// Namings the sending device passed over, passed over here too.
    pub passed_over: u64,
    /// The rooms whose timelines changed.
    pub rooms: Vec<RoomKey>,
    /// Whether every room of the archive was caught up past what the archive describes; if
    /// not, the archive stays pending and is imported again after the next catch-up.
    pub complete: bool,
}

/// Where an archive is and how it opens: sealed in the link offer
/// ([`crate::link`]). Never printed whole: it holds a key.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct HistoryRef {
    media: i64,
    len: u64,
    key: FileKey,
    digest: [u8; KEY_BYTES],
}

impl std::fmt::Debug for HistoryRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryRef")
            .field("media", &self.media)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl HistoryRef {
    /// Its bytes in the link offer's payload.
    pub(crate) const BYTES: usize = 8 + 8 + KEY_BYTES + KEY_BYTES;

    /// Media id ‖ length ‖ key ‖ SHA-256 of the sealed bytes.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::BYTES);
        out.extend_from_slice(&self.media.to_be_bytes());
        out.extend_from_slice(&self.len.to_be_bytes());
        out.extend_from_slice(self.key.as_bytes());
        out.extend_from_slice(&self.digest);
        out
    }

    /// The reference in `bytes`, if they are one.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != Self::BYTES {
            return None;
        }
        let (media, rest) = bytes.split_at(8);
        let (len, rest) = rest.split_at(8);
        let (key, digest) = rest.split_at(KEY_BYTES);
        Some(Self {
            media: i64::from_be_bytes(media.try_into().ok()?),
            len: u64::from_be_bytes(len.try_into().ok()?),
            key: FileKey::from_bytes(key).ok()?,
            digest: digest.try_into().ok()?,
        })
    }

    fn cipher(&self) -> FileCipher {
        FileCipher::new(&self.key, self.len)
    }

    #[cfg(test)]
    pub(crate) fn for_tests(media: i64, len: u64) -> Self {
        Self { media, len, key: FileKey::random(), digest: [3; KEY_BYTES] }
    }
}

impl Client {
    /// History for linked devices: its size here, and importing one sent with a link.
    pub fn history(&self) -> History<'_> {
        History { client: self }
    }
}

/// See [`Client::history`].
#[derive(Debug, Clone, Copy)]
pub struct History<'a> {
    client: &'a Client,
}

impl History<'_> {
    /// At most how large an archive of this profile's chats would be, and its messages: what
    /// to show before the person chooses to send it with a link code (read from the store,
    /// without building it; deflating makes the real one smaller, text much smaller).
    pub async fn size(&self) -> Result<HistorySize, Error> {
        let (messages, bytes): (i64, i64) = self
            .client
            .db(|c| {
                Ok(c.query_row(
                    "SELECT count(*), coalesce(sum(length(e.content)), 0)
                     FROM events e JOIN rooms r ON r.id = e.room_id
                     WHERE e.seq IS NOT NULL AND e.is_message = 1
                       AND r.server_id IS NOT NULL AND r.member = 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?)
            })
            .await?;
        let raw = (bytes.max(0) as u64).min(MAX_ARCHIVE_BYTES);
        Ok(HistorySize { messages: messages.max(0) as u64, bytes: file::sealed_len(raw) })
    }

    /// The sealed size of an archive that came with this device's link and is not imported
    /// yet, if there is one.
    pub async fn pending(&self) -> Result<Option<u64>, Error> {
        let Some(account) = self.client.account().await? else { return Ok(None) };
        let pending = self.client.db(move |c| pending(c, account.user_id)).await?;
        Ok(pending.map(|p| file::sealed_len(p.len)))
    }

    /// Imports the archive that came with this device's link, if one is pending: downloads
    /// it, opens it, and shows the past messages it holds (see the module's documentation).
    /// Run it once caught up (the live session does, in the background). A network failure
    /// leaves it pending; an archive that is damaged, gone, too large or malformed is
    /// [`Error::History`] and forgotten, and nothing this device had is lost.
    pub async fn import(&self) -> Result<Option<Imported>, Error> {
        import(self.client, LIMITS).await
    }
}

/// Profiles importing now (one import per profile at a time in this process).
static IMPORTING: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// Imports a pending archive in the background (the live session, once caught up): the
/// outcome is logged, and the timelines it filled announced.
pub(crate) fn import_later(client: &Client) {
    let client = client.clone();
    tokio::spawn(async move {
        let dir = client.dir().to_owned();
        if !IMPORTING.lock().is_ok_and(|mut running| running.insert(dir.clone())) {
            return;
        }
        match client.history().import().await {
            Ok(Some(imported)) => tracing::info!(
                messages = imported.messages,
                rooms = imported.rooms.len(),
                complete = imported.complete,
                "Imported the history sent with this device's link."
            ),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "The history sent with the link was not imported.")
            }
        }
        if let Ok(mut running) = IMPORTING.lock() {
            running.remove(&dir);
        }
    });
}

/// Remembers the archive that came with this device's link, for `user` (in the transaction
/// that keeps the identity).
pub(crate) fn keep(c: &Connection, user: i64, history: &HistoryRef) -> Result<(), Error> {
    c.execute(
        "INSERT OR REPLACE INTO link_history (id, user, media, len, key, sha256)
         VALUES (1, ?1, ?2, ?3, ?4, ?5)",
        params![
            user,
            history.media,
            history.len as i64,
            &history.key.as_bytes()[..],
            &history.digest[..]
        ],
    )?;
    Ok(())
}

/// The pending archive for `user`; one for another user (signed in since) is forgotten.
fn pending(c: &Connection, user: i64) -> Result<Option<HistoryRef>, Error> {
    let row = c
        .query_row("SELECT user, media, len, key, sha256 FROM link_history WHERE id = 1", [], |r| {
            let (key, digest): (Vec<u8>, Vec<u8>) = (r.get(3)?, r.get(4)?);
            let history = (|| {
                Some(HistoryRef {
                    media: r.get(1).ok()?,
                    len: u64::try_from(r.get::<_, i64>(2).ok()?).ok()?,
                    key: FileKey::from_bytes(&key).ok()?,
                    digest: digest.try_into().ok()?,
                })
            })();
            Ok((r.get::<_, i64>(0)?, history))
        })
        .optional()?;
    match row {
        None => Ok(None),
        Some((owner, Some(history))) if owner == user => Ok(Some(history)),
        Some(_) => {
            forget(c)?;
            Ok(None)
        }
    }
}

/// Forgets any pending archive (imported, refused, or a new sign-in).
pub(crate) fn forget(c: &Connection) -> Result<(), Error> {
    c.execute("DELETE FROM link_history", [])?;
    Ok(())
}

async fn import(client: &Client, limits: Limits) -> Result<Option<Imported>, Error> {
    let account = client.require_account().await?;
    let me = account.user_id;
    let Some(history) = client.db(move |c| pending(c, me)).await? else { return Ok(None) };
    let refused = |e: HistoryError| async move {
        client.db(|c| forget(c)).await?;
        Err::<Option<Imported>, Error>(e.into())
    };
    if history.len > limits.archive {
        return refused(HistoryError::TooLarge { max: limits.archive }).await;
    }
    let started = std::time::Instant::now();
    let folder = client.dir().join("history");
    tokio::fs::create_dir_all(&folder).await.map_err(|e| Error::Io(e.to_string()))?;
    let sealed = folder.join(format!("{}.sealed", history.media));
    let cipher = history.cipher();
    let endpoint = account.endpoint()?;
    let limit = Some(cipher.sealed_len());
    match media::download(&endpoint, &account.token, history.media, &sealed, limit).await {
        Ok(_) => {}
        Err(Error::AttachmentDamaged) => return refused(HistoryError::Damaged).await,
        Err(Error::Server(e)) if e.code == tidings_proto::ErrorCode::NotFound => {
            return refused(HistoryError::Gone).await
        }
        Err(e) => return Err(e),
    }
    let (digest, len) = (history.digest, history.len as usize);
    let opened = tokio::task::spawn_blocking(move || {
        let result = (|| {
            let mut input = std::io::BufReader::new(std::fs::File::open(&sealed)?);
            // The length was checked against the limit above: this allocation is bounded.
            let mut plain = Vec::with_capacity(len);
            cipher.open_all(&digest, &mut input, &mut plain)?;
            Ok::<_, FileError>(plain)
        })();
        let _ = std::fs::remove_file(&sealed);
        result
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?;
    let archive = match opened {
        Ok(archive) => archive,
        Err(FileError::Damaged) => return refused(HistoryError::Damaged).await,
        Err(e) => return Err(e.into()),
    };
    let downloaded = started.elapsed();
    let imported = client
        .db(move |c| {
            let tx = c.transaction()?;
            let imported = import_archive(&tx, me, &archive, limits)?;
            if imported.complete {
                forget(&tx)?;
            }
            tx.commit()?;
            Ok(imported)
        })
        .await;
    let imported = match imported {
        Ok(imported) => imported,
        Err(Error::History(e)) => return refused(e).await,
        Err(e) => return Err(e),
    };
    tracing::debug!(
        messages = imported.messages,
        download_ms = downloaded.as_millis() as u64,
        total_ms = started.elapsed().as_millis() as u64,
        "History imported."
    );
    let mut events = vec![Event::RoomsChanged];
    events.extend(imported.rooms.iter().map(|&room| Event::TimelineChanged { room }));
    client.emit(events);
    Ok(Some(imported))
}

/// Builds this profile's archive, seals it with a fresh key and uploads it: the reference
/// for the link offer, and its size. The unsealed file lives in the profile's `tmp/` only
/// meanwhile (deleted after, or at a later open if a crash left it: docs/storage.md).
pub(crate) async fn send(client: &Client) -> Result<(HistoryRef, HistorySize), Error> {
    let account = client.require_account().await?;
    let io = |e: std::io::Error| Error::Io(e.to_string());
    let path = media::temporary(client.dir(), "history").await?;
    let key = FileKey::random();
    let started = std::time::Instant::now();
    let built = {
        let (client, path, key) = (client.clone(), path.clone(), key.clone());
        tokio::task::spawn_blocking(move || {
            let out = std::io::BufWriter::new(std::fs::File::create(&path).map_err(io)?);
            let (out, built) = build(&client, out, LIMITS)?;
            out.into_inner().map_err(|e| io(e.into_error()))?.sync_all().map_err(io)?;
            let mut plain = std::io::BufReader::new(std::fs::File::open(&path).map_err(io)?);
            let digest = FileCipher::new(&key, built.len).digest(&mut plain)?;
            Ok::<_, Error>((built, digest))
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))
    };
    let built = match built {
        Ok(Ok(built)) => built,
        Ok(Err(e)) | Err(e) => {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(e);
        }
    };
    let ((built, digest), build_ms) = (built, started.elapsed().as_millis() as u64);
    let sealing = media::Sealing::new(key.clone(), built.len, digest.to_vec());
    let uploaded =
        media::upload(&account.endpoint()?, &account.token, &path, Some(sealing), None, |_| Ok(()))
            .await;
    let _ = tokio::fs::remove_file(&path).await;
    let (media, _) = uploaded.map_err(Error::Server)?;
    tracing::debug!(
        messages = built.messages,
        bytes = built.len,
        complete = built.complete,
        build_ms,
        total_ms = started.elapsed().as_millis() as u64,
        "History archive sent."
    );
    let size = HistorySize { messages: built.messages, bytes: file::sealed_len(built.len) };
    Ok((HistoryRef { media, len: built.len, key, digest }, size))
}

// ---------------------------------------------------------------------------------------
// Building from the store.

/// Runs closures on the profile's database: the client's connection (released between
/// batches, so the app stays responsive while an archive is built) or, in tests, a bare one.
pub(crate) trait Db {
    fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T, Error>) -> Result<T, Error>;
}

impl Db for Client {
    fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T, Error>) -> Result<T, Error> {
        self.db_blocking(|c| f(c))
    }
}

impl Db for Connection {
    fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T, Error>) -> Result<T, Error> {
        f(self)
    }
}

/// What [`build`] made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Built {
    /// Deflated bytes.
    pub len: u64,
    /// Messages with their plaintext.
    pub messages: u64,
    /// Whether every stored event fitted.
    pub complete: bool,
}

/// Events read from a room's timeline at a time (ids, seqs and times only).
const PAGE: usize = 64;
/// Events whose content is read, then written, per turn on the database.
const BATCH: usize = 256;

/// One room's events not yet taken, newest first.
struct Stream {
    /// Its local id.
    room: RoomKey,
    /// The position below which to read next.
    before: i64,
    /// Read, not taken: (event id, seq, at_ms).
    queued: VecDeque<(i64, u64, i64)>,
    /// Nothing below `before`.
    done: bool,
}

impl Stream {
    /// The next event, reading a page when the queue is empty.
    fn head(&mut self, c: &Connection) -> Result<Option<(i64, u64, i64)>, Error> {
        if self.queued.is_empty() && !self.done {
            let mut st = c.prepare_cached(
                "SELECT id, seq, at_ms, position FROM events
                 WHERE room_id = ?1 AND position < ?2 AND seq IS NOT NULL
                 ORDER BY position DESC LIMIT ?3",
            )?;
            let mut rows = st.query(params![self.room, self.before, PAGE as i64])?;
            let mut read = 0;
            while let Some(row) = rows.next()? {
                self.queued.push_back((row.get(0)?, row.get::<_, i64>(1)? as u64, row.get(2)?));
                self.before = row.get(3)?;
                read += 1;
            }
            self.done = read < PAGE;
        }
        Ok(self.queued.front().copied())
    }
}

/// Builds the archive of what `db`'s profile shows into `out`: every room it is a member of,
/// then its events newest first across rooms (each room's newest first, in seq order) until
/// the limits. Returns the output and what went in.
pub(crate) fn build<W: Write>(db: &impl Db, out: W, limits: Limits) -> Result<(W, Built), Error> {
    let io = |e: std::io::Error| Error::Internal(format!("history archive: {e}"));
    let rooms: Vec<(RoomKey, ArchivedRoom)> = db.with(|c| {
        let mut st = c.prepare(
            "SELECT id, server_id, synced_seq, kind, name FROM rooms
             WHERE server_id IS NOT NULL AND member = 1
             ORDER BY last_activity_ms DESC, id DESC LIMIT ?1",
        )?;
        let rows = st.query_map([MAX_JOIN_ROOMS as i64], |r| {
            let kind: String = r.get(3)?;
            let name: Option<String> = r.get(4)?;
            let name = name.filter(|n| {
                kind == "group"
                    && n.len() <= MAX_ROOM_NAME_BYTES
                    && tidings_proto::validate::name(n).is_ok()
            });
            let through = r.get::<_, i64>(2)?.max(0) as u64;
            Ok((r.get(0)?, ArchivedRoom { room: r.get(1)?, through, name }))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    })?;
    let quiet: Vec<[u8; 16]> = db.with(|c| {
        let mut st = c.prepare("SELECT request_id FROM quiet_messages LIMIT ?1")?;
        let rows = st.query_map([MAX_QUIET as i64], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for row in rows {
            out.extend(<[u8; 16]>::try_from(row?.as_slice()).ok());
        }
        Ok(out)
    })?;
    let mut writer = Writer::new(out, limits).map_err(io)?;
    for (_, room) in &rooms {
        writer.room(room).map_err(io)?;
    }
    for request in &quiet {
        writer.quiet(request).map_err(io)?;
    }
    let mut streams: Vec<Stream> = rooms
        .iter()
        .map(|(room, _)| Stream {
            room: *room,
            before: apply::PENDING_POSITION,
            queued: VecDeque::new(),
            done: false,
        })
        .collect();
    // The newest head of all rooms first.
    let mut heads = BinaryHeap::new();
    db.with(|c| {
        for (index, stream) in streams.iter_mut().enumerate() {
            if let Some((_, _, at)) = stream.head(c)? {
                heads.push((at, index));
            }
        }
        Ok(())
    })?;
    let mut messages = 0;
    let mut full = false;
    while !full && !heads.is_empty() {
        // A batch of events, newest first, with their content: read in one turn.
        let batch: Vec<(usize, u64, Vec<u8>, bool)> = db.with(|c| {
            let mut batch = Vec::with_capacity(BATCH);
            let mut content = c.prepare_cached(
                "SELECT content, security IS NOT NULL, request_id FROM events WHERE id = ?1",
            )?;
            while batch.len() < BATCH {
                let Some((_, index)) = heads.pop() else { break };
                let stream = &mut streams[index];
                let Some((id, seq, _)) = stream.queued.pop_front() else { continue };
                let (bytes, refused, request): (Vec<u8>, bool, Vec<u8>) =
                    content.query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                // A message as it shows now: with its last edit's text (a deleted one's
                // content is already gone).
                let bytes = match crate::relations::last_edit(c, &request)? {
                    Some(text) => edited(&bytes, text).unwrap_or(bytes),
                    None => bytes,
                };
                batch.push((index, seq, bytes, refused));
                if let Some((_, _, at)) = stream.head(c)? {
                    heads.push((at, index));
                }
            }
            Ok(batch)
        })?;
        for (at, (index, seq, content, refused)) in batch.iter().enumerate() {
            let Some(body) = archived_body(content, *refused) else { continue };
            let is_message = body
                .as_ref()
                .is_some_and(|b| apply::decode_body(b).is_some_and(|b| b.name.is_none()));
            if !writer.event(*index, *seq, body.as_deref()).map_err(io)? {
                // Full: this event and the rest of the batch go back to their rooms' fronts.
                for (index, seq, _, _) in batch[at..].iter().rev() {
                    streams[*index].queued.push_front((0, *seq, 0));
                }
                full = true;
                break;
            }
            messages += u64::from(is_message);
        }
    }
    // Per room, the newest event not taken (each room's are taken in seq order): nothing at
    // or below it is described.
    let from: Vec<u64> = streams.iter().map(|s| s.queued.front().map_or(0, |q| q.1)).collect();
    let (out, len) = writer.finish(&from).map_err(io)?;
    Ok((out, Built { len, messages, complete: !full }))
}

/// What an event stored here gives the archive: `None` to leave it out (not a message);
/// `Some(None)` for a message with no plaintext here (sealed still, or refused); otherwise
/// its plaintext body (a rename as the naming message it came as).
/// Stored message `content` with its text replaced by an edit's.
fn edited(content: &[u8], text: String) -> Option<Vec<u8>> {
    let EventContent::Message { body, attachments } = codec::decode(content).ok()? else {
        return None;
    };
    let body = MessageBody { text, ..apply::decode_body(body.as_bytes())? };
    let body = tidings_proto::Body::new(codec::encode(&body).ok()?).ok()?;
    codec::encode(&EventContent::Message { body, attachments }).ok()
}

fn archived_body(content: &[u8], refused: bool) -> Option<Option<Vec<u8>>> {
    let content: EventContent = codec::decode(content).ok()?;
    match content {
        EventContent::Message { .. } if refused => Some(None),
        EventContent::Message { body, .. } => {
            let opened = apply::decode_body(body.as_bytes()).is_some();
            Some(opened.then(|| body.into_vec()))
        }
        EventContent::Renamed { name } => {
            let naming = MessageBody::naming(name.into_string(), true);
            Some(codec::encode(&naming).ok())
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Importing into the store.

/// A room of the archive as this device has it.
struct Local {
    room: RoomKey,
    synced: u64,
    group: bool,
    named: bool,
    /// Seqs the archive describes (in order of reading).
    described: Vec<u64>,
}

/// Applies `archive` (deflated) to the store in transaction `tx` of `me`'s profile (see the
/// module's documentation). An [`Error::History`] leaves the caller to roll back.
pub(crate) fn import_archive(
    tx: &Connection,
    me: i64,
    archive: &[u8],
    limits: Limits,
) -> Result<Imported, Error> {
    if archive.len() as u64 > limits.archive {
        return Err(HistoryError::TooLarge { max: limits.archive }.into());
    }
    let mut reader = Reader::new(archive, limits)?;
    let mut rooms: Vec<(ArchivedRoom, Option<Local>)> = Vec::new();
    let mut seen = HashSet::new();
    let mut imported = Imported { complete: true, ..Imported::default() };
    let mut touched = BTreeSet::new();
    let mut ids = Vec::new();
    let mut quiet = Vec::new();
    let from = loop {
        match reader.next()? {
            Some(Record::Room(room)) => {
                if !seen.insert(room.room) {
                    return Err(HistoryError::Malformed("a room twice").into());
                }
                let local = tx
                    .prepare_cached(
                        "SELECT id, synced_seq, kind = 'group', name IS NOT NULL FROM rooms
                         WHERE server_id = ?1 AND member = 1",
                    )?
                    .query_row([room.room], |r| {
                        Ok(Local {
                            room: r.get(0)?,
                            synced: r.get::<_, i64>(1)?.max(0) as u64,
                            group: r.get(2)?,
                            named: r.get(3)?,
                            described: Vec::new(),
                        })
                    })
                    .optional()?;
                rooms.push((room, local));
            }
            Some(Record::Event { room, seq, body }) => {
                let Some(local) = &mut rooms[room].1 else { continue };
                local.described.push(seq);
                let Some(body) = body else { continue };
                let (room, group) = (local.room, local.group);
                match fill(tx, room, group, seq, &body)? {
                    Filled::Not => {}
                    Filled::Message(id) => {
                        imported.messages += 1;
                        touched.insert(room);
                        ids.push(id);
                    }
                    Filled::Other(id) => {
                        touched.insert(room);
                        ids.push(id);
                    }
                    Filled::PassedOver(id) => {
                        imported.passed_over += 1;
                        touched.insert(room);
                        ids.push(id);
                    }
                }
            }
            Some(Record::Quiet(request)) => quiet.push(request),
            Some(Record::End(from)) => break from,
            None => return Err(HistoryError::Malformed("no end").into()),
        }
    };
    for ((archived, local), from) in rooms.iter_mut().zip(from) {
        let Some(local) = local else { continue };
        if local.synced < archived.through {
            imported.complete = false;
        }
        // What the sending device passed over (a naming), still sealed here.
        local.described.sort_unstable();
        let upto = archived.through.min(local.synced);
        for (id, seq) in sealed_messages(tx, local.room, from, upto)? {
            if local.described.binary_search(&seq).is_err() {
                tx.prepare_cached("DELETE FROM events WHERE id = ?1")?.execute([id])?;
                imported.passed_over += 1;
                touched.insert(local.room);
                ids.push(id);
            }
        }
        if let Some(name) = archived.name.as_deref().filter(|_| local.group && !local.named) {
            if tidings_proto::validate::name(name).is_ok() {
                tx.prepare_cached("UPDATE rooms SET name = ?2 WHERE id = ?1 AND name IS NULL")?
                    .execute(params![local.room, name])?;
                touched.insert(local.room);
            }
        }
    }
    // Quiet messages (namings, verification proofs) the sending device sent and had not met
    // in its log yet: mine, sealed here, in a room of the archive I am in.
    let mine: HashSet<RoomKey> =
        rooms.iter().filter_map(|(_, l)| l.as_ref().map(|l| l.room)).collect();
    for request in quiet {
        let row: Option<(i64, RoomKey, Vec<u8>)> = tx
            .prepare_cached(
                "SELECT id, room_id, content FROM events
                 WHERE request_id = ?1 AND sender = ?2 AND seq IS NOT NULL AND security IS NULL",
            )?
            .query_row(params![&request[..], me], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let Some((id, room, content)) = row else { continue };
        if mine.contains(&room) && sealed_here(&content).is_some() {
            tx.prepare_cached("DELETE FROM events WHERE id = ?1")?.execute([id])?;
            imported.passed_over += 1;
            touched.insert(room);
            ids.push(id);
        }
    }
    let changed: HashSet<i64> = ids.into_iter().collect();
    for &room in &touched {
        summarize(tx, room, me, &changed)?;
    }
    imported.rooms = touched.into_iter().collect();
    Ok(imported)
}

/// What [`fill`] did to one event.
enum Filled {
    /// Nothing: not here, opened here already, or not a body this version reads.
    Not,
    /// Its message shows now.
    Message(i64),
    /// It shows as a rename.
    Other(i64),
    /// It was a naming to pass over: gone from the timeline.
    PassedOver(i64),
}

/// A message's media ids.
type Attachments = tidings_proto::bounded::List<
    tidings_proto::MediaId,
    { tidings_proto::limits::MAX_ATTACHMENTS },
>;

/// The media ids of stored `content` if it is a message this device could not open.
fn sealed_here(content: &[u8]) -> Option<Attachments> {
    match codec::decode::<EventContent>(content).ok()? {
        EventContent::Message { body, attachments }
            if apply::decode_body(body.as_bytes()).is_none() =>
        {
            Some(attachments)
        }
        _ => None,
    }
}

/// Fills event `seq` of `room` with the plaintext `body`, if it is here and sealed still.
fn fill(
    tx: &Connection,
    room: RoomKey,
    group: bool,
    seq: u64,
    body: &[u8],
) -> Result<Filled, Error> {
    let row: Option<(i64, Vec<u8>)> = tx
        .prepare_cached(
            "SELECT id, content FROM events WHERE room_id = ?1 AND seq = ?2 AND security IS NULL",
        )?
        .query_row(params![room, seq as i64], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((id, content)) = row else { return Ok(Filled::Not) };
    let Some(attachments) = sealed_here(&content) else { return Ok(Filled::Not) };
    let Some(message) = apply::decode_body(body) else { return Ok(Filled::Not) };
    if let Some(relation) = &message.relates {
        // An edit, a deletion or a reaction: taken as apply takes it, and gone from the
        // timeline.
        let (sender, request, position, at_ms): (i64, Vec<u8>, i64, i64) = tx
            .prepare_cached("SELECT sender, request_id, position, at_ms FROM events WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        tx.prepare_cached("DELETE FROM events WHERE id = ?1")?.execute([id])?;
        if let Some(request) = crate::stamp::request_id(&request) {
            crate::relations::take(tx, room, sender, &request, position, at_ms, relation)?;
        }
        return Ok(Filled::PassedOver(id));
    }
    let (content, is_message) = match message.name {
        None => {
            let body = tidings_proto::Body::new(body.to_vec())
                .map_err(|_| HistoryError::Malformed("a message over the body limit"))?;
            (EventContent::Message { body, attachments }, true)
        }
        Some(name) => match tidings_proto::RoomName::new(name) {
            Ok(name) if message.rename && group && tidings_proto::validate::name(&name).is_ok() => {
                (EventContent::Renamed { name }, false)
            }
            // A naming that shows nothing (or names wrongly): passed over, as apply does.
            _ => {
                tx.prepare_cached("DELETE FROM events WHERE id = ?1")?.execute([id])?;
                return Ok(Filled::PassedOver(id));
            }
        },
    };
    let encoded = codec::encode(&content).map_err(|e| Error::Internal(e.to_string()))?;
    tx.prepare_cached("UPDATE events SET content = ?2, is_message = ?3 WHERE id = ?1")?
        .execute(params![id, encoded, is_message])?;
    if let Some(text) = crate::search::index::searchable(&content) {
        crate::search::index::put(tx, id, &text)?;
    }
    Ok(if is_message { Filled::Message(id) } else { Filled::Other(id) })
}

/// The messages of `room` with a seq in `(after, upto]` that are sealed still here.
fn sealed_messages(
    tx: &Connection,
    room: RoomKey,
    after: u64,
    upto: u64,
) -> Result<Vec<(i64, u64)>, Error> {
    let mut st = tx.prepare_cached(
        "SELECT id, seq, content FROM events
         WHERE room_id = ?1 AND seq > ?2 AND seq <= ?3 AND is_message = 1 AND security IS NULL",
    )?;
    let mut rows = st.query(params![room, after.min(i64::MAX as u64) as i64, upto as i64])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let content: Vec<u8> = row.get(2)?;
        if sealed_here(&content).is_some() {
            out.push((row.get(0)?, row.get::<_, i64>(1)? as u64));
        }
    }
    Ok(out)
}

/// Brings `room`'s counters and newest message up to date after events `changed` were
/// filled in or passed over.
fn summarize(tx: &Connection, room: RoomKey, me: i64, changed: &HashSet<i64>) -> Result<(), Error> {
    apply::recount_unread(tx, room, me)?;
    let last: Option<i64> = tx
        .prepare_cached("SELECT last_event_id FROM rooms WHERE id = ?1")?
        .query_row([room], |r| r.get(0))?;
    if !last.is_some_and(|id| changed.contains(&id)) {
        return Ok(());
    }
    // The newest event the room list shows (a message or a call), as apply would have kept.
    let mut st = tx.prepare_cached(
        "SELECT id, seq, sender, request_id, content FROM events
         WHERE room_id = ?1 AND security IS NULL ORDER BY position DESC",
    )?;
    let mut rows = st.query([room])?;
    let mut newest = None;
    while let Some(row) = rows.next()? {
        let content: Vec<u8> = row.get(4)?;
        let Ok(content) = codec::decode::<EventContent>(&content) else { continue };
        if matches!(content, EventContent::Message { .. } | EventContent::Call(_)) {
            let id: i64 = row.get(0)?;
            let seq: Option<i64> = row.get(1)?;
            let sender: i64 = row.get(2)?;
            let request: Vec<u8> = row.get(3)?;
            newest = Some((id, seq, sender, request, apply::describe(&content)));
            break;
        }
    }
    drop(rows);
    let (id, seq, sender, request, preview) = match newest {
        Some((id, seq, sender, request, preview)) => {
            (Some(id), seq, Some(sender), Some(request), Some(preview))
        }
        None => (None, None, None, None, None),
    };
    tx.prepare_cached(
        "UPDATE rooms SET last_event_id = ?2, last_message_seq = ?3, last_sender = ?4,
             last_request_id = ?5, last_preview = ?6
         WHERE id = ?1",
    )?
    .execute(params![room, id, seq, sender, request, preview])?;
    Ok(())
}

#[cfg(test)]
mod tests;
