//! Message framing checks of our own, on heads as hyper hands them over, so the
//! smuggling promises of docs/SECURITY.md do not depend on one hyper version.
//!
//! hyper's HTTP/1 parser refuses much before this code runs (invalid tokens, bare
//! CR, obs-fold, invalid or differing `Content-Length`, `Transfer-Encoding`
//! without a final `chunked`, `Transfer-Encoding` on HTTP/1.0). What it accepts is
//! checked again here, with the stricter rules of an edge proxy, which cannot know
//! the parser behind it:
//!
//! - `Transfer-Encoding` must be exactly `chunked` (any case, OWS around it): a
//!   malformed list (empty elements, parameters, `chunked` twice or not last) is
//!   400; other codings before `chunked` are 501 (not implemented); both
//!   `Transfer-Encoding` and `Content-Length` are 400.
//! - `Content-Length` values must be digits only and all equal; duplicates are
//!   collapsed into one line.
//! - HTTP/1 size limits (nginx's `large_client_header_buffers 4 8k`, Envoy's 60
//!   KiB head): a request target over 8 KiB is 414, a header field over 8 KiB or
//!   a head over 60 KiB is 431.
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
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode, Uri, Version};
use hyper::body::{Body, Frame, SizeHint};

use crate::service::{BoxError, ProxyBody};

/// The longest request target accepted on HTTP/1 with the default
/// `--max-request-head` (414 beyond); see [`HeadLimits`].
pub const MAX_REQUEST_TARGET: usize = HeadLimits::DEFAULT.target;
/// The longest header field (name, `: ` and value) accepted on HTTP/1 with the
/// default `--max-request-head` (431 beyond); see [`HeadLimits`].
pub const MAX_FIELD: usize = HeadLimits::DEFAULT.field;
/// The largest request head (request line and fields) accepted on HTTP/1 with the
/// default `--max-request-head` (431 beyond); see [`HeadLimits`].
pub const MAX_HEAD: usize = HeadLimits::DEFAULT.head;

/// The size checks of an HTTP/1 request head, derived from the connection's
/// `--max-request-head` (`Limits::max_request_head`, the size of hyper's read
/// buffer for the head, which is the backstop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// The longest request target (414 beyond).
    pub target: usize,
    /// The longest header field: name, `: ` and value (431 beyond).
    pub field: usize,
    /// The largest head: request line and fields (431 beyond).
    pub head: usize,
}

impl HeadLimits {
    /// For the default `--max-request-head` of 64 KiB: 8 KiB, 8 KiB, 60 KiB.
    pub const DEFAULT: HeadLimits = HeadLimits::for_max_request_head(64 * 1024);

    /// For a `--max-request-head` of `max` bytes: the head may take all but a
    /// sixteenth of it (60 KiB of 64 KiB, Envoy's default); the request target and
    /// each field an eighth, but at least 8 KiB (nginx's
    /// `large_client_header_buffers` line size) and never more than the head.
    pub const fn for_max_request_head(max: usize) -> Self {
        let head = max - max / 16;
        let line = if max / 8 > 8 * 1024 {
            max / 8
        } else {
            8 * 1024
        };
        let line = if line > head { head } else { line };
        HeadLimits {
            target: line,
            field: line,
            head,
        }
    }
}

impl Default for HeadLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why a request is refused: the status and a short reason for the log and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// 400, 414, 431 or 501.
    pub status: StatusCode,
    /// A stable reason (`bad-transfer-encoding`, ...).
    pub why: &'static str,
}

const fn refuse(status: StatusCode, why: &'static str) -> Refusal {
    Refusal { status, why }
}

/// Check an HTTP/1 request head (other versions pass): framing headers and the
/// size `limits`. Collapses identical `Content-Length` lines into one.
pub fn check_request(
    version: Version,
    method: &Method,
    uri: &Uri,
    headers: &mut HeaderMap,
    limits: HeadLimits,
) -> Result<(), Refusal> {
    if version > Version::HTTP_11 {
        return Ok(());
    }
    // The request target as sent (origin or absolute form), without allocating.
    let target = uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(0, |p| p.as_str().len());
    if target > limits.target {
        return Err(refuse(StatusCode::URI_TOO_LONG, "request-target-too-long"));
    }
    let mut head = method.as_str().len() + target + 12;
    for (name, value) in headers.iter() {
        let field = name.as_str().len() + 2 + value.len();
        if field > limits.field {
            return Err(refuse(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "header-field-too-large",
            ));
        }
        head += field + 2;
    }
    if head > limits.head {
        return Err(refuse(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request-head-too-large",
        ));
    }
    let length = content_length(headers).map_err(|why| refuse(StatusCode::BAD_REQUEST, why))?;
    if headers.contains_key(header::TRANSFER_ENCODING) {
        if version != Version::HTTP_11 {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "transfer-encoding-on-http10",
            ));
        }
        if length.is_some() {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "content-length-with-transfer-encoding",
            ));
        }
        return match transfer_coding(headers) {
            Coding::Chunked => Ok(()),
            Coding::Unsupported => Err(refuse(
                StatusCode::NOT_IMPLEMENTED,
                "unsupported-transfer-coding",
            )),
            Coding::Invalid => Err(refuse(StatusCode::BAD_REQUEST, "bad-transfer-encoding")),
        };
    }
    Ok(())
}

/// Check a request path (any version): malformed percent-escapes, encoded control
/// bytes, and dot segments hidden behind encoded separators.
pub fn check_path(path: &str) -> Result<(), Refusal> {
    let b = path.as_bytes();
    let mut hidden_separator = false;
    for (i, &c) in b.iter().enumerate() {
        if c == b'\\' {
            hidden_separator = true;
        }
        if c != b'%' {
            continue;
        }
        let hex = b.get(i + 1..i + 3).and_then(|h| {
            let h = std::str::from_utf8(h).ok()?;
            u8::from_str_radix(h, 16).ok()
        });
        match hex {
            // A `%` that starts no escape (nginx answers 400 too): decoders disagree on
            // it, and `%%341` would read as `%41` after one decoding and `A` after two.
            None => return Err(refuse(StatusCode::BAD_REQUEST, "bad-percent-encoding")),
            Some(0x00..=0x1f | 0x7f) => {
                return Err(refuse(StatusCode::BAD_REQUEST, "encoded-control-in-path"));
            }
            Some(b'/' | b'\\') => hidden_separator = true,
            _ => {}
        }
    }
    if !hidden_separator {
        return Ok(());
    }
    // Read every separator form as one, and `%2e` as a dot.
    let lowered = path.to_ascii_lowercase();
    let unified = lowered
        .replace("%2f", "/")
        .replace("%5c", "/")
        .replace('\\', "/")
        .replace("%2e", ".");
    if unified.split('/').any(|s| s == "." || s == "..") {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "dot-segment-behind-encoded-slash",
        ));
    }
    Ok(())
}

/// Check an upstream's HTTP/1 response head before it is passed on: a response
/// with both `Transfer-Encoding` and `Content-Length`, with a transfer coding
/// other than `chunked`, or with differing lengths is not forwarded (502).
/// Identical `Content-Length` lines are collapsed into one.
pub fn check_response(version: Version, headers: &mut HeaderMap) -> Result<(), &'static str> {
    if version > Version::HTTP_11 {
        return Ok(());
    }
    let length = content_length(headers).map_err(|_| "upstream-bad-content-length")?;
    if headers.contains_key(header::TRANSFER_ENCODING) {
        if length.is_some() {
            return Err("upstream-content-length-with-transfer-encoding");
        }
        if transfer_coding(headers) != Coding::Chunked {
            return Err("upstream-bad-transfer-encoding");
        }
    }
    Ok(())
}

/// The one `Content-Length` of a head (`None` without one); identical lines are
/// collapsed. `Err` when a value is not digits only, or the values differ.
fn content_length(headers: &mut HeaderMap) -> Result<Option<u64>, &'static str> {
    let mut found: Option<u64> = None;
    let mut lines = 0;
    for v in headers.get_all(header::CONTENT_LENGTH) {
        lines += 1;
        let b = v.as_bytes();
        if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
            return Err("bad-content-length");
        }
        let n = std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or("bad-content-length")?;
        if found.is_some_and(|f| f != n) {
            return Err("conflicting-content-length");
        }
        found = Some(n);
    }
    if lines > 1
        && let Some(n) = found
    {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    Ok(found)
}

#[derive(Debug, PartialEq, Eq)]
enum Coding {
    /// Exactly `chunked`.
    Chunked,
    /// A well-formed list ending in one `chunked`, with other codings first.
    Unsupported,
    /// Anything else.
    Invalid,
}

/// Read the `Transfer-Encoding` lines as one list.
fn transfer_coding(headers: &HeaderMap) -> Coding {
    let mut codings = Vec::new();
    for v in headers.get_all(header::TRANSFER_ENCODING) {
        let Ok(v) = v.to_str() else {
            return Coding::Invalid;
        };
        for c in v.split(',') {
            let c = c.trim_matches([' ', '\t']);
            if c.is_empty() || !c.bytes().all(is_tchar) {
                return Coding::Invalid;
            }
            codings.push(c);
        }
    }
    let chunked = |c: &&str| c.eq_ignore_ascii_case("chunked");
    match codings.split_last() {
        Some((last, rest)) if chunked(last) && !rest.iter().any(chunked) => {
            if rest.is_empty() {
                Coding::Chunked
            } else {
                Coding::Unsupported
            }
        }
        _ => Coding::Invalid,
    }
}

/// RFC 9110 §5.6.2 token characters.
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

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

    fn head(lines: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in lines {
            h.append(
                header::HeaderName::from_bytes(n.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    fn check(version: Version, lines: &[(&str, &str)]) -> Result<HeaderMap, Refusal> {
        let mut h = head(lines);
        let uri: Uri = "/".parse().expect("uri");
        check_request(version, &Method::POST, &uri, &mut h, HeadLimits::DEFAULT).map(|()| h)
    }

    fn status(r: Result<HeaderMap, Refusal>) -> u16 {
        r.map_or_else(|e| e.status.as_u16(), |_| 200)
    }

    #[test]
    fn transfer_encoding_must_be_chunked_alone() {
        let te = |v: &str| status(check(Version::HTTP_11, &[("transfer-encoding", v)]));
        assert_eq!(te("chunked"), 200);
        assert_eq!(te("CHUNKED"), 200);
        assert_eq!(te(" \tchunked\t "), 200);
        assert_eq!(te("gzip, chunked"), 501);
        assert_eq!(te("gzip"), 400);
        assert_eq!(te("chunked, gzip"), 400);
        assert_eq!(te(",chunked"), 400);
        assert_eq!(te("chunked,"), 400);
        assert_eq!(te("chunked, chunked"), 400);
        assert_eq!(te("chunked;x=1"), 400);
        assert_eq!(te("xchunked"), 400);
        assert_eq!(te(""), 400);
        let two = [
            ("transfer-encoding", "gzip"),
            ("transfer-encoding", "chunked"),
        ];
        assert_eq!(status(check(Version::HTTP_11, &two)), 501);
        let twice = [
            ("transfer-encoding", "chunked"),
            ("transfer-encoding", "chunked"),
        ];
        assert_eq!(status(check(Version::HTTP_11, &twice)), 400);
        let old = [("transfer-encoding", "chunked")];
        assert_eq!(status(check(Version::HTTP_10, &old)), 400);
        let both = [("content-length", "5"), ("transfer-encoding", "chunked")];
        assert_eq!(
            check(Version::HTTP_11, &both).map(|_| ()),
            Err(refuse(
                StatusCode::BAD_REQUEST,
                "content-length-with-transfer-encoding"
            ))
        );
        // HTTP/2 framing is the h2 layer's (connection headers are malformed there).
        assert_eq!(status(check(Version::HTTP_2, &both)), 200);
    }

    #[test]
    fn content_length_is_digits_and_one_value() {
        let cl = |v: &[&str]| {
            let lines: Vec<_> = v.iter().map(|v| ("content-length", *v)).collect();
            check(Version::HTTP_11, &lines)
        };
        for bad in [
            "+1",
            "-1",
            "0x1",
            "1_0",
            "1 0",
            "10, 10",
            "",
            "99999999999999999999",
        ] {
            assert_eq!(status(cl(&[bad])), 400, "{bad:?}");
        }
        assert_eq!(status(cl(&["10", "11"])), 400);
        let h = cl(&["10", "10"]).expect("identical lines");
        assert_eq!(h.get_all(header::CONTENT_LENGTH).iter().count(), 1);
        assert_eq!(status(cl(&["18446744073709551615"])), 200);
    }

    #[test]
    fn size_limits() {
        let uri: Uri = format!("/{}", "a".repeat(MAX_REQUEST_TARGET))
            .parse()
            .expect("uri");
        let mut h = HeaderMap::new();
        let r = check_request(
            Version::HTTP_11,
            &Method::GET,
            &uri,
            &mut h,
            HeadLimits::DEFAULT,
        );
        assert_eq!(r.map_err(|e| e.status.as_u16()), Err(414));
        let big = "v".repeat(MAX_FIELD);
        assert_eq!(status(check(Version::HTTP_11, &[("x", &big)])), 431);
        // 61 fields of 1 KiB (name, ": ", value) and their line ends.
        let kib = "v".repeat(1024 - 3);
        let many: Vec<_> = (0..61).map(|_| ("x", kib.as_str())).collect();
        assert_eq!(status(check(Version::HTTP_11, &many)), 431);
        assert_eq!(status(check(Version::HTTP_11, &many[..50])), 200);
    }

    #[test]
    fn head_limits_follow_max_request_head() {
        let k = 1024;
        let l = |max| {
            let h = HeadLimits::for_max_request_head(max);
            (h.target, h.field, h.head)
        };
        assert_eq!(l(64 * k), (8 * k, 8 * k, 60 * k));
        assert_eq!(l(8 * k), (7680, 7680, 7680));
        assert_eq!(l(16 * k), (8 * k, 8 * k, 15 * k));
        assert_eq!(l(256 * k), (32 * k, 32 * k, 240 * k));
        assert_eq!(l(1024 * k), (128 * k, 128 * k, 960 * k));
        // A larger --max-request-head admits what the default refuses.
        let uri: Uri = format!("/{}", "a".repeat(20 * k)).parse().expect("uri");
        let check = |limits| {
            check_request(
                Version::HTTP_11,
                &Method::GET,
                &uri,
                &mut HeaderMap::new(),
                limits,
            )
            .map_err(|e| e.status.as_u16())
        };
        assert_eq!(check(HeadLimits::DEFAULT), Err(414));
        assert_eq!(check(HeadLimits::for_max_request_head(256 * k)), Ok(()));
    }

    #[test]
    fn paths() {
        for ok in [
            "/",
            "/a%2Fb",
            "/repo%2Fname/tags",
            "/a%2e%2e",
            "/%20",
            "/a/../b",
            "/a%3F%23",
        ] {
            assert_eq!(check_path(ok), Ok(()), "{ok}");
        }
        for bad in [
            "/%00",
            "/a%0a",
            "/a%0D",
            "/a%7f",
            "/public%2F..%2Fadmin",
            "/public%2f%2e%2e%2fadmin",
            "/public%5C..%5Cadmin",
            "/public\\..\\admin",
            "/a%2F.",
            "/%zz",
            "/a%",
            "/a%4",
            "/%%341",
        ] {
            assert_eq!(
                check_path(bad).map_err(|r| r.status),
                Err(StatusCode::BAD_REQUEST),
                "{bad}"
            );
        }
    }

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

    #[test]
    fn responses() {
        let mut h = head(&[("content-length", "3"), ("transfer-encoding", "chunked")]);
        assert!(check_response(Version::HTTP_11, &mut h).is_err());
        let mut h = head(&[("transfer-encoding", "gzip")]);
        assert!(check_response(Version::HTTP_11, &mut h).is_err());
        let mut h = head(&[("content-length", "3"), ("content-length", "3")]);
        assert_eq!(check_response(Version::HTTP_11, &mut h), Ok(()));
        assert_eq!(h.get_all(header::CONTENT_LENGTH).iter().count(), 1);
        let mut h = head(&[("transfer-encoding", "chunked")]);
        assert_eq!(check_response(Version::HTTP_11, &mut h), Ok(()));
    }
}
