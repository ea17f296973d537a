//! Fuzzing the socket's framing (issue #9): mutated JSON-RPC requests (truncation, byte flips,
//! huge ids, deep nesting, invalid UTF-8, batches) sent to a real daemon over NDJSON (one line
//! each) and as the body of a raw HTTP POST. After every input the daemon answers a probe; no
//! reply is ever an internal error (-32603); every NDJSON reply line and every 200 HTTP body
//! is JSON; no HTTP status is 5xx; `system.version` answers after each batch.
//!
//! Deterministic: a xorshift generator seeded from `BERTH_FUZZ_SEED` (default fixed), so a
//! failure replays. `BERTH_FUZZ_CASES` inputs per transport (default 256),
//! `BERTH_FUZZ_SECONDS` bounds each transport's run. Seeds: `tests/corpus/transport/requests.ndjson`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use berth_tests::contract::Tracker;
use berth_tests::{Ndjson, TestDaemon};
use serde_json::{json, Value};

const BATCH: u64 = 64;
const REPLY_WAIT: Duration = Duration::from_secs(20);

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{name}={v:?}: {e}"))
    })
}

fn seeds() -> Vec<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/transport/requests.ndjson");
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// One mutated input built from the seed requests.
fn mutate(rng: &mut XorShift, seeds: &[Vec<u8>], depth: u32) -> Vec<u8> {
    let mut v = seeds[rng.below(seeds.len())].clone();
    match rng.below(9) {
        0 => v.truncate(rng.below(v.len() + 1)),
        1 => {
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
        }
        2 => {
            let id = match rng.below(6) {
                0 => "9".repeat(1 + rng.below(5000)),
                1 => "1e400".to_owned(),
                2 => "-0.0000000000000000000000000000001".to_owned(),
                3 => format!("\"{}\"", "x".repeat(rng.below(100_000))),
                4 => "{\"a\":[1,2]}".to_owned(),
                _ => "18446744073709551616".to_owned(),
            };
            v = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"system.version"}}"#).into_bytes();
        }
        3 => {
            let n = 1 + rng.below(4000);
            let nest = format!("{}{}", "[".repeat(n), "]".repeat(n));
            let at = if rng.below(2) == 0 { "id" } else { "params" };
            v = format!(r#"{{"jsonrpc":"2.0","{at}":{nest},"id":7,"method":"containers.list"}}"#)
                .into_bytes();
        }
        4 => {
            let i = rng.below(v.len() + 1);
            let bad: &[u8] = [
                &b"\xff"[..],
                b"\xc0\xaf",
                b"\xed\xa0\x80",
                b"\xf4\x90\x80\x80",
            ][rng.below(4)];
            v.splice(i..i, bad.iter().copied());
        }
        5 if depth < 2 => {
            let k = rng.below(5);
            let items: Vec<Vec<u8>> = (0..k).map(|_| mutate(rng, seeds, depth + 1)).collect();
            v = [b"[".to_vec(), items.join(&b","[..]), b"]".to_vec()].concat();
        }
        6 => {
            let i = rng.below(v.len() + 1);
            let junk = [
                b'{', b'}', b'[', b']', b'"', b',', b':', b'\\', b'0', b' ', 0,
            ][rng.below(11)];
            v.insert(i, junk);
        }
        7 => {
            let i = rng.below(v.len() + 1);
            let j = rng.below(v.len() + 1);
            let (a, b) = (i.min(j), i.max(j));
            let piece = v[a..b].to_vec();
            v.splice(b..b, piece);
        }
        _ => {}
    }
    v
}

/// Every error code anywhere in a reply (a batch reply holds several).
fn has_internal_error(reply: &Value) -> bool {
    match reply {
        Value::Array(items) => items.iter().any(has_internal_error),
        Value::Object(o) => o
            .get("error")
            .and_then(|e| e.get("code"))
            .is_some_and(|c| c == &json!(-32603)),
        _ => false,
    }
}

fn show(input: &[u8]) -> String {
    let text = String::from_utf8_lossy(input);
    if text.len() <= 400 {
        format!("{text:?}")
    } else {
        let cut = (0..=200)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        format!("{:?}…({} bytes)", &text[..cut], input.len())
    }
}

/// Sends `input` as one NDJSON line, then a probe; checks every line up to the probe's reply.
fn ndjson_round(conn: &mut Ndjson, input: &[u8], n: u64) {
    let mut line: Vec<u8> = input
        .iter()
        .map(|&b| if b == b'\n' { b' ' } else { b })
        .collect();
    line.push(b'\n');
    let probe = format!(r#"{{"jsonrpc":"2.0","id":"probe-{n}","method":"system.version"}}"#);
    line.extend_from_slice(probe.as_bytes());
    line.push(b'\n');
    conn.send_raw(&line)
        .unwrap_or_else(|e| panic!("NDJSON write failed after input {}: {e}", show(input)));
    loop {
        let reply = conn
            .recv_line(REPLY_WAIT)
            .unwrap_or_else(|e| panic!("no probe reply after input {}: {e:?}", show(input)));
        let value: Value = serde_json::from_str(&reply).unwrap_or_else(|e| {
            panic!("reply {reply:?} to input {} is not JSON: {e}", show(input))
        });
        assert!(
            !has_internal_error(&value),
            "internal error {reply} for malformed input {}",
            show(input)
        );
        if value["id"] == json!(format!("probe-{n}")) {
            assert!(value["result"].is_object(), "probe failed: {reply}");
            return;
        }
    }
}

/// Posts `body` over a fresh connection and checks the reply.
fn http_round(socket: &Path, body: &[u8]) {
    let mut s = UnixStream::connect(socket).expect("connect");
    s.set_read_timeout(Some(REPLY_WAIT)).expect("timeout");
    let head = format!(
        "POST / HTTP/1.1\r\nHost: berth\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // The daemon may answer and close before reading a body it refuses; a failed write is
    // then judged by the reply. No half-close: hyper drops a request whose peer shut down.
    let _ = s
        .write_all(head.as_bytes())
        .and_then(|()| s.write_all(body));
    let mut reply = Vec::new();
    s.read_to_end(&mut reply)
        .unwrap_or_else(|e| panic!("HTTP reply to {} not read: {e}", show(body)));
    let text = String::from_utf8_lossy(&reply);
    let (head, payload) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP reply to {}: {text:?}", show(body)));
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {head:?} for {}", show(body)));
    assert!(status < 500, "HTTP {status} for {}: {text}", show(body));
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let payload = if chunked {
        dechunk(payload)
    } else {
        payload.to_owned()
    };
    if status == 200 && !payload.trim().is_empty() {
        let value: Value = serde_json::from_str(&payload).unwrap_or_else(|e| {
            panic!("HTTP body {payload:?} for {} is not JSON: {e}", show(body))
        });
        assert!(
            !has_internal_error(&value),
            "internal error {payload} for malformed body {}",
            show(body)
        );
        let mut contract = Tracker::default();
        contract.sent(&String::from_utf8_lossy(body));
        contract.received(&value);
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// An NDJSON connection: the daemon tells the protocol by a connection's first byte, so a
/// valid request goes first and any input after it is read as a line.
fn ndjson(d: &TestDaemon) -> Ndjson {
    let mut conn = d.ndjson();
    let v = conn.call("system.version", json!({}));
    assert!(v.is_ok(), "system.version on a new connection: {v:?}");
    conn
}

#[test]
fn fuzz_transport_malformed_requests_never_crash_or_fail_internally() {
    let d = TestDaemon::start();
    let cases = env_u64("BERTH_FUZZ_CASES").unwrap_or(256);
    let seconds = env_u64("BERTH_FUZZ_SECONDS");
    let seed = env_u64("BERTH_FUZZ_SEED").unwrap_or(0x6265_7274_685f_667a);
    let seeds = seeds();
    for (name, http) in [("transport-ndjson", false), ("transport-http", true)] {
        let deadline = seconds.map(|s| Instant::now() + Duration::from_secs(s));
        let mut rng = XorShift(seed | 1);
        let mut tried = 0u64;
        let mut since_check = 0u64;
        let mut conn = ndjson(&d);
        let inputs = seeds
            .iter()
            .cloned()
            .map(Some)
            .chain(std::iter::repeat(None));
        for (i, seeded) in inputs.enumerate() {
            let generated = (i as u64).saturating_sub(seeds.len() as u64);
            if seeded.is_none()
                && (generated >= cases || deadline.is_some_and(|d| Instant::now() >= d))
            {
                break;
            }
            let input = seeded.unwrap_or_else(|| mutate(&mut rng, &seeds, 0));
            if http {
                http_round(d.socket(), &input);
            } else {
                ndjson_round(&mut conn, &input, i as u64);
            }
            tried += 1;
            since_check += 1;
            if since_check == BATCH {
                since_check = 0;
                conn = ndjson(&d);
                let v = d.rpc("system.version", json!({}));
                assert!(v.is_ok(), "system.version after {tried} inputs: {v:?}");
            }
        }
        let v = d.rpc("system.version", json!({}));
        assert!(v.is_ok(), "system.version after the run: {v:?}");
        eprintln!("fuzz {name}: {tried} inputs, 0 failures (seed {seed})");
    }
}

/// Every request method, registered or not, then heads with one framing or byte mutation:
/// each gets one well-formed HTTP response below 500 and then the end of the connection;
/// a HEAD response has no body, any other carries exactly its content-length; mutated
/// framing (both Transfer-Encoding and Content-Length, a second or malformed length, a
/// control byte) is 400 or 501.
#[test]
fn fuzz_transport_every_method_and_mutated_heads_get_one_valid_http_answer() {
    let d = TestDaemon::start();
    let seed = env_u64("BERTH_FUZZ_SEED").unwrap_or(0x6265_7274_685f_667a);
    let cases = env_u64("BERTH_FUZZ_CASES").unwrap_or(256);
    let mut rng = XorShift(seed | 1);
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"system.version"}"#;
    let methods = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "PROPFIND",
        "BREW", "get", "M-SEARCH",
    ];
    for method in methods {
        let req = format!(
            "{method} /_ping HTTP/1.1\r\nHost: berth\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        let (status, _) = one_response(d.socket(), req.as_bytes(), method == "HEAD");
        assert!(status < 500, "{method}: {status}");
        assert_eq!(status == 200, method == "POST", "{method}: {status}");
    }
    // `make fuzz` asks for more cases than any run reaches and bounds it in time instead.
    let until = env_u64("BERTH_FUZZ_SECONDS")
        .map(|s| std::time::Instant::now() + std::time::Duration::from_secs(s));
    let mut tried = 0;
    for _ in 0..cases {
        if until.is_some_and(|t| std::time::Instant::now() >= t) {
            break;
        }
        let (req, framing) = mutated_head(&mut rng, body);
        let (status, _) = one_response(d.socket(), &req, false);
        assert!(status < 500, "{status} for {}", show(&req));
        if framing {
            assert!(matches!(status, 400 | 501), "{status} for {}", show(&req));
        }
        tried += 1;
    }
    let v = d.rpc("system.version", json!({}));
    assert!(v.is_ok(), "system.version after the run: {v:?}");
    eprintln!(
        "fuzz transport-methods: {} methods, {tried} mutated heads, 0 failures (seed {seed})",
        methods.len()
    );
}

/// A POST of `body` with one mutation of its head; `true` when the mutation breaks its
/// framing or puts a control byte in it (so it must be refused).
fn mutated_head(rng: &mut XorShift, body: &str) -> (Vec<u8>, bool) {
    let n = body.len();
    let mut headers = vec![
        "Host: berth".to_owned(),
        "Content-Type: application/json".to_owned(),
        format!("Content-Length: {n}"),
        "Connection: close".to_owned(),
    ];
    let framing = match rng.below(7) {
        0 => {
            headers.push("Transfer-Encoding: chunked".to_owned());
            true
        }
        1 => {
            headers.push(format!("Content-Length: {}", n + 1 + rng.below(100)));
            true
        }
        2 => {
            let digits = n.to_string();
            let bad = [
                format!("+{n}"),
                format!("-{n}"),
                format!("0x{n:x}"),
                String::new(),
                format!("{} {}", &digits[..1], &digits[1..]),
            ];
            headers[2] = format!("Content-Length: {}", bad[rng.below(bad.len())]);
            true
        }
        3 | 4 => {
            let line = rng.below(headers.len());
            let ctl = [0u8, 1, 8, 0x0b, 0x0c, 0x1b, 0x7f, b'\r'][rng.below(8)] as char;
            let h = &mut headers[line];
            let at = (1 + rng.below(h.len() - 1)).min(h.len() - 1);
            h.insert(at, ctl);
            true
        }
        5 => {
            let line = rng.below(headers.len());
            headers[line] = headers[line].replacen(':', " :", 1);
            true
        }
        _ => false,
    };
    let req = format!("POST / HTTP/1.1\r\n{}\r\n\r\n{body}", headers.join("\r\n"));
    (req.into_bytes(), framing)
}

/// Sends `req` and reads until berthd closes: exactly one response, whose status is
/// returned; its body is empty for HEAD and as long as its content-length otherwise.
fn one_response(socket: &Path, req: &[u8], head: bool) -> (u16, String) {
    let mut s = UnixStream::connect(socket).expect("connect");
    s.set_read_timeout(Some(REPLY_WAIT)).expect("timeout");
    let _ = s.write_all(req);
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !got.is_empty() => break,
            Err(e) => panic!("{} not answered and closed: {e}", show(req)),
        }
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    let (head_text, rest) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP response to {}: {text:?}", show(req)));
    let status: u16 = head_text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {head_text:?} for {}", show(req)));
    let length: usize = head_text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.trim().parse().expect("a content-length"));
    let chunked = head_text
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    if head {
        assert!(rest.is_empty(), "a HEAD response with a body: {text:?}");
    } else if !chunked {
        assert_eq!(
            rest.len(),
            length,
            "one response of {length} bytes: {text:?}"
        );
    }
    (status, rest.to_owned())
}
