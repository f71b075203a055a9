//! The client's SQLite database: opening, pragmas and migrations.
//!
//! The schema lives in the top-level `migrations/` folder as numbered `.sql` files, embedded
//! at compile time. [`open`] applies every migration above the database's version, each in its
//! own transaction together with the new `PRAGMA user_version`, so a crash between two
//! migrations leaves a database at a known version. A database written by a newer Tidings
//! (a version above the ones this build knows) is refused with [`OpenError::TooNew`] and left
//! untouched rather than damaged.
//!
//! Pragmas: WAL (readers never block the writer), `synchronous=NORMAL` (a commit survives
//! kill -9 of the app at any instant; see `open_up_to` for why not FULL), foreign keys on.
//!
//! **Encrypted at rest** (docs/storage.md). The database is SQLCipher's: every page, of the
//! file and of its WAL, is AES-256 encrypted and HMAC-SHA512 authenticated under the
//! profile's key ([`crate::profile_key`]), applied with `PRAGMA key` as a raw key (`x'…'`,
//! so no PBKDF2 runs at open) before anything else reads the file; without it the file is
//! random bytes, its header included. Temporary tables and indices stay in memory
//! (SQLCipher's build sets `SQLITE_TEMP_STORE=2`). A key that does not open the file is
//! [`OpenError::WrongKey`]. A profile from before encryption (its file starts with
//! `SQLite format 3\0`) is encrypted when first opened ([`encrypt`]): exported whole into a
//! new encrypted file, synced, renamed over the old one.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::profile_key::{DbKey, KeyError, KeyHome};

/// The profile's database, in its directory.
pub const DB_FILE: &str = "tidings.sqlite";

/// The first 16 bytes of every unencrypted SQLite database.
const PLAINTEXT_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Timeline position base of local echoes (after every server event).
pub const PENDING_POSITION: i64 = 1 << 62;

/// The migrations, in order. Version N is reached by applying the first N.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_client", include_str!("../../migrations/0001_client.sql")),
    ("0002_media", include_str!("../../migrations/0002_media.sql")),
    ("0003_tls", include_str!("../../migrations/0003_tls.sql")),
    ("0004_requests", include_str!("../../migrations/0004_requests.sql")),
    ("0005_keychain", include_str!("../../migrations/0005_keychain.sql")),
    ("0006_stuck_reason", include_str!("../../migrations/0006_stuck_reason.sql")),
    ("0007_e2ee", include_str!("../../migrations/0007_e2ee.sql")),
    ("0008_sealing", include_str!("../../migrations/0008_sealing.sql")),
    ("0009_identity", include_str!("../../migrations/0009_identity.sql")),
    ("0010_signed_out_devices", include_str!("../../migrations/0010_signed_out_devices.sql")),
    ("0011_group_wanted", include_str!("../../migrations/0011_group_wanted.sql")),
    ("0012_sealed_names", include_str!("../../migrations/0012_sealed_names.sql")),
    ("0013_security_events", include_str!("../../migrations/0013_security_events.sql")),
    ("0014_verification", include_str!("../../migrations/0014_verification.sql")),
    ("0015_link_history", include_str!("../../migrations/0015_link_history.sql")),
    ("0016_media_at_rest", include_str!("../../migrations/0016_media_at_rest.sql")),
    ("0017_relations", include_str!("../../migrations/0017_relations.sql")),
    ("0018_search", include_str!("../../migrations/0018_search.sql")),
    ("0019_search_prefixes", include_str!("../../migrations/0019_search_prefixes.sql")),
    ("0020_disappearing", include_str!("../../migrations/0020_disappearing.sql")),
    ("0021_drafts", include_str!("../../migrations/0021_drafts.sql")),
    ("0022_mentions", include_str!("../../migrations/0022_mentions.sql")),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Why a profile's database could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// SQLite could not open or configure the file.
    #[error("cannot open the database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database was written by a newer version of Tidings.
    #[error(
        "the profile was written by a newer version of Tidings (schema {found}, this build \
         knows up to {known}); update Tidings to open it"
    )]
    TooNew {
        /// Version found in the file.
        found: i64,
        /// Newest version this build knows.
        known: i64,
    },
    /// openmls' own tables could not be created or upgraded.
    #[error("cannot prepare the encryption tables: {0}")]
    Encryption(#[from] crate::e2ee::E2eeError),
    /// The profile's key could not be had (see [`KeyError`]).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The key does not open the database: another profile's key, or a damaged file.
    #[error(
        "this profile's key does not open its database (the key of another profile, or the \
         file is damaged)"
    )]
    WrongKey,
    /// A profile from before encryption could not be encrypted; it is left as it was.
    #[error("cannot encrypt the profile: {0}")]
    Encrypting(String),
    /// A migration failed; the database stays at the version before it.
    #[error("migration {name} failed: {source}")]
    Migration {
        /// The migration's file name.
        name: &'static str,
        /// What SQLite said.
        source: rusqlite::Error,
    },
}

/// Opens (creating if needed) the profile database in `dir` with its key ([`DB_FILE`],
/// [`crate::profile_key`]): a new profile gets a key first, a profile from before encryption
/// is encrypted, then it is migrated. Returns the key too (other connections to the file
/// need it) and where it is kept. Blocks (a keychain may ask to be unlocked).
///
/// Processes opening one profile at once take turns here (a lock on `tidings.lock`), so two
/// never make two keys, encrypt one file twice or run one migration twice.
pub fn open_profile(dir: &Path) -> Result<(Connection, DbKey, KeyHome), OpenError> {
    let path = dir.join(DB_FILE);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("tidings.lock"))
        .and_then(|file| file.lock().map(|()| file))
        .map_err(|e| KeyError::Io(format!("cannot lock the profile: {e}")))?;
    let (key, home) = crate::profile_key::unlock(dir, || is_encrypted(&path))?;
    if is_plaintext(&path).map_err(|e| OpenError::Encrypting(e.to_string()))? {
        encrypt(&path, &key)?;
    }
    let conn = open(&path, Some(&key))?;
    drop(lock);
    Ok((conn, key, home))
}

/// Opens (creating if needed) and migrates the database at `path`, encrypted with `key`
/// (`None`: an unencrypted database — the benchmark's baseline, and tests that make a
/// profile as it was before encryption).
pub fn open(path: &Path, key: Option<&DbKey>) -> Result<Connection, OpenError> {
    open_up_to(path, key, MIGRATIONS.len())
}

/// Opens the database at `path` with `key` (none: unencrypted), checking that the key opens
/// it; no pragmas but the key's, no migrations.
pub(crate) fn connect(path: &Path, key: Option<&DbKey>) -> Result<Connection, OpenError> {
    let conn = Connection::open(path)?;
    if let Some(key) = key {
        // SQLCipher's own log (stderr, or logcat) would say "hmac check failed" for a wrong
        // key: the typed error says it instead.
        conn.pragma_update(None, "cipher_log_level", "NONE")?;
        // Before anything reads the file. The raw key is used as it is (no PBKDF2).
        conn.pragma_update(None, "key", key.sql_literal().as_str())?;
    }
    // The first read of the file: a wrong key (or an encrypted file opened without one)
    // makes its first page "not a database".
    match conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0)) {
        Ok(_) => Ok(conn),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::NotADatabase =>
        {
            Err(OpenError::WrongKey)
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether the file at `path` holds an unencrypted SQLite database (false when it is absent
/// or empty).
pub fn is_plaintext(path: &Path) -> std::io::Result<bool> {
    Ok(header(path)?.is_some_and(|h| &h == PLAINTEXT_HEADER))
}

/// Whether the file at `path` holds something that is not an unencrypted SQLite database
/// (an encrypted one): false when it is absent or empty.
pub(crate) fn is_encrypted(path: &Path) -> std::io::Result<bool> {
    Ok(match std::fs::metadata(path) {
        Ok(m) if m.len() > 0 => !is_plaintext(path)?,
        Ok(_) => false,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(e),
    })
}

/// The first 16 bytes of the file at `path`, if it has that many.
fn header(path: &Path) -> std::io::Result<Option<[u8; 16]>> {
    use std::io::Read;
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut header = [0u8; 16];
    match file.read_exact(&mut header) {
        Ok(()) => Ok(Some(header)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// Encrypts the unencrypted database at `path` with `key`, keeping all of it: its WAL is
/// checkpointed into it and removed (so no unencrypted WAL is left beside the encrypted
/// file), it is exported whole (`sqlcipher_export`, with its `user_version`) into a new
/// encrypted file beside it, which is synced and renamed over it. A failure at any step
/// leaves the unencrypted profile as it was (and at most a stray `.encrypting` file, removed
/// at the next try). The old file's blocks are freed, not overwritten: on the disk they
/// stay until reused (docs/storage.md).
pub(crate) fn encrypt(path: &Path, key: &DbKey) -> Result<(), OpenError> {
    let failed = |e: &dyn std::fmt::Display| OpenError::Encrypting(e.to_string());
    let temporary = PathBuf::from(format!("{}.encrypting", path.display()));
    let _ = std::fs::remove_file(&temporary);
    let export = || -> rusqlite::Result<()> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // One file: the WAL copied back into it and deleted. That needs every other
        // connection closed (a process that just closed the profile lets its checkpoint
        // connection go within a second): tried for a few seconds.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let mode = conn
                .pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get::<_, String>(0));
            match mode {
                Ok(mode) if mode.eq_ignore_ascii_case("delete") => break,
                Ok(_) | Err(rusqlite::Error::SqliteFailure(_, _))
                    if std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Ok(mode) => {
                    return Err(rusqlite::Error::InvalidParameterName(format!(
                        "the profile is in use (journal mode stays {mode})"
                    )))
                }
                Err(e) => return Err(e),
            }
        }
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let target = temporary.to_string_lossy().into_owned();
        conn.execute(
            "ATTACH DATABASE ?1 AS encrypted KEY ?2",
            rusqlite::params![target, key.sql_literal().as_str()],
        )?;
        conn.query_row("SELECT sqlcipher_export('encrypted')", [], |_| Ok(()))?;
        conn.pragma_update(Some("encrypted"), "user_version", version)?;
        conn.execute("DETACH DATABASE encrypted", [])?;
        conn.close().map_err(|(_, e)| e)
    };
    let done = export().map_err(|e| failed(&e)).and_then(|()| {
        std::fs::File::open(&temporary).and_then(|f| f.sync_all()).map_err(|e| failed(&e))?;
        // Read back before it replaces anything.
        drop(connect(&temporary, Some(key))?);
        std::fs::rename(&temporary, path).map_err(|e| failed(&e))
    });
    if let Err(e) = done {
        let _ = std::fs::remove_file(&temporary);
        return Err(e);
    }
    crate::profile_key::sync_dir(path);
    tracing::info!("Encrypted a profile written before encryption.");
    Ok(())
}

/// Opens the database and applies migrations up to version `stop` only (tests build older
/// databases with it).
pub(crate) fn open_up_to(
    path: &Path,
    key: Option<&DbKey>,
    stop: usize,
) -> Result<Connection, OpenError> {
    let mut conn = connect(path, key)?;
    // WAL must be chosen outside a transaction.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // NORMAL in WAL mode: a commit survives the process being killed at any instant (the
    // WAL is in the OS's hands); only an OS crash or power loss can lose the last commits —
    // never acknowledged by the server, so never inconsistent with it. FULL would put an
    // fsync on every keystroke-to-echo path (measured: p99 8.6 ms vs the 1 ms goal).
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Checkpoints happen off the write path (see [`Checkpoints`]): an automatic one runs
    // inside whichever commit crosses the threshold, which is a user's send.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // Several processes may use one profile (`tidings listen` next to `tidings send`). A
    // transaction that reads and then writes must hold the write lock from its start: a
    // deferred one that read an older snapshot cannot upgrade and fails with SQLITE_BUSY
    // instead of waiting out the busy timeout.
    conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
    migrate(&mut conn, stop)?;
    if stop == MIGRATIONS.len() {
        // openmls' tables, by its own numbered migrations (their own version table).
        crate::e2ee::migrate(&mut conn)?;
    }
    Ok(conn)
}

/// How often the background checkpoint runs.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Copies the WAL back into the database every second on a connection of its own, until
/// it is dropped. A PASSIVE checkpoint never blocks the writer; measured on a 1 M-message
/// profile, moving checkpoints here took catch-up from 31 k to 62 k events/s and the local
/// echo's p99 from 11 ms to under 2 ms (docs/performance.md). The last connection to close
/// checkpoints what is left.
///
/// Dropping it stops the thread and waits for it (at most one checkpoint), so no thread is
/// inside SQLCipher's crypto when the process exits: OpenSSL frees its state at exit, and a
/// checkpoint still running then crashed a short-lived `tidings send` (cli/tests/crash.rs).
#[derive(Debug)]
pub struct Checkpoints {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpoints {
    /// Starts checkpointing the database at `path`, opened with `key`.
    pub fn start(path: &Path, key: Option<DbKey>) -> std::io::Result<Self> {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let path = path.to_owned();
        let thread = std::thread::Builder::new().name("checkpoint".into()).spawn(move || {
            let Ok(conn) = connect(&path, key.as_ref()) else { return };
            drop(key);
            // Nothing is ever sent: the sender's drop is the signal to stop.
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(CHECKPOINT_EVERY)
            {
                if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
                    tracing::debug!(error = %e, "Checkpoint skipped.");
                }
            }
        })?;
        Ok(Self { stop: Some(stop), thread: Some(thread) })
    }
}

impl Drop for Checkpoints {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn migrate(conn: &mut Connection, stop: usize) -> Result<(), OpenError> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(OpenError::TooNew { found, known: SCHEMA_VERSION });
    }
    let from = usize::try_from(found).unwrap_or(0);
    for (index, (name, sql)) in MIGRATIONS.iter().enumerate().take(stop).skip(from) {
        let apply = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", index as i64 + 1)?;
            tx.commit()
        };
        apply(conn).map_err(|source| OpenError::Migration { name, source })?;
        tracing::info!(migration = name, "Applied profile migration.");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table, index and trigger definition, sorted: the schema as SQLite sees it.
    fn schema(conn: &Connection) -> Vec<String> {
        let mut st = conn
            .prepare(
                "SELECT type || ' ' || name || ': ' || sql FROM sqlite_master
                 WHERE sql IS NOT NULL ORDER BY type, name",
            )
            .unwrap();
        st.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    }

    #[test]
    fn a_fresh_database_has_the_schema_of_one_migrated_step_by_step() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = open(&dir.path().join("fresh.sqlite"), None).unwrap();
        let stepped_path = dir.path().join("stepped.sqlite");
        for stop in 0..=MIGRATIONS.len() {
            // Reopen between steps, as successive app versions would.
            drop(open_up_to(&stepped_path, None, stop).unwrap());
        }
        let stepped = open(&stepped_path, None).unwrap();
        assert_eq!(schema(&fresh), schema(&stepped));
        let version: i64 = stepped.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        assert!(schema(&fresh).iter().any(|s| s.contains("STRICT")), "tables are STRICT");
    }

    #[test]
    fn a_database_from_an_older_version_upgrades_and_keeps_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profile.sqlite");
        // An older profile: the version before the newest, with a row in it.
        let older = open_up_to(&path, None, MIGRATIONS.len() - 1).unwrap();
        older.execute_batch("CREATE TABLE IF NOT EXISTS \"keep\" (\"v\" TEXT) STRICT;").unwrap();
        older.execute("INSERT INTO \"keep\" (\"v\") VALUES ('hello')", []).unwrap();
        drop(older);
        let conn = open(&path, None).unwrap();
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let kept: String = conn.query_row("SELECT \"v\" FROM \"keep\"", [], |r| r.get(0)).unwrap();
        assert_eq!(kept, "hello");
    }

    #[test]
    fn a_database_from_a_newer_version_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profile.sqlite");
        drop(open(&path, None).unwrap());
        let newer = Connection::open(&path).unwrap();
        newer.execute_batch("CREATE TABLE \"future\" (\"x\" INTEGER) STRICT;").unwrap();
        newer.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        let before = schema(&newer);
        drop(newer);
        let err = open(&path, None).unwrap_err();
        assert!(
            matches!(err, OpenError::TooNew { found, known } if found == SCHEMA_VERSION + 1 && known == SCHEMA_VERSION)
        );
        assert!(err.to_string().contains("newer version of Tidings"), "{err}");
        assert_eq!(schema(&Connection::open(&path).unwrap()), before);
    }

    #[test]
    fn a_failing_migration_leaves_the_previous_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profile.sqlite");
        // A table the first migration also creates makes it fail half-way.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE \"outbox\" (\"x\" INTEGER);").unwrap();
        drop(conn);
        let err = open(&path, None).unwrap_err();
        assert!(matches!(err, OpenError::Migration { name: "0001_client", .. }), "{err}");
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, 0);
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master WHERE name = 'rooms'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tables, 0, "the failed migration was rolled back whole");
    }
}
