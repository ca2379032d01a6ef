//! Upstream connections with `proxy-send-timeout`: a write to the upstream that stays
//! blocked (its socket buffer full, the upstream not reading) for longer than the
//! timeout fails the connection, as nginx's `proxy_send_timeout` (the time between
//! two successive writes) does.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Sleep;

use crate::service::BoxError;

/// [`HttpConnector`] whose connections fail a write blocked for `send`.
#[derive(Debug, Clone)]
pub(crate) struct TimedConnector {
    pub(crate) inner: HttpConnector,
    pub(crate) send: Duration,
}

impl tower::Service<Uri> for TimedConnector {
    type Response = SendTimeout<TokioIo<TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        tower::Service::<Uri>::poll_ready(&mut self.inner, cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let connecting = tower::Service::call(&mut self.inner, dst);
        let send = self.send;
        Box::pin(async move {
            let io = connecting.await.map_err(BoxError::from)?;
            Ok(SendTimeout {
                inner: io,
                timeout: send,
                blocked: None,
            })
        })
    }
}

/// A connection whose writes may stay blocked for `timeout` at most.
#[derive(Debug)]
pub(crate) struct SendTimeout<T> {
    inner: T,
    timeout: Duration,
    /// Armed while a write is blocked.
    blocked: Option<Pin<Box<Sleep>>>,
}

impl<T> SendTimeout<T> {
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
        self.inner.connected()
    }
}
