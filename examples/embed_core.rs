//! Embed `ingress-core` in a program: manifest text in, a route table out, then a
//! decision per request.
//!
//! The manifests are compiled into the binary (`manifests/embed/shop.yaml`). The
//! program loads them with [`ingress_core::manifest::load_str`], compiles them with
//! [`ingress_core::compile()`], prints every diagnostic with its `file:line`, and routes
//! a few requests, printing each [`Decision`]: for a forward, the backend, its
//! endpoints and the upstream request target; for an answer the gateway gives itself,
//! the status and the reason.
//!
//! ```text
//! cargo run -p examples --example embed_core
//! ```

use std::error::Error;

use ingress_core::manifest::{Located, load_str};
use ingress_core::{CompileOptions, Decision, Profile, RequestView, Scheme, compile};

/// The manifests, embedded at build time.
const MANIFESTS: &str = include_str!("manifests/embed/shop.yaml");
/// The name diagnostics use for that text.
const SOURCE_NAME: &str = "manifests/embed/shop.yaml";

/// The requests routed below: listener, Host header, path and query.
const REQUESTS: &[(Scheme, &str, &str)] = &[
    (Scheme::Https, "shop.example.com", "/"),
    (Scheme::Https, "shop.example.com", "/api/cart?id=42"),
    (
        Scheme::Http,
        "SHOP.example.com:8080",
        "/api/../static/logo.png",
    ),
    (Scheme::Https, "tenant-a.shop.example.com", "/orders"),
    (Scheme::Https, "shop.example.com", "/api/healthz"),
    (Scheme::Http, "old.example.com", "/cart"),
    (Scheme::Http, "[not-a-host", "/"),
];

fn main() -> Result<(), Box<dyn Error>> {
    // 1. Text to objects. Syntax and schema problems are diagnostics, not errors.
    let loaded = load_str(SOURCE_NAME, MANIFESTS);
    println!(
        "loaded {} objects from {SOURCE_NAME}",
        loaded.snapshot.len()
    );

    // 2. Objects to a route table. The default options serve Ingresses whose class
    //    names an IngressClass with controller `ingress-rs.dev/gateway`.
    let options = CompileOptions::with_profile(Profile::Standard);
    let compiled = compile(&loaded.snapshot, &options);

    let mut diagnostics = loaded.diagnostics.clone();
    diagnostics.extend(
        loaded
            .sources
            .locate_all(compiled.diagnostics.iter().cloned()),
    );
    println!("\n{} diagnostic(s):", diagnostics.len());
    for d in &diagnostics {
        println!("  {}", located(d));
    }

    // 3. Requests to decisions. "No route" is a decision (404), not an error.
    println!("\n{} route(s); decisions:", compiled.table.routes().len());
    for &(scheme, host, path_and_query) in REQUESTS {
        let request = RequestView::get(scheme, host, path_and_query);
        let decision = compiled.table.route(&request);
        println!("  {scheme:?} {host}{path_and_query}");
        println!("    {}", describe(&decision));
    }
    Ok(())
}

/// `file:line:column: severity[code] object field: message`.
fn located(d: &Located) -> String {
    match &d.location {
        Some(at) => format!("{}:{}:{}: {}", at.file, at.line, at.column, d.diagnostic),
        None => d.diagnostic.to_string(),
    }
}

/// One line saying what the gateway does with the request.
fn describe(decision: &Decision<'_>) -> String {
    let by = decision
        .route()
        .map(|r| {
            format!(
                " (route #{} from {} {})",
                r.id().index(),
                r.ingress(),
                r.field()
            )
        })
        .unwrap_or_default();
    match decision {
        Decision::Forward(f) => {
            let endpoints: Vec<String> = f
                .backend
                .endpoints()
                .iter()
                .map(ToString::to_string)
                .collect();
            format!(
                "forward to {}/{} port {} -> [{}], upstream {} {}{by}",
                f.backend.namespace(),
                f.backend.service(),
                f.backend.port_ref(),
                endpoints.join(", "),
                f.upstream_host,
                f.upstream_target(),
            )
        }
        Decision::Respond(r) => {
            let backend = r
                .backend
                .map(|b| format!(" for {}/{}", b.namespace(), b.service()))
                .unwrap_or_default();
            format!("respond {} ({}){backend}{by}", r.status, r.reason.as_str())
        }
        Decision::Redirect(r) => format!("redirect {} to {}{by}", r.status, r.location),
        other => format!("{}{by}", other.kind()),
    }
}
