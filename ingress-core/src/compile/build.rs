//! Assembling the route table: routes per host with conflicts resolved by age,
//! default backends per profile, backends resolved once each, lookup structures.

use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::diagnostics::{Code, Diagnostic};
use crate::model::{HostPattern, IngressPath, ObjectRef, PathType};
use crate::routing::{
    Backend, BackendId, DefaultScope, HostRoutes, MatchKind, Route, RouteHost, RouteId, RouteMatch,
    RouteTable, SMALL_HOST, TlsBinding, match_key,
};

use super::Profile;
use super::backends::{Resolution, ServiceIndex};
use super::validate::{BackendSpec, ValidIngress};

static ANY_HOST: RouteHost = RouteHost::Any;
const DEFAULT_BACKEND_FIELD: &str = "spec.defaultBackend";

fn default_backend_field() -> &'static Arc<str> {
    static FIELD: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
    FIELD.get_or_init(|| Arc::from(DEFAULT_BACKEND_FIELD))
}

/// What a pending route matches.
#[derive(Clone, Copy)]
enum Matcher<'v> {
    Path(&'v IngressPath),
    Default(DefaultScope),
}

/// A route before backends are resolved; borrows from the validated Ingresses.
#[derive(Clone, Copy)]
struct Pending<'v> {
    host: &'v RouteHost,
    /// Index into `Builder::hosts`, or `u32::MAX` for the catch-all.
    host_ix: u32,
    matcher: Matcher<'v>,
    /// Index into the validated Ingresses.
    ingress: usize,
    field: &'v Arc<str>,
    backend: &'v BackendSpec,
}

#[derive(Default)]
struct HostBuild<'v> {
    /// The first Ingress that defined the host (ingress-nginx: owns its fallback).
    owner: Option<usize>,
    fallback: Option<usize>,
    /// (match kind, key) -> index into `routes`.
    entries: FxHashMap<(MatchKind, &'v str), usize>,
}

pub(super) struct Builder<'v> {
    nginx: bool,
    valid: &'v [ValidIngress],
    /// Hosts in first-seen order (deterministic: Ingresses come in precedence order).
    hosts: Vec<(&'v RouteHost, HostBuild<'v>)>,
    host_index: FxHashMap<&'v RouteHost, usize>,
    routes: Vec<Pending<'v>>,
    catch_all: Option<usize>,
}

impl<'v> Builder<'v> {
    pub(super) fn new(nginx: bool, valid: &'v [ValidIngress]) -> Self {
        Builder {
            nginx,
            valid,
            hosts: Vec::new(),
            host_index: FxHashMap::default(),
            routes: Vec::new(),
            catch_all: None,
        }
    }

    fn host(&mut self, host: &'v RouteHost) -> (u32, &mut HostBuild<'v>) {
        let i = *self.host_index.entry(host).or_insert_with(|| {
            self.hosts.push((host, HostBuild::default()));
            self.hosts.len() - 1
        });
        (i as u32, &mut self.hosts[i].1)
    }

    /// Add every rule path of the Ingresses, oldest first.
    pub(super) fn add_rules(&mut self, diags: &mut Vec<Diagnostic>) {
        let valid = self.valid;
        for (vi, v) in valid.iter().enumerate() {
            for rule in &v.rules {
                let (host_ix, hb) = self.host(&rule.host);
                hb.owner.get_or_insert(vi);
                for p in &rule.paths {
                    let (kind, key) = match_key(&p.path, self.nginx);
                    let new = Pending {
                        host: &rule.host,
                        host_ix,
                        matcher: Matcher::Path(&p.path),
                        ingress: vi,
                        field: &p.field,
                        backend: &p.backend,
                    };
                    let idx = self.routes.len();
                    let (_, hb) = self.host(&rule.host);
                    let Some(&existing) = hb.entries.get(&(kind, key)) else {
                        hb.entries.insert((kind, key), idx);
                        self.routes.push(new);
                        continue;
                    };
                    self.conflict(existing, new, key, diags);
                }
            }
        }
    }

    /// Two paths with the same key: the stronger path type wins, then the older.
    fn conflict(
        &mut self,
        existing: usize,
        new: Pending<'v>,
        key: &str,
        diags: &mut Vec<Diagnostic>,
    ) {
        let old = self.routes[existing];
        let (Matcher::Path(old_path), Matcher::Path(new_path)) = (old.matcher, new.matcher) else {
            return;
        };
        let (winner, loser) = if new_path.path_type() < old_path.path_type() {
            self.routes[existing] = new;
            (new, old)
        } else {
            (old, new)
        };
        let (Matcher::Path(wp), Matcher::Path(lp)) = (winner.matcher, loser.matcher) else {
            return;
        };
        let winner_ref = &self.valid[winner.ingress].r;
        let msg = if wp.path_type() == lp.path_type() {
            format!(
                "host {} path {} ({}) is already routed by older {} ({}); this path is not served",
                new.host,
                wp.as_str(),
                wp.path_type(),
                winner_ref,
                winner.field
            )
        } else {
            format!(
                "host {} path {key} is shadowed by {} ({}) of {} ({}): in the standard profile ImplementationSpecific matches like Prefix, and Prefix wins",
                new.host,
                wp.as_str(),
                wp.path_type(),
                winner_ref,
                winner.field
            )
        };
        diags.push(Diagnostic::new(
            Code::DuplicateRoute,
            Some(ObjectRef::clone(&self.valid[loser.ingress].r)),
            Some(format!("{}.path", loser.field)),
            msg,
        ));
    }

    /// `spec.defaultBackend`s: the catch-all (standard: any Ingress's; ingress-nginx:
    /// an Ingress without rules), or per host (ingress-nginx, Ingress with rules).
    pub(super) fn add_default_backends(&mut self, diags: &mut Vec<Diagnostic>) {
        let valid = self.valid;
        for (vi, v) in valid.iter().enumerate() {
            let Some(spec) = &v.default_backend else {
                continue;
            };
            let pending = |host: &'v RouteHost, host_ix: u32, scope| Pending {
                host,
                host_ix,
                matcher: Matcher::Default(scope),
                ingress: vi,
                field: default_backend_field(),
                backend: spec,
            };
            if !self.nginx || v.rules.is_empty() {
                match self.catch_all {
                    None => {
                        self.catch_all = Some(self.routes.len());
                        self.routes.push(pending(&ANY_HOST, u32::MAX, DefaultScope::CatchAll));
                    }
                    Some(idx) => diags.push(Diagnostic::new(
                        Code::DefaultBackendConflict,
                        Some(ObjectRef::clone(&v.r)),
                        Some(DEFAULT_BACKEND_FIELD.into()),
                        format!(
                            "the catch-all default backend is already set by older {}; this one is not used",
                            self.valid[self.routes[idx].ingress].r
                        ),
                    )),
                }
                continue;
            }
            let mut used = false;
            for rule in &v.rules {
                if rule.host == RouteHost::Any {
                    continue;
                }
                let idx = self.routes.len();
                let (host_ix, hb) = self.host(&rule.host);
                if hb.owner != Some(vi) || hb.fallback.is_some() {
                    continue;
                }
                hb.fallback = Some(idx);
                self.routes
                    .push(pending(&rule.host, host_ix, DefaultScope::Host));
                used = true;
            }
            if !used {
                diags.push(Diagnostic::new(
                    Code::DefaultBackendConflict,
                    Some(ObjectRef::clone(&v.r)),
                    Some(DEFAULT_BACKEND_FIELD.into()),
                    "not used: ingress-nginx takes a host's default backend from the first Ingress that defines the host, and every host here was defined by an older Ingress",
                ));
            }
        }
    }

    /// Resolve backends, build the routes in a stable order and the lookup maps.
    pub(super) fn finish(
        self,
        index: &ServiceIndex<'_>,
        tls: Vec<TlsBinding>,
        profile: Profile,
        diags: &mut Vec<Diagnostic>,
    ) -> RouteTable {
        // Stable route order: by host, then path (then the host's default backend),
        // the catch-all last among the host-less routes; ids are positions in it.
        let mut hosts: Vec<usize> = (0..self.hosts.len()).collect();
        hosts.sort_by(|&a, &b| self.hosts[a].0.cmp(self.hosts[b].0));
        let path_of = |i: usize| match self.routes[i].matcher {
            Matcher::Path(p) => Some(p),
            Matcher::Default(_) => None,
        };
        let mut order: Vec<usize> = Vec::with_capacity(self.routes.len());
        let mut catch_all = self.catch_all;
        for &h in &hosts {
            let (host, hb) = &self.hosts[h];
            let start = order.len();
            order.extend(hb.entries.values().copied());
            order[start..].sort_by(|&a, &b| path_of(a).cmp(&path_of(b)));
            order.extend(hb.fallback);
            if **host == RouteHost::Any {
                order.extend(catch_all.take());
            }
        }
        order.extend(catch_all);
        let mut new_id = vec![RouteId(0); self.routes.len()];
        for (new, &old) in order.iter().enumerate() {
            new_id[old] = RouteId(new as u32);
        }

        let refs: Vec<Arc<ObjectRef>> = self.valid.iter().map(|v| v.r.clone()).collect();
        let mut backend_ids: FxHashMap<(&str, &BackendSpec), BackendId> = FxHashMap::default();
        let mut backends: Vec<Backend> = Vec::new();
        let mut resolutions: Vec<Resolution> = Vec::new();
        let mut reported: FxHashSet<(usize, BackendId)> = FxHashSet::default();
        // One shared host value per host; the catch-all's host is `*`.
        let host_arcs: Vec<Arc<RouteHost>> = self
            .hosts
            .iter()
            .map(|(h, _)| Arc::new((*h).clone()))
            .collect();
        let any_host = Arc::new(RouteHost::Any);
        // Walk the routes in the order they were added (the Ingresses' memory order,
        // which the cache likes), writing each into its sorted slot.
        let mut slots: Vec<Option<Route>> = (0..self.routes.len()).map(|_| None).collect();
        for (old, &p) in self.routes.iter().enumerate() {
            let new = new_id[old].0 as usize;
            let namespace = self.valid[p.ingress].namespace();
            let id = *backend_ids
                .entry((namespace, p.backend))
                .or_insert_with(|| {
                    let id = BackendId(backends.len() as u32);
                    let (backend, res) = index.resolve(id, namespace, p.backend);
                    backends.push(backend);
                    resolutions.push(res);
                    id
                });
            // Each Ingress hears once about each backend it uses that cannot serve.
            if reported.insert((p.ingress, id)) {
                let (b, res) = (&backends[id.0 as usize], &resolutions[id.0 as usize]);
                if let Some(d) = backend_diagnostic(b, res, &p, &self.valid[p.ingress].r) {
                    diags.push(d);
                }
            }
            slots[new] = Some(Route {
                id: RouteId(new as u32),
                host: host_arcs
                    .get(p.host_ix as usize)
                    .unwrap_or(&any_host)
                    .clone(),
                matcher: match p.matcher {
                    Matcher::Path(path) => RouteMatch::Path(path.clone()),
                    Matcher::Default(s) => RouteMatch::DefaultBackend(s),
                },
                ingress: refs[p.ingress].clone(),
                field: p.field.clone(),
                backend: id,
            });
        }
        let routes: Vec<Route> = slots.into_iter().flatten().collect();

        let mut table = RouteTable::empty(profile);
        table.exact_hosts.reserve(self.hosts.len());
        for (host, hb) in self.hosts {
            let mut hr = HostRoutes::default();
            let mut entries: Vec<(MatchKind, &str, RouteId, PathType)> = hb
                .entries
                .into_iter()
                .filter_map(|((kind, key), old)| match self.routes[old].matcher {
                    Matcher::Path(p) => Some((kind, key, new_id[old], p.path_type())),
                    Matcher::Default(_) => None,
                })
                .collect();
            entries.sort_by_key(|e| e.2);
            let small = entries.len() <= SMALL_HOST;
            for (kind, key, rid, path_type) in entries {
                hr.all.push(rid);
                if small {
                    hr.push_small(key, kind, rid, path_type);
                    continue;
                }
                match kind {
                    MatchKind::Exact => {
                        hr.exact.insert(key.into(), rid);
                    }
                    MatchKind::Element => {
                        hr.prefix.insert(key.into(), (rid, path_type));
                    }
                    MatchKind::StringPrefix => hr.string_prefix.push((key.into(), rid, path_type)),
                }
            }
            hr.string_prefix
                .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
            hr.fallback = hb.fallback.map(|old| new_id[old]);
            match host {
                RouteHost::Pattern(HostPattern::Exact(h)) => {
                    table.exact_hosts.insert(h.as_str().into(), hr);
                }
                RouteHost::Pattern(HostPattern::Wildcard(s)) => {
                    table.wildcard_hosts.insert(s.as_str().into(), hr);
                }
                RouteHost::Any => table.any_host = Some(hr),
            }
        }
        table.catch_all = self.catch_all.map(|old| new_id[old]);
        table.routes = routes;
        table.backends = backends;
        table.tls = tls;
        table
    }
}

fn backend_diagnostic(
    backend: &Backend,
    res: &Resolution,
    p: &Pending<'_>,
    ingress: &ObjectRef,
) -> Option<Diagnostic> {
    if matches!(res, Resolution::Ok) {
        return None;
    }
    let svc = format!("{}/{}", backend.namespace(), backend.service());
    let (code, msg) = match res {
        Resolution::Ok => return None,
        Resolution::OnlyServing => (
            Code::NoReadyEndpoints,
            format!(
                "Service {svc} has no ready endpoints; its serving, non-terminating endpoints are used"
            ),
        ),
        Resolution::ServiceNotFound => (
            Code::ServiceNotFound,
            format!("Service {svc} is not in the input; requests to this backend answer 503"),
        ),
        Resolution::PortNotFound { available } => (
            Code::ServicePortNotFound,
            format!(
                "Service {svc} has no port {}{}; requests answer 503",
                backend.port_ref(),
                if available.is_empty() {
                    String::new()
                } else {
                    format!(" (it has {})", available.join(", "))
                }
            ),
        ),
        Resolution::NoEndpoints => (
            Code::NoEndpoints,
            format!(
                "Service {svc} port {} has no ready or serving endpoints; requests answer 503",
                backend.port_ref()
            ),
        ),
        Resolution::Unsupported => (
            Code::ResourceBackendUnsupported,
            format!(
                "resource backend {} is not supported (only Service backends are served); requests answer 503",
                backend.service()
            ),
        ),
    };
    let field = match p.matcher {
        Matcher::Path(_) => format!("{}.backend", p.field),
        Matcher::Default(_) => p.field.to_string(),
    };
    Some(Diagnostic::new(
        code,
        Some(ingress.clone()),
        Some(field),
        msg,
    ))
}
