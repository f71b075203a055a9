-- History for a linked device (core/src/history.rs): the archive of past chats the device
-- that showed the link code sent with it, until this device has imported it. Its media id,
-- its plaintext length, its key and the SHA-256 of its sealed bytes, for the user it was
-- sent to (a profile signed in as someone else later does not import it).
CREATE TABLE link_history (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    user INTEGER NOT NULL,
    media INTEGER NOT NULL,
    len INTEGER NOT NULL,
    key BLOB NOT NULL,
    sha256 BLOB NOT NULL
) STRICT;
