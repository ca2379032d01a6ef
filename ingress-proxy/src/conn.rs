//! Per-connection guards the listeners put around hyper: a write-stall timeout on
//! the client socket, an idle timeout on request bodies, in-flight request
//! tracking for the keep-alive idle timeout, connection counting for the
//! per-listener cap, and panic containment around the service.

use std::future::Future;
use std::io;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use hyper::body::{Body, Frame, SizeHint};
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::service::{BoxError, ProxyBody};

/// A client socket whose writes fail with `TimedOut` once one stays blocked (the
/// client not reading) for longer than `limit`.
pub(crate) struct StallGuard<I> {
    io: I,
    limit: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<I> StallGuard<I> {
    pub(crate) fn new(io: I, limit: Duration) -> Self {
        StallGuard {
            io,
            limit,
            stalled: None,
        }
    }

    /// After a write-side poll: start the stall clock on `Pending`, stop it on
    /// progress, and turn a stall past the limit into an error.
    fn check<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Pending => {
                let limit = self.limit;
                let sleep = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                if sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "client did not read within the send timeout",
                    )));
                }
                Poll::Pending
            }
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for StallGuard<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for StallGuard<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.check(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.check(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        self.check(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The error a request body ends with when the client sends nothing for
/// the body idle timeout; the forwarding code answers 408 on it.
#[derive(Debug, thiserror::Error)]
#[error("client sent no request body data within the body idle timeout")]
pub(crate) struct BodyIdleTimeout;

/// Whether `e` (or what caused it) is a [`BodyIdleTimeout`].
pub(crate) fn is_body_idle_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(e), |e| e.source()).any(|e| e.is::<BodyIdleTimeout>())
}

/// A timeout between two frames of a body (nginx's `client_body_timeout` and
/// `proxy_read_timeout`): the timer is only made, and only moved, when the body is
/// waited for, so a body that arrives whole costs none.
pub(crate) struct IdleTimer {
    timeout: Duration,
    /// When the body last made progress (or the timer was made).
    since: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl IdleTimer {
    pub(crate) fn new(timeout: Duration) -> Self {
        IdleTimer {
            timeout,
            since: Instant::now(),
            sleep: None,
        }
    }

    /// The body made progress: the timeout counts from now.
    pub(crate) fn progress(&mut self) {
        self.since = Instant::now();
    }

    /// Whether the body has waited longer than the timeout since its last progress
    /// (registers the wake-up otherwise).
    pub(crate) fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = self.since + self.timeout;
        let sleep = match &mut self.sleep {
            Some(s) => {
                if s.deadline() != deadline {
                    s.as_mut().reset(deadline);
                }
                s
            }
            None => self
                .sleep
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        sleep.as_mut().poll(cx).is_ready()
    }
}

/// A request body that fails with [`BodyIdleTimeout`] when no frame arrives for
/// `limit` while it is being read.
pub(crate) struct IdleBody {
    inner: ProxyBody,
    idle: IdleTimer,
}

impl IdleBody {
    pub(crate) fn new(inner: ProxyBody, limit: Duration) -> Self {
        IdleBody {
            inner,
            idle: IdleTimer::new(limit),
        }
    }
}

impl Body for IdleBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => {
                if this.idle.expired(cx) {
                    return Poll::Ready(Some(Err(Box::new(BodyIdleTimeout))));
                }
                Poll::Pending
            }
            ready => {
                this.idle.progress();
                ready
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Requests in flight on one connection, and since when none has been.
#[derive(Debug)]
pub(crate) struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds since `start` when the last request ended.
    idle_since: AtomicU64,
    /// What the connection's response bodies may queue.
    send: SendLimit,
}

impl Activity {
    pub(crate) fn new(send: SendLimit) -> Arc<Self> {
        Arc::new(Activity {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            send,
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Count a request in flight until the returned guard drops (with its response body).
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// Resolves once no request has been in flight for `limit`.
    pub(crate) async fn idle_for(&self, limit: Duration) {
        let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        loop {
            let wait = if self.in_flight.load(Ordering::Acquire) == 0 {
                let idle = self
                    .now_ms()
                    .saturating_sub(self.idle_since.load(Ordering::Acquire));
                if idle >= limit_ms {
                    return;
                }
                Duration::from_millis(limit_ms - idle)
            } else {
                limit
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// One request in flight (see [`Activity::begin`]).
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.idle_since.store(self.0.now_ms(), Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How much of one response body the client connection may hold unwritten.
#[derive(Debug, Clone)]
pub(crate) struct SendLimit {
    /// A body yields no further frame while this many bytes or more of it are
    /// queued (so at most this plus one frame are).
    pub(crate) ahead: usize,
    /// Counts the bytes queued, over every response (the metric).
    pub(crate) queued: Gauge,
}

/// What a response body may queue on its client connection before it waits:
/// 4 KiB, and with it one more frame. A body read from an HTTP/1.1 upstream comes
/// in frames of at most 8 KiB (`--upstream-read-size`, `connect::CappedRead`),
/// so it has one frame queued at a time; smaller frames (streamed events, gRPC
/// messages) still go out several to a write.
pub(crate) const SEND_AHEAD: usize = 4 * 1024;

/// A response body that keeps its request counted in flight until it ends, and
/// waits while its connection's [`SendLimit`] is reached (see [`SendBudget`]).
pub(crate) struct Tracked {
    inner: ProxyBody,
    in_flight: InFlight,
    /// Made with the first data frame that is not the last one.
    budget: Option<Arc<SendBudget>>,
}

impl Tracked {
    pub(crate) fn new(inner: ProxyBody, in_flight: InFlight) -> Self {
        Tracked {
            inner,
            in_flight,
            budget: None,
        }
    }
}

impl Body for Tracked {
    type Data = Lease;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Lease>, BoxError>>> {
        let this = &mut *self;
        if let Some(b) = &this.budget
            && !b.admit(cx)
        {
            return Poll::Pending;
        }
        let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => return Poll::Ready(Some(Err(e))),
            None => return Poll::Ready(None),
        };
        let frame = frame.map_data(|data| {
            // A body whose first frame is its last (most) has nothing to hold back.
            if this.budget.is_none() && this.inner.is_end_stream() {
                return Lease { data, budget: None };
            }
            let budget = this
                .budget
                .get_or_insert_with(|| Arc::new(SendBudget::new(&this.in_flight.0.send)));
            budget.take(data.len());
            Lease {
                budget: Some((budget.clone(), data.len())),
                data,
            }
        });
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Bytes of one response body handed to hyper and not yet written. hyper queues
/// what a body yields until its own buffer is full (HTTP/1.1: the connection's
/// `max_buf_size`, which is also the request-head limit, 64 KiB by default;
/// HTTP/2: the stream's send buffer), and each queued frame keeps the upstream
/// read it came from alive; with a client that does not read, that was the bulk
/// of what its connection held. The body yields no further frame while `limit`
/// bytes or more are out; the frame whose drop (written, or the connection gone)
/// takes the count below the limit wakes it.
pub(crate) struct SendBudget {
    limit: usize,
    queued: AtomicUsize,
    gauge: Gauge,
    waiting: Mutex<Option<Waker>>,
}

impl SendBudget {
    fn new(send: &SendLimit) -> Self {
        SendBudget {
            limit: send.ahead,
            queued: AtomicUsize::new(0),
            gauge: send.queued.clone(),
            waiting: Mutex::new(None),
        }
    }

    fn take(&self, n: usize) {
        self.queued.fetch_add(n, Ordering::SeqCst);
        self.gauge.inc_by(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Whether another frame may go out; if not, `cx` is woken once it may.
    fn admit(&self, cx: &mut Context<'_>) -> bool {
        if self.queued.load(Ordering::SeqCst) < self.limit {
            return true;
        }
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        *waiting = Some(cx.waker().clone());
        // A release between the first look and the waker being stored found no
        // waker to wake: look again.
        if self.queued.load(Ordering::SeqCst) < self.limit {
            *waiting = None;
            return true;
        }
        false
    }

    fn release(&self, n: usize) {
        self.gauge.dec_by(i64::try_from(n).unwrap_or(i64::MAX));
        let before = self.queued.fetch_sub(n, Ordering::SeqCst);
        if before >= self.limit && before - n < self.limit {
            let waker = self
                .waiting
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}

/// One data frame of a response body as hyper holds it: counted against its
/// response's [`SendBudget`] (with what it took) until hyper drops it.
pub(crate) struct Lease {
    data: Bytes,
    budget: Option<(Arc<SendBudget>, usize)>,
}

impl Buf for Lease {
    fn remaining(&self) -> usize {
        self.data.len()
    }

    fn chunk(&self) -> &[u8] {
        &self.data
    }

    fn advance(&mut self, n: usize) {
        self.data.advance(n);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some((b, n)) = &self.budget {
            b.release(*n);
        }
    }
}

/// Connections open on one listener; a [`ConnSlot`] holds one.
#[derive(Debug, Default)]
pub(crate) struct ConnCount {
    open: AtomicUsize,
    closed: tokio::sync::Notify,
}

impl ConnCount {
    /// Take a slot if fewer than `max` are open (`0`: no limit).
    pub(crate) fn try_open(self: &Arc<Self>, max: usize) -> Option<ConnSlot> {
        let mut n = self.open.load(Ordering::Acquire);
        loop {
            if max != 0 && n >= max {
                return None;
            }
            match self
                .open
                .compare_exchange_weak(n, n + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(ConnSlot(self.clone())),
                Err(now) => n = now,
            }
        }
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Resolves once no connection is open.
    pub(crate) async fn all_closed(&self) {
        loop {
            let closed = self.closed.notified();
            if self.open() == 0 {
                return;
            }
            closed.await;
        }
    }
}

/// One open connection, counted until dropped.
#[derive(Debug)]
pub(crate) struct ConnSlot(Arc<ConnCount>);

impl Drop for ConnSlot {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.closed.notify_waiters();
        }
    }
}

/// A future whose panic is caught and returned as `Err` (the panic message is
/// logged), so one request's panic answers 500 instead of ending the connection.
pub(crate) struct CatchPanic<'a, F>(pub(crate) Pin<&'a mut F>);

impl<F: Future> Future for CatchPanic<'_, F> {
    type Output = Result<F::Output, ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(payload) => {
                let msg = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(panic = msg, "request handler panicked; answered 500");
                Poll::Ready(Err(()))
            }
        }
    }
}
