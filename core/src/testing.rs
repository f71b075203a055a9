//! For unit tests: a room of a real profile database whose log is applied event by event
//! through crate::apply, as sync applies it.

use rusqlite::{params, Connection};
use tidings_proto::{bounded::List, codec, Body, DeviceId, EventContent, RequestId, RoomEvent};
use tidings_proto::{RoomId, Seq, UserId};

use crate::apply::{event, Applied};
use crate::body::{MessageBody, MessageRef, Relation, RelationKind};

/// This device's user.
pub(crate) const ME: i64 = 1;
/// Another member.
pub(crate) const ALICE: i64 = 2;
/// A third member.
pub(crate) const BOB: i64 = 3;

/// Room 1 (server id 10), with me, alice and bob as members.
pub(crate) struct LogRoom {
    _dir: tempfile::TempDir,
    pub(crate) c: Connection,
    pub(crate) seq: Seq,
    /// When the next events were sent; by default a second per seq from 1970.
    pub(crate) at_ms: Option<i64>,
}

impl LogRoom {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let c = crate::store::open(&dir.path().join("t.db"), None).unwrap();
        c.execute("INSERT INTO rooms (id, server_id, kind) VALUES (1, 10, 'group')", []).unwrap();
        for (id, name) in [(ME, "me"), (ALICE, "alice"), (BOB, "bob")] {
            c.execute("INSERT INTO users (id, username) VALUES (?1, ?2)", params![id, name])
                .unwrap();
            c.execute("INSERT INTO members (room_id, user_id, active) VALUES (1, ?1, 1)", [id])
                .unwrap();
        }
        Self { _dir: dir, c, seq: 0, at_ms: None }
    }

    /// Applies the next event of the log: `body` from `sender`; its request id.
    pub(crate) fn log(&mut self, sender: i64, body: MessageBody) -> RequestId {
        let request = crate::stamp::new_request_id();
        self.log_as(sender, request, body);
        request
    }

    pub(crate) fn log_as(&mut self, sender: i64, request: RequestId, body: MessageBody) {
        self.seq += 1;
        let body = Body::new(codec::encode(&body).unwrap()).unwrap();
        let e = RoomEvent {
            room: RoomId(10),
            seq: self.seq,
            sender: UserId(sender),
            device: DeviceId(1),
            request,
            at_ms: self.at_ms.unwrap_or(self.seq as i64 * 1000),
            content: EventContent::Message { body, attachments: List::empty() },
        };
        assert_eq!(event(&self.c, 1, ME, &e).unwrap(), Applied::Applied);
    }

    /// Applies relation `kind` of message `to` from `sender`.
    pub(crate) fn relate(&mut self, sender: i64, to: RequestId, kind: RelationKind) -> RequestId {
        let relates = Some(Relation { to: MessageRef::new(to.0.to_vec()).unwrap(), kind });
        self.log(sender, MessageBody { relates, ..MessageBody::text("") })
    }
}
