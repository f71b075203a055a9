-- End-to-end encryption (server/src/mls.rs): each room's MLS group and its epoch, the latest
-- GroupInfo (what a member's new device joins from), and the KeyPackage directory.
ALTER TABLE "rooms" ADD COLUMN "mls_group" BLOB;
ALTER TABLE "rooms" ADD COLUMN "mls_epoch" INTEGER NOT NULL DEFAULT 0;

CREATE TABLE "group_infos" (
    "room_id" INTEGER PRIMARY KEY REFERENCES "rooms" ("id"),
    "group_info" BLOB NOT NULL
) STRICT;

CREATE TABLE "key_packages" (
    -- One-time KeyPackages (last_resort = 0) are deleted when claimed; a device's one
    -- last-resort KeyPackage stays until replaced.
    "id" INTEGER PRIMARY KEY AUTOINCREMENT,
    "device_id" INTEGER NOT NULL REFERENCES "sessions" ("id"),
    "user_id" INTEGER NOT NULL REFERENCES "users" ("id"),
    "package" BLOB NOT NULL,
    "last_resort" INTEGER NOT NULL
) STRICT;
CREATE INDEX "key_packages_by_device" ON "key_packages" ("device_id", "last_resort", "id");
