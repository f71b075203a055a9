-- A room whose group a call needs before anyone has written in it (core/src/call/driver.rs):
-- the sync session sets the group up (or joins it) without a message to seal.
ALTER TABLE rooms ADD COLUMN mls_wanted INTEGER NOT NULL DEFAULT 0;
