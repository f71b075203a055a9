//! The server's SQLite database: one writer thread with group commit, a few readers.
//!
//! **Writes** go through [`Store::write`]: the closure runs on the single writer thread inside
//! a savepoint of the current batch. The writer takes every job waiting in its queue (up to
//! [`MAX_BATCH`]) into one transaction, so under load many acknowledged mutations share one
//! `fsync` (`synchronous=FULL`: a committed batch survives kill -9 and power loss). A job that
//! fails rolls back its own savepoint only.
//!
//! **Events after commit.** A job registers post-commit work with [`Tx::after_commit`]
//! (fan-out of the new event, registering a joined connection). The writer runs it right
//! after `COMMIT` and before any later batch, in commit order, so pushes leave the server in
//! seq order and never announce something a crash could take back.
//!
//! **Reads** ([`Store::read`]) run on tokio's blocking pool with a small pool of read-only
//! connections; WAL lets them proceed while the writer commits.
//!
//! **Migrations** are the numbered files in `server/migrations/`, embedded at compile time and
//! applied in order, each in its own transaction together with `PRAGMA user_version`. A
//! database from a newer server (a higher version than we know) is refused, not touched.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    thread::JoinHandle,
};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

/// Most jobs committed in one transaction.
const MAX_BATCH: usize = 512;
/// Jobs that may wait for the writer before `write` callers wait for room.
const QUEUE_DEPTH: usize = 4096;
/// Read connections kept open between reads.
const READERS_KEPT: usize = 8;

/// The migrations, in order. Version N is reached by applying the first N files.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_init", include_str!("../migrations/0001_init.sql")),
    ("0002_uploads", include_str!("../migrations/0002_uploads.sql")),
    ("0003_contacts", include_str!("../migrations/0003_contacts.sql")),
    ("0004_nearby", include_str!("../migrations/0004_nearby.sql")),
    ("0005_quotas", include_str!("../migrations/0005_quotas.sql")),
    ("0006_consent", include_str!("../migrations/0006_consent.sql")),
    ("0007_e2ee", include_str!("../migrations/0007_e2ee.sql")),
    ("0008_links", include_str!("../migrations/0008_links.sql")),
    ("0009_redaction", include_str!("../migrations/0009_redaction.sql")),
];

/// What can go wrong opening or using the database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database was written by a newer server.
    #[error("database schema version {found} is newer than this server understands ({known})")]
    TooNew {
        /// Version in the file.
        found: i64,
        /// Newest version this build knows.
        known: i64,
    },
    /// The writer thread has stopped (shutdown or a fatal error).
    #[error("database writer has stopped")]
    Closed,
    /// A blocking read task failed.
    #[error("database read task failed")]
    ReadTask,
}

type AfterCommit = Box<dyn FnOnce() + Send>;
type Job = Box<dyn FnOnce(&Connection, &mut Vec<AfterCommit>) -> JobEnd + Send>;
/// Told whether the batch committed; sends the job's result to its caller.
type JobEnd = Box<dyn FnOnce(bool) + Send>;

/// A write in progress: the connection (inside a savepoint) and the job's post-commit work.
pub struct Tx<'a> {
    conn: &'a Connection,
    after: Vec<AfterCommit>,
}

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx").field("after", &self.after.len()).finish()
    }
}

impl Tx<'_> {
    /// Runs `f` on the writer thread once this job's batch has committed (never if it
    /// rolls back). Keep it short: it delays the next batch.
    pub fn after_commit(&mut self, f: impl FnOnce() + Send + 'static) {
        self.after.push(Box::new(f));
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

/// Handle to the database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    jobs: mpsc::Sender<Job>,
    readers: Arc<Mutex<Vec<Connection>>>,
    path: Arc<PathBuf>,
    writer: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Store {
    /// Opens (creating and migrating if needed) the database at `path` and starts the writer.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path)?;
        // WAL must be set outside a transaction; FULL makes every commit durable.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrate(&mut conn)?;
        let (jobs, rx) = mpsc::channel(QUEUE_DEPTH);
        let writer = std::thread::Builder::new()
            .name("db-writer".into())
            .spawn(move || run_writer(conn, rx))
            .map_err(|_| StoreError::Closed)?;
        Ok(Self {
            jobs,
            readers: Arc::default(),
            path: Arc::new(path.to_owned()),
            writer: Arc::new(Mutex::new(Some(writer))),
        })
    }

    /// Runs `f` in the writer's current transaction and returns its result once the
    /// transaction has committed. An error from `f` rolls back only `f`'s changes.
    pub async fn write<T, E>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn, after_all| {
            let result = run_in_savepoint(conn, after_all, f);
            Box::new(move |committed| {
                let result = match result {
                    Ok(_) if !committed => Err(E::from(StoreError::Closed)),
                    r => r,
                };
                let _ = tx.send(result);
            })
        });
        self.jobs.send(job).await.map_err(|_| E::from(StoreError::Closed))?;
        rx.await.map_err(|_| E::from(StoreError::Closed))?
    }

    /// Runs `f` on a read-only connection on the blocking pool.
    pub async fn read<T, E>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let readers = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = readers.lock().ok().and_then(|mut r| r.pop());
            let conn = match pooled {
                Some(c) => c,
                None => open_reader(&path).map_err(E::from)?,
            };
            let result = f(&conn);
            if let Ok(mut r) = readers.lock() {
                if r.len() < READERS_KEPT {
                    r.push(conn);
                }
            }
            result
        })
        .await
        .map_err(|_| E::from(StoreError::ReadTask))?
    }

    /// Stops accepting writes, lets the writer commit what it has, and waits for it.
    /// Other clones of this handle must have been dropped first for the writer to stop.
    pub fn close(self) {
        let writer = self.writer.lock().ok().and_then(|mut w| w.take());
        drop(self.jobs);
        if let Some(handle) = writer {
            let _ = handle.join();
        }
    }
}

fn run_in_savepoint<T, E: From<StoreError>>(
    conn: &Connection,
    after_all: &mut Vec<AfterCommit>,
    f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>,
) -> Result<T, E> {
    conn.execute_batch("SAVEPOINT job").map_err(|e| E::from(e.into()))?;
    let mut tx = Tx { conn, after: Vec::new() };
    let result = f(&mut tx);
    let end = if result.is_ok() { "RELEASE job" } else { "ROLLBACK TO job; RELEASE job" };
    conn.execute_batch(end).map_err(|e| E::from(e.into()))?;
    if result.is_ok() {
        after_all.append(&mut tx.after);
    }
    result
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

fn run_writer(conn: Connection, mut rx: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut after = Vec::new();
        let began = conn.execute_batch("BEGIN IMMEDIATE").is_ok();
        let ends: Vec<JobEnd> = batch
            .drain(..)
            .map(|job| if began { job(&conn, &mut after) } else { Box::new(|_| {}) as JobEnd })
            .collect();
        let committed = began && conn.execute_batch("COMMIT").is_ok();
        if !committed {
            tracing::error!("Database batch failed to commit; its requests get an error.");
            let _ = conn.execute_batch("ROLLBACK");
            after.clear();
        }
        for f in after {
            f();
        }
        for end in ends {
            end(committed);
        }
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let known = MIGRATIONS.len() as i64;
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > known {
        return Err(StoreError::TooNew { found, known });
    }
    for (version, (name, sql)) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version as i64 + 1)?;
        tx.commit()?;
        tracing::info!(migration = name, "Applied database migration.");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_job_rolls_back_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let insert = |name: &'static str, fail: bool| {
            let store = store.clone();
            async move {
                store
                    .write(move |tx| {
                        tx.execute(
                            "INSERT INTO users (username, password_hash, created_ms) \
                             VALUES (?1, '', 0)",
                            [name],
                        )?;
                        if fail {
                            return Err(StoreError::Closed);
                        }
                        Ok(())
                    })
                    .await
            }
        };
        let (a, b, c) = tokio::join!(insert("a", false), insert("b", true), insert("c", false));
        assert!(a.is_ok() && b.is_err() && c.is_ok());
        let names: Vec<String> = store
            .read(|c| {
                let mut st = c.prepare("SELECT username FROM users ORDER BY username")?;
                let rows = st.query_map([], |r| r.get(0))?;
                Ok::<_, StoreError>(rows.collect::<Result<_, _>>()?)
            })
            .await
            .unwrap();
        assert_eq!(names, ["a", "c"]);
    }

    #[test]
    fn a_database_from_a_newer_server_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        Connection::open(&path).unwrap().pragma_update(None, "user_version", 99).unwrap();
        let err = Store::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
    }

    #[test]
    fn reopening_does_not_reapply_migrations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        Store::open(&path).unwrap().close();
        Store::open(&path).unwrap().close();
        let v: i64 = Connection::open(&path)
            .unwrap()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
    }
}
