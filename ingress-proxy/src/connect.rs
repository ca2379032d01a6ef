//! Upstream connections: TCP, then TLS when the route's `backend-protocol` asks for
//! it (see [`crate::upstream`]), with `proxy-send-timeout`: a write to the upstream
//! that stays blocked (its socket buffer full, the upstream not reading) for longer
//! than the timeout fails the connection, as nginx's `proxy_send_timeout` (the time
//! between two successive writes) does. The TLS handshake counts against the
//! connect timeout.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Sleep;

use crate::service::BoxError;
use crate::upstream::TlsTarget;

/// [`HttpConnector`] whose connections fail a write blocked for `send`, with TLS
/// on top when `tls` is set.
#[derive(Debug, Clone)]
pub(crate) struct TimedConnector {
    pub(crate) inner: HttpConnector,
    pub(crate) send: Duration,
    /// The TCP connect timeout, applied again to the TLS handshake.
    pub(crate) connect: Duration,
    /// Connect here whatever the request's URI says (HTTP/2 clients are bound to
    /// one endpoint, and their URIs carry the request's host as `:authority`).
    pub(crate) fixed: Option<Uri>,
    pub(crate) tls: Option<Arc<TlsTarget>>,
}

impl tower::Service<Uri> for TimedConnector {
    type Response = SendTimeout<UpstreamIo>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        tower::Service::<Uri>::poll_ready(&mut self.inner, cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let dst = self.fixed.clone().unwrap_or(dst);
        let connecting = tower::Service::call(&mut self.inner, dst);
        let (send, connect, tls) = (self.send, self.connect, self.tls.clone());
        Box::pin(async move {
            let tcp = connecting.await.map_err(BoxError::from)?;
            let io = match tls {
                None => UpstreamIo::Plain(tcp),
                Some(t) => {
                    let shake = t.connector.connect(t.name.clone(), tcp.into_inner());
                    let stream = tokio::time::timeout(connect, shake).await.map_err(|_| {
                        io::Error::new(io::ErrorKind::TimedOut, "upstream TLS handshake timeout")
                    })??;
                    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                    UpstreamIo::Tls {
                        io: TokioIo::new(Box::new(stream)),
                        h2,
                    }
                }
            };
            Ok(SendTimeout {
                inner: io,
                timeout: send,
                blocked: None,
                opened: Instant::now(),
            })
        })
    }
}

/// An upstream connection: plain TCP or TLS over TCP.
#[derive(Debug)]
pub(crate) enum UpstreamIo {
    /// Clear text.
    Plain(TokioIo<TcpStream>),
    /// TLS; `h2` when ALPN chose HTTP/2.
    Tls {
        io: TokioIo<Box<tokio_rustls::client::TlsStream<TcpStream>>>,
        h2: bool,
    },
}

impl Read for UpstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(io) => Pin::new(io).poll_read(cx, buf),
            UpstreamIo::Tls { io, .. } => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl Write for UpstreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(io) => Pin::new(io).poll_write(cx, buf),
            UpstreamIo::Tls { io, .. } => Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(io) => Pin::new(io).poll_flush(cx),
            UpstreamIo::Tls { io, .. } => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(io) => Pin::new(io).poll_shutdown(cx),
            UpstreamIo::Tls { io, .. } => Pin::new(io).poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamIo::Plain(io) => io.is_write_vectored(),
            UpstreamIo::Tls { io, .. } => io.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            UpstreamIo::Tls { io, .. } => Pin::new(io).poll_write_vectored(cx, bufs),
        }
    }
}

impl Connection for UpstreamIo {
    fn connected(&self) -> Connected {
        match self {
            UpstreamIo::Plain(io) => io.connected(),
            UpstreamIo::Tls { io, h2 } => {
                let c = io.inner().get_ref().0.connected();
                if *h2 { c.negotiated_h2() } else { c }
            }
        }
    }
}

/// When an upstream connection was opened: carried in its `Connected` info (and
/// so in a failed request's error), to tell a try on a pooled keep-alive
/// connection (opened before the try) from one on a new connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Opened(pub(crate) Instant);

/// A connection whose writes may stay blocked for `timeout` at most.
#[derive(Debug)]
pub(crate) struct SendTimeout<T> {
    inner: T,
    timeout: Duration,
    /// Armed while a write is blocked.
    blocked: Option<Pin<Box<Sleep>>>,
    /// When the connection was made.
    opened: Instant,
}

impl<T> SendTimeout<T> {
    /// `inner`, whose writes may stay blocked for `timeout` at most.
    pub(crate) fn new(inner: T, timeout: Duration) -> Self {
        SendTimeout {
            inner,
            timeout,
            blocked: None,
            opened: Instant::now(),
        }
    }

    /// After the inner write returned `polled`: disarm on progress; on `Pending`,
    /// arm the timer (once) and fail when it has run out.
    fn watch<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if polled.is_ready() {
            self.blocked = None;
            return polled;
        }
        let timeout = self.timeout;
        let sleep = self
            .blocked
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(sleep.as_mut().poll(cx));
        self.blocked = None;
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "upstream send timeout",
        )))
    }
}

impl<T: Read + Unpin> Read for SendTimeout<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for SendTimeout<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, polled)
    }
}

impl<T: Connection> Connection for SendTimeout<T> {
    fn connected(&self) -> Connected {
        self.inner.connected().extra(Opened(self.opened))
    }
}

/// A plain upstream HTTP/1.1 connection whose reads each take in one byte less
/// than its read size (`--upstream-read-size`, [`UPSTREAM_READ_SIZE`] by default),
/// however much room hyper offers. hyper sizes its next read buffer from its last
/// read (8 KiB at first, doubled each time a read fills it, up to
/// `UPSTREAM_MAX_BUF`), and each body frame it hands on is a slice of that
/// buffer, which stays allocated while the client connection still holds the
/// frame; one byte short, a read never fills a buffer of the read size, and the
/// buffers stay at that size (nginx reads an upstream into its
/// `proxy_buffer_size`, 4 KiB by default on 64-bit Linux). The head limit is not
/// affected: a longer head takes more reads.
///
/// Safe code must zero the room it reads into, so the room is made ready only
/// once the socket has data.
#[derive(Debug)]
pub(crate) struct CappedRead {
    inner: TcpStream,
    /// The most one read takes in.
    cap: usize,
}

/// The default read size of plain upstream HTTP/1.1 connections: 8 KiB.
pub(crate) const UPSTREAM_READ_SIZE: usize = 8 * 1024;

impl CappedRead {
    /// `inner`, read `read_size - 1` bytes at most at a time (at least 1).
    pub(crate) fn new(inner: TcpStream, read_size: usize) -> Self {
        CappedRead {
            inner,
            cap: read_size.saturating_sub(1).max(1),
        }
    }
}

impl tokio::io::AsyncRead for CappedRead {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() <= self.cap {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let this = &mut *self;
        loop {
            ready!(this.inner.poll_read_ready(cx))?;
            let room = this.cap;
            let part = buf.initialize_unfilled_to(room);
            let mut short = None;
            // A short read emptied the socket: it answers `WouldBlock` to
            // `try_io`, which then clears the readiness it saw before the read
            // (as tokio's own `poll_read` does), so the next poll waits for new
            // data instead of zeroing room for none and failing a read.
            let read = this.inner.try_io(tokio::io::Interest::READABLE, || {
                let n = this.inner.try_read(part)?;
                if n < room && n > 0 {
                    short = Some(n);
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(n)
            });
            let n = match (read, short) {
                (_, Some(n)) | (Ok(n), None) => n,
                (Err(e), None) if e.kind() == io::ErrorKind::WouldBlock => continue,
                (Err(e), None) => return Poll::Ready(Err(e)),
            };
            buf.advance(n);
            return Poll::Ready(Ok(()));
        }
    }
}

impl tokio::io::AsyncWrite for CappedRead {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
