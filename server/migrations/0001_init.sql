-- The first schema of the server: accounts, device sessions, room logs with receipts,
-- idempotency records and media. Every table is STRICT; ids are AUTOINCREMENT so that a
-- deleted id is never handed out again.

CREATE TABLE "users" (
    -- An account. Usernames are lower-case and immutable.
    "id" INTEGER PRIMARY KEY AUTOINCREMENT,
    "username" TEXT NOT NULL UNIQUE,
    "password_hash" TEXT NOT NULL,
    "created_ms" INTEGER NOT NULL
) STRICT;

CREATE TABLE "sessions" (
    -- One signed-in device. The token's secret is stored only as its SHA-256.
    "id" INTEGER PRIMARY KEY AUTOINCREMENT,
    "user_id" INTEGER NOT NULL REFERENCES "users" ("id"),
    "secret_hash" BLOB NOT NULL,
    "name" TEXT NOT NULL,
    "created_ms" INTEGER NOT NULL,
    "last_seen_ms" INTEGER NOT NULL,
    "expires_ms" INTEGER NOT NULL,
    "revoked_ms" INTEGER
) STRICT;
CREATE INDEX "sessions_by_user" ON "sessions" ("user_id");

CREATE TABLE "rooms" (
    -- A room and the head of its log. "last_seq" is the seq of its newest event.
    "id" INTEGER PRIMARY KEY AUTOINCREMENT,
    "kind" TEXT NOT NULL CHECK ("kind" IN ('direct', 'group')),
    "name" TEXT,
    "creator" INTEGER NOT NULL REFERENCES "users" ("id"),
    "last_seq" INTEGER NOT NULL DEFAULT 0,
    "created_ms" INTEGER NOT NULL
) STRICT;

CREATE TABLE "members" (
    -- Membership with receipt watermarks; a former member keeps its row with active = 0.
    "room_id" INTEGER NOT NULL REFERENCES "rooms" ("id"),
    "user_id" INTEGER NOT NULL REFERENCES "users" ("id"),
    "active" INTEGER NOT NULL,
    "delivered_seq" INTEGER NOT NULL DEFAULT 0,
    "read_seq" INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY ("room_id", "user_id")
) STRICT, WITHOUT ROWID;
CREATE INDEX "members_by_user" ON "members" ("user_id", "room_id") WHERE "active" = 1;

CREATE TABLE "events" (
    -- The room logs: gap-free seq per room; "event" is the encoded proto RoomEvent.
    "room_id" INTEGER NOT NULL REFERENCES "rooms" ("id"),
    "seq" INTEGER NOT NULL,
    "event" BLOB NOT NULL,
    PRIMARY KEY ("room_id", "seq")
) STRICT, WITHOUT ROWID;

CREATE TABLE "requests" (
    -- Idempotency: one row per committed room-log mutation, keyed by (device, request id).
    -- "fingerprint" is the SHA-256 of the encoded request, to tell a resend from a reuse.
    "device_id" INTEGER NOT NULL,
    "request_id" BLOB NOT NULL,
    "fingerprint" BLOB NOT NULL,
    "room_id" INTEGER NOT NULL,
    "seq" INTEGER NOT NULL,
    PRIMARY KEY ("device_id", "request_id")
) STRICT, WITHOUT ROWID;

CREATE TABLE "media" (
    -- An uploaded file; its bytes live in <data>/media/<file>.
    "id" INTEGER PRIMARY KEY AUTOINCREMENT,
    "uploader" INTEGER NOT NULL REFERENCES "users" ("id"),
    "file" TEXT NOT NULL,
    "size" INTEGER NOT NULL,
    "created_ms" INTEGER NOT NULL
) STRICT;

CREATE TABLE "message_media" (
    -- Which messages reference which media: members of those rooms may download it.
    "media_id" INTEGER NOT NULL REFERENCES "media" ("id"),
    "room_id" INTEGER NOT NULL,
    "seq" INTEGER NOT NULL,
    PRIMARY KEY ("media_id", "room_id", "seq")
) STRICT, WITHOUT ROWID;
