//! `compile`: a [`Snapshot`] in, an immutable [`RouteTable`] and diagnostics out.
//!
//! Deterministic: the same objects in any order give the same table and the same
//! diagnostics. Conflicts resolve by age: the oldest `creationTimestamp` wins, then
//! `namespace/name` ascending (the ingress-nginx profile breaks ties descending, as
//! ingress-nginx's `sortIngressSlice` does). An object without a timestamp counts as
//! newer than every object with one.

mod backends;
mod class;
mod options;
mod tls;
mod validate;

use std::collections::{BTreeMap, HashMap};

pub use class::LEGACY_CLASS_ANNOTATION;
pub use options::{CompileOptions, DEFAULT_CONTROLLER_NAME, Profile, UnknownProfile};

use crate::diagnostics::{Code, Diagnostic};
use crate::model::{
    EndpointSlice, Ingress, IngressPath, ObjectKind, ObjectMeta, ObjectRef, Service,
};
use crate::routing::{
    Backend, BackendId, DefaultScope, HostRoutes, MatchKind, Route, RouteHost, RouteId, RouteMatch,
    RouteTable,
};
use crate::snapshot::Snapshot;

use backends::{Resolution, ServiceIndex};
use validate::{BackendSpec, ValidIngress};

/// The result of [`compile()`].
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The route table.
    pub table: RouteTable,
    /// Every problem found, sorted by object, field, code and message.
    pub diagnostics: Vec<Diagnostic>,
}

/// Compile a snapshot into a route table. Never fails and never panics: problems
/// become diagnostics, and an invalid Ingress is left out alone.
pub fn compile(snapshot: &Snapshot, options: &CompileOptions) -> Compiled {
    let mut diags = Vec::new();
    let nginx = options.profile == Profile::IngressNginx;

    // 1. Index the supporting objects (duplicates resolved deterministically).
    let services = dedup(
        &snapshot.services,
        ObjectKind::Service,
        |s: &Service| &s.metadata,
        &mut diags,
    );
    let mut slices: BTreeMap<(&str, &str), Vec<&EndpointSlice>> = BTreeMap::new();
    for s in dedup(
        &snapshot.endpoint_slices,
        ObjectKind::EndpointSlice,
        |s: &EndpointSlice| &s.metadata,
        &mut diags,
    )
    .into_values()
    {
        if let Some(svc) = s.service_name() {
            slices
                .entry((s.metadata.namespace_or_default(), svc))
                .or_default()
                .push(s);
        }
    }
    let index = ServiceIndex { services, slices };
    let secrets = dedup(
        &snapshot.secrets,
        ObjectKind::Secret,
        |s: &crate::model::Secret| &s.metadata,
        &mut diags,
    );
    let class_objects = dedup(
        &snapshot.ingress_classes,
        ObjectKind::IngressClass,
        |c: &crate::model::IngressClass| &c.metadata,
        &mut diags,
    );
    let classes = class::Classes::new(class_objects.into_values().collect(), options, &mut diags);

    // 2. Ours, valid, in precedence order.
    let ingresses = dedup(
        &snapshot.ingresses,
        ObjectKind::Ingress,
        |i: &Ingress| &i.metadata,
        &mut diags,
    );
    let mut valid: Vec<ValidIngress<'_>> = Vec::new();
    for ing in ingresses.into_values() {
        let r = validate::ingress_ref(ing);
        match classes.ownership(ing, &r, options, &mut diags) {
            class::Ownership::Ours => {
                if let Some(v) = validate::validate(ing, r, options.profile, &mut diags) {
                    valid.push(v);
                }
            }
            class::Ownership::NotOurs => {}
            class::Ownership::Invalid => diags.push(Diagnostic::new(
                Code::IngressDropped,
                Some(r),
                None,
                "left out because of the error reported with it; every other Ingress still serves",
            )),
        }
    }
    valid.sort_by(|a, b| precedence(&a.ingress.metadata, &b.ingress.metadata, nginx));

    // 3. Routes per host; the older Ingress wins a conflict.
    let mut b = Builder::new(nginx);
    for v in &valid {
        b.add_ingress(v, &mut diags);
    }
    b.default_backends(&valid, &mut diags);

    // 4. Backends.
    let mut backend_ids: BTreeMap<(String, BackendSpec), BackendId> = BTreeMap::new();
    let mut backends: Vec<Backend> = Vec::new();
    let mut reported: std::collections::BTreeSet<(ObjectRef, BackendId)> = Default::default();
    let mut routes: Vec<Route> = Vec::with_capacity(b.routes.len());
    for (i, pending) in b.routes.iter().enumerate() {
        let key = (pending.namespace.clone(), pending.backend.clone());
        let id = match backend_ids.get(&key) {
            Some(id) => *id,
            None => {
                let id = BackendId(backends.len() as u32);
                let (backend, res) = index.resolve(id, &pending.namespace, &pending.backend);
                backends.push(backend);
                backend_ids.insert(key, id);
                pending_resolution(id, res, &mut b.resolutions);
                id
            }
        };
        if reported.insert((pending.ingress.clone(), id))
            && let Some(d) =
                backend_diagnostic(&backends[id.0 as usize], b.resolutions.get(&id), pending)
        {
            diags.push(d);
        }
        routes.push(Route {
            id: RouteId(i as u32),
            host: pending.host.clone(),
            matcher: pending.matcher.clone(),
            ingress: pending.ingress.clone(),
            field: pending.field.clone(),
            backend: id,
        });
    }

    // 5. TLS.
    let tls = tls::bindings(&valid, &secrets, options, &mut diags);

    // 6. Lookup structures, in a stable route order.
    let table = b.finish(routes, backends, tls, options.profile);
    diags.sort();
    diags.dedup();
    Compiled {
        table,
        diagnostics: diags,
    }
}

fn pending_resolution(id: BackendId, res: Resolution, out: &mut HashMap<BackendId, Resolution>) {
    out.insert(id, res);
}

fn backend_diagnostic(
    backend: &Backend,
    res: Option<&Resolution>,
    p: &PendingRoute,
) -> Option<Diagnostic> {
    let svc = format!("{}/{}", backend.namespace(), backend.service());
    let (code, msg) = match res? {
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
                    " (it has no ports)".to_owned()
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
    let field = match &p.matcher {
        RouteMatch::Path(_) => format!("{}.backend", p.field),
        RouteMatch::DefaultBackend(_) => p.field.clone(),
    };
    Some(Diagnostic::new(
        code,
        Some(p.ingress.clone()),
        Some(field),
        msg,
    ))
}

/// Oldest first; ties by namespace/name (ascending; descending for ingress-nginx).
fn precedence(a: &ObjectMeta, b: &ObjectMeta, nginx: bool) -> std::cmp::Ordering {
    let ts = |m: &ObjectMeta| m.creation_timestamp.map_or(i64::MAX, |t| t.unix());
    let names = (a.namespace_or_default(), a.name.as_str())
        .cmp(&(b.namespace_or_default(), b.name.as_str()));
    ts(a)
        .cmp(&ts(b))
        .then(if nginx { names.reverse() } else { names })
}

/// Index objects by namespace/name. Two objects with the same key cannot exist in a
/// cluster; keep the one that sorts first by precedence then content, so the choice
/// does not depend on input order, and say so.
fn dedup<'s, T: serde::Serialize>(
    objects: &'s [T],
    kind: ObjectKind,
    meta: impl Fn(&T) -> &ObjectMeta,
    diags: &mut Vec<Diagnostic>,
) -> BTreeMap<(&'s str, &'s str), &'s T> {
    let mut out: BTreeMap<(&str, &str), &T> = BTreeMap::new();
    for o in objects {
        let m = meta(o);
        let key = (m.namespace_or_default(), m.name.as_str());
        match out.get(&key) {
            None => {
                out.insert(key, o);
            }
            Some(existing) => {
                let keep_new = precedence(m, meta(existing), false)
                    .then_with(|| content(o).cmp(&content(*existing)))
                    .is_lt();
                if keep_new {
                    out.insert(key, o);
                }
                let r = if kind.is_namespaced() {
                    ObjectRef::namespaced(kind, key.0, key.1)
                } else {
                    ObjectRef::cluster(kind, key.1)
                };
                diags.push(Diagnostic::new(
                    Code::DuplicateObject,
                    Some(r.clone()),
                    None,
                    format!("{r} appears more than once; one copy is used"),
                ));
            }
        }
    }
    out
}

fn content<T: serde::Serialize>(o: &T) -> String {
    serde_json::to_string(o).unwrap_or_default()
}

/// A route before backends are resolved.
struct PendingRoute {
    host: RouteHost,
    matcher: RouteMatch,
    ingress: ObjectRef,
    field: String,
    namespace: String,
    backend: BackendSpec,
}

#[derive(Default)]
struct HostBuild {
    /// The first Ingress that defined the host (ingress-nginx: owns its fallback).
    owner: Option<ObjectRef>,
    fallback: Option<usize>,
    /// (match kind, key) -> index into `routes`.
    entries: BTreeMap<(MatchKind, String), usize>,
}

struct Builder {
    nginx: bool,
    hosts: BTreeMap<RouteHost, HostBuild>,
    routes: Vec<PendingRoute>,
    catch_all: Option<usize>,
    resolutions: HashMap<BackendId, Resolution>,
}

impl Builder {
    fn new(nginx: bool) -> Self {
        Builder {
            nginx,
            hosts: BTreeMap::new(),
            routes: Vec::new(),
            catch_all: None,
            resolutions: HashMap::new(),
        }
    }

    fn add_ingress(&mut self, v: &ValidIngress<'_>, diags: &mut Vec<Diagnostic>) {
        for rule in &v.rules {
            let hb = self.hosts.entry(rule.host.clone()).or_default();
            if hb.owner.is_none() {
                hb.owner = Some(v.r.clone());
            }
            for p in &rule.paths {
                let (kind, key) = crate::routing::match_key(&p.path, self.nginx);
                let entry_key = (kind, key.to_owned());
                let new_route = PendingRoute {
                    host: rule.host.clone(),
                    matcher: RouteMatch::Path(p.path.clone()),
                    ingress: v.r.clone(),
                    field: p.field.clone(),
                    namespace: v.namespace.clone(),
                    backend: p.backend.clone(),
                };
                let hb = self.hosts.get_mut(&rule.host).expect("inserted above");
                match hb.entries.get(&entry_key).copied() {
                    None => {
                        hb.entries.insert(entry_key, self.routes.len());
                        self.routes.push(new_route);
                    }
                    Some(idx) => {
                        let existing = &self.routes[idx];
                        let existing_type = path_of(&existing.matcher).map(IngressPath::path_type);
                        let stronger = existing_type.is_some_and(|t| p.path.path_type() < t);
                        let (winner, loser_ref, loser_field) = if stronger {
                            let old = std::mem::replace(&mut self.routes[idx], new_route);
                            (&self.routes[idx], old.ingress, old.field)
                        } else {
                            (&self.routes[idx], v.r.clone(), p.field.clone())
                        };
                        let same_type = existing_type == Some(p.path.path_type());
                        let msg = if same_type {
                            format!(
                                "host {} path {} is already routed by older {} ({}); this path is not served",
                                rule.host,
                                describe(&winner.matcher),
                                winner.ingress,
                                winner.field
                            )
                        } else {
                            format!(
                                "host {} path {} is shadowed by {} of {} ({}): in the standard profile ImplementationSpecific matches like Prefix, and Prefix wins",
                                rule.host,
                                key,
                                describe(&winner.matcher),
                                winner.ingress,
                                winner.field
                            )
                        };
                        diags.push(Diagnostic::new(
                            Code::DuplicateRoute,
                            Some(loser_ref),
                            Some(format!("{loser_field}.path")),
                            msg,
                        ));
                    }
                }
            }
        }
    }

    fn default_backends(&mut self, valid: &[ValidIngress<'_>], diags: &mut Vec<Diagnostic>) {
        for v in valid {
            let Some(spec) = &v.default_backend else {
                continue;
            };
            let field = "spec.defaultBackend".to_owned();
            let route = |host: RouteHost, scope| PendingRoute {
                host,
                matcher: RouteMatch::DefaultBackend(scope),
                ingress: v.r.clone(),
                field: field.clone(),
                namespace: v.namespace.clone(),
                backend: spec.clone(),
            };
            let catch_all = !self.nginx || v.rules.is_empty();
            if catch_all {
                match self.catch_all {
                    None => {
                        self.catch_all = Some(self.routes.len());
                        self.routes
                            .push(route(RouteHost::Any, DefaultScope::CatchAll));
                    }
                    Some(idx) => {
                        let w = &self.routes[idx];
                        diags.push(Diagnostic::new(
                            Code::DefaultBackendConflict,
                            Some(v.r.clone()),
                            Some(field.clone()),
                            format!(
                                "the catch-all default backend is already set by older {}; this one is not used",
                                w.ingress
                            ),
                        ));
                    }
                }
                continue;
            }
            // ingress-nginx: the default backend of an Ingress with rules answers for the
            // hosts this Ingress defined first, when none of their paths match.
            let mut used = false;
            let hosts: Vec<RouteHost> = v.rules.iter().map(|r| r.host.clone()).collect();
            for host in hosts {
                if host == RouteHost::Any {
                    continue;
                }
                let Some(hb) = self.hosts.get(&host) else {
                    continue;
                };
                if hb.owner.as_ref() != Some(&v.r) || hb.fallback.is_some() {
                    continue;
                }
                let idx = self.routes.len();
                self.routes.push(route(host.clone(), DefaultScope::Host));
                if let Some(hb) = self.hosts.get_mut(&host) {
                    hb.fallback = Some(idx);
                }
                used = true;
            }
            if !used {
                diags.push(Diagnostic::new(
                    Code::DefaultBackendConflict,
                    Some(v.r.clone()),
                    Some(field),
                    "not used: ingress-nginx takes a host's default backend from the first Ingress that defines the host, and every host here was defined by an older Ingress",
                ));
            }
        }
    }

    fn finish(
        self,
        mut routes: Vec<Route>,
        backends: Vec<Backend>,
        tls: Vec<crate::routing::TlsBinding>,
        profile: Profile,
    ) -> RouteTable {
        // Stable order: by host, then matcher; ids are positions in that order.
        let mut order: Vec<usize> = (0..routes.len()).collect();
        order.sort_by(|&a, &b| {
            (&routes[a].host, &routes[a].matcher).cmp(&(&routes[b].host, &routes[b].matcher))
        });
        let mut new_id = vec![0u32; routes.len()];
        for (new, &old) in order.iter().enumerate() {
            new_id[old] = new as u32;
        }
        let mut sorted: Vec<Option<Route>> = routes.drain(..).map(Some).collect();
        let mut routes: Vec<Route> = order.iter().filter_map(|&old| sorted[old].take()).collect();
        for (i, r) in routes.iter_mut().enumerate() {
            r.id = RouteId(i as u32);
        }
        let id = |old: usize| RouteId(new_id[old]);

        let mut table = RouteTable::empty(profile);
        for (host, hb) in &self.hosts {
            let mut hr = HostRoutes::default();
            for ((kind, key), &old) in &hb.entries {
                let rid = id(old);
                match kind {
                    MatchKind::Exact => {
                        hr.exact.insert(key.as_str().into(), rid);
                    }
                    MatchKind::Element => {
                        hr.prefix.insert(key.as_str().into(), rid);
                    }
                    MatchKind::StringPrefix => hr.string_prefix.push((key.as_str().into(), rid)),
                }
                hr.all.push(rid);
            }
            hr.string_prefix
                .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
            hr.all.sort();
            hr.fallback = hb.fallback.map(id);
            match host {
                RouteHost::Pattern(crate::model::HostPattern::Exact(h)) => {
                    table.exact_hosts.insert(h.as_str().into(), hr);
                }
                RouteHost::Pattern(crate::model::HostPattern::Wildcard(s)) => {
                    table.wildcard_hosts.insert(s.as_str().into(), hr);
                }
                RouteHost::Any => table.any_host = Some(hr),
            }
        }
        table.catch_all = self.catch_all.map(id);
        table.routes = routes;
        table.backends = backends;
        table.tls = tls;
        table
    }
}

fn path_of(m: &RouteMatch) -> Option<&IngressPath> {
    match m {
        RouteMatch::Path(p) => Some(p),
        RouteMatch::DefaultBackend(_) => None,
    }
}

fn describe(m: &RouteMatch) -> String {
    match m {
        RouteMatch::Path(p) => format!("{} ({})", p.as_str(), p.path_type()),
        RouteMatch::DefaultBackend(_) => "defaultBackend".into(),
    }
}

#[cfg(test)]
mod tests;
