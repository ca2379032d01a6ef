//! Client certificates as nginx exposes them, and the request-time decision of
//! `auth-tls-verify-client`.
//!
//! nginx lets the TLS handshake finish whatever the certificate, then answers
//! the request: `on` without a certificate is 400 "No required SSL certificate
//! was sent"; a certificate that fails verification is 400 "The SSL certificate
//! error" (`on` and `optional`; `optional_no_ca` forgives an unknown issuer
//! only); `auth-tls-match-cn` not found in a subject CN is 403. [`gate`] is that
//! decision. The upstream gets `ssl-client-verify` (`SUCCESS`, `FAILED:<reason>`
//! or `NONE`), `ssl-client-subject-dn` and `ssl-client-issuer-dn` (RFC 2253, as
//! nginx's `$ssl_client_s_dn`) and, with `auth-tls-pass-certificate-to-upstream`,
//! `ssl-client-cert` (the PEM, URL-encoded as `$ssl_client_escaped_cert`).

use base64::Engine as _;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

use crate::annotations::ClientTlsPolicy;
use crate::annotations::client_tls::VerifyClient;

use super::external::escape_component;

/// Read the `ca.crt` of an `auth-tls-secret`: every `CERTIFICATE` block, each a
/// well-formed X.509 certificate. Errors never quote the input.
pub fn read_ca(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut out = Vec::new();
    for (i, c) in CertificateDer::pem_slice_iter(pem).enumerate() {
        let c = c.map_err(|e| format!("ca.crt is not valid PEM: {e}"))?;
        if X509Certificate::from_der(c.as_ref()).is_err() {
            return Err(format!(
                "certificate #{} in ca.crt is not a valid X.509 certificate",
                i + 1
            ));
        }
        out.push(c);
    }
    if out.is_empty() {
        return Err("ca.crt holds no PEM CERTIFICATE block".into());
    }
    Ok(out)
}

/// What the gateway tells about a client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate {
    /// The subject, RFC 2253 (`CN=client,O=Example`).
    pub subject_dn: String,
    /// The issuer, RFC 2253.
    pub issuer_dn: String,
    /// The subject's CN values.
    pub common_names: Vec<String>,
    /// The PEM, URL-encoded (nginx's `$ssl_client_escaped_cert`).
    pub escaped_pem: String,
}

impl PeerCertificate {
    /// Describe a DER certificate; `None` if it does not parse.
    pub fn from_der(der: &[u8]) -> Option<PeerCertificate> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let common_names = cert
            .subject()
            .iter_common_name()
            .filter_map(|a| a.as_str().ok().map(str::to_owned))
            .collect();
        Some(PeerCertificate {
            subject_dn: rfc2253(cert.subject()),
            issuer_dn: rfc2253(cert.issuer()),
            common_names,
            escaped_pem: escape_component(pem(der).as_bytes()),
        })
    }
}

/// A DER certificate as PEM (64-character lines).
pub fn pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.42" => "GN",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.2.840.113549.1.9.1" => "emailAddress",
        _ => return None,
    })
}

/// RFC 2253 text of a name, as OpenSSL's `XN_FLAG_RFC2253`: the last RDN first,
/// `,` between RDNs, `+` inside one; special characters escaped with `\`, bytes
/// outside printable ASCII as `\XX`.
pub fn rfc2253(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let oid = atv.attr_type().to_id_string();
                    match (short_name(&oid), atv.as_str()) {
                        (Some(n), Ok(v)) => format!("{n}={}", escape_value(v.as_bytes())),
                        (n, _) => {
                            let hex: String = atv
                                .attr_value()
                                .data
                                .iter()
                                .map(|b| format!("{b:02X}"))
                                .collect();
                            format!("{}=#{hex}", n.map_or(oid.clone(), str::to_owned))
                        }
                    }
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

fn escape_value(v: &[u8]) -> String {
    let mut out = String::new();
    for (i, &b) in v.iter().enumerate() {
        let edge = (i == 0 && (b == b' ' || b == b'#')) || (i + 1 == v.len() && b == b' ');
        if edge || b",+\"\\<>;".contains(&b) {
            out.push('\\');
            out.push(char::from(b));
        } else if (0x20..0x7f).contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\{b:02X}"));
        }
    }
    out
}

/// How a client certificate fared in verification against `auth-tls-secret`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// The client sent none.
    NoCertificate,
    /// It chains to the CA within `auth-tls-verify-depth`.
    Verified,
    /// It does not.
    Failed {
        /// Why (for `ssl-client-verify: FAILED:<reason>`).
        reason: String,
        /// The only fault is an issuer not in the CA (forgiven by
        /// `optional_no_ca`).
        unknown_issuer: bool,
    },
}

impl Verification {
    /// The `ssl-client-verify` value: `NONE`, `SUCCESS` or `FAILED:<reason>`.
    pub fn header_value(&self) -> String {
        match self {
            Verification::NoCertificate => "NONE".into(),
            Verification::Verified => "SUCCESS".into(),
            Verification::Failed { reason, .. } => format!("FAILED:{reason}"),
        }
    }
}

/// The request-time answer to a client-certificate check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Let the request through.
    Pass,
    /// 400 "No required SSL certificate was sent" (or the error page).
    NoCertificate,
    /// 400 "The SSL certificate error" (or the error page).
    CertificateError,
    /// 403: `auth-tls-match-cn` is not found in the certificate's CNs.
    CnMismatch,
}

/// What nginx does with a request on a connection whose certificate fared as `v`
/// (`common_names`: the certificate's subject CNs).
pub fn gate(policy: &ClientTlsPolicy, v: &Verification, common_names: &[String]) -> Gate {
    if !policy.requests_certificate() {
        return Gate::Pass;
    }
    match v {
        Verification::Failed { unknown_issuer, .. }
            if !(policy.verify == VerifyClient::OptionalNoCa && *unknown_issuer) =>
        {
            return Gate::CertificateError;
        }
        Verification::NoCertificate if policy.verify == VerifyClient::On => {
            return Gate::NoCertificate;
        }
        _ => {}
    }
    if policy.cn_matches(common_names.iter().map(String::as_str)) {
        Gate::Pass
    } else {
        Gate::CnMismatch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotations::test_util::run;

    fn policy(pairs: &[(&str, &str)]) -> ClientTlsPolicy {
        run(pairs).policy.client_tls
    }

    #[test]
    fn describes_a_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["client.test".into()]).expect("p");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Acme, Inc.");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "client one");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        let p = PeerCertificate::from_der(cert.der()).expect("parses");
        assert_eq!(p.subject_dn, "CN=client one,O=Acme\\, Inc.");
        assert_eq!(p.issuer_dn, p.subject_dn);
        assert_eq!(p.common_names, ["client one"]);
        assert!(
            p.escaped_pem
                .starts_with("-----BEGIN%20CERTIFICATE-----%0A")
        );
        assert!(!p.escaped_pem.contains(['\n', '+', '/', '=']));
        let ca = read_ca(cert.pem().as_bytes()).expect("ca");
        assert_eq!(ca.len(), 1);
        assert_eq!(pem(cert.der()), cert.pem().replace("\r\n", "\n"));
        assert!(read_ca(b"nothing").is_err());
        assert!(PeerCertificate::from_der(b"junk").is_none());
    }

    #[test]
    fn gate_as_nginx() {
        let failed = |unknown_issuer| Verification::Failed {
            reason: "x".into(),
            unknown_issuer,
        };
        let none: &[String] = &[];
        let cns = ["alice".to_owned()];
        let on = policy(&[("auth-tls-secret", "ca")]);
        assert_eq!(gate(&on, &Verification::Verified, &cns), Gate::Pass);
        assert_eq!(
            gate(&on, &Verification::NoCertificate, none),
            Gate::NoCertificate
        );
        assert_eq!(gate(&on, &failed(true), &cns), Gate::CertificateError);
        let opt = policy(&[
            ("auth-tls-secret", "ca"),
            ("auth-tls-verify-client", "optional"),
        ]);
        assert_eq!(gate(&opt, &Verification::NoCertificate, none), Gate::Pass);
        assert_eq!(gate(&opt, &failed(true), &cns), Gate::CertificateError);
        let no_ca = policy(&[
            ("auth-tls-secret", "ca"),
            ("auth-tls-verify-client", "optional_no_ca"),
        ]);
        assert_eq!(gate(&no_ca, &failed(true), &cns), Gate::Pass);
        assert_eq!(gate(&no_ca, &failed(false), &cns), Gate::CertificateError);
        assert_eq!(gate(&no_ca, &Verification::NoCertificate, none), Gate::Pass);
        let off = policy(&[("auth-tls-secret", "ca"), ("auth-tls-verify-client", "off")]);
        assert_eq!(gate(&off, &Verification::NoCertificate, none), Gate::Pass);
        let cn = policy(&[("auth-tls-secret", "ca"), ("auth-tls-match-cn", "CN=^ali")]);
        assert_eq!(gate(&cn, &Verification::Verified, &cns), Gate::Pass);
        let bob = ["bob".to_owned()];
        assert_eq!(gate(&cn, &Verification::Verified, &bob), Gate::CnMismatch);
        assert_eq!(Verification::Verified.header_value(), "SUCCESS");
        assert_eq!(Verification::NoCertificate.header_value(), "NONE");
        assert_eq!(failed(false).header_value(), "FAILED:x");
    }
}
