//! ingressctl's migration tools end to end: `compat`, `diff` and policy-aware
//! `explain` on the bundled migration manifests.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

const MIGRATION: &str = "examples/manifests/migration";
const DONE: &str = "examples/manifests/migration-done";

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ingressctl"))
        .args(args)
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
        .env("NO_COLOR", "1")
        .env_remove("INGRESS_PROFILE")
        .env_remove("INGRESS_CONTROLLER_NAME")
        .env_remove("INGRESS_ANNOTATION_PREFIX")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
    )
}

fn json(args: &[&str]) -> (i32, Value) {
    let (code, out) = run(args);
    (
        code,
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}")),
    )
}

#[test]
fn compat_reports_status_objects_and_snippet_triage() {
    let (code, out) = run(&["compat", MIGRATION]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("compat_migration", out);
    let (_, v) = json(&["compat", MIGRATION, "-o", "json"]);
    assert_eq!(v["schema"], "ingressctl.compat/v1");
    let by_key = |k: &str| {
        v["annotations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == k)
            .cloned()
            .unwrap_or_else(|| panic!("{k} missing"))
    };
    let snippet = by_key("nginx.ingress.kubernetes.io/configuration-snippet");
    assert_eq!(snippet["status"], "refused");
    assert_eq!(snippet["objects"][0], "store/storefront");
    let d = &snippet["snippets"][0]["directives"][0];
    assert_eq!(d["verdict"], "maps-to");
    assert_eq!(d["annotation"], "response-header-control-update");
    assert_eq!(
        by_key("nginx.ingress.kubernetes.io/secure-backends")["status"],
        "retired"
    );
    let typo = by_key("nginx.ingress.kubernetes.io/proxy-read-timout");
    assert_eq!(typo["status"], "unknown");
    assert!(
        typo["note"]
            .as_str()
            .unwrap()
            .contains("proxy-read-timeout")
    );
    assert_eq!(v["summary"]["refused"], 1);
}

#[test]
fn compat_list_is_the_registry() {
    let (code, v) = json(&["compat", "--list", "-o", "json"]);
    assert_eq!(code, 0);
    let keys = v["keys"].as_array().unwrap();
    assert!(keys.len() > 100, "{}", keys.len());
    let rt = keys.iter().find(|k| k["name"] == "rewrite-target").unwrap();
    assert_eq!(rt["family"], "routing");
    assert_eq!(rt["status"], "supported");
    let snip = keys.iter().find(|k| k["name"] == "server-snippet").unwrap();
    assert_eq!(snip["status"], "refused");
    assert_eq!(snip["scope"], "host");
}

#[test]
fn diff_two_sets_shows_route_level_changes() {
    let (code, out) = run(&["diff", MIGRATION, DONE]);
    assert_eq!(code, 1, "differences exit 1");
    insta::assert_snapshot!("diff_migration_sets", out);
    let (code, _) = run(&["diff", MIGRATION, MIGRATION]);
    assert_eq!(code, 0, "no differences exit 0");
}

#[test]
fn diff_profiles_shows_sample_requests() {
    let (code, v) = json(&[
        "diff",
        "--profiles",
        "ingress-nginx,standard",
        MIGRATION,
        "-o",
        "json",
    ]);
    assert_eq!(code, 1);
    assert_eq!(v["mode"], "profiles");
    let diffs = v["differences"].as_array().unwrap();
    // The API's regex makes the docs team's Exact path a case-insensitive prefix in
    // ingress-nginx only.
    let docs = diffs
        .iter()
        .find(|d| d["route"] == "api.example.com /docs (Exact)")
        .unwrap();
    let req = docs["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["request"] == "GET http://api.example.com/DOCS")
        .unwrap();
    assert!(
        req["ingress-nginx"]
            .as_str()
            .unwrap()
            .starts_with("forward store/docs:80")
    );
    assert!(req["standard"].as_str().unwrap().starts_with("respond 404"));
}

#[test]
fn explain_shows_the_policies_that_applied() {
    let (_, v) = json(&[
        "explain",
        MIGRATION,
        "--url",
        "http://api.example.com/api/users?id=1",
        "-H",
        "X-Canary: always",
        "-o",
        "json",
    ]);
    assert_eq!(v["decision"], "forward");
    assert_eq!(v["backend"]["service"], "api-v2");
    let policies: Vec<&str> = v["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["policy"].as_str().unwrap())
        .collect();
    assert!(policies.contains(&"canary"), "{policies:?}");
    assert!(policies.contains(&"rewrite"), "{policies:?}");
    assert_eq!(v["upstream"]["path"], "/users?id=1");
    // Weighted: 20% by the roll, deterministic with --canary-roll.
    let (_, v) = json(&[
        "explain",
        MIGRATION,
        "--url",
        "http://api.example.com/api/x",
        "--canary-roll",
        "5",
        "-o",
        "json",
    ]);
    assert_eq!(v["backend"]["service"], "api-v2");
    let (_, v) = json(&[
        "explain",
        MIGRATION,
        "--url",
        "http://api.example.com/api/x",
        "--canary-roll",
        "50",
        "-o",
        "json",
    ]);
    assert_eq!(v["backend"]["service"], "api");
    // The admin console: not from the office network.
    let (_, v) = json(&[
        "explain",
        MIGRATION,
        "--url",
        "http://admin.example.com/",
        "--client-ip",
        "203.0.113.9",
        "-o",
        "json",
    ]);
    assert_eq!(v["status"], 403);
    // The storefront's snippet is refused: its routes fail closed.
    let (_, v) = json(&[
        "explain",
        MIGRATION,
        "--url",
        "https://shop.example.com/",
        "-o",
        "json",
    ]);
    assert_eq!(v["status"], 503);
    assert_eq!(v["reason"], "invalid-policy");
}
