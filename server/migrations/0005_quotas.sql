-- Storage quotas and sweeping (docs/deploy.md, "Limits"): a user's usage is the sum of their
-- media and of the sizes their open resumable uploads have reserved; media that no message
-- lists is deleted after a grace period.
CREATE INDEX "media_by_uploader" ON "media" ("uploader");
CREATE INDEX "media_by_age" ON "media" ("created_ms");
CREATE INDEX "uploads_by_uploader" ON "uploads" ("uploader") WHERE "media" IS NULL;
CREATE INDEX "uploads_by_media" ON "uploads" ("media");
