//! The `auth` family: basic authentication from a Secret, external authentication
//! (`auth-url`), `satisfy` and `enable-global-auth`. Every key that decides who may
//! pass is a security control: a value that cannot be enforced fails the routes
//! closed.
//!
//! Basic auth: `auth-type: basic` with `auth-secret` (an `auth-file` Secret holds
//! htpasswd text under `auth`; an `auth-map` Secret holds one user per key, the
//! hash as value). The compile step reads the Secret with [`parse_htpasswd`] /
//! [`PasswordHash::parse`]; a data plane checks passwords with
//! [`PasswordHash::verify`] (see [`crate::auth`]). Digest auth: `auth-type:
//! digest` with an htdigest Secret (`user:realm:HA1` lines; [`parse_htdigest`]),
//! checked with [`crate::auth::digest`].
//!
//! External auth: for every request the gateway sends `auth-method` to the
//! rendered `auth-url` with the original request's headers (and
//! `X-Original-URL`, `X-Original-Method`, `X-Auth-Request-Redirect`). A 2xx answer
//! lets the request through, with `auth-response-headers` copied from the answer
//! into the upstream request; 401 and 403 are answered with that status (a 401 is a
//! 302 to `auth-signin` when set, carrying the original URL in the
//! `auth-signin-redirect-param` query parameter, built from the Ingress rule's host
//! rather than the request `Host` where the rule names one); any other status, an
//! error or a timeout answers 500. An error page never turns a 401/403 into a
//! success (CVE-2026-24513). Variable values other than `$request_uri`, `$uri` and
//! `$escaped_request_uri` are percent-encoded when rendered into a URL.

use std::time::Duration;

use http::{HeaderName, StatusCode};

use crate::diagnostics::Code;

use super::headers;
use super::spec::{Risk, Support};
use super::template::{self, Part, Template, Var};
use super::values::{self, ObjectName};
use super::{AnnotationFamily, Cx, Family, IngressPolicy, KeySpec};

pub mod htpasswd;

pub use htpasswd::{
    BcryptVersion, DigestEntry, HtpasswdEntry, PasswordHash, parse_htdigest, parse_htpasswd,
};

/// How an `auth-secret` holds its users.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SecretType {
    /// `auth-file`: htpasswd text under the key `auth`.
    #[default]
    AuthFile,
    /// `auth-map`: one key per user, the password hash as value.
    AuthMap,
}

/// `auth-type: basic`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct BasicAuth {
    /// `auth-secret`; a written namespace is checked by the compile step.
    pub secret: ObjectName,
    /// `auth-secret-type`.
    pub secret_type: SecretType,
    /// `auth-realm`: the realm of the `WWW-Authenticate` challenge (empty if unset).
    pub realm: Option<String>,
    /// The users of the Secret, read by compile (`auth` key for `auth-file`, one key
    /// per user for `auth-map`). Empty until compiled; a Secret that is missing,
    /// unreadable or holds no user fails the routes closed.
    pub users: Vec<HtpasswdEntry>,
}

/// `auth-type: digest`: RFC 7616 digest authentication (MD5, `qop=auth`)
/// against an htdigest Secret, as nginx's `auth_digest` module. Enforced with
/// [`crate::auth::digest`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct DigestAuth {
    /// `auth-secret`; a written namespace is checked by the compile step.
    pub secret: ObjectName,
    /// `auth-secret-type`: `auth-file` holds htdigest text (`user:realm:HA1`)
    /// under `auth`; `auth-map` one key per user with `realm:HA1` as value.
    pub secret_type: SecretType,
    /// `auth-realm`: the realm of the challenge; only users of this realm
    /// (empty if unset) can sign in.
    pub realm: Option<String>,
    /// The users of the Secret in the realm, read by compile. Empty until
    /// compiled; a Secret that is missing, unreadable or holds no user of the
    /// realm fails the routes closed.
    pub users: Vec<DigestEntry>,
}

impl DigestAuth {
    /// Digest authentication in `realm` for `users` (as compile makes it from
    /// the Secret `secret`).
    pub fn new(secret: ObjectName, realm: Option<String>, users: Vec<DigestEntry>) -> DigestAuth {
        DigestAuth {
            secret,
            secret_type: SecretType::AuthFile,
            realm,
            users,
        }
    }
}

/// `auth-method`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// GET.
    #[default]
    Get,
    /// HEAD.
    Head,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
    /// CONNECT.
    Connect,
    /// OPTIONS.
    Options,
    /// TRACE.
    Trace,
}

const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE",
];
const METHOD_VALUES: [AuthMethod; 9] = [
    AuthMethod::Get,
    AuthMethod::Head,
    AuthMethod::Post,
    AuthMethod::Put,
    AuthMethod::Patch,
    AuthMethod::Delete,
    AuthMethod::Connect,
    AuthMethod::Options,
    AuthMethod::Trace,
];

impl AuthMethod {
    /// The HTTP method.
    pub fn as_method(self) -> http::Method {
        match self {
            AuthMethod::Get => http::Method::GET,
            AuthMethod::Head => http::Method::HEAD,
            AuthMethod::Post => http::Method::POST,
            AuthMethod::Put => http::Method::PUT,
            AuthMethod::Patch => http::Method::PATCH,
            AuthMethod::Delete => http::Method::DELETE,
            AuthMethod::Connect => http::Method::CONNECT,
            AuthMethod::Options => http::Method::OPTIONS,
            AuthMethod::Trace => http::Method::TRACE,
        }
    }
}

/// One entry of `auth-cache-duration`: answers with these statuses are cached for
/// `ttl`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuthCacheDuration {
    /// The statuses; empty with `any: false` means nginx's default (200, 301, 302).
    pub statuses: Vec<StatusCode>,
    /// `any`: every status.
    pub any: bool,
    /// How long.
    pub ttl: Duration,
}

/// Keepalive to the auth service (`auth-keepalive*`; parsed, not applied: the
/// gateway pools auth connections with its own limits).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuthKeepalive {
    /// `auth-keepalive`: idle connections kept (0: off).
    pub connections: u32,
    /// `auth-keepalive-requests`.
    pub requests: u32,
    /// `auth-keepalive-timeout`.
    pub timeout: Duration,
    /// `auth-keepalive-share-vars`.
    pub share_vars: bool,
}

impl Default for AuthKeepalive {
    fn default() -> Self {
        AuthKeepalive {
            connections: 0,
            requests: 1000,
            timeout: Duration::from_secs(60),
            share_vars: false,
        }
    }
}

/// `auth-url` and its companions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ExternalAuth {
    /// `auth-url`: absolute http(s) URL; the host is literal or `$host`.
    pub url: Template,
    /// `auth-method` (default GET).
    pub method: AuthMethod,
    /// `auth-signin`: where a 401 is redirected.
    pub signin: Option<Template>,
    /// `auth-signin-redirect-param` (default `rd`).
    pub signin_redirect_param: String,
    /// `auth-response-headers`: copied from a 2xx auth answer into the upstream
    /// request (replacing the client's values).
    pub response_headers: Vec<HeaderName>,
    /// `auth-request-redirect`: the `X-Auth-Request-Redirect` value. `None`:
    /// `$request_uri`.
    pub request_redirect: Option<Template>,
    /// `auth-proxy-set-headers` (not read: ConfigMaps are not read).
    pub proxy_set_headers: Option<ObjectName>,
    /// `auth-cache-key` as written: answers are cached under its evaluation
    /// ([`crate::auth::external::cache_key`]).
    pub cache_key: Option<String>,
    /// `auth-cache-duration` ([`crate::auth::external::cache_ttl`]).
    pub cache_duration: Vec<AuthCacheDuration>,
    /// `auth-keepalive*` (parsed, not applied).
    pub keepalive: AuthKeepalive,
    /// `auth-always-set-cookie`: pass the auth answer's `Set-Cookie` to the client
    /// on every upstream answer, not only on 2xx/3xx.
    pub always_set_cookie: bool,
}

/// Authentication of one Ingress.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthPolicy {
    /// Basic authentication.
    pub basic: Option<BasicAuth>,
    /// Digest authentication.
    pub digest: Option<DigestAuth>,
    /// External authentication.
    pub external: Option<ExternalAuth>,
    /// `satisfy: any`: the IP allow list or authentication suffices (default: both
    /// must pass).
    pub satisfy_any: bool,
    /// `enable-global-auth` (default true): the gateway-wide auth URL applies.
    pub global_auth: bool,
}

impl Default for AuthPolicy {
    fn default() -> Self {
        AuthPolicy {
            basic: None,
            digest: None,
            external: None,
            satisfy_any: false,
            global_auth: true,
        }
    }
}

impl AuthPolicy {
    /// `satisfy: any` with authentication set: the IP lists do not deny on their
    /// own (the route decision forwards); a data plane skips authentication for an
    /// address an allow list names ([`super::AccessPolicy::explicitly_allowed`])
    /// and requires it from every other address, as nginx's `satisfy any`.
    pub fn defers_access(&self) -> bool {
        self.satisfy_any
            && (self.basic.is_some() || self.digest.is_some() || self.external.is_some())
    }
}

fn auth_template(s: &str) -> Result<Template, values::Invalid> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or_else(|| "expected an absolute URL starting with http:// or https://".to_string())?;
    let t = template::parse(s, |c| {
        c.is_ascii_alphanumeric() || "-._~/:,?&=%+!*()".contains(c)
    })?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.contains('$') {
        let a = template::parse(authority, |c| {
            c.is_ascii_alphanumeric() || ".-:".contains(c)
        })?;
        if a.parts
            .iter()
            .any(|p| matches!(p, Part::Var(v) if *v != Var::Host))
        {
            return Err("only `$host` may stand in the host part".into());
        }
    } else {
        values::host(authority, true)?;
    }
    Ok(t)
}

fn token(s: &str) -> Result<String, values::Invalid> {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
    {
        Ok(s.to_string())
    } else {
        Err("expected a query parameter name of letters, digits and `-_.~`".into())
    }
}

fn realm(s: &str) -> Result<String, values::Invalid> {
    if s.contains(['"', '\\']) {
        return Err("a realm cannot hold `\"` or `\\`".into());
    }
    values::header_value(s)?;
    Ok(s.to_string())
}

fn response_headers(s: &str) -> Result<Vec<HeaderName>, values::Invalid> {
    let names = values::header_names(s)?;
    if let Some(n) = names.iter().find(|n| headers::is_protected(n)) {
        return Err(format!(
            "`{n}` is a hop-by-hop or framing header and cannot be copied"
        ));
    }
    Ok(names)
}

fn nginx_duration(s: &str) -> Result<Duration, values::Invalid> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (`5m`, `1h`)"))?;
    let secs: u64 = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "M" => 30 * 86_400,
        "y" => 365 * 86_400,
        _ => {
            return Err(format!(
                "`{s}` is not a duration (units ms, s, m, h, d, w, M, y)"
            ));
        }
    };
    n.checked_mul(secs)
        .map(Duration::from_secs)
        .ok_or_else(|| "the duration is too large".to_string())
}

fn cache_durations(s: &str) -> Result<Vec<AuthCacheDuration>, values::Invalid> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let mut entry = AuthCacheDuration {
            statuses: Vec::new(),
            any: false,
            ttl: Duration::ZERO,
        };
        let mut timed = false;
        for w in item.split_whitespace() {
            if !timed && w == "any" {
                entry.any = true;
            } else if !timed && w.len() == 3 && w.bytes().all(|b| b.is_ascii_digit()) {
                entry.statuses.push(values::status_in(w, 100, 599)?);
            } else if w.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "`{item}`: status codes come before the duration, and a duration needs a unit"
                ));
            } else {
                // nginx time: one or more parts (`1h 30m`), summed.
                entry.ttl = entry.ttl.saturating_add(nginx_duration(w)?);
                timed = true;
            }
        }
        if !timed {
            return Err(format!(
                "`{item}` has no duration (`<codes...> <duration>`)"
            ));
        }
        out.push(entry);
    }
    if out.is_empty() {
        return Err("expected `<codes...> <duration>` items, comma-separated".into());
    }
    Ok(out)
}

const fn key(name: &'static str) -> KeySpec {
    KeySpec::new(name, Family::Auth)
}

const OWN_POOL: Support = Support::NotEnforced(
    "connections to the auth service are pooled with the gateway's own limits",
);

static KEYS: &[KeySpec] = &[
    key("auth-type")
        .grammar("`basic` or `digest`")
        .doc("`basic`: HTTP basic authentication against auth-secret (401 with a challenge otherwise). `digest`: RFC 7616 digest authentication (MD5, qop=auth) against an htdigest auth-secret, with expiring nonces and nc replay protection.")
        .security(),
    key("auth-secret")
        .grammar("`name` or `namespace/name` of a Secret")
        .doc("The users of basic (htpasswd) or digest (htdigest: `user:realm:HA1`) authentication; another namespace needs cross-namespace references allowed.")
        .risk(Risk::Medium)
        .security(),
    key("auth-secret-type")
        .grammar("`auth-file` or `auth-map`")
        .default("auth-file")
        .doc("auth-file: htpasswd (digest: htdigest) text under `auth`; auth-map: one key per user, the hash (digest: `realm:HA1`) as value. Hashes: bcrypt ($2y$, $2a$, $2b$), {SHA}, {SSHA}, {PLAIN}, $apr1$, $1$; a traditional DES crypt hash never matches.")
        .security(),
    key("auth-realm")
        .grammar("text without quotes or backslashes")
        .default("empty")
        .doc("Realm of the basic or digest challenge; digest signs in only the users of this realm."),
    key("auth-url")
        .grammar("absolute http(s) URL; host literal or `$host`; supported variables elsewhere")
        .doc("External authentication: 2xx lets the request through, 401/403 answer with that status, anything else (or no answer) 500.")
        .risk(Risk::High)
        .security(),
    key("auth-method")
        .grammar("GET, HEAD, POST, PUT, PATCH, DELETE, CONNECT, OPTIONS or TRACE")
        .default("GET")
        .doc("Method of the auth request.")
        .security(),
    key("auth-signin")
        .grammar("absolute http(s) URL; host literal or `$host`; supported variables elsewhere")
        .doc("A 401 from the auth service answers 302 here, with the original URL (Ingress rule host) in the redirect parameter.")
        .risk(Risk::High)
        .security(),
    key("auth-signin-redirect-param")
        .grammar("query parameter name")
        .default("rd")
        .doc("Name of the original-URL parameter added to auth-signin."),
    key("auth-response-headers")
        .grammar("comma-separated header names")
        .doc("Headers copied from a 2xx auth answer into the upstream request.")
        .risk(Risk::Medium)
        .security(),
    key("auth-proxy-set-headers")
        .grammar("`name` or `namespace/name` of a ConfigMap")
        .doc("Extra headers for the auth request.")
        .risk(Risk::Medium)
        .support(Support::NotEnforced("ConfigMaps are not read; the auth request carries the original request's headers")),
    key("auth-request-redirect")
        .grammar("URL or path; supported variables")
        .default("$request_uri")
        .doc("Value of `X-Auth-Request-Redirect` sent to the auth service.")
        .risk(Risk::Medium),
    key("auth-cache-key")
        .grammar("`[A-Za-z0-9-_${}]` (nginx variables)")
        .doc("Cache auth answers (per proxy, in memory) under the route, the auth URL and this key; variables: $remote_user, $http_<name>, $cookie_<name>, $arg_<name>, $host, $uri, $request_uri, $remote_addr... (an unsupported one disables the cache).")
        .risk(Risk::Medium),
    key("auth-cache-duration")
        .grammar("comma-separated `<codes...> <duration>` (units ms s m h d w M y)")
        .default("200 202 401 5m")
        .doc("How long auth answers are cached, per status (an entry without codes: 200, 301, 302); needs auth-cache-key."),
    key("auth-keepalive")
        .grammar("whole number")
        .default("0")
        .doc("Idle keepalive connections to the auth service.")
        .support(OWN_POOL),
    key("auth-keepalive-share-vars")
        .grammar("boolean")
        .default("false")
        .doc("Share nginx variables between the request and its auth request.")
        .support(Support::NotEnforced("there are no nginx variables to share")),
    key("auth-keepalive-requests")
        .grammar("whole number")
        .default("1000")
        .doc("Requests per keepalive connection to the auth service.")
        .support(OWN_POOL),
    key("auth-keepalive-timeout")
        .grammar("whole seconds")
        .default("60")
        .doc("Idle timeout of keepalive connections to the auth service.")
        .support(OWN_POOL),
    key("auth-always-set-cookie")
        .grammar("boolean")
        .default("false")
        .doc("Pass the auth answer's Set-Cookie to the client on every upstream answer, not only 2xx/3xx."),
    key("enable-global-auth")
        .grammar("boolean")
        .default("true")
        .doc("`false`: the gateway-wide auth URL does not apply to this Ingress.")
        .security(),
    key("satisfy")
        .grammar("`all` or `any`")
        .default("all")
        .doc("`any`: a request passes when the IP allow list names its address or it authenticates (the deny list alone grants nothing); `all`: both.")
        .security(),
];

/// The family.
#[derive(Debug)]
pub(crate) struct Auth;

impl Auth {
    fn basic(cx: &mut Cx<'_>) -> (Option<BasicAuth>, Option<DigestAuth>) {
        let kind = cx.take(&KEYS[0]);
        let secret = cx.parse(&KEYS[1], values::object_ref);
        let secret_type = cx.parse(&KEYS[2], |s| values::one_of(s, &["auth-file", "auth-map"]));
        let realm = cx.parse(&KEYS[3], realm);
        let Some(kind) = kind else {
            for k in &KEYS[1..4] {
                if cx.any_present(std::slice::from_ref(k)) {
                    let msg = format!("`{}` has no effect without auth-type", k.name);
                    cx.report(Code::AnnotationIgnored, k.name, msg);
                }
            }
            return (None, None);
        };
        let digest = match ["basic", "digest"]
            .iter()
            .position(|k| *k == kind.value)
            .ok_or("expected `basic` or `digest`")
        {
            Ok(i) => i == 1,
            Err(why) => {
                cx.invalid(&kind, why);
                return (None, None);
            }
        };
        if secret.is_none() && !cx.any_present(&KEYS[1..2]) {
            let why = if digest {
                "digest authentication needs auth-secret"
            } else {
                "basic authentication needs auth-secret"
            };
            cx.invalid(&kind, why);
        }
        let Some(secret) = secret else {
            return (None, None);
        };
        let secret_type = if secret_type == Some(1) {
            SecretType::AuthMap
        } else {
            SecretType::AuthFile
        };
        if digest {
            return (
                None,
                Some(DigestAuth {
                    secret,
                    secret_type,
                    realm,
                    users: Vec::new(),
                }),
            );
        }
        (
            Some(BasicAuth {
                secret,
                secret_type,
                realm,
                users: Vec::new(),
            }),
            None,
        )
    }

    fn external(cx: &mut Cx<'_>) -> Option<ExternalAuth> {
        let url = cx.parse(&KEYS[4], auth_template);
        let method = cx.parse(&KEYS[5], |s| {
            METHODS
                .iter()
                .position(|m| *m == s)
                .map(|i| METHOD_VALUES[i])
                .ok_or_else(|| format!("expected one of: {}", METHODS.join(", ")))
        });
        let signin = cx.parse(&KEYS[6], auth_template);
        let param = cx.parse(&KEYS[7], token);
        let response_headers = cx.parse(&KEYS[8], response_headers);
        let proxy_set_headers = cx.parse(&KEYS[9], values::object_ref);
        let request_redirect = cx.parse(&KEYS[10], |s| {
            template::parse(s, |c| {
                c.is_ascii_alphanumeric() || "-._~/:,?&=%+!*()".contains(c)
            })
        });
        let cache_key = cx.parse(&KEYS[11], |s| {
            if s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_${}".contains(c))
            {
                Ok(s.to_string())
            } else {
                Err("expected letters, digits, `-`, `_` and nginx variables".to_string())
            }
        });
        let cache_duration = cx.parse(&KEYS[12], cache_durations);
        let count = |s: &str| values::uint_max(s, u64::from(u32::MAX)).map(|n| n as u32);
        let mut keepalive = AuthKeepalive::default();
        if let Some(n) = cx.parse(&KEYS[13], count) {
            keepalive.connections = n;
        }
        if let Some(b) = cx.boolean(&KEYS[14]) {
            keepalive.share_vars = b;
        }
        if let Some(n) = cx.parse(&KEYS[15], count) {
            keepalive.requests = n;
        }
        if let Some(n) = cx.parse(&KEYS[16], values::uint) {
            keepalive.timeout = Duration::from_secs(n);
        }
        let always_set_cookie = cx.boolean(&KEYS[17]).unwrap_or(false);
        if !cx.any_present(&KEYS[4..5]) {
            for k in &KEYS[5..18] {
                if cx.any_present(std::slice::from_ref(k)) {
                    let msg = format!("`{}` has no effect without auth-url", k.name);
                    cx.report(Code::AnnotationIgnored, k.name, msg);
                }
            }
            return None;
        }
        if signin.is_none() && !cx.any_present(&KEYS[6..7]) && cx.any_present(&KEYS[7..8]) {
            let msg = "`auth-signin-redirect-param` has no effect without auth-signin";
            cx.report(Code::AnnotationIgnored, KEYS[7].name, msg);
        }
        Some(ExternalAuth {
            url: url?,
            method: method.unwrap_or_default(),
            signin,
            signin_redirect_param: param.unwrap_or_else(|| "rd".into()),
            response_headers: response_headers.unwrap_or_default(),
            request_redirect,
            proxy_set_headers,
            cache_key,
            cache_duration: cache_duration.unwrap_or_default(),
            keepalive,
            always_set_cookie,
        })
    }
}

impl AnnotationFamily for Auth {
    fn family(&self) -> Family {
        Family::Auth
    }
    fn keys(&self) -> &'static [KeySpec] {
        KEYS
    }
    fn parse(&self, cx: &mut Cx<'_>, policy: &mut IngressPolicy) {
        let (basic, digest) = Auth::basic(cx);
        let external = Auth::external(cx);
        let global_auth = cx.boolean(&KEYS[18]).unwrap_or(true);
        let satisfy = cx.take(&KEYS[19]);
        let mut satisfy_any = false;
        if let Some(raw) = satisfy {
            match values::one_of(raw.value, &["all", "any"]) {
                Ok(i) => satisfy_any = i == 1,
                Err(why) => cx.invalid(&raw, &why),
            }
            let has_auth = basic.is_some() || digest.is_some() || external.is_some();
            if satisfy_any && !(has_auth && policy.access.allow.is_some()) {
                let msg = format!(
                    "`{}` has no effect unless an IP allow list and authentication are both set",
                    raw.key
                );
                cx.report(Code::AnnotationIgnored, raw.key, msg);
            }
        }
        policy.auth = AuthPolicy {
            basic,
            digest,
            external,
            satisfy_any,
            global_auth,
        };
    }
}

#[cfg(test)]
mod tests;
