//! The suite's own tools: a recording raw-socket canary upstream, a raw client,
//! and a small HTTP/1.1 message reader for both (the proxy's answers and the
//! bytes the canary received).
//!
//! The canary is written on bare sockets, not hyper, so that what it logs is
//! exactly what came over the wire, and so that it can answer with framing no
//! HTTP library would produce (checklist T12).

#![allow(dead_code, unreachable_pub)]
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ingress_proxy::{Proxy, ProxyConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support;

/// How the canary answers its next request (one-shot; then it is well behaved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehave {
    /// `Content-Length` and `Transfer-Encoding: chunked` together.
    ClAndTe,
    /// Two `Content-Length` lines with different values.
    TwoCl,
    /// A chunk size that is not hex.
    BadChunk,
    /// A bare CR inside a header value, hiding a `Set-Cookie`.
    CrInHeader,
    /// A body longer than its `Content-Length`: the rest is a whole second
    /// response, which must never be read as the answer to another request.
    LongerThanCl,
}

/// A raw-socket upstream that logs every byte it receives, per connection, and
/// answers each request `200` with a body naming itself and the request.
#[derive(Debug, Clone)]
pub struct Canary {
    pub addr: SocketAddr,
    pub name: &'static str,
    /// Bytes received, one entry per accepted connection.
    log: Arc<Mutex<Vec<Vec<u8>>>>,
    next: Arc<Mutex<Option<Misbehave>>>,
}

impl Canary {
    /// Start one on loopback.
    pub async fn start(name: &'static str) -> Canary {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind canary");
        let addr = listener.local_addr().expect("canary addr");
        let canary = Canary {
            addr,
            name,
            log: Arc::default(),
            next: Arc::default(),
        };
        let c = canary.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let index = {
                    let mut log = c.log.lock().expect("log");
                    log.push(Vec::new());
                    log.len() - 1
                };
                tokio::spawn(c.clone().serve(tcp, index));
            }
        });
        canary
    }

    /// Answer the next request with `m`.
    pub fn misbehave(&self, m: Misbehave) {
        *self.next.lock().expect("mode") = Some(m);
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.log.lock().expect("log").len()
    }

    /// Every byte received, connections one after the other.
    pub fn bytes(&self) -> Vec<u8> {
        self.log.lock().expect("log").concat()
    }

    /// The bytes received as text (lossy), for assertions and messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    /// Every complete request received, in order, per connection one after the
    /// other. An incomplete one (a body cut short) is not a request.
    pub fn requests(&self) -> Vec<Message> {
        let log = self.log.lock().expect("log").clone();
        let mut out = Vec::new();
        for conn in log {
            let mut rest = &conn[..];
            while let Some((m, used)) = Message::parse(rest, false) {
                out.push(m);
                rest = &rest[used..];
            }
        }
        out
    }

    /// Whether any received line starts with `needle` (a request line hidden in
    /// a body would).
    pub fn saw_line(&self, needle: &str) -> bool {
        self.text()
            .split(['\n', '\r'])
            .any(|l| l.starts_with(needle))
    }

    async fn serve(self, mut tcp: TcpStream, index: usize) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            // Answer every complete request in the buffer, in order.
            while let Some((req, used)) = Message::parse(&buf, false) {
                buf.drain(..used);
                let mode = self.next.lock().expect("mode").take();
                if tcp.write_all(&self.answer(&req, mode)).await.is_err() {
                    return;
                }
            }
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    self.log.lock().expect("log")[index].extend_from_slice(&chunk[..n]);
                    buf.extend_from_slice(&chunk[..n]);
                }
            }
        }
    }

    fn answer(&self, req: &Message, mode: Option<Misbehave>) -> Vec<u8> {
        let body = format!(
            "{} {} {} {}",
            self.name,
            req.method(),
            req.target(),
            req.body.len()
        );
        let head = "HTTP/1.1 200 OK\r\n";
        let text = match mode {
            None => format!(
                "{head}Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
            Some(Misbehave::ClAndTe) => format!(
                "{head}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            ),
            Some(Misbehave::TwoCl) => {
                format!("{head}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")
            }
            Some(Misbehave::BadChunk) => {
                format!("{head}Transfer-Encoding: chunked\r\n\r\nZ\r\nhello\r\n0\r\n\r\n")
            }
            Some(Misbehave::CrInHeader) => {
                format!("{head}X-Note: a\rSet-Cookie: stolen=1\r\nContent-Length: 5\r\n\r\nhello")
            }
            Some(Misbehave::LongerThanCl) => format!(
                "{head}Content-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"
            ),
        };
        text.into_bytes()
    }
}

/// One HTTP/1.1 message read from raw bytes: a request (as the canary received
/// it) or a response (as the raw client received it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The start line.
    pub start: String,
    /// Header lines as (name, value), in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Message {
    /// Parse one message at the start of `b` (CRLF line ends; `Content-Length`
    /// or chunked; a response without either, when `response`, runs to the end).
    /// `None` when incomplete. Returns the bytes used.
    pub fn parse(b: &[u8], response: bool) -> Option<(Message, usize)> {
        let end = find(b, b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&b[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let start = lines.next()?.to_owned();
        let headers: Vec<(String, String)> = lines
            .map(|l| match l.split_once(':') {
                Some((n, v)) => (n.to_owned(), v.trim().to_owned()),
                None => (l.to_owned(), String::new()),
            })
            .collect();
        let mut at = end + 4;
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.as_str())
        };
        let status = start.split(' ').nth(1).unwrap_or("");
        let no_body = response && (status.starts_with('1') || status == "204" || status == "304");
        let body = if no_body {
            Vec::new()
        } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            let mut body = Vec::new();
            loop {
                let line_end = at + find(&b[at..], b"\r\n")?;
                let size_text = String::from_utf8_lossy(&b[at..line_end]).into_owned();
                let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
                at = line_end + 2;
                if size == 0 {
                    // Trailers, up to an empty line.
                    loop {
                        let line = find(&b[at..], b"\r\n")?;
                        at += line + 2;
                        if line == 0 {
                            break;
                        }
                    }
                    break;
                }
                body.extend_from_slice(b.get(at..at + size)?);
                at += size + 2;
                if at > b.len() {
                    return None;
                }
            }
            body
        } else if let Some(n) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
            let body = b.get(at..at + n)?.to_vec();
            at += n;
            body
        } else if response {
            let body = b[at..].to_vec();
            at = b.len();
            body
        } else {
            Vec::new()
        };
        Some((
            Message {
                start,
                headers,
                body,
            },
            at,
        ))
    }

    /// The method of a request.
    pub fn method(&self) -> &str {
        self.start.split(' ').next().unwrap_or("")
    }

    /// The target of a request.
    pub fn target(&self) -> &str {
        self.start.split(' ').nth(1).unwrap_or("")
    }

    /// The status of a response (0 when the start line is not one).
    pub fn status(&self) -> u16 {
        self.start
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// Every value of header `name` (case-insensitive).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.all(name).first().copied()
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// What the raw client got back.
#[derive(Debug)]
pub struct Answer {
    /// Every byte the proxy sent.
    pub bytes: Vec<u8>,
    /// The proxy closed the connection within 1 s of its last byte.
    pub closed: bool,
}

impl Answer {
    /// The responses, in order.
    pub fn responses(&self) -> Vec<Message> {
        let mut out = Vec::new();
        let mut rest = &self.bytes[..];
        while !rest.is_empty() {
            let Some((m, used)) = Message::parse(rest, true) else {
                break;
            };
            out.push(m);
            rest = &rest[used..];
        }
        out
    }

    /// The status of the first response (0 when there is none).
    pub fn status(&self) -> u16 {
        self.responses().first().map_or(0, Message::status)
    }

    /// The bytes as text (lossy), for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// Assert one answer with `status`, then the connection closed.
    #[track_caller]
    pub fn assert_rejected(&self, status: u16, case: &str) {
        let responses = self.responses();
        assert_eq!(self.status(), status, "{case}: {}", self.text());
        assert_eq!(responses.len(), 1, "{case}: one answer: {}", self.text());
        assert!(self.closed, "{case}: connection closed: {}", self.text());
    }
}

/// How long the raw client waits for the first byte of an answer.
const FIRST_BYTE: Duration = Duration::from_secs(5);
/// How long after the last byte the proxy has to close the connection.
const CLOSE_WITHIN: Duration = Duration::from_secs(1);

/// Send `bytes` on a new connection (one byte per write when `trickle`), then
/// read until the proxy closes the connection, or stays quiet for 1 s after its
/// last byte (5 s before the first).
pub async fn send(addr: SocketAddr, bytes: &[u8], trickle: bool) -> Answer {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let _ = tcp.set_nodelay(true);
    let (mut rd, mut wr) = tcp.split();
    let write = async {
        if trickle {
            for b in bytes {
                if wr.write_all(std::slice::from_ref(b)).await.is_err() {
                    break;
                }
            }
        } else {
            let _ = wr.write_all(bytes).await;
        }
    };
    let read = async {
        let mut out = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        let closed = loop {
            let wait = if out.is_empty() {
                FIRST_BYTE
            } else {
                CLOSE_WITHIN
            };
            match tokio::time::timeout(wait, rd.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break true,
                Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
                Err(_) => break false,
            }
        };
        Answer { bytes: out, closed }
    };
    let ((), answer) = tokio::join!(write, read);
    answer
}

/// Manifests for `hosts` (host, path, canary), one Service per canary, with
/// `annotations` on every rule's Ingress; and a proxy serving them.
pub async fn gateway(
    rules: &[(&str, &str, &Canary)],
    annotations: &[(&str, &str)],
    tweak: impl FnOnce(&mut ProxyConfig),
) -> (tempfile::TempDir, Proxy) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut parts = vec![support::CLASS.to_owned()];
    let mut services: Vec<&Canary> = Vec::new();
    for (_, _, c) in rules {
        if !services.iter().any(|s| s.name == c.name) {
            services.push(c);
        }
    }
    for s in &services {
        parts.push(support::service(s.name, &[s.addr]));
    }
    let spec: Vec<(&str, &str, &str)> = rules.iter().map(|(h, p, c)| (*h, *p, c.name)).collect();
    parts.push(support::ingress_with("app", annotations, &spec, &[]));
    support::write(dir.path(), "app.yaml", &support::docs(&parts));
    let p = support::proxy(dir.path(), tweak).await;
    (dir, p)
}

/// Write a second Ingress into a gateway's folder and reload.
pub async fn add_ingress(dir: &Path, p: &Proxy, name: &str, yaml: String) {
    support::write(dir, &format!("{name}.yaml"), &yaml);
    p.reload().await.expect("reload");
}
