//! [`Snapshot`]: every input compile may read, already resolved.

use crate::model::{EndpointSlice, Ingress, IngressClass, Secret, Service};

/// Every object [`crate::compile()`] reads. Plain values, no lookup handles: the
/// adapters (file loader, Kubernetes watcher) fill it; the order of the vectors does
/// not matter (compile is deterministic under any order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Ingresses of every class (compile filters by class).
    pub ingresses: Vec<Ingress>,
    /// IngressClasses.
    pub ingress_classes: Vec<IngressClass>,
    /// Services.
    pub services: Vec<Service>,
    /// EndpointSlices.
    pub endpoint_slices: Vec<EndpointSlice>,
    /// Secrets (TLS certificates; later, auth files).
    pub secrets: Vec<Secret>,
}

impl Snapshot {
    /// An empty snapshot.
    pub fn new() -> Self {
        Snapshot::default()
    }

    /// Number of objects of every kind.
    pub fn len(&self) -> usize {
        self.ingresses.len()
            + self.ingress_classes.len()
            + self.services.len()
            + self.endpoint_slices.len()
            + self.secrets.len()
    }

    /// Whether the snapshot holds no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
