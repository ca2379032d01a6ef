//! HTTP/1 message framing checks for an edge proxy: pure functions over a parsed
//! request or response head (`http` types), no IO.
//!
//! **Contract.** The gateway must never disagree with a compliant backend about
//! where one message ends and the next begins. An HTTP/1 parser (hyper's, in the
//! reference proxy) refuses much before these run (invalid tokens, bare CR,
//! obs-fold, whitespace before a colon); what it accepts is checked again here with
//! the stricter rules of an edge proxy, which cannot know the parser behind it, so
//! the smuggling promises of docs/SECURITY.md do not depend on one parser version:
//!
//! - `Transfer-Encoding` must be exactly `chunked` (any case, OWS around it): a
//!   malformed list (empty elements, parameters, `chunked` twice or not last) is
//!   400; other codings before `chunked` are 501 (not implemented); both
//!   `Transfer-Encoding` and `Content-Length` are 400; `Transfer-Encoding` on
//!   HTTP/1.0 is 400.
//! - `Content-Length` values must be digits only and all equal; duplicates are
//!   collapsed into one line.
//! - Size limits (nginx's `large_client_header_buffers 4 8k`, Envoy's 60 KiB
//!   head): a request target over 8 KiB is 414, a header field over 8 KiB or a head
//!   over 60 KiB is 431 ([`HeadLimits`] scales them with the head buffer).
//! - The path ([`check_path`]): a malformed escape or an encoded control byte
//!   (`%00`-`%1F`, `%7F`) is 400, and so is a dot segment that only appears once
//!   `%2F`, `%5C` or `\` is read as a separator.
//!
//! A head that passes [`check_request`] has one unambiguous [`BodyFraming`]
//! ([`request_framing`]). Upstream responses get the same treatment
//! ([`check_response`]): a proxy answers 502 rather than re-framing a guess.
//!
//! ```
//! use http::{HeaderMap, HeaderValue, Method, Uri, Version};
//! use ingress_core::http1::{BodyFraming, HeadLimits, check_request, request_framing};
//!
//! let uri: Uri = "/upload".parse().unwrap();
//! let mut headers = HeaderMap::new();
//! headers.append("content-length", HeaderValue::from_static("5"));
//! headers.append("content-length", HeaderValue::from_static("5"));
//! let ok = check_request(Version::HTTP_11, &Method::POST, &uri, &mut headers, HeadLimits::DEFAULT);
//! assert_eq!(ok, Ok(()));
//! // Identical lines were collapsed into one.
//! assert_eq!(headers.get_all("content-length").iter().count(), 1);
//! assert_eq!(request_framing(Version::HTTP_11, &headers), Ok(BodyFraming::Length(5)));
//!
//! // CL.TE: refused with 400 (and the caller closes the connection).
//! headers.append("transfer-encoding", HeaderValue::from_static("chunked"));
//! let refused = check_request(Version::HTTP_11, &Method::POST, &uri, &mut headers, HeadLimits::DEFAULT);
//! assert_eq!(refused.map_err(|r| (r.status.as_u16(), r.why)),
//!            Err((400, "content-length-with-transfer-encoding")));
//! ```

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode, Uri, Version};

/// The longest request target accepted on HTTP/1 with the default limits (414
/// beyond); see [`HeadLimits`].
pub const MAX_REQUEST_TARGET: usize = HeadLimits::DEFAULT.target;
/// The longest header field (name, `: ` and value) accepted on HTTP/1 with the
/// default limits (431 beyond); see [`HeadLimits`].
pub const MAX_FIELD: usize = HeadLimits::DEFAULT.field;
/// The largest request head (request line and fields) accepted on HTTP/1 with the
/// default limits (431 beyond); see [`HeadLimits`].
pub const MAX_HEAD: usize = HeadLimits::DEFAULT.head;

/// The size checks of an HTTP/1 request head, derived from the size of the
/// parser's head buffer (the proxy's `--max-request-head`, which is the backstop).
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
    /// For the default head buffer of 64 KiB: 8 KiB, 8 KiB, 60 KiB.
    pub const DEFAULT: HeadLimits = HeadLimits::for_max_request_head(64 * 1024);

    /// For a head buffer of `max` bytes: the head may take all but a sixteenth of
    /// it (60 KiB of 64 KiB, Envoy's default); the request target and each field an
    /// eighth, but at least 8 KiB (nginx's `large_client_header_buffers` line size)
    /// and never more than the head.
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
/// The connection is to be closed after the answer.
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

/// How the body of an HTTP/1 message is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// Neither `Content-Length` nor `Transfer-Encoding`: a request has no body.
    None,
    /// One `Content-Length` (identical lines count as one).
    Length(u64),
    /// `Transfer-Encoding: chunked` alone.
    Chunked,
}

/// Check an HTTP/1 request head (other versions pass: their framing is the h2 or
/// h3 layer's): framing headers and the size `limits`. Collapses identical
/// `Content-Length` lines into one.
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
    if length.lines > 1
        && let Some(n) = length.value
    {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    framing(version, length.value, headers)
        .map(|_| ())
        .map_err(|why| {
            let status = if why == "unsupported-transfer-coding" {
                StatusCode::NOT_IMPLEMENTED
            } else {
                StatusCode::BAD_REQUEST
            };
            refuse(status, why)
        })
}

/// The framing of an HTTP/1 request head as [`check_request`] reads it, without
/// changing anything: `Err` with the reason [`check_request`] would give when the
/// framing headers are refused (size limits are not checked here). HTTP/2 and
/// later give [`BodyFraming::None`] (their framing is not in the headers).
pub fn request_framing(version: Version, headers: &HeaderMap) -> Result<BodyFraming, &'static str> {
    if version > Version::HTTP_11 {
        return Ok(BodyFraming::None);
    }
    let length = content_length(headers)?;
    framing(version, length.value, headers)
}

fn framing(
    version: Version,
    length: Option<u64>,
    headers: &HeaderMap,
) -> Result<BodyFraming, &'static str> {
    if !headers.contains_key(header::TRANSFER_ENCODING) {
        return Ok(length.map_or(BodyFraming::None, BodyFraming::Length));
    }
    if version != Version::HTTP_11 {
        return Err("transfer-encoding-on-http10");
    }
    if length.is_some() {
        return Err("content-length-with-transfer-encoding");
    }
    match transfer_coding(headers) {
        Coding::Chunked => Ok(BodyFraming::Chunked),
        Coding::Unsupported => Err("unsupported-transfer-coding"),
        Coding::Invalid => Err("bad-transfer-encoding"),
    }
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
/// other than `chunked`, or with differing lengths is not to be forwarded (502).
/// Identical `Content-Length` lines are collapsed into one.
pub fn check_response(version: Version, headers: &mut HeaderMap) -> Result<(), &'static str> {
    if version > Version::HTTP_11 {
        return Ok(());
    }
    let length = content_length(headers).map_err(|_| "upstream-bad-content-length")?;
    if length.lines > 1
        && let Some(n) = length.value
    {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        if length.value.is_some() {
            return Err("upstream-content-length-with-transfer-encoding");
        }
        if transfer_coding(headers) != Coding::Chunked {
            return Err("upstream-bad-transfer-encoding");
        }
    }
    Ok(())
}

/// The `Content-Length` lines of a head: their one value and how many lines.
struct Length {
    value: Option<u64>,
    lines: usize,
}

/// The one `Content-Length` of a head (`None` without one). `Err` when a value is
/// not digits only, or the values differ.
fn content_length(headers: &HeaderMap) -> Result<Length, &'static str> {
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
    Ok(Length {
        value: found,
        lines,
    })
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
    let mut count = 0usize;
    let mut last_chunked = false;
    let mut chunked_before_last = false;
    for v in headers.get_all(header::TRANSFER_ENCODING) {
        let Ok(v) = v.to_str() else {
            return Coding::Invalid;
        };
        for c in v.split(',') {
            let c = c.trim_matches([' ', '\t']);
            if c.is_empty() || !c.bytes().all(is_tchar) {
                return Coding::Invalid;
            }
            chunked_before_last |= last_chunked;
            last_chunked = c.eq_ignore_ascii_case("chunked");
            count += 1;
        }
    }
    match (last_chunked, chunked_before_last, count) {
        (true, false, 1) => Coding::Chunked,
        (true, false, _) => Coding::Unsupported,
        _ => Coding::Invalid,
    }
}

/// RFC 9110 §5.6.2 token characters.
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

#[cfg(test)]
mod tests;
