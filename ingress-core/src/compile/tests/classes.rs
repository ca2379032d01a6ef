use super::*;

// ------------------------------------------------------------ 1. class selection

struct ClassCase {
    what: &'static str,
    classes: String,
    class_name: Option<&'static str>,
    annotation: Option<&'static str>,
    options: CompileOptions,
    served: bool,
    /// Every diagnostic code about the Ingress, with the severity of the first.
    codes: &'static [Code],
    severity: Option<Severity>,
}

#[test]
fn ingress_class_selection() {
    let ours = DEFAULT_CONTROLLER_NAME;
    let base = CompileOptions::default();
    let cases = [
        ClassCase {
            what: "ingressClassName names our class",
            classes: class("gw", ours, false),
            class_name: Some("gw"),
            annotation: None,
            options: base.clone(),
            served: true,
            codes: &[],
            severity: None,
        },
        ClassCase {
            what: "ingressClassName names another controller's class",
            classes: class("gw", ours, false) + &class("nginx", "k8s.io/ingress-nginx", false),
            class_name: Some("nginx"),
            annotation: None,
            options: base.clone(),
            served: false,
            codes: &[Code::IngressIgnored],
            severity: Some(Severity::Info),
        },
        ClassCase {
            what: "ingressClassName names an absent class",
            classes: class("gw", ours, false),
            class_name: Some("missing"),
            annotation: None,
            options: base.clone(),
            served: false,
            codes: &[Code::IngressClassNotFound],
            severity: Some(Severity::Warning),
        },
        ClassCase {
            what: "ingressClassName names an absent class declared with ingress_class",
            classes: String::new(),
            class_name: Some("gw"),
            annotation: None,
            options: base.clone().ingress_class("gw"),
            served: true,
            codes: &[],
            severity: None,
        },
        ClassCase {
            what: "legacy annotation names our class",
            classes: class("gw", ours, false),
            class_name: None,
            annotation: Some("gw"),
            options: base.clone(),
            served: true,
            codes: &[],
            severity: None,
        },
        ClassCase {
            what: "legacy annotation names another controller's class",
            classes: class("nginx", "k8s.io/ingress-nginx", false),
            class_name: None,
            annotation: Some("nginx"),
            options: base.clone(),
            served: false,
            codes: &[Code::IngressIgnored],
            severity: Some(Severity::Info),
        },
        ClassCase {
            what: "legacy annotation names an absent class",
            classes: String::new(),
            class_name: None,
            annotation: Some("gw"),
            options: base.clone(),
            served: false,
            codes: &[Code::IngressClassNotFound],
            severity: Some(Severity::Warning),
        },
        ClassCase {
            what: "legacy annotation names an absent class declared with ingress_class",
            classes: String::new(),
            class_name: None,
            annotation: Some("gw"),
            options: base.clone().ingress_class("gw"),
            served: true,
            codes: &[],
            severity: None,
        },
        ClassCase {
            what: "annotation and ingressClassName agree",
            classes: class("gw", ours, false),
            class_name: Some("gw"),
            annotation: Some("gw"),
            options: base.clone(),
            served: true,
            codes: &[],
            severity: None,
        },
        ClassCase {
            what: "annotation and ingressClassName disagree",
            classes: class("gw", ours, false) + &class("other", ours, false),
            class_name: Some("gw"),
            annotation: Some("other"),
            options: base.clone(),
            served: false,
            codes: &[Code::IngressClassConflict, Code::IngressDropped],
            severity: Some(Severity::Error),
        },
        ClassCase {
            what: "no class, our class is the default",
            classes: class("gw", ours, true),
            class_name: None,
            annotation: None,
            options: base.clone(),
            served: true,
            codes: &[],
            severity: None,
        },
        ClassCase {
            what: "no class, the default class is another controller's",
            classes: class("gw", ours, false) + &class("nginx", "k8s.io/ingress-nginx", true),
            class_name: None,
            annotation: None,
            options: base.clone(),
            served: false,
            codes: &[Code::IngressIgnored],
            severity: Some(Severity::Info),
        },
        ClassCase {
            what: "no class, watch_ingress_without_class",
            classes: class("gw", ours, false),
            class_name: None,
            annotation: None,
            options: base.clone().watch_ingress_without_class(true),
            served: true,
            codes: &[],
            severity: None,
        },
        ClassCase {
            what: "no class, no default class",
            classes: class("gw", ours, false),
            class_name: None,
            annotation: None,
            options: base.clone(),
            served: false,
            codes: &[Code::IngressIgnored],
            severity: Some(Severity::Info),
        },
        ClassCase {
            what: "custom controller name: its class is ours",
            classes: class("mine", "example.com/mine", false),
            class_name: Some("mine"),
            annotation: None,
            options: base.clone().controller_name("example.com/mine"),
            served: true,
            codes: &[],
            severity: None,
        },
        ClassCase {
            what: "custom controller name: the default controller's class is not ours",
            classes: class("gw", ours, false),
            class_name: Some("gw"),
            annotation: None,
            options: base.clone().controller_name("example.com/mine"),
            served: false,
            codes: &[Code::IngressIgnored],
            severity: Some(Severity::Info),
        },
    ];
    let mut failures = Vec::new();
    for case in cases {
        let meta = case
            .annotation
            .map(|a| format!(", annotations: {{kubernetes.io/ingress.class: {a}}}"))
            .unwrap_or_default();
        let class_field = case
            .class_name
            .map(|n| format!("ingressClassName: {n}, "))
            .unwrap_or_default();
        let spec = format!(
            "{{{class_field}rules: [{}]}}",
            rule("a.example.com", &[path("Prefix", "/", "app")])
        );
        let yaml = case.classes.clone()
            + &ingress("default", "web", &meta, &spec)
            + &svc("default", "app", "10.0.0.1");
        let c = run(&yaml, &case.options);
        let web = ing_ref("default", "web");
        let got = outcome(&c, "a.example.com", "/");
        let want = if case.served { "app" } else { "404 NoRoute" };
        if got != want {
            failures.push(format!("{}: request got {got}, want {want}", case.what));
        }
        let codes = codes_of(&c, &web);
        if codes != case.codes {
            failures.push(format!(
                "{}: codes {codes:?}, want {:?}",
                case.what, case.codes
            ));
        }
        if let (Some(sev), Some(code)) = (case.severity, case.codes.first())
            && let Some(d) = find(&c, *code, &web).first()
            && d.severity != sev
        {
            failures.push(format!(
                "{}: {code:?} has severity {:?}, want {sev:?}",
                case.what, d.severity
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn two_default_classes_are_ambiguous() {
    let yaml = class("gw", DEFAULT_CONTROLLER_NAME, true)
        + &class("nginx", "k8s.io/ingress-nginx", true)
        + &class("plain", "k8s.io/ingress-nginx", false);
    let c = run(&yaml, &CompileOptions::default());
    for name in ["gw", "nginx"] {
        let d = find(&c, Code::DefaultClassAmbiguous, &class_ref(name));
        assert_eq!(d.len(), 1, "{name}: {}", dump(&c));
        assert_eq!(d[0].severity, Severity::Warning);
    }
    assert!(
        find(&c, Code::DefaultClassAmbiguous, &class_ref("plain")).is_empty(),
        "{}",
        dump(&c)
    );
}

#[test]
fn a_duplicated_default_class_is_one_class_not_two() {
    let gw = class("gw", DEFAULT_CONTROLLER_NAME, true);
    let yaml = gw.clone()
        + &gw
        + &ingress(
            "default",
            "web",
            "",
            &format!(
                "{{rules: [{}]}}",
                rule("a.example.com", &[path("Prefix", "/", "app")])
            ),
        )
        + &svc("default", "app", "10.0.0.1");
    let c = run(&yaml, &CompileOptions::default());
    assert!(
        c.diagnostics
            .iter()
            .all(|d| d.code != Code::DefaultClassAmbiguous),
        "{}",
        dump(&c)
    );
    assert_eq!(outcome(&c, "a.example.com", "/"), "app");
}
