//! Ingress status and Events, written by the leader only.
//!
//! - `status.loadBalancer.ingress` of every Ingress the published table serves (one
//!   route or more) is set to the gateway's addresses: those of `--publish-service`
//!   (its load balancer ingress, else its external IPs, else its cluster IP) or the
//!   fixed `--publish-status-address` list. It is patched only when it differs. An
//!   Ingress no longer served (moved to another class, or left out for errors) whose
//!   status holds exactly our addresses has them cleared.
//! - Every Warning or Error [`Diagnostic`] about an Ingress becomes a Kubernetes Event
//!   on it (`type: Warning`, reason: the code in PascalCase, note: `[code] field:
//!   message`), once per appearance: a diagnostic that stays is not re-sent.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ingress_core::model::{ObjectKind, ObjectRef};
use ingress_core::{Diagnostic, Severity};
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use k8s_openapi::api::networking::v1::{Ingress, IngressLoadBalancerIngress};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector;
use kube::{Client, Resource};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::WriteError;
use crate::gateway::{IngressGatewayConfig, IngressGatewayConfigStatus};
use crate::source::{GatewayConfigState, Published, Stores};

/// Where the gateway's addresses come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishAddress {
    /// A Service (`--publish-service NS/NAME`).
    Service {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// Fixed IPs or hostnames (`--publish-status-address`).
    Addresses(Vec<String>),
}

impl std::str::FromStr for PublishAddress {
    type Err = String;
    /// `NS/NAME` for a Service.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(PublishAddress::Service {
                    namespace: ns.to_owned(),
                    name: name.to_owned(),
                })
            }
            _ => Err(format!("{s:?} is not NAMESPACE/NAME")),
        }
    }
}

/// What the status writer does.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StatusOptions {
    /// Where addresses come from; `None` writes no Ingress status.
    pub publish: Option<PublishAddress>,
    /// Write Ingress status (off for a side-by-side migration).
    pub write_status: bool,
    /// Send Events for diagnostics.
    pub events: bool,
    /// The reporting controller's name (Events' `reportingController`).
    pub controller: String,
    /// This replica's name (Events' `reportingInstance`).
    pub instance: Option<String>,
    /// How often the status is checked again without a new table.
    pub resync: Duration,
}

impl StatusOptions {
    /// Status from `publish`, Events on, reported as `controller`.
    pub fn new(publish: Option<PublishAddress>, controller: impl Into<String>) -> Self {
        StatusOptions {
            publish,
            write_status: true,
            events: true,
            controller: controller.into(),
            instance: None,
            resync: Duration::from_secs(10),
        }
    }
}

/// What one sync wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncReport {
    /// Ingresses whose status was patched.
    pub statuses: usize,
    /// Events sent.
    pub events: usize,
    /// Whether the gateway config's status was patched.
    pub gateway_status: bool,
}

/// Writes Ingress status and Events.
pub struct StatusWriter {
    client: Client,
    options: StatusOptions,
    recorder: Recorder,
    sent: BTreeSet<Diagnostic>,
}

impl std::fmt::Debug for StatusWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusWriter")
            .field("options", &self.options)
            .field("sent", &self.sent.len())
            .finish_non_exhaustive()
    }
}

impl StatusWriter {
    /// A writer using `client`.
    pub fn new(client: Client, options: StatusOptions) -> Self {
        let reporter = Reporter {
            controller: options.controller.clone(),
            instance: options.instance.clone(),
        };
        StatusWriter {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            options,
            sent: BTreeSet::new(),
        }
    }

    /// The addresses to publish now (empty when unknown yet).
    pub async fn addresses(&self) -> Result<Vec<IngressLoadBalancerIngress>, WriteError> {
        match &self.options.publish {
            None => Ok(Vec::new()),
            Some(PublishAddress::Addresses(a)) => Ok(a.iter().map(|s| lb_entry(s)).collect()),
            Some(PublishAddress::Service { namespace, name }) => {
                let api: Api<Service> = Api::namespaced(self.client.clone(), namespace);
                let svc = api.get_opt(name).await.map_err(|source| WriteError::Api {
                    what: format!("reading Service {namespace}/{name}"),
                    source,
                })?;
                Ok(svc.map(|s| service_addresses(&s)).unwrap_or_default())
            }
        }
    }

    /// Bring statuses and Events in line with `published`.
    pub async fn sync(
        &mut self,
        published: &Published,
        stores: &Stores,
    ) -> Result<SyncReport, WriteError> {
        let mut report = SyncReport::default();
        let served: BTreeSet<&ObjectRef> = published
            .table
            .routes()
            .iter()
            .map(|r| r.ingress())
            .collect();
        if self.options.write_status && self.options.publish.is_some() {
            let want = self.addresses().await?;
            for ing in stores.ingresses.state() {
                let (Some(ns), Some(name)) = (
                    ing.metadata.namespace.as_deref(),
                    ing.metadata.name.as_deref(),
                ) else {
                    continue;
                };
                let have = ing
                    .status
                    .as_ref()
                    .and_then(|s| s.load_balancer.as_ref())
                    .and_then(|l| l.ingress.clone())
                    .unwrap_or_default();
                let ours = served.contains(&&ObjectRef::namespaced(ObjectKind::Ingress, ns, name));
                let set_to = if ours {
                    want.clone()
                } else if !want.is_empty() && have == want {
                    // No longer served by us (another class, or left out): clear the
                    // addresses we wrote, and only those.
                    Vec::new()
                } else {
                    continue;
                };
                if have == set_to {
                    continue;
                }
                let api: Api<Ingress> = Api::namespaced(self.client.clone(), ns);
                let patch = json!({"status": {"loadBalancer": {"ingress": set_to}}});
                api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(|source| WriteError::Api {
                        what: format!("patching the status of Ingress {ns}/{name}"),
                        source,
                    })?;
                report.statuses += 1;
            }
        }
        if let Some(g) = &published.gateway {
            report.gateway_status = self.sync_gateway_status(g, stores).await?;
        }
        if self.options.events {
            let current: BTreeSet<Diagnostic> = published
                .diagnostics
                .iter()
                .filter(|d| d.severity >= Severity::Warning)
                .filter(|d| {
                    d.object
                        .as_ref()
                        .is_some_and(|o| o.kind == ObjectKind::Ingress)
                })
                .cloned()
                .collect();
            let mut sent = BTreeSet::new();
            for d in &current {
                if self.sent.contains(d) {
                    sent.insert(d.clone());
                    continue;
                }
                let Some(reference) = d.object.as_ref().and_then(|r| reference(stores, r)) else {
                    continue;
                };
                let note = match &d.field {
                    Some(f) => format!("[{}] {f}: {}", d.code.as_str(), d.message),
                    None => format!("[{}] {}", d.code.as_str(), d.message),
                };
                let event = Event {
                    type_: EventType::Warning,
                    reason: pascal(d.code.as_str()),
                    note: Some(truncate(note, 1024)),
                    action: "Compile".into(),
                    secondary: None,
                };
                match self.recorder.publish(&event, &reference).await {
                    Ok(()) => {
                        report.events += 1;
                        sent.insert(d.clone());
                    }
                    Err(e) => tracing::warn!(error = %e, "sending an Event failed"),
                }
            }
            self.sent = sent;
        }
        Ok(report)
    }

    async fn sync_gateway_status(
        &self,
        g: &GatewayConfigState,
        stores: &Stores,
    ) -> Result<bool, WriteError> {
        let Some(configs) = &stores.gateway_configs else {
            return Ok(false);
        };
        let Some(obj) = configs.get(&reflector::ObjectRef::new(&g.name)) else {
            return Ok(false);
        };
        let want = IngressGatewayConfigStatus::of(&g.result, g.generation);
        if obj.status.as_ref() == Some(&want) {
            return Ok(false);
        }
        let api: Api<IngressGatewayConfig> = Api::all(self.client.clone());
        let patch = json!({ "status": want });
        api.patch_status(&g.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|source| WriteError::Api {
                what: format!("patching the status of IngressGatewayConfig {}", g.name),
                source,
            })?;
        Ok(true)
    }

    /// While `leader` is true, sync on every new table and every `resync`. Runs until
    /// the task is aborted.
    pub fn spawn(
        mut self,
        stores: Stores,
        mut tables: watch::Receiver<Option<Arc<Published>>>,
        mut leader: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let is_leader = *leader.borrow_and_update();
                let table = tables.borrow_and_update().clone();
                if let (true, Some(p)) = (is_leader, table) {
                    match self.sync(&p, &stores).await {
                        Ok(r) if r != SyncReport::default() => {
                            tracing::info!(
                                statuses = r.statuses,
                                events = r.events,
                                version = p.version,
                                "status synced"
                            );
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "status sync failed; retrying"),
                    }
                } else if !is_leader {
                    // A new leader re-sends what it finds.
                    self.sent.clear();
                }
                tokio::select! {
                    r = tables.changed() => if r.is_err() { return },
                    r = leader.changed() => if r.is_err() { return },
                    _ = tokio::time::sleep(self.options.resync) => {}
                }
            }
        })
    }
}

fn lb_entry(s: &str) -> IngressLoadBalancerIngress {
    if s.parse::<IpAddr>().is_ok() {
        IngressLoadBalancerIngress {
            ip: Some(s.to_owned()),
            ..IngressLoadBalancerIngress::default()
        }
    } else {
        IngressLoadBalancerIngress {
            hostname: Some(s.to_owned()),
            ..IngressLoadBalancerIngress::default()
        }
    }
}

/// A Service's addresses: its load balancer ingress (none while a `LoadBalancer`
/// Service waits for one), else its external IPs, else its cluster IP.
pub fn service_addresses(svc: &Service) -> Vec<IngressLoadBalancerIngress> {
    let lb: Vec<IngressLoadBalancerIngress> = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref())
        .map(|v| {
            v.iter()
                .filter_map(|i| i.ip.as_deref().or(i.hostname.as_deref()))
                .map(lb_entry)
                .collect()
        })
        .unwrap_or_default();
    if !lb.is_empty() {
        return lb;
    }
    let spec = svc.spec.clone().unwrap_or_default();
    if spec.type_.as_deref() == Some("LoadBalancer") {
        // Not provisioned yet: publish nothing rather than an internal address.
        return Vec::new();
    }
    if let Some(ips) = spec.external_ips.filter(|v| !v.is_empty()) {
        return ips.iter().map(|s| lb_entry(s)).collect();
    }
    spec.cluster_ip
        .filter(|ip| !ip.is_empty() && ip != "None")
        .map(|ip| vec![lb_entry(&ip)])
        .unwrap_or_default()
}

fn reference(stores: &Stores, r: &ObjectRef) -> Option<ObjectReference> {
    let ns = r.namespace.as_deref()?;
    let ing = stores
        .ingresses
        .get(&reflector::ObjectRef::new(&r.name).within(ns))?;
    Some(ing.object_ref(&()))
}

/// `invalid-host` → `InvalidHost`.
fn pascal(code: &str) -> String {
    code.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_become_reasons() {
        assert_eq!(pascal("invalid-host"), "InvalidHost");
        assert_eq!(pascal("x"), "X");
        assert_eq!(truncate("héllo".into(), 2), "h");
    }

    #[test]
    fn publish_service_parses() {
        assert_eq!(
            "ingress/gw".parse::<PublishAddress>(),
            Ok(PublishAddress::Service {
                namespace: "ingress".into(),
                name: "gw".into()
            })
        );
        assert!("gw".parse::<PublishAddress>().is_err());
        assert!("a/b/c".parse::<PublishAddress>().is_err());
    }

    #[test]
    fn service_addresses_prefer_the_load_balancer() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "gw"},
            "spec": {"clusterIP": "10.0.0.1", "externalIPs": ["192.0.2.1"]},
            "status": {"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}]}}
        }))
        .expect("service");
        assert_eq!(service_addresses(&svc), vec![lb_entry("lb.example.com")]);
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "gw"}, "spec": {"clusterIP": "10.0.0.1"}
        }))
        .expect("service");
        assert_eq!(service_addresses(&svc), vec![lb_entry("10.0.0.1")]);
        let pending: Service = serde_json::from_value(json!({
            "metadata": {"name": "gw"}, "spec": {"type": "LoadBalancer", "clusterIP": "10.0.0.1"}
        }))
        .expect("service");
        assert_eq!(service_addresses(&pending), vec![]);
    }
}
