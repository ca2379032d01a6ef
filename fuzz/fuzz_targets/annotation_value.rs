//! One annotation value for one registered key: the first byte picks the key, the
//! second the prefix (bits 0-1, or the project prefix when bit 3 is set), the
//! profile (bit 2) and the risk level (bit 4: low, else critical); the rest is the
//! value (lossy UTF-8).
//!
//! Checks: nothing panics; the checks of `check_annotations` (diagnostics name the
//! key, fail-closed keys exist, deterministic); a value with a line break is never
//! accepted for a single-line key read under that prefix.

#![no_main]

use std::collections::BTreeMap;

use ingress_core::Profile;
use ingress_core::annotations::{AnnotationOptions, Prefix, Risk, all_keys};
use ingress_core_fuzz::check_annotations;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [k, p, rest @ ..] = data else { return };
    let keys: Vec<_> = all_keys().collect();
    let spec = keys[usize::from(*k) % keys.len()];
    let index = if p & 8 == 0 {
        usize::from(*p & 3)
    } else {
        Prefix::FIXED.len() - 1
    };
    let (prefix_kind, prefix) = Prefix::FIXED[index];
    let name = spec.name.replace('*', "x-test");
    let value = String::from_utf8_lossy(rest).into_owned();
    let key = format!("{prefix}{name}");
    let mut map = BTreeMap::new();
    map.insert(key.clone(), value.clone());
    let profile = if p & 4 == 0 {
        Profile::Standard
    } else {
        Profile::IngressNginx
    };
    // Bit 4: the lowest annotations risk level (every key above `low` refused).
    let max_risk = if p & 16 == 0 {
        Risk::Critical
    } else {
        Risk::Low
    };
    let options = AnnotationOptions {
        profile,
        custom_prefix: None,
        max_risk,
    };
    check_annotations(&map, &options);
    let parsed = ingress_core::annotations::parse(
        &map,
        &ingress_core::model::ObjectRef::namespaced(
            ingress_core::model::ObjectKind::Ingress,
            "ns",
            "fuzz",
        ),
        &options,
    );
    // Only a key read under this prefix has its value checked (others are unknown).
    if prefix_kind.accepts(spec.prefixes)
        && !spec.multiline
        && value.trim_end_matches('\n').contains(['\n', '\r'])
    {
        assert!(
            parsed
                .diagnostics
                .iter()
                .any(|d| d.code.as_str() == "annotation-invalid-value"),
            "{key} accepted a line break: {value:?}"
        );
    }
});
