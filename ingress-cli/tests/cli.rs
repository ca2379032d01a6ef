//! ingressctl end to end: the real binary on the bundled manifests and on stdin,
//! with golden output (tests/snapshots) and the JSON contract of `explain`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Run ingressctl from the workspace root; returns (exit code, stdout, stderr).
fn run(args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ingressctl"));
    cmd.args(args)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .env_remove("INGRESS_PROFILE")
        .env_remove("INGRESS_CONTROLLER_NAME")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(text) = stdin {
        let written = child.stdin.take().unwrap().write_all(text.as_bytes());
        // A child that exits before reading (an argument error) closes the pipe.
        if let Err(e) = written {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        }
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn json(args: &[&str], stdin: Option<&str>) -> (i32, Value) {
    let (code, out, err) = run(args, stdin);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}\n{err}"));
    (code, v)
}

const SHOP: &str = "examples/manifests/shop";
const BROKEN: &str = "examples/manifests/broken";

#[test]
fn validate_clean_exits_0() {
    let (code, out, _) = run(&["validate", SHOP], None);
    assert_eq!(code, 0, "{out}");
    insta::assert_snapshot!("validate_shop", out);
}

/// Certificate expiry is checked at `--now` (default: the system clock): the
/// shop's certificate expires on 2036-11-23.
#[test]
fn validate_warns_about_expired_and_expiring_certificates() {
    let codes = |now: &str| -> Vec<String> {
        let (_, v) = json(&["validate", "-o", "json", "--now", now, SHOP], None);
        v["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|d| d["code"].as_str())
            .filter(|c| c.starts_with("tls-certificate-"))
            .map(str::to_owned)
            .collect()
    };
    assert!(codes("2030-01-01T00:00:00Z").is_empty());
    let soon = codes("2036-11-01T00:00:00Z");
    assert!(
        !soon.is_empty() && soon.iter().all(|c| c == "tls-certificate-expires-soon"),
        "{soon:?}"
    );
    let expired = codes("2037-01-01T00:00:00Z");
    assert!(
        !expired.is_empty() && expired.iter().all(|c| c == "tls-certificate-expired"),
        "{expired:?}"
    );
    // Today (the system clock): the shop's certificate is years from expiry.
    let (code, out, _) = run(&["validate", SHOP], None);
    assert!(code == 0 && !out.contains("tls-certificate-"), "{out}");
    let (code, _, err) = run(&["validate", "--now", "yesterday", SHOP], None);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("RFC 3339"), "{err}");
}

#[test]
fn validate_broken_exits_1_and_points_at_lines() {
    let (code, out, _) = run(&["validate", SHOP, BROKEN], None);
    assert_eq!(code, 1);
    insta::assert_snapshot!("validate_broken", out);
}

#[test]
fn validate_json_is_stable() {
    let (code, v) = json(&["validate", "-o", "json", SHOP, BROKEN], None);
    assert_eq!(code, 1);
    assert_eq!(v["schema"], "ingressctl.validate/v1");
    assert_eq!(v["summary"]["ingresses"]["dropped"], 2);
    let host = v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "invalid-host")
        .unwrap();
    assert_eq!(host["severity"], "error");
    assert_eq!(host["object"]["kind"], "Ingress");
    assert_eq!(host["object"]["namespace"], "shop");
    assert_eq!(host["object"]["name"], "marketing");
    assert_eq!(host["field"], "spec.rules[0].host");
    assert_eq!(
        host["location"]["file"],
        "examples/manifests/broken/bad-host-and-path.yaml"
    );
    assert_eq!(host["location"]["line"], 11);
    insta::assert_snapshot!(
        "validate_broken_json",
        serde_json::to_string_pretty(&v).unwrap()
    );
}

#[test]
fn strict_fails_on_warnings() {
    let warn_only = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: a}\nspec:\n  ingressClassName: gateway\n  rules:\n  - http:\n      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: nowhere, port: {number: 80}}}}\n";
    let (code, out, _) = run(
        &["validate", "--ingress-class", "gateway", "-"],
        Some(warn_only),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("service-not-found"), "{out}");
    let (code, _, _) = run(
        &["validate", "--strict", "--ingress-class", "gateway", "-"],
        Some(warn_only),
    );
    assert_eq!(code, 1);
}

#[test]
fn unreadable_input_exits_2() {
    let (code, _, err) = run(&["validate", "does/not/exist.yaml"], None);
    assert_eq!(code, 2);
    assert!(err.contains("does/not/exist.yaml"), "{err}");
    let (code, _, _) = run(&["routes"], None);
    assert_eq!(code, 2);
    let (code, _, err) = run(&["explain", SHOP, "--url", "shop.example.com/"], None);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn stdin_list_and_json_input() {
    // `kubectl get ingress -o json` style: a List in JSON, on stdin.
    let list = r#"{"apiVersion": "v1", "kind": "List", "items": [
      {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
       "metadata": {"name": "j", "namespace": "default"},
       "spec": {"ingressClassName": "gateway", "rules": [{"host": "Bad_Host", "http": {"paths": [
         {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "s", "port": {"number": 80}}}}]}}]}}
    ]}"#;
    let (code, v) = json(
        &["validate", "-o", "json", "--ingress-class", "gateway", "-"],
        Some(list),
    );
    assert_eq!(code, 1);
    let d = v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "invalid-host")
        .unwrap();
    assert_eq!(d["location"]["file"], "<stdin>");
    assert_eq!(d["location"]["line"], 4);
    assert_eq!(d["field"], "spec.rules[0].host");
}

#[test]
fn routes_table() {
    let (code, out, _) = run(&["routes", SHOP], None);
    assert_eq!(code, 0);
    insta::assert_snapshot!("routes_shop", out);
    let (_, out, _) = run(&["routes", SHOP, BROKEN], None);
    assert!(out.contains("Dropped or ignored"), "{out}");
    assert!(
        out.contains("Ingress shop/marketing [ingress-dropped]"),
        "{out}"
    );
    assert!(
        out.contains("Ingress shop/legacy [ingress-class-not-found]"),
        "{out}"
    );
}

#[test]
fn routes_json() {
    let (_, v) = json(&["routes", "-o", "json", SHOP], None);
    assert_eq!(v["schema"], "ingressctl.routes/v1");
    assert_eq!(v["profile"], "standard");
    let routes = v["routes"].as_array().unwrap();
    let health = routes.iter().find(|r| r["path"] == "/api/healthz").unwrap();
    assert_eq!(health["path_type"], "Exact");
    assert_eq!(health["backend"]["service"], "api-health");
    assert_eq!(health["backend"]["endpoints"][0], "127.0.0.1:9105");
    assert_eq!(v["tls"].as_array().unwrap().len(), 2);
}

fn explain(url: &str, extra: &[&str]) -> Value {
    let mut args = vec!["explain", "-f", SHOP, "--url", url, "-o", "json"];
    args.extend_from_slice(extra);
    let (code, v) = json(&args, None);
    assert_eq!(code, 0);
    v
}

#[test]
fn explain_contract_forward() {
    let v = explain("https://shop.example.com/api/items?page=2", &[]);
    assert_eq!(v["decision"], "forward");
    assert_eq!(v["status"], Value::Null);
    assert_eq!(v["location"], Value::Null);
    assert_eq!(v["response_headers"], serde_json::json!({}));
    assert_eq!(
        v["backend"],
        serde_json::json!({"namespace": "shop", "service": "api", "port": 80})
    );
    assert_eq!(
        v["upstream"],
        serde_json::json!({"path": "/api/items?page=2", "host": "shop.example.com"})
    );
    assert_eq!(v["route"]["ingress"]["name"], "api");
    assert_eq!(v["route"]["path"], "/api");
    assert_eq!(v["route"]["path_type"], "Prefix");
}

#[test]
fn explain_contract_no_route_and_unavailable() {
    // The storefront's catch-all answers unknown hosts; with it removed via a
    // profile where it does not apply (ingress-nginx: only its own hosts) we get 404.
    let v = explain(
        "http://nowhere.example.net/",
        &["--profile", "ingress-nginx"],
    );
    assert_eq!(v["decision"], "respond");
    assert_eq!(v["status"], 404);
    assert_eq!(v["backend"], Value::Null);
    assert_eq!(v["upstream"], Value::Null);
    assert_eq!(v["route"], Value::Null);

    let (code, out, _) = run(
        &[
            "explain",
            "-f",
            SHOP,
            "-f",
            BROKEN,
            "--url",
            "http://shop.example.com/checkout/cart",
            "-o",
            "json",
        ],
        None,
    );
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["decision"], "respond");
    assert_eq!(v["status"], 503);
    assert_eq!(v["reason"], "service-not-found");
    assert_eq!(v["backend"]["service"], "checkout");
    assert_eq!(v["backend"]["port"], "https");
}

#[test]
fn explain_host_header_and_text() {
    let v = explain(
        "http://127.0.0.1:8080/static/app.js",
        &["-H", "Host: SHOP.example.com:8080"],
    );
    assert_eq!(v["backend"]["service"], "static");
    assert_eq!(v["upstream"]["host"], "SHOP.example.com:8080");
    let (code, out, _) = run(
        &["explain", SHOP, "--url", "http://t1.shop.example.com/x"],
        None,
    );
    assert_eq!(code, 0);
    insta::assert_snapshot!("explain_wildcard_text", out);
}

/// The `policy` names of an `explain -o json` answer, in order.
fn policy_names(v: &Value) -> Vec<&str> {
    v["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["policy"].as_str().unwrap())
        .collect()
}

/// An Ingress whose annotations set every forwarding policy `explain` lists.
const RESILIENT: &str = r#"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: api
  namespace: shop
  annotations:
    nginx.ingress.kubernetes.io/proxy-connect-timeout: "3"
    nginx.ingress.kubernetes.io/proxy-read-timeout: "120"
    nginx.ingress.kubernetes.io/proxy-next-upstream: "error timeout http_502"
    nginx.ingress.kubernetes.io/proxy-next-upstream-tries: "2"
    nginx.ingress.kubernetes.io/proxy-next-upstream-timeout: "10"
    nginx.ingress.kubernetes.io/load-balance: "ewma"
    nginx.ingress.kubernetes.io/limit-rps: "10"
    nginx.ingress.kubernetes.io/limit-connections: "5"
    ingress-rs.io/outlier-consecutive-5xx: "3"
    ingress-rs.io/circuit-max-requests: "200"
spec:
  ingressClassName: nginx
  rules:
  - host: api.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {service: {name: api, port: {number: 80}}}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec: {ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: api-1, namespace: shop, labels: {kubernetes.io/service-name: api}}
addressType: IPv4
ports: [{port: 8080}]
endpoints: [{addresses: ["10.0.0.1"], conditions: {ready: true}}]
"#;

#[test]
fn explain_lists_the_forwarding_policies_the_annotations_set() {
    let args = [
        "explain",
        "--ingress-class",
        "nginx",
        "--url",
        "http://api.example.com/x",
        "-",
    ];
    let (code, out, err) = run(&args, Some(RESILIENT));
    assert_eq!(code, 0, "{err}");
    for line in [
        "  policy timeouts: connect 3s, read 120s\n",
        "  policy retries: another endpoint on error timeout http_502; 2 tries in all; within 10s\n",
        "  policy load-balance: ewma\n",
        "  policy rate-limit: 10 requests/s (burst 50) per client, 5 concurrent requests per client\n",
        "  policy outlier: eject after 3 5xx in a row\n",
        "  policy circuit: at most 200 requests in flight\n",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    // The same in JSON, and none of them for a route that sets none (the shop's).
    let mut json_args = args.to_vec();
    json_args.extend(["-o", "json"]);
    let (_, v) = json(&json_args, Some(RESILIENT));
    assert_eq!(
        policy_names(&v),
        [
            "timeouts",
            "retries",
            "load-balance",
            "rate-limit",
            "outlier",
            "circuit"
        ]
    );
    let v = explain("https://shop.example.com/api/items", &[]);
    let names = policy_names(&v);
    for p in [
        "timeouts",
        "retries",
        "load-balance",
        "rate-limit",
        "outlier",
        "circuit",
    ] {
        assert!(!names.contains(&p), "{p} listed for the shop: {names:?}");
    }
}

#[test]
fn codes_lists_every_code() {
    let (code, v) = json(&["codes", "-o", "json"], None);
    assert_eq!(code, 0);
    let codes = v.as_array().unwrap();
    assert!(
        codes
            .iter()
            .any(|c| c["code"] == "invalid-host" && c["severity"] == "error")
    );
}

#[test]
fn crd_prints_the_gateway_config_crd() {
    let (code, out, _) = run(&["crd"], None);
    assert_eq!(code, 0);
    let docs = ingress_core::manifest::parse_documents(&out).expect("the output is YAML");
    assert_eq!(docs.len(), 1);
    let crd = &docs[0].value;
    assert_eq!(crd["kind"], "CustomResourceDefinition");
    assert_eq!(crd["spec"]["names"]["kind"], "IngressGatewayConfig");
    assert_eq!(crd["spec"]["group"], "gateway.ingress-rs.io");
    // The checked-in copy, byte for byte (ingress-kube's test keeps it generated).
    let file = std::fs::read_to_string(root().join("deploy/crd.yaml")).expect("deploy/crd.yaml");
    assert_eq!(out, file);
}

#[test]
fn compat_reports_the_project_resilience_keys_as_supported() {
    let manifest = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: cart
  namespace: shop
  annotations:
    ingress-rs.io/outlier-consecutive-5xx: "2"
    ingress-rs.io/outlier-consecutive-gateway-failures: "3"
    ingress-rs.io/outlier-base-ejection-time: "10s"
    ingress-rs.io/outlier-max-ejection-time: "2m"
    ingress-rs.io/outlier-max-ejection-percent: "30"
    ingress-rs.io/circuit-max-requests: "100"
    ingress-rs.io/circuit-max-retries: "2"
    nginx.ingress.kubernetes.io/circuit-max-requests: "100"
spec:
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /cart, pathType: Prefix, backend: {service: {name: cart, port: {number: 80}}}}
"#;
    let (code, v) = json(&["compat", "-", "-o", "json"], Some(manifest));
    assert_eq!(code, 0, "{v}");
    let list = v["annotations"].as_array().unwrap();
    let ours: Vec<&Value> = list
        .iter()
        .filter(|a| a["key"].as_str().unwrap().starts_with("ingress-rs.io/"))
        .collect();
    assert_eq!(ours.len(), 7, "{v}");
    for a in ours {
        assert_eq!(a["status"], "supported", "{a}");
        assert_eq!(a["family"], "resilience", "{a}");
    }
    // Under another project's prefix the key is not read, and compat says so.
    let wrong = list
        .iter()
        .find(|a| a["key"] == "nginx.ingress.kubernetes.io/circuit-max-requests")
        .unwrap();
    assert_eq!(wrong["status"], "unknown", "{wrong}");
    assert_eq!(v["summary"]["supported"], 7);

    let (_, v) = json(&["compat", "--list", "-o", "json"], None);
    let key = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "circuit-max-requests")
        .unwrap();
    assert_eq!(key["prefixes"], "project");
    assert_eq!(key["status"], "supported");
    assert_eq!(key["scope"], "route");
}

/// Checklist T27: the IngressNightmare and snippet payloads are refused by
/// `validate` (exit 1), each naming its key; nothing is executed or written.
#[test]
fn validate_refuses_ingress_nightmare_payloads() {
    let payloads = [
        ("auth-url", "http://example.com/#;\\ninjection_point"),
        ("mirror-target", "http://example.com/#;\\ninjection_point"),
        ("mirror-host", "http://example.com/#;\\ninjection_point"),
        ("permanent-redirect", "https://x\\r\\nSet-Cookie: a=b"),
        ("configuration-snippet", "more_set_headers \\\"X: y\\\";"),
        ("server-snippet", "location /x { return 200; }"),
        ("auth-snippet", "proxy_set_header X y;"),
    ];
    for (key, value) in payloads {
        let yaml = format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: a\n  annotations:\n    nginx.ingress.kubernetes.io/{key}: \"{value}\"\nspec:\n  ingressClassName: gateway\n  rules:\n  - http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: {{service: {{name: nowhere, port: {{number: 80}}}}}}}}\n"
        );
        let (code, out, err) = run(
            &["validate", "--ingress-class", "gateway", "-"],
            Some(&yaml),
        );
        assert_eq!(code, 1, "{key}: {out}{err}");
        assert!(
            out.contains(&format!("nginx.ingress.kubernetes.io/{key}")),
            "{key}: {out}"
        );
        // Values are shown escaped, never as raw lines.
        assert!(!out.contains("#;\ninjection"), "{key}: {out}");
    }
}

/// ingress-nginx's `annotations-risk-level`: a key above the allowed level is an error
/// naming the key and its level; at the default (high) the same Ingress is clean.
#[test]
fn annotations_risk_level_refuses_keys_above_it() {
    let yaml = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: a\n  annotations:\n    nginx.ingress.kubernetes.io/upstream-hash-by: \"$request_uri\"\nspec:\n  ingressClassName: gateway\n  rules:\n  - http:\n      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: nowhere, port: {number: 80}}}}\n";
    let (code, out, err) = run(&["validate", "--ingress-class", "gateway", "-"], Some(yaml));
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("risk level"), "{out}");
    let (code, out, err) = run(
        &[
            "validate",
            "--ingress-class",
            "gateway",
            "--annotations-risk-level",
            "medium",
            "-",
        ],
        Some(yaml),
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("nginx.ingress.kubernetes.io/upstream-hash-by")
            && out
                .contains("risk level (high) is above the allowed annotations risk level (medium)"),
        "{out}"
    );
    let (code, _, err) = run(
        &["validate", "--annotations-risk-level", "severe", "-"],
        Some(yaml),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown risk level"), "{err}");
}
