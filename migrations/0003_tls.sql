-- TLS (docs/protocol.md, "Addresses and TLS"): the certificate pin a profile may trust its
-- server by (`sha256:` and hex), and whether this profile ever connected over TLS, so that it
-- never signs in again without it (kept across sign-out: the account row goes, this stays).
ALTER TABLE "account" ADD COLUMN "pin" TEXT;

CREATE TABLE "profile" (
    "id" INTEGER PRIMARY KEY CHECK ("id" = 1),
    "used_tls" INTEGER NOT NULL DEFAULT 0
) STRICT;
