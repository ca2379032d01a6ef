//! Watch the cluster, build snapshots, compile, publish.
//!
//! One kube-rs watcher and reflector store per kind (Ingress, IngressClass, Service,
//! EndpointSlice, Secret and, when its CRD is installed, IngressGatewayConfig). Every
//! change is recorded (kind, namespace and name) and wakes a debounced builder,
//! which waits until **every** store has its initial list before it publishes
//! anything. The first build converts every object into an
//! [`ingress_core::Snapshot`] and compiles it; after that, a build converts only
//! the objects changed since the last one and applies them to the incremental
//! compiler (changed Ingresses' hosts, changed EndpointSlices' backends; a full
//! compile for other kinds), off the async threads, and publishes a [`Published`]
//! table through a [`tokio::sync::watch`] channel. A burst of changes within the
//! debounce window is one build. A watch error backs off and re-lists (a `410
//! Gone` included); the stores keep their last good content meanwhile, so the last
//! good table keeps serving, and the re-listed kind is compared whole with the
//! compiler's objects (deletions included).

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ingress_core::{CompileOptions, Diagnostic, RouteTable, Snapshot};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{Api, ListParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::build::{Builder, Pending, Watched};
use crate::error::StartError;
use crate::gateway::{ConfigError, GatewayConfig, IngressGatewayConfig};

/// Secret types whose data is kept; the data of every other type (service account
/// tokens, Helm releases...) is dropped before it reaches the store.
pub const KEPT_SECRET_TYPES: [&str; 2] = ["kubernetes.io/tls", "Opaque"];

/// How the source watches and compiles.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct KubeOptions {
    /// Watch one namespace only (`None`: all namespaces). IngressClasses and gateway
    /// configs are cluster-scoped and always watched cluster-wide.
    pub namespace: Option<String>,
    /// Compile options (controller name, profile...). A gateway config referenced by
    /// our IngressClass overrides the profile and the annotation prefix.
    pub compile: CompileOptions,
    /// Quiet time after the last change before a rebuild.
    pub debounce: Duration,
    /// Longest delay between the first change of a burst and its rebuild.
    pub max_delay: Duration,
    /// Watch `IngressGatewayConfig` objects (skipped with a warning when the CRD is
    /// not installed or listing it is forbidden; checked once, at start).
    pub gateway_config: bool,
    /// Test hook: a build panics while an Ingress of this name exists (panic
    /// containment tests). Set only by code; no flag or object field reaches it.
    #[doc(hidden)]
    pub panic_on_ingress: Option<String>,
}

impl Default for KubeOptions {
    fn default() -> Self {
        KubeOptions {
            namespace: None,
            compile: CompileOptions::default(),
            debounce: Duration::from_millis(50),
            max_delay: Duration::from_millis(500),
            gateway_config: true,
            panic_on_ingress: None,
        }
    }
}

impl KubeOptions {
    /// Default options compiling with `compile`.
    pub fn new(compile: CompileOptions) -> Self {
        KubeOptions {
            compile,
            ..KubeOptions::default()
        }
    }

    /// Watch only `namespace`.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Set the debounce delay (and a max delay of ten times it).
    pub fn debounce(mut self, debounce: Duration) -> Self {
        self.debounce = debounce;
        self.max_delay = debounce * 10;
        self
    }

    /// Watch gateway configs or not.
    pub fn gateway_config(mut self, yes: bool) -> Self {
        self.gateway_config = yes;
        self
    }
}

/// The gateway config in effect, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfigState {
    /// The `IngressGatewayConfig` object's name.
    pub name: String,
    /// Whether the object exists (when not, the defaults apply).
    pub exists: bool,
    /// Its `metadata.generation`.
    pub generation: Option<i64>,
    /// The validation outcome (an invalid config is not applied: the previous valid
    /// one, or the defaults, stay in effect).
    pub result: Result<GatewayConfig, Vec<ConfigError>>,
}

/// One compiled configuration, as published.
#[derive(Debug)]
#[non_exhaustive]
pub struct Published {
    /// 1 for the first table, then one more per publish.
    pub version: u64,
    /// The route table.
    pub table: RouteTable,
    /// Every problem found (conversion and compile), sorted.
    pub diagnostics: Vec<Diagnostic>,
    /// The gateway config referenced by our IngressClass, if any, as validated.
    pub gateway: Option<GatewayConfigState>,
    /// The gateway config applied to this table (the last valid one).
    pub applied_gateway: Option<GatewayConfig>,
    /// The Secrets the table was compiled with (those the Ingresses and the gateway
    /// config reference), sorted by namespace and name; shared between publishes
    /// until one changes. The other objects are not copied per publish:
    /// [`Stores::snapshot`] reads them all.
    pub secrets: Arc<Vec<ingress_core::model::Secret>>,
    /// How the table was made: a full compile, the endpoint or Secret fast path,
    /// or an incremental compile of the changed Ingresses' hosts.
    pub path: BuildPath,
    /// For [`BuildPath::Incremental`]: where the touched hosts' routes were (in the
    /// table of version `version - 1`) and are, as `Compiler` reports them.
    pub splices: Option<Vec<ingress_core::compile::RouteSplice>>,
    /// For [`BuildPath::Secrets`]: the TLS bindings (indexes into the table's
    /// `tls_bindings`) whose Secret changed, as `Compiler::apply_secrets` reports them.
    pub bindings: Option<Vec<usize>>,
    /// For [`BuildPath::Endpoints`], and for [`BuildPath::Incremental`] (the
    /// backends it wrote, and those of EndpointSlices changed in the same build):
    /// the backends (ids in this table) whose endpoints may differ from what the
    /// table of version `version - 1` had under the same id.
    pub endpoints: Option<Vec<ingress_core::routing::BackendId>>,
}

/// How a published table was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildPath {
    /// `ingress_core::compile` of the whole snapshot.
    Full,
    /// Only EndpointSlices changed: the previous table with the affected
    /// backends' endpoints resolved again (`ingress_core::compile::refresh_endpoints`).
    Endpoints,
    /// Only Ingresses changed: the hosts they touch were compiled again
    /// (`ingress_core::compile::Compiler`) and spliced into the previous table.
    Incremental,
    /// Only referenced Secrets changed: the TLS bindings naming them were checked
    /// again (`ingress_core::compile::Compiler::apply_secrets`); routes and
    /// backends are the previous table's.
    Secrets,
}

/// The reflector stores, readable at any time (status writers use them).
#[derive(Debug, Clone)]
pub struct Stores {
    /// Ingresses.
    pub ingresses: Store<Ingress>,
    /// IngressClasses.
    pub ingress_classes: Store<IngressClass>,
    /// Services.
    pub services: Store<Service>,
    /// EndpointSlices.
    pub endpoint_slices: Store<EndpointSlice>,
    /// Secrets (data kept only for [`KEPT_SECRET_TYPES`]).
    pub secrets: Store<Secret>,
    /// Gateway configs, when watched.
    pub gateway_configs: Option<Store<IngressGatewayConfig>>,
}

impl Stores {
    /// Wait until every store has its initial list. `false` when a watch task
    /// stopped first (its store will never be complete).
    pub async fn wait_until_ready(&self) -> bool {
        let (a, b, c, d, e, f) = futures::join!(
            self.ingresses.wait_until_ready(),
            self.ingress_classes.wait_until_ready(),
            self.services.wait_until_ready(),
            self.endpoint_slices.wait_until_ready(),
            self.secrets.wait_until_ready(),
            async {
                match &self.gateway_configs {
                    Some(s) => s.wait_until_ready().await.is_ok(),
                    None => true,
                }
            },
        );
        a.is_ok() && b.is_ok() && c.is_ok() && d.is_ok() && e.is_ok() && f
    }

    /// Every stored object, converted to ingress-core's model (objects that do not
    /// convert left out; every Secret of the [`KEPT_SECRET_TYPES`]), sorted by
    /// namespace and name: what a full compile of the cluster reads. A JSON round
    /// trip per object: for tests and tools, not for every change.
    pub fn snapshot(&self) -> Snapshot {
        crate::build::snapshot_of(self)
    }
}

/// The running source: watch tasks and the builder. Dropping it stops them.
#[derive(Debug)]
pub struct KubeSource {
    rx: watch::Receiver<Option<Arc<Published>>>,
    stores: Stores,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for KubeSource {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl KubeSource {
    /// Start watching with `client`. Must run inside a tokio runtime.
    pub async fn start(client: Client, options: KubeOptions) -> Result<Self, StartError> {
        let changed = Arc::new(Changed::default());
        let mut tasks = Vec::new();
        let ns = options.namespace.as_deref();
        let (ingresses, t) = watch_kind(
            namespaced::<Ingress>(&client, ns),
            Watched::Ingress,
            &changed,
            strip,
        );
        tasks.push(t);
        let (ingress_classes, t) = watch_kind(
            Api::<IngressClass>::all(client.clone()),
            Watched::IngressClass,
            &changed,
            strip,
        );
        tasks.push(t);
        let (services, t) = watch_kind(
            namespaced::<Service>(&client, ns),
            Watched::Service,
            &changed,
            strip,
        );
        tasks.push(t);
        let (endpoint_slices, t) = watch_kind(
            namespaced::<EndpointSlice>(&client, ns),
            Watched::EndpointSlice,
            &changed,
            strip,
        );
        tasks.push(t);
        let (secrets, t) = watch_kind(
            namespaced::<Secret>(&client, ns),
            Watched::Secret,
            &changed,
            strip_secret,
        );
        tasks.push(t);
        let gateway_configs = if options.gateway_config {
            let api = Api::<IngressGatewayConfig>::all(client.clone());
            match api.list(&ListParams::default().limit(1)).await {
                Ok(_) => {
                    let (store, t) = watch_kind(api, Watched::GatewayConfig, &changed, strip);
                    tasks.push(t);
                    Some(store)
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    tracing::warn!(
                        "the IngressGatewayConfig CRD is not installed; gateway configs are not watched (install deploy/crd.yaml, then restart)"
                    );
                    None
                }
                Err(kube::Error::Api(e)) if e.code == 403 => {
                    tracing::warn!(
                        message = %e.message,
                        "not allowed to list IngressGatewayConfigs; gateway configs are not watched (see deploy/rbac.yaml)"
                    );
                    None
                }
                Err(source) => {
                    for t in &tasks {
                        t.abort();
                    }
                    return Err(StartError::Probe {
                        what: "IngressGatewayConfig",
                        source,
                    });
                }
            }
        } else {
            None
        };
        let stores = Stores {
            ingresses,
            ingress_classes,
            services,
            endpoint_slices,
            secrets,
            gateway_configs,
        };
        let (tx, rx) = watch::channel(None);
        tasks.push(tokio::spawn(run_builder(
            stores.clone(),
            options,
            changed,
            tx,
        )));
        Ok(KubeSource { rx, stores, tasks })
    }

    /// A receiver of every published table (`None` until the first).
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<Published>>> {
        self.rx.clone()
    }

    /// The latest published table, if any.
    pub fn current(&self) -> Option<Arc<Published>> {
        self.rx.borrow().clone()
    }

    /// Wait for the first published table (`None` if the builder stopped).
    pub async fn ready(&self) -> Option<Arc<Published>> {
        let mut rx = self.rx.clone();
        rx.wait_for(Option::is_some).await.ok()?.clone()
    }

    /// The stores.
    pub fn stores(&self) -> &Stores {
        &self.stores
    }
}

fn namespaced<K>(client: &Client, ns: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn strip<K: Resource>(o: &mut K) {
    o.meta_mut().managed_fields = None;
}

fn strip_secret(s: &mut Secret) {
    s.metadata.managed_fields = None;
    let kept = s
        .type_
        .as_deref()
        .is_some_and(|t| KEPT_SECRET_TYPES.contains(&t));
    if !kept {
        s.data = None;
        s.string_data = None;
    }
}

/// What the watch tasks tell the builder: which objects changed since its last
/// build, and a wake-up.
#[derive(Debug, Default)]
struct Changed {
    notify: Notify,
    pending: std::sync::Mutex<Pending>,
}

impl Changed {
    fn record(&self, f: impl FnOnce(&mut Pending)) {
        f(&mut self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        self.notify.notify_one();
    }

    fn take(&self) -> Pending {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

fn watch_kind<K>(
    api: Api<K>,
    kind: Watched,
    changed: &Arc<Changed>,
    modify: fn(&mut K),
) -> (Store<K>, JoinHandle<()>)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store::<K>();
    let changed = changed.clone();
    let kind_name = K::kind(&K::DynamicType::default()).into_owned();
    // The reflector writes each event into the store before it is seen here.
    let stream = watch_stream(api)
        .default_backoff()
        .modify(modify)
        .reflect(writer);
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::Apply(o) | Event::Delete(o)) => {
                    changed.record(|p| p.object(kind, o.meta()))
                }
                // A (re-)list is complete: the store holds exactly the server's
                // objects, which the builder compares whole with its own.
                Ok(Event::InitDone) => changed.record(|p| {
                    p.relisted.insert(kind);
                }),
                Ok(Event::Init | Event::InitApply(_)) => {}
                Err(e) => tracing::warn!(
                    kind = kind_name,
                    error = %e,
                    "watch failed; retrying with backoff (the last good table keeps serving)"
                ),
            }
        }
    });
    (reader, task)
}

fn watch_stream<K>(api: Api<K>) -> impl futures::Stream<Item = watcher::Result<Event<K>>> + Send
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    watcher::watcher(api, watcher::Config::default())
}

async fn run_builder(
    stores: Stores,
    options: KubeOptions,
    changed: Arc<Changed>,
    tx: watch::Sender<Option<Arc<Published>>>,
) {
    if !stores.wait_until_ready().await {
        tracing::error!("a watch stopped before its initial list; nothing is published");
        return;
    }
    tracing::info!("every store has its initial list; publishing");
    let options = Arc::new(options);
    let builder = Arc::new(std::sync::Mutex::new(Builder::default()));
    loop {
        // What changed since the last build, taken before the stores are read: a
        // change recorded meanwhile is applied (again) by the next build.
        let pending = changed.take();
        // Converting the changed objects and compiling are CPU work: both run off
        // the async threads.
        let (stores2, options2, builder2) = (stores.clone(), options.clone(), builder.clone());
        let started = std::time::Instant::now();
        let built = tokio::task::spawn_blocking(move || {
            let mut builder = builder2.lock().unwrap_or_else(|e| e.into_inner());
            builder.build(&stores2, &options2, pending)
        })
        .await;
        match built {
            Ok(Some(p)) => {
                tracing::info!(
                    version = p.version,
                    routes = p.table.routes().len(),
                    diagnostics = p.diagnostics.len(),
                    path = ?p.path,
                    build_ms = started.elapsed().as_secs_f64() * 1e3,
                    "configuration published"
                );
                tx.send_replace(Some(p));
            }
            Ok(None) => {}
            Err(e) => {
                // The builder dropped its compiler: the next build reads every
                // store again.
                tracing::error!(error = %e, "build task failed; the last good table keeps serving")
            }
        }
        changed.notify.notified().await;
        let deadline = tokio::time::Instant::now() + options.max_delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(options.debounce) => break,
                _ = tokio::time::sleep_until(deadline) => break,
                _ = changed.notify.notified() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_secret_types_lose_their_data() {
        let mut s = Secret {
            type_: Some("helm.sh/release.v1".into()),
            data: Some(Default::default()),
            ..Secret::default()
        };
        strip_secret(&mut s);
        assert!(s.data.is_none());
        let mut tls = Secret {
            type_: Some("kubernetes.io/tls".into()),
            data: Some(Default::default()),
            ..Secret::default()
        };
        strip_secret(&mut tls);
        assert!(tls.data.is_some());
    }
}
