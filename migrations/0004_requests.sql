-- Requests (docs/protocol.md, "Requests and blocking"): a room someone who is not my
-- contact put me in is a request until I accept it (or reply, which accepts) or leave it.
-- "request_from" is who asked (a user id); NULL when it is no request.
ALTER TABLE "rooms" ADD COLUMN "request_from" INTEGER;
