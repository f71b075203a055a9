-- Edits, deletions for everyone and reactions (core/src/relations.rs): sealed messages of
-- the room log about an earlier message, named by its request id. Each is kept here, by the
-- message it is about, whether or not that message has arrived yet; the timeline puts them
-- together with it at read time. "position" is the relation's place in the log (pending:
-- after every logged event), so the last edit by log order wins.
CREATE TABLE "relations" (
    "request_id" BLOB PRIMARY KEY,
    "room_id" INTEGER NOT NULL REFERENCES "rooms" ("id"),
    "target" BLOB NOT NULL,
    "sender" INTEGER NOT NULL,
    "position" INTEGER NOT NULL,
    "at_ms" INTEGER NOT NULL,
    "kind" TEXT NOT NULL CHECK ("kind" IN ('edit', 'delete', 'react', 'unreact')),
    -- The new text of an edit, the emoji of a reaction; empty for a deletion.
    "value" TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX "relations_by_target" ON "relations" ("target", "kind", "position");

-- A message its sender deleted for everyone (its content is gone: a stub shows), or that I
-- deleted for me on this device (it no longer shows).
ALTER TABLE "events" ADD COLUMN "deleted" INTEGER NOT NULL DEFAULT 0;
ALTER TABLE "events" ADD COLUMN "hidden" INTEGER NOT NULL DEFAULT 0;
