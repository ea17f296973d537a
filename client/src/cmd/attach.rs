//! `berth attach`: the live output of a detached task (its log, starting with the last
//! screenful for a terminal), keystrokes forwarded with `tasks.write_stdin`, resizes with
//! `tasks.resize_pty`, and a key sequence (docker's Ctrl-P Ctrl-Q, `--detach-keys`) that
//! leaves the task running. A task run with the client's own FIFOs is attached through
//! them, as `ctr tasks attach` does.

use std::io::{Read, Write};
use std::sync::mpsc;

use base64::Engine;
use clap::Args;
use serde_json::{json, Value};

use super::tasks::session::{self, Target, TerminalMode};
use super::Ctx;
use crate::rpc::Client;

#[derive(Args)]
pub struct AttachArgs {
    /// The keys that detach, leaving the task running: comma-separated `ctrl-<c>` or single
    /// characters, as docker's
    #[arg(long, default_value = "ctrl-p,ctrl-q", value_name = "KEYS")]
    detach_keys: String,
    /// Lines of earlier output to show first (default: the terminal's height for a
    /// terminal task, none otherwise)
    #[arg(long, value_name = "N")]
    tail: Option<u64>,
    /// The container whose task to attach to
    id: String,
}

/// docker's detach-key syntax: `ctrl-p,ctrl-q`, `ctrl-@`, `ctrl-[`, or plain characters.
pub fn parse_keys(spec: &str) -> anyhow::Result<Vec<u8>> {
    let mut keys = Vec::new();
    for part in spec.split(',') {
        let lower = part.to_ascii_lowercase();
        let key = match lower.strip_prefix("ctrl-") {
            Some(c) if c.len() == 1 => match c.as_bytes()[0] {
                b @ b'a'..=b'z' => b - b'a' + 1,
                b'@' => 0,
                b'[' => 27,
                b'\\' => 28,
                b']' => 29,
                b'^' => 30,
                b'_' => 31,
                _ => anyhow::bail!("--detach-keys: no such key {part:?}"),
            },
            None if part.len() == 1 => part.as_bytes()[0],
            _ => anyhow::bail!(
                "--detach-keys: {part:?} is neither ctrl-<key> nor a single character"
            ),
        };
        keys.push(key);
    }
    Ok(keys)
}

/// Finds the detach sequence in the input stream, holding back a partial match until it
/// either completes (detach) or breaks (the held keys go on to the task).
pub struct Detector {
    keys: Vec<u8>,
    matched: usize,
}

impl Detector {
    pub fn new(keys: Vec<u8>) -> Detector {
        Detector { keys, matched: 0 }
    }

    /// Appends to `forward` what goes to the task; true once the sequence is complete.
    pub fn feed(&mut self, input: &[u8], forward: &mut Vec<u8>) -> bool {
        for &b in input {
            if self.keys.is_empty() {
                forward.push(b);
                continue;
            }
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return true;
                }
                continue;
            }
            forward.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if b == self.keys[0] {
                self.matched = 1;
                if self.keys.len() == 1 {
                    return true;
                }
            } else {
                forward.push(b);
            }
        }
        false
    }
}

enum Outcome {
    /// The task's output ended (it exited).
    Ended,
    Detached,
    /// The client got SIGTERM or SIGHUP (forwarded to the task, which may ignore it).
    Signalled(libc::c_int),
    Failed(anyhow::Error),
}

pub fn run(ctx: &Ctx, args: AttachArgs) -> anyhow::Result<i32> {
    let mut client = ctx.connect()?;
    let id = args.id.as_str();
    let process = client.call("tasks.get", json!({ "container_id": id }))?["process"].clone();
    let status = process["status"].as_str().unwrap_or("");
    if status == "stopped" {
        anyhow::bail!(
            "{id} is not running (exited {}); see its output with `berth logs {id}`",
            process["exit_status"]
        );
    }
    let keys = parse_keys(&args.detach_keys)?;
    if process["stdout"].as_str().is_some_and(|s| !s.is_empty()) {
        // Run with the client's own FIFOs: read them, as ctr does.
        return super::tasks::attach_fifos(ctx, &mut client, id, keys);
    }
    let tty = process["terminal"].as_bool().unwrap_or(false);
    let target = Target {
        container_id: id.to_owned(),
        exec_id: String::new(),
    };
    let signals = session::block_signals();
    let tail = args
        .tail
        .unwrap_or_else(|| match (tty, session::window_size()) {
            (true, Some((_, rows))) => u64::from(rows),
            (true, None) => 24,
            (false, _) => 0,
        });
    let (tx, rx) = mpsc::channel();
    let subscription = ctx.connect()?.subscribe(
        "logs.subscribe",
        json!({ "id": id, "follow": true, "tail": tail }),
    )?;
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let outcome = match print_log(subscription) {
                Ok(()) => Outcome::Ended,
                Err(e) => Outcome::Failed(e),
            };
            let _ = tx.send(outcome);
        });
    }
    let mode = if tty {
        TerminalMode::Raw
    } else {
        TerminalMode::Keys
    };
    let terminal = session::Terminal::enter(mode);
    let leave: session::Leave = {
        let tx = tx.clone();
        Box::new(move |sig| {
            let _ = tx.send(Outcome::Signalled(sig));
        })
    };
    session::signal_thread(ctx, target.clone(), tty, signals, Some(leave));
    if tty {
        if let Some((w, h)) = session::window_size() {
            let _ = client.call(
                "tasks.resize_pty",
                json!({ "container_id": id, "width": w, "height": h }),
            );
        }
    }
    forward_input(ctx, id, tty, keys, tx)?;
    let outcome = rx.recv().unwrap_or(Outcome::Ended);
    drop(terminal);
    match outcome {
        Outcome::Detached => {
            eprintln!("berth: detached from {id}; it keeps running");
            Ok(0)
        }
        // As a client the signal killed would report it (143 for SIGTERM).
        Outcome::Signalled(sig) => Ok(128 + sig),
        Outcome::Failed(e) => Err(e),
        Outcome::Ended => {
            let exit = client.call("tasks.wait", json!({ "container_id": id }))?;
            Ok(exit["exit_status"].as_i64().unwrap_or(255) as i32)
        }
    }
}

/// Writes the log's entries as the task wrote them until the stream ends.
fn print_log(subscription: crate::rpc::Subscription) -> anyhow::Result<()> {
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    for batch in subscription {
        let batch = batch?;
        for e in batch["entries"].as_array().into_iter().flatten() {
            let to: &mut dyn Write = if e["stream"] == "stderr" {
                &mut err
            } else {
                &mut out
            };
            to.write_all(e["text"].as_str().unwrap_or("").as_bytes())?;
            if e["partial"] != Value::Bool(true) {
                to.write_all(b"\n")?;
            }
            to.flush()?;
        }
        if batch["end"] == Value::Bool(true) {
            break;
        }
    }
    Ok(())
}

/// Reads the user's keys: the detach sequence ends the attach, the rest goes to the
/// task's terminal (a task without one has no input to give them to).
fn forward_input(
    ctx: &Ctx,
    id: &str,
    tty: bool,
    keys: Vec<u8>,
    done: mpsc::Sender<Outcome>,
) -> anyhow::Result<()> {
    let mut client: Option<Client> = if tty { Some(ctx.connect()?) } else { None };
    let id = id.to_owned();
    std::thread::spawn(move || {
        let mut detector = Detector::new(keys);
        let mut buf = [0u8; 4096];
        let mut stdin = std::io::stdin().lock();
        loop {
            let n = match stdin.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let mut forward = Vec::new();
            let detached = detector.feed(&buf[..n], &mut forward);
            if let (Some(c), false) = (client.as_mut(), forward.is_empty()) {
                let data = base64::engine::general_purpose::STANDARD.encode(&forward);
                let p = json!({ "container_id": id, "data": data });
                if c.call("tasks.write_stdin", p).is_err() {
                    return;
                }
            }
            if detached {
                let _ = done.send(Outcome::Detached);
                return;
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_as_docker_s() {
        assert_eq!(parse_keys("ctrl-p,ctrl-q").expect("keys"), vec![16, 17]);
        assert_eq!(
            parse_keys("ctrl-@,ctrl-[,q").expect("keys"),
            vec![0, 27, b'q']
        );
        assert!(parse_keys("ctrl-pq").is_err());
        assert!(parse_keys("alt-x").is_err());
    }

    #[test]
    fn the_detector_holds_a_partial_match_back_and_lets_broken_ones_through() {
        let mut d = Detector::new(vec![16, 17]);
        let mut out = Vec::new();
        assert!(!d.feed(b"ls\r\x10", &mut out));
        assert_eq!(out, b"ls\r", "the first key waits");
        assert!(!d.feed(b"x", &mut out));
        assert_eq!(out, b"ls\r\x10x", "a broken sequence goes through whole");
        out.clear();
        assert!(!d.feed(b"\x10\x10", &mut out));
        assert_eq!(out, b"\x10", "a repeated first key restarts the match");
        assert!(d.feed(b"\x11rest", &mut out));
        assert_eq!(out, b"\x10");
        let mut one = Detector::new(vec![3]);
        let mut out = Vec::new();
        assert!(one.feed(b"a\x03", &mut out));
        assert_eq!(out, b"a");
    }
}
