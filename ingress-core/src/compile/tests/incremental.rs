//! `Compiler` (incremental compile) against a full `compile()` of the same objects.

use proptest::prelude::*;

use super::*;
use crate::compile::{Compiler, FullReason, RouteSplice, Update};
use crate::model::{HostPattern, Ingress};
use crate::routing::{Backend, BackendId, Route, RouteHost, RouteId};

const HOSTS: [&str; 5] = [
    "a.example.com",
    "b.example.com",
    "*.example.com",
    "c.example.com",
    "",
];
const PATHS: [(&str, &str); 5] = [
    ("Prefix", "/"),
    ("Prefix", "/api"),
    ("Exact", "/api"),
    ("ImplementationSpecific", "/static"),
    ("ImplementationSpecific", "/v[0-9]+/x"),
];
const SERVICES: [&str; 3] = ["s0", "s1", "missing"];
const ANNOTATIONS: [&str; 9] = [
    "",
    "nginx.ingress.kubernetes.io/canary: 'true', nginx.ingress.kubernetes.io/canary-weight: '30'",
    "nginx.ingress.kubernetes.io/use-regex: 'true'",
    "nginx.ingress.kubernetes.io/rewrite-target: /",
    "nginx.ingress.kubernetes.io/app-root: /app",
    "nginx.ingress.kubernetes.io/from-to-www-redirect: 'true'",
    "nginx.ingress.kubernetes.io/default-backend: s1",
    "nginx.ingress.kubernetes.io/mcp-sse-stateful-param-name: sid",
    "nginx.ingress.kubernetes.io/ssl-redirect: 'false'",
];

/// One Ingress's YAML: the choices are indexes into the pools above.
#[derive(Debug, Clone)]
struct Ing {
    name: u8,
    created: u8,
    class: u8,
    rules: Vec<(u8, Vec<(u8, u8)>)>,
    annotation: u8,
    default_backend: Option<u8>,
    tls: bool,
}

impl Ing {
    fn yaml(&self) -> String {
        let class = match self.class {
            0 => "ingressClassName: other, ",
            1 => "",
            _ => "ingressClassName: gw, ",
        };
        let rules: Vec<String> = self
            .rules
            .iter()
            .map(|(h, paths)| {
                let paths: Vec<String> = paths
                    .iter()
                    .map(|&(p, s)| {
                        let (t, p) = PATHS[p as usize % PATHS.len()];
                        path(t, p, SERVICES[s as usize % SERVICES.len()])
                    })
                    .collect();
                rule(HOSTS[*h as usize % HOSTS.len()], &paths)
            })
            .collect();
        let default = self
            .default_backend
            .map(|s| format!(", defaultBackend: {}", to(SERVICES[s as usize % 3], 80)))
            .unwrap_or_default();
        let tls = if self.tls {
            let host = HOSTS[self.rules.first().map_or(0, |r| r.0) as usize % 4];
            format!(", tls: [{{hosts: ['{host}'], secretName: nocert}}]")
        } else {
            String::new()
        };
        let ann = ANNOTATIONS[self.annotation as usize % ANNOTATIONS.len()];
        let meta = format!(
            ", creationTimestamp: '202{}-01-01T00:00:00Z', annotations: {{{ann}}}",
            self.created % 3
        );
        ingress(
            "default",
            &format!("i{}", self.name),
            &meta,
            &format!("{{{class}rules: [{}]{default}{tls}}}", rules.join(", ")),
        )
    }

    fn object(&self) -> Ingress {
        let mut s = load(&self.yaml());
        s.ingresses.remove(0)
    }
}

fn ing() -> impl Strategy<Value = Ing> {
    let paths = prop::collection::vec((0u8..5, 0u8..3), 1..3);
    let host = prop_oneof![8 => 0u8..4, 1 => Just(4u8)];
    let rules = prop::collection::vec((host, paths), 1..3);
    (
        0u8..6,
        0u8..3,
        prop_oneof![1 => Just(0u8), 1 => Just(1u8), 6 => Just(2u8)],
        rules,
        prop_oneof![4 => Just(0u8), 6 => 1u8..9],
        prop::option::weighted(0.15, 0u8..3),
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(name, created, class, rules, annotation, default_backend, tls)| Ing {
                name,
                created,
                class,
                rules,
                annotation,
                default_backend,
                tls,
            },
        )
}

#[derive(Debug, Clone)]
enum Edit {
    Upsert(Ing),
    Remove(u8),
    /// Remove or restore Service `s1` (a full compile).
    ToggleService,
    /// Make class `gw` the default class or not: Ingresses without a class become
    /// ours or not (a full compile).
    ToggleClass,
    /// Replace the whole snapshot with the same objects and one Ingress changed.
    Replace(Ing),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        8 => ing().prop_map(Edit::Upsert),
        3 => (0u8..6).prop_map(Edit::Remove),
        1 => Just(Edit::ToggleService),
        1 => Just(Edit::ToggleClass),
        2 => ing().prop_map(Edit::Replace),
    ]
}

fn base(service: bool, default_class: bool) -> Snapshot {
    let mut y = class("gw", DEFAULT_CONTROLLER_NAME, default_class);
    y += &svc("default", "s0", "10.0.0.1");
    if service {
        y += &svc("default", "s1", "10.0.0.2");
    }
    load(&y)
}

/// The backend a route id points at, without its id.
fn backend_of(t: &crate::RouteTable, id: BackendId) -> Backend {
    let mut b = t.backend(id).clone();
    b.id = BackendId(0);
    b
}

/// A route with its backend ids replaced by the backends themselves.
fn canonical_route(t: &crate::RouteTable, r: &Route) -> (Route, Vec<Backend>) {
    let mut r = r.clone();
    let mut backends = vec![backend_of(t, r.backend)];
    r.backend = BackendId(0);
    for c in &mut r.canaries {
        backends.push(backend_of(t, c.backend));
        c.backend = BackendId(0);
    }
    if let Some(f) = r.fallback.take() {
        backends.push(backend_of(t, f));
    }
    (r, backends)
}

/// Each live route's id -> its rank in (host, matcher) order: the ids of a full
/// compile, whatever slots an incremental update gave the routes.
fn ranks(t: &crate::RouteTable) -> rustc_hash::FxHashMap<RouteId, RouteId> {
    let mut live: Vec<&Route> = t.routes().iter().collect();
    live.sort_by(|a, b| (&a.host, &a.matcher).cmp(&(&b.host, &b.matcher)));
    live.iter()
        .enumerate()
        .map(|(i, r)| (r.id, RouteId(i as u32)))
        .collect()
}

/// Hosts' lookup structures, sorted by host, route ids as ranks.
fn host_structures(t: &crate::RouteTable) -> Vec<String> {
    let rank = ranks(t);
    let show = |hr: &crate::routing::HostRoutes| {
        let mut hr = hr.clone();
        hr.map_ids(|id| rank.get(&id).copied().unwrap_or(RouteId(u32::MAX)));
        format!("{hr:?}")
    };
    let mut v: Vec<String> = t
        .exact_hosts
        .iter()
        .map(|(k, hr)| format!("exact {k} {}", show(hr)))
        .chain(
            t.wildcard_hosts
                .iter()
                .map(|(k, hr)| format!("wildcard {k} {}", show(hr))),
        )
        .chain(t.any_host.iter().map(|hr| format!("any {}", show(hr))))
        .collect();
    v.sort();
    v
}

/// After an incremental update, the new table shares (same allocation) every host
/// structure of the previous one that the update did not touch, and every route
/// outside the touched hosts' new slots keeps its slot (the same route).
fn assert_shared(before: &crate::RouteTable, after: &crate::RouteTable, splices: &[RouteSplice]) {
    let touched = |k: &str, wildcard: bool| {
        splices.iter().any(|s| match &s.host {
            RouteHost::Pattern(HostPattern::Exact(e)) => !wildcard && e.as_str() == k,
            RouteHost::Pattern(HostPattern::Wildcard(w)) => wildcard && w.as_str() == k,
            RouteHost::Any => false,
        })
    };
    for (map_b, map_a, wildcard) in [
        (&before.exact_hosts, &after.exact_hosts, false),
        (&before.wildcard_hosts, &after.wildcard_hosts, true),
    ] {
        for (k, hb) in map_b.iter() {
            let Some(ha) = map_a.get(k) else { continue };
            if !touched(k, wildcard) {
                assert!(
                    std::sync::Arc::ptr_eq(hb, ha),
                    "host {k} was copied, not shared"
                );
            }
        }
    }
    let in_new = |i: usize| splices.iter().any(|s| s.new.contains(&i));
    let in_old = |i: usize| splices.iter().any(|s| s.old.contains(&i));
    let (rb, ra) = (before.routes(), after.routes());
    assert!(
        ra.slot_count() >= rb.slot_count(),
        "slots are never dropped"
    );
    for i in 0..ra.slot_count() {
        if in_new(i) {
            let r = ra.get(i).expect("a new slot holds a live route");
            assert_eq!(r.id.index(), i);
        } else if in_old(i) {
            assert!(ra.get(i).is_none(), "slot {i} was the touched host's: free");
        } else {
            assert_eq!(ra.get(i), rb.get(i), "slot {i} is untouched");
            assert!(i < rb.slot_count(), "a new slot {i} outside the splices");
        }
    }
    for r in ra {
        assert_eq!(r.id, RouteId(r.id.index() as u32));
        assert!(std::ptr::eq(r, &ra.slots()[r.id.index()]));
    }
}

/// Everything observable about a compile, route and backend ids aside.
fn assert_same(inc: &Compiled, full: &Compiled) {
    assert_eq!(inc.diagnostics, full.diagnostics, "diagnostics");
    let (a, b) = (&inc.table, &full.table);
    a.backends.assert_ready_bits();
    b.backends.assert_ready_bits();
    assert_eq!(a.routes().len(), b.routes().len(), "route count");
    let (rank_a, rank_b) = (ranks(a), ranks(b));
    let canonical = |t: &crate::RouteTable, rank: &rustc_hash::FxHashMap<RouteId, RouteId>| {
        let mut v: Vec<(Route, Vec<Backend>)> = t
            .routes()
            .iter()
            .map(|r| {
                let (mut r, backends) = canonical_route(t, r);
                r.id = rank[&r.id];
                (r, backends)
            })
            .collect();
        v.sort_by_key(|(r, _)| r.id);
        v
    };
    assert_eq!(canonical(a, &rank_a), canonical(b, &rank_b), "routes");
    // A full compile: no free slot, ids are positions in host order.
    assert_eq!(b.routes().slot_count(), b.routes().len());
    assert!(rank_b.iter().all(|(id, rank)| id == rank));
    // Every live route is its host's (consecutive slots, as the structures say).
    for hr in a.exact_hosts.values().chain(a.wildcard_hosts.values()) {
        let span = hr.span();
        for i in span.clone() {
            assert!(a.routes().get(i).is_some(), "slot {i} of {span:?} is live");
        }
    }
    assert_eq!(host_structures(a), host_structures(b), "host structures");
    assert_eq!(a.catch_all.map(|id| rank_a[&id]), b.catch_all, "catch-all");
    assert_eq!(a.www_redirects, b.www_redirects, "www redirects");
    assert_eq!(
        format!("{:?}", a.tls_bindings()),
        format!("{:?}", b.tls_bindings())
    );
    for (i, backend) in a.backends().iter().enumerate() {
        assert_eq!(backend.id().0 as usize, i, "backend ids are positions");
    }
    for host in [
        "a.example.com",
        "x.example.com",
        "c.example.com",
        "other.org",
    ] {
        for path in ["/", "/api", "/api/x", "/static/y", "/v12/x", "/nope"] {
            assert_eq!(
                decide(inc, &rank_a, host, path),
                decide(full, &rank_b, host, path),
                "{host}{path}"
            );
        }
    }
}

/// What a request gets, with the route (as its rank) and backend by content.
fn decide(
    c: &Compiled,
    rank: &rustc_hash::FxHashMap<RouteId, RouteId>,
    host: &str,
    path: &str,
) -> String {
    let d = c.table.route(&RequestView::get(Scheme::Http, host, path));
    let route = d.route().map(|r| rank[&r.id()]);
    match d {
        Decision::Forward(f) => format!(
            "{route:?} forward {:?} {:?}",
            f.backend.service(),
            f.backend.endpoints()
        ),
        Decision::Redirect(r) => format!(
            "{route:?} redirect {} {} {:?}",
            r.status, r.location, r.reason
        ),
        Decision::Respond(r) => format!("{route:?} respond {} {:?}", r.status, r.reason),
    }
}

fn run_edits(profile: Profile, edits: Vec<Edit>) -> usize {
    let options = CompileOptions::with_profile(profile).ingress_class("gw");
    let (mut service, mut ours) = (true, false);
    let mut compiler = Compiler::new(base(service, ours), options.clone());
    let mut incremental = 0;
    for e in edits {
        // What a proxy would have published before the edit: a clone sharing the
        // table's host structures. The edit must leave it as it was.
        let published = Compiled {
            table: compiler.table().clone(),
            diagnostics: compiler.diagnostics().to_vec(),
        };
        let before = compile(compiler.snapshot(), &options);
        let mut next = compiler.snapshot().clone();
        let update = match e {
            Edit::Upsert(i) => compiler.upsert_ingress(i.object()),
            Edit::Remove(n) => compiler.remove_ingress("default", &format!("i{n}")),
            Edit::Replace(i) => {
                let o = i.object();
                next.ingresses
                    .retain(|x| x.metadata.name != o.metadata.name);
                next.ingresses.insert(0, o);
                compiler.replace(next)
            }
            Edit::ToggleService | Edit::ToggleClass => {
                if matches!(e, Edit::ToggleService) {
                    service = !service;
                } else {
                    ours = !ours;
                }
                let b = base(service, ours);
                next.ingress_classes = b.ingress_classes;
                next.services = b.services;
                next.endpoint_slices = b.endpoint_slices;
                let u = compiler.replace(next);
                assert_eq!(u, Update::Full(FullReason::NotOnlyIngresses));
                u
            }
        };
        if let Update::Incremental { splices, .. } = &update {
            incremental += 1;
            assert_shared(&published.table, compiler.table(), splices);
        }
        let full = compile(compiler.snapshot(), &options);
        assert_same(compiler.compiled(), &full);
        assert_same(&published, &before);
    }
    incremental
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn incremental_equals_full_standard(edits in prop::collection::vec(edit(), 1..24)) {
        run_edits(Profile::Standard, edits);
    }

    #[test]
    fn incremental_equals_full_nginx(edits in prop::collection::vec(edit(), 1..24)) {
        run_edits(Profile::IngressNginx, edits);
    }
}

fn simple_ing(name: u8, host: u8, service: u8) -> Ing {
    Ing {
        name,
        created: name,
        class: 2,
        rules: vec![(host, vec![(0, service), (2, service)])],
        annotation: 0,
        default_backend: None,
        tls: false,
    }
}

#[test]
fn one_changed_ingress_is_incremental() {
    let options = opts();
    let mut c = Compiler::new(base(true, false), options.clone());
    for (n, h) in [(0, 0), (1, 1), (2, 3)] {
        assert!(matches!(
            c.upsert_ingress(simple_ing(n, h, 0).object()),
            Update::Incremental { .. }
        ));
    }
    // Same shape, other Service: the host's routes stay where they are.
    let u = c.upsert_ingress(simple_ing(1, 1, 1).object());
    let Update::Incremental {
        ingresses, splices, ..
    } = u
    else {
        panic!("expected an incremental update, got {u:?}");
    };
    assert_eq!(ingresses, 1);
    assert_eq!(splices.len(), 1);
    assert_eq!(splices[0].old, splices[0].new);
    assert_same(c.compiled(), &compile(c.snapshot(), &options));
    assert_eq!(outcome(c.compiled(), "b.example.com", "/"), "s1");
    // The same object again: nothing to do.
    assert_eq!(
        c.upsert_ingress(simple_ing(1, 1, 1).object()),
        Update::Unchanged
    );
    // A host that sorts first gains routes: it moves to new slots at the end,
    // every other route keeps its id.
    let u = c.upsert_ingress(simple_ing(0, 0, 1).object());
    assert!(matches!(u, Update::Incremental { .. }), "{u:?}");
    let u = c.upsert_ingress(
        Ing {
            rules: vec![(0, vec![(0, 0), (1, 0), (3, 1)])],
            ..simple_ing(0, 0, 0)
        }
        .object(),
    );
    let Update::Incremental { splices, .. } = u else {
        panic!("expected an incremental update, got {u:?}");
    };
    assert_eq!((splices[0].old.len(), splices[0].new.len()), (2, 3));
    assert_same(c.compiled(), &compile(c.snapshot(), &options));
    assert!(matches!(
        c.remove_ingress("default", "i2"),
        Update::Incremental { .. }
    ));
    assert_same(c.compiled(), &compile(c.snapshot(), &options));
    // TLS is resolved across Ingresses: a full compile.
    let u = c.upsert_ingress(
        Ing {
            tls: true,
            ..simple_ing(3, 3, 0)
        }
        .object(),
    );
    assert_eq!(u, Update::Full(FullReason::Tls));
    assert_same(c.compiled(), &compile(c.snapshot(), &options));
}

#[test]
fn random_edits_take_the_incremental_path() {
    // The property tests above would pass if every update were a full compile;
    // this fixed sequence shows most of them are not.
    let edits: Vec<Edit> = (0..20u8)
        .map(|i| Edit::Upsert(simple_ing(i % 6, i % 4, i % 3)))
        .collect();
    for profile in [Profile::Standard, Profile::IngressNginx] {
        let n = run_edits(profile, edits.clone());
        assert!(
            n >= 15,
            "{profile}: only {n} of 20 updates were incremental"
        );
    }
}

#[test]
fn route_ids_stay_put_and_slots_are_reused() {
    let options = opts();
    let mut c = Compiler::new(base(true, false), options.clone());
    for (n, h) in [(0, 0), (1, 1), (2, 3)] {
        c.upsert_ingress(simple_ing(n, h, 0).object());
    }
    let ids = |c: &Compiler| -> Vec<(String, RouteId)> {
        let mut v: Vec<(String, RouteId)> = c
            .table()
            .routes()
            .iter()
            .map(|r| (format!("{} {:?}", r.host(), r.matcher()), r.id()))
            .collect();
        v.sort();
        v
    };
    let start = ids(&c);
    let slots = c.table().routes().slot_count();
    let grown = Ing {
        rules: vec![(0, vec![(0, 0), (1, 0), (3, 1)])],
        ..simple_ing(0, 0, 0)
    };
    // a.example.com (the host sorting first) flips between 2 and 3 routes: it
    // grows once into new slots at the end, then stays there (shrinking in place,
    // growing into its own freed slot); no other route ever changes id, and the
    // table does not grow with the number of flips.
    for flip in 0..10 {
        let ing = if flip % 2 == 0 {
            grown.clone()
        } else {
            simple_ing(0, 0, 0)
        };
        let u = c.upsert_ingress(ing.object());
        let Update::Incremental { splices, .. } = u else {
            panic!("expected an incremental update, got {u:?}");
        };
        assert_eq!(splices.len(), 1);
        if flip == 0 {
            assert_eq!(
                (splices[0].old.clone(), splices[0].new.clone()),
                (0..2, slots..slots + 3)
            );
        } else {
            assert_eq!(splices[0].new.start, slots, "flip {flip}: the host stays");
        }
        assert_same(c.compiled(), &compile(c.snapshot(), &options));
        let now = ids(&c);
        for (key, id) in &start {
            if !key.starts_with("a.example.com") {
                assert!(now.contains(&(key.clone(), *id)), "{key} moved");
            }
        }
        assert_eq!(c.table().routes().slot_count(), slots + 3);
    }
    // The freed slots 0..2 are free: a new host of two routes takes them.
    let u = c.upsert_ingress(
        Ing {
            rules: vec![(2, vec![(0, 1), (2, 1)])],
            ..simple_ing(4, 0, 0)
        }
        .object(),
    );
    let Update::Incremental { splices, .. } = u else {
        panic!("expected an incremental update, got {u:?}");
    };
    assert_eq!(splices.len(), 1);
    assert!(matches!(
        splices[0].host,
        RouteHost::Pattern(HostPattern::Wildcard(_))
    ));
    assert_eq!(
        (splices[0].old.clone(), splices[0].new.clone()),
        (0..0, 0..2)
    );
    assert_same(c.compiled(), &compile(c.snapshot(), &options));
    // A full compile numbers them in order again.
    let full = compile(c.snapshot(), &options);
    assert_eq!(full.table.routes().slot_count(), full.table.routes().len());
    // The routes report lists them in a full compile's order all the same (the
    // ids are the slots).
    #[cfg(feature = "manifests")]
    {
        let strip = |mut doc: serde_json::Value| {
            for r in doc["routes"].as_array_mut().expect("routes") {
                r["id"] = serde_json::Value::Null;
            }
            doc
        };
        let (inc, fresh) = (
            crate::report::routes(c.table(), &[]),
            crate::report::routes(&full.table, &[]),
        );
        assert_ne!(inc["routes"], fresh["routes"], "the ids differ");
        assert_eq!(strip(inc), strip(fresh));
    }
}

#[test]
fn updates_made_one_after_the_other_publish_as_one() {
    let ids = |v: &[u32]| v.iter().map(|&i| BackendId(i)).collect::<Vec<_>>();
    let endpoints = |b: &[u32], s: &[&str]| Update::Endpoints {
        backends: ids(b),
        services: s.iter().map(|s| (*s).to_owned()).collect(),
    };
    let incremental = |b: &[u32]| Update::Incremental {
        ingresses: 1,
        splices: Vec::new(),
        backends: ids(b),
    };
    // An Ingress update, then endpoint updates: the Ingress patch, with every
    // backend whose endpoints may differ.
    assert_eq!(
        incremental(&[4])
            .then(endpoints(&[2, 4], &["t/a"]))
            .then(endpoints(&[1], &["t/b"])),
        incremental(&[1, 2, 4])
    );
    assert_eq!(
        endpoints(&[3], &["t/b"]).then(endpoints(&[1, 3], &["t/a"])),
        endpoints(&[1, 3], &["t/a", "t/b"])
    );
    assert_eq!(Update::Unchanged.then(incremental(&[])), incremental(&[]));
    assert_eq!(incremental(&[]).then(Update::Unchanged), incremental(&[]));
    // What one patch cannot carry: published whole.
    let combined = Update::Full(FullReason::Combined);
    let tls = Update::Tls { bindings: vec![0] };
    assert_eq!(tls.clone().then(incremental(&[])), combined);
    assert_eq!(endpoints(&[], &[]).then(tls), combined);
    assert_eq!(incremental(&[]).then(incremental(&[])), combined);
    assert_eq!(endpoints(&[1], &["t/a"]).then(incremental(&[])), combined);
    // A full update stays full, with its own reason.
    assert_eq!(
        incremental(&[]).then(Update::Full(FullReason::Tls)),
        Update::Full(FullReason::Tls)
    );
}
