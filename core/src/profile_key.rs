//! The profile database's key, and where it is kept.
//!
//! The profile database holds every message in plaintext, the MLS group secrets, the
//! identity key and the session token's keychain entry (or the token). It is encrypted at
//! rest with SQLCipher ([`crate::store`]; docs/storage.md): a stolen `tidings.sqlite` reveals
//! nothing without this key.
//!
//! **The key** is 32 random bytes made when the profile is created (or when a profile from
//! before encryption is first opened and encrypted), used as SQLCipher's raw key, so no
//! passphrase derivation runs at open.
//!
//! **Where it is kept.** In the OS keychain where there is one, in an entry of its own
//! (`tidings` / `profile-<uuid>`, the same keychain and rules as the session token:
//! [`crate::keychain`]); the profile directory then holds only the entry's name, in
//! `tidings.keychain`. **Fallback:** where there is no keychain (no desktop session, a build
//! without the `keychain` feature, Android and iOS) or when `TIDINGS_KEYCHAIN=off`, the key
//! is in `tidings.key` beside the database, readable by its owner only (0600 in a 0700
//! directory). That protects against the database file being copied alone — from a backup,
//! a synced folder, a bug report — but not against whoever can read the whole directory as
//! this user; on Android and iOS the app's private directory is that protection, as it is
//! for the session token. Which of the two holds it is [`KeyHome`], decided once when the
//! key is made and shown by [`crate::Client::key_home`].
//!
//! A profile whose key cannot be had is refused with a typed [`KeyError`] (never a panic,
//! never a new empty profile over the old one). The key is never logged, printed or put in
//! an error; its memory is wiped when dropped.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use rand::RngCore;
use zeroize::{Zeroize, Zeroizing};

use crate::keychain;

/// The file naming the keychain entry that holds the key.
pub const KEYCHAIN_FILE: &str = "tidings.keychain";

/// The fallback: the key itself (64 hex digits), owner-only.
pub const KEY_FILE: &str = "tidings.key";

/// Bytes of a database key.
const KEY_BYTES: usize = 32;

/// The keychain entry prefix of profile keys (`profile-<uuid>`).
const ENTRY_KIND: &str = "profile";

/// A profile database's key. Never printed; wiped when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct DbKey(Zeroizing<[u8; KEY_BYTES]>);

impl DbKey {
    /// A fresh random key.
    pub fn random() -> Self {
        let mut key = Zeroizing::new([0u8; KEY_BYTES]);
        rand::rng().fill_bytes(key.as_mut());
        Self(key)
    }

    /// The key written as 64 hex digits (how it is kept), if `text` is one.
    fn from_hex(text: &str) -> Option<Self> {
        let text = text.trim();
        let mut key = Zeroizing::new([0u8; KEY_BYTES]);
        hex::decode_to_slice(text, key.as_mut()).ok()?;
        Some(Self(key))
    }

    /// 64 hex digits.
    fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0.as_ref()))
    }

    /// SQLCipher's raw-key literal, `x'…'`: used as it is, with no key derivation.
    pub(crate) fn sql_literal(&self) -> Zeroizing<String> {
        let hex = self.to_hex();
        Zeroizing::new(format!("x'{}'", hex.as_str()))
    }
}

impl std::fmt::Debug for DbKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbKey(…)")
    }
}

/// Where a profile's database key is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyHome {
    /// The OS keychain (the profile holds the entry's name).
    Keychain,
    /// `tidings.key` in the profile directory (no keychain here).
    Profile,
}

/// Why a profile's database key could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The profile says its key is in the keychain and the keychain did not give it (locked,
    /// no desktop session, or the entry was removed).
    #[error(
        "this profile's key is not in the system keychain (entry {entry}: {reason}); unlock \
         the keychain, or open the profile in the desktop session that created it"
    )]
    NotInKeychain {
        /// The entry's name (not a secret).
        entry: String,
        /// What the keychain said.
        reason: String,
    },
    /// The database is encrypted but the profile has neither a key file nor a keychain
    /// entry's name: the file was copied without its key, or the key was deleted.
    #[error(
        "this profile is encrypted and its key is missing (no {KEY_FILE} and no {KEYCHAIN_FILE} \
         beside it)"
    )]
    Missing,
    /// The key file or the keychain entry holds something that is not a key.
    #[error("this profile's key is damaged ({0})")]
    Damaged(String),
    /// The key could not be read or saved.
    #[error("this profile's key could not be read or saved: {0}")]
    Io(String),
}

/// The key of the profile in `dir` and where it is kept, making and keeping a new one when
/// there is none yet and the database is new or still unencrypted (`db_encrypted` says,
/// asked only then: [`crate::store`] looks at the file). Blocks (a keychain may ask the user
/// to unlock it).
pub(crate) fn unlock(
    dir: &Path,
    db_encrypted: impl FnOnce() -> std::io::Result<bool>,
) -> Result<(DbKey, KeyHome), KeyError> {
    if let Some(found) = find(dir)? {
        return Ok(found);
    }
    if db_encrypted().map_err(|e| KeyError::Io(e.to_string()))? {
        return Err(KeyError::Missing);
    }
    make(dir)
}

/// The key kept for the profile in `dir`, if it has one.
fn find(dir: &Path) -> Result<Option<(DbKey, KeyHome)>, KeyError> {
    let io = |path: &Path, e: std::io::Error| KeyError::Io(format!("{}: {e}", path.display()));
    let named = dir.join(KEYCHAIN_FILE);
    match std::fs::read_to_string(&named) {
        Ok(entry) => {
            let entry = entry.trim().to_owned();
            let secret = keychain::read(&entry)
                .map(Zeroizing::new)
                .map_err(|reason| KeyError::NotInKeychain { entry: entry.clone(), reason })?;
            let key = DbKey::from_hex(&secret)
                .ok_or_else(|| KeyError::Damaged(format!("keychain entry {entry}")))?;
            return Ok(Some((key, KeyHome::Keychain)));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&named, e)),
    }
    let file = dir.join(KEY_FILE);
    match std::fs::read_to_string(&file) {
        Ok(mut text) => {
            let key = DbKey::from_hex(&text);
            text.zeroize();
            let key = key.ok_or_else(|| KeyError::Damaged(KEY_FILE.to_owned()))?;
            Ok(Some((key, KeyHome::Profile)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&file, e)),
    }
}

/// Makes a key for the profile in `dir` and keeps it — in the keychain if there is one, else
/// in the key file — before any database is encrypted with it.
fn make(dir: &Path) -> Result<(DbKey, KeyHome), KeyError> {
    let key = DbKey::random();
    if let Some(entry) = keychain::keep(ENTRY_KIND, key.to_hex().as_str()) {
        write_atomically(&dir.join(KEYCHAIN_FILE), entry.as_bytes())?;
        tracing::info!("The profile's database key is in the OS keychain.");
        return Ok((key, KeyHome::Keychain));
    }
    write_atomically(&dir.join(KEY_FILE), key.to_hex().as_bytes())?;
    tracing::info!("No OS keychain: the profile's database key is in {KEY_FILE}, owner-only.");
    Ok((key, KeyHome::Profile))
}

/// Writes `bytes` to `path` through a temporary file made owner-only before anything is
/// written to it, synced, then renamed into place (and the directory synced): after a crash
/// the file is whole or absent.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    let io = |e: std::io::Error| KeyError::Io(format!("{}: {e}", path.display()));
    let temporary = PathBuf::from(format!("{}.new", path.display()));
    let _ = std::fs::remove_file(&temporary);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temporary).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&temporary, path).map_err(io)?;
    sync_dir(path);
    Ok(())
}

/// Syncs the directory holding `path` (so a rename in it survives a power loss), where the
/// OS allows it.
pub(crate) fn sync_dir(path: &Path) {
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        if let Ok(dir) = std::fs::File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_never_printed() {
        let key = DbKey::random();
        let hex = key.to_hex();
        assert_eq!(format!("{key:?}"), "DbKey(…)");
        assert!(!format!("{key:?}").contains(&hex[..8]));
        assert_eq!(DbKey::from_hex(&hex), Some(key));
    }

    #[test]
    fn without_a_keychain_the_key_is_an_owner_only_file() {
        let dir = tempfile::tempdir().unwrap();
        // No keychain in unit tests (no `keychain` feature, or none reachable).
        if keychain::wanted() {
            return;
        }
        let (key, home) = unlock(dir.path(), || Ok(false)).unwrap();
        assert_eq!(home, KeyHome::Profile);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Found again, the same.
        assert_eq!(unlock(dir.path(), || Ok(false)).unwrap(), (key, KeyHome::Profile));
    }

    #[test]
    fn a_keychain_entry_that_is_gone_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEYCHAIN_FILE), "profile-gone").unwrap();
        let err = unlock(dir.path(), || Ok(false)).unwrap_err();
        assert!(matches!(&err, KeyError::NotInKeychain { entry, .. } if entry == "profile-gone"));
        assert!(err.to_string().contains("not in the system keychain"), "{err}");
    }
}
