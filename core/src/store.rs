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

use std::path::Path;

use rusqlite::Connection;

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
    /// A migration failed; the database stays at the version before it.
    #[error("migration {name} failed: {source}")]
    Migration {
        /// The migration's file name.
        name: &'static str,
        /// What SQLite said.
        source: rusqlite::Error,
    },
}

/// Opens (creating if needed) and migrates the database at `path`.
pub fn open(path: &Path) -> Result<Connection, OpenError> {
    open_up_to(path, MIGRATIONS.len())
}

/// Opens the database and applies migrations up to version `stop` only (tests build older
/// databases with it).
pub(crate) fn open_up_to(path: &Path, stop: usize) -> Result<Connection, OpenError> {
    let mut conn = Connection::open(path)?;
    // WAL must be chosen outside a transaction.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // NORMAL in WAL mode: a commit survives the process being killed at any instant (the
    // WAL is in the OS's hands); only an OS crash or power loss can lose the last commits —
    // never acknowledged by the server, so never inconsistent with it. FULL would put an
    // fsync on every keystroke-to-echo path (measured: p99 8.6 ms vs the 1 ms goal).
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Checkpoints happen off the write path (see `checkpoint_while`): an automatic one runs
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

/// Copies the WAL back into the database every second on a connection of its own, for as
/// long as `alive` can be upgraded (the profile is open). A PASSIVE checkpoint never blocks
/// the writer; measured on a 1 M-message profile, moving checkpoints here took catch-up from
/// 31 k to 62 k events/s and the local echo's p99 from 11 ms to under 2 ms
/// (docs/performance.md). The last connection to close checkpoints what is left.
pub fn checkpoint_while<T>(path: &Path, alive: std::sync::Weak<T>) {
    let Ok(conn) = Connection::open(path) else { return };
    while alive.upgrade().is_some() {
        std::thread::sleep(CHECKPOINT_EVERY);
        if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
            tracing::debug!(error = %e, "Checkpoint skipped.");
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
        let fresh = open(&dir.path().join("fresh.sqlite")).unwrap();
        let stepped_path = dir.path().join("stepped.sqlite");
        for stop in 0..=MIGRATIONS.len() {
            // Reopen between steps, as successive app versions would.
            drop(open_up_to(&stepped_path, stop).unwrap());
        }
        let stepped = open(&stepped_path).unwrap();
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
        let older = open_up_to(&path, MIGRATIONS.len() - 1).unwrap();
        older.execute_batch("CREATE TABLE IF NOT EXISTS \"keep\" (\"v\" TEXT) STRICT;").unwrap();
        older.execute("INSERT INTO \"keep\" (\"v\") VALUES ('hello')", []).unwrap();
        drop(older);
        let conn = open(&path).unwrap();
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let kept: String = conn.query_row("SELECT \"v\" FROM \"keep\"", [], |r| r.get(0)).unwrap();
        assert_eq!(kept, "hello");
    }

    #[test]
    fn a_database_from_a_newer_version_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profile.sqlite");
        drop(open(&path).unwrap());
        let newer = Connection::open(&path).unwrap();
        newer.execute_batch("CREATE TABLE \"future\" (\"x\" INTEGER) STRICT;").unwrap();
        newer.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        let before = schema(&newer);
        drop(newer);
        let err = open(&path).unwrap_err();
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
        let err = open(&path).unwrap_err();
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
