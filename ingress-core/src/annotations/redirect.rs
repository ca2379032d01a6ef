//! The `redirect` family: HTTPS, permanent, temporal, app-root and www redirects.

use http::StatusCode;

use crate::diagnostics::Code;

use super::spec::{Risk, Scope, Support};
use super::values::{self, Url};
use super::{AnnotationFamily, Cx, Family, IngressPolicy, KeySpec};

/// A fixed redirect target (`permanent-redirect` / `temporal-redirect`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RedirectTo {
    /// Where to.
    pub url: Url,
    /// 3xx status.
    pub status: StatusCode,
    /// From `temporal-redirect` (else `permanent-redirect`).
    pub temporal: bool,
}

/// The redirects one Ingress asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedirectPolicy {
    /// `ssl-redirect`, when written. Unset: the profile default (ingress-nginx: on for
    /// hosts with a certificate; standard: off).
    pub ssl_redirect: Option<bool>,
    /// `force-ssl-redirect`: redirect plain HTTP even without a certificate.
    pub force_ssl_redirect: bool,
    /// `preserve-trailing-slash` on the HTTPS redirect.
    pub preserve_trailing_slash: bool,
    /// `temporal-redirect` (wins) or `permanent-redirect`.
    pub to: Option<RedirectTo>,
    /// `app-root` (host scope): `/` answers 302 to this path.
    pub app_root: Option<String>,
    /// `from-to-www-redirect` (host scope).
    pub from_to_www: bool,
}

const SSL_REDIRECT: KeySpec = KeySpec::new("ssl-redirect", Family::Redirect)
    .grammar("boolean")
    .default("ingress-nginx profile: true (for hosts with a certificate); standard: false")
    .doc("Plain-HTTP requests to a host with a TLS certificate answer 308 to https (trailing `/` of the request URI removed unless preserve-trailing-slash).");
const FORCE_SSL_REDIRECT: KeySpec = KeySpec::new("force-ssl-redirect", Family::Redirect)
    .grammar("boolean")
    .default("false")
    .doc("Plain-HTTP requests answer 308 to https even when the host has no certificate here (TLS ends in front of the gateway).");
const PRESERVE_TRAILING_SLASH: KeySpec = KeySpec::new("preserve-trailing-slash", Family::Redirect)
    .grammar("boolean")
    .default("false")
    .doc("Keep a trailing `/` in the HTTPS redirect's Location.");
const PERMANENT: KeySpec = KeySpec::new("permanent-redirect", Family::Redirect)
    .grammar("absolute http(s) URL")
    .doc("Answer every request with a redirect to this URL (the request path is not appended).")
    .risk(Risk::Medium);
const PERMANENT_CODE: KeySpec = KeySpec::new("permanent-redirect-code", Family::Redirect)
    .grammar("status code 300..308")
    .default("301")
    .doc("Status of permanent-redirect.");
const TEMPORAL: KeySpec = KeySpec::new("temporal-redirect", Family::Redirect)
    .grammar("absolute http(s) URL")
    .doc("Answer every request with a 302 (or temporal-redirect-code) to this URL; wins over permanent-redirect.")
    .risk(Risk::Medium);
const TEMPORAL_CODE: KeySpec = KeySpec::new("temporal-redirect-code", Family::Redirect)
    .grammar("status code 300..307")
    .default("302")
    .doc("Status of temporal-redirect.");
const APP_ROOT: KeySpec = KeySpec::new("app-root", Family::Redirect)
    .grammar("path starting with `/`")
    .doc("A request for exactly `/` answers 302 to this path on the same host (the query is dropped).")
    .scope(Scope::Host)
    .risk(Risk::Medium);
const FROM_TO_WWW: KeySpec = KeySpec::new("from-to-www-redirect", Family::Redirect)
    .grammar("boolean")
    .default("false")
    .doc("Requests to `www.<host>` answer 308 to `<host>` (or the reverse when the rule host starts with `www.`), unless an Ingress routes the other name.")
    .scope(Scope::Host);
const USE_PORT: KeySpec = KeySpec::new("use-port-in-redirects", Family::Redirect)
    .grammar("boolean")
    .default("false")
    .doc("Include the listener port in redirect Locations.")
    .support(Support::NotEnforced("redirect Locations never name a port"));
const RELATIVE: KeySpec = KeySpec::new("relative-redirects", Family::Redirect)
    .grammar("boolean")
    .default("false")
    .doc("nginx `absolute_redirect off`.")
    .support(Support::NotEnforced(
        "the gateway's own Locations are always absolute",
    ));
const PROXY_REDIRECT_FROM: KeySpec = KeySpec::new("proxy-redirect-from", Family::Redirect)
    .grammar("string, `off` or `default`")
    .doc("Rewrite the upstream's Location header (first argument of nginx proxy_redirect).")
    .risk(Risk::Medium)
    .support(Support::NotEnforced(
        "upstream Location headers are passed unchanged",
    ));
const PROXY_REDIRECT_TO: KeySpec = KeySpec::new("proxy-redirect-to", Family::Redirect)
    .grammar("string")
    .doc("Second argument of nginx proxy_redirect.")
    .risk(Risk::Medium)
    .support(Support::NotEnforced(
        "upstream Location headers are passed unchanged",
    ));

static KEYS: &[KeySpec] = &[
    SSL_REDIRECT,
    FORCE_SSL_REDIRECT,
    PRESERVE_TRAILING_SLASH,
    PERMANENT,
    PERMANENT_CODE,
    TEMPORAL,
    TEMPORAL_CODE,
    APP_ROOT,
    FROM_TO_WWW,
    USE_PORT,
    RELATIVE,
    PROXY_REDIRECT_FROM,
    PROXY_REDIRECT_TO,
];

/// The family.
#[derive(Debug)]
pub(crate) struct Redirect;

impl AnnotationFamily for Redirect {
    fn family(&self) -> Family {
        Family::Redirect
    }
    fn keys(&self) -> &'static [KeySpec] {
        KEYS
    }
    fn parse(&self, cx: &mut Cx<'_>, policy: &mut IngressPolicy) {
        let p = &mut policy.redirect;
        p.ssl_redirect = cx.boolean(&KEYS[0]);
        p.force_ssl_redirect = cx.boolean(&KEYS[1]).unwrap_or(false);
        p.preserve_trailing_slash = cx.boolean(&KEYS[2]).unwrap_or(false);
        let permanent = cx.parse(&KEYS[3], values::url);
        let permanent_code = cx.take(&KEYS[4]);
        let temporal = cx.parse(&KEYS[5], values::url);
        let temporal_code = cx.take(&KEYS[6]);
        let code = |cx: &mut Cx<'_>, raw: Option<super::Raw<'_>>, url: bool, hi, default| {
            let Some(raw) = raw else { return default };
            if !url {
                cx.report(
                    Code::AnnotationIgnored,
                    raw.key,
                    format!("`{}` has no effect without its redirect URL", raw.key),
                );
            }
            match values::status_in(raw.value, 300, hi) {
                Ok(c) => c,
                Err(why) => {
                    cx.invalid(&raw, &why);
                    default
                }
            }
        };
        let pc = code(
            cx,
            permanent_code,
            permanent.is_some(),
            308,
            StatusCode::MOVED_PERMANENTLY,
        );
        let tc = code(
            cx,
            temporal_code,
            temporal.is_some(),
            307,
            StatusCode::FOUND,
        );
        p.to = match (temporal, permanent) {
            (Some(url), _) => Some(RedirectTo {
                url,
                status: tc,
                temporal: true,
            }),
            (None, Some(url)) => Some(RedirectTo {
                url,
                status: pc,
                temporal: false,
            }),
            (None, None) => None,
        };
        p.app_root = cx.parse(&KEYS[7], |s| values::path(s, true));
        p.from_to_www = cx.boolean(&KEYS[8]).unwrap_or(false);
        cx.boolean(&KEYS[9]);
        cx.boolean(&KEYS[10]);
        cx.parse(&KEYS[11], |s| {
            if s.contains(char::is_whitespace) {
                Err("expected one word".to_string())
            } else {
                Ok(())
            }
        });
        cx.parse(&KEYS[12], |s| {
            if s.contains(char::is_whitespace) {
                Err("expected one word".to_string())
            } else {
                Ok(())
            }
        });
    }
}
