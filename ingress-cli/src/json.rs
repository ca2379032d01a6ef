//! The stable JSON shapes of `-o json` (documented in docs/cli-json.md).

use std::collections::BTreeMap;

use ingress_core::manifest::{Located, SourceLocation};
use ingress_core::model::ObjectRef;
use ingress_core::routing::{
    Backend, Decision, EndpointAddr, Explanation, PortRef, Route, RouteMatch, RouteTable, Verdict,
};
use ingress_core::{Diagnostic, Severity};
use serde::Serialize;
use serde_json::{Value, json};

/// `{"kind", "namespace", "name"}`.
pub(crate) fn object(r: &ObjectRef) -> Value {
    json!({"kind": r.kind.as_str(), "namespace": r.namespace, "name": r.name})
}

pub(crate) fn location(l: &Option<SourceLocation>) -> Value {
    match l {
        Some(l) => json!({"file": &*l.file, "line": l.line, "column": l.column}),
        None => Value::Null,
    }
}

pub(crate) fn diagnostic(l: &Located) -> Value {
    let d: &Diagnostic = &l.diagnostic;
    json!({
        "code": d.code.as_str(),
        "severity": d.severity.as_str(),
        "object": d.object.as_ref().map(object),
        "field": d.field,
        "message": d.message,
        "location": location(&l.location),
    })
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Counts {
    pub(crate) errors: usize,
    pub(crate) warnings: usize,
    pub(crate) infos: usize,
}

impl Counts {
    pub(crate) fn of<'a>(diags: impl IntoIterator<Item = &'a Located>) -> Self {
        let mut c = Counts::default();
        for d in diags {
            match d.diagnostic.severity {
                Severity::Error => c.errors += 1,
                Severity::Warning => c.warnings += 1,
                Severity::Info => c.infos += 1,
            }
        }
        c
    }
}

/// The port as the explain contract wants it: the Service port number when the
/// Service is known, else the name (or number) the Ingress uses.
pub(crate) fn port(b: &Backend) -> Value {
    match (b.service_port(), b.port_ref()) {
        (Some(n), _) => json!(n),
        (None, PortRef::Number(n)) => json!(n),
        (None, PortRef::Name(n)) => json!(n),
    }
}

pub(crate) fn backend_short(b: &Backend) -> Value {
    json!({"namespace": b.namespace(), "service": b.service(), "port": port(b)})
}

pub(crate) fn endpoints(e: &[EndpointAddr]) -> Value {
    Value::Array(e.iter().map(|e| json!(e.to_string())).collect())
}

pub(crate) fn route(t: &RouteTable, r: &Route) -> Value {
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

fn verdict(v: &Verdict) -> Value {
    match v {
        Verdict::Chosen => json!({"verdict": "chosen"}),
        Verdict::Outranked { by, why } => {
            json!({"verdict": "outranked", "by": by.index(), "why": why})
        }
        Verdict::NoMatch { why } => json!({"verdict": "no-match", "why": why}),
        Verdict::NotConsulted { why } => json!({"verdict": "not-consulted", "why": why}),
    }
}

/// The explain contract (docs/cli-json.md).
pub(crate) fn explain(t: &RouteTable, e: &Explanation<'_>, request: Value) -> Value {
    let d = &e.decision;
    let mut headers = BTreeMap::<String, Value>::new();
    for (name, value) in d.response_headers() {
        let v = json!(String::from_utf8_lossy(value.as_bytes()));
        match headers.get_mut(name.as_str()) {
            None => {
                headers.insert(name.as_str().to_owned(), v);
            }
            Some(Value::Array(a)) => a.push(v),
            Some(prev) => *prev = json!([prev.take(), v]),
        }
    }
    let (location, upstream, reason) = match d {
        Decision::Forward(f) => (
            Value::Null,
            json!({"path": f.upstream_target(), "host": f.upstream_host}),
            Value::Null,
        ),
        Decision::Redirect(r) => (json!(r.location), Value::Null, Value::Null),
        Decision::Respond(r) => (Value::Null, Value::Null, json!(r.reason.as_str())),
        _ => (Value::Null, Value::Null, Value::Null),
    };
    let matched = d.route().map(|r| {
        let (path, path_type) = match r.matcher() {
            RouteMatch::Path(p) => (json!(p.as_str()), json!(p.path_type().as_str())),
            RouteMatch::DefaultBackend(_) => (Value::Null, Value::Null),
        };
        json!({
            "id": r.id().index(),
            "ingress": {"namespace": r.ingress().namespace, "name": r.ingress().name},
            "host": r.host().to_string(),
            "path": path,
            "path_type": path_type,
            "field": r.field(),
            "level": e.level,
        })
    });
    let steps: Vec<Value> = e
        .steps
        .iter()
        .map(|s| {
            let mut v = route(t, s.route);
            if let Value::Object(m) = &mut v {
                m.insert("level".into(), json!(s.level));
                if let Value::Object(vm) = verdict(&s.verdict) {
                    m.extend(vm);
                }
            }
            v
        })
        .collect();
    json!({
        "decision": d.kind(),
        "status": d.status().map(|s| s.as_u16()),
        "location": location,
        "response_headers": headers,
        "backend": d.backend().map(backend_short),
        "upstream": upstream,
        "route": matched,
        "reason": reason,
        "endpoints": d.backend().map(|b| endpoints(b.endpoints())),
        "request": request,
        "normalized": {"host": e.host, "path": e.path},
        "steps": steps,
    })
}
