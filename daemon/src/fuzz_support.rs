//! What every property-based fuzz test of the daemon's parsers shares: the case count and time
//! budget from the environment, the checked-in seed corpus, a deterministic runner and the
//! one-line summary each target prints.
//!
//! Knobs (all optional): `BERTH_FUZZ_CASES` (generated inputs per property, default 256, so a
//! plain `cargo test` stays fast), `BERTH_FUZZ_SECONDS` (stop generating after this long;
//! default none), `BERTH_FUZZ_SEED` (a `u64`; default fixed, so a failure replays).
//!
//! Tests only: no daemon code depends on this module.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

/// Generated cases per property when `BERTH_FUZZ_CASES` is unset.
const DEFAULT_CASES: u64 = 256;
/// Cases per runner round; each round has its own seed, derived from the base seed.
const ROUND: u64 = 256;
const DEFAULT_SEED: u64 = 0x6265_7274_685f_667a; // "berth_fz"

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{name}={v:?} is not a number: {e}")),
    )
}

/// The checked-in seed inputs of `target`: every file of `tests/corpus/<target>/`, sorted by
/// name, with its name.
pub fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/corpus")
        .join(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("corpus entry").path();
            let bytes = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("seed corpus {}: {e}", path.display()));
            let name = path
                .file_name()
                .expect("a file name")
                .to_string_lossy()
                .into_owned();
            (name, bytes)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "seed corpus {} is empty", dir.display());
    files
}

/// The corpus files of `target` as text, one input per line (so one file can hold many
/// small inputs); `\n` inside an input is written `\\n`.
pub fn corpus_lines(target: &str) -> Vec<String> {
    corpus(target)
        .into_iter()
        .flat_map(|(name, bytes)| {
            let text = String::from_utf8(bytes)
                .unwrap_or_else(|e| panic!("corpus {target}/{name} is not UTF-8: {e}"));
            text.lines()
                .map(|l| l.replace("\\n", "\n"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `text`, or its start and end with the length between, so a huge input stays readable.
fn shorten(text: String) -> String {
    const KEEP: usize = 600;
    if text.len() <= 2 * KEEP {
        return text;
    }
    let mut head = KEEP;
    while !text.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = text.len() - KEEP;
    while !text.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{}…[{} bytes]…{}", &text[..head], text.len(), &text[tail..])
}

/// Runs `check` on each seed input, then on generated inputs of `strategy` until
/// `BERTH_FUZZ_CASES` cases or `BERTH_FUZZ_SECONDS` have passed, and prints
/// `fuzz <target>: N inputs, 0 failures`. Panics with the shrunk input and the round's seed
/// on the first failure.
pub fn run<S, F>(target: &str, seeds: Vec<S::Value>, strategy: S, check: F)
where
    S: Strategy,
    S::Value: Clone,
    F: Fn(S::Value) -> Result<(), TestCaseError>,
{
    let cases = env_u64("BERTH_FUZZ_CASES").unwrap_or(DEFAULT_CASES);
    let deadline = env_u64("BERTH_FUZZ_SECONDS").map(|s| Instant::now() + Duration::from_secs(s));
    let base_seed = env_u64("BERTH_FUZZ_SEED").unwrap_or(DEFAULT_SEED);
    let mut tried = 0u64;
    let mut generated = 0u64;
    for seed in seeds {
        if let Err(e) = check(seed.clone()) {
            let seed = shorten(format!("{seed:?}"));
            panic!("fuzz {target}: seed input {seed} failed: {e}");
        }
        tried += 1;
    }
    let mut round = 0u64;
    while generated < cases && deadline.is_none_or(|d| Instant::now() < d) {
        let n = ROUND.min(cases - generated);
        let seed = base_seed ^ round.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        let config = Config {
            cases: n as u32,
            failure_persistence: None,
            max_shrink_iters: 4096,
            ..Config::default()
        };
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
        let mut runner = TestRunner::new_with_rng(config, rng);
        match runner.run(&strategy, &check) {
            Ok(()) => {}
            Err(TestError::Fail(why, input)) => panic!(
                "fuzz {target}: FAILED after {tried} inputs (replay: BERTH_FUZZ_SEED={base_seed}, \
                 round {round}, round seed {seed}): {}\nminimal input: {}",
                shorten(why.to_string()),
                shorten(format!("{input:?}")),
            ),
            Err(TestError::Abort(why)) => panic!("fuzz {target}: aborted: {why}"),
        }
        tried += n;
        generated += n;
        round += 1;
    }
    eprintln!("fuzz {target}: {tried} inputs, 0 failures");
}
