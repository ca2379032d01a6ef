//! `ingressctl compat`: what this gateway does with each annotation the manifests
//! use, and a triage of every snippet; `--list` prints the whole registry.

use std::collections::BTreeMap;

use ingress_core::annotations::snippets::{self, Triage};
use ingress_core::annotations::{self, KeyClass, KeySpec, Support};
use serde_json::{Value, json};

use crate::{InputArgs, Output, input};

/// One annotation key as found in the input.
struct Use {
    /// `supported`, `partial`, `not-enforced`, `refused`, `retired`, `unknown`.
    status: &'static str,
    note: String,
    name: String,
    family: &'static str,
    objects: Vec<String>,
    snippets: Vec<(String, Vec<snippets::Directive>)>,
}

fn status_of(class: KeyClass) -> (&'static str, String, String, &'static str) {
    match class {
        KeyClass::Known(_, spec) => (
            spec.support.as_str(),
            spec.support.note().unwrap_or("").to_owned(),
            spec.name.to_owned(),
            spec.family.as_str(),
        ),
        KeyClass::WrongPrefix(_, spec) => (
            "unknown",
            format!("`{}` is not read under this prefix", spec.name),
            spec.name.to_owned(),
            spec.family.as_str(),
        ),
        KeyClass::Retired(r) => (
            "retired",
            format!("removed from ingress-nginx; use {}", r.replacement),
            r.name.to_owned(),
            "",
        ),
        KeyClass::Unknown(s) => (
            "unknown",
            s.map(|s| format!("did you mean `{s}`?"))
                .unwrap_or_default(),
            String::new(),
            "",
        ),
        KeyClass::Foreign => ("foreign", String::new(), String::new(), ""),
    }
}

const ORDER: [&str; 7] = [
    "supported",
    "partial",
    "not-enforced",
    "refused",
    "retired",
    "unknown",
    "foreign",
];

/// The report for the annotations used in `args`' manifests.
pub(crate) fn compat(args: &InputArgs, prefix: Option<&str>) -> anyhow::Result<u8> {
    let input = input::read(&args.all_paths())?;
    let mut uses: BTreeMap<String, Use> = BTreeMap::new();
    for ing in &input.loaded.snapshot.ingresses {
        let object = format!(
            "{}/{}",
            ing.metadata.namespace_or_default(),
            ing.metadata.name
        );
        for (key, value) in &ing.metadata.annotations {
            let class = annotations::classify_key(key, prefix);
            if class == KeyClass::Foreign {
                continue;
            }
            let (status, note, name, family) = status_of(class);
            let u = uses.entry(key.clone()).or_insert_with(|| Use {
                status,
                note,
                name,
                family,
                objects: Vec::new(),
                snippets: Vec::new(),
            });
            u.objects.push(object.clone());
            if family == "snippets" {
                u.snippets.push((object.clone(), snippets::triage(value)));
            }
        }
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for u in uses.values() {
        *counts.entry(u.status).or_default() += 1;
    }
    match args.output {
        Output::Json => {
            let list: Vec<Value> = uses
                .iter()
                .map(|(key, u)| {
                    json!({
                        "key": key,
                        "name": u.name,
                        "family": u.family,
                        "status": u.status,
                        "note": u.note,
                        "objects": u.objects,
                        "snippets": u.snippets.iter().map(|(o, d)| json!({"object": o, "directives": d})).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let summary: BTreeMap<&str, usize> = ORDER
                .iter()
                .map(|s| (*s, counts.get(s).copied().unwrap_or(0)))
                .collect();
            crate::commands::print_json(&json!({
                "schema": "ingressctl.compat/v1",
                "annotations": list,
                "summary": summary,
            }))?;
        }
        Output::Text => {
            if uses.is_empty() {
                println!(
                    "no annotations under nginx.ingress.kubernetes.io/, higress.io/, mse.ingress.kubernetes.io/ or ingress-rs.io/"
                );
            }
            for status in ORDER {
                let group: Vec<(&String, &Use)> =
                    uses.iter().filter(|(_, u)| u.status == status).collect();
                if group.is_empty() {
                    continue;
                }
                println!("{status}:");
                for (key, u) in group {
                    let note = if u.note.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", u.note)
                    };
                    println!("  {key}{note}");
                    println!("    used by: {}", u.objects.join(", "));
                    for (object, directives) in &u.snippets {
                        println!("    snippet of {object}:");
                        for d in directives {
                            let verdict = match d.triage {
                                Triage::MapsTo(a) => format!("maps to annotation {a}"),
                                Triage::NeedsPlugin => "needs a plugin".to_owned(),
                                Triage::Unsafe => "unsafe: never portable".to_owned(),
                            };
                            println!("      {:<48} {verdict}", truncate(&d.text, 48));
                        }
                    }
                }
                println!();
            }
            let summary: Vec<String> = ORDER
                .iter()
                .filter_map(|s| counts.get(s).map(|n| format!("{n} {s}")))
                .collect();
            println!(
                "{} annotation key{} in {} Ingress{}: {}",
                uses.len(),
                if uses.len() == 1 { "" } else { "s" },
                input.loaded.snapshot.ingresses.len(),
                if input.loaded.snapshot.ingresses.len() == 1 {
                    ""
                } else {
                    "es"
                },
                if summary.is_empty() {
                    "none".to_owned()
                } else {
                    summary.join(", ")
                }
            );
        }
    }
    Ok(0)
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn spec_json(k: &KeySpec) -> Value {
    json!({
        "name": k.name,
        "family": k.family,
        "scope": k.scope,
        "grammar": k.grammar,
        "default": k.default,
        "doc": k.doc,
        "risk": k.risk,
        "status": k.support.as_str(),
        "note": k.support.note(),
        "prefixes": k.prefixes,
        "security": k.security,
    })
}

/// `compat --list`: the whole registry.
pub(crate) fn list(output: Output) -> anyhow::Result<u8> {
    match output {
        Output::Json => {
            let keys: Vec<Value> = annotations::all_keys().map(spec_json).collect();
            let retired: Vec<Value> = annotations::RETIRED
                .iter()
                .map(|r| json!({"name": r.name, "replacement": r.replacement}))
                .collect();
            crate::commands::print_json(&json!({
                "schema": "ingressctl.annotations/v1",
                "keys": keys,
                "retired": retired,
            }))?;
        }
        Output::Text => {
            for f in annotations::REGISTRY {
                println!("{}:", f.family());
                for k in f.keys() {
                    let status = match k.support {
                        Support::Supported => "supported".to_owned(),
                        s => format!("{}: {}", s.as_str(), s.note().unwrap_or("")),
                    };
                    println!("  {:<40} {:<6} {status}", k.name, k.scope.as_str());
                }
            }
            println!("retired:");
            for r in annotations::RETIRED {
                println!("  {:<40} use {}", r.name, r.replacement);
            }
        }
    }
    Ok(0)
}
