//! `berth-keeper --state DIR`: the keeper process berthd starts (see `berthd::keeper`). A
//! binary of its own so the process that parents every task stays small: it maps only the
//! keeper's code, not berthd's.

use std::process::ExitCode;

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match argv.as_slice() {
        [_, flag, state] if flag == "--state" => {
            let code = berthd::keeper::server::main(std::path::Path::new(state));
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        _ => {
            eprintln!("usage: berth-keeper --state DIR (started by berthd)");
            ExitCode::from(2)
        }
    }
}
