//! Header edits on the way upstream and back: hop-by-hop removal, `X-Forwarded-*`,
//! `X-Real-IP`, `X-Request-ID`, and which client address to trust.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

/// `x-forwarded-for`.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `x-forwarded-proto`.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `x-forwarded-host`.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `x-forwarded-port`.
pub const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
/// `x-forwarded-prefix`.
pub const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
/// `x-real-ip`.
pub const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
/// `x-request-id`.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Remove hop-by-hop headers (RFC 9110 §7.6.1): `Connection` and every header it
/// names, `Keep-Alive`, `TE` (kept as `TE: trailers` when the client asked for
/// trailers), `Transfer-Encoding`, `Upgrade`, and every `Proxy-*` header.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names says which of these are present; most requests
    // carry none, most responses only `Connection`.
    let mut present = 0u8;
    for k in headers.keys() {
        present |= hop_by_hop_bit(k);
    }
    remove_present(headers, present);
}

/// What one pass over a request's field names found: the hop-by-hop fields and
/// the names with `_` that [`clean_request`] removes, and whether the client sent
/// the fields the gateway appends to or removes (so that a request without them
/// is not searched for them again).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestNames {
    hop: u8,
    underscored: bool,
    /// An `X-Forwarded-For` field is present.
    pub forwarded_for: bool,
    /// An `X-Forwarded-Prefix` field is present.
    pub forwarded_prefix: bool,
}

impl RequestNames {
    /// One pass over `headers`' names.
    pub fn scan(headers: &HeaderMap) -> RequestNames {
        let mut names = RequestNames::default();
        for k in headers.keys() {
            names.hop |= hop_by_hop_bit(k);
            let n = k.as_str();
            match n.len() {
                15 if n == "x-forwarded-for" => names.forwarded_for = true,
                18 if n == "x-forwarded-prefix" => names.forwarded_prefix = true,
                _ => {}
            }
            names.underscored |= n.contains('_');
        }
        names
    }
}

/// [`remove_hop_by_hop`] and [`remove_underscored`] on a request whose names
/// `names` describes (from [`RequestNames::scan`]: one pass over the names for
/// both).
pub fn clean_request(headers: &mut HeaderMap, names: &RequestNames) {
    remove_present(headers, names.hop);
    if names.underscored {
        remove_underscored(headers);
    }
}

/// Remove the hop-by-hop fields whose bits are in `present` (and those
/// `Connection` names).
fn remove_present(headers: &mut HeaderMap, present: u8) {
    if present == 0 {
        return;
    }
    // Most upstream responses carry only `Connection: keep-alive` (or `close`):
    // a token naming no field, so the field alone goes.
    if present == CONNECTION
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .all(|v| names_no_field(v.as_bytes()))
    {
        headers.remove(header::CONNECTION);
        return;
    }
    if present & CONNECTION != 0 {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            // `close` and `keep-alive` are the usual tokens: nothing more to remove.
            .filter(|n| !n.eq_ignore_ascii_case("close") && !n.eq_ignore_ascii_case("keep-alive"))
            .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
            .collect();
        for n in named {
            headers.remove(n);
        }
        headers.remove(header::CONNECTION);
    }
    let trailers = present & TE != 0
        && headers.get_all(header::TE).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|c| c.trim().eq_ignore_ascii_case("trailers"))
            })
        });
    if present & KEEP_ALIVE != 0 {
        headers.remove(HeaderName::from_static("keep-alive"));
    }
    if present & TE != 0 {
        headers.remove(header::TE);
    }
    if present & TRANSFER_ENCODING != 0 {
        headers.remove(header::TRANSFER_ENCODING);
    }
    if present & UPGRADE != 0 {
        headers.remove(header::UPGRADE);
    }
    if present & PROXY != 0 {
        let proxy: Vec<HeaderName> = headers
            .keys()
            .filter(|k| k.as_str().starts_with("proxy-"))
            .cloned()
            .collect();
        for n in proxy {
            headers.remove(n);
        }
    }
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// Whether a `Connection` value is the single token `keep-alive` or `close`
/// (names no other field).
fn names_no_field(v: &[u8]) -> bool {
    v.eq_ignore_ascii_case(b"keep-alive") || v.eq_ignore_ascii_case(b"close")
}

const CONNECTION: u8 = 1;
const KEEP_ALIVE: u8 = 2;
const TE: u8 = 4;
const TRANSFER_ENCODING: u8 = 8;
const UPGRADE: u8 = 16;
const PROXY: u8 = 32;

/// Which of the headers [`remove_hop_by_hop`] removes whatever `Connection` says
/// `name` is (0: none).
fn hop_by_hop_bit(name: &HeaderName) -> u8 {
    // One look at the name's length, a comparison only on a match (this runs for
    // every field of every request and response).
    let n = name.as_str();
    match n.len() {
        2 if n == "te" => TE,
        7 if n == "upgrade" => UPGRADE,
        10 if n == "connection" => CONNECTION,
        10 if n == "keep-alive" => KEEP_ALIVE,
        17 if n == "transfer-encoding" => TRANSFER_ENCODING,
        l if l >= 6 && n.starts_with("proxy-") => PROXY,
        _ => 0,
    }
}

/// An IP address as a header value (`X-Forwarded-For`, `X-Real-IP`), IPv4 written
/// without going through `fmt` (this runs for every request).
pub(crate) fn ip_value(ip: IpAddr) -> HeaderValue {
    match ip {
        IpAddr::V4(v4) => {
            let mut buf = [0u8; 15];
            let mut n = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[n] = b'.';
                    n += 1;
                }
                if octet >= 100 {
                    buf[n] = b'0' + octet / 100;
                    n += 1;
                }
                if octet >= 10 {
                    buf[n] = b'0' + octet / 10 % 10;
                    n += 1;
                }
                buf[n] = b'0' + octet % 10;
                n += 1;
            }
            HeaderValue::from_bytes(&buf[..n]).unwrap_or(HeaderValue::from_static("0.0.0.0"))
        }
        IpAddr::V6(_) => {
            HeaderValue::from_str(&ip.to_string()).unwrap_or(HeaderValue::from_static("::"))
        }
    }
}

/// Remove request headers whose names contain `_`, as nginx does by default
/// (`underscores_in_headers off`): `Transfer_Encoding` and the like are never
/// forwarded for an upstream to read as something else.
pub fn remove_underscored(headers: &mut HeaderMap) {
    if !headers.keys().any(|k| k.as_str().contains('_')) {
        return;
    }
    let gone: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().contains('_'))
        .cloned()
        .collect();
    for n in gone {
        headers.remove(n);
    }
}

/// Which peers may tell us the client address (`X-Forwarded-For`) and the original
/// scheme, host and port (`X-Forwarded-Proto/-Host/-Port`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// Trust peers in these networks.
    pub fn new(nets: Vec<IpNet>) -> Self {
        TrustedProxies { nets }
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client address: the TCP peer, unless the peer is trusted and the request
    /// carries `X-Forwarded-For`; then the right-most address in it that is not itself
    /// a trusted proxy (or the left-most, when every hop is trusted).
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.contains(peer) {
            return peer;
        }
        let hops: Vec<IpAddr> = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|h| h.trim().parse::<IpAddr>().ok())
            .map(|ip| ip.to_canonical())
            .collect();
        hops.iter()
            .rev()
            .find(|ip| !self.contains(**ip))
            .or(hops.first())
            .copied()
            .unwrap_or(peer)
    }
}

/// Whether an incoming `X-Request-ID` is kept: 1 to 200 characters of
/// `A-Z a-z 0-9 - _ . : + / =`.
pub fn valid_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= 200
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.:+/=".contains(c))
}

/// Generates request ids: 32 hex digits, unique per process and hard to guess
/// (a counter hashed with per-process random keys).
#[derive(Debug)]
pub struct RequestIds {
    keys: (RandomState, RandomState),
    counter: AtomicU64,
    /// The state of [`RequestIds::random`].
    mix: AtomicU64,
}

impl Default for RequestIds {
    fn default() -> Self {
        let keys = (RandomState::new(), RandomState::new());
        let mix = AtomicU64::new(keys.0.hash_one(0x5eed_u64));
        RequestIds {
            keys,
            counter: AtomicU64::new(0),
            mix,
        }
    }
}

impl RequestIds {
    /// A random number for the core's weighted choices (canary weights).
    pub fn roll(&self) -> u32 {
        (self.random() >> 32) as u32
    }

    /// 64 random bits for load balancing and weighted choices: SplitMix64 over a
    /// counter started at a random point (uniform and cheap; not secret, unlike
    /// [`RequestIds::next`]).
    pub fn random(&self) -> u64 {
        let n = self.mix.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// The next id.
    pub fn next(&self) -> HeaderValue {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let (a, b) = (self.keys.0.hash_one(n), self.keys.1.hash_one(n));
        HeaderValue::from_bytes(&hex_id(a, b)).unwrap_or(HeaderValue::from_static("0"))
    }
}

/// `format!("{a:016x}{b:016x}")` without `fmt`.
fn hex_id(a: u64, b: u64) -> [u8; 32] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = [0u8; 32];
    for (i, word) in [a, b].into_iter().enumerate() {
        for j in 0..16 {
            // Most significant nibble first.
            s[i * 16 + j] = HEX[((word >> (60 - 4 * j)) & 0xf) as usize];
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        m
    }

    #[test]
    fn one_scan_cleans_a_request() {
        let mut m = HeaderMap::new();
        m.insert(
            header::CONNECTION,
            HeaderValue::from_static("x-secret, close"),
        );
        m.insert("x-secret", HeaderValue::from_static("1"));
        m.insert("x_under", HeaderValue::from_static("1"));
        m.insert(header::TE, HeaderValue::from_static("trailers"));
        m.insert("x-kept", HeaderValue::from_static("1"));
        let names = RequestNames::scan(&m);
        assert!(!names.forwarded_for && !names.forwarded_prefix);
        clean_request(&mut m, &names);
        let mut left: Vec<&str> = m.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["te", "x-kept"]);
        assert_eq!(m[header::TE], "trailers");
    }

    #[test]
    fn hop_by_hop() {
        let mut m = map(&[
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "gzip, trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "x"),
            ("proxy-connection", "close"),
            ("x-kept", "yes"),
        ]);
        remove_hop_by_hop(&mut m);
        let names: Vec<_> = m.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-kept", "te"]);
        assert_eq!(m["te"], "trailers");
    }

    #[test]
    fn hop_by_hop_fast_path_keeps_the_rest() {
        let mut m = map(&[("host", "a"), ("accept", "*/*"), ("x-proxy", "kept")]);
        remove_hop_by_hop(&mut m);
        assert_eq!(m.len(), 3);
        let mut m = map(&[("host", "a"), ("Proxy-Authorization", "x")]);
        remove_hop_by_hop(&mut m);
        assert_eq!(m.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["host"]);
    }

    #[test]
    fn connection_alone_is_removed() {
        for v in ["keep-alive", "Keep-Alive", "close"] {
            let mut m = map(&[("content-length", "2"), ("connection", v), ("etag", "e")]);
            remove_hop_by_hop(&mut m);
            let names: Vec<_> = m.keys().map(|k| k.as_str()).collect();
            assert_eq!(names, ["content-length", "etag"], "{v}");
        }
        // Two lines, one naming a field: the named field goes too.
        let mut m = map(&[("connection", "close"), ("x-a", "1"), ("x-b", "2")]);
        m.append("connection", HeaderValue::from_static("x-a"));
        remove_hop_by_hop(&mut m);
        assert_eq!(m.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["x-b"]);
    }

    #[test]
    fn random_is_spread() {
        let ids = RequestIds::default();
        // Canary rolls (0..100) land in every decile, close to evenly.
        let mut deciles = [0u32; 10];
        for _ in 0..10_000 {
            deciles[(ids.roll() % 100 / 10) as usize] += 1;
        }
        assert!(
            deciles.iter().all(|&n| (800..1200).contains(&n)),
            "{deciles:?}"
        );
        assert_ne!(ids.random(), ids.random());
    }

    #[test]
    fn hex_ids_match_format() {
        for (a, b) in [
            (0, 0),
            (1, u64::MAX),
            (0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210),
        ] {
            assert_eq!(
                std::str::from_utf8(&hex_id(a, b)).expect("ascii"),
                format!("{a:016x}{b:016x}")
            );
        }
    }

    #[test]
    fn ip_values_match_display() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "255.255.255.255",
            "1.100.99.9",
            "::1",
            "2001:db8::8a2e:370:7334",
        ] {
            let parsed: IpAddr = ip.parse().expect("ip");
            assert_eq!(ip_value(parsed), parsed.to_string().as_str(), "{ip}");
        }
    }

    #[test]
    fn client_ip_trust() {
        let t = TrustedProxies::new(vec!["10.0.0.0/8".parse().expect("net")]);
        let h = map(&[("x-forwarded-for", "1.2.3.4, 10.1.1.1")]);
        let peer: IpAddr = "10.0.0.1".parse().expect("ip");
        assert_eq!(
            t.client_ip(peer, &h),
            "1.2.3.4".parse::<IpAddr>().expect("ip")
        );
        let outsider: IpAddr = "8.8.8.8".parse().expect("ip");
        assert_eq!(t.client_ip(outsider, &h), outsider);
        let all_trusted = map(&[("x-forwarded-for", "10.9.9.9")]);
        assert_eq!(
            t.client_ip(peer, &all_trusted),
            "10.9.9.9".parse::<IpAddr>().expect("ip")
        );
        let junk = map(&[("x-forwarded-for", "not-an-ip")]);
        assert_eq!(t.client_ip(peer, &junk), peer);
    }

    #[test]
    fn request_ids() {
        let ids = RequestIds::default();
        let (a, b) = (ids.next(), ids.next());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(
            a.as_bytes()
                .iter()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert!(valid_request_id(&a));
        assert!(!valid_request_id(&HeaderValue::from_static("has space")));
        assert!(!valid_request_id(&HeaderValue::from_static("")));
    }
}
