//! Just enough RFC 6455 to drive berthd's WebSocket transport through a plain `socat`
//! pipe: the upgrade request, masked client frames, and decoding of server frames.
//! The test writes every byte itself, so what is proven is the daemon's wire behaviour,
//! not a client library's.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::process::Pipe;

/// The sample key of RFC 6455 section 1.3 and the accept value the server must answer.
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// The HTTP/1.1 request that asks to upgrade the connection to a WebSocket.
pub fn upgrade_request() -> String {
    format!(
        "GET / HTTP/1.1\r\nHost: berth\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// A single final client frame: clients must mask every frame they send.
pub fn client_frame(opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut frame = vec![0x80 | opcode];
    let len = payload.len();
    if len < 126 {
        frame.push(0x80 | len as u8);
    } else if let Ok(len16) = u16::try_from(len) {
        frame.push(0x80 | 126);
        frame.extend_from_slice(&len16.to_be_bytes());
    } else {
        frame.push(0x80 | 127);
        frame.extend_from_slice(&(len as u64).to_be_bytes());
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

/// Decodes the frame at the front of `buf`, with how many bytes it took; `None` while
/// incomplete. Unmasks masked frames (servers should not mask, but decoding is symmetric).
pub fn parse_frame(buf: &[u8]) -> Option<(Frame, usize)> {
    let (&b0, &b1) = (buf.first()?, buf.get(1)?);
    let masked = b1 & 0x80 != 0;
    let mut at = 2;
    let len = match b1 & 0x7f {
        126 => {
            let n = u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?);
            at = 4;
            usize::from(n)
        }
        127 => {
            let n = u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?);
            at = 10;
            usize::try_from(n).ok()?
        }
        n => usize::from(n),
    };
    let mask = if masked {
        let m: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        Some(m)
    } else {
        None
    };
    let body = buf.get(at..at + len)?;
    let payload = match mask {
        Some(m) => body.iter().enumerate().map(|(i, b)| b ^ m[i % 4]).collect(),
        None => body.to_vec(),
    };
    let frame = Frame {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0f,
        payload,
    };
    Some((frame, at + len))
}

/// A WebSocket client made of a `socat` process and the framing above.
pub struct WebSocket {
    pipe: Pipe,
    contract: crate::contract::Tracker,
}

static MASKS: AtomicU32 = AtomicU32::new(0x3d21_fa37);

impl WebSocket {
    /// Connects to `socket`, performs the upgrade and checks the 101 answer and its
    /// `Sec-WebSocket-Accept`.
    pub fn connect(socket: &std::path::Path) -> WebSocket {
        let mut pipe = Pipe::spawn(
            Command::new("socat")
                .arg("-")
                .arg(format!("UNIX-CONNECT:{}", socket.display())),
        );
        pipe.write(upgrade_request().as_bytes());
        let head = pipe
            .read_until(b"\r\n\r\n", Duration::from_secs(10))
            .unwrap_or_else(|| {
                panic!(
                    "no complete upgrade response; got {:?}",
                    String::from_utf8_lossy(pipe.pending())
                )
            });
        let head = String::from_utf8_lossy(&head).into_owned();
        let status = head.lines().next().unwrap_or_default();
        assert!(
            status.starts_with("HTTP/1.1 101"),
            "upgrade refused: {head}"
        );
        let accept = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("sec-websocket-accept"))
            .map(|(_, value)| value.trim().to_owned());
        assert_eq!(accept.as_deref(), Some(SAMPLE_ACCEPT), "in {head}");
        WebSocket {
            pipe,
            contract: Default::default(),
        }
    }

    /// Sends `text` as one masked text frame.
    pub fn send_text(&mut self, text: &str) {
        let mask = MASKS
            .fetch_add(0x0101_0101, Ordering::Relaxed)
            .to_be_bytes();
        self.contract.sent(text);
        self.pipe
            .write(&client_frame(OP_TEXT, text.as_bytes(), mask));
    }

    /// Sends `msg` as JSON text.
    pub fn send_json(&mut self, msg: &Value) {
        self.send_text(&msg.to_string());
    }

    /// The next complete text or binary message parsed as JSON, answering pings on the way;
    /// `None` on timeout; panics on a close frame or non-JSON text.
    pub fn recv_json(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = std::time::Instant::now() + timeout;
        let mut message = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let frame = self.pipe.read_with(left, parse_frame)?;
            match frame.opcode {
                OP_PING => {
                    let mask = MASKS.fetch_add(1, Ordering::Relaxed).to_be_bytes();
                    self.pipe
                        .write(&client_frame(OP_PONG, &frame.payload, mask));
                }
                OP_PONG => {}
                OP_CLOSE => panic!("server closed the WebSocket: {:?}", frame.payload),
                OP_TEXT | OP_BINARY | OP_CONTINUATION => {
                    message.extend_from_slice(&frame.payload);
                    if frame.fin {
                        let msg = serde_json::from_slice(&message).unwrap_or_else(|e| {
                            panic!(
                                "non-JSON message {:?}: {e}",
                                String::from_utf8_lossy(&message)
                            )
                        });
                        self.contract.received(&msg);
                        return Some(msg);
                    }
                }
                other => panic!("unexpected WebSocket opcode {other:#x}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_hello_matches_rfc6455_example() {
        // RFC 6455 section 5.7: a single-frame masked text message containing "Hello".
        let frame = client_frame(OP_TEXT, b"Hello", [0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(
            frame,
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
        let (back, used) = parse_frame(&frame).expect("complete frame");
        assert_eq!(used, frame.len());
        assert_eq!(back.payload, b"Hello");
    }

    #[test]
    fn parses_unmasked_and_extended_length_frames_only_when_complete() {
        let hello = [0x81, 0x05, b'H', b'e', b'l', b'l', b'o', 0x89];
        let (frame, used) = parse_frame(&hello).expect("complete frame");
        assert_eq!((frame.fin, frame.opcode, used), (true, OP_TEXT, 7));
        assert_eq!(frame.payload, b"Hello");
        assert_eq!(parse_frame(&hello[..6]), None);

        let big = client_frame(OP_BINARY, &[7u8; 300], [1, 2, 3, 4]);
        assert_eq!(&big[1..4], &[0x80 | 126, 0x01, 0x2c]);
        let (frame, used) = parse_frame(&big).expect("complete frame");
        assert_eq!((frame.payload.len(), used), (300, big.len()));
        assert!(frame.payload.iter().all(|&b| b == 7));
        assert_eq!(parse_frame(&big[..big.len() - 1]), None);
    }
}
