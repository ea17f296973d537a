//! Task and exec-process objects and the `tasks.*` parameters (API.md).

use serde::{Deserialize, Serialize};
use serde_json::Value;

fn default_namespace() -> String {
    crate::DEFAULT_NAMESPACE.to_owned()
}

/// A task's init process (`exec_id` "") or one of its exec processes, as the wire shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Process {
    pub container_id: String,
    pub exec_id: String,
    pub pid: i64,
    /// `created running stopped paused pausing unknown`.
    pub status: String,
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
    /// Present once the process has exited: its code, or 128 + the killing signal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exited_at: Option<String>,
}

/// `tasks.create`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskCreateParams {
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub container_id: String,
    #[serde(default)]
    pub stdin: String,
    #[serde(default)]
    pub stdout: String,
    #[serde(default)]
    pub stderr: String,
    #[serde(default)]
    pub terminal: bool,
}

/// Methods addressing one process: start, get, wait, close_io, delete_process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskProcessParams {
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub container_id: String,
    #[serde(default)]
    pub exec_id: String,
}

/// Methods addressing a whole task: pause, resume, pids, metrics.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskParams {
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub container_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskListParams {
    #[serde(default = "default_namespace")]
    pub namespace: String,
    #[serde(default)]
    pub filters: Vec<String>,
}

/// A signal by number (`9`) or name (`"SIGKILL"`, `"KILL"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Signal {
    Number(i64),
    Name(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskKillParams {
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub container_id: String,
    #[serde(default)]
    pub exec_id: String,
    /// Default SIGTERM.
    #[serde(default)]
    pub signal: Option<Signal>,
    /// Signal every process of the task, not just the init.
    #[serde(default)]
    pub all: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskDeleteParams {
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub container_id: String,
    /// Kill a running task (and wait for it) instead of refusing.
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskExecParams {
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub container_id: String,
    pub exec_id: String,
    /// An OCI runtime spec `process` object.
    pub process: Value,
    #[serde(default)]
    pub terminal: bool,
    #[serde(default)]
    pub stdin: String,
    #[serde(default)]
    pub stdout: String,
    #[serde(default)]
    pub stderr: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskResizeParams {
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub container_id: String,
    #[serde(default)]
    pub exec_id: String,
    pub width: u16,
    pub height: u16,
}

/// What `tasks.wait`, `tasks.delete` and `tasks.delete_process` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExitInfo {
    pub pid: i64,
    pub exit_status: i64,
    pub exited_at: String,
}
