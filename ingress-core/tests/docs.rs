//! Docs generated from the code cannot drift: docs/diagnostics.md is rendered from
//! `Code::ALL`. Run with `UPDATE_DOCS=1` to rewrite it after adding a code.

#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use ingress_core::Code;

fn render() -> String {
    let mut s = String::from(
        "# Diagnostic codes\n\n\
         Generated from `ingress_core::Code` by `ingress-core/tests/docs.rs`; do not edit by hand\n\
         (`UPDATE_DOCS=1 cargo test -p ingress-core --test conformance docs` rewrites it).\n\
         `ingressctl codes` prints the same list. A code's string never changes meaning once\n\
         released; its severity is fixed by the code.\n\n\
         | code | severity | meaning |\n|---|---|---|\n",
    );
    for c in Code::ALL {
        s.push_str(&format!(
            "| `{}` | {} | {} |\n",
            c.as_str(),
            c.severity(),
            c.doc()
        ));
    }
    s
}

#[test]
fn diagnostics_doc_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/diagnostics.md");
    let want = render();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &want).expect("write docs/diagnostics.md");
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/diagnostics.md is stale; run UPDATE_DOCS=1 cargo test -p ingress-core --test conformance docs"
    );
}

#[test]
fn annotations_doc_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/annotations.md");
    let want = ingress_core::annotations::docs::markdown();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &want).expect("write docs/annotations.md");
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/annotations.md is stale; run UPDATE_DOCS=1 cargo test -p ingress-core --test conformance docs"
    );
}
