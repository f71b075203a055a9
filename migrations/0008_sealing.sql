-- End-to-end encryption at flush (core/src/sync/group.rs). A message is sealed for its room's
-- MLS group when it is first sent; the sealed bytes are kept so every resend is identical,
-- and cleared when the server answers stale_epoch (sealed again at the new epoch).
ALTER TABLE outbox ADD COLUMN sealed BLOB;

-- A room whose group exists but this device is not in (no Welcome for it): it joins by
-- external commit from the server's GroupInfo.
ALTER TABLE rooms ADD COLUMN mls_absent INTEGER NOT NULL DEFAULT 0;

-- A setup or external join of the room's group this device sent and has no answer for yet:
-- adopted when apply meets its request in the log (the reply was lost), dropped when refused.
ALTER TABLE rooms ADD COLUMN mls_pending_group BLOB;
ALTER TABLE rooms ADD COLUMN mls_pending_request BLOB;
