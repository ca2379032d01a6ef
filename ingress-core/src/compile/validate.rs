//! Turning one Ingress's wire fields into typed rules, or errors that drop it.

use std::sync::Arc;

use crate::annotations::{AnnotationOptions, IngressPolicy};
use crate::diagnostics::{Code, Diagnostic};
use crate::model::{
    HostPattern, Ingress, IngressBackend, IngressPath, ObjectKind, ObjectRef, PathType,
};
use crate::routing::{PortRef, RouteHost};

use super::Profile;

/// Whether `path` has a character that means something in a regex but nothing in a
/// literal path (all ASCII, so a byte scan finds exactly these characters).
fn has_regex_chars(path: &str) -> bool {
    path.bytes().any(|b| {
        matches!(
            b,
            b'(' | b')' | b'*' | b'$' | b'^' | b'[' | b']' | b'|' | b'+' | b'\\' | b'{' | b'}'
        )
    })
}

/// Where a route sends requests, as the Ingress wrote it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum BackendSpec {
    /// The name is shared by the paths of one Ingress that name the same Service.
    Service {
        name: Arc<str>,
        port: PortRef,
    },
    Resource {
        kind: String,
        name: String,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct ValidPath {
    pub(crate) path: IngressPath,
    pub(crate) backend: BackendSpec,
    /// `spec.rules[i].http.paths[j]`, shared with the route built from it.
    pub(crate) field: Arc<str>,
}

#[derive(Debug, Clone)]
pub(crate) struct ValidRule {
    pub(crate) host: RouteHost,
    pub(crate) paths: Vec<ValidPath>,
}

#[derive(Debug, Clone)]
pub(crate) struct ValidTls {
    pub(crate) host: HostPattern,
    pub(crate) secret: Option<String>,
    pub(crate) field: String,
    pub(crate) secret_field: String,
}

/// An Ingress that passed validation.
#[derive(Debug, Clone)]
pub(crate) struct ValidIngress {
    pub(crate) r: Arc<ObjectRef>,
    /// The typed policy of its annotations.
    pub(crate) policy: Arc<IngressPolicy>,
    pub(crate) rules: Vec<ValidRule>,
    pub(crate) default_backend: Option<BackendSpec>,
    pub(crate) tls: Vec<ValidTls>,
}

/// Path texts handed out once each, so that the Ingresses of one compile that use
/// the same path (`/`, `/api`, `/healthz`...) share one allocation.
#[derive(Default)]
pub(crate) struct PathStrings(rustc_hash::FxHashSet<Arc<str>>);

impl PathStrings {
    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(shared) = self.0.get(s) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(s);
        self.0.insert(shared.clone());
        shared
    }
}

/// Validate as the API server does (plus the profile's own rules). On any error the
/// whole Ingress is left out: the API server would have refused it whole.
pub(crate) fn validate(
    ing: &Ingress,
    r: ObjectRef,
    annotation_options: &AnnotationOptions,
    diags: &mut Vec<Diagnostic>,
) -> Option<ValidIngress> {
    validate_with(ing, r, annotation_options, diags, None)
}

/// [`validate`], sharing path texts through `path_strings` when given.
pub(crate) fn validate_with(
    ing: &Ingress,
    r: ObjectRef,
    annotation_options: &AnnotationOptions,
    diags: &mut Vec<Diagnostic>,
    mut path_strings: Option<&mut PathStrings>,
) -> Option<ValidIngress> {
    let profile = annotation_options.profile;
    let before = diags.len();
    let mut diags_warn: Vec<Diagnostic> = Vec::new();
    let mut err = |code: Code, field: String, msg: String| {
        diags.push(Diagnostic::new(code, Some(r.clone()), Some(field), msg));
    };
    let spec = &ing.spec;
    if spec.rules.is_empty() && spec.default_backend.is_none() {
        err(
            Code::IngressEmpty,
            "spec".into(),
            "either spec.defaultBackend or spec.rules must be specified".into(),
        );
    }
    let default_backend = spec
        .default_backend
        .as_ref()
        .and_then(|b| backend(b, &|| "spec.defaultBackend".to_owned(), &mut err, &mut None));
    // The last Service name, for the next path that names the same one.
    let mut service_name: Option<Arc<str>> = None;

    let mut rules = Vec::with_capacity(spec.rules.len());
    for (i, rule) in spec.rules.iter().enumerate() {
        let host = match rule.host.as_deref().filter(|h| !h.is_empty()) {
            None => Some(RouteHost::Any),
            Some(h) => match h.parse::<HostPattern>() {
                Ok(p) => Some(RouteHost::Pattern(p)),
                Err(e) => {
                    err(
                        Code::InvalidHost,
                        format!("spec.rules[{i}].host"),
                        format!("host {h:?} {e}"),
                    );
                    None
                }
            },
        };
        let mut paths = Vec::with_capacity(rule.http.as_ref().map_or(0, |h| h.paths.len()));
        if let Some(http) = &rule.http {
            if http.paths.is_empty() {
                err(
                    Code::InvalidPath,
                    format!("spec.rules[{i}].http.paths"),
                    "http.paths must list at least one path".into(),
                );
            }
            for (j, p) in http.paths.iter().enumerate() {
                let field = path_field(i, j);
                let path = match p.path_type.as_deref() {
                    None | Some("") => {
                        err(
                            Code::InvalidPath,
                            format!("{field}.pathType"),
                            "pathType must be specified (Exact, Prefix or ImplementationSpecific)"
                                .into(),
                        );
                        None
                    }
                    Some(t) => match t.parse::<PathType>() {
                        Err(e) => {
                            err(
                                Code::InvalidPath,
                                format!("{field}.pathType"),
                                e.to_string(),
                            );
                            None
                        }
                        Ok(ty) => match IngressPath::new_shared(ty, p.path.as_deref(), &mut |s| {
                            match path_strings.as_deref_mut() {
                                Some(shared) => shared.get(s),
                                None => Arc::from(s),
                            }
                        }) {
                            Err(e) => {
                                err(
                                    Code::InvalidPath,
                                    format!("{field}.path"),
                                    format!(
                                        "{} path {:?} {e}",
                                        ty,
                                        p.path.as_deref().unwrap_or("")
                                    ),
                                );
                                None
                            }
                            Ok(path) => {
                                let strict = match profile {
                                    Profile::IngressNginx => path.check_strict(),
                                    Profile::Standard => Ok(()),
                                };
                                if profile == Profile::Standard
                                    && ty != PathType::ImplementationSpecific
                                    && has_regex_chars(path.as_str())
                                {
                                    diags_warn.push(Diagnostic::new(
                                        Code::LiteralRegexPath,
                                        Some(r.clone()),
                                        Some(format!("{field}.path")),
                                        format!(
                                            "{ty} path {:?} contains regex characters but {ty} paths match literally; for a regex use pathType ImplementationSpecific with the use-regex annotation",
                                            path.as_str()
                                        ),
                                    ));
                                }
                                match strict {
                                    Ok(()) => Some(path),
                                    Err(e) => {
                                        err(
                                            Code::InvalidPath,
                                            format!("{field}.path"),
                                            format!("path {:?}: {e}", path.as_str()),
                                        );
                                        None
                                    }
                                }
                            }
                        },
                    },
                };
                let backend = backend(
                    &p.backend,
                    &|| format!("{field}.backend"),
                    &mut err,
                    &mut service_name,
                );
                if let (Some(path), Some(backend)) = (path, backend) {
                    paths.push(ValidPath {
                        path,
                        backend,
                        field,
                    });
                }
            }
        }
        if let Some(host) = host {
            rules.push(ValidRule { host, paths });
        }
    }

    let mut tls = Vec::new();
    for (i, t) in spec.tls.iter().enumerate() {
        for (j, h) in t.hosts.iter().enumerate() {
            let field = format!("spec.tls[{i}].hosts[{j}]");
            match h.parse::<HostPattern>() {
                Ok(host) => tls.push(ValidTls {
                    host,
                    secret: t.secret_name.clone().filter(|s| !s.is_empty()),
                    field,
                    secret_field: format!("spec.tls[{i}].secretName"),
                }),
                Err(e) => err(Code::InvalidHost, field, format!("TLS host {h:?} {e}")),
            }
        }
    }

    diags.append(&mut diags_warn);
    let errors = diags[before..]
        .iter()
        .filter(|d| d.severity == crate::Severity::Error)
        .count();
    if errors > 0 {
        diags.push(Diagnostic::new(
            Code::IngressDropped,
            Some(r),
            None,
            format!(
                "left out because of the {errors} error{} reported with it; every other Ingress still serves",
                if errors == 1 { "" } else { "s" }
            ),
        ));
        return None;
    }
    let (policy, annotation_diags) =
        crate::annotations::parse_shared(&ing.metadata.annotations, &r, annotation_options);
    diags.extend(annotation_diags);
    if let Some(aff) = &policy.affinity
        && aff.cookie.path.is_none()
        && policy.routing.regex_mode(profile) != crate::annotations::RegexMode::Off
    {
        diags.push(Diagnostic::new(
            Code::AnnotationIgnored,
            Some(r.clone()),
            Some(crate::annotations::annotation_field(
                "nginx.ingress.kubernetes.io/session-cookie-path",
            )),
            "affinity on regex paths needs session-cookie-path (a regex is not a cookie path, as ingress-nginx warns); the cookie is set with the literal path text",
        ));
    }
    Some(ValidIngress {
        r: Arc::new(r),
        policy,
        rules,
        default_backend,
        tls,
    })
}

fn backend(
    b: &IngressBackend,
    field: &dyn Fn() -> String,
    err: &mut impl FnMut(Code, String, String),
    last_name: &mut Option<Arc<str>>,
) -> Option<BackendSpec> {
    match (&b.service, &b.resource) {
        (Some(_), Some(_)) => {
            err(
                Code::InvalidBackend,
                field(),
                "backend sets both service and resource; exactly one is allowed".into(),
            );
            None
        }
        (None, None) => {
            err(
                Code::InvalidBackend,
                field(),
                "backend must set service (name and port) or resource".into(),
            );
            None
        }
        (None, Some(res)) => {
            if res.kind.is_empty() || res.name.is_empty() {
                err(
                    Code::InvalidBackend,
                    format!("{}.resource", field()),
                    "resource backend needs kind and name".into(),
                );
                return None;
            }
            Some(BackendSpec::Resource {
                kind: res.kind.clone(),
                name: res.name.clone(),
            })
        }
        (Some(svc), None) => {
            let mut ok = true;
            if let Err(why) = check_dns1035_label(&svc.name) {
                err(
                    Code::InvalidBackend,
                    format!("{}.service.name", field()),
                    format!("service name {:?} {why}", svc.name),
                );
                ok = false;
            }
            let port = match &svc.port {
                None => {
                    err(
                        Code::InvalidBackend,
                        format!("{}.service.port", field()),
                        "service port must be set (name or number)".into(),
                    );
                    None
                }
                Some(p) => match (&p.name, p.number) {
                    (Some(n), Some(_)) if !n.is_empty() => {
                        err(
                            Code::InvalidBackend,
                            format!("{}.service.port", field()),
                            "service port sets both name and number; exactly one is allowed".into(),
                        );
                        None
                    }
                    (_, Some(num)) => match u16::try_from(num) {
                        Ok(n) if n > 0 => Some(PortRef::Number(n)),
                        _ => {
                            err(
                                Code::InvalidBackend,
                                format!("{}.service.port.number", field()),
                                format!("port number {num} is not between 1 and 65535"),
                            );
                            None
                        }
                    },
                    (Some(n), None) if !n.is_empty() => {
                        if let Err(why) = check_port_name(n) {
                            err(
                                Code::InvalidBackend,
                                format!("{}.service.port.name", field()),
                                format!("port name {n:?} {why}"),
                            );
                            None
                        } else {
                            Some(PortRef::Name(n.clone()))
                        }
                    }
                    _ => {
                        err(
                            Code::InvalidBackend,
                            format!("{}.service.port", field()),
                            "service port must set name or number".into(),
                        );
                        None
                    }
                },
            };
            match port {
                Some(port) if ok => {
                    let name = match last_name {
                        Some(last) if **last == *svc.name => last.clone(),
                        _ => {
                            let name: Arc<str> = Arc::from(svc.name.as_str());
                            *last_name = Some(name.clone());
                            name
                        }
                    };
                    Some(BackendSpec::Service { name, port })
                }
                _ => None,
            }
        }
    }
}

/// RFC 1035 label: what the API server requires of Service names.
fn check_dns1035_label(s: &str) -> Result<(), &'static str> {
    if s.is_empty() {
        return Err("must not be empty");
    }
    if s.len() > 63 {
        return Err("must be at most 63 characters");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("must consist of lower-case letters, digits and '-'");
    }
    if !s.as_bytes()[0].is_ascii_lowercase() {
        return Err("must start with a lower-case letter");
    }
    if s.ends_with('-') {
        return Err("must end with a letter or digit");
    }
    Ok(())
}

/// IANA service name: what the API server requires of port names.
fn check_port_name(s: &str) -> Result<(), &'static str> {
    if s.len() > 15 {
        return Err("must be at most 15 characters");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("must consist of lower-case letters, digits and '-'");
    }
    if !s.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err("must contain at least one letter");
    }
    if s.starts_with('-') || s.ends_with('-') || s.contains("--") {
        return Err("must not start or end with '-' or contain '--'");
    }
    Ok(())
}

impl ValidIngress {
    /// The Ingress's namespace.
    pub(crate) fn namespace(&self) -> &str {
        self.r.namespace.as_deref().unwrap_or_default()
    }
}

/// Rules and paths per rule below these share their field strings (built once).
const SHARED_RULES: usize = 8;
const SHARED_PATHS: usize = 32;

/// `spec.rules[i].http.paths[j]`: shared for the first few rules and paths (most
/// Ingresses), else built without the formatting machinery (this runs for every
/// path of every Ingress).
fn path_field(i: usize, j: usize) -> Arc<str> {
    static SHARED: std::sync::OnceLock<Vec<Arc<str>>> = std::sync::OnceLock::new();
    if i < SHARED_RULES && j < SHARED_PATHS {
        let shared = SHARED.get_or_init(|| {
            (0..SHARED_RULES * SHARED_PATHS)
                .map(|k| build_path_field(k / SHARED_PATHS, k % SHARED_PATHS))
                .collect()
        });
        if let Some(f) = shared.get(i * SHARED_PATHS + j) {
            return f.clone();
        }
    }
    build_path_field(i, j)
}

/// `spec.rules[i].http.paths[j]`, built on the stack.
fn build_path_field(i: usize, j: usize) -> Arc<str> {
    // Built on the stack, so the Arc is the only allocation.
    let mut buf = [0u8; 80]; // 11 + 20 + 13 + 20 + 1 bytes at most
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        buf[n..n + bytes.len()].copy_from_slice(bytes);
        n += bytes.len();
    };
    put(b"spec.rules[");
    put(decimal(i, &mut [0u8; 20]));
    put(b"].http.paths[");
    put(decimal(j, &mut [0u8; 20]));
    put(b"]");
    Arc::from(std::str::from_utf8(&buf[..n]).unwrap_or_default())
}

/// `n` in decimal, written at the end of `digits`.
fn decimal(mut n: usize, digits: &mut [u8; 20]) -> &[u8] {
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &digits[at..]
}

/// The reference for an Ingress.
pub(crate) fn ingress_ref(ing: &Ingress) -> ObjectRef {
    ObjectRef::namespaced(
        ObjectKind::Ingress,
        ing.metadata.namespace_or_default(),
        &ing.metadata.name,
    )
}
