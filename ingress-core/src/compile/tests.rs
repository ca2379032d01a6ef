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

// ------------------------------------------------------------ 1. class selection

struct ClassCase {
    what: &'static str,
    classes: String,
    class_name: Option<&'static str>,
    annotation: Option<&'static str>,
    options: CompileOptions,
    served: bool,
    /// Every diagnostic code about the Ingress, with the severity of the first.
    codes: &'static [Code],
    severity: Option<Severity>,
}

#[test]
fn ingress_class_selection() {
    let ours = DEFAULT_CONTROLLER_NAME;
    let base = CompileOptions::default();
    let cases = [
        ClassCase {
            what: "ingressClassName names our class",
            classes: class("gw", ours, false),
            class_name: Some("gw"),
            annotation: None,
            options: base.clone(),
            served: true,
            codes: &[],
            severity: None,
        },
        ClassCase {
            what: "ingressClassName names another controller's class",
            classes: class("gw", ours, false) + &class("nginx", "k8s.io/ingress-nginx", false),
            class_name: Some("nginx"),
            annotation: None,
            options: base.clone(),
            served: false,
            codes: &[Code::IngressIgnored],
            severity: Some(Severity::Info),
        },
        ClassCase {
            what: "ingressClassName names an absent class",
            classes: class("gw", ours, false),
            class_name: Some("missing"),
            annotation: None,
            options: base.clone(),
            served: false,
            codes: &[Code::IngressClassNotFound],
            severity: Some(Severity::Warning),
        },
        ClassCase {
            what: "ingressClassName names an absent class declared with ingress_class",
            classes: String::new(),
            class_name: Some("gw"),
            annotation: None,
            options: base.clone().ingress_class("gw"),
            served: true,
            codes: &[],
            severity: None,
        },
        ClassCase {
            what: "legacy annotation names our class",
            classes: class("gw", ours, false),
            class_name: None,
            annotation: Some("gw"),
            options: base.clone(),
            served: true,
            codes: &[],
            severity: None,
        },
        ClassCase {
            what: "legacy annotation names another controller's class",
            classes: class("nginx", "k8s.io/ingress-nginx", false),
            class_name: None,
            annotation: Some("nginx"),
            options: base.clone(),
            served: false,
            codes: &[Code::IngressIgnored],
            severity: Some(Severity::Info),
        },
        ClassCase {
            what: "legacy annotation names an absent class",
            classes: String::new(),
            class_name: None,
            annotation: Some("gw"),
            options: base.clone(),
            served: false,
            codes: &[Code::IngressClassNotFound],
            severity: Some(Severity::Warning),
        },
        ClassCase {
            what: "legacy annotation names an absent class declared with ingress_class",
            classes: String::new(),
            class_name: None,
            annotation: Some("gw"),
            options: base.clone().ingress_class("gw"),
            served: true,
            codes: &[],
            severity: None,
        },
        ClassCase {
            what: "annotation and ingressClassName agree",
            classes: class("gw", ours, false),
            class_name: Some("gw"),
            annotation: Some("gw"),
            options: base.clone(),
            served: true,
            codes: &[],
            severity: None,
        },
        ClassCase {
            what: "annotation and ingressClassName disagree",
            classes: class("gw", ours, false) + &class("other", ours, false),
            class_name: Some("gw"),
            annotation: Some("other"),
            options: base.clone(),
            served: false,
            codes: &[Code::IngressClassConflict, Code::IngressDropped],
            severity: Some(Severity::Error),
        },
        ClassCase {
            what: "no class, our class is the default",
            classes: class("gw", ours, true),
            class_name: None,
            annotation: None,
            options: base.clone(),
            served: true,
            codes: &[],
            severity: None,
        },
        ClassCase {
            what: "no class, the default class is another controller's",
            classes: class("gw", ours, false) + &class("nginx", "k8s.io/ingress-nginx", true),
            class_name: None,
            annotation: None,
            options: base.clone(),
            served: false,
            codes: &[Code::IngressIgnored],
            severity: Some(Severity::Info),
        },
        ClassCase {
            what: "no class, watch_ingress_without_class",
            classes: class("gw", ours, false),
            class_name: None,
            annotation: None,
            options: base.clone().watch_ingress_without_class(true),
            served: true,
            codes: &[],
            severity: None,
        },
        ClassCase {
            what: "no class, no default class",
            classes: class("gw", ours, false),
            class_name: None,
            annotation: None,
            options: base.clone(),
            served: false,
            codes: &[Code::IngressIgnored],
            severity: Some(Severity::Info),
        },
        ClassCase {
            what: "custom controller name: its class is ours",
            classes: class("mine", "example.com/mine", false),
            class_name: Some("mine"),
            annotation: None,
            options: base.clone().controller_name("example.com/mine"),
            served: true,
            codes: &[],
            severity: None,
        },
        ClassCase {
            what: "custom controller name: the default controller's class is not ours",
            classes: class("gw", ours, false),
            class_name: Some("gw"),
            annotation: None,
            options: base.clone().controller_name("example.com/mine"),
            served: false,
            codes: &[Code::IngressIgnored],
            severity: Some(Severity::Info),
        },
    ];
    let mut failures = Vec::new();
    for case in cases {
        let meta = case
            .annotation
            .map(|a| format!(", annotations: {{kubernetes.io/ingress.class: {a}}}"))
            .unwrap_or_default();
        let class_field = case
            .class_name
            .map(|n| format!("ingressClassName: {n}, "))
            .unwrap_or_default();
        let spec = format!(
            "{{{class_field}rules: [{}]}}",
            rule("a.example.com", &[path("Prefix", "/", "app")])
        );
        let yaml = case.classes.clone()
            + &ingress("default", "web", &meta, &spec)
            + &svc("default", "app", "10.0.0.1");
        let c = run(&yaml, &case.options);
        let web = ing_ref("default", "web");
        let got = outcome(&c, "a.example.com", "/");
        let want = if case.served { "app" } else { "404 NoRoute" };
        if got != want {
            failures.push(format!("{}: request got {got}, want {want}", case.what));
        }
        let codes = codes_of(&c, &web);
        if codes != case.codes {
            failures.push(format!(
                "{}: codes {codes:?}, want {:?}",
                case.what, case.codes
            ));
        }
        if let (Some(sev), Some(code)) = (case.severity, case.codes.first())
            && let Some(d) = find(&c, *code, &web).first()
            && d.severity != sev
        {
            failures.push(format!(
                "{}: {code:?} has severity {:?}, want {sev:?}",
                case.what, d.severity
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn two_default_classes_are_ambiguous() {
    let yaml = class("gw", DEFAULT_CONTROLLER_NAME, true)
        + &class("nginx", "k8s.io/ingress-nginx", true)
        + &class("plain", "k8s.io/ingress-nginx", false);
    let c = run(&yaml, &CompileOptions::default());
    for name in ["gw", "nginx"] {
        let d = find(&c, Code::DefaultClassAmbiguous, &class_ref(name));
        assert_eq!(d.len(), 1, "{name}: {}", dump(&c));
        assert_eq!(d[0].severity, Severity::Warning);
    }
    assert!(
        find(&c, Code::DefaultClassAmbiguous, &class_ref("plain")).is_empty(),
        "{}",
        dump(&c)
    );
}

#[test]
fn a_duplicated_default_class_is_one_class_not_two() {
    let gw = class("gw", DEFAULT_CONTROLLER_NAME, true);
    let yaml = gw.clone()
        + &gw
        + &ingress(
            "default",
            "web",
            "",
            &format!(
                "{{rules: [{}]}}",
                rule("a.example.com", &[path("Prefix", "/", "app")])
            ),
        )
        + &svc("default", "app", "10.0.0.1");
    let c = run(&yaml, &CompileOptions::default());
    assert!(
        c.diagnostics
            .iter()
            .all(|d| d.code != Code::DefaultClassAmbiguous),
        "{}",
        dump(&c)
    );
    assert_eq!(outcome(&c, "a.example.com", "/"), "app");
}

// ------------------------------------------------------------- 2. validation

struct Invalid {
    what: &'static str,
    /// The bad Ingress's spec (flow mapping).
    spec: String,
    /// The expected code; `None`: any error.
    code: Option<Code>,
    /// The expected field, or its parent (a sub-field also matches).
    field: Option<&'static str>,
}

/// Each case is an Ingress `default/bad` next to a valid `default/good`: the bad one
/// must get the error and IngressDropped and serve nothing; the good one serves.
fn check_dropped(cases: Vec<Invalid>, options: &CompileOptions) {
    let mut failures = Vec::new();
    let bad = ing_ref("default", "bad");
    for case in cases {
        let yaml = ingress("default", "bad", "", &case.spec)
            + &simple(
                "default",
                "good",
                "",
                "good.example.com",
                "Prefix",
                "/",
                "app",
            )
            + &svc("default", "app", "10.0.0.1");
        let loaded = load_str("t.yaml", &yaml);
        if !loaded.diagnostics.is_empty() {
            let d: Vec<String> = loaded
                .diagnostics
                .iter()
                .map(|l| l.diagnostic.to_string())
                .collect();
            failures.push(format!(
                "{}: the manifest loader refused it instead of compile: {}",
                case.what,
                d.join("; ")
            ));
            continue;
        }
        let c = compile(&loaded.snapshot, options);
        let errors: Vec<&Diagnostic> = c
            .diagnostics
            .iter()
            .filter(|d| {
                d.object.as_ref() == Some(&bad)
                    && d.severity == Severity::Error
                    && d.code != Code::IngressDropped
            })
            .collect();
        let matching = errors.iter().any(|d| {
            case.code.is_none_or(|code| d.code == code)
                && case.field.is_none_or(|f| {
                    d.field.as_deref().is_some_and(|got| {
                        got == f
                            || got.starts_with(&format!("{f}."))
                            || got.starts_with(&format!("{f}["))
                    })
                })
        });
        if !matching {
            let got: Vec<String> = errors
                .iter()
                .map(|d| format!("{:?} at {:?}", d.code, d.field))
                .collect();
            failures.push(format!(
                "{}: want {:?} at {:?}, got errors [{}]",
                case.what,
                case.code,
                case.field,
                got.join(", ")
            ));
        }
        if find(&c, Code::IngressDropped, &bad).is_empty() {
            failures.push(format!("{}: no IngressDropped on default/bad", case.what));
        }
        let rest = outcome(&c, "a.example.com", "/ok");
        if rest != "404 NoRoute" {
            failures.push(format!(
                "{}: the valid part of the invalid Ingress still serves ({rest})",
                case.what
            ));
        }
        let good = outcome(&c, "good.example.com", "/");
        if good != "app" {
            failures.push(format!("{}: the other Ingress got {good}", case.what));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn ok_rule() -> String {
    rule("a.example.com", &[path("Prefix", "/ok", "app")])
}

/// A 64-character first label (DNS labels are at most 63).
const LONG_LABEL: &str =
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example.com";
/// 254 characters in labels of 63 (DNS-1123 subdomains are at most 253).
const LONG_NAME: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.\
aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.\
aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.\
aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com";

#[test]
fn invalid_rule_hosts_drop_the_ingress() {
    assert_eq!(
        (LONG_LABEL.split('.').next().map(str::len), LONG_NAME.len()),
        (Some(64), 254)
    );
    let hosts = [
        ("upper case", "Foo.example.com"),
        ("IPv4 address", "10.0.0.1"),
        ("IPv6 address", "2001:db8::1"),
        ("* inside the first label", "*foo.example.com"),
        ("* in a later label", "foo.*.example.com"),
        ("* as the last label", "example.*"),
        ("* alone", "*"),
        ("empty label in the middle", "a..example.com"),
        ("empty first label", ".example.com"),
        ("trailing dot", "example.com."),
        ("underscore", "a_b.example.com"),
        ("label starting with -", "-a.example.com"),
        ("label ending with -", "a-.example.com"),
        ("two wildcard labels", "*.*.example.com"),
        ("wildcard without suffix", "*."),
        ("label of 64 characters", LONG_LABEL),
        ("name of 254 characters", LONG_NAME),
    ];
    let cases = hosts
        .into_iter()
        .map(|(what, host)| Invalid {
            what,
            spec: format!(
                "{{ingressClassName: gw, rules: [{}, {}]}}",
                ok_rule(),
                rule(host, &[path("Prefix", "/", "app")])
            ),
            code: Some(Code::InvalidHost),
            field: Some("spec.rules[1].host"),
        })
        .collect();
    check_dropped(cases, &opts());
}

#[test]
fn invalid_tls_hosts_drop_the_ingress() {
    let hosts = [
        ("upper case", "A.example.com"),
        ("* in a later label", "a.*.example.com"),
        ("empty label", "a..example.com"),
    ];
    let cases = hosts
        .into_iter()
        .map(|(what, host)| Invalid {
            what,
            spec: format!(
                "{{ingressClassName: gw, tls: [{{hosts: [a.example.com, '{host}'], secretName: s}}], rules: [{}]}}",
                ok_rule()
            ),
            code: Some(Code::InvalidHost),
            field: Some("spec.tls[0].hosts[1]"),
        })
        .collect();
    check_dropped(cases, &opts());
}

#[test]
fn invalid_paths_drop_the_ingress() {
    let paths = [
        ("Prefix not starting with /", "Prefix", "foo"),
        ("Exact not starting with /", "Exact", "foo/bar"),
        ("Prefix empty", "Prefix", ""),
        ("Exact with //", "Exact", "/a//b"),
        ("Prefix with //", "Prefix", "/a//"),
        ("Prefix with /./", "Prefix", "/a/./b"),
        ("Exact with /../", "Exact", "/a/../b"),
        ("Prefix with %2f", "Prefix", "/a%2fb"),
        ("Exact with %2F", "Exact", "/a%2Fb"),
        ("Prefix ending /..", "Prefix", "/a/.."),
        ("Exact ending /.", "Exact", "/a/."),
        ("Prefix /..", "Prefix", "/.."),
        ("Exact /.", "Exact", "/."),
        ("Prefix starting /../", "Prefix", "/../a"),
        (
            "ImplementationSpecific not starting with /",
            "ImplementationSpecific",
            "foo",
        ),
    ];
    let mut cases: Vec<Invalid> = paths
        .into_iter()
        .map(|(what, ty, p)| Invalid {
            what,
            spec: format!(
                "{{ingressClassName: gw, rules: [{}]}}",
                rule(
                    "a.example.com",
                    &[path("Prefix", "/ok", "app"), path(ty, p, "app")]
                )
            ),
            code: Some(Code::InvalidPath),
            field: Some("spec.rules[0].http.paths[1].path"),
        })
        .collect();
    for (what, entry) in [
        (
            "pathType missing",
            format!("{{path: /x, backend: {}}}", to("app", 80)),
        ),
        ("pathType unknown", path("Regex", "/x", "app")),
    ] {
        cases.push(Invalid {
            what,
            spec: format!(
                "{{ingressClassName: gw, rules: [{}]}}",
                rule("a.example.com", &[path("Prefix", "/ok", "app"), entry])
            ),
            code: Some(Code::InvalidPath),
            field: Some("spec.rules[0].http.paths[1].pathType"),
        });
    }
    check_dropped(cases, &opts());
}

#[test]
fn invalid_backends_drop_the_ingress() {
    let backends = [
        (
            "service and resource",
            "{service: {name: app, port: {number: 80}}, resource: {apiGroup: k8s.example.com, kind: Bucket, name: b}}",
        ),
        ("neither service nor resource", "{}"),
        (
            "port with name and number",
            "{service: {name: app, port: {name: http, number: 80}}}",
        ),
        ("port number 0", "{service: {name: app, port: {number: 0}}}"),
        (
            "port number 65536",
            "{service: {name: app, port: {number: 65536}}}",
        ),
        (
            "port number 70000",
            "{service: {name: app, port: {number: 70000}}}",
        ),
        (
            "port with neither name nor number",
            "{service: {name: app, port: {}}}",
        ),
        (
            "service name not a DNS-1035 label",
            "{service: {name: My_Svc, port: {number: 80}}}",
        ),
        (
            "service name starting with a digit",
            "{service: {name: 1svc, port: {number: 80}}}",
        ),
        (
            "service name empty",
            "{service: {name: '', port: {number: 80}}}",
        ),
        (
            "port name not an IANA service name",
            "{service: {name: app, port: {name: HTTP_PORT}}}",
        ),
        ("resource without name", "{resource: {kind: Bucket}}"),
    ];
    let mut cases: Vec<Invalid> = backends
        .into_iter()
        .map(|(what, b)| Invalid {
            what,
            spec: format!(
                "{{ingressClassName: gw, rules: [{}]}}",
                rule(
                    "a.example.com",
                    &[path("Prefix", "/ok", "app"), path_to("Prefix", "/x", b)]
                )
            ),
            code: Some(Code::InvalidBackend),
            field: Some("spec.rules[0].http.paths[1].backend"),
        })
        .collect();
    cases.push(Invalid {
        what: "defaultBackend with neither service nor resource",
        spec: format!(
            "{{ingressClassName: gw, defaultBackend: {{}}, rules: [{}]}}",
            ok_rule()
        ),
        code: Some(Code::InvalidBackend),
        field: Some("spec.defaultBackend"),
    });
    check_dropped(cases, &opts());
}

#[test]
fn empty_ingress_and_empty_path_list_drop_the_ingress() {
    let cases = vec![
        Invalid {
            what: "neither rules nor defaultBackend",
            spec: "{ingressClassName: gw}".into(),
            code: Some(Code::IngressEmpty),
            field: None,
        },
        Invalid {
            what: "rule with http.paths: []",
            spec: format!(
                "{{ingressClassName: gw, rules: [{}, {{host: b.example.com, http: {{paths: []}}}}]}}",
                ok_rule()
            ),
            code: None,
            field: Some("spec.rules[1]"),
        },
    ];
    check_dropped(cases, &opts());
}

#[test]
fn valid_edge_cases_are_served() {
    // An ImplementationSpecific path with no `path` key at all.
    let no_path = format!(
        "{{pathType: ImplementationSpecific, backend: {}}}",
        to("app", 80)
    );
    let spec = format!(
        "{{ingressClassName: gw, rules: [{}, {}, {}, {}]}}",
        rule(
            "impl.example.com",
            &[path("ImplementationSpecific", "", "app")]
        ),
        rule("impl2.example.com", &[no_path]),
        rule("*.wild.example.com", &[path("Prefix", "/", "app")]),
        rule("dots.example.com", &[path("Prefix", "/file.txt", "app")]),
    );
    let yaml = ingress("default", "edge", "", &spec) + &svc("default", "app", "10.0.0.1");
    let c = run(&yaml, &opts());
    assert!(
        c.diagnostics.iter().all(|d| d.severity != Severity::Error),
        "{}",
        dump(&c)
    );
    for (host, p, want) in [
        ("impl.example.com", "/", "app"),
        ("impl.example.com", "/anything/below", "app"),
        ("impl2.example.com", "/x", "app"),
        ("x.wild.example.com", "/", "app"),
        ("dots.example.com", "/file.txt", "app"),
    ] {
        assert_eq!(outcome(&c, host, p), want, "{host}{p}");
    }
}

#[test]
fn standard_profile_warns_on_literal_regex_paths() {
    let spec = format!(
        "{{ingressClassName: gw, rules: [{}]}}",
        rule(
            "a.example.com",
            &[
                path("Prefix", "/plain_path-1", "app"),
                path("Prefix", "/api/(.*)", "app"),
                path("Exact", "/v1/items$", "app"),
            ]
        )
    );
    let yaml = ingress("default", "re", "", &spec) + &svc("default", "app", "10.0.0.1");
    let c = run(&yaml, &opts());
    let r = ing_ref("default", "re");
    for j in [1, 2] {
        let field = format!("spec.rules[0].http.paths[{j}].path");
        assert_diag(&c, Code::LiteralRegexPath, &r, Some(&field));
    }
    let warnings = find(&c, Code::LiteralRegexPath, &r);
    assert_eq!(warnings.len(), 2, "{}", dump(&c));
    assert!(warnings.iter().all(|d| d.severity == Severity::Warning));
    assert!(
        find(&c, Code::IngressDropped, &r).is_empty(),
        "{}",
        dump(&c)
    );
    // Matched literally.
    assert_eq!(outcome(&c, "a.example.com", "/api/(.*)"), "app");
    assert_eq!(outcome(&c, "a.example.com", "/api/users"), "404 NoRoute");
    assert_eq!(outcome(&c, "a.example.com", "/v1/items$"), "app");
    assert_eq!(outcome(&c, "a.example.com", "/v1/items"), "404 NoRoute");
}

#[test]
fn nginx_profile_strict_path_validation() {
    // strict-validate-path-type: Exact and Prefix paths may hold only letters,
    // digits, '/', '-' and '_'; ImplementationSpecific is not checked.
    let cases = [
        ("Prefix", "/api/(.*)", false),
        ("Exact", "/file.txt", false),
        ("Prefix", "/a~b", false),
        ("Prefix", "/a:b", false),
        ("Exact", "/", true),
        ("Prefix", "/Api_v-1/X9", true),
        ("ImplementationSpecific", "/api/(.*)", true),
        ("ImplementationSpecific", "/file.txt", true),
    ];
    let mut failures = Vec::new();
    let r = ing_ref("default", "p");
    for (ty, p, ok) in cases {
        let yaml = simple("default", "p", "", "a.example.com", ty, p, "app")
            + &svc("default", "app", "10.0.0.1");
        let c = run(&yaml, &nginx());
        let invalid = find(&c, Code::InvalidPath, &r)
            .iter()
            .any(|d| d.field.as_deref() == Some("spec.rules[0].http.paths[0].path"));
        let dropped = !find(&c, Code::IngressDropped, &r).is_empty();
        if ok == (invalid || dropped) {
            failures.push(format!(
                "{ty} {p:?}: want {}, got InvalidPath={invalid} IngressDropped={dropped}",
                if ok {
                    "valid"
                } else {
                    "InvalidPath + IngressDropped"
                }
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ----------------------------------------------------------- 3. fault isolation

#[test]
fn one_invalid_ingress_does_not_affect_the_others() {
    let (crt, key) = cert(&["a.example.com"]);
    let (evil_crt, evil_key) = cert(&["a.example.com"]);
    let valid = tls_ingress("a", T2021, &["a.example.com"], "a-tls")
        + &tls_secret("a-tls", &crt, &key)
        + &tls_secret("evil-tls", &evil_crt, &evil_key)
        + &simple(
            "default",
            "a2",
            T2021,
            "a.example.com",
            "Prefix",
            "/shop",
            "shop",
        )
        + &ingress(
            "default",
            "c",
            "",
            &format!(
                "{{ingressClassName: gw, rules: [{}]}}",
                rule("c.example.com", &[path("Exact", "/", "web")])
            ),
        )
        + &svc("default", "shop", "10.0.0.1")
        + &svc("default", "web", "10.0.0.2")
        + &svc("default", "app", "10.0.0.3")
        + &svc("default", "evil", "10.0.0.66");
    // Older than the others, overlapping their routes and TLS host, with a default
    // backend: invalid because of its third rule's host.
    let invalid = ingress(
        "default",
        "b",
        T2020,
        &format!(
            "{{ingressClassName: gw, defaultBackend: {}, tls: [{{hosts: [a.example.com], secretName: evil-tls}}], rules: [{}, {}, {}]}}",
            to("evil", 80),
            rule("a.example.com", &[path("Prefix", "/shop", "evil")]),
            rule("c.example.com", &[path("Exact", "/", "evil")]),
            rule("Bad_Host", &[path("Prefix", "/", "evil")])
        ),
    );
    let without = run(&valid, &opts());
    let with = run(&(invalid + &valid), &opts());
    assert_diag(&with, Code::IngressDropped, &ing_ref("default", "b"), None);
    assert_eq!(fingerprint(&with).1, fingerprint(&without).1, "routes");
    assert_eq!(fingerprint(&with).2, fingerprint(&without).2, "backends");
    assert_eq!(
        fingerprint(&with).3,
        fingerprint(&without).3,
        "TLS bindings"
    );
    let b = ing_ref("default", "b");
    let others: Vec<&Diagnostic> = with
        .diagnostics
        .iter()
        .filter(|d| d.object.as_ref() != Some(&b))
        .collect();
    let baseline: Vec<&Diagnostic> = without.diagnostics.iter().collect();
    assert_eq!(others, baseline);
    let tls = with.table.tls_for_sni("a.example.com").expect("binding");
    assert_eq!(tls.secret().map(|s| s.name.as_str()), Some("a-tls"));
    for (host, p, want) in [
        ("a.example.com", "/shop/cart", "shop"),
        ("a.example.com", "/a", "app"),
        ("c.example.com", "/", "web"),
        ("c.example.com", "/x", "404 NoRoute"),
        ("z.example.com", "/", "404 NoRoute"),
    ] {
        assert_eq!(outcome(&with, host, p), want, "{host}{p}");
        assert_eq!(outcome(&without, host, p), want, "{host}{p}");
    }
}

// ----------------------------------------------------------------- 4. backends

#[test]
fn backend_resolution() {
    let services = "---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {ports: [{name: http, port: 80, targetPort: web}, {name: admin, port: 81, targetPort: 9090}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-abc, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: admin, port: 9090}, {name: http, port: 8080}]
endpoints: [{addresses: ['10.0.0.1']}]
---
apiVersion: v1
kind: Service
metadata: {name: noslices, namespace: default}
spec: {ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: default}
spec: {type: ExternalName, externalName: db.example.net, ports: [{name: pg, port: 5432, targetPort: 15432}]}
---
apiVersion: v1
kind: Service
metadata: {name: ext2, namespace: default}
spec: {type: ExternalName, externalName: api.example.org, ports: [{name: https, port: 443}]}
---
apiVersion: v1
kind: Service
metadata: {name: single, namespace: default}
spec: {ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: single-1, namespace: default, labels: {kubernetes.io/service-name: single}}
addressType: IPv4
ports: [{port: 8080}]
endpoints: [{addresses: ['10.0.6.1']}]
---
apiVersion: v1
kind: Service
metadata: {name: wrongname, namespace: default}
spec: {ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: wrongname-1, namespace: default, labels: {kubernetes.io/service-name: wrongname}}
addressType: IPv4
ports: [{name: metrics, port: 9100}]
endpoints: [{addresses: ['10.0.7.1']}]
"
    .to_owned()
        + &svc_eps(
            "default",
            "mixed",
            "[{addresses: ['10.0.1.1'], conditions: {ready: true}},
              {addresses: ['10.0.1.2']},
              {addresses: ['10.0.1.3'], conditions: {ready: false, serving: true, terminating: false}},
              {addresses: ['10.0.1.4'], conditions: {ready: false, serving: true, terminating: true}}]",
        )
        + &svc_eps(
            "default",
            "serving",
            "[{addresses: ['10.0.2.1'], conditions: {ready: false, serving: true, terminating: false}},
              {addresses: ['10.0.2.2'], conditions: {ready: false, serving: true, terminating: true}},
              {addresses: ['10.0.2.3'], conditions: {ready: false, terminating: true}}]",
        )
        + &svc_eps(
            "default",
            "dead",
            "[{addresses: ['10.0.3.1'], conditions: {ready: false, terminating: true}},
              {addresses: ['10.0.3.2'], conditions: {ready: false, serving: false}},
              {addresses: ['10.0.3.3'], conditions: {ready: false, serving: true, terminating: true}}]",
        )
        // Another namespace's slice for `iso`, and a slice of another Service.
        + &svc("default", "iso", "10.0.4.1")
        + &slice("other", "iso-x", "iso", "[{addresses: ['10.9.9.9']}]")
        + &svc("other", "iso", "10.9.9.8")
        + &slice("default", "iso-other-1", "iso-other", "[{addresses: ['10.8.8.8']}]")
        // Two slices for `multi`, overlapping and unsorted.
        + &svc_eps(
            "default",
            "multi",
            "[{addresses: ['10.0.5.3']}, {addresses: ['10.0.5.1']}]",
        )
        + &slice(
            "default",
            "multi-2",
            "multi",
            "[{addresses: ['10.0.5.2']}, {addresses: ['10.0.5.1']}]",
        );
    // (case, backend, request outcome, every diagnostic code on its Ingress)
    let cases: [(&str, String, &str, &[Code]); 17] = [
        ("single", to("single", 80), "10.0.6.1:8080", &[]),
        (
            "wrongname",
            to("wrongname", 80),
            "503 NoEndpoints",
            &[Code::NoEndpoints],
        ),
        ("num", to("web", 80), "10.0.0.1:8080", &[]),
        (
            "name",
            "{service: {name: web, port: {name: http}}}".into(),
            "10.0.0.1:8080",
            &[],
        ),
        (
            "admin",
            "{service: {name: web, port: {name: admin}}}".into(),
            "10.0.0.1:9090",
            &[],
        ),
        (
            "nonport",
            to("web", 8080),
            "503 ServicePortNotFound",
            &[Code::ServicePortNotFound],
        ),
        (
            "nonportname",
            "{service: {name: web, port: {name: grpc}}}".into(),
            "503 ServicePortNotFound",
            &[Code::ServicePortNotFound],
        ),
        (
            "nosvc",
            to("nosuch", 80),
            "503 ServiceNotFound",
            &[Code::ServiceNotFound],
        ),
        ("mixed", to("mixed", 80), "10.0.1.1:8080,10.0.1.2:8080", &[]),
        (
            "serving",
            to("serving", 80),
            "10.0.2.1:8080",
            &[Code::NoReadyEndpoints],
        ),
        (
            "dead",
            to("dead", 80),
            "503 NoEndpoints",
            &[Code::NoEndpoints],
        ),
        (
            "noslices",
            to("noslices", 80),
            "503 NoEndpoints",
            &[Code::NoEndpoints],
        ),
        ("iso", to("iso", 80), "10.0.4.1:8080", &[]),
        (
            "multi",
            to("multi", 80),
            "10.0.5.1:8080,10.0.5.2:8080,10.0.5.3:8080",
            &[],
        ),
        ("ext", to("ext", 5432), "db.example.net:15432", &[]),
        ("ext2", to("ext2", 443), "api.example.org:443", &[]),
        (
            "extname",
            "{service: {name: ext, port: {name: pg}}}".into(),
            "db.example.net:15432",
            &[],
        ),
    ];
    let mut yaml = services;
    for (name, backend, _, _) in &cases {
        let spec = format!(
            "{{ingressClassName: gw, rules: [{}]}}",
            rule(
                &format!("{name}.example.com"),
                &[path_to("Prefix", "/", backend)]
            )
        );
        yaml += &ingress("default", name, "", &spec);
    }
    let c = run(&yaml, &opts());
    let mut failures = Vec::new();
    for (name, _, want, want_codes) in &cases {
        let got = endpoints(&c, &format!("{name}.example.com"), "/");
        if got != *want {
            failures.push(format!("{name}: got {got}, want {want}"));
        }
        let codes = codes_of(&c, &ing_ref("default", name));
        if codes != *want_codes {
            failures.push(format!("{name}: codes {codes:?}, want {want_codes:?}"));
        }
    }
    assert!(failures.is_empty(), "{}\n{}", failures.join("\n"), dump(&c));

    // Severities the spec fixes.
    for (name, code, sev) in [
        ("serving", Code::NoReadyEndpoints, Severity::Info),
        ("dead", Code::NoEndpoints, Severity::Warning),
        ("nosvc", Code::ServiceNotFound, Severity::Warning),
    ] {
        let d = find(&c, code, &ing_ref("default", name));
        assert!(d.iter().all(|d| d.severity == sev), "{name}: {d:?}");
    }
    // The named targetPort example: endpoints on the slice port, service_port the Service's.
    match c
        .table
        .route(&RequestView::get(Scheme::Http, "num.example.com", "/"))
    {
        Decision::Forward(f) => {
            assert_eq!(f.backend.service(), "web");
            assert_eq!(f.backend.service_port(), Some(80));
        }
        other => panic!("expected forward, got {other:?}"),
    }
}

#[test]
fn resource_backend_answers_503_without_dropping_the_ingress() {
    let spec = format!(
        "{{ingressClassName: gw, rules: [{}]}}",
        rule(
            "a.example.com",
            &[
                path_to(
                    "Prefix",
                    "/assets",
                    "{resource: {apiGroup: k8s.example.com, kind: StorageBucket, name: assets}}"
                ),
                path("Prefix", "/", "app"),
            ]
        )
    );
    let yaml = ingress("default", "res", "", &spec) + &svc("default", "app", "10.0.0.1");
    let c = run(&yaml, &opts());
    let r = ing_ref("default", "res");
    match c.table.route(&RequestView::get(
        Scheme::Http,
        "a.example.com",
        "/assets/x.png",
    )) {
        Decision::Respond(resp) => {
            assert_eq!(resp.status.as_u16(), 503);
            assert_eq!(resp.reason, RespondReason::UnsupportedBackend);
        }
        other => panic!("expected 503, got {other:?}"),
    }
    assert_eq!(outcome(&c, "a.example.com", "/index.html"), "app");
    let d = find(&c, Code::ResourceBackendUnsupported, &r);
    assert!(!d.is_empty(), "{}", dump(&c));
    assert!(d.iter().all(|d| d.severity == Severity::Error));
    assert!(
        find(&c, Code::IngressDropped, &r).is_empty(),
        "{}",
        dump(&c)
    );
}

// ----------------------------------------------------------------- 5. conflicts

/// Which Ingress's backend answers `a.example.com/foo`, and who got DuplicateRoute.
fn conflict(yaml: &str, options: &CompileOptions) -> (String, Vec<String>) {
    let c = run(yaml, options);
    let winner = match c
        .table
        .route(&RequestView::get(Scheme::Http, "a.example.com", "/foo"))
        .backend()
    {
        Some(b) => format!("{}/{}", b.namespace(), b.service()),
        None => "none".into(),
    };
    let losers = c
        .diagnostics
        .iter()
        .filter(|d| d.code == Code::DuplicateRoute)
        .map(|d| {
            let o = d.object.as_ref().map(|o| o.to_string()).unwrap_or_default();
            format!("{o} {}", d.field.as_deref().unwrap_or(""))
        })
        .collect();
    (winner, losers)
}

#[test]
fn duplicate_routes_resolve_by_age_then_name() {
    const F: &str = "spec.rules[0].http.paths[0].path";
    let std = opts();
    let ngx = nginx();
    let one = |ns: &str, name: &str, meta: &str| {
        simple(
            ns,
            name,
            meta,
            "a.example.com",
            "Prefix",
            "/foo",
            &format!("svc-{name}"),
        )
    };
    let cases: Vec<(&str, String, &CompileOptions, &str, &str)> = vec![
        (
            "older wins regardless of names (standard)",
            one("default", "zz", T2020) + &one("default", "aa", T2021),
            &std,
            "default/svc-zz",
            "Ingress default/aa",
        ),
        (
            "older wins regardless of names (ingress-nginx)",
            one("default", "aa", T2020) + &one("default", "zz", T2021),
            &ngx,
            "default/svc-aa",
            "Ingress default/zz",
        ),
        (
            "no timestamps: name ascending (standard)",
            one("default", "b", "") + &one("default", "a", ""),
            &std,
            "default/svc-a",
            "Ingress default/b",
        ),
        (
            "no timestamps: namespace before name (standard)",
            one("beta", "a", "") + &one("alpha", "z", ""),
            &std,
            "alpha/svc-z",
            "Ingress beta/a",
        ),
        (
            "no timestamps: name descending (ingress-nginx)",
            one("default", "a", "") + &one("default", "b", ""),
            &ngx,
            "default/svc-b",
            "Ingress default/a",
        ),
        (
            "equal timestamps: name ascending (standard)",
            one("default", "b", T2020) + &one("default", "a", T2020),
            &std,
            "default/svc-a",
            "Ingress default/b",
        ),
        (
            "equal timestamps: name descending (ingress-nginx)",
            one("default", "a", T2020) + &one("default", "b", T2020),
            &ngx,
            "default/svc-b",
            "Ingress default/a",
        ),
        (
            "with a timestamp is older than without (standard)",
            one("default", "a", "") + &one("default", "z", T2024),
            &std,
            "default/svc-z",
            "Ingress default/a",
        ),
        (
            "with a timestamp is older than without (ingress-nginx)",
            one("default", "z", "") + &one("default", "a", T2024),
            &ngx,
            "default/svc-a",
            "Ingress default/z",
        ),
    ];
    let mut failures = Vec::new();
    for (what, yaml, options, want_winner, want_loser) in cases {
        let (winner, losers) = conflict(&yaml, options);
        let want_losers = vec![format!("{want_loser} {F}")];
        if winner != want_winner || losers != want_losers {
            failures.push(format!(
                "{what}: winner {winner} losers {losers:?}; want {want_winner} {want_losers:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn duplicate_routes_for_every_path_type_and_host_form() {
    let mut failures = Vec::new();
    for options in [opts(), nginx()] {
        for ty in ["Exact", "Prefix", "ImplementationSpecific"] {
            for (host, request_host) in [
                ("a.example.com", "a.example.com"),
                ("*.example.com", "x.example.com"),
                ("", "any.example.org"),
            ] {
                let yaml = simple("default", "aa", T2021, host, ty, "/foo", "newer")
                    + &simple("default", "zz", T2020, host, ty, "/foo", "older");
                let c = run(&yaml, &options);
                let what = format!("{} {ty} {host:?}", options.profile);
                let got = c
                    .table
                    .route(&RequestView::get(Scheme::Http, request_host, "/foo"))
                    .backend()
                    .map(|b| b.service().to_owned());
                if got.as_deref() != Some("older") {
                    failures.push(format!("{what}: served by {got:?}, want older"));
                }
                let losers: Vec<String> = c
                    .diagnostics
                    .iter()
                    .filter(|d| d.code == Code::DuplicateRoute)
                    .map(|d| format!("{:?} {:?}", d.object, d.field))
                    .collect();
                let want = vec![format!(
                    "{:?} {:?}",
                    Some(ing_ref("default", "aa")),
                    Some("spec.rules[0].http.paths[0].path")
                )];
                if losers != want {
                    failures.push(format!("{what}: DuplicateRoute {losers:?}, want {want:?}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn duplicate_route_names_the_losing_path_and_keeps_its_other_paths() {
    let older = simple(
        "default",
        "old",
        T2020,
        "a.example.com",
        "Prefix",
        "/foo",
        "one",
    );
    let newer = ingress(
        "default",
        "new",
        T2021,
        &format!(
            "{{ingressClassName: gw, rules: [{}]}}",
            rule(
                "a.example.com",
                &[
                    path("Prefix", "/other", "two"),
                    path("Prefix", "/foo", "two")
                ]
            )
        ),
    );
    let yaml =
        newer + &older + &svc("default", "one", "10.0.0.1") + &svc("default", "two", "10.0.0.2");
    let c = run(&yaml, &opts());
    let d = find(&c, Code::DuplicateRoute, &ing_ref("default", "new"));
    assert_eq!(d.len(), 1, "{}", dump(&c));
    assert_eq!(
        d[0].field.as_deref(),
        Some("spec.rules[0].http.paths[1].path")
    );
    assert!(find(&c, Code::DuplicateRoute, &ing_ref("default", "old")).is_empty());
    assert_eq!(outcome(&c, "a.example.com", "/foo/x"), "one");
    assert_eq!(outcome(&c, "a.example.com", "/other"), "two");
}

#[test]
fn exact_and_prefix_of_the_same_path_do_not_conflict() {
    for (options, (exact_meta, prefix_meta)) in [opts(), nginx()]
        .into_iter()
        .flat_map(|o| [(T2020, T2021), (T2021, T2020), ("", "")].map(|m| (o.clone(), m)))
    {
        let yaml = simple(
            "default",
            "e",
            exact_meta,
            "a.example.com",
            "Exact",
            "/foo",
            "exact",
        ) + &simple(
            "default",
            "p",
            prefix_meta,
            "a.example.com",
            "Prefix",
            "/foo",
            "prefix",
        ) + &svc("default", "exact", "10.0.0.1")
            + &svc("default", "prefix", "10.0.0.2");
        let c = run(&yaml, &options);
        let ctx = format!("{} exact{exact_meta} prefix{prefix_meta}", options.profile);
        assert!(
            c.diagnostics.iter().all(|d| d.code != Code::DuplicateRoute),
            "{ctx}\n{}",
            dump(&c)
        );
        assert_eq!(outcome(&c, "a.example.com", "/foo"), "exact", "{ctx}");
        assert_eq!(outcome(&c, "a.example.com", "/foo/bar"), "prefix", "{ctx}");
        assert_eq!(
            outcome(&c, "a.example.com", "/foobar"),
            "404 NoRoute",
            "{ctx}"
        );
    }
}

#[test]
fn prefix_beats_implementation_specific_of_the_same_path_in_standard_profile() {
    for (prefix_meta, impl_meta) in [(T2020, T2021), (T2021, T2020), ("", ""), (T2021, "")] {
        let yaml = simple(
            "default",
            "impl",
            impl_meta,
            "a.example.com",
            "ImplementationSpecific",
            "/foo",
            "impl",
        ) + &simple(
            "default",
            "pre",
            prefix_meta,
            "a.example.com",
            "Prefix",
            "/foo",
            "prefix",
        ) + &svc("default", "impl", "10.0.0.1")
            + &svc("default", "prefix", "10.0.0.2");
        let c = run(&yaml, &opts());
        let ctx = format!("prefix{prefix_meta} impl{impl_meta}\n{}", dump(&c));
        assert_eq!(outcome(&c, "a.example.com", "/foo"), "prefix", "{ctx}");
        assert_eq!(outcome(&c, "a.example.com", "/foo/x"), "prefix", "{ctx}");
        let d = find(&c, Code::DuplicateRoute, &ing_ref("default", "impl"));
        assert_eq!(d.len(), 1, "{ctx}");
        assert_eq!(
            d[0].field.as_deref(),
            Some("spec.rules[0].http.paths[0].path"),
            "{ctx}"
        );
        assert!(
            find(&c, Code::DuplicateRoute, &ing_ref("default", "pre")).is_empty(),
            "{ctx}"
        );
    }
}

// ----------------------------------------------------------- 6. default backends

#[test]
fn standard_default_backend_is_the_oldest_and_answers_every_host() {
    let rules = rule("a.example.com", &[path("Prefix", "/app", "app")]);
    // The older one has the later name.
    let older = ingress(
        "default",
        "zz",
        T2020,
        &format!(
            "{{ingressClassName: gw, defaultBackend: {}, rules: [{rules}]}}",
            to("old-default", 80)
        ),
    );
    let newer = ingress(
        "default",
        "aa",
        T2021,
        &format!(
            "{{ingressClassName: gw, defaultBackend: {}}}",
            to("new-default", 80)
        ),
    );
    let yaml = newer
        + &older
        + &svc("default", "app", "10.0.0.1")
        + &svc("default", "old-default", "10.0.0.2")
        + &svc("default", "new-default", "10.0.0.3");
    let c = run(&yaml, &opts());
    for (host, p, want) in [
        ("a.example.com", "/app/x", "app"),
        ("a.example.com", "/other", "old-default"),
        ("unknown.example.org", "/", "old-default"),
        ("unknown.example.org", "/app", "old-default"),
    ] {
        assert_eq!(outcome(&c, host, p), want, "{host}{p}\n{}", dump(&c));
    }
    let d = find(&c, Code::DefaultBackendConflict, &ing_ref("default", "aa"));
    assert_eq!(d.len(), 1, "{}", dump(&c));
    assert!(find(&c, Code::DefaultBackendConflict, &ing_ref("default", "zz")).is_empty());
}

#[test]
fn nginx_default_backend_with_rules_is_per_host_and_without_rules_is_catch_all() {
    let with_rules = ingress(
        "default",
        "site",
        "",
        &format!(
            "{{ingressClassName: gw, defaultBackend: {}, rules: [{}]}}",
            to("site-default", 80),
            rule("a.example.com", &[path("Prefix", "/app", "app")])
        ),
    );
    let catch_all = ingress(
        "default",
        "catch",
        "",
        &format!(
            "{{ingressClassName: gw, defaultBackend: {}}}",
            to("catch-all", 80)
        ),
    );
    let services = svc("default", "app", "10.0.0.1")
        + &svc("default", "site-default", "10.0.0.2")
        + &svc("default", "catch-all", "10.0.0.3");

    let c = run(&(with_rules.clone() + &services), &nginx());
    for (host, p, want) in [
        ("a.example.com", "/app", "app"),
        ("a.example.com", "/other", "site-default"),
        ("b.example.com", "/", "404 NoRoute"),
        ("b.example.com", "/app", "404 NoRoute"),
    ] {
        assert_eq!(outcome(&c, host, p), want, "rules only: {host}{p}");
    }

    let c = run(&(with_rules + &catch_all + &services), &nginx());
    for (host, p, want) in [
        ("a.example.com", "/app", "app"),
        ("a.example.com", "/other", "site-default"),
        ("b.example.com", "/", "catch-all"),
    ] {
        assert_eq!(outcome(&c, host, p), want, "with catch-all: {host}{p}");
    }
}

// ----------------------------------------------------------------------- 7. TLS

#[test]
fn tls_secret_gives_the_host_a_certificate() {
    let (crt, key) = cert(&["a.example.com"]);
    let yaml = tls_ingress("site", "", &["a.example.com"], "a-tls")
        + &tls_secret("a-tls", &crt, &key)
        + &svc("default", "app", "10.0.0.1");
    let c = run(&yaml, &opts());
    assert!(has_cert(&c, "a.example.com"), "{}", dump(&c));
    let b = c.table.tls_for_sni("a.example.com").expect("binding");
    assert_eq!(b.secret().map(|s| s.name.as_str()), Some("a-tls"));
    assert!(
        c.diagnostics
            .iter()
            .all(|d| !d.code.as_str().starts_with("tls-")),
        "{}",
        dump(&c)
    );
    assert!(!has_cert(&c, "b.example.com"));
}

#[test]
fn tls_secret_problems() {
    let (crt, key) = cert(&["other.example.com"]);
    let garbage = "---
apiVersion: v1
kind: Secret
metadata: {name: a-tls, namespace: default}
type: kubernetes.io/tls
data: {tls.crt: Z2FyYmFnZQ==, tls.key: Z2FyYmFnZQ==}
";
    let cases = [
        ("missing", String::new(), Code::TlsSecretNotFound),
        ("garbage", garbage.to_owned(), Code::TlsSecretInvalid),
        (
            "not covering",
            tls_secret("a-tls", &crt, &key),
            Code::TlsHostNotCovered,
        ),
    ];
    for (what, secret, code) in cases {
        let yaml = tls_ingress("site", "", &["a.example.com"], "a-tls")
            + &secret
            + &svc("default", "app", "10.0.0.1");
        let c = run(&yaml, &opts());
        assert_diag(&c, code, &ing_ref("default", "site"), None);
        assert!(!has_cert(&c, "a.example.com"), "{what}: certificate used");
        // The Ingress still routes.
        assert_eq!(outcome(&c, "a.example.com", "/site"), "app", "{what}");
    }
}

#[test]
fn expired_certificate_warns_but_is_used() {
    let mut params =
        rcgen::CertificateParams::new(vec!["a.example.com".to_owned()]).expect("params");
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let key = rcgen::KeyPair::generate().expect("key");
    let crt = params.self_signed(&key).expect("certificate");
    let yaml = tls_ingress("site", "", &["a.example.com"], "a-tls")
        + &tls_secret("a-tls", &crt.pem(), &key.serialize_pem())
        + &svc("default", "app", "10.0.0.1");
    let site = ing_ref("default", "site");

    // 2024-01-01: expired.
    let c = run(&yaml, &opts().now(Timestamp::from_unix(1_704_067_200)));
    let d = find(&c, Code::TlsCertificateExpired, &site);
    assert_eq!(d.len(), 1, "{}", dump(&c));
    assert_eq!(d[0].severity, Severity::Warning);
    assert!(has_cert(&c, "a.example.com"));

    // 2020-06-01: valid.
    let c = run(&yaml, &opts().now(Timestamp::from_unix(1_590_969_600)));
    assert!(
        find(&c, Code::TlsCertificateExpired, &site).is_empty(),
        "{}",
        dump(&c)
    );
    assert!(has_cert(&c, "a.example.com"));

    // No time given: no expiry check.
    let c = run(&yaml, &opts());
    assert!(
        find(&c, Code::TlsCertificateExpired, &site).is_empty(),
        "{}",
        dump(&c)
    );
}

#[test]
fn wildcard_tls_host_covers_one_label() {
    let (crt, key) = cert(&["*.example.com"]);
    let yaml = tls_ingress("site", "", &["*.example.com"], "wild-tls")
        + &tls_secret("wild-tls", &crt, &key)
        + &svc("default", "app", "10.0.0.1");
    let c = run(&yaml, &opts());
    assert!(c.diagnostics.is_empty(), "{}", dump(&c));
    assert!(has_cert(&c, "x.example.com"));
    assert!(has_cert(&c, "X.Example.COM"));
    assert!(c.table.tls_for_sni("example.com").is_none());
    assert!(c.table.tls_for_sni("a.b.example.com").is_none());
}

#[test]
fn tls_host_conflict_older_ingress_wins() {
    let (crt, key) = cert(&["a.example.com"]);
    let (crt2, key2) = cert(&["a.example.com"]);
    // The older one has the later name.
    let yaml = tls_ingress("aa", T2021, &["a.example.com"], "aa-tls")
        + &tls_ingress("zz", T2020, &["a.example.com"], "zz-tls")
        + &tls_secret("aa-tls", &crt, &key)
        + &tls_secret("zz-tls", &crt2, &key2)
        + &svc("default", "app", "10.0.0.1");
    let c = run(&yaml, &opts());
    let b = c.table.tls_for_sni("a.example.com").expect("binding");
    assert_eq!(b.secret().map(|s| s.name.as_str()), Some("zz-tls"));
    assert_eq!(b.ingress(), &ing_ref("default", "zz"));
    assert!(b.certificate().is_some());
    assert_eq!(
        find(&c, Code::TlsHostConflict, &ing_ref("default", "aa")).len(),
        1,
        "{}",
        dump(&c)
    );
    assert!(find(&c, Code::TlsHostConflict, &ing_ref("default", "zz")).is_empty());
}

// --------------------------------------------------------------- 8. determinism

/// Many objects that interact: conflicts with and without timestamps, default
/// backends, TLS, classes, invalid and foreign Ingresses, missing Services.
fn busy_yaml() -> String {
    let (crt, key) = cert(&["a.example.com"]);
    let mut y = class("gw", DEFAULT_CONTROLLER_NAME, true)
        + &class("other", "k8s.io/ingress-nginx", false)
        + &simple(
            "default",
            "a",
            T2020,
            "a.example.com",
            "Prefix",
            "/foo",
            "s1",
        )
        + &simple("default", "b", "", "a.example.com", "Prefix", "/foo", "s2")
        + &simple("default", "c", "", "a.example.com", "Prefix", "/foo", "s3")
        + &simple(
            "default",
            "c2",
            T2020,
            "a.example.com",
            "Prefix",
            "/foo",
            "s3",
        )
        + &simple(
            "other",
            "d",
            "",
            "a.example.com",
            "ImplementationSpecific",
            "/foo",
            "s1",
        )
        + &simple("default", "x", "", "a.example.com", "Exact", "/foo", "s2")
        + &tls_ingress("t1", T2021, &["a.example.com"], "a-tls")
        + &tls_ingress("t2", "", &["a.example.com"], "b-tls")
        + &ingress(
            "default",
            "e",
            "",
            &format!(
                "{{defaultBackend: {}, rules: [{}]}}",
                to("s1", 80),
                rule("e.example.com", &[path("Exact", "/", "s2")])
            ),
        )
        + &ingress(
            "default",
            "e2",
            "",
            &format!("{{ingressClassName: gw, defaultBackend: {}}}", to("s2", 80)),
        )
        + &ingress(
            "default",
            "f",
            "",
            &format!("{{ingressClassName: other, rules: [{}]}}", ok_rule()),
        )
        + &ingress(
            "default",
            "g",
            "",
            &format!(
                "{{ingressClassName: gw, rules: [{}]}}",
                rule("Bad..host", &[path("Prefix", "/", "s1")])
            ),
        )
        + &ingress(
            "default",
            "h",
            ", annotations: {kubernetes.io/ingress.class: other}",
            &format!("{{ingressClassName: gw, rules: [{}]}}", ok_rule()),
        )
        + &svc("default", "s1", "10.0.0.1")
        + &svc("default", "s2", "10.0.0.2")
        + &slice(
            "default",
            "s2-b",
            "s2",
            "[{addresses: ['10.0.0.9']}, {addresses: ['10.0.0.2']}]",
        )
        + &svc("default", "s3", "10.0.0.3")
        + &tls_secret("a-tls", &crt, &key)
        + &tls_secret("b-tls", "garbage", "garbage");
    // A duplicate Service with different content.
    y += "---
apiVersion: v1
kind: Service
metadata: {name: s1, namespace: default}
spec: {ports: [{name: http, port: 80, targetPort: 9999}]}
";
    y
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

#[test]
fn input_order_does_not_matter() {
    let snapshot = load(&busy_yaml());
    for options in [opts(), nginx()] {
        let base = fingerprint(&compile(&snapshot, &options));
        let mut reversed = snapshot.clone();
        reversed.ingresses.reverse();
        reversed.ingress_classes.reverse();
        reversed.services.reverse();
        reversed.endpoint_slices.reverse();
        reversed.secrets.reverse();
        let mut variants = vec![("reversed".to_owned(), reversed)];
        for k in 1..snapshot.ingresses.len() {
            let mut s = snapshot.clone();
            s.ingresses.rotate_left(k);
            variants.push((format!("ingresses rotated by {k}"), s));
        }
        for (what, s) in variants {
            let got = fingerprint(&compile(&s, &options));
            assert_eq!(
                got.0, base.0,
                "{}: diagnostics differ ({what})",
                options.profile
            );
            assert_eq!(got.1, base.1, "{}: routes differ ({what})", options.profile);
            assert_eq!(
                got.2, base.2,
                "{}: backends differ ({what})",
                options.profile
            );
            assert_eq!(
                got.3, base.3,
                "{}: TLS bindings differ ({what})",
                options.profile
            );
        }
    }
}

#[test]
fn duplicate_objects_warn_and_do_not_depend_on_order() {
    let (crt, key) = cert(&["a.example.com"]);
    let site = tls_ingress("site", "", &["a.example.com"], "a-tls");
    let app = svc("default", "app", "10.0.0.1");
    let web = |service: &str| {
        simple(
            "default",
            "web",
            "",
            "a.example.com",
            "Prefix",
            "/web",
            service,
        )
    };
    let service = |port: u16| {
        format!(
            "---
apiVersion: v1
kind: Service
metadata: {{name: app, namespace: default}}
spec: {{ports: [{{name: http, port: {port}, targetPort: 8080}}]}}
"
        )
    };
    let app_slice = |ip: &str| {
        slice(
            "default",
            "app-1",
            "app",
            &format!("[{{addresses: ['{ip}']}}]"),
        )
    };
    // (object, shared objects, copy 1, copy 2)
    let cases: Vec<(ObjectRef, String, String, String)> = vec![
        (
            ing_ref("default", "web"),
            app.clone() + &svc("default", "app2", "10.0.0.2"),
            web("app"),
            web("app2"),
        ),
        (
            ObjectRef::namespaced(ObjectKind::Service, "default", "app"),
            site.clone() + &app_slice("10.0.0.1"),
            service(80),
            service(81),
        ),
        (
            ObjectRef::namespaced(ObjectKind::EndpointSlice, "default", "app-1"),
            site.clone() + &service(80),
            app_slice("10.0.0.1"),
            app_slice("10.0.0.2"),
        ),
        (
            ObjectRef::namespaced(ObjectKind::Secret, "default", "a-tls"),
            site.clone() + &app,
            tls_secret("a-tls", &crt, &key),
            tls_secret("a-tls", "garbage", "garbage"),
        ),
        (
            class_ref("gw"),
            site.clone() + &app,
            class("gw", DEFAULT_CONTROLLER_NAME, false),
            class("gw", "k8s.io/ingress-nginx", false),
        ),
    ];
    let requests = [("a.example.com", "/site"), ("a.example.com", "/web")];
    let mut failures = Vec::new();
    for (object, shared, one, two) in cases {
        // No `ingress_class("gw")`: the IngressClass case must decide ownership.
        let options = CompileOptions::default();
        let with_class = |y: String| {
            if object.kind == ObjectKind::IngressClass {
                y
            } else {
                class("gw", DEFAULT_CONTROLLER_NAME, false) + &y
            }
        };
        let first = run(&with_class(shared.clone() + &one + &two), &options);
        let second = run(&with_class(shared.clone() + &two + &one), &options);
        for (order, c) in [("1,2", &first), ("2,1", &second)] {
            let dups = c
                .diagnostics
                .iter()
                .filter(|d| d.code == Code::DuplicateObject && d.object.as_ref() == Some(&object))
                .collect::<Vec<_>>();
            if dups.len() != 1 || dups[0].severity != Severity::Warning {
                failures.push(format!(
                    "{object} ({order}): want one DuplicateObject warning, got {dups:?}"
                ));
            }
        }
        if fingerprint(&first) != fingerprint(&second) {
            failures.push(format!(
                "{object}: the result depends on which copy comes first"
            ));
        }
        for (host, p) in requests {
            let (a, b) = (endpoints(&first, host, p), endpoints(&second, host, p));
            if a != b {
                failures.push(format!("{object}: {host}{p} gives {a} or {b} by order"));
            }
        }
        if has_cert(&first, "a.example.com") != has_cert(&second, "a.example.com") {
            failures.push(format!("{object}: the certificate depends on order"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ------------------------------------------------------------------- 9. requests

#[test]
fn request_host_and_path_matching() {
    let spec = format!(
        "{{ingressClassName: gw, rules: [{}]}}",
        rule(
            "shop.example.com",
            &[path("Prefix", "/api", "api"), path("Prefix", "/bar", "bar")]
        )
    );
    let yaml = ingress("default", "shop", "", &spec)
        + &svc("default", "api", "10.0.0.1")
        + &svc("default", "bar", "10.0.0.2");
    let c = run(&yaml, &opts());
    for (host, p, want) in [
        ("shop.example.com", "/api", "api"),
        ("Shop.Example.com:8080", "/api", "api"),
        ("SHOP.EXAMPLE.COM", "/api/x", "api"),
        ("shop.example.com:443", "/bar", "bar"),
        ("shop.example.com", "/API", "404 NoRoute"),
        ("shop.example.com", "/Bar", "404 NoRoute"),
        ("shop.example.com", "/foo/../bar", "bar"),
        ("shop.example.com", "/foo/../bar/baz", "bar"),
        ("shop.example.com", "/api/../foo", "404 NoRoute"),
        ("other.example.com", "/api", "404 NoRoute"),
    ] {
        assert_eq!(outcome(&c, host, p), want, "{host}{p}");
    }
    for (target, want) in [
        ("/api/cart?id=1", "/api/cart?id=1"),
        ("/api?b=2&a=1&c=%2F&d", "/api?b=2&a=1&c=%2F&d"),
        ("/api/x?q=/../y", "/api/x?q=/../y"),
    ] {
        match c
            .table
            .route(&RequestView::get(Scheme::Http, "shop.example.com", target))
        {
            Decision::Forward(f) => assert_eq!(f.upstream_path, want, "{target}"),
            other => panic!("{target}: expected forward, got {other:?}"),
        }
    }
}

#[test]
fn kubernetes_path_type_examples() {
    // The examples table of the Kubernetes Ingress documentation ("Examples" under
    // "Path types"), standard profile. The answer is the index of the matching path.
    // (the rule's paths as (pathType, path), request path, index of the match)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, Option<usize>);
    let cases: &[Case<'_>] = &[
        (&[("Prefix", "/")], "/anything/at/all", Some(0)),
        (&[("Exact", "/foo")], "/foo", Some(0)),
        (&[("Exact", "/foo")], "/bar", None),
        (&[("Exact", "/foo")], "/foo/", None),
        (&[("Exact", "/foo/")], "/foo", None),
        (&[("Prefix", "/foo")], "/foo", Some(0)),
        (&[("Prefix", "/foo")], "/foo/", Some(0)),
        (&[("Prefix", "/foo/")], "/foo", Some(0)),
        (&[("Prefix", "/foo/")], "/foo/", Some(0)),
        (&[("Prefix", "/aaa/bb")], "/aaa/bbb", None),
        (&[("Prefix", "/aaa/bbb")], "/aaa/bbb", Some(0)),
        (&[("Prefix", "/aaa/bbb/")], "/aaa/bbb", Some(0)),
        (&[("Prefix", "/aaa/bbb")], "/aaa/bbb/", Some(0)),
        (&[("Prefix", "/aaa/bbb")], "/aaa/bbb/ccc", Some(0)),
        (&[("Prefix", "/aaa/bbb")], "/aaa/bbbxyz", None),
        (&[("Prefix", "/"), ("Prefix", "/aaa")], "/aaa/ccc", Some(1)),
        (
            &[("Prefix", "/"), ("Prefix", "/aaa"), ("Prefix", "/aaa/bbb")],
            "/aaa/bbb",
            Some(2),
        ),
        (
            &[("Prefix", "/"), ("Prefix", "/aaa"), ("Prefix", "/aaa/bbb")],
            "/ccc",
            Some(0),
        ),
        (&[("Prefix", "/aaa")], "/ccc", None),
        (&[("Prefix", "/foo"), ("Exact", "/foo")], "/foo", Some(1)),
    ];
    let mut failures = Vec::new();
    for (paths, request, want) in cases {
        let entries: Vec<String> = paths.iter().map(|(ty, p)| path(ty, p, "app")).collect();
        let spec = format!(
            "{{ingressClassName: gw, rules: [{}]}}",
            rule("a.example.com", &entries)
        );
        let c = run(&ingress("default", "docs", "", &spec), &opts());
        let got = c
            .table
            .route(&RequestView::get(Scheme::Http, "a.example.com", request))
            .route()
            .map(|r| r.field().to_owned());
        let want = want.map(|j| format!("spec.rules[0].http.paths[{j}]"));
        if got != want {
            failures.push(format!(
                "{paths:?} {request}: matched {got:?}, want {want:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
