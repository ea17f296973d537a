//! A tiny registry for what docker-registry cannot be made to do in a test: bearer-token
//! auth (a `WWW-Authenticate: Bearer realm=...` challenge and a token endpoint that wants
//! basic credentials) and a blob body cut off mid-transfer. HTTP/1.1 on 127.0.0.1, one
//! thread per connection, `Connection: close`. Serves one image, `fake/img:1`. `Drop`
//! stops it.
//!
//! Included with `#[path = "../src/fake_registry.rs"] mod fake_registry;` next to images.rs.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::images::{Blob, ImageParts};

pub const TOKEN: &str = "tok-3f9a-secret";

#[derive(Clone, Default)]
pub struct Behaviour {
    /// `user:password` the token endpoint wants (basic); `None`: anonymous tokens.
    pub token_creds: Option<String>,
    /// Serve only half of the layers' bodies, then close the connection.
    pub cut_layers: bool,
}

pub struct FakeRegistry {
    pub port: u16,
    pub blobs: Vec<Blob>,
    /// Query strings the token endpoint was asked with.
    pub token_queries: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    behaviour: Behaviour,
    port: u16,
    manifest: Blob,
    blobs: HashMap<String, Blob>,
    token_queries: Arc<Mutex<Vec<String>>>,
}

fn respond(s: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !headers.iter().any(|(k, _)| *k == "Content-Length") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body);
}

fn base64_decode(s: &str) -> Option<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c)? as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    String::from_utf8(out).ok()
}

fn serve(mut s: TcpStream, shared: &Shared) {
    let mut reader = BufReader::new(s.try_clone().expect("clone"));
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut auth = String::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("authorization") {
                auth = v.trim().to_owned();
            }
        }
    }
    if let Some(query) = path.strip_prefix("/token?") {
        shared
            .token_queries
            .lock()
            .expect("lock")
            .push(query.to_owned());
        let ok = match &shared.behaviour.token_creds {
            None => true,
            Some(want) => auth
                .strip_prefix("Basic ")
                .and_then(base64_decode)
                .is_some_and(|got| got == *want),
        };
        if ok {
            respond(
                &mut s,
                "200 OK",
                &[],
                format!("{{\"token\":\"{TOKEN}\"}}").as_bytes(),
            );
        } else {
            respond(&mut s, "401 Unauthorized", &[], b"{}");
        }
        return;
    }
    if auth != format!("Bearer {TOKEN}") {
        let challenge = format!(
            "Bearer realm=\"http://127.0.0.1:{}/token\",service=\"fake\",scope=\"repository:fake/img:pull\"",
            shared.port
        );
        respond(
            &mut s,
            "401 Unauthorized",
            &[("WWW-Authenticate", challenge)],
            b"{}",
        );
        return;
    }
    let manifest = &shared.manifest;
    if path == "/v2/fake/img/manifests/1"
        || path == format!("/v2/fake/img/manifests/{}", manifest.digest())
    {
        respond(
            &mut s,
            "200 OK",
            &[("Content-Type", manifest.media_type.clone())],
            &manifest.bytes,
        );
        return;
    }
    if let Some(d) = path.strip_prefix("/v2/fake/img/blobs/") {
        if let Some(b) = shared.blobs.get(d) {
            let layer = b.media_type.contains("layer");
            if layer && shared.behaviour.cut_layers {
                let len = ("Content-Length", b.bytes.len().to_string());
                respond(&mut s, "200 OK", &[len], &b.bytes[..b.bytes.len() / 2]);
                let _ = s.shutdown(std::net::Shutdown::Both);
            } else {
                respond(&mut s, "200 OK", &[], &b.bytes);
            }
            return;
        }
    }
    respond(
        &mut s,
        "404 Not Found",
        &[],
        br#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#,
    );
}

impl FakeRegistry {
    pub fn start(parts: &ImageParts, behaviour: Behaviour) -> FakeRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (manifest, config, layers) = parts.blobs();
        let mut all = vec![config];
        all.extend(layers);
        let token_queries = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::new(Shared {
            behaviour,
            port,
            manifest: manifest.clone(),
            blobs: all.iter().map(|b| (b.digest(), b.clone())).collect(),
            token_queries: token_queries.clone(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let shared = shared.clone();
                std::thread::spawn(move || serve(conn, &shared));
            }
        });
        all.insert(0, manifest);
        FakeRegistry {
            port,
            blobs: all,
            token_queries,
            stop,
            thread: Some(thread),
        }
    }

    pub fn reference(&self) -> String {
        format!("127.0.0.1:{}/fake/img:1", self.port)
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port)).map(|mut s| {
            let _ = s.write_all(b"");
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
        });
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
