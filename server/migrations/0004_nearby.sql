-- People nearby: strictly opt-in and expiring. Only a ~1 km cell (a 6-character geohash the
-- client computed) is ever stored — never coordinates — and the row goes when the user turns
-- it off or it expires (expired rows are ignored, and purged on the next turn-on).
CREATE TABLE "nearby" (
    "user_id" INTEGER PRIMARY KEY REFERENCES "users" ("id"),
    "cell" TEXT NOT NULL CHECK (length("cell") = 6),
    "expires_ms" INTEGER NOT NULL
) STRICT;
CREATE INDEX "nearby_by_cell" ON "nearby" ("cell");
