//! The upstream connection pool for plain HTTP/1.1 upstreams (the default
//! `backend-protocol: HTTP` to an IP endpoint): one [`EndpointPool`] per endpoint,
//! held by the cluster the balancer picks in (see [`crate::balance`]), so a request
//! finds its pool by the endpoint index it was given: no pool key is hashed per
//! request. Each idle connection is a `hyper::client::conn::http1::SendRequest`
//! whose connection runs in its own task.
//!
//! What it keeps to, as hyper-util's pooled client did before it:
//! - **Reuse**: the most recently used ready connection first (LIFO: the one the
//!   upstream is least likely to have closed). A connection goes back to the pool
//!   when the response body has ended (at once for a response without a body);
//!   never after a `101 Switching Protocols` (the connection is the tunnel's), nor
//!   when the body is dropped before its end (the connection closes).
//! - **Stale connections**: one the upstream closed (EOF seen by its task) is
//!   dropped at checkout; a request refused by a connection before anything was
//!   written (closed just as it was taken) goes on a new connection, as hyper-util
//!   did; a request that fails on a reused connection after it was written is
//!   reported as [`SendError::on_reused`], which `forward` retries once (nginx's
//!   extra try on a failed cached connection).
//! - **Not reusable**: `Connection: close` from the upstream, a response read to
//!   EOF (no length), a failed or cut exchange: hyper closes the connection, and
//!   its sender, closed, is dropped at the next checkout.
//! - **Idle timeout** (`ServiceOptions::pool_idle_timeout`, 90 s by default): a
//!   connection idle for longer is closed by the pool's reaper task (one per pool
//!   with idle connections, ending when the pool is empty).
//! - **Max idle per endpoint** (`ServiceOptions::pool_max_idle_per_endpoint`): a
//!   connection coming back to a full pool is closed.
//! - A pool lives as long as a table names its endpoint (a new table inherits the
//!   pools of the endpoints it keeps); when the endpoint leaves, its idle
//!   connections close.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::connect::{CappedRead, SendTimeout};
use crate::service::ProxyBody;

/// The largest buffer of an HTTP/1.1 upstream connection: the longest response
/// head an upstream may send (longer: 502; nginx's `proxy_buffer_size` is 4-8 KiB).
/// hyper's default (about 400 KiB) let a connection whose client does not read
/// hold about 1 MiB until the send timeout (the hardening checklist's T51 at full
/// size). A response body is read in pieces of at most
/// `--upstream-read-size` (8 KiB by default, [`crate::connect::CappedRead`]), and the client
/// connection holds at most [`SEND_AHEAD`](crate::conn::SEND_AHEAD) of it plus one
/// piece before the upstream read waits.
pub(crate) const UPSTREAM_MAX_BUF: usize = 32 * 1024;

/// How the pool keeps idle connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolSettings {
    /// How long an idle connection is kept.
    pub(crate) idle_timeout: Duration,
    /// How many idle connections are kept per endpoint.
    pub(crate) max_idle: usize,
    /// The TCP connect timeout.
    pub(crate) connect: Duration,
    /// How long a write to the upstream may stay blocked.
    pub(crate) send: Duration,
    /// The most one read takes in (`ServiceOptions::upstream_read_size`).
    pub(crate) read_size: usize,
}

/// One idle connection.
struct Idle {
    tx: SendRequest<ProxyBody>,
    /// The send timeout its writes run under (a request with another one does
    /// not take it).
    send: Duration,
    /// When it is closed if still idle.
    expires: Instant,
}

#[derive(Default)]
struct State {
    /// Oldest first; taken from the back.
    idle: VecDeque<Idle>,
    /// A reaper task is running for this pool.
    reaping: bool,
}

/// The idle connections to one endpoint.
pub(crate) struct EndpointPool {
    addr: SocketAddr,
    state: Mutex<State>,
}

impl std::fmt::Debug for EndpointPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointPool")
            .field("addr", &self.addr)
            .field("idle", &self.idle())
            .finish()
    }
}

/// Why a request through the pool failed.
#[derive(Debug)]
pub(crate) enum SendError {
    /// No connection could be made (refused, unreachable, timed out).
    Connect(std::io::Error),
    /// The exchange failed; `reused` when on a connection from the pool.
    Request { error: hyper::Error, reused: bool },
    /// From hyper-util's pooled client (the paths this pool does not serve).
    Client(hyper_util::client::legacy::Error),
}

impl SendError {
    /// Whether the connection could not be made.
    pub(crate) fn is_connect(&self) -> bool {
        match self {
            SendError::Connect(_) => true,
            SendError::Client(e) => e.is_connect(),
            SendError::Request { .. } => false,
        }
    }

    /// Whether the exchange failed on a connection taken from the pool (which
    /// the upstream may have closed just as the request went out).
    pub(crate) fn on_reused(&self) -> bool {
        matches!(self, SendError::Request { reused: true, .. })
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(e) => write!(f, "upstream connect error: {e}"),
            SendError::Request { error, .. } => write!(f, "upstream request failed: {error}"),
            SendError::Client(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendError::Connect(e) => Some(e),
            SendError::Request { error, .. } => Some(error),
            SendError::Client(e) => Some(e),
        }
    }
}

impl EndpointPool {
    /// An empty pool for `addr`.
    pub(crate) fn new(addr: SocketAddr) -> Arc<EndpointPool> {
        Arc::new(EndpointPool {
            addr,
            state: Mutex::new(State::default()),
        })
    }

    /// The endpoint.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many idle connections are held (ready or not).
    pub(crate) fn idle(&self) -> usize {
        self.state.lock().map_or(0, |s| s.idle.len())
    }

    /// A ready idle connection whose writes run under `send`: the most recently
    /// used first; closed ones are dropped, busy ones (still finishing their last
    /// exchange) left.
    fn checkout(&self, send: Duration) -> Option<SendRequest<ProxyBody>> {
        let mut state = self.state.lock().ok()?;
        let mut i = state.idle.len();
        while i > 0 {
            i -= 1;
            let Some(c) = state.idle.get(i) else { break };
            if c.tx.is_closed() {
                state.idle.remove(i);
            } else if c.send == send && c.tx.is_ready() {
                return state.idle.remove(i).map(|c| c.tx);
            }
        }
        None
    }

    /// Put a connection back after its exchange; closed ones and those past
    /// the pool's bound are dropped (closing them).
    fn checkin(self: &Arc<Self>, tx: SendRequest<ProxyBody>, settings: &PoolSettings) {
        if tx.is_closed() || settings.max_idle == 0 {
            return;
        }
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if state.idle.len() >= settings.max_idle {
            return;
        }
        state.idle.push_back(Idle {
            tx,
            send: settings.send,
            expires: Instant::now() + settings.idle_timeout,
        });
        if !state.reaping
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            state.reaping = true;
            rt.spawn(reap(Arc::downgrade(self)));
        }
    }

    /// Drop the connections idle past their time; `None` when none is left (the
    /// reaper stops), else when the next one expires.
    fn expire(&self, now: Instant) -> Option<Instant> {
        let mut state = self.state.lock().ok()?;
        state.idle.retain(|c| c.expires > now && !c.tx.is_closed());
        let next = state.idle.iter().map(|c| c.expires).min();
        if next.is_none() {
            state.reaping = false;
        }
        next
    }

    /// A new connection: TCP (with `connect` as its timeout, no Nagle), then the
    /// HTTP/1.1 handshake; the connection runs in its own task (upgrades
    /// allowed).
    async fn connect(&self, settings: &PoolSettings) -> Result<SendRequest<ProxyBody>, SendError> {
        let tcp = tokio::time::timeout(settings.connect, TcpStream::connect(self.addr))
            .await
            .map_err(|_| {
                SendError::Connect(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "upstream connect timeout",
                ))
            })?
            .map_err(SendError::Connect)?;
        // Best effort: a failure only costs latency.
        let _ = tcp.set_nodelay(true);
        let io = SendTimeout::new(
            TokioIo::new(CappedRead::new(tcp, settings.read_size)),
            settings.send,
        );
        let (tx, conn) = hyper::client::conn::http1::Builder::new()
            .max_buf_size(UPSTREAM_MAX_BUF)
            .handshake(io)
            .await
            .map_err(|error| SendError::Request {
                error,
                reused: false,
            })?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::trace!(error = %e, "upstream connection ended");
            }
        });
        Ok(tx)
    }

    /// Send `req` (origin-form URI, `Host` set) on a pooled connection, or a new
    /// one when none is ready. The response body gives the connection back to
    /// the pool when it ends.
    pub(crate) async fn send(
        self: &Arc<Self>,
        mut req: Request<ProxyBody>,
        settings: &PoolSettings,
    ) -> Result<Response<PooledBody>, SendError> {
        // At most one more connection when a pooled one turns out closed before
        // the request was written to it (the request comes back whole).
        let mut pooled_tries = 0;
        loop {
            let pooled = if pooled_tries < 2 {
                self.checkout(settings.send)
            } else {
                None
            };
            let (mut tx, reused) = match pooled {
                Some(tx) => (tx, true),
                // Boxed: a new connection is the cold path, and its state would
                // otherwise sit in every request's future (copied with it).
                None => (Box::pin(self.connect(settings)).await?, false),
            };
            match tx.try_send_request(req).await {
                Ok(resp) => return Ok(self.hand_back(resp, tx, *settings)),
                Err(mut e) => match e.take_message() {
                    Some(back) if reused => {
                        pooled_tries += 1;
                        req = back;
                    }
                    _ => {
                        return Err(SendError::Request {
                            error: e.into_error(),
                            reused,
                        });
                    }
                },
            }
        }
    }

    /// The response, with the connection going back to the pool when its body
    /// ends (at once without a body; never after a 101).
    fn hand_back(
        self: &Arc<Self>,
        resp: Response<Incoming>,
        tx: SendRequest<ProxyBody>,
        settings: PoolSettings,
    ) -> Response<PooledBody> {
        let upgraded = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
        resp.map(|body| {
            let mut body = PooledBody {
                inner: body,
                back: (!upgraded).then(|| Checkin {
                    pool: self.clone(),
                    tx,
                    settings,
                }),
            };
            if body.inner.is_end_stream() {
                body.release();
            }
            body
        })
    }
}

/// The reaper of one pool: closes connections idle past their time; stops when
/// the pool has none left (the next checkin starts another) or is gone.
async fn reap(pool: Weak<EndpointPool>) {
    loop {
        let next = match pool.upgrade() {
            Some(p) => p.expire(Instant::now()),
            None => return,
        };
        match next {
            Some(at) => tokio::time::sleep_until(at.into()).await,
            None => return,
        }
    }
}

/// Where a connection goes when its response body ends.
struct Checkin {
    pool: Arc<EndpointPool>,
    tx: SendRequest<ProxyBody>,
    settings: PoolSettings,
}

/// A response body from the pool (or from hyper-util's client, with nothing to
/// give back): gives the connection back when the body ends.
pub(crate) struct PooledBody {
    inner: Incoming,
    back: Option<Checkin>,
}

impl PooledBody {
    /// A body with no connection to give back.
    pub(crate) fn plain(inner: Incoming) -> PooledBody {
        PooledBody { inner, back: None }
    }

    fn release(&mut self) {
        if let Some(c) = self.back.take() {
            c.pool.checkin(c.tx, &c.settings);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.release(),
            // A failed body: the connection is not reusable.
            Poll::Ready(Some(Err(_))) => this.back = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn settings() -> PoolSettings {
        PoolSettings {
            idle_timeout: Duration::from_secs(30),
            max_idle: 8,
            connect: Duration::from_secs(2),
            send: Duration::from_secs(5),
            read_size: crate::connect::UPSTREAM_READ_SIZE,
        }
    }

    /// An upstream answering each request on a connection with `answer(n)`, `n`
    /// counting the requests on that connection; counts connections.
    async fn upstream(
        answer: fn(usize) -> &'static str,
    ) -> std::io::Result<(SocketAddr, Arc<AtomicUsize>)> {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        let conns = Arc::new(AtomicUsize::new(0));
        let c = conns.clone();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = l.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut n = 0;
                    loop {
                        let mut chunk = [0u8; 1024];
                        match tcp.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => buf.extend_from_slice(&chunk[..k]),
                        }
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            let a = answer(n);
                            n += 1;
                            if a.is_empty() || tcp.write_all(a.as_bytes()).await.is_err() {
                                return;
                            }
                            if a.contains("close") || !a.contains("content-length") {
                                return;
                            }
                        }
                    }
                });
            }
        });
        Ok((addr, conns))
    }

    fn get() -> Request<ProxyBody> {
        let mut r = Request::new(crate::service::empty());
        *r.uri_mut() = http::Uri::from_static("/");
        r.headers_mut()
            .insert(http::header::HOST, http::HeaderValue::from_static("t"));
        r
    }

    async fn text(resp: Response<PooledBody>) -> String {
        let b = resp.into_body().collect().await.map(|b| b.to_bytes());
        String::from_utf8_lossy(&b.unwrap_or_default()).into_owned()
    }

    const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

    #[tokio::test]
    async fn sequential_requests_share_one_connection() -> Result<(), Box<dyn std::error::Error>> {
        let (addr, conns) = upstream(|_| OK).await?;
        let pool = EndpointPool::new(addr);
        for _ in 0..5 {
            let resp = pool.send(get(), &settings()).await?;
            assert_eq!(text(resp).await, "ok");
            tokio::task::yield_now().await;
        }
        assert_eq!(conns.load(Ordering::SeqCst), 1);
        assert_eq!(pool.idle(), 1);
        Ok(())
    }

    #[tokio::test]
    async fn closed_or_unlengthed_connections_are_not_reused()
    -> Result<(), Box<dyn std::error::Error>> {
        let close: fn(usize) -> &'static str =
            |_| "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
        let eof: fn(usize) -> &'static str = |_| "HTTP/1.1 200 OK\r\n\r\nok";
        for answer in [close, eof] {
            let (addr, conns) = upstream(answer).await?;
            let pool = EndpointPool::new(addr);
            for _ in 0..3 {
                let resp = pool.send(get(), &settings()).await?;
                assert_eq!(text(resp).await, "ok");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(conns.load(Ordering::SeqCst), 3, "{:?}", answer(0));
        }
        Ok(())
    }

    #[tokio::test]
    async fn idle_connections_expire() -> Result<(), Box<dyn std::error::Error>> {
        let (addr, conns) = upstream(|_| OK).await?;
        let pool = EndpointPool::new(addr);
        let s = PoolSettings {
            idle_timeout: Duration::from_millis(100),
            ..settings()
        };
        let resp = pool.send(get(), &s).await?;
        assert_eq!(text(resp).await, "ok");
        assert_eq!(pool.idle(), 1);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(pool.idle(), 0, "closed after the idle timeout");
        let resp = pool.send(get(), &s).await?;
        assert_eq!(text(resp).await, "ok");
        assert_eq!(conns.load(Ordering::SeqCst), 2);
        Ok(())
    }

    #[tokio::test]
    async fn a_full_pool_closes_what_comes_back() -> Result<(), Box<dyn std::error::Error>> {
        let (addr, conns) = upstream(|_| OK).await?;
        let pool = EndpointPool::new(addr);
        let s = PoolSettings {
            max_idle: 1,
            ..settings()
        };
        // Two at once: two connections, one kept.
        let (a, b) = tokio::join!(pool.send(get(), &s), pool.send(get(), &s));
        assert_eq!(text(a?).await, "ok");
        assert_eq!(text(b?).await, "ok");
        assert_eq!(conns.load(Ordering::SeqCst), 2);
        assert_eq!(pool.idle(), 1);
        Ok(())
    }

    #[tokio::test]
    async fn a_failure_on_a_reused_connection_says_so() -> Result<(), Box<dyn std::error::Error>> {
        // The second request on each connection gets no answer: the upstream
        // closes it.
        let (addr, _) = upstream(|n| if n == 0 { OK } else { "" }).await?;
        let pool = EndpointPool::new(addr);
        let resp = pool.send(get(), &settings()).await?;
        assert_eq!(text(resp).await, "ok");
        tokio::task::yield_now().await;
        let e = pool
            .send(get(), &settings())
            .await
            .err()
            .ok_or("the upstream closed without an answer")?;
        assert!(e.on_reused() && !e.is_connect(), "{e}");
        Ok(())
    }

    #[tokio::test]
    async fn a_refused_connect_is_a_connect_error() -> Result<(), Box<dyn std::error::Error>> {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        drop(l);
        let e = EndpointPool::new(addr)
            .send(get(), &settings())
            .await
            .err()
            .ok_or("nothing listens")?;
        assert!(e.is_connect() && !e.on_reused(), "{e}");
        Ok(())
    }
}
