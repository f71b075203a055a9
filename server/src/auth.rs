//! Passwords and session tokens.
//!
//! Passwords are hashed with argon2id at OWASP's floor (m = 19 456 KiB, t = 2, p = 1) on the
//! blocking pool, never on the async runtime, and through [`PasswordWork`]: at most one
//! hash per spare core at once, and a bounded number waiting, so a flood of sign-ins cannot
//! take the cores (or the blocking pool) from everyone's database reads and sends. A sign-in
//! for an unknown username still runs a verification against a dummy hash, so timing does
//! not reveal which usernames exist.
//!
//! A token is `<device id>.<secret>`: the device id names the session row, the secret is 32
//! random bytes in hex. The database stores only the secret's SHA-256, so a copy of the
//! database does not let anyone sign in. Revoking a session marks its row; every Join checks
//! it, and live connections of the device are kicked at once.

use argon2::{
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Algorithm, Argon2, Params, Version,
};
use rand::RngCore;
use rusqlite::{Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use tidings_proto::{DeviceId, ErrorCode, UserId};

use crate::{error::OpError, roomlog::Actor};

/// Where password hashing runs: `hashers` at once, at most `queue` more waiting (the rest
/// are told `rate_limited` at once instead of piling up).
#[derive(Debug)]
pub(crate) struct PasswordWork {
    hashers: tokio::sync::Semaphore,
    waiting: std::sync::atomic::AtomicUsize,
    queue: usize,
}

/// Counts a waiter while it waits (also when its connection goes away mid-wait).
struct Waiting<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl PasswordWork {
    pub(crate) fn new(hashers: usize, queue: usize) -> Self {
        Self {
            hashers: tokio::sync::Semaphore::new(hashers.max(1)),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            queue,
        }
    }

    /// Runs `f` (a hash or a verification) when a hasher is free.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, OpError> {
        let before = self.waiting.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let waiting = Waiting(&self.waiting);
        if before >= self.queue {
            return Err(OpError::rate_limited(std::time::Duration::from_secs(1)));
        }
        let permit = self.hashers.acquire().await.map_err(OpError::internal)?;
        drop(waiting);
        let result = tokio::task::spawn_blocking(f).await.map_err(OpError::internal);
        drop(permit);
        result
    }
}

/// A freshly made token secret and what to store of it.
#[derive(Debug)]
pub struct NewSecret {
    /// Hex secret, given to the client once.
    pub secret: String,
    /// SHA-256 of the secret, stored.
    pub hash: [u8; 32],
}

fn argon2() -> Argon2<'static> {
    // The parameters are constants that `Params::new` accepts; fall back to the crate's
    // defaults (which are the same OWASP values) rather than panic.
    let params = Params::new(19_456, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password (slow by design: call from the blocking pool).
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)?;
    Ok(argon2().hash_password(password.as_bytes(), &salt)?.to_string())
}

/// Verifies a password against a stored hash; `None` (unknown user) burns the same time.
pub fn verify_password(password: &str, stored: Option<&str>) -> bool {
    const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
                         2RIhwdEjTBIpnvnBDMhDk3yxkOV3lB7dmJFnwe7pfSI";
    let stored_or_dummy = stored.unwrap_or(DUMMY);
    let Ok(parsed) = PasswordHash::new(stored_or_dummy) else {
        return false;
    };
    let ok = argon2().verify_password(password.as_bytes(), &parsed).is_ok();
    ok && stored.is_some()
}

/// Makes a new token secret.
pub fn new_secret() -> NewSecret {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = hex::encode(bytes);
    let hash = hash_secret(&secret);
    NewSecret { secret, hash }
}

/// SHA-256 of a token secret.
pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Builds the token string for a session.
pub fn token(device: DeviceId, secret: &str) -> String {
    format!("{device}.{secret}")
}

/// Splits a token into its session id and secret, if it is well-formed.
pub fn parse_token(token: &str) -> Option<(DeviceId, &str)> {
    let (id, secret) = token.split_once('.')?;
    let id: i64 = id.parse().ok()?;
    (secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some((DeviceId(id), secret))
}

/// The session a token names, if the token is valid: well-formed, matching, not expired and
/// not revoked. Every failure is the same `unauthenticated` so that nothing leaks.
pub fn check_token(conn: &Connection, token: &str, now_ms: i64) -> Result<Actor, OpError> {
    let bad = || OpError::new(ErrorCode::Unauthenticated, "the session is not valid");
    let (device, secret) = parse_token(token).ok_or_else(bad)?;
    let hash = hash_secret(secret);
    let session: Option<(i64, Vec<u8>, i64, Option<i64>)> = conn
        .prepare_cached(
            "SELECT user_id, secret_hash, expires_ms, revoked_ms FROM sessions WHERE id = ?1",
        )?
        .query_row([device.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    match session {
        Some((user, stored, expires, None)) if expires > now_ms && same_hash(&stored, &hash) => {
            Ok(Actor { user: UserId(user), device })
        }
        _ => Err(bad()),
    }
}

/// Compares two hashes in constant time.
pub fn same_hash(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_only_against_its_own_hash() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password("correct horse", Some(&h)));
        assert!(!verify_password("wrong horse", Some(&h)));
        assert!(!verify_password("correct horse", None));
    }

    #[test]
    fn tokens_round_trip_and_garbage_is_rejected() {
        let s = new_secret();
        let t = token(DeviceId(42), &s.secret);
        let (d, secret) = parse_token(&t).unwrap();
        assert_eq!(d, DeviceId(42));
        assert!(same_hash(&hash_secret(secret), &s.hash));
        for bad in ["", "42", "42.", "x.abc", &format!("42.{}", "z".repeat(64))] {
            assert!(parse_token(bad).is_none(), "{bad}");
        }
    }
}
