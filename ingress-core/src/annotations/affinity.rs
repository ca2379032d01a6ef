//! The `affinity` family: cookie session affinity (sticky sessions).
//!
//! `affinity: cookie` turns it on; the `session-cookie-*` keys shape the cookie. The
//! cookie names the endpoint ([`cookie_value`]); a request whose cookie names a known
//! endpoint goes there, any other request is balanced by the route's algorithm and
//! gets a new cookie ([`AffinityPolicy::set_cookie`]). Cookie affinity wins over
//! `upstream-hash-by`. Session-cookie keys without `affinity` have no effect here
//! (ingress-nginx); Higress turns affinity on by the mere presence of `affinity`,
//! `session-cookie-name` or `session-cookie-path`. `affinity-canary-behavior`
//! belongs to the canary family.

use http::{HeaderMap, HeaderValue};

use crate::diagnostics::Code;

use super::spec::{Risk, Support};
use super::values::{self, Invalid};
use super::{AnnotationFamily, Cx, Family, IngressPolicy, KeySpec};

/// How sticky a session is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum AffinityMode {
    /// `balanced` (the default). ingress-nginx re-spreads some sessions when endpoints
    /// are added; here the cookie names its endpoint, so sessions stay put as with
    /// `persistent`.
    #[default]
    Balanced,
    /// `persistent`: a session stays on its endpoint until the endpoint stops being
    /// ready (e.g. its pod is terminating).
    Persistent,
    /// `persistent-drainable` (newer ingress-nginx): a session stays on its endpoint
    /// while the endpoint is serving, terminating ones included.
    PersistentDrainable,
}

/// The cookie `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SameSite {
    /// `SameSite=None`.
    None,
    /// `SameSite=Lax`.
    Lax,
    /// `SameSite=Strict`.
    Strict,
}

impl SameSite {
    /// `None`, `Lax` or `Strict`.
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::None => "None",
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
        }
    }
}

/// The affinity cookie.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct CookieSpec {
    /// `session-cookie-name` (default [`DEFAULT_COOKIE_NAME`]).
    pub name: String,
    /// `session-cookie-path`; `None`: the route's path.
    pub path: Option<String>,
    /// `session-cookie-domain`.
    pub domain: Option<String>,
    /// `session-cookie-max-age`, seconds (`Max-Age`).
    pub max_age: Option<i64>,
    /// `session-cookie-expires`, seconds from now (`Expires`).
    pub expires: Option<i64>,
    /// `session-cookie-secure`: `Some(true)` always sends `Secure`; otherwise it is
    /// sent when the request came over HTTPS.
    pub secure: Option<bool>,
    /// `session-cookie-samesite`.
    pub same_site: Option<SameSite>,
    /// `session-cookie-conditional-samesite-none`: drop `SameSite=None` for user
    /// agents known to reject it ([`same_site_none_compatible`]).
    pub conditional_same_site_none: bool,
    /// `session-cookie-partitioned`: add `Partitioned` (CHIPS).
    pub partitioned: bool,
}

impl Default for CookieSpec {
    fn default() -> Self {
        CookieSpec {
            name: DEFAULT_COOKIE_NAME.to_string(),
            path: None,
            domain: None,
            max_age: None,
            expires: None,
            secure: None,
            same_site: None,
            conditional_same_site_none: false,
            partitioned: false,
        }
    }
}

/// Cookie session affinity of one Ingress's routes (`affinity: cookie`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct AffinityPolicy {
    /// `affinity-mode`.
    pub mode: AffinityMode,
    /// The cookie.
    pub cookie: CookieSpec,
    /// `session-cookie-change-on-failure`: when the pinned endpoint fails, pick another
    /// endpoint and reissue the cookie (otherwise the next request tries it again).
    pub change_on_failure: bool,
}

/// The cookie name when `session-cookie-name` is not set.
pub const DEFAULT_COOKIE_NAME: &str = "INGRESSCOOKIE";

/// The cookie value that names an endpoint: 16 lower-case hex digits of the 64-bit
/// FNV-1a hash of the endpoint written as `ip:port` (IPv6: `[addr]:port`). This is the
/// stable cookie format: the router and the data plane both use it, and a value stays
/// valid for as long as its endpoint exists, across restarts and replicas.
pub fn cookie_value(endpoint: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in endpoint.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Whether a user agent handles `SameSite=None` (ingress-nginx's list of known bad
/// clients: Chrome 40-69, iOS 12, Safari on macOS 10.14).
pub fn same_site_none_compatible(user_agent: &str) -> bool {
    let has = |s: &str| user_agent.contains(s);
    let bad = has("Chrome/4")
        || has("Chrome/5")
        || has("Chrome/6")
        || has("CPU iPhone OS 12")
        || has("iPad; CPU OS 12")
        || (has("Macintosh") && has("Intel Mac OS X 10_14") && has("Safari") && !has("Chrome"));
    !bad
}

impl AffinityPolicy {
    /// The affinity cookie's value in a request, if any.
    pub fn request_cookie<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        super::canary::cookie(headers, &self.cookie.name)
    }

    /// The `Set-Cookie` value that pins a client to the endpoint whose
    /// [`cookie_value`] is `value`, for a request that came over HTTPS or not, at
    /// `now_unix` (seconds since the epoch), on a route whose path is `route_path`
    /// (used when `session-cookie-path` is not set). The user agent is not known:
    /// `SameSite=None` is kept.
    pub fn set_cookie(
        &self,
        value: &str,
        https: bool,
        now_unix: i64,
        route_path: &str,
    ) -> HeaderValue {
        self.set_cookie_for(value, https, now_unix, route_path, None)
    }

    /// [`AffinityPolicy::set_cookie`] for a request with this `User-Agent`: with
    /// `session-cookie-conditional-samesite-none`, `SameSite=None` is left out for
    /// user agents that reject it.
    ///
    /// Attributes, in lua-resty-cookie's order: `Expires` (now + expires, RFC 1123),
    /// `Max-Age`, `Domain`, `Path` (session-cookie-path or the route path), `Secure`
    /// (session-cookie-secure true, or an HTTPS request), `HttpOnly` (always),
    /// `SameSite`, `Partitioned`.
    pub fn set_cookie_for(
        &self,
        value: &str,
        https: bool,
        now_unix: i64,
        route_path: &str,
        user_agent: Option<&str>,
    ) -> HeaderValue {
        let c = &self.cookie;
        let value: String = value.chars().filter(|&ch| cookie_octet(ch)).collect();
        let mut out = format!("{}={value}", c.name);
        if let Some(secs) = c.expires {
            out.push_str("; Expires=");
            out.push_str(&http_date(now_unix.saturating_add(secs)));
        }
        if let Some(age) = c.max_age {
            out.push_str(&format!("; Max-Age={age}"));
        }
        if let Some(d) = &c.domain {
            out.push_str("; Domain=");
            out.push_str(d);
        }
        let path = c.path.as_deref().unwrap_or(route_path);
        let path: String = path.chars().filter(|&ch| path_char(ch)).collect();
        out.push_str("; Path=");
        out.push_str(if path.is_empty() { "/" } else { &path });
        if c.secure == Some(true) || https {
            out.push_str("; Secure");
        }
        out.push_str("; HttpOnly");
        let same_site = match (c.same_site, user_agent) {
            (Some(SameSite::None), Some(ua))
                if c.conditional_same_site_none && !same_site_none_compatible(ua) =>
            {
                None
            }
            (s, _) => s,
        };
        if let Some(s) = same_site {
            out.push_str("; SameSite=");
            out.push_str(s.as_str());
        }
        if c.partitioned {
            out.push_str("; Partitioned");
        }
        // Every part is visible ASCII or a space, so this cannot fail.
        HeaderValue::from_str(&out).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// RFC 6265 cookie-octet.
fn cookie_octet(c: char) -> bool {
    c.is_ascii_graphic() && !matches!(c, '"' | ',' | ';' | '\\')
}

/// A character a cookie `Path` may hold (no `;`, no controls, visible ASCII).
fn path_char(c: char) -> bool {
    c.is_ascii_graphic() && c != ';'
}

/// An RFC 1123 date (`Thu, 01 Jan 1970 00:00:00 GMT`) for seconds since the epoch,
/// clamped to years 1970..=9999. No clock is read.
pub fn http_date(unix: i64) -> String {
    const MAX: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let t = unix.clamp(0, MAX);
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let wd = WEEKDAYS[days.rem_euclid(7) as usize];
    let mon = MONTHS[(m - 1) as usize % 12];
    format!(
        "{wd}, {d:02} {mon} {y:04} {:02}:{:02}:{:02} GMT",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Year, month (1..=12) and day (1..=31) of a day count from 1970-01-01 (proleptic
/// Gregorian calendar; H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

const AFFINITY: KeySpec = KeySpec::new("affinity", Family::Affinity)
    .grammar("`cookie`")
    .doc("Cookie session affinity for every path of the Ingress: a request whose cookie names a known endpoint goes there; others are balanced and get a cookie. Wins over upstream-hash-by and load-balance. Sessions are not re-spread when endpoints are added.")
    .support(Support::Partial("sessions are not re-spread when endpoints are added: `balanced` keeps a session on its endpoint as `persistent` does"));
const MODE: KeySpec = KeySpec::new("affinity-mode", Family::Affinity)
    .grammar("`balanced`, `persistent` or `persistent-drainable`")
    .default("balanced")
    .doc("persistent: a session stays on its endpoint until it stops being ready; persistent-drainable: also while it is terminating but still serving; balanced: as persistent here.")
    .risk(Risk::Medium);
const NAME: KeySpec = KeySpec::new("session-cookie-name", Family::Affinity)
    .grammar("cookie name (RFC 9110 token)")
    .default(DEFAULT_COOKIE_NAME)
    .doc("The affinity cookie's name.")
    .risk(Risk::Medium);
const PATH: KeySpec = KeySpec::new("session-cookie-path", Family::Affinity)
    .grammar("path starting with `/`")
    .default("the route's path")
    .doc("The cookie's Path. Required when the paths are regexes (use-regex), which are not cookie paths.")
    .risk(Risk::Medium);
const DOMAIN: KeySpec = KeySpec::new("session-cookie-domain", Family::Affinity)
    .grammar("host name, optionally with a leading `.`")
    .default("none (host-only cookie)")
    .doc("The cookie's Domain.")
    .risk(Risk::Medium);
const EXPIRES: KeySpec = KeySpec::new("session-cookie-expires", Family::Affinity)
    .grammar("whole seconds (may be negative)")
    .default("none (session cookie)")
    .doc("The cookie's Expires: the time it is set plus this many seconds.")
    .risk(Risk::Medium);
const MAX_AGE: KeySpec = KeySpec::new("session-cookie-max-age", Family::Affinity)
    .grammar("whole seconds (may be negative)")
    .default("none (session cookie)")
    .doc("The cookie's Max-Age.")
    .risk(Risk::Medium);
const SECURE: KeySpec = KeySpec::new("session-cookie-secure", Family::Affinity)
    .grammar("boolean")
    .default("Secure only on HTTPS requests")
    .doc("`true` sends the cookie with Secure even on plain-HTTP requests.");
const SAMESITE: KeySpec = KeySpec::new("session-cookie-samesite", Family::Affinity)
    .grammar("`None`, `Lax` or `Strict` (case-insensitive)")
    .default("none")
    .doc("The cookie's SameSite.");
const CONDITIONAL: KeySpec = KeySpec::new("session-cookie-conditional-samesite-none", Family::Affinity)
    .grammar("boolean")
    .default("false")
    .doc("Leave out SameSite=None for user agents known to reject it (as ingress-nginx: Chrome 4x-6x, iOS 12, Safari on macOS 10.14).");
const CHANGE_ON_FAILURE: KeySpec = KeySpec::new("session-cookie-change-on-failure", Family::Affinity)
    .grammar("boolean")
    .default("false")
    .doc("When the pinned endpoint fails, retry on another endpoint and reissue the cookie; otherwise the session stays pinned.");
const PARTITIONED: KeySpec = KeySpec::new("session-cookie-partitioned", Family::Affinity)
    .grammar("boolean")
    .default("false")
    .doc("Add the Partitioned attribute (CHIPS) to the cookie.");

static KEYS: &[KeySpec] = &[
    AFFINITY,
    MODE,
    NAME,
    PATH,
    DOMAIN,
    EXPIRES,
    MAX_AGE,
    SECURE,
    SAMESITE,
    CONDITIONAL,
    CHANGE_ON_FAILURE,
    PARTITIONED,
];

fn cookie_name(s: &str) -> Result<String, Invalid> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if !s.is_empty() && s.len() <= 256 && s.bytes().all(token) {
        Ok(s.to_string())
    } else {
        Err("expected a cookie name (letters, digits and `!#$%&'*+-.^_`|~`)".into())
    }
}

fn cookie_domain(s: &str) -> Result<String, Invalid> {
    let bare = s.strip_prefix('.').unwrap_or(s);
    values::host(bare, false)?;
    Ok(s.to_ascii_lowercase())
}

fn mode(s: &str) -> Result<AffinityMode, Invalid> {
    match s {
        "balanced" => Ok(AffinityMode::Balanced),
        "persistent" => Ok(AffinityMode::Persistent),
        "persistent-drainable" => Ok(AffinityMode::PersistentDrainable),
        _ => Err("expected `balanced`, `persistent` or `persistent-drainable`".into()),
    }
}

fn same_site(s: &str) -> Result<SameSite, Invalid> {
    Ok(match values::one_of(s, &["None", "Lax", "Strict"])? {
        0 => SameSite::None,
        1 => SameSite::Lax,
        _ => SameSite::Strict,
    })
}

/// The family.
#[derive(Debug)]
pub(crate) struct Affinity;

impl AnnotationFamily for Affinity {
    fn family(&self) -> Family {
        Family::Affinity
    }
    fn keys(&self) -> &'static [KeySpec] {
        KEYS
    }
    fn parse(&self, cx: &mut Cx<'_>, policy: &mut IngressPolicy) {
        if !cx.any_present(std::slice::from_ref(&AFFINITY)) {
            let stray: Vec<&'static KeySpec> = KEYS[1..]
                .iter()
                .filter(|k| cx.any_present(std::slice::from_ref(*k)))
                .collect();
            for k in stray {
                if let Some(raw) = cx.take(k) {
                    cx.report(
                        Code::AnnotationIgnored,
                        raw.key,
                        format!("`{}` has no effect without `affinity: cookie`", raw.key),
                    );
                }
            }
            return;
        }
        let enabled = cx.parse(&AFFINITY, |s| {
            if s == "cookie" {
                Ok(())
            } else {
                Err("expected `cookie` (the only affinity type)".to_string())
            }
        });
        let mut p = AffinityPolicy {
            mode: cx.parse(&MODE, mode).unwrap_or_default(),
            ..AffinityPolicy::default()
        };
        let c = &mut p.cookie;
        if let Some(n) = cx.parse(&NAME, cookie_name) {
            c.name = n;
        }
        c.path = cx.parse(&PATH, |s| values::path(s, false));
        c.domain = cx.parse(&DOMAIN, cookie_domain);
        c.expires = cx.parse(&EXPIRES, values::int);
        c.max_age = cx.parse(&MAX_AGE, values::int);
        c.secure = cx.boolean(&SECURE);
        c.same_site = cx.parse(&SAMESITE, same_site);
        c.conditional_same_site_none = cx.boolean(&CONDITIONAL).unwrap_or(false);
        c.partitioned = cx.boolean(&PARTITIONED).unwrap_or(false);
        p.change_on_failure = cx.boolean(&CHANGE_ON_FAILURE).unwrap_or(false);
        if enabled.is_none() {
            return;
        }
        if policy.load_balance.hash.is_some() {
            cx.report(
                Code::AnnotationIgnored,
                "upstream-hash-by",
                "`upstream-hash-by` has no effect: cookie affinity picks the endpoint",
            );
        }
        policy.affinity = Some(p);
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::annotations::Parsed;
    use crate::annotations::test_util::{N, codes, run};

    fn on(extra: &[(&str, &str)]) -> Parsed {
        let mut pairs: Vec<(String, String)> = vec![(format!("{N}affinity"), "cookie".to_string())];
        pairs.extend(
            extra
                .iter()
                .map(|(k, v)| (format!("{N}{k}"), v.to_string())),
        );
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        run(&refs)
    }

    #[test]
    fn defaults() {
        let p = on(&[]);
        let a = p.policy.affinity.clone().expect("affinity");
        assert_eq!(a, AffinityPolicy::default());
        assert_eq!(a.cookie.name, "INGRESSCOOKIE");
        assert_eq!(a.mode, AffinityMode::Balanced);
        assert_eq!(codes(&p), vec![Code::AnnotationPartial]);
        assert!(p.policy.fail_closed.is_none());
        assert_eq!(
            run(&[(&format!("{N}use-regex"), "true")]).policy.affinity,
            None
        );
    }

    #[test]
    fn every_key_parses() {
        let p = on(&[
            ("affinity-mode", "persistent"),
            ("session-cookie-name", "route_id"),
            ("session-cookie-path", "/app"),
            ("session-cookie-domain", ".Example.com"),
            ("session-cookie-expires", "3600"),
            ("session-cookie-max-age", "-1"),
            ("session-cookie-secure", "true"),
            ("session-cookie-samesite", "lax"),
            ("session-cookie-conditional-samesite-none", "true"),
            ("session-cookie-change-on-failure", "true"),
            ("session-cookie-partitioned", "true"),
        ]);
        let a = p.policy.affinity.expect("affinity");
        assert_eq!(a.mode, AffinityMode::Persistent);
        assert!(a.change_on_failure);
        let c = a.cookie;
        assert_eq!(c.name, "route_id");
        assert_eq!(c.path.as_deref(), Some("/app"));
        assert_eq!(c.domain.as_deref(), Some(".example.com"));
        assert_eq!((c.expires, c.max_age), (Some(3600), Some(-1)));
        assert_eq!((c.secure, c.same_site), (Some(true), Some(SameSite::Lax)));
        assert!(c.conditional_same_site_none && c.partitioned);
        let p = on(&[("affinity-mode", "persistent-drainable")]);
        assert_eq!(
            p.policy.affinity.map(|a| a.mode),
            Some(AffinityMode::PersistentDrainable)
        );
    }

    #[test]
    fn invalid_values_fail_closed() {
        for (key, value) in [
            ("affinity", "ip"),
            ("affinity", "Cookie"),
            ("affinity-mode", "sticky"),
            ("session-cookie-name", "a b"),
            ("session-cookie-name", "a;b"),
            ("session-cookie-path", "app"),
            ("session-cookie-path", "/a;b"),
            ("session-cookie-domain", "exa mple.com"),
            ("session-cookie-expires", "1h"),
            ("session-cookie-max-age", "1.5"),
            ("session-cookie-secure", "yes"),
            ("session-cookie-samesite", "Lox"),
        ] {
            let p = if key == "affinity" {
                run(&[(&format!("{N}{key}"), value)])
            } else {
                on(&[(key, value)])
            };
            assert!(
                codes(&p).contains(&Code::AnnotationInvalidValue),
                "{key}: {value}"
            );
            assert!(p.policy.fail_closed.is_some(), "{key}: {value}");
            if key == "affinity" {
                assert_eq!(p.policy.affinity, None);
            }
        }
    }

    #[test]
    fn session_keys_without_affinity_are_ignored() {
        let p = run(&[
            (&format!("{N}session-cookie-name"), "x"),
            ("higress.io/session-cookie-path", "/"),
        ]);
        assert_eq!(p.policy.affinity, None);
        assert_eq!(
            codes(&p),
            vec![Code::AnnotationIgnored, Code::AnnotationIgnored]
        );
        assert!(p.policy.fail_closed.is_none());
    }

    #[test]
    fn affinity_wins_over_hashing() {
        let p = on(&[("upstream-hash-by", "$request_uri")]);
        assert!(p.policy.affinity.is_some());
        assert!(codes(&p).contains(&Code::AnnotationIgnored));
    }

    #[test]
    fn cookie_values_are_stable() {
        // FNV-1a 64 test vectors.
        assert_eq!(cookie_value(""), "cbf29ce484222325");
        assert_eq!(cookie_value("a"), "af63dc4c8601ec8c");
        let v = cookie_value("10.0.0.1:8080");
        assert_eq!(v.len(), 16);
        assert!(
            v.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(v, cookie_value("10.0.0.1:8081"));
        assert_ne!(cookie_value("[::1]:80"), cookie_value("[::2]:80"));
    }

    #[test]
    fn dates_without_a_clock() {
        for (t, want) in [
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
            (1_709_251_199, "Thu, 29 Feb 2024 23:59:59 GMT"),
            (4_102_444_800, "Fri, 01 Jan 2100 00:00:00 GMT"),
            (-5, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (i64::MAX, "Fri, 31 Dec 9999 23:59:59 GMT"),
        ] {
            assert_eq!(http_date(t), want, "{t}");
        }
    }

    #[test]
    fn set_cookie_lines() {
        let mut a = AffinityPolicy::default();
        let line = |a: &AffinityPolicy, https, ua| {
            a.set_cookie_for("abc", https, 784_111_777, "/shop", ua)
                .to_str()
                .map(str::to_string)
                .unwrap_or_default()
        };
        assert_eq!(
            line(&a, false, None),
            "INGRESSCOOKIE=abc; Path=/shop; HttpOnly"
        );
        assert_eq!(
            line(&a, true, None),
            "INGRESSCOOKIE=abc; Path=/shop; Secure; HttpOnly"
        );
        a.cookie = CookieSpec {
            name: "s".into(),
            path: Some("/".into()),
            domain: Some("example.com".into()),
            max_age: Some(60),
            expires: Some(3600),
            secure: Some(true),
            same_site: Some(SameSite::None),
            conditional_same_site_none: true,
            partitioned: true,
        };
        assert_eq!(
            line(&a, false, None),
            "s=abc; Expires=Sun, 06 Nov 1994 09:49:37 GMT; Max-Age=60; Domain=example.com; Path=/; Secure; HttpOnly; SameSite=None; Partitioned"
        );
        let old = "Mozilla/5.0 (iPhone; CPU iPhone OS 12_0 like Mac OS X) Safari";
        assert!(!line(&a, false, Some(old)).contains("SameSite"));
        let new = "Mozilla/5.0 Chrome/120.0 Safari/537.36";
        assert!(line(&a, false, Some(new)).contains("SameSite=None"));
        a.cookie.conditional_same_site_none = false;
        assert!(line(&a, false, Some(old)).contains("SameSite=None"));
        // The plain signature, and values that cannot break the line.
        let v = a.set_cookie("a;b\"c", false, 0, "/x");
        assert!(
            v.to_str()
                .is_ok_and(|s| s.starts_with("s=abc; Expires=Thu, 01 Jan 1970"))
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            HeaderValue::from_static("x=1; s=0123"),
        );
        assert_eq!(a.request_cookie(&headers), Some("0123"));
    }
}
