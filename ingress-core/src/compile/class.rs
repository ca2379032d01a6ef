//! Which Ingresses are ours: IngressClass, the legacy annotation, the default class.

use crate::diagnostics::{Code, Diagnostic};
use crate::model::{Ingress, IngressClass, ObjectKind, ObjectRef};

use super::CompileOptions;

/// The legacy class annotation.
pub const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

pub(crate) enum Ownership {
    Ours,
    NotOurs,
    Invalid,
}

pub(crate) struct Classes<'s> {
    classes: Vec<&'s IngressClass>,
    defaults_ours: bool,
}

impl<'s> Classes<'s> {
    /// `sorted` must already be unique by name (compile dedups it).
    pub(crate) fn new(
        mut sorted: Vec<&'s IngressClass>,
        opts: &CompileOptions,
        diags: &mut Vec<Diagnostic>,
    ) -> Self {
        sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let defaults: Vec<&&IngressClass> = sorted.iter().filter(|c| c.is_default()).collect();
        if defaults.len() > 1 {
            let names: Vec<&str> = defaults.iter().map(|c| c.metadata.name.as_str()).collect();
            for c in &defaults {
                diags.push(Diagnostic::new(
                    Code::DefaultClassAmbiguous,
                    Some(ObjectRef::cluster(ObjectKind::IngressClass, &c.metadata.name)),
                    Some("metadata.annotations[\"ingressclass.kubernetes.io/is-default-class\"]".into()),
                    format!(
                        "{} IngressClasses are marked default ({}); Ingresses without a class are served if any of them is this controller's",
                        defaults.len(),
                        names.join(", ")
                    ),
                ));
            }
        }
        let defaults_ours = defaults
            .iter()
            .any(|c| c.spec.controller == opts.controller_name);
        Classes {
            classes: sorted,
            defaults_ours,
        }
    }

    pub(crate) fn ownership(
        &self,
        ing: &Ingress,
        r: &ObjectRef,
        opts: &CompileOptions,
        diags: &mut Vec<Diagnostic>,
    ) -> Ownership {
        let spec = ing
            .spec
            .ingress_class_name
            .as_deref()
            .filter(|s| !s.is_empty());
        let ann = ing
            .metadata
            .annotations
            .get(LEGACY_CLASS_ANNOTATION)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty());
        let (name, field) = match (spec, ann) {
            (Some(s), Some(a)) if s != a => {
                diags.push(Diagnostic::new(
                    Code::IngressClassConflict,
                    Some(r.clone()),
                    Some(format!("metadata.annotations[\"{LEGACY_CLASS_ANNOTATION}\"]")),
                    format!(
                        "the annotation says class {a:?} but spec.ingressClassName says {s:?}; they must match when both are set (the API server refuses this Ingress)"
                    ),
                ));
                return Ownership::Invalid;
            }
            (Some(s), _) => (s, "spec.ingressClassName".to_owned()),
            (None, Some(a)) => (
                a,
                format!("metadata.annotations[\"{LEGACY_CLASS_ANNOTATION}\"]"),
            ),
            (None, None) => {
                if self.defaults_ours {
                    return Ownership::Ours;
                }
                if opts.watch_ingress_without_class {
                    return Ownership::Ours;
                }
                diags.push(Diagnostic::new(
                    Code::IngressIgnored,
                    Some(r.clone()),
                    Some("spec.ingressClassName".into()),
                    "no ingress class is set and no default IngressClass belongs to this controller; ignored (set spec.ingressClassName, or enable watching Ingresses without class)",
                ));
                return Ownership::NotOurs;
            }
        };
        if let Some(class) = self.classes.iter().find(|c| c.metadata.name == name) {
            if class.spec.controller == opts.controller_name {
                return Ownership::Ours;
            }
            diags.push(Diagnostic::new(
                Code::IngressIgnored,
                Some(r.clone()),
                Some(field),
                format!(
                    "IngressClass {name:?} belongs to controller {:?}, not {:?}; ignored",
                    class.spec.controller, opts.controller_name
                ),
            ));
            return Ownership::NotOurs;
        }
        if opts.ingress_class_names.iter().any(|c| c == name) {
            return Ownership::Ours;
        }
        diags.push(Diagnostic::new(
            Code::IngressClassNotFound,
            Some(r.clone()),
            Some(field),
            format!(
                "IngressClass {name:?} is not in the input and not declared as ours (--ingress-class {name}); ignored"
            ),
        ));
        Ownership::NotOurs
    }
}
