//! Integration tests of ingress-kube against the fake API server: kube-rs's real
//! client and watchers, over HTTP on loopback.

#[path = "kube/common.rs"]
mod common;
#[path = "kube/crd.rs"]
mod crd;
#[path = "kube/faults.rs"]
mod faults;
#[path = "kube/source.rs"]
mod source;
#[path = "kube/status.rs"]
mod status;
