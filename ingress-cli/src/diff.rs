//! `ingressctl diff`: route-level differences between two manifest sets, or between
//! two profiles on one set, each with the requests that show it.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::bail;
use http::{HeaderMap, Method};
use ingress_core::annotations::{self, KeyClass};
use ingress_core::routing::{Decision, Route, RouteHost, RouteMatch, RouteTable};
use ingress_core::{CompileOptions, Profile, RequestView, Scheme, Snapshot, compile};
use serde_json::{Value, json};

use crate::{InputArgs, Output, input};

/// A route's identity across tables: host and path (or default-backend slot).
fn route_key(r: &Route) -> String {
    match r.matcher() {
        RouteMatch::Path(p) => format!("{} {} ({})", r.host(), p.as_str(), p.path_type()),
        RouteMatch::DefaultBackend(s) => format!(
            "{} defaultBackend ({})",
            r.host(),
            serde_json::to_value(s)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        ),
    }
}

fn backend_name(t: &RouteTable, id: ingress_core::routing::BackendId) -> String {
    let b = t.backend(id);
    let port = b
        .service_port()
        .map_or_else(|| b.port_ref().to_string(), |p| p.to_string());
    format!("{}/{}:{port}", b.namespace(), b.service())
}

/// Our annotations of an Ingress, by key.
fn annotations_of<'s>(
    snap: &'s Snapshot,
    o: &ingress_core::model::ObjectRef,
) -> BTreeMap<&'s str, &'s str> {
    snap.ingresses
        .iter()
        .find(|i| {
            i.metadata.name == o.name
                && Some(i.metadata.namespace_or_default()) == o.namespace.as_deref()
        })
        .map(|i| {
            i.metadata
                .annotations
                .iter()
                .filter(|(k, _)| annotations::classify_key(k, None) != KeyClass::Foreign)
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect()
        })
        .unwrap_or_default()
}

struct Side<'a> {
    table: &'a RouteTable,
    snap: &'a Snapshot,
}

impl Side<'_> {
    fn routes(&self) -> BTreeMap<String, &Route> {
        self.table
            .routes()
            .iter()
            .map(|r| (route_key(r), r))
            .collect()
    }

    fn describe(&self, r: &Route) -> Vec<(String, String)> {
        let mut out = vec![
            (
                "backend".to_owned(),
                backend_name(self.table, r.backend_id()),
            ),
            ("ingress".to_owned(), r.ingress().to_string()),
        ];
        let canaries: Vec<String> = r
            .canaries()
            .iter()
            .map(|c| {
                format!(
                    "{} -> {}",
                    c.ingress(),
                    backend_name(self.table, c.backend_id())
                )
            })
            .collect();
        out.push(("canaries".to_owned(), canaries.join(", ")));
        let one_line = |v: &str| v.trim_end().replace('\n', "\\n");
        for (k, v) in annotations_of(self.snap, r.ingress()) {
            out.push((k.to_owned(), one_line(v)));
        }
        for c in r.canaries() {
            for (k, v) in annotations_of(self.snap, c.ingress()) {
                out.push((format!("canary {} {k}", c.ingress()), one_line(v)));
            }
        }
        out
    }
}

/// Differences between two manifest sets (A and B), route by route.
fn diff_sets(a: &Side<'_>, b: &Side<'_>) -> Vec<Value> {
    let (ra, rb) = (a.routes(), b.routes());
    let keys: BTreeSet<&String> = ra.keys().chain(rb.keys()).collect();
    let mut out = Vec::new();
    for k in keys {
        match (ra.get(k), rb.get(k)) {
            (Some(r), None) => {
                out.push(json!({"change": "removed", "route": k, "before": fields(&a.describe(r))}))
            }
            (None, Some(r)) => {
                out.push(json!({"change": "added", "route": k, "after": fields(&b.describe(r))}))
            }
            (Some(x), Some(y)) => {
                let (dx, dy): (BTreeMap<_, _>, BTreeMap<_, _>) = (
                    a.describe(x).into_iter().collect(),
                    b.describe(y).into_iter().collect(),
                );
                let names: BTreeSet<&String> = dx.keys().chain(dy.keys()).collect();
                let changes: Vec<Value> = names
                    .into_iter()
                    .filter(|n| dx.get(*n) != dy.get(*n))
                    .map(|n| json!({"field": n, "before": dx.get(n), "after": dy.get(n)}))
                    .collect();
                if !changes.is_empty() {
                    out.push(json!({"change": "changed", "route": k, "changes": changes}));
                }
            }
            (None, None) => {}
        }
    }
    out
}

fn fields(f: &[(String, String)]) -> Value {
    json!(
        f.iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect::<serde_json::Map<_, _>>()
    )
}

/// Requests that exercise one route: its path, a sub-path, a string extension, an
/// upper-case variant, over HTTP (and HTTPS when the host has TLS).
fn samples(r: &Route, tls: bool) -> Vec<(Scheme, String, String)> {
    let host = match r.host() {
        RouteHost::Pattern(p) => {
            let s = p.to_string();
            match s.strip_prefix("*.") {
                Some(rest) => format!("w.{rest}"),
                None => s,
            }
        }
        RouteHost::Any => "any.example".to_owned(),
    };
    let mut paths: Vec<String> = Vec::new();
    match r.matcher() {
        RouteMatch::Path(p) => {
            let raw = p.as_str();
            let literal: String = match r.regex() {
                Some(_) => {
                    let cut = raw
                        .find(|c: char| "([.*+?|{^$\\".contains(c))
                        .unwrap_or(raw.len());
                    paths.push(raw[..cut].to_owned());
                    if raw[..cut].chars().any(|c| c.is_ascii_lowercase()) {
                        paths.push(raw[..cut].to_ascii_uppercase());
                    }
                    format!("{}x", &raw[..cut])
                }
                None => raw.to_owned(),
            };
            let base = literal.trim_end_matches('/');
            paths.push(literal.clone());
            paths.push(format!("{base}/x"));
            if !base.is_empty() {
                paths.push(format!("{base}x"));
                if base.chars().any(|c| c.is_ascii_lowercase()) {
                    paths.push(base.to_ascii_uppercase());
                }
            }
            if raw != "/" {
                paths.push("/".to_owned());
            }
        }
        RouteMatch::DefaultBackend(_) => paths.push("/no-such-path-here".to_owned()),
    }
    let mut out = Vec::new();
    for scheme in [Scheme::Http, Scheme::Https] {
        if scheme == Scheme::Https && !tls {
            continue;
        }
        for p in &paths {
            out.push((scheme, host.clone(), p.clone()));
        }
    }
    out
}

fn outcome(d: &Decision<'_>) -> String {
    match d {
        Decision::Forward(f) => {
            let b = f.backend;
            let port = b
                .service_port()
                .map_or_else(|| b.port_ref().to_string(), |p| p.to_string());
            format!(
                "forward {}/{}:{port} {} Host: {}",
                b.namespace(),
                b.service(),
                f.upstream_target(),
                f.upstream_host
            )
        }
        Decision::Redirect(r) => format!("redirect {} {}", r.status.as_u16(), r.location),
        Decision::Respond(r) => format!("respond {} ({})", r.status.as_u16(), r.reason.as_str()),
        _ => d.kind().to_owned(),
    }
}

/// Where the same manifests behave differently under two profiles.
fn diff_profiles(a: (&str, &RouteTable), b: (&str, &RouteTable)) -> Vec<Value> {
    let headers = HeaderMap::new();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let mut routes: BTreeMap<String, &Route> = BTreeMap::new();
    for r in a.1.routes().iter().chain(b.1.routes()) {
        routes.entry(route_key(r)).or_insert(r);
    }
    for r in routes.into_values() {
        let tls = r.host_policy().has_tls;
        let mut diffs = Vec::new();
        for (scheme, host, path) in samples(r, tls) {
            if !seen.insert((scheme == Scheme::Https, host.clone(), path.clone())) {
                continue;
            }
            let req = RequestView {
                scheme,
                host: &host,
                path: &path,
                query: None,
                method: &Method::GET,
                headers: &headers,
                client_ip: None,
            };
            let (oa, ob) = (outcome(&a.1.route(&req)), outcome(&b.1.route(&req)));
            if oa != ob {
                let scheme = if scheme == Scheme::Https {
                    "https"
                } else {
                    "http"
                };
                diffs.push(json!({
                    "request": format!("GET {scheme}://{host}{path}"),
                    a.0: oa,
                    b.0: ob,
                }));
            }
        }
        if !diffs.is_empty() {
            out.push(json!({"route": route_key(r), "ingress": r.ingress().to_string(), "requests": diffs}));
        }
    }
    out
}

/// `ingressctl diff A B` or `ingressctl diff --profiles P,Q PATH...`. Exit 0 when
/// there is no difference, 1 when there is (as diff(1)).
pub(crate) fn diff(args: &InputArgs, profiles: &[String]) -> anyhow::Result<u8> {
    let (mode, differences, names) = if profiles.is_empty() {
        let paths = args.all_paths();
        if paths.len() != 2 {
            bail!("diff takes two manifest sets (A B), or --profiles P,Q with the manifests");
        }
        let ia = input::read(std::slice::from_ref(&paths[0]))?;
        let ib = input::read(std::slice::from_ref(&paths[1]))?;
        let options = args.options();
        let ca = compile(&ia.loaded.snapshot, &options);
        let cb = compile(&ib.loaded.snapshot, &options);
        let d = diff_sets(
            &Side {
                table: &ca.table,
                snap: &ia.loaded.snapshot,
            },
            &Side {
                table: &cb.table,
                snap: &ib.loaded.snapshot,
            },
        );
        let names = [
            paths[0].display().to_string(),
            paths[1].display().to_string(),
        ];
        ("sets", d, names)
    } else {
        if profiles.len() != 2 {
            bail!("--profiles takes two profiles, e.g. --profiles ingress-nginx,standard");
        }
        let pa: Profile = profiles[0].parse()?;
        let pb: Profile = profiles[1].parse()?;
        let inp = input::read(&args.all_paths())?;
        let with = |p: Profile| -> CompileOptions {
            let mut o = args.options();
            o.profile = p;
            o
        };
        let ca = compile(&inp.loaded.snapshot, &with(pa));
        let cb = compile(&inp.loaded.snapshot, &with(pb));
        let d = diff_profiles((pa.as_str(), &ca.table), (pb.as_str(), &cb.table));
        ("profiles", d, [pa.to_string(), pb.to_string()])
    };
    let code = u8::from(!differences.is_empty());
    if args.output == Output::Json {
        crate::commands::print_json(&json!({
            "schema": "ingressctl.diff/v1",
            "mode": mode,
            "a": names[0],
            "b": names[1],
            "differences": differences,
        }))?;
        return Ok(code);
    }
    print_text(mode, &names, &differences);
    Ok(code)
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "(none)".to_owned(),
        other => other.to_string(),
    }
}

fn print_text(mode: &str, names: &[String; 2], differences: &[Value]) {
    if differences.is_empty() {
        println!(
            "no route-level differences between {} and {}",
            names[0], names[1]
        );
        return;
    }
    for d in differences {
        let route = s(&d["route"]);
        if mode == "profiles" {
            println!("~ {route}  [{}]", s(&d["ingress"]));
            for r in d["requests"].as_array().into_iter().flatten() {
                println!("    {}", s(&r["request"]));
                let w = names[0].len().max(names[1].len());
                println!("      {:<w$}  {}", names[0], s(&r[names[0].as_str()]));
                println!("      {:<w$}  {}", names[1], s(&r[names[1].as_str()]));
            }
            continue;
        }
        match d["change"].as_str() {
            Some("added") => println!("+ {route}  ({})", s(&d["after"]["backend"])),
            Some("removed") => println!("- {route}  ({})", s(&d["before"]["backend"])),
            _ => {
                println!("~ {route}");
                for c in d["changes"].as_array().into_iter().flatten() {
                    println!(
                        "    {}: {} -> {}",
                        s(&c["field"]),
                        s(&c["before"]),
                        s(&c["after"])
                    );
                }
            }
        }
    }
    println!(
        "{} difference{} between {} and {}",
        differences.len(),
        if differences.len() == 1 { "" } else { "s" },
        names[0],
        names[1]
    );
}
