-- A deletion for everyone names the deleted message by its request id (Request::Send's
-- "redacts"): found without knowing which device sent it.
CREATE INDEX "requests_by_request" ON "requests" ("request_id");
