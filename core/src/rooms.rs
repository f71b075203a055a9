//! Rooms: the room list, opening and creating rooms, and what a member does to a room
//! (invite, leave, accept or decline a request, rename, read, type), and whether sending
//! into it is held by a member's changed key ([`Room::held_by`]).
//!
//! [`Client::rooms`] is the list; [`Client::room`] is one room, with its
//! [`Room::timeline`] and its [`Room::send_queue`]. Changes the server must confirm go
//! through the send queue ([`crate::send_queue`]) like messages; typing is ephemeral and
//! goes over the live session.

use rusqlite::{params, OptionalExtension};
use tidings_proto::{
    bounded::{List, Text},
    Request, RoomId, RoomKind, Seq,
};

use crate::{
    account::stored,
    model::{MemberReceipt, RoomKey, RoomSummary},
    send_queue::{RoomSendQueue, Target},
    timeline::{tick, Timeline},
    Client, Error,
};

impl Client {
    /// The room list; opening and creating rooms.
    pub fn rooms(&self) -> Rooms<'_> {
        Rooms { client: self }
    }

    /// One room (by its local key), to change, read or send into.
    pub fn room(&self, room: RoomKey) -> Room<'_> {
        Room { client: self, room }
    }
}

/// See [`Client::rooms`].
#[derive(Debug, Clone, Copy)]
pub struct Rooms<'a> {
    client: &'a Client,
}

impl Rooms<'_> {
    /// The room list, most recently active first.
    pub async fn list(&self) -> Result<Vec<RoomSummary>, Error> {
        let typing = self
            .client
            .typing
            .lock()
            .map(|mut t| t.snapshot(std::time::Instant::now()))
            .unwrap_or_default();
        self.client
            .db(move |c| {
                let me = stored(c)?.map_or(0, |a| a.user_id);
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
                        END,
                        d.text, r.disappearing_s, r.muted, r.unread_mentions
                 FROM rooms r
                 LEFT JOIN outbox o ON o.request_id = r.last_request_id
                 LEFT JOIN drafts d ON d.room_id = r.id
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
                        request_from: r
                            .get::<_, Option<String>>(16)?
                            .map(crate::model::neutral_name),
                        draft: r.get(17)?,
                        disappearing_s: r.get::<_, Option<u32>>(18)?.filter(|s| *s > 0),
                        muted: r.get(19)?,
                        unread_mentions: r.get::<_, i64>(20)? as u64,
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

    /// Creates a room with the given members (user ids known from lookups), at once locally:
    /// the room and its send queue item are written together.
    pub async fn create(
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
        // A group's name is not sent with its creation: it follows sealed (the server never
        // sees it).
        if let Some(name) = &name {
            tidings_proto::validate::name(name).map_err(|e| Error::Invalid(e.to_string()))?;
        }
        let name = name.filter(|_| kind == RoomKind::Group);
        let target = Target::NewRoom { kind: kind_str, name };
        let (room, _) = self
            .client
            .send_queue()
            .enqueue(target, None, move |request, _| {
                (Request::CreateRoom { request, kind, name: None, members: ids }, None)
            })
            .await?;
        Ok(room)
    }

    /// My direct room with `username`: the one we have, or a new one (usable at once, made
    /// on the server when online). Looking the user up needs the network.
    pub async fn open_direct(&self, username: &str) -> Result<RoomKey, Error> {
        let user = self.client.contacts().lookup(username.trim()).await?;
        if let Some(room) = self.direct_with(user).await? {
            return Ok(room);
        }
        self.create(RoomKind::Direct, None, vec![user]).await
    }

    /// My direct room with `user`, if there is one (the newest, should there be several).
    pub async fn direct_with(&self, user: i64) -> Result<Option<RoomKey>, Error> {
        self.client
            .db(move |c| {
                Ok(c.prepare_cached(
                    "SELECT r.id FROM rooms r JOIN members m ON m.room_id = r.id
                     WHERE r.kind = 'direct' AND r.member = 1 AND m.user_id = ?1
                     ORDER BY r.id DESC LIMIT 1",
                )?
                .query_row([user], |r| r.get(0))
                .optional()?)
            })
            .await
    }
}

/// See [`Client::room`].
#[derive(Debug, Clone, Copy)]
pub struct Room<'a> {
    client: &'a Client,
    room: RoomKey,
}

/// See [`Room::first_unread`]: what shows at `now` (an expired message does not).
fn first_unread(
    c: &rusqlite::Connection,
    room: RoomKey,
    me: i64,
    now: i64,
) -> Result<Option<i64>, Error> {
    Ok(c.prepare_cached(
        "SELECT e.position FROM events e JOIN rooms r ON r.id = e.room_id
         WHERE e.room_id = ?1 AND e.seq > r.read_seq AND e.sender != ?2
             AND e.is_message = 1 AND e.hidden = 0
             AND (e.expires_ms IS NULL OR e.expires_ms > ?3)
         ORDER BY e.seq LIMIT 1",
    )?
    .query_row(params![room, me, now], |r| r.get(0))
    .optional()?)
}

impl<'a> Room<'a> {
    /// Its local id.
    pub(crate) fn key(&self) -> RoomKey {
        self.room
    }

    /// The client it belongs to.
    pub(crate) fn client(&self) -> &'a Client {
        self.client
    }

    /// Its messages.
    pub fn timeline(&self) -> Timeline<'a> {
        Timeline { client: self.client, room: self.room }
    }

    /// Sending into it.
    pub fn send_queue(&self) -> RoomSendQueue<'a> {
        RoomSendQueue { client: self.client, room: self.room }
    }

    /// The room's server id, if the server has made it (whatever my membership): a room
    /// made offline has none until a sync.
    pub async fn server_id(&self) -> Result<Option<i64>, Error> {
        let room = self.room;
        self.client
            .db(move |c| {
                Ok(c.prepare_cached("SELECT server_id FROM rooms WHERE id = ?1")?
                    .query_row([room], |r| r.get(0))
                    .optional()?
                    .flatten())
            })
            .await
    }

    /// Someone in the room whose verified identity key changed (their username), if any:
    /// sending here is held ([`Error::KeyChanged`]) until I accept their new key or verify
    /// them again (crate::verification). Works offline.
    pub async fn held_by(&self) -> Result<Option<String>, Error> {
        let room = self.room;
        self.client
            .db(move |c| {
                let me = stored(c)?.map_or(0, |a| a.user_id);
                crate::verification::held(c, room, me)
            })
            .await
    }

    /// Invites a user (by id) to a group room.
    pub async fn invite(&self, user: i64) -> Result<tidings_proto::RequestId, Error> {
        self.operation(move |request, room| Request::Invite {
            request,
            room,
            user: tidings_proto::UserId(user),
        })
        .await
    }

    /// Leaves the room.
    pub async fn leave(&self) -> Result<tidings_proto::RequestId, Error> {
        self.operation(|request, room| Request::Leave { request, room }).await
    }

    /// Accepts a request: the room becomes one of my chats, its members may call me.
    pub async fn accept(&self) -> Result<tidings_proto::RequestId, Error> {
        self.operation(|request, room| Request::Accept { request, room }).await
    }

    /// Declines a request: I leave the room (its sender sees that I left).
    pub async fn decline(&self) -> Result<tidings_proto::RequestId, Error> {
        let room = self.room;
        let is_request = self
            .client
            .db(move |c| {
                Ok(c.prepare_cached("SELECT request_from IS NOT NULL FROM rooms WHERE id = ?1")?
                    .query_row([room], |r| r.get::<_, bool>(0))
                    .optional()?)
            })
            .await?;
        match is_request {
            None => Err(Error::NoSuchRoom(room)),
            Some(false) => Err(Error::NotARequest(room)),
            Some(true) => self.leave().await,
        }
    }

    /// Renames a group room: at once here, and for the other members by a message sealed
    /// for the room's group, so the server never sees the name.
    pub async fn rename(&self, name: &str) -> Result<tidings_proto::RequestId, Error> {
        let name = Text::new(name).map_err(|e| Error::Invalid(e.to_string()))?;
        tidings_proto::validate::name(&name).map_err(|e| Error::Invalid(e.to_string()))?;
        let room = self.room;
        let kind: Option<String> = self
            .client
            .db(move |c| {
                Ok(c.prepare_cached("SELECT kind FROM rooms WHERE id = ?1")?
                    .query_row([room], |r| r.get(0))
                    .optional()?)
            })
            .await?;
        match kind.as_deref() {
            None => return Err(Error::NoSuchRoom(room)),
            Some("group") => {}
            Some(_) => return Err(Error::Invalid("only a group has a name".into())),
        }
        let body = crate::send_queue::naming_body(&name, true)?;
        let (_, request) = self
            .client
            .send_queue()
            .enqueue(Target::Room(self.room), None, move |request, room| {
                let (send, echo) = crate::send_queue::rename_message(request, room, name, body);
                (send, Some(echo.into()))
            })
            .await?;
        Ok(request)
    }

    async fn operation(
        &self,
        make: impl FnOnce(tidings_proto::RequestId, RoomId) -> Request + Send + 'static,
    ) -> Result<tidings_proto::RequestId, Error> {
        self.client.send_queue().room_operation(self.room, make).await
    }

    /// Marks everything in the room read (sent to the server by sync).
    pub async fn mark_read(&self) -> Result<(), Error> {
        let room = self.room;
        self.client
            .db(move |c| {
                c.execute(
                    "UPDATE rooms SET read_seq = synced_seq, unread = 0, unread_mentions = 0
                     WHERE id = ?1",
                    [room],
                )?;
                Ok(())
            })
            .await?;
        self.client.emit([crate::model::Event::RoomsChanged]);
        self.client.outbox_ready.notify_one();
        Ok(())
    }

    /// The first message from someone else after my read marker — where the "unread"
    /// divider goes and where "jump to first unread" goes — as its timeline position; `None`
    /// when all is read. Ask before [`Self::mark_read`] moves the marker.
    pub async fn first_unread(&self) -> Result<Option<i64>, Error> {
        let room = self.room;
        self.client
            .db(move |c| {
                let me = stored(c)?.map_or(0, |a| a.user_id);
                first_unread(c, room, me, crate::stamp::now_ms())
            })
            .await
    }

    /// Mutes the room (or unmutes it): a muted room notifies only of messages that mention
    /// me. Local to this device.
    pub async fn set_muted(&self, muted: bool) -> Result<(), Error> {
        let room = self.room;
        let changed = self
            .client
            .db(move |c| {
                Ok(c.execute("UPDATE rooms SET muted = ?2 WHERE id = ?1", params![room, muted])?)
            })
            .await?;
        if changed == 0 {
            return Err(Error::NoSuchRoom(room));
        }
        self.client.emit([crate::model::Event::RoomsChanged]);
        Ok(())
    }

    /// Who of the room's other current members has got and read message `seq` (from their
    /// receipt watermarks; for "read by" in groups), by username.
    pub async fn read_by(&self, seq: Seq) -> Result<Vec<MemberReceipt>, Error> {
        let room = self.room;
        self.client
            .db(move |c| {
                let me = stored(c)?.map_or(0, |a| a.user_id);
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

    /// The request id of message `seq` (how edits, deletions, reactions and replies name it).
    pub async fn message_at(&self, seq: Seq) -> Result<tidings_proto::RequestId, Error> {
        let room = self.room;
        let found: Option<Vec<u8>> = self
            .client
            .db(move |c| {
                Ok(c.prepare_cached(
                    "SELECT request_id FROM events
                     WHERE room_id = ?1 AND seq = ?2 AND is_message = 1 AND hidden = 0",
                )?
                .query_row(params![room, seq as i64], |r| r.get(0))
                .optional()?)
            })
            .await?;
        found
            .and_then(|b| crate::stamp::request_id(&b))
            .ok_or_else(|| Error::NoSuchMessage(format!("#{seq}")))
    }

    /// Deletes message `to` for me: it no longer shows on this device (everyone else, and my
    /// other devices, keep it; crate::relations).
    pub async fn delete_for_me(&self, to: tidings_proto::RequestId) -> Result<(), Error> {
        let room = self.room;
        let hidden = self
            .client
            .db(move |c| {
                let tx = c.transaction()?;
                let hidden: Option<i64> = tx
                    .prepare_cached(
                        "UPDATE events SET hidden = 1
                         WHERE request_id = ?1 AND room_id = ?2 AND is_message = 1 AND hidden = 0
                         RETURNING id",
                    )?
                    .query_row(params![&to.0[..], room], |r| r.get(0))
                    .optional()?;
                if let Some(id) = hidden {
                    crate::search::index::forget(&tx, id)?;
                }
                tx.commit()?;
                Ok(usize::from(hidden.is_some()))
            })
            .await?;
        if hidden == 0 {
            return Err(Error::NoSuchMessage(to.to_string()));
        }
        self.client.emit([crate::model::Event::TimelineChanged { room }]);
        Ok(())
    }

    /// Tells the room's other members I am (or stopped) typing: over the live session, or
    /// a connection of its own when there is none.
    pub async fn typing(&self, active: bool) -> Result<(), Error> {
        let server = self.server_id().await?.ok_or(Error::NoSuchRoom(self.room))?;
        crate::sync::notify(self.client, Request::Typing { room: RoomId(server), active }).await
    }
}

#[cfg(test)]
mod tests {
    use crate::body::MessageBody;
    use crate::testing::{LogRoom, ALICE, BOB, ME};

    /// Where the unread divider goes: the first message from someone else after my read
    /// marker, not mine, not one that expired.
    #[test]
    fn the_first_unread_is_the_oldest_shown_message_of_others_after_the_marker() {
        let mut room = LogRoom::new();
        let now = crate::stamp::now_ms();
        room.at_ms = Some(now);
        room.log(ALICE, MessageBody::text("read already"));
        room.c.execute("UPDATE rooms SET read_seq = 1", []).unwrap();
        assert_eq!(super::first_unread(&room.c, 1, ME, now).unwrap(), None, "all read");
        room.log(ME, MessageBody::text("mine"));
        let expiring = MessageBody { expires_in: Some(60), ..MessageBody::text("soon gone") };
        room.log(BOB, expiring);
        room.log(ALICE, MessageBody::text("still here"));
        let position = |seq: i64| -> i64 {
            room.c
                .query_row("SELECT position FROM events WHERE seq = ?1", [seq], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(super::first_unread(&room.c, 1, ME, now).unwrap(), Some(position(3)));
        let later = now + 61_000;
        assert_eq!(super::first_unread(&room.c, 1, ME, later).unwrap(), Some(position(4)));
    }
}
