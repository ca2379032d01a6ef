//! Checks shared by the fuzz targets.

use ingress_core::routing::{RouteInputs, Verdict};
use ingress_core::{Decision, RequestView, RouteTable};

/// What identifies a decision, for comparing two of them: kind, status, route,
/// backend, and the upstream Host and target.
pub fn fingerprint(
    d: &Decision<'_>,
) -> (
    &'static str,
    Option<u16>,
    Option<usize>,
    Option<String>,
    Option<String>,
) {
    let upstream = match d {
        Decision::Forward(f) => Some(format!("{} {}", f.upstream_host, f.upstream_target())),
        _ => None,
    };
    (
        d.kind(),
        d.status().map(|s| s.as_u16()),
        d.route().map(|r| r.id().index()),
        d.backend()
            .map(|b| format!("{}/{}", b.namespace(), b.service())),
        upstream,
    )
}

/// `route` and `explain` agree on the decision; exactly the deciding route is the
/// explanation's chosen step (none when no route decided); a forward has endpoints
/// and keeps the query string.
pub fn check_route(table: &RouteTable, req: &RequestView<'_>, what: &str) {
    check_route_with(table, req, &RouteInputs::default(), what);
}

/// [`check_route`] with a canary roll.
pub fn check_route_with(
    table: &RouteTable,
    req: &RequestView<'_>,
    inputs: &RouteInputs,
    what: &str,
) {
    let decision = table.route_with(req, inputs);
    let explanation = table.explain_with(req, inputs);
    assert_eq!(
        fingerprint(&decision),
        fingerprint(&explanation.decision),
        "route and explain disagree ({what}) for {req:?}"
    );
    let chosen: Vec<usize> = explanation
        .steps
        .iter()
        .filter(|s| s.verdict == Verdict::Chosen)
        .map(|s| s.route.id().index())
        .collect();
    assert!(chosen.len() <= 1, "several chosen steps: {chosen:?}");
    match decision.route() {
        Some(route) => assert_eq!(
            chosen,
            [route.id().index()],
            "the chosen step is not the deciding route ({what}) for {req:?}"
        ),
        None => assert!(
            chosen.is_empty(),
            "a step is chosen though no route decided ({what}) for {req:?}: {chosen:?}"
        ),
    }
    if let Decision::Forward(f) = &decision {
        assert!(
            !f.backend.endpoints().is_empty(),
            "forward without endpoints"
        );
        assert!(
            f.route.policy().fail_closed.is_none(),
            "a fail-closed route forwarded ({what}) for {req:?}"
        );
        let target = f.upstream_target();
        assert!(
            target.starts_with('/'),
            "upstream target {target:?} is not origin-form"
        );
        assert!(
            !target.contains(|c: char| c.is_control() || c == ' '),
            "upstream target {target:?} holds control characters or spaces"
        );
        if let Some(q) = req.query.filter(|_| !f.rewritten) {
            // Kept, with spaces and control characters percent-encoded.
            let mut sent = String::new();
            for c in q.chars() {
                if c.is_control() || c == ' ' {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        sent.push_str(&format!("%{b:02X}"));
                    }
                } else {
                    sent.push(c);
                }
            }
            assert!(
                f.upstream_target().ends_with(&format!("?{sent}")),
                "query lost: {:?}",
                f.upstream_target()
            );
        }
    }
}

/// Checks on one parsed annotation map: diagnostics name keys of the map, the
/// fail-closed keys are keys of the map, and parsing is deterministic.
pub fn check_annotations(
    map: &std::collections::BTreeMap<String, String>,
    options: &ingress_core::annotations::AnnotationOptions,
) {
    use ingress_core::model::{ObjectKind, ObjectRef};
    let obj = ObjectRef::namespaced(ObjectKind::Ingress, "ns", "fuzz");
    let parsed = ingress_core::annotations::parse(map, &obj, options);
    let again = ingress_core::annotations::parse(map, &obj, options);
    assert_eq!(
        parsed.diagnostics, again.diagnostics,
        "parse is not deterministic"
    );
    assert_eq!(parsed.policy, again.policy, "parse is not deterministic");
    for d in &parsed.diagnostics {
        let field = d.field.as_deref().unwrap_or("");
        let named = map
            .keys()
            .any(|k| field == ingress_core::annotations::annotation_field(k))
            || field.starts_with("metadata.annotations[\"nginx.ingress.kubernetes.io/");
        assert!(named, "diagnostic names no key of the map: {d:?}");
    }
    if let Some(fc) = &parsed.policy.fail_closed {
        for k in &fc.keys {
            assert!(map.contains_key(k), "fail-closed key {k} is not in the map");
        }
        assert!(
            parsed
                .diagnostics
                .iter()
                .any(|d| d.severity == ingress_core::Severity::Error),
            "fail closed without an error diagnostic"
        );
    }
    // No value with a line break or NUL gets into a typed string.
    let dbg = format!("{:?}", parsed.policy);
    for (k, v) in map {
        if v.trim_end_matches('\n').contains(['\r', '\0']) {
            let _ = k;
            assert!(
                !dbg.contains(v.as_str()),
                "a value with CR/NUL reached the policy"
            );
        }
    }
}
