//! The builder behind [`KubeSource`](crate::KubeSource): the watch tasks record
//! which objects changed (kind, namespace and name) and which kinds were listed
//! again; one build applies what changed since the last one.
//!
//! The compiler's snapshot ([`Compiler::snapshot`]) is the one converted copy of
//! the cluster's objects: a build converts only the objects named in
//! [`Pending`] and hands them to the compiler (Ingresses through
//! [`Compiler::apply_ingresses`], EndpointSlices through
//! [`Compiler::apply_endpoint_slices`], Services through
//! [`Compiler::apply_services`]), so the work per change is in the size of the
//! change, not of the cluster. IngressClass and gateway-config changes compile
//! in full from the compiler's objects with the changes written in; Secret
//! changes go through [`apply_secrets`]. A kind listed again (the
//! first list, a restart of its watch after `410 Gone` or an error) is compared
//! whole with what the compiler has and becomes the changes that make them
//! equal, deletions included.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;
use std::sync::Arc;

use ingress_core::compile::{Compiler, FullReason, RouteSplice, Update};
use ingress_core::model::{ObjectKind, ObjectMeta, ObjectRef};
use ingress_core::routing::BackendId;
use ingress_core::{CompileOptions, Diagnostic, Snapshot};
use kube::Resource;
use kube::runtime::reflector::{self, Store};
use serde::de::DeserializeOwned;

use crate::convert::convert;
use crate::gateway::{self, ConfigError, GatewayConfig};
use crate::source::{BuildPath, GatewayConfigState, KubeOptions, Published, Stores};

/// A kind the source watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Watched {
    Ingress,
    IngressClass,
    Service,
    EndpointSlice,
    Secret,
    GatewayConfig,
}

/// Namespace (empty for cluster-scoped objects) and name.
pub(crate) type Key = (String, String);

/// One object's change: its namespace, name and new content (`None`: gone).
type Change<T> = (String, String, Option<T>);

/// What changed since the last build, as the watch tasks saw it.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// Objects added, changed or deleted, by kind.
    pub(crate) changed: BTreeMap<Watched, BTreeSet<Key>>,
    /// Kinds listed again: compared whole with what the compiler has.
    pub(crate) relisted: BTreeSet<Watched>,
}

impl Pending {
    /// Record a change of one object.
    pub(crate) fn object(
        &mut self,
        kind: Watched,
        meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ) {
        let key = (
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        );
        self.changed.entry(kind).or_default().insert(key);
    }

    fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.relisted.is_empty()
    }

    fn touches(&self, kind: Watched) -> bool {
        self.changed.contains_key(&kind) || self.relisted.contains(&kind)
    }
}

/// The test hook of [`KubeOptions::panic_on_ingress`]: panic while an Ingress of
/// that name is among `names`.
fn panic_hook<'a>(options: &KubeOptions, mut names: impl Iterator<Item = &'a str>) {
    if let Some(marker) = &options.panic_on_ingress
        && names.any(|n| n == marker)
    {
        panic!("injected panic in the kube config build (test hook: Ingress {marker})");
    }
}

/// The builder's state between builds.
#[derive(Debug, Default)]
pub(crate) struct Builder {
    version: u64,
    /// The compiler, holding the last table and the objects it came from (`None`
    /// before the first build).
    compiler: Option<Compiler>,
    /// Objects that did not convert, by kind, namespace and name.
    conversion: BTreeMap<(Watched, String, String), Diagnostic>,
    gateway: Option<GatewayConfigState>,
    applied: Option<GatewayConfig>,
    /// The last valid gateway config, applied while a newer one is invalid.
    last_valid_gateway: Option<(String, GatewayConfig)>,
    /// The compiler's Secrets as published (shared until they change).
    secrets: Arc<Vec<ingress_core::model::Secret>>,
}

impl Builder {
    /// Apply `pending` (taken from the watch tasks before the stores are read);
    /// `None` when nothing the table depends on changed.
    pub(crate) fn build(
        &mut self,
        stores: &Stores,
        options: &KubeOptions,
        pending: Pending,
    ) -> Option<Arc<Published>> {
        // A panic from here on drops the compiler (it is taken out of `self`):
        // the next build reads every store again, so no change is lost with it.
        let Some(compiler) = self.compiler.take() else {
            return Some(self.first(stores, options));
        };
        let changed = pending.changed.get(&Watched::Ingress);
        let present = |k: &&Key| get(&stores.ingresses, k).is_some();
        panic_hook(
            options,
            changed
                .into_iter()
                .flatten()
                .filter(present)
                .map(|k| k.1.as_str()),
        );
        if pending.is_empty() {
            self.compiler = Some(compiler);
            return None;
        }
        let mut compiler = Some(compiler);
        let conversion_before = self.conversion.clone();
        let (update, secrets_changed, gateway_changed) =
            self.apply(stores, options, &pending, &mut compiler);
        self.compiler = compiler;
        let conversion_changed = self.conversion != conversion_before;
        if matches!(update, Update::Unchanged) && !conversion_changed && !gateway_changed {
            return None;
        }
        if secrets_changed {
            self.share_secrets();
        }
        Some(self.publish(update))
    }

    /// The first build: everything read and compiled in full.
    fn first(&mut self, stores: &Stores, options: &KubeOptions) -> Arc<Published> {
        if options.panic_on_ingress.is_some() {
            let all = stores.ingresses.state();
            panic_hook(
                options,
                all.iter().filter_map(|i| i.metadata.name.as_deref()),
            );
        }
        let mut snapshot = Snapshot::new();
        let mut conversion = BTreeMap::new();
        snapshot.ingresses = convert_all(&stores.ingresses, Watched::Ingress, &mut conversion);
        snapshot.ingress_classes = convert_all(
            &stores.ingress_classes,
            Watched::IngressClass,
            &mut conversion,
        );
        snapshot.services = convert_all(&stores.services, Watched::Service, &mut conversion);
        snapshot.endpoint_slices = convert_all(
            &stores.endpoint_slices,
            Watched::EndpointSlice,
            &mut conversion,
        );
        self.conversion = conversion;
        let compile_options = self.resolve_gateway(stores, options, &snapshot.ingress_classes);
        let wanted = referenced_secrets(&snapshot, self.applied.as_ref());
        let mut secrets = Vec::new();
        for s in stores.secrets.state() {
            let r = crate::convert::object_ref(ObjectKind::Secret, s.as_ref());
            if wanted.contains(&r) {
                let key = key_of(s.as_ref());
                secrets.extend(self.convert_one(Watched::Secret, key, s.as_ref()));
            }
        }
        snapshot.secrets = secrets;
        self.compiler = Some(Compiler::new(snapshot, compile_options));
        self.share_secrets();
        self.publish(Update::Full(FullReason::First))
    }

    /// Apply the pending changes to the compiler. Returns the update and whether
    /// the Secrets and the gateway config changed.
    fn apply(
        &mut self,
        stores: &Stores,
        options: &KubeOptions,
        pending: &Pending,
        compiler: &mut Option<Compiler>,
    ) -> (Update, bool, bool) {
        let c = compiler.as_ref().expect("a compiler after the first build");
        let snap = c.snapshot();

        // The changes, converted, per kind.
        let ingresses = self.changes(
            &stores.ingresses,
            Watched::Ingress,
            pending,
            &snap.ingresses,
        );
        let slices = self.changes(
            &stores.endpoint_slices,
            Watched::EndpointSlice,
            pending,
            &snap.endpoint_slices,
        );
        let mut classes = self.changes(
            &stores.ingress_classes,
            Watched::IngressClass,
            pending,
            &snap.ingress_classes,
        );
        retain_differing(&mut classes, &snap.ingress_classes);
        let mut services =
            self.changes(&stores.services, Watched::Service, pending, &snap.services);
        retain_differing(&mut services, &snap.services);

        // The gateway config (our IngressClass and the config it references).
        let mut gateway_changed = false;
        let mut compile_options = c.options().clone();
        if !classes.is_empty() || pending.touches(Watched::GatewayConfig) {
            let mut list = snap.ingress_classes.clone();
            edit_list(&mut list, classes.clone());
            let (gateway, applied) = (self.gateway.clone(), self.applied.clone());
            compile_options = self.resolve_gateway(stores, options, &list);
            gateway_changed = gateway != self.gateway || applied != self.applied;
        }

        // Secrets: those named by events or a re-list that are (or should be) in
        // the snapshot, and those the changed Ingresses or the gateway newly need.
        let mut secret_keys: BTreeSet<Key> = BTreeSet::new();
        let relisted = pending.relisted.contains(&Watched::Secret);
        let events = pending.changed.get(&Watched::Secret);
        if relisted || events.is_some() || gateway_changed {
            let wanted = referenced_secrets_with(snap, &ingresses, self.applied.as_ref());
            let present: BTreeSet<Key> =
                snap.secrets.iter().map(|s| meta_key(&s.metadata)).collect();
            let mut candidates: BTreeSet<Key> = events.cloned().unwrap_or_default();
            if relisted || gateway_changed {
                candidates.extend(present.iter().cloned());
                candidates.extend(stores.secrets.state().iter().map(|s| key_of(s.as_ref())));
            }
            for k in candidates {
                let r = ObjectRef::namespaced(ObjectKind::Secret, &k.0, &k.1);
                if wanted.contains(&r) || present.contains(&k) {
                    secret_keys.insert(k);
                }
            }
        } else {
            // Only what the changed Ingresses name and the snapshot lacks.
            let present = |k: &Key| snap.secrets.iter().any(|s| meta_key(&s.metadata) == *k);
            let mut needed = BTreeSet::new();
            for ing in ingresses.iter().filter_map(|(_, _, i)| i.as_ref()) {
                ingress_secrets(ing, &mut needed);
            }
            for r in needed {
                let k = (r.namespace.clone().unwrap_or_default(), r.name.clone());
                if !present(&k) && get(&stores.secrets, &k).is_some() {
                    secret_keys.insert(k);
                }
            }
        }
        let mut secrets: Vec<Change<ingress_core::model::Secret>> = Vec::new();
        if !secret_keys.is_empty() {
            let wanted = referenced_secrets_with(snap, &ingresses, self.applied.as_ref());
            for k in secret_keys {
                let r = ObjectRef::namespaced(ObjectKind::Secret, &k.0, &k.1);
                let obj = get(&stores.secrets, &k).filter(|_| wanted.contains(&r));
                self.conversion
                    .remove(&(Watched::Secret, k.0.clone(), k.1.clone()));
                let new =
                    obj.and_then(|o| self.convert_one(Watched::Secret, k.clone(), o.as_ref()));
                secrets.push((k.0, k.1, new));
            }
            retain_differing(&mut secrets, &snap.secrets);
        }
        let secrets_changed = !secrets.is_empty();

        // Anything but Ingresses, EndpointSlices, Services and Secrets: a full
        // compile of the compiler's objects with every change written in. A new
        // gateway config is one too: the proxy applies its runtime settings with a
        // full table.
        if !classes.is_empty() || gateway_changed || &compile_options != c.options() {
            let (mut snapshot, _) = compiler.take().expect("a compiler").into_parts();
            edit_list(&mut snapshot.ingress_classes, classes);
            edit_list(&mut snapshot.services, services);
            edit_list(&mut snapshot.secrets, secrets);
            edit_list(&mut snapshot.ingresses, ingresses);
            edit_list(&mut snapshot.endpoint_slices, slices);
            *compiler = Some(Compiler::new(snapshot, compile_options));
            return (
                Update::Full(FullReason::NotOnlyIngresses),
                secrets_changed,
                gateway_changed,
            );
        }
        let mut updates = Vec::new();
        if secrets_changed {
            updates.push(apply_secrets(compiler, secrets));
        }
        let c = compiler.as_mut().expect("a compiler");
        if !ingresses.is_empty() {
            updates.push(c.apply_ingresses(ingresses));
        }
        if !slices.is_empty() {
            updates.push(c.apply_endpoint_slices(slices));
        }
        // After the Ingresses, whose new backends it then resolves too (the
        // backend ids it names are the final table's).
        if !services.is_empty() {
            updates.push(c.apply_services(services));
        }
        (
            updates.into_iter().fold(Update::Unchanged, Update::then),
            secrets_changed,
            gateway_changed,
        )
    }

    /// The changes of one kind: the objects named by events, or every object of
    /// the store and of `current` when the kind was listed again; each as the
    /// store has it now, converted (`None`: gone, or it did not convert).
    fn changes<K, T>(
        &mut self,
        store: &Store<K>,
        kind: Watched,
        pending: &Pending,
        current: &[T],
    ) -> Vec<Change<T>>
    where
        K: Resource + k8s_openapi::Resource + serde::Serialize + Clone,
        K::DynamicType: Eq + Hash + Clone + Default,
        T: DeserializeOwned + HasMeta,
    {
        let mut keys: BTreeSet<Key> = pending.changed.get(&kind).cloned().unwrap_or_default();
        if pending.relisted.contains(&kind) {
            keys.extend(current.iter().map(|t| meta_key(t.meta())));
            keys.extend(store.state().iter().map(|o| key_of(o.as_ref())));
            self.conversion.retain(|(k, _, _), _| *k != kind);
        }
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            self.conversion.remove(&(kind, k.0.clone(), k.1.clone()));
            let new = get(store, &k).and_then(|o| self.convert_one(kind, k.clone(), o.as_ref()));
            // As the model names it (`namespace_or_default`).
            let ns = if k.0.is_empty() {
                "default".to_owned()
            } else {
                k.0
            };
            out.push((ns, k.1, new));
        }
        out
    }

    /// Convert one object; a failure is recorded as its diagnostic.
    fn convert_one<K, T>(&mut self, kind: Watched, key: Key, object: &K) -> Option<T>
    where
        K: Resource + k8s_openapi::Resource + serde::Serialize,
        T: DeserializeOwned + HasMeta,
    {
        match convert::<K, T>(object_kind(kind), object) {
            Ok(mut t) => {
                // Status writes change only the resourceVersion: not a new input.
                t.meta_mut().resource_version = None;
                Some(t)
            }
            Err(d) => {
                self.conversion.insert((kind, key.0, key.1), d);
                None
            }
        }
    }

    /// Resolve the gateway config our IngressClass references (classes as given)
    /// and the compile options it gives.
    fn resolve_gateway(
        &mut self,
        stores: &Stores,
        options: &KubeOptions,
        classes: &[ingress_core::model::IngressClass],
    ) -> CompileOptions {
        let gateway = resolve_gateway(stores, classes, &options.compile.controller_name);
        let applied = match &gateway {
            Some(GatewayConfigState {
                name,
                result: Ok(cfg),
                ..
            }) => {
                self.last_valid_gateway = Some((name.clone(), cfg.clone()));
                Some(cfg.clone())
            }
            Some(GatewayConfigState {
                name,
                exists: true,
                result: Err(_),
                ..
            }) => self
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
        self.gateway = gateway;
        self.applied = applied;
        compile_options
    }

    fn share_secrets(&mut self) {
        if let Some(c) = &self.compiler {
            let mut secrets = c.snapshot().secrets.clone();
            sort_by_ref(&mut secrets, |s| &s.metadata);
            self.secrets = Arc::new(secrets);
        }
    }

    /// The published table for `update`.
    fn publish(&mut self, update: Update) -> Arc<Published> {
        let c = self.compiler.as_ref().expect("a compiler");
        self.version += 1;
        let Path {
            path,
            splices,
            bindings,
            endpoints,
        } = build_path(update);
        let mut diagnostics: Vec<Diagnostic> = self.conversion.values().cloned().collect();
        diagnostics.extend(c.diagnostics().iter().cloned());
        diagnostics.sort();
        Arc::new(Published {
            version: self.version,
            // A copy sharing the host structures and backends with the compiler's.
            table: c.table().clone(),
            diagnostics,
            gateway: self.gateway.clone(),
            applied_gateway: self.applied.clone(),
            secrets: self.secrets.clone(),
            path,
            splices,
            bindings,
            endpoints,
        })
    }
}

/// Apply Secret changes to the compiler: the core's Secret fast path
/// (`Compiler::apply_secrets`), which checks again only the TLS bindings naming
/// them, or compiles in full when it must (a Secret named by an annotation).
fn apply_secrets(
    compiler: &mut Option<Compiler>,
    changes: Vec<Change<ingress_core::model::Secret>>,
) -> Update {
    compiler
        .as_mut()
        .expect("a compiler")
        .apply_secrets(changes)
}

/// How the proxy may apply an update.
struct Path {
    path: BuildPath,
    /// The splices of an incremental update.
    splices: Option<Vec<RouteSplice>>,
    /// The TLS bindings of a Secret update.
    bindings: Option<Vec<usize>>,
    /// The backends whose endpoints may have changed (incremental and endpoint
    /// updates).
    endpoints: Option<Vec<BackendId>>,
}

fn build_path(update: Update) -> Path {
    let path = |path, splices, bindings, endpoints| Path {
        path,
        splices,
        bindings,
        endpoints,
    };
    match update {
        Update::Incremental {
            splices, backends, ..
        } => {
            tracing::debug!(
                hosts = splices.len(),
                backends = backends.len(),
                "incremental update: only the touched hosts were compiled"
            );
            path(BuildPath::Incremental, Some(splices), None, Some(backends))
        }
        Update::Unchanged => path(
            BuildPath::Incremental,
            Some(Vec::new()),
            None,
            Some(Vec::new()),
        ),
        Update::Endpoints { backends, .. } => {
            tracing::debug!(
                backends = backends.len(),
                "endpoint update: only the Services' backends were resolved"
            );
            path(BuildPath::Endpoints, None, None, Some(backends))
        }
        Update::Tls { bindings } => {
            tracing::debug!(
                bindings = bindings.len(),
                "Secret update: only the TLS bindings naming the changed Secrets were checked"
            );
            path(BuildPath::Secrets, None, Some(bindings), None)
        }
        other => {
            tracing::debug!(update = ?other, "full compile");
            path(BuildPath::Full, None, None, None)
        }
    }
}

fn object_kind(kind: Watched) -> ObjectKind {
    match kind {
        Watched::Ingress => ObjectKind::Ingress,
        Watched::IngressClass => ObjectKind::IngressClass,
        Watched::Service => ObjectKind::Service,
        Watched::EndpointSlice => ObjectKind::EndpointSlice,
        Watched::Secret => ObjectKind::Secret,
        Watched::GatewayConfig => ObjectKind::IngressClass,
    }
}

fn key_of<K: Resource>(o: &K) -> Key {
    let m = o.meta();
    (
        m.namespace.clone().unwrap_or_default(),
        m.name.clone().unwrap_or_default(),
    )
}

fn meta_key(m: &ObjectMeta) -> Key {
    (m.namespace.clone().unwrap_or_default(), m.name.clone())
}

/// The store's object of that namespace and name.
fn get<K>(store: &Store<K>, key: &Key) -> Option<Arc<K>>
where
    K: Resource + Clone,
    K::DynamicType: Eq + Hash + Clone + Default,
{
    let r = reflector::ObjectRef::<K>::new(&key.1);
    let r = if key.0.is_empty() {
        r
    } else {
        r.within(&key.0)
    };
    store.get(&r).or_else(|| {
        // An object stored without a namespace, named with the default one.
        (key.0 == "default")
            .then(|| store.get(&reflector::ObjectRef::<K>::new(&key.1)))
            .flatten()
    })
}

/// Every object of `store`, converted (those that fail recorded in `diags`).
fn convert_all<K, T>(
    store: &Store<K>,
    kind: Watched,
    diags: &mut BTreeMap<(Watched, String, String), Diagnostic>,
) -> Vec<T>
where
    K: Resource + k8s_openapi::Resource + serde::Serialize + Clone,
    K::DynamicType: Eq + Hash + Clone,
    T: DeserializeOwned + HasMeta,
{
    let objects = store.state();
    let mut out = Vec::with_capacity(objects.len());
    for o in objects {
        match convert::<K, T>(object_kind(kind), o.as_ref()) {
            Ok(mut t) => {
                t.meta_mut().resource_version = None;
                out.push(t);
            }
            Err(d) => {
                let (ns, name) = key_of(o.as_ref());
                diags.insert((kind, ns, name), d);
            }
        }
    }
    out
}

/// Every object of the stores, converted (those that fail left out), sorted by
/// namespace and name; Secrets of the kept types all included.
pub(crate) fn snapshot_of(stores: &Stores) -> Snapshot {
    let mut d = BTreeMap::new();
    let mut s = Snapshot::new();
    s.ingresses = convert_all(&stores.ingresses, Watched::Ingress, &mut d);
    s.ingress_classes = convert_all(&stores.ingress_classes, Watched::IngressClass, &mut d);
    s.services = convert_all(&stores.services, Watched::Service, &mut d);
    s.endpoint_slices = convert_all(&stores.endpoint_slices, Watched::EndpointSlice, &mut d);
    s.secrets = convert_all(&stores.secrets, Watched::Secret, &mut d);
    sort_by_ref(&mut s.ingresses, |t| &t.metadata);
    sort_by_ref(&mut s.ingress_classes, |t| &t.metadata);
    sort_by_ref(&mut s.services, |t| &t.metadata);
    sort_by_ref(&mut s.endpoint_slices, |t| &t.metadata);
    sort_by_ref(&mut s.secrets, |t| &t.metadata);
    s
}

/// Drop the changes that leave the object as `current` has it.
fn retain_differing<T: HasMeta + PartialEq>(changes: &mut Vec<Change<T>>, current: &[T]) {
    if changes.is_empty() {
        return;
    }
    let by_key: HashMap<(&str, &str), &T> =
        current.iter().map(|t| (key_ref(t.meta()), t)).collect();
    changes.retain(|(ns, name, new)| {
        by_key.get(&(ns.as_str(), name.as_str())).copied() != new.as_ref()
    });
}

fn key_ref(m: &ObjectMeta) -> (&str, &str) {
    (m.namespace_or_default(), m.name.as_str())
}

/// Write `changes` into `list` (an upsert or a removal each).
fn edit_list<T: HasMeta>(list: &mut Vec<T>, changes: Vec<Change<T>>) {
    if changes.is_empty() {
        return;
    }
    let mut by_key: HashMap<Key, usize> = list
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let (ns, name) = key_ref(t.meta());
            ((ns.to_owned(), name.to_owned()), i)
        })
        .collect();
    let mut removed = BTreeSet::new();
    for (ns, name, new) in changes {
        let key = (ns, name);
        match (by_key.get(&key).copied(), new) {
            (Some(i), Some(t)) => {
                list[i] = t;
                removed.remove(&i);
            }
            (None, Some(t)) => {
                by_key.insert(key, list.len());
                list.push(t);
            }
            (Some(i), None) => {
                removed.insert(i);
                by_key.remove(&key);
            }
            (None, None) => {}
        }
    }
    let mut i = 0;
    list.retain(|_| {
        let keep = !removed.contains(&i);
        i += 1;
        keep
    });
}

/// Objects with metadata.
pub(crate) trait HasMeta {
    fn meta(&self) -> &ObjectMeta;
    fn meta_mut(&mut self) -> &mut ObjectMeta;
}

macro_rules! has_meta {
    ($($t:ident),*) => {$(
        impl HasMeta for ingress_core::model::$t {
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    )*};
}
has_meta!(Ingress, IngressClass, Service, EndpointSlice, Secret);

fn sort_by_ref<T>(v: &mut [T], meta: impl Fn(&T) -> &ObjectMeta) {
    v.sort_by(|a, b| key_ref(meta(a)).cmp(&key_ref(meta(b))));
}

/// The Secrets one Ingress can use: `spec.tls[].secretName` and annotation values
/// under keys ending in `-secret` (`name` or `namespace/name`).
fn ingress_secrets(ing: &ingress_core::model::Ingress, out: &mut BTreeSet<ObjectRef>) {
    let secret = |ns: &str, name: &str| ObjectRef::namespaced(ObjectKind::Secret, ns, name);
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

/// The Secrets an Ingress can use: `spec.tls[].secretName`, annotation values under
/// keys ending in `-secret` (`name` or `namespace/name`, e.g. `auth-secret`,
/// `auth-tls-secret`, `proxy-ssl-secret`), and the gateway's default certificate.
pub(crate) fn referenced_secrets(
    snapshot: &Snapshot,
    gateway: Option<&GatewayConfig>,
) -> BTreeSet<ObjectRef> {
    let mut out = BTreeSet::new();
    for ing in &snapshot.ingresses {
        ingress_secrets(ing, &mut out);
    }
    if let Some(r) = gateway.and_then(|g| g.default_tls_certificate.clone()) {
        out.insert(r);
    }
    out
}

/// [`referenced_secrets`] of `snapshot` with the Ingress `changes` written in.
fn referenced_secrets_with(
    snapshot: &Snapshot,
    changes: &[Change<ingress_core::model::Ingress>],
    gateway: Option<&GatewayConfig>,
) -> BTreeSet<ObjectRef> {
    let changed: BTreeSet<(&str, &str)> = changes
        .iter()
        .map(|(ns, n, _)| (ns.as_str(), n.as_str()))
        .collect();
    let mut out = BTreeSet::new();
    for ing in &snapshot.ingresses {
        if !changed.contains(&key_ref(&ing.metadata)) {
            ingress_secrets(ing, &mut out);
        }
    }
    for ing in changes.iter().filter_map(|(_, _, i)| i.as_ref()) {
        ingress_secrets(ing, &mut out);
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
    classes: &[ingress_core::model::IngressClass],
    controller: &str,
) -> Option<GatewayConfigState> {
    let configs = stores.gateway_configs.as_ref()?;
    let mut ours: Vec<&ingress_core::model::IngressClass> = classes
        .iter()
        .filter(|c| c.spec.controller == controller)
        .collect();
    ours.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let name = ours
        .into_iter()
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
    use k8s_openapi::api::core::v1::{Secret, Service};
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    /// Reflector stores with their writers, as the watch tasks fill them.
    struct Cluster {
        stores: Stores,
        ingresses: Writer<Ingress>,
        services: Writer<Service>,
        slices: Writer<EndpointSlice>,
        secrets: Writer<Secret>,
        pending: Pending,
    }

    fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).expect("a valid object")
    }

    fn ingress(name: &str, host: &str, service: &str) -> Ingress {
        from(json!({
            "metadata": {"name": name, "namespace": "shop", "resourceVersion": "1"},
            "spec": {"ingressClassName": "gw", "rules": [{"host": host, "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": service, "port": {"number": 80}}}}]}}]},
        }))
    }

    fn slice(service: &str, ip: &str) -> EndpointSlice {
        from(json!({
            "metadata": {"name": format!("{service}-1"), "namespace": "shop",
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}, {"name": "alt", "port": 9090}],
            "endpoints": [{"addresses": [ip]}],
        }))
    }

    /// Service `name` whose port 80 is named `port` (`http` or `alt`, the
    /// slices' two ports).
    fn service(name: &str, port: &str) -> Service {
        from(json!({
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"ports": [{"name": port, "port": 80}]},
        }))
    }

    impl Cluster {
        /// Class `gw` (ours), Services `api` and `web` with one endpoint each,
        /// and Ingresses `i0`..`i{n}` for `h{i}.example.com`.
        fn new(n: usize) -> Cluster {
            let (ingresses_r, mut ingresses) = reflector::store::<Ingress>();
            let (classes_r, mut classes) = reflector::store::<IngressClass>();
            let (services_r, mut services) = reflector::store::<Service>();
            let (slices_r, mut slices) = reflector::store::<EndpointSlice>();
            let (secrets_r, secrets) = reflector::store::<Secret>();
            classes.apply_watcher_event(&Event::Apply(from(json!({
                "metadata": {"name": "gw"},
                "spec": {"controller": ingress_core::DEFAULT_CONTROLLER_NAME},
            }))));
            for s in ["api", "web"] {
                services.apply_watcher_event(&Event::Apply(service(s, "http")));
            }
            slices.apply_watcher_event(&Event::Apply(slice("api", "10.0.0.1")));
            slices.apply_watcher_event(&Event::Apply(slice("web", "10.0.1.1")));
            for i in 0..n {
                let ing = ingress(&format!("i{i}"), &format!("h{i}.example.com"), "api");
                ingresses.apply_watcher_event(&Event::Apply(ing));
            }
            Cluster {
                stores: Stores {
                    ingresses: ingresses_r,
                    ingress_classes: classes_r,
                    services: services_r,
                    endpoint_slices: slices_r,
                    secrets: secrets_r,
                    gateway_configs: None,
                },
                ingresses,
                services,
                slices,
                secrets,
                pending: Pending::default(),
            }
        }

        fn apply_ingress(&mut self, ing: Ingress) {
            self.pending.object(Watched::Ingress, &ing.metadata);
            self.ingresses.apply_watcher_event(&Event::Apply(ing));
        }

        fn build(&mut self, b: &mut Builder) -> Option<Arc<Published>> {
            let options = KubeOptions::default();
            b.build(&self.stores, &options, std::mem::take(&mut self.pending))
        }
    }

    /// Where each host's `/` goes (service and endpoints), for every host of the
    /// table and of a full compile of the stores.
    fn served(table: &ingress_core::RouteTable, hosts: &[String]) -> Vec<String> {
        use ingress_core::{Decision, RequestView, Scheme};
        hosts
            .iter()
            .map(
                |h| match table.route(&RequestView::get(Scheme::Http, h, "/")) {
                    Decision::Forward(f) => {
                        format!("{h} -> {} {:?}", f.backend.service(), f.backend.endpoints())
                    }
                    other => format!("{h} -> {other:?}"),
                },
            )
            .collect()
    }

    /// The published table routes as a full compile of the stores' objects does,
    /// with the same diagnostics.
    fn assert_as_full(c: &Cluster, p: &Published) {
        let full = ingress_core::compile(&c.stores.snapshot(), &CompileOptions::default());
        let hosts: Vec<String> = (0..12)
            .map(|i| format!("h{i}.example.com"))
            .chain(["new.example.com".to_owned()])
            .collect();
        assert_eq!(served(&p.table, &hosts), served(&full.table, &hosts));
        assert_eq!(p.table.routes().len(), full.table.routes().len());
        assert_eq!(p.diagnostics, full.diagnostics);
    }

    /// `p` lists backends to patch, and every one is Service `service`'s.
    fn assert_only_service_patched(p: &Published, service: &str) {
        let endpoints = p.endpoints.as_deref().unwrap_or_default();
        assert!(!endpoints.is_empty());
        assert!(
            endpoints
                .iter()
                .all(|&id| p.table.backend(id).service() == service),
            "{endpoints:?}"
        );
    }

    #[test]
    fn an_ingress_change_after_the_first_build_is_incremental() {
        let mut c = Cluster::new(10);
        let mut b = Builder::default();
        let first = c.build(&mut b).expect("a first table");
        assert_eq!(first.path, BuildPath::Full);
        assert_as_full(&c, &first);
        // Nothing pending: nothing published.
        assert!(c.build(&mut b).is_none());

        c.apply_ingress(ingress("i3", "h3.example.com", "web"));
        let p = c.build(&mut b).expect("a new table");
        assert_eq!(p.path, BuildPath::Incremental);
        assert_eq!(p.version, first.version + 1);
        assert_eq!(
            p.splices.as_ref().map(Vec::len),
            Some(1),
            "one host touched"
        );
        assert_as_full(&c, &p);

        // A status write (a new resourceVersion, the same object) changes nothing.
        let mut same = ingress("i3", "h3.example.com", "web");
        same.metadata.resource_version = Some("2".into());
        c.apply_ingress(same);
        assert!(c.build(&mut b).is_none());
    }

    #[test]
    fn a_burst_of_changes_is_one_update() {
        let mut c = Cluster::new(10);
        let mut b = Builder::default();
        let first = c.build(&mut b).expect("a first table");
        c.apply_ingress(ingress("i1", "h1.example.com", "web"));
        c.apply_ingress(ingress("i2", "h2.example.com", "web"));
        c.apply_ingress(ingress("new", "new.example.com", "web"));
        let gone = ingress("i4", "h4.example.com", "api");
        c.pending.object(Watched::Ingress, &gone.metadata);
        c.ingresses.apply_watcher_event(&Event::Delete(gone));
        c.pending
            .object(Watched::EndpointSlice, &slice("api", "x").metadata);
        c.slices
            .apply_watcher_event(&Event::Apply(slice("api", "10.0.0.9")));
        let p = c.build(&mut b).expect("a new table");
        assert_eq!(p.version, first.version + 1, "one publish for the burst");
        assert_eq!(p.path, BuildPath::Incremental);
        assert_eq!(p.splices.as_ref().map(Vec::len), Some(4));
        // The slice change rides along: api's backend is among those whose
        // endpoints may differ (the proxy patches its balancers too).
        let endpoints = p.endpoints.as_deref().unwrap_or_default();
        assert!(
            endpoints
                .iter()
                .any(|&id| p.table.backend(id).service() == "api"),
            "{endpoints:?}"
        );
        assert_as_full(&c, &p);
        assert!(c.build(&mut b).is_none());
    }

    #[test]
    fn an_endpoint_change_resolves_only_its_service() {
        let mut c = Cluster::new(3);
        let mut b = Builder::default();
        c.build(&mut b).expect("a first table");
        c.pending
            .object(Watched::EndpointSlice, &slice("api", "x").metadata);
        c.slices
            .apply_watcher_event(&Event::Apply(slice("api", "10.0.0.2")));
        let p = c.build(&mut b).expect("a new table");
        assert_eq!(p.path, BuildPath::Endpoints);
        assert_only_service_patched(&p, "api");
        assert_as_full(&c, &p);
        // And an Ingress change after it is still incremental.
        c.apply_ingress(ingress("i0", "h0.example.com", "web"));
        let p = c.build(&mut b).expect("a new table");
        assert_eq!(p.path, BuildPath::Incremental);
        assert_as_full(&c, &p);
    }

    #[test]
    fn a_service_change_resolves_only_its_backends() {
        let mut c = Cluster::new(3);
        let mut b = Builder::default();
        let first = c.build(&mut b).expect("a first table");
        let port_of = |p: &Published| {
            let id = p
                .table
                .routes()
                .iter()
                .find(|r| r.host().to_string() == "h0.example.com");
            let backend = p.table.backend(id.expect("h0's route").backend_id());
            (backend.service().to_owned(), backend.endpoints()[0].port)
        };
        assert_eq!(port_of(&first), ("api".to_owned(), 8080));
        // api's port 80 now maps to the slices' `alt` port.
        let api = service("api", "alt");
        c.pending.object(Watched::Service, &api.metadata);
        c.services.apply_watcher_event(&Event::Apply(api));
        let p = c.build(&mut b).expect("a new table");
        assert_eq!(p.path, BuildPath::Endpoints);
        assert_only_service_patched(&p, "api");
        assert_eq!(port_of(&p), ("api".to_owned(), 9090));
        assert_as_full(&c, &p);
        // The Service deleted: its routes lose their backend (the diagnostics
        // change), a full compile.
        let gone = service("api", "alt");
        c.pending.object(Watched::Service, &gone.metadata);
        c.services.apply_watcher_event(&Event::Delete(gone));
        let p = c.build(&mut b).expect("a new table");
        assert_eq!(p.path, BuildPath::Full);
        assert_as_full(&c, &p);
    }

    #[test]
    fn a_relist_converges_to_the_servers_objects_deletions_included() {
        let mut c = Cluster::new(10);
        let mut b = Builder::default();
        let first = c.build(&mut b).expect("a first table");
        // The watch restarts (say after 410 Gone): the new list lacks i1 and i2
        // (deleted meanwhile, no event seen), changes i3 and adds one.
        c.ingresses.apply_watcher_event(&Event::Init);
        for i in (0..10).filter(|i| ![1, 2].contains(i)) {
            let service = if i == 3 { "web" } else { "api" };
            let ing = ingress(&format!("i{i}"), &format!("h{i}.example.com"), service);
            c.ingresses.apply_watcher_event(&Event::InitApply(ing));
        }
        let added = ingress("new", "new.example.com", "web");
        c.ingresses.apply_watcher_event(&Event::InitApply(added));
        c.ingresses.apply_watcher_event(&Event::InitDone);
        c.pending.relisted.insert(Watched::Ingress);
        let p = c.build(&mut b).expect("a new table");
        assert_eq!(p.version, first.version + 1);
        assert_eq!(p.path, BuildPath::Incremental);
        assert_as_full(&c, &p);
        assert_eq!(p.table.routes().len(), first.table.routes().len() - 1);
        // The same list again: nothing to publish.
        c.pending.relisted.insert(Watched::Ingress);
        assert!(c.build(&mut b).is_none());
    }

    #[test]
    fn secrets_are_read_when_an_ingress_names_one() {
        let mut c = Cluster::new(2);
        let mut b = Builder::default();
        let secret: Secret = from(json!({
            "metadata": {"name": "basic", "namespace": "shop"},
            "type": "Opaque",
            "data": {"auth": "Zm9vOiRhcHIxJHNhbHQkaGFzaAo="},
        }));
        c.pending.object(Watched::Secret, &secret.metadata);
        c.secrets.apply_watcher_event(&Event::Apply(secret));
        let first = c.build(&mut b).expect("a first table");
        assert!(first.secrets.is_empty(), "nobody references it");
        let mut ing = ingress("i0", "h0.example.com", "api");
        ing.metadata.annotations = Some(
            [
                (
                    "nginx.ingress.kubernetes.io/auth-type".to_owned(),
                    "basic".to_owned(),
                ),
                (
                    "nginx.ingress.kubernetes.io/auth-secret".to_owned(),
                    "basic".to_owned(),
                ),
            ]
            .into(),
        );
        c.apply_ingress(ing);
        let p = c.build(&mut b).expect("a new table");
        assert_eq!(p.secrets.len(), 1);
        assert_as_full(&c, &p);
    }

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
}
