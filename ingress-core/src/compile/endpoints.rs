//! The endpoint fast path: a new table from an old one when only EndpointSlices
//! changed, re-resolving only the backends of the Services whose slices changed.
//!
//! Endpoints are resolved by the same code as [`compile`](super::compile)
//! (`ServiceIndex::resolve`: readiness, serving fallback, port mapping by the
//! Service port's name), so the result equals a full compile of the new snapshot.
//! When it could not (anything but EndpointSlices changed, duplicate slices, or a
//! backend whose diagnostics would change, e.g. it lost its last endpoint), the
//! fast path declines and the caller compiles in full.

use std::collections::BTreeSet;

use rustc_hash::FxHashMap;

use super::incremental::{Compiler, FullReason, Update};
use crate::model::{EndpointSlice, ObjectKind};
use crate::routing::{Backend, BackendId, BackendStatus, RouteTable};
use crate::snapshot::Snapshot;

use super::backends::{Resolution, ServiceIndex};
use super::validate::BackendSpec;

/// Why [`refresh_endpoints`] declined: compile the new snapshot in full.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FullCompileNeeded {
    /// Objects other than EndpointSlices differ.
    #[error("objects other than EndpointSlices changed")]
    NotOnlyEndpoints,
    /// Two EndpointSlices share a namespace and name (compile reports it).
    #[error("duplicate EndpointSlices")]
    DuplicateSlices,
    /// A backend's resolution changed kind (say, from ready endpoints to none),
    /// which changes the diagnostics.
    #[error("Service {0} changed from or to having no ready endpoints")]
    DiagnosticsChange(String),
    /// The first port of a changed Service moved while a backend uses the
    /// Service (a `default-backend` annotation resolves to that port).
    #[error("the first port of Service {0} changed")]
    DefaultBackendPort(String),
}

/// What [`refresh_endpoints`] did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Refreshed {
    /// The new table.
    pub table: RouteTable,
    /// The backends resolved again to something new (their endpoints or Service
    /// port differ from the previous table's), in id order.
    pub backends: Vec<BackendId>,
    /// The Services (`namespace/name`) whose EndpointSlices changed.
    pub services: BTreeSet<String>,
}

/// Given `table`, compiled from `previous`, the table a full
/// [`compile`](super::compile) of `next` would give (same routes, same backends,
/// same endpoints, same diagnostics), when `next` differs from `previous` in
/// EndpointSlices only: the backends of the Services whose slices changed are
/// resolved again, every other part of the table is kept as is.
///
/// `Err` says why it declined; compile `next` in full then. Both snapshots must
/// hold their objects in the same order for anything but EndpointSlices to count
/// as unchanged (a reordering only costs a full compile).
pub fn refresh_endpoints(
    table: &RouteTable,
    previous: &Snapshot,
    next: &Snapshot,
) -> Result<Refreshed, FullCompileNeeded> {
    if previous.ingresses != next.ingresses
        || previous.ingress_classes != next.ingress_classes
        || previous.services != next.services
        || previous.secrets != next.secrets
    {
        return Err(FullCompileNeeded::NotOnlyEndpoints);
    }
    let old = slices_by_name(&previous.endpoint_slices)?;
    let new = slices_by_name(&next.endpoint_slices)?;
    // The Services whose slices were added, removed or changed.
    let mut changed: BTreeSet<(&str, &str)> = BTreeSet::new();
    for (key, s) in &new {
        if old.get(key) != Some(s) {
            changed.extend(owner(s));
        }
    }
    for (key, s) in &old {
        if new.get(key) != Some(s) {
            changed.extend(owner(s));
        }
    }
    let services = changed.iter().map(|(ns, n)| format!("{ns}/{n}")).collect();
    let mut out = table.clone();
    if changed.is_empty() {
        return Ok(Refreshed {
            table: out,
            backends: Vec::new(),
            services,
        });
    }
    let mut diags = Vec::new();
    let svc_index = super::dedup(
        &next.services,
        ObjectKind::Service,
        |s: &crate::model::Service| &s.metadata,
        &mut diags,
    );
    let old_index = ServiceIndex {
        services: svc_index.clone(),
        slices: super::slice_index(old.values().copied()),
    };
    let new_index = ServiceIndex {
        services: svc_index,
        slices: super::slice_index(new.values().copied()),
    };
    let concerned = |ns: &str, name: &str| changed.contains(&(ns, name));
    let resolved = reresolve(
        &mut out,
        concerned,
        &old_index,
        &new_index,
        |b, was, now| {
            if same_kind(was, now) {
                Ok(())
            } else {
                Err(FullCompileNeeded::DiagnosticsChange(format!(
                    "{}/{}",
                    b.namespace, b.service
                )))
            }
        },
    )?;
    Ok(Refreshed {
        table: out,
        backends: resolved,
        services,
    })
}

/// The Service backends of `out` whose Service `concerned` names, resolved again
/// by `new` (and as they were by `old`); each that changed is written (the chunks
/// of the others stay shared). `keeps(backend, was, now)` says whether the table
/// may keep its diagnostics; its `Err` stops there. The backends written, in id
/// order. The one loop of the endpoint and Service fast paths.
pub(super) fn reresolve(
    out: &mut RouteTable,
    concerned: impl Fn(&str, &str) -> bool,
    old: &ServiceIndex<'_>,
    new: &ServiceIndex<'_>,
    keeps: impl Fn(&Backend, &Resolution, &Resolution) -> Result<(), FullCompileNeeded>,
) -> Result<Vec<BackendId>, FullCompileNeeded> {
    let mut written = Vec::new();
    for i in 0..out.backends.len() {
        let backend = &out.backends[i];
        if backend.status == BackendStatus::Unsupported
            || !concerned(&backend.namespace, &backend.service)
        {
            continue;
        }
        let spec = BackendSpec::Service {
            name: backend.service.as_str().into(),
            port: backend.port.clone(),
        };
        let (_, was) = old.resolve(backend.id, &backend.namespace, &spec);
        let (fresh, now) = new.resolve(backend.id, &backend.namespace, &spec);
        keeps(backend, &was, &now)?;
        if fresh != *backend {
            written.push(backend.id);
            out.backends.set(i, fresh);
        }
    }
    Ok(written)
}

/// Slices by namespace and name; `Err` on a duplicate (compile would report it).
fn slices_by_name(
    slices: &[EndpointSlice],
) -> Result<FxHashMap<(&str, &str), &EndpointSlice>, FullCompileNeeded> {
    let mut out = FxHashMap::default();
    for s in slices {
        let key = (s.metadata.namespace_or_default(), s.metadata.name.as_str());
        if out.insert(key, s).is_some() {
            return Err(FullCompileNeeded::DuplicateSlices);
        }
    }
    Ok(out)
}

/// The Service a slice belongs to.
fn owner(s: &EndpointSlice) -> Option<(&str, &str)> {
    s.service_name()
        .map(|svc| (s.metadata.namespace_or_default(), svc))
}

/// Whether two resolutions give the same diagnostics (their messages name the
/// Service and port, never the endpoints).
fn same_kind(a: &Resolution, b: &Resolution) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

impl Compiler {
    /// Apply EndpointSlice changes as one update: each `(namespace, name, slice)`
    /// upserts (`Some`) or removes (`None`) the EndpointSlice of that namespace and
    /// name (a later entry for the same name wins).
    ///
    /// Only the backends of the Services whose slices changed are resolved again,
    /// as [`refresh_endpoints`] does, from those Services' slices alone: the work is
    /// in the number of slices of those Services, not in the size of the snapshot.
    /// The table equals a full compile's, and [`Update::Endpoints`] says so; when a
    /// backend's resolution changes kind (the diagnostics change) or objects are
    /// duplicated, this compiles in full and says why.
    ///
    /// ```
    /// use ingress_core::compile::{Compiler, Update};
    /// use ingress_core::{CompileOptions, Snapshot};
    ///
    /// let mut compiler = Compiler::new(Snapshot::new(), CompileOptions::default());
    /// let gone = ("default".to_owned(), "web-abc".to_owned(), None);
    /// assert_eq!(compiler.apply_endpoint_slices([gone]), Update::Unchanged);
    /// ```
    pub fn apply_endpoint_slices(
        &mut self,
        changes: impl IntoIterator<Item = (String, String, Option<EndpointSlice>)>,
    ) -> Update {
        let changes =
            super::incremental::last_wins(changes.into_iter().map(|(ns, name, s)| ((ns, name), s)));
        if self.state.duplicates {
            let mut any = false;
            for ((ns, name), slice) in changes {
                let list = &mut self.snapshot.endpoint_slices;
                let before = list.len();
                list.retain(|s| {
                    !(s.metadata.namespace_or_default() == ns && s.metadata.name == name)
                });
                any |= before != list.len() || slice.is_some();
                list.extend(slice);
            }
            if !any {
                return Update::Unchanged;
            }
            self.full();
            return Update::Full(FullReason::Duplicates);
        }
        // The Services concerned: the old and the new owner of every changed slice.
        let mut services: BTreeSet<(String, String)> = BTreeSet::new();
        let owned = |s: &EndpointSlice| owner(s).map(|(ns, n)| (ns.to_owned(), n.to_owned()));
        for (key, slice) in &changes {
            if let Some(&p) = self.state.slice_names.get(key) {
                services.extend(owned(&self.snapshot.endpoint_slices[p]));
            }
            services.extend(slice.as_ref().and_then(owned));
        }
        let before = self.services_alone(&services);
        let mut any = false;
        for (key, slice) in changes {
            match (self.state.slice_names.get(&key).copied(), slice) {
                (Some(p), Some(slice)) => {
                    if self.snapshot.endpoint_slices[p] == slice {
                        continue;
                    }
                    self.unindex_slice(p);
                    self.snapshot.endpoint_slices[p] = slice;
                    self.index_slice(p);
                }
                (None, Some(slice)) => {
                    let p = self.snapshot.endpoint_slices.len();
                    self.snapshot.endpoint_slices.push(slice);
                    self.state.slice_names.insert(key, p);
                    self.index_slice(p);
                }
                (Some(p), None) => {
                    self.unindex_slice(p);
                    self.state.slice_names.remove(&key);
                    let last = self.snapshot.endpoint_slices.len() - 1;
                    if p != last {
                        self.unindex_slice(last);
                    }
                    self.snapshot.endpoint_slices.swap_remove(p);
                    if p != last {
                        let m = &self.snapshot.endpoint_slices[p].metadata;
                        let moved = (m.namespace_or_default().to_owned(), m.name.clone());
                        self.state.slice_names.insert(moved, p);
                        self.index_slice(p);
                    }
                }
                (None, None) => continue,
            }
            any = true;
        }
        if !any {
            return Update::Unchanged;
        }
        let after = self.services_alone(&services);
        match refresh_endpoints(&self.compiled.table, &before, &after) {
            Ok(r) => {
                self.compiled.table = r.table;
                Update::Endpoints {
                    backends: r.backends,
                    services: r.services.into_iter().collect(),
                }
            }
            Err(e) => {
                self.full();
                Update::Full(FullReason::Endpoints(e))
            }
        }
    }

    /// A snapshot of the given Services and their EndpointSlices alone.
    pub(super) fn services_alone(&self, services: &BTreeSet<(String, String)>) -> Snapshot {
        let mut out = Snapshot::new();
        for key in services {
            if let Some(&p) = self.state.service_pos.get(key) {
                out.services.push(self.snapshot.services[p].clone());
            }
            for &i in self.state.slice_pos.get(key).into_iter().flatten() {
                out.endpoint_slices
                    .push(self.snapshot.endpoint_slices[i].clone());
            }
        }
        out
    }

    /// Add slice `p` to its Service's list.
    fn index_slice(&mut self, p: usize) {
        let s = &self.snapshot.endpoint_slices[p];
        if let Some((ns, svc)) = owner(s) {
            let key = (ns.to_owned(), svc.to_owned());
            self.state.slice_pos.entry(key).or_default().push(p);
        }
    }

    /// Take slice `p` out of its Service's list.
    fn unindex_slice(&mut self, p: usize) {
        let s = &self.snapshot.endpoint_slices[p];
        if let Some((ns, svc)) = owner(s) {
            let key = (ns.to_owned(), svc.to_owned());
            if let Some(list) = self.state.slice_pos.get_mut(&key) {
                list.retain(|&i| i != p);
                if list.is_empty() {
                    self.state.slice_pos.remove(&key);
                }
            }
        }
    }
}
