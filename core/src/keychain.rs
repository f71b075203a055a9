//! The session token and the profile database's key in the operating system's keychain,
//! where there is one.
//!
//! A session token is a password: whoever copies it is signed in as this device. So it is
//! kept in the OS keychain — the Secret Service (GNOME Keyring, KWallet) on Linux and the
//! BSDs, Keychain on macOS, Credential Manager on Windows, through the `keyring` crate — and
//! the profile database holds only the name of its keychain entry (`account.keychain`).
//!
//! **Fallback.** Where there is no keychain (a server without a desktop session, a build
//! without the `keychain` feature, Android and iOS, where the app's private directory is the
//! protection), or when `TIDINGS_KEYCHAIN=off`, the token stays in the profile database,
//! whose file is readable by its owner only (0600 in a 0700 directory). Which of the two
//! holds it is decided at sign-in and shown by [`crate::Client::token_home`].
//!
//! Each sign-in gets an entry of its own (`tidings` / `session-<uuid>`), so profiles never
//! share one; signing out deletes it.
//!
//! The profile database's key follows the same rules in an entry of its own
//! (`tidings` / `profile-<uuid>`, [`crate::profile_key`]), made with the profile and kept as
//! long as it exists.

use crate::Error;

/// Where a profile's session token is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenHome {
    /// The OS keychain.
    Keychain,
    /// The profile database (no keychain here).
    Profile,
}

/// The keychain service name of every entry.
#[cfg(feature = "keychain")]
const SERVICE: &str = "tidings";

/// Whether the keychain may be used (`TIDINGS_KEYCHAIN=off` says no).
pub(crate) fn wanted() -> bool {
    cfg!(feature = "keychain") && std::env::var("TIDINGS_KEYCHAIN").map_or(true, |v| v != "off")
}

/// Puts `token` in a new keychain entry and returns the entry's name, or `None` when there
/// is no keychain to put it in (the caller keeps it in the profile). Blocks: call it off the
/// async runtime.
pub(crate) fn store(token: &str) -> Option<String> {
    keep("session", token)
}

/// Puts `secret` in a new keychain entry named `<kind>-<uuid>` and returns the name, or
/// `None` when there is no keychain to put it in. Blocks.
pub(crate) fn keep(kind: &str, secret: &str) -> Option<String> {
    if !wanted() {
        return None;
    }
    let name = format!("{kind}-{}", uuid::Uuid::new_v4());
    match put(&name, secret) {
        Ok(()) => Some(name),
        Err(e) => {
            tracing::info!(error = %e, kind, "No OS keychain; the secret stays in the profile.");
            None
        }
    }
}

/// The secret kept in entry `name`, or what the keychain said. Blocks.
pub(crate) fn read(name: &str) -> Result<String, String> {
    get(name)
}

/// The token kept in entry `name`. Blocks.
pub(crate) fn load(name: &str) -> Result<String, Error> {
    get(name).map_err(Error::Keychain)
}

/// Deletes entry `name`, if it is there. Blocks.
pub(crate) fn forget(name: &str) {
    if let Err(e) = delete(name) {
        tracing::warn!(error = %e, "The session token's keychain entry could not be deleted.");
    }
}

#[cfg(feature = "keychain")]
fn put(name: &str, token: &str) -> Result<(), String> {
    let entry = keyring::Entry::new(SERVICE, name).map_err(|e| e.to_string())?;
    entry.set_password(token).map_err(|e| e.to_string())?;
    // Read back: a store that accepts and loses secrets (no unlocked collection) is none.
    match entry.get_password() {
        Ok(back) if back == token => Ok(()),
        Ok(_) => Err("the keychain gave back something else".into()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(feature = "keychain")]
fn get(name: &str) -> Result<String, String> {
    let entry = keyring::Entry::new(SERVICE, name).map_err(|e| e.to_string())?;
    entry.get_password().map_err(|e| e.to_string())
}

#[cfg(feature = "keychain")]
fn delete(name: &str) -> Result<(), String> {
    let entry = keyring::Entry::new(SERVICE, name).map_err(|e| e.to_string())?;
    match entry.delete_credential() {
        Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(not(feature = "keychain"))]
fn put(_name: &str, _token: &str) -> Result<(), String> {
    Err("this build has no keychain support".into())
}

#[cfg(not(feature = "keychain"))]
fn get(_name: &str) -> Result<String, String> {
    Err("this build has no keychain support".into())
}

#[cfg(not(feature = "keychain"))]
fn delete(_name: &str) -> Result<(), String> {
    Ok(())
}
