//! The test suite's fake Kubernetes API server ([`ingress_kube::testing::FakeApiServer`])
//! as a process, for benchmarks that run `ingress-proxy --kube` against a cluster of
//! many objects without a cluster (`bench/kube-apply.sh`, scenario 6 of the
//! performance issue).
//!
//! ```text
//! cargo run --release -p ingress-kube --features testing --example fake-apiserver -- \
//!     MANIFESTS_DIR KUBECONFIG_OUT
//! ```
//!
//! It loads every Ingress, IngressClass, Service, EndpointSlice and Secret of the
//! manifests folder (read as `ingressctl` reads it; a file with errors stops it),
//! serves them on a free loopback port with the real list/watch wire format, writes
//! a kubeconfig for that address to `KUBECONFIG_OUT`, prints `ready <address>
//! <objects>` on stdout and runs until interrupted. Clients change objects with
//! ordinary API calls (`PUT .../namespaces/NS/ingresses/NAME` with the whole object):
//! watchers see `MODIFIED` events, as from a real API server.

use std::path::PathBuf;

use anyhow::{Context, bail};
use ingress_core::Severity;
use ingress_kube::testing::FakeApiServer;
use serde::Serialize;
use serde_json::Value;

fn wire<T: Serialize>(api_version: &str, kind: &str, object: &T) -> anyhow::Result<Value> {
    let mut v = serde_json::to_value(object).with_context(|| format!("serialising a {kind}"))?;
    let Some(map) = v.as_object_mut() else {
        bail!("a {kind} did not serialise to an object");
    };
    map.insert("apiVersion".into(), api_version.into());
    map.insert("kind".into(), kind.into());
    Ok(v)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, kubeconfig] = &args[..] else {
        bail!("usage: fake-apiserver MANIFESTS_DIR KUBECONFIG_OUT");
    };
    let input = ingress_files::read(&[PathBuf::from(dir)]).with_context(|| dir.clone())?;
    let loaded = input.loaded;
    if let Some(e) = loaded
        .diagnostics
        .iter()
        .find(|d| d.diagnostic.severity == Severity::Error)
    {
        bail!("{dir}: {}", e.diagnostic.message);
    }
    let s = loaded.snapshot;
    let mut objects = Vec::with_capacity(s.len());
    for c in &s.ingress_classes {
        objects.push(wire("networking.k8s.io/v1", "IngressClass", c)?);
    }
    for x in &s.services {
        objects.push(wire("v1", "Service", x)?);
    }
    for x in &s.endpoint_slices {
        objects.push(wire("discovery.k8s.io/v1", "EndpointSlice", x)?);
    }
    for x in &s.secrets {
        objects.push(wire("v1", "Secret", x)?);
    }
    for x in &s.ingresses {
        objects.push(wire("networking.k8s.io/v1", "Ingress", x)?);
    }
    let server = FakeApiServer::start().await?;
    let count = objects.len();
    for o in objects {
        server.apply(o);
    }
    let addr = server.addr();
    let config = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: \"http://{addr}\"}}\n\
         users:\n- name: fake\n  user: {{}}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: fake, namespace: default}}\n\
         current-context: fake\n"
    );
    std::fs::write(kubeconfig, config).with_context(|| kubeconfig.clone())?;
    println!("ready {addr} {count}");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
