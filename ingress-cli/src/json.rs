//! The stable JSON shapes of `-o json` (documented in docs/cli-json.md).

use std::collections::BTreeMap;

use ingress_core::Severity;
use ingress_core::manifest::Located;
use ingress_core::routing::{Decision, Explanation, RouteMatch, RouteTable, Verdict};
use serde::Serialize;
use serde_json::{Value, json};

pub(crate) use ingress_core::report::{backend_short, diagnostic, endpoints, port, route};

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
