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
mod options;
mod references;
mod tls;
mod validate;

use rustc_hash::FxHashMap;

pub use class::LEGACY_CLASS_ANNOTATION;
pub use endpoints::{FullCompileNeeded, Refreshed, refresh_endpoints};
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
    // Sort the references (not the validated structs) into precedence order first.
    let mut ingresses: Vec<&Ingress> = ingresses.into_values().collect();
    ingresses.sort_by(|a, b| precedence(&a.metadata, &b.metadata, nginx));
    let annotation_options = options.annotation_options();
    let mut valid: Vec<ValidIngress> = Vec::with_capacity(ingresses.len());
    for ing in ingresses {
        let r = validate::ingress_ref(ing);
        match classes.ownership(ing, &r, options, &mut diags) {
            class::Ownership::Ours => {
                if let Some(v) = validate::validate(ing, r, &annotation_options, &mut diags) {
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

    // 3. Routes per host (the older Ingress wins a conflict), default backends,
    // backends resolved once each, TLS, and the lookup structures.
    references::resolve(&mut valid, &secrets, &mut diags);
    let tls = tls::bindings(&valid, &secrets, options, &mut diags);
    let mut b = build::Builder::new(nginx, &valid);
    b.add_rules(&mut diags);
    b.attach_canaries(&mut diags);
    b.add_default_backends(&mut diags);
    let table = b.finish(&index, tls, options.profile, &mut diags);
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
