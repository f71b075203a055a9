-- Local full-text search (core/src/search.rs): the text of each message as it shows now (its
-- caption, its file's name, its last edit), by its event's id, and its room as a token
-- ("r" and the room's id: a search in one room intersects with it). Deleted messages, and
-- those deleted for me, leave it.
CREATE VIRTUAL TABLE "search" USING fts5 ("text", "room", tokenize = 'unicode61 remove_diacritics 2');

-- Messages stored before the index existed are indexed once, at the next open
-- (search::backfill), which removes this row.
CREATE TABLE "search_backfill" ("id" INTEGER PRIMARY KEY CHECK ("id" = 1)) STRICT;
INSERT INTO "search_backfill" ("id") VALUES (1);
