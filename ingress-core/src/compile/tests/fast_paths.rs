//! The Secret and EndpointSlice fast paths of `Compiler` (`apply_secrets`,
//! `apply_endpoint_slices`) against a full `compile()` of the same objects.

use std::sync::OnceLock;

use proptest::prelude::*;

use super::*;
use crate::compile::{Compiler, FullCompileNeeded, FullReason, Update};
use crate::model::{EndpointSlice, Secret};

const T2021: &str = ", creationTimestamp: '2021-01-01T00:00:00Z'";

/// TLS Ingresses: `one` (a, b with s0), `two` (c with s1, and a with s1, which
/// loses a to older `one`), `three` (*.example.com with s2), `auth` (basic
/// authentication from Secret `users`, no TLS).
fn base_yaml() -> String {
    let mut y = class("gw", DEFAULT_CONTROLLER_NAME, true);
    y += &tls_ingress("one", T2020, &["a.example.com", "b.example.com"], "s0");
    y += &tls_ingress("two", T2021, &["c.example.com", "a.example.com"], "s1");
    y += &tls_ingress("three", T2021, &["*.example.com"], "s2");
    y += &simple(
        "default",
        "auth",
        ", annotations: {nginx.ingress.kubernetes.io/auth-type: basic, nginx.ingress.kubernetes.io/auth-secret: users}",
        "d.example.com",
        "Prefix",
        "/",
        "app",
    );
    y += &svc("default", "app", "10.0.0.1");
    y
}

/// Certificates: for a, b, c and *.example.com; for a only; another for all.
fn certs() -> &'static [(String, String); 3] {
    static C: OnceLock<[(String, String); 3]> = OnceLock::new();
    C.get_or_init(|| {
        let all = [
            "a.example.com",
            "b.example.com",
            "c.example.com",
            "*.example.com",
        ];
        [cert(&all), cert(&["a.example.com"]), cert(&all)]
    })
}

/// Secret `name`'s content number `state` (`None`: absent).
fn secret(name: &str, state: u8) -> Option<Secret> {
    let yaml = if name == "users" {
        match state % 3 {
            0 => return None,
            1 => "---
apiVersion: v1
kind: Secret
metadata: {name: users, namespace: default}
stringData: {auth: 'admin:{SHA}0DPiKuNIrrVmD8IUCuw1hQxNqZc='}
"
            .to_owned(),
            _ => "---
apiVersion: v1
kind: Secret
metadata: {name: users, namespace: default}
stringData: {other: x}
"
            .to_owned(),
        }
    } else {
        match state % 5 {
            0 => return None,
            1..=3 => {
                let (crt, key) = &certs()[(state % 5 - 1) as usize];
                tls_secret(name, crt, key)
            }
            _ => format!(
                "---
apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: default}}
type: kubernetes.io/tls
data: {{tls.crt: Z2FyYmFnZQ==, tls.key: Z2FyYmFnZQ==}}
"
            ),
        }
    };
    load(&yaml).secrets.pop()
}

/// The TLS bindings as text, with the certificate's chain.
fn tls_view(c: &Compiled) -> String {
    c.table
        .tls_bindings()
        .iter()
        .map(|b| format!("{b:?} {:?}\n", b.certificate().map(|k| k.chain.clone())))
        .collect()
}

fn assert_same(inc: &Compiled, full: &Compiled) {
    assert_eq!(inc.diagnostics, full.diagnostics, "diagnostics");
    inc.table.backends.assert_ready_bits();
    assert_eq!(tls_view(inc), tls_view(full), "TLS bindings");
    assert_eq!(
        format!("{:?}\n{:?}", inc.table.routes(), inc.table.backends()),
        format!("{:?}\n{:?}", full.table.routes(), full.table.backends()),
        "routes and backends"
    );
    for sni in [
        "a.example.com",
        "b.example.com",
        "c.example.com",
        "x.example.com",
        "z.org",
    ] {
        assert_eq!(
            inc.table.tls_index_for_sni(sni),
            full.table.tls_index_for_sni(sni)
        );
    }
}

const NAMES: [&str; 4] = ["s0", "s1", "s2", "users"];

fn run_secret_edits(options: &CompileOptions, start: [u8; 4], edits: &[Vec<(u8, u8)>]) -> usize {
    let mut snapshot = load(&base_yaml());
    for (name, state) in NAMES.iter().zip(start) {
        snapshot.secrets.extend(secret(name, state));
    }
    let mut c = Compiler::new(snapshot, options.clone());
    let mut fast = 0;
    for batch in edits {
        let published = c.compiled().clone();
        let before = compile(c.snapshot(), options);
        let changes: Vec<(String, String, Option<Secret>)> = batch
            .iter()
            .map(|&(n, state)| {
                let name = NAMES[n as usize % NAMES.len()];
                ("default".to_owned(), name.to_owned(), secret(name, state))
            })
            .collect();
        let touches_users = batch.iter().any(|&(n, _)| n as usize % NAMES.len() == 3);
        let update = c.apply_secrets(changes);
        match &update {
            Update::Tls { .. } => fast += 1,
            Update::Unchanged => {}
            Update::Full(FullReason::AnnotationSecret) => assert!(touches_users),
            other => panic!("unexpected {other:?}"),
        }
        assert_same(c.compiled(), &compile(c.snapshot(), options));
        // What was published before the update is left as it was.
        assert_same(&published, &before);
    }
    fast
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn secret_fast_path_equals_a_full_compile(
        start in prop::array::uniform4(0u8..5),
        edits in prop::collection::vec(prop::collection::vec((0u8..4, 0u8..5), 1..3), 1..8),
        expired in any::<bool>(),
    ) {
        let mut options = opts();
        if expired {
            // Every certificate has expired by then: the expiry diagnostics too.
            options.now = Some(Timestamp::from_unix(4_102_444_800));
        }
        run_secret_edits(&options, start, &edits);
    }
}

#[test]
fn a_rotation_takes_the_fast_path_and_an_auth_secret_does_not() {
    let options = opts();
    // s0 good, then not covering b, then garbage, then deleted, then good again.
    let fast = run_secret_edits(
        &options,
        [1, 1, 1, 1],
        &[
            vec![(0, 3)],
            vec![(0, 2)],
            vec![(0, 4)],
            vec![(0, 0)],
            vec![(0, 1)],
            vec![(1, 2), (2, 4)],
        ],
    );
    assert_eq!(fast, 6);
    let mut snapshot = load(&base_yaml());
    snapshot.secrets.extend(secret("s0", 1));
    let mut c = Compiler::new(snapshot, options.clone());
    let binding = |c: &Compiler, sni: &str| c.table().tls_for_sni(sni).cloned().expect("binding");
    let first = binding(&c, "a.example.com")
        .certificate()
        .cloned()
        .expect("a certificate");
    let u = c.apply_secrets([("default".into(), "s0".into(), secret("s0", 3))]);
    let Update::Tls { bindings } = u else {
        panic!("{u:?}")
    };
    // s0's two hosts, nothing else.
    assert_eq!(bindings.len(), 2);
    let second = binding(&c, "a.example.com")
        .certificate()
        .cloned()
        .expect("a certificate");
    assert_ne!(first.chain, second.chain, "the new certificate is served");
    assert_eq!(
        c.apply_secrets([("default".into(), "s0".into(), secret("s0", 3))]),
        Update::Unchanged
    );
    let u = c.apply_secrets([("default".into(), "users".into(), secret("users", 2))]);
    assert_eq!(u, Update::Full(FullReason::AnnotationSecret));
    assert_same(c.compiled(), &compile(c.snapshot(), &options));
}

/// Slice `s{si}-{k}`'s content number `state` (`None`: absent).
fn slice_of(si: u8, k: u8, state: u8) -> Option<EndpointSlice> {
    let eps = match state % 5 {
        0 => return None,
        1 => "[{addresses: ['10.0.0.1']}]",
        2 => "[{addresses: ['10.0.0.2']}, {addresses: ['10.0.0.3']}]",
        3 => "[{addresses: ['10.0.0.4'], conditions: {ready: false, serving: true}}]",
        _ => "[]",
    };
    load(&slice(
        "default",
        &format!("s{si}-{k}"),
        &format!("s{si}"),
        eps,
    ))
    .endpoint_slices
    .pop()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn endpoint_fast_path_equals_a_full_compile(
        edits in prop::collection::vec(prop::collection::vec((0u8..3, 0u8..2, 0u8..5), 1..3), 1..10),
    ) {
        let options = opts();
        let mut snapshot = load(&super::endpoints::base_yaml());
        snapshot.endpoint_slices.extend(slice_of(0, 0, 1));
        snapshot.endpoint_slices.extend(slice_of(1, 0, 2));
        let mut c = Compiler::new(snapshot, options.clone());
        for batch in edits {
            let published = c.compiled().clone();
            let before = compile(c.snapshot(), &options);
            let changes: Vec<(String, String, Option<EndpointSlice>)> = batch
                .iter()
                .map(|&(si, k, st)| ("default".to_owned(), format!("s{si}-{k}"), slice_of(si, k, st)))
                .collect();
            let update = c.apply_endpoint_slices(changes);
            prop_assert!(
                matches!(
                    update,
                    Update::Endpoints { .. } | Update::Unchanged | Update::Full(FullReason::Endpoints(FullCompileNeeded::DiagnosticsChange(_)))
                ),
                "{:?}",
                update
            );
            assert_same(c.compiled(), &compile(c.snapshot(), &options));
            assert_same(&published, &before);
        }
    }
}

#[test]
fn an_endpoint_change_takes_the_fast_path() {
    let options = opts();
    let mut snapshot = load(&super::endpoints::base_yaml());
    snapshot.endpoint_slices.extend(slice_of(0, 0, 1));
    let mut c = Compiler::new(snapshot, options.clone());
    let u = c.apply_endpoint_slices([("default".into(), "s0-0".into(), slice_of(0, 0, 2))]);
    let Update::Endpoints { backends, services } = u else {
        panic!("{u:?}")
    };
    assert!(!backends.is_empty());
    assert_eq!(services, ["default/s0"]);
    assert_same(c.compiled(), &compile(c.snapshot(), &options));
    // To no ready endpoint: the diagnostics change, a full compile.
    let u = c.apply_endpoint_slices([("default".into(), "s0-0".into(), slice_of(0, 0, 4))]);
    assert!(
        matches!(
            u,
            Update::Full(FullReason::Endpoints(FullCompileNeeded::DiagnosticsChange(
                _
            )))
        ),
        "{u:?}"
    );
    assert_same(c.compiled(), &compile(c.snapshot(), &options));
}
