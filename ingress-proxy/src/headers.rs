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
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    let trailers = headers.get_all(header::TE).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|c| c.trim().eq_ignore_ascii_case("trailers"))
        })
    });
    for n in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        header::TE,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(n);
    }
    let proxy: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for n in proxy {
        headers.remove(n);
    }
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
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
}

impl Default for RequestIds {
    fn default() -> Self {
        RequestIds {
            keys: (RandomState::new(), RandomState::new()),
            counter: AtomicU64::new(0),
        }
    }
}

impl RequestIds {
    /// A random number for the core's weighted choices (canary weights).
    pub fn roll(&self) -> u32 {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        (self.keys.0.hash_one(!n) >> 32) as u32
    }

    /// 64 random bits for load balancing (cheap: one keyed hash of a counter).
    pub fn random(&self) -> u64 {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.keys.1.hash_one(!n)
    }

    /// The next id.
    pub fn next(&self) -> HeaderValue {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let (a, b) = (self.keys.0.hash_one(n), self.keys.1.hash_one(n));
        let s = format!("{a:016x}{b:016x}");
        HeaderValue::from_str(&s).unwrap_or(HeaderValue::from_static("0"))
    }
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
        assert!(valid_request_id(&a));
        assert!(!valid_request_id(&HeaderValue::from_static("has space")));
        assert!(!valid_request_id(&HeaderValue::from_static("")));
    }
}
