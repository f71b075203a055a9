-- A group's name travels sealed inside the room's MLS group (core/src/apply.rs). The request
-- ids of this device's messages that name a room without renaming it (a new group's name,
-- the name told to devices that joined): MLS never opens them for their sender, so when the
-- log brings one back this device passes it over by its id (and forgets the id).
CREATE TABLE quiet_namings (request_id BLOB PRIMARY KEY);
-- A room whose name this device is to tell the devices that just joined its group (set by
-- apply, queued by the sync session).
ALTER TABLE rooms ADD COLUMN name_to_tell INTEGER NOT NULL DEFAULT 0;
CREATE INDEX rooms_name_to_tell ON rooms (id) WHERE name_to_tell = 1;
