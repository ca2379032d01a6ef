//! # ingress-core
//!
//! The pure heart of the gateway: Kubernetes Ingress semantics as a library.
//!
//! **Contract.** No IO, no clock, no randomness, no threads: objects in, a route
//! table out ([`compile()`]); a request view in, a [`Decision`] out
//! ([`RouteTable::route`]). Time and randomness, where later features need them,
//! are arguments. Nothing here panics on input: every problem is a [`Diagnostic`]
//! with a stable [`Code`], and one bad Ingress is left out alone while the others
//! keep serving.
//!
//! ```
//! use ingress_core::{compile, CompileOptions, RequestView, Scheme, Decision};
//! use ingress_core::manifest::load_str;
//!
//! let yaml = r#"
//! apiVersion: networking.k8s.io/v1
//! kind: Ingress
//! metadata: {name: web, namespace: shop}
//! spec:
//!   ingressClassName: gw
//!   rules:
//!   - host: shop.example.com
//!     http:
//!       paths:
//!       - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
//! ---
//! apiVersion: v1
//! kind: Service
//! metadata: {name: api, namespace: shop}
//! spec: {ports: [{name: http, port: 80, targetPort: 8080}]}
//! ---
//! apiVersion: discovery.k8s.io/v1
//! kind: EndpointSlice
//! metadata: {name: api-1, namespace: shop, labels: {kubernetes.io/service-name: api}}
//! addressType: IPv4
//! ports: [{name: http, port: 8080}]
//! endpoints: [{addresses: ["10.0.0.7"]}]
//! "#;
//! let loaded = load_str("shop.yaml", yaml);
//! let options = CompileOptions::default().ingress_class("gw");
//! let compiled = compile(&loaded.snapshot, &options);
//! assert!(compiled.diagnostics.is_empty());
//!
//! let request = RequestView::get(Scheme::Http, "shop.example.com", "/api/cart?id=1");
//! match compiled.table.route(&request) {
//!     Decision::Forward(f) => {
//!         assert_eq!(f.backend.service(), "api");
//!         assert_eq!(f.backend.endpoints()[0].to_string(), "10.0.0.7:8080");
//!         assert_eq!(f.upstream_target(), "/api/cart?id=1");
//!     }
//!     other => panic!("expected forward, got {other:?}"),
//! }
//! // "No route" is a decision, not an error.
//! let miss = RequestView::get(Scheme::Http, "shop.example.com", "/apis");
//! assert_eq!(compiled.table.route(&miss).status().map(|s| s.as_u16()), Some(404));
//! ```
//!
//! Modules: [`model`] (wire types), [`snapshot`], [`compile`](mod@compile),
//! [`routing`], [`diagnostics`], [`tls`], [`http1`] (HTTP/1 framing checks), and with the default `manifests` feature,
//! [`manifest`] (YAML/JSON text to objects, with source positions).

pub mod annotations;
pub mod auth;
pub mod chunked;
pub mod compile;
pub mod diagnostics;
pub mod http1;
pub mod lb;
pub mod limits;
#[cfg(feature = "manifests")]
pub mod manifest;
pub mod model;
pub mod report;
pub mod routing;
pub mod snapshot;
pub mod tls;

pub use compile::{CompileOptions, Compiled, DEFAULT_CONTROLLER_NAME, Profile, compile};
pub use diagnostics::{Code, Diagnostic, Severity};
pub use routing::{Decision, Explanation, RequestView, RouteTable, Scheme};
pub use snapshot::Snapshot;
