//! The `IngressGatewayConfig` CustomResourceDefinition as YAML, generated from the
//! Rust type (deploy/crd.yaml is this text; a test fails when it drifts).

use kube::CustomResourceExt;
use serde_json::Value;

use crate::gateway::IngressGatewayConfig;

/// The CRD as YAML (what `kubectl apply -f` takes).
pub fn crd_yaml() -> String {
    let crd = serde_json::to_value(IngressGatewayConfig::crd()).unwrap_or(Value::Null);
    let mut out =
        String::from("# Generated from ingress-kube's IngressGatewayConfig type; do not edit.\n");
    out.push_str("# Regenerate: UPDATE_CRD=1 cargo test -p ingress-kube crd\n");
    emit(&crd, 0, &mut out);
    out
}

/// A small YAML emitter for JSON values: block mappings and sequences, plain
/// scalars where YAML reads them back as the same string, JSON-quoted otherwise.
fn emit(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    push_indent(indent, out);
                }
                out.push_str(&scalar_str(k));
                out.push(':');
                value_after_key(v, indent, out);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    push_indent(indent, out);
                }
                out.push_str("- ");
                emit(v, indent + 2, out);
            }
        }
        _ => {
            out.push_str(&inline(v));
            out.push('\n');
        }
    }
}

fn value_after_key(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            push_indent(indent + 2, out);
            emit(v, indent + 2, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            push_indent(indent, out);
            emit(v, indent, out);
        }
        _ => {
            out.push(' ');
            out.push_str(&inline(v));
            out.push('\n');
        }
    }
}

fn push_indent(n: usize, out: &mut String) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn inline(v: &Value) -> String {
    match v {
        Value::String(s) => scalar_str(s),
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        other => other.to_string(),
    }
}

fn scalar_str(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if plain {
        s.to_owned()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emitter_shapes() {
        let mut out = String::new();
        let v = serde_json::json!({"a": {"b": [1, {"c": "x y", "d": []}], "e": "true"}, "f": {}});
        emit(&v, 0, &mut out);
        assert_eq!(
            out,
            "a:\n  b:\n  - 1\n  - c: \"x y\"\n    d: []\n  e: \"true\"\nf: {}\n"
        );
    }
}
