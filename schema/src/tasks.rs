//! Task and exec-process objects and the `tasks.*` parameters (API.md).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

fn default_namespace() -> String {
    crate::DEFAULT_NAMESPACE.to_owned()
}

/// A task's init process (`exec_id` "") or one of its exec processes, as the wire shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Process {
    pub container_id: String,
    pub exec_id: String,
    pub pid: i64,
    /// `created running stopped paused pausing unknown`.
    #[schemars(extend("enum" = ["created", "running", "stopped", "paused", "pausing", "unknown"]))]
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
    /// Present once the process has exited: how its status was learnt (berth extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_reason: Option<ExitReason>,
    /// When it was started (RFC 3339), once it was (berth extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// A task's init on a network: its address and published ports (berth extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<crate::networks::TaskNetwork>,
}

/// Where a task or exec process stands. `Creating` and `Deleting` are intents stored
/// before runc is called, so that start-up after a crash knows what to finish or undo;
/// the wire never shows either: a task `creating` does not exist yet, one `deleting` (torn
/// down in the background after `tasks.delete` answered) no longer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
    Deleting,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 6] = [
        TaskStatus::Creating,
        TaskStatus::Created,
        TaskStatus::Running,
        TaskStatus::Paused,
        TaskStatus::Stopped,
        TaskStatus::Deleting,
    ];

    /// The stored name (the migration's CHECK constraint lists the same names).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Creating => "creating",
            TaskStatus::Created => "created",
            TaskStatus::Running => "running",
            TaskStatus::Paused => "paused",
            TaskStatus::Stopped => "stopped",
            TaskStatus::Deleting => "deleting",
        }
    }

    pub fn parse(s: &str) -> Option<TaskStatus> {
        TaskStatus::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The name API.md gives this status.
    pub fn wire(self) -> &'static str {
        match self {
            TaskStatus::Deleting => "stopped",
            other => other.as_str(),
        }
    }

    /// A created task's init may be started, once.
    pub fn can_start(self) -> bool {
        self == TaskStatus::Created
    }

    /// Signals reach a process that has not exited.
    pub fn can_kill(self) -> bool {
        matches!(
            self,
            TaskStatus::Created | TaskStatus::Running | TaskStatus::Paused
        )
    }

    pub fn can_pause(self) -> bool {
        self == TaskStatus::Running
    }

    pub fn can_resume(self) -> bool {
        self == TaskStatus::Paused
    }

    /// New exec processes join a task whose init has not exited.
    pub fn can_exec(self) -> bool {
        self.can_kill()
    }

    /// Deleting needs no kill first when nothing runs (or force kills it).
    pub fn can_delete(self, force: bool) -> bool {
        force
            || matches!(
                self,
                TaskStatus::Created | TaskStatus::Stopped | TaskStatus::Deleting
            )
    }

    /// The process has exited (or is being removed after it did).
    pub fn is_finished(self) -> bool {
        matches!(self, TaskStatus::Stopped | TaskStatus::Deleting)
    }
}

/// How an exit status was learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    /// The process exited by itself; `exit_status` is its code.
    Exited,
    /// A signal killed it; `exit_status` is 128 + the signal.
    Signaled,
    /// The kernel's OOM killer killed it (its memory limit was hit): status 137.
    Oom,
    /// It ended while nobody could reap it (the keeper died): `exit_status` is 255 and
    /// means "unknown".
    Lost,
    /// The host restarted (or berth's state dir was wiped) while it ran: status 255.
    HostRestarted,
}

impl ExitReason {
    pub const ALL: [ExitReason; 5] = [
        ExitReason::Exited,
        ExitReason::Signaled,
        ExitReason::Oom,
        ExitReason::Lost,
        ExitReason::HostRestarted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExitReason::Exited => "exited",
            ExitReason::Signaled => "signaled",
            ExitReason::Oom => "oom",
            ExitReason::Lost => "lost",
            ExitReason::HostRestarted => "host_restarted",
        }
    }

    pub fn parse(s: &str) -> Option<ExitReason> {
        ExitReason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// `tasks.create`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskCreateParams {
    /// The namespace (default `default`).
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
    /// Delete the task and the container (with its snapshot) once the task exits, whether
    /// or not a client is connected (`run --rm -d`; berth extension).
    #[serde(default)]
    pub auto_remove: bool,
    /// Delete the container (with its snapshot) if a crash of berthd cuts this create off
    /// before it answers: start-up undoes such a create, and the client that would have
    /// removed the container itself (`run --rm`) got no answer (berth extension).
    #[serde(default)]
    pub remove_if_cut_off: bool,
    /// Start the init too, in the same call (`runc run --detach`: one runc execution where
    /// create + start take two); the task answers `running` (berth extension).
    #[serde(default)]
    pub start: bool,
}

/// Methods addressing one process: start, get, wait, close_io, delete_process.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskProcessParams {
    /// The namespace (default `default`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub container_id: String,
    #[serde(default)]
    pub exec_id: String,
}

/// Methods addressing a whole task: pause, resume, pids, metrics.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskParams {
    /// The namespace (default `default`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub container_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskListParams {
    /// The namespace (default `default`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// containerd's filter grammar (`labels."app"==web`, `id~=^db`); what matches any one is kept.
    #[serde(default)]
    pub filters: Vec<String>,
}

/// A signal by number (`9`) or name (`"SIGKILL"`, `"KILL"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Signal {
    Number(i64),
    Name(String),
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskKillParams {
    /// The namespace (default `default`).
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

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskDeleteParams {
    /// The namespace (default `default`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub container_id: String,
    /// Kill a running task (and wait for it) instead of refusing.
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskExecParams {
    /// The namespace (default `default`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub container_id: String,
    pub exec_id: String,
    /// An OCI runtime spec `process` object.
    #[schemars(with = "crate::openrpc::OciObject")]
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

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskResizeParams {
    /// The namespace (default `default`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub container_id: String,
    #[serde(default)]
    pub exec_id: String,
    pub width: u16,
    pub height: u16,
}

/// `tasks.write_stdin`: bytes for a process's terminal or its open stdin (berth extension;
/// `berth attach` sends keystrokes with it).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskWriteStdinParams {
    /// The namespace (default `default`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub container_id: String,
    #[serde(default)]
    pub exec_id: String,
    /// The bytes, base64 (standard alphabet, padded); at most 64 KiB once decoded.
    pub data: String,
}

/// What `tasks.wait`, `tasks.delete` and `tasks.delete_process` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExitInfo {
    pub pid: i64,
    pub exit_status: i64,
    pub exited_at: String,
    /// How the status was learnt (berth extension; absent from older daemons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_reason: Option<ExitReason>,
}

/// `containers.logs` and `logs.subscribe`: a container's log (berth extension). Entries
/// come oldest first; `tail` keeps the last N lines of those that match (partial entries
/// belong to the line their full entry ends).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsParams {
    /// The namespace (default `default`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub id: String,
    /// Only entries at or after this time (RFC 3339).
    #[serde(default)]
    pub since: Option<String>,
    /// Only the last N matching entries (of what is there when the call starts).
    #[serde(default)]
    pub tail: Option<u64>,
    /// `stdout` or `stderr`; both when absent.
    #[serde(default)]
    #[schemars(extend("enum" = ["stdout", "stderr", null]))]
    pub stream: Option<String>,
    /// `logs.subscribe` only: keep streaming new entries until the task's output ends.
    #[serde(default)]
    pub follow: bool,
}

/// One line of a container's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LogEntry {
    /// When berthd read it from the process (RFC 3339, nanoseconds, UTC).
    pub time: String,
    /// `stdout` or `stderr`.
    #[schemars(extend("enum" = ["stdout", "stderr"]))]
    pub stream: String,
    /// A piece of a longer line, or a last line without its newline; the next entry of the
    /// same stream continues it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
    /// The line without its newline (invalid UTF-8 replaced).
    pub text: String,
}

/// The reply of `containers.logs` and each notification of `logs.subscribe`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LogBatch {
    pub entries: Vec<LogEntry>,
    /// `containers.logs`: more entries matched than one reply carries; these are the
    /// oldest (ask with `tail`, or use `logs.subscribe`, which has no such bound).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// `logs.subscribe`: the last notification; the stream has ended.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub end: bool,
}
