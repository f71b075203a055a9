-- Contacts. A user's contact key is what their QR code carries: whoever shows it to the
-- server becomes their contact. One key per user at a time (resetting replaces it, which
-- revokes the old one). It is stored as it is so that every device of the user can show
-- the same code; it grants nothing but becoming a contact.
CREATE TABLE "contact_keys" (
    "user_id" INTEGER PRIMARY KEY REFERENCES "users" ("id"),
    "key" TEXT NOT NULL UNIQUE,
    "created_ms" INTEGER NOT NULL,
    -- NULL: never expires.
    "expires_ms" INTEGER
) STRICT;

-- Who has whom as a contact (both directions are stored) and their direct room.
CREATE TABLE "contacts" (
    "user_id" INTEGER NOT NULL REFERENCES "users" ("id"),
    "contact_id" INTEGER NOT NULL REFERENCES "users" ("id"),
    "room_id" INTEGER NOT NULL REFERENCES "rooms" ("id"),
    "added_ms" INTEGER NOT NULL,
    PRIMARY KEY ("user_id", "contact_id")
) STRICT, WITHOUT ROWID;
