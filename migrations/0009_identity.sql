-- Identity keys and device certificates (core/src/e2ee/identity.rs). The user's identity
-- private key (an Ed25519 seed): made at a password sign-in, received when this device was
-- linked by QR code.
CREATE TABLE e2ee_identity (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    user INTEGER NOT NULL,
    secret BLOB NOT NULL
) STRICT;

-- This device's leaf credential, certified by the identity. Keys made before certificates
-- have none and are made again.
ALTER TABLE e2ee_device ADD COLUMN credential BLOB;
