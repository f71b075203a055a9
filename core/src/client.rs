//! The handle front ends hold: one profile's database, its change events, and the pieces the
//! domain handles share. Everything a user does goes through a handle named after it:
//!
//! | handle | module | what |
//! |---|---|---|
//! | [`Client::sessions`] | [`crate::sessions`] | sign up, sign in, sign out, devices, password |
//! | [`Client::account`] | [`crate::account`] | who this profile is signed in as |
//! | [`Client::rooms`], [`Client::room`] | [`crate::rooms`] | the room list, opening and changing rooms |
//! | [`crate::rooms::Room::timeline`] | [`crate::timeline`] | a room's messages, with ticks |
//! | [`Client::send_queue`], [`crate::rooms::Room::send_queue`] | [`crate::send_queue`] | sending, retrying, discarding |
//! | [`Client::media`] | [`crate::media`] | thumbnails and full files (the media cache) |
//! | [`Client::contacts`] | [`crate::contact`] | lookups, contact codes, contacts, blocking |
//! | [`Client::nearby`] | [`crate::nearby`] | people nearby |
//! | [`Client::calls`] | [`crate::call::driver`] | calls |
//!
//! Each handle's accessor is written in its own module (`impl Client` there), so this file
//! knows none of them: the modules depend on the client, never the reverse (no import
//! cycles; `tests/architecture.rs` checks).
//!
//! Every read comes from SQLite and never waits on the network. Every change the server must
//! confirm is written in one transaction with its local echo and its outbox row
//! ([`crate::send_queue`]); only after that commit is an [`Event`] emitted and the sync
//! engine woken. The database connection is used from the blocking pool, one call at a time
//! (one writer).

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use rusqlite::Connection;
use tokio::sync::{broadcast, Notify};

use crate::{model::Event, relay::Relay, store, Error};

/// Capacity of the event channel; a subscriber further behind gets [`Event::Overflow`].
const EVENT_CAPACITY: usize = 1024;

/// A profile: one account on one device, with all its state. Its Debug output is the
/// profile directory only (never the cached session token).
#[derive(Clone)]
pub struct Client {
    db: Arc<Mutex<Connection>>,
    /// The profile's checkpoint thread, stopped and waited for when the last handle drops.
    _checkpoints: Arc<store::Checkpoints>,
    events: broadcast::Sender<Event>,
    /// Woken when the outbox or read markers have something to send.
    pub(crate) outbox_ready: Arc<Notify>,
    /// Who is typing where, until when (ephemeral: never stored).
    pub(crate) typing: Arc<Mutex<crate::typing::Typing>>,
    /// Requests and call signals over the live session (or a one-off connection).
    pub(crate) relay: Arc<Relay>,
    /// The call driver's commands, once calls are started.
    pub(crate) calls: Arc<crate::call::CommandSlot>,
    /// The session token once read from the keychain (a keychain read may ask the user to
    /// unlock it: once per run is enough).
    pub(crate) token: Arc<Mutex<Option<String>>>,
    dir: PathBuf,
    /// Where the database's key is kept (`None`: an unencrypted profile, the benchmark's
    /// baseline).
    key_home: Option<crate::profile_key::KeyHome>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// Receives [`Event`]s; turns falling behind into [`Event::Overflow`].
#[derive(Debug)]
pub struct Subscription(broadcast::Receiver<Event>);

impl Subscription {
    /// The next event; `None` when the client is gone.
    pub async fn recv(&mut self) -> Option<Event> {
        match self.0.recv().await {
            Ok(e) => Some(e),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(Event::Overflow),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

impl Client {
    /// Opens (creating if needed) the profile in `dir`, its database encrypted with the
    /// profile's key ([`crate::profile_key`]): a new profile gets a key, a profile from
    /// before encryption is encrypted. A key that cannot be had is
    /// [`store::OpenError::Key`] or [`store::OpenError::WrongKey`] inside [`Error::Open`].
    /// Blocks (a keychain may ask to be unlocked).
    pub fn open(dir: &Path) -> Result<Self, Error> {
        Self::open_as(dir, true)
    }

    /// Opens the profile in `dir` without encryption: only for measuring what encryption
    /// costs (`bench core`'s baseline). A later [`Client::open`] encrypts it.
    #[doc(hidden)]
    pub fn open_unencrypted(dir: &Path) -> Result<Self, Error> {
        Self::open_as(dir, false)
    }

    fn open_as(dir: &Path, encrypted: bool) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io(e.to_string()))?;
        // The profile holds every message, its keys and the media cache: for this user's
        // eyes only (on Android and iOS the app's own directory already is).
        private(dir, 0o700)?;
        let path = dir.join(store::DB_FILE);
        let (mut conn, key, key_home) = if encrypted {
            let (conn, key, home) = store::open_profile(dir)?;
            (conn, Some(key), Some(home))
        } else {
            (store::open(&path, None)?, None, None)
        };
        crate::media::at_rest::seal_leftovers(&mut conn, dir)?;
        crate::search::index::backfill(&mut conn)?;
        // Disappearing messages that expired while the app was closed go before anything
        // reads them.
        {
            let tx = conn.transaction()?;
            crate::disappearing::expiry::sweep(&tx, now_ms())?;
            tx.commit()?;
        }
        let db = Arc::new(Mutex::new(conn));
        private(&path, 0o600)?;
        let checkpoints =
            Arc::new(store::Checkpoints::start(&path, key).map_err(|e| Error::Io(e.to_string()))?);
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        Ok(Self {
            db,
            _checkpoints: checkpoints,
            events,
            outbox_ready: Arc::new(Notify::new()),
            typing: Arc::default(),
            relay: Arc::default(),
            calls: Arc::default(),
            token: Arc::default(),
            dir: dir.to_owned(),
            key_home,
        })
    }

    /// The profile directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the key of this profile's database is kept (`None` only for a profile opened
    /// with [`Client::open_unencrypted`]).
    pub fn key_home(&self) -> Option<crate::profile_key::KeyHome> {
        self.key_home
    }

    /// Subscribes to change events.
    pub fn subscribe(&self) -> Subscription {
        Subscription(self.events.subscribe())
    }

    /// Emits events (after the change they announce is committed).
    pub(crate) fn emit(&self, events: impl IntoIterator<Item = Event>) {
        for e in events {
            let _ = self.events.send(e);
        }
    }

    /// Runs `f` with the database on this thread: for one short statement where waiting
    /// for the blocking pool is not possible (and for the simulation, which drives machines
    /// this way).
    pub(crate) fn db_blocking<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut conn =
            self.db.lock().map_err(|_| Error::Internal("database lock poisoned".into()))?;
        f(&mut conn)
    }

    /// Runs `f` with the database on the blocking pool.
    pub(crate) async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn =
                db.lock().map_err(|_| Error::Internal("database lock poisoned".into()))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
    }
}

/// Sets a path's Unix mode (other systems keep per-user folders private already).
fn private(path: &Path, mode: u32) -> Result<(), Error> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::Io(format!("{}: {e}", path.display())))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

pub use crate::stamp::new_request_id;
pub(crate) use crate::stamp::{now_ms, request_string};
