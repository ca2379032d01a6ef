//! Incremental compile: [`Compiler`] keeps the last result and what it was built
//! from, and applies changed Ingresses by compiling again only the hosts they touch.
//!
//! The result is the one a full [`compile`](super::compile) of the same objects
//! gives: the same routes, host lookup structures, TLS bindings and diagnostics,
//! with ids that may differ. Route ids are slots ([`Routes`]) and stay put:
//! every route outside the touched hosts keeps its id and its slot (and so its
//! chunk of the table, its shard of the host maps and the proxy's state kept
//! parallel to the slots are shared, not rebuilt); a touched host's routes take
//! its old slots when they fit (the rest are freed), else free slots elsewhere
//! or new ones at the end ([`Update::Incremental`] says where). So after
//! updates the routes are no longer in host order and some slots may be free;
//! a full compile numbers them in order again. Backend ids likewise: an unchanged
//! backend keeps its id across updates, a new one takes a free slot or goes at
//! the end, and a backend no route uses any more stays in
//! [`RouteTable::backends`] (resolved as before) until a new backend takes its
//! slot or a full compile renumbers them all. Every backend a route refers to
//! resolves exactly as in a full compile.
//!
//! Secrets and EndpointSlices have fast paths of their own
//! ([`Compiler::apply_secrets`], [`Compiler::apply_endpoint_slices`]): only the TLS
//! bindings naming a changed Secret are checked again, only the backends of a
//! Service whose slices changed are resolved again; the result is again that of a
//! full compile.
//!
//! What cannot be done host by host falls back to a full compile, and
//! [`Update::Full`] says why: any change to an object other than an Ingress,
//! duplicate objects, an Ingress (old or new version) with `spec.tls`, without
//! rules, with a host-less rule, with a catch-all `spec.defaultBackend`, or with a
//! backend-scoped annotation, or more than [`MAX_INGRESSES`] Ingresses sharing
//! the touched hosts.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::annotations::Scope;
use crate::diagnostics::Diagnostic;
use crate::model::{
    EndpointSlice, HostPattern, Ingress, IngressClass, ObjectKind, ObjectRef, Secret, Service,
};
use crate::routing::{
    Backend, BackendId, BackendStatus, PortRef, Route, RouteHost, RouteId, RouteTable, Routes,
};
use crate::snapshot::Snapshot;

use super::backends::ServiceIndex;
use super::validate::{BackendSpec, ValidIngress};
use super::{CompileOptions, Compiled, Profile, Record, build, class, dedup, references};

/// At most this many Ingresses are compiled again for one update (the changed
/// ones and every Ingress sharing a host with them, transitively); more fall back
/// to a full compile.
pub const MAX_INGRESSES: usize = 256;

/// Why an update was a full compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FullReason {
    /// The first compile of a [`Compiler`].
    #[error("first compile")]
    First,
    /// The compile options changed.
    #[error("the compile options changed")]
    Options,
    /// An IngressClass, Service, EndpointSlice or Secret changed (or the order of
    /// their lists).
    #[error("objects other than Ingresses changed")]
    NotOnlyIngresses,
    /// Two objects of one kind share a namespace and name.
    #[error("duplicate objects")]
    Duplicates,
    /// A changed Ingress has (or had) `spec.tls`: TLS bindings are resolved across
    /// all Ingresses.
    #[error("a changed Ingress has spec.tls")]
    Tls,
    /// An Ingress involved has no rules or a rule without a host (such rules serve
    /// every host).
    #[error("an Ingress involved has no rules or a rule without a host")]
    NoHost,
    /// An Ingress involved has a `spec.defaultBackend` that may be the catch-all.
    #[error("an Ingress involved has a catch-all default backend")]
    CatchAll,
    /// An Ingress involved sets a backend-scoped annotation (compared across every
    /// Ingress routing to the same Service port).
    #[error("an Ingress involved sets a backend-scoped annotation")]
    BackendScoped,
    /// More than [`MAX_INGRESSES`] Ingresses share the touched hosts.
    #[error("{0} Ingresses share the touched hosts")]
    TooMany(usize),
    /// [`Compiler::apply_endpoint_slices`] could not re-resolve the backends alone.
    #[error("the endpoint fast path declined: {0}")]
    Endpoints(super::FullCompileNeeded),
    /// A changed Secret is named by an annotation (`auth-secret`,
    /// `auth-tls-secret`, `proxy-ssl-secret`): the Ingress's policy is resolved
    /// again in a full compile.
    #[error("a changed Secret is named by an annotation")]
    AnnotationSecret,
    /// [`Compiler::apply_services`] could not re-resolve the backends alone.
    #[error("the Service fast path declined: {0}")]
    Services(super::FullCompileNeeded),
    /// Updates of several kinds were made at once and cannot be published as one
    /// patch ([`Update::then`]): a Secret update with any other, two Ingress
    /// updates, or an endpoint update before an Ingress update. The compiler's
    /// table is up to date; only the data plane takes it whole.
    #[error("changes of several kinds that one patch cannot carry")]
    Combined,
}

/// One touched host: its routes were slots `old` of the previous table and are
/// slots `new` of the new one. Every slot outside every `new` range holds what it
/// held before (the same route, or still free); an `old` slot outside every
/// `new` range is now free. Route ids do not move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSplice {
    /// The touched host.
    pub host: RouteHost,
    /// Its routes in the previous table (empty for a new host).
    pub old: Range<usize>,
    /// Its routes in the new table (empty for a host that is gone).
    pub new: Range<usize>,
}

/// What an update did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Update {
    /// The objects were already as given; nothing was compiled.
    Unchanged,
    /// Only the touched hosts were compiled again.
    Incremental {
        /// Ingresses compiled again (the changed ones and those sharing their hosts).
        ingresses: usize,
        /// The touched hosts' route slots, in host order.
        splices: Vec<RouteSplice>,
        /// Backends written (new, or a slot reused): their endpoints may differ from
        /// what the previous table had under the same id.
        backends: Vec<BackendId>,
    },
    /// Only TLS bindings were checked again ([`Compiler::apply_secrets`]): the
    /// routes, backends and host structures are the previous table's, as are the
    /// TLS hosts; the listed bindings (indexes into
    /// [`RouteTable::tls_bindings`]) may have a new certificate or problem.
    Tls {
        /// The bindings whose Secret changed.
        bindings: Vec<usize>,
    },
    /// Only EndpointSlices or Services changed
    /// ([`Compiler::apply_endpoint_slices`], [`Compiler::apply_services`]): the
    /// backends of the Services concerned were resolved again (their endpoints
    /// and Service ports may differ); routes, route ids, backend ids and
    /// diagnostics are unchanged.
    Endpoints {
        /// The backends resolved again to something new, in id order: their
        /// endpoints (or Service port) differ from what the previous table had
        /// under the same id (the data plane patches what it derived from those
        /// backends alone; a backend resolved to the same is not listed).
        backends: Vec<BackendId>,
        /// The Services (`namespace/name`) whose EndpointSlices, or which
        /// themselves, changed.
        services: Vec<String>,
    },
    /// Everything was compiled again: route and backend ids may all differ.
    Full(FullReason),
}

impl Update {
    /// One update standing for `self` and then `next`, both made by one
    /// [`Compiler`] in that order (Ingresses before EndpointSlices and Services,
    /// whose backend ids are then the final table's), for a data plane that patches
    /// one update at a time:
    ///
    /// - a full update (either) stays full; an unchanged one gives the other;
    /// - Secret updates join their bindings;
    /// - endpoint updates join their backends and Services;
    /// - an Ingress update then an endpoint update is the Ingress update, its
    ///   written backends joined by the endpoint update's (their endpoints may
    ///   differ from the previous table's);
    /// - anything else (a Secret update with any other, two Ingress updates, an
    ///   endpoint update before an Ingress update) is full with
    ///   [`FullReason::Combined`]: the compiler has applied both, the data plane
    ///   takes the table whole.
    ///
    /// ```
    /// use ingress_core::compile::{FullReason, Update};
    ///
    /// let tls = |b: usize| Update::Tls { bindings: vec![b] };
    /// assert_eq!(tls(2).then(Update::Unchanged).then(tls(1)), Update::Tls { bindings: vec![1, 2] });
    /// assert_eq!(
    ///     tls(1).then(Update::Endpoints { backends: vec![], services: vec![] }),
    ///     Update::Full(FullReason::Combined)
    /// );
    /// ```
    #[must_use]
    pub fn then(self, next: Update) -> Update {
        fn joined<T: Ord>(mut a: Vec<T>, b: Vec<T>) -> Vec<T> {
            a.extend(b);
            a.sort_unstable();
            a.dedup();
            a
        }
        match (self, next) {
            (Update::Full(r), _) | (_, Update::Full(r)) => Update::Full(r),
            (Update::Unchanged, u) | (u, Update::Unchanged) => u,
            (Update::Tls { bindings }, Update::Tls { bindings: more }) => Update::Tls {
                bindings: joined(bindings, more),
            },
            (
                Update::Endpoints { backends, services },
                Update::Endpoints {
                    backends: more,
                    services: others,
                },
            ) => Update::Endpoints {
                backends: joined(backends, more),
                services: joined(services, others),
            },
            (
                Update::Incremental {
                    ingresses,
                    splices,
                    backends,
                },
                Update::Endpoints { backends: more, .. },
            ) => Update::Incremental {
                ingresses,
                splices,
                backends: joined(backends, more),
            },
            _ => Update::Full(FullReason::Combined),
        }
    }
}

/// An incremental compiler: the last [`Compiled`] and the [`Snapshot`] it came
/// from, updated in place.
///
/// ```
/// use ingress_core::compile::{Compiler, Update};
/// use ingress_core::{CompileOptions, Snapshot};
///
/// let mut compiler = Compiler::new(Snapshot::new(), CompileOptions::default());
/// assert!(compiler.table().routes().is_empty());
/// assert_eq!(compiler.remove_ingress("default", "web"), Update::Unchanged);
/// ```
#[derive(Debug)]
pub struct Compiler {
    options: CompileOptions,
    pub(super) snapshot: Snapshot,
    pub(super) compiled: Compiled,
    pub(super) state: State,
}

/// One Ingress as last compiled.
#[derive(Debug)]
struct Entry {
    /// Validated and ours (Secret references resolved).
    valid: Option<ValidIngress>,
}

#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) duplicates: bool,
    ingress_pos: FxHashMap<Arc<ObjectRef>, usize>,
    entries: FxHashMap<Arc<ObjectRef>, Entry>,
    /// What class ownership, validation and Secret references said about each
    /// Ingress (only those with something to say, so that putting the
    /// diagnostics together does not visit every Ingress).
    ingress_diags: FxHashMap<Arc<ObjectRef>, Vec<Diagnostic>>,
    /// The valid Ingresses with rules for each host.
    host_users: FxHashMap<RouteHost, Vec<Arc<ObjectRef>>>,
    pub(super) service_pos: FxHashMap<(String, String), usize>,
    /// EndpointSlices by the Service they belong to.
    pub(super) slice_pos: FxHashMap<(String, String), Vec<usize>>,
    /// EndpointSlices by namespace and name.
    pub(super) slice_names: FxHashMap<(String, String), usize>,
    /// Secrets by namespace and name.
    secret_pos: FxHashMap<(String, String), usize>,
    /// Two Secrets share a namespace and name.
    secret_duplicates: bool,
    global: Vec<Diagnostic>,
    tls: Vec<Diagnostic>,
    build: Vec<Diagnostic>,
    backend_ids: FxHashMap<BackendKey, BackendId>,
    /// References to each backend from routes (own, canary and fallback backends).
    backend_refs: Vec<u32>,
    free: Vec<BackendId>,
    /// Free route slots.
    free_routes: FreeSlots,
}

/// Free route slots as ranges (start -> end), neighbours merged.
#[derive(Debug, Default)]
struct FreeSlots(BTreeMap<usize, usize>);

impl FreeSlots {
    /// Add `r` to the free slots.
    fn release(&mut self, r: Range<usize>) {
        if r.is_empty() {
            return;
        }
        let (mut start, mut end) = (r.start, r.end);
        if let Some((&a, &e)) = self.0.range(..start).next_back()
            && e == start
        {
            self.0.remove(&a);
            start = a;
        }
        if let Some(e) = self.0.remove(&end) {
            end = e;
        }
        self.0.insert(start, end);
    }

    /// Take `n` consecutive slots and give the first: from `prefer` on when they
    /// are free (a host keeps its place), else the first free range large enough,
    /// else a free range at the end of the `count` slots extended past it, else
    /// `count` (new slots).
    fn take(&mut self, n: usize, prefer: usize, count: usize) -> usize {
        if n == 0 {
            return prefer;
        }
        let fits = |a: usize, e: usize, from: usize| a <= from && from + n <= e;
        let found = match self.0.range(..=prefer).next_back() {
            Some((&a, &e)) if fits(a, e, prefer) => Some((a, e, prefer)),
            _ => self
                .0
                .iter()
                .find(|&(&a, &e)| e - a >= n)
                .map(|(&a, &e)| (a, e, a)),
        };
        if let Some((a, e, at)) = found {
            self.0.remove(&a);
            if a < at {
                self.0.insert(a, at);
            }
            if at + n < e {
                self.0.insert(at + n, e);
            }
            return at;
        }
        match self.0.iter().next_back() {
            Some((&a, &e)) if e == count => {
                self.0.remove(&a);
                a
            }
            _ => count,
        }
    }
}

type BackendKey = (String, String, PortRef, bool);

/// Changes to objects by key, as the `apply_*` methods take them: each key once,
/// in the order of its first change, with its last change (a later entry for the
/// same key wins).
pub(super) fn last_wins<K, V>(changes: impl IntoIterator<Item = (K, V)>) -> Vec<(K, V)>
where
    K: std::hash::Hash + Eq + Clone,
{
    let mut at: FxHashMap<K, usize> = FxHashMap::default();
    let mut out: Vec<(K, V)> = Vec::new();
    for (k, v) in changes {
        match at.get(&k) {
            Some(&i) => out[i].1 = v,
            None => {
                at.insert(k.clone(), out.len());
                out.push((k, v));
            }
        }
    }
    out
}

fn backend_key(b: &Backend) -> BackendKey {
    (
        b.namespace.clone(),
        b.service.clone(),
        b.port.clone(),
        b.status == BackendStatus::Unsupported,
    )
}

fn route_backends(r: &Route) -> impl Iterator<Item = BackendId> + '_ {
    std::iter::once(r.backend)
        .chain(r.canaries.iter().map(|c| c.backend))
        .chain(r.fallback)
}

fn hosts_of(v: &ValidIngress) -> Vec<RouteHost> {
    let mut hosts: Vec<RouteHost> = v.rules.iter().map(|r| r.host.clone()).collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

impl Compiler {
    /// Compile `snapshot` in full and keep it for later updates.
    pub fn new(snapshot: Snapshot, options: CompileOptions) -> Self {
        let mut c = Compiler {
            options,
            snapshot,
            compiled: Compiled {
                table: RouteTable::empty(Profile::Standard),
                diagnostics: Vec::new(),
            },
            state: State::default(),
        };
        c.full();
        c
    }

    /// The current table and diagnostics.
    pub fn compiled(&self) -> &Compiled {
        &self.compiled
    }

    /// The current table.
    pub fn table(&self) -> &RouteTable {
        &self.compiled.table
    }

    /// The current diagnostics (sorted, as [`compile`](super::compile) gives them).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.compiled.diagnostics
    }

    /// The objects the current table was compiled from (in no particular order).
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The compile options.
    pub fn options(&self) -> &CompileOptions {
        &self.options
    }

    /// The snapshot and the result, giving up the state kept for updates.
    pub fn into_parts(self) -> (Snapshot, Compiled) {
        (self.snapshot, self.compiled)
    }

    /// New compile options: always a full compile.
    pub fn set_options(&mut self, options: CompileOptions) -> Update {
        self.options = options;
        self.full();
        Update::Full(FullReason::Options)
    }

    /// Add an Ingress, or replace the one with its namespace and name.
    pub fn upsert_ingress(&mut self, ingress: Ingress) -> Update {
        let r = Arc::new(super::validate::ingress_ref(&ingress));
        self.apply(vec![(r, Some(ingress))])
    }

    /// Remove an Ingress (`Unchanged` if there is none of that name).
    pub fn remove_ingress(&mut self, namespace: &str, name: &str) -> Update {
        let r = Arc::new(ObjectRef::namespaced(ObjectKind::Ingress, namespace, name));
        self.apply(vec![(r, None)])
    }

    /// Apply several Ingress changes as one update: each `(namespace, name, ingress)`
    /// upserts (`Some`) or removes (`None`) the Ingress of that namespace and name (a
    /// later entry for the same name wins). The splices of the returned
    /// [`Update::Incremental`] are relative to the table before the call, as for one
    /// change.
    pub fn apply_ingresses(
        &mut self,
        changes: impl IntoIterator<Item = (String, String, Option<Ingress>)>,
    ) -> Update {
        let changes = last_wins(changes.into_iter().map(|(namespace, name, ing)| {
            let r = match &ing {
                Some(i) => Arc::new(super::validate::ingress_ref(i)),
                None => Arc::new(ObjectRef::namespaced(
                    ObjectKind::Ingress,
                    &namespace,
                    &name,
                )),
            };
            (r, ing)
        }));
        self.apply(changes)
    }

    /// Take `next` as the new set of objects: incremental when only Ingresses
    /// differ (compared by namespace and name, then content), a full compile
    /// otherwise. Every other list must be equal, in the same order, to count as
    /// unchanged.
    pub fn replace(&mut self, next: Snapshot) -> Update {
        let same_rest = next.ingress_classes == self.snapshot.ingress_classes
            && next.services == self.snapshot.services
            && next.endpoint_slices == self.snapshot.endpoint_slices
            && next.secrets == self.snapshot.secrets;
        if !same_rest || self.state.duplicates {
            let reason = if same_rest {
                FullReason::Duplicates
            } else {
                FullReason::NotOnlyIngresses
            };
            self.snapshot = next;
            self.full();
            return Update::Full(reason);
        }
        let refs: Vec<Arc<ObjectRef>> = next
            .ingresses
            .iter()
            .map(|i| Arc::new(super::validate::ingress_ref(i)))
            .collect();
        let seen: FxHashSet<&Arc<ObjectRef>> = refs.iter().collect();
        if seen.len() != refs.len() {
            self.snapshot = next;
            self.full();
            return Update::Full(FullReason::Duplicates);
        }
        let mut changes = Vec::new();
        for r in self.state.ingress_pos.keys() {
            if !seen.contains(r) {
                changes.push((r.clone(), None));
            }
        }
        for (ing, r) in next.ingresses.into_iter().zip(refs) {
            let same = self
                .state
                .ingress_pos
                .get(&r)
                .is_some_and(|&p| self.snapshot.ingresses[p] == ing);
            if !same {
                changes.push((r, Some(ing)));
            }
        }
        self.apply(changes)
    }

    /// Compile everything again and rebuild the state kept for updates.
    pub(super) fn full(&mut self) {
        let mut rec = Record::default();
        self.compiled = super::run(&self.snapshot, &self.options, Some(&mut rec));
        let mut st = State {
            duplicates: rec.duplicates,
            global: rec.global,
            tls: rec.tls,
            build: rec.build,
            ..State::default()
        };
        st.entries.reserve(rec.ingresses.len());
        for (r, valid, diags) in rec.ingresses {
            if let Some(v) = &valid {
                for h in hosts_of(v) {
                    st.host_users.entry(h).or_default().push(r.clone());
                }
            }
            if !diags.is_empty() {
                st.ingress_diags.insert(r.clone(), diags);
            }
            st.entries.insert(r, Entry { valid });
        }
        st.ingress_pos.reserve(self.snapshot.ingresses.len());
        for (i, ing) in self.snapshot.ingresses.iter().enumerate() {
            let r = super::validate::ingress_ref(ing);
            let key = st
                .entries
                .get_key_value(&r)
                .map_or_else(|| Arc::new(r), |(k, _)| k.clone());
            st.ingress_pos.insert(key, i);
        }
        for (i, s) in self.snapshot.services.iter().enumerate() {
            let m = &s.metadata;
            st.service_pos
                .insert((m.namespace_or_default().to_owned(), m.name.clone()), i);
        }
        st.slice_names.reserve(self.snapshot.endpoint_slices.len());
        for (i, s) in self.snapshot.endpoint_slices.iter().enumerate() {
            let m = &s.metadata;
            st.slice_names
                .insert((m.namespace_or_default().to_owned(), m.name.clone()), i);
            if let Some(svc) = s.service_name() {
                let key = (s.metadata.namespace_or_default().to_owned(), svc.to_owned());
                st.slice_pos.entry(key).or_default().push(i);
            }
        }
        for (i, s) in self.snapshot.secrets.iter().enumerate() {
            let m = &s.metadata;
            st.secret_duplicates |= st
                .secret_pos
                .insert((m.namespace_or_default().to_owned(), m.name.clone()), i)
                .is_some();
        }
        let table = &self.compiled.table;
        st.backend_refs = vec![0; table.backends.len()];
        for b in &table.backends {
            st.backend_ids.entry(backend_key(b)).or_insert(b.id);
        }
        for r in &table.routes {
            for b in route_backends(r) {
                st.backend_refs[b.0 as usize] += 1;
            }
        }
        // Backends no route uses (a duplicate key) can be reused.
        st.free = (0..table.backends.len())
            .filter(|&i| st.backend_refs[i] == 0)
            .map(|i| BackendId(i as u32))
            .collect();
        for id in &st.free {
            let key = backend_key(&table.backends[id.0 as usize]);
            if st.backend_ids.get(&key) == Some(id) {
                st.backend_ids.remove(&key);
            }
        }
        self.state = st;
    }

    /// Write the changes into the snapshot, then update the result.
    fn apply(&mut self, changes: Vec<(Arc<ObjectRef>, Option<Ingress>)>) -> Update {
        let mut changed: Vec<(Arc<ObjectRef>, Option<ValidIngress>)> = Vec::new();
        let mut new_entries: Vec<Arc<ObjectRef>> = Vec::new();
        for (r, ing) in changes {
            if self.state.duplicates {
                self.snapshot
                    .ingresses
                    .retain(|i| super::validate::ingress_ref(i) != *r);
                self.snapshot.ingresses.extend(ing);
                changed.push((r, None));
                continue;
            }
            match (self.state.ingress_pos.get(&r).copied(), ing) {
                (Some(p), Some(ing)) => {
                    if self.snapshot.ingresses[p] == ing {
                        continue;
                    }
                    self.snapshot.ingresses[p] = ing;
                    new_entries.push(r.clone());
                }
                (None, Some(ing)) => {
                    self.state
                        .ingress_pos
                        .insert(r.clone(), self.snapshot.ingresses.len());
                    self.snapshot.ingresses.push(ing);
                    new_entries.push(r.clone());
                }
                (Some(p), None) => {
                    self.state.ingress_pos.remove(&r);
                    self.snapshot.ingresses.swap_remove(p);
                    if let Some(moved) = self.snapshot.ingresses.get(p) {
                        let m = super::validate::ingress_ref(moved);
                        if let Some(pos) = self.state.ingress_pos.get_mut(&m) {
                            *pos = p;
                        }
                    }
                }
                (None, None) => continue,
            }
            self.state.ingress_diags.remove(&r);
            let old = self.state.entries.remove(&r).and_then(|e| e.valid);
            changed.push((r, old));
        }
        if changed.is_empty() {
            return Update::Unchanged;
        }
        if self.state.duplicates {
            self.full();
            return Update::Full(FullReason::Duplicates);
        }
        self.validate_changed(&new_entries);
        match self.update(changed) {
            Ok(u) => u,
            Err(reason) => {
                self.full();
                Update::Full(reason)
            }
        }
    }

    /// Class ownership, validation and Secret references of the changed Ingresses.
    fn validate_changed(&mut self, keys: &[Arc<ObjectRef>]) {
        let mut scratch = Vec::new();
        let class_objects = dedup(
            &self.snapshot.ingress_classes,
            ObjectKind::IngressClass,
            |c: &IngressClass| &c.metadata,
            &mut scratch,
        );
        let classes = class::Classes::new(
            class_objects.into_values().collect(),
            &self.options,
            &mut scratch,
        );
        let secrets = dedup(
            &self.snapshot.secrets,
            ObjectKind::Secret,
            |s: &Secret| &s.metadata,
            &mut scratch,
        );
        let annotation_options = self.options.annotation_options();
        for r in keys {
            let Some(&p) = self.state.ingress_pos.get(r) else {
                continue;
            };
            let ing = &self.snapshot.ingresses[p];
            let mut diags = Vec::new();
            let mut valid = match classes.ownership(ing, r, &self.options, &mut diags) {
                class::Ownership::Ours => super::validate::validate(
                    ing,
                    ObjectRef::clone(r),
                    &annotation_options,
                    &mut diags,
                ),
                class::Ownership::NotOurs => None,
                class::Ownership::Invalid => {
                    diags.push(Diagnostic::new(
                        crate::diagnostics::Code::IngressDropped,
                        Some(ObjectRef::clone(r)),
                        None,
                        "left out because of the error reported with it; every other Ingress still serves",
                    ));
                    None
                }
            };
            if let Some(v) = valid.as_mut() {
                references::resolve(std::slice::from_mut(v), &secrets, &mut diags);
            }
            if !diags.is_empty() {
                self.state.ingress_diags.insert(r.clone(), diags);
            }
            self.state.entries.insert(r.clone(), Entry { valid });
        }
    }

    /// Whether Ingress `v` can take part in an incremental update.
    fn local(&self, v: &ValidIngress, changed: bool) -> Result<(), FullReason> {
        if v.rules.is_empty() || v.rules.iter().any(|r| r.host == RouteHost::Any) {
            return Err(FullReason::NoHost);
        }
        if changed && !v.tls.is_empty() {
            return Err(FullReason::Tls);
        }
        if v.default_backend.is_some()
            && v.policy.canary.is_none()
            && self.options.profile == Profile::Standard
        {
            return Err(FullReason::CatchAll);
        }
        if v.policy.scoped.iter().any(|s| s.scope == Scope::Backend) {
            return Err(FullReason::BackendScoped);
        }
        Ok(())
    }

    /// The incremental update proper; `Err` leaves a full compile to the caller.
    fn update(
        &mut self,
        changed: Vec<(Arc<ObjectRef>, Option<ValidIngress>)>,
    ) -> Result<Update, FullReason> {
        // 1. The touched hosts and the Ingresses sharing them, transitively.
        let mut hosts: FxHashSet<RouteHost> = FxHashSet::default();
        let mut involved: FxHashSet<Arc<ObjectRef>> = FxHashSet::default();
        for (r, old) in &changed {
            involved.insert(r.clone());
            if let Some(old) = old {
                self.local(old, true)?;
                hosts.extend(hosts_of(old));
            }
            if let Some(new) = self.state.entries.get(r).and_then(|e| e.valid.as_ref()) {
                self.local(new, true)?;
                hosts.extend(hosts_of(new));
            }
        }
        // Host users: the changed Ingresses leave their old hosts, join the new.
        for (r, old) in &changed {
            if let Some(old) = old {
                for h in hosts_of(old) {
                    if let Some(users) = self.state.host_users.get_mut(&h) {
                        users.retain(|u| u != r);
                        if users.is_empty() {
                            self.state.host_users.remove(&h);
                        }
                    }
                }
            }
            if let Some(new) = self.state.entries.get(r).and_then(|e| e.valid.as_ref()) {
                for h in hosts_of(new) {
                    self.state.host_users.entry(h).or_default().push(r.clone());
                }
            }
        }
        let mut members: FxHashSet<Arc<ObjectRef>> = FxHashSet::default();
        let mut work: Vec<RouteHost> = hosts.iter().cloned().collect();
        while let Some(h) = work.pop() {
            for u in self.state.host_users.get(&h).into_iter().flatten() {
                if !members.insert(u.clone()) {
                    continue;
                }
                if members.len() > MAX_INGRESSES {
                    return Err(FullReason::TooMany(members.len()));
                }
                let Some(v) = self.state.entries.get(u).and_then(|e| e.valid.as_ref()) else {
                    continue;
                };
                self.local(v, false)?;
                for h in hosts_of(v) {
                    if hosts.insert(h.clone()) {
                        work.push(h);
                    }
                }
            }
        }
        involved.extend(members.iter().cloned());

        // 2. Compile the involved Ingresses' hosts alone.
        let nginx = self.options.profile == Profile::IngressNginx;
        let mut order: Vec<(&Arc<ObjectRef>, usize)> = members
            .iter()
            .filter_map(|r| self.state.ingress_pos.get(r).map(|&p| (r, p)))
            .collect();
        let meta = |p: usize| &self.snapshot.ingresses[p].metadata;
        order.sort_by(|a, b| super::precedence(meta(a.1), meta(b.1), nginx));
        let valid: Vec<ValidIngress> = order
            .iter()
            .filter_map(|(r, _)| self.state.entries.get(*r).and_then(|e| e.valid.clone()))
            .collect();
        let index = self.service_index(&valid);
        let mut build_diags = Vec::new();
        let mut b = build::Builder::new(nginx, &valid);
        b.add_rules(&mut build_diags);
        b.attach_canaries(&mut build_diags);
        b.add_default_backends(&mut build_diags);
        let mini = b.finish(
            &index,
            &self.compiled.table.tls,
            self.options.profile,
            &mut build_diags,
        );
        drop(index);

        // 3. Put the hosts' routes, backends and lookup structures in place.
        let mut hosts: Vec<RouteHost> = hosts.into_iter().collect();
        hosts.sort();
        let (splices, backends) = self.splice(&hosts, mini);

        // 4. Diagnostics: the involved Ingresses' builder diagnostics are new.
        self.state
            .build
            .retain(|d| d.object.as_ref().is_none_or(|o| !involved.contains(o)));
        self.state.build.extend(build_diags);
        self.collect_diagnostics();
        Ok(Update::Incremental {
            ingresses: members.len().max(changed.len()),
            splices,
            backends,
        })
    }

    /// The Services and EndpointSlices the given Ingresses' routes may use.
    fn service_index(&self, valid: &[ValidIngress]) -> ServiceIndex<'_> {
        let mut services: FxHashMap<(&str, &str), &Service> = FxHashMap::default();
        let mut slices: FxHashMap<(&str, &str), Vec<&EndpointSlice>> = FxHashMap::default();
        let mut add = |ns: &str, name: &str| {
            let key = (ns.to_owned(), name.to_owned());
            if let Some(&p) = self.state.service_pos.get(&key) {
                let s = &self.snapshot.services[p];
                services.insert((s.metadata.namespace_or_default(), &s.metadata.name), s);
            }
            if let Some(list) = self.state.slice_pos.get(&key) {
                let list: Vec<&EndpointSlice> = list
                    .iter()
                    .map(|&i| &self.snapshot.endpoint_slices[i])
                    .collect();
                if let Some(first) = list.first()
                    && let Some(svc) = first.service_name()
                {
                    slices.insert((first.metadata.namespace_or_default(), svc), list);
                }
            }
        };
        for v in valid {
            let ns = v.namespace();
            let specs = v
                .rules
                .iter()
                .flat_map(|r| r.paths.iter().map(|p| &p.backend))
                .chain(v.default_backend.as_ref());
            for spec in specs {
                if let BackendSpec::Service { name, .. } = spec {
                    add(ns, name);
                }
            }
            if let Some(t) = &v.policy.fallback.default_backend {
                add(ns, &t.name);
            }
        }
        ServiceIndex { services, slices }
    }

    /// Replace the routes and host structures of `hosts` (sorted) by those of
    /// `mini`, a table compiled from the Ingresses of those hosts alone.
    fn splice(
        &mut self,
        hosts: &[RouteHost],
        mut mini: RouteTable,
    ) -> (Vec<RouteSplice>, Vec<BackendId>) {
        let table = &mut self.compiled.table;
        let st = &mut self.state;
        // Backends: the mini table's ids to this table's.
        let mut written = Vec::new();
        let map: Vec<BackendId> = std::mem::take(&mut mini.backends)
            .into_vec()
            .into_iter()
            .map(|mut b| {
                let key = backend_key(&b);
                if let Some(&id) = st.backend_ids.get(&key) {
                    return id;
                }
                let id = match st.free.pop() {
                    Some(id) => {
                        b.id = id;
                        table.backends.set(id.0 as usize, b);
                        id
                    }
                    None => {
                        let id = BackendId(table.backends.len() as u32);
                        b.id = id;
                        table.backends.push(b);
                        st.backend_refs.push(0);
                        id
                    }
                };
                st.backend_ids.insert(key, id);
                written.push(id);
                id
            })
            .collect();
        let map_backend = |id: BackendId| map[id.0 as usize];

        // Route ranges per host: the old slots (from the host's structure: a
        // host's routes are always in consecutive slots) and the mini table's.
        let local_range = |routes: &Routes, h: &RouteHost| {
            let slots = routes.slots();
            slots.partition_point(|r| *r.host < *h)..slots.partition_point(|r| *r.host <= *h)
        };
        let mut splices = Vec::with_capacity(hosts.len());
        let mut freed: Vec<BackendId> = Vec::new();
        for h in hosts {
            let old = match h {
                RouteHost::Pattern(HostPattern::Exact(e)) => table.exact_hosts.get(e.as_str()),
                RouteHost::Pattern(HostPattern::Wildcard(s)) => {
                    table.wildcard_hosts.get(s.as_str())
                }
                RouteHost::Any => None,
            }
            .map_or(0..0, |hr| hr.span());
            let local = local_range(&mini.routes, h);
            // The old routes' backends lose a reference; their slots are freed.
            for i in old.clone() {
                for b in route_backends(table.routes.slot(i)) {
                    let n = &mut st.backend_refs[b.0 as usize];
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        freed.push(b);
                    }
                }
                table.routes.release(i);
            }
            st.free_routes.release(old.clone());
            let start = st
                .free_routes
                .take(local.len(), old.start, table.routes.slot_count());
            let new = start..start + local.len();
            for (i, r) in new.clone().zip(local.clone()) {
                let mut r = mini.routes.slot(r).clone();
                r.id = RouteId(i as u32);
                r.backend = map_backend(r.backend);
                for c in &mut r.canaries {
                    c.backend = map_backend(c.backend);
                }
                r.fallback = r.fallback.map(map_backend);
                for b in route_backends(&r) {
                    st.backend_refs[b.0 as usize] += 1;
                }
                table.routes.put(i, r);
            }
            splices.push((h, old, local, new));
        }
        for id in freed {
            if st.backend_refs[id.0 as usize] == 0 {
                let key = backend_key(&table.backends[id.0 as usize]);
                if st.backend_ids.get(&key) == Some(&id) {
                    st.backend_ids.remove(&key);
                }
                st.free.push(id);
            }
        }
        st.free.sort_unstable_by(|a, b| b.cmp(a));
        st.free.dedup();

        // The touched hosts' lookup structures.
        let mut www = false;
        for (h, _, local, new) in &splices {
            let RouteHost::Pattern(p) = h else { continue };
            let (map, mini_map, key) = match p {
                HostPattern::Exact(e) => (&mut table.exact_hosts, &mut mini.exact_hosts, e),
                HostPattern::Wildcard(s) => {
                    (&mut table.wildcard_hosts, &mut mini.wildcard_hosts, s)
                }
            };
            let old = match mini_map.remove(key.as_str()) {
                Some(mut hr) => {
                    let d = new.start as i64 - local.start as i64;
                    if d != 0 {
                        Arc::make_mut(&mut hr).map_ids(|id| RouteId((id.0 as i64 + d) as u32));
                    }
                    www |= hr.policy.as_ref().is_some_and(|p| p.from_to_www);
                    map.insert(hr)
                }
                None => map.remove(key.as_str()),
            };
            if let Some(old) = old {
                www |= old.policy.as_ref().is_some_and(|p| p.from_to_www);
            }
        }
        if www {
            table.www_redirects = table
                .exact_hosts
                .values()
                .chain(table.wildcard_hosts.values())
                .map(|hr| &**hr)
                .chain(table.any_host.as_ref())
                .any(|hr| hr.policy.as_ref().is_some_and(|p| p.from_to_www));
        }
        let splices = splices
            .into_iter()
            .map(|(h, old, _, new)| RouteSplice {
                host: h.clone(),
                old,
                new,
            })
            .collect();
        (splices, written)
    }
}

/// The TLS diagnostics that depend on a Secret's content (those
/// [`Compiler::apply_secrets`] makes again).
fn secret_content_code(code: crate::diagnostics::Code) -> bool {
    use crate::diagnostics::Code;
    matches!(
        code,
        Code::TlsSecretNotFound
            | Code::TlsSecretInvalid
            | Code::TlsHostNotCovered
            | Code::TlsCertificateExpired
            | Code::TlsCertificateExpiresSoon
    )
}

/// The Secrets (namespace, name) an Ingress's annotations name.
fn annotation_secrets(v: &ValidIngress) -> impl Iterator<Item = (&str, &str)> {
    let p = &v.policy;
    let ns = v.namespace();
    p.auth
        .basic
        .as_ref()
        .map(|b| &b.secret)
        .into_iter()
        .chain(p.auth.digest.as_ref().map(|d| &d.secret))
        .chain(p.client_tls.ca_secret.as_ref())
        .chain(
            p.backend
                .upstream_tls
                .as_ref()
                .and_then(|t| t.secret.as_ref()),
        )
        .map(move |n| (n.namespace.as_deref().unwrap_or(ns), n.name.as_str()))
}

impl Compiler {
    /// Put the diagnostics of the current state together, sorted, as a full
    /// compile gives them.
    fn collect_diagnostics(&mut self) {
        let st = &self.state;
        let mut diags: Vec<Diagnostic> = Vec::with_capacity(self.compiled.diagnostics.len());
        diags.extend(st.global.iter().cloned());
        diags.extend(st.tls.iter().cloned());
        diags.extend(st.build.iter().cloned());
        for d in st.ingress_diags.values() {
            diags.extend(d.iter().cloned());
        }
        diags.sort();
        diags.dedup();
        self.compiled.diagnostics = diags;
    }

    /// Apply Secret changes: each `(namespace, name, secret)` upserts (`Some`) or
    /// removes (`None`) the Secret of that namespace and name (a later entry for
    /// the same name wins).
    ///
    /// The fast path ([`Update::Tls`]): only the TLS bindings naming a changed
    /// Secret are checked again (the certificate parses, its key matches, it
    /// covers the host, its expiry at [`CompileOptions::now`]), with the same
    /// diagnostics as a full compile (`tls-secret-not-found`,
    /// `tls-secret-invalid`, `tls-host-not-covered`, the expiry ones); nothing
    /// else of the table is touched. The result equals a full
    /// [`compile`](super::compile) of the same objects. A full compile instead
    /// when a changed Secret is named by an annotation
    /// ([`FullReason::AnnotationSecret`]) or some Secret (or Ingress, Service,
    /// EndpointSlice) is duplicated ([`FullReason::Duplicates`]).
    pub fn apply_secrets(
        &mut self,
        changes: impl IntoIterator<Item = (String, String, Option<Secret>)>,
    ) -> Update {
        let changes = last_wins(changes.into_iter().map(|(ns, name, s)| ((ns, name), s)));
        let duplicates = self.state.duplicates || self.state.secret_duplicates;
        let mut changed: FxHashSet<(String, String)> = FxHashSet::default();
        for (key, secret) in changes {
            let secrets = &mut self.snapshot.secrets;
            if duplicates {
                let before = secrets.len();
                secrets.retain(|s| {
                    (s.metadata.namespace_or_default(), s.metadata.name.as_str())
                        != (key.0.as_str(), key.1.as_str())
                });
                if before != secrets.len() || secret.is_some() {
                    changed.insert(key);
                }
                secrets.extend(secret);
                continue;
            }
            match (self.state.secret_pos.get(&key).copied(), secret) {
                (Some(p), Some(s)) => {
                    if secrets[p] != s {
                        secrets[p] = s;
                        changed.insert(key);
                    }
                }
                (None, Some(s)) => {
                    self.state.secret_pos.insert(key.clone(), secrets.len());
                    secrets.push(s);
                    changed.insert(key);
                }
                (Some(p), None) => {
                    self.state.secret_pos.remove(&key);
                    secrets.swap_remove(p);
                    if let Some(moved) = secrets.get(p) {
                        let m = &moved.metadata;
                        let k = (m.namespace_or_default().to_owned(), m.name.clone());
                        self.state.secret_pos.insert(k, p);
                    }
                    changed.insert(key);
                }
                (None, None) => {}
            }
        }
        if changed.is_empty() {
            return Update::Unchanged;
        }
        if duplicates {
            self.full();
            return Update::Full(FullReason::Duplicates);
        }
        let is_changed = |ns: &str, name: &str| changed.contains(&(ns.to_owned(), name.to_owned()));
        let named = self
            .state
            .entries
            .values()
            .filter_map(|e| e.valid.as_ref())
            .any(|v| annotation_secrets(v).any(|(ns, n)| is_changed(ns, n)));
        if named {
            self.full();
            return Update::Full(FullReason::AnnotationSecret);
        }
        // The bindings naming a changed Secret, checked again.
        let mut parsed: FxHashMap<(String, String), Result<Arc<crate::tls::CertifiedKey>, String>> =
            FxHashMap::default();
        let mut touched = Vec::new();
        let mut fresh_diags = Vec::new();
        let mut stale: FxHashSet<(ObjectRef, String)> = FxHashSet::default();
        let table = &mut self.compiled.table;
        for (i, binding) in table.tls.iter_mut().enumerate() {
            let Some(secret) = &binding.secret else {
                continue;
            };
            let key = (
                secret.namespace.clone().unwrap_or_default(),
                secret.name.clone(),
            );
            if !changed.contains(&key) {
                continue;
            }
            let Some(v) = self
                .state
                .entries
                .get(&binding.ingress)
                .and_then(|e| e.valid.as_ref())
            else {
                continue;
            };
            let Some(t) = v.tls.iter().find(|t| t.host == binding.host) else {
                continue;
            };
            let Some(name) = t.secret.as_deref() else {
                continue;
            };
            let cert = parsed
                .entry(key)
                .or_insert_with_key(|k| {
                    super::tls::load(
                        self.state
                            .secret_pos
                            .get(k)
                            .map(|&p| &self.snapshot.secrets[p]),
                    )
                })
                .clone();
            stale.insert((ObjectRef::clone(&v.r), t.field.clone()));
            stale.insert((ObjectRef::clone(&v.r), t.secret_field.clone()));
            super::tls::check(v, t, name, cert, binding, &self.options, &mut fresh_diags);
            touched.push(i);
        }
        if !touched.is_empty() {
            self.state.tls.retain(|d| {
                let (Some(o), Some(f)) = (&d.object, &d.field) else {
                    return true;
                };
                !(secret_content_code(d.code) && stale.contains(&(o.clone(), f.clone())))
            });
            self.state.tls.extend(fresh_diags);
            self.collect_diagnostics();
        }
        Update::Tls { bindings: touched }
    }
}
