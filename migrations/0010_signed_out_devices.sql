-- Devices their users signed out (DevicesSignedOut events, core/src/apply.rs): their leaves
-- are removed from every group at the next commit (core/src/sync/group.rs).
CREATE TABLE signed_out_devices (
    user INTEGER NOT NULL,
    device INTEGER NOT NULL,
    PRIMARY KEY (user, device)
) STRICT;
