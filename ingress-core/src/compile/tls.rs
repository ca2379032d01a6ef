//! TLS: `spec.tls` hosts, their Secrets, and the host → certificate map for SNI.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::diagnostics::{Code, Diagnostic};
use crate::model::{HostPattern, ObjectKind, ObjectRef, Secret};
use crate::routing::{TlsBinding, TlsProblem};
use crate::tls::CertifiedKey;

use super::CompileOptions;
use super::validate::{ValidIngress, ValidTls};

/// One binding per TLS host; the oldest Ingress wins a host. A problem with the
/// Secret leaves the binding without a certificate (the proxy serves its default one).
pub(crate) fn bindings(
    valid: &[ValidIngress],
    secrets: &rustc_hash::FxHashMap<(&str, &str), &Secret>,
    opts: &CompileOptions,
    diags: &mut Vec<Diagnostic>,
) -> Vec<TlsBinding> {
    let mut out: BTreeMap<HostPattern, TlsBinding> = BTreeMap::new();
    let mut parsed: BTreeMap<(String, String), Result<Arc<CertifiedKey>, String>> = BTreeMap::new();
    for v in valid {
        for t in &v.tls {
            let secret_ref = t
                .secret
                .as_deref()
                .map(|s| ObjectRef::namespaced(ObjectKind::Secret, v.namespace(), s));
            if let Some(existing) = out.get(&t.host) {
                if existing.secret != secret_ref {
                    diags.push(Diagnostic::new(
                        Code::TlsHostConflict,
                        Some(ObjectRef::clone(&v.r)),
                        Some(t.field.clone()),
                        format!(
                            "TLS host {} already gets its certificate from older {}; this Ingress's Secret is not used for it",
                            t.host, existing.ingress
                        ),
                    ));
                }
                continue;
            }
            let mut binding = TlsBinding {
                host: t.host.clone(),
                secret: secret_ref.clone(),
                ingress: ObjectRef::clone(&v.r),
                certificate: None,
                problem: None,
            };
            if let Some(name) = &t.secret {
                let cert = parsed
                    .entry((v.namespace().to_owned(), name.clone()))
                    .or_insert_with(|| load(secrets.get(&(v.namespace(), name.as_str())).copied()))
                    .clone();
                check(v, t, name, cert, &mut binding, opts, diags);
            }
            out.insert(t.host.clone(), binding);
        }
    }
    out.into_values().collect()
}

/// The certificate and problem of `binding` (TLS entry `t` of `v`, naming Secret
/// `name`) from the parsed Secret (`Err("")`: not found), with its diagnostics:
/// one place for a full compile and the Secret fast path
/// ([`Compiler::apply_secrets`](super::Compiler::apply_secrets)).
pub(crate) fn check(
    v: &ValidIngress,
    t: &ValidTls,
    name: &str,
    cert: Result<Arc<CertifiedKey>, String>,
    binding: &mut TlsBinding,
    opts: &CompileOptions,
    diags: &mut Vec<Diagnostic>,
) {
    binding.certificate = None;
    binding.problem = None;
    let secret_ref = binding.secret.clone();
    let mut warn = |code: Code, field: &str, msg: String| {
        diags.push(Diagnostic::new(
            code,
            Some(ObjectRef::clone(&v.r)),
            Some(field.to_owned()),
            msg,
        ));
    };
    match cert {
        Err(e) if e.is_empty() => {
            binding.problem = Some(TlsProblem::SecretNotFound);
            warn(
                Code::TlsSecretNotFound,
                &t.secret_field,
                format!(
                    "Secret {}/{name} is not in the input; host {} is served with the default certificate",
                    v.namespace(),
                    t.host
                ),
            )
        }
        Err(e) => {
            binding.problem = Some(TlsProblem::SecretInvalid);
            warn(
                Code::TlsSecretInvalid,
                &t.secret_field,
                format!(
                    "Secret {}/{name}: {e}; host {} is served with the default certificate (a running gateway keeps its last good certificate from this Secret)",
                    v.namespace(),
                    t.host
                ),
            )
        }
        Ok(cert) => {
            let host = t.host.to_string();
            if !cert.covers(&host) {
                binding.problem = Some(TlsProblem::HostNotCovered);
                warn(
                    Code::TlsHostNotCovered,
                    &t.field,
                    format!(
                        "the certificate in Secret {}/{name} does not cover {host} (it covers {}); the default certificate is served for it (a running gateway keeps its last good certificate from this Secret)",
                        v.namespace(),
                        names(&cert)
                    ),
                );
            } else {
                if let Some(now) = opts.now
                    && let Some(secret) = &secret_ref
                    && let Some(d) = crate::tls::expiry_diagnostic(
                        &cert,
                        secret,
                        &host,
                        &v.r,
                        Some(t.secret_field.clone()),
                        now,
                    )
                {
                    diags.push(d);
                }
                binding.certificate = Some(cert);
            }
        }
    }
}

/// Parse a TLS Secret. `Err("")` means not found.
pub(crate) fn load(secret: Option<&Secret>) -> Result<Arc<CertifiedKey>, String> {
    let Some(secret) = secret else {
        return Err(String::new());
    };
    let (Some(crt), Some(key)) = (secret.get("tls.crt"), secret.get("tls.key")) else {
        return Err("the Secret must hold tls.crt and tls.key".into());
    };
    CertifiedKey::from_pem(crt, key)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

fn names(cert: &CertifiedKey) -> String {
    let mut n: Vec<String> = cert.dns_names.clone();
    n.extend(cert.ip_addresses.iter().map(|ip| ip.to_string()));
    if n.is_empty()
        && let Some(cn) = &cert.common_name
    {
        n.push(format!("CN={cn}"));
    }
    if n.is_empty() {
        "no names".into()
    } else {
        n.join(", ")
    }
}
