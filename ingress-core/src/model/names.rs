use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// The kinds of object the gateway reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[non_exhaustive]
pub enum ObjectKind {
    /// `networking.k8s.io/v1` Ingress.
    Ingress,
    /// `networking.k8s.io/v1` IngressClass.
    IngressClass,
    /// `v1` Service.
    Service,
    /// `discovery.k8s.io/v1` EndpointSlice.
    EndpointSlice,
    /// `v1` Secret.
    Secret,
}

impl ObjectKind {
    /// The Kubernetes `kind` string.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Ingress => "Ingress",
            ObjectKind::IngressClass => "IngressClass",
            ObjectKind::Service => "Service",
            ObjectKind::EndpointSlice => "EndpointSlice",
            ObjectKind::Secret => "Secret",
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub fn is_namespaced(self) -> bool {
        !matches!(self, ObjectKind::IngressClass)
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reference to one object: kind, namespace (for namespaced kinds) and name.
/// Orders by kind, then namespace, then name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectRef {
    /// The kind.
    pub kind: ObjectKind,
    /// The namespace; `None` for cluster-scoped kinds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
}

impl ObjectRef {
    /// A namespaced reference.
    pub fn namespaced(kind: ObjectKind, namespace: &str, name: &str) -> Self {
        ObjectRef {
            kind,
            namespace: Some(namespace.to_owned()),
            name: name.to_owned(),
        }
    }

    /// A cluster-scoped reference.
    pub fn cluster(kind: ObjectKind, name: &str) -> Self {
        ObjectRef {
            kind,
            namespace: None,
            name: name.to_owned(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// A valid Ingress host: an exact DNS name or a `*.suffix` wildcard. Always lower case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostPattern {
    /// An exact host name, e.g. `foo.example.com`.
    Exact(String),
    /// A wildcard; holds the suffix without `*.`, e.g. `example.com` for `*.example.com`.
    Wildcard(String),
}

/// Why a host is not a valid Ingress host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidHost {
    /// Longer than 253 characters.
    #[error("is longer than 253 characters")]
    TooLong,
    /// A label is empty or longer than 63 characters.
    #[error("has an empty label or a label longer than 63 characters")]
    BadLabelLength,
    /// A character other than lower-case letters, digits, `-` and `.`.
    #[error("must be a lower-case DNS name (RFC 1123: a-z, 0-9, '-' and '.'), found {0:?}")]
    BadCharacter(char),
    /// A label starts or ends with `-`.
    #[error("has a label that starts or ends with '-'")]
    BadHyphen,
    /// `*` anywhere but as the whole first label.
    #[error("may only use '*' as the whole first label, as in '*.example.com'")]
    BadWildcard,
    /// An IP address.
    #[error("must be a DNS name, not an IP address")]
    IpAddress,
}

impl FromStr for HostPattern {
    type Err = InvalidHost;

    fn from_str(s: &str) -> Result<Self, InvalidHost> {
        let (wildcard, name) = match s.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        if s.len() > 253 {
            return Err(InvalidHost::TooLong);
        }
        if name.contains('*') {
            return Err(InvalidHost::BadWildcard);
        }
        // An IP address has only hex digits, '.' and ':' (a quick look first: this
        // runs for every rule host).
        if !wildcard
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b':')
            && s.parse::<std::net::IpAddr>().is_ok()
        {
            return Err(InvalidHost::IpAddress);
        }
        // Bytes, not chars: '.' is ASCII, so every label is a `str` of its own.
        for label in name.as_bytes().split(|&b| b == b'.') {
            if label.is_empty() || label.len() > 63 {
                return Err(InvalidHost::BadLabelLength);
            }
            let ok = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
            if !label.iter().all(ok)
                && let Some(c) = std::str::from_utf8(label)
                    .unwrap_or_default()
                    .chars()
                    .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
            {
                return Err(InvalidHost::BadCharacter(c));
            }
            if label.first() == Some(&b'-') || label.last() == Some(&b'-') {
                return Err(InvalidHost::BadHyphen);
            }
        }
        Ok(if wildcard {
            HostPattern::Wildcard(name.to_owned())
        } else {
            HostPattern::Exact(name.to_owned())
        })
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(h) => f.write_str(h),
            HostPattern::Wildcard(s) => write!(f, "*.{s}"),
        }
    }
}

impl Serialize for HostPattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// `pathType`, ordered by precedence at equal length: Exact, then Prefix, then
/// ImplementationSpecific (`Ord` puts the strongest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum PathType {
    /// Matches the path exactly, case-sensitively.
    Exact,
    /// Matches by `/`-separated path elements.
    Prefix,
    /// Defined by the profile (see docs/profiles.md).
    ImplementationSpecific,
}

impl PathType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            PathType::Exact => "Exact",
            PathType::Prefix => "Prefix",
            PathType::ImplementationSpecific => "ImplementationSpecific",
        }
    }
}

impl fmt::Display for PathType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PathType {
    type Err = InvalidPath;

    fn from_str(s: &str) -> Result<Self, InvalidPath> {
        match s {
            "Exact" => Ok(PathType::Exact),
            "Prefix" => Ok(PathType::Prefix),
            "ImplementationSpecific" => Ok(PathType::ImplementationSpecific),
            other => Err(InvalidPath::UnknownPathType(other.to_owned())),
        }
    }
}

/// A valid Ingress path with its type. For `Prefix` the trailing `/` is dropped
/// (`/foo/` is stored as `/foo`; `/` stays `/`), since Prefix matching ignores it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IngressPath {
    /// Shared: routes, listings and diagnostics clone it without allocating.
    path: std::sync::Arc<str>,
    path_type: PathType,
}

/// Why a path is not valid for its type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidPath {
    /// `pathType` missing.
    #[error("pathType must be specified (Exact, Prefix or ImplementationSpecific)")]
    MissingPathType,
    /// `pathType` not one of the three.
    #[error("pathType {0:?} is not one of Exact, Prefix, ImplementationSpecific")]
    UnknownPathType(String),
    /// Missing or empty path where the type needs one.
    #[error("path must be specified for pathType {0}")]
    Missing(PathType),
    /// Not starting with `/`.
    #[error("must be an absolute path (start with '/')")]
    NotAbsolute,
    /// Contains a sequence the API server rejects.
    #[error("must not contain {0:?}")]
    BadSequence(&'static str),
    /// Ends with a sequence the API server rejects.
    #[error("cannot end with {0:?}")]
    BadSuffix(&'static str),
    /// Contains whitespace, a control character, `?` or `#`: it can never match a
    /// request path and is refused so nothing reaches a proxy unescaped.
    #[error("must not contain whitespace, control characters, '?' or '#' (found {0:?})")]
    BadCharacter(char),
    /// ingress-nginx's `strict-validate-path-type`: Exact and Prefix paths may only
    /// hold `/`, letters, digits, `-` and `_` (regexes need ImplementationSpecific).
    #[error(
        "ingress-nginx refuses {0} paths with characters other than '/', letters, digits, '-' and '_' (strict-validate-path-type); use ImplementationSpecific for regex paths"
    )]
    NotStrict(PathType),
}

const INVALID_SEQUENCES: [&str; 5] = ["//", "/./", "/../", "%2f", "%2F"];

/// The first of [`INVALID_SEQUENCES`] (in that order) that `path` contains. Every
/// sequence starts with `/` or `%`, so only those bytes need a look (this runs for
/// every path of every Ingress; building a substring searcher per sequence cost more
/// than the rest of validation).
fn find_invalid_sequence(path: &str) -> Option<&'static str> {
    let b = path.as_bytes();
    let at = |i: usize| b.get(i).copied();
    let mut found = [false; 5];
    for (i, &c) in b.iter().enumerate() {
        match (c, at(i + 1)) {
            (b'/', Some(b'/')) => found[0] = true,
            (b'/', Some(b'.')) => match at(i + 2) {
                Some(b'/') => found[1] = true,
                Some(b'.') if at(i + 3) == Some(b'/') => found[2] = true,
                _ => {}
            },
            (b'%', Some(b'2')) => match at(i + 2) {
                Some(b'f') => found[3] = true,
                Some(b'F') => found[4] = true,
                _ => {}
            },
            _ => {}
        }
    }
    INVALID_SEQUENCES
        .iter()
        .zip(found)
        .find_map(|(seq, hit)| hit.then_some(*seq))
}
const INVALID_SUFFIXES: [&str; 2] = ["/..", "/."];

impl IngressPath {
    /// Validate `path` for `path_type` as the Kubernetes API server does
    /// (`ValidateIngressSpec`), plus the character checks above.
    /// An empty ImplementationSpecific path means `/`.
    pub fn new(path_type: PathType, path: Option<&str>) -> Result<Self, InvalidPath> {
        Self::new_shared(path_type, path, &mut |s| s.into())
    }

    /// [`IngressPath::new`], taking the stored string from `share` (compile hands
    /// out one allocation per distinct path text).
    pub(crate) fn new_shared(
        path_type: PathType,
        path: Option<&str>,
        share: &mut dyn FnMut(&str) -> std::sync::Arc<str>,
    ) -> Result<Self, InvalidPath> {
        let path = path.unwrap_or("");
        let plain = path
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#');
        if !plain
            && let Some(c) = path
                .chars()
                .find(|c| c.is_whitespace() || c.is_control() || *c == '?' || *c == '#')
        {
            return Err(InvalidPath::BadCharacter(c));
        }
        match path_type {
            PathType::Exact | PathType::Prefix => {
                if path.is_empty() {
                    return Err(InvalidPath::Missing(path_type));
                }
                if !path.starts_with('/') {
                    return Err(InvalidPath::NotAbsolute);
                }
                if let Some(seq) = find_invalid_sequence(path) {
                    return Err(InvalidPath::BadSequence(seq));
                }
                if let Some(suf) = INVALID_SUFFIXES.iter().find(|s| path.ends_with(**s)) {
                    return Err(InvalidPath::BadSuffix(suf));
                }
            }
            PathType::ImplementationSpecific => {
                if path.is_empty() {
                    return Ok(IngressPath {
                        path_type,
                        path: share("/"),
                    });
                }
                if !path.starts_with('/') {
                    return Err(InvalidPath::NotAbsolute);
                }
            }
        }
        let path = match path_type {
            PathType::Prefix if path.len() > 1 => path.trim_end_matches('/'),
            _ => path,
        };
        Ok(IngressPath {
            path_type,
            path: share(path),
        })
    }

    /// ingress-nginx's `strict-validate-path-type` check.
    pub fn check_strict(&self) -> Result<(), InvalidPath> {
        if self.path_type == PathType::ImplementationSpecific {
            return Ok(());
        }
        if self
            .path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_'))
        {
            Ok(())
        } else {
            Err(InvalidPath::NotStrict(self.path_type))
        }
    }

    /// The path type.
    pub fn path_type(&self) -> PathType {
        self.path_type
    }

    /// The path (for Prefix, without its trailing `/`).
    pub fn as_str(&self) -> &str {
        &self.path
    }
}

impl fmt::Display for IngressPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.path, self.path_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The byte scan finds what a `contains` per sequence (in order) finds.
        #[test]
        fn invalid_sequence_scan_agrees_with_contains(path in "[/.%2fFa]{0,12}") {
            let naive = INVALID_SEQUENCES.iter().copied().find(|seq| path.contains(seq));
            proptest::prop_assert_eq!(find_invalid_sequence(&path), naive);
        }

        /// Host validation by bytes gives what it gave by chars, errors included.
        #[test]
        fn host_labels_by_bytes(host in "[a-zA-Z0-9.*:é-]{0,12}") {
            let by_chars = (|| {
                let name = host.strip_prefix("*.").unwrap_or(&host);
                for label in name.split('.') {
                    if label.is_empty() || label.len() > 63 {
                        return Err(InvalidHost::BadLabelLength);
                    }
                    if let Some(c) = label
                        .chars()
                        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
                    {
                        return Err(InvalidHost::BadCharacter(c));
                    }
                    if label.starts_with('-') || label.ends_with('-') {
                        return Err(InvalidHost::BadHyphen);
                    }
                }
                Ok(())
            })();
            match host.parse::<HostPattern>() {
                // Checked before the labels.
                Err(InvalidHost::TooLong | InvalidHost::BadWildcard | InvalidHost::IpAddress) => {}
                other => proptest::prop_assert_eq!(other.map(|_| ()), by_chars),
            }
        }
    }

    #[test]
    fn hosts() {
        assert_eq!(
            "foo.bar.com".parse(),
            Ok(HostPattern::Exact("foo.bar.com".into()))
        );
        assert_eq!(
            "*.bar.com".parse(),
            Ok(HostPattern::Wildcard("bar.com".into()))
        );
        assert_eq!(
            "Foo.com".parse::<HostPattern>(),
            Err(InvalidHost::BadCharacter('F'))
        );
        assert_eq!(
            "a.*.com".parse::<HostPattern>(),
            Err(InvalidHost::BadWildcard)
        );
        assert_eq!("*".parse::<HostPattern>(), Err(InvalidHost::BadWildcard));
        assert_eq!(
            "*.".parse::<HostPattern>(),
            Err(InvalidHost::BadLabelLength)
        );
        assert_eq!(
            "10.0.0.1".parse::<HostPattern>(),
            Err(InvalidHost::IpAddress)
        );
        assert_eq!(
            "a..b".parse::<HostPattern>(),
            Err(InvalidHost::BadLabelLength)
        );
        assert_eq!("-a.b".parse::<HostPattern>(), Err(InvalidHost::BadHyphen));
        assert_eq!(
            "foo.com:80".parse::<HostPattern>(),
            Err(InvalidHost::BadCharacter(':'))
        );
        assert_eq!(
            "a b".parse::<HostPattern>(),
            Err(InvalidHost::BadCharacter(' '))
        );
        let long = format!("{}.com", "a.".repeat(130));
        assert_eq!(long.parse::<HostPattern>(), Err(InvalidHost::TooLong));
    }

    #[test]
    fn paths() {
        use PathType::*;
        let p = |t, s| IngressPath::new(t, Some(s));
        assert_eq!(p(Prefix, "/foo/").map(|p| p.path), Ok("/foo".into()));
        assert_eq!(p(Prefix, "/").map(|p| p.path), Ok("/".into()));
        assert_eq!(p(Exact, "/foo/").map(|p| p.path), Ok("/foo/".into()));
        assert_eq!(
            IngressPath::new(ImplementationSpecific, None).map(|p| p.path),
            Ok("/".into())
        );
        assert_eq!(
            IngressPath::new(Exact, None),
            Err(InvalidPath::Missing(Exact))
        );
        assert_eq!(p(Prefix, "foo"), Err(InvalidPath::NotAbsolute));
        assert_eq!(p(Prefix, "/a//b"), Err(InvalidPath::BadSequence("//")));
        assert_eq!(p(Exact, "/a/../b"), Err(InvalidPath::BadSequence("/../")));
        assert_eq!(p(Exact, "/a%2Fb"), Err(InvalidPath::BadSequence("%2F")));
        assert_eq!(p(Prefix, "/a/."), Err(InvalidPath::BadSuffix("/.")));
        assert_eq!(p(Prefix, "/a b"), Err(InvalidPath::BadCharacter(' ')));
        assert_eq!(p(Prefix, "/a\nb"), Err(InvalidPath::BadCharacter('\n')));
        assert!(p(ImplementationSpecific, "/a//b").is_ok());
        assert_eq!(
            p(Prefix, "/a.b").and_then(|p| p.check_strict()),
            Err(InvalidPath::NotStrict(Prefix))
        );
        assert!(
            p(ImplementationSpecific, "/a(.*)")
                .and_then(|p| p.check_strict())
                .is_ok()
        );
        assert_eq!(
            "Bogus".parse::<PathType>(),
            Err(InvalidPath::UnknownPathType("Bogus".into()))
        );
    }
}
