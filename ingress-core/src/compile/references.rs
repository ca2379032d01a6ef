//! Secrets named by annotations: same namespace only, present, and readable. A
//! security reference that fails makes the routes of its Ingress fail closed.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::annotations::auth::{SecretType, parse_htdigest, parse_htpasswd};
use crate::annotations::backend::UpstreamTlsSecret;
use crate::annotations::values::ObjectName;
use crate::annotations::{FailClosed, IngressPolicy, annotation_field};
use crate::diagnostics::{Code, Diagnostic};
use crate::model::Secret;

use super::validate::ValidIngress;

/// Check and resolve the Secrets each Ingress's annotations name.
pub(super) fn resolve(
    valid: &mut [ValidIngress],
    secrets: &FxHashMap<(&str, &str), &Secret>,
    diags: &mut Vec<Diagnostic>,
) {
    for v in valid.iter_mut() {
        let p = &v.policy;
        let wants = p.auth.basic.is_some()
            || p.auth.digest.is_some()
            || p.client_tls.ca_secret.is_some()
            || p.backend
                .upstream_tls
                .as_ref()
                .is_some_and(|t| t.secret.is_some());
        if !wants {
            continue;
        }
        let namespace = v.namespace().to_owned();
        let mut failed: Vec<String> = Vec::new();
        let mut policy: IngressPolicy = IngressPolicy::clone(&v.policy);
        let lookup = |key: &str,
                      name: &ObjectName,
                      diags: &mut Vec<Diagnostic>|
         -> Result<&Secret, String> {
            let full = format!("nginx.ingress.kubernetes.io/{key}");
            if name.namespace.as_deref().is_some_and(|ns| ns != namespace) {
                diags.push(Diagnostic::new(
                    Code::AnnotationReferenceInvalid,
                    Some(v.r.as_ref().clone()),
                    Some(annotation_field(&full)),
                    format!(
                        "`{key}` names Secret {}/{} in another namespace; only the Ingress's own namespace is read (a Secret's content must not cross tenants); the routes answer 503",
                        name.namespace.as_deref().unwrap_or(""),
                        name.name
                    ),
                ));
                return Err(full);
            }
            match secrets.get(&(namespace.as_str(), name.name.as_str())) {
                Some(s) => Ok(*s),
                None => {
                    diags.push(Diagnostic::new(
                        Code::AnnotationReferenceInvalid,
                        Some(v.r.as_ref().clone()),
                        Some(annotation_field(&full)),
                        format!(
                            "`{key}` names Secret {namespace}/{}, which is not in the input; the routes answer 503",
                            name.name
                        ),
                    ));
                    Err(full)
                }
            }
        };
        if let Some(basic) = policy.auth.basic.as_mut() {
            match lookup("auth-secret", &basic.secret, diags) {
                Err(k) => failed.push(k),
                Ok(secret) => {
                    let users = match basic.secret_type {
                        SecretType::AuthFile => match secret.get("auth") {
                            Some(bytes) => parse_htpasswd(&String::from_utf8_lossy(bytes)),
                            None => {
                                Err("it has no `auth` key (auth-secret-type auth-file)".to_owned())
                            }
                        },
                        SecretType::AuthMap => {
                            let text: String = secret
                                .data
                                .keys()
                                .chain(secret.string_data.keys())
                                .filter_map(|user| {
                                    let hash = secret.get(user)?;
                                    Some(format!("{user}:{}\n", String::from_utf8_lossy(hash)))
                                })
                                .collect();
                            parse_htpasswd(&text)
                        }
                    };
                    match users {
                        Ok(u) if !u.is_empty() => basic.users = u,
                        Ok(_) | Err(_) => {
                            let why = users.err().unwrap_or_else(|| "it holds no user".to_owned());
                            let full = "nginx.ingress.kubernetes.io/auth-secret".to_owned();
                            diags.push(Diagnostic::new(
                            Code::AnnotationReferenceInvalid,
                            Some(v.r.as_ref().clone()),
                            Some(annotation_field(&full)),
                            format!(
                                "Secret {namespace}/{} cannot be used for basic authentication: {why}; the routes answer 503",
                                basic.secret.name
                            ),
                        ));
                            failed.push(full);
                        }
                    }
                }
            }
        }
        if let Some(digest) = policy.auth.digest.as_mut() {
            match lookup("auth-secret", &digest.secret, diags) {
                Err(k) => failed.push(k),
                Ok(secret) => {
                    let users = match digest.secret_type {
                        SecretType::AuthFile => match secret.get("auth") {
                            Some(bytes) => parse_htdigest(&String::from_utf8_lossy(bytes)),
                            None => {
                                Err("it has no `auth` key (auth-secret-type auth-file)".to_owned())
                            }
                        },
                        SecretType::AuthMap => {
                            let text: String = secret
                                .data
                                .keys()
                                .chain(secret.string_data.keys())
                                .filter_map(|user| {
                                    let hash = secret.get(user)?;
                                    Some(format!("{user}:{}\n", String::from_utf8_lossy(hash)))
                                })
                                .collect();
                            parse_htdigest(&text)
                        }
                    };
                    let realm = digest.realm.clone().unwrap_or_default();
                    let users = users.and_then(|u| {
                        let u: Vec<_> = u.into_iter().filter(|e| e.realm == realm).collect();
                        if u.is_empty() {
                            Err(format!("it holds no user of realm `{realm}` (auth-realm)"))
                        } else {
                            Ok(u)
                        }
                    });
                    match users {
                        Ok(u) => digest.users = u,
                        Err(why) => {
                            let full = "nginx.ingress.kubernetes.io/auth-secret".to_owned();
                            diags.push(Diagnostic::new(
                                Code::AnnotationReferenceInvalid,
                                Some(v.r.as_ref().clone()),
                                Some(annotation_field(&full)),
                                format!(
                                    "Secret {namespace}/{} cannot be used for digest authentication: {why}; the routes answer 503",
                                    digest.secret.name
                                ),
                            ));
                            failed.push(full);
                        }
                    }
                }
            }
        }
        if let Some(ca) = policy.client_tls.ca_secret.clone() {
            match lookup("auth-tls-secret", &ca, diags) {
                Err(k) => failed.push(k),
                Ok(secret) => {
                    let certs = secret
                        .get("ca.crt")
                        .ok_or_else(|| "it has no `ca.crt` key".to_owned())
                        .and_then(crate::auth::client_cert::read_ca);
                    match certs {
                        Ok(c) => policy.client_tls.ca_certificates = c,
                        Err(why) => {
                            let full = "nginx.ingress.kubernetes.io/auth-tls-secret".to_owned();
                            diags.push(Diagnostic::new(
                                Code::AnnotationReferenceInvalid,
                                Some(v.r.as_ref().clone()),
                                Some(annotation_field(&full)),
                                format!(
                                    "Secret {namespace}/{} cannot verify client certificates: {why}; the routes answer 503",
                                    ca.name
                                ),
                            ));
                            failed.push(full);
                        }
                    }
                }
            }
        }
        if let Some(name) = policy
            .backend
            .upstream_tls
            .as_ref()
            .and_then(|t| t.secret.clone())
        {
            match lookup("proxy-ssl-secret", &name, diags) {
                Err(k) => failed.push(k),
                Ok(secret) => match UpstreamTlsSecret::from_parts(
                    secret.get("tls.crt"),
                    secret.get("tls.key"),
                    secret.get("ca.crt"),
                ) {
                    Ok(parsed) => {
                        if let Some(t) = policy.backend.upstream_tls.as_mut() {
                            t.resolved = Some(parsed);
                        }
                    }
                    Err(why) => {
                        let full = "nginx.ingress.kubernetes.io/proxy-ssl-secret".to_owned();
                        diags.push(Diagnostic::new(
                            Code::AnnotationReferenceInvalid,
                            Some(v.r.as_ref().clone()),
                            Some(annotation_field(&full)),
                            format!(
                                "Secret {namespace}/{} cannot be used for TLS to the upstream: {why}; the routes answer 503",
                                name.name
                            ),
                        ));
                        failed.push(full);
                    }
                },
            }
        }
        if !failed.is_empty() {
            let fc = policy
                .fail_closed
                .get_or_insert_with(|| FailClosed { keys: Vec::new() });
            fc.keys.extend(failed);
            fc.keys.sort();
            fc.keys.dedup();
        }
        v.policy = Arc::new(policy);
    }
}
