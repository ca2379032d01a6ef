//! `compile`: a [`Snapshot`] in, an immutable [`RouteTable`] and diagnostics out.
//!
//! Deterministic: the same objects in any order give the same table and the same
//! diagnostics. Conflicts resolve by age: the oldest `creationTimestamp` wins, then
//! `namespace/name` ascending (the ingress-nginx profile breaks ties descending, as
//! ingress-nginx's `sortIngressSlice` does). An object without a timestamp counts as
//! newer than every object with one.

mod backends;
mod build;
mod class;
mod endpoints;
mod incremental;
mod options;
mod references;
mod services;
mod tls;
mod validate;

use rustc_hash::FxHashMap;

pub use class::LEGACY_CLASS_ANNOTATION;
pub use endpoints::{FullCompileNeeded, Refreshed, refresh_endpoints};
pub use incremental::{Compiler, FullReason, MAX_INGRESSES, RouteSplice, Update};
pub use options::{CompileOptions, DEFAULT_CONTROLLER_NAME, Profile, UnknownProfile};

use crate::diagnostics::{Code, Diagnostic};
use crate::model::{EndpointSlice, Ingress, ObjectKind, ObjectMeta, ObjectRef, Service};
use crate::routing::RouteTable;
use crate::snapshot::Snapshot;

use backends::ServiceIndex;
use validate::ValidIngress;

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
    run(snapshot, options, None)
}

/// Where each diagnostic of a full compile came from, and the validated Ingresses,
/// for [`Compiler`] to update parts of the result later.
#[derive(Default)]
pub(crate) struct Record {
    /// Duplicate objects and IngressClasses.
    pub(crate) global: Vec<Diagnostic>,
    /// Per Ingress: what class ownership, validation and Secret references said,
    /// and the validated Ingress if it is ours and valid.
    pub(crate) ingresses: Vec<(
        std::sync::Arc<ObjectRef>,
        Option<ValidIngress>,
        Vec<Diagnostic>,
    )>,
    /// TLS bindings.
    pub(crate) tls: Vec<Diagnostic>,
    /// Routes, canaries, default backends, backends (the builder).
    pub(crate) build: Vec<Diagnostic>,
    /// Some Ingress, Service or EndpointSlice appears twice.
    pub(crate) duplicates: bool,
}

/// [`compile`], recording into `record` when given.
pub(crate) fn run(
    snapshot: &Snapshot,
    options: &CompileOptions,
    mut record: Option<&mut Record>,
) -> Compiled {
    let mut diags = Vec::new();
    let nginx = options.profile == Profile::IngressNginx;

    // 1. Index the supporting objects (duplicates resolved deterministically).
    let services = dedup(
        &snapshot.services,
        ObjectKind::Service,
        |s: &Service| &s.metadata,
        &mut diags,
    );
    let slices = slice_index(
        dedup(
            &snapshot.endpoint_slices,
            ObjectKind::EndpointSlice,
            |s: &EndpointSlice| &s.metadata,
            &mut diags,
        )
        .into_values(),
    );
    let duplicates_before_secrets = !diags.is_empty();
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
    let before_ingresses = diags.len();
    let ingresses = dedup(
        &snapshot.ingresses,
        ObjectKind::Ingress,
        |i: &Ingress| &i.metadata,
        &mut diags,
    );
    if let Some(rec) = record.as_deref_mut() {
        rec.duplicates = duplicates_before_secrets || diags.len() > before_ingresses;
        rec.global = diags.clone();
        rec.ingresses.reserve(ingresses.len());
    }
    // Sort the references (not the validated structs) into precedence order first.
    // Sorted by `precedence`'s key, computed once per Ingress rather than per
    // comparison. Namespace/name pairs are distinct after `dedup`: an unstable sort
    // is exact.
    let mut keyed: Vec<(i64, &str, &str, &Ingress)> = ingresses
        .into_values()
        .map(|i| {
            let (ts, ns, name) = precedence_key(&i.metadata);
            (ts, ns, name, i)
        })
        .collect();
    keyed.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0).then_with(|| {
            let names = (a.1, a.2).cmp(&(b.1, b.2));
            if nginx { names.reverse() } else { names }
        })
    });
    let ingresses = keyed.into_iter().map(|k| k.3);
    let annotation_options = options.annotation_options();
    let mut valid: Vec<ValidIngress> = Vec::with_capacity(ingresses.len());
    // With a record: for each valid Ingress, its entry in `record.ingresses`.
    let mut entry_of: Vec<usize> = Vec::new();
    let mut path_strings = validate::PathStrings::default();
    for ing in ingresses {
        let before = diags.len();
        let r = validate::ingress_ref(ing);
        let shared = record.is_some().then(|| std::sync::Arc::new(r.clone()));
        let mut ok = false;
        match classes.ownership(ing, &r, options, &mut diags) {
            class::Ownership::Ours => {
                if let Some(v) = validate::validate_with(
                    ing,
                    r,
                    &annotation_options,
                    &mut diags,
                    Some(&mut path_strings),
                ) {
                    valid.push(v);
                    ok = true;
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
        if let (Some(rec), Some(shared)) = (record.as_deref_mut(), shared) {
            if ok {
                entry_of.push(rec.ingresses.len());
            }
            rec.ingresses
                .push((shared, None, diags.drain(before..).collect()));
        }
    }

    // 3. Routes per host (the older Ingress wins a conflict), default backends,
    // backends resolved once each, TLS, and the lookup structures.
    if let Some(rec) = record.as_deref_mut() {
        // Secret references per Ingress, so that their diagnostics are its own.
        for (v, &e) in valid.iter_mut().zip(&entry_of) {
            references::resolve(std::slice::from_mut(v), &secrets, &mut rec.ingresses[e].2);
        }
    } else {
        references::resolve(&mut valid, &secrets, &mut diags);
    }
    let before_tls = diags.len();
    let tls = tls::bindings(&valid, &secrets, options, &mut diags);
    let before_build = diags.len();
    let mut b = build::Builder::new(nginx, &valid);
    b.add_rules(&mut diags);
    b.attach_canaries(&mut diags);
    b.add_default_backends(&mut diags);
    let mut table = b.finish(&index, &tls, options.profile, &mut diags);
    table.set_tls(tls);
    if let Some(rec) = record {
        rec.build = diags[before_build..].to_vec();
        rec.tls = diags[before_tls..before_build].to_vec();
        for (v, e) in valid.into_iter().zip(entry_of) {
            rec.ingresses[e].1 = Some(v);
        }
        for (_, _, d) in &rec.ingresses {
            diags.extend(d.iter().cloned());
        }
    }
    diags.sort();
    diags.dedup();
    Compiled {
        table,
        diagnostics: diags,
    }
}

/// EndpointSlices grouped by the Service they belong to (their
/// `kubernetes.io/service-name` label); slices without one are ignored.
pub(crate) fn slice_index<'s>(
    slices: impl Iterator<Item = &'s EndpointSlice>,
) -> FxHashMap<(&'s str, &'s str), Vec<&'s EndpointSlice>> {
    let mut out: FxHashMap<(&str, &str), Vec<&EndpointSlice>> = FxHashMap::default();
    for s in slices {
        if let Some(svc) = s.service_name() {
            out.entry((s.metadata.namespace_or_default(), svc))
                .or_default()
                .push(s);
        }
    }
    out
}

/// Oldest first; ties by namespace/name (ascending; descending for ingress-nginx).
fn precedence(a: &ObjectMeta, b: &ObjectMeta, nginx: bool) -> std::cmp::Ordering {
    let (ta, na, a) = precedence_key(a);
    let (tb, nb, b) = precedence_key(b);
    ta.cmp(&tb).then_with(|| {
        let names = (na, a).cmp(&(nb, b));
        if nginx { names.reverse() } else { names }
    })
}

/// What [`precedence`] compares: the creation time (none counts as newest), the
/// namespace and the name.
fn precedence_key(m: &ObjectMeta) -> (i64, &str, &str) {
    (
        m.creation_timestamp.map_or(i64::MAX, |t| t.unix()),
        m.namespace_or_default(),
        m.name.as_str(),
    )
}

/// Index objects by namespace/name. Two objects with the same key cannot exist in a
/// cluster; keep the one that sorts first by precedence then content, so the choice
/// does not depend on input order, and say so.
fn dedup<'s, T: serde::Serialize>(
    objects: &'s [T],
    kind: ObjectKind,
    meta: impl Fn(&T) -> &ObjectMeta,
    diags: &mut Vec<Diagnostic>,
) -> FxHashMap<(&'s str, &'s str), &'s T> {
    let mut out: FxHashMap<(&str, &str), &T> =
        FxHashMap::with_capacity_and_hasher(objects.len(), Default::default());
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

#[cfg(test)]
mod tests;
