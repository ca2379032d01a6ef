//! Objects and waits shared by the tests.

use std::sync::Arc;
use std::time::Duration;

use ingress_core::{CompileOptions, Decision, RequestView, Scheme};
use ingress_kube::testing::{FakeApiServer, object};
use ingress_kube::{KubeOptions, KubeSource, Published};
use serde_json::{Value, json};

pub(crate) const CONTROLLER: &str = ingress_core::DEFAULT_CONTROLLER_NAME;

pub(crate) fn class(name: &str, controller: &str) -> Value {
    object(
        "networking.k8s.io/v1",
        "IngressClass",
        None,
        name,
        json!({"spec": {"controller": controller}}),
    )
}

pub(crate) fn ingress(ns: &str, name: &str, class: &str, host: &str, service: &str) -> Value {
    object(
        "networking.k8s.io/v1",
        "Ingress",
        Some(ns),
        name,
        json!({"spec": {"ingressClassName": class, "rules": [{"host": host, "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": service, "port": {"number": 80}}}}
        ]}}]}}),
    )
}

pub(crate) fn service(ns: &str, name: &str) -> Value {
    object(
        "v1",
        "Service",
        Some(ns),
        name,
        json!({"spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
    )
}

pub(crate) fn slice(ns: &str, service: &str, ip: &str) -> Value {
    object(
        "discovery.k8s.io/v1",
        "EndpointSlice",
        Some(ns),
        &format!("{service}-1"),
        json!({"metadata": {"labels": {"kubernetes.io/service-name": service}},
               "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
               "endpoints": [{"addresses": [ip]}]}),
    )
}

/// A server holding class `gw` (ours), Service `api` with one endpoint, and one
/// Ingress `web` for `a.example.com`.
pub(crate) async fn cluster() -> FakeApiServer {
    let server = FakeApiServer::start().await.expect("fake API server");
    server.apply(class("gw", CONTROLLER));
    server.apply(service("shop", "api"));
    server.apply(slice("shop", "api", "10.0.0.7"));
    server.apply(ingress("shop", "web", "gw", "a.example.com", "api"));
    server
}

pub(crate) fn options() -> KubeOptions {
    KubeOptions::new(CompileOptions::default()).debounce(Duration::from_millis(20))
}

pub(crate) async fn start(server: &FakeApiServer) -> KubeSource {
    KubeSource::start(server.client().expect("client"), options())
        .await
        .expect("source starts")
}

/// Wait until a published table satisfies `pred`.
pub(crate) async fn wait_for(
    source: &KubeSource,
    within: Duration,
    pred: impl Fn(&Published) -> bool,
) -> Arc<Published> {
    let mut rx = source.subscribe();
    let found =
        tokio::time::timeout(within, rx.wait_for(|p| p.as_ref().is_some_and(|p| pred(p)))).await;
    match found {
        Ok(Ok(p)) => p.clone().expect("some"),
        _ => panic!(
            "no table matched within {within:?}; last: {:#?}",
            source.current().map(|p| (p.version, p.diagnostics.clone()))
        ),
    }
}

/// Where `host/` is forwarded to, if anywhere.
pub(crate) fn endpoint(p: &Published, host: &str) -> Option<String> {
    match p.table.route(&RequestView::get(Scheme::Http, host, "/")) {
        Decision::Forward(f) => f.backend.endpoints().first().map(ToString::to_string),
        _ => None,
    }
}
