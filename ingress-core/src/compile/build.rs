//! Assembling the route table: routes per host with conflicts resolved by age,
//! default backends per profile, backends resolved once each, lookup structures.

use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::annotations::values::Pattern;
use crate::annotations::{RegexMode, Scope};
use crate::diagnostics::{Code, Diagnostic};
use crate::model::{HostPattern, IngressPath, ObjectRef, PathType};
use crate::routing::{
    Backend, BackendId, CanaryRoute, DefaultScope, HostPolicy, HostRoutes, MatchKind, Route,
    RouteHost, RouteId, RouteMatch, RouteTable, SMALL_HOST, TlsBinding, match_key,
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
    kind: MatchKind,
}

/// A canary Ingress's path, attached to its primary's route.
#[derive(Clone, Copy)]
struct CanaryPending<'v> {
    ingress: usize,
    field: &'v Arc<str>,
    backend: &'v BackendSpec,
}

#[derive(Default)]
struct HostBuild<'v> {
    /// The first Ingress that defined the host (ingress-nginx: owns its fallback).
    owner: Option<usize>,
    /// The Ingresses after `owner` with rules for the host, in precedence order
    /// (most hosts have one Ingress: no allocation for them).
    more: Vec<usize>,
    /// ingress-nginx: an Ingress of the host uses regex or rewrite.
    regex: bool,
    fallback: Option<usize>,
    /// (match kind, key) -> index into `routes`.
    entries: Entries<'v>,
}

impl HostBuild<'_> {
    /// Every Ingress with rules for the host, in precedence order.
    fn ingresses(&self) -> impl Iterator<Item = usize> + '_ {
        self.owner.into_iter().chain(self.more.iter().copied())
    }
}

/// A host's paths by (match kind, key): a list scanned while short (a host has a
/// handful of paths; comparing them costs less than hashing each key), with a hash
/// index added once it grows past [`Entries::SCAN`].
#[derive(Default)]
struct Entries<'v> {
    list: Vec<((MatchKind, &'v str), usize)>,
    index: Option<FxHashMap<(MatchKind, &'v str), usize>>,
}

impl<'v> Entries<'v> {
    const SCAN: usize = 16;

    fn len(&self) -> usize {
        self.list.len()
    }

    fn reserve(&mut self, n: usize) {
        self.list.reserve(n);
    }

    fn get(&self, key: &(MatchKind, &str)) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(key).copied(),
            None => self
                .list
                .iter()
                .find(|((kind, k), _)| *kind == key.0 && *k == key.1)
                .map(|&(_, v)| v),
        }
    }

    /// Add `key -> value` unless the key is there; `Err` with the existing value.
    fn try_insert(&mut self, key: (MatchKind, &'v str), value: usize) -> Result<(), usize> {
        if let Some(existing) = self.get(&key) {
            return Err(existing);
        }
        self.list.push((key, value));
        if let Some(index) = &mut self.index {
            index.insert(key, value);
        } else if self.list.len() > Self::SCAN {
            self.index = Some(self.list.iter().copied().collect());
        }
        Ok(())
    }

    /// The values, in insertion order.
    fn values(&self) -> impl Iterator<Item = usize> + '_ {
        self.list.iter().map(|&(_, v)| v)
    }
}

pub(super) struct Builder<'v> {
    nginx: bool,
    valid: &'v [ValidIngress],
    /// Hosts in first-seen order (deterministic: Ingresses come in precedence order).
    hosts: Vec<(&'v RouteHost, HostBuild<'v>)>,
    host_index: FxHashMap<&'v RouteHost, usize>,
    routes: Vec<Pending<'v>>,
    canaries: FxHashMap<usize, Vec<CanaryPending<'v>>>,
    catch_all: Option<usize>,
}

impl<'v> Builder<'v> {
    pub(super) fn new(nginx: bool, valid: &'v [ValidIngress]) -> Self {
        // Sized for one host and its paths per Ingress rule (the usual shape).
        let rules: usize = valid.iter().map(|v| v.rules.len()).sum();
        let paths: usize = valid
            .iter()
            .flat_map(|v| &v.rules)
            .map(|r| r.paths.len())
            .sum();
        Builder {
            nginx,
            valid,
            hosts: Vec::with_capacity(rules),
            host_index: FxHashMap::with_capacity_and_hasher(rules, Default::default()),
            routes: Vec::with_capacity(paths),
            canaries: FxHashMap::default(),
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

    /// How a path of Ingress `v` is keyed: standard-profile regex paths (and every
    /// path of an `ignore-path-case` Ingress) go to the host's regex list.
    fn key_of<'p>(&self, v: &ValidIngress, path: &'p IngressPath) -> (MatchKind, &'p str) {
        let routing = &v.policy.routing;
        let regex = !self.nginx
            && (routing.ignore_path_case
                || (path.path_type() == PathType::ImplementationSpecific
                    && routing.regex_mode(super::Profile::Standard) != RegexMode::Off));
        if regex {
            (MatchKind::Regex, path.as_str())
        } else {
            match_key(path, self.nginx)
        }
    }

    /// Add every rule path of the non-canary Ingresses, oldest first.
    pub(super) fn add_rules(&mut self, diags: &mut Vec<Diagnostic>) {
        let valid = self.valid;
        for (vi, v) in valid.iter().enumerate() {
            if v.policy.canary.is_some() {
                continue;
            }
            let regex = self.nginx
                && v.policy.routing.regex_mode(super::Profile::IngressNginx) != RegexMode::Off;
            for rule in &v.rules {
                let (host_ix, hb) = self.host(&rule.host);
                match hb.owner {
                    None => hb.owner = Some(vi),
                    Some(owner) if owner != vi && hb.more.last() != Some(&vi) => {
                        hb.more.push(vi);
                    }
                    Some(_) => {}
                }
                hb.regex |= regex;
                hb.entries.reserve(rule.paths.len());
                self.routes.reserve(rule.paths.len());
                for p in &rule.paths {
                    let (kind, key) = self.key_of(v, &p.path);
                    let new = Pending {
                        host: &rule.host,
                        host_ix,
                        matcher: Matcher::Path(&p.path),
                        ingress: vi,
                        field: &p.field,
                        backend: &p.backend,
                        kind,
                    };
                    let idx = self.routes.len();
                    // The host was found above: index it rather than hash it again.
                    let hb = &mut self.hosts[host_ix as usize].1;
                    match hb.entries.try_insert((kind, key), idx) {
                        Ok(()) => self.routes.push(new),
                        Err(existing) => self.conflict(existing, new, key, diags),
                    }
                }
            }
        }
    }

    /// Attach canary Ingresses to the routes with the same host, path and path type.
    /// ingress-nginx profile: one canary per route (the oldest); standard: all.
    pub(super) fn attach_canaries(&mut self, diags: &mut Vec<Diagnostic>) {
        let valid = self.valid;
        for (vi, v) in valid.iter().enumerate() {
            if v.policy.canary.is_none() {
                continue;
            }
            if v.policy.fail_closed.is_some() {
                diags.push(Diagnostic::new(
                    Code::IngressDropped,
                    Some(ObjectRef::clone(&v.r)),
                    None,
                    "this canary is not attached because of the errors reported with it; its primaries serve every request",
                ));
                continue;
            }
            for rule in &v.rules {
                for p in &rule.paths {
                    let primary = self.host_index.get(&rule.host).and_then(|&h| {
                        let hb = &self.hosts[h].1;
                        let (kind, key) = match_key(&p.path, self.nginx);
                        hb.entries
                            .get(&(kind, key))
                            .or_else(|| hb.entries.get(&(MatchKind::Regex, p.path.as_str())))
                    });
                    let primary = primary.filter(|&idx| {
                        matches!(self.routes[idx].matcher, Matcher::Path(pp) if pp == &p.path)
                    });
                    let Some(idx) = primary else {
                        diags.push(Diagnostic::new(
                            Code::CanaryWithoutPrimary,
                            Some(ObjectRef::clone(&v.r)),
                            Some(format!("{}.path", p.field)),
                            format!(
                                "canary path {} ({}) of host {} has no non-canary Ingress with the same host, path and path type; it adds no route",
                                p.path.as_str(),
                                p.path.path_type(),
                                rule.host
                            ),
                        ));
                        continue;
                    };
                    let list = self.canaries.entry(idx).or_default();
                    if self.nginx && !list.is_empty() {
                        diags.push(Diagnostic::new(
                            Code::CanaryConflict,
                            Some(ObjectRef::clone(&v.r)),
                            Some(format!("{}.path", p.field)),
                            format!(
                                "host {} path {} already has canary {} (ingress-nginx allows one canary per route); this one is not used",
                                rule.host,
                                p.path.as_str(),
                                self.valid[list[0].ingress].r
                            ),
                        ));
                        continue;
                    }
                    list.push(CanaryPending {
                        ingress: vi,
                        field: &p.field,
                        backend: &p.backend,
                    });
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
            if v.policy.canary.is_some() {
                continue;
            }
            let pending = |host: &'v RouteHost, host_ix: u32, scope| Pending {
                host,
                host_ix,
                matcher: Matcher::Default(scope),
                ingress: vi,
                field: default_backend_field(),
                backend: spec,
                kind: MatchKind::Exact,
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

    /// The regex a path matches as: ingress-nginx contagion (`(?i)^<path>`), a
    /// standard-profile regex path (`^<path>`, or `^(?:<path>)$` for
    /// `full-path-regex`), or a literal path of an `ignore-path-case` Ingress.
    fn path_regex(
        &self,
        ingress: usize,
        path: &IngressPath,
        host_regex: bool,
    ) -> Result<Pattern, String> {
        use crate::annotations::values;
        if host_regex {
            return values::regex(&format!("(?i)^{}", path.as_str()), false).map(Pattern);
        }
        let routing = &self.valid[ingress].policy.routing;
        let mode = routing.regex_mode(super::Profile::Standard);
        let src = match (mode, path.path_type()) {
            (RegexMode::Full, PathType::ImplementationSpecific) => {
                format!("^(?:{})$", path.as_str())
            }
            (RegexMode::Prefix, PathType::ImplementationSpecific) => format!("^{}", path.as_str()),
            (_, PathType::Exact) => format!("^{}$", regex::escape(path.as_str())),
            _ => match path.as_str().trim_end_matches('/') {
                "" => "^/".to_owned(),
                t => format!("^{}(?:/|$)", regex::escape(t)),
            },
        };
        let src = if routing.ignore_path_case {
            format!("(?i){src}")
        } else {
            src
        };
        values::regex(&src, false).map(Pattern)
    }

    /// Host-scoped annotations of the Ingresses of one host: the oldest Ingress that
    /// sets a key wins; a different value on a newer one is diagnosed.
    fn host_policy(
        &self,
        host: &RouteHost,
        hb: &HostBuild<'_>,
        tls: &TlsHosts<'_>,
        diags: &mut Vec<Diagnostic>,
    ) -> HostPolicy {
        use crate::annotations::Family;
        let mut hp = HostPolicy {
            regex: self.nginx && hb.regex,
            has_tls: match host {
                RouteHost::Pattern(p) => tls.covers(p),
                RouteHost::Any => false,
            },
            ..HostPolicy::default()
        };
        if hp.regex {
            let is_regex = |vi: usize| {
                self.valid[vi]
                    .policy
                    .routing
                    .regex_mode(super::Profile::IngressNginx)
                    != RegexMode::Off
            };
            let others: Vec<String> = hb
                .ingresses()
                .filter(|&vi| !is_regex(vi))
                .map(|vi| self.valid[vi].r.to_string())
                .collect();
            if !others.is_empty() {
                for vi in hb.ingresses().filter(|&vi| is_regex(vi)) {
                    let r = &self.valid[vi].policy.routing;
                    let key = if r.use_regex {
                        "use-regex"
                    } else {
                        "rewrite-target"
                    };
                    diags.push(Diagnostic::new(
                        Code::RegexHostContagion,
                        Some(ObjectRef::clone(&self.valid[vi].r)),
                        Some(crate::annotations::annotation_field(&format!(
                            "nginx.ingress.kubernetes.io/{key}"
                        ))),
                        format!(
                            "{key} makes every path of host {host} a case-insensitive regex matched by path length, also the paths of {} (Exact paths then match as prefixes)",
                            others.join(", ")
                        ),
                    ));
                }
            }
        }
        let mut seen: Vec<(&str, &str, usize)> = Vec::new();
        for vi in hb.ingresses() {
            let v = &self.valid[vi];
            let sets = |name: &str| v.policy.scoped.iter().any(|s| s.name == name);
            for sv in v.policy.scoped.iter().filter(|s| s.scope == Scope::Host) {
                match seen.iter().find(|(n, _, _)| *n == sv.name) {
                    Some((_, value, first)) if *value != sv.value => diags.push(Diagnostic::new(
                        Code::AnnotationConflict,
                        Some(ObjectRef::clone(&v.r)),
                        Some(crate::annotations::annotation_field(&sv.key)),
                        format!(
                            "`{}` applies to the whole host {host}, and older {} sets it to {value:?}; that value is used",
                            sv.key, self.valid[*first].r
                        ),
                    )),
                    Some(_) => {}
                    None => seen.push((sv.name, &sv.value, vi)),
                }
            }
            let r = &v.policy.redirect;
            if hp.app_root.is_none() {
                hp.app_root.clone_from(&r.app_root);
            }
            if sets("from-to-www-redirect")
                && !seen
                    .iter()
                    .any(|(n, _, f)| *n == "from-to-www-redirect" && *f != vi)
            {
                hp.from_to_www = r.from_to_www;
            }
            let a = &v.policy.access;
            if hp.access.domain_allow.is_none() {
                hp.access.domain_allow.clone_from(&a.domain_allow);
            }
            if hp.access.domain_deny.is_none() {
                hp.access.domain_deny.clone_from(&a.domain_deny);
            }
            let sets_tls = v.policy.scoped.iter().any(|s| {
                crate::annotations::key(s.name).is_some_and(|k| k.family == Family::ClientTls)
            });
            if sets_tls && hp.client_tls == crate::annotations::ClientTlsPolicy::default() {
                hp.client_tls = v.policy.client_tls.clone();
            }
        }
        hp
    }

    /// Backend-scoped annotations (Higress's Service scope) set differently by two
    /// Ingresses that route to the same Service port: the oldest wins, the others
    /// are told.
    fn backend_conflicts(
        &self,
        users: FxHashMap<BackendId, Vec<usize>>,
        backends: &[Backend],
        diags: &mut Vec<Diagnostic>,
    ) {
        let mut users: Vec<(BackendId, Vec<usize>)> = users.into_iter().collect();
        users.sort_by_key(|(id, _)| *id);
        for (id, mut vis) in users {
            vis.sort_unstable();
            vis.dedup();
            let mut seen: Vec<(&str, &str, usize)> = Vec::new();
            for vi in vis {
                let v = &self.valid[vi];
                for sv in v.policy.scoped.iter().filter(|s| s.scope == Scope::Backend) {
                    match seen.iter().find(|(n, _, _)| *n == sv.name) {
                        Some((_, value, first)) if *value != sv.value => {
                            let b = &backends[id.0 as usize];
                            diags.push(Diagnostic::new(
                                Code::AnnotationConflict,
                                Some(ObjectRef::clone(&v.r)),
                                Some(crate::annotations::annotation_field(&sv.key)),
                                format!(
                                    "`{}` applies to every route to Service {}/{} in Higress, and older {} sets it to {value:?}; here each Ingress's routes keep their own value, so set the same one everywhere",
                                    sv.key,
                                    b.namespace(),
                                    b.service(),
                                    self.valid[*first].r
                                ),
                            ));
                        }
                        Some(_) => {}
                        None => seen.push((sv.name, &sv.value, vi)),
                    }
                }
            }
        }
    }

    /// Resolve backends, build the routes in a stable order and the lookup maps.
    pub(super) fn finish(
        self,
        index: &ServiceIndex<'_>,
        tls: &[TlsBinding],
        profile: Profile,
        diags: &mut Vec<Diagnostic>,
    ) -> RouteTable {
        // Stable route order: by host, then path (then the host's default backend),
        // the catch-all last among the host-less routes; ids are positions in it.
        // `RouteHost`'s order as a flat key (exact hosts, then wildcards, each by
        // name, then `Any`), next to the index so the sort does not chase pointers.
        // The first 8 bytes as a number (zero-padded: host names hold no NUL)
        // settle most comparisons without a `memcmp`.
        let prefix = |s: &str| {
            let mut b = [0u8; 8];
            let n = s.len().min(8);
            b[..n].copy_from_slice(&s.as_bytes()[..n]);
            u64::from_be_bytes(b)
        };
        let mut keys: Vec<(u8, u64, &str, usize)> = self
            .hosts
            .iter()
            .enumerate()
            .map(|(i, (h, _))| match h {
                RouteHost::Pattern(HostPattern::Exact(n)) => (0, prefix(n), n.as_str(), i),
                RouteHost::Pattern(HostPattern::Wildcard(n)) => (1, prefix(n), n.as_str(), i),
                RouteHost::Any => (2, 0, "", i),
            })
            .collect();
        // Hosts are distinct, so an unstable sort gives the same order.
        keys.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)).then_with(|| a.2.cmp(b.2)));
        let hosts: Vec<usize> = keys.into_iter().map(|k| k.3).collect();
        let path_of = |i: usize| match self.routes[i].matcher {
            Matcher::Path(p) => Some(p),
            Matcher::Default(_) => None,
        };
        let mut order: Vec<usize> = Vec::with_capacity(self.routes.len());
        let mut catch_all = self.catch_all;
        for &h in &hosts {
            let (host, hb) = &self.hosts[h];
            let start = order.len();
            order.extend(hb.entries.values());
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
        // About one backend per Ingress (sized so the map rarely grows).
        let mut backend_ids: FxHashMap<(&str, &BackendSpec), BackendId> =
            FxHashMap::with_capacity_and_hasher(self.valid.len(), Default::default());
        let mut backends: Vec<Backend> = Vec::new();
        let mut resolutions: Vec<Resolution> = Vec::new();
        let mut reported: FxHashSet<(usize, BackendId)> = FxHashSet::default();
        let mut last: Option<(&str, &BackendSpec, BackendId)> = None;
        // One shared host value per host; the catch-all's host is `*`.
        let host_arcs: Vec<Arc<RouteHost>> = self
            .hosts
            .iter()
            .map(|(h, _)| Arc::new((*h).clone()))
            .collect();
        let any_host = Arc::new(RouteHost::Any);
        // Hosts without host-scoped policy (most) share one value.
        let no_host_policy = Arc::new(HostPolicy::default());
        let with_tls = Arc::new(HostPolicy {
            has_tls: true,
            ..HostPolicy::default()
        });
        let tls_hosts = TlsHosts::new(tls);
        let host_policies: Vec<Arc<HostPolicy>> = self
            .hosts
            .iter()
            .map(|(h, hb)| {
                let hp = self.host_policy(h, hb, &tls_hosts, diags);
                if hp == *no_host_policy {
                    no_host_policy.clone()
                } else if hp == *with_tls {
                    with_tls.clone()
                } else {
                    Arc::new(hp)
                }
            })
            .collect();
        let mut resolve = |namespace: &'v str,
                           spec: &'v BackendSpec,
                           ingress: usize,
                           field: &dyn Fn() -> String,
                           diags: &mut Vec<Diagnostic>| {
            // Consecutive routes mostly share their backend (the paths of one
            // Ingress): compare with the last one before hashing.
            let id = match last {
                Some((ns, s, id)) if ns == namespace && s == spec => id,
                _ => *backend_ids.entry((namespace, spec)).or_insert_with(|| {
                    let id = BackendId(backends.len() as u32);
                    let (backend, res) = index.resolve(id, namespace, spec);
                    backends.push(backend);
                    resolutions.push(res);
                    id
                }),
            };
            last = Some((namespace, spec, id));
            // Each Ingress hears once about each backend it uses that cannot serve
            // (nothing to say, and nothing to remember, for one that can).
            if !matches!(resolutions[id.0 as usize], Resolution::Ok)
                && reported.insert((ingress, id))
            {
                let (b, res) = (&backends[id.0 as usize], &resolutions[id.0 as usize]);
                if let Some(d) = backend_diagnostic(b, res, field(), &self.valid[ingress].r) {
                    diags.push(d);
                }
            }
            id
        };
        // Resolve in the order the routes were added (the Ingresses' memory order,
        // which the cache likes; it also numbers the backends), then build the
        // routes in their sorted order.
        let mut backend_of: Vec<BackendId> = Vec::with_capacity(self.routes.len());
        let mut canary_routes: FxHashMap<usize, Vec<CanaryRoute>> = FxHashMap::default();
        let mut patterns: Vec<Option<Pattern>> = vec![None; self.routes.len()];
        // Which Ingresses use each backend (for backend-scoped annotation conflicts).
        let mut users: FxHashMap<BackendId, Vec<usize>> = FxHashMap::default();
        for (old, &p) in self.routes.iter().enumerate() {
            let namespace = self.valid[p.ingress].namespace();
            let field = || match p.matcher {
                Matcher::Path(_) => format!("{}.backend", p.field),
                Matcher::Default(_) => p.field.to_string(),
            };
            let id = resolve(namespace, p.backend, p.ingress, &field, diags);
            backend_of.push(id);
            if !self.valid[p.ingress].policy.scoped.is_empty() {
                users.entry(id).or_default().push(p.ingress);
            }
            if let Some(list) = (!self.canaries.is_empty())
                .then(|| self.canaries.get(&old))
                .flatten()
            {
                let list = list
                    .iter()
                    .map(|c| {
                        let cv = &self.valid[c.ingress];
                        let cfield = || format!("{}.backend", c.field);
                        CanaryRoute {
                            ingress: cv.r.clone(),
                            field: c.field.clone(),
                            backend: resolve(cv.namespace(), c.backend, c.ingress, &cfield, diags),
                            policy: cv.policy.clone(),
                        }
                    })
                    .collect();
                canary_routes.insert(old, list);
            }
            let host_regex = self
                .hosts
                .get(p.host_ix as usize)
                .is_some_and(|(_, hb)| self.nginx && hb.regex);
            if let Matcher::Path(path) = p.matcher
                && (host_regex || p.kind == MatchKind::Regex)
            {
                match self.path_regex(p.ingress, path, host_regex) {
                    Ok(re) => patterns[old] = Some(re),
                    Err(why) => diags.push(Diagnostic::new(
                        Code::InvalidRegexPath,
                        Some(ObjectRef::clone(&self.valid[p.ingress].r)),
                        Some(format!("{}.path", p.field)),
                        format!(
                            "path {:?} matches as a regex here, and {why}; this path is not served",
                            path.as_str()
                        ),
                    )),
                }
            }
        }
        let mut routes: Vec<Route> = Vec::with_capacity(order.len());
        for (new, &old) in order.iter().enumerate() {
            let p = self.routes[old];
            routes.push(Route {
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
                backend: backend_of[old],
                policy: self.valid[p.ingress].policy.clone(),
                host_policy: host_policies
                    .get(p.host_ix as usize)
                    .unwrap_or(&no_host_policy)
                    .clone(),
                regex: patterns[old].clone(),
                canaries: if canary_routes.is_empty() {
                    Vec::new()
                } else {
                    canary_routes.remove(&old).unwrap_or_default()
                },
                fallback: None,
            });
        }
        self.backend_conflicts(users, &backends, diags);

        // `default-backend` annotations: the Service (first port) that answers when
        // the route's own backend cannot. Same namespace only.
        let mut fallback_ids: FxHashMap<(String, String), BackendId> = FxHashMap::default();
        for route in &mut routes {
            let Some(target) = &route.policy.fallback.default_backend else {
                continue;
            };
            let namespace = route.ingress.namespace.clone().unwrap_or_default();
            if target.namespace.as_ref().is_some_and(|ns| *ns != namespace) {
                let key = "nginx.ingress.kubernetes.io/default-backend";
                diags.push(Diagnostic::new(
                    Code::AnnotationIgnored,
                    Some(ObjectRef::clone(&route.ingress)),
                    Some(crate::annotations::annotation_field(key)),
                    format!(
                        "default-backend {}/{} is in another namespace; only Services of the Ingress's own namespace are used",
                        target.namespace.as_deref().unwrap_or(""),
                        target.name
                    ),
                ));
                continue;
            }
            let id = *fallback_ids
                .entry((namespace.clone(), target.name.clone()))
                .or_insert_with(|| {
                    let port = index
                        .services
                        .get(&(namespace.as_str(), target.name.as_str()))
                        .and_then(|s| s.spec.ports.first())
                        .and_then(|p| u16::try_from(p.port).ok())
                        .unwrap_or(0);
                    let spec = BackendSpec::Service {
                        name: target.name.as_str().into(),
                        port: crate::routing::PortRef::Number(port),
                    };
                    let id = BackendId(backends.len() as u32);
                    let (backend, _) = index.resolve(id, &namespace, &spec);
                    backends.push(backend);
                    id
                });
            route.fallback = Some(id);
        }

        let mut table = RouteTable::empty(profile);
        // One buffer for every host's keys.
        let mut entries: Vec<(MatchKind, &str, RouteId, PathType)> = Vec::new();
        // The hosts' structures, put in their maps at once (each shard sized once).
        let (mut exact, mut wildcard) = (Vec::new(), Vec::new());
        for (hix, (host, hb)) in self.hosts.into_iter().enumerate() {
            let name = match host {
                RouteHost::Pattern(HostPattern::Exact(h)) => h.as_str(),
                RouteHost::Pattern(HostPattern::Wildcard(s)) => s.as_str(),
                RouteHost::Any => "",
            };
            let mut hr = HostRoutes {
                policy: host_policies.get(hix).cloned(),
                regex_only: self.nginx && hb.regex,
                ..HostRoutes::named(name)
            };
            entries.clear();
            entries.reserve(hb.entries.len());
            hr.all.reserve_exact(hb.entries.len());
            let mut regexes: Vec<(usize, usize, Pattern, RouteId)> = Vec::new();
            for ((kind, key), old) in hb.entries.list {
                let Matcher::Path(p) = self.routes[old].matcher else {
                    continue;
                };
                if hr.regex_only || kind == MatchKind::Regex {
                    hr.all.push(new_id[old]);
                    if let Some(re) = patterns[old].take() {
                        regexes.push((p.as_str().len(), old, re, new_id[old]));
                    }
                    continue;
                }
                if kind == MatchKind::Element && key == "/" {
                    hr.root = Some(new_id[old]);
                }
                entries.push((kind, key, new_id[old], p.path_type()));
            }
            // nginx: regex locations in descending path length, stable (precedence).
            regexes.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            hr.regex = regexes.into_iter().map(|(_, _, re, id)| (re, id)).collect();
            entries.sort_by_key(|e| e.2);
            let small = entries.len() <= SMALL_HOST;
            if small {
                hr.small.reserve_exact(entries.len());
                hr.small_keys
                    .reserve_exact(entries.iter().map(|e| e.1.len()).sum());
            }
            for &(kind, key, rid, path_type) in &entries {
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
                    MatchKind::Regex => {}
                }
            }
            hr.all.sort_unstable();
            hr.string_prefix
                .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
            hr.fallback = hb.fallback.map(|old| new_id[old]);
            match host {
                RouteHost::Pattern(HostPattern::Exact(_)) => exact.push(Arc::new(hr)),
                RouteHost::Pattern(HostPattern::Wildcard(_)) => wildcard.push(Arc::new(hr)),
                RouteHost::Any => table.any_host = Some(hr),
            }
        }
        table.exact_hosts = crate::routing::HostMap::from_hosts(exact);
        table.wildcard_hosts = crate::routing::HostMap::from_hosts(wildcard);
        table.catch_all = self.catch_all.map(|old| new_id[old]);
        table.www_redirects = host_policies.iter().any(|p| p.from_to_www);
        table.routes = routes.into();
        table.backends = backends.into();
        table
    }
}

/// The hosts named by TLS sections, for "does this rule host have TLS" in O(1).
struct TlsHosts<'t> {
    patterns: FxHashSet<&'t HostPattern>,
    /// Suffixes of wildcard entries (`example.com` for `*.example.com`).
    wildcard_suffixes: FxHashSet<&'t str>,
}

impl<'t> TlsHosts<'t> {
    fn new(bindings: &'t [TlsBinding]) -> Self {
        let mut patterns = FxHashSet::default();
        let mut wildcard_suffixes = FxHashSet::default();
        for b in bindings {
            patterns.insert(b.host());
            if let HostPattern::Wildcard(suffix) = b.host() {
                wildcard_suffixes.insert(suffix.as_str());
            }
        }
        TlsHosts {
            patterns,
            wildcard_suffixes,
        }
    }

    /// The same pattern, or a wildcard entry that covers an exact host (one label).
    fn covers(&self, rule: &HostPattern) -> bool {
        self.patterns.contains(rule)
            || matches!(rule, HostPattern::Exact(h) if h
                .as_str()
                .split_once('.')
                .is_some_and(|(first, rest)| !first.is_empty() && self.wildcard_suffixes.contains(rest)))
    }
}

fn backend_diagnostic(
    backend: &Backend,
    res: &Resolution,
    field: String,
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
    Some(Diagnostic::new(
        code,
        Some(ingress.clone()),
        Some(field),
        msg,
    ))
}
