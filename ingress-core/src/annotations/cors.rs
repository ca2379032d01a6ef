//! The `cors` family: cross-origin resource sharing, as ingress-nginx's cors.tmpl.
//!
//! With `cors-allow-origin: "*"` every response gets `Access-Control-Allow-Origin: *`
//! (never the request's origin, so credentials stay safe) and every `OPTIONS`
//! request is answered 204 by the gateway. With a list, only a request whose
//! `Origin` matches an entry (scheme, host and port; `*.` covers one label) gets the
//! headers, with its origin echoed; `OPTIONS` from a matching origin is answered 204.

use http::{HeaderName, HeaderValue};

use super::spec::Risk;
use super::values;
use super::{AnnotationFamily, Cx, Family, IngressPolicy, KeySpec};

/// One allowed origin.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CorsOrigin {
    /// `scheme://host[:port]`; `host` may start with `*.` (exactly one extra label).
    Origin {
        /// `http` or `https` (lower case).
        scheme: String,
        /// Lower-case host, possibly `*.example.com`.
        host: String,
        /// Explicit port.
        port: Option<u16>,
    },
    /// The literal `null` origin.
    Null,
}

impl CorsOrigin {
    /// Whether a request's `Origin` value matches (ASCII case-insensitive).
    pub fn matches(&self, origin: &str) -> bool {
        match self {
            CorsOrigin::Null => origin == "null",
            CorsOrigin::Origin { scheme, host, port } => {
                let Some((s, rest)) = origin.split_once("://") else {
                    return false;
                };
                if !s.eq_ignore_ascii_case(scheme) {
                    return false;
                }
                let (h, p) = match rest.rsplit_once(':') {
                    Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                        (h, p.parse::<u16>().ok().map(Some).unwrap_or(Some(0)))
                    }
                    _ => (rest, None),
                };
                if p != *port {
                    return false;
                }
                match host.strip_prefix("*.") {
                    Some(suffix) => h.split_once('.').is_some_and(|(first, tail)| {
                        !first.is_empty() && tail.eq_ignore_ascii_case(suffix)
                    }),
                    None => h.eq_ignore_ascii_case(host),
                }
            }
        }
    }
}

/// Which origins are allowed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CorsOrigins {
    /// `*`.
    Any,
    /// A list.
    List(Vec<CorsOrigin>),
}

/// The CORS policy of an Ingress (`enable-cors: "true"`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CorsPolicy {
    /// Allowed origins.
    pub origins: CorsOrigins,
    /// `Access-Control-Allow-Methods`.
    pub methods: HeaderValue,
    /// `Access-Control-Allow-Headers`.
    pub headers: HeaderValue,
    /// `Access-Control-Expose-Headers`, if any.
    pub expose: Option<HeaderValue>,
    /// `Access-Control-Allow-Credentials: true`.
    pub credentials: bool,
    /// `Access-Control-Max-Age` (preflight answers).
    pub max_age: u64,
}

impl CorsPolicy {
    /// The `Access-Control-Allow-Origin` value for a request with this `Origin`, or
    /// `None` when the request gets no CORS headers.
    pub fn allow_origin(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        match &self.origins {
            CorsOrigins::Any => Some(HeaderValue::from_static("*")),
            CorsOrigins::List(list) => {
                let o = origin?;
                let s = o.to_str().ok()?;
                list.iter().any(|e| e.matches(s)).then(|| o.clone())
            }
        }
    }

    /// The CORS headers for a response, given the allowed origin value.
    pub fn response_headers(
        &self,
        allow_origin: HeaderValue,
        preflight: bool,
    ) -> Vec<(HeaderName, HeaderValue)> {
        use http::header::*;
        let mut out = vec![(ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin)];
        if self.credentials {
            out.push((
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            ));
        }
        out.push((ACCESS_CONTROL_ALLOW_METHODS, self.methods.clone()));
        out.push((ACCESS_CONTROL_ALLOW_HEADERS, self.headers.clone()));
        if let Some(e) = &self.expose {
            out.push((ACCESS_CONTROL_EXPOSE_HEADERS, e.clone()));
        }
        if preflight {
            out.push((ACCESS_CONTROL_MAX_AGE, HeaderValue::from(self.max_age)));
            out.push((
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ));
            out.push((CONTENT_LENGTH, HeaderValue::from_static("0")));
        }
        out
    }
}

/// Default `cors-allow-methods`.
pub const DEFAULT_METHODS: &str = "GET, PUT, POST, DELETE, PATCH, OPTIONS";
/// Default `cors-allow-headers`.
pub const DEFAULT_HEADERS: &str = "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization";

fn origins(s: &str) -> Result<CorsOrigins, values::Invalid> {
    if s.trim() == "*" {
        return Ok(CorsOrigins::Any);
    }
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        if item == "*" {
            return Ok(CorsOrigins::Any);
        }
        if item == "null" {
            out.push(CorsOrigin::Null);
            continue;
        }
        let bad = || {
            format!(
                "`{item}` is not an origin (`https://host[:port]`, `https://*.host`, `*` or `null`)"
            )
        };
        let (scheme, rest) = item.split_once("://").ok_or_else(bad)?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(bad());
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (
                h,
                Some(values::uint_max(p, 65535).map_err(|_| bad())? as u16),
            ),
            None => (rest, None),
        };
        let check = host.strip_prefix("*.").unwrap_or(host);
        values::host(check, false).map_err(|_| bad())?;
        out.push(CorsOrigin::Origin {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        });
    }
    if out.is_empty() {
        return Err("expected `*` or a comma-separated list of origins".into());
    }
    Ok(CorsOrigins::List(out))
}

fn methods(s: &str) -> Result<HeaderValue, values::Invalid> {
    let items: Vec<&str> = s
        .split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .collect();
    if items.is_empty()
        || !items
            .iter()
            .all(|m| m.bytes().all(|b| b.is_ascii_alphabetic()))
    {
        return Err("expected a comma-separated list of methods (letters only)".into());
    }
    values::header_value(&items.join(", "))
}

fn header_list(s: &str, allow_star: bool) -> Result<HeaderValue, values::Invalid> {
    let items: Vec<&str> = s
        .split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .collect();
    for i in &items {
        if !(allow_star && *i == "*") {
            values::header_name(i)?;
        }
    }
    if items.is_empty() {
        return Err("expected a comma-separated list of header names".into());
    }
    values::header_value(&items.join(","))
}

const ENABLE: KeySpec = KeySpec::new("enable-cors", Family::Cors)
    .grammar("boolean")
    .default("false")
    .doc("Add CORS headers to answers and answer preflight `OPTIONS` requests with 204 at the gateway.");
const ALLOW_ORIGIN: KeySpec = KeySpec::new("cors-allow-origin", Family::Cors)
    .grammar("`*`, or comma-separated `scheme://host[:port]` (`scheme://*.host` covers one label) and `null`")
    .default("*")
    .doc("Allowed origins: `*` answers `*`; a list echoes a matching Origin and ignores others.")
    .risk(Risk::Medium);
const ALLOW_METHODS: KeySpec = KeySpec::new("cors-allow-methods", Family::Cors)
    .grammar("comma-separated methods")
    .default(DEFAULT_METHODS)
    .doc("Access-Control-Allow-Methods.")
    .risk(Risk::Medium);
const ALLOW_HEADERS: KeySpec = KeySpec::new("cors-allow-headers", Family::Cors)
    .grammar("comma-separated header names")
    .default(DEFAULT_HEADERS)
    .doc("Access-Control-Allow-Headers.")
    .risk(Risk::Medium);
const EXPOSE_HEADERS: KeySpec = KeySpec::new("cors-expose-headers", Family::Cors)
    .grammar("comma-separated header names or `*`")
    .default("none")
    .doc("Access-Control-Expose-Headers.")
    .risk(Risk::Medium);
const ALLOW_CREDENTIALS: KeySpec = KeySpec::new("cors-allow-credentials", Family::Cors)
    .grammar("boolean")
    .default("true")
    .doc("Access-Control-Allow-Credentials: true.");
const MAX_AGE: KeySpec = KeySpec::new("cors-max-age", Family::Cors)
    .grammar("whole seconds")
    .default("1728000")
    .doc("Access-Control-Max-Age on preflight answers.");

static KEYS: &[KeySpec] = &[
    ENABLE,
    ALLOW_ORIGIN,
    ALLOW_METHODS,
    ALLOW_HEADERS,
    EXPOSE_HEADERS,
    ALLOW_CREDENTIALS,
    MAX_AGE,
];

/// The family.
#[derive(Debug)]
pub(crate) struct Cors;

impl AnnotationFamily for Cors {
    fn family(&self) -> Family {
        Family::Cors
    }
    fn keys(&self) -> &'static [KeySpec] {
        KEYS
    }
    fn parse(&self, cx: &mut Cx<'_>, policy: &mut IngressPolicy) {
        let enabled = cx.boolean(&KEYS[0]).unwrap_or(false);
        let origins = cx.parse(&KEYS[1], origins);
        let m = cx.parse(&KEYS[2], methods);
        let h = cx.parse(&KEYS[3], |s| header_list(s, false));
        let expose = cx.parse(&KEYS[4], |s| header_list(s, true));
        let credentials = cx.boolean(&KEYS[5]).unwrap_or(true);
        let max_age = cx.parse(&KEYS[6], values::uint).unwrap_or(1_728_000);
        if !enabled {
            if cx.any_present(&KEYS[1..]) {
                let key = KEYS[1..]
                    .iter()
                    .find(|k| cx.any_present(std::slice::from_ref(*k)))
                    .map_or("cors-*", |k| k.name);
                cx.report(
                    crate::diagnostics::Code::AnnotationIgnored,
                    key,
                    "CORS annotations have no effect without enable-cors: \"true\"",
                );
            }
            return;
        }
        policy.cors = Some(CorsPolicy {
            origins: origins.unwrap_or(CorsOrigins::Any),
            methods: m.unwrap_or(HeaderValue::from_static(DEFAULT_METHODS)),
            headers: h.unwrap_or(HeaderValue::from_static(DEFAULT_HEADERS)),
            expose,
            credentials,
            max_age,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_exactly_or_one_label() {
        let CorsOrigins::List(list) =
            origins("https://abc.com, https://*.def.com:8443, null").expect("valid")
        else {
            panic!("expected a list");
        };
        let any = |o: &str| list.iter().any(|e| e.matches(o));
        assert!(any("https://abc.com"));
        assert!(any("HTTPS://ABC.com"));
        assert!(!any("http://abc.com"));
        assert!(!any("https://abc.com:443"));
        assert!(!any("https://abc.com.evil.net"));
        assert!(!any("https://xabc.com"));
        assert!(any("https://x.def.com:8443"));
        assert!(!any("https://def.com:8443"));
        assert!(!any("https://a.b.def.com:8443"));
        assert!(!any("https://x.def.com"));
        assert!(any("null"));
        assert_eq!(origins("*"), Ok(CorsOrigins::Any));
        for bad in [
            "ftp://a.com",
            "abc.com",
            "https://a b.com",
            "https://a.com:99999",
            "",
        ] {
            assert!(origins(bad).is_err(), "{bad:?}");
        }
    }
}
