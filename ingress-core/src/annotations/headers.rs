//! The `headers` family: request and response header control (Higress/MSE
//! `request-header-control-*` / `response-header-control-*`) and ingress-nginx's
//! `custom-headers`.
//!
//! Add and update lists hold one `Name Value` per line: the first run of whitespace
//! splits the name from the value, one pair of surrounding quotes (`"` or `'`) is
//! stripped from the value, blank lines are skipped. Remove lists are
//! comma-separated names. Values are literal text: nginx variables are not
//! expanded. Hop-by-hop and framing headers are the gateway's to manage and are
//! refused in every list (invalid value, the routes fail closed).
//!
//! The data plane applies the edits of one direction in a fixed order: remove, then
//! update (replace every value), then add (append a value), as Envoy's header
//! control does ([`HeaderEdits::apply`]). A canary route uses its own header control,
//! never its primary's.

use http::{HeaderMap, HeaderName, HeaderValue};

use super::spec::{Prefixes, Risk, Support};
use super::values;
use super::{AnnotationFamily, Cx, Family, IngressPolicy, KeySpec};

/// The edits of one direction (request to the upstream, or response to the client).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderEdits {
    /// Headers appended (an existing value is kept), in the order written.
    pub add: Vec<(HeaderName, HeaderValue)>,
    /// Headers set: every existing value is replaced, in the order written.
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Headers removed.
    pub remove: Vec<HeaderName>,
}

impl HeaderEdits {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.set.is_empty() && self.remove.is_empty()
    }

    /// Apply the edits to `headers`: remove, then set, then add.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
    }
}

/// Header control of one Ingress.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeaderPolicy {
    /// Edits of the request sent upstream.
    pub request: HeaderEdits,
    /// Edits of the response sent to the client.
    pub response: HeaderEdits,
}

impl HeaderPolicy {
    /// Whether neither direction has an edit.
    pub fn is_empty(&self) -> bool {
        self.request.is_empty() && self.response.is_empty()
    }
}

/// Headers the gateway manages itself: connection control, message framing and
/// the request target. No annotation may add, set or remove them.
pub const PROTECTED: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "keep-alive",
    "trailer",
];

/// Whether `name` (lower case) is a hop-by-hop or framing header, or `Proxy-*`.
pub fn is_protected(name: &HeaderName) -> bool {
    let n = name.as_str();
    PROTECTED.contains(&n) || n.starts_with("proxy-")
}

fn checked_name(s: &str) -> Result<HeaderName, values::Invalid> {
    let name = values::header_name(s)?;
    if is_protected(&name) {
        return Err(format!(
            "`{s}` is a hop-by-hop or framing header the gateway manages; it cannot be changed by an annotation"
        ));
    }
    Ok(name)
}

fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner;
        }
    }
    v
}

/// Parse an add/update list: one `Name Value` per line.
pub fn header_lines(s: &str) -> Result<Vec<(HeaderName, HeaderValue)>, values::Invalid> {
    let mut out = Vec::new();
    for (n, line) in s.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once(char::is_whitespace) else {
            return Err(format!(
                "line {}: expected `Name Value` (a header name, whitespace, a value)",
                n + 1
            ));
        };
        let name = checked_name(name).map_err(|e| format!("line {}: {e}", n + 1))?;
        let value = values::header_value(unquote(value.trim()))
            .map_err(|e| format!("line {}: {e}", n + 1))?;
        out.push((name, value));
    }
    if out.is_empty() {
        return Err("expected at least one `Name Value` line".into());
    }
    Ok(out)
}

/// Parse a remove list: comma-separated header names.
pub fn header_removals(s: &str) -> Result<Vec<HeaderName>, values::Invalid> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        out.push(checked_name(item)?);
    }
    if out.is_empty() {
        return Err("expected a comma-separated list of header names".into());
    }
    Ok(out)
}

const fn lines(name: &'static str, doc: &'static str) -> KeySpec {
    KeySpec::new(name, Family::Headers)
        .grammar("one `Name Value` per line (first whitespace splits; surrounding quotes stripped; blank lines skipped)")
        .doc(doc)
        .prefixes(Prefixes::Extension)
        .risk(Risk::Medium)
        .multiline()
}

const fn removals(name: &'static str, doc: &'static str) -> KeySpec {
    KeySpec::new(name, Family::Headers)
        .grammar("comma-separated header names")
        .doc(doc)
        .prefixes(Prefixes::Extension)
        .risk(Risk::Medium)
}

const REQ_ADD: KeySpec = lines(
    "request-header-control-add",
    "Append these headers to the request sent upstream (existing values are kept). Values are literal; hop-by-hop and framing headers are refused.",
);
const REQ_UPDATE: KeySpec = lines(
    "request-header-control-update",
    "Set these headers on the request sent upstream, replacing any value. Values are literal; hop-by-hop and framing headers are refused.",
);
const REQ_REMOVE: KeySpec = removals(
    "request-header-control-remove",
    "Remove these headers from the request sent upstream (before update and add).",
);
const RESP_ADD: KeySpec = lines(
    "response-header-control-add",
    "Append these headers to the response sent to the client (existing values are kept).",
);
const RESP_UPDATE: KeySpec = lines(
    "response-header-control-update",
    "Set these headers on the response sent to the client, replacing any value.",
);
const RESP_REMOVE: KeySpec = removals(
    "response-header-control-remove",
    "Remove these headers from the response sent to the client (before update and add).",
);
const CUSTOM_HEADERS: KeySpec = KeySpec::new("custom-headers", Family::Headers)
    .grammar("`name` or `namespace/name` of a ConfigMap")
    .doc("ingress-nginx: add every entry of the ConfigMap as a response header. Not read here.")
    .risk(Risk::Medium)
    .support(Support::NotEnforced(
        "ConfigMaps are not read; use response-header-control-add / -update",
    ));

static KEYS: &[KeySpec] = &[
    REQ_ADD,
    REQ_UPDATE,
    REQ_REMOVE,
    RESP_ADD,
    RESP_UPDATE,
    RESP_REMOVE,
    CUSTOM_HEADERS,
];

/// The family.
#[derive(Debug)]
pub(crate) struct Headers;

impl AnnotationFamily for Headers {
    fn family(&self) -> Family {
        Family::Headers
    }
    fn keys(&self) -> &'static [KeySpec] {
        KEYS
    }
    fn parse(&self, cx: &mut Cx<'_>, policy: &mut IngressPolicy) {
        let p = &mut policy.headers;
        p.request.add = cx.parse(&KEYS[0], header_lines).unwrap_or_default();
        p.request.set = cx.parse(&KEYS[1], header_lines).unwrap_or_default();
        p.request.remove = cx.parse(&KEYS[2], header_removals).unwrap_or_default();
        p.response.add = cx.parse(&KEYS[3], header_lines).unwrap_or_default();
        p.response.set = cx.parse(&KEYS[4], header_lines).unwrap_or_default();
        p.response.remove = cx.parse(&KEYS[5], header_removals).unwrap_or_default();
        cx.parse(&KEYS[6], values::object_ref);
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::annotations::test_util::{codes, run};

    use crate::diagnostics::Code;

    fn h(n: &'static str, v: &'static str) -> (HeaderName, HeaderValue) {
        (HeaderName::from_static(n), HeaderValue::from_static(v))
    }

    #[test]
    fn defaults_are_empty() {
        let p = run(&[]);
        assert!(p.policy.headers.is_empty());
        assert_eq!(p.policy.headers, HeaderPolicy::default());
    }

    #[test]
    fn lines_and_lists_parse() {
        let p = run(&[
            (
                "higress.io/request-header-control-add",
                "X-Env  prod\n\n  X-Quoted \"a b c\"\nX-Single 'x'\n",
            ),
            (
                "higress.io/request-header-control-update",
                "X-User anonymous",
            ),
            (
                "higress.io/request-header-control-remove",
                "X-Debug, x-trace ,",
            ),
            (
                "mse.ingress.kubernetes.io/response-header-control-add",
                "X-Served-By gw",
            ),
            (
                "higress.io/response-header-control-update",
                "Cache-Control no-store",
            ),
            ("higress.io/response-header-control-remove", "Server"),
        ]);
        assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
        let hp = &p.policy.headers;
        assert_eq!(
            hp.request.add,
            vec![
                h("x-env", "prod"),
                h("x-quoted", "a b c"),
                h("x-single", "x")
            ]
        );
        assert_eq!(hp.request.set, vec![h("x-user", "anonymous")]);
        assert_eq!(
            hp.request.remove,
            vec![
                HeaderName::from_static("x-debug"),
                HeaderName::from_static("x-trace")
            ]
        );
        assert_eq!(hp.response.add, vec![h("x-served-by", "gw")]);
        assert_eq!(hp.response.set, vec![h("cache-control", "no-store")]);
        assert_eq!(hp.response.remove, vec![HeaderName::from_static("server")]);
        assert!(p.policy.fail_closed.is_none());
    }

    #[test]
    fn invalid_values_fail_closed() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "higress.io/request-header-control-add",
                "X-Alone",
                "Name Value",
            ),
            (
                "higress.io/request-header-control-add",
                "Bad(Name) v",
                "header name",
            ),
            (
                "higress.io/request-header-control-update",
                "Host evil.example",
                "`Host`",
            ),
            (
                "higress.io/request-header-control-update",
                "Content-Length 0",
                "Content-Length",
            ),
            (
                "higress.io/request-header-control-add",
                "Transfer-Encoding chunked",
                "Transfer-Encoding",
            ),
            (
                "higress.io/response-header-control-add",
                "Connection close",
                "Connection",
            ),
            (
                "higress.io/response-header-control-update",
                "Proxy-Authenticate x",
                "Proxy-Authenticate",
            ),
            (
                "higress.io/request-header-control-remove",
                "x-a, Upgrade",
                "Upgrade",
            ),
            (
                "higress.io/request-header-control-remove",
                " , ",
                "header names",
            ),
            (
                "higress.io/request-header-control-add",
                "\n\n",
                "at least one",
            ),
            (
                "higress.io/request-header-control-add",
                "X-A ok\rX-B v",
                "control",
            ),
        ];
        for (key, value, needle) in cases {
            let p = run(&[(key, value)]);
            assert_eq!(
                codes(&p),
                vec![Code::AnnotationInvalidValue],
                "{key}: {value:?}"
            );
            assert!(
                p.diagnostics[0].message.contains(needle),
                "{value:?}: {}",
                p.diagnostics[0].message
            );
            assert!(p.policy.fail_closed.is_some(), "{value:?}");
            assert!(p.policy.headers.is_empty());
        }
    }

    #[test]
    fn extension_only_and_custom_headers_not_enforced() {
        // Header control is not read under the nginx prefix.
        let p = run(&[(
            "nginx.ingress.kubernetes.io/request-header-control-add",
            "X-A b",
        )]);
        assert_eq!(codes(&p), vec![Code::AnnotationUnknown]);
        assert!(p.policy.headers.is_empty());
        let p = run(&[("nginx.ingress.kubernetes.io/custom-headers", "ns/extra")]);
        assert_eq!(codes(&p), vec![Code::AnnotationNotEnforced]);
        assert!(p.policy.fail_closed.is_none());
        let p = run(&[("nginx.ingress.kubernetes.io/custom-headers", "NS/Bad")]);
        assert_eq!(
            codes(&p),
            vec![Code::AnnotationNotEnforced, Code::AnnotationInvalidValue]
        );
        assert!(p.policy.fail_closed.is_some());
    }

    #[test]
    fn apply_removes_sets_then_adds() {
        let edits = HeaderEdits {
            add: vec![h("x-a", "2")],
            set: vec![h("x-b", "new")],
            remove: vec![
                HeaderName::from_static("x-a"),
                HeaderName::from_static("x-c"),
            ],
        };
        let mut m = HeaderMap::new();
        m.insert("x-a", HeaderValue::from_static("1"));
        m.append("x-b", HeaderValue::from_static("old1"));
        m.append("x-b", HeaderValue::from_static("old2"));
        m.insert("x-c", HeaderValue::from_static("gone"));
        edits.apply(&mut m);
        assert_eq!(m.get_all("x-a").iter().collect::<Vec<_>>(), vec!["2"]);
        assert_eq!(m.get_all("x-b").iter().collect::<Vec<_>>(), vec!["new"]);
        assert!(m.get("x-c").is_none());
        assert!(!edits.is_empty());
        assert!(HeaderEdits::default().is_empty());
    }
}
