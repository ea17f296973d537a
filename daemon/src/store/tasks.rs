//! The processes table: a task's init (exec_id "") and its exec processes, with their exit
//! statuses. Each change records its `/tasks/*` event in the same transaction.

use rusqlite::{params, Connection, OptionalExtension, Row};
use schema::events as ev;
use schema::{ContainerStatus, ExitReason, Process, TaskStatus};

use super::{is_unique_violation, Result, StoreError, Tx};

/// One stored process.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessRow {
    pub namespace: String,
    pub container_id: String,
    pub exec_id: String,
    pub pid: i64,
    /// With `pid`, the process's identity: its start time in clock ticks since boot.
    pub start_time: u64,
    pub status: TaskStatus,
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
    pub exit_status: Option<i64>,
    pub exited_at: Option<String>,
    pub exit_reason: Option<ExitReason>,
    pub bundle: String,
    pub runtime: String,
    /// The OCI process object of an exec process; `null` for the init.
    pub spec: serde_json::Value,
    pub created_at: String,
    /// Delete the task and its container once the init's exit is stored.
    pub auto_remove: bool,
    /// When it was started; set by [`set_started`].
    pub started_at: Option<String>,
}

impl ProcessRow {
    pub fn to_process(&self) -> Process {
        Process {
            container_id: self.container_id.clone(),
            exec_id: self.exec_id.clone(),
            pid: self.pid,
            status: self.status.wire().to_owned(),
            stdin: self.stdin.clone(),
            stdout: self.stdout.clone(),
            stderr: self.stderr.clone(),
            terminal: self.terminal,
            exit_status: self.exit_status,
            exited_at: self.exited_at.clone(),
            exit_reason: self.exit_reason,
            started_at: self.started_at.clone(),
            network: None,
        }
    }
}

const COLUMNS: &str = "namespace, container_id, exec_id, pid, start_time, status, stdin, stdout, \
                       stderr, terminal, exit_status, exited_at, exit_reason, bundle, runtime, \
                       spec, created_at, auto_remove, started_at";

fn bad_column(what: &str, value: &str) -> StoreError {
    StoreError::Sqlite(rusqlite::Error::InvalidColumnType(
        0,
        format!("{what} {value:?}"),
        rusqlite::types::Type::Text,
    ))
}

fn from_row(r: &Row<'_>) -> Result<ProcessRow> {
    let status: String = r.get(5)?;
    let reason: Option<String> = r.get(12)?;
    Ok(ProcessRow {
        namespace: r.get(0)?,
        container_id: r.get(1)?,
        exec_id: r.get(2)?,
        pid: r.get(3)?,
        start_time: r.get::<_, i64>(4)? as u64,
        status: TaskStatus::parse(&status).ok_or_else(|| bad_column("status", &status))?,
        stdin: r.get(6)?,
        stdout: r.get(7)?,
        stderr: r.get(8)?,
        terminal: r.get(9)?,
        exit_status: r.get(10)?,
        exited_at: r.get(11)?,
        exit_reason: match reason {
            None => None,
            Some(s) => Some(ExitReason::parse(&s).ok_or_else(|| bad_column("exit_reason", &s))?),
        },
        bundle: r.get(13)?,
        runtime: r.get(14)?,
        spec: serde_json::from_str(&r.get::<_, String>(15)?)?,
        created_at: r.get(16)?,
        auto_remove: r.get(17)?,
        started_at: r.get(18)?,
    })
}

/// How a process is named in messages: `task "web"` or `exec process "sh1" of task "web"`.
pub fn describe(ns: &str, container_id: &str, exec_id: &str) -> String {
    if exec_id.is_empty() {
        format!("task \"{container_id}\" in namespace \"{ns}\"")
    } else {
        format!("exec process \"{exec_id}\" of task \"{container_id}\" in namespace \"{ns}\"")
    }
}

/// Inserts a process row. An init is inserted as the `creating` intent, before runc is
/// called, and records nothing yet ([`set_created`] does); an exec records
/// `/tasks/exec-added`.
pub fn insert(tx: &mut Tx<'_>, p: &ProcessRow) -> Result<()> {
    let res = tx
        .conn()
        .prepare_cached(&format!(
            "INSERT INTO processes ({COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"
        ))?
        .execute(params![
            p.namespace,
            p.container_id,
            p.exec_id,
            p.pid,
            p.start_time as i64,
            p.status.as_str(),
            p.stdin,
            p.stdout,
            p.stderr,
            p.terminal,
            p.exit_status,
            p.exited_at,
            p.exit_reason.map(ExitReason::as_str),
            p.bundle,
            p.runtime,
            serde_json::to_string(&p.spec)?,
            p.created_at,
            p.auto_remove,
            p.started_at,
        ]);
    match res {
        Err(e) if is_unique_violation(&e) => {
            return Err(StoreError::AlreadyExists(format!(
                "{} already exists",
                describe(&p.namespace, &p.container_id, &p.exec_id)
            )))
        }
        other => other?,
    };
    if p.exec_id.is_empty() {
        return Ok(());
    }
    tx.emit(
        &p.namespace,
        &ev::TaskExecAdded {
            container_id: p.container_id.clone(),
            exec_id: p.exec_id.clone(),
        },
    )
}

/// creating -> created once `runc create` returned, with the init's identity and whether
/// the task is `auto_remove` (while `creating`, the column says whether a create cut off
/// by a crash takes its container with it); records `/tasks/create`.
pub fn set_created(
    tx: &mut Tx<'_>,
    ns: &str,
    container_id: &str,
    pid: i64,
    start_time: u64,
    auto_remove: bool,
) -> Result<ProcessRow> {
    tx.conn()
        .prepare_cached(
            "UPDATE processes SET pid = ?3, start_time = ?4, status = 'created', \
             auto_remove = ?5 \
             WHERE namespace = ?1 AND container_id = ?2 AND exec_id = '' \
             AND status = 'creating'",
        )?
        .execute(params![
            ns,
            container_id,
            pid,
            start_time as i64,
            auto_remove
        ])?;
    let p = get_any(tx.conn(), ns, container_id, "")?;
    tx.emit(
        ns,
        &ev::TaskCreate {
            container_id: p.container_id.clone(),
            bundle: p.bundle.clone(),
            io: ev::TaskIo {
                stdin: p.stdin.clone(),
                stdout: p.stdout.clone(),
                stderr: p.stderr.clone(),
                terminal: p.terminal,
            },
            pid: p.pid,
        },
    )?;
    Ok(p)
}

/// Removes an init row left as an intent once its work is done: `creating` when the create
/// was undone, `deleting` when the task is torn down. No event: a create undone was never
/// announced, and a delete was announced by [`mark_deleted`]. Any other row is kept.
pub fn remove_intent(
    tx: &mut Tx<'_>,
    ns: &str,
    container_id: &str,
    intent: TaskStatus,
) -> Result<()> {
    tx.conn()
        .prepare_cached(
            "DELETE FROM processes WHERE namespace = ?1 AND container_id = ?2 \
             AND exec_id = '' AND status = ?3",
        )?
        .execute(params![ns, container_id, intent.as_str()])?;
    Ok(())
}

/// Sets the status of a process that has not exited (start-up reconciliation).
pub fn set_status(
    tx: &mut Tx<'_>,
    ns: &str,
    container_id: &str,
    exec_id: &str,
    status: TaskStatus,
) -> Result<()> {
    tx.conn()
        .prepare_cached(
            "UPDATE processes SET status = ?4 \
             WHERE namespace = ?1 AND container_id = ?2 AND exec_id = ?3 \
             AND exit_status IS NULL",
        )?
        .execute(params![ns, container_id, exec_id, status.as_str()])?;
    Ok(())
}

/// A process as clients see it: a task still `creating` does not exist yet, one
/// `deleting` (torn down in the background) no longer does.
pub fn get(conn: &Connection, ns: &str, container_id: &str, exec_id: &str) -> Result<ProcessRow> {
    match get_any(conn, ns, container_id, exec_id)? {
        row if row.status == TaskStatus::Creating => Err(StoreError::NotFound(format!(
            "{} not found (it is being created)",
            describe(ns, container_id, exec_id)
        ))),
        row if row.status == TaskStatus::Deleting => Err(StoreError::NotFound(format!(
            "{} not found (it was deleted)",
            describe(ns, container_id, exec_id)
        ))),
        row => Ok(row),
    }
}

/// A process in any state, intents included.
pub fn get_any(
    conn: &Connection,
    ns: &str,
    container_id: &str,
    exec_id: &str,
) -> Result<ProcessRow> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM processes \
         WHERE namespace = ?1 AND container_id = ?2 AND exec_id = ?3"
    ))?;
    let mut rows = stmt.query(params![ns, container_id, exec_id])?;
    match rows.next()? {
        Some(row) => from_row(row),
        None => Err(StoreError::NotFound(format!(
            "{} not found",
            describe(ns, container_id, exec_id)
        ))),
    }
}

/// Every task (init process) of a namespace, by container id.
pub fn list_tasks(conn: &Connection, ns: &str) -> Result<Vec<ProcessRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM processes WHERE namespace = ?1 AND exec_id = '' \
         AND status NOT IN ('creating', 'deleting') ORDER BY container_id"
    ))?;
    let mut rows = stmt.query([ns])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(from_row(row)?);
    }
    Ok(out)
}

/// Every process of every namespace, for start-up reconciliation.
pub fn list_all(conn: &Connection) -> Result<Vec<ProcessRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM processes ORDER BY namespace, container_id, exec_id"
    ))?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(from_row(row)?);
    }
    Ok(out)
}

/// Whether container `id` has a task (containers.delete refuses then).
pub fn task_exists(conn: &Connection, ns: &str, container_id: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM processes WHERE namespace = ?1 AND container_id = ?2 AND exec_id = '' \
             AND status <> 'deleting'",
        )?
        .query_row(params![ns, container_id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// created -> running with its identity (pid, start time) and when it was started;
/// records `/tasks/start` or `/tasks/exec-started`. A process that already exited stays
/// stopped (the exit was recorded first).
pub fn set_started(
    tx: &mut Tx<'_>,
    ns: &str,
    container_id: &str,
    exec_id: &str,
    (pid, start_time): (i64, u64),
    started_at: &str,
) -> Result<()> {
    tx.conn()
        .prepare_cached(
            "UPDATE processes SET pid = ?4, start_time = ?5, status = 'running', started_at = ?6 \
             WHERE namespace = ?1 AND container_id = ?2 AND exec_id = ?3 AND status = 'created'",
        )?
        .execute(params![
            ns,
            container_id,
            exec_id,
            pid,
            start_time as i64,
            started_at
        ])?;
    if exec_id.is_empty() {
        tx.emit(
            ns,
            &ev::TaskStart {
                container_id: container_id.to_owned(),
                pid,
            },
        )
    } else {
        tx.emit(
            ns,
            &ev::TaskExecStarted {
                container_id: container_id.to_owned(),
                exec_id: exec_id.to_owned(),
                pid,
            },
        )
    }
}

/// running <-> paused for pause/resume, with `/tasks/paused` or `/tasks/resumed`.
pub fn set_paused(tx: &mut Tx<'_>, ns: &str, container_id: &str, paused: bool) -> Result<()> {
    let (from, to) = if paused {
        (TaskStatus::Running, TaskStatus::Paused)
    } else {
        (TaskStatus::Paused, TaskStatus::Running)
    };
    tx.conn()
        .prepare_cached(
            "UPDATE processes SET status = ?4 \
             WHERE namespace = ?1 AND container_id = ?2 AND exec_id = '' AND status = ?3",
        )?
        .execute(params![ns, container_id, from.as_str(), to.as_str()])?;
    let container_id = container_id.to_owned();
    if paused {
        tx.emit(ns, &ev::TaskPaused { container_id })
    } else {
        tx.emit(ns, &ev::TaskResumed { container_id })
    }
}

/// An exit to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exited {
    pub status: i64,
    pub at: String,
    pub reason: ExitReason,
}

/// Records an exit once (a second report for the same process is ignored) and its
/// `/tasks/exit` event. Returns the stored row. A task being deleted keeps `deleting`.
pub fn set_exited(
    tx: &mut Tx<'_>,
    ns: &str,
    container_id: &str,
    exec_id: &str,
    exit: &Exited,
) -> Result<ProcessRow> {
    let changed = tx
        .conn()
        .prepare_cached(
            "UPDATE processes SET exit_status = ?4, exited_at = ?5, exit_reason = ?6, \
             status = CASE status WHEN 'deleting' THEN 'deleting' ELSE 'stopped' END \
             WHERE namespace = ?1 AND container_id = ?2 AND exec_id = ?3 \
             AND exit_status IS NULL",
        )?
        .execute(params![
            ns,
            container_id,
            exec_id,
            exit.status,
            exit.at,
            exit.reason.as_str()
        ])?;
    let row = get_any(tx.conn(), ns, container_id, exec_id)?;
    let (exit_status, exited_at) = (exit.status, &exit.at);
    if changed > 0 {
        let id = if exec_id.is_empty() {
            container_id
        } else {
            exec_id
        };
        tx.emit(
            ns,
            &ev::TaskExit {
                container_id: container_id.to_owned(),
                id: id.to_owned(),
                pid: row.pid,
                exit_status,
                exited_at: exited_at.to_owned(),
                exit_reason: exit.reason,
            },
        )?;
    }
    Ok(row)
}

/// Deletes a task as clients see it, before runc and the bundle are torn down: records
/// `/tasks/delete`, makes its init's exit the container's last exit, removes its exec
/// processes and leaves the init's row `deleting`, the intent [`remove_intent`] ends
/// (start-up finishes the teardown of a row a crash left).
pub fn mark_deleted(tx: &mut Tx<'_>, ns: &str, container_id: &str) -> Result<ProcessRow> {
    let row = get(tx.conn(), ns, container_id, "")?;
    if let (Some(status), Some(reason), Some(at)) =
        (row.exit_status, row.exit_reason, &row.exited_at)
    {
        tx.conn()
            .prepare_cached(
                "INSERT INTO last_exits (container, exit_status, exit_reason, started_at, \
                 exited_at, auto_remove) \
                 SELECT c.pk, ?3, ?4, p.started_at, ?5, p.auto_remove FROM containers c \
                 JOIN processes p ON p.namespace = c.namespace AND p.container_id = c.id \
                 AND p.exec_id = '' \
                 WHERE c.namespace = ?1 AND c.id = ?2 \
                 ON CONFLICT (container) DO UPDATE SET exit_status = excluded.exit_status, \
                 exit_reason = excluded.exit_reason, started_at = excluded.started_at, \
                 exited_at = excluded.exited_at, auto_remove = excluded.auto_remove",
            )?
            .execute(params![ns, container_id, status, reason.as_str(), at])?;
    }
    tx.conn()
        .prepare_cached(
            "DELETE FROM processes WHERE namespace = ?1 AND container_id = ?2 AND exec_id <> ''",
        )?
        .execute(params![ns, container_id])?;
    tx.conn()
        .prepare_cached(
            "UPDATE processes SET status = 'deleting' \
             WHERE namespace = ?1 AND container_id = ?2 AND exec_id = ''",
        )?
        .execute(params![ns, container_id])?;
    tx.emit(
        ns,
        &ev::TaskDelete {
            container_id: container_id.to_owned(),
            pid: row.pid,
            exit_status: row.exit_status,
            exited_at: row.exited_at.clone(),
            exit_reason: row.exit_reason,
        },
    )?;
    Ok(row)
}

/// Deletes one exec process.
pub fn delete_exec(
    tx: &mut Tx<'_>,
    ns: &str,
    container_id: &str,
    exec_id: &str,
) -> Result<ProcessRow> {
    let row = get(tx.conn(), ns, container_id, exec_id)?;
    tx.conn()
        .prepare_cached(
            "DELETE FROM processes WHERE namespace = ?1 AND container_id = ?2 AND exec_id = ?3",
        )?
        .execute(params![ns, container_id, exec_id])?;
    Ok(row)
}

/// The process with this identity that has not exited yet, if any.
pub fn find_running(conn: &Connection, pid: i64, start_time: u64) -> Result<Option<ProcessRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM processes \
         WHERE pid = ?1 AND start_time = ?2 AND exit_status IS NULL"
    ))?;
    let mut rows = stmt.query(params![pid, start_time as i64])?;
    match rows.next()? {
        Some(row) => Ok(Some(from_row(row)?)),
        None => Ok(None),
    }
}

/// Every container of `ns` with its task's status, or how its last task ended: one query
/// for a whole listing.
pub fn container_statuses(
    conn: &Connection,
    ns: &str,
) -> Result<std::collections::HashMap<String, ContainerStatus>> {
    let mut stmt = conn.prepare_cached(
        "SELECT c.id, p.status, p.pid, p.exit_status, p.exit_reason, p.started_at, \
         p.exited_at, l.exit_status, l.exit_reason, l.started_at, l.exited_at \
         FROM containers c \
         LEFT JOIN processes p ON p.namespace = c.namespace AND p.container_id = c.id \
         AND p.exec_id = '' AND p.status <> 'deleting' \
         LEFT JOIN last_exits l ON l.container = c.pk \
         WHERE c.namespace = ?1",
    )?;
    let mut rows = stmt.query(params![ns])?;
    let mut out = std::collections::HashMap::new();
    while let Some(r) = rows.next()? {
        let id: String = r.get(0)?;
        let task: Option<String> = r.get(1)?;
        let reason = |s: Option<String>| s.as_deref().and_then(ExitReason::parse);
        let status = match task.as_deref().and_then(TaskStatus::parse) {
            Some(t) => ContainerStatus {
                state: match t {
                    TaskStatus::Creating => "created".to_owned(),
                    other => other.wire().to_owned(),
                },
                pid: r.get::<_, Option<i64>>(2)?.filter(|p| *p > 0),
                exit_status: r.get(3)?,
                exit_reason: reason(r.get(4)?),
                started_at: r.get(5)?,
                exited_at: r.get(6)?,
            },
            None => {
                let exit_status: Option<i64> = r.get(7)?;
                ContainerStatus {
                    state: if exit_status.is_some() {
                        "exited"
                    } else {
                        "none"
                    }
                    .to_owned(),
                    pid: None,
                    exit_status,
                    exit_reason: reason(r.get(8)?),
                    started_at: r.get(9)?,
                    exited_at: r.get(10)?,
                }
            }
        };
        out.insert(id, status);
    }
    Ok(out)
}

/// Whether container `id` is to be removed: its last task was `auto_remove`, and no task
/// exists now (a new one started after it keeps the container).
pub fn auto_remove_due(conn: &Connection, ns: &str, id: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT l.auto_remove FROM last_exits l JOIN containers c ON l.container = c.pk \
             WHERE c.namespace = ?1 AND c.id = ?2 AND NOT EXISTS \
             (SELECT 1 FROM processes p WHERE p.namespace = ?1 AND p.container_id = ?2 \
             AND p.status <> 'deleting')",
        )?
        .query_row(params![ns, id], |r| r.get::<_, bool>(0))
        .optional()?
        .unwrap_or(false))
}

/// Every container whose removal is due (see [`auto_remove_due`]): start-up finishes them.
pub fn auto_removals_due(conn: &Connection) -> Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT c.namespace, c.id FROM last_exits l JOIN containers c ON l.container = c.pk \
         WHERE l.auto_remove = 1 AND NOT EXISTS \
         (SELECT 1 FROM processes p WHERE p.namespace = c.namespace AND p.container_id = c.id \
         AND p.status <> 'deleting')",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}
