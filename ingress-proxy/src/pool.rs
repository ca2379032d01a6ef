//! The upstream connection pool for plain HTTP/1.1 upstreams (the default
//! `backend-protocol: HTTP` to an IP endpoint): one [`EndpointPool`] per endpoint,
//! held by the cluster the balancer picks in (see [`crate::balance`]), so a request
//! finds its pool by the endpoint index it was given: no pool key is hashed per
//! request. Each connection is a `hyper::client::conn::http1` pair: the
//! `SendRequest` and the `Connection` future (the driver) that reads and writes it.
//!
//! **Who drives the connection.** A request drives its connection in its own task:
//! the driver is polled together with the response future, then with the response
//! body while it streams (see [`PooledBody`]), and goes back to the pool with the
//! sender. No other task is woken to write the request or to read the answer, and
//! the wakes hyper's channels make between their two ends, both polled in this
//! task, are held back (see `Held`): 48.7k → 47.5k instructions per proxied request
//! (docs/PERFORMANCE.md). A connection goes to a task of its own for the rest of
//! its life when the response comes before the request's body was read whole (the
//! rest of the body is then forwarded whoever reads the response), after a `101
//! Switching Protocols` (the task fulfils the upgrade), or when it is still busy as
//! its response body ends. A close by the upstream of an idle connection (which
//! nobody polls) is seen by the first poll of the next exchange on it (which reads
//! before it writes, and hands the request back unsent for another connection) or
//! by the reaper.
//!
//! What it keeps to, as hyper-util's pooled client did before it:
//! - **Reuse**: the most recently used ready connection first (LIFO: the one the
//!   upstream is least likely to have closed). A connection goes back to the pool
//!   when the response body has ended (at once for a response without a body);
//!   never after a `101 Switching Protocols` (the connection is the tunnel's), nor
//!   when the body is dropped before its end (the connection closes).
//! - **Stale connections**: one the upstream closed (EOF seen by its task, or by
//!   the first poll of the exchange) is not used; a request refused by a connection
//!   before anything was written (closed just as it was taken) goes on a new connection, as hyper-util
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
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
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

/// The future that reads and writes one upstream connection (hyper's
/// `UpgradeableConnection`, which cannot be named); boxed once per connection.
type Driver = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;

/// A driver polled by whoever holds the connection, with the waker it is polled
/// with.
///
/// The driver fills the response future and the response body through hyper's
/// channels, whose other ends are polled right after it in the same task: a wake
/// from inside those polls (hyper's body channel wakes the driver when its item is
/// taken) would only make the task run again at once for nothing. So the driver is
/// polled with a [`Relay`] that passes wakes on to the task, except those that come
/// while the response or the body is being polled ([`Held::quietly`]): those are
/// passed on only when that poll comes back `Pending` (else the task polls again
/// anyway: a body or a response that is ready is followed by another poll).
struct Held {
    fut: Driver,
    relay: Arc<Relay>,
    waker: Waker,
}

/// Passes a driver's wakes on to the task that last polled it (see [`Held`]).
#[derive(Default)]
struct Relay {
    task: Mutex<Option<Waker>>,
    /// A response or body poll is running: wakes are noted, not passed on.
    quiet: AtomicBool,
    /// A wake came while quiet.
    missed: AtomicBool,
    /// The body of the request on this connection has been read to its end
    /// (see [`Watched`]).
    sent: AtomicBool,
}

/// A request body that says on its connection's [`Relay`] when it has been read
/// to its end: a response that comes before then leaves the rest of the body to
/// a task of its own (see [`EndpointPool::send`]).
struct Watched {
    inner: ProxyBody,
    relay: Arc<Relay>,
}

impl Body for Watched {
    type Data = Bytes;
    type Error = crate::service::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => self.inner.is_end_stream(),
            _ => false,
        };
        if ended {
            self.relay.sent.store(true, Ordering::Release);
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

impl std::task::Wake for Relay {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.quiet.load(Ordering::SeqCst) {
            self.missed.store(true, Ordering::SeqCst);
            // The quiet poll may have ended meanwhile without seeing this wake.
            if self.quiet.load(Ordering::SeqCst) {
                return;
            }
        }
        if let Ok(task) = self.task.lock()
            && let Some(w) = task.as_ref()
        {
            w.wake_by_ref();
        }
    }
}

impl Held {
    fn new(fut: Driver) -> Held {
        let relay = Arc::new(Relay::default());
        Held {
            fut,
            waker: Waker::from(relay.clone()),
            relay,
        }
    }

    /// Poll the driver for the task `cx` belongs to.
    fn poll(&mut self, cx: &Context<'_>) -> Poll<hyper::Result<()>> {
        if let Ok(mut task) = self.relay.task.lock() {
            match task.as_ref() {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *task = Some(cx.waker().clone()),
            }
        }
        self.fut
            .as_mut()
            .poll(&mut Context::from_waker(&self.waker))
    }

    /// Run `poll` (of the response or the body this driver fills) without a waker
    /// and with the driver's wakes held back; `Some(cx)`: pass a held-back wake on
    /// to `cx`'s task when `poll` is `Pending`; `None`: the caller polls the driver
    /// next (which sees whatever the wake was for).
    fn quietly<T>(
        &self,
        cx: Option<&Context<'_>>,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        self.relay.quiet.store(true, Ordering::SeqCst);
        let polled = poll(&mut Context::from_waker(Waker::noop()));
        self.relay.quiet.store(false, Ordering::SeqCst);
        if self.relay.missed.swap(false, Ordering::SeqCst)
            && polled.is_pending()
            && let Some(cx) = cx
        {
            cx.waker().wake_by_ref();
        }
        polled
    }

    /// Run `f` with the driver's wakes dropped: for what the caller follows with a
    /// poll of the driver (which sees whatever the wake was for).
    fn hushed<T>(&self, f: impl FnOnce() -> T) -> T {
        self.relay.quiet.store(true, Ordering::SeqCst);
        let out = f();
        self.relay.quiet.store(false, Ordering::SeqCst);
        self.relay.missed.store(false, Ordering::SeqCst);
        out
    }
}

/// One connection to an upstream: the sender and, unless it runs in its own task,
/// the future that drives it.
struct Conn {
    tx: SendRequest<ProxyBody>,
    /// `Some`: polled by whoever holds the connection; `None`: running in its own
    /// task (or ended). Boxed: the connection is moved with every response.
    driver: Option<Box<Held>>,
}

impl Conn {
    /// Poll the driver, if held, for `cx`'s task; `true` while it is held and
    /// running (an ended driver is dropped, which closes the connection).
    fn poll_driver(&mut self, cx: &Context<'_>) -> bool {
        let Some(d) = self.driver.as_mut() else {
            return false;
        };
        match d.poll(cx) {
            Poll::Pending => true,
            Poll::Ready(r) => {
                if let Err(e) = r {
                    tracing::trace!(error = %e, "upstream connection ended");
                }
                self.driver = None;
                false
            }
        }
    }

    /// Whether the connection can take a request now. An idle held driver is not
    /// polled here: a close by the upstream is seen by the first poll of the
    /// exchange, which reads before it writes, and hands the request back unsent
    /// (see [`EndpointPool::send`]).
    fn usable(&self) -> bool {
        !self.tx.is_closed() && self.tx.is_ready()
    }

    /// Hand the driver, if held, to a task of its own.
    fn detach(&mut self) {
        if let Some(d) = self.driver.take() {
            spawn_driver(d.fut);
        }
    }
}

/// The response future of one exchange, polled after the connection's driver when
/// the driver is held. The response is only ever made ready by the driver, polled
/// just before, so it is polled without a waker while the driver is held (see
/// [`Held`]), and only while the task has Tokio budget left: a budget-refused poll
/// would wake that missing waker.
/// Holds only references: the response future stays where the caller pinned it,
/// and the request's future does not grow.
struct Exchange<'a, F> {
    driver: &'a mut Option<Box<Held>>,
    response: Pin<&'a mut F>,
}

impl<F: Future> Future for Exchange<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        if let Some(d) = this.driver.as_mut()
            && let Poll::Ready(r) = d.poll(cx)
        {
            if let Err(e) = r {
                tracing::trace!(error = %e, "upstream connection ended");
            }
            // Dropped: a response still waited for fails at once.
            *this.driver = None;
        }
        let response = &mut this.response;
        match this.driver.as_ref() {
            // Out of budget: polled again (with its budget renewed) straight away.
            Some(_) if !tokio::task::coop::has_budget_remaining() => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Some(d) => d.quietly(Some(cx), |quiet| response.as_mut().poll(quiet)),
            None => response.as_mut().poll(cx),
        }
    }
}

/// Run a connection's driver in a task of its own.
fn spawn_driver(d: Driver) {
    tokio::spawn(async move {
        if let Err(e) = d.await {
            tracing::trace!(error = %e, "upstream connection ended");
        }
    });
}

/// One idle connection.
struct Idle {
    conn: Conn,
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
    /// used first; closed ones are dropped, busy ones (a connection in its own task
    /// still finishing its last exchange) left. A held driver is not polled here
    /// (see [`Conn::usable`]).
    fn checkout(&self, send: Duration) -> Option<Conn> {
        let mut state = self.state.lock().ok()?;
        let mut i = state.idle.len();
        while i > 0 {
            i -= 1;
            let Some(c) = state.idle.get(i) else { break };
            if c.conn.tx.is_closed() {
                state.idle.remove(i);
            } else if c.send == send && c.conn.usable() {
                return state.idle.remove(i).map(|c| c.conn);
            }
        }
        None
    }

    /// Put a connection back after its exchange; closed ones and those past
    /// the pool's bound are dropped (closing them).
    fn checkin(self: &Arc<Self>, mut conn: Conn, settings: &PoolSettings) {
        if conn.tx.is_closed() || settings.max_idle == 0 {
            return;
        }
        if let Some(d) = conn.driver.as_mut() {
            // A held driver that is not idle yet (still writing or reading) is
            // polled once more, and goes on in a task of its own if that was not
            // enough.
            if !conn.tx.is_ready() {
                let _ = d.poll(&Context::from_waker(Waker::noop()));
                if !conn.tx.is_ready() {
                    conn.detach();
                }
            }
            // An idle connection wakes no task (it is polled again when taken).
            if let Some(d) = conn.driver.as_ref()
                && let Ok(mut task) = d.relay.task.lock()
            {
                *task = None;
            }
        }
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if state.idle.len() >= settings.max_idle {
            return;
        }
        state.idle.push_back(Idle {
            conn,
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

    /// Drop the connections idle past their time or closed by the upstream;
    /// `None` when none is left (the reaper stops), else when the next one
    /// expires.
    fn expire(&self, now: Instant) -> Option<Instant> {
        let mut state = self.state.lock().ok()?;
        state.idle.retain_mut(|c| {
            c.expires > now
                && !c.conn.tx.is_closed()
                && (c.conn.driver.is_none()
                    || c.conn.poll_driver(&Context::from_waker(Waker::noop())))
        });
        let next = state.idle.iter().map(|c| c.expires).min();
        if next.is_none() {
            state.reaping = false;
        }
        next
    }

    /// A new connection: TCP (with `connect` as its timeout, no Nagle), then the
    /// HTTP/1.1 handshake (upgrades allowed); its driver is held by the caller.
    async fn connect(&self, settings: &PoolSettings) -> Result<Conn, SendError> {
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
        Ok(Conn {
            tx,
            driver: Some(Box::new(Held::new(Box::pin(conn.with_upgrades())))),
        })
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
            let (mut conn, reused) = match pooled {
                Some(c) => (c, true),
                // Boxed: a new connection is the cold path, and its state would
                // otherwise sit in every request's future (copied with it).
                None => (Box::pin(self.connect(settings)).await?, false),
            };
            // A request body may still be on its way when the response comes (or
            // be sent only once it has come): watched, so that the connection
            // gets a task of its own then (see `hand_back`).
            let has_body = !req.body().is_end_stream();
            if has_body && let Some(d) = conn.driver.as_ref() {
                d.relay.sent.store(false, Ordering::Release);
                let relay = d.relay.clone();
                req = req.map(|inner| ProxyBody::new(Watched { inner, relay }));
            }
            // Sending wakes the driver, which is polled next here: held back.
            let tx = &mut conn.tx;
            let sent = match conn.driver.as_ref() {
                Some(d) => d.hushed(|| tx.try_send_request(req)),
                None => tx.try_send_request(req),
            };
            let response = std::pin::pin!(sent);
            let exchanged = Exchange {
                driver: &mut conn.driver,
                response,
            }
            .await;
            match exchanged {
                Ok(resp) => return Ok(self.hand_back(resp, conn, has_body, *settings)),
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
    /// ends (at once without a body; never after a 101, whose connection is
    /// handed to a task of its own to become the tunnel). A held driver also goes
    /// to a task of its own when the request's body (`has_body`) is not sent whole
    /// yet: the rest of it is forwarded whoever reads the response (a client may
    /// send all of its body before it reads any of the response).
    fn hand_back(
        self: &Arc<Self>,
        resp: Response<Incoming>,
        mut conn: Conn,
        has_body: bool,
        settings: PoolSettings,
    ) -> Response<PooledBody> {
        let upgraded = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
        let unsent = has_body
            && conn
                .driver
                .as_ref()
                .is_some_and(|d| !d.relay.sent.load(Ordering::Acquire));
        if upgraded || unsent {
            conn.detach();
        }
        resp.map(|body| {
            let mut body = PooledBody {
                inner: body,
                back: (!upgraded).then(|| Checkin {
                    pool: self.clone(),
                    conn,
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
    conn: Conn,
    settings: PoolSettings,
}

/// A response body from the pool (or from hyper-util's client, with nothing to
/// give back): drives its connection while it streams when the connection's
/// driver is held, and gives the connection back when the body ends.
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
            c.pool.checkin(c.conn, &c.settings);
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
        let polled = match this.back.as_mut() {
            Some(Checkin {
                conn: conn @ Conn {
                    driver: Some(_), ..
                },
                ..
            }) => {
                // While the driver is held, only its polls fill the body, so the
                // body is polled quietly (see `Held`): first for what the last poll
                // of the driver left (a short body is there whole already, and the
                // driver is not polled again), then after polling the driver.
                let inner = &mut this.inner;
                let first = conn.driver.as_ref().map_or(Poll::Pending, |d| {
                    d.quietly(None, |quiet| Pin::new(&mut *inner).poll_frame(quiet))
                });
                match first {
                    Poll::Pending if conn.poll_driver(cx) => match conn.driver.as_ref() {
                        Some(d) => {
                            d.quietly(Some(cx), |quiet| Pin::new(&mut *inner).poll_frame(quiet))
                        }
                        None => Pin::new(inner).poll_frame(cx),
                    },
                    Poll::Pending => Pin::new(inner).poll_frame(cx),
                    ready => ready,
                }
            }
            _ => Pin::new(&mut this.inner).poll_frame(cx),
        };
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
                            if a.contains("close")
                                || a.contains("x-hang-up")
                                || !a.contains("content-length")
                            {
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

    /// A request body fed through a channel (ends when the sender is dropped).
    struct Streamed(tokio::sync::mpsc::Receiver<Bytes>);

    impl Body for Streamed {
        type Data = Bytes;
        type Error = crate::service::BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.0.poll_recv(cx).map(|d| d.map(|d| Ok(Frame::data(d))))
        }
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
    async fn an_idle_connection_the_upstream_closed_is_not_used()
    -> Result<(), Box<dyn std::error::Error>> {
        // A keep-alive answer, then the upstream closes the connection.
        let (addr, conns) =
            upstream(|_| "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-hang-up: 1\r\n\r\nok").await?;
        let pool = EndpointPool::new(addr);
        for i in 1..=3 {
            let resp = pool.send(get(), &settings()).await?;
            assert_eq!(text(resp).await, "ok");
            tokio::time::sleep(Duration::from_millis(50)).await;
            // The close is seen when the connection is next taken: a new one
            // serves the next request, without an error.
            assert_eq!(conns.load(Ordering::SeqCst), i);
        }
        Ok(())
    }

    #[tokio::test]
    async fn a_long_body_streams_and_its_connection_is_reused()
    -> Result<(), Box<dyn std::error::Error>> {
        // 256 KiB: read from the upstream in many pieces while the body is polled.
        let (addr, conns) = upstream(|_| {
            static BIG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
            BIG.get_or_init(|| {
                let body = "x".repeat(256 * 1024);
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                )
            })
        })
        .await?;
        let pool = EndpointPool::new(addr);
        for _ in 0..3 {
            let resp = pool.send(get(), &settings()).await?;
            let body = text(resp).await;
            assert_eq!(body.len(), 256 * 1024);
            assert!(body.bytes().all(|b| b == b'x'));
        }
        assert_eq!(conns.load(Ordering::SeqCst), 1);
        assert_eq!(pool.idle(), 1);
        Ok(())
    }

    #[tokio::test]
    async fn a_request_body_sent_after_the_response_head_reaches_the_upstream()
    -> Result<(), Box<dyn std::error::Error>> {
        // The upstream answers as soon as it has the head, then reads the chunked
        // body to its end and reports what it got.
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        let (got_tx, got_rx) = tokio::sync::oneshot::channel::<Vec<u8>>();
        tokio::spawn(async move {
            let Ok((mut tcp, _)) = l.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            let mut answered = false;
            loop {
                if !answered && buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    answered = true;
                    if tcp.write_all(OK.as_bytes()).await.is_err() {
                        return;
                    }
                }
                if buf.ends_with(b"0\r\n\r\n") {
                    let _ = got_tx.send(buf);
                    return;
                }
                match tcp.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(k) => buf.extend_from_slice(&chunk[..k]),
                }
            }
        });
        let pool = EndpointPool::new(addr);
        let (body_tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
        let body = Streamed(rx);
        let mut req = get();
        *req.method_mut() = http::Method::POST;
        *req.body_mut() = body.boxed_unsync();
        let resp = pool.send(req, &settings()).await?;
        // The response is here; the body is not sent yet: the connection goes on
        // in a task of its own, which sends the rest.
        assert_eq!(text(resp).await, "ok");
        assert_eq!(held(&pool), [false]);
        body_tx.send(Bytes::from_static(b"late-part-1;")).await?;
        body_tx.send(Bytes::from_static(b"late-part-2")).await?;
        drop(body_tx);
        let got = tokio::time::timeout(Duration::from_secs(5), got_rx).await??;
        let got = String::from_utf8_lossy(&got);
        assert!(
            got.contains("late-part-1;") && got.contains("late-part-2"),
            "{got}"
        );
        Ok(())
    }

    /// For each idle connection: whether its driver is held (polled by the
    /// requests that take it) rather than running in a task of its own.
    fn held(pool: &EndpointPool) -> Vec<bool> {
        pool.state
            .lock()
            .map(|s| s.idle.iter().map(|c| c.conn.driver.is_some()).collect())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn requests_drive_their_connection_themselves() -> Result<(), Box<dyn std::error::Error>>
    {
        let (addr, conns) = upstream(|_| OK).await?;
        let pool = EndpointPool::new(addr);
        // Without a body, then with one sent whole before the answer: the
        // connection stays with the requests (no task of its own).
        for body in [None, Some("abc")] {
            let mut req = get();
            if let Some(b) = body {
                *req.method_mut() = http::Method::POST;
                req.headers_mut().insert(
                    http::header::CONTENT_LENGTH,
                    http::HeaderValue::from(b.len()),
                );
                *req.body_mut() = ProxyBody::new(
                    http_body_util::Full::new(Bytes::from_static(b.as_bytes()))
                        .map_err(|e| match e {}),
                );
            }
            let resp = pool.send(req, &settings()).await?;
            assert_eq!(text(resp).await, "ok");
            assert_eq!(held(&pool), [true], "{body:?}");
        }
        assert_eq!(conns.load(Ordering::SeqCst), 1);
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
