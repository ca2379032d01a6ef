//! Property tests: compile is deterministic under any input order; nothing panics on
//! arbitrary objects and requests; the fast lookup agrees with a naive reference.

use std::collections::BTreeMap;

use http::{HeaderMap, Method};
use ingress_core::model::{
    EndpointConditions, EndpointPort, EndpointSlice, HttpIngressPath, HttpIngressRuleValue,
    Ingress, IngressBackend, IngressRule, IngressServiceBackend, IngressSpec, ObjectMeta, Service,
    ServiceBackendPort, ServicePort, ServiceSpec, Timestamp,
};
use ingress_core::model::{HostPattern, PathType};
use ingress_core::routing::{RouteHost, RouteMatch};
use ingress_core::{CompileOptions, Decision, Profile, RequestView, Scheme, Snapshot, compile};
use proptest::prelude::*;

const HOSTS: &[&str] = &[
    "",
    "a.com",
    "b.a.com",
    "*.a.com",
    "*.b.a.com",
    "A.com",
    "x",
    "*.",
    "c.a.com",
];
const PATHS: &[&str] = &[
    "/", "/a", "/a/", "/a/b", "/ab", "/a/b/c", "", "a", "/a//b", "/b", "/a/..",
];
const TYPES: &[&str] = &["Exact", "Prefix", "ImplementationSpecific", "Bogus", ""];
const SERVICES: &[&str] = &["s1", "s2", "missing", "Bad_Name"];

fn meta(name: String, ts: Option<i64>) -> ObjectMeta {
    ObjectMeta {
        name,
        namespace: Some("default".into()),
        creation_timestamp: ts.map(Timestamp::from_unix),
        ..ObjectMeta::default()
    }
}

fn backend(svc: usize, port: i64) -> IngressBackend {
    IngressBackend {
        service: Some(IngressServiceBackend {
            name: SERVICES[svc].into(),
            port: Some(ServiceBackendPort {
                name: None,
                number: Some(port),
            }),
        }),
        resource: None,
    }
}

prop_compose! {
    fn arb_path()(p in 0..PATHS.len(), t in 0..TYPES.len(), s in 0..SERVICES.len(), port in prop_oneof![Just(80i64), Just(81), Just(0)]) -> HttpIngressPath {
        HttpIngressPath {
            path: Some(PATHS[p].into()).filter(|p: &String| !p.is_empty()),
            path_type: Some(TYPES[t].into()).filter(|t: &String| !t.is_empty()),
            backend: backend(s, port),
        }
    }
}

prop_compose! {
    fn arb_rule()(h in 0..HOSTS.len(), paths in prop::collection::vec(arb_path(), 0..4), http in any::<bool>()) -> IngressRule {
        IngressRule {
            host: Some(HOSTS[h].into()).filter(|h: &String| !h.is_empty()),
            http: http.then_some(HttpIngressRuleValue { paths }),
        }
    }
}

prop_compose! {
    fn arb_ingress()(id in 0..6usize, ts in prop::option::of(0i64..3), rules in prop::collection::vec(arb_rule(), 0..3), def in prop::option::of(0..SERVICES.len())) -> Ingress {
        Ingress {
            metadata: meta(format!("ing{id}"), ts),
            spec: IngressSpec {
                ingress_class_name: None,
                default_backend: def.map(|s| backend(s, 80)),
                tls: vec![],
                rules,
            },
        }
    }
}

fn supporting() -> (Vec<Service>, Vec<EndpointSlice>) {
    let mut services = Vec::new();
    let mut slices = Vec::new();
    for (i, name) in ["s1", "s2"].iter().enumerate() {
        services.push(Service {
            metadata: meta((*name).into(), None),
            spec: ServiceSpec {
                ports: vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    ..ServicePort::default()
                }],
                ..ServiceSpec::default()
            },
        });
        let mut m = meta(format!("{name}-x"), None);
        m.labels = BTreeMap::from([("kubernetes.io/service-name".into(), (*name).into())]);
        slices.push(EndpointSlice {
            metadata: m,
            address_type: "IPv4".into(),
            endpoints: vec![ingress_core::model::Endpoint {
                addresses: vec![format!("10.0.0.{}", i + 1)],
                conditions: EndpointConditions::default(),
            }],
            ports: vec![EndpointPort {
                name: Some("http".into()),
                port: Some(8080),
                protocol: None,
            }],
        });
    }
    (services, slices)
}

fn snapshot(ingresses: Vec<Ingress>) -> Snapshot {
    let (services, endpoint_slices) = supporting();
    Snapshot {
        ingresses,
        services,
        endpoint_slices,
        ..Snapshot::default()
    }
}

fn options(profile: Profile) -> CompileOptions {
    CompileOptions::with_profile(profile).watch_ingress_without_class(true)
}

/// A description of everything routing-relevant in a table, for equality.
fn fingerprint(s: &Snapshot, profile: Profile) -> String {
    let c = compile(s, &options(profile));
    let mut out = format!("{:?}\n", c.diagnostics);
    for r in c.table.routes() {
        let b = c.table.backend(r.backend_id());
        out.push_str(&format!(
            "{} {:?} {} {} {:?} {:?}\n",
            r.host(),
            r.matcher(),
            r.ingress(),
            r.field(),
            b.service(),
            b.endpoints()
        ));
    }
    out
}

fn outcome(d: &Decision<'_>) -> String {
    match d {
        Decision::Forward(f) => format!("forward {} {}", f.route.ingress(), f.route.field()),
        other => format!(
            "{:?} {:?}",
            other.status(),
            other
                .route()
                .map(|r| (r.ingress().to_string(), r.field().to_owned()))
        ),
    }
}

/// The naive reference for the standard profile: for each host level in order,
/// take the best-ranked matching route by a direct reading of the spec.
fn reference(s: &Snapshot, host: &str, path: &str) -> String {
    let c = compile(s, &options(Profile::Standard));
    let t = &c.table;
    let norm = ingress_core::routing::normalize_path(path).into_owned();
    let host = host.to_ascii_lowercase();
    type Level<'a> = Box<dyn Fn(&RouteHost) -> bool + 'a>;
    let levels: [Level<'_>; 3] = [
        Box::new(|h| matches!(h, RouteHost::Pattern(HostPattern::Exact(e)) if *e == host)),
        Box::new(
            |h| matches!(h, RouteHost::Pattern(HostPattern::Wildcard(w)) if host.split_once('.').is_some_and(|(first, rest)| !first.is_empty() && rest == w)),
        ),
        Box::new(|h| *h == RouteHost::Any),
    ];
    for level in levels {
        let mut best: Option<((bool, usize, u8), &ingress_core::routing::Route)> = None;
        for r in t.routes() {
            let RouteMatch::Path(p) = r.matcher() else {
                continue;
            };
            if !level(r.host()) {
                continue;
            }
            let key = p.as_str();
            let rank = match p.path_type() {
                PathType::Exact => (norm == key).then_some((true, key.len(), 2)),
                ty => {
                    let k = key.trim_end_matches('/');
                    let segs_k: Vec<&str> = k.split('/').filter(|s| !s.is_empty()).collect();
                    let segs_p: Vec<&str> = norm.split('/').filter(|s| !s.is_empty()).collect();
                    (segs_p.len() >= segs_k.len() && segs_p[..segs_k.len()] == segs_k[..])
                        .then_some((
                            false,
                            if k.is_empty() { 1 } else { k.len() },
                            if ty == PathType::Prefix { 1 } else { 0 },
                        ))
                }
            };
            if let Some(rank) = rank
                && best.as_ref().is_none_or(|(b, _)| rank > *b)
            {
                best = Some((rank, r));
            }
        }
        if let Some((_, r)) = best {
            return format!("forward-or-503 {} {}", r.ingress(), r.field());
        }
    }
    match t.catch_all() {
        Some(r) => format!("forward-or-503 {} {}", r.ingress(), r.field()),
        None => "404".into(),
    }
}

fn normalised_outcome(d: &Decision<'_>) -> String {
    match d.route() {
        Some(r) => format!("forward-or-503 {} {}", r.ingress(), r.field()),
        None => "404".into(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn compile_is_deterministic_under_shuffle(ings in prop::collection::vec(arb_ingress(), 0..6), seed in any::<u64>()) {
        let a = snapshot(ings.clone());
        let mut shuffled = ings;
        // Deterministic Fisher-Yates from the seed.
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let mut b = snapshot(shuffled);
        b.services.reverse();
        b.endpoint_slices.reverse();
        for profile in [Profile::Standard, Profile::IngressNginx] {
            prop_assert_eq!(fingerprint(&a, profile), fingerprint(&b, profile));
        }
    }

    #[test]
    fn large_hosts_agree_with_reference(
        paths in prop::collection::vec(arb_path(), 9..30),
        req_path in "[/a-c]{0,10}",
    ) {
        // One host with more paths than the scan threshold: the hashed lookup.
        let ing = Ingress {
            metadata: meta("big".into(), Some(1)),
            spec: IngressSpec {
                rules: vec![IngressRule { host: Some("a.com".into()), http: Some(HttpIngressRuleValue { paths }) }],
                ..IngressSpec::default()
            },
        };
        let s = snapshot(vec![ing]);
        let c = compile(&s, &options(Profile::Standard));
        let d = c.table.route(&RequestView::get(Scheme::Http, "a.com", &req_path));
        prop_assert_eq!(normalised_outcome(&d), reference(&s, "a.com", &req_path));
        for profile in [Profile::Standard, Profile::IngressNginx] {
            let c = compile(&s, &options(profile));
            let req = RequestView::get(Scheme::Http, "a.com", &req_path);
            prop_assert_eq!(outcome(&c.table.route(&req)), outcome(&c.table.explain(&req).decision));
        }
    }

    #[test]
    fn route_never_panics_and_agrees_with_reference(
        ings in prop::collection::vec(arb_ingress(), 0..6),
        host in "[a-cA-C.*:]{0,12}",
        path in "[/a-c.%2e]{0,14}",
        query in prop::option::of("[a-z=&]{0,6}"),
    ) {
        let s = snapshot(ings);
        for profile in [Profile::Standard, Profile::IngressNginx] {
            let c = compile(&s, &options(profile));
            let headers = HeaderMap::new();
            let req = RequestView { scheme: Scheme::Https, host: &host, path: &path, query: query.as_deref(), method: &Method::POST, headers: &headers, client_ip: None };
            let d = c.table.route(&req);
            let e = c.table.explain(&req);
            prop_assert_eq!(outcome(&d), outcome(&e.decision));
            if let Some(r) = d.route() {
                prop_assert!(e.steps.iter().any(|s| s.route.id() == r.id() && s.verdict == ingress_core::routing::Verdict::Chosen));
            }
        }
        let plain_host = host.split(':').next().unwrap_or("").trim_end_matches('.').to_owned();
        if !plain_host.is_empty() && !plain_host.contains('*') {
            let c = compile(&s, &options(Profile::Standard));
            let d = c.table.route(&RequestView::get(Scheme::Http, &host, &path));
            prop_assert_eq!(normalised_outcome(&d), reference(&s, &plain_host, &path));
        }
    }
}
