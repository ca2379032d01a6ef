//! External authentication (`auth-url`), the pure parts: the headers of the auth
//! sub-request, the meaning of its answer, the `auth-signin` redirect and the
//! headers copied upstream. They follow ingress-nginx's `auth_request` location:
//!
//! - the sub-request carries the client's headers (hop-by-hop ones,
//!   `Content-Length`, `Transfer-Encoding` and `X-Forwarded-Proto` removed; no
//!   body), `Host` of the auth URL, `X-Original-URL`
//!   (`scheme://host/request_uri`), `X-Original-URI`, `X-Original-Method`,
//!   `X-Scheme`, `X-Sent-From: nginx-ingress-controller`, `X-Real-IP`,
//!   `X-Forwarded-For` (the client address), `X-Request-ID` and
//!   `X-Auth-Request-Redirect`;
//! - a 2xx answer lets the request through; 401 and 403 are answered with that
//!   status (a 401 becomes a 302 to `auth-signin` when set); anything else is 500;
//! - each `auth-response-headers` name is removed from the upstream request and
//!   set from the auth answer when it has it (a client cannot forge it).

use std::net::IpAddr;

use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use crate::annotations::auth::{AuthCacheDuration, ExternalAuth};
use crate::annotations::template::{self, Part, Var};

/// What a request looked like, for the auth sub-request.
#[derive(Debug, Clone, Copy)]
pub struct Original<'a> {
    /// The client's method.
    pub method: &'a Method,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// The client's `Host` (with port, as sent).
    pub http_host: &'a str,
    /// The client's request target (path and query).
    pub request_uri: &'a str,
    /// The client's address.
    pub remote_addr: Option<IpAddr>,
    /// The request id.
    pub request_id: Option<&'a HeaderValue>,
}

/// The verdict of an auth answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: forward the request.
    Allow,
    /// Answer the client with this status (401 or 403).
    Deny(StatusCode),
    /// 401 with `auth-signin`: answer 302 to this location.
    SignIn(String),
    /// Any other status, or no answer: 500.
    Error,
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
];

/// The headers of the auth sub-request. `auth_host` is the authority of the
/// rendered auth URL; `redirect` the evaluated `X-Auth-Request-Redirect`.
pub fn subrequest_headers(
    client: &HeaderMap,
    original: &Original<'_>,
    auth_host: &str,
    redirect: &str,
) -> HeaderMap {
    let mut h = client.clone();
    // Headers named by Connection are hop-by-hop too.
    let named: Vec<HeaderName> = client
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in HOP_BY_HOP {
        h.remove(n);
    }
    h.remove(header::CONTENT_LENGTH);
    h.remove("x-forwarded-proto");
    let mut set = |name: &'static str, value: &str| match HeaderValue::from_str(value) {
        Ok(v) => {
            h.insert(name, v);
        }
        Err(_) => {
            h.remove(name);
        }
    };
    set("host", auth_host);
    let url = format!(
        "{}://{}{}",
        original.scheme, original.http_host, original.request_uri
    );
    set("x-original-url", &url);
    set("x-original-uri", original.request_uri);
    set("x-original-method", original.method.as_str());
    set("x-scheme", original.scheme);
    set("x-sent-from", "nginx-ingress-controller");
    let addr = original
        .remote_addr
        .map(|a| a.to_string())
        .unwrap_or_default();
    set("x-real-ip", &addr);
    set("x-forwarded-for", &addr);
    set("x-auth-request-redirect", redirect);
    if let Some(id) = original.request_id {
        h.insert("x-request-id", id.clone());
    }
    h
}

/// What an auth answer's status means. `signin` is the `auth-signin` location
/// already built with [`signin_location`].
pub fn verdict(status: StatusCode, signin: Option<String>) -> Verdict {
    if status.is_success() {
        Verdict::Allow
    } else if status == StatusCode::UNAUTHORIZED {
        match signin {
            Some(l) => Verdict::SignIn(l),
            None => Verdict::Deny(status),
        }
    } else if status == StatusCode::FORBIDDEN {
        Verdict::Deny(status)
    } else {
        Verdict::Error
    }
}

/// Percent-encode all but unreserved characters (nginx's `$escaped_request_uri`).
pub fn escape_component(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `auth-signin` redirect: the rendered signin URL with
/// `<param>=<scheme>://<host><escaped request_uri>` added, unless its query
/// already holds that parameter (as ingress-nginx's `buildAuthSignURL`). `host`
/// should be the Ingress rule's host where it names one, so a forged `Host`
/// cannot steer the return URL.
pub fn signin_location(
    ext: &ExternalAuth,
    signin: &str,
    scheme: &str,
    host: &str,
    request_uri: &str,
) -> String {
    let param = &ext.signin_redirect_param;
    let query = signin.split_once('?').map(|(_, q)| q);
    let has_param = query.is_some_and(|q| {
        q.split('&').any(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            k == param && !v.is_empty()
        })
    });
    if has_param {
        return signin.to_owned();
    }
    let sep = match query {
        Some(q) if !q.is_empty() => "&",
        Some(_) => "",
        None => "?",
    };
    format!(
        "{signin}{sep}{param}={scheme}://{host}{}",
        escape_component(request_uri.as_bytes())
    )
}

/// Copy `auth-response-headers` from a 2xx auth answer into the upstream
/// request: each named header is removed, then set to the auth answer's first
/// value when it has one.
pub fn copy_response_headers(ext: &ExternalAuth, answer: &HeaderMap, upstream: &mut HeaderMap) {
    for name in &ext.response_headers {
        upstream.remove(name);
        if let Some(v) = answer.get(name) {
            upstream.insert(name.clone(), v.clone());
        }
    }
}

/// Evaluate `auth-cache-key`: `$name` / `${name}` are the template variables
/// ([`Var`]) plus `$remote_user` (the user of Basic credentials); other text is
/// kept. `None` when a variable is not supported (the answer is then not cached).
pub fn cache_key<'v>(
    raw: &str,
    remote_user: Option<&str>,
    var: impl Fn(&Var) -> Option<std::borrow::Cow<'v, str>>,
) -> Option<String> {
    let mut out = String::new();
    let mut rest = raw;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, next) = match after.strip_prefix('{') {
            Some(b) => {
                let end = b.find('}')?;
                (&b[..end], &b[end + 1..])
            }
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        if name == "remote_user" {
            out.push_str(remote_user.unwrap_or(""));
        } else {
            let t = template::parse(&format!("${{{name}}}"), |_| false).ok()?;
            for p in &t.parts {
                if let Part::Var(v) = p
                    && let Some(s) = var(v)
                {
                    out.push_str(&s);
                }
            }
        }
        rest = next;
    }
    out.push_str(rest);
    Some(out)
}

/// How long an auth answer with `status` is cached under `auth-cache-duration`
/// (empty: ingress-nginx's default `200 202 401 5m`). An entry without status
/// codes means 200, 301 and 302, as nginx's `proxy_cache_valid`. `None`: not
/// cached.
pub fn cache_ttl(
    durations: &[AuthCacheDuration],
    status: StatusCode,
) -> Option<std::time::Duration> {
    if durations.is_empty() {
        return [200, 202, 401]
            .contains(&status.as_u16())
            .then(|| std::time::Duration::from_secs(300));
    }
    durations
        .iter()
        .find(|d| {
            d.any
                || d.statuses.contains(&status)
                || (d.statuses.is_empty() && [200, 301, 302].contains(&status.as_u16()))
        })
        .map(|d| d.ttl)
        .filter(|t| !t.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotations::test_util::run;

    fn ext(pairs: &[(&str, &str)]) -> ExternalAuth {
        run(pairs).policy.auth.external.expect("external auth")
    }

    #[test]
    fn subrequest_headers_as_ingress_nginx() {
        let mut client = HeaderMap::new();
        client.insert("cookie", HeaderValue::from_static("sid=1"));
        client.insert("connection", HeaderValue::from_static("keep-alive, x-hop"));
        client.insert("x-hop", HeaderValue::from_static("1"));
        client.insert("content-length", HeaderValue::from_static("12"));
        client.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        client.insert("x-original-url", HeaderValue::from_static("forged"));
        let id = HeaderValue::from_static("r1");
        let o = Original {
            method: &Method::POST,
            scheme: "https",
            http_host: "shop.test:8443",
            request_uri: "/cart?x=1",
            remote_addr: Some([10, 0, 0, 9].into()),
            request_id: Some(&id),
        };
        let h = subrequest_headers(&client, &o, "auth.test", "/cart?x=1");
        let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
        assert_eq!(get("cookie"), Some("sid=1"));
        assert_eq!(get("host"), Some("auth.test"));
        assert_eq!(
            get("x-original-url"),
            Some("https://shop.test:8443/cart?x=1")
        );
        assert_eq!(get("x-original-method"), Some("POST"));
        assert_eq!(get("x-sent-from"), Some("nginx-ingress-controller"));
        assert_eq!(get("x-forwarded-for"), Some("10.0.0.9"));
        assert_eq!(get("x-real-ip"), Some("10.0.0.9"));
        assert_eq!(get("x-auth-request-redirect"), Some("/cart?x=1"));
        assert_eq!(get("x-request-id"), Some("r1"));
        for gone in ["connection", "x-hop", "content-length", "x-forwarded-proto"] {
            assert!(h.get(gone).is_none(), "{gone}");
        }
    }

    #[test]
    fn verdicts_and_signin() {
        assert_eq!(verdict(StatusCode::OK, None), Verdict::Allow);
        assert_eq!(verdict(StatusCode::ACCEPTED, None), Verdict::Allow);
        assert_eq!(
            verdict(StatusCode::UNAUTHORIZED, None),
            Verdict::Deny(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            verdict(StatusCode::UNAUTHORIZED, Some("/s".into())),
            Verdict::SignIn("/s".into())
        );
        assert_eq!(
            verdict(StatusCode::FORBIDDEN, Some("/s".into())),
            Verdict::Deny(StatusCode::FORBIDDEN)
        );
        for s in [302, 400, 404, 500, 503] {
            let s = StatusCode::from_u16(s).expect("status");
            assert_eq!(verdict(s, None), Verdict::Error, "{s}");
        }
        let e = ext(&[("auth-url", "http://auth.test/check")]);
        let loc = |s| signin_location(&e, s, "https", "shop.test", "/a b?c=1&d");
        assert_eq!(
            loc("https://login.test/start"),
            "https://login.test/start?rd=https://shop.test%2Fa%20b%3Fc%3D1%26d"
        );
        assert_eq!(
            loc("https://login.test/start?x=1"),
            "https://login.test/start?x=1&rd=https://shop.test%2Fa%20b%3Fc%3D1%26d"
        );
        assert_eq!(
            loc("https://login.test/start?rd=/home"),
            "https://login.test/start?rd=/home"
        );
    }

    #[test]
    fn cache_keys_and_ttls() {
        use std::borrow::Cow;
        let var = |v: &Var| match v {
            Var::Header(h) if h == "authorization" => Some(Cow::Borrowed("Basic YTpi")),
            Var::Host => Some(Cow::Borrowed("shop.test")),
            _ => None,
        };
        assert_eq!(
            cache_key("$remote_user$http_authorization", Some("a"), var).as_deref(),
            Some("aBasic YTpi")
        );
        assert_eq!(
            cache_key("k-${host}_$cookie_sid", None, var).as_deref(),
            Some("k-shop.test_")
        );
        assert_eq!(cache_key("$nope", None, var), None);
        assert_eq!(cache_key("${host", None, var), None);
        let s = |n| StatusCode::from_u16(n).expect("status");
        assert_eq!(
            cache_ttl(&[], s(200)),
            Some(std::time::Duration::from_secs(300))
        );
        assert_eq!(cache_ttl(&[], s(403)), None);
        let e = ext(&[
            ("auth-url", "http://auth.test/check"),
            ("auth-cache-key", "$http_authorization"),
            ("auth-cache-duration", "200 1m, 401 10s, 30s"),
        ]);
        assert_eq!(
            cache_ttl(&e.cache_duration, s(200)),
            Some(std::time::Duration::from_secs(60))
        );
        assert_eq!(
            cache_ttl(&e.cache_duration, s(401)),
            Some(std::time::Duration::from_secs(10))
        );
        assert_eq!(
            cache_ttl(&e.cache_duration, s(302)),
            Some(std::time::Duration::from_secs(30))
        );
        assert_eq!(cache_ttl(&e.cache_duration, s(500)), None);
    }

    #[test]
    fn response_headers_replace_client_values() {
        let e = ext(&[
            ("auth-url", "http://auth.test/check"),
            ("auth-response-headers", "X-User, X-Email"),
        ]);
        let mut answer = HeaderMap::new();
        answer.insert("x-user", HeaderValue::from_static("alice"));
        answer.insert("x-other", HeaderValue::from_static("no"));
        let mut up = HeaderMap::new();
        up.insert("x-user", HeaderValue::from_static("forged"));
        up.insert("x-email", HeaderValue::from_static("forged"));
        copy_response_headers(&e, &answer, &mut up);
        assert_eq!(up.get("x-user").map(|v| v.as_bytes()), Some(&b"alice"[..]));
        assert!(up.get("x-email").is_none() && up.get("x-other").is_none());
    }
}
