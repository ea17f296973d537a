//! Progress display of long image operations, fed by polling `images.progress`: one bar
//! for an import, one bar per layer for a pull on a terminal; plain lines (one per
//! finished layer) when stderr is not a terminal.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use serde_json::{json, Value};

use super::images::human_size;
use super::Ctx;

/// `[#####.........]  42%`.
pub fn bar(read: u64, total: u64) -> String {
    const WIDTH: u64 = 30;
    let pct = (read * 100).checked_div(total).unwrap_or(0).min(100);
    let filled = (pct * WIDTH / 100) as usize;
    format!(
        "[{}{}] {pct:>3}%",
        "#".repeat(filled),
        ".".repeat(WIDTH as usize - filled)
    )
}

/// `sha256:0123456789ab`: enough of a digest to tell layers apart.
pub fn short(digest: &str) -> &str {
    &digest[..digest.len().min("sha256:".len() + 12)]
}

/// Whether progress goes to a terminal (and the user did not ask for JSON).
pub fn on_terminal(ctx: &Ctx) -> bool {
    // SAFETY: isatty only inspects the descriptor number.
    unsafe { libc::isatty(2) == 1 && !ctx.json }
}

/// Shows the progress of the pull of `reference` until `done()` says it has ended.
pub fn follow_pull(ctx: &Ctx, reference: &str, done: impl Fn() -> bool) -> anyhow::Result<()> {
    let tty = on_terminal(ctx);
    let mut poll = ctx.connect()?;
    let mut drawn = 0usize;
    let mut reported: BTreeMap<String, String> = BTreeMap::new();
    if !tty {
        eprintln!("pulling {reference}");
    }
    loop {
        let finished = done();
        let mine = poll.call("images.progress", json!({})).ok().and_then(|p| {
            p["pulls"]
                .as_array()
                .and_then(|a| a.iter().find(|i| i["ref"] == reference).cloned())
        });
        if let Some(pull) = mine {
            let layers = pull["layers"].as_array().cloned().unwrap_or_default();
            if tty {
                drawn = draw_layers(&pull, &layers, drawn);
            } else {
                print_finished(&layers, &mut reported);
            }
        }
        if finished {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if tty && drawn > 0 {
        // Leave the last picture on screen, cursor below it.
        eprintln!();
    }
    Ok(())
}

/// Redraws one line per layer (moving up over the previous picture); returns the
/// number of lines drawn.
fn draw_layers(pull: &Value, layers: &[Value], drawn: usize) -> usize {
    let mut out = String::new();
    if drawn > 0 {
        out.push_str(&format!("\x1b[{drawn}A"));
    }
    let mut lines = 0;
    for l in layers {
        let (read, size) = (
            l["read"].as_u64().unwrap_or(0),
            l["size"].as_u64().unwrap_or(0),
        );
        let status = l["status"].as_str().unwrap_or_default();
        let read = if matches!(status, "done" | "exists") {
            size
        } else {
            read
        };
        out.push_str(&format!(
            "\r\x1b[K{} {} {} / {} {status}\n",
            short(l["digest"].as_str().unwrap_or_default()),
            bar(read, size),
            human_size(read),
            human_size(size),
        ));
        lines += 1;
    }
    out.push_str(&format!(
        "\r\x1b[K{} {}",
        pull["name"].as_str().unwrap_or_default(),
        pull["phase"].as_str().unwrap_or_default()
    ));
    eprint!("{out}");
    let _ = std::io::stderr().flush();
    // The status line has no newline: the cursor sits on it, `lines` below the first.
    lines
}

/// Prints `sha256:... done 1.2 MiB` once per layer that finished since the last poll.
fn print_finished(layers: &[Value], reported: &mut BTreeMap<String, String>) {
    for l in layers {
        let digest = l["digest"].as_str().unwrap_or_default();
        let status = l["status"].as_str().unwrap_or_default();
        if !matches!(status, "done" | "exists")
            || reported.get(digest).map(String::as_str) == Some(status)
        {
            continue;
        }
        reported.insert(digest.to_owned(), status.to_owned());
        eprintln!(
            "{} {status} {}",
            short(digest),
            human_size(l["size"].as_u64().unwrap_or(0))
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_and_short_digests() {
        assert_eq!(bar(0, 0), format!("[{}]   0%", ".".repeat(30)));
        assert!(bar(50, 100).starts_with(&format!("[{}", "#".repeat(15))));
        assert_eq!(short("sha256:0123456789abcdef"), "sha256:0123456789ab");
        assert_eq!(short("x"), "x");
    }
}
