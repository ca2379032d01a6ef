//! A fixed set of nginx variables, parsed into a small template: never a general
//! expander. Used where ingress-nginx users write variables (`upstream-hash-by`,
//! `auth-url`, `auth-signin`, `mirror-target`).

use std::fmt;

use http::HeaderName;

use super::values::Invalid;

/// One variable this gateway can evaluate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Var {
    /// `$request_uri`: the original path and query.
    RequestUri,
    /// `$escaped_request_uri`: the same, percent-encoded for a query parameter.
    EscapedRequestUri,
    /// `$uri`: the normalised path.
    Uri,
    /// `$host`: the request host without port.
    Host,
    /// `$scheme`: `http` or `https`.
    Scheme,
    /// `$request_method`.
    Method,
    /// `$remote_addr` (also `$binary_remote_addr`): the client address.
    RemoteAddr,
    /// `$http_<name>`: a request header (`_` stands for `-`, case-insensitive).
    Header(HeaderName),
    /// `$arg_<name>`: a query parameter.
    Arg(String),
    /// `$cookie_<name>`: a cookie.
    Cookie(String),
}

impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Var::RequestUri => f.write_str("$request_uri"),
            Var::EscapedRequestUri => f.write_str("$escaped_request_uri"),
            Var::Uri => f.write_str("$uri"),
            Var::Host => f.write_str("$host"),
            Var::Scheme => f.write_str("$scheme"),
            Var::Method => f.write_str("$request_method"),
            Var::RemoteAddr => f.write_str("$remote_addr"),
            Var::Header(h) => write!(f, "$http_{}", h.as_str().replace('-', "_")),
            Var::Arg(a) => write!(f, "$arg_{a}"),
            Var::Cookie(c) => write!(f, "$cookie_{c}"),
        }
    }
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Part {
    /// Literal text.
    Literal(String),
    /// A variable.
    Var(Var),
}

/// Literal text and variables, in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Template {
    /// The pieces.
    pub parts: Vec<Part>,
}

impl Template {
    /// Whether the template holds any variable.
    pub fn has_vars(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Var(_)))
    }

    /// Evaluate with `var` giving each variable's value (missing = empty).
    pub fn render<'v>(&self, var: impl Fn(&Var) -> Option<std::borrow::Cow<'v, str>>) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Literal(s) => out.push_str(s),
                Part::Var(v) => {
                    if let Some(s) = var(v) {
                        out.push_str(&s);
                    }
                }
            }
        }
        out
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.parts {
            match p {
                Part::Literal(s) => f.write_str(s)?,
                Part::Var(v) => v.fmt(f)?,
            }
        }
        Ok(())
    }
}

fn var(name: &str) -> Result<Var, Invalid> {
    let unknown = || {
        format!(
            "`${name}` is not a supported variable (supported: $request_uri, $escaped_request_uri, $uri, $host, $scheme, $request_method, $remote_addr, $binary_remote_addr, $http_<header>, $arg_<name>, $cookie_<name>)"
        )
    };
    let simple = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    Ok(match name {
        "request_uri" => Var::RequestUri,
        "escaped_request_uri" => Var::EscapedRequestUri,
        "uri" => Var::Uri,
        "host" => Var::Host,
        "scheme" => Var::Scheme,
        "request_method" => Var::Method,
        "remote_addr" | "binary_remote_addr" => Var::RemoteAddr,
        _ => {
            if let Some(h) = name.strip_prefix("http_").filter(|h| simple(h)) {
                let h = h.replace('_', "-");
                Var::Header(HeaderName::from_bytes(h.as_bytes()).map_err(|_| unknown())?)
            } else if let Some(a) = name.strip_prefix("arg_").filter(|a| simple(a)) {
                Var::Arg(a.to_string())
            } else if let Some(c) = name.strip_prefix("cookie_").filter(|c| simple(c)) {
                Var::Cookie(c.to_string())
            } else {
                return Err(unknown());
            }
        }
    })
}

/// Parse text with `$var` / `${var}` references. `literal_ok` says which literal
/// characters are allowed (control characters never are).
pub fn parse(s: &str, literal_ok: impl Fn(char) -> bool) -> Result<Template, Invalid> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if c == '$' {
            let after = &rest[1..];
            let (name, next) = if let Some(braced) = after.strip_prefix('{') {
                let end = braced
                    .find('}')
                    .ok_or_else(|| "unclosed `${`".to_string())?;
                (&braced[..end], &braced[end + 1..])
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            };
            if name.is_empty() {
                return Err("`$` must be followed by a variable name".into());
            }
            if !lit.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut lit)));
            }
            parts.push(Part::Var(var(name)?));
            rest = next;
        } else {
            if c.is_control() || !literal_ok(c) {
                return Err(format!("`{c}` is not allowed here"));
            }
            lit.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    if !lit.is_empty() {
        parts.push(Part::Literal(lit));
    }
    Ok(Template { parts })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_variables_only() {
        let t = parse("${request_uri}-x$http_x_user_id", |_| true).expect("valid");
        assert_eq!(
            t.parts,
            vec![
                Part::Var(Var::RequestUri),
                Part::Literal("-x".into()),
                Part::Var(Var::Header(HeaderName::from_static("x-user-id")))
            ]
        );
        assert_eq!(t.to_string(), "$request_uri-x$http_x_user_id");
        assert!(parse("$document_root", |_| true).is_err());
        assert!(parse("${request_uri", |_| true).is_err());
        assert!(parse("a$", |_| true).is_err());
        assert!(parse("a;b", |c| c != ';').is_err());
        let r = t.render(|v| match v {
            Var::RequestUri => Some("/p?q".into()),
            _ => None,
        });
        assert_eq!(r, "/p?q-x");
    }
}
