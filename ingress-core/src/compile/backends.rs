//! Resolving backends: Service port, targetPort, EndpointSlices.

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

/// `s` as an IP address, as `IpAddr::from_str` reads it; plain dotted-quad IPv4
/// (nearly every endpoint) without the general parser.
fn parse_ip(s: &str) -> Option<IpAddr> {
    let b = s.as_bytes();
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (k, octet) in octets.iter_mut().enumerate() {
        let start = i;
        let mut v: u32 = 0;
        while i < b.len() && b[i].is_ascii_digit() && i - start < 3 {
            v = v * 10 + u32::from(b[i] - b'0');
            i += 1;
        }
        let len = i - start;
        // Empty, over 255 or a leading zero: let the general parser decide.
        if len == 0 || v > 255 || (len > 1 && b[start] == b'0') {
            return s.parse().ok();
        }
        *octet = v as u8;
        if k < 3 {
            if b.get(i) != Some(&b'.') {
                return s.parse().ok();
            }
            i += 1;
        }
    }
    if i != b.len() {
        return s.parse().ok();
    }
    Some(IpAddr::from(octets))
}

/// What resolving found, for diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
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
            service: String::from(&**name),
            port: port.clone(),
            service_port: None,
            endpoints: Vec::new(),
            status: BackendStatus::ServiceNotFound,
        };
        let Some(svc) = self.services.get(&(namespace, &**name)) else {
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
        backend.endpoints = endpoints;
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
    ) -> (Vec<EndpointAddr>, Vec<EndpointAddr>) {
        let mut serving = Vec::new();
        let want = sp.name.as_deref().unwrap_or("");
        let Some(slices) = self.slices.get(&(namespace, service)) else {
            return (Vec::new(), serving);
        };
        let mut ready = Vec::with_capacity(slices.iter().map(|s| s.endpoints.len()).sum());
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
                    _ => match parse_ip(addr) {
                        Some(ip) => EndpointHost::Ip(ip),
                        None => continue,
                    },
                };
                let c = &ep.conditions;
                let is_ready = c.ready.unwrap_or(true);
                let is_serving = c.serving.unwrap_or(is_ready);
                let terminating = c.terminating.unwrap_or(false);
                let addr = EndpointAddr { host, port };
                if is_ready {
                    ready.push(addr);
                } else if is_serving && !terminating {
                    serving.push(addr);
                }
            }
        }
        // Sorted and distinct, as a set would give them.
        for list in [&mut ready, &mut serving] {
            list.sort_unstable();
            list.dedup();
        }
        (ready, serving)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_ip;
    use proptest::prelude::*;

    #[test]
    fn parse_ip_reads_as_std_does() {
        for s in [
            "10.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "256.0.0.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.",
            "1.2.3.4.5",
            "1..2.3",
            "",
            "1.2.3.4 ",
            "1234.1.1.1",
            "::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "example.com",
        ] {
            assert_eq!(parse_ip(s), s.parse().ok(), "{s:?}");
        }
    }

    proptest! {
        #[test]
        fn parse_ip_agrees_with_std(s in "[0-9.:a-f]{0,20}") {
            prop_assert_eq!(parse_ip(&s), s.parse().ok());
        }
    }
}
