//! Schema changes: the numbered files in `migrations/`, applied in order at start-up, each in a
//! transaction that also bumps `PRAGMA user_version`, so a crash mid-migration leaves the old
//! schema intact.

use rusqlite::Connection;

/// Every migration, in order; the position (1-based) is the schema version it produces.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_foundation.sql",
        include_str!("../../../migrations/0001_foundation.sql"),
    ),
    (
        "0002_images.sql",
        include_str!("../../../migrations/0002_images.sql"),
    ),
    (
        "0003_tasks.sql",
        include_str!("../../../migrations/0003_tasks.sql"),
    ),
    (
        "0004_task_identity.sql",
        include_str!("../../../migrations/0004_task_identity.sql"),
    ),
    (
        "0005_snapshot_kind_transitions.sql",
        include_str!("../../../migrations/0005_snapshot_kind_transitions.sql"),
    ),
    (
        "0006_last_exits.sql",
        include_str!("../../../migrations/0006_last_exits.sql"),
    ),
    (
        "0007_networks.sql",
        include_str!("../../../migrations/0007_networks.sql"),
    ),
    (
        "0008_event_bytes.sql",
        include_str!("../../../migrations/0008_event_bytes.sql"),
    ),
];

/// Applies the migrations the database has not seen yet.
pub fn apply(conn: &mut Connection) -> Result<(), String> {
    let current: usize = conn
        .pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))
        .map_err(|e| e.to_string())?
        .try_into()
        .map_err(|_| "negative user_version".to_owned())?;
    if current > MIGRATIONS.len() {
        return Err(format!(
            "database schema version {current} is newer than this berthd knows ({}); \
             refusing to touch it",
            MIGRATIONS.len()
        ));
    }
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction().map_err(|e| e.to_string())?;
        tx.execute_batch(sql)
            .map_err(|e| format!("migration {name}: {e}"))?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(|e| e.to_string())?;
        tx.commit().map_err(|e| e.to_string())?;
        tracing::info!(migration = name, "applied schema migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_every_migration_once_and_records_the_version() {
        let mut conn = Connection::open_in_memory().expect("open");
        apply(&mut conn).expect("first");
        apply(&mut conn).expect("second is a no-op");
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version");
        assert_eq!(v as usize, MIGRATIONS.len());
    }

    #[test]
    fn a_snapshot_kind_changes_only_from_active_to_committed() {
        let mut conn = Connection::open_in_memory().expect("open");
        apply(&mut conn).expect("migrate");
        conn.execute_batch(
            "INSERT INTO namespaces (name, created_at) VALUES ('default', 'now');
             INSERT INTO snapshots (namespace, snapshotter, key, kind, created_at, updated_at)
             VALUES ('default', 'overlayfs', 'a', 'active', 'now', 'now'),
                    ('default', 'overlayfs', 'v', 'view', 'now', 'now');",
        )
        .expect("rows");
        let set = |key: &str, kind: &str| {
            conn.execute(
                "UPDATE snapshots SET kind = ?2 WHERE key = ?1",
                rusqlite::params![key, kind],
            )
        };
        let err = conn
            .execute_batch(
                "INSERT INTO snapshots (namespace, snapshotter, key, kind, created_at, \
                 updated_at) VALUES ('default', 'overlayfs', 'b', 'bogus', 'now', 'now')",
            )
            .expect_err("CHECK refuses an unknown kind");
        assert!(err.to_string().contains("CHECK"), "{err}");
        set("a", "bogus").expect_err("nor may a row become one");
        set("v", "committed").expect_err("a view is never committed");
        set("a", "view").expect_err("active -> view");
        set("a", "committed").expect("active -> committed");
        set("a", "active").expect_err("committed is final");
        set("a", "committed").expect("an unchanged kind is no transition");
    }

    #[test]
    fn refuses_a_newer_schema() {
        let mut conn = Connection::open_in_memory().expect("open");
        conn.pragma_update(None, "user_version", 999).expect("set");
        let err = apply(&mut conn).expect_err("newer");
        assert!(err.contains("newer"), "{err}");
    }
}
