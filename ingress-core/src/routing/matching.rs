//! Path precedence as a type, and the per-host path lookup.
//!
//! [`Rank`] is the one definition of "which path wins"; [`HostRoutes::lookup`] is the
//! fast form of "the route with the highest rank", and a property test checks that
//! the two agree.

use std::cmp::Ordering;

use crate::model::PathType;

use super::table::{HostRoutes, RouteId};

/// How well a path rule matched a request path. The greater rank wins:
/// 1. an exact hit (an `Exact` path; in the ingress-nginx profile also a `Prefix`
///    path equal to the request path, which nginx emits as `location = /p`);
/// 2. then the longer rule (for ingress-nginx, a Prefix `/p` counts as its nginx
///    location `/p/`, one byte longer);
/// 3. then the path type: Exact, then Prefix, then ImplementationSpecific.
///
/// Equal ranks come only from the same path and type, which compile resolves by age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rank {
    /// An exact hit.
    pub exact: bool,
    /// The rule's effective length.
    pub len: usize,
    /// The rule's path type.
    pub path_type: PathType,
}

impl Ord for Rank {
    fn cmp(&self, other: &Self) -> Ordering {
        self.exact
            .cmp(&other.exact)
            .then(self.len.cmp(&other.len))
            // PathType orders Exact < Prefix < ImplementationSpecific; stronger is smaller.
            .then(other.path_type.cmp(&self.path_type))
    }
}

impl PartialOrd for Rank {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// How a stored path key matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum MatchKind {
    /// Whole path equality.
    Exact,
    /// By `/`-separated element (Prefix; ImplementationSpecific in the standard profile).
    Element,
    /// Plain string prefix (ImplementationSpecific in the ingress-nginx profile).
    StringPrefix,
    /// A regex (kept in the host's ordered regex list, not ranked).
    Regex,
}

/// Rank of a rule (`kind`, `key` as stored, `path_type` as written) against a
/// normalised request path, or `None` when it does not match.
pub(crate) fn rank(
    kind: MatchKind,
    key: &str,
    path_type: PathType,
    path: &str,
    nginx: bool,
) -> Option<Rank> {
    rank_bytes(kind, key.as_bytes(), path_type, path.as_bytes(), nginx)
}

/// [`rank`] on bytes (every comparison it makes is bytewise): the scan of a small
/// host slices its keys as bytes, without `str`'s char-boundary checks.
#[inline]
fn rank_bytes(
    kind: MatchKind,
    key: &[u8],
    path_type: PathType,
    path: &[u8],
    nginx: bool,
) -> Option<Rank> {
    match kind {
        MatchKind::Exact => (path == key).then_some(Rank {
            exact: true,
            len: key.len(),
            path_type,
        }),
        MatchKind::Element => {
            let root = key == b"/";
            let hit = root
                || (path.starts_with(key) && (path.len() == key.len() || path[key.len()] == b'/'));
            hit.then(|| Rank {
                exact: nginx && path.len() == key.len() && path_type == PathType::Prefix,
                // nginx emits Prefix `/p` as `location /p/` (one byte longer) plus
                // `location = /p` for the exact hit.
                len: key.len()
                    + usize::from(
                        nginx && !root && path_type == PathType::Prefix && path.len() != key.len(),
                    ),
                path_type,
            })
        }
        MatchKind::StringPrefix => path.starts_with(key).then_some(Rank {
            exact: false,
            len: key.len(),
            path_type,
        }),
        MatchKind::Regex => None,
    }
}

/// The best of a small host's paths for a normalised path (as bytes), by
/// [`Rank`]: each entry is (key as stored, match kind, path type as written,
/// route). The one scan of both small-host forms ([`HostRoutes::small`] and the
/// packed form in [`super::hosts`]).
#[inline]
pub(crate) fn scan<'k>(
    entries: impl Iterator<Item = (&'k [u8], MatchKind, PathType, RouteId)>,
    pb: &[u8],
    nginx: bool,
) -> Option<RouteId> {
    let mut best: Option<(Rank, RouteId)> = None;
    for (kb, kind, path_type, id) in entries {
        // Every kind needs the key no longer than the path and, past the
        // leading `/`, the same first byte: two compares that skip most
        // entries before `rank`'s string compares.
        if kb.len() > pb.len() || (kb.len() > 1 && kb[1] != pb[1]) {
            continue;
        }
        if let Some(r) = rank_bytes(kind, kb, path_type, pb, nginx)
            && best.is_none_or(|(b, _)| r > b)
        {
            best = Some((r, id));
        }
    }
    best.map(|(_, id)| id)
}

impl HostRoutes {
    /// An empty structure for host `name` (an exact host, or a wildcard's suffix).
    pub(crate) fn named(name: &str) -> Self {
        HostRoutes {
            small_keys: name.to_owned(),
            name_len: name.len() as u32,
            ..HostRoutes::default()
        }
    }

    /// The host's name: an exact host, or a wildcard's suffix (`example.com` of
    /// `*.example.com`); empty for the host-less rules.
    #[inline]
    pub(crate) fn name(&self) -> &str {
        self.small_keys.get(..self.name_len as usize).unwrap_or("")
    }

    /// The slots of this host's routes (its paths and its default backend): a
    /// compile puts them next to each other, and an incremental update keeps them
    /// so. Empty for a host without routes.
    pub(crate) fn span(&self) -> std::ops::Range<usize> {
        let ids = self.all.first().into_iter().chain(self.all.last());
        let mut ids = ids.chain(self.fallback.as_ref()).map(|id| id.index());
        let Some(first) = ids.next() else {
            return 0..0;
        };
        let (lo, hi) = ids.fold((first, first), |(lo, hi), i| (lo.min(i), hi.max(i)));
        let span = lo..hi + 1;
        debug_assert_eq!(
            span.len(),
            self.all.len() + usize::from(self.fallback.is_some()),
            "a host's routes are in consecutive slots"
        );
        span
    }

    /// Rewrite every route id this host refers to (incremental compile puts a
    /// host compiled alone into the slots it takes in the full table).
    pub(crate) fn map_ids(&mut self, f: impl Fn(RouteId) -> RouteId) {
        for e in &mut self.small {
            e.id = f(e.id);
        }
        for id in self.exact.values_mut() {
            *id = f(*id);
        }
        for (id, _) in self.prefix.values_mut() {
            *id = f(*id);
        }
        for (_, id, _) in &mut self.string_prefix {
            *id = f(*id);
        }
        for (_, id) in &mut self.regex {
            *id = f(*id);
        }
        for id in self.root.iter_mut().chain(self.fallback.iter_mut()) {
            *id = f(*id);
        }
        for id in &mut self.all {
            *id = f(*id);
        }
    }

    /// Add a path to the scanned form.
    pub(crate) fn push_small(
        &mut self,
        key: &str,
        kind: MatchKind,
        id: RouteId,
        path_type: PathType,
    ) {
        let start = self.small_keys.len() as u32;
        self.small_keys.push_str(key);
        self.small.push(super::table::SmallEntry {
            start,
            len: key.len() as u32,
            kind,
            id,
            path_type,
        });
    }

    /// The route for a normalised path: in ingress-nginx regex mode the first regex
    /// that matches; otherwise the best by [`Rank`], except that a regex path
    /// outranks the root prefix `/` (standard profile: Exact > Prefix > regex > `/`).
    pub(crate) fn lookup(&self, path: &str, nginx: bool) -> Option<RouteId> {
        if self.regex.is_empty() {
            return self.lookup_ranked(path, nginx);
        }
        let first_regex = || {
            self.regex
                .iter()
                .find(|(re, _)| re.0.is_match(path))
                .map(|(_, id)| *id)
        };
        if self.regex_only {
            return first_regex();
        }
        match self.lookup_ranked(path, nginx) {
            Some(id) if Some(id) != self.root => Some(id),
            other => first_regex().or(other),
        }
    }

    /// The best route for a normalised path, as ranked by [`Rank`].
    pub(crate) fn lookup_ranked(&self, path: &str, nginx: bool) -> Option<RouteId> {
        if !self.small.is_empty() {
            // A handful of paths: scanning beats hashing.
            let keys = self.small_keys.as_bytes();
            let entries = self.small.iter().map(|e| {
                let kb = keys
                    .get(e.start as usize..(e.start + e.len) as usize)
                    .unwrap_or_default();
                (kb, e.kind, e.path_type, e.id)
            });
            return scan(entries, path.as_bytes(), nginx);
        }
        if let Some(&id) = self.exact.get(path) {
            return Some(id);
        }
        let mut best: Option<(Rank, RouteId)> = None;
        // Element prefixes: the longest key that is the path or ends at a '/' of it.
        let mut cand = path;
        loop {
            if (cand == "/" || !cand.ends_with('/'))
                && let Some(&(id, ty)) = self.prefix.get(cand)
            {
                best = rank(MatchKind::Element, cand, ty, path, nginx).map(|r| (r, id));
                break;
            }
            if cand == "/" || cand.is_empty() {
                break;
            }
            cand = match cand.rfind('/') {
                Some(0) | None => "/",
                Some(i) => &cand[..i],
            };
        }
        if let Some((r, id)) = best
            && r.exact
        {
            return Some(id);
        }
        // String prefixes, longest first: the first hit is the best of them.
        for (key, id, ty) in &self.string_prefix {
            if path.starts_with(&**key) {
                let r = Rank {
                    exact: false,
                    len: key.len(),
                    path_type: *ty,
                };
                if best.is_none_or(|(b, _)| r > b) {
                    best = Some((r, *id));
                }
                break;
            }
        }
        best.map(|(_, id)| id)
    }
}

/// How compile stores a rule path: its match kind and key.
pub(crate) fn match_key(path: &crate::model::IngressPath, nginx: bool) -> (MatchKind, &str) {
    let s = path.as_str();
    match path.path_type() {
        PathType::Exact => (MatchKind::Exact, s),
        PathType::Prefix => (MatchKind::Element, s),
        PathType::ImplementationSpecific if nginx => (MatchKind::StringPrefix, s),
        PathType::ImplementationSpecific => {
            let t = s.trim_end_matches('/');
            (MatchKind::Element, if t.is_empty() { "/" } else { t })
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn rank_order() {
        let r = |exact, len, path_type| Rank {
            exact,
            len,
            path_type,
        };
        assert!(r(true, 1, PathType::Exact) > r(false, 10, PathType::Prefix));
        assert!(r(false, 5, PathType::Prefix) > r(false, 4, PathType::Prefix));
        assert!(r(false, 4, PathType::Prefix) > r(false, 4, PathType::ImplementationSpecific));
    }

    #[test]
    fn element_prefix() {
        let m = |key, path| rank(MatchKind::Element, key, PathType::Prefix, path, false).is_some();
        assert!(m("/foo", "/foo"));
        assert!(m("/foo", "/foo/"));
        assert!(m("/foo", "/foo/bar"));
        assert!(!m("/foo", "/foobar"));
        assert!(m("/", "/anything"));
        assert!(!m("/foo/bar", "/foo"));
    }

    /// The hashed lookup (hosts with many paths) picks the same route as the scan
    /// (hosts with few) for every path, in both profiles.
    /// Rule paths that overlap in every way the matchers distinguish, for the
    /// lookup property tests.
    pub(in crate::routing) const KEY_POOL: [&str; 10] = [
        "/", "/a", "/a/", "/a/b", "/ab", "/a/b/c", "/b", "/a/bc", "/a/b/", "/abc",
    ];
    /// Every path type.
    pub(in crate::routing) const PATH_TYPES: [PathType; 3] = [
        PathType::Exact,
        PathType::Prefix,
        PathType::ImplementationSpecific,
    ];

    #[test]
    fn hashed_lookup_equals_scan() {
        use crate::model::IngressPath;
        use proptest::prelude::*;
        let (keys, types) = (KEY_POOL, PATH_TYPES);
        let strategy = (
            prop::collection::vec((0..keys.len(), 0..types.len()), 1..30),
            prop::collection::vec("[/ab]{0,8}", 1..20),
            any::<bool>(),
        );
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        runner
            .run(&strategy, |(rules, paths, nginx)| {
                let mut hashed = HostRoutes::default();
                let mut small = HostRoutes::default();
                let mut seen = std::collections::HashSet::new();
                for (i, (k, t)) in rules.into_iter().enumerate() {
                    let Ok(p) = IngressPath::new(types[t], Some(keys[k])) else {
                        continue;
                    };
                    let (kind, key) = match_key(&p, nginx);
                    if !seen.insert((kind, key.to_owned())) {
                        continue;
                    }
                    let id = RouteId(i as u32);
                    let ty = p.path_type();
                    match kind {
                        MatchKind::Exact => {
                            hashed.exact.insert(key.into(), id);
                        }
                        MatchKind::Element => {
                            hashed.prefix.insert(key.into(), (id, ty));
                        }
                        MatchKind::StringPrefix => hashed.string_prefix.push((key.into(), id, ty)),
                        MatchKind::Regex => {}
                    }
                    small.push_small(key, kind, id, ty);
                }
                hashed
                    .string_prefix
                    .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
                for path in &paths {
                    let path = crate::routing::normalize_path(path);
                    prop_assert_eq!(
                        hashed.lookup(&path, nginx),
                        small.lookup(&path, nginx),
                        "path {}",
                        path
                    );
                }
                Ok(())
            })
            .map_err(|e| e.to_string())
            .expect("lookups agree");
    }
}
