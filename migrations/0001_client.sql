-- The client's first schema: the signed-in account, rooms with their counters, members with
-- receipt watermarks, the timeline (server events and local echoes), and the outbox of
-- operations the server has not confirmed. Every table is STRICT.

CREATE TABLE "account" (
    -- The session this profile is signed in with: at most one row.
    "id" INTEGER PRIMARY KEY CHECK ("id" = 1),
    "server" TEXT NOT NULL,
    "user_id" INTEGER NOT NULL,
    "username" TEXT NOT NULL,
    "device_id" INTEGER NOT NULL,
    "token" TEXT NOT NULL
) STRICT;

CREATE TABLE "users" (
    -- Users met in rooms, for their names.
    "id" INTEGER PRIMARY KEY,
    "username" TEXT NOT NULL
) STRICT;

CREATE TABLE "rooms" (
    -- A room by local id; "server_id" is set once the server has created it, so a room made
    -- offline can hold messages before it exists on the server.
    "id" INTEGER PRIMARY KEY AUTOINCREMENT,
    "server_id" INTEGER UNIQUE,
    "kind" TEXT NOT NULL CHECK ("kind" IN ('direct', 'group')),
    "name" TEXT,
    "member" INTEGER NOT NULL DEFAULT 1,
    -- The gap-free prefix of the server's log applied here.
    "synced_seq" INTEGER NOT NULL DEFAULT 0,
    -- My read watermark, and how far the server has acknowledged it.
    "read_seq" INTEGER NOT NULL DEFAULT 0,
    "read_sent_seq" INTEGER NOT NULL DEFAULT 0,
    -- Kept in step with the timeline so that the room list never counts rows.
    "unread" INTEGER NOT NULL DEFAULT 0,
    -- The newest message, kept on the room row so that the room list reads no timeline:
    -- its event id, text, sender, seq (NULL while pending) and request id.
    "last_event_id" INTEGER,
    "last_preview" TEXT,
    "last_sender" INTEGER,
    "last_message_seq" INTEGER,
    "last_request_id" BLOB,
    -- The other current members: how many, and their lowest watermarks (ticks for my
    -- messages), kept up to date when receipts or members change.
    "others" INTEGER NOT NULL DEFAULT 0,
    "others_delivered_seq" INTEGER NOT NULL DEFAULT 0,
    "others_read_seq" INTEGER NOT NULL DEFAULT 0,
    "last_activity_ms" INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX "rooms_by_activity" ON "rooms" ("last_activity_ms" DESC, "id" DESC);

CREATE TABLE "members" (
    -- Room membership with everyone's receipt watermarks (receipts are watermarks, not rows).
    "room_id" INTEGER NOT NULL REFERENCES "rooms" ("id"),
    "user_id" INTEGER NOT NULL,
    "active" INTEGER NOT NULL,
    "delivered_seq" INTEGER NOT NULL DEFAULT 0,
    "read_seq" INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY ("room_id", "user_id")
) STRICT, WITHOUT ROWID;

CREATE TABLE "events" (
    -- The timeline: server events (with their seq) and local echoes (seq NULL until the
    -- server confirms them). "position" orders the timeline: seq << 20 for server events,
    -- 2^62 + id for local echoes, so pending items stay last and keyset paging is one index.
    "id" INTEGER PRIMARY KEY AUTOINCREMENT,
    "room_id" INTEGER NOT NULL REFERENCES "rooms" ("id"),
    "seq" INTEGER,
    "position" INTEGER NOT NULL,
    "request_id" BLOB NOT NULL UNIQUE,
    "sender" INTEGER NOT NULL,
    "at_ms" INTEGER NOT NULL,
    "content" BLOB NOT NULL,
    -- A message (counts as unread), not a membership, name or call event.
    "is_message" INTEGER NOT NULL DEFAULT 0,
    UNIQUE ("room_id", "seq")
) STRICT;
CREATE INDEX "events_timeline" ON "events" ("room_id", "position");

CREATE TABLE "outbox" (
    -- Operations the server has not confirmed, written in the same transaction as their
    -- local echo. Sent in id order per room; "error" is the stored reason of a failure.
    "id" INTEGER PRIMARY KEY AUTOINCREMENT,
    "request_id" BLOB NOT NULL UNIQUE,
    "room_id" INTEGER REFERENCES "rooms" ("id"),
    "operation" BLOB NOT NULL,
    "state" TEXT NOT NULL CHECK ("state" IN ('pending', 'failed')),
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "next_attempt_ms" INTEGER NOT NULL DEFAULT 0,
    "error" TEXT,
    "created_ms" INTEGER NOT NULL
) STRICT;
CREATE INDEX "outbox_by_room" ON "outbox" ("room_id", "id");
