//! `berth images|i`: import, list, inspect and remove images (`images.*`).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use serde_json::{json, Value};

use super::{for_each_reporting, put, Ctx};
use crate::output::{labels_cell, Table};

#[derive(Subcommand)]
pub enum Command {
    /// Import an OCI image-layout tar or a `docker save` tar
    Import {
        /// Name the image (the archive must hold one)
        #[arg(long)]
        name: Option<String>,
        /// Unpack into this snapshotter
        #[arg(long)]
        snapshotter: Option<String>,
        /// Of a multi-platform image, import this platform's (os/arch[/variant]; default the host's)
        #[arg(long, value_name = "PLATFORM", conflicts_with = "all_platforms")]
        platform: Option<String>,
        /// Keep every platform of a multi-platform image (all must be in the archive);
        /// the host's is unpacked
        #[arg(long)]
        all_platforms: bool,
        /// The tar archive, opened by berthd; `-` streams it from stdin over the socket
        file: PathBuf,
    },
    /// Pull an image from a registry and unpack it
    Pull {
        /// Talk HTTP, not HTTPS, to the registry
        #[arg(long)]
        plain_http: bool,
        /// Pull for this platform (os/arch[/variant]); default the host's
        #[arg(long)]
        platform: Option<String>,
        /// Unpack into this snapshotter
        #[arg(long)]
        snapshotter: Option<String>,
        /// busybox, host:5000/app:1, name@sha256:...
        #[arg(value_name = "REF")]
        reference: String,
    },
    /// List images
    #[command(visible_alias = "list")]
    Ls {
        /// Print only the image names
        #[arg(short, long)]
        quiet: bool,
        /// Filters in containerd's syntax (name~=^busy, labels.a==b)
        filters: Vec<String>,
    },
    /// Print an image and its OCI config
    Inspect {
        /// Image name (reference)
        name: String,
    },
    /// Write images to a tar that skopeo, ctr and docker load read (streamed from berthd)
    Export {
        /// oci: an OCI image layout; docker (default): that plus docker's manifest.json
        #[arg(long, value_parser = ["oci", "docker"], default_value = "docker")]
        format: String,
        /// The file to write, or - for stdout
        #[arg(short, long, value_name = "FILE", default_value = "-")]
        output: String,
        /// Every platform of each image (its index and all their blobs), not only the
        /// host's manifest
        #[arg(long)]
        all_platforms: bool,
        /// Images to export
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Push an image to a registry (the credentials pull uses)
    Push {
        /// Talk HTTP, not HTTPS, to the registry
        #[arg(long)]
        plain_http: bool,
        /// Push every platform of the image (its index), not only the host's manifest
        #[arg(long)]
        all_platforms: bool,
        /// The image to push
        name: String,
        /// Where to (default: the image's own name), e.g. localhost:5000/tools/bb:1
        reference: Option<String>,
    },
    /// Give an image another name, as `docker tag` (short names resolve as `busybox`)
    Tag {
        /// The image to name
        source: String,
        /// The new name; an image already named so is pointed at SOURCE's target
        target: String,
    },
    /// Remove images
    #[command(visible_aliases = ["remove", "delete"])]
    Rm {
        /// Remove the names even while containers use them (they keep their snapshots)
        #[arg(short, long)]
        force: bool,
        /// Image names (references)
        #[arg(required = true)]
        names: Vec<String>,
    },
}

pub fn run(ctx: &Ctx, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Import {
            name,
            snapshotter,
            platform,
            all_platforms,
            file,
        } => import(ctx, name, snapshotter, platform, all_platforms, file),
        Command::Pull {
            plain_http,
            platform,
            snapshotter,
            reference,
        } => pull(ctx, plain_http, platform, snapshotter, reference),
        Command::Ls { quiet, filters } => {
            let result = ctx
                .connect()?
                .call("images.list", json!({ "filters": filters }))?;
            ctx.show(&result, |r| {
                let images = r["images"].as_array().cloned().unwrap_or_default();
                if quiet {
                    for i in &images {
                        println!("{}", i["name"].as_str().unwrap_or_default());
                    }
                    return Ok(());
                }
                let mut t = Table::new(&["REF", "TYPE", "DIGEST", "SIZE", "LABELS"]);
                for i in &images {
                    let target = &i["target"];
                    t.push(vec![
                        i["name"].as_str().unwrap_or_default().to_owned(),
                        target["media_type"].as_str().unwrap_or_default().to_owned(),
                        target["digest"].as_str().unwrap_or_default().to_owned(),
                        // The unpacked size berthd computes; the target's own size before it did.
                        human_size(
                            i["size"]
                                .as_u64()
                                .or_else(|| target["size"].as_u64())
                                .unwrap_or(0),
                        ),
                        labels_cell(i.get("labels")),
                    ]);
                }
                Ok(t.print()?)
            })
        }
        Command::Export {
            format,
            output,
            all_platforms,
            names,
        } => export(ctx, &format, &output, all_platforms, &names),
        Command::Push {
            plain_http,
            all_platforms,
            name,
            reference,
        } => {
            let mut p = serde_json::Map::new();
            put(&mut p, "name", name);
            put(&mut p, "reference", reference);
            put(&mut p, "plain_http", plain_http);
            put(&mut p, "all_platforms", all_platforms);
            let r = ctx.connect()?.call("images.push", Value::Object(p))?;
            ctx.show(&r, |r| {
                println!(
                    "{} {} ({} blobs uploaded, {} there already, {} mounted)",
                    r["reference"].as_str().unwrap_or_default(),
                    r["digest"].as_str().unwrap_or_default(),
                    r["uploaded"],
                    r["existing"],
                    r["mounted"]
                );
                Ok(())
            })
        }
        Command::Tag { source, target } => {
            let r = ctx
                .connect()?
                .call("images.tag", json!({ "source": source, "target": target }))?;
            ctx.show(&r, |r| {
                println!("{}", r["image"]["name"].as_str().unwrap_or_default());
                Ok(())
            })
        }
        Command::Inspect { name } => {
            let result = ctx.connect()?.call("images.get", json!({ "name": name }))?;
            crate::output::print_json(&result)?;
            Ok(())
        }
        Command::Rm { force, names } => {
            let mut client = ctx.connect()?;
            for_each_reporting(&names, "removals", |n| {
                let mut params = json!({ "name": n });
                if force {
                    params["force"] = json!(true);
                }
                client.call("images.delete", params)?;
                println!("{n}");
                Ok(())
            })
        }
    }
}

/// `params` of `images.import`; the path is made absolute because berthd opens it.
pub fn import_params(
    file: &std::path::Path,
    name: Option<String>,
    snapshotter: Option<String>,
) -> anyhow::Result<Value> {
    let path =
        std::fs::canonicalize(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let mut p = json!({ "path": path });
    if let Some(n) = name {
        p["name"] = json!(n);
    }
    if let Some(s) = snapshotter {
        p["snapshotter"] = json!(s);
    }
    Ok(p)
}

/// Receives the tar in chunks and writes it; a file is written beside its final name and
/// renamed into place only once the whole archive arrived.
fn export(
    ctx: &Ctx,
    format: &str,
    output: &str,
    all_platforms: bool,
    names: &[String],
) -> anyhow::Result<()> {
    use anyhow::Context;
    use base64::Engine;
    let to_stdout = output == "-";
    // SAFETY: isatty only reads the state of fd 1.
    if to_stdout && unsafe { libc::isatty(1) } == 1 {
        anyhow::bail!("refusing to write a tar to a terminal: give -o FILE or redirect stdout");
    }
    let sub = ctx.connect()?.subscribe(
        "images.export",
        json!({ "names": names, "format": format, "all_platforms": all_platforms }),
    )?;
    let partial = format!("{output}.partial");
    let mut out: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::io::BufWriter::new(
            std::fs::File::create(&partial).with_context(|| format!("cannot create {partial}"))?,
        ))
    };
    let mut done = false;
    for note in sub {
        let note = note?;
        if note["end"] == true {
            done = true;
            break;
        }
        let data = note["data"].as_str().unwrap_or_default();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .context("berthd sent a chunk that is not base64")?;
        out.write_all(&bytes)?;
    }
    out.flush()?;
    drop(out);
    if !done {
        if !to_stdout {
            let _ = std::fs::remove_file(&partial);
        }
        anyhow::bail!("the export ended before the whole archive arrived");
    }
    if !to_stdout {
        std::fs::rename(&partial, output).with_context(|| format!("cannot write {output}"))?;
    }
    Ok(())
}

/// `images import -`: the archive from stdin, sent in chunks (`images.upload_*`), so berthd
/// needs no access to a path of the client's.
fn upload(ctx: &Ctx, mut begin: serde_json::Map<String, Value>) -> anyhow::Result<Value> {
    use base64::Engine;
    use std::io::Read;
    let mut client = ctx.connect()?;
    begin.remove("path");
    let upload = client.call("images.upload_begin", Value::Object(begin))?["upload"].clone();
    let mut stdin = std::io::stdin().lock();
    let mut buf = vec![0u8; 1 << 20];
    let mut sent = 0u64;
    let result = (|| -> anyhow::Result<Value> {
        loop {
            let n = match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            let data = base64::engine::general_purpose::STANDARD.encode(&buf[..n]);
            client.call(
                "images.upload_write",
                json!({ "upload": upload, "data": data }),
            )?;
            sent += n as u64;
        }
        eprintln!("imported {sent} bytes from stdin");
        Ok(client.call("images.upload_commit", json!({ "upload": upload }))?)
    })();
    if result.is_err() {
        let _ = client.call("images.upload_abort", json!({ "upload": upload }));
    }
    result
}

/// Prints each imported image's name and digest, pointing out a name made from a digest.
fn show_imported(ctx: &Ctx, result: &Value) -> anyhow::Result<()> {
    ctx.show(result, |r| {
        for i in r["images"].as_array().cloned().unwrap_or_default() {
            let name = i["name"].as_str().unwrap_or_default();
            println!(
                "{} {}",
                name,
                i["target"]["digest"].as_str().unwrap_or_default()
            );
            if name.starts_with("import-") {
                eprintln!(
                    "berth: the archive does not name this image; it is named {name} after its \
                     digest (import with --name, or `berth images tag {name} NAME`)"
                );
            }
        }
        Ok(())
    })
}

fn import(
    ctx: &Ctx,
    name: Option<String>,
    snapshotter: Option<String>,
    platform: Option<String>,
    all_platforms: bool,
    file: PathBuf,
) -> anyhow::Result<()> {
    let mut extra = serde_json::Map::new();
    put(&mut extra, "name", name);
    put(&mut extra, "snapshotter", snapshotter);
    put(&mut extra, "platform", platform);
    put(&mut extra, "all_platforms", all_platforms);
    if file.as_os_str() == "-" {
        let result = upload(ctx, extra)?;
        return show_imported(ctx, &result);
    }
    let mut params = import_params(&file, None, None)?;
    if let Value::Object(p) = &mut params {
        p.extend(extra);
    }
    let path = params["path"].as_str().unwrap_or_default().to_owned();
    let mut client = ctx.connect()?;
    let call = std::thread::spawn(move || client.call("images.import", params));
    if super::progress::on_terminal(ctx) {
        let mut poll = ctx.connect()?;
        while !call.is_finished() {
            if let Ok(p) = poll.call("images.progress", json!({})) {
                let mine = p["imports"]
                    .as_array()
                    .and_then(|a| a.iter().find(|i| i["path"] == path.as_str()).cloned());
                if let Some(i) = mine {
                    draw(
                        i["read"].as_u64().unwrap_or(0),
                        i["size"].as_u64().unwrap_or(0),
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprint!("\r\x1b[K");
    } else {
        eprintln!("importing {path}");
    }
    let result = call
        .join()
        .map_err(|_| anyhow::anyhow!("the import thread panicked"))??;
    show_imported(ctx, &result)
}

fn pull(
    ctx: &Ctx,
    plain_http: bool,
    platform: Option<String>,
    snapshotter: Option<String>,
    reference: String,
) -> anyhow::Result<()> {
    let mut params = json!({ "ref": reference, "plain_http": plain_http });
    if let Some(p) = platform {
        params["platform"] = json!(p);
    }
    if let Some(s) = snapshotter {
        params["snapshotter"] = json!(s);
    }
    let mut client = ctx.connect()?;
    let call = std::thread::spawn(move || client.call("images.pull", params));
    super::progress::follow_pull(ctx, &reference, || call.is_finished())?;
    let result = call
        .join()
        .map_err(|_| anyhow::anyhow!("the pull thread panicked"))??;
    ctx.show(&result, |r| {
        let i = &r["image"];
        println!(
            "{} {}",
            i["name"].as_str().unwrap_or_default(),
            i["target"]["digest"].as_str().unwrap_or_default()
        );
        Ok(())
    })
}

/// One line of progress bar on stderr: `[#####.....]  42% 1.2 GiB / 2.9 GiB`.
fn draw(read: u64, total: u64) {
    let bar = super::progress::bar(read, total);
    let phase = if read >= total {
        "unpacking"
    } else {
        "reading"
    };
    eprint!(
        "\r\x1b[K{bar} {} / {} {phase}",
        human_size(read),
        human_size(total)
    );
    let _ = std::io::stderr().flush();
}

pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_human() {
        assert_eq!(human_size(12), "12 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 << 30), "3.0 GiB");
    }

    #[test]
    fn import_paths_become_absolute() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("x.tar");
        std::fs::write(&f, b"").expect("write");
        let p = import_params(&f, Some("n:1".into()), None).expect("params");
        assert!(p["path"].as_str().expect("path").starts_with('/'));
        assert_eq!(p["name"], "n:1");
        assert!(import_params(std::path::Path::new("/nonexistent/x.tar"), None, None).is_err());
    }
}
