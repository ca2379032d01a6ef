//! A small Redis client for the global rate limits: one pipelined connection,
//! RESP2, reconnecting with backoff.
//!
//! One task owns the connection. Callers send commands through a bounded channel
//! and wait for their reply with a deadline of their own; the task writes every
//! command it has queued in one write (pipelining) and hands replies back in order.
//! While the server cannot be reached, commands fail at once
//! ([`RedisError::Unavailable`]) instead of queueing, and the task reconnects with
//! a backoff from 50 ms doubling up to 5 s. A connection that has answered nothing
//! for [`STALL`] while commands wait is dropped and replaced.
//!
//! Only what the limits need: `AUTH`, `SELECT`, `SCRIPT LOAD`, `EVALSHA`, `EVAL`
//! (with a `NOSCRIPT` fallback), `PING`. Replies are bounded (bulk strings 1 MiB,
//! arrays 4096 items, nesting 8) so a confused server cannot make the proxy
//! allocate without bound.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// A connection that answered nothing for this long while commands waited is
/// replaced.
pub const STALL: Duration = Duration::from_secs(2);

const MAX_BULK: usize = 1 << 20;
const MAX_ARRAY: usize = 4096;
const MAX_DEPTH: usize = 8;
/// Commands waiting in the channel before callers get [`RedisError::Busy`].
const QUEUE: usize = 8192;

/// A reply, as RESP2 encodes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Simple(String),
    /// `-ERR ...`
    Error(String),
    /// `:42`
    Int(i64),
    /// `$3\r\nfoo` (`None`: the null bulk string).
    Bulk(Option<Vec<u8>>),
    /// `*2\r\n...` (`None`: the null array).
    Array(Option<Vec<Reply>>),
}

/// Why a command has no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// Not connected, or the connection broke before the reply came.
    #[error("redis unavailable: {0}")]
    Unavailable(String),
    /// Too many commands waiting.
    #[error("redis client queue is full")]
    Busy,
    /// The server sent something that is not RESP2 within the bounds.
    #[error("redis protocol error: {0}")]
    Protocol(String),
    /// The server answered with an error reply.
    #[error("redis error reply: {0}")]
    Server(String),
}

/// Where the server is and how to log in: `redis://[[user]:password@]host[:port][/db]`.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisAddr {
    /// `host:port` (port 6379 when none is written).
    pub host_port: String,
    /// ACL user name (`AUTH user password`).
    pub user: Option<String>,
    /// Password (`AUTH password`).
    pub password: Option<String>,
    /// Database number (`SELECT`).
    pub db: u32,
}

impl fmt::Debug for RedisAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisAddr")
            .field("host_port", &self.host_port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("db", &self.db)
            .finish()
    }
}

impl std::str::FromStr for RedisAddr {
    type Err = String;

    /// `redis://host:port/db`, with optional `user:password@`; a bare `host:port`
    /// is accepted too.
    fn from_str(s: &str) -> Result<Self, String> {
        let rest = s.strip_prefix("redis://").unwrap_or(s);
        if s.starts_with("rediss://") {
            return Err("rediss:// (TLS) is not supported; use redis://".into());
        }
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((a, r)) => (Some(a), r),
            None => (None, rest),
        };
        let (host_port, db) = match rest.split_once('/') {
            Some((h, "")) => (h, 0),
            Some((h, db)) => (
                h,
                db.parse::<u32>()
                    .map_err(|_| format!("database {db:?} is not a number"))?,
            ),
            None => (rest, 0),
        };
        if host_port.is_empty() {
            return Err("no host".into());
        }
        let host_port = if host_port.starts_with('[') {
            if host_port.contains("]:") {
                host_port.to_owned()
            } else {
                format!("{host_port}:6379")
            }
        } else if host_port.contains(':') {
            host_port.to_owned()
        } else {
            format!("{host_port}:6379")
        };
        let (user, password) = match auth {
            None => (None, None),
            Some(a) => match a.split_once(':') {
                Some(("", p)) => (None, Some(p.to_owned())),
                Some((u, p)) => (Some(u.to_owned()), Some(p.to_owned())),
                None => (None, Some(a.to_owned())),
            },
        };
        Ok(RedisAddr {
            host_port,
            user,
            password,
            db,
        })
    }
}

/// Appends `args` as a RESP array of bulk strings.
fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Parses one reply from the front of `buf`: `Ok(None)` when more bytes are
/// needed, else the reply and how many bytes it took.
pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, RedisError> {
    parse_at(buf, 0)
}

fn parse_at(buf: &[u8], depth: usize) -> Result<Option<(Reply, usize)>, RedisError> {
    if depth > MAX_DEPTH {
        return Err(RedisError::Protocol("replies nested too deep".into()));
    }
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() > 64 * 1024 {
            return Err(RedisError::Protocol("reply line too long".into()));
        }
        return Ok(None);
    };
    let Some((&kind, line)) = buf[..end].split_first() else {
        return Err(RedisError::Protocol("empty reply line".into()));
    };
    let text = || String::from_utf8_lossy(line).into_owned();
    let int = || -> Result<i64, RedisError> {
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| RedisError::Protocol(format!("bad integer {:?}", text())))
    };
    let used = end + 2;
    match kind {
        b'+' => Ok(Some((Reply::Simple(text()), used))),
        b'-' => Ok(Some((Reply::Error(text()), used))),
        b':' => Ok(Some((Reply::Int(int()?), used))),
        b'$' => {
            let n = int()?;
            if n < 0 {
                return Ok(Some((Reply::Bulk(None), used)));
            }
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if n > MAX_BULK {
                return Err(RedisError::Protocol(format!("bulk string of {n} bytes")));
            }
            if buf.len() < used + n + 2 {
                return Ok(None);
            }
            if &buf[used + n..used + n + 2] != b"\r\n" {
                return Err(RedisError::Protocol("bulk string not ended by CRLF".into()));
            }
            Ok(Some((
                Reply::Bulk(Some(buf[used..used + n].to_vec())),
                used + n + 2,
            )))
        }
        b'*' => {
            let n = int()?;
            if n < 0 {
                return Ok(Some((Reply::Array(None), used)));
            }
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if n > MAX_ARRAY {
                return Err(RedisError::Protocol(format!("array of {n} items")));
            }
            let mut items = Vec::with_capacity(n);
            let mut at = used;
            for _ in 0..n {
                match parse_at(&buf[at..], depth + 1)? {
                    Some((r, k)) => {
                        items.push(r);
                        at += k;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Reply::Array(Some(items)), at)))
        }
        other => Err(RedisError::Protocol(format!(
            "unknown reply type {:?}",
            char::from(other)
        ))),
    }
}

struct Command {
    bytes: Vec<u8>,
    reply: oneshot::Sender<Result<Reply, RedisError>>,
}

/// A handle to the connection task; cheap to clone. The task ends when every
/// handle is dropped.
#[derive(Debug, Clone)]
pub struct Redis {
    tx: mpsc::Sender<Command>,
    up: Arc<AtomicBool>,
}

impl Redis {
    /// Starts the connection task for `addr` (on the current Tokio runtime; outside
    /// one, every command fails). It connects in the background; until it has,
    /// commands fail with [`RedisError::Unavailable`].
    pub fn spawn(addr: RedisAddr, connect_timeout: Duration) -> Redis {
        let (tx, rx) = mpsc::channel(QUEUE);
        let up = Arc::new(AtomicBool::new(false));
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(run(addr, connect_timeout, rx, up.clone()));
            }
            // No runtime: the receiver is dropped and every command fails.
            Err(_) => tracing::error!("redis client created outside a Tokio runtime"),
        }
        Redis { tx, up }
    }

    /// Whether the task holds a working connection now.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Sends one command and waits for its reply (no deadline: wrap it in
    /// `tokio::time::timeout`). An error reply is `Ok(Reply::Error)`.
    pub async fn command(&self, args: &[&[u8]]) -> Result<Reply, RedisError> {
        let mut bytes = Vec::with_capacity(64);
        encode(&mut bytes, args);
        let (reply, rx) = oneshot::channel();
        self.tx
            .try_send(Command { bytes, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => RedisError::Busy,
                mpsc::error::TrySendError::Closed(_) => {
                    RedisError::Unavailable("client stopped".into())
                }
            })?;
        rx.await
            .map_err(|_| RedisError::Unavailable("connection lost".into()))?
    }
}

async fn run(
    addr: RedisAddr,
    connect_timeout: Duration,
    mut rx: mpsc::Receiver<Command>,
    up: Arc<AtomicBool>,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        match tokio::time::timeout(connect_timeout, handshake(&addr)).await {
            Ok(Ok(stream)) => {
                backoff = Duration::from_millis(50);
                up.store(true, Ordering::Relaxed);
                tracing::info!(redis = %addr.host_port, "redis connected");
                let why = serve(stream, &mut rx).await;
                up.store(false, Ordering::Relaxed);
                match why {
                    None => return, // every handle dropped
                    Some(e) => {
                        tracing::warn!(redis = %addr.host_port, error = %e, "redis connection lost")
                    }
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(redis = %addr.host_port, error = %e, "redis unavailable");
            }
            Err(_) => tracing::warn!(redis = %addr.host_port, "redis connect timed out"),
        }
        // Down: fail what arrives until the next attempt.
        let retry_at = tokio::time::Instant::now() + backoff;
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(c) => {
                        let _ = c.reply.send(Err(RedisError::Unavailable("not connected".into())));
                    }
                    None => return,
                },
                () = tokio::time::sleep_until(retry_at) => break,
            }
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Connects, logs in and selects the database.
async fn handshake(addr: &RedisAddr) -> Result<TcpStream, RedisError> {
    let mut stream = TcpStream::connect(&addr.host_port)
        .await
        .map_err(|e| RedisError::Unavailable(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let mut setup: Vec<Vec<Vec<u8>>> = Vec::new();
    match (&addr.user, &addr.password) {
        (Some(u), Some(p)) => {
            setup.push(vec![b"AUTH".to_vec(), u.clone().into(), p.clone().into()])
        }
        (None, Some(p)) => setup.push(vec![b"AUTH".to_vec(), p.clone().into()]),
        _ => {}
    }
    if addr.db != 0 {
        setup.push(vec![b"SELECT".to_vec(), addr.db.to_string().into()]);
    }
    setup.push(vec![b"PING".to_vec()]);
    let mut out = Vec::new();
    for c in &setup {
        let args: Vec<&[u8]> = c.iter().map(Vec::as_slice).collect();
        encode(&mut out, &args);
    }
    stream
        .write_all(&out)
        .await
        .map_err(|e| RedisError::Unavailable(e.to_string()))?;
    let mut buf = BytesMut::with_capacity(256);
    let mut answered = 0;
    while answered < setup.len() {
        if let Some((reply, used)) = parse(&buf)? {
            buf.advance(used);
            answered += 1;
            if let Reply::Error(e) = reply {
                return Err(RedisError::Server(e));
            }
            continue;
        }
        let n = stream
            .read_buf(&mut buf)
            .await
            .map_err(|e| RedisError::Unavailable(e.to_string()))?;
        if n == 0 {
            return Err(RedisError::Unavailable("closed during login".into()));
        }
    }
    Ok(stream)
}

/// Serves commands on `stream` until it fails (`Some(error)`) or every handle is
/// dropped (`None`). Pending commands fail with the error.
async fn serve(stream: TcpStream, rx: &mut mpsc::Receiver<Command>) -> Option<RedisError> {
    let (mut rd, mut wr) = stream.into_split();
    let mut pending: VecDeque<oneshot::Sender<Result<Reply, RedisError>>> = VecDeque::new();
    let mut buf = BytesMut::with_capacity(4096);
    let mut out = Vec::with_capacity(4096);
    let mut last_progress = tokio::time::Instant::now();
    let error = 'conn: loop {
        let stall_at = last_progress + STALL;
        tokio::select! {
            cmd = rx.recv() => {
                let c = cmd?;
                if pending.is_empty() {
                    last_progress = tokio::time::Instant::now();
                }
                out.extend_from_slice(&c.bytes);
                pending.push_back(c.reply);
                // Pipeline whatever else is queued now.
                while out.len() < 64 * 1024 {
                    match rx.try_recv() {
                        Ok(c) => {
                            out.extend_from_slice(&c.bytes);
                            pending.push_back(c.reply);
                        }
                        Err(_) => break,
                    }
                }
                if let Err(e) = wr.write_all(&out).await {
                    break RedisError::Unavailable(e.to_string());
                }
                out.clear();
            }
            read = rd.read_buf(&mut buf) => {
                match read {
                    Ok(0) => break RedisError::Unavailable("closed by the server".into()),
                    Ok(_) => {}
                    Err(e) => break RedisError::Unavailable(e.to_string()),
                }
                loop {
                    match parse(&buf) {
                        Ok(Some((reply, used))) => {
                            buf.advance(used);
                            last_progress = tokio::time::Instant::now();
                            match pending.pop_front() {
                                Some(tx) => {
                                    let _ = tx.send(Ok(reply));
                                }
                                None => {
                                    break 'conn RedisError::Protocol("a reply nobody asked for".into());
                                }
                            }
                        }
                        Ok(None) => break,
                        Err(e) => break 'conn e,
                    }
                }
            }
            () = tokio::time::sleep_until(stall_at), if !pending.is_empty() => {
                break RedisError::Unavailable(format!("no reply for {STALL:?}"));
            }
        }
    };
    for tx in pending.drain(..) {
        let _ = tx.send(Err(error.clone()));
    }
    Some(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_reply_kind_and_waits_for_more() {
        let all = b"+OK\r\n-NOSCRIPT No matching script\r\n:42\r\n$3\r\nfoo\r\n$-1\r\n*2\r\n:1\r\n$0\r\n\r\n*-1\r\n";
        let mut at = 0;
        let mut got = Vec::new();
        while let Ok(Some((r, n))) = parse(&all[at..]) {
            got.push(r);
            at += n;
        }
        assert_eq!(at, all.len());
        assert_eq!(
            got,
            [
                Reply::Simple("OK".into()),
                Reply::Error("NOSCRIPT No matching script".into()),
                Reply::Int(42),
                Reply::Bulk(Some(b"foo".to_vec())),
                Reply::Bulk(None),
                Reply::Array(Some(vec![Reply::Int(1), Reply::Bulk(Some(Vec::new()))])),
                Reply::Array(None),
            ]
        );
        // Every strict prefix of a reply asks for more.
        let one = b"*2\r\n:1\r\n$3\r\nabc\r\n";
        for cut in 0..one.len() {
            assert_eq!(parse(&one[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn rejects_what_is_not_resp_within_bounds() {
        for bad in [
            &b"?x\r\n"[..],
            b":12a\r\n",
            b"$3\r\nfooXY",
            b"$99999999999\r\n",
            b"*99999\r\n",
            b"\r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(RedisError::Protocol(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = "*1\r\n".repeat(20) + ":1\r\n";
        assert!(parse(deep.as_bytes()).is_err());
    }

    #[test]
    fn encodes_commands_as_bulk_arrays() {
        let mut out = Vec::new();
        encode(&mut out, &[b"GET", b"k y"]);
        assert_eq!(out, b"*2\r\n$3\r\nGET\r\n$3\r\nk y\r\n");
    }

    #[test]
    fn addresses() {
        let a: RedisAddr = "redis://:s3cret@10.0.0.1:6380/2"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (
                a.host_port.as_str(),
                a.user.as_deref(),
                a.password.as_deref(),
                a.db
            ),
            ("10.0.0.1:6380", None, Some("s3cret"), 2)
        );
        assert!(!format!("{a:?}").contains("s3cret"));
        let a: RedisAddr = "redis://limits:pw@redis"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (a.host_port.as_str(), a.user.as_deref(), a.db),
            ("redis:6379", Some("limits"), 0)
        );
        let a: RedisAddr = "127.0.0.1:7000".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.host_port, "127.0.0.1:7000");
        let a: RedisAddr = "redis://[::1]".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.host_port, "[::1]:6379");
        assert!("redis://h/x".parse::<RedisAddr>().is_err());
        assert!("rediss://h".parse::<RedisAddr>().is_err());
        assert!("redis://".parse::<RedisAddr>().is_err());
    }
}
