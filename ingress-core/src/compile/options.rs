use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::model::Timestamp;

/// The controller name this gateway answers to unless configured otherwise
/// (`IngressClass.spec.controller`).
pub const DEFAULT_CONTROLLER_NAME: &str = "ingress-rs.dev/gateway";

/// Which behaviour to reproduce where the Kubernetes spec leaves room.
/// See docs/profiles.md for every difference.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// The Kubernetes spec, and Higress/MSE behaviour where the spec is silent.
    #[default]
    Standard,
    /// What ingress-nginx really does, quirks included.
    IngressNginx,
}

impl Profile {
    /// `standard` or `ingress-nginx`.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Standard => "standard",
            Profile::IngressNginx => "ingress-nginx",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown profile name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown profile {0:?}: expected \"standard\" or \"ingress-nginx\"")]
pub struct UnknownProfile(pub String);

impl FromStr for Profile {
    type Err = UnknownProfile;
    fn from_str(s: &str) -> Result<Self, UnknownProfile> {
        match s {
            "standard" => Ok(Profile::Standard),
            "ingress-nginx" | "nginx" => Ok(Profile::IngressNginx),
            other => Err(UnknownProfile(other.to_owned())),
        }
    }
}

/// What compile needs besides the objects.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompileOptions {
    /// Our `IngressClass.spec.controller` value.
    pub controller_name: String,
    /// The behaviour profile.
    pub profile: Profile,
    /// Class names to treat as ours even when no IngressClass object is in the input
    /// (ingress-nginx's `--ingress-class`).
    pub ingress_class_names: Vec<String>,
    /// Serve Ingresses with no class at all (ingress-nginx's `--watch-ingress-without-class`).
    pub watch_ingress_without_class: bool,
    /// The current time, for certificate expiry checks; `None` skips them.
    pub now: Option<Timestamp>,
    /// A custom annotation prefix (e.g. `example.com/`), read before the standard ones
    /// (ingress-nginx's `--annotations-prefix`).
    pub annotation_prefix: Option<String>,
    /// The highest annotation risk level allowed (ingress-nginx's
    /// `annotations-risk-level`; `High` by default): an Ingress using a key above it
    /// gets an error and its routes fail closed.
    pub annotations_risk_level: crate::annotations::Risk,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            controller_name: DEFAULT_CONTROLLER_NAME.to_owned(),
            profile: Profile::Standard,
            ingress_class_names: Vec::new(),
            watch_ingress_without_class: false,
            now: None,
            annotation_prefix: None,
            annotations_risk_level: crate::annotations::Risk::default(),
        }
    }
}

impl CompileOptions {
    /// Default options with `profile`.
    pub fn with_profile(profile: Profile) -> Self {
        CompileOptions {
            profile,
            ..CompileOptions::default()
        }
    }

    /// Set the controller name.
    pub fn controller_name(mut self, name: impl Into<String>) -> Self {
        self.controller_name = name.into();
        self
    }

    /// Add a class name to treat as ours.
    pub fn ingress_class(mut self, name: impl Into<String>) -> Self {
        self.ingress_class_names.push(name.into());
        self
    }

    /// Serve Ingresses that have no class.
    pub fn watch_ingress_without_class(mut self, yes: bool) -> Self {
        self.watch_ingress_without_class = yes;
        self
    }

    /// Read annotations under this custom prefix too (first). Include the trailing `/`.
    pub fn annotation_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.annotation_prefix = Some(prefix.into());
        self
    }

    /// Allow annotations up to this risk level (ingress-nginx's
    /// `annotations-risk-level`).
    pub fn annotations_risk_level(mut self, level: crate::annotations::Risk) -> Self {
        self.annotations_risk_level = level;
        self
    }

    /// The options the annotation parser needs.
    pub fn annotation_options(&self) -> crate::annotations::AnnotationOptions {
        crate::annotations::AnnotationOptions {
            profile: self.profile,
            custom_prefix: self.annotation_prefix.clone(),
            max_risk: self.annotations_risk_level,
        }
    }

    /// Set the time used for certificate expiry checks.
    pub fn now(mut self, now: Timestamp) -> Self {
        self.now = Some(now);
        self
    }
}
