//! Unit tests for `compile`, written from the Kubernetes Ingress specification (API
//! server validation, IngressClass selection, EndpointSlice conditions) and, for the
//! ingress-nginx profile, from what ingress-nginx does. They pin behaviour, not the
//! current code: a failing test here means the code disagrees with the spec.
#![cfg(feature = "manifests")]

use base64::Engine as _;

use crate::diagnostics::{Code, Diagnostic, Severity};
use crate::manifest::load_str;
use crate::model::{ObjectKind, ObjectRef, Timestamp};
use crate::routing::RespondReason;
use crate::snapshot::Snapshot;
use crate::{
    CompileOptions, Compiled, DEFAULT_CONTROLLER_NAME, Decision, Profile, RequestView, Scheme,
    compile,
};

mod annotations;
mod backends;
mod classes;
mod conflicts;
mod determinism;
mod endpoints;
mod fast_paths;
mod incremental;
mod requests;
mod services;
mod tls;
mod validation;

// ------------------------------------------------------------------ helpers

const T2020: &str = ", creationTimestamp: '2020-01-01T00:00:00Z'";
const T2021: &str = ", creationTimestamp: '2021-01-01T00:00:00Z'";
const T2024: &str = ", creationTimestamp: '2024-01-01T00:00:00Z'";

/// Standard profile, class `gw` declared as ours.
fn opts() -> CompileOptions {
    CompileOptions::default().ingress_class("gw")
}

/// ingress-nginx profile, class `gw` declared as ours.
fn nginx() -> CompileOptions {
    CompileOptions::with_profile(Profile::IngressNginx).ingress_class("gw")
}

fn load(yaml: &str) -> Snapshot {
    let loaded = load_str("t.yaml", yaml);
    assert!(
        loaded.diagnostics.is_empty(),
        "the test manifest does not load cleanly: {:#?}",
        loaded.diagnostics
    );
    loaded.snapshot
}

fn run(yaml: &str, options: &CompileOptions) -> Compiled {
    compile(&load(yaml), options)
}

/// What a request gets: the Service name when forwarded, else `STATUS Reason`.
fn outcome(c: &Compiled, host: &str, path: &str) -> String {
    match c.table.route(&RequestView::get(Scheme::Http, host, path)) {
        Decision::Forward(f) => f.backend.service().to_owned(),
        Decision::Respond(r) => format!("{} {:?}", r.status.as_u16(), r.reason),
        other => format!("unexpected {other:?}"),
    }
}

/// The endpoints a request is forwarded to, comma-separated, else `STATUS Reason`.
fn endpoints(c: &Compiled, host: &str, path: &str) -> String {
    match c.table.route(&RequestView::get(Scheme::Http, host, path)) {
        Decision::Forward(f) => {
            let eps: Vec<String> = f
                .backend
                .endpoints()
                .iter()
                .map(|e| e.to_string())
                .collect();
            eps.join(",")
        }
        Decision::Respond(r) => format!("{} {:?}", r.status.as_u16(), r.reason),
        other => format!("unexpected {other:?}"),
    }
}

/// `Ingress ns/name`.
fn ing_ref(ns: &str, name: &str) -> ObjectRef {
    ObjectRef::namespaced(ObjectKind::Ingress, ns, name)
}

/// The diagnostics with `code` about `object`.
fn find<'c>(c: &'c Compiled, code: Code, object: &ObjectRef) -> Vec<&'c Diagnostic> {
    c.diagnostics
        .iter()
        .filter(|d| d.code == code && d.object.as_ref() == Some(object))
        .collect()
}

/// The codes of every diagnostic about `object`, sorted.
fn codes_of(c: &Compiled, object: &ObjectRef) -> Vec<Code> {
    let mut v: Vec<Code> = c
        .diagnostics
        .iter()
        .filter(|d| d.object.as_ref() == Some(object))
        .map(|d| d.code)
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Assert a diagnostic with `code` (and `field`, if given) about `object` exists.
fn assert_diag(c: &Compiled, code: Code, object: &ObjectRef, field: Option<&str>) {
    let hit = find(c, code, object)
        .iter()
        .any(|d| field.is_none() || d.field.as_deref() == field);
    assert!(
        hit,
        "expected {code:?} on {object} at {field:?}; diagnostics:\n{}",
        dump(c)
    );
}

fn dump(c: &Compiled) -> String {
    c.diagnostics
        .iter()
        .map(|d| format!("  {d}\n"))
        .collect::<String>()
}

/// A Service `name` (port `http` 80 → targetPort 8080) and one EndpointSlice with
/// the endpoints `eps` (a YAML flow list) on port `http` 8080.
fn svc_eps(ns: &str, name: &str, eps: &str) -> String {
    format!(
        "---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec: {{ports: [{{name: http, port: 80, targetPort: 8080}}]}}
{}",
        slice(ns, &format!("{name}-1"), name, eps)
    )
}

/// A Service `name` with one ready endpoint `ip`.
fn svc(ns: &str, name: &str, ip: &str) -> String {
    svc_eps(ns, name, &format!("[{{addresses: ['{ip}']}}]"))
}

/// An EndpointSlice of `service` with port `http` 8080.
fn slice(ns: &str, name: &str, service: &str, eps: &str) -> String {
    format!(
        "---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}, namespace: {ns}, labels: {{kubernetes.io/service-name: {service}}}}}
addressType: IPv4
ports: [{{name: http, port: 8080}}]
endpoints: {eps}
"
    )
}

/// An Ingress; `meta` is appended inside `metadata: {...}`, `spec` is a flow mapping.
fn ingress(ns: &str, name: &str, meta: &str, spec: &str) -> String {
    format!(
        "---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {name}, namespace: {ns}{meta}}}
spec: {spec}
"
    )
}

/// A Service backend by port number.
fn to(service: &str, port: u16) -> String {
    format!("{{service: {{name: {service}, port: {{number: {port}}}}}}}")
}

/// A path entry with any backend.
fn path_to(path_type: &str, path: &str, backend: &str) -> String {
    format!("{{path: '{path}', pathType: {path_type}, backend: {backend}}}")
}

/// A path entry to `service` port 80.
fn path(path_type: &str, path: &str, service: &str) -> String {
    path_to(path_type, path, &to(service, 80))
}

/// A rule for `host` (none when empty) with `paths`.
fn rule(host: &str, paths: &[String]) -> String {
    let host = if host.is_empty() {
        String::new()
    } else {
        format!("host: '{host}', ")
    };
    format!("{{{host}http: {{paths: [{}]}}}}", paths.join(", "))
}

/// A class-`gw` Ingress with one host and one path to `service` port 80.
fn simple(
    ns: &str,
    name: &str,
    meta: &str,
    host: &str,
    ty: &str,
    p: &str,
    service: &str,
) -> String {
    let r = rule(host, &[path(ty, p, service)]);
    ingress(
        ns,
        name,
        meta,
        &format!("{{ingressClassName: gw, rules: [{r}]}}"),
    )
}

fn class(name: &str, controller: &str, default: bool) -> String {
    let ann = if default {
        ", annotations: {ingressclass.kubernetes.io/is-default-class: 'true'}"
    } else {
        ""
    };
    format!(
        "---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {{name: {name}{ann}}}
spec: {{controller: {controller}}}
"
    )
}

fn class_ref(name: &str) -> ObjectRef {
    ObjectRef::cluster(ObjectKind::IngressClass, name)
}

/// A self-signed certificate and key (PEM) for `sans`.
fn cert(sans: &[&str]) -> (String, String) {
    let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
    let ck = rcgen::generate_simple_self_signed(sans).expect("certificate");
    (ck.cert.pem(), ck.signing_key.serialize_pem())
}

/// A `kubernetes.io/tls` Secret in `default`.
fn tls_secret(name: &str, crt: &str, key: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    format!(
        "---
apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: default}}
type: kubernetes.io/tls
data: {{tls.crt: {}, tls.key: {}}}
",
        b64(crt),
        b64(key)
    )
}

/// A class-`gw` Ingress in `default` terminating TLS for `hosts` with `secret`, and
/// routing `/` of each host to `app`.
fn tls_ingress(name: &str, meta: &str, hosts: &[&str], secret: &str) -> String {
    let quoted: Vec<String> = hosts.iter().map(|h| format!("'{h}'")).collect();
    let rules: Vec<String> = hosts
        .iter()
        .map(|h| rule(h, &[path("Prefix", &format!("/{name}"), "app")]))
        .collect();
    ingress(
        "default",
        name,
        meta,
        &format!(
            "{{ingressClassName: gw, tls: [{{hosts: [{}], secretName: {secret}}}], rules: [{}]}}",
            quoted.join(", "),
            rules.join(", ")
        ),
    )
}

/// Whether the SNI name gets a certificate.
fn has_cert(c: &Compiled, sni: &str) -> bool {
    c.table
        .tls_for_sni(sni)
        .is_some_and(|b| b.certificate().is_some())
}

fn ok_rule() -> String {
    rule("a.example.com", &[path("Prefix", "/ok", "app")])
}

fn fingerprint(c: &Compiled) -> (String, String, String, String) {
    let tls: Vec<String> = c
        .table
        .tls_bindings()
        .iter()
        .map(|b| {
            format!(
                "{:?} {:?} {} {}",
                b.host(),
                b.secret(),
                b.ingress(),
                b.certificate().is_some()
            )
        })
        .collect();
    (
        format!("{:#?}", c.diagnostics),
        format!("{:#?}", c.table.routes()),
        format!("{:#?}", c.table.backends()),
        tls.join("\n"),
    )
}
