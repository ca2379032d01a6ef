//! The subcommands.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use anyhow::{Context, bail};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use ingress_core::manifest::Located;
use ingress_core::routing::{Decision, RouteMatch, RouteTable, Verdict};
use ingress_core::{Code, Compiled, RequestView, Scheme, Severity, compile};
use serde_json::json;

use crate::input::{self, Input};
use crate::{InputArgs, Output, json, render};

struct Run {
    input: Input,
    compiled: Compiled,
    diagnostics: Vec<Located>,
}

fn run(args: &InputArgs) -> anyhow::Result<Run> {
    let timings = std::env::var_os("INGRESSCTL_TIMINGS").is_some();
    let t0 = std::time::Instant::now();
    let input = input::read(&args.all_paths())?;
    let t1 = std::time::Instant::now();
    let compiled = compile(&input.loaded.snapshot, &args.options());
    let t2 = std::time::Instant::now();
    let mut diagnostics = input.loaded.diagnostics.clone();
    diagnostics.extend(
        input
            .loaded
            .sources
            .locate_all(compiled.diagnostics.iter().cloned()),
    );
    diagnostics.sort();
    if timings {
        eprintln!(
            "timings: read+parse {:?}, compile {:?}, locate {:?}",
            t1 - t0,
            t2 - t1,
            t2.elapsed()
        );
    }
    Ok(Run {
        input,
        compiled,
        diagnostics,
    })
}

fn exit_code(diags: &[Located], strict: bool) -> u8 {
    match diags.iter().map(|d| d.diagnostic.severity).max() {
        Some(Severity::Error) => 1,
        Some(Severity::Warning) if strict => 1,
        _ => 0,
    }
}

/// The exit code; the run's data is leaked rather than dropped, since the process
/// ends next and freeing a 10,000-Ingress snapshot piece by piece costs more than
/// everything after parsing.
fn finish(r: Run, strict: bool) -> u8 {
    let code = exit_code(&r.diagnostics, strict);
    std::mem::forget(r);
    code
}

pub(crate) fn print_json(v: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Ingress counts for the summary line.
fn ingress_summary(r: &Run) -> (usize, usize, usize, usize) {
    let total = r.input.loaded.snapshot.ingresses.len();
    let of = |codes: &[Code]| -> usize {
        r.diagnostics
            .iter()
            .filter(|d| codes.contains(&d.diagnostic.code))
            .filter_map(|d| d.diagnostic.object.clone())
            .collect::<BTreeSet<_>>()
            .len()
    };
    let ignored = of(&[Code::IngressIgnored, Code::IngressClassNotFound]);
    let dropped = of(&[Code::IngressDropped]);
    (
        total,
        total.saturating_sub(ignored + dropped),
        dropped,
        ignored,
    )
}

fn print_diagnostics(r: &Run, verbose: bool) -> usize {
    let renderer = render::renderer();
    let mut hidden = 0;
    for d in &r.diagnostics {
        if d.diagnostic.severity == Severity::Info && !verbose {
            hidden += 1;
            continue;
        }
        println!("{}\n", render::diagnostic(d, &r.input.texts, &renderer));
    }
    hidden
}

pub(crate) fn validate(args: &InputArgs, strict: bool) -> anyhow::Result<u8> {
    let r = run(args)?;
    let counts = json::Counts::of(&r.diagnostics);
    let (total, served, dropped, ignored) = ingress_summary(&r);
    if args.output == Output::Json {
        print_json(&json!({
            "schema": "ingressctl.validate/v1",
            "summary": {
                "files": r.input.files,
                "objects": r.input.loaded.snapshot.len(),
                "ingresses": {"total": total, "served": served, "dropped": dropped, "ignored": ignored},
                "errors": counts.errors,
                "warnings": counts.warnings,
                "infos": counts.infos,
            },
            "diagnostics": r.diagnostics.iter().map(json::diagnostic).collect::<Vec<_>>(),
        }))?;
    } else {
        let hidden = print_diagnostics(&r, args.verbose);
        let mut line = format!(
            "checked {} file{}, {} object{}: {} Ingress{} ({} served, {} left out, {} ignored); {} error{}, {} warning{}",
            r.input.files,
            plural(r.input.files),
            r.input.loaded.snapshot.len(),
            plural(r.input.loaded.snapshot.len()),
            total,
            if total == 1 { "" } else { "es" },
            served,
            dropped,
            ignored,
            counts.errors,
            plural(counts.errors),
            counts.warnings,
            plural(counts.warnings),
        );
        if hidden > 0 {
            let _ = write!(
                line,
                " ({hidden} note{} hidden; -v shows them)",
                plural(hidden)
            );
        }
        println!("{line}");
    }
    Ok(finish(r, strict))
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

pub(crate) fn routes(args: &InputArgs) -> anyhow::Result<u8> {
    let r = run(args)?;
    let t = &r.compiled.table;
    if args.output == Output::Json {
        print_json(&ingress_core::report::routes(t, &r.diagnostics))?;
        return Ok(finish(r, false));
    }
    let dropped = r
        .diagnostics
        .iter()
        .filter(|d| ingress_core::report::DROPPED.contains(&d.diagnostic.code));
    print_routes_table(t);
    if !t.tls_bindings().is_empty() {
        println!("\nTLS");
        for b in t.tls_bindings() {
            let cert = match (b.secret(), b.certificate()) {
                (None, _) => "default certificate (no secretName)".to_owned(),
                (Some(s), Some(c)) => format!(
                    "Secret {}/{} (covers {}; expires {})",
                    s.namespace.as_deref().unwrap_or(""),
                    s.name,
                    c.dns_names.join(", "),
                    ingress_core::model::Timestamp::from_unix(c.not_after)
                ),
                (Some(s), None) => format!(
                    "default certificate: Secret {}/{} is unusable (see validate)",
                    s.namespace.as_deref().unwrap_or(""),
                    s.name
                ),
            };
            println!("  {}  {}  [{}]", b.host(), cert, b.ingress());
        }
    }
    let mut dropped = dropped.peekable();
    if dropped.peek().is_some() {
        println!("\nDropped or ignored");
        for d in dropped {
            let obj = d
                .diagnostic
                .object
                .as_ref()
                .map(|o| o.to_string())
                .unwrap_or_default();
            println!(
                "  {}{} [{}]: {}",
                render::short_location(d),
                obj,
                d.diagnostic.code,
                d.diagnostic.message
            );
        }
    }
    Ok(finish(r, false))
}

fn print_routes_table(t: &RouteTable) {
    let mut rows = vec![[
        "HOST".to_owned(),
        "PATH".to_owned(),
        "TYPE".to_owned(),
        "BACKEND".to_owned(),
        "ENDPOINTS".to_owned(),
        "INGRESS".to_owned(),
    ]];
    for r in t.routes() {
        let b = t.backend(r.backend_id());
        let (path, ty) = match r.matcher() {
            RouteMatch::Path(p) => (p.as_str().to_owned(), p.path_type().to_string()),
            RouteMatch::DefaultBackend(s) => (
                "(default)".to_owned(),
                match s {
                    ingress_core::routing::DefaultScope::CatchAll => "catch-all".to_owned(),
                    ingress_core::routing::DefaultScope::Host => "host-default".to_owned(),
                },
            ),
        };
        let port = json::port(b);
        let port = port
            .as_str()
            .map_or_else(|| port.to_string(), str::to_owned);
        let endpoints = if b.endpoints().is_empty() {
            format!(
                "none: 503 ({})",
                serde_json::to_value(b.status())
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            )
        } else {
            b.endpoints()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        rows.push([
            r.host().to_string(),
            path,
            ty,
            format!("{}/{}:{}", b.namespace(), b.service(), port),
            endpoints,
            format!(
                "{}/{}",
                r.ingress().namespace.as_deref().unwrap_or(""),
                r.ingress().name
            ),
        ]);
    }
    if rows.len() == 1 {
        println!("no routes (every request answers 404)");
        return;
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    for row in &rows {
        let mut line = String::new();
        for (i, (w, c)) in widths.iter().zip(row).enumerate() {
            if i + 1 == row.len() {
                line.push_str(c);
            } else {
                let _ = write!(line, "{c:<w$}  ");
            }
        }
        println!("{}", line.trim_end());
    }
}

pub(crate) fn explain(
    args: &InputArgs,
    url: &str,
    method: &str,
    headers: &[String],
    client_ip: Option<std::net::IpAddr>,
    canary_roll: Option<u32>,
) -> anyhow::Result<u8> {
    let uri: Uri = url
        .parse()
        .with_context(|| format!("--url {url:?} is not a URL"))?;
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::Http,
        Some("https") => Scheme::Https,
        Some(s) => bail!("--url scheme {s:?}: use http:// or https://"),
        None => bail!("--url {url:?} needs a scheme: http:// or https://"),
    };
    let method: Method = method
        .parse()
        .with_context(|| format!("-X {method:?} is not an HTTP method"))?;
    let mut header_map = HeaderMap::new();
    for h in headers {
        let (name, value) = h
            .split_once(':')
            .with_context(|| format!("-H {h:?}: expected 'Name: value'"))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .with_context(|| format!("-H {h:?}: invalid header name"))?;
        let value = HeaderValue::from_str(value.trim())
            .with_context(|| format!("-H {h:?}: invalid header value"))?;
        header_map.append(name, value);
    }
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_default();
    let host = header_map
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or(authority);
    let path = uri.path().to_owned();
    let query = uri.query().map(str::to_owned);

    let r = run(args)?;
    let t = &r.compiled.table;
    let req = RequestView {
        scheme,
        host: &host,
        path: &path,
        query: query.as_deref(),
        method: &method,
        headers: &header_map,
        client_ip,
    };
    let e = t.explain_with(
        &req,
        &ingress_core::routing::RouteInputs { roll: canary_roll },
    );
    let applied = policies(&e.decision, &path, client_ip);
    if args.output == Output::Json {
        let request = json!({
            "method": method.as_str(),
            "scheme": scheme,
            "host": host,
            "path": path,
            "query": query,
            "client_ip": client_ip.map(|ip| ip.to_string()),
        });
        let mut v = json::explain(t, &e, request);
        if let Some(obj) = v.as_object_mut() {
            obj.insert(
                "policies".into(),
                json!(
                    applied
                        .iter()
                        .map(|(k, d)| json!({"policy": k, "detail": d}))
                        .collect::<Vec<_>>()
                ),
            );
        }
        print_json(&v)?;
        return Ok(0);
    }
    println!("{} {}", method, url);
    println!(
        "  compared as host {:?}, path {:?} ({} profile)",
        e.host,
        e.path,
        t.profile()
    );
    match &e.decision {
        Decision::Forward(f) => {
            println!(
                "decision: forward to Service {}/{} port {}",
                f.backend.namespace(),
                f.backend.service(),
                json::port(f.backend)
            );
            println!(
                "  endpoints: {}",
                f.backend
                    .endpoints()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            println!(
                "  upstream request: {} {}  Host: {}",
                method,
                f.upstream_target(),
                f.upstream_host
            );
        }
        Decision::Redirect(rd) => println!(
            "decision: redirect {} to {}",
            rd.status.as_u16(),
            rd.location
        ),
        Decision::Respond(rs) => {
            let why = match rs.backend {
                Some(b) => format!(
                    "{} (Service {}/{})",
                    rs.reason.as_str(),
                    b.namespace(),
                    b.service()
                ),
                None => rs.reason.as_str().to_owned(),
            };
            println!("decision: respond {} — {}", rs.status.as_u16(), why);
        }
        _ => println!("decision: {}", e.decision.kind()),
    }
    for (k, d) in &applied {
        println!("  policy {k}: {d}");
    }
    match e.decision.route() {
        Some(rt) => println!(
            "  matched {} {} ({}), {}",
            rt.ingress(),
            rt.field(),
            e.level.describe(),
            describe_route(rt)
        ),
        None => println!("  no route matched (no host, path or default backend applies)"),
    }
    if !e.steps.is_empty() {
        println!("considered:");
        for s in &e.steps {
            let (mark, why) = match &s.verdict {
                Verdict::Chosen => ("✓", "chosen".to_owned()),
                Verdict::Outranked { by, why } => {
                    ("✗", format!("lost to route {}: {why}", by.index()))
                }
                Verdict::NoMatch { why } => ("✗", format!("no match: {why}")),
                Verdict::NotConsulted { why } => ("·", format!("not consulted: {why}")),
            };
            println!(
                "  {mark} [{}] {} {} — {}",
                s.route.id().index(),
                describe_route(s.route),
                s.route.ingress(),
                why
            );
        }
    }
    Ok(0)
}

/// The forwarding policies a route's annotations set (timeouts, retries, load
/// balancing, rate limits, outlier detection, circuit breaking), as (policy, detail)
/// lines; what is not set is left to the gateway's defaults and not listed.
fn resilience(p: &ingress_core::annotations::IngressPolicy, out: &mut Vec<(&'static str, String)>) {
    let t = &p.timeouts;
    let timeouts: Vec<String> = [
        ("connect", t.connect),
        ("send", t.send),
        ("read", t.read),
        ("total", t.total),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|d| format!("{k} {}", duration(d))))
    .collect();
    if !timeouts.is_empty() {
        out.push(("timeouts", timeouts.join(", ")));
    }
    let r = &p.retries;
    if r.on != Default::default() || r.tries.is_some() || r.timeout.is_some() {
        let detail = if r.on.off {
            "off: no other endpoint is tried".to_owned()
        } else {
            let mut on: Vec<String> = [
                ("error", r.on.error),
                ("timeout", r.on.timeout),
                ("invalid_header", r.on.invalid_header),
            ]
            .into_iter()
            .filter(|(_, set)| *set)
            .map(|(k, _)| k.to_owned())
            .collect();
            on.extend(r.on.statuses.iter().map(|s| format!("http_{}", s.as_u16())));
            if r.on.non_idempotent {
                on.push("non_idempotent".to_owned());
            }
            let mut d = format!("another endpoint on {}", on.join(" "));
            match r.tries {
                Some(0) => d.push_str("; tries: as many as endpoints"),
                Some(n) => {
                    let _ = write!(d, "; {n} tries in all");
                }
                None => {}
            }
            match r.timeout {
                Some(t) if !t.is_zero() => {
                    let _ = write!(d, "; within {}", duration(t));
                }
                _ => {}
            }
            d
        };
        out.push(("retries", detail));
    }
    let lb = &p.load_balance;
    if let Some(h) = &lb.hash {
        let subset = h
            .subset
            .map(|n| format!(" (a subset of {n} endpoints)"))
            .unwrap_or_default();
        out.push((
            "load-balance",
            format!("consistent hash of {}{subset}", h.template),
        ));
    } else if let Some(a) = lb.algorithm {
        out.push(("load-balance", a.as_str().to_owned()));
    }
    let rl = &p.rate_limit;
    let mut limits: Vec<String> = rl
        .per_client
        .iter()
        .map(|l| format!("{} per client", rate(l)))
        .collect();
    if let Some(n) = rl.connections {
        limits.push(format!("{n} concurrent requests per client"));
    }
    if let Some(l) = &rl.route {
        limits.push(format!("{} for the route (per replica)", rate(l)));
    }
    if !limits.is_empty() {
        out.push(("rate-limit", limits.join(", ")));
    }
    let o = &p.resilience.outlier;
    let outlier: Vec<String> = [
        o.consecutive_5xx
            .map(|n| format!("eject after {n} 5xx in a row")),
        o.consecutive_gateway_failure
            .map(|n| format!("after {n} gateway failures in a row")),
        o.base_ejection
            .map(|d| format!("for {} at first", duration(d))),
        o.max_ejection.map(|d| format!("at most {}", duration(d))),
        o.max_ejection_percent
            .map(|n| format!("at most {n} % of the endpoints")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !outlier.is_empty() {
        out.push(("outlier", outlier.join(", ")));
    }
    let c = &p.resilience.circuit;
    let circuit: Vec<String> = [
        c.max_requests.map(|n| format!("{n} requests in flight")),
        c.max_retries.map(|n| format!("{n} retries in flight")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !circuit.is_empty() {
        out.push(("circuit", format!("at most {}", circuit.join(", "))));
    }
}

/// `3s`, `1500ms`.
fn duration(d: std::time::Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// `10 requests/s (burst 50)`.
fn rate(l: &ingress_core::annotations::rate_limit::RateLimit) -> String {
    let per = if l.per.as_secs() == 60 { "min" } else { "s" };
    format!("{} requests/{per} (burst {})", l.rate, l.burst)
}

/// The policies that shaped a decision, as (policy, detail) lines.
fn policies(
    d: &Decision<'_>,
    path: &str,
    client_ip: Option<std::net::IpAddr>,
) -> Vec<(&'static str, String)> {
    use ingress_core::routing::RespondReason;
    let mut out = Vec::new();
    match d {
        Decision::Forward(f) => {
            if let Some((c, reason)) = f.canary {
                let reason = serde_json::to_value(reason)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                out.push((
                    "canary",
                    format!("canary {} took the request (by {reason})", c.ingress()),
                ));
            } else if f.route.canaries().iter().len() > 0 {
                out.push((
                    "canary",
                    "no canary rule fired; the primary serves".to_owned(),
                ));
            }
            if f.rewritten {
                out.push(("rewrite", format!("{path} -> {}", f.upstream_target())));
            }
            if let Some(p) = f.forwarded_prefix {
                out.push(("x-forwarded-prefix", p.to_owned()));
            }
            if f.policy.routing.upstream_vhost.is_some() {
                out.push(("upstream-vhost", format!("Host: {}", f.upstream_host)));
            }
            if f.policy.cors.is_some() && !f.response_headers.is_empty() {
                out.push((
                    "cors",
                    "the origin is allowed; CORS headers are added to the answer".to_owned(),
                ));
            }
            if f.policy.access.is_set() || f.route.host_policy().access.is_set() {
                out.push((
                    "access",
                    "the client address passed the IP lists".to_owned(),
                ));
            }
            resilience(f.policy, &mut out);
        }
        Decision::Redirect(r) => out.push((
            "redirect",
            format!("{} ({})", r.reason.as_str(), r.location),
        )),
        Decision::Respond(r) => match r.reason {
            RespondReason::Forbidden => {
                use ingress_core::annotations::access::AccessVerdict;
                let detail = d.route().map(|rt| {
                    let host = &rt.host_policy().access;
                    let own = &rt.policy().access;
                    let level = if own.allow.is_some() || own.deny.is_some() {
                        "route"
                    } else {
                        "host (MSE domain)"
                    };
                    match (own.check(client_ip, Some(host)), client_ip) {
                        (AccessVerdict::Denied, Some(ip)) => {
                            format!("{ip} is in the {level} deny list")
                        }
                        (_, None) => format!(
                            "the client address is unknown and the {level} allow list admits only listed addresses"
                        ),
                        (_, Some(ip)) => format!("{ip} is not in the {level} allow list"),
                    }
                });
                out.push(("access", detail.unwrap_or_default()));
            }
            RespondReason::InvalidPolicy => {
                let keys = d
                    .route()
                    .and_then(|rt| rt.policy().fail_closed.as_ref())
                    .map(|f| f.keys.join(", "))
                    .unwrap_or_default();
                out.push((
                    "fail-closed",
                    format!("annotations that cannot be honoured: {keys}"),
                ));
            }
            RespondReason::CorsPreflight => {
                out.push(("cors", "preflight answered by the gateway".to_owned()))
            }
            _ => {}
        },
        _ => {}
    }
    out
}

fn describe_route(r: &ingress_core::routing::Route) -> String {
    match r.matcher() {
        RouteMatch::Path(p) => format!("{} {} ({})", r.host(), p.as_str(), p.path_type()),
        RouteMatch::DefaultBackend(_) => format!("{} defaultBackend", r.host()),
    }
}

pub(crate) fn codes(output: Output) -> anyhow::Result<u8> {
    if output == Output::Json {
        let v: Vec<_> = Code::ALL
            .iter()
            .map(|c| json!({"code": c.as_str(), "severity": c.severity(), "doc": c.doc()}))
            .collect();
        print_json(&json!(v))?;
    } else {
        for c in Code::ALL {
            println!(
                "{:<30} {:<8} {}",
                c.as_str(),
                c.severity().as_str(),
                c.doc()
            );
        }
    }
    Ok(0)
}
