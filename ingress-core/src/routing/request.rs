//! [`RequestView`]: the parts of a request routing reads, and path normalisation.

use std::borrow::Cow;
use std::net::IpAddr;

use http::{HeaderMap, Method};

/// The listener a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// TLS.
    Https,
}

/// The parts of a request that routing reads. Borrowed, so building one costs nothing.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// The listener.
    pub scheme: Scheme,
    /// The Host header (or HTTP/2 `:authority`), as received; a port is ignored.
    pub host: &'a str,
    /// The request path, as received (normalised by [`RouteTable::route`](crate::RouteTable::route)).
    pub path: &'a str,
    /// The query string without `?`, if any.
    pub query: Option<&'a str>,
    /// The method.
    pub method: &'a Method,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The client address, once the adapter has decided which one to trust.
    pub client_ip: Option<IpAddr>,
}

impl<'a> RequestView<'a> {
    /// A GET request with no headers: handy for tests and examples.
    pub fn get(scheme: Scheme, host: &'a str, path_and_query: &'a str) -> Self {
        static EMPTY: std::sync::OnceLock<HeaderMap> = std::sync::OnceLock::new();
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        RequestView {
            scheme,
            host,
            path,
            query,
            method: &Method::GET,
            headers: EMPTY.get_or_init(HeaderMap::new),
            client_ip: None,
        }
    }
}

/// The host name routing compares: the Host header without port or trailing dot,
/// lower-cased into `buf` (no allocation for names up to 255 bytes).
pub(crate) fn host_key<'b>(host: &'b str, buf: &'b mut [u8; 256]) -> Option<&'b str> {
    // Byte loops rather than `str` searchers: this runs on every request.
    // Trim only when an end is whitespace (or not ASCII, which may be Unicode
    // whitespace): most Host headers need no pass for it.
    let edge = |c: Option<&u8>| c.is_some_and(|&c| c.is_ascii_whitespace() || !c.is_ascii());
    let host = if edge(host.as_bytes().first()) || edge(host.as_bytes().last()) {
        host.trim()
    } else {
        host
    };
    let b = host.as_bytes();
    // Byte range of the name; every cut is next to an ASCII byte, so slicing the
    // `str` there cannot fail.
    let (start, mut end) = if b.first() == Some(&b'[') {
        // IPv6 literal: [::1]:8080
        (1, 1 + b[1..].iter().position(|&c| c == b']')?)
    } else {
        // Strip `:port` (digits, possibly none) after the last colon.
        let mut i = b.len();
        while i > 0 && b[i - 1].is_ascii_digit() {
            i -= 1;
        }
        if i > 0 && b[i - 1] == b':' {
            (0, i - 1)
        } else {
            (0, b.len())
        }
    };
    if end > start && b[end - 1] == b'.' {
        end -= 1;
    }
    let name = host.get(start..end)?;
    if name.len() > buf.len() {
        return None;
    }
    if !has_ascii_upper(name.as_bytes()) {
        return Some(name);
    }
    let out = &mut buf[..name.len()];
    out.copy_from_slice(name.as_bytes());
    out.make_ascii_lowercase();
    std::str::from_utf8(out).ok()
}

/// Whether `b` holds an ASCII upper-case letter, eight bytes at a time (a Host
/// header is 20-30 bytes: three word tests instead of a test per byte).
pub(crate) fn has_ascii_upper(b: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const ONES: u64 = 0x0101_0101_0101_0101;
    // High bit of each byte set where the byte is in `A..=Z`. Bytes are first
    // cut to 7 bits, so no addition carries into the next byte; a byte whose own
    // high bit was set (not ASCII) is masked out by `!w`.
    let upper = |c: &[u8]| {
        let mut a = [0u8; 8];
        a.copy_from_slice(c);
        let w = u64::from_le_bytes(a);
        let low = w & !HIGH;
        let at_least_a = low + ONES * u64::from(0x80 - b'A');
        let above_z = low + ONES * u64::from(0x80 - b'Z' - 1);
        at_least_a & !above_z & !w & HIGH != 0
    };
    if b.len() < 8 {
        return b.iter().any(u8::is_ascii_uppercase);
    }
    let mut chunks = b.chunks_exact(8);
    if chunks.any(upper) {
        return true;
    }
    // The last eight bytes (overlapping the chunks: the test is idempotent).
    !chunks.remainder().is_empty() && upper(&b[b.len() - 8..])
}

/// Normalise a request path before matching, as nginx and Envoy do:
/// percent-encoded unreserved characters are decoded (`%41` → `A`, `%2e` → `.`),
/// `.` and `..` segments are resolved (RFC 3986 §5.2.4), repeated slashes merged, and
/// the result always starts with `/`. Other percent-escapes (`%2F`, `%25`...) stay as
/// they are, so an encoded slash never becomes a separator. Spaces and control
/// characters (which no HTTP parser lets through, but an embedder may pass) are
/// percent-encoded, so they are never matched or forwarded raw. Borrowed when
/// already normal.
pub fn normalize_path(path: &str) -> Cow<'_, str> {
    if is_normal(path) {
        return Cow::Borrowed(path);
    }
    let decoded = decode_unreserved(path);
    // One pass, writing `/segment`s into the output; `..` cuts back to the last `/`.
    let mut out = String::with_capacity(decoded.len() + 1);
    let mut trailing_slash = false;
    for seg in decoded.split('/') {
        trailing_slash = matches!(seg, "" | "." | "..");
        match seg {
            "" | "." => {}
            ".." => out.truncate(out.rfind('/').unwrap_or(0)),
            s => {
                out.push('/');
                out.push_str(s);
            }
        }
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    if out.contains(|c: char| c.is_control() || c == ' ') {
        out = encode_controls(&out);
    }
    Cow::Owned(out)
}

/// A query string as it may be sent on: spaces and control characters (C0, DEL,
/// C1) percent-encoded, as in the path, so that no query handed to the core
/// (an embedding gateway's parser may be laxer than hyper's) puts a raw one in
/// the upstream request line or a `Location`. Borrowed when there is none (one
/// table load per byte).
pub(crate) fn clean_query(query: &str) -> Cow<'_, str> {
    if query
        .bytes()
        .any(|b| NOT_NORMAL[usize::from(b)] && b != b'%')
        && query.contains(|c: char| c.is_control() || c == ' ')
    {
        Cow::Owned(encode_controls(query))
    } else {
        Cow::Borrowed(query)
    }
}

/// `path` with each space and control character percent-encoded (its UTF-8 bytes).
fn encode_controls(path: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(path.len() + 8);
    for c in path.chars() {
        if c.is_control() || c == ' ' {
            let mut buf = [0u8; 4];
            for &b in c.encode_utf8(&mut buf).as_bytes() {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 15)]));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Bytes that send a path to the slow path of [`normalize_path`]: `%`, and spaces
/// and control characters (C0, DEL, and C1, whose UTF-8 form starts with 0xC2),
/// which it encodes. One table load per byte on the hot path.
static NOT_NORMAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b <= 0x20 {
        t[b] = true;
        b += 1;
    }
    t[b'%' as usize] = true;
    t[0x7f] = true;
    t[0xc2] = true;
    t
};

fn is_normal(path: &str) -> bool {
    let b = path.as_bytes();
    if b.len() >= 8 && b[0] == b'/' && plain_words(b) {
        return true;
    }
    is_normal_bytes(path)
}

/// No byte that [`NOT_NORMAL`] flags (nor any other non-ASCII byte) and no `//`
/// or `/.` pair, eight bytes per step: about a third of the byte loop's
/// instructions on a typical path. `false` only means "look closer" (the byte
/// loop decides: a `.` after a `/` is usually a name such as `/.well-known`, and a
/// non-ASCII byte is usually a letter). `b` holds at least eight bytes.
fn plain_words(b: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    // A high bit set in the byte of each `c` in `w` (and, past a `c`, maybe in
    // the next byte: a false alarm that only sends the path to the byte loop).
    let has = |w: u64, c: u8| {
        let x = w ^ (ONES * u64::from(c));
        x.wrapping_sub(ONES) & !x & HIGH
    };
    let word = |i: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[i..i + 8]);
        u64::from_le_bytes(a)
    };
    // `carry`: the previous word ended in `/` (as the high bit of byte 0).
    let plain = |w: u64, carry: u64| {
        // Bytes under 0x21 (controls, space), and 0x7f or above (DEL, non-ASCII).
        let low = w.wrapping_sub(ONES * 0x21) & !w & HIGH;
        let high = (w | (w & LOW7).wrapping_add(ONES)) & HIGH;
        let slash = has(w, b'/');
        let after_slash = (slash << 8) | carry;
        let pair = after_slash & (slash | has(w, b'.'));
        (low | high | has(w, b'%') | pair == 0, slash >> 56)
    };
    let mut carry = 0;
    let mut i = 0;
    while i + 8 <= b.len() {
        let (ok, c) = plain(word(i), carry);
        if !ok {
            return false;
        }
        carry = c;
        i += 8;
    }
    // The last bytes as the last eight (overlapping checked ones, so the pair
    // across the boundary is inside this word: no carry needed).
    i == b.len() || plain(word(b.len() - 8), 0).0
}

fn is_normal_bytes(path: &str) -> bool {
    // One tight pass (this runs on every request): no `%`, and after each `/`
    // neither another `/` nor a `.` or `..` segment.
    let [b'/', rest @ ..] = path.as_bytes() else {
        return false;
    };
    let mut after_slash = true;
    for (i, &c) in rest.iter().enumerate() {
        if NOT_NORMAL[usize::from(c)] {
            return false;
        }
        if after_slash {
            if c == b'/' {
                return false;
            }
            if c == b'.' {
                match rest.get(i + 1) {
                    None | Some(b'/') => return false,
                    Some(b'.') if matches!(rest.get(i + 2), None | Some(b'/')) => return false,
                    _ => {}
                }
            }
        }
        after_slash = c == b'/';
    }
    true
}

fn decode_unreserved(path: &str) -> Cow<'_, str> {
    if !path.contains('%') {
        return Cow::Borrowed(path);
    }
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                let c = (h * 16 + l) as u8;
                // A decoded hex digit right after a literal `%` (or `%` and one hex
                // digit) would spell a new escape (`%%341` → `%41`) that a second
                // decoding, the upstream's, reads as another character: keep it encoded.
                let forms_escape = c.is_ascii_hexdigit()
                    && match out.as_slice() {
                        [.., b'%'] => true,
                        [.., b'%', d] => d.is_ascii_hexdigit(),
                        _ => false,
                    };
                if !forms_escape
                    && (c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~'))
                {
                    out.push(c);
                    i += 3;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    // Only ASCII bytes were substituted for ASCII escapes, so UTF-8 is preserved.
    Cow::Owned(
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        for (input, want) in [
            ("/", "/"),
            ("/foo", "/foo"),
            ("/foo/", "/foo/"),
            ("", "/"),
            ("foo", "/foo"),
            ("//foo///bar", "/foo/bar"),
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/a/b/..", "/a/"),
            ("/../../x", "/x"),
            ("/public/%2e%2e/admin", "/admin"),
            ("/public/%2E%2e/admin", "/admin"),
            ("/%61dmin", "/admin"),
            ("/a%2Fb", "/a%2Fb"),
            // A literal `%` before an escape of a hex digit: decoding it would make a
            // new escape (`%41`) out of two parts.
            ("/%%341dmin", "/%%341dmin"),
            ("/%4%31", "/%4%31"),
            ("/%%61", "/%%61"),
            // Spaces and control characters are encoded, never matched or sent raw.
            ("/a b", "/a%20b"),
            ("/\u{1}\u{1}/x", "/%01%01/x"),
            ("/a\u{7f}", "/a%7F"),
            ("/a\u{85}", "/a%C2%85"),
            ("/caf\u{e9}\u{a0}", "/caf\u{e9}\u{a0}"),
            ("/%%6a%6b", "/%jk"),
            ("/a%2f..%2fb", "/a%2f..%2fb"),
            ("/a/.hidden", "/a/.hidden"),
            ("/a/..b", "/a/..b"),
            ("/a/.", "/a/"),
            ("/%", "/%"),
            ("/%4", "/%4"),
            ("/%zz", "/%zz"),
            ("/é/./x", "/é/x"),
        ] {
            assert_eq!(normalize_path(input), want, "{input:?}");
        }
        assert!(matches!(normalize_path("/foo/bar"), Cow::Borrowed(_)));
    }

    #[test]
    fn host_keys() {
        let mut buf = [0u8; 256];
        assert_eq!(host_key("Foo.COM:8080", &mut buf), Some("foo.com"));
        assert_eq!(host_key("foo.com.", &mut buf), Some("foo.com"));
        assert_eq!(host_key("[::1]:80", &mut buf), Some("::1"));
        assert_eq!(host_key(&"a".repeat(300), &mut buf), None);
    }

    // The byte-loop versions must agree with the plain `str` versions they
    // replaced (kept here as the reference).
    fn reference_host_key<'b>(host: &'b str, buf: &'b mut [u8; 256]) -> Option<&'b str> {
        let host = host.trim();
        let name = if let Some(rest) = host.strip_prefix('[') {
            // IPv6 literal: [::1]:8080
            let end = rest.find(']')?;
            &rest[..end]
        } else {
            match host.rsplit_once(':') {
                Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
                _ => host,
            }
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        if name.len() > buf.len() {
            return None;
        }
        if !name.bytes().any(|b| b.is_ascii_uppercase()) {
            return Some(name);
        }
        let out = &mut buf[..name.len()];
        out.copy_from_slice(name.as_bytes());
        out.make_ascii_lowercase();
        std::str::from_utf8(out).ok()
    }

    fn reference_is_normal(path: &str) -> bool {
        let b = path.as_bytes();
        if b.first() != Some(&b'/') {
            return false;
        }
        let mut prev_slash = false;
        for (i, &c) in b.iter().enumerate() {
            match c {
                b'%' => return false,
                c if c <= b' ' || c == 0x7f || c == 0xc2 => return false,
                b'/' if prev_slash => return false,
                b'/' => prev_slash = true,
                b'.' if prev_slash => {
                    let next = b.get(i + 1).copied();
                    let next2 = b.get(i + 2).copied();
                    if matches!(next, None | Some(b'/'))
                        || (next == Some(b'.') && matches!(next2, None | Some(b'/')))
                    {
                        return false;
                    }
                    prev_slash = false;
                }
                _ => prev_slash = false,
            }
        }
        true
    }

    proptest::proptest! {
        #[test]
        fn host_key_agrees_with_the_reference(host in "[ \\ta-zA-Z0-9.:\\[\\]é-]{0,40}") {
            let (mut a, mut b) = ([0u8; 256], [0u8; 256]);
            proptest::prop_assert_eq!(host_key(&host, &mut a), reference_host_key(&host, &mut b));
        }

        /// The word-at-a-time test finds exactly the bytes `is_ascii_uppercase` does,
        /// at every length and alignment, also among non-ASCII and boundary bytes
        /// (`@`, `[`, `` ` ``, `{`, 0xC1, 0xDA).
        #[test]
        fn has_ascii_upper_agrees_with_the_byte_test(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(vec![b'@', b'A', b'Z', b'[', b'`', b'a', b'z', b'{', 0xC1, 0xDA, 0x80, 0xFF]),
                    proptest::num::u8::ANY,
                ],
                0..40,
            )
        ) {
            proptest::prop_assert_eq!(
                has_ascii_upper(&bytes),
                bytes.iter().any(u8::is_ascii_uppercase)
            );
        }

        #[test]
        fn is_normal_agrees_with_the_reference(path in "[/.a%é]{0,24}") {
            proptest::prop_assert_eq!(is_normal(&path), reference_is_normal(&path));
        }

        /// The word-at-a-time test on longer paths, with every byte class it
        /// flags (controls, space, DEL, C1 as 0xC2, `%`) and its neighbours
        /// (`!`, `&`, `~`, `é` as 0xC3 0xA9, `-`, `0`) at every alignment.
        #[test]
        fn is_normal_by_words_agrees_with_the_reference(
            path in "/[/.a%é\\x00\\x1f !&~\\x7f\\u{85}\\u{100}0-]{0,40}"
        ) {
            proptest::prop_assert_eq!(is_normal(&path), reference_is_normal(&path));
        }

        /// The normalised path is what is matched and forwarded: it never holds a
        /// dot segment or an empty one (but a trailing slash), it is a fixed point (a
        /// second normalisation, or the upstream's decoding of unreserved escapes,
        /// changes nothing), and no escaped unreserved character is left in it (but
        /// right after a literal `%`, where decoding would spell a new escape).
        #[test]
        fn normalised_paths_are_fixed_points(
            path in "(/|\\|\\.|\\.\\.|%|%2[eEfF]|%5[cC]|%[346][0-9a-fA-F]|%25|[0-9a-fA-F.]|x|é| |\\x01|\\u{85}){0,16}"
        ) {
            let out = normalize_path(&path);
            proptest::prop_assert!(out.starts_with('/'), "{path:?} -> {out:?}");
            proptest::prop_assert!(
                !out.contains(|c: char| c.is_control() || c == ' '),
                "{path:?} -> {out:?}"
            );
            let segments: Vec<&str> = out[1..].split('/').collect();
            for (i, seg) in segments.iter().enumerate() {
                proptest::prop_assert!(!matches!(*seg, "." | ".."), "{path:?} -> {out:?}");
                proptest::prop_assert!(!seg.is_empty() || i + 1 == segments.len(), "{path:?} -> {out:?}");
            }
            let again = normalize_path(&out);
            proptest::prop_assert_eq!(&again, &out, "{:?}", path);
            let b = out.as_bytes();
            for i in 0..b.len() {
                if b[i] != b'%' {
                    continue;
                }
                let hex = |j: usize| b.get(j).and_then(|&c| (c as char).to_digit(16));
                // Kept on purpose after a literal `%` (or `%` and a hex digit), where
                // decoding would spell a new escape.
                let after_percent = (i >= 1 && b[i - 1] == b'%')
                    || (i >= 2 && b[i - 2] == b'%' && hex(i - 1).is_some());
                if let (Some(h), Some(l), false) = (hex(i + 1), hex(i + 2), after_percent) {
                    let c = (h * 16 + l) as u8;
                    proptest::prop_assert!(
                        !(c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')),
                        "{path:?} -> {out:?}: escaped unreserved left at {i}"
                    );
                }
            }
        }
    }
}
