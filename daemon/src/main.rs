//! `berthd [--root DIR] [--state DIR] [--socket PATH] [--config FILE] [--log-level L]
//! [--log-format text|json]`

use std::path::PathBuf;
use std::process::ExitCode;

use berthd::config::Config;
use berthd::daemon::{self, Options};
use clap::Parser;

/// berth's daemon: containers as metadata, tasks run by runc, JSON-RPC 2.0 on a unix socket.
#[derive(Parser, Debug)]
#[command(name = "berthd", version)]
struct Args {
    /// Persistent data: the metadata database, content, snapshots.
    #[arg(long, default_value = "/var/lib/berth")]
    root: PathBuf,
    /// Volatile data: bundles, FIFOs, runc state. Default socket lives here.
    #[arg(long, default_value = "/run/berth")]
    state: PathBuf,
    /// The socket to serve on [default: <state>/berthd.sock].
    #[arg(long)]
    socket: Option<PathBuf>,
    /// A TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// trace, debug, info, warn or error (or a tracing filter directive).
    #[arg(long, default_value = "info")]
    log_level: String,
    /// text (for people) or json (one object per line, for journald and log shippers).
    #[arg(long, value_parser = ["text", "json"], default_value = "text")]
    log_format: String,
    /// Start over with an empty store when the database is missing, empty or damaged (a
    /// damaged one is set aside as meta.db.reset-<time>); the garbage collector then
    /// deletes every blob and snapshot directory. Refused on a sound database.
    #[arg(long)]
    reset_store: bool,
    /// Print berthd(8), the man page (roff), and exit (for `make install`).
    #[arg(long, hide = true)]
    man: bool,
}

/// Keeps RSS proportional to live data. glibc raises its mmap threshold after a large block
/// is freed, so one big reply (a 10,000-container list) would otherwise stay in the heap for
/// good; a fixed threshold returns such blocks to the kernel at once. Two arenas bound the
/// per-thread heaps of tokio's workers and the SQLite threads.
fn tune_malloc() {
    // SAFETY: mallopt only changes allocator parameters; it is called before any other
    // thread exists, and glibc documents both parameters as safe to set at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn main() -> ExitCode {
    // `berthd keeper --state DIR`: the keeper process berthd starts (see berthd::keeper).
    // Decided before anything else runs so the keeper stays small: no runtime, no logging.
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let [_, cmd, flag, state] = argv.as_slice() {
        if cmd == "keeper" && flag == "--state" {
            let code = berthd::keeper::server::main(std::path::Path::new(state));
            return ExitCode::from(u8::try_from(code).unwrap_or(1));
        }
    }
    tune_malloc();
    let args = Args::parse();
    if args.man {
        use clap::CommandFactory;
        let page = clap_mangen::Man::new(Args::command()).section("8");
        return match page.render(&mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("berthd: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if args.log_format == "json" {
        logs.json().init();
    } else {
        logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
    let config = match args.config.as_deref().map(Config::load).transpose() {
        Ok(c) => c.unwrap_or_default(),
        Err(e) => {
            eprintln!("berthd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let opts = Options {
        socket: args
            .socket
            .unwrap_or_else(|| args.state.join("berthd.sock")),
        root: args.root,
        state: args.state,
        config,
        reset_store: args.reset_store,
    };
    // Taken (and its variables cleared) while berthd still has one thread.
    let inherited = match berthd::systemd::listener() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("berthd: socket activation: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.config.async_workers())
        .enable_all()
        .thread_name("berthd")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berthd: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(daemon::run(opts, inherited)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berthd: {e}");
            ExitCode::FAILURE
        }
    }
}
