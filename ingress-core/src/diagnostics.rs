//! Diagnostics: every problem found in the input, as a value.
//!
//! A [`Diagnostic`] has a stable [`Code`], a [`Severity`] fixed by its code, the object
//! it is about and the field path inside it (annotation keys are field paths too:
//! `metadata.annotations["nginx.ingress.kubernetes.io/rewrite-target"]`). The CLI, the
//! controller and an admission webhook all show the same values.
//!
//! Severities mean:
//! - [`Severity::Error`]: something the input asks for is not served as written (an
//!   Ingress is left out, a route loses a conflict, a path answers 503 because the
//!   gateway cannot serve its backend kind).
//! - [`Severity::Warning`]: served, but probably not what was meant (a Service that does
//!   not exist yet, a certificate that does not cover its host).
//! - [`Severity::Info`]: facts worth knowing (an Ingress that belongs to another
//!   controller and is ignored).

use std::fmt;

use serde::Serialize;

use crate::model::ObjectRef;

/// How bad a diagnostic is. Ordered: `Info < Warning < Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A fact worth knowing.
    Info,
    /// Served, but probably not as meant.
    Warning,
    /// Not served as written.
    Error,
}

impl Severity {
    /// `info`, `warning` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! codes {
    ($( #[doc = $doc:literal] $variant:ident = $name:literal, $sev:ident; )*) => {
        /// A stable diagnostic code. The string form (`Code::as_str`) never changes
        /// meaning once released; docs/diagnostics.md lists them all.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[non_exhaustive]
        pub enum Code {
            $( #[doc = $doc] $variant, )*
        }

        impl Code {
            /// Every code, in documentation order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The stable string form, e.g. `invalid-host`.
            pub fn as_str(self) -> &'static str {
                match self { $( Code::$variant => $name, )* }
            }

            /// The severity every diagnostic with this code has.
            pub fn severity(self) -> Severity {
                match self { $( Code::$variant => Severity::$sev, )* }
            }

            /// One line of documentation.
            pub fn doc(self) -> &'static str {
                match self { $( Code::$variant => $doc.trim_ascii_start(), )* }
            }
        }
    };
}

codes! {
    /// The manifest text is not valid YAML or JSON; nothing in that document is read.
    ManifestSyntax = "manifest-syntax", Error;
    /// An object does not match its kind's schema (a field has the wrong type).
    ManifestInvalidObject = "manifest-invalid-object", Error;
    /// A document of a kind the gateway does not read; it is skipped.
    ManifestUnknownKind = "manifest-unknown-kind", Info;
    /// An object has no `metadata.name`; it is skipped.
    ManifestMissingName = "manifest-missing-name", Error;
    /// The same kind, namespace and name appear twice; one copy is kept.
    DuplicateObject = "duplicate-object", Warning;
    /// The Ingress belongs to another controller, or to no class; it is ignored.
    IngressIgnored = "ingress-ignored", Info;
    /// The Ingress names an IngressClass that is not in the input and not declared.
    IngressClassNotFound = "ingress-class-not-found", Warning;
    /// `spec.ingressClassName` and the `kubernetes.io/ingress.class` annotation disagree.
    IngressClassConflict = "ingress-class-conflict", Error;
    /// More than one IngressClass is marked as the default.
    DefaultClassAmbiguous = "default-class-ambiguous", Warning;
    /// The Ingress has neither rules nor a default backend.
    IngressEmpty = "ingress-empty", Error;
    /// A rule or TLS host is not a valid host name or wildcard.
    InvalidHost = "invalid-host", Error;
    /// A path or pathType is invalid for its type.
    InvalidPath = "invalid-path", Error;
    /// An Exact or Prefix path holds regex characters, which match literally.
    LiteralRegexPath = "literal-regex-path", Warning;
    /// A backend is missing, incomplete or names both a service and a resource.
    InvalidBackend = "invalid-backend", Error;
    /// A `resource` backend: the gateway serves only Service backends; it answers 503.
    ResourceBackendUnsupported = "resource-backend-unsupported", Error;
    /// The Ingress is left out because of the errors reported with it.
    IngressDropped = "ingress-dropped", Error;
    /// Another, older Ingress already routes this host, path and path type; this one loses.
    DuplicateRoute = "duplicate-route", Error;
    /// Another, older Ingress already provides the default backend; this one is not used.
    DefaultBackendConflict = "default-backend-conflict", Error;
    /// The backend Service is not in the input; requests answer 503.
    ServiceNotFound = "service-not-found", Warning;
    /// The Service has no port with that name or number; requests answer 503.
    ServicePortNotFound = "service-port-not-found", Warning;
    /// The Service has no ready or serving endpoints; requests answer 503.
    NoEndpoints = "no-endpoints", Warning;
    /// No endpoint is ready; serving, non-terminating endpoints are used instead.
    NoReadyEndpoints = "no-ready-endpoints", Info;
    /// The TLS Secret is not in the input; the default certificate is served.
    TlsSecretNotFound = "tls-secret-not-found", Warning;
    /// The TLS Secret is not a usable certificate and key; the default certificate is served (a running gateway keeps the host's last good certificate from this Secret, see `tls-previous-certificate-kept`).
    TlsSecretInvalid = "tls-secret-invalid", Warning;
    /// The TLS certificate does not cover the host; the default certificate is served (a running gateway keeps the host's last good certificate from this Secret, see `tls-previous-certificate-kept`).
    TlsHostNotCovered = "tls-host-not-covered", Warning;
    /// The TLS certificate has expired (at the time given to compile, or when the gateway checked what it serves); it is still served.
    TlsCertificateExpired = "tls-certificate-expired", Warning;
    /// The TLS certificate expires within 30 days (at the time given to compile, or when the gateway checked what it serves).
    TlsCertificateExpiresSoon = "tls-certificate-expires-soon", Warning;
    /// The gateway keeps serving the host's last good certificate from this Secret, because the Secret's new content is invalid or does not cover the host.
    TlsPreviousCertificateKept = "tls-previous-certificate-kept", Warning;
    /// Another, older Ingress already sets a certificate for this host; this one is not used.
    TlsHostConflict = "tls-host-conflict", Warning;
    /// An annotation value does not parse; the routes of its Ingress answer 503 until it is fixed.
    AnnotationInvalidValue = "annotation-invalid-value", Error;
    /// A raw-configuration annotation (snippets and the like) is refused; the routes answer 503.
    AnnotationRefused = "annotation-refused", Error;
    /// A security annotation this gateway cannot enforce; the routes answer 503 rather than serve unprotected.
    AnnotationUnenforceable = "annotation-unenforceable", Error;
    /// An annotation this gateway recognises but does not carry out; it has no effect.
    AnnotationNotEnforced = "annotation-not-enforced", Warning;
    /// An annotation carried out with a documented difference from ingress-nginx.
    AnnotationPartial = "annotation-partial", Info;
    /// An annotation under one of our prefixes that no family reads (with a suggestion).
    AnnotationUnknown = "annotation-unknown", Warning;
    /// An annotation ingress-nginx removed; it has no effect (the message names the replacement).
    AnnotationRetired = "annotation-retired", Warning;
    /// The same key is set under two prefixes with different values; the first in lookup order is used.
    AnnotationShadowed = "annotation-shadowed", Warning;
    /// An annotation that has no effect in this combination (e.g. `x-forwarded-prefix` without `rewrite-target`).
    AnnotationIgnored = "annotation-ignored", Warning;
    /// An annotation names a Secret in another namespace, or one that is missing or unusable; the routes answer 503.
    AnnotationReferenceInvalid = "annotation-reference-invalid", Error;
    /// Ingresses of one host (or one Service) set a host- or backend-scoped annotation differently; the oldest wins.
    AnnotationConflict = "annotation-conflict", Warning;
    /// A canary annotation is set without `canary: "true"`; the Ingress is left out.
    CanaryNotEnabled = "canary-not-enabled", Error;
    /// A canary Ingress has no primary with the same host and path; it adds no route.
    CanaryWithoutPrimary = "canary-without-primary", Warning;
    /// A second canary for one route in the ingress-nginx profile (one canary per route); it is not used.
    CanaryConflict = "canary-conflict", Error;
    /// A regex or rewrite on one Ingress turns every path of its host into a case-insensitive regex (ingress-nginx profile).
    RegexHostContagion = "regex-host-contagion", Warning;
    /// A path of a regex Ingress is not a valid regex; the Ingress is left out.
    InvalidRegexPath = "invalid-regex-path", Error;
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One problem in the input.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Diagnostic {
    /// The object it is about, if any (file-level syntax errors have none).
    pub object: Option<ObjectRef>,
    /// The field path inside the object, e.g. `spec.rules[0].host` or
    /// `metadata.annotations["nginx.ingress.kubernetes.io/use-regex"]`.
    pub field: Option<String>,
    /// The stable code.
    pub code: Code,
    /// The severity (always `code.severity()`).
    pub severity: Severity,
    /// One line saying what is wrong and what happens because of it.
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic with the severity of its code.
    pub fn new(
        code: Code,
        object: Option<ObjectRef>,
        field: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            object,
            field,
            code,
            severity: code.severity(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.severity, self.code)?;
        if let Some(o) = &self.object {
            write!(f, " {o}")?;
        }
        if let Some(field) = &self.field {
            write!(f, " {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The most severe severity in `diagnostics`, if any.
pub fn max_severity<'a>(diagnostics: impl IntoIterator<Item = &'a Diagnostic>) -> Option<Severity> {
    diagnostics.into_iter().map(|d| d.severity).max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_documented() {
        let mut names: Vec<_> = Code::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Code::ALL.len());
        for c in Code::ALL {
            assert!(!c.doc().is_empty(), "{c} has no doc");
            assert!(
                c.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'-')
            );
        }
    }
}
