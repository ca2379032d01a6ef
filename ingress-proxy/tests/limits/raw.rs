//! Helpers for the limits tests: a canary upstream that logs every request it
//! receives (and can serve a large streamed body), a proxy in front of it, and a
//! hand-written HTTP/2 client that writes raw frames (so it can send what a real
//! client library refuses to: floods, malformed headers).

#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use ingress_proxy::{Proxy, ProxyConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support;

/// One request as the canary upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// The body's length, or why it did not end.
    pub body: Result<usize, String>,
}

/// An upstream that logs what reaches it. `GET /big?mb=N` streams N MiB, counting
/// what it produced and whether the body was dropped before its end.
#[derive(Debug, Clone)]
pub struct Canary {
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<Seen>>>,
    /// Bytes of `/big` bodies handed to hyper so far.
    pub produced: Arc<AtomicU64>,
    /// `/big` bodies dropped before their end (the proxy let go of them).
    pub dropped: Arc<AtomicUsize>,
}

impl Canary {
    pub fn seen(&self) -> Vec<Seen> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

struct Big {
    left: u64,
    produced: Arc<AtomicU64>,
    dropped: Arc<AtomicUsize>,
}

const CHUNK: usize = 64 * 1024;
static ZEROS: [u8; CHUNK] = [b'z'; CHUNK];

impl Body for Big {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(CHUNK as u64);
        self.left -= n;
        self.produced.fetch_add(n, Ordering::Relaxed);
        let n = usize::try_from(n).unwrap_or(CHUNK);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&ZEROS[..n])))))
    }
}

impl Drop for Big {
    fn drop(&mut self) {
        if self.left > 0 {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

type CanaryBody = http_body_util::Either<Big, http_body_util::Full<Bytes>>;

pub async fn canary() -> Canary {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let c = Canary {
        addr: listener.local_addr().expect("addr"),
        log: Arc::default(),
        produced: Arc::default(),
        dropped: Arc::default(),
    };
    let state = c.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(handle(&state, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    c
}

async fn handle(state: &Canary, req: Request<Incoming>) -> Response<CanaryBody> {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let mb = req
        .uri()
        .query()
        .and_then(|q| q.strip_prefix("mb="))
        .and_then(|n| n.parse::<u64>().ok());
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = match tokio::time::timeout(Duration::from_secs(10), req.into_body().collect()).await
    {
        Ok(Ok(b)) => Ok(b.to_bytes().len()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    };
    if let Ok(mut log) = state.log.lock() {
        log.push(Seen {
            method,
            path: path.clone(),
            headers,
            body,
        });
    }
    if path == "/big" {
        let big = Big {
            left: mb.unwrap_or(1) * 1024 * 1024,
            produced: state.produced.clone(),
            dropped: state.dropped.clone(),
        };
        return Response::new(http_body_util::Either::Left(big));
    }
    Response::new(http_body_util::Either::Right(http_body_util::Full::new(
        Bytes::from_static(b"ok"),
    )))
}

/// A proxy routing `app.test` to `upstream`, with `tweak` applied to its config
/// (the folder is not watched).
pub async fn proxy_to(
    upstream: SocketAddr,
    tweak: impl FnOnce(&mut ProxyConfig),
) -> (Proxy, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    support::write(
        dir.path(),
        "app.yaml",
        &support::docs(&[
            support::CLASS.to_owned(),
            support::ingress("app", &[("app.test", "/", "canary")], &[]),
            support::service("canary", &[upstream]),
        ]),
    );
    let proxy = support::proxy(dir.path(), |c| {
        c.watch = false;
        tweak(c);
    })
    .await;
    (proxy, dir)
}

/// `GET / HTTP/1.1` for app.test on a new connection; the status, or `None` when
/// the connection failed.
pub async fn h1_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut tcp = TcpStream::connect(addr).await.ok()?;
    h1_status_on(&mut tcp, path).await
}

/// One keep-alive `GET` on `tcp`; the status, or `None`.
pub async fn h1_status_on(tcp: &mut TcpStream, path: &str) -> Option<u16> {
    let req = format!("GET {path} HTTP/1.1\r\nhost: app.test\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    let read = async {
        let mut chunk = [0u8; 4096];
        loop {
            let n = tcp.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let head = &text[..end];
                let len = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    return head.get(9..12)?.parse().ok();
                }
            }
        }
    };
    tokio::time::timeout(support::DEADLINE, read).await.ok()?
}

/// Whether the peer closes `tcp` (EOF or reset) within `within`, discarding what
/// it sends before.
pub async fn closed_within(tcp: &mut TcpStream, within: Duration) -> bool {
    let mut chunk = [0u8; 4096];
    let wait = async {
        loop {
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, wait).await.is_ok()
}

/// VmRSS of this process (the proxy runs in it), in KiB.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

// ---- HTTP/2 by hand -------------------------------------------------------

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;
pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const ACK: u8 = 0x1;

pub const PROTOCOL_ERROR: u32 = 0x1;
pub const REFUSED_STREAM: u32 = 0x7;
pub const CANCEL: u32 = 0x8;
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

/// One frame.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("frame fits");
    let mut f = Vec::with_capacity(9 + payload.len());
    f.extend_from_slice(&len.to_be_bytes()[1..]);
    f.push(kind);
    f.push(flags);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn hpack_int(out: &mut Vec<u8>, first: u8, prefix_bits: u32, mut n: usize) {
    let max = (1usize << prefix_bits) - 1;
    if n < max {
        out.push(first | u8::try_from(n).unwrap_or(0));
        return;
    }
    out.push(first | u8::try_from(max).unwrap_or(0));
    n -= max;
    while n >= 128 {
        out.push(u8::try_from(n % 128).unwrap_or(0) | 0x80);
        n /= 128;
    }
    out.push(u8::try_from(n).unwrap_or(0));
}

/// A header block of literal fields without indexing, names and values sent as
/// raw bytes (no Huffman, no validation): anything can be written.
pub fn hpack(fields: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0x00);
        hpack_int(&mut out, 0, 7, name.len());
        out.extend_from_slice(name);
        hpack_int(&mut out, 0, 7, value.len());
        out.extend_from_slice(value);
    }
    out
}

/// The request pseudo-headers for `path` on app.test, then `extra`.
pub fn request<'a>(method: &'a str, path: &'a str, extra: &[(&'a [u8], &'a [u8])]) -> Vec<u8> {
    let mut fields: Vec<(&[u8], &[u8])> = vec![
        (b":method", method.as_bytes()),
        (b":scheme", b"http"),
        (b":authority", b"app.test"),
        (b":path", path.as_bytes()),
    ];
    fields.extend_from_slice(extra);
    hpack(&fields)
}

/// What became of a stream (or of the connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Response headers: the status when it is in HPACK's static table (200, 204,
    /// 206, 304, 400, 404, 500), `None` for any other (never 200).
    Status(Option<u16>),
    /// RST_STREAM with this error code.
    Reset(u32),
    /// GOAWAY with this error code.
    GoAway(u32),
    /// The connection closed (or nothing came before the deadline: `TimedOut`).
    Closed,
    TimedOut,
}

/// A raw HTTP/2 (h2c prior knowledge) connection.
pub struct RawH2 {
    pub tcp: TcpStream,
    buf: Vec<u8>,
    /// The server's SETTINGS, as (id, value).
    pub settings: Vec<(u16, u32)>,
}

impl RawH2 {
    /// Connect, send the preface and `settings`, and read the server's SETTINGS
    /// (acknowledged, so they are in force before anything else is sent).
    pub async fn connect(addr: SocketAddr, settings: &[(u16, u32)]) -> RawH2 {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        let mut payload = Vec::new();
        for (id, v) in settings {
            payload.extend_from_slice(&id.to_be_bytes());
            payload.extend_from_slice(&v.to_be_bytes());
        }
        let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        hello.extend(frame(SETTINGS, 0, 0, &payload));
        tcp.write_all(&hello).await.expect("preface");
        let mut conn = RawH2 {
            tcp,
            buf: Vec::new(),
            settings: Vec::new(),
        };
        loop {
            match conn.next_frame(support::DEADLINE).await {
                Some((SETTINGS, flags, _, payload)) if flags & ACK == 0 => {
                    conn.settings = payload
                        .chunks_exact(6)
                        .map(|c| {
                            (
                                u16::from_be_bytes([c[0], c[1]]),
                                u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
                            )
                        })
                        .collect();
                    conn.send(&frame(SETTINGS, ACK, 0, &[])).await;
                    return conn;
                }
                Some(_) => {}
                None => panic!("no SETTINGS from the proxy"),
            }
        }
    }

    /// Write bytes; errors (the proxy already closed) are ignored: the outcome
    /// tells.
    pub async fn send(&mut self, bytes: &[u8]) {
        let _ = self.tcp.write_all(bytes).await;
    }

    /// The next frame as (type, flags, stream, payload); `None` on EOF, error or
    /// when nothing complete arrives within `within`.
    pub async fn next_frame(&mut self, within: Duration) -> Option<(u8, u8, u32, Vec<u8>)> {
        let end = tokio::time::Instant::now() + within;
        loop {
            if self.buf.len() >= 9 {
                let len = usize::from(self.buf[0]) << 16
                    | usize::from(self.buf[1]) << 8
                    | usize::from(self.buf[2]);
                if self.buf.len() >= 9 + len {
                    let f: Vec<u8> = self.buf.drain(..9 + len).collect();
                    let stream = u32::from_be_bytes([f[5], f[6], f[7], f[8]]) & 0x7fff_ffff;
                    return Some((f[3], f[4], stream, f[9..].to_vec()));
                }
            }
            let mut chunk = [0u8; 16384];
            match tokio::time::timeout_at(end, self.tcp.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => self.buf.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
    }

    /// Read until something decides `stream`: its response headers, its reset,
    /// a GOAWAY, or the connection's end. Pings and settings are acknowledged.
    pub async fn outcome(&mut self, stream: u32) -> Outcome {
        let end = tokio::time::Instant::now() + support::DEADLINE;
        loop {
            let left = end.saturating_duration_since(tokio::time::Instant::now());
            let Some((kind, flags, id, payload)) = self.next_frame(left).await else {
                return if tokio::time::Instant::now() >= end {
                    Outcome::TimedOut
                } else {
                    Outcome::Closed
                };
            };
            match kind {
                HEADERS if id == stream => {
                    let status = match payload.first() {
                        Some(0x88) => Some(200),
                        Some(0x89) => Some(204),
                        Some(0x8a) => Some(206),
                        Some(0x8b) => Some(304),
                        Some(0x8c) => Some(400),
                        Some(0x8d) => Some(404),
                        Some(0x8e) => Some(500),
                        _ => None,
                    };
                    return Outcome::Status(status);
                }
                RST_STREAM if id == stream => {
                    return Outcome::Reset(code(&payload, 0));
                }
                GOAWAY => return Outcome::GoAway(code(&payload, 4)),
                SETTINGS if flags & ACK == 0 => self.send(&frame(SETTINGS, ACK, 0, &[])).await,
                PING if flags & ACK == 0 => self.send(&frame(PING, ACK, 0, &payload)).await,
                _ => {}
            }
        }
    }

    /// Read until GOAWAY (its code) or the end of the connection (`None`).
    pub async fn goaway(&mut self, within: Duration) -> Option<u32> {
        let end = tokio::time::Instant::now() + within;
        loop {
            let left = end.saturating_duration_since(tokio::time::Instant::now());
            let (kind, _, _, payload) = self.next_frame(left).await?;
            if kind == GOAWAY {
                return Some(code(&payload, 4));
            }
        }
    }
}

fn code(payload: &[u8], at: usize) -> u32 {
    payload
        .get(at..at + 4)
        .map_or(0, |c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
}
