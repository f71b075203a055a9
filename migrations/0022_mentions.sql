-- Mentions and muted rooms: a muted room notifies only of messages that mention me; the room
-- list counts unread mentions. `mentions_me` marks a message that mentions me.
ALTER TABLE "rooms" ADD COLUMN "muted" INTEGER NOT NULL DEFAULT 0;
ALTER TABLE "rooms" ADD COLUMN "unread_mentions" INTEGER NOT NULL DEFAULT 0;
ALTER TABLE "events" ADD COLUMN "mentions_me" INTEGER NOT NULL DEFAULT 0;
