//! Resolving backends: Service port, targetPort, EndpointSlices.

use std::collections::BTreeSet;

use rustc_hash::FxHashMap;
use std::net::IpAddr;

use crate::model::{EndpointSlice, IntOrString, Service, ServicePort};
use crate::routing::{Backend, BackendId, BackendStatus, EndpointAddr, EndpointHost, PortRef};

use super::validate::BackendSpec;

/// Services and slices indexed by namespace and name.
pub(crate) struct ServiceIndex<'s> {
    pub(crate) services: FxHashMap<(&'s str, &'s str), &'s Service>,
    pub(crate) slices: FxHashMap<(&'s str, &'s str), Vec<&'s EndpointSlice>>,
}

/// What resolving found, for diagnostics.
#[derive(Debug, Clone)]
pub(crate) enum Resolution {
    Ok,
    OnlyServing,
    ServiceNotFound,
    PortNotFound { available: Vec<String> },
    NoEndpoints,
    Unsupported,
}

impl<'s> ServiceIndex<'s> {
    pub(crate) fn resolve(
        &self,
        id: BackendId,
        namespace: &str,
        spec: &BackendSpec,
    ) -> (Backend, Resolution) {
        let (name, port) = match spec {
            BackendSpec::Service { name, port } => (name, port),
            BackendSpec::Resource { kind, name } => {
                return (
                    Backend {
                        id,
                        namespace: namespace.to_owned(),
                        service: format!("{kind}/{name}"),
                        port: PortRef::Name(String::new()),
                        service_port: None,
                        endpoints: Vec::new(),
                        status: BackendStatus::Unsupported,
                    },
                    Resolution::Unsupported,
                );
            }
        };
        let mut backend = Backend {
            id,
            namespace: namespace.to_owned(),
            service: name.clone(),
            port: port.clone(),
            service_port: None,
            endpoints: Vec::new(),
            status: BackendStatus::ServiceNotFound,
        };
        let Some(svc) = self.services.get(&(namespace, name.as_str())) else {
            return (backend, Resolution::ServiceNotFound);
        };
        let sp = svc.spec.ports.iter().find(|p| match port {
            PortRef::Number(n) => p.port == i64::from(*n),
            PortRef::Name(n) => p.name.as_deref() == Some(n.as_str()),
        });
        let Some(sp) = sp else {
            backend.status = BackendStatus::PortNotFound;
            let available = svc
                .spec
                .ports
                .iter()
                .map(|p| match &p.name {
                    Some(n) if !n.is_empty() => format!("{n} ({})", p.port),
                    _ => p.port.to_string(),
                })
                .collect();
            return (backend, Resolution::PortNotFound { available });
        };
        backend.service_port = u16::try_from(sp.port).ok();

        if svc.is_external_name() {
            let target = match &sp.target_port {
                Some(IntOrString::Int(n)) => u16::try_from(*n).ok(),
                _ => backend.service_port,
            };
            let host = svc
                .spec
                .external_name
                .as_deref()
                .unwrap_or("")
                .trim_end_matches('.');
            if let (Some(port), false) = (target, host.is_empty()) {
                let host = match host.parse::<IpAddr>() {
                    Ok(ip) => EndpointHost::Ip(ip),
                    Err(_) => EndpointHost::Dns(host.to_ascii_lowercase()),
                };
                backend.endpoints.push(EndpointAddr { host, port });
                backend.status = BackendStatus::Ready;
                return (backend, Resolution::Ok);
            }
            backend.status = BackendStatus::NoEndpoints;
            return (backend, Resolution::NoEndpoints);
        }

        let (ready, serving) = self.endpoints(namespace, name, sp);
        let (endpoints, resolution) = if !ready.is_empty() {
            (ready, Resolution::Ok)
        } else if !serving.is_empty() {
            (serving, Resolution::OnlyServing)
        } else {
            backend.status = BackendStatus::NoEndpoints;
            return (backend, Resolution::NoEndpoints);
        };
        backend.endpoints = endpoints.into_iter().collect();
        backend.status = BackendStatus::Ready;
        (backend, resolution)
    }

    /// Ready endpoints, and serving-but-not-ready non-terminating ones, for one
    /// Service port. The slice port is matched by the Service port's name, which is
    /// how EndpointSlices carry the resolved targetPort.
    fn endpoints(
        &self,
        namespace: &str,
        service: &str,
        sp: &ServicePort,
    ) -> (BTreeSet<EndpointAddr>, BTreeSet<EndpointAddr>) {
        let mut ready = BTreeSet::new();
        let mut serving = BTreeSet::new();
        let want = sp.name.as_deref().unwrap_or("");
        let Some(slices) = self.slices.get(&(namespace, service)) else {
            return (ready, serving);
        };
        for slice in slices {
            let port = slice
                .ports
                .iter()
                .find(|p| p.name.as_deref().unwrap_or("") == want)
                .and_then(|p| p.port)
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p > 0);
            let port = match (port, &sp.target_port) {
                (Some(p), _) => p,
                // A slice without ports: fall back to a numeric targetPort.
                (None, Some(IntOrString::Int(n))) if slice.ports.is_empty() => {
                    match u16::try_from(*n) {
                        Ok(p) if p > 0 => p,
                        _ => continue,
                    }
                }
                _ => continue,
            };
            for ep in &slice.endpoints {
                let Some(addr) = ep.addresses.first() else {
                    continue;
                };
                let host = match slice.address_type.as_str() {
                    "FQDN" => EndpointHost::Dns(addr.to_ascii_lowercase()),
                    _ => match addr.parse::<IpAddr>() {
                        Ok(ip) => EndpointHost::Ip(ip),
                        Err(_) => continue,
                    },
                };
                let c = &ep.conditions;
                let is_ready = c.ready.unwrap_or(true);
                let is_serving = c.serving.unwrap_or(is_ready);
                let terminating = c.terminating.unwrap_or(false);
                let addr = EndpointAddr { host, port };
                if is_ready {
                    ready.insert(addr);
                } else if is_serving && !terminating {
                    serving.insert(addr);
                }
            }
        }
        (ready, serving)
    }
}
