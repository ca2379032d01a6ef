//! Helpers shared by the families' table-driven tests.

use std::collections::BTreeMap;

use super::{AnnotationOptions, Parsed};
use crate::diagnostics::Code;
use crate::model::{ObjectKind, ObjectRef};

/// The nginx prefix, for tests that spell keys out.
pub(super) const N: &str = "nginx.ingress.kubernetes.io/";

/// Parse `pairs` as one Ingress's annotations with `options`. A key without `/` is a
/// bare name and gets the nginx prefix; a key with one is used as written.
pub(super) fn run_with(pairs: &[(&str, &str)], options: &AnnotationOptions) -> Parsed {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| {
            let key = if k.contains('/') {
                (*k).to_owned()
            } else {
                format!("{N}{k}")
            };
            (key, (*v).to_owned())
        })
        .collect();
    let obj = ObjectRef::namespaced(ObjectKind::Ingress, "ns", "name");
    super::parse(&map, &obj, options)
}

/// [`run_with`] with the default options.
pub(crate) fn run(pairs: &[(&str, &str)]) -> Parsed {
    run_with(pairs, &AnnotationOptions::default())
}

/// The codes of the diagnostics, in order.
pub(super) fn codes(p: &Parsed) -> Vec<Code> {
    p.diagnostics.iter().map(|d| d.code).collect()
}
