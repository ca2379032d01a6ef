//! Leader election, Ingress status, gateway config status and Events.

use std::time::Duration;

use ingress_kube::lease::{LeaderElector, LeaseOptions};
use ingress_kube::status::{PublishAddress, StatusOptions, StatusWriter};
use ingress_kube::testing::{FakeApiServer, object};
use serde_json::json;

use crate::common::*;

fn elector(server: &FakeApiServer, id: &str) -> LeaderElector {
    let opts = LeaseOptions::new("ingress", "ingress-rs-leader", id)
        .timings(Duration::from_secs(2), Duration::from_millis(100));
    LeaderElector::new(server.client().expect("client"), opts)
}

#[tokio::test]
async fn one_of_two_replicas_leads_and_the_other_takes_over_when_it_stops() {
    let server = FakeApiServer::start().await.expect("server");
    let (a, b) = (elector(&server, "a"), elector(&server, "b"));
    assert!(a.round().await.expect("round"));
    assert!(!b.round().await.expect("round"));
    assert!(a.round().await.expect("renew"));
    let lease = server
        .get("Lease", "ingress", "ingress-rs-leader")
        .expect("lease");
    assert_eq!(lease["spec"]["holderIdentity"], "a");

    // A stale write loses: b read the Lease, then a renewed it.
    let (a_rx, a_task) = a.spawn();
    let (b_rx, b_task) = b.spawn();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(*a_rx.borrow() && !*b_rx.borrow());
    a_task.abort();
    // b takes over once a's hold (2 s) has expired.
    let mut b_rx2 = b_rx.clone();
    tokio::time::timeout(Duration::from_secs(5), b_rx2.wait_for(|l| *l))
        .await
        .expect("b leads")
        .expect("open");
    let lease = server
        .get("Lease", "ingress", "ingress-rs-leader")
        .expect("lease");
    assert_eq!(lease["spec"]["holderIdentity"], "b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    b_task.abort();

    // Released on shutdown: a takes it at once, without waiting for the hold to end.
    let (a, b) = (elector(&server, "a"), elector(&server, "b"));
    assert!(!a.release().await.expect("not ours"));
    assert!(b.release().await.expect("release"));
    assert!(a.round().await.expect("takes over"));
}

#[tokio::test]
async fn only_the_leader_writes_status_and_events() {
    let server = cluster().await;
    server.apply(ingress("shop", "bad", "gw", "Not a host!", "api"));
    server.apply(object(
        "v1",
        "Service",
        Some("ingress"),
        "gateway",
        json!({
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10", "ports": [{"port": 80}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}}),
    ));
    let source = start(&server).await;
    wait_for(&source, Duration::from_secs(5), |_| true).await;

    let mut tasks = Vec::new();
    for id in ["a", "b"] {
        let (leader, t) = elector(&server, id).spawn();
        tasks.push(t);
        let mut opts = StatusOptions::new(
            Some(PublishAddress::Service {
                namespace: "ingress".into(),
                name: "gateway".into(),
            }),
            "ingress-rs",
        );
        opts.instance = Some(id.into());
        let writer = StatusWriter::new(server.client().expect("client"), opts);
        tasks.push(writer.spawn(source.stores().clone(), source.subscribe(), leader));
    }
    let status = || {
        server
            .get("Ingress", "shop", "web")
            .map(|i| i["status"]["loadBalancer"]["ingress"].clone())
    };
    for _ in 0..50 {
        if status() == Some(json!([{"ip": "203.0.113.9"}])) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status(), Some(json!([{"ip": "203.0.113.9"}])));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let writes = server.writes();
    let status_writes: Vec<_> = writes.iter().filter(|w| w.plural == "ingresses").collect();
    assert_eq!(status_writes.len(), 1, "{status_writes:#?}");
    assert_eq!(status_writes[0].subresource.as_deref(), Some("status"));
    assert_eq!(status_writes[0].name, "web");
    let events: Vec<_> = writes
        .iter()
        .filter(|w| w.plural == "events" && w.method == "POST")
        .collect();
    // The invalid host, and the Ingress left out because of it; sent once each.
    assert_eq!(events.len(), 2, "{events:#?}");
    for ev in &events {
        assert_eq!(ev.body["regarding"]["name"], "bad");
        assert_eq!(ev.body["type"], "Warning");
    }
    let notes: Vec<&str> = events
        .iter()
        .filter_map(|e| e.body["note"].as_str())
        .collect();
    assert!(
        notes.iter().any(|n| n.starts_with("[invalid-host] ")),
        "{notes:?}"
    );
    assert!(events.iter().any(|e| e.body["reason"] == "IngressDropped"));

    // Moved to a class that is not ours: the leader clears the addresses it wrote.
    server.apply(ingress("shop", "web", "elsewhere", "a.example.com", "api"));
    for _ in 0..50 {
        if status() == Some(json!([])) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status(), Some(json!([])));
    for t in tasks {
        t.abort();
    }
}

#[tokio::test]
async fn the_gateway_config_status_says_why_it_was_refused() {
    let server = cluster().await;
    let mut gw = class("gw", CONTROLLER);
    gw["spec"]["parameters"] = json!({"apiGroup": "gateway.ingress-rs.io", "kind": "IngressGatewayConfig", "name": "main"});
    server.apply(gw);
    server.apply(object(
        "gateway.ingress-rs.io/v1alpha1",
        "IngressGatewayConfig",
        None,
        "main",
        json!({"spec": {"listeners": [{"name": "http", "port": 70000, "protocol": "HTTP"}]}}),
    ));
    let source = start(&server).await;
    let p = wait_for(&source, Duration::from_secs(5), |_| true).await;
    let mut writer = StatusWriter::new(
        server.client().expect("client"),
        StatusOptions::new(None, "ingress-rs"),
    );
    let report = writer.sync(&p, source.stores()).await.expect("sync");
    assert!(report.gateway_status);
    let cfg = server
        .get("IngressGatewayConfig", "", "main")
        .expect("config");
    assert_eq!(cfg["status"]["accepted"], false);
    assert_eq!(cfg["status"]["reason"], "Invalid");
    assert!(
        cfg["status"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("spec.listeners[0].port"))
    );
}
