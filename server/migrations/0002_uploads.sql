-- Resumable uploads: a file sent in chunks, each appended at the offset the server has, so
-- an interrupted upload continues where it stopped. The bytes so far are in
-- <data>/media/<id>.part; once complete the file becomes a media row and `media` records
-- it, so a client that lost the last answer can still learn the media id.
CREATE TABLE "uploads" (
    "id" TEXT PRIMARY KEY,
    "uploader" INTEGER NOT NULL REFERENCES "users" ("id"),
    "size" INTEGER NOT NULL,
    "received" INTEGER NOT NULL DEFAULT 0,
    "media" INTEGER REFERENCES "media" ("id"),
    "created_ms" INTEGER NOT NULL
) STRICT;
