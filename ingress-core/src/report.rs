//! The stable JSON shapes of a compiled route table, shared by `ingressctl routes -o
//! json` and the proxy's admin `GET /routes` (schema `ingressctl.routes/v1`,
//! documented in docs/cli-json.md). Fields are only ever added within a schema version.
//!
//! ```
//! use ingress_core::{compile, CompileOptions, report};
//! use ingress_core::manifest::load_str;
//!
//! let loaded = load_str("empty.yaml", "");
//! let compiled = compile(&loaded.snapshot, &CompileOptions::default());
//! let doc = report::routes(&compiled.table, &[]);
//! assert_eq!(doc["schema"], "ingressctl.routes/v1");
//! ```

use serde_json::{Value, json};

use crate::Code;
#[cfg(feature = "manifests")]
use crate::manifest::{Located, SourceLocation};
use crate::model::{ObjectRef, Timestamp};
use crate::routing::{Backend, EndpointAddr, PortRef, Route, RouteMatch, RouteTable, TlsBinding};

/// The schema name of [`routes`].
pub const ROUTES_SCHEMA: &str = "ingressctl.routes/v1";

/// Diagnostic codes that mean something was left out of the table (listed under
/// `dropped` in [`routes`]).
pub const DROPPED: [Code; 6] = [
    Code::IngressDropped,
    Code::IngressIgnored,
    Code::IngressClassNotFound,
    Code::DuplicateRoute,
    Code::DefaultBackendConflict,
    Code::ManifestInvalidObject,
];

/// `{"kind", "namespace", "name"}`.
pub fn object(r: &ObjectRef) -> Value {
    json!({"kind": r.kind.as_str(), "namespace": r.namespace, "name": r.name})
}

/// `{"file", "line", "column"}`, or `null`.
#[cfg(feature = "manifests")]
pub fn location(l: &Option<SourceLocation>) -> Value {
    match l {
        Some(l) => json!({"file": &*l.file, "line": l.line, "column": l.column}),
        None => Value::Null,
    }
}

/// A diagnostic with its location.
#[cfg(feature = "manifests")]
pub fn diagnostic(l: &Located) -> Value {
    let d = &l.diagnostic;
    json!({
        "code": d.code.as_str(),
        "severity": d.severity.as_str(),
        "object": d.object.as_ref().map(object),
        "field": d.field,
        "message": d.message,
        "location": location(&l.location),
    })
}

/// The Service port number when the Service is known, else the name (or number) the
/// Ingress uses.
pub fn port(b: &Backend) -> Value {
    match (b.service_port(), b.port_ref()) {
        (Some(n), _) => json!(n),
        (None, PortRef::Number(n)) => json!(n),
        (None, PortRef::Name(n)) => json!(n),
    }
}

/// `{"namespace", "service", "port"}`.
pub fn backend_short(b: &Backend) -> Value {
    json!({"namespace": b.namespace(), "service": b.service(), "port": port(b)})
}

/// Endpoints as `"host:port"` strings.
pub fn endpoints(e: &[EndpointAddr]) -> Value {
    Value::Array(e.iter().map(|e| json!(e.to_string())).collect())
}

/// One route with its backend.
pub fn route(t: &RouteTable, r: &Route) -> Value {
    let (kind, path, path_type, scope) = match r.matcher() {
        RouteMatch::Path(p) => (
            "path",
            json!(p.as_str()),
            json!(p.path_type().as_str()),
            Value::Null,
        ),
        RouteMatch::DefaultBackend(s) => ("default-backend", Value::Null, Value::Null, json!(s)),
    };
    let b = t.backend(r.backend_id());
    json!({
        "id": r.id().index(),
        "host": r.host().to_string(),
        "kind": kind,
        "path": path,
        "path_type": path_type,
        "default_scope": scope,
        "ingress": {"namespace": r.ingress().namespace, "name": r.ingress().name},
        "field": r.field(),
        "backend": {
            "namespace": b.namespace(),
            "service": b.service(),
            "port": port(b),
            "port_ref": b.port_ref().to_string(),
            "status": b.status(),
            "endpoints": endpoints(b.endpoints()),
        },
    })
}

/// One TLS host and its certificate (`null`: the default certificate is served).
pub fn tls_binding(b: &TlsBinding) -> Value {
    json!({
        "host": b.host().to_string(),
        "secret": b.secret().map(|s| json!({"namespace": s.namespace, "name": s.name})),
        "ingress": {"namespace": b.ingress().namespace, "name": b.ingress().name},
        "certificate": b.certificate().map(|c| json!({
            "dns_names": c.dns_names,
            "not_after": Timestamp::from_unix(c.not_after).to_string(),
        })),
    })
}

/// The live routes in the order of a full compile (by host, then path): an
/// incremental update may have put a host's routes in other slots.
#[cfg(feature = "manifests")]
fn sorted_routes(t: &RouteTable) -> Vec<&Route> {
    let mut v: Vec<&Route> = t.routes().iter().collect();
    // Already in order after a full compile: the stable sort finds one run.
    v.sort_by(|a, b| (a.host(), a.matcher()).cmp(&(b.host(), b.matcher())));
    v
}

/// The whole `ingressctl.routes/v1` document: profile, routes, TLS hosts, what was
/// dropped and every diagnostic (give them sorted, as `ingressctl` does).
#[cfg(feature = "manifests")]
pub fn routes(t: &RouteTable, diagnostics: &[Located]) -> Value {
    json!({
        "schema": ROUTES_SCHEMA,
        "profile": t.profile(),
        "routes": sorted_routes(t).into_iter().map(|rt| route(t, rt)).collect::<Vec<_>>(),
        "tls": t.tls_bindings().iter().map(tls_binding).collect::<Vec<_>>(),
        "dropped": diagnostics
            .iter()
            .filter(|d| DROPPED.contains(&d.diagnostic.code))
            .map(diagnostic)
            .collect::<Vec<_>>(),
        "diagnostics": diagnostics.iter().map(diagnostic).collect::<Vec<_>>(),
    })
}
