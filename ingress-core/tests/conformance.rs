//! Conformance scenarios as data: every `tests/conformance/NAME.yaml` holds objects,
//! and `NAME.cases` the requests and what must happen to them, under each profile.
//! See tests/conformance/README.md for the format and the sources.
#![allow(clippy::disallowed_methods, clippy::disallowed_types, missing_docs)]

use std::path::Path;

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use ingress_core::manifest::load_str;
use ingress_core::{CompileOptions, Decision, Profile, RequestView, Scheme, Severity, compile};

#[path = "docs.rs"]
mod docs;
#[path = "properties.rs"]
mod properties;

struct Case {
    line: usize,
    profile: Option<Profile>,
    method: Method,
    scheme: Scheme,
    host: String,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    client_ip: Option<std::net::IpAddr>,
    roll: Option<u32>,
    expect: String,
}

fn parse_case(line_no: usize, line: &str) -> Result<Case, String> {
    let (lhs, expect) = line.split_once("->").ok_or("missing '->'")?;
    let mut lhs = lhs.trim();
    let mut profile = None;
    if let Some(rest) = lhs.strip_prefix('[') {
        let (p, rest) = rest.split_once(']').ok_or("unclosed [profile]")?;
        profile = Some(p.parse::<Profile>().map_err(|e| e.to_string())?);
        lhs = rest.trim();
    }
    let (method, rest) = lhs.split_once(' ').ok_or("missing URL")?;
    let rest = rest.trim();
    let (url, mut hdrs) = match rest.find(" -") {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let mut client_ip = None;
    let mut roll = None;
    for (flag, slot) in [("--client-ip ", 0), ("--roll ", 1)] {
        if let Some(i) = hdrs.find(flag) {
            let v = hdrs[i + flag.len()..]
                .split_whitespace()
                .next()
                .unwrap_or("");
            if slot == 0 {
                client_ip = Some(v.parse().map_err(|_| "bad --client-ip")?);
            } else {
                roll = Some(v.parse().map_err(|_| "bad --roll")?);
            }
        }
    }
    let mut headers = HeaderMap::new();
    while let Some(start) = hdrs.find("-H '") {
        let after = &hdrs[start + 4..];
        let end = after.find('\'').ok_or("unclosed header quote")?;
        let (name, value) = after[..end].split_once(':').ok_or("header without ':'")?;
        headers.append(
            HeaderName::from_bytes(name.trim().as_bytes()).map_err(|e| e.to_string())?,
            HeaderValue::from_str(value.trim()).map_err(|e| e.to_string())?,
        );
        hdrs = &after[end + 1..];
    }
    let (scheme, rest) = url.split_once("://").ok_or("URL without scheme")?;
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        s => return Err(format!("scheme {s}")),
    };
    let (authority, target) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target.to_owned(), None),
    };
    Ok(Case {
        line: line_no,
        profile,
        method: method.parse().map_err(|_| "bad method")?,
        scheme,
        host: authority.to_owned(),
        path,
        query,
        headers,
        client_ip,
        roll,
        expect: expect.trim().to_owned(),
    })
}

/// Check one `key=value` assertion of an EXPECT against a decision.
fn assertion(d: &Decision<'_>, key: &str, want: &str) -> Result<(), String> {
    let got: String = match (key, d) {
        ("target", Decision::Forward(f)) => f.upstream_target().into_owned(),
        ("host", Decision::Forward(f)) => f.upstream_host.to_owned(),
        ("canary", Decision::Forward(f)) => f.canary.map_or("none".into(), |(_, r)| {
            serde_json::to_value(r)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        }),
        ("prefix", Decision::Forward(f)) => f.forwarded_prefix.unwrap_or("none").to_owned(),
        ("reason", Decision::Respond(r)) => r.reason.as_str().to_owned(),
        ("reason", Decision::Redirect(r)) => r.reason.as_str().to_owned(),
        ("header", d) => {
            let (name, value) = want.split_once(':').ok_or("header=NAME:VALUE")?;
            let found: Vec<&str> = d
                .response_headers()
                .iter()
                .filter(|(n, _)| n.as_str() == name)
                .filter_map(|(_, v)| v.to_str().ok())
                .collect();
            if found.contains(&value) {
                return Ok(());
            }
            return Err(format!("response header {name}: got {found:?}"));
        }
        ("noheader", d) => {
            if d.response_headers().iter().any(|(n, _)| n.as_str() == want) {
                return Err(format!("response header {want} is set"));
            }
            return Ok(());
        }
        (k, _) => return Err(format!("assertion {k} does not apply to this decision")),
    };
    if got == want {
        Ok(())
    } else {
        Err(format!("{key}: got {got}"))
    }
}

/// Split an EXPECT into the outcome (`forward X`, `respond N`, `redirect N URL`) and
/// the `key=value` assertions after it.
fn split_expect(expect: &str) -> (String, Vec<(&str, &str)>) {
    let toks: Vec<&str> = expect.split_whitespace().collect();
    let n = if toks.first() == Some(&"redirect") {
        3
    } else {
        2
    }
    .min(toks.len());
    let checks = toks[n..]
        .iter()
        .map(|t| t.split_once('=').unwrap_or((t, "")))
        .collect();
    (toks[..n].join(" "), checks)
}

fn outcome(d: &Decision<'_>) -> String {
    match d {
        Decision::Forward(f) => format!(
            "forward {}/{}:{}",
            f.backend.namespace(),
            f.backend.service(),
            f.backend
                .service_port()
                .map_or_else(|| f.backend.port_ref().to_string(), |p| p.to_string())
        ),
        Decision::Redirect(r) => format!("redirect {} {}", r.status.as_u16(), r.location),
        Decision::Respond(r) => format!("respond {}", r.status.as_u16()),
        _ => "unknown".into(),
    }
}

fn run_fixture(dir: &Path, name: &str) -> Vec<String> {
    let yaml = std::fs::read_to_string(dir.join(format!("{name}.yaml"))).expect("fixture yaml");
    let cases = std::fs::read_to_string(dir.join(format!("{name}.cases"))).expect("fixture cases");
    let loaded = load_str(&format!("{name}.yaml"), &yaml);
    let mut failures = Vec::new();
    for d in &loaded.diagnostics {
        if d.diagnostic.severity == Severity::Error {
            failures.push(format!("{name}.yaml: load error {d:?}"));
        }
    }
    for profile in [Profile::Standard, Profile::IngressNginx] {
        let compiled = compile(&loaded.snapshot, &CompileOptions::with_profile(profile));
        for (i, line) in cases.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let case = match parse_case(i + 1, line) {
                Ok(c) => c,
                Err(e) => {
                    failures.push(format!("{name}.cases:{}: cannot parse: {e}", i + 1));
                    continue;
                }
            };
            if case.profile.is_some_and(|p| p != profile) {
                continue;
            }
            let req = RequestView {
                scheme: case.scheme,
                host: &case.host,
                path: &case.path,
                query: case.query.as_deref(),
                method: &case.method,
                headers: &case.headers,
                client_ip: case.client_ip,
            };
            let inputs = ingress_core::routing::RouteInputs { roll: case.roll };
            let decision = compiled.table.route_with(&req, &inputs);
            let (want, checks) = split_expect(&case.expect);
            let mut got = outcome(&decision);
            let mut ok = got == want;
            for (k, v) in &checks {
                if let Err(e) = assertion(&decision, k, v) {
                    ok = false;
                    got.push_str(&format!(" [{e}]"));
                }
            }
            if !ok {
                let explained = compiled.table.explain_with(&req, &inputs);
                failures.push(format!(
                    "{name}.cases:{} [{profile}] {line}\n    got: {got}\n    steps: {:?}",
                    case.line,
                    explained
                        .steps
                        .iter()
                        .map(|s| format!("{} {:?}", s.route.field(), s.verdict))
                        .collect::<Vec<_>>()
                ));
            }
        }
    }
    failures
}

#[test]
fn conformance_fixtures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .filter_map(|e| {
            let p = e.ok()?.path();
            if p.extension()? != "cases" {
                return None;
            }
            Some(p.file_stem()?.to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    assert!(names.len() >= 9, "fixtures missing: {names:?}");
    let failures: Vec<String> = names.iter().flat_map(|n| run_fixture(&dir, n)).collect();
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
