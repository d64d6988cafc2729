//! The outbox: wrap-ups not yet acknowledged by the platform, in a SQLite file.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

use crate::{PlatformError, Wrapup};

/// Schema version, in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS pending (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    call_id TEXT NOT NULL,
    agent TEXT NOT NULL,
    disposition TEXT NOT NULL,
    note TEXT NOT NULL,
    ended_at_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS rejected (
    key TEXT PRIMARY KEY,
    call_id TEXT NOT NULL,
    agent TEXT NOT NULL,
    disposition TEXT NOT NULL,
    note TEXT NOT NULL,
    ended_at_ms INTEGER NOT NULL,
    status INTEGER NOT NULL,
    rejected_at_ms INTEGER NOT NULL
);
";

/// The wrap-ups not yet acknowledged by the platform, oldest first, in a SQLite file (WAL,
/// `synchronous=FULL`: a wrap-up is on disk when [`Outbox::enqueue`] returns, and survives a
/// crash or power loss).
///
/// Cheap to clone (the clones share one connection). Methods block for one short statement
/// (`enqueue` and `acknowledge` wait for an `fsync`): from async code, call them in
/// `tokio::task::spawn_blocking`.
#[derive(Clone, Debug)]
pub struct Outbox {
    connection: Arc<Mutex<Connection>>,
}

/// A wrap-up the platform refused for good, kept so that it is never lost silently.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedWrapup {
    /// The wrap-up as it was posted.
    pub wrapup: Wrapup,
    /// The HTTP status of the refusal.
    pub status: u16,
    /// When it was refused, milliseconds since the Unix epoch.
    pub rejected_at_ms: u64,
}

impl Outbox {
    /// Opens (or creates) the outbox at `path`. On Unix the file is made readable by its owner
    /// only (notes are typed by the agent).
    pub fn open(path: &Path) -> Result<Outbox, PlatformError> {
        let connection = Connection::open(path).map_err(sql("open"))?;
        connection
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sql("busy timeout"))?;
        let mode: String = connection
            .query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))
            .map_err(sql("set WAL"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(PlatformError::OutboxData(format!(
                "journal mode {mode}, not WAL"
            )));
        }
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(sql("set synchronous"))?;
        let version: i64 = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(sql("read schema version"))?;
        if version > SCHEMA_VERSION {
            return Err(PlatformError::OutboxData(format!(
                "schema version {version} is newer than this program's {SCHEMA_VERSION}"
            )));
        }
        connection
            .execute_batch(SCHEMA)
            .map_err(sql("create tables"))?;
        connection
            .pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(sql("write schema version"))?;
        restrict_to_owner(path);
        Ok(Outbox {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// Stores `wrapup` durably. A key already pending is stored once (the first copy stays).
    pub fn enqueue(&self, wrapup: &Wrapup) -> Result<(), PlatformError> {
        let ended_at_ms = i64::try_from(wrapup.ended_at_ms).map_err(|_| {
            PlatformError::OutboxData(format!("ended_at_ms {} is too large", wrapup.ended_at_ms))
        })?;
        self.connection()
            .execute(
                "INSERT OR IGNORE INTO pending (key, call_id, agent, disposition, note, ended_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    wrapup.key,
                    wrapup.call_id,
                    wrapup.agent,
                    wrapup.disposition,
                    wrapup.note,
                    ended_at_ms
                ],
            )
            .map_err(sql("enqueue"))?;
        Ok(())
    }

    /// The pending wrap-ups, oldest first.
    pub fn pending(&self) -> Result<Vec<Wrapup>, PlatformError> {
        let connection = self.connection();
        let mut statement = connection
            .prepare_cached(
                "SELECT key, call_id, agent, disposition, note, ended_at_ms
                 FROM pending ORDER BY seq",
            )
            .map_err(sql("read pending"))?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    Wrapup {
                        key: row.get(0)?,
                        call_id: row.get(1)?,
                        agent: row.get(2)?,
                        disposition: row.get(3)?,
                        note: row.get(4)?,
                        ended_at_ms: 0,
                    },
                    row.get::<_, i64>(5)?,
                ))
            })
            .map_err(sql("read pending"))?;
        rows.map(|row| {
            let (mut wrapup, ended_at_ms) = row.map_err(sql("read pending"))?;
            wrapup.ended_at_ms = u64::try_from(ended_at_ms).map_err(|_| {
                PlatformError::OutboxData(format!("negative ended_at_ms for {}", wrapup.key))
            })?;
            Ok(wrapup)
        })
        .collect()
    }

    /// How many wrap-ups are pending.
    pub fn pending_count(&self) -> Result<usize, PlatformError> {
        let count: i64 = self
            .connection()
            .query_row("SELECT COUNT(*) FROM pending", [], |row| row.get(0))
            .map_err(sql("count pending"))?;
        // A COUNT(*) is never negative.
        Ok(usize::try_from(count).unwrap_or(0))
    }

    /// Removes a delivered wrap-up. An unknown key is not an error (already acknowledged).
    pub fn acknowledge(&self, key: &str) -> Result<(), PlatformError> {
        self.connection()
            .execute("DELETE FROM pending WHERE key = ?1", [key])
            .map_err(sql("acknowledge"))?;
        Ok(())
    }

    /// Notes a failed delivery attempt (attempt count and last error, for diagnostics).
    pub fn record_attempt(&self, key: &str, error: &str) -> Result<(), PlatformError> {
        self.connection()
            .execute(
                "UPDATE pending SET attempts = attempts + 1, last_error = ?2 WHERE key = ?1",
                params![key, error],
            )
            .map_err(sql("record attempt"))?;
        Ok(())
    }

    /// How many delivery attempts of this pending wrap-up failed, and the last error; `None`
    /// when it is not pending.
    pub fn attempts(&self, key: &str) -> Result<Option<(u32, Option<String>)>, PlatformError> {
        self.connection()
            .query_row(
                "SELECT attempts, last_error FROM pending WHERE key = ?1",
                [key],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(sql("read attempts"))
    }

    /// Moves a pending wrap-up the platform refused for good to the `rejected` table.
    pub fn reject(&self, key: &str, status: u16) -> Result<(), PlatformError> {
        let mut connection = self.connection();
        let transaction = connection.transaction().map_err(sql("reject"))?;
        transaction
            .execute(
                "INSERT OR REPLACE INTO rejected
                   (key, call_id, agent, disposition, note, ended_at_ms, status, rejected_at_ms)
                 SELECT key, call_id, agent, disposition, note, ended_at_ms, ?2, ?3
                 FROM pending WHERE key = ?1",
                params![key, status, unix_ms()],
            )
            .map_err(sql("reject"))?;
        transaction
            .execute("DELETE FROM pending WHERE key = ?1", [key])
            .map_err(sql("reject"))?;
        transaction.commit().map_err(sql("reject"))
    }

    /// The wrap-ups the platform refused for good, oldest first.
    pub fn rejected(&self) -> Result<Vec<RejectedWrapup>, PlatformError> {
        let connection = self.connection();
        let mut statement = connection
            .prepare_cached(
                "SELECT key, call_id, agent, disposition, note, ended_at_ms, status, rejected_at_ms
                 FROM rejected ORDER BY rejected_at_ms, rowid",
            )
            .map_err(sql("read rejected"))?;
        let rows = statement
            .query_map([], |row| {
                Ok(RejectedWrapup {
                    wrapup: Wrapup {
                        key: row.get(0)?,
                        call_id: row.get(1)?,
                        agent: row.get(2)?,
                        disposition: row.get(3)?,
                        note: row.get(4)?,
                        ended_at_ms: row.get::<_, i64>(5)?.try_into().unwrap_or(0),
                    },
                    status: row.get(6)?,
                    rejected_at_ms: row.get::<_, i64>(7)?.try_into().unwrap_or(0),
                })
            })
            .map_err(sql("read rejected"))?;
        rows.map(|row| row.map_err(sql("read rejected"))).collect()
    }

    fn connection(&self) -> MutexGuard<'_, Connection> {
        // SQLite keeps its own consistency; a panic elsewhere while holding the lock leaves
        // nothing half-done on our side.
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn sql(context: &'static str) -> impl Fn(rusqlite::Error) -> PlatformError {
    move |source| PlatformError::Outbox { context, source }
}

fn unix_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(unix)]
fn restrict_to_owner(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        tracing::warn!(path = %path.display(), error = %e, "cannot restrict the outbox to its owner");
    }
}

#[cfg(not(unix))]
fn restrict_to_owner(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_outbox(name: &str) -> (std::path::PathBuf, Outbox) {
        let dir = std::env::temp_dir().join(format!("ha-outbox-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir is writable");
        let outbox = Outbox::open(&dir.join("outbox.sqlite3")).expect("fresh outbox opens");
        (dir, outbox)
    }

    #[test]
    fn enqueue_is_idempotent_ordered_and_survives_reopen() {
        let (dir, outbox) = temp_outbox("order");
        let first = Wrapup::new(
            "call-1",
            "agent01",
            "sale",
            "note é 1",
            u64::from(u32::MAX) * 7,
        );
        let second = Wrapup::new("call-2", "agent01", "callback", "", 2);
        outbox.enqueue(&first).expect("enqueue");
        outbox.enqueue(&second).expect("enqueue");
        outbox.enqueue(&first).expect("same key again");
        drop(outbox);

        let outbox = Outbox::open(&dir.join("outbox.sqlite3")).expect("reopen");
        assert_eq!(
            outbox.pending().expect("pending"),
            vec![first.clone(), second.clone()]
        );
        outbox
            .record_attempt(&first.key, "HTTP 503")
            .expect("record");
        assert_eq!(
            outbox.attempts(&first.key).expect("attempts"),
            Some((1, Some("HTTP 503".into())))
        );
        outbox.acknowledge(&first.key).expect("ack");
        outbox.acknowledge(&first.key).expect("ack twice");
        assert_eq!(outbox.pending().expect("pending"), vec![second.clone()]);
        outbox.reject(&second.key, 422).expect("reject");
        assert_eq!(outbox.pending_count().expect("count"), 0);
        let rejected = outbox.rejected().expect("rejected");
        assert_eq!(rejected.len(), 1);
        assert_eq!(
            (rejected[0].wrapup.clone(), rejected[0].status),
            (second, 422)
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn refuses_an_unstorable_time() {
        let (dir, outbox) = temp_outbox("time");
        let wrapup = Wrapup::new("c", "a", "d", "", u64::MAX);
        assert!(matches!(
            outbox.enqueue(&wrapup),
            Err(PlatformError::OutboxData(_))
        ));
        let _ = std::fs::remove_dir_all(dir);
    }
}
