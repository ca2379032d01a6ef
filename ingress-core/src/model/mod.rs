//! Serde types for the Kubernetes wire format of the objects the gateway reads.
//!
//! These mirror `networking.k8s.io/v1` Ingress and IngressClass, `v1` Service and
//! Secret, and `discovery.k8s.io/v1` EndpointSlice, keeping only the fields routing
//! needs. Unknown fields are ignored, as the API server's clients do. The structs hold
//! the wire values as written (strings stay strings); [`crate::compile()`] turns them
//! into typed values ([`HostPattern`], [`IngressPath`]...) and reports what is invalid.

mod endpoints;
mod ingress;
mod meta;
mod names;
mod secret;
mod service;

pub use endpoints::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
pub use ingress::{
    HttpIngressPath, HttpIngressRuleValue, Ingress, IngressBackend, IngressClass,
    IngressClassParameters, IngressClassSpec, IngressRule, IngressServiceBackend, IngressSpec,
    IngressTls, ServiceBackendPort, TypedLocalObjectReference,
};
pub use meta::{ObjectMeta, Timestamp};
pub use names::{
    HostPattern, IngressPath, InvalidHost, InvalidPath, ObjectKind, ObjectRef, PathType,
};
pub use secret::{Secret, SecretData};
pub use service::{IntOrString, Service, ServicePort, ServiceSpec};
