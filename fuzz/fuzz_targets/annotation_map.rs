//! A whole annotation map: the input is split at 0xFF bytes into alternating keys and
//! values (lossy UTF-8); a leading byte under 0x10 holds flags: 0x01 the ingress-nginx
//! profile, 0x02 a custom prefix `example.com/`, 0x04-0x0C the annotations risk level
//! (high, medium, low; none: critical).
//!
//! Checks: nothing panics; diagnostics name keys of the map; fail-closed keys exist
//! and come with an error; parsing is deterministic.

#![no_main]

use std::collections::BTreeMap;

use ingress_core::Profile;
use ingress_core::annotations::{AnnotationOptions, Risk};
use ingress_core_fuzz::check_annotations;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (flags, data) = match data.split_first() {
        Some((f, rest)) if *f < 16 => (*f, rest),
        _ => (0, data),
    };
    let mut map = BTreeMap::new();
    let mut parts = data.split(|b| *b == 0xFF);
    while let Some(k) = parts.next() {
        let v = parts.next().unwrap_or_default();
        map.insert(
            String::from_utf8_lossy(k).into_owned(),
            String::from_utf8_lossy(v).into_owned(),
        );
    }
    let options = AnnotationOptions {
        profile: if flags & 1 == 1 {
            Profile::IngressNginx
        } else {
            Profile::Standard
        },
        custom_prefix: (flags & 2 == 2).then(|| "example.com/".to_owned()),
        // Bits 2-3: the annotations risk level (0: critical, every key read).
        max_risk: [Risk::Critical, Risk::High, Risk::Medium, Risk::Low]
            [usize::from((flags >> 2) & 3)],
    };
    check_annotations(&map, &options);
});
