//! The processes table: a task's init (exec_id "") and its exec processes, with their exit
//! statuses. Each change records its `/tasks/*` event in the same transaction.

use rusqlite::{params, Connection, OptionalExtension, Row};
use schema::Process;
use serde_json::json;

use super::{is_unique_violation, Result, StoreError, Tx};

/// One stored process.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessRow {
    pub namespace: String,
    pub container_id: String,
    pub exec_id: String,
    pub pid: i64,
    pub status: String,
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
    pub exit_status: Option<i64>,
    pub exited_at: Option<String>,
    pub bundle: String,
    pub runtime: String,
    /// The OCI process object of an exec process; `null` for the init.
    pub spec: serde_json::Value,
    pub created_at: String,
}

impl ProcessRow {
    pub fn to_process(&self) -> Process {
        Process {
            container_id: self.container_id.clone(),
            exec_id: self.exec_id.clone(),
            pid: self.pid,
            status: self.status.clone(),
            stdin: self.stdin.clone(),
            stdout: self.stdout.clone(),
            stderr: self.stderr.clone(),
            terminal: self.terminal,
            exit_status: self.exit_status,
            exited_at: self.exited_at.clone(),
        }
    }
}

const COLUMNS: &str = "namespace, container_id, exec_id, pid, status, stdin, stdout, stderr, \
                       terminal, exit_status, exited_at, bundle, runtime, spec, created_at";

fn from_row(r: &Row<'_>) -> Result<ProcessRow> {
    Ok(ProcessRow {
        namespace: r.get(0)?,
        container_id: r.get(1)?,
        exec_id: r.get(2)?,
        pid: r.get(3)?,
        status: r.get(4)?,
        stdin: r.get(5)?,
        stdout: r.get(6)?,
        stderr: r.get(7)?,
        terminal: r.get(8)?,
        exit_status: r.get(9)?,
        exited_at: r.get(10)?,
        bundle: r.get(11)?,
        runtime: r.get(12)?,
        spec: serde_json::from_str(&r.get::<_, String>(13)?)?,
        created_at: r.get(14)?,
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

/// Inserts a process row. The init's records `/tasks/create`, an exec's `/tasks/exec-added`.
pub fn insert(tx: &mut Tx<'_>, p: &ProcessRow) -> Result<()> {
    let res = tx
        .conn()
        .prepare_cached(&format!(
            "INSERT INTO processes ({COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
        ))?
        .execute(params![
            p.namespace,
            p.container_id,
            p.exec_id,
            p.pid,
            p.status,
            p.stdin,
            p.stdout,
            p.stderr,
            p.terminal,
            p.exit_status,
            p.exited_at,
            p.bundle,
            p.runtime,
            serde_json::to_string(&p.spec)?,
            p.created_at,
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
        tx.emit(
            &p.namespace,
            "/tasks/create",
            json!({
                "container_id": p.container_id,
                "bundle": p.bundle,
                "io": {"stdin": p.stdin, "stdout": p.stdout, "stderr": p.stderr,
                       "terminal": p.terminal},
                "pid": p.pid,
            }),
        )
    } else {
        tx.emit(
            &p.namespace,
            "/tasks/exec-added",
            json!({ "container_id": p.container_id, "exec_id": p.exec_id }),
        )
    }
}

pub fn get(conn: &Connection, ns: &str, container_id: &str, exec_id: &str) -> Result<ProcessRow> {
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
         ORDER BY container_id"
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
            "SELECT 1 FROM processes WHERE namespace = ?1 AND container_id = ?2 AND exec_id = ''",
        )?
        .query_row(params![ns, container_id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// created -> running with its pid; records `/tasks/start` or `/tasks/exec-started`. A
/// process that already exited stays stopped (the exit was recorded first).
pub fn set_started(
    tx: &mut Tx<'_>,
    ns: &str,
    container_id: &str,
    exec_id: &str,
    pid: i64,
) -> Result<()> {
    tx.conn()
        .prepare_cached(
            "UPDATE processes SET pid = ?4, status = 'running' \
             WHERE namespace = ?1 AND container_id = ?2 AND exec_id = ?3 AND status = 'created'",
        )?
        .execute(params![ns, container_id, exec_id, pid])?;
    if exec_id.is_empty() {
        tx.emit(
            ns,
            "/tasks/start",
            json!({ "container_id": container_id, "pid": pid }),
        )
    } else {
        tx.emit(
            ns,
            "/tasks/exec-started",
            json!({ "container_id": container_id, "exec_id": exec_id, "pid": pid }),
        )
    }
}

/// running <-> paused for pause/resume, with `/tasks/paused` or `/tasks/resumed`.
pub fn set_paused(tx: &mut Tx<'_>, ns: &str, container_id: &str, paused: bool) -> Result<()> {
    let (from, to, topic) = if paused {
        ("running", "paused", "/tasks/paused")
    } else {
        ("paused", "running", "/tasks/resumed")
    };
    tx.conn()
        .prepare_cached(
            "UPDATE processes SET status = ?4 \
             WHERE namespace = ?1 AND container_id = ?2 AND exec_id = '' AND status = ?3",
        )?
        .execute(params![ns, container_id, from, to])?;
    tx.emit(ns, topic, json!({ "container_id": container_id }))
}

/// Records an exit once (a second report for the same process is ignored) and its
/// `/tasks/exit` event. Returns the stored row.
pub fn set_exited(
    tx: &mut Tx<'_>,
    ns: &str,
    container_id: &str,
    exec_id: &str,
    exit_status: i64,
    exited_at: &str,
) -> Result<ProcessRow> {
    let changed = tx
        .conn()
        .prepare_cached(
            "UPDATE processes SET status = 'stopped', exit_status = ?4, exited_at = ?5 \
             WHERE namespace = ?1 AND container_id = ?2 AND exec_id = ?3 \
             AND exit_status IS NULL",
        )?
        .execute(params![ns, container_id, exec_id, exit_status, exited_at])?;
    let row = get(tx.conn(), ns, container_id, exec_id)?;
    if changed > 0 {
        let id = if exec_id.is_empty() {
            container_id
        } else {
            exec_id
        };
        tx.emit(
            ns,
            "/tasks/exit",
            json!({
                "container_id": container_id, "id": id, "pid": row.pid,
                "exit_status": exit_status, "exited_at": exited_at,
            }),
        )?;
    }
    Ok(row)
}

/// Deletes a task with all its exec processes and records `/tasks/delete`.
pub fn delete_task(tx: &mut Tx<'_>, ns: &str, container_id: &str) -> Result<ProcessRow> {
    let row = get(tx.conn(), ns, container_id, "")?;
    tx.conn()
        .prepare_cached("DELETE FROM processes WHERE namespace = ?1 AND container_id = ?2")?
        .execute(params![ns, container_id])?;
    tx.emit(
        ns,
        "/tasks/delete",
        json!({
            "container_id": container_id, "pid": row.pid,
            "exit_status": row.exit_status, "exited_at": row.exited_at,
        }),
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
