-- A log event this device refused because a check of who is in the room's encryption failed
-- (core/src/apply.rs): the issue's name, shown in the timeline as a security notice.
ALTER TABLE events ADD COLUMN security TEXT;
