-- Consent (docs/protocol.md, "Requests and blocking"): a member added by someone who is not
-- their contact holds the room as a request until they accept it ("requested_by" is who
-- added them; NULL once agreed). A request counts against the requests cap, not the rooms cap.
ALTER TABLE "members" ADD COLUMN "requested_by" INTEGER REFERENCES "users" ("id");
CREATE INDEX "members_requests" ON "members" ("user_id") WHERE "requested_by" IS NOT NULL;

-- Who blocks whom: a blocked user cannot put the blocker in a room, call them, or send in a
-- direct room with them.
CREATE TABLE "blocks" (
    "user_id" INTEGER NOT NULL REFERENCES "users" ("id"),
    "blocked_id" INTEGER NOT NULL REFERENCES "users" ("id"),
    "created_ms" INTEGER NOT NULL,
    PRIMARY KEY ("user_id", "blocked_id")
) STRICT, WITHOUT ROWID;
