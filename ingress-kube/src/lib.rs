//! # ingress-kube
//!
//! The Kubernetes binding of the gateway: kube-rs watchers and reflector stores for
//! Ingress, IngressClass, Service, EndpointSlice, Secret and the
//! [`IngressGatewayConfig`] CRD; a debounced snapshot builder that compiles with
//! [`ingress_core::compile()`] and publishes through a [`tokio::sync::watch`] channel;
//! leader election on a `coordination.k8s.io/v1` Lease; Ingress status and Events.
//!
//! **Contract.** Nothing is published until every store has its initial list (a
//! table with routes missing is never served). Every publish is a whole, immutable
//! table ([`Published`]). A watch error backs off and re-lists (`410 Gone` included)
//! while the last good table keeps serving. One object that does not convert or
//! compile is left out alone, with a [`Diagnostic`](ingress_core::Diagnostic). Only
//! the Lease holder writes to the cluster.
//!
//! ```no_run
//! use ingress_core::CompileOptions;
//! use ingress_kube::{KubeOptions, KubeSource};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = kube::Client::try_default().await?;
//! let options = KubeOptions::new(CompileOptions::default());
//! let source = KubeSource::start(client, options).await?;
//! let mut tables = source.subscribe();
//! while tables.changed().await.is_ok() {
//!     if let Some(published) = tables.borrow_and_update().clone() {
//!         println!("v{}: {} routes", published.version, published.table.routes().len());
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Modules: [`source`] (watch, build, publish), [`gateway`] (the CRD and its
//! validation), [`crd`] (its YAML), [`convert`] (k8s-openapi to ingress-core),
//! [`lease`] (leader election), [`status`] (Ingress status and Events), and with the
//! `testing` feature, `testing` (a fake API server). See docs/kube.md.

mod build;
pub mod convert;
pub mod crd;
pub mod error;
pub mod gateway;
pub mod lease;
pub mod source;
pub mod status;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{StartError, WriteError};
pub use gateway::{GatewayConfig, IngressGatewayConfig, IngressGatewayConfigSpec};
pub use source::{BuildPath, KubeOptions, KubeSource, Published, Stores};
