-- What I was writing in each room and did not send (core/src/drafts.rs), kept across
-- restarts; a room without a draft has no row.
CREATE TABLE "drafts" (
    "room_id" INTEGER PRIMARY KEY REFERENCES "rooms" ("id") ON DELETE CASCADE,
    "text" TEXT NOT NULL,
    "updated_ms" INTEGER NOT NULL
) STRICT;
