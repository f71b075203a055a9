//! The public handle front ends use: open a profile, read rooms and messages, make changes.
//!
//! Every read comes from SQLite and never waits on the network. Every change the server must
//! confirm is written in **one transaction** together with its local echo and its outbox
//! row (with the request id made here, before any I/O), and only after that commit is an
//! [`Event`] emitted and the sync engine woken. So a message the user sees as pending is on
//! disk, survives kill -9, and is sent exactly once whatever the network does.
//!
//! The database connection is used from the blocking pool, one call at a time (one writer).

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use rusqlite::{params, Connection, OptionalExtension};
use tidings_proto::{
    bounded::{List, Text},
    codec, Body, EventContent, MediaId, Request, RequestId, RoomKind, Seq,
};
use tokio::sync::{broadcast, Notify};

use crate::{
    apply::{MessageBody, PENDING_POSITION},
    keychain::{self, TokenHome},
    model::{Event, MemberReceipt, Message, MessageState, OutboxEntry, RoomKey, RoomSummary},
    store, Error,
};

/// Largest file `send_file` accepts (the server may allow less; its refusal is then the
/// outbox item's reason).
pub const MAX_FILE_BYTES: u64 = 100 * 1024 * 1024;

/// Capacity of the event channel; a subscriber further behind gets [`Event::Overflow`].
const EVENT_CAPACITY: usize = 1024;

/// The signed-in account of a profile.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    /// Server base URL (`https://host[:port]`, or `http://` to a local address).
    pub server: String,
    /// The certificate pin the server is trusted by, instead of the platform's trust store.
    pub pin: Option<crate::endpoint::Pin>,
    /// My user id.
    pub user_id: i64,
    /// My username.
    pub username: String,
    /// This device.
    pub device_id: i64,
    /// Session token (secret).
    pub token: String,
}

impl Account {
    /// Where the server is and how it is trusted.
    pub fn endpoint(&self) -> Result<crate::endpoint::Endpoint, Error> {
        Ok(crate::endpoint::Endpoint::parse(&self.server)?.pinned(self.pin))
    }
}

/// The token is a password: never in Debug output (so never in a log).
impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("server", &self.server)
            .field("pin", &self.pin)
            .field("user_id", &self.user_id)
            .field("username", &self.username)
            .field("device_id", &self.device_id)
            .field("token", &"…")
            .finish()
    }
}

/// A profile: one account on one device, with all its state.
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) db: Arc<Mutex<Connection>>,
    pub(crate) events: broadcast::Sender<Event>,
    /// Woken when the outbox or read markers have something to send.
    pub(crate) outbox_ready: Arc<Notify>,
    /// Who is typing where, until when (ephemeral: never stored).
    pub(crate) typing: Arc<Mutex<crate::typing::Typing>>,
    /// The call driver's wires (commands in, signals out).
    pub(crate) calls: Arc<crate::call::driver::Wires>,
    /// The session token once read from the keychain (a keychain read may ask the user to
    /// unlock it: once per run is enough).
    token: Arc<Mutex<Option<String>>>,
    dir: PathBuf,
}

/// Receives [`Event`]s; turns falling behind into [`Event::Overflow`].
#[derive(Debug)]
pub struct Subscription(broadcast::Receiver<Event>);

impl Subscription {
    /// The next event; `None` when the client is gone.
    pub async fn recv(&mut self) -> Option<Event> {
        match self.0.recv().await {
            Ok(e) => Some(e),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(Event::Overflow),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

impl Client {
    /// Opens (creating if needed) the profile in `dir`.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io(e.to_string()))?;
        let path = dir.join("tidings.sqlite");
        let db = Arc::new(Mutex::new(store::open(&path)?));
        // The profile holds the session token, every message and the media cache: for this
        // user's eyes only (on Android and iOS the app's own directory already is).
        private(dir, 0o700)?;
        private(&path, 0o600)?;
        let alive = Arc::downgrade(&db);
        std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || store::checkpoint_while(&path, alive))
            .map_err(|e| Error::Io(e.to_string()))?;
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        Ok(Self {
            db,
            events,
            outbox_ready: Arc::new(Notify::new()),
            typing: Arc::default(),
            calls: Arc::default(),
            token: Arc::default(),
            dir: dir.to_owned(),
        })
    }

    /// The profile directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Subscribes to change events.
    pub fn subscribe(&self) -> Subscription {
        Subscription(self.events.subscribe())
    }

    pub(crate) fn emit(&self, events: impl IntoIterator<Item = Event>) {
        for e in events {
            let _ = self.events.send(e);
        }
    }

    /// Runs `f` with the database on this thread: for one short statement where waiting
    /// for the blocking pool is not possible (and for the simulation, which drives machines
    /// this way).
    pub(crate) fn db_blocking<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut conn =
            self.db.lock().map_err(|_| Error::Internal("database lock poisoned".into()))?;
        f(&mut conn)
    }

    /// Runs `f` with the database on the blocking pool.
    pub(crate) async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn =
                db.lock().map_err(|_| Error::Internal("database lock poisoned".into()))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
    }

    /// The signed-in account, if any, with its token (from the keychain if it is there).
    pub async fn account(&self) -> Result<Option<Account>, Error> {
        let Some((mut account, entry)) = self.db(|c| stored_account(c)).await? else {
            return Ok(None);
        };
        if let Some(entry) = entry {
            let cached = self.token.lock().ok().and_then(|t| t.clone());
            account.token = match cached {
                Some(token) => token,
                None => {
                    let token = tokio::task::spawn_blocking(move || keychain::load(&entry))
                        .await
                        .map_err(|e| Error::Internal(e.to_string()))??;
                    if let Ok(mut cache) = self.token.lock() {
                        *cache = Some(token.clone());
                    }
                    token
                }
            };
        }
        Ok(Some(account))
    }

    /// Where this profile's session token is kept (`None`: not signed in).
    pub async fn token_home(&self) -> Result<Option<TokenHome>, Error> {
        let stored = self.db(|c| stored_account(c)).await?;
        Ok(stored.map(|(_, entry)| match entry {
            Some(_) => TokenHome::Keychain,
            None => TokenHome::Profile,
        }))
    }

    pub(crate) async fn require_account(&self) -> Result<Account, Error> {
        self.account().await?.ok_or(Error::NotSignedIn)
    }

    /// Stores the session after sign-up or sign-in: the token in the keychain where there
    /// is one, else in the profile (keychain.rs).
    pub(crate) async fn save_account(&self, a: Account) -> Result<(), Error> {
        let token = a.token.clone();
        let entry = tokio::task::spawn_blocking(move || keychain::store(&token))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let kept = if entry.is_some() { String::new() } else { a.token.clone() };
        if let Ok(mut cache) = self.token.lock() {
            *cache = entry.as_ref().map(|_| a.token.clone());
        }
        let old = self
            .db(move |c| {
                let old = stored_account(c)?.and_then(|(_, entry)| entry);
                let pin = a.pin.map(|p| p.to_string());
                c.execute(
                    "INSERT INTO account (id, server, user_id, username, device_id, token, pin,
                                         keychain)
                     VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (id) DO UPDATE SET server = excluded.server,
                         user_id = excluded.user_id, username = excluded.username,
                         device_id = excluded.device_id, token = excluded.token,
                         pin = excluded.pin, keychain = excluded.keychain",
                    params![a.server, a.user_id, a.username, a.device_id, kept, pin, entry],
                )?;
                if a.server.starts_with("https://") {
                    c.execute(
                        "INSERT INTO profile (id, used_tls) VALUES (1, 1)
                     ON CONFLICT (id) DO UPDATE SET used_tls = 1",
                        [],
                    )?;
                }
                c.execute(
                    "INSERT INTO users (id, username) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
                    params![a.user_id, a.username],
                )?;
                Ok(old)
            })
            .await?;
        // A session this profile had before is over: its token goes too.
        if let Some(old) = old {
            let _ = tokio::task::spawn_blocking(move || keychain::forget(&old)).await;
        }
        Ok(())
    }

    /// Writes an operation and its local echo in one transaction (one trip to the database:
    /// the account, the room's server id and the writes together), then emits and wakes the
    /// sync engine. `make` builds the operation from the new request id and the room's
    /// server id (0 while the room is being created; sync fills it in).
    pub(crate) async fn enqueue(
        &self,
        target: Target,
        upload: Option<String>,
        make: impl FnOnce(RequestId, tidings_proto::RoomId) -> (Request, Option<EventContent>)
            + Send
            + 'static,
    ) -> Result<(RoomKey, RequestId), Error> {
        let (room, request) = self
            .db(move |c| {
                let me = account(c)?.ok_or(Error::NotSignedIn)?.user_id;
                let tx = c.transaction()?;
                let now = now_ms();
                let (room, server) = match target {
                    Target::Room(room) => (room, member_room(&tx, room)?),
                    Target::NewRoom { kind, name } => {
                        tx.execute(
                            "INSERT INTO rooms (kind, name, last_activity_ms) VALUES (?1, ?2, ?3)",
                            params![kind, name, now],
                        )?;
                        (tx.last_insert_rowid(), None)
                    }
                };
                let request = new_request_id();
                let target = tidings_proto::RoomId(server.unwrap_or(0));
                let (operation, echo) = make(request, target);
                // A request (a room from someone not in my contacts) is answered here: an
                // Accept takes it; anything else but declining (a reply, an invitation…)
                // accepts it too, queued just before in the same transaction.
                let declining = matches!(operation, Request::Leave { .. });
                let was_request = !declining && take_request(&tx, room)?;
                match (&operation, was_request) {
                    (Request::Accept { .. }, false) => return Err(Error::NotARequest(room)),
                    (Request::Accept { .. }, true) | (_, false) => {}
                    (_, true) => {
                        let accept = Request::Accept { request: new_request_id(), room: target };
                        queue_operation(&tx, room, &accept, None, now)?;
                    }
                }
                queue_operation(&tx, room, &operation, upload.as_deref(), now)?;
                if let Some(echo) = echo {
                    let preview = crate::apply::describe(&echo);
                    let content =
                        codec::encode(&echo).map_err(|e| Error::Internal(e.to_string()))?;
                    tx.execute(
                        "INSERT INTO events (room_id, seq, position, request_id, sender, at_ms,
                                             content, is_message)
                         VALUES (?1, NULL, 0, ?2, ?3, ?4, ?5, 1)",
                        params![room, &request.0[..], me, now, content],
                    )?;
                    let id = tx.last_insert_rowid();
                    tx.execute(
                        "UPDATE events SET position = ?2 WHERE id = ?1",
                        params![id, PENDING_POSITION + id],
                    )?;
                    tx.execute(
                        "UPDATE rooms SET last_event_id = ?2, last_activity_ms = ?3,
                             last_preview = ?4, last_sender = ?5, last_message_seq = NULL,
                             last_request_id = ?6
                         WHERE id = ?1",
                        params![room, id, now, preview, me, &request.0[..]],
                    )?;
                }
                tx.commit()?;
                Ok((room, request))
            })
            .await?;
        self.emit([Event::TimelineChanged { room }, Event::RoomsChanged, Event::OutboxChanged]);
        self.outbox_ready.notify_one();
        Ok((room, request))
    }

    /// Sends a text message: saved at once as pending, delivered by sync.
    pub async fn send_text(&self, room: RoomKey, text: &str) -> Result<RequestId, Error> {
        self.send_message(room, MessageBody::text(text), None).await
    }

    /// Queues a message with its local echo. `upload` is the file (relative to the profile)
    /// the outbox uploads first as the message's attachment; it is deleted if queueing fails.
    async fn send_message(
        &self,
        room: RoomKey,
        body: MessageBody,
        upload: Option<String>,
    ) -> Result<RequestId, Error> {
        let queued = async {
            let body = codec::encode(&body).map_err(|e| Error::Internal(e.to_string()))?;
            let body = Body::new(body).map_err(|e| Error::Invalid(e.to_string()))?;
            self.enqueue(Target::Room(room), upload.clone(), move |request, room| {
                let attachments: List<MediaId, { tidings_proto::limits::MAX_ATTACHMENTS }> =
                    List::empty();
                let echo =
                    EventContent::Message { body: body.clone(), attachments: attachments.clone() };
                (Request::Send { request, room, body, attachments }, Some(echo))
            })
            .await
        }
        .await;
        match (queued, upload) {
            (Ok((_, request)), _) => Ok(request),
            (Err(e), Some(file)) => {
                let _ = tokio::fs::remove_file(self.dir.join(file)).await;
                Err(e)
            }
            (Err(e), None) => Err(e),
        }
    }

    /// Sends a photo with an optional caption. The photo is prepared first (decoded within
    /// limits, oriented, stripped, downscaled, thumbnailed) on a bounded pool of blocking
    /// threads; a file that cannot be a photo is refused with [`Error::Photo`] and nothing is
    /// queued. Then the message appears at once as pending, with its thumbnail, and the
    /// outbox uploads the full image and sends the message, across restarts.
    pub async fn send_image(
        &self,
        room: RoomKey,
        path: &Path,
        caption: &str,
    ) -> Result<RequestId, Error> {
        self.require_account().await?;
        let prepared = crate::photo::prepare_file(path, crate::photo::Limits::default()).await?;
        let thumbnail = tidings_proto::bounded::Blob::new(prepared.thumbnail.bytes)
            .map_err(|e| Error::Internal(format!("thumbnail: {e}")))?;
        let image = crate::apply::ImageBody {
            mime: prepared.full.mime.to_owned(),
            width: prepared.full.width,
            height: prepared.full.height,
            size: prepared.full.bytes.len() as u64,
            thumbnail,
            thumbnail_width: prepared.thumbnail.width,
            thumbnail_height: prepared.thumbnail.height,
            placeholder: prepared.placeholder,
        };
        // The prepared image waits in the profile until the server has it.
        let ext = if prepared.full.mime == "image/png" { "png" } else { "jpg" };
        let name = format!("outgoing/{}.{ext}", uuid::Uuid::new_v4().simple());
        let io = |e: std::io::Error| Error::Io(e.to_string());
        tokio::fs::create_dir_all(self.dir.join("outgoing")).await.map_err(io)?;
        tokio::fs::write(self.dir.join(&name), &prepared.full.bytes).await.map_err(io)?;
        let body = MessageBody { image: Some(image), ..MessageBody::text(caption) };
        self.send_message(room, body, Some(name)).await
    }

    /// Sends any file (at most [`MAX_FILE_BYTES`]) as an attachment with its name, size and
    /// type. A video (MP4, WebM, QuickTime whose content is what its name says) also gets its
    /// duration, dimensions and poster frame (through ffmpeg), so the receiver shows a
    /// preview first, and is sent without its container metadata (location, device); a file
    /// whose content does not match the image or video type its name claims goes as a plain
    /// file, unchanged. The file is copied into the profile at once; the upload
    /// is resumable and continues after a restart.
    pub async fn send_file(&self, room: RoomKey, path: &Path) -> Result<RequestId, Error> {
        self.require_account().await?;
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
        let mut file = tokio::fs::File::open(path).await.map_err(io)?;
        let n = tokio::io::AsyncReadExt::read(&mut file, &mut head).await.map_err(io)?;
        head.truncate(n);
        drop(file);
        let mime = crate::video::checked_mime(&name, &head);
        let video = if mime.starts_with("video/") {
            match crate::video::probe(path).await {
                Ok(info) => Some(crate::apply::VideoBody {
                    duration_ms: info.duration_ms,
                    width: info.width,
                    height: info.height,
                    poster: tidings_proto::bounded::Blob::new(info.poster.bytes)
                        .map_err(|e| Error::Internal(format!("poster: {e}")))?,
                    poster_width: info.poster.width,
                    poster_height: info.poster.height,
                }),
                Err(e) => {
                    tracing::info!(error = %e, "Sending a video without a preview.");
                    None
                }
            }
        } else {
            None
        };
        // The copy waits in the profile until the server has it all. A video is remuxed
        // without its metadata (phones record where it was shot); any other file is sent as
        // it is — a hard link when the file system allows: instant, and the sent version
        // cannot change.
        let stored = format!("outgoing/{}", uuid::Uuid::new_v4().simple());
        let dest = self.dir.join(&stored);
        let io = |e: std::io::Error| Error::Io(e.to_string());
        tokio::fs::create_dir_all(self.dir.join("outgoing")).await.map_err(io)?;
        let stripped = match &video {
            Some(_) => match crate::video::strip_metadata(path, &dest, mime).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::info!(error = %e, "Sending a video with its metadata.");
                    let _ = tokio::fs::remove_file(&dest).await;
                    false
                }
            },
            None => false,
        };
        if !stripped && tokio::fs::hard_link(path, &dest).await.is_err() {
            tokio::fs::copy(path, &dest).await.map_err(io)?;
        }
        let size = tokio::fs::metadata(&dest).await.map_err(io)?.len();
        let file = crate::apply::FileBody { name, size, mime: mime.to_owned() };
        let body = MessageBody { file: Some(file), video, ..MessageBody::text("") };
        self.send_message(room, body, Some(stored)).await
    }

    /// The thumbnail (JPEG bytes) of the photo, or the poster of the video, in message `seq`
    /// of `room`, from the store (no network).
    pub async fn thumbnail(&self, room: RoomKey, seq: Seq) -> Result<Vec<u8>, Error> {
        let (body, _) = self.db(move |c| attachment_of(c, room, seq)).await?;
        match (body.image, body.video) {
            (Some(image), _) => Ok(image.thumbnail.into_vec()),
            (None, Some(video)) => Ok(video.poster.into_vec()),
            (None, None) => Err(Error::NoSuchImage { room, seq }),
        }
    }

    /// The full photo, file or video of message `seq` in `room`: a file in the profile's
    /// media cache, downloaded now if it is not there (the only call that waits on the network
    /// for media; an interrupted download continues where it stopped).
    pub async fn open_full(&self, room: RoomKey, seq: Seq) -> Result<PathBuf, Error> {
        let (body, media) = self.db(move |c| attachment_of(c, room, seq)).await?;
        let media = media.ok_or(Error::NoSuchImage { room, seq })?;
        let now = now_ms();
        if let Some(path) = self.db(move |c| crate::media::cached(c, media, now)).await? {
            let path = self.dir.join(path);
            if path.exists() {
                return Ok(path);
            }
        }
        let account = self.require_account().await?;
        let ext = match (&body.image, &body.file) {
            (Some(image), _) if image.mime == "image/png" => "png".to_owned(),
            (Some(_), _) => "jpg".to_owned(),
            (None, Some(file)) => safe_extension(&file.name),
            (None, None) => "bin".to_owned(),
        };
        let name = format!("cache/{media}.{ext}");
        let io = |e: std::io::Error| Error::Io(e.to_string());
        tokio::fs::create_dir_all(self.dir.join("cache")).await.map_err(io)?;
        let dest = self.dir.join(&name);
        let size =
            crate::media::download(&account.endpoint()?, &account.token, media, &dest).await?;
        let evicted = self
            .db(move |c| {
                crate::media::remember(
                    c,
                    media,
                    &name,
                    size,
                    now_ms(),
                    crate::media::CACHE_LIMIT_BYTES,
                )
            })
            .await?;
        for old in evicted {
            let _ = tokio::fs::remove_file(self.dir.join(old)).await;
        }
        Ok(dest)
    }

    /// Creates a room with the given members (user ids known from lookups), at once locally:
    /// the room and its outbox item are written together.
    pub async fn create_room(
        &self,
        kind: RoomKind,
        name: Option<&str>,
        members: Vec<i64>,
    ) -> Result<RoomKey, Error> {
        let name =
            name.map(|n| Text::new(n).map_err(|e| Error::Invalid(e.to_string()))).transpose()?;
        let ids = List::new(members.into_iter().map(tidings_proto::UserId).collect())
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let kind_str = match kind {
            RoomKind::Direct => "direct",
            RoomKind::Group => "group",
        };
        let target =
            Target::NewRoom { kind: kind_str, name: name.as_ref().map(|n| n.as_str().to_owned()) };
        let (room, _) = self
            .enqueue(target, None, move |request, _| {
                (Request::CreateRoom { request, kind, name, members: ids }, None)
            })
            .await?;
        Ok(room)
    }

    /// Forgets the session (after signing out); the profile's data stays.
    /// Whether this profile ever signed in over TLS.
    pub(crate) async fn used_tls(&self) -> Result<bool, Error> {
        self.db(|c| {
            Ok(c.query_row("SELECT used_tls FROM profile WHERE id = 1", [], |r| r.get(0))
                .optional()?
                .unwrap_or(false))
        })
        .await
    }

    pub(crate) async fn forget_account(&self) -> Result<(), Error> {
        let entry = self
            .db(|c| {
                let entry = stored_account(c)?.and_then(|(_, entry)| entry);
                c.execute("DELETE FROM account", [])?;
                Ok(entry)
            })
            .await?;
        if let Ok(mut cache) = self.token.lock() {
            *cache = None;
        }
        if let Some(entry) = entry {
            let _ = tokio::task::spawn_blocking(move || keychain::forget(&entry)).await;
        }
        Ok(())
    }

    /// The server id of a local room, if known (whatever the membership).
    pub(crate) async fn server_room_id(&self, room: RoomKey) -> Result<Option<i64>, Error> {
        self.db(move |c| {
            Ok(c.query_row("SELECT server_id FROM rooms WHERE id = ?1", [room], |r| r.get(0))
                .optional()?
                .flatten())
        })
        .await
    }

    /// My direct room with `user`, if there is one (the newest, should there be several).
    pub async fn direct_room_with(&self, user: i64) -> Result<Option<RoomKey>, Error> {
        self.db(move |c| {
            Ok(c.query_row(
                "SELECT r.id FROM rooms r JOIN members m ON m.room_id = r.id
                 WHERE r.kind = 'direct' AND r.member = 1 AND m.user_id = ?1
                 ORDER BY r.id DESC LIMIT 1",
                [user],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }

    /// Invites a user (by id) to a group room.
    pub async fn invite(&self, room: RoomKey, user: i64) -> Result<RequestId, Error> {
        self.room_operation(room, move |request, target| Request::Invite {
            request,
            room: target,
            user: tidings_proto::UserId(user),
        })
        .await
    }

    /// Leaves a room.
    pub async fn leave(&self, room: RoomKey) -> Result<RequestId, Error> {
        self.room_operation(room, |request, target| Request::Leave { request, room: target }).await
    }

    /// Accepts a request: the room becomes one of my chats, its members may call me.
    pub async fn accept(&self, room: RoomKey) -> Result<RequestId, Error> {
        self.room_operation(room, |request, target| Request::Accept { request, room: target }).await
    }

    /// Declines a request: I leave the room (its sender sees that I left).
    pub async fn decline(&self, room: RoomKey) -> Result<RequestId, Error> {
        let is_request = self
            .db(move |c| {
                Ok(c.prepare_cached("SELECT request_from IS NOT NULL FROM rooms WHERE id = ?1")?
                    .query_row([room], |r| r.get::<_, bool>(0))
                    .optional()?)
            })
            .await?;
        match is_request {
            None => Err(Error::NoSuchRoom(room)),
            Some(false) => Err(Error::NotARequest(room)),
            Some(true) => self.leave(room).await,
        }
    }

    /// Renames a group room.
    pub async fn rename(&self, room: RoomKey, name: &str) -> Result<RequestId, Error> {
        let name = Text::new(name).map_err(|e| Error::Invalid(e.to_string()))?;
        self.room_operation(room, move |request, target| Request::Rename {
            request,
            room: target,
            name,
        })
        .await
    }

    /// Queues a room operation without a local echo (the room's event shows it once the
    /// server has it; the outbox shows it until then).
    async fn room_operation(
        &self,
        room: RoomKey,
        make: impl FnOnce(RequestId, tidings_proto::RoomId) -> Request + Send + 'static,
    ) -> Result<RequestId, Error> {
        let (_, request) = self
            .enqueue(Target::Room(room), None, move |request, room| (make(request, room), None))
            .await?;
        Ok(request)
    }

    /// The room list, most recently active first.
    pub async fn rooms(&self) -> Result<Vec<RoomSummary>, Error> {
        let typing = self
            .typing
            .lock()
            .map(|mut t| t.snapshot(std::time::Instant::now()))
            .unwrap_or_default();
        self.db(move |c| {
            let me = account(c)?.map_or(0, |a| a.user_id);
            // One pass over the rooms table in index order: counters, the newest message and
            // the other members' watermarks are kept on the room row, so nothing is counted,
            // joined per member or decoded here.
            let mut st = c.prepare_cached(
                "SELECT r.id, r.server_id, r.kind, r.name, r.unread, r.synced_seq, r.member,
                        r.last_preview, r.last_sender, r.last_message_seq, o.state,
                        r.others, r.others_delivered_seq, r.others_read_seq,
                        r.last_activity_ms,
                        CASE WHEN r.name IS NULL AND r.kind = 'direct' THEN
                            (SELECT u.username FROM members m JOIN users u ON u.id = m.user_id
                             WHERE m.room_id = r.id AND m.user_id != ?1
                             ORDER BY m.user_id LIMIT 1)
                        END,
                        CASE WHEN r.request_from IS NOT NULL THEN
                            coalesce((SELECT username FROM users WHERE id = r.request_from), '?')
                        END
                 FROM rooms r
                 LEFT JOIN outbox o ON o.request_id = r.last_request_id
                 ORDER BY r.last_activity_ms DESC, r.id DESC",
            )?;
            let rows = st.query_map([me], |r| {
                let kind: String = r.get(2)?;
                let name: Option<String> = r.get(3)?;
                let other: Option<String> = r.get(15)?;
                let sender: Option<i64> = r.get(8)?;
                let outbox: Option<String> = r.get(10)?;
                let my_last_state = (sender == Some(me)).then(|| {
                    Ok::<_, rusqlite::Error>(tick(
                        outbox.as_deref(),
                        r.get(9)?,
                        r.get(11)?,
                        r.get(12)?,
                        r.get(13)?,
                    ))
                });
                Ok(RoomSummary {
                    room: r.get(0)?,
                    server_id: r.get(1)?,
                    name: crate::model::neutral_name(match (kind.as_str(), name) {
                        (_, Some(n)) => n,
                        ("direct", None) => other.unwrap_or_else(|| "direct chat".into()),
                        _ => "group".into(),
                    }),
                    unread: r.get::<_, i64>(4)? as u64,
                    last_seq: r.get::<_, i64>(5)? as Seq,
                    member: r.get(6)?,
                    direct: kind == "direct",
                    last_activity_ms: r.get(14)?,
                    last_message: r.get(7)?,
                    my_last_state: my_last_state.transpose()?,
                    typing: Vec::new(),
                    request_from: r.get::<_, Option<String>>(16)?.map(crate::model::neutral_name),
                })
            })?;
            let mut rooms: Vec<RoomSummary> = rows.collect::<Result<_, _>>()?;
            for room in &mut rooms {
                room.typing = typing.get(&room.room).cloned().unwrap_or_default();
            }
            Ok(rooms)
        })
        .await
    }

    /// A page of a room's timeline, newest first, strictly before `before` (a message's
    /// `position`), by keyset: the cost does not grow with how far back the page is.
    pub async fn messages(
        &self,
        room: RoomKey,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Message>, Error> {
        self.db(move |c| {
            // Ticks come from the other members' lowest watermarks, which the room row
            // keeps (as for the room list), and the outbox's state: one query for the page.
            let (others, delivered, read): (i64, i64, i64) = c
                .prepare_cached(
                    "SELECT others, others_delivered_seq, others_read_seq FROM rooms
                     WHERE id = ?1",
                )?
                .query_row([room], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?
                .unwrap_or_default();
            let mut st = c.prepare_cached(
                "SELECT e.seq, e.request_id, e.sender, e.content, e.position,
                        coalesce(u.username, '?'), e.at_ms, o.state
                 FROM events e LEFT JOIN users u ON u.id = e.sender
                 LEFT JOIN outbox o ON o.request_id = e.request_id
                 WHERE e.room_id = ?1 AND e.position < ?2
                 ORDER BY e.position DESC LIMIT ?3",
            )?;
            let rows =
                st.query_map(params![room, before.unwrap_or(i64::MAX), limit as i64], |r| {
                    Ok((
                        r.get::<_, Option<i64>>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, Vec<u8>>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, i64>(6)?,
                        r.get::<_, Option<String>>(7)?,
                    ))
                })?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, req, content, position, sender, at_ms, outbox) = row?;
                let seq = seq.map(|s| s as Seq);
                let shown = view(&content);
                out.push(Message {
                    room,
                    seq,
                    request_id: request_string(&req),
                    sender,
                    at_ms,
                    text: shown.text,
                    notice: shown.notice,
                    state: tick(outbox.as_deref(), seq.map(|s| s as i64), others, delivered, read),
                    position,
                    image: shown.image,
                    file: shown.file,
                    video: shown.video,
                    call: shown.call,
                });
            }
            Ok(out)
        })
        .await
    }

    /// Pending and failed outbox items, oldest first.
    pub async fn outbox(&self) -> Result<Vec<OutboxEntry>, Error> {
        self.db(|c| {
            let mut st = c.prepare_cached(
                "SELECT id, request_id, room_id, operation, state, attempts, error
                 FROM outbox ORDER BY id",
            )?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, u32>(5)?,
                    r.get::<_, Option<String>>(6)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, req, room, op, state, attempts, error) = row?;
                let kind = codec::decode::<Request>(&op).map_or("unknown", |r| r.kind());
                out.push(OutboxEntry {
                    id,
                    request_id: request_string(&req),
                    room,
                    kind: kind.to_owned(),
                    state,
                    attempts,
                    error,
                });
            }
            Ok(out)
        })
        .await
    }

    /// Puts a failed outbox item back in line (same request id).
    pub async fn retry(&self, id: i64) -> Result<(), Error> {
        let n = self
            .db(move |c| {
                Ok(c.execute(
                    "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_ms = 0
                     WHERE id = ?1 AND state = 'failed'",
                    [id],
                )?)
            })
            .await?;
        if n == 0 {
            return Err(Error::NoSuchOutboxItem(id));
        }
        self.emit([Event::OutboxChanged]);
        self.outbox_ready.notify_one();
        Ok(())
    }

    /// Drops a failed outbox item and its local echo.
    pub async fn discard(&self, id: i64) -> Result<(), Error> {
        let room = self
            .db(move |c| {
                let tx = c.transaction()?;
                type Row = (Vec<u8>, Option<i64>, Option<String>, Option<i64>);
                let row: Option<Row> = tx
                    .query_row(
                        "SELECT request_id, room_id, upload_path, upload_media FROM outbox
                         WHERE id = ?1 AND state = 'failed'",
                        [id],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                    )
                    .optional()?;
                let (req, room, upload, uploaded) = row.ok_or(Error::NoSuchOutboxItem(id))?;
                tx.execute("DELETE FROM events WHERE request_id = ?1 AND seq IS NULL", [&req])?;
                tx.execute("DELETE FROM outbox WHERE id = ?1", [id])?;
                tx.commit()?;
                // The file it would have uploaded goes too (once uploaded it is the media
                // cache's copy, which the cache manages).
                Ok((room, upload.filter(|_| uploaded.is_none())))
            })
            .await?;
        let (room, file) = room;
        if let Some(file) = file {
            let _ = tokio::fs::remove_file(self.dir.join(file)).await;
        }
        self.emit(room.map(|room| Event::TimelineChanged { room }));
        self.emit([Event::OutboxChanged, Event::RoomsChanged]);
        Ok(())
    }

    /// Marks everything in the room read (sent to the server by sync).
    pub async fn mark_read(&self, room: RoomKey) -> Result<(), Error> {
        self.db(move |c| {
            c.execute("UPDATE rooms SET read_seq = synced_seq, unread = 0 WHERE id = ?1", [room])?;
            Ok(())
        })
        .await?;
        self.emit([Event::RoomsChanged]);
        self.outbox_ready.notify_one();
        Ok(())
    }

    /// Who of the room's other current members has got and read message `seq` (from their
    /// receipt watermarks; for "read by" in groups), by username.
    pub async fn read_by(&self, room: RoomKey, seq: Seq) -> Result<Vec<MemberReceipt>, Error> {
        self.db(move |c| {
            let me = account(c)?.map_or(0, |a| a.user_id);
            let mut st = c.prepare_cached(
                "SELECT coalesce(u.username, '?'), m.delivered_seq >= ?3, m.read_seq >= ?3
                 FROM members m LEFT JOIN users u ON u.id = m.user_id
                 WHERE m.room_id = ?1 AND m.active = 1 AND m.user_id != ?2
                 ORDER BY 3 DESC, 2 DESC, 1",
            )?;
            let rows = st.query_map(params![room, me, seq as i64], |r| {
                Ok(MemberReceipt { username: r.get(0)?, delivered: r.get(1)?, read: r.get(2)? })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }
}

/// Where an enqueued operation goes.
pub(crate) enum Target {
    /// An existing room I am a member of.
    Room(RoomKey),
    /// A room made now, with this kind and name.
    NewRoom { kind: &'static str, name: Option<String> },
}

/// Clears `room`'s request mark; whether it was a request.
fn take_request(tx: &Connection, room: RoomKey) -> Result<bool, Error> {
    Ok(tx
        .prepare_cached(
            "UPDATE rooms SET request_from = NULL WHERE id = ?1 AND request_from IS NOT NULL",
        )?
        .execute([room])?
        > 0)
}

/// Writes `operation` to the outbox of `room`, pending (with the file its upload step
/// sends first, if any).
fn queue_operation(
    tx: &Connection,
    room: RoomKey,
    operation: &Request,
    upload: Option<&str>,
    now: i64,
) -> Result<(), Error> {
    let Some(request) = operation.request_id() else {
        return Err(Error::Internal("an outbox operation needs a request id".into()));
    };
    let encoded = codec::encode(operation).map_err(|e| Error::Internal(e.to_string()))?;
    tx.prepare_cached(
        "INSERT INTO outbox (request_id, room_id, operation, state, created_ms, upload_path)
         VALUES (?1, ?2, ?3, 'pending', ?4, ?5)",
    )?
    .execute(params![&request.0[..], room, encoded, now, upload])?;
    Ok(())
}

/// The server id of a room I am a member of (`None` while it is being created).
fn member_room(c: &Connection, room: RoomKey) -> Result<Option<i64>, Error> {
    let row: Option<(Option<i64>, bool)> = c
        .prepare_cached("SELECT server_id, member FROM rooms WHERE id = ?1")?
        .query_row([room], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match row {
        None => Err(Error::NoSuchRoom(room)),
        Some((_, false)) => Err(Error::NotAMember(room)),
        Some((server, true)) => Ok(server),
    }
}

/// The stored account and the name of the keychain entry holding its token, if one does
/// (then the account's `token` is empty).
fn stored_account(c: &Connection) -> Result<Option<(Account, Option<String>)>, Error> {
    Ok(c.query_row(
        "SELECT server, user_id, username, device_id, token, pin, keychain FROM account
         WHERE id = 1",
        [],
        |r| {
            // A pin that does not parse was not written by this code: connect without it
            // and the trust store decides (failing closed for a self-signed server).
            let pin = r.get::<_, Option<String>>(5)?.and_then(|p| p.parse().ok());
            let account = Account {
                server: r.get(0)?,
                pin,
                user_id: r.get(1)?,
                username: r.get(2)?,
                device_id: r.get(3)?,
                token: r.get(4)?,
            };
            Ok((account, r.get(6)?))
        },
    )
    .optional()?)
}

/// The stored account; its `token` is empty when the keychain holds it
/// ([`Client::account`] fills it in).
pub(crate) fn account(c: &Connection) -> Result<Option<Account>, Error> {
    Ok(stored_account(c)?.map(|(account, _)| account))
}

/// Sets a path's Unix mode (other systems keep per-user folders private already).
fn private(path: &Path, mode: u32) -> Result<(), Error> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::Io(format!("{}: {e}", path.display())))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

/// A fresh request id (a v4 UUID), made before any I/O.
pub fn new_request_id() -> RequestId {
    RequestId(*uuid::Uuid::new_v4().as_bytes())
}

pub(crate) fn request_string(bytes: &[u8]) -> String {
    <[u8; 16]>::try_from(bytes).map(|b| RequestId(b).to_string()).unwrap_or_default()
}

/// What a stored event shows in the timeline: its text and its attachment's views.
struct Shown {
    text: String,
    notice: bool,
    image: Option<crate::model::ImageView>,
    file: Option<crate::model::FileView>,
    video: Option<crate::model::VideoView>,
    call: Option<crate::model::CallView>,
}

fn view(content: &[u8]) -> Shown {
    let none = |text: String| Shown {
        text,
        notice: false,
        image: None,
        file: None,
        video: None,
        call: None,
    };
    let Ok(content) = codec::decode::<EventContent>(content) else {
        return none("(event this version cannot show)".into());
    };
    let text = crate::apply::describe(&content);
    if let EventContent::Call(r) = &content {
        let call = crate::model::CallView {
            caller: r.caller.0,
            outcome: r.outcome,
            duration_ms: r.duration_ms,
            video: r.video,
        };
        return Shown { call: Some(call), ..none(text) };
    }
    let EventContent::Message { body, attachments } = content else {
        return Shown { notice: true, ..none(text) };
    };
    let Some(body) = crate::apply::decode_body(body.as_bytes()) else { return none(text) };
    let media = attachments.iter().next().map(|m| m.0);
    Shown {
        text,
        notice: false,
        image: body.image.map(|i| crate::model::ImageView {
            width: i.width,
            height: i.height,
            mime: i.mime,
            size: i.size,
            thumbnail_width: i.thumbnail_width,
            thumbnail_height: i.thumbnail_height,
            placeholder: i.placeholder,
            media,
        }),
        file: body.file.map(|f| crate::model::FileView {
            name: crate::model::neutral_name(f.name),
            size: f.size,
            mime: f.mime,
            media,
        }),
        video: body.video.map(|v| crate::model::VideoView {
            duration_ms: v.duration_ms,
            width: v.width,
            height: v.height,
            poster: !v.poster.as_bytes().is_empty(),
        }),
        call: None,
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

/// A file name's extension if it is plain (letters and digits, short), for cache file names.
fn safe_extension(name: &str) -> String {
    name.rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .filter(|e| !e.is_empty() && e.len() <= 8 && e.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or_else(|| "bin".to_owned())
}

/// Ticks from the facts: the outbox row (if still there), the seq, and the other members'
/// lowest watermarks (`others` is how many other members there are).
fn tick(
    outbox: Option<&str>,
    seq: Option<i64>,
    others: i64,
    delivered: i64,
    read: i64,
) -> MessageState {
    match (outbox, seq) {
        (Some("failed"), _) => MessageState::Failed,
        (Some(_), None) | (None, None) => MessageState::Pending,
        (_, Some(seq)) if others > 0 && read >= seq => MessageState::Read,
        (_, Some(seq)) if others > 0 && delivered >= seq => MessageState::Delivered,
        (_, Some(_)) => MessageState::Sent,
    }
}

/// Wall-clock Unix ms (only for display and local ordering of pending items).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
