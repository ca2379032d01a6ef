//! Explain offline how the gateway would route one URL, from manifest files.
//!
//! ```text
//! cargo run -p examples --example route_offline -- MANIFESTS URL [PROFILE]
//! cargo run -p examples --example route_offline -- \
//!     examples/manifests/embed/shop.yaml https://shop.example.com/api/cart?id=1
//! ```
//!
//! `MANIFESTS` is a YAML or JSON file, or a directory whose `.yaml`, `.yml` and
//! `.json` files are read in name order. `PROFILE` is `standard` (the default) or
//! `ingress-nginx`. The program prints the problems found in the input, then
//! [`RouteTable::explain`]'s answer: the decision, and every route that was
//! considered with its verdict (chosen, outranked, no match, not consulted) and why.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use http::Uri;
use ingress_core::manifest::Loaded;
use ingress_core::routing::{HostLevel, RouteMatch, Step, Verdict};
use ingress_core::{CompileOptions, Decision, Profile, RequestView, RouteTable, Scheme, compile};

const USAGE: &str = "usage: route_offline MANIFESTS URL [standard|ingress-nginx]";

fn main() -> ExitCode {
    // Errors are about the user's input: print them plainly, not as `Debug`.
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("route_offline: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (manifests, url, profile) = match args.as_slice() {
        [m, u] => (m, u, Profile::Standard),
        [m, u, p] => (m, u, p.parse::<Profile>()?),
        _ => return Err(USAGE.into()),
    };

    let mut loaded = Loaded::default();
    for file in manifest_files(Path::new(manifests))? {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        loaded.add_str(&file.display().to_string(), &text);
    }
    let compiled = compile(&loaded.snapshot, &CompileOptions::with_profile(profile));

    let mut problems = loaded.diagnostics.clone();
    problems.extend(
        loaded
            .sources
            .locate_all(compiled.diagnostics.iter().cloned()),
    );
    if !problems.is_empty() {
        println!("{} problem(s) in the input:", problems.len());
        for p in &problems {
            match &p.location {
                Some(at) => println!("  {}:{}: {}", at.file, at.line, p.diagnostic),
                None => println!("  {}", p.diagnostic),
            }
        }
        println!();
    }

    let uri: Uri = url.parse().map_err(|e| format!("bad URL {url:?}: {e}"))?;
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::Http,
        Some("https") => Scheme::Https,
        Some(other) => return Err(format!("unsupported scheme {other:?} in {url:?}").into()),
        None => return Err(format!("{url:?} is not absolute: use http://HOST/PATH").into()),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| format!("{url:?} has no host"))?;
    // The Host header never carries user info.
    let host = authority.as_str().rsplit('@').next().unwrap_or_default();
    let mut request = RequestView::get(scheme, host, uri.path());
    request.query = uri.query();

    explain(&compiled.table, &request);
    Ok(())
}

/// The manifest files to read: the path itself, or a directory's manifest files.
fn manifest_files(path: &Path) -> Result<Vec<PathBuf>, Box<dyn Error>> {
    if !path.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    for entry in
        std::fs::read_dir(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?
    {
        let file = entry?.path();
        let ext = file
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default();
        if file.is_file() && matches!(ext, "yaml" | "yml" | "json") {
            files.push(file);
        }
    }
    if files.is_empty() {
        return Err(format!("no .yaml, .yml or .json file in {}", path.display()).into());
    }
    files.sort();
    Ok(files)
}

fn explain(table: &RouteTable, request: &RequestView<'_>) {
    let e = table.explain(request);
    println!(
        "{:?} {} {} ({} profile)",
        request.scheme,
        e.host,
        e.path,
        table.profile()
    );
    println!("decision: {}", decision(&e.decision));
    println!("decided by: {}", e.level.describe());
    if e.steps.is_empty() {
        println!("no route applies to this host");
        return;
    }
    println!("steps:");
    for step in &e.steps {
        println!("  {}", describe_step(step));
        println!("      {}", verdict(&step.verdict));
    }
}

fn decision(d: &Decision<'_>) -> String {
    match d {
        Decision::Forward(f) => {
            let endpoints: Vec<String> = f
                .backend
                .endpoints()
                .iter()
                .map(ToString::to_string)
                .collect();
            format!(
                "forward to {}/{} port {} -> [{}], upstream {} {}",
                f.backend.namespace(),
                f.backend.service(),
                f.backend.port_ref(),
                endpoints.join(", "),
                f.upstream_host,
                f.upstream_target()
            )
        }
        Decision::Respond(r) => format!("respond {} ({})", r.status, r.reason.as_str()),
        Decision::Redirect(r) => format!("redirect {} to {}", r.status, r.location),
        other => other.kind().to_owned(),
    }
}

/// `#id [level] host path (type) -> backend, from ingress field`.
fn describe_step(step: &Step<'_>) -> String {
    let r = step.route;
    let matcher = match r.matcher() {
        RouteMatch::Path(p) => p.to_string(),
        RouteMatch::DefaultBackend(_) => "default backend".to_owned(),
    };
    let level = match step.level {
        HostLevel::Exact => "exact",
        HostLevel::Wildcard => "wildcard",
        HostLevel::AnyHost => "any host",
        HostLevel::CatchAll => "catch-all",
    };
    format!(
        "#{} [{level}] {} {matcher}, from {} {}",
        r.id().index(),
        r.host(),
        r.ingress(),
        r.field()
    )
}

fn verdict(v: &Verdict) -> String {
    match v {
        Verdict::Chosen => "CHOSEN".to_owned(),
        Verdict::Outranked { by, why } => format!("outranked by #{}: {why}", by.index()),
        Verdict::NoMatch { why } => format!("no match: {why}"),
        Verdict::NotConsulted { why } => format!("not consulted: {why}"),
    }
}
