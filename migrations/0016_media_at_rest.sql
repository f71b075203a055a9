-- Attachments are kept sealed at rest, in the media cache and while waiting to be uploaded
-- (core/src/media.rs, docs/storage.md). What a build before this one left in the clear is
-- dealt with once, at the next open, while this row is here (media::seal_leftovers).
CREATE TABLE "clear_leftovers" ("id" INTEGER PRIMARY KEY CHECK ("id" = 1)) STRICT;
INSERT INTO "clear_leftovers" ("id") VALUES (1);
