//! One client thread of the mixed workload: container CRUD with labels, image imports,
//! task lifecycles (create, start, kill, wait, delete) on image containers, and
//! `berth run --rm` through the real client binary, half of them on berth0 with a port
//! published on 127.0.0.1. It runs until the daemon dies under it
//! and returns its [`Ledger`]. It owns every id it writes, so its log alone decides what
//! must survive.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::ledger::{ExitPlan, ExitSeen, Kind, Ledger, Start, State};
use super::rng::Rng;
use crate::clients::Ndjson;
use crate::process::wait_within;

/// The exit status a SIGKILLed task reports.
pub const KILLED: i64 = 137;
/// How long one `berth run --rm` may take before it counts as stuck and is killed.
const RUN_LIMIT: Duration = Duration::from_secs(30);
/// Task pipelines one client keeps going at once.
const PIPELINES: usize = 3;
/// Plain containers one client keeps at once.
const PLAIN: usize = 6;

/// What every client of a run shares.
#[derive(Debug, Clone)]
pub struct Setup {
    pub socket: PathBuf,
    pub namespace: String,
    /// The image every task container is created from (imported once at start).
    pub base_image: String,
    /// The busybox OCI archive, imported again under new names by the workload.
    pub image_tar: PathBuf,
    /// The `berth` client binary.
    pub berth: PathBuf,
    /// `TMPDIR` of every `berth run`, so the FIFO dirs it leaves can be found.
    pub fifo_dir: PathBuf,
    /// Print every call and its outcome to stderr (`--trace`).
    pub trace: bool,
    /// Half the `berth run --rm`s publish a port on berth0 (off with `--no-network`).
    pub networked: bool,
}

/// The daemon stopped answering (it was killed): the client stops.
struct Down;

/// Where a task container is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Created,
    TaskCreated,
    Started,
    Killed,
    Waited,
    TaskDeleted,
}

struct Pipeline {
    id: String,
    expected: i64,
    kill: bool,
    step: Step,
}

pub struct Client {
    setup: Arc<Setup>,
    crashing: Arc<AtomicBool>,
    conn: Ndjson,
    prefix: String,
    next: u64,
    rng: Rng,
    ledger: Ledger,
    plain: Vec<(String, u64)>,
    images: Vec<String>,
    pipelines: Vec<Pipeline>,
}

impl Client {
    /// A client whose ids start with `prefix` (unique per round and client).
    /// `crashing` is set just before the daemon is killed: a failure after it is the crash.
    pub fn connect(
        setup: Arc<Setup>,
        crashing: Arc<AtomicBool>,
        prefix: String,
        rng: Rng,
    ) -> std::io::Result<Client> {
        Ok(Client {
            conn: Ndjson::connect(&setup.socket)?,
            setup,
            crashing,
            prefix,
            next: 0,
            rng,
            ledger: Ledger::default(),
            plain: Vec::new(),
            images: Vec::new(),
            pipelines: Vec::new(),
        })
    }

    /// Runs random operations until the daemon dies; returns the log.
    pub fn run(mut self) -> Ledger {
        loop {
            let roll = self.rng.range(0, 99);
            let done = match roll {
                0..=19 => self.new_pipeline(),
                20..=49 => self.advance_pipeline(),
                50..=69 => self.plain_container(),
                70..=79 => self.image(),
                // A fifth: half of them networked, so kills land in CNI ADD and DEL.
                _ => self.berth_run(),
            };
            if done.is_err() || self.crashing.load(Ordering::SeqCst) {
                return self.ledger;
            }
        }
    }

    fn fresh(&mut self, what: &str) -> String {
        self.next += 1;
        format!("{}-{what}{}", self.prefix, self.next)
    }

    fn call(&mut self, method: &str, mut params: Value) -> Result<Result<Value, Value>, Down> {
        params["namespace"] = json!(self.setup.namespace);
        let reply = self.conn.try_call(method, params.clone()).map_err(|_| Down);
        if self.setup.trace {
            let outcome = match &reply {
                Ok(Ok(v)) => format!("ok {v}"),
                Ok(Err(e)) => format!("error {e}"),
                Err(Down) => "no reply".to_owned(),
            };
            eprintln!("{} {} {method} {params} -> {outcome}", now(), self.prefix);
        }
        reply
    }

    /// Sends a write that leaves `(kind, id)` in `to`; `Some(result)` when acknowledged.
    fn write(
        &mut self,
        kind: Kind,
        id: &str,
        to: State,
        method: &str,
        params: Value,
    ) -> Result<Option<Value>, Down> {
        self.ledger.send(kind, id, to);
        match self.call(method, params.clone())? {
            Ok(v) => {
                self.ledger.ack(kind, id);
                Ok(Some(v))
            }
            Err(e) => {
                let why = format!("{method} {params}: {e}");
                self.ledger.refuse(kind, id, why);
                Ok(None)
            }
        }
    }

    fn event(&mut self, topic: &'static str, key: &str) {
        self.ledger.events.push((topic, key.to_owned()));
    }

    fn seen(&mut self, id: &str, expected: i64, got: &Value, how: &'static str) {
        let got = got.as_i64().unwrap_or(-1);
        self.ledger.seen.push(ExitSeen {
            id: id.to_owned(),
            expected,
            got,
            how,
        });
    }

    fn new_pipeline(&mut self) -> Result<(), Down> {
        if self.pipelines.len() >= PIPELINES {
            return self.advance_pipeline();
        }
        let id = self.fresh("t");
        let kill = self.rng.chance(30);
        let code = self.rng.range(3, 99) as i64;
        let (script, expected) = if kill {
            (format!("sleep 60; exit {code}"), KILLED)
        } else {
            let ms = self.rng.range(50, 1500);
            (
                format!("sleep {}.{:03}; exit {code}", ms / 1000, ms % 1000),
                code,
            )
        };
        let params = json!({
            "container": {"id": id, "image": self.setup.base_image},
            "spec_options": {"args": ["sh", "-c", script]},
        });
        let to = State::Present(Value::Null);
        if self
            .write(Kind::Container, &id, to, "containers.create", params)?
            .is_some()
        {
            self.event("/containers/create", &id);
            self.pipelines.push(Pipeline {
                id,
                expected,
                kill,
                step: Step::Created,
            });
        }
        Ok(())
    }

    fn advance_pipeline(&mut self) -> Result<(), Down> {
        if self.pipelines.is_empty() {
            return self.new_pipeline();
        }
        let at = self.rng.range(0, self.pipelines.len() as u64 - 1) as usize;
        let (id, expected, kill, step) = {
            let p = &self.pipelines[at];
            (p.id.clone(), p.expected, p.kill, p.step)
        };
        let cid = json!({"container_id": id});
        let next = match step {
            Step::Created => {
                let to = State::Present(Value::Null);
                let plan = ExitPlan {
                    expected,
                    start: Start::NotSent,
                };
                self.ledger.exits.insert(id.clone(), plan);
                self.write(Kind::Task, &id, to, "tasks.create", cid)?
                    .map(|_| Step::TaskCreated)
            }
            Step::TaskCreated => self.start(&id)?.then_some(Step::Started),
            Step::Started if kill => {
                let params = json!({"container_id": id, "signal": "SIGKILL"});
                self.acked("tasks.kill", params)?.map(|_| Step::Killed)
            }
            Step::Started | Step::Killed => self.acked("tasks.wait", cid)?.map(|r| {
                self.seen(&id, expected, &r["exit_status"], "tasks.wait");
                Step::Waited
            }),
            Step::Waited => {
                let r = self.write(Kind::Task, &id, State::Absent, "tasks.delete", cid)?;
                r.map(|r| {
                    self.seen(&id, expected, &r["exit_status"], "tasks.delete");
                    self.event("/tasks/delete", &id);
                    Step::TaskDeleted
                })
            }
            Step::TaskDeleted => {
                let params = json!({"id": id});
                let r = self.write(
                    Kind::Container,
                    &id,
                    State::Absent,
                    "containers.delete",
                    params,
                )?;
                if r.is_some() {
                    self.event("/containers/delete", &id);
                }
                // Acknowledged or refused, this pipeline is over.
                self.pipelines.remove(at);
                return Ok(());
            }
        };
        match next {
            Some(step) => self.pipelines[at].step = step,
            // Refused: the error is logged; drop the pipeline, the round's cleanup removes it.
            None => {
                self.pipelines.remove(at);
            }
        }
        Ok(())
    }

    /// `tasks.start`, tracked in the task's exit plan.
    fn start(&mut self, id: &str) -> Result<bool, Down> {
        let set = |l: &mut Ledger, s| {
            if let Some(p) = l.exits.get_mut(id) {
                p.start = s;
            }
        };
        set(&mut self.ledger, Start::InFlight);
        let acked = self
            .acked("tasks.start", json!({"container_id": id}))?
            .is_some();
        set(
            &mut self.ledger,
            if acked { Start::Acked } else { Start::NotSent },
        );
        if acked {
            self.event("/tasks/start", id);
        }
        Ok(acked)
    }

    /// A call that changes no tracked object: counted when acknowledged, logged if refused.
    fn acked(&mut self, method: &str, params: Value) -> Result<Option<Value>, Down> {
        match self.call(method, params.clone())? {
            Ok(v) => {
                self.ledger.acked_ops += 1;
                Ok(Some(v))
            }
            Err(e) => {
                self.ledger.errors.push(format!("{method} {params}: {e}"));
                Ok(None)
            }
        }
    }

    fn plain_container(&mut self) -> Result<(), Down> {
        let roll = self.rng.range(0, 99);
        if self.plain.is_empty() || (roll < 40 && self.plain.len() < PLAIN) {
            let id = self.fresh("p");
            let labels = json!({"v": "0"});
            let params = json!({"container": {"id": id, "spec": crate::spec(), "labels": labels}});
            let to = State::Present(labels);
            if self
                .write(Kind::Container, &id, to, "containers.create", params)?
                .is_some()
            {
                self.event("/containers/create", &id);
                self.plain.push((id, 0));
            }
            return Ok(());
        }
        let at = self.rng.range(0, self.plain.len() as u64 - 1) as usize;
        let (id, version) = self.plain[at].clone();
        if roll < 80 {
            let labels = json!({"v": (version + 1).to_string()});
            let params =
                json!({"container": {"id": id, "labels": labels}, "update_mask": ["labels"]});
            let to = State::Present(labels);
            if self
                .write(Kind::Container, &id, to, "containers.update", params)?
                .is_some()
            {
                self.event("/containers/update", &id);
                self.plain[at].1 = version + 1;
            }
        } else {
            let params = json!({"id": id});
            if self
                .write(
                    Kind::Container,
                    &id,
                    State::Absent,
                    "containers.delete",
                    params,
                )?
                .is_some()
            {
                self.event("/containers/delete", &id);
            }
            self.plain.remove(at);
        }
        Ok(())
    }

    fn image(&mut self) -> Result<(), Down> {
        if !self.images.is_empty() && self.rng.chance(30) {
            let at = self.rng.range(0, self.images.len() as u64 - 1) as usize;
            let name = self.images.remove(at);
            let params = json!({"name": name});
            if self
                .write(Kind::Image, &name, State::Absent, "images.delete", params)?
                .is_some()
            {
                self.event("/images/delete", &name);
            }
            return Ok(());
        }
        let name = format!("crash.local/{}:latest", self.fresh("i"));
        let params = json!({"path": self.setup.image_tar, "name": name});
        let to = State::Present(Value::Null);
        if self
            .write(Kind::Image, &name, to, "images.import", params)?
            .is_some()
        {
            self.event("/images/create", &name);
            self.images.push(name);
        }
        Ok(())
    }

    /// `berth run --rm IMAGE ID sh -c 'sleep S; exit K'`: acknowledged when berth exits K
    /// (the task ran, was waited for and deleted, and the container removed).
    fn berth_run(&mut self) -> Result<(), Down> {
        let id = self.fresh("r");
        let code = self.rng.range(10, 99) as i64;
        let ms = self.rng.range(0, 600);
        let script = format!("sleep {}.{:03}; exit {code}", ms / 1000, ms % 1000);
        // Half of them on berth0 with a published port: a kill -9 during CNI ADD or DEL.
        let publish = self.rng.chance(50) && self.setup.networked;
        let port_flag = if publish { free_port() } else { None }
            .map(|port| ["-p".to_owned(), format!("127.0.0.1:{port}:80")]);
        self.ledger.send_unknown(Kind::Container, &id);
        self.ledger.send_unknown(Kind::Task, &id);
        let plan = ExitPlan {
            expected: code,
            start: Start::InFlight,
        };
        self.ledger.exits.insert(id.clone(), plan);
        let child = Command::new(&self.setup.berth)
            .arg("--socket")
            .arg(&self.setup.socket)
            .args(["--namespace", &self.setup.namespace])
            .args(["run", "--rm"])
            .args(port_flag.iter().flatten())
            .args([&self.setup.base_image, &id, "sh", "-c", &script])
            .env("TMPDIR", &self.setup.fifo_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                self.ledger.errors.push(format!("spawn berth run: {e}"));
                return Ok(());
            }
        };
        let status = wait_within(&mut child, RUN_LIMIT);
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        }
        let code_got = status.and_then(|s| s.code()).map(i64::from);
        if self.setup.trace {
            eprintln!(
                "{} {} berth run {} {id} {script:?} -> {status:?} {stderr}",
                now(),
                self.prefix,
                port_flag.as_ref().map(|f| f.join(" ")).unwrap_or_default()
            );
        }
        if code_got == Some(code) {
            self.ledger.settle(Kind::Container, &id, State::Absent);
            self.ledger.settle(Kind::Task, &id, State::Absent);
            self.ledger.exits.remove(&id);
            self.seen(&id, code, &json!(code), "berth run");
            self.ledger.acked_ops += 1;
            return Ok(());
        }
        if self.crashing.load(Ordering::SeqCst) {
            // Interrupted by the crash: outcome unknown; the checks after restart decide.
            return Err(Down);
        }
        if stderr.starts_with("berth:") || status.is_none() {
            self.ledger.errors.push(format!(
                "berth run {id} failed while berthd ran: {status:?} {stderr}"
            ));
        } else {
            self.seen(&id, code, &json!(code_got), "berth run");
            self.ledger.exits.remove(&id);
        }
        Ok(())
    }
}

/// A TCP port free on 127.0.0.1 just now, for a published port.
fn free_port() -> Option<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
    Some(l.local_addr().ok()?.port())
}

/// The wall clock as the daemon writes it, for trace lines.
fn now() -> String {
    super::check::rfc3339(std::time::SystemTime::now())
}
