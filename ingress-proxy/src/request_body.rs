//! Request bodies on their way upstream: cut at `proxy-body-size` ([`Limited`]),
//! and kept for the next endpoint while no connection took them ([`Recoverable`]).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};

use crate::service::{BoxError, ProxyBody};

/// The request body of a try: it stays in a slot shared with the forwarding loop
/// until the upstream connection first polls it, so a try that never got a
/// connection (connect refused or timed out) leaves it untouched for the next
/// endpoint. Bodies are streamed, never buffered: this is the only way a request
/// with a body moves on.
pub(crate) struct Recoverable {
    slot: Arc<Mutex<Option<ProxyBody>>>,
    body: Option<ProxyBody>,
    hint: SizeHint,
    end: bool,
}

impl Recoverable {
    /// `body` into `slot`, and the body a request sends from it.
    pub(crate) fn wrap(body: ProxyBody, slot: &Arc<Mutex<Option<ProxyBody>>>) -> ProxyBody {
        let (hint, end) = (body.size_hint(), body.is_end_stream());
        *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(body);
        Recoverable {
            slot: slot.clone(),
            body: None,
            hint,
            end,
        }
        .boxed_unsync()
    }

    /// The body, if no try took it.
    pub(crate) fn take(slot: &Arc<Mutex<Option<ProxyBody>>>) -> Option<ProxyBody> {
        slot.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// Whether the body is still untouched in `slot`.
    pub(crate) fn waiting(slot: &Arc<Mutex<Option<ProxyBody>>>) -> bool {
        slot.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }
}

/// The error of a [`Recoverable`] whose body another try took.
#[derive(Debug, thiserror::Error)]
#[error("the request body was taken by another try")]
struct BodyGone;

impl Body for Recoverable {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.body.is_none() {
            self.body = Recoverable::take(&self.slot);
        }
        match self.body.as_mut() {
            Some(b) => Pin::new(b).poll_frame(cx),
            None => Poll::Ready(Some(Err(Box::new(BodyGone)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().map_or(self.end, Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body.as_ref().map_or(self.hint, Body::size_hint)
    }
}

/// A request body cut off (with an error) once it passes its limit.
pub(crate) struct Limited {
    pub(crate) inner: ProxyBody,
    pub(crate) left: u64,
    pub(crate) tripped: Arc<AtomicBool>,
}

/// The error a [`Limited`] body ends with.
#[derive(Debug, thiserror::Error)]
#[error("request body larger than proxy-body-size")]
struct TooLarge;

impl Body for Limited {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(d) = frame.data_ref()
        {
            let n = d.len() as u64;
            if n > self.left {
                self.tripped.store(true, Ordering::Relaxed);
                return Poll::Ready(Some(Err(Box::new(TooLarge))));
            }
            self.left -= n;
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
