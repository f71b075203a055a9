-- Disappearing messages (core/src/disappearing.rs): the room's timer in seconds (0: off), as
-- the last setting in its log says, and when each disappearing message expires (Unix ms;
-- NULL for one that does not, or was erased already).
ALTER TABLE "rooms" ADD COLUMN "disappearing_s" INTEGER NOT NULL DEFAULT 0;
ALTER TABLE "events" ADD COLUMN "expires_ms" INTEGER;
CREATE INDEX "events_expiry" ON "events" ("expires_ms") WHERE "expires_ms" IS NOT NULL;
