//! Watch the cluster, build snapshots, compile, publish.
//!
//! One kube-rs watcher and reflector store per kind (Ingress, IngressClass, Service,
//! EndpointSlice, Secret and, when its CRD is installed, IngressGatewayConfig). Every
//! change wakes a debounced builder, which waits until **every** store has its
//! initial list before it publishes anything, then reads the stores into an
//! [`ingress_core::Snapshot`], compiles it off the async threads and publishes a
//! [`Published`] table through a [`tokio::sync::watch`] channel. A watch error backs
//! off and re-lists (a `410 Gone` included); the stores keep their last good content
//! meanwhile, so the last good table keeps serving.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ingress_core::model::{ObjectKind, ObjectRef};
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

use crate::convert::convert;
use crate::error::StartError;
use crate::gateway::{self, ConfigError, GatewayConfig, IngressGatewayConfig};

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
}

impl Default for KubeOptions {
    fn default() -> Self {
        KubeOptions {
            namespace: None,
            compile: CompileOptions::default(),
            debounce: Duration::from_millis(50),
            max_delay: Duration::from_millis(500),
            gateway_config: true,
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
    /// The snapshot the table was compiled from.
    pub snapshot: Arc<Snapshot>,
    /// How the table was made: a full compile, the endpoint fast path, or an
    /// incremental compile of the changed Ingresses' hosts.
    pub path: BuildPath,
    /// For [`BuildPath::Incremental`]: where the touched hosts' routes were (in the
    /// table of version `version - 1`) and are, as `Compiler` reports them.
    pub splices: Option<Vec<ingress_core::compile::RouteSplice>>,
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
        let changed = Arc::new(Notify::new());
        let mut tasks = Vec::new();
        let ns = options.namespace.as_deref();
        let (ingresses, t) = watch_kind(namespaced::<Ingress>(&client, ns), &changed, strip);
        tasks.push(t);
        let (ingress_classes, t) =
            watch_kind(Api::<IngressClass>::all(client.clone()), &changed, strip);
        tasks.push(t);
        let (services, t) = watch_kind(namespaced::<Service>(&client, ns), &changed, strip);
        tasks.push(t);
        let (endpoint_slices, t) =
            watch_kind(namespaced::<EndpointSlice>(&client, ns), &changed, strip);
        tasks.push(t);
        let (secrets, t) = watch_kind(namespaced::<Secret>(&client, ns), &changed, strip_secret);
        tasks.push(t);
        let gateway_configs = if options.gateway_config {
            let api = Api::<IngressGatewayConfig>::all(client.clone());
            match api.list(&ListParams::default().limit(1)).await {
                Ok(_) => {
                    let (store, t) = watch_kind(api, &changed, strip);
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

fn watch_kind<K>(
    api: Api<K>,
    changed: &Arc<Notify>,
    modify: fn(&mut K),
) -> (Store<K>, JoinHandle<()>)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store::<K>();
    let changed = changed.clone();
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    let stream = watch_stream(api)
        .default_backoff()
        .modify(modify)
        .reflect(writer);
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::Apply(_) | Event::Delete(_) | Event::InitDone) => changed.notify_one(),
                Ok(Event::Init | Event::InitApply(_)) => {}
                Err(e) => tracing::warn!(
                    kind,
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
    changed: Arc<Notify>,
    tx: watch::Sender<Option<Arc<Published>>>,
) {
    if !stores.wait_until_ready().await {
        tracing::error!("a watch stopped before its initial list; nothing is published");
        return;
    }
    tracing::info!("every store has its initial list; publishing");
    let options = Arc::new(options);
    let state = Arc::new(std::sync::Mutex::new(BuildState::default()));
    loop {
        // Reading the stores (a JSON round trip per object) and compiling are CPU
        // work: both run off the async threads.
        let (stores2, options2, state2) = (stores.clone(), options.clone(), state.clone());
        let built = tokio::task::spawn_blocking(move || {
            let mut state = state2.lock().unwrap_or_else(|e| e.into_inner());
            build(&stores2, &options2, &mut state)
        })
        .await;
        match built {
            Ok(Some(p)) => {
                tracing::info!(
                    version = p.version,
                    routes = p.table.routes().len(),
                    diagnostics = p.diagnostics.len(),
                    path = ?p.path,
                    "configuration published"
                );
                tx.send_replace(Some(p));
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "build task failed; the last good table keeps serving")
            }
        }
        changed.notified().await;
        let deadline = tokio::time::Instant::now() + options.max_delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(options.debounce) => break,
                _ = tokio::time::sleep_until(deadline) => break,
                _ = changed.notified() => {}
            }
        }
    }
}

/// Read the stores; compile and return a new table if the input changed. When
/// only EndpointSlices changed, the previous table gets the new endpoints of the
/// Services concerned instead (the fast path), if the core can do it exactly.
fn build(stores: &Stores, options: &KubeOptions, state: &mut BuildState) -> Option<Arc<Published>> {
    let input = read_stores(stores, options, state);
    if state.last_input.as_ref() == Some(&input.key) {
        return None;
    }
    let version = state.version + 1;
    let fast = match (&state.last_input, &state.last_published) {
        (Some(prev), Some(published)) if prev.same_but_snapshot(&input.key) => {
            match ingress_core::compile::refresh_endpoints(
                &published.table,
                &prev.snapshot,
                &input.key.snapshot,
            ) {
                Ok(r) => Some(Published {
                    version,
                    table: r.table,
                    diagnostics: published.diagnostics.clone(),
                    gateway: input.key.gateway.clone(),
                    applied_gateway: input.key.applied.clone(),
                    snapshot: input.key.snapshot.clone(),
                    path: BuildPath::Endpoints,
                    splices: None,
                }),
                Err(e) => {
                    tracing::debug!(reason = %e, "full compile");
                    None
                }
            }
        }
        _ => None,
    };
    let incremental = state
        .last_input
        .as_ref()
        .is_some_and(|prev| prev.same_but_snapshot(&input.key));
    if fast.is_some() {
        // The compiler's snapshot no longer has the cluster's endpoints: the next
        // change compiles in full (and starts a new compiler).
        state.compiler = None;
    }
    state.version = version;
    state.last_input = Some(input.key.clone());
    let published = Arc::new(match fast {
        Some(p) => p,
        None => input.compile(version, &mut state.compiler, incremental),
    });
    state.last_published = Some(published.clone());
    Some(published)
}

#[derive(Debug, Default)]
struct BuildState {
    version: u64,
    last_input: Option<InputKey>,
    /// The last valid gateway config, applied while a newer one is invalid.
    last_valid_gateway: Option<(String, GatewayConfig)>,
    /// The last table published, for the endpoint fast path.
    last_published: Option<Arc<Published>>,
    /// The incremental compiler holding the last compiled table (`None` after the
    /// endpoint fast path: its table is no longer the published one).
    compiler: Option<ingress_core::compile::Compiler>,
    /// Each kind's objects as last converted, so that a build converts only the
    /// objects whose resourceVersion changed.
    converted: Converted,
}

/// The conversion caches of [`BuildState`], one per kind read in full.
#[derive(Debug, Default)]
struct Converted {
    ingresses: ConvertCache<ingress_core::model::Ingress>,
    ingress_classes: ConvertCache<ingress_core::model::IngressClass>,
    services: ConvertCache<ingress_core::model::Service>,
    endpoint_slices: ConvertCache<ingress_core::model::EndpointSlice>,
}

/// Converted objects by namespace and name, with the resourceVersion they were
/// converted at. The conversion is a JSON round trip per object, most of a build's
/// cost with tens of thousands of objects; an object whose resourceVersion is
/// unchanged is the same object (the API server changes it on every write), so its
/// last conversion (or its diagnostic) is reused. Objects without a
/// resourceVersion are converted every time.
#[derive(Debug)]
struct ConvertCache<T> {
    entries: HashMap<(String, String), (String, Result<T, Diagnostic>)>,
}

impl<T> Default for ConvertCache<T> {
    fn default() -> Self {
        ConvertCache {
            entries: HashMap::new(),
        }
    }
}

/// What a table depends on: when equal, the table would be the same.
#[derive(Debug, Clone, PartialEq)]
struct InputKey {
    snapshot: Arc<Snapshot>,
    options: CompileOptions,
    conversion: Vec<Diagnostic>,
    gateway: Option<GatewayConfigState>,
    applied: Option<GatewayConfig>,
}

impl InputKey {
    /// Everything but the snapshot is equal.
    fn same_but_snapshot(&self, other: &InputKey) -> bool {
        self.options == other.options
            && self.conversion == other.conversion
            && self.gateway == other.gateway
            && self.applied == other.applied
    }
}

struct Input {
    key: InputKey,
}

impl Input {
    /// Compile: incrementally through `compiler` when `incremental` (everything but
    /// the snapshot is as last compiled) and the compiler can, else in full (and
    /// keep a new compiler for the next change).
    fn compile(
        self,
        version: u64,
        compiler: &mut Option<ingress_core::compile::Compiler>,
        incremental: bool,
    ) -> Published {
        use ingress_core::compile::{Compiler, Update};
        let InputKey {
            snapshot,
            options,
            conversion,
            gateway,
            applied,
        } = self.key;
        let update = match compiler.as_mut() {
            Some(c) if incremental && c.options() == &options => c.replace((*snapshot).clone()),
            _ => {
                *compiler = None;
                Update::Full(ingress_core::compile::FullReason::First)
            }
        };
        let c = compiler.get_or_insert_with(|| Compiler::new((*snapshot).clone(), options));
        let (path, splices) = match update {
            Update::Incremental { splices, .. } => (BuildPath::Incremental, Some(splices)),
            Update::Unchanged => (BuildPath::Incremental, Some(Vec::new())),
            other => {
                tracing::debug!(update = ?other, "full compile");
                (BuildPath::Full, None)
            }
        };
        if path == BuildPath::Incremental {
            tracing::debug!(
                hosts = splices.as_ref().map_or(0, Vec::len),
                "incremental update: only the touched hosts were compiled"
            );
        }
        let mut diagnostics = conversion;
        diagnostics.extend(c.diagnostics().iter().cloned());
        diagnostics.sort();
        Published {
            version,
            // A copy sharing the host structures with the compiler's table.
            table: c.table().clone(),
            diagnostics,
            gateway,
            applied_gateway: applied,
            snapshot,
            path,
            splices,
        }
    }
}

fn read_stores(stores: &Stores, options: &KubeOptions, state: &mut BuildState) -> Input {
    let mut conversion = Vec::new();
    let mut snapshot = Snapshot::new();
    let cache = &mut state.converted;
    snapshot.ingresses = convert_all(
        &stores.ingresses,
        ObjectKind::Ingress,
        &mut cache.ingresses,
        &mut conversion,
    );
    snapshot.ingress_classes = convert_all(
        &stores.ingress_classes,
        ObjectKind::IngressClass,
        &mut cache.ingress_classes,
        &mut conversion,
    );
    snapshot.services = convert_all(
        &stores.services,
        ObjectKind::Service,
        &mut cache.services,
        &mut conversion,
    );
    snapshot.endpoint_slices = convert_all(
        &stores.endpoint_slices,
        ObjectKind::EndpointSlice,
        &mut cache.endpoint_slices,
        &mut conversion,
    );

    let gateway = resolve_gateway(stores, &snapshot, &options.compile.controller_name);
    let applied = match &gateway {
        Some(GatewayConfigState {
            name,
            result: Ok(cfg),
            ..
        }) => {
            state.last_valid_gateway = Some((name.clone(), cfg.clone()));
            Some(cfg.clone())
        }
        Some(GatewayConfigState {
            name,
            exists: true,
            result: Err(_),
            ..
        }) => state
            .last_valid_gateway
            .as_ref()
            .filter(|(n, _)| n == name)
            .map(|(_, c)| c.clone()),
        Some(_) | None => None,
    };
    let mut compile_options = options.compile.clone();
    if let Some(cfg) = &applied {
        compile_options.profile = cfg.profile;
        if cfg.annotation_prefix.is_some() {
            compile_options.annotation_prefix = cfg.annotation_prefix.clone();
        }
        if let Some(level) = cfg.annotations_risk_level {
            compile_options.annotations_risk_level = level;
        }
    }

    let wanted = referenced_secrets(&snapshot, applied.as_ref());
    let mut secrets: Vec<ingress_core::model::Secret> = Vec::new();
    for s in stores.secrets.state() {
        let r = crate::convert::object_ref(ObjectKind::Secret, s.as_ref());
        if !wanted.contains(&r) {
            continue;
        }
        match convert::<_, ingress_core::model::Secret>(ObjectKind::Secret, s.as_ref()) {
            Ok(mut s) => {
                s.metadata.resource_version = None;
                secrets.push(s);
            }
            Err(d) => conversion.push(d),
        }
    }
    sort_by_ref(&mut secrets, |s| &s.metadata);
    snapshot.secrets = secrets;
    conversion.sort();
    Input {
        key: InputKey {
            snapshot: Arc::new(snapshot),
            options: compile_options,
            conversion,
            gateway,
            applied,
        },
    }
}

fn convert_all<K, T>(
    store: &Store<K>,
    kind: ObjectKind,
    cache: &mut ConvertCache<T>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<T>
where
    K: Resource + k8s_openapi::Resource + serde::Serialize + Clone,
    K::DynamicType: Eq + Hash + Clone,
    T: DeserializeOwned + HasMeta + Clone,
{
    let objects = store.state();
    let mut out = Vec::with_capacity(objects.len());
    let mut next = HashMap::with_capacity(objects.len());
    for o in objects {
        let meta = o.meta();
        let key = (
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        );
        let rv = meta.resource_version.clone();
        let converted = match (rv, cache.entries.remove(&key)) {
            (Some(rv), Some((seen, r))) if seen == rv => Some((rv, r)),
            (rv, _) => {
                let r = convert::<K, T>(kind, o.as_ref()).map(|mut t| {
                    // Status writes change only the resourceVersion: not a new input.
                    t.meta_mut().resource_version = None;
                    t
                });
                match rv {
                    Some(rv) => Some((rv, r)),
                    None => {
                        match r {
                            Ok(t) => out.push(t),
                            Err(d) => diags.push(d),
                        }
                        None
                    }
                }
            }
        };
        if let Some((rv, r)) = converted {
            match &r {
                Ok(t) => out.push(t.clone()),
                Err(d) => diags.push(d.clone()),
            }
            next.insert(key, (rv, r));
        }
    }
    // Objects no longer in the store drop out of the cache.
    cache.entries = next;
    sort_by_ref(&mut out, T::meta);
    out
}

/// Objects with metadata, to sort store contents (stores are unordered).
trait HasMeta {
    fn meta(&self) -> &ingress_core::model::ObjectMeta;
    fn meta_mut(&mut self) -> &mut ingress_core::model::ObjectMeta;
}

macro_rules! has_meta {
    ($($t:ident),*) => {$(
        impl HasMeta for ingress_core::model::$t {
            fn meta(&self) -> &ingress_core::model::ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ingress_core::model::ObjectMeta {
                &mut self.metadata
            }
        }
    )*};
}
has_meta!(Ingress, IngressClass, Service, EndpointSlice, Secret);

fn sort_by_ref<T>(v: &mut [T], meta: impl Fn(&T) -> &ingress_core::model::ObjectMeta) {
    v.sort_by(|a, b| {
        let (a, b) = (meta(a), meta(b));
        (a.namespace_or_default(), a.name.as_str())
            .cmp(&(b.namespace_or_default(), b.name.as_str()))
    });
}

/// The Secrets an Ingress can use: `spec.tls[].secretName`, annotation values under
/// keys ending in `-secret` (`name` or `namespace/name`, e.g. `auth-secret`,
/// `auth-tls-secret`, `proxy-ssl-secret`), and the gateway's default certificate.
pub(crate) fn referenced_secrets(
    snapshot: &Snapshot,
    gateway: Option<&GatewayConfig>,
) -> BTreeSet<ObjectRef> {
    let mut out = BTreeSet::new();
    let secret = |ns: &str, name: &str| ObjectRef::namespaced(ObjectKind::Secret, ns, name);
    for ing in &snapshot.ingresses {
        let ns = ing.metadata.namespace_or_default();
        for tls in &ing.spec.tls {
            if let Some(name) = tls.secret_name.as_deref().filter(|n| !n.is_empty()) {
                out.insert(secret(ns, name));
            }
        }
        for (key, value) in &ing.metadata.annotations {
            if !key.ends_with("-secret") {
                continue;
            }
            let value = value.trim();
            match value.split_once('/') {
                Some((other_ns, name)) => out.insert(secret(other_ns, name)),
                None => out.insert(secret(ns, value)),
            };
        }
    }
    if let Some(r) = gateway.and_then(|g| g.default_tls_certificate.clone()) {
        out.insert(r);
    }
    out
}

/// Find the gateway config our IngressClass references (the first of our classes by
/// name that references one).
fn resolve_gateway(
    stores: &Stores,
    snapshot: &Snapshot,
    controller: &str,
) -> Option<GatewayConfigState> {
    let configs = stores.gateway_configs.as_ref()?;
    let name = snapshot
        .ingress_classes
        .iter()
        .filter(|c| c.spec.controller == controller)
        .filter_map(|c| c.spec.parameters.as_ref())
        .find(|p| p.api_group.as_deref() == Some(gateway::GROUP) && p.kind == gateway::KIND)
        .map(|p| p.name.clone())?;
    let Some(obj) = configs.get(&reflector::ObjectRef::new(&name)) else {
        return Some(GatewayConfigState {
            name: name.clone(),
            exists: false,
            generation: None,
            result: Err(vec![ConfigError {
                field: "spec.parameters".into(),
                message: format!(
                    "the IngressClass references IngressGatewayConfig {name:?}, which does not exist"
                ),
            }]),
        });
    };
    Some(GatewayConfigState {
        name,
        exists: true,
        generation: obj.metadata.generation,
        result: gateway::validate(&obj.spec),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referenced_secrets_come_from_tls_annotations_and_the_gateway() {
        let yaml = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: shop
  annotations:
    nginx.ingress.kubernetes.io/auth-secret: basic-auth
    nginx.ingress.kubernetes.io/auth-tls-secret: certs/client-ca
    nginx.ingress.kubernetes.io/rewrite-target: /
spec:
  tls: [{hosts: [a.example.com], secretName: a-tls}, {hosts: [b.example.com]}]
"#;
        let loaded = ingress_core::manifest::load_str("t.yaml", yaml);
        let gateway = GatewayConfig {
            default_tls_certificate: Some(ObjectRef::namespaced(
                ObjectKind::Secret,
                "ingress",
                "default",
            )),
            ..GatewayConfig::default()
        };
        let got: Vec<String> = referenced_secrets(&loaded.snapshot, Some(&gateway))
            .iter()
            .map(|r| format!("{}/{}", r.namespace.as_deref().unwrap_or(""), r.name))
            .collect();
        assert_eq!(
            got,
            [
                "certs/client-ca",
                "ingress/default",
                "shop/a-tls",
                "shop/basic-auth"
            ]
        );
    }

    fn ingress(name: &str, rv: Option<&str>, host: &str) -> Ingress {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "shop", "resourceVersion": rv},
            "spec": {"rules": [{"host": host}]},
        }))
        .expect("an Ingress")
    }

    fn hosts(v: &[ingress_core::model::Ingress]) -> Vec<String> {
        v.iter()
            .map(|i| {
                let host = i.spec.rules.first().and_then(|r| r.host.as_ref());
                format!("{}={}", i.metadata.name, host.map_or("", |h| h.as_str()))
            })
            .collect()
    }

    #[test]
    fn objects_are_converted_again_only_when_their_resource_version_changes() {
        let (reader, mut writer) = reflector::store::<Ingress>();
        let mut cache = ConvertCache::default();
        let mut diags = Vec::new();
        let mut read = |cache: &mut ConvertCache<_>| {
            hosts(&convert_all(
                &reader,
                ObjectKind::Ingress,
                cache,
                &mut diags,
            ))
        };
        writer.apply_watcher_event(&Event::Apply(ingress("a", Some("1"), "a.example.com")));
        writer.apply_watcher_event(&Event::Apply(ingress("b", None, "b.example.com")));
        assert_eq!(read(&mut cache), ["a=a.example.com", "b=b.example.com"]);
        assert_eq!(
            cache.entries.len(),
            1,
            "only objects with a resourceVersion"
        );

        // The same resourceVersion is the same object: its last conversion is used
        // (a real API server never changes content without changing it). An object
        // without one is converted every time.
        writer.apply_watcher_event(&Event::Apply(ingress("a", Some("1"), "x.example.com")));
        writer.apply_watcher_event(&Event::Apply(ingress("b", None, "y.example.com")));
        assert_eq!(read(&mut cache), ["a=a.example.com", "b=y.example.com"]);

        // A new resourceVersion is converted again; the resourceVersion itself is
        // not part of the converted object (status writes are not a new input).
        writer.apply_watcher_event(&Event::Apply(ingress("a", Some("2"), "z.example.com")));
        let converted = convert_all(&reader, ObjectKind::Ingress, &mut cache, &mut Vec::new());
        assert_eq!(hosts(&converted), ["a=z.example.com", "b=y.example.com"]);
        assert!(
            converted
                .iter()
                .all(|i| i.metadata.resource_version.is_none())
        );

        // A deleted object leaves the cache.
        writer.apply_watcher_event(&Event::Delete(ingress("a", Some("2"), "z.example.com")));
        assert_eq!(read(&mut cache), ["b=y.example.com"]);
        assert!(cache.entries.is_empty());
    }

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
