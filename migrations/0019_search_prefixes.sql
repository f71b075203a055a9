-- Search answers a prefix ("hol" for "holiday") from FTS5 prefix indexes of two, three and
-- four characters, read newest first like a whole word, instead of merging the lists of
-- every word with that prefix in full (docs/performance.md, "Search"). FTS5 cannot add them
-- to a table, so the table is made again and filled at the next open (search::backfill).
DROP TABLE "search";
CREATE VIRTUAL TABLE "search" USING fts5 ("text", "room", tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3 4');
INSERT OR IGNORE INTO "search_backfill" ("id") VALUES (1);
