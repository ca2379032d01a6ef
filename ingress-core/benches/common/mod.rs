//! Deterministic synthetic snapshots and request sets for the benchmarks.
//!
//! The shape follows the performance issue: `n` Ingresses, each with one exact host
//! (`host{i}.example.com`) and 5 paths mixing Prefix, Exact and
//! ImplementationSpecific; every 10th Ingress also carries a wildcard rule
//! `*.w{i/10}.example.com` with the same 5 paths (so 10,000 Ingresses carry 1,000
//! wildcard hosts). Each Ingress has its own Service (one named port) and one
//! EndpointSlice with 3 ready IPv4 endpoints. No randomness: the same `n` always gives
//! the same objects.

#![allow(dead_code)]

use std::collections::BTreeMap;

use ingress_core::model::{
    Endpoint, EndpointConditions, EndpointPort, EndpointSlice, HttpIngressPath,
    HttpIngressRuleValue, Ingress, IngressBackend, IngressClass, IngressClassSpec, IngressRule,
    IngressServiceBackend, IngressSpec, IntOrString, ObjectMeta, Service, ServiceBackendPort,
    ServicePort, ServiceSpec, Timestamp,
};
use ingress_core::{
    CompileOptions, DEFAULT_CONTROLLER_NAME, Profile, RequestView, Scheme, Snapshot,
};

/// The IngressClass every synthetic Ingress names.
pub(crate) const CLASS: &str = "bench";
/// Ingresses in the headline snapshot.
pub(crate) const INGRESSES: usize = 10_000;
/// One Ingress in this many also carries a wildcard host.
pub(crate) const WILDCARD_EVERY: usize = 10;
/// Paths per rule.
pub(crate) const PATHS_PER_RULE: usize = 5;
/// Endpoints per EndpointSlice.
pub(crate) const ENDPOINTS_PER_SLICE: usize = 3;

/// Namespaces the objects are spread over.
const NAMESPACES: usize = 100;

fn namespace(i: usize) -> String {
    format!("team-{:03}", i % NAMESPACES)
}

fn meta(name: String, namespace: String, created: i64) -> ObjectMeta {
    ObjectMeta {
        name,
        namespace: Some(namespace),
        creation_timestamp: Some(Timestamp::from_unix(created)),
        ..ObjectMeta::default()
    }
}

/// The exact host of Ingress `i`.
pub(crate) fn exact_host(i: usize) -> String {
    format!("host{i}.example.com")
}

/// The wildcard suffix number carried by Ingress `i`, if any.
pub(crate) fn wildcard_of(i: usize) -> Option<usize> {
    i.is_multiple_of(WILDCARD_EVERY)
        .then_some(i / WILDCARD_EVERY)
}

/// The 5 rule paths of Ingress `i`: (path, pathType).
fn rule_paths(i: usize) -> [(String, &'static str); PATHS_PER_RULE] {
    [
        ("/api".to_owned(), "Prefix"),
        (format!("/api/v{}/orders", 1 + i % 3), "Prefix"),
        ("/healthz".to_owned(), "Exact"),
        (format!("/login/{}", i % 7), "Exact"),
        ("/static".to_owned(), "ImplementationSpecific"),
    ]
}

fn rule(host: String, service: &str, i: usize) -> IngressRule {
    let paths = rule_paths(i)
        .into_iter()
        .map(|(path, ty)| HttpIngressPath {
            path: Some(path),
            path_type: Some(ty.to_owned()),
            backend: IngressBackend {
                service: Some(IngressServiceBackend {
                    name: service.to_owned(),
                    port: Some(ServiceBackendPort {
                        name: None,
                        number: Some(80),
                    }),
                }),
                resource: None,
            },
        })
        .collect();
    IngressRule {
        host: Some(host),
        http: Some(HttpIngressRuleValue { paths }),
    }
}

/// The synthetic snapshot with `n` Ingresses (and their Services and slices).
pub(crate) fn snapshot(n: usize) -> Snapshot {
    let mut snap = Snapshot::new();
    snap.ingress_classes.push(IngressClass {
        metadata: ObjectMeta {
            name: CLASS.to_owned(),
            ..ObjectMeta::default()
        },
        spec: IngressClassSpec {
            controller: DEFAULT_CONTROLLER_NAME.to_owned(),
            parameters: None,
        },
    });
    snap.ingresses.reserve(n);
    snap.services.reserve(n);
    snap.endpoint_slices.reserve(n);
    for i in 0..n {
        let ns = namespace(i);
        let created = 1_700_000_000 + i as i64;
        let svc = format!("svc-{i}");

        let mut rules = vec![rule(exact_host(i), &svc, i)];
        if let Some(w) = wildcard_of(i) {
            rules.push(rule(format!("*.w{w}.example.com"), &svc, i));
        }
        snap.ingresses.push(Ingress {
            metadata: meta(format!("ing-{i}"), ns.clone(), created),
            spec: IngressSpec {
                ingress_class_name: Some(CLASS.to_owned()),
                default_backend: None,
                tls: Vec::new(),
                rules,
            },
        });

        snap.services.push(Service {
            metadata: meta(svc.clone(), ns.clone(), created),
            spec: ServiceSpec {
                type_: None,
                ports: vec![ServicePort {
                    name: Some("http".to_owned()),
                    port: 80,
                    target_port: Some(IntOrString::Int(8080)),
                    protocol: Some("TCP".to_owned()),
                    app_protocol: None,
                }],
                external_name: None,
            },
        });

        let mut slice_meta = meta(format!("{svc}-x7k2p"), ns, created);
        slice_meta.labels =
            BTreeMap::from([(EndpointSlice::SERVICE_NAME_LABEL.to_owned(), svc.clone())]);
        let endpoints = (0..ENDPOINTS_PER_SLICE)
            .map(|e| {
                let k = i * ENDPOINTS_PER_SLICE + e;
                Endpoint {
                    addresses: vec![format!(
                        "10.{}.{}.{}",
                        k >> 16 & 0xff,
                        k >> 8 & 0xff,
                        k & 0xff
                    )],
                    conditions: EndpointConditions {
                        ready: Some(true),
                        serving: Some(true),
                        terminating: Some(false),
                    },
                }
            })
            .collect();
        snap.endpoint_slices.push(EndpointSlice {
            metadata: slice_meta,
            address_type: "IPv4".to_owned(),
            endpoints,
            ports: vec![EndpointPort {
                name: Some("http".to_owned()),
                port: Some(8080),
                protocol: Some("TCP".to_owned()),
            }],
        });
    }
    snap
}

/// Compile options for `profile` (the class object in the snapshot makes them ours).
pub(crate) fn options(profile: Profile) -> CompileOptions {
    CompileOptions::with_profile(profile)
}

/// Every profile, with the name used in benchmark ids.
pub(crate) const PROFILES: [(Profile, &str); 2] = [
    (Profile::Standard, "standard"),
    (Profile::IngressNginx, "ingress-nginx"),
];

/// Routes a compiled `snapshot(n)` must hold.
pub(crate) fn expected_routes(n: usize) -> usize {
    let wildcards = n.div_ceil(WILDCARD_EVERY);
    (n + wildcards) * PATHS_PER_RULE
}

/// Requests in each rotating request set (a power of two).
pub(crate) const REQUESTS: usize = 4096;

/// Spread `k` over `0..n` (a stride coprime with the sizes used), so consecutive
/// requests touch different hosts and hash buckets, as real traffic does.
fn spread(k: usize, n: usize) -> usize {
    k.wrapping_mul(7919) % n
}

/// A request path that hits one of Ingress `i`'s paths (`k` picks which kind).
fn hit_path(i: usize, k: usize) -> String {
    match k % 4 {
        0 => format!("/api/v{}/orders/{k}", 1 + i % 3),
        1 => "/healthz".to_owned(),
        2 => format!("/static/js/app-{k}.js"),
        _ => format!("/api/users/{k}/cart"),
    }
}

/// (host, path-and-query) pairs of one request set; see [`views`].
pub(crate) type Requests = Vec<(String, String)>;

/// Requests to exact hosts of `snapshot(n)`, every one a route hit.
pub(crate) fn exact_requests(n: usize) -> Requests {
    (0..REQUESTS)
        .map(|k| {
            let i = spread(k, n);
            (exact_host(i), hit_path(i, k))
        })
        .collect()
}

/// Requests to hosts only a wildcard of `snapshot(n)` covers, every one a route hit.
pub(crate) fn wildcard_requests(n: usize) -> Requests {
    let wildcards = n.div_ceil(WILDCARD_EVERY);
    (0..REQUESTS)
        .map(|k| {
            let w = spread(k, wildcards);
            let i = w * WILDCARD_EVERY;
            (format!("tenant{k}.w{w}.example.com"), hit_path(i, k))
        })
        .collect()
}

/// Requests to hosts nothing covers: every one a 404.
pub(crate) fn miss_requests() -> Requests {
    (0..REQUESTS)
        .map(|k| (format!("host{k}.unknown.example.org"), hit_path(k, k)))
        .collect()
}

/// Requests to exact hosts whose paths need normalising (dot segments, repeated
/// slashes, percent-encoded unreserved bytes): the allocating path of `route()`.
pub(crate) fn normalize_requests(n: usize) -> Requests {
    (0..REQUESTS)
        .map(|k| {
            let i = spread(k, n);
            let v = 1 + i % 3;
            (
                exact_host(i),
                format!("/static/../api/./v{v}//orders/%31{k}"),
            )
        })
        .collect()
}

/// Exact-host hits with a query string (`route()` then builds `path?query`).
pub(crate) fn query_requests(n: usize) -> Requests {
    (0..REQUESTS)
        .map(|k| {
            let i = spread(k, n);
            (
                exact_host(i),
                format!("{}?page={k}&sort=asc", hit_path(i, k)),
            )
        })
        .collect()
}

/// Borrowed request views over a request set.
pub(crate) fn views(reqs: &Requests) -> Vec<RequestView<'_>> {
    reqs.iter()
        .map(|(h, p)| RequestView::get(Scheme::Http, h, p))
        .collect()
}
