//! The writer connection, lent out one write at a time, and the store's
//! health.
//!
//! sqlx counts a connection's open transactions itself. When a `COMMIT`
//! fails (`SQLITE_FULL`, an I/O error), SQLite may already have rolled the
//! transaction back while sqlx still counts it open, or keep it open while
//! the caller believes it gone; either way every later "transaction" on
//! that connection can turn into a savepoint inside one that never
//! commits, and writes are answered that were never made durable. So a
//! connection that saw a failure during a write is closed, never reused:
//! the pool opens a fresh one, and SQLite rolls back whatever the old one
//! left open.
//!
//! A storage failure (disk full, I/O error, the database file gone) also
//! marks the store unwritable: further writes are refused at once (the API
//! answers 503 with `Retry-After`, `/health` reports the store) and a probe
//! retries a one-row write until one commits. Nothing is answered as
//! written unless its `COMMIT` returned success on a healthy connection.
//!
//! Write transactions start with `BEGIN IMMEDIATE` ([`begin`]): they take
//! SQLite's write lock before reading what they are about to change, so a
//! second writer (another connection, another process on the same file)
//! waits for it instead of failing half way with `SQLITE_BUSY_SNAPSHOT`.

use crate::ports::store::{StoreError, StoreResult};
use sqlx::pool::PoolConnection;
use sqlx::{Connection, Sqlite, SqliteConnection, SqlitePool, Transaction};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// SQLite's primary result codes that mean "the storage failed", not "this
/// statement was refused": `SQLITE_NOMEM`, `SQLITE_READONLY`,
/// `SQLITE_IOERR`, `SQLITE_CORRUPT`, `SQLITE_FULL`, `SQLITE_CANTOPEN`,
/// `SQLITE_PROTOCOL`, `SQLITE_NOTADB`.
const STORAGE_FAILURES: [i32; 8] = [7, 8, 10, 11, 13, 14, 15, 26];

/// `SQLITE_BUSY`, `SQLITE_LOCKED`: another connection holds the lock.
const LOCK_CONFLICTS: [i32; 2] = [5, 6];

/// How a sqlx error reads in the store's vocabulary.
pub(super) fn classify(e: sqlx::Error) -> StoreError {
    use sqlx::error::ErrorKind;
    match &e {
        sqlx::Error::Database(d) => {
            let primary = d
                .code()
                .and_then(|c| c.parse::<i32>().ok())
                .map(|c| c & 0xff);
            if primary.is_some_and(|c| STORAGE_FAILURES.contains(&c)) {
                return StoreError::Unavailable(Box::new(e));
            }
            if primary.is_some_and(|c| LOCK_CONFLICTS.contains(&c)) {
                return StoreError::Conflict(Box::new(e));
            }
            // Products, deals, orders and coupons are never deleted, so the
            // one row a write can name that may be missing is its user: a
            // token signed for a user this database does not have.
            if d.kind() == ErrorKind::ForeignKeyViolation {
                return StoreError::UnknownUser;
            }
            StoreError::Backend(Box::new(e))
        }
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(Box::new(e)),
        _ => StoreError::Backend(Box::new(e)),
    }
}

/// Whether the store takes writes, and the database file it writes to.
#[derive(Debug)]
pub(super) struct Health {
    unwritable: AtomicBool,
    /// The database file and its identity (device, inode) when opened:
    /// SQLite keeps writing to a file that was deleted or replaced, and
    /// those writes would be lost, so a changed identity is a failure.
    file: Option<(PathBuf, (u64, u64))>,
}

impl Health {
    pub(super) fn new(file: Option<PathBuf>) -> Self {
        let file = file.and_then(|path| file_identity(&path).map(|id| (path, id)));
        Self {
            unwritable: AtomicBool::new(false),
            file,
        }
    }

    pub(super) fn writable(&self) -> bool {
        !self.unwritable.load(Ordering::Acquire)
    }

    /// Refuses at once while the store is unwritable or its file is gone.
    fn check(&self) -> StoreResult<()> {
        if !self.writable() {
            return Err(StoreError::Unavailable(
                "the store is not taking writes until storage recovers".into(),
            ));
        }
        self.check_file()
    }

    fn check_file(&self) -> StoreResult<()> {
        if let Some((path, id)) = &self.file {
            if file_identity(path) != Some(*id) {
                self.failed("the database file was deleted or replaced");
                return Err(StoreError::Unavailable(
                    "the database file was deleted or replaced".into(),
                ));
            }
        }
        Ok(())
    }

    fn failed(&self, why: &str) {
        if !self.unwritable.swap(true, Ordering::AcqRel) {
            tracing::error!(
                error = why,
                "storage failed: refusing writes until a probe write commits"
            );
        }
    }

    fn recovered(&self) {
        if self.unwritable.swap(false, Ordering::AcqRel) {
            tracing::info!("storage recovered: taking writes again");
        }
    }
}

#[cfg(unix)]
fn file_identity(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_identity(path: &std::path::Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|_| (0, 0))
}

/// The writer connection for one write. Hand the write's result to
/// [`Writer::settle`]; a failure, or a write abandoned half way (its future
/// dropped), closes the connection instead of returning it to the pool.
pub(super) struct Writer<'a> {
    conn: PoolConnection<Sqlite>,
    health: &'a Health,
    settled: bool,
}

impl<'a> Writer<'a> {
    /// The writer connection, or `Unavailable` at once while the store
    /// cannot take writes.
    pub(super) async fn acquire(pool: &SqlitePool, health: &'a Health) -> StoreResult<Self> {
        health.check()?;
        Self::acquire_unchecked(pool, health).await
    }

    async fn acquire_unchecked(pool: &SqlitePool, health: &'a Health) -> StoreResult<Self> {
        let conn = pool.acquire().await.map_err(classify)?;
        Ok(Self {
            conn,
            health,
            settled: false,
        })
    }

    pub(super) fn conn(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }

    /// Returns `result`, after retiring the connection if the write failed.
    /// Refusals that leave the transaction intact (a taken email, an
    /// unknown user) keep the connection.
    pub(super) fn settle<T>(mut self, result: StoreResult<T>) -> StoreResult<T> {
        self.settled = true;
        match &result {
            Ok(_) | Err(StoreError::EmailExists | StoreError::UnknownUser) => {}
            Err(StoreError::Unavailable(e)) => {
                self.conn.close_on_drop();
                self.health.failed(&e.to_string());
            }
            // SQLite may leave the transaction open after a refused COMMIT.
            Err(StoreError::Backend(_) | StoreError::Conflict(_)) => self.conn.close_on_drop(),
        }
        result
    }
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.conn.close_on_drop();
        }
    }
}

/// While the store is unwritable, tries a one-row write every `every`
/// until one commits, then lets writes in again. Ends with the pool.
pub(super) async fn probe_loop(pool: SqlitePool, health: Arc<Health>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !pool.is_closed() {
        tick.tick().await;
        if health.writable() {
            // A deleted database file fails no statement: look for it.
            let _ = health.check_file();
            continue;
        }
        if health.check_file().is_err() {
            continue; // only a restart on a real file helps
        }
        let Ok(mut w) = Writer::acquire_unchecked(&pool, &health).await else {
            continue;
        };
        // Nothing else writes meanwhile, so a TRUNCATE checkpoint can copy
        // the whole log into the database and give the log's space back:
        // on a full disk the WAL is often most of what filled it. It fails
        // harmlessly while there is no room for the copy.
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(w.conn())
            .await;
        let now = chrono::Utc::now().timestamp_micros();
        let probe = sqlx::query("UPDATE store_probe SET probed_at = ?1 WHERE id = 1")
            .bind(now)
            .execute(w.conn())
            .await
            .map_err(classify);
        if w.settle(probe).is_ok() {
            health.recovered();
        }
    }
}

/// Starts a write transaction holding the write lock from the start.
pub(super) async fn begin(conn: &mut SqliteConnection) -> StoreResult<Transaction<'_, Sqlite>> {
    Ok(conn.begin_with("BEGIN IMMEDIATE").await?)
}
