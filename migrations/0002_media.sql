-- Photos and files: an outbox item may have a file to upload before its operation goes out, and
-- full-size media fetched on demand are cached on disk under a size limit.

-- The prepared file (relative to the profile directory) an item uploads first; its media
-- id once the server has it, filled into the operation's attachments when it is sent.
ALTER TABLE "outbox" ADD COLUMN "upload_path" TEXT;
ALTER TABLE "outbox" ADD COLUMN "upload_media" INTEGER;
-- The server's resumable upload of that file, once opened: after a restart the upload
-- continues at the offset the server has instead of starting over.
ALTER TABLE "outbox" ADD COLUMN "upload_session" TEXT;

CREATE TABLE "media_cache" (
    -- Full-size media on disk (relative path), least recently used first out.
    "media_id" INTEGER PRIMARY KEY,
    "path" TEXT NOT NULL,
    "bytes" INTEGER NOT NULL,
    "used_ms" INTEGER NOT NULL
) STRICT;
CREATE INDEX "media_cache_by_use" ON "media_cache" ("used_ms");
