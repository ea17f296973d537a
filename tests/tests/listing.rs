//! `containers.list`: paging with `limit`/`after` and containerd's filter grammar.

use std::collections::BTreeSet;

use berth_tests::{container, container_ids, create_container, expect_error, message, TestDaemon};
use serde_json::json;

#[test]
fn paging_with_limit_and_after_returns_every_container_once_in_id_order() {
    let d = TestDaemon::start();
    let mut want = BTreeSet::new();
    for i in [
        13, 2, 24, 0, 7, 19, 5, 11, 22, 1, 16, 9, 3, 20, 14, 8, 23, 4, 18, 10, 6, 21, 12, 17, 15,
    ] {
        let id = format!("c{i:02}");
        create_container(&d, container(&id));
        want.insert(id);
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for page in 0.. {
        assert!(page < 10, "paging does not terminate: {seen:?}");
        let mut params = json!({"limit": 7});
        if let Some(a) = &after {
            params["after"] = json!(a);
        }
        let reply = d.rpc_ok("containers.list", params);
        let ids: Vec<String> = reply["containers"]
            .as_array()
            .expect("containers array")
            .iter()
            .map(|c| c["id"].as_str().expect("id").to_owned())
            .collect();
        assert!(ids.len() <= 7, "limit honoured: {reply}");
        seen.extend(ids.iter().cloned());
        match reply.get("next").filter(|n| !n.is_null()) {
            Some(next) => {
                assert_eq!(
                    next.as_str(),
                    ids.last().map(String::as_str),
                    "next is the last id"
                );
                after = Some(ids.last().expect("a non-empty page before next").clone());
            }
            None => break,
        }
    }
    let want: Vec<String> = want.into_iter().collect();
    assert_eq!(seen, want, "all 25 exactly once, in id order");
}

#[test]
fn filters_follow_containerds_grammar() {
    let d = TestDaemon::start();
    let mut a = container("fa");
    a["image"] = json!("busybox:latest");
    a["labels"] = json!({"a.b": "c", "tier": "web"});
    let mut b = container("fb");
    b["image"] = json!("alpine:3");
    b["labels"] = json!({"a.b": "d"});
    let mut c = container("fc");
    c["image"] = json!("busybox:1.36");
    for x in [a, b, c] {
        create_container(&d, x);
    }
    let cases: &[(&[&str], &[&str])] = &[
        (&[r#"labels."a.b"==c"#], &["fa"]),
        (&["image~=^busy"], &["fa", "fc"]),
        (&[r#"labels."a.b"==c,image~=^busy"#], &["fa"]),
        (&[r#"labels."a.b"==d,image~=^busy"#], &[]),
        (&["labels.tier"], &["fa"]),
        (&[r#"labels."a.b""#], &["fa", "fb"]),
        (&["image!=alpine:3"], &["fa", "fc"]),
        (&[r#"labels."a.b"!=c"#], &["fb", "fc"]),
        (&["labels.tier==web", "image==alpine:3"], &["fa", "fb"]),
        (&["id==fc"], &["fc"]),
        (&["runtime.name==runc"], &["fa", "fb", "fc"]),
    ];
    for (filters, want) in cases {
        let got = container_ids(&d, json!({"filters": filters}));
        assert_eq!(got, *want, "filters {filters:?}");
    }
}

#[test]
fn malformed_filter_is_invalid_argument_with_its_position() {
    let d = TestDaemon::start();
    for bad in [r#"labels."a.b==c"#, "image==busy,", "==x"] {
        let err = expect_error(
            d.rpc("containers.list", json!({"filters": [bad]})),
            "invalid_argument",
        );
        let msg = message(&err);
        assert!(msg.contains("filter"), "says it is the filter: {err}");
        assert!(
            msg.bytes().any(|b| b.is_ascii_digit()),
            "gives the position: {err}"
        );
    }
}

/// `containers.list` is served around jsonrpsee on HTTP and NDJSON (its stored JSON goes
/// into the reply as it is) and through jsonrpsee on WebSocket: every transport answers
/// every case alike, results and errors, and a list past `max_response_bytes` is refused.
#[test]
fn every_transport_answers_lists_and_their_errors_alike() {
    let d = TestDaemon::start_with("max_response_bytes = 65536\n");
    for i in 0..40 {
        let mut c = container(&format!("t{i:02}"));
        c["labels"] = json!({"n": i.to_string(), "q\"uote": "é\t"});
        if i % 10 == 0 {
            c["labels"]["sel"] = json!("yes");
        }
        // A spec as a client wrote it: whitespace and escapes are kept as given.
        c["spec"] = json!({"ociVersion": "1.0.2", "annotations": {"n": "\u{1}é"}});
        create_container(&d, c);
    }
    let mut ws = d.websocket();
    let mut nd = d.ndjson();
    let cases = [
        json!({}),
        json!({"limit": 7, "after": "t03"}),
        json!({"filters": ["labels.sel==yes"], "with_status": true}),
        json!({"namespace": "empty"}),
        json!({"limit": 0}),
        json!({"bogus": 1}),
        json!({"filters": ["labels.=="]}),
        json!([1]),
        json!({"namespace": "../x"}),
    ];
    for (i, params) in cases.iter().enumerate() {
        let req = json!({"jsonrpc": "2.0", "id": i, "method": "containers.list", "params": params});
        let (status, http) = d.curl(&req.to_string());
        assert_eq!(status, 200, "{http}");
        nd.send(&req);
        let ndjson = nd
            .recv(std::time::Duration::from_secs(10))
            .expect("ndjson reply");
        ws.send_json(&req);
        let web = ws
            .recv_json(std::time::Duration::from_secs(10))
            .expect("websocket reply");
        assert_eq!(http, ndjson, "{params}: HTTP and NDJSON");
        assert_eq!(http, web, "{params}: HTTP and WebSocket");
        let ok = http.get("result").is_some();
        assert_eq!(ok, i < 4, "{params}: {http}");
    }
    // The whole namespace does not fit 64 KiB: each transport serves it as pages that end
    // where the bytes run out, with `next`; following it yields every container once.
    for i in 40..120 {
        let mut c = container(&format!("t{i:03}"));
        c["spec"] = json!({"ociVersion": "1.0.2", "pad": "x".repeat(1000)});
        create_container(&d, c);
    }
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        assert!(
            pages.len() < 20,
            "paging does not end: {} pages",
            pages.len()
        );
        let mut params = json!({});
        if let Some(a) = &after {
            params["after"] = json!(a);
        }
        let req = json!({"jsonrpc": "2.0", "id": 7, "method": "containers.list", "params": params});
        let (_, http) = d.curl(&req.to_string());
        nd.send(&req);
        let ndjson = nd.recv(std::time::Duration::from_secs(10)).expect("reply");
        ws.send_json(&req);
        let web = ws
            .recv_json(std::time::Duration::from_secs(10))
            .expect("reply");
        assert_eq!(http, ndjson, "page {}", pages.len());
        assert_eq!(http, web, "page {}", pages.len());
        let text = http["result"].to_string();
        assert!(text.len() <= 65536, "a page of {} bytes", text.len());
        let page = http["result"].clone();
        let ids: Vec<String> = page["containers"]
            .as_array()
            .expect("containers")
            .iter()
            .map(|c| c["id"].as_str().expect("id").to_owned())
            .collect();
        assert!(!ids.is_empty(), "{page}");
        pages.push(ids);
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => break,
        }
    }
    assert!(
        pages.len() > 1,
        "120 containers of 1 KiB fill more than one 64 KiB page"
    );
    let all: Vec<String> = pages.concat();
    let mut want: Vec<String> = (0..40)
        .map(|i| format!("t{i:02}"))
        .chain((40..120).map(|i| format!("t{i:03}")))
        .collect();
    want.sort();
    assert_eq!(all, want, "every container once, in id order");
    // One container larger than a page (the cap less 4 KiB for the envelope) cannot be
    // listed: a clear error, alike.
    let mut big = container("zz-big");
    big["spec"] = json!({"ociVersion": "1.0.2", "pad": "x".repeat(62_500)});
    create_container(&d, big);
    let req =
        json!({"jsonrpc": "2.0", "id": 8, "method": "containers.list", "params": {"after": "zz"}});
    let (_, http) = d.curl(&req.to_string());
    nd.send(&req);
    let ndjson = nd.recv(std::time::Duration::from_secs(10)).expect("reply");
    ws.send_json(&req);
    let web = ws
        .recv_json(std::time::Duration::from_secs(10))
        .expect("reply");
    for reply in [&http, &ndjson, &web] {
        assert_eq!(
            reply["error"]["data"]["kind"], "resource_exhausted",
            "{reply}"
        );
        assert!(message(&reply["error"]).contains("65536"), "{reply}");
    }
}

/// `containers.get` is served around jsonrpsee on HTTP and NDJSON too (its stored text goes
/// into the reply undecoded): every transport answers alike, a container and its errors.
#[test]
fn every_transport_answers_gets_and_their_errors_alike() {
    let d = TestDaemon::start();
    let mut c = container("g1");
    c["labels"] = json!({"q\"uote": "é\t"});
    c["spec"] = json!({"ociVersion": "1.0.2", "annotations": {"n": "\u{1}é"}});
    create_container(&d, c);
    let mut ws = d.websocket();
    let mut nd = d.ndjson();
    let cases = [
        json!({"id": "g1"}),
        json!({"id": "g1", "namespace": "default"}),
        json!({"id": "nope"}),
        json!({"id": "../x"}),
        json!({"id": "g1", "namespace": "../x"}),
        json!({"id": "g1", "bogus": 1}),
        json!({}),
        json!(["g1"]),
    ];
    let kinds = [
        None,
        None,
        Some("not_found"),
        Some("invalid_argument"),
        Some("invalid_argument"),
        Some("invalid_argument"),
        Some("invalid_argument"),
        Some("invalid_argument"),
    ];
    assert_eq!(cases.len(), kinds.len());
    for (i, (params, kind)) in cases.iter().zip(kinds).enumerate() {
        let req = json!({"jsonrpc": "2.0", "id": i, "method": "containers.get", "params": params});
        let (status, http) = d.curl(&req.to_string());
        assert_eq!(status, 200, "{http}");
        nd.send(&req);
        let ndjson = nd
            .recv(std::time::Duration::from_secs(10))
            .expect("ndjson reply");
        ws.send_json(&req);
        let web = ws
            .recv_json(std::time::Duration::from_secs(10))
            .expect("websocket reply");
        assert_eq!(http, ndjson, "{params}: HTTP and NDJSON");
        assert_eq!(http, web, "{params}: HTTP and WebSocket");
        assert_eq!(
            http["error"]["data"]["kind"].as_str(),
            kind,
            "{params}: {http}"
        );
    }
    let (_, http) = d.curl(
        &json!({"jsonrpc": "2.0", "id": 1, "method": "containers.get", "params": {"id": "g1"}})
            .to_string(),
    );
    let got = &http["result"]["container"];
    assert_eq!(got["labels"]["q\"uote"], "é\t", "{http}");
    assert_eq!(got["spec"]["annotations"]["n"], "\u{1}é", "{http}");
}

/// Creates `n` containers named `{prefix}{i:04}` with a spec padded to about `pad` bytes.
fn create_padded(d: &TestDaemon, prefix: &str, n: usize, pad: usize) {
    let mut nd = d.ndjson();
    for i in 0..n {
        let mut c = container(&format!("{prefix}{i:04}"));
        c["spec"] = json!({"ociVersion": "1.0.2", "annotations": {"pad": "x".repeat(pad)}});
        let req = json!({"jsonrpc": "2.0", "id": i, "method": "containers.create",
                         "params": {"container": c}});
        nd.send(&req);
        let reply = nd
            .recv(std::time::Duration::from_secs(10))
            .expect("create reply");
        assert!(reply.get("result").is_some(), "{reply}");
    }
}

/// HTTP POST of `body`, raw, to read the head curl would hide: (head, body as sent).
fn http_raw(d: &TestDaemon, body: &str) -> (String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(d.socket()).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .expect("timeout");
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut all = Vec::new();
    s.read_to_end(&mut all).expect("read to the end");
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    (
        String::from_utf8_lossy(&all[..end]).to_lowercase(),
        all[end + 4..].to_vec(),
    )
}

/// A list many times the chunks it is streamed in (64 KiB) arrives whole and alike on
/// every transport: HTTP as a chunked body, NDJSON as one line, WebSocket as one message.
#[test]
fn a_list_streamed_in_many_chunks_arrives_whole_on_every_transport() {
    let d = TestDaemon::start();
    create_padded(&d, "s", 400, 4000);
    let req = json!({"jsonrpc": "2.0", "id": 1, "method": "containers.list", "params": {}});
    let (status, http) = d.curl(&req.to_string());
    assert_eq!(status, 200, "{http}");
    let mut nd = d.ndjson();
    nd.send(&req);
    let ndjson = nd
        .recv(std::time::Duration::from_secs(20))
        .expect("ndjson reply");
    let mut ws = d.websocket();
    ws.send_json(&req);
    let web = ws
        .recv_json(std::time::Duration::from_secs(20))
        .expect("websocket reply");
    assert_eq!(http, ndjson, "HTTP and NDJSON");
    assert_eq!(http, web, "HTTP and WebSocket");
    let list = http["result"]["containers"].as_array().expect("containers");
    let ids: Vec<&str> = list.iter().filter_map(|c| c["id"].as_str()).collect();
    let want: Vec<String> = (0..400).map(|i| format!("s{i:04}")).collect();
    assert_eq!(ids, want, "every container once, in id order");
    assert!(
        list.iter()
            .all(|c| c["spec"]["annotations"]["pad"].as_str().map(str::len) == Some(4000)),
        "every spec whole"
    );
    assert!(http["result"].to_string().len() > 1 << 20, "over 1 MiB");
    // The HTTP reply is written as it is read: chunked, and its chunks join to the reply.
    let (head, body) = http_raw(&d, &req.to_string());
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    let mut joined = Vec::new();
    let mut rest = &body[..];
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("size line");
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).expect("hex"), 16)
            .expect("chunk size");
        rest = &rest[eol + 2..];
        if size == 0 {
            break;
        }
        joined.extend_from_slice(&rest[..size]);
        assert_eq!(&rest[size..size + 2], b"\r\n", "chunk ends");
        rest = &rest[size + 2..];
    }
    let joined: serde_json::Value = serde_json::from_slice(&joined).expect("JSON");
    assert_eq!(joined, http);
}

/// A client that asks for a big list and stops reading holds none of berthd's store readers
/// for longer than `request_timeout_secs`: with more such clients than readers, another
/// client's list is still answered, and each stalled connection is closed.
#[test]
fn clients_that_stop_reading_a_list_do_not_hold_the_readers() {
    use std::io::{BufRead, Write};
    let d = TestDaemon::start_with("request_timeout_secs = 1\n");
    // About 16 MiB: far more than a socket buffer and the chunks written ahead.
    create_padded(&d, "p", 2000, 8000);
    let req = json!({"jsonrpc": "2.0", "id": 1, "method": "containers.list", "params": {}});
    let line = format!("{req}\n");
    let stalled: Vec<std::os::unix::net::UnixStream> = (0..6)
        .map(|_| {
            let mut s = std::os::unix::net::UnixStream::connect(d.socket()).expect("connect");
            s.write_all(line.as_bytes()).expect("send");
            s
        })
        .collect();
    // Every reader is taken by a stalled list (its first bytes arrived) before the next
    // list is asked for, so that one is answered only once a stall was cut.
    let started = |s: &std::os::unix::net::UnixStream| {
        let mut byte = 0u8;
        // SAFETY: recv(2) peeks at most one byte into `byte`, a valid writable u8, on an
        // open socket; MSG_DONTWAIT never blocks.
        let n = unsafe {
            libc::recv(
                std::os::fd::AsRawFd::as_raw_fd(s),
                (&mut byte as *mut u8).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        n == 1
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while stalled.iter().filter(|s| started(s)).count() < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "four stalled lists hold the readers within 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut nd = d.ndjson();
    nd.send(
        &json!({"jsonrpc": "2.0", "id": 2, "method": "containers.list",
                    "params": {"limit": 3}}),
    );
    let reply = nd
        .recv(std::time::Duration::from_secs(30))
        .expect("a list answered while others stall");
    assert_eq!(
        reply["result"]["containers"].as_array().map(Vec::len),
        Some(3)
    );
    // Each stalled connection was cut (closed without its line's end), unless its reader
    // had not yet timed out when this test began to read it: then its line comes whole.
    let mut cut = 0;
    for s in stalled {
        s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .expect("timeout");
        let mut got = Vec::new();
        std::io::BufReader::new(s)
            .read_until(b'\n', &mut got)
            .expect("berthd closes it or ends the line");
        match got.last() {
            Some(b'\n') => {
                let v: serde_json::Value = serde_json::from_slice(&got).expect("a whole reply");
                assert_eq!(
                    v["result"]["containers"].as_array().map(Vec::len),
                    Some(2000)
                );
            }
            _ => cut += 1,
        }
    }
    assert!(cut > 0, "no stalled list was cut");
}
