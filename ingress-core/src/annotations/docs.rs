//! docs/annotations.md, generated from the registry so it cannot drift.

use std::fmt::Write;

use super::spec::{Prefixes, Support};
use super::{REGISTRY, RETIRED};

fn prefixes(p: Prefixes) -> &'static str {
    match p {
        Prefixes::Nginx => "nginx, higress, mse",
        Prefixes::ExtensionAndNginx => "higress, mse, nginx",
        Prefixes::Extension => "higress, mse",
        Prefixes::Mse => "mse",
        Prefixes::Project => "ingress-rs.io",
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The annotation reference as Markdown: every family, every key with its scope,
/// grammar, default, risk, support status and what it does here.
pub fn markdown() -> String {
    let mut out = String::new();
    let total: usize = REGISTRY.iter().map(|f| f.keys().len()).sum();
    let count = |want: &str| {
        REGISTRY
            .iter()
            .flat_map(|f| f.keys())
            .filter(|k| k.support.as_str() == want)
            .count()
    };
    let _ = writeln!(
        out,
        "# Annotations\n\n<!-- Generated from ingress-core's annotation registry by `UPDATE_DOCS=1 cargo test -p ingress-core --test conformance docs`; do not edit. -->\n\n\
{total} keys: {} supported, {} partial, {} recognised but not enforced, {} refused. \
`ingressctl compat --list` prints the same registry; `ingressctl compat PATH` reports what your manifests use.\n\n\
The status is about `ingress-core`: the key is parsed into a type and is part of the route and of the \
per-request decision (redirects, IP lists, CORS, canaries and rewrites are decided by the core itself). \
Controls that need the data plane's IO (authentication, client certificates, rate limits) are listed by \
`IngressPolicy::requirements()`; a data plane that cannot carry one out answers 503 for that route rather \
than serve without it. docs/proxy.md says what the reference proxy carries out.\n\n\
Prefixes: an ingress-nginx key is read under the custom prefix (if configured), `nginx.ingress.kubernetes.io/`, \
`higress.io/`, `mse.ingress.kubernetes.io/` and `higress.ingress.kubernetes.io/`, first present wins \
(a different value under a later prefix is reported as `annotation-shadowed`). Higress extension keys \
are read under `higress.io/`, `mse.ingress.kubernetes.io/` and `higress.ingress.kubernetes.io/`; \
MSE-only keys under `mse.ingress.kubernetes.io/`.\n\n\
This project's own keys (the `resilience` family: per-route outlier detection and circuit breaking, for \
which neither ingress-nginx nor Higress has a key) are read under `ingress-rs.io/` only (the domain of the \
gateway config's API group `gateway.ingress-rs.io`), and under the custom prefix like every key. They are \
not read under the nginx, Higress or MSE prefixes: those belong to other projects, which may one day give \
the same name another meaning. Their names are Envoy's `outlier_detection` and `circuit_breakers` fields, \
kebab-cased, under `outlier-` and `circuit-` (`consecutive_gateway_failure` is plural here, as the proxy \
flag). Each overrides the gateway's default (proxy flag or gateway config) for the Ingress's routes; routes \
to one Service port with different values get separate clusters (their own passive health and in-flight \
counts), routes with the same values (or none) share one.\n\n\
Every value must be one line without control characters (header-control lists may span lines) and at most \
4096 bytes. An invalid value is an error (`annotation-invalid-value`) and the routes of the Ingress answer 503 \
until it is fixed: it is never treated as unset. Refused keys (`annotation-refused`) and security keys that \
cannot be enforced (`annotation-unenforceable`) fail closed the same way. Scope: `route` = every path of the \
Ingress; `host` = every path of the host across Ingresses (the oldest Ingress wins, conflicts are reported); \
`backend` = every route to the Service.\n",
        count("supported"),
        count("partial"),
        count("not-enforced"),
        count("refused"),
    );
    for f in REGISTRY {
        let _ = writeln!(out, "## {}\n", f.family());
        let _ = writeln!(
            out,
            "| Key | Scope | Value | Default | Risk | Status | What it does here |\n|---|---|---|---|---|---|---|"
        );
        for k in f.keys() {
            let status = match k.support {
                Support::Supported => "supported".to_owned(),
                s => format!("{}: {}", s.as_str(), s.note().unwrap_or("")),
            };
            let _ = writeln!(
                out,
                "| `{}`{} | {} | {} | {} | {} | {} | {} (prefixes: {}) |",
                k.name,
                if k.security { " (security)" } else { "" },
                k.scope.as_str(),
                cell(k.grammar),
                cell(k.default),
                k.risk.as_str(),
                cell(&status),
                cell(k.doc),
                prefixes(k.prefixes),
            );
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "## Retired ingress-nginx names\n\nReported as `annotation-retired` (a warning; no effect).\n\n| Key | Use instead |\n|---|---|"
    );
    for r in RETIRED {
        let _ = writeln!(out, "| `{}` | {} |", r.name, cell(r.replacement));
    }
    out
}
