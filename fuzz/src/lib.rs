//! Checks shared by the fuzz targets.

use ingress_core::routing::Verdict;
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
    let decision = table.route(req);
    let explanation = table.explain(req);
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
        if let Some(q) = req.query {
            assert!(
                f.upstream_target().ends_with(&format!("?{q}")),
                "query lost: {:?}",
                f.upstream_target()
            );
        }
    }
}
