-- Why an outbox item is stuck, as the server's typed error code (the UI words it); `error`
-- keeps the server's message for logs and scripts.
ALTER TABLE outbox ADD COLUMN error_code TEXT;
