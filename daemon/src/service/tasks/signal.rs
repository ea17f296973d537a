//! Signals as the wire gives them: a number, or a name with or without `SIG`.

use nix::sys::signal::Signal;
use schema::Signal as WireSignal;

use crate::service::{Error, Result};

/// The signal number of a `tasks.kill` request; SIGTERM when none is given.
pub fn parse(signal: Option<&WireSignal>) -> Result<i32> {
    let bad = |what: String| Error::InvalidArgument(format!("unknown signal {what}"));
    match signal {
        None => Ok(libc::SIGTERM),
        Some(WireSignal::Number(n)) => {
            let n = i32::try_from(*n).map_err(|_| bad(n.to_string()))?;
            if (1..=64).contains(&n) {
                Ok(n)
            } else {
                Err(bad(n.to_string()))
            }
        }
        Some(WireSignal::Name(name)) => {
            if let Ok(n) = name.parse::<i64>() {
                return parse(Some(&WireSignal::Number(n)));
            }
            let upper = name.to_ascii_uppercase();
            let full = if upper.starts_with("SIG") {
                upper
            } else {
                format!("SIG{upper}")
            };
            if let Some(n) = realtime(&full) {
                return Ok(n);
            }
            full.parse::<Signal>()
                .map(|s| s as i32)
                .map_err(|_| bad(format!("{name:?}")))
        }
    }
}

/// `SIGRTMIN`, `SIGRTMIN+3` (systemd's STOPSIGNAL), `SIGRTMAX-1`: nix's `Signal` has no
/// real-time signals.
fn realtime(name: &str) -> Option<i32> {
    let (base, rest) = if let Some(r) = name.strip_prefix("SIGRTMIN") {
        (libc::SIGRTMIN(), r)
    } else if let Some(r) = name.strip_prefix("SIGRTMAX") {
        (libc::SIGRTMAX(), r)
    } else {
        return None;
    };
    let n = match rest {
        "" => base,
        r if r.starts_with('+') => base + r[1..].parse::<i32>().ok()?,
        r if r.starts_with('-') => base - r[1..].parse::<i32>().ok()?,
        _ => return None,
    };
    (libc::SIGRTMIN()..=libc::SIGRTMAX())
        .contains(&n)
        .then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names_with_or_without_sig_prefix() {
        assert_eq!(parse(None).expect("default"), libc::SIGTERM);
        assert_eq!(parse(Some(&WireSignal::Number(9))).expect("9"), 9);
        for name in ["SIGKILL", "KILL", "kill", "9"] {
            assert_eq!(parse(Some(&WireSignal::Name(name.into()))).expect(name), 9);
        }
        assert!(parse(Some(&WireSignal::Number(0))).is_err());
        assert!(parse(Some(&WireSignal::Name("SIGNOPE".into()))).is_err());
        let rt = |s: &str| parse(Some(&WireSignal::Name(s.into())));
        assert_eq!(rt("SIGRTMIN+3").expect("rtmin+3"), libc::SIGRTMIN() + 3);
        assert_eq!(rt("RTMAX-1").expect("rtmax-1"), libc::SIGRTMAX() - 1);
        assert!(rt("SIGRTMIN+99").is_err());
    }
}
