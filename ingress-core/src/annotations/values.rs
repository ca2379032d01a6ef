//! Value grammars: annotation strings to typed values, or the rule they break.
//!
//! Every parser is anchored (the whole value must match), strict (no silent
//! fallback), and returns the broken rule as a short sentence that ends up in the
//! diagnostic. The engine has already rejected control characters and overlong values.

use std::net::IpAddr;
use std::time::Duration;

use http::{HeaderName, HeaderValue, StatusCode};
use ipnet::IpNet;
use regex::{Regex, RegexBuilder};

/// The reason a value is rejected.
pub type Invalid = String;

/// Size limit of a compiled user regex (bytes of program); far above any sane path.
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// Go's `strconv.ParseBool`, as ingress-nginx reads booleans.
pub fn boolean(s: &str) -> Result<bool, Invalid> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err("expected a boolean: true or false".into()),
    }
}

/// A non-negative decimal integer (no sign, no spaces, no unit).
pub fn uint(s: &str) -> Result<u64, Invalid> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("expected a non-negative whole number".into());
    }
    s.parse::<u64>()
        .map_err(|_| "the number is too large".to_string())
}

/// A non-negative integer no greater than `max`.
pub fn uint_max(s: &str, max: u64) -> Result<u64, Invalid> {
    let n = uint(s)?;
    if n > max {
        return Err(format!("expected a whole number from 0 to {max}"));
    }
    Ok(n)
}

/// A possibly negative decimal integer.
pub fn int(s: &str) -> Result<i64, Invalid> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("expected a whole number".into());
    }
    s.parse::<i64>()
        .map_err(|_| "the number is too large".to_string())
}

/// Whole seconds without a unit (`proxy-read-timeout: "60"`), as ingress-nginx takes
/// them; nginx time units (`500ms`, `30s`, `5m`, `1h`) are accepted too.
pub fn seconds(s: &str) -> Result<Duration, Invalid> {
    let rule = "expected whole seconds (`60`) or an nginx time (`500ms`, `30s`, `5m`, `1h`)";
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| rule.to_string())?;
    let ms = match unit {
        "" | "s" => n.checked_mul(1000),
        "ms" => Some(n),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => return Err(rule.into()),
    }
    .ok_or_else(|| "the duration is too large".to_string())?;
    Ok(Duration::from_millis(ms))
}

/// An nginx size: digits and an optional `b`, `k`, `m` or `g` (either case). Bytes.
pub fn size(s: &str) -> Result<u64, Invalid> {
    let rule = "expected an nginx size: digits and an optional unit k, m or g (`8k`, `1m`)";
    let (num, mult) = match s.as_bytes().last() {
        Some(b'b' | b'B') => (&s[..s.len() - 1], 1u64),
        Some(b'k' | b'K') => (&s[..s.len() - 1], 1 << 10),
        Some(b'm' | b'M') => (&s[..s.len() - 1], 1 << 20),
        Some(b'g' | b'G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n = uint(num).map_err(|_| rule.to_string())?;
    n.checked_mul(mult)
        .ok_or_else(|| "the size is too large".to_string())
}

/// A status code in `range` (inclusive).
pub fn status_in(s: &str, lo: u16, hi: u16) -> Result<StatusCode, Invalid> {
    let n = uint(s).map_err(|_| format!("expected a status code from {lo} to {hi}"))?;
    if n < u64::from(lo) || n > u64::from(hi) {
        return Err(format!("expected a status code from {lo} to {hi}"));
    }
    StatusCode::from_u16(n as u16).map_err(|_| format!("expected a status code from {lo} to {hi}"))
}

/// A comma-separated list of 4xx/5xx status codes (`custom-http-errors`).
pub fn error_codes(s: &str) -> Result<Vec<StatusCode>, Invalid> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        out.push(
            status_in(item, 400, 599)
                .map_err(|_| format!("`{item}` is not a 4xx or 5xx status code"))?,
        );
    }
    if out.is_empty() {
        return Err("expected a comma-separated list of 4xx/5xx status codes".into());
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// One header name (RFC 9110 token), lower-cased.
pub fn header_name(s: &str) -> Result<HeaderName, Invalid> {
    HeaderName::from_bytes(s.as_bytes())
        .map_err(|_| format!("`{s}` is not a valid header name (RFC 9110 token characters)"))
}

/// A comma-separated list of header names (spaces around items allowed).
pub fn header_names(s: &str) -> Result<Vec<HeaderName>, Invalid> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        out.push(header_name(item)?);
    }
    if out.is_empty() {
        return Err("expected a comma-separated list of header names".into());
    }
    Ok(out)
}

/// A header value: visible ASCII and spaces (no CR, LF or NUL).
pub fn header_value(s: &str) -> Result<HeaderValue, Invalid> {
    if s.bytes().any(|b| b < 0x20 && b != b'\t' || b == 0x7f) {
        return Err("a header value cannot hold control characters".into());
    }
    HeaderValue::from_str(s).map_err(|_| format!("`{s}` is not a valid header value"))
}

/// A comma-separated list of IP addresses and CIDRs, as ingress-nginx reads
/// `*-source-range`: items trimmed, host bits cleared (`10.0.0.5/24` is
/// `10.0.0.0/24`), a bare address is a host entry, sorted and deduplicated. One bad
/// item rejects the whole list.
pub fn cidrs(s: &str) -> Result<Vec<IpNet>, Invalid> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim) {
        if item.is_empty() {
            continue;
        }
        let net = if item.contains('/') {
            item.parse::<IpNet>()
                .map(|n| n.trunc())
                .map_err(|_| format!("`{item}` is not an IP address or CIDR"))?
        } else {
            let ip: IpAddr = item
                .parse()
                .map_err(|_| format!("`{item}` is not an IP address or CIDR"))?;
            IpNet::from(ip)
        };
        out.push(net);
    }
    if out.is_empty() {
        return Err("expected a comma-separated list of IP addresses or CIDRs".into());
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Whether `ip` is in any of `nets` (IPv4-mapped IPv6 addresses count as IPv4).
pub fn ip_in(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    nets.iter().any(|n| n.contains(&ip))
}

/// A user regex, compiled once with the linear-time engine and a size limit.
/// PCRE-only syntax (look-around, backreferences) is rejected, not changed.
pub fn regex(pattern: &str, case_insensitive: bool) -> Result<Regex, Invalid> {
    RegexBuilder::new(pattern)
        .case_insensitive(case_insensitive)
        .size_limit(REGEX_SIZE_LIMIT)
        .nest_limit(64)
        .build()
        .map_err(|e| {
            let msg = e.to_string();
            let last = msg
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            let hint = if pattern.contains("(?=")
                || pattern.contains("(?!")
                || pattern.contains("(?<=")
                || pattern.contains("(?<!")
            {
                " (look-around is PCRE-only; this gateway's regexes run in linear time)"
            } else {
                ""
            };
            format!(
                "not a valid regex: {}{hint}",
                last.trim().trim_start_matches("error: ")
            )
        })
}

/// A compiled user regex that compares by its source text.
#[derive(Debug, Clone)]
pub struct Pattern(pub Regex);

impl Pattern {
    /// The source text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for Pattern {}

impl std::hash::Hash for Pattern {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.as_str().hash(state);
    }
}

/// An absolute http(s) URL, e.g. a redirect target. Parsed, not pattern-matched.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Url {
    /// `http` or `https`.
    pub scheme: http::uri::Scheme,
    /// Host and optional port.
    pub authority: http::uri::Authority,
    /// Path and query as written (empty when the URL names none).
    pub path_and_query: String,
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme, self.authority, self.path_and_query
        )
    }
}

/// An absolute `http://` or `https://` URL with a host.
pub fn url(s: &str) -> Result<Url, Invalid> {
    if s.contains(char::is_whitespace) || s.contains('$') {
        return Err("expected an absolute http(s) URL without spaces or nginx variables".into());
    }
    let uri: http::Uri = s.parse().map_err(|_| format!("`{s}` is not a valid URL"))?;
    let scheme = uri
        .scheme()
        .filter(|sc| **sc == http::uri::Scheme::HTTP || **sc == http::uri::Scheme::HTTPS)
        .cloned()
        .ok_or_else(|| "expected a URL starting with http:// or https://".to_string())?;
    let authority = uri
        .authority()
        .filter(|a| !a.host().is_empty() && !a.as_str().contains('@'))
        .cloned()
        .ok_or_else(|| "expected a URL with a host (and no user info)".to_string())?;
    // `http::Uri` reports `/` for a URL without a path; keep what was written.
    let after_authority = &s[s.find("://").map_or(0, |i| i + 3) + authority.as_str().len()..];
    let path_and_query = if after_authority.is_empty() {
        String::new()
    } else {
        uri.path_and_query()
            .map_or_else(String::new, |p| p.as_str().to_string())
    };
    Ok(Url {
        scheme,
        authority,
        path_and_query,
    })
}

/// A path that starts with `/` and holds only URL path characters (no spaces,
/// quotes, `;`, `{`, `}`, `#` or `?` unless `allow_query`).
pub fn path(s: &str, allow_query: bool) -> Result<String, Invalid> {
    if !s.starts_with('/') {
        return Err("expected a path starting with `/`".into());
    }
    let ok = |c: char| {
        c.is_ascii_alphanumeric()
            || "-._~/:@!$&'()*+,=%".contains(c)
            || (allow_query && (c == '?' || c == '='))
    };
    if let Some(bad) = s.chars().find(|&c| !ok(c)) {
        return Err(format!("`{bad}` is not allowed in a path"));
    }
    Ok(s.to_string())
}

/// A DNS-1123 host name (lower-case labels), optionally with `:port`.
pub fn host(s: &str, allow_port: bool) -> Result<String, Invalid> {
    let (name, port) = match s.rsplit_once(':') {
        Some((n, p)) if allow_port => (n, Some(p)),
        _ => (s, None),
    };
    if let Some(p) = port {
        uint_max(p, 65535).map_err(|_| format!("`{p}` is not a port number"))?;
    }
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if !valid {
        return Err(format!("`{name}` is not a valid host name"));
    }
    Ok(s.to_ascii_lowercase())
}

/// A DNS-1123 label, e.g. an object name (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, 63 max);
/// object names may also hold dots (DNS-1123 subdomain).
pub fn object_name(s: &str) -> Result<String, Invalid> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}` is not a valid object name (lower-case DNS-1123)"
        ))
    }
}

/// A reference to an object by `name` or `namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectName {
    /// The namespace, if written.
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
}

/// `name` or `namespace/name`.
pub fn object_ref(s: &str) -> Result<ObjectName, Invalid> {
    match s.split_once('/') {
        Some((ns, name)) => Ok(ObjectName {
            namespace: Some(object_name(ns)?),
            name: object_name(name)?,
        }),
        None => Ok(ObjectName {
            namespace: None,
            name: object_name(s)?,
        }),
    }
}

/// One of `options` (ASCII case-insensitive); returns the index.
pub fn one_of(s: &str, options: &[&str]) -> Result<usize, Invalid> {
    options
        .iter()
        .position(|o| o.eq_ignore_ascii_case(s))
        .ok_or_else(|| format!("expected one of: {}", options.join(", ")))
}

/// Levenshtein distance, for "did you mean" suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_follow_go() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(boolean(t), Ok(true));
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(boolean(f), Ok(false));
        }
        for bad in ["", "yes", "on", "tRUE", " true"] {
            assert!(boolean(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(size("0"), Ok(0));
        assert_eq!(size("8k"), Ok(8192));
        assert_eq!(size("1M"), Ok(1 << 20));
        assert_eq!(size("2g"), Ok(2 << 30));
        assert_eq!(size("10b"), Ok(10));
        for bad in ["", "k", "1.5m", "1 m", "-1", "1t", "99999999999999999999g"] {
            assert!(size(bad).is_err(), "{bad:?}");
        }
        assert_eq!(seconds("60"), Ok(Duration::from_secs(60)));
        assert_eq!(seconds("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(seconds("5m"), Ok(Duration::from_secs(300)));
        for bad in ["", "s", "1.5", "-1", "10d", "1 s"] {
            assert!(seconds(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cidr_lists_normalise_and_reject_whole() {
        let v = cidrs(" 10.0.0.5/24, 172.10.0.1,10.0.0.0/24 , ::1").unwrap_or_default();
        let s: Vec<String> = v.iter().map(|n| n.to_string()).collect();
        assert_eq!(s, ["10.0.0.0/24", "172.10.0.1/32", "::1/128"]);
        assert!(cidrs("10.0.0.0/24,nope").is_err());
        assert!(cidrs("").is_err());
        assert!(cidrs(" , ").is_err());
        assert!(cidrs("10.0.0.0/33").is_err());
        let nets = cidrs("10.0.0.0/8").unwrap_or_default();
        assert!(ip_in(&nets, "10.1.2.3".parse().expect("ip")));
        assert!(ip_in(&nets, "::ffff:10.1.2.3".parse().expect("ip")));
        assert!(!ip_in(&nets, "11.1.2.3".parse().expect("ip")));
    }

    #[test]
    fn urls_are_parsed_with_a_scheme_allow_list() {
        let u = url("https://example.com/new?x=1").expect("valid");
        assert_eq!(u.to_string(), "https://example.com/new?x=1");
        assert_eq!(url("http://e.com").expect("valid").path_and_query, "");
        assert_eq!(
            url("http://e.com").expect("valid").to_string(),
            "http://e.com"
        );
        assert_eq!(
            url("http://e.com/").expect("valid").to_string(),
            "http://e.com/"
        );
        for bad in [
            "ftp://e.com/",
            "/relative",
            "https://",
            "https://e.com/$request_uri",
            "https://e.com/a b",
            "javascript:alert(1)",
            "https://user@e.com/",
        ] {
            assert!(url(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn regexes_are_linear_and_explain_pcre() {
        assert!(regex("^/api/(v[0-9]+)", false).is_ok());
        let e = regex("^/(?!admin)", false).expect_err("look-ahead");
        assert!(e.contains("look-around"), "{e}");
        assert!(regex("(a", false).is_err());
        assert!(regex(r"(\w+)\1", false).is_err());
    }

    #[test]
    fn headers_and_codes() {
        assert_eq!(
            header_name("X-Canary").map(|h| h.to_string()),
            Ok("x-canary".into())
        );
        assert!(header_name("X Canary").is_err());
        assert!(header_name("").is_err());
        assert_eq!(header_names("a, b ,c").map(|v| v.len()), Ok(3));
        assert!(header_value("ok value").is_ok());
        assert!(header_value("bad\u{1}").is_err());
        assert_eq!(
            error_codes("404,503, 404").map(|v| v.iter().map(|c| c.as_u16()).collect::<Vec<_>>()),
            Ok(vec![404, 503])
        );
        assert!(error_codes("200").is_err());
        assert!(error_codes("").is_err());
        assert_eq!(status_in("308", 300, 308).map(|s| s.as_u16()), Ok(308));
        assert!(status_in("309", 300, 308).is_err());
    }

    #[test]
    fn names_hosts_and_paths() {
        assert!(object_ref("ns/name").is_ok());
        assert!(object_ref("Name").is_err());
        assert!(object_ref("a/b/c").is_err());
        assert!(host("svc.ns.svc.cluster.local", false).is_ok());
        assert!(host("example.com:8080", true).is_ok());
        assert!(host("exa mple.com", false).is_err());
        assert!(host("example.com;", false).is_err());
        assert!(path("/app", false).is_ok());
        assert!(path("app", false).is_err());
        assert!(path("/a;b", false).is_err());
        assert!(path("/a}", false).is_err());
        assert_eq!(edit_distance("rewrite-targt", "rewrite-target"), 1);
        assert_eq!(one_of("EWMA", &["round_robin", "ewma"]), Ok(1));
    }
}
