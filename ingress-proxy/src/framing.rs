//! Message framing checks of our own, on heads as hyper hands them over, so the
//! smuggling promises of docs/SECURITY.md do not depend on one hyper version.
//!
//! hyper's HTTP/1 parser refuses much before this code runs (invalid tokens, bare
//! CR, obs-fold, invalid or differing `Content-Length`, `Transfer-Encoding`
//! without a final `chunked`, `Transfer-Encoding` on HTTP/1.0). What it accepts is
//! checked again with the stricter rules of an edge proxy, which cannot know the
//! parser behind it. The checks themselves are pure and live in the core
//! ([`ingress_core::http1`], fuzzed by `fuzz/fuzz_targets/http1_head.rs`); this
//! module re-exports them and adds the IO side, a watched request body:
//!
//! - `Transfer-Encoding` must be exactly `chunked` (any case, OWS around it): a
//!   malformed list (empty elements, parameters, `chunked` twice or not last) is
//!   400; other codings before `chunked` are 501 (not implemented); both
//!   `Transfer-Encoding` and `Content-Length` are 400.
//! - `Content-Length` values must be digits only and all equal; duplicates are
//!   collapsed into one line.
//! - HTTP/1 size limits (nginx's `large_client_header_buffers 4 8k`, Envoy's 60
//!   KiB head): a request target over 8 KiB is 414, a header field over 8 KiB or
//!   a head over 60 KiB is 431 ([`HeadLimits`] follows `--max-request-head`).
//! - The path: an encoded control byte (`%00`-`%1F`, `%7F`) is 400, and so is a
//!   dot segment that only appears once `%2F`, `%5C` or `\` is read as a separator
//!   (a backend decoding them would resolve it past the route matched).
//!
//! Every refusal closes the HTTP/1 connection after the answer. Upstream
//! responses get the same treatment ([`check_response`]): 502 rather than a
//! re-framed guess.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

pub use ingress_core::http1::{
    HeadLimits, MAX_FIELD, MAX_HEAD, MAX_REQUEST_TARGET, Refusal, check_path, check_request,
    check_response,
};

use crate::service::{BoxError, ProxyBody};

/// A client's request body, watched: when it ends in an error (a broken chunk,
/// the client gone), the flag [`Watched::new`] returns is set, so the proxy
/// answers 400 rather than blaming the upstream. The first frame can be read
/// ahead and replayed ([`Watched::read_ahead`]).
pub(crate) struct Watched {
    first: Option<Frame<Bytes>>,
    inner: ProxyBody,
    failed: Arc<AtomicBool>,
}

impl Watched {
    pub(crate) fn new(inner: ProxyBody) -> (Self, Arc<AtomicBool>) {
        let failed = Arc::new(AtomicBool::new(false));
        let w = Watched {
            first: None,
            inner,
            failed: failed.clone(),
        };
        (w, failed)
    }

    /// Read the first frame now (before any upstream contact), so that a body
    /// broken from its first byte is refused without forwarding anything.
    pub(crate) async fn read_ahead(&mut self) -> Result<(), BoxError> {
        use http_body_util::BodyExt;
        match self.inner.frame().await {
            Some(Ok(f)) => {
                self.first = Some(f);
                Ok(())
            }
            Some(Err(e)) => {
                self.failed.store(true, Ordering::Relaxed);
                Err(e)
            }
            None => Ok(()),
        }
    }
}

impl Body for Watched {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(f) = self.first.take() {
            return Poll::Ready(Some(Ok(f)));
        }
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Err(_))) = &polled {
            self.failed.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let extra = self
            .first
            .as_ref()
            .and_then(Frame::data_ref)
            .map_or(0, |d| d.len() as u64);
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower().saturating_add(extra));
        if let Some(u) = inner.upper() {
            hint.set_upper(u.saturating_add(extra));
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body that fails on its first poll, as a broken chunk does.
    struct Broken;

    impl Body for Broken {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(Some(Err("invalid chunk size".into())))
        }
    }

    #[tokio::test]
    async fn watched_bodies_replay_the_first_frame_and_report_errors() {
        use http_body_util::{BodyExt, Full};
        let body = Full::new(Bytes::from_static(b"hello"))
            .map_err(|never| match never {})
            .boxed_unsync();
        let (mut w, failed) = Watched::new(body);
        assert!(w.read_ahead().await.is_ok());
        assert!(!w.is_end_stream());
        assert_eq!(w.size_hint().lower(), 5);
        let all = w.collect().await.map(|c| c.to_bytes());
        assert_eq!(all.ok().as_deref(), Some(&b"hello"[..]));
        assert!(!failed.load(Ordering::Relaxed));

        let (mut w, failed) = Watched::new(Broken.boxed_unsync());
        assert!(w.read_ahead().await.is_err());
        assert!(failed.load(Ordering::Relaxed));
        let (w, failed) = Watched::new(Broken.boxed_unsync());
        assert!(w.collect().await.is_err());
        assert!(failed.load(Ordering::Relaxed), "seen while streaming too");
    }
}
