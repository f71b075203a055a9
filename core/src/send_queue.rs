//! The send queue: everything the server must confirm — messages, room changes, call
//! records — is queued here and delivered by the sync session, in order per room, exactly
//! once, across restarts.
//!
//! An operation is written in **one transaction** with its local echo (a message shows at
//! once, pending) and its outbox row, carrying the request id made here before any I/O; only
//! after that commit is an [`Event`] emitted and the sync session woken. So a message the
//! user sees as pending is on disk, survives kill -9, and is sent exactly once whatever the
//! network does. When to send and when to give up are the rules of [`crate::outbox`];
//! preparing photos and files is [`crate::attachments`].
//!
//! [`Client::send_queue`] lists the queue and retries or discards failed items;
//! [`crate::rooms::Room::send_queue`] sends into one room.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use tidings_proto::{
    bounded::List, codec, Body, ErrorCode, EventContent, MediaId, Request, RequestId, RoomId,
};

use crate::{
    account::my_id,
    apply::{MessageBody, PENDING_POSITION},
    client::{new_request_id, now_ms, request_string},
    model::{Event, OutboxEntry, RoomKey},
    relations::{MessageRef, Relation, RelationKind},
    Client, Error,
};

impl Client {
    /// The queue of operations the server has not confirmed yet.
    pub fn send_queue(&self) -> SendQueue<'_> {
        SendQueue { client: self }
    }
}

/// See [`Client::send_queue`].
#[derive(Debug, Clone, Copy)]
pub struct SendQueue<'a> {
    client: &'a Client,
}

/// What an enqueued operation shows at once, written in its transaction.
pub(crate) enum Echo {
    /// Its local echo: the room's newest event, pending.
    Event(EventContent),
    /// My edit, deletion or reaction of a message of the room: applied to it at once.
    Relation(Relation),
}

impl From<EventContent> for Echo {
    fn from(content: EventContent) -> Self {
        Self::Event(content)
    }
}

/// Where an enqueued operation goes.
pub(crate) enum Target {
    /// An existing room I am a member of.
    Room(RoomKey),
    /// A room made now, with this kind and name (sent sealed after the room's creation:
    /// [`name_message`]).
    NewRoom { kind: &'static str, name: Option<tidings_proto::RoomName> },
}

impl SendQueue<'_> {
    /// Pending and failed items, oldest first.
    pub async fn items(&self) -> Result<Vec<OutboxEntry>, Error> {
        self.client
            .db(|c| {
                let mut st = c.prepare_cached(
                    "SELECT id, request_id, room_id, operation, state, attempts, error,
                            error_code
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
                        r.get::<_, Option<String>>(7)?,
                    ))
                })?;
                let mut out = Vec::new();
                for row in rows {
                    let (id, req, room, op, state, attempts, error, code) = row?;
                    let kind = codec::decode::<Request>(&op).map_or("unknown", |r| r.kind());
                    out.push(OutboxEntry {
                        id,
                        request_id: request_string(&req),
                        room,
                        kind: kind.to_owned(),
                        state,
                        attempts,
                        // A code this build does not know is still a reason, unworded.
                        reason: code.as_deref().map(ErrorCode::from_name),
                        error,
                    });
                }
                Ok(out)
            })
            .await
    }

    /// Puts a failed item back in line (same request id).
    pub async fn retry(&self, id: i64) -> Result<(), Error> {
        let room = self
            .client
            .db(move |c| {
                Ok(c.query_row(
                    "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_ms = 0
                     WHERE id = ?1 AND state = 'failed' RETURNING room_id",
                    [id],
                    |r| r.get::<_, Option<RoomKey>>(0),
                )
                .optional()?)
            })
            .await?
            .ok_or(Error::NoSuchOutboxItem(id))?;
        // The failed bubble turns pending again in an open chat.
        self.client.emit(room.map(|room| Event::TimelineChanged { room }));
        self.client.emit([Event::OutboxChanged, Event::RoomsChanged]);
        self.client.outbox_ready.notify_one();
        Ok(())
    }

    /// Drops a failed item and its local echo.
    pub async fn discard(&self, id: i64) -> Result<(), Error> {
        let (room, file) = self
            .client
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
                let echo: Option<i64> = tx
                    .query_row(
                        "DELETE FROM events WHERE request_id = ?1 AND seq IS NULL RETURNING id",
                        [&req],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(echo) = echo {
                    crate::search::index::forget(&tx, echo)?;
                }
                tx.execute("DELETE FROM outbox WHERE id = ?1", [id])?;
                tx.commit()?;
                // The file it would have uploaded goes too (once uploaded it is the media
                // cache's copy, which the cache manages).
                Ok((room, upload.filter(|_| uploaded.is_none())))
            })
            .await?;
        if let Some(file) = file {
            let _ = tokio::fs::remove_file(self.client.dir().join(file)).await;
        }
        self.client.emit(room.map(|room| Event::TimelineChanged { room }));
        self.client.emit([Event::OutboxChanged, Event::RoomsChanged]);
        Ok(())
    }

    /// Writes an operation and its local echo in one transaction (one trip to the database:
    /// the account, the room's server id and the writes together), then emits and wakes the
    /// sync session. `make` builds the operation from the new request id and the room's
    /// server id (0 while the room is being created; sync fills it in).
    pub(crate) async fn enqueue(
        &self,
        target: Target,
        upload: Option<String>,
        make: impl FnOnce(RequestId, RoomId) -> (Request, Option<Echo>) + Send + 'static,
    ) -> Result<(RoomKey, RequestId), Error> {
        let (room, request) = self
            .client
            .db(move |c| {
                let me = my_id(c)?;
                let tx = c.transaction()?;
                let now = now_ms();
                let (room, server, new_name) = match target {
                    Target::Room(room) => (room, member_room(&tx, room)?, None),
                    Target::NewRoom { kind, name } => {
                        tx.execute(
                            "INSERT INTO rooms (kind, last_activity_ms) VALUES (?1, ?2)",
                            params![kind, now],
                        )?;
                        (tx.last_insert_rowid(), None, name)
                    }
                };
                let request = new_request_id();
                let target = RoomId(server.unwrap_or(0));
                let (mut operation, mut echo) = make(request, target);
                // Nothing written to someone whose verified key changed, until I accept it
                // (crate::verification); quiet messages (a proof) are not queued here.
                if matches!(operation, Request::Send { .. }) {
                    if let Some(user) = crate::verification::held(&tx, room, me)? {
                        return Err(Error::KeyChanged(user));
                    }
                }
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
                if let Some(Echo::Relation(relation)) = &echo {
                    crate::relations::check_mine(&tx, room, me, relation)?;
                }
                // In a room with disappearing messages on, a message carries the timer.
                if let Request::Send { body, .. } = &mut operation {
                    if let Some(stamped) =
                        crate::disappearing::expiry::stamp(&tx, room, body.as_bytes())?
                    {
                        if let Some(Echo::Event(EventContent::Message { body: echoed, .. })) =
                            &mut echo
                        {
                            *echoed = stamped.clone();
                        }
                        *body = stamped;
                    }
                }
                queue_operation(&tx, room, &operation, upload.as_deref(), now)?;
                match echo {
                    Some(Echo::Event(echo)) => write_echo(&tx, room, &request, me, now, &echo)?,
                    Some(Echo::Relation(relation)) => {
                        // After everything logged, in the order queued.
                        let position = PENDING_POSITION + tx.last_insert_rowid();
                        crate::relations::take(&tx, room, me, &request, position, now, &relation)?;
                        crate::relations::remember_mine(&tx, &request)?;
                    }
                    None => {}
                }
                // A new group's name follows its creation, sealed.
                if let Some(name) = new_name {
                    tx.execute(
                        "UPDATE rooms SET name = ?2 WHERE id = ?1",
                        params![room, name.as_str()],
                    )?;
                    queue_operation(&tx, room, &quiet_naming(&tx, target, &name)?, None, now)?;
                }
                tx.commit()?;
                Ok((room, request))
            })
            .await?;
        self.client.emit([
            Event::TimelineChanged { room },
            Event::RoomsChanged,
            Event::OutboxChanged,
        ]);
        self.client.outbox_ready.notify_one();
        Ok((room, request))
    }

    /// Queues a room operation without a local echo (the room's event shows it once the
    /// server has it; the queue shows it until then).
    pub(crate) async fn room_operation(
        &self,
        room: RoomKey,
        make: impl FnOnce(RequestId, RoomId) -> Request + Send + 'static,
    ) -> Result<RequestId, Error> {
        let (_, request) = self
            .enqueue(Target::Room(room), None, move |request, room| (make(request, room), None))
            .await?;
        Ok(request)
    }
}

/// What sends into one room: [`crate::rooms::Room::send_queue`].
#[derive(Debug, Clone, Copy)]
pub struct RoomSendQueue<'a> {
    pub(crate) client: &'a Client,
    pub(crate) room: RoomKey,
}

impl RoomSendQueue<'_> {
    /// Sends a text message: saved at once as pending, delivered by sync.
    pub async fn send_text(&self, text: &str) -> Result<RequestId, Error> {
        self.send(MessageBody::text(text), None, Vec::new()).await
    }

    /// Sends a photo with an optional caption. The photo is prepared first
    /// ([`crate::attachments::photo`]); a file that cannot be a photo is refused with
    /// [`Error::Photo`] and nothing is queued. Then the message appears at once as pending,
    /// with its thumbnail, and the queue uploads the full image and sends the message,
    /// across restarts.
    pub async fn send_image(&self, path: &Path, caption: &str) -> Result<RequestId, Error> {
        self.client.require_account().await?;
        let (body, file) = crate::attachments::photo(self.client.dir(), path, caption).await?;
        self.send(body, Some(file), Vec::new()).await
    }

    /// Sends any file (at most [`crate::attachments::MAX_FILE_BYTES`]) as an attachment,
    /// prepared by [`crate::attachments::file`] (a video gets a preview). The upload is
    /// resumable and continues after a restart.
    pub async fn send_file(&self, path: &Path) -> Result<RequestId, Error> {
        self.client.require_account().await?;
        let (body, file) = crate::attachments::file(self.client.dir(), path).await?;
        self.send(body, Some(file), Vec::new()).await
    }

    /// Sends a text message replying to message `to` (its request id), which it quotes.
    pub async fn reply(&self, to: RequestId, text: &str) -> Result<RequestId, Error> {
        let body = MessageBody { reply_to: Some(message_ref(to)), ..MessageBody::text(text) };
        self.send(body, None, Vec::new()).await
    }

    /// Replaces the text (a photo's caption) of my message `to`: shown as edited on every
    /// device, the earlier versions kept ([`crate::relations`]). Also offline, also while
    /// `to` is pending.
    pub async fn edit(&self, to: RequestId, text: &str) -> Result<RequestId, Error> {
        self.relate(to, RelationKind::Edit { text: text.to_owned() }).await
    }

    /// Deletes my message `to` for everyone: its content goes on every device, a stub stays.
    pub async fn delete_for_everyone(&self, to: RequestId) -> Result<RequestId, Error> {
        self.relate(to, RelationKind::Delete).await
    }

    /// Reacts to message `to` with `emoji` (toggled off by [`Self::unreact`]).
    pub async fn react(&self, to: RequestId, emoji: &str) -> Result<RequestId, Error> {
        self.relate(to, RelationKind::React { emoji: crate::relations::emoji(emoji)? }).await
    }

    /// Takes back my reaction `emoji` to message `to`.
    pub async fn unreact(&self, to: RequestId, emoji: &str) -> Result<RequestId, Error> {
        self.relate(to, RelationKind::Unreact { emoji: crate::relations::emoji(emoji)? }).await
    }

    /// Forwards message `message` of room `from` here: its text as it shows now (edited) and
    /// its photo or file — the same uploaded copy, whose key travels sealed for this room's
    /// members, so nothing is uploaded again — marked as forwarded. A message still uploading
    /// its file cannot be forwarded yet ([`Error::Invalid`]).
    pub async fn forward(&self, from: RoomKey, message: RequestId) -> Result<RequestId, Error> {
        let (body, attachments) = self.client.db(move |c| forwarded(c, from, &message)).await?;
        self.send(body, None, attachments).await
    }

    /// Sets the room's disappearing-message timer to `seconds` (`0`: off) for what is sent
    /// after it, on every member's devices ([`crate::disappearing`]).
    pub async fn set_disappearing(&self, seconds: u32) -> Result<RequestId, Error> {
        let seconds = crate::disappearing::timer(seconds)?;
        let body = MessageBody { disappearing: Some(seconds), ..MessageBody::text("") };
        self.send(body, None, Vec::new()).await
    }

    /// Queues relation `kind` of message `to`, applied here at once.
    async fn relate(&self, to: RequestId, kind: RelationKind) -> Result<RequestId, Error> {
        let relates = Some(Relation { to: message_ref(to), kind });
        self.send(MessageBody { relates, ..MessageBody::text("") }, None, Vec::new()).await
    }

    /// Queues a message with its local echo (for a relation, its effect on the message it is
    /// about). `upload` is the file (relative to the profile) the queue uploads first as the
    /// message's attachment; it is deleted if queueing fails.
    async fn send(
        &self,
        body: MessageBody,
        upload: Option<String>,
        attachments: Vec<MediaId>,
    ) -> Result<RequestId, Error> {
        let relation = body.relates.clone();
        let mut body = body;
        // `@name`s of the room's members, resolved here (only a text with an `@` pays).
        if body.relates.is_none() && body.text.contains('@') {
            let (room, text) = (self.room, body.text.clone());
            body.mentions =
                self.client.db(move |c| crate::mentions::resolve(c, room, &text)).await?;
        }
        let queued = async {
            let body = codec::encode(&body).map_err(|e| Error::Internal(e.to_string()))?;
            // It is sealed for the room's group at flush: the sealed message must still fit
            // a body.
            if body.len() > tidings_proto::limits::MAX_PLAINTEXT_BYTES {
                return Err(Error::Invalid(format!(
                    "a message may be at most {} bytes",
                    tidings_proto::limits::MAX_PLAINTEXT_BYTES
                )));
            }
            let body = Body::new(body).map_err(|e| Error::Invalid(e.to_string()))?;
            let target = Target::Room(self.room);
            self.client
                .send_queue()
                .enqueue(target, upload.clone(), move |request, room| {
                    let attachments: List<MediaId, { tidings_proto::limits::MAX_ATTACHMENTS }> =
                        List::new(attachments).expect("a stored message's attachments fit");
                    let echo = EventContent::Message {
                        body: body.clone(),
                        attachments: attachments.clone(),
                    };
                    // A deletion for everyone also has the server drop the message.
                    let redacts = match &relation {
                        Some(Relation { to, kind: RelationKind::Delete }) => {
                            crate::stamp::request_id(to.as_bytes())
                        }
                        _ => None,
                    };
                    let echo = match relation {
                        Some(relation) => Echo::Relation(relation),
                        None => Echo::Event(echo),
                    };
                    (Request::Send { request, room, body, attachments, redacts }, Some(echo))
                })
                .await
        }
        .await;
        match (queued, upload) {
            (Ok((_, request)), _) => Ok(request),
            (Err(e), Some(file)) => {
                let _ = tokio::fs::remove_file(self.client.dir().join(file)).await;
                Err(e)
            }
            (Err(e), None) => Err(e),
        }
    }
}

/// The body and attachments of a forward of message `request` of room `from`.
fn forwarded(
    c: &Connection,
    from: RoomKey,
    request: &RequestId,
) -> Result<(MessageBody, Vec<MediaId>), Error> {
    let missing = || Error::NoSuchMessage(request.to_string());
    let content: Vec<u8> = c
        .prepare_cached(
            "SELECT content FROM events
             WHERE request_id = ?1 AND room_id = ?2 AND is_message = 1 AND deleted = 0
                 AND hidden = 0 AND (expires_ms IS NULL OR expires_ms > ?3)",
        )?
        .query_row(params![&request.0[..], from, now_ms()], |r| r.get(0))
        .optional()?
        .ok_or_else(missing)?;
    let Ok(EventContent::Message { body, attachments }) = codec::decode::<EventContent>(&content)
    else {
        return Err(missing());
    };
    let original = crate::apply::decode_body(body.as_bytes()).ok_or_else(missing)?;
    if original.relates.is_some() || original.disappearing.is_some() {
        return Err(missing());
    }
    let has_file = original.image.is_some() || original.file.is_some();
    if has_file && attachments.is_empty() {
        return Err(Error::Invalid("its file is still being sent: forward it once it is".into()));
    }
    let text = crate::relations::last_edit(c, &request.0)?.unwrap_or(original.text);
    let body = MessageBody {
        image: original.image,
        file: original.file,
        video: original.video,
        sealed: original.sealed,
        forwarded: true,
        ..MessageBody::text(text)
    };
    Ok((body, attachments.iter().copied().collect()))
}

/// How a body names message `to`.
fn message_ref(to: RequestId) -> MessageRef {
    MessageRef::new(to.0.to_vec()).expect("a request id is 16 bytes")
}

/// The message renaming a group room `name` — sealed for the room's group like any message,
/// so the server never sees a group's name — and its echo (core/src/apply.rs turns the
/// message into a rename where it is opened).
pub(crate) fn rename_message(
    request: RequestId,
    room: RoomId,
    name: tidings_proto::RoomName,
    body: Body,
) -> (Request, EventContent) {
    let send = Request::Send { request, room, body, attachments: List::empty(), redacts: None };
    (send, EventContent::Renamed { name })
}

/// The body of the message naming a room `name` ([`rename_message`], [`quiet_naming`]).
pub(crate) fn naming_body(name: &tidings_proto::RoomName, rename: bool) -> Result<Body, Error> {
    let body = codec::encode(&MessageBody::naming(name.as_str(), rename))
        .map_err(|e| Error::Internal(e.to_string()))?;
    Body::new(body).map_err(|e| Error::Internal(e.to_string()))
}

/// A message naming group `room` that shows nothing (a new group's name, or the name told to
/// devices that joined), remembered so that this device, which cannot open it, passes it
/// over when the log brings it back.
pub(crate) fn quiet_naming(
    tx: &Connection,
    room: RoomId,
    name: &tidings_proto::RoomName,
) -> Result<Request, Error> {
    quiet_message(tx, room, naming_body(name, false)?)
}

/// A message that shows nothing, remembered so that this device, which cannot open it,
/// passes it over when the log brings it back.
fn quiet_message(tx: &Connection, room: RoomId, body: Body) -> Result<Request, Error> {
    let request = new_request_id();
    tx.prepare_cached("INSERT INTO quiet_messages (request_id) VALUES (?1)")?
        .execute([&request.0[..]])?;
    Ok(Request::Send { request, room, body, attachments: List::empty(), redacts: None })
}

/// Queues `body` into `room` (server id `room_id`) as a quiet message (a verification proof).
pub(crate) fn queue_quiet(
    tx: &Connection,
    room: RoomKey,
    room_id: RoomId,
    body: &MessageBody,
) -> Result<(), Error> {
    let body = codec::encode(body).map_err(|e| Error::Internal(e.to_string()))?;
    let body = Body::new(body).map_err(|e| Error::Internal(e.to_string()))?;
    queue_operation(tx, room, &quiet_message(tx, room_id, body)?, None, now_ms())
}

/// Queues the quiet namings apply asked for (`rooms.name_to_tell`: devices joined a group
/// whose name this device is to tell them, core/src/apply.rs). Runs on every poll of the
/// sync session: when there are none (nearly always) it is one indexed read, no transaction.
pub(crate) fn queue_name_tellings(c: &mut Connection) -> Result<(), Error> {
    let rooms: Vec<(RoomKey, Option<String>, Option<i64>)> = {
        let mut st =
            c.prepare_cached("SELECT id, name, server_id FROM rooms WHERE name_to_tell = 1")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    if rooms.is_empty() {
        return Ok(());
    }
    let tx = c.transaction()?;
    for (room, name, server) in &rooms {
        let name = name.clone().and_then(|n| tidings_proto::RoomName::new(n).ok());
        if let (Some(name), Some(server)) = (name, server) {
            let send = quiet_naming(&tx, RoomId(*server), &name)?;
            queue_operation(&tx, *room, &send, None, now_ms())?;
        }
        tx.execute("UPDATE rooms SET name_to_tell = 0 WHERE id = ?1", [room])?;
    }
    tx.commit()?;
    Ok(())
}

/// Writes the local echo of `request` as the room's newest (pending) event. A rename's echo
/// names the room at once; only a message's is the room's last message.
fn write_echo(
    tx: &Connection,
    room: RoomKey,
    request: &RequestId,
    me: i64,
    now: i64,
    echo: &EventContent,
) -> Result<(), Error> {
    let preview = crate::apply::describe(echo);
    let content = codec::encode(echo).map_err(|e| Error::Internal(e.to_string()))?;
    let is_message = matches!(echo, EventContent::Message { .. });
    tx.execute(
        "INSERT INTO events (room_id, seq, position, request_id, sender, at_ms, content,
                             is_message)
         VALUES (?1, NULL, 0, ?2, ?3, ?4, ?5, ?6)",
        params![room, &request.0[..], me, now, content, is_message],
    )?;
    let id = tx.last_insert_rowid();
    tx.execute(
        "UPDATE events SET position = ?2 WHERE id = ?1",
        params![id, PENDING_POSITION + id],
    )?;
    // The body, decoded once: what search finds, and a disappearing message or setting.
    let body = match echo {
        EventContent::Message { body, .. } => crate::apply::decode_body(body.as_bytes()),
        _ => None,
    };
    if let Some(text) = body.as_ref().and_then(crate::search::index::text_of) {
        crate::search::index::put(tx, id, &text)?;
    }
    match body {
        Some(MessageBody { expires_in: Some(seconds), .. }) => {
            crate::disappearing::expiry::start(tx, id, now, seconds)?;
        }
        Some(MessageBody { disappearing: Some(seconds), .. }) => {
            crate::disappearing::expiry::set(tx, room, seconds)?;
        }
        _ => {}
    }
    if let EventContent::Renamed { name } = echo {
        tx.execute("UPDATE rooms SET name = ?2 WHERE id = ?1", params![room, name.as_str()])?;
        return Ok(());
    }
    tx.execute(
        "UPDATE rooms SET last_event_id = ?2, last_activity_ms = ?3, last_preview = ?4,
             last_sender = ?5, last_message_seq = NULL, last_request_id = ?6
         WHERE id = ?1",
        params![room, id, now, preview, me, &request.0[..]],
    )?;
    Ok(())
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
