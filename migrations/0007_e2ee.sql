-- End-to-end encryption (core/src/e2ee): this device's MLS identity. Its signature private key
-- and every group's state live in openmls' own tables (created by its migrations, recorded in
-- `openmls_sqlite_storage_migrations`), in this same database.
CREATE TABLE e2ee_device (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    user INTEGER NOT NULL,
    device INTEGER NOT NULL,
    signature_key BLOB NOT NULL
) STRICT;

-- The room's MLS group, once this device is in it (joined from a Welcome in the log).
ALTER TABLE rooms ADD COLUMN mls_group BLOB;
