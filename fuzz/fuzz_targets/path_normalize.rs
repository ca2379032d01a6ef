//! The request path normaliser (`ingress_core::normalize_path`), which decides the path
//! that is both matched and forwarded. The input is the raw path (lossy UTF-8).
//!
//! Checks, for every input:
//! - the result starts with `/`, has no empty, `.` or `..` segment (except an empty last
//!   segment: a trailing slash), so no dot segment ever reaches matching or the upstream;
//! - it is a fixed point: normalising it again gives it back (no second decoding can
//!   change what a rule saw);
//! - no percent-escape of an unreserved character is left (`%41` would decode to `A`
//!   at the upstream and name another path than the one matched), but right after a
//!   literal `%`, where decoding would spell a new escape (`%%341` must not become `%41`);
//! - an encoded slash or backslash (`%2F`, `%5C`) is never turned into a separator: the
//!   result has no more `/` than the input (plus the leading one it may add).

#![no_main]

use ingress_core::routing::normalize_path;
use libfuzzer_sys::fuzz_target;

fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let out = normalize_path(&input);
    let s: &str = &out;
    assert!(s.starts_with('/'), "{input:?} -> {s:?}: no leading slash");
    let segments: Vec<&str> = s[1..].split('/').collect();
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        assert!(
            !matches!(*seg, "." | ".."),
            "{input:?} -> {s:?}: dot segment"
        );
        assert!(
            !seg.is_empty() || last,
            "{input:?} -> {s:?}: empty segment (repeated slash)"
        );
    }
    let b = s.as_bytes();
    for i in 0..b.len() {
        // Kept on purpose after a literal `%` (or `%` and a hex digit), where decoding
        // would spell a new escape (`%%341` must not become `%41`).
        let after_percent =
            (i >= 1 && b[i - 1] == b'%') || (i >= 2 && b[i - 2] == b'%' && hex(b[i - 1]).is_some());
        if b[i] == b'%' && !after_percent {
            if let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            ) {
                assert!(
                    !is_unreserved(h * 16 + l),
                    "{input:?} -> {s:?}: an escaped unreserved character is left at {i}"
                );
            }
        }
    }
    let again = normalize_path(s);
    assert_eq!(again, s, "{input:?} -> {s:?}: not a fixed point");
    let slashes = |t: &str| t.bytes().filter(|&c| c == b'/').count();
    let bound = slashes(&input) + usize::from(!input.starts_with('/'));
    assert!(
        slashes(s) <= bound,
        "{input:?} -> {s:?}: a separator appeared"
    );
});
