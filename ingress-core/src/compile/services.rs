//! The Service fast path: a new table from the compiler's when only Services
//! changed, re-resolving only the backends of those Services.
//!
//! A Service decides its backends' port mapping, endpoints (through its slices'
//! port names) and, for an ExternalName Service, the upstream name; nothing else
//! in a compile reads it but the `default-backend` annotation, which takes the
//! Service's first port. So when every backend of the changed Services resolves
//! to the same kind of result with the same diagnostics, and no changed
//! Service's first port moved, the table equals a full compile's with only those
//! backends replaced. Otherwise the compiler compiles in full and says why.

use std::collections::BTreeSet;

use super::FullCompileNeeded;
use super::backends::ServiceIndex;
use super::endpoints::reresolve;
use super::incremental::{Compiler, FullReason, Update};
use crate::model::{ObjectKind, Service};
use crate::routing::{BackendId, RouteTable};
use crate::snapshot::Snapshot;

/// The first port of Service `key` in `s` (what a `default-backend` annotation
/// resolves to), `None` when the Service or its ports are missing.
fn first_port(s: &Snapshot, key: &(String, String)) -> Option<i64> {
    s.services
        .iter()
        .find(|svc| svc.metadata.namespace_or_default() == key.0 && svc.metadata.name == key.1)
        .and_then(|svc| svc.spec.ports.first())
        .map(|p| p.port)
}

/// `table` with the backends of `services` resolved again from `after` (the
/// Services and their slices alone), or why not: see the module's doc.
fn refresh_services(
    table: &RouteTable,
    before: &Snapshot,
    after: &Snapshot,
    services: &BTreeSet<(String, String)>,
) -> Result<(RouteTable, Vec<BackendId>), FullCompileNeeded> {
    let names: rustc_hash::FxHashSet<(&str, &str)> = services
        .iter()
        .map(|(ns, n)| (ns.as_str(), n.as_str()))
        .collect();
    let concerned = |ns: &str, name: &str| names.contains(&(ns, name));
    let mut diags = Vec::new();
    let old_index = ServiceIndex {
        services: super::dedup(
            &before.services,
            ObjectKind::Service,
            |s: &Service| &s.metadata,
            &mut diags,
        ),
        slices: super::slice_index(before.endpoint_slices.iter()),
    };
    let new_index = ServiceIndex {
        services: super::dedup(
            &after.services,
            ObjectKind::Service,
            |s: &Service| &s.metadata,
            &mut diags,
        ),
        slices: super::slice_index(after.endpoint_slices.iter()),
    };
    let mut out = table.clone();
    let written = reresolve(
        &mut out,
        concerned,
        &old_index,
        &new_index,
        |b, was, now| {
            let name = || format!("{}/{}", b.namespace, b.service);
            let key = (b.namespace.clone(), b.service.clone());
            if first_port(before, &key) != first_port(after, &key) {
                return Err(FullCompileNeeded::DefaultBackendPort(name()));
            }
            if was != now {
                return Err(FullCompileNeeded::DiagnosticsChange(name()));
            }
            Ok(())
        },
    )?;
    Ok((out, written))
}

impl Compiler {
    /// Apply Service changes as one update: each `(namespace, name, service)`
    /// upserts (`Some`) or removes (`None`) the Service of that namespace and
    /// name (a later entry for the same name wins).
    ///
    /// Only the backends of the changed Services are resolved again, from those
    /// Services and their EndpointSlices alone; routes, route and backend ids and
    /// diagnostics stay, and [`Update::Endpoints`] says which Services changed
    /// (a data plane treats it as an endpoint change: the backends' endpoints or
    /// upstream ports may differ). When a backend's resolution changes kind or
    /// diagnostics (a Service created or deleted under a route, a port renamed
    /// away), when a changed Service's first port moved while a backend uses the
    /// Service (a `default-backend` annotation resolves to it), or when objects
    /// are duplicated, this compiles in full and says why. The table always
    /// equals a full compile's.
    ///
    /// ```
    /// use ingress_core::compile::{Compiler, Update};
    /// use ingress_core::{CompileOptions, Snapshot};
    ///
    /// let mut compiler = Compiler::new(Snapshot::new(), CompileOptions::default());
    /// let gone = ("default".to_owned(), "web".to_owned(), None);
    /// assert_eq!(compiler.apply_services([gone]), Update::Unchanged);
    /// ```
    pub fn apply_services(
        &mut self,
        changes: impl IntoIterator<Item = (String, String, Option<Service>)>,
    ) -> Update {
        let changes =
            super::incremental::last_wins(changes.into_iter().map(|(ns, name, s)| ((ns, name), s)));
        if self.state.duplicates {
            // Names are ambiguous: replace every Service of each name, then
            // compile in full (which reports the duplicates).
            let mut any = false;
            for ((ns, name), service) in changes {
                let list = &mut self.snapshot.services;
                let before = list.len();
                list.retain(|s| {
                    !(s.metadata.namespace_or_default() == ns && s.metadata.name == name)
                });
                any |= before != list.len() || service.is_some();
                list.extend(service);
            }
            if !any {
                return Update::Unchanged;
            }
            self.full();
            return Update::Full(FullReason::Duplicates);
        }
        let services: BTreeSet<(String, String)> = changes.iter().map(|(k, _)| k.clone()).collect();
        let before = self.services_alone(&services);
        let mut changed: BTreeSet<(String, String)> = BTreeSet::new();
        for (key, service) in changes {
            let name = key.clone();
            match (self.state.service_pos.get(&key).copied(), service) {
                (Some(p), Some(s)) => {
                    if self.snapshot.services[p] == s {
                        continue;
                    }
                    self.snapshot.services[p] = s;
                }
                (None, Some(s)) => {
                    self.state
                        .service_pos
                        .insert(key, self.snapshot.services.len());
                    self.snapshot.services.push(s);
                }
                (Some(p), None) => {
                    self.state.service_pos.remove(&key);
                    self.snapshot.services.swap_remove(p);
                    if let Some(moved) = self.snapshot.services.get(p) {
                        let m = &moved.metadata;
                        let k = (m.namespace_or_default().to_owned(), m.name.clone());
                        self.state.service_pos.insert(k, p);
                    }
                }
                (None, None) => continue,
            }
            changed.insert(name);
        }
        if changed.is_empty() {
            return Update::Unchanged;
        }
        let after = self.services_alone(&services);
        match refresh_services(&self.compiled.table, &before, &after, &changed) {
            Ok((table, backends)) => {
                self.compiled.table = table;
                Update::Endpoints {
                    backends,
                    services: changed
                        .into_iter()
                        .map(|(ns, n)| format!("{ns}/{n}"))
                        .collect(),
                }
            }
            Err(e) => {
                self.full();
                Update::Full(FullReason::Services(e))
            }
        }
    }
}
