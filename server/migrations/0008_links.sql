-- Linking a new device by QR code (docs/protocol.md, "Linking a device"). The offer's id is
-- the SHA-256 of the code's secret; its payload is sealed with a key derived from that
-- secret, which the server never sees. One open offer per device, redeemable once, until it
-- expires.
CREATE TABLE "link_offers" (
    "id" BLOB PRIMARY KEY,
    "user_id" INTEGER NOT NULL REFERENCES "users" ("id"),
    "device_id" INTEGER NOT NULL UNIQUE REFERENCES "sessions" ("id"),
    "sealed" BLOB NOT NULL,
    "expires_ms" INTEGER NOT NULL
) STRICT;
