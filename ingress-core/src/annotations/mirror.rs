//! The `mirror` family: shadow copies of requests (ingress-nginx `mirror-*`,
//! Higress/MSE `mirror-target-service` / `-fqdn` / `-percentage`).
//!
//! A mirror applies to every path of the Ingress. The copy is sent after the
//! request is received, its answer is discarded, and it never delays or fails the
//! original request (in nginx a slow mirror slows the main request).
//!
//! One target is used, in this order: `mirror-target-fqdn`, `mirror-target-service`,
//! `mirror-target`; the others are reported as ignored. `mirror-target` is an
//! absolute http(s) URL whose host is literal and whose path may use `$request_uri`,
//! `$uri`, `$host`, `$scheme` and `$arg_<name>` only (the data plane percent-encodes
//! the values of `$host`, `$scheme` and `$arg_*`).

use http::uri::{Authority, Scheme};

use crate::diagnostics::Code;

use super::spec::{Prefixes, Risk};
use super::template::{self, Part, Template, Var};
use super::values;
use super::{AnnotationFamily, Cx, Family, IngressPolicy, KeySpec};

/// A `mirror-target` URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MirrorUrl {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Literal host and optional port.
    pub authority: Authority,
    /// Path and query, with variables; `None`: the original request URI.
    pub path: Option<Template>,
}

/// Where copies go.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MirrorTarget {
    /// `mirror-target-service`: a Service of the cluster (the compile step resolves
    /// it; a written namespace needs cross-namespace references allowed).
    Service {
        /// The namespace, if written (else the Ingress's).
        namespace: Option<String>,
        /// The Service name.
        name: String,
        /// The Service port; `None`: its first port.
        port: Option<u16>,
    },
    /// `mirror-target`: an absolute URL.
    Url(MirrorUrl),
    /// `mirror-target-fqdn` with `mirror-target-fqdn-port`: an external host.
    Fqdn {
        /// Lower-case host name.
        host: String,
        /// Port (default 80).
        port: u16,
    },
}

/// Mirroring of one Ingress.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct MirrorPolicy {
    /// Where copies go.
    pub target: MirrorTarget,
    /// `mirror-host`: the `Host` of the copies. `None`: the URL's host for
    /// [`MirrorTarget::Url`], else the original request's `Host`.
    pub host: Option<String>,
    /// `mirror-request-body`: whether the body is copied too (default on).
    pub request_body: bool,
    /// `mirror-percentage`: the percentage of requests copied, 0..=100 (values
    /// above 100 mean all).
    pub percentage: u8,
}

impl MirrorPolicy {
    /// Whether a request is copied, given a uniform roll in `0..100`.
    pub fn sampled(&self, roll: u8) -> bool {
        roll < self.percentage
    }
}

fn on_off(s: &str) -> Result<bool, values::Invalid> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err("expected `on` or `off`".into()),
    }
}

fn port(s: &str) -> Result<u16, values::Invalid> {
    match values::uint_max(s, 65535) {
        Ok(p) if p > 0 => Ok(p as u16),
        _ => Err(format!("`{s}` is not a port number (1..65535)")),
    }
}

/// Parse a `mirror-target` URL.
pub fn mirror_url(s: &str) -> Result<MirrorUrl, values::Invalid> {
    let (scheme, rest) = if let Some(r) = s.strip_prefix("https://") {
        (Scheme::HTTPS, r)
    } else if let Some(r) = s.strip_prefix("http://") {
        (Scheme::HTTP, r)
    } else {
        return Err("expected an absolute URL starting with http:// or https://".into());
    };
    let end = rest.find(['/', '$', '?', '#']).unwrap_or(rest.len());
    let (auth, path) = rest.split_at(end);
    values::host(auth, true)
        .map_err(|e| format!("{e} (the host of a mirror target is literal)"))?;
    let authority: Authority = auth
        .parse()
        .map_err(|_| format!("`{auth}` is not a valid host"))?;
    if path.is_empty() {
        return Ok(MirrorUrl {
            scheme,
            authority,
            path: None,
        });
    }
    if !(path.starts_with('/') || path.starts_with('$')) {
        return Err("the path of a mirror target must start with `/` or a variable".into());
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || "-._~/:@!&()*+,=%?".contains(c);
    let t = template::parse(path, ok)?;
    for p in &t.parts {
        if let Part::Var(v) = p
            && !matches!(
                v,
                Var::RequestUri | Var::Uri | Var::Host | Var::Scheme | Var::Arg(_)
            )
        {
            return Err(format!(
                "`{v}` cannot be used in a mirror target (allowed: $request_uri, $uri, $host, $scheme, $arg_<name>)"
            ));
        }
    }
    Ok(MirrorUrl {
        scheme,
        authority,
        path: Some(t),
    })
}

/// Parse `[namespace/]name[:port]`.
pub fn service_target(s: &str) -> Result<MirrorTarget, values::Invalid> {
    let (name, p) = match s.rsplit_once(':') {
        Some((n, p)) => (n, Some(port(p)?)),
        None => (s, None),
    };
    let r = values::object_ref(name)?;
    Ok(MirrorTarget::Service {
        namespace: r.namespace,
        name: r.name,
        port: p,
    })
}

const TARGET: KeySpec = KeySpec::new("mirror-target", Family::Mirror)
    .grammar("absolute http(s) URL with a literal host; the path may use $request_uri, $uri, $host, $scheme, $arg_<name>")
    .doc("Copy every request of the Ingress to this URL (answer discarded, never delays the request). Without a path the original request URI is used.")
    .risk(Risk::High);
const HOST: KeySpec = KeySpec::new("mirror-host", Family::Mirror)
    .grammar("host name, optionally with `:port`")
    .default("the target URL's host (Service and FQDN targets: the original Host)")
    .doc("`Host` header of the copies.")
    .risk(Risk::High);
const REQUEST_BODY: KeySpec = KeySpec::new("mirror-request-body", Family::Mirror)
    .grammar("`on` or `off`")
    .default("on")
    .doc("Whether the request body is copied too.");
const SERVICE: KeySpec = KeySpec::new("mirror-target-service", Family::Mirror)
    .grammar("`[namespace/]name[:port]`")
    .doc("Copy every request of the Ingress to this Service (port: its first port); wins over mirror-target. A namespace needs cross-namespace references allowed.")
    .prefixes(Prefixes::ExtensionAndNginx)
    .risk(Risk::Medium);
const FQDN: KeySpec = KeySpec::new("mirror-target-fqdn", Family::Mirror)
    .grammar("host name")
    .doc("Copy every request of the Ingress to this external host (plain HTTP to mirror-target-fqdn-port); wins over mirror-target-service and mirror-target.")
    .prefixes(Prefixes::ExtensionAndNginx)
    .risk(Risk::Medium);
const FQDN_PORT: KeySpec = KeySpec::new("mirror-target-fqdn-port", Family::Mirror)
    .grammar("port 1..65535")
    .default("80")
    .doc("Port of mirror-target-fqdn.")
    .prefixes(Prefixes::ExtensionAndNginx);
const PERCENTAGE: KeySpec = KeySpec::new("mirror-percentage", Family::Mirror)
    .grammar("whole number 0..100 (larger values mean 100)")
    .default("100")
    .doc("Percentage of requests copied, by a uniform roll per request.")
    .prefixes(Prefixes::ExtensionAndNginx);

static KEYS: &[KeySpec] = &[
    TARGET,
    HOST,
    REQUEST_BODY,
    SERVICE,
    FQDN,
    FQDN_PORT,
    PERCENTAGE,
];

/// The family.
#[derive(Debug)]
pub(crate) struct Mirror;

impl AnnotationFamily for Mirror {
    fn family(&self) -> Family {
        Family::Mirror
    }
    fn keys(&self) -> &'static [KeySpec] {
        KEYS
    }
    fn parse(&self, cx: &mut Cx<'_>, policy: &mut IngressPolicy) {
        let url = cx.take(&KEYS[0]).map(|r| (r, mirror_url(r.value)));
        let host = cx.parse(&KEYS[1], |s| values::host(s, true));
        let request_body = cx.parse(&KEYS[2], on_off);
        let service = cx.take(&KEYS[3]).map(|r| (r, service_target(r.value)));
        let fqdn = cx.take(&KEYS[4]).map(|r| (r, values::host(r.value, false)));
        let fqdn_port = cx.take(&KEYS[5]).map(|r| (r, port(r.value)));
        let percentage = cx.parse(&KEYS[6], values::uint).map(|n| n.min(100) as u8);

        let mut chosen: Option<(&'static str, MirrorTarget)> = None;
        if let Some((raw, parsed)) = fqdn {
            match parsed {
                Ok(h) => {
                    let p = match fqdn_port {
                        Some((_, Ok(p))) => p,
                        Some((praw, Err(why))) => {
                            cx.invalid(&praw, &why);
                            80
                        }
                        None => 80,
                    };
                    chosen = Some((
                        "mirror-target-fqdn",
                        MirrorTarget::Fqdn { host: h, port: p },
                    ));
                }
                Err(why) => cx.invalid(&raw, &why),
            }
        } else if let Some((praw, parsed)) = fqdn_port {
            if let Err(why) = parsed {
                cx.invalid(&praw, &why);
            }
            cx.report(
                Code::AnnotationIgnored,
                praw.key,
                format!("`{}` has no effect without mirror-target-fqdn", praw.key),
            );
        }
        for (raw, parsed) in [service, url.map(|(r, p)| (r, p.map(MirrorTarget::Url)))]
            .into_iter()
            .flatten()
        {
            match parsed {
                Err(why) => cx.invalid(&raw, &why),
                Ok(t) => match &chosen {
                    Some((by, _)) => cx.report(
                        Code::AnnotationIgnored,
                        raw.key,
                        format!("`{}` is ignored because {by} is set", raw.key),
                    ),
                    None => chosen = Some((raw.spec.name, t)),
                },
            }
        }
        let Some((_, target)) = chosen else {
            for k in [&KEYS[1], &KEYS[2], &KEYS[6]] {
                if cx.any_present(std::slice::from_ref(k)) {
                    cx.report(
                        Code::AnnotationIgnored,
                        k.name,
                        format!("`{}` has no effect without a mirror target", k.name),
                    );
                }
            }
            return;
        };
        policy.mirror = Some(MirrorPolicy {
            target,
            host,
            request_body: request_body.unwrap_or(true),
            percentage: percentage.unwrap_or(100),
        });
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::annotations::test_util::{N, codes, run};

    const H: &str = "higress.io/";

    fn k(prefix: &str, name: &str) -> String {
        format!("{prefix}{name}")
    }

    #[test]
    fn url_target_with_defaults() {
        let p = run(&[(&k(N, "mirror-target"), "https://test.env$request_uri")]);
        assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
        let m = p.policy.mirror.expect("mirror");
        let MirrorTarget::Url(u) = &m.target else {
            panic!("url target")
        };
        assert_eq!(u.scheme, Scheme::HTTPS);
        assert_eq!(u.authority.as_str(), "test.env");
        assert_eq!(
            u.path.as_ref().map(|t| t.to_string()),
            Some("$request_uri".into())
        );
        assert_eq!(
            (m.host.as_deref(), m.request_body, m.percentage),
            (None, true, 100)
        );
        assert!(m.sampled(99));

        let p = run(&[
            (&k(N, "mirror-target"), "http://shadow:8080"),
            (&k(N, "mirror-host"), "shadow.example.com"),
            (&k(N, "mirror-request-body"), "off"),
            (&k(H, "mirror-percentage"), "250"),
        ]);
        assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
        let m = p.policy.mirror.expect("mirror");
        let MirrorTarget::Url(u) = &m.target else {
            panic!("url target")
        };
        assert_eq!(
            (u.authority.as_str(), u.path.is_none()),
            ("shadow:8080", true)
        );
        assert_eq!(m.host.as_deref(), Some("shadow.example.com"));
        assert!(!m.request_body);
        assert_eq!(m.percentage, 100);
    }

    #[test]
    fn service_and_fqdn_targets_and_precedence() {
        let p = run(&[
            (&k(H, "mirror-target-service"), "other/shadow:8080"),
            (&k(H, "mirror-percentage"), "10"),
        ]);
        assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
        let m = p.policy.mirror.expect("mirror");
        assert_eq!(
            m.target,
            MirrorTarget::Service {
                namespace: Some("other".into()),
                name: "shadow".into(),
                port: Some(8080)
            }
        );
        assert!(m.sampled(9) && !m.sampled(10));
        // Higress reads its mirror keys under the nginx prefix too.
        let p = run(&[(&k(N, "mirror-target-service"), "shadow")]);
        assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
        assert_eq!(
            p.policy.mirror.map(|m| m.target),
            Some(MirrorTarget::Service {
                namespace: None,
                name: "shadow".into(),
                port: None
            })
        );
        // fqdn wins over service and URL, which are reported.
        let p = run(&[
            (&k(H, "mirror-target-fqdn"), "Shadow.Example.com"),
            (&k(H, "mirror-target-fqdn-port"), "8081"),
            (&k(H, "mirror-target-service"), "shadow"),
            (&k(N, "mirror-target"), "https://x.example"),
        ]);
        assert_eq!(
            codes(&p),
            vec![Code::AnnotationIgnored, Code::AnnotationIgnored]
        );
        assert!(p.policy.fail_closed.is_none());
        assert_eq!(
            p.policy.mirror.map(|m| m.target),
            Some(MirrorTarget::Fqdn {
                host: "shadow.example.com".into(),
                port: 8081
            })
        );
        let p = run(&[(&k(H, "mirror-target-fqdn"), "shadow.example.com")]);
        assert_eq!(
            p.policy.mirror.map(|m| m.target),
            Some(MirrorTarget::Fqdn {
                host: "shadow.example.com".into(),
                port: 80
            })
        );
    }

    #[test]
    fn knobs_without_a_target_are_ignored() {
        let p = run(&[
            (&k(N, "mirror-host"), "a.example"),
            (&k(N, "mirror-request-body"), "on"),
            (&k(H, "mirror-percentage"), "5"),
            (&k(H, "mirror-target-fqdn-port"), "81"),
        ]);
        assert_eq!(
            codes(&p)
                .iter()
                .filter(|c| **c == Code::AnnotationIgnored)
                .count(),
            4
        );
        assert!(p.policy.mirror.is_none());
        assert!(p.policy.fail_closed.is_none());
    }

    #[test]
    fn invalid_values_fail_closed() {
        for (key, value) in [
            (k(N, "mirror-target"), "ftp://a.example/"),
            (k(N, "mirror-target"), "test.env/$request_uri"),
            (k(N, "mirror-target"), "https://$host/x"),
            (k(N, "mirror-target"), "https://a.example/$http_x_target"),
            (k(N, "mirror-target"), "https://a.example/$remote_addr"),
            (k(N, "mirror-target"), "https://a.example/a;b"),
            (k(N, "mirror-target"), "https://a.example/a b"),
            (k(N, "mirror-target"), "https://a.example/{x}"),
            (k(N, "mirror-target"), "https://user@a.example/"),
            (k(N, "mirror-host"), "a b"),
            (k(N, "mirror-request-body"), "true"),
            (k(H, "mirror-target-service"), "Shadow"),
            (k(H, "mirror-target-service"), "shadow:0"),
            (k(H, "mirror-target-service"), "shadow:http"),
            (k(H, "mirror-target-fqdn"), "a.example:80"),
            (k(H, "mirror-percentage"), "-1"),
            (k(H, "mirror-percentage"), "half"),
        ] {
            let p = run(&[(&key, value)]);
            assert!(
                codes(&p).contains(&Code::AnnotationInvalidValue),
                "{key}: {value:?} {:?}",
                p.diagnostics
            );
            assert!(p.policy.fail_closed.is_some(), "{key}: {value:?}");
        }
        // A bad port fails closed even though the fqdn parses.
        let p = run(&[
            (&k(H, "mirror-target-fqdn"), "a.example"),
            (&k(H, "mirror-target-fqdn-port"), "70000"),
        ]);
        assert_eq!(codes(&p), vec![Code::AnnotationInvalidValue]);
        assert!(p.policy.fail_closed.is_some());
    }
}
