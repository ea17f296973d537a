//! The database's start-up check, before anything opens it for writing: is there a database
//! at all, and does it pass `PRAGMA quick_check` within a time bound. Read-only: a start
//! refused on what this finds leaves the file as it was.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// Most problems `quick_check` reports; the first few are enough to tell what broke.
const MAX_PROBLEMS: u32 = 8;

/// What the database file holds, as far as a start-up may trust it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// No database: the file is missing (`"missing"`), has no bytes (`"empty"`), or is a
    /// SQLite file without any schema (`"blank"`).
    Blank(&'static str),
    /// It opened and `quick_check` said `ok`.
    Sound,
    /// SQLite refused it or `quick_check` found problems (what it said).
    Corrupt(String),
    /// `quick_check` did not finish within its bound: nothing is known.
    Unchecked,
}

/// Inspects the database at `path` on a read-only connection; `bound` caps the check.
pub fn inspect(path: &Path, bound: Duration) -> Result<Health, std::io::Error> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Health::Blank("missing")),
        Err(e) => return Err(e),
        Ok(m) if m.len() == 0 => return Ok(Health::Blank("empty")),
        Ok(_) => {}
    }
    let conn = match Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) {
        Ok(c) => c,
        Err(e) => return Ok(Health::Corrupt(e.to_string())),
    };
    let blank = conn.query_row(
        "SELECT (SELECT count(*) FROM sqlite_master) = 0 \
         AND (SELECT user_version FROM pragma_user_version) = 0",
        [],
        |r| r.get::<_, bool>(0),
    );
    match blank {
        Ok(true) => return Ok(Health::Blank("blank")),
        Ok(false) => {}
        Err(e) => return Ok(Health::Corrupt(e.to_string())),
    }
    Ok(quick_check(&conn, bound))
}

/// `PRAGMA quick_check`, interrupted once `bound` has passed.
fn quick_check(conn: &Connection, bound: Duration) -> Health {
    let interrupt = conn.get_interrupt_handle();
    let (done, wait) = mpsc::channel::<()>();
    let timer = std::thread::spawn(move || {
        let expired = matches!(
            wait.recv_timeout(bound),
            Err(mpsc::RecvTimeoutError::Timeout)
        );
        if expired {
            interrupt.interrupt();
        }
        expired
    });
    let lines = conn
        .prepare(&format!("PRAGMA quick_check({MAX_PROBLEMS})"))
        .and_then(|mut q| {
            q.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()
        });
    let _ = done.send(());
    let expired = timer.join().unwrap_or(false);
    match lines {
        Ok(l) if l.len() == 1 && l[0] == "ok" => Health::Sound,
        Ok(l) => Health::Corrupt(l.join("; ")),
        Err(rusqlite::Error::SqliteFailure(f, _))
            if expired || f.code == rusqlite::ErrorCode::OperationInterrupted =>
        {
            Health::Unchecked
        }
        Err(e) => Health::Corrupt(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_an_empty_and_a_schemaless_file_are_blank() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("meta.db");
        let bound = Duration::from_secs(10);
        assert_eq!(
            inspect(&db, bound).expect("missing"),
            Health::Blank("missing")
        );
        std::fs::write(&db, b"").expect("empty");
        assert_eq!(inspect(&db, bound).expect("empty"), Health::Blank("empty"));
        Connection::open(&db)
            .and_then(|c| c.execute_batch("PRAGMA journal_mode=WAL"))
            .expect("a schemaless database");
        assert_eq!(inspect(&db, bound).expect("blank"), Health::Blank("blank"));
    }

    #[test]
    fn a_sound_database_passes_and_garbage_does_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("meta.db");
        let bound = Duration::from_secs(10);
        Connection::open(&db)
            .and_then(|c| c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);"))
            .expect("create");
        assert_eq!(inspect(&db, bound).expect("sound"), Health::Sound);
        std::fs::write(&db, vec![0xab; 8192]).expect("garbage");
        assert!(matches!(
            inspect(&db, bound).expect("garbage"),
            Health::Corrupt(_)
        ));
    }

    #[test]
    fn a_check_past_its_bound_is_unchecked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("meta.db");
        Connection::open(&db)
            .and_then(|c| {
                c.execute_batch(
                    "CREATE TABLE t (x TEXT); CREATE INDEX t_x ON t (x);
                     WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n
                     WHERE i < 200000) INSERT INTO t SELECT hex(randomblob(32)) FROM n;",
                )
            })
            .expect("a database that takes a while to check");
        assert_eq!(
            inspect(&db, Duration::from_millis(5)).expect("inspect"),
            Health::Unchecked
        );
    }
}
