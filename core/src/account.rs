//! Who this profile is signed in as: the account record and where its token is kept.
//!
//! The record is one row of the profile's database; the session token goes to the OS
//! keychain where there is one (`keychain.rs`), else it stays in the row. Signing in and
//! out is [`crate::sessions`]; this module only keeps what they decide.

use rusqlite::{params, Connection, OptionalExtension};

use crate::{
    keychain::{self, TokenHome},
    Client, Error,
};

/// The signed-in account of a profile.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    /// Server base URL (`https://host[:port]`, or `http://` to a local address).
    pub server: String,
    /// The certificate pin the server is trusted by, instead of the platform's trust store.
    pub pin: Option<crate::endpoint::Pin>,
    /// My user id.
    pub user_id: i64,
    /// My username.
    pub username: String,
    /// This device.
    pub device_id: i64,
    /// Session token (secret).
    pub token: String,
}

impl Account {
    /// Where the server is and how it is trusted.
    pub fn endpoint(&self) -> Result<crate::endpoint::Endpoint, Error> {
        Ok(crate::endpoint::Endpoint::parse(&self.server)?.pinned(self.pin))
    }
}

/// The token is a password: never in Debug output (so never in a log).
impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("server", &self.server)
            .field("pin", &self.pin)
            .field("user_id", &self.user_id)
            .field("username", &self.username)
            .field("device_id", &self.device_id)
            .field("token", &"…")
            .finish()
    }
}

impl Client {
    /// The signed-in account, if any, with its token (from the keychain if it is there).
    pub async fn account(&self) -> Result<Option<Account>, Error> {
        let Some((mut account, entry)) = self.db(|c| stored_account(c)).await? else {
            return Ok(None);
        };
        if let Some(entry) = entry {
            let cached = self.token.lock().ok().and_then(|t| t.clone());
            account.token = match cached {
                Some(token) => token,
                None => {
                    let token = tokio::task::spawn_blocking(move || keychain::load(&entry))
                        .await
                        .map_err(|e| Error::Internal(e.to_string()))??;
                    if let Ok(mut cache) = self.token.lock() {
                        *cache = Some(token.clone());
                    }
                    token
                }
            };
        }
        Ok(Some(account))
    }

    /// Where this profile's session token is kept (`None`: not signed in).
    pub async fn token_home(&self) -> Result<Option<TokenHome>, Error> {
        let stored = self.db(|c| stored_account(c)).await?;
        Ok(stored.map(|(_, entry)| match entry {
            Some(_) => TokenHome::Keychain,
            None => TokenHome::Profile,
        }))
    }

    /// The account, or [`Error::NotSignedIn`].
    pub(crate) async fn require_account(&self) -> Result<Account, Error> {
        self.account().await?.ok_or(Error::NotSignedIn)
    }

    /// Stores the session after sign-up or sign-in: the token in the keychain where there
    /// is one, else in the profile (keychain.rs).
    pub(crate) async fn save_account(&self, a: Account) -> Result<(), Error> {
        let token = a.token.clone();
        let entry = tokio::task::spawn_blocking(move || keychain::store(&token))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let kept = if entry.is_some() { String::new() } else { a.token.clone() };
        if let Ok(mut cache) = self.token.lock() {
            *cache = entry.as_ref().map(|_| a.token.clone());
        }
        let old = self
            .db(move |c| {
                let old = stored_account(c)?.and_then(|(_, entry)| entry);
                let pin = a.pin.map(|p| p.to_string());
                c.execute(
                    "INSERT INTO account (id, server, user_id, username, device_id, token, pin,
                                         keychain)
                     VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (id) DO UPDATE SET server = excluded.server,
                         user_id = excluded.user_id, username = excluded.username,
                         device_id = excluded.device_id, token = excluded.token,
                         pin = excluded.pin, keychain = excluded.keychain",
                    params![a.server, a.user_id, a.username, a.device_id, kept, pin, entry],
                )?;
                if a.server.starts_with("https://") {
                    c.execute(
                        "INSERT INTO profile (id, used_tls) VALUES (1, 1)
                     ON CONFLICT (id) DO UPDATE SET used_tls = 1",
                        [],
                    )?;
                }
                c.execute(
                    "INSERT INTO users (id, username) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
                    params![a.user_id, a.username],
                )?;
                Ok(old)
            })
            .await?;
        // A session this profile had before is over: its token goes too.
        if let Some(old) = old {
            let _ = tokio::task::spawn_blocking(move || keychain::forget(&old)).await;
        }
        Ok(())
    }

    /// Whether this profile ever signed in over TLS.
    pub(crate) async fn used_tls(&self) -> Result<bool, Error> {
        self.db(|c| {
            Ok(c.query_row("SELECT used_tls FROM profile WHERE id = 1", [], |r| r.get(0))
                .optional()?
                .unwrap_or(false))
        })
        .await
    }

    /// Forgets the session (after signing out); the profile's data stays.
    pub(crate) async fn forget_account(&self) -> Result<(), Error> {
        let entry = self
            .db(|c| {
                let entry = stored_account(c)?.and_then(|(_, entry)| entry);
                c.execute("DELETE FROM account", [])?;
                Ok(entry)
            })
            .await?;
        if let Ok(mut cache) = self.token.lock() {
            *cache = None;
        }
        if let Some(entry) = entry {
            let _ = tokio::task::spawn_blocking(move || keychain::forget(&entry)).await;
        }
        Ok(())
    }
}

/// The stored account and the name of the keychain entry holding its token, if one does
/// (then the account's `token` is empty).
fn stored_account(c: &Connection) -> Result<Option<(Account, Option<String>)>, Error> {
    Ok(c.query_row(
        "SELECT server, user_id, username, device_id, token, pin, keychain FROM account
         WHERE id = 1",
        [],
        |r| {
            // A pin that does not parse was not written by this code: connect without it
            // and the trust store decides (failing closed for a self-signed server).
            let pin = r.get::<_, Option<String>>(5)?.and_then(|p| p.parse().ok());
            let account = Account {
                server: r.get(0)?,
                pin,
                user_id: r.get(1)?,
                username: r.get(2)?,
                device_id: r.get(3)?,
                token: r.get(4)?,
            };
            Ok((account, r.get(6)?))
        },
    )
    .optional()?)
}

/// The stored account; its `token` is empty when the keychain holds it
/// ([`Client::account`] fills it in).
pub(crate) fn stored(c: &Connection) -> Result<Option<Account>, Error> {
    Ok(stored_account(c)?.map(|(account, _)| account))
}

/// My user id, or [`Error::NotSignedIn`].
pub(crate) fn my_id(c: &Connection) -> Result<i64, Error> {
    stored(c)?.map(|a| a.user_id).ok_or(Error::NotSignedIn)
}
