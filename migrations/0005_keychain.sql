-- The session token in the OS keychain (core/src/keychain.rs): "keychain" names the entry
-- that holds it, and "token" is then empty; NULL where there is no keychain (the token
-- stays here, in a file only its owner reads).
ALTER TABLE "account" ADD COLUMN "keychain" TEXT;
