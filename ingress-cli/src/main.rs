//! `ingressctl`: validate, list and explain Kubernetes Ingress routing offline.
//!
//! It runs the same `ingress_core::compile` as the gateway and executes nothing.
//! Exit codes: 0 clean, 1 when a diagnostic of error severity was found (warnings too
//! with `--strict`), 2 when the input cannot be read or the arguments are unusable.

mod commands;
mod compat;
mod diff;
mod input;
mod json;
mod render;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ingress_core::{CompileOptions, DEFAULT_CONTROLLER_NAME, Profile};

/// Validate, list and explain Kubernetes Ingress routing offline, with the same
/// semantics as the gateway.
#[derive(Debug, Parser)]
#[command(name = "ingressctl", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print every problem in the manifests, with file:line, object, field and code.
    Validate {
        #[command(flatten)]
        input: InputArgs,
        /// Fail (exit 1) on warnings too.
        #[arg(long)]
        strict: bool,
    },
    /// Print the compiled route table, the TLS hosts, and what was dropped and why.
    Routes {
        #[command(flatten)]
        input: InputArgs,
    },
    /// Print the decision for one request and why.
    Explain {
        #[command(flatten)]
        input: InputArgs,
        /// The request URL; its scheme picks the listener, its authority is the Host.
        #[arg(long, short = 'u')]
        url: String,
        /// The request method.
        #[arg(short = 'X', long = "request", default_value = "GET")]
        method: String,
        /// A request header, as 'Name: value' (repeatable). A Host header overrides the URL's.
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// The client address (for IP-based policies).
        #[arg(long)]
        client_ip: Option<std::net::IpAddr>,
        /// The random number a data plane would draw for weighted canaries (any u32);
        /// without it, weighted canaries are not chosen.
        #[arg(long)]
        canary_roll: Option<u32>,
    },
    /// Report what the gateway does with each annotation the manifests use (supported,
    /// partial, not enforced, refused, retired, unknown), with a triage of every snippet.
    Compat {
        #[command(flatten)]
        input: InputArgs,
        /// Print the whole annotation registry instead (no PATH needed).
        #[arg(long)]
        list: bool,
    },
    /// Route-level differences between two manifest sets, or between two profiles on
    /// one set (`--profiles ingress-nginx,standard PATH`), with a sample request for
    /// each difference.
    Diff {
        #[command(flatten)]
        input: InputArgs,
        /// Compare these two profiles on the same manifests instead of two sets.
        #[arg(long, value_name = "A,B", value_delimiter = ',', num_args = 1)]
        profiles: Vec<String>,
    },
    /// Print the CustomResourceDefinition of the gateway config
    /// (IngressGatewayConfig), as in deploy/crd.yaml: `ingressctl crd | kubectl apply -f -`.
    Crd,
    /// List every diagnostic code with its severity and meaning.
    Codes {
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

/// The gateway config's CRD: the checked-in deploy/crd.yaml, which ingress-kube's
/// tests keep equal to the one generated from the Rust type (so the CLI needs no
/// kube dependency).
const CRD_YAML: &str = include_str!("../../deploy/crd.yaml");

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// For people.
    Text,
    /// Stable JSON (docs/cli-json.md).
    Json,
}

/// Inputs and compile options shared by every command.
#[derive(Debug, Args)]
struct InputArgs {
    /// Manifest files or folders (recursed; .yaml, .yml, .json), or - for stdin.
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Same as a positional PATH (repeatable).
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    files: Vec<PathBuf>,
    /// Behaviour profile: the Kubernetes spec (standard) or ingress-nginx's quirks.
    #[arg(long, default_value = "standard", env = "INGRESS_PROFILE", value_parser = parse_profile)]
    profile: Profile,
    /// Our IngressClass controller name.
    #[arg(long, default_value = DEFAULT_CONTROLLER_NAME, env = "INGRESS_CONTROLLER_NAME")]
    controller_name: String,
    /// A class name to treat as ours even without an IngressClass object (repeatable).
    #[arg(long = "ingress-class", value_name = "NAME")]
    ingress_classes: Vec<String>,
    /// Also serve Ingresses that name no class.
    #[arg(long)]
    watch_ingress_without_class: bool,
    /// A custom annotation prefix (e.g. `example.com/`), read before the standard ones.
    #[arg(long, env = "INGRESS_ANNOTATION_PREFIX", value_name = "PREFIX")]
    annotation_prefix: Option<String>,
    /// The highest annotation risk level allowed (ingress-nginx's
    /// `annotations-risk-level`): low, medium, high or critical. A key above it is an
    /// error and its Ingress's routes fail closed.
    #[arg(long, env = "INGRESS_ANNOTATIONS_RISK_LEVEL", value_name = "LEVEL", default_value = "high", value_parser = parse_risk)]
    annotations_risk_level: ingress_core::annotations::Risk,
    /// The time TLS certificates are checked against (RFC 3339, e.g.
    /// `2030-01-01T00:00:00Z`): an expired certificate gets `tls-certificate-expired`,
    /// one expiring within 30 days `tls-certificate-expires-soon`. Default: now
    /// (the system clock).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    now: Option<ingress_core::model::Timestamp>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Also show info-level diagnostics in text output.
    #[arg(short = 'v', long)]
    verbose: bool,
}

fn parse_risk(s: &str) -> Result<ingress_core::annotations::Risk, String> {
    s.parse()
        .map_err(|e: ingress_core::annotations::UnknownRisk| e.to_string())
}

fn parse_time(s: &str) -> Result<ingress_core::model::Timestamp, String> {
    ingress_core::model::Timestamp::parse(s)
        .ok_or_else(|| format!("{s:?} is not an RFC 3339 time (like 2030-01-01T00:00:00Z)"))
}

/// The system clock as a [`ingress_core::model::Timestamp`] (the core takes time as
/// an argument; the CLI supplies it).
fn system_now() -> ingress_core::model::Timestamp {
    ingress_core::model::Timestamp::from_system_time(std::time::SystemTime::now())
}

fn parse_profile(s: &str) -> Result<Profile, String> {
    s.parse()
        .map_err(|e: ingress_core::compile::UnknownProfile| e.to_string())
}

impl InputArgs {
    fn all_paths(&self) -> Vec<PathBuf> {
        self.paths.iter().chain(&self.files).cloned().collect()
    }

    fn options(&self) -> CompileOptions {
        let mut o = CompileOptions::with_profile(self.profile)
            .controller_name(self.controller_name.clone())
            .watch_ingress_without_class(self.watch_ingress_without_class)
            .annotations_risk_level(self.annotations_risk_level)
            .now(self.now.unwrap_or_else(system_now));
        for c in &self.ingress_classes {
            o = o.ingress_class(c.clone());
        }
        if let Some(p) = &self.annotation_prefix {
            o = o.annotation_prefix(p.clone());
        }
        o
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Validate { input, strict } => commands::validate(input, *strict),
        Command::Routes { input } => commands::routes(input),
        Command::Explain {
            input,
            url,
            method,
            headers,
            client_ip,
            canary_roll,
        } => commands::explain(input, url, method, headers, *client_ip, *canary_roll),
        Command::Compat { input, list: true } => compat::list(input.output),
        Command::Compat { input, list: false } => {
            compat::compat(input, input.annotation_prefix.as_deref())
        }
        Command::Diff { input, profiles } => diff::diff(input, profiles),
        Command::Codes { output } => commands::codes(*output),
        Command::Crd => {
            print!("{CRD_YAML}");
            Ok(0)
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("ingressctl: {e:#}");
            ExitCode::from(2)
        }
    }
}
