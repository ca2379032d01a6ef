//! Checking the certificate and private key of a `kubernetes.io/tls` Secret.
//!
//! [`CertifiedKey::from_pem`] parses the Secret's `tls.crt` (a PEM certificate
//! chain, leaf first) and `tls.key` (a PEM private key) and checks them as far
//! as can be done without cryptography:
//!
//! - `tls.crt` holds at least one `CERTIFICATE` block, every block is valid
//!   base64 and every certificate is a well-formed X.509 certificate with no
//!   trailing bytes. Blocks of other types in `tls.crt` are skipped.
//! - The leaf's subjectAltName extension, if present, is well formed: its DNS
//!   names are ASCII and its IP addresses are 4 or 16 bytes long.
//! - `tls.key` holds an unencrypted `PRIVATE KEY` (PKCS#8), `RSA PRIVATE KEY`
//!   (PKCS#1) or `EC PRIVATE KEY` (SEC1) block; the first such block is used,
//!   and other blocks (a certificate, say) are skipped. Its outer DER structure
//!   is readable far enough to learn its algorithm.
//! - The key belongs with the leaf certificate, as far as the key itself says:
//!   the algorithm family (RSA, EC, Ed25519, Ed448) and the elliptic curve
//!   must agree with the leaf's public key, and where the key file carries its
//!   public half (the RSA modulus, which PKCS#1 always carries; the EC point,
//!   which OpenSSL, ring and most tools include; the Ed25519 public key of a
//!   PKCS#8 v2 key) that must equal the leaf's public key.
//!
//! Not checked: signatures (neither the chain's nor whether the private
//! scalar really matches the public half stored beside it), that the chain is
//! in issuer order or reaches a trusted root, key usages, and whether the data
//! plane supports the algorithm. The data plane's TLS library checks the key
//! when it loads it.
//!
//! Everything here is pure: no files, no clock (time is an argument), no
//! network, and no panics on any input.

use std::fmt;
use std::net::IpAddr;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

/// The Secret data key that holds the certificate chain.
const CRT_FILE: &str = "tls.crt";
/// The Secret data key that holds the private key.
const KEY_FILE: &str = "tls.key";

/// A certificate chain and private key from a TLS Secret, parsed and checked.
///
/// `Debug` never prints key material: the key shows only its format.
pub struct CertifiedKey {
    /// DER certificates, leaf first, as they appeared in tls.crt.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key in DER (PKCS#8, PKCS#1 or SEC1 as found).
    pub key: PrivateKeyDer<'static>,
    /// DNS names from the leaf's subjectAltName, lower-cased; may contain wildcards like "*.example.com".
    pub dns_names: Vec<String>,
    /// IP addresses from the leaf's subjectAltName.
    pub ip_addresses: Vec<IpAddr>,
    /// The leaf's subject common name, if any (the last one, if the subject has several).
    pub common_name: Option<String>,
    /// The leaf's notBefore, as Unix seconds.
    pub not_before: i64,
    /// The leaf's notAfter, as Unix seconds (the last second at which it is valid).
    pub not_after: i64,
}

impl Clone for CertifiedKey {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            dns_names: self.dns_names.clone(),
            ip_addresses: self.ip_addresses.clone(),
            common_name: self.common_name.clone(),
            not_before: self.not_before,
            not_after: self.not_after,
        }
    }
}

/// Errors found in a TLS Secret's `tls.crt` or `tls.key`.
///
/// Messages name the Secret key at fault and never contain key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// `tls.crt` has no `CERTIFICATE` block (it is empty, or not PEM).
    #[error(
        "tls.crt holds no PEM CERTIFICATE block; it must hold the server certificate \
         (\"-----BEGIN CERTIFICATE-----\"), then any intermediates"
    )]
    NoCertificate,
    /// `tls.crt` has a private key but no certificate: the two were likely swapped.
    #[error("tls.crt holds a private key but no certificate; are tls.crt and tls.key swapped?")]
    KeyInCertificateFile,
    /// A file is not well-formed PEM.
    #[error("{file} is not valid PEM: {reason}")]
    BadPem {
        /// `"tls.crt"` or `"tls.key"`.
        file: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A certificate in `tls.crt` is not a well-formed X.509 certificate.
    #[error("certificate #{} in tls.crt is invalid: {reason}", .index + 1)]
    BadCertificate {
        /// Position in `tls.crt`, 0 for the leaf (the message counts from 1).
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// `tls.key` has no private key block (it is empty, or not PEM).
    #[error(
        "tls.key holds no PEM private key; expected a \"PRIVATE KEY\", \"RSA PRIVATE KEY\" \
         or \"EC PRIVATE KEY\" block"
    )]
    NoKey,
    /// `tls.key` has a certificate but no private key: the two were likely swapped.
    #[error("tls.key holds a certificate but no private key; are tls.crt and tls.key swapped?")]
    CertificateInKeyFile,
    /// `tls.key` holds a passphrase-protected key, which a Secret cannot use.
    #[error(
        "tls.key holds an encrypted private key; TLS Secrets need it unencrypted \
         (e.g. `openssl pkey -in encrypted.key -out tls.key`)"
    )]
    EncryptedKey,
    /// The private key block decodes, but its DER structure is not a private key.
    #[error("the {format} private key in tls.key is malformed: {reason}")]
    BadKey {
        /// `"PKCS#8"`, `"PKCS#1"` or `"SEC1"`, from the PEM label.
        format: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The private key does not belong to the leaf (first) certificate.
    #[error("the private key in tls.key does not match the certificate in tls.crt: {reason}")]
    KeyMismatch {
        /// How they differ.
        reason: String,
    },
    /// The private key belongs to a later certificate in `tls.crt`, not the first.
    #[error(
        "the private key in tls.key belongs to certificate #{} in tls.crt, \
         not the first; tls.crt must start with the server certificate, followed by its \
         intermediates",
        .index + 1
    )]
    ChainOrder {
        /// Position in `tls.crt` of the certificate the key belongs to, from 0 (the message counts from 1).
        index: usize,
    },
}

impl CertifiedKey {
    /// Parse PEM `tls.crt` and `tls.key` bytes.
    ///
    /// See the [module documentation](self) for exactly what is checked.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        let chain = read_chain(cert_pem)?;
        let mut leaf_info = None;
        let mut spkis = Vec::with_capacity(chain.len());
        for (index, der) in chain.iter().enumerate() {
            let cert = parse_certificate(index, der)?;
            spkis.push(PublicInfo::from_spki(cert.tbs_certificate.subject_pki.raw));
            if index == 0 {
                leaf_info = Some(LeafInfo::from_certificate(&cert)?);
            }
        }
        let Some(leaf) = leaf_info else {
            return Err(TlsError::NoCertificate);
        };

        let key = read_key(key_pem)?;
        let key_info = PublicInfo::from_private_key(&key)?;
        check_key_matches(&key_info, &spkis)?;

        Ok(Self {
            chain,
            key,
            dns_names: leaf.dns_names,
            ip_addresses: leaf.ip_addresses,
            common_name: leaf.common_name,
            not_before: leaf.not_before,
            not_after: leaf.not_after,
        })
    }

    /// Whether the leaf certificate covers `host` (an already lower-cased DNS name, or a
    /// wildcard host pattern like "*.example.com" from an Ingress rule).
    ///
    /// The rules are those of RFC 6125 as browsers and Go's `VerifyHostname` apply them:
    ///
    /// - Names compare ASCII case-insensitively; one trailing dot on either side is ignored.
    /// - A certificate name `*.example.com` covers exactly one more left-most label
    ///   (`a.example.com`; not `example.com`, not `a.b.example.com`). A wildcard counts
    ///   only as the whole left-most label with at least two labels after it: names such
    ///   as `f*.example.com`, `a.*.example.com`, `*.com` or `*` cover nothing at all.
    /// - A wildcard `host` (`*.example.com`) is covered only by the identical wildcard
    ///   name, since a name for `a.example.com` does not cover every host it matches.
    /// - The names are the leaf's DNS subjectAltNames; only when it has none is the
    ///   subject common name used instead (legacy, as ingress-nginx does).
    /// - An IP-literal `host` (`10.0.0.1`, `::1` or `[::1]`) is covered only by an
    ///   IP subjectAltName; IPv4-mapped IPv6 addresses equal their IPv4 form.
    pub fn covers(&self, host: &str) -> bool {
        let host = strip_trailing_dot(host);
        if host.is_empty() {
            return false;
        }
        let literal = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = literal.parse::<IpAddr>() {
            let ip = ip.to_canonical();
            return self.ip_addresses.iter().any(|a| a.to_canonical() == ip);
        }
        let host = host.to_ascii_lowercase();
        if self.dns_names.is_empty() {
            self.common_name
                .as_deref()
                .is_some_and(|cn| name_covers(cn, &host))
        } else {
            self.dns_names.iter().any(|name| name_covers(name, &host))
        }
    }

    /// Whether the certificate is expired at `now_unix` (seconds).
    ///
    /// notAfter is inclusive (RFC 5280): the certificate is expired only once
    /// `now_unix` is past it. A certificate that is not yet valid (`now_unix`
    /// before [`not_before`](Self::not_before)) is not expired.
    pub fn is_expired_at(&self, now_unix: i64) -> bool {
        now_unix > self.not_after
    }

    /// Where the certificate stands at `now_unix` (seconds): expired, within
    /// [`EXPIRY_WARNING_SECS`] of its notAfter, or valid for longer.
    pub fn expiry_at(&self, now_unix: i64) -> Expiry {
        if self.is_expired_at(now_unix) {
            Expiry::Expired
        } else {
            let seconds_left = self.not_after.saturating_sub(now_unix);
            if seconds_left < EXPIRY_WARNING_SECS {
                Expiry::ExpiresSoon { seconds_left }
            } else {
                Expiry::Valid
            }
        }
    }
}

/// How close to its notAfter a certificate gets the `tls-certificate-expires-soon`
/// warning: 30 days (cert-manager renews 90-day certificates 30 days ahead, so a
/// certificate this close to expiry has missed its renewal).
pub const EXPIRY_WARNING_SECS: i64 = 30 * 24 * 3600;

/// A certificate's expiry at a given time ([`CertifiedKey::expiry_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Expiry {
    /// More than [`EXPIRY_WARNING_SECS`] left.
    Valid,
    /// Not expired, but less than [`EXPIRY_WARNING_SECS`] left.
    ExpiresSoon {
        /// Seconds until notAfter.
        seconds_left: i64,
    },
    /// Past notAfter.
    Expired,
}

/// The diagnostic for the certificate of Secret `secret` as served for `host` at
/// `now`: `tls-certificate-expired` once past its notAfter,
/// `tls-certificate-expires-soon` within [`EXPIRY_WARNING_SECS`] of it, else
/// `None`. `ingress` and `field` say where the Secret is named. Pure: the caller
/// supplies the clock (`CompileOptions::now`, or a data plane checking what it
/// serves).
pub fn expiry_diagnostic(
    cert: &CertifiedKey,
    secret: &crate::model::ObjectRef,
    host: &str,
    ingress: &crate::model::ObjectRef,
    field: Option<String>,
    now: crate::model::Timestamp,
) -> Option<crate::diagnostics::Diagnostic> {
    use crate::diagnostics::{Code, Diagnostic};
    let at = crate::model::Timestamp::from_unix(cert.not_after);
    let (code, message) = match cert.expiry_at(now.unix()) {
        Expiry::Valid => return None,
        Expiry::Expired => (
            Code::TlsCertificateExpired,
            format!("the certificate in Secret {secret} for {host} expired at {at}"),
        ),
        Expiry::ExpiresSoon { seconds_left } => (
            Code::TlsCertificateExpiresSoon,
            format!(
                "the certificate in Secret {secret} for {host} expires at {at}, in {} days (warned from 30 days before)",
                seconds_left / 86_400
            ),
        ),
    };
    Some(Diagnostic::new(code, Some(ingress.clone()), field, message))
}

impl fmt::Debug for CertifiedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertifiedKey")
            .field("chain_len", &self.chain.len())
            .field("key", &KeyFormat(&self.key))
            .field("dns_names", &self.dns_names)
            .field("ip_addresses", &self.ip_addresses)
            .field("common_name", &self.common_name)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish()
    }
}

/// Prints a private key's format and nothing of its bytes.
struct KeyFormat<'a>(&'a PrivateKeyDer<'static>);

impl fmt::Debug for KeyFormat<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} private key (redacted)", key_format(self.0))
    }
}

fn key_format(key: &PrivateKeyDer<'_>) -> &'static str {
    match key {
        PrivateKeyDer::Pkcs1(_) => "PKCS#1",
        PrivateKeyDer::Sec1(_) => "SEC1",
        PrivateKeyDer::Pkcs8(_) => "PKCS#8",
        // The enum is non-exhaustive.
        _ => "unknown",
    }
}

// ---------------------------------------------------------------------------
// PEM

fn read_chain(cert_pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let mut chain = Vec::new();
    for item in CertificateDer::pem_slice_iter(cert_pem) {
        chain.push(item.map_err(|e| bad_pem(CRT_FILE, &e))?);
    }
    if chain.is_empty() {
        if has_private_key_block(cert_pem) {
            return Err(TlsError::KeyInCertificateFile);
        }
        return Err(TlsError::NoCertificate);
    }
    Ok(chain)
}

fn read_key(key_pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    // Encrypted keys: PKCS#8 "ENCRYPTED PRIVATE KEY" blocks (which the PEM
    // reader skips as unknown) and legacy OpenSSL "Proc-Type: 4,ENCRYPTED"
    // headers (which it would report as bad base64).
    if contains(key_pem, b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || contains(key_pem, b"Proc-Type: 4,ENCRYPTED")
    {
        return Err(TlsError::EncryptedKey);
    }
    match PrivateKeyDer::from_pem_slice(key_pem) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => {
            if matches!(CertificateDer::pem_slice_iter(key_pem).next(), Some(Ok(_))) {
                Err(TlsError::CertificateInKeyFile)
            } else {
                Err(TlsError::NoKey)
            }
        }
        Err(e) => Err(bad_pem(KEY_FILE, &e)),
    }
}

fn has_private_key_block(pem_bytes: &[u8]) -> bool {
    matches!(PrivateKeyDer::pem_slice_iter(pem_bytes).next(), Some(Ok(_)))
        || contains(pem_bytes, b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Our own wording of a PEM error: never the error's `Display`, which could
/// quote decoded bytes.
fn bad_pem(file: &'static str, err: &pem::Error) -> TlsError {
    let reason = match err {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "the \"-----BEGIN {}-----\" block has no matching END line",
            short_text(end_marker)
        ),
        pem::Error::IllegalSectionStart { line } => {
            format!("malformed BEGIN line \"{}\"", short_text(line))
        }
        pem::Error::Base64Decode(_) => "a PEM block's body is not valid base64".to_owned(),
        pem::Error::SectionTooLarge => "a PEM block is larger than 256 MiB".to_owned(),
        _ => "unreadable PEM".to_owned(),
    };
    TlsError::BadPem { file, reason }
}

/// At most 64 characters of `bytes`, lossily decoded, without line breaks.
fn short_text(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_end_matches(['\r', '\n']);
    let mut out: String = text.chars().take(64).collect();
    if text.chars().nth(64).is_some() {
        out.push('…');
    }
    out
}

// ---------------------------------------------------------------------------
// X.509

fn parse_certificate(index: usize, der: &[u8]) -> Result<X509Certificate<'_>, TlsError> {
    let bad = |reason: String| TlsError::BadCertificate { index, reason };
    match X509Certificate::from_der(der) {
        Ok((rest, _)) if !rest.is_empty() => Err(bad(format!(
            "{} bytes of trailing data after the certificate",
            rest.len()
        ))),
        Ok((_, cert)) => Ok(cert),
        Err(x509_parser::nom::Err::Incomplete(_)) => Err(bad("the DER is truncated".to_owned())),
        Err(x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e)) => {
            Err(bad(format!("not a valid X.509 certificate ({e})")))
        }
    }
}

/// What [`CertifiedKey`] keeps from the leaf certificate.
struct LeafInfo {
    dns_names: Vec<String>,
    ip_addresses: Vec<IpAddr>,
    common_name: Option<String>,
    not_before: i64,
    not_after: i64,
}

impl LeafInfo {
    fn from_certificate(cert: &X509Certificate<'_>) -> Result<Self, TlsError> {
        let bad = |reason: String| TlsError::BadCertificate { index: 0, reason };
        let mut dns_names = Vec::new();
        let mut ip_addresses = Vec::new();
        let san = cert
            .subject_alternative_name()
            .map_err(|e| bad(format!("bad subjectAltName extension ({e})")))?;
        for name in san.iter().flat_map(|ext| ext.value.general_names.iter()) {
            match name {
                GeneralName::DNSName(dns) => dns_names.push(dns.to_ascii_lowercase()),
                GeneralName::IPAddress(bytes) => {
                    ip_addresses.push(ip_from_bytes(bytes).ok_or_else(|| {
                        bad(format!(
                            "subjectAltName has an IP address of {} bytes (must be 4 or 16)",
                            bytes.len()
                        ))
                    })?)
                }
                GeneralName::Invalid(tag, _) if tag.0 == 2 => {
                    return Err(bad(
                        "subjectAltName has a DNS name that is not ASCII text".to_owned()
                    ));
                }
                _ => {}
            }
        }
        // The last CN is the most specific one; one in an encoding we cannot
        // read (e.g. BMPString) is ignored.
        let common_name = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok())
            .last()
            .map(str::to_owned);
        let validity = cert.validity();
        Ok(Self {
            dns_names,
            ip_addresses,
            common_name,
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
        })
    }
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        Some(IpAddr::from(v4))
    } else if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
        Some(IpAddr::from(v6))
    } else {
        None
    }
}

// ---------------------------------------------------------------------------
// Host names

fn strip_trailing_dot(name: &str) -> &str {
    name.strip_suffix('.').unwrap_or(name)
}

/// Whether certificate name `pattern` covers the lower-cased, dot-stripped
/// `host` (see [`CertifiedKey::covers`]).
fn name_covers(pattern: &str, host: &str) -> bool {
    let pattern = strip_trailing_dot(pattern).to_ascii_lowercase();
    if !is_usable_pattern(&pattern) || host.is_empty() {
        return false;
    }
    if host.starts_with("*.") {
        // A wildcard Ingress host needs the identical wildcard name.
        return pattern == host;
    }
    if host.contains('*') {
        return false;
    }
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(first, rest)| !first.is_empty() && rest == suffix),
        None => pattern == host,
    }
}

/// A certificate name that can cover anything: no empty labels, and a `*`
/// only as the whole left-most label with at least two labels after it.
fn is_usable_pattern(pattern: &str) -> bool {
    let mut labels = pattern.split('.');
    let Some(first) = labels.next() else {
        return false;
    };
    let mut rest_count = 0usize;
    for label in labels {
        if label.is_empty() || label.contains('*') {
            return false;
        }
        rest_count += 1;
    }
    if first == "*" {
        rest_count >= 2
    } else {
        !first.is_empty() && !first.contains('*')
    }
}

// ---------------------------------------------------------------------------
// Key / certificate match

/// Algorithm OIDs (DER content bytes).
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_RSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const OID_ED448: &[u8] = &[0x2b, 0x65, 0x71];
/// Named-curve OIDs.
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];

/// DER tags used below.
const TAG_INTEGER: u8 = 0x02;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;
const TAG_CTX0: u8 = 0xa0;
const TAG_CTX1: u8 = 0xa1;
/// PKCS#8 v2 `[1] IMPLICIT BIT STRING` public key.
const TAG_CTX1_PRIMITIVE: u8 = 0x81;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Family {
    Rsa,
    Ec,
    Ed25519,
    Ed448,
    Other(Vec<u8>),
}

impl Family {
    fn from_oid(oid: &[u8]) -> Self {
        match oid {
            OID_RSA | OID_RSA_PSS => Self::Rsa,
            OID_EC => Self::Ec,
            OID_ED25519 => Self::Ed25519,
            OID_ED448 => Self::Ed448,
            other => Self::Other(other.to_vec()),
        }
    }

    /// A name that reads well after "an".
    fn describe(&self) -> &'static str {
        match self {
            Self::Rsa => "RSA",
            Self::Ec => "ECDSA",
            Self::Ed25519 => "Ed25519",
            Self::Ed448 => "Ed448",
            Self::Other(_) => "unrecognised",
        }
    }
}

fn curve_name(oid: &[u8]) -> &'static str {
    match oid {
        OID_P256 => "P-256",
        OID_P384 => "P-384",
        OID_P521 => "P-521",
        _ => "another curve",
    }
}

/// What can be learnt cheaply about a public key, from a certificate's
/// SubjectPublicKeyInfo or from a private key.
#[derive(Debug, Default)]
struct PublicInfo<'a> {
    /// `None` when the structure could not be read (certificates only).
    family: Option<Family>,
    /// Named curve OID, for EC keys.
    curve: Option<&'a [u8]>,
    /// RSA modulus without leading zeros, or EC / EdDSA public key bytes.
    public: Option<&'a [u8]>,
}

impl<'a> PublicInfo<'a> {
    /// From a DER SubjectPublicKeyInfo. Unreadable parts are left `None`.
    fn from_spki(spki: &'a [u8]) -> Self {
        Self::try_from_spki(spki).unwrap_or_default()
    }

    fn try_from_spki(spki: &'a [u8]) -> Option<Self> {
        let (body, _) = der_expect(spki, TAG_SEQUENCE)?;
        let (alg, rest) = der_expect(body, TAG_SEQUENCE)?;
        let (bits, _) = der_expect(rest, TAG_BIT_STRING)?;
        let key = bit_string_bytes(bits)?;
        let (oid, params) = der_expect(alg, TAG_OID)?;
        let family = Family::from_oid(oid);
        let mut info = Self {
            family: Some(family.clone()),
            ..Self::default()
        };
        match family {
            Family::Rsa => {
                let (rsa, _) = der_expect(key, TAG_SEQUENCE)?;
                let (modulus, _) = der_expect(rsa, TAG_INTEGER)?;
                info.public = Some(strip_leading_zeros(modulus));
            }
            Family::Ec => {
                info.curve = der_expect(params, TAG_OID).map(|(curve, _)| curve);
                info.public = Some(key);
            }
            Family::Ed25519 | Family::Ed448 => info.public = Some(key),
            Family::Other(_) => {}
        }
        Some(info)
    }

    /// From a private key; errors if its outer structure is unreadable.
    fn from_private_key(key: &'a PrivateKeyDer<'static>) -> Result<Self, TlsError> {
        let format = key_format(key);
        let bad = |reason: &str| TlsError::BadKey {
            format,
            reason: reason.to_owned(),
        };
        match key {
            PrivateKeyDer::Pkcs1(k) => {
                rsa_private(k.secret_pkcs1_der()).ok_or_else(|| bad("not an RSAPrivateKey"))
            }
            PrivateKeyDer::Sec1(k) => {
                ec_private(k.secret_sec1_der(), None).ok_or_else(|| bad("not an ECPrivateKey"))
            }
            PrivateKeyDer::Pkcs8(k) => pkcs8_private(k.secret_pkcs8_der()).map_err(bad),
            _ => Ok(Self::default()),
        }
    }
}

/// PKCS#1 `RSAPrivateKey ::= SEQUENCE { version, modulus, publicExponent, ... }`.
fn rsa_private(der: &[u8]) -> Option<PublicInfo<'_>> {
    let (body, _) = der_expect(der, TAG_SEQUENCE)?;
    let (_version, rest) = der_expect(body, TAG_INTEGER)?;
    let (modulus, rest) = der_expect(rest, TAG_INTEGER)?;
    der_expect(rest, TAG_INTEGER)?;
    Some(PublicInfo {
        family: Some(Family::Rsa),
        curve: None,
        public: Some(strip_leading_zeros(modulus)),
    })
}

/// SEC1 `ECPrivateKey ::= SEQUENCE { version, privateKey OCTET STRING,
/// [0] parameters OPTIONAL, [1] publicKey OPTIONAL }`. `curve` is the curve
/// already known from a PKCS#8 wrapper, if any.
fn ec_private<'a>(der: &'a [u8], curve: Option<&'a [u8]>) -> Option<PublicInfo<'a>> {
    let (body, _) = der_expect(der, TAG_SEQUENCE)?;
    let (_version, rest) = der_expect(body, TAG_INTEGER)?;
    let (_secret, mut rest) = der_expect(rest, TAG_OCTET_STRING)?;
    let mut info = PublicInfo {
        family: Some(Family::Ec),
        curve,
        public: None,
    };
    while let Some((tag, content, next)) = der_tlv(rest) {
        match tag {
            TAG_CTX0 => {
                if let Some((oid, _)) = der_expect(content, TAG_OID) {
                    info.curve = info.curve.or(Some(oid));
                }
            }
            TAG_CTX1 => {
                info.public = der_expect(content, TAG_BIT_STRING)
                    .and_then(|(bits, _)| bit_string_bytes(bits));
            }
            _ => {}
        }
        rest = next;
    }
    Some(info)
}

/// PKCS#8 `PrivateKeyInfo ::= SEQUENCE { version, AlgorithmIdentifier,
/// privateKey OCTET STRING, [0] attributes OPTIONAL, [1] publicKey OPTIONAL }`.
fn pkcs8_private(der: &[u8]) -> Result<PublicInfo<'_>, &'static str> {
    const NOT_PKCS8: &str = "not a PKCS#8 PrivateKeyInfo";
    let (body, _) = der_expect(der, TAG_SEQUENCE).ok_or(NOT_PKCS8)?;
    let (_version, rest) = der_expect(body, TAG_INTEGER).ok_or(NOT_PKCS8)?;
    let (alg, rest) = der_expect(rest, TAG_SEQUENCE).ok_or(NOT_PKCS8)?;
    let (secret, mut rest) = der_expect(rest, TAG_OCTET_STRING).ok_or(NOT_PKCS8)?;
    let (oid, params) = der_expect(alg, TAG_OID).ok_or(NOT_PKCS8)?;
    let family = Family::from_oid(oid);
    match family {
        Family::Rsa => rsa_private(secret).ok_or("the embedded RSA key is not an RSAPrivateKey"),
        Family::Ec => {
            let curve = der_expect(params, TAG_OID).map(|(curve, _)| curve);
            ec_private(secret, curve).ok_or("the embedded EC key is not an ECPrivateKey")
        }
        Family::Ed25519 | Family::Ed448 => {
            let mut public = None;
            while let Some((tag, content, next)) = der_tlv(rest) {
                if tag == TAG_CTX1_PRIMITIVE {
                    public = bit_string_bytes(content);
                }
                rest = next;
            }
            Ok(PublicInfo {
                family: Some(family),
                curve: None,
                public,
            })
        }
        Family::Other(_) => Ok(PublicInfo {
            family: Some(family),
            curve: None,
            public: None,
        }),
    }
}

/// Whether two keys are the same as far as `PublicInfo` can tell:
/// `Some(false)` only when they certainly differ.
fn same_key(cert: &PublicInfo<'_>, key: &PublicInfo<'_>) -> Result<Option<bool>, String> {
    let (Some(cert_family), Some(key_family)) = (&cert.family, &key.family) else {
        return Ok(None);
    };
    if cert_family != key_family {
        return Err(format!(
            "the certificate has an {} public key but tls.key holds an {} key",
            cert_family.describe(),
            key_family.describe()
        ));
    }
    if let (Some(c), Some(k)) = (cert.curve, key.curve)
        && c != k
    {
        return Err(format!(
            "the certificate's ECDSA key is on {} but tls.key's is on {}",
            curve_name(c),
            curve_name(k)
        ));
    }
    let (Some(c), Some(k)) = (cert.public, key.public) else {
        return Ok(None);
    };
    Ok(match cert_family {
        Family::Ec => ec_points_equal(c, k),
        _ => Some(c == k),
    })
}

fn check_key_matches(key: &PublicInfo<'_>, chain: &[PublicInfo<'_>]) -> Result<(), TlsError> {
    let Some(leaf) = chain.first() else {
        return Ok(());
    };
    let mismatch = match same_key(leaf, key) {
        Ok(Some(true) | None) => return Ok(()),
        Ok(Some(false)) => {
            "the certificate's public key is not the public half of this private key".to_owned()
        }
        Err(reason) => reason,
    };
    // A key for a later certificate means the chain is out of order.
    if let Some(index) = chain
        .iter()
        .enumerate()
        .skip(1)
        .find_map(|(i, info)| matches!(same_key(info, key), Ok(Some(true))).then_some(i))
    {
        return Err(TlsError::ChainOrder { index });
    }
    Err(TlsError::KeyMismatch { reason: mismatch })
}

/// Compare SEC1 points, allowing one to be compressed. `None` if unreadable.
fn ec_points_equal(a: &[u8], b: &[u8]) -> Option<bool> {
    let (&a_form, a_rest) = a.split_first()?;
    let (&b_form, b_rest) = b.split_first()?;
    let (x_y, form, x) = match (a_form, b_form) {
        (0x04, 0x04) => return Some(a == b),
        (0x02 | 0x03, 0x02 | 0x03) => return Some(a == b),
        (0x04, 0x02 | 0x03) => (a_rest, b_form, b_rest),
        (0x02 | 0x03, 0x04) => (b_rest, a_form, a_rest),
        _ => return None,
    };
    if x_y.len() != 2 * x.len() {
        return Some(false);
    }
    let (full_x, y) = x_y.split_at_checked(x.len())?;
    let y_odd = y.last().is_some_and(|last| last & 1 == 1);
    Some(full_x == x && y_odd == (form == 0x03))
}

fn strip_leading_zeros(int: &[u8]) -> &[u8] {
    let start = int.iter().position(|&b| b != 0).unwrap_or(int.len());
    int.get(start..).unwrap_or_default()
}

/// The bytes of a BIT STRING's content with no unused bits.
fn bit_string_bytes(content: &[u8]) -> Option<&[u8]> {
    match content.split_first() {
        Some((0, bytes)) => Some(bytes),
        _ => None,
    }
}

/// One DER element: `(tag, content, rest)`. Only single-byte tags and
/// definite lengths, which is all DER keys and SPKIs use.
fn der_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let mut len = 0usize;
        for _ in 0..count {
            let (&byte, next) = rest.split_first()?;
            len = len.checked_mul(256)?.checked_add(usize::from(byte))?;
            rest = next;
        }
        len
    };
    let (content, rest) = rest.split_at_checked(len)?;
    Some((tag, content, rest))
}

/// One DER element with the given tag: `(content, rest)`.
fn der_expect(input: &[u8], want: u8) -> Option<(&[u8], &[u8])> {
    match der_tlv(input)? {
        (tag, content, rest) if tag == want => Some((content, rest)),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
