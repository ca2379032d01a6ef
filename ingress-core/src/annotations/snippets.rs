//! The `snippets` family: raw nginx configuration, refused.
//!
//! Nothing is ever rendered into configuration text, so these keys cannot be carried
//! out; an Ingress that sets one fails closed rather than serve without what the
//! snippet was meant to do. `ingressctl compat` triages a snippet's directives.

use super::spec::{Prefixes, Risk, Scope, Support};
use super::{AnnotationFamily, Cx, Family, IngressPolicy, KeySpec};

const WHY: &str = "raw nginx configuration is never executed; use the typed annotations (`ingressctl compat` maps each directive)";

static KEYS: &[KeySpec] = &[
    KeySpec::new("configuration-snippet", Family::Snippets)
        .grammar("nginx directives")
        .doc("Raw directives for the location block.")
        .risk(Risk::Critical)
        .support(Support::Refused(WHY))
        .multiline(),
    KeySpec::new("server-snippet", Family::Snippets)
        .grammar("nginx directives")
        .doc("Raw directives for the server block.")
        .scope(Scope::Host)
        .risk(Risk::Critical)
        .support(Support::Refused(WHY))
        .multiline(),
    KeySpec::new("auth-snippet", Family::Snippets)
        .grammar("nginx directives")
        .doc("Raw directives for the auth subrequest location.")
        .risk(Risk::Critical)
        .support(Support::Refused(WHY))
        .multiline(),
    KeySpec::new("stream-snippet", Family::Snippets)
        .grammar("nginx directives")
        .doc("Raw directives for the stream context.")
        .risk(Risk::Critical)
        .support(Support::Refused(WHY))
        .multiline(),
    KeySpec::new("modsecurity-snippet", Family::Snippets)
        .grammar("ModSecurity rules")
        .doc("Raw ModSecurity configuration.")
        .risk(Risk::Critical)
        .support(Support::Refused(WHY))
        .multiline()
        .prefixes(Prefixes::Nginx),
];

/// The family.
#[derive(Debug)]
pub(crate) struct Snippets;

impl AnnotationFamily for Snippets {
    fn family(&self) -> Family {
        Family::Snippets
    }
    fn keys(&self) -> &'static [KeySpec] {
        KEYS
    }
    fn parse(&self, cx: &mut Cx<'_>, _policy: &mut IngressPolicy) {
        for k in KEYS {
            cx.take(k);
        }
    }
}

/// What to do with one directive of a snippet, for `ingressctl compat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(tag = "verdict", content = "annotation", rename_all = "kebab-case")]
pub enum Triage {
    /// A typed annotation does the same: use it.
    MapsTo(&'static str),
    /// No annotation does this; it needs a plugin (or a change of approach).
    NeedsPlugin,
    /// Runs code, reads files or reconfigures the server: never portable.
    Unsafe,
}

/// One directive of a snippet and its triage.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Directive {
    /// The directive name (`more_set_headers`, `if`...).
    pub name: String,
    /// The directive as written, whitespace collapsed.
    pub text: String,
    /// What to do with it.
    #[serde(flatten)]
    pub triage: Triage,
}

/// Directives that run code, touch files or reconfigure nginx itself.
const UNSAFE: &[&str] = &[
    "load_module",
    "include",
    "alias",
    "root",
    "ssl_engine",
    "proxy_pass",
    "grpc_pass",
    "fastcgi_pass",
    "uwsgi_pass",
    "scgi_pass",
    "location",
    "access_log",
    "error_log",
    "log_format",
    "perl",
    "perl_set",
    "js_content",
    "js_set",
    "js_import",
    "env",
    "lua_package_path",
    "lua_package_cpath",
    "lua_shared_dict",
    "lua_code_cache",
    "client_body_temp_path",
    "proxy_temp_path",
    "ssl_certificate",
    "ssl_certificate_key",
    "auth_basic_user_file",
    "internal",
    "server",
    "upstream",
    "resolver",
];

/// Directives with a typed counterpart.
const MAPS: &[(&str, &str)] = &[
    ("more_set_headers", "response-header-control-update"),
    ("add_header", "response-header-control-add"),
    ("more_clear_headers", "response-header-control-remove"),
    ("proxy_hide_header", "response-header-control-remove"),
    ("proxy_set_header", "request-header-control-update"),
    ("more_set_input_headers", "request-header-control-update"),
    ("more_clear_input_headers", "request-header-control-remove"),
    ("rewrite", "rewrite-target"),
    ("proxy_read_timeout", "proxy-read-timeout"),
    ("proxy_send_timeout", "proxy-send-timeout"),
    ("proxy_connect_timeout", "proxy-connect-timeout"),
    ("client_max_body_size", "proxy-body-size"),
    ("client_body_buffer_size", "client-body-buffer-size"),
    ("proxy_buffering", "proxy-buffering"),
    ("proxy_request_buffering", "proxy-request-buffering"),
    ("proxy_buffer_size", "proxy-buffer-size"),
    ("proxy_http_version", "proxy-http-version"),
    ("proxy_next_upstream", "proxy-next-upstream"),
    ("proxy_next_upstream_tries", "proxy-next-upstream-tries"),
    ("proxy_next_upstream_timeout", "proxy-next-upstream-timeout"),
    ("proxy_redirect", "proxy-redirect-from"),
    ("proxy_ssl_verify", "proxy-ssl-verify"),
    ("proxy_ssl_name", "proxy-ssl-name"),
    ("proxy_ssl_server_name", "proxy-ssl-server-name"),
    ("proxy_cookie_path", "proxy-cookie-path"),
    ("proxy_cookie_domain", "proxy-cookie-domain"),
    ("allow", "whitelist-source-range"),
    ("deny", "denylist-source-range"),
    ("limit_req", "limit-rps"),
    ("limit_conn", "limit-connections"),
    ("auth_basic", "auth-type"),
    ("auth_request", "auth-url"),
    ("satisfy", "satisfy"),
    ("ssl_ciphers", "ssl-ciphers"),
    ("ssl_protocols", "tls-min-protocol-version"),
    ("error_page", "custom-http-errors"),
    ("mirror", "mirror-target"),
];

/// Split a snippet into directives (`;`-terminated statements and `{` blocks, with
/// quotes and comments respected) and triage each. Pure text analysis: nothing is
/// executed or rendered.
pub fn triage(snippet: &str) -> Vec<Directive> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut depth = 0usize;
    let mut chars = snippet.chars().peekable();
    let push = |cur: &mut String, out: &mut Vec<Directive>| {
        let text = cur.split_whitespace().collect::<Vec<_>>().join(" ");
        cur.clear();
        if text.is_empty() || text == "}" {
            return;
        }
        let name = text
            .split(|c: char| c.is_whitespace() || c == '(' || c == '{' || c == ';')
            .next()
            .unwrap_or("")
            .to_owned();
        out.push(Directive {
            triage: classify(&name, &text),
            name,
            text,
        });
    };
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                cur.push(c);
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '"' | '\'' => {
                    quote = Some(c);
                    cur.push(c);
                }
                '#' => {
                    for n in chars.by_ref() {
                        if n == '\n' {
                            break;
                        }
                    }
                }
                // A block joins its head: the head decides its triage.
                '{' => {
                    depth += 1;
                    cur.push(c);
                }
                '}' => {
                    depth = depth.saturating_sub(1);
                    cur.push(c);
                    if depth == 0 {
                        push(&mut cur, &mut out);
                    }
                }
                ';' if depth == 0 => push(&mut cur, &mut out),
                _ => cur.push(c),
            },
        }
    }
    push(&mut cur, &mut out);
    out
}

fn classify(name: &str, text: &str) -> Triage {
    if name.contains("_by_lua") || name.starts_with("lua_") || UNSAFE.contains(&name) {
        return Triage::Unsafe;
    }
    if text.contains("_by_lua") || text.contains("load_module") {
        return Triage::Unsafe;
    }
    if name == "return" {
        let code = text.split_whitespace().nth(1).unwrap_or("");
        return match code {
            "301" | "308" => Triage::MapsTo("permanent-redirect"),
            "302" | "307" => Triage::MapsTo("temporal-redirect"),
            _ => Triage::NeedsPlugin,
        };
    }
    if name == "if" && text.contains("$host") && text.contains("return") {
        return Triage::MapsTo("from-to-www-redirect");
    }
    MAPS.iter()
        .find(|(n, _)| *n == name)
        .map_or(Triage::NeedsPlugin, |(_, a)| Triage::MapsTo(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triage_splits_and_classifies() {
        let d = triage(
            "more_set_headers \"X-Frame-Options: DENY\";\n# a comment; with semicolon\nproxy_set_header X-Id $request_id;\nif ($http_x_debug) { return 403; }\naccess_by_lua_block { ngx.exit(403) }\nreturn 301 https://e.com/;\nsub_filter 'a' 'b';",
        );
        let got: Vec<(&str, Triage)> = d.iter().map(|d| (d.name.as_str(), d.triage)).collect();
        assert_eq!(
            got,
            vec![
                (
                    "more_set_headers",
                    Triage::MapsTo("response-header-control-update")
                ),
                (
                    "proxy_set_header",
                    Triage::MapsTo("request-header-control-update")
                ),
                ("if", Triage::NeedsPlugin),
                ("access_by_lua_block", Triage::Unsafe),
                ("return", Triage::MapsTo("permanent-redirect")),
                ("sub_filter", Triage::NeedsPlugin),
            ]
        );
        assert_eq!(d[0].text, "more_set_headers \"X-Frame-Options: DENY\"");
        // Quotes hide separators; unbalanced input never panics.
        let d = triage("add_header X \"a;b\"; }}} {{ \"unterminated");
        assert_eq!(d[0].name, "add_header");
        assert_eq!(d[0].text, "add_header X \"a;b\"");
        assert!(triage("").is_empty());
    }
}
