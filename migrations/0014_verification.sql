-- Each user's identity key as this device has seen it in their leaves, and whether it is
-- verified (core/src/verification.rs). "changed": a verified key was replaced (or a scanned
-- code's fingerprint did not match): verification dropped, sending to rooms with them held
-- until the user accepts the new key or verifies again.
CREATE TABLE "identities" (
    "user" INTEGER PRIMARY KEY,
    "key" BLOB NOT NULL,
    "state" TEXT NOT NULL DEFAULT 'unverified'
        CHECK ("state" IN ('unverified', 'verified', 'changed')),
    "since_ms" INTEGER NOT NULL
) STRICT;
-- Quiet messages are no longer only namings: a verification proof is one too.
ALTER TABLE "quiet_namings" RENAME TO "quiet_messages";
