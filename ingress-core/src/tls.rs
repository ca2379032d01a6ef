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
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PKCS_ECDSA_P256_SHA256,
        PKCS_ECDSA_P384_SHA384, PKCS_ED25519, PKCS_RSA_SHA256, PublicKeyData, SignatureAlgorithm,
        SigningKey,
    };
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// 2020-01-01T00:00:00Z and 2021-01-01T00:00:00Z.
    const Y2020: i64 = 1_577_836_800;
    const Y2021: i64 = 1_609_459_200;

    fn params(sans: &[&str]) -> CertificateParams {
        let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
        CertificateParams::new(sans).expect("valid SANs")
    }

    fn key_for(alg: &'static SignatureAlgorithm) -> KeyPair {
        KeyPair::generate_for(alg).expect("key generation")
    }

    /// A self-signed ECDSA P-256 certificate and its PKCS#8 key, as PEM.
    fn self_signed(params: &CertificateParams) -> (String, String) {
        let key = key_for(&PKCS_ECDSA_P256_SHA256);
        let cert = params.self_signed(&key).expect("self-signed");
        (cert.pem(), key.serialize_pem())
    }

    fn parse(cert: &str, key: &str) -> Result<CertifiedKey, TlsError> {
        CertifiedKey::from_pem(cert.as_bytes(), key.as_bytes())
    }

    fn parse_ok(cert: &str, key: &str) -> CertifiedKey {
        parse(cert, key).expect("valid certificate and key")
    }

    fn with_sans(sans: &[&str]) -> CertifiedKey {
        let (cert, key) = self_signed(&params(sans));
        parse_ok(&cert, &key)
    }

    // -- Hand-made DER and PEM, for key shapes rcgen with ring cannot make.

    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(u8::try_from(len).expect("short"));
        } else if len < 0x100 {
            out.extend([0x81, u8::try_from(len).expect("1 byte")]);
        } else {
            let len = u16::try_from(len).expect("2 bytes");
            out.push(0x82);
            out.extend(len.to_be_bytes());
        }
        out.extend_from_slice(content);
        out
    }

    fn pem_block(label: &str, der: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut b64 = String::new();
        for chunk in der.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
            for i in 0..4 {
                if i <= chunk.len() {
                    let index = usize::try_from((n >> (18 - 6 * i)) & 63).expect("6 bits");
                    b64.push(char::from(ALPHABET[index]));
                } else {
                    b64.push('=');
                }
            }
        }
        let mut out = format!("-----BEGIN {label}-----\n");
        for line in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).expect("ascii"));
            out.push('\n');
        }
        out.push_str(&format!("-----END {label}-----\n"));
        out
    }

    /// A toy RSA public key: structurally valid, cryptographically nothing.
    fn toy_modulus(seed: u8) -> Vec<u8> {
        let mut n = vec![0x00, 0xc1];
        n.extend((0..63).map(|i: u8| i.wrapping_mul(7).wrapping_add(seed)));
        n
    }

    fn rsa_public_key(modulus: &[u8]) -> Vec<u8> {
        let mut body = tlv(TAG_INTEGER, modulus);
        body.extend(tlv(TAG_INTEGER, &[0x01, 0x00, 0x01]));
        tlv(TAG_SEQUENCE, &body)
    }

    fn rsa_pkcs1_key(modulus: &[u8]) -> Vec<u8> {
        let mut body = tlv(TAG_INTEGER, &[0]);
        body.extend(tlv(TAG_INTEGER, modulus));
        body.extend(tlv(TAG_INTEGER, &[0x01, 0x00, 0x01]));
        for _ in 0..6 {
            body.extend(tlv(TAG_INTEGER, &[0x05]));
        }
        tlv(TAG_SEQUENCE, &body)
    }

    fn pkcs8_wrap(alg_oid: &[u8], params: &[u8], inner: &[u8]) -> Vec<u8> {
        let mut alg = tlv(TAG_OID, alg_oid);
        alg.extend_from_slice(params);
        let mut body = tlv(TAG_INTEGER, &[0]);
        body.extend(tlv(TAG_SEQUENCE, &alg));
        body.extend(tlv(TAG_OCTET_STRING, inner));
        tlv(TAG_SEQUENCE, &body)
    }

    /// Signs with a constant: x509-parser does not check signatures, so this
    /// gives a certificate with an RSA public key without generating RSA keys.
    struct ToyRsa(Vec<u8>);

    impl PublicKeyData for ToyRsa {
        fn der_bytes(&self) -> &[u8] {
            &self.0
        }
        fn algorithm(&self) -> &'static SignatureAlgorithm {
            &PKCS_RSA_SHA256
        }
    }

    impl SigningKey for ToyRsa {
        fn sign(&self, _msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
            Ok(vec![0x5a; 64])
        }
    }

    fn toy_rsa_cert(modulus: &[u8]) -> String {
        let key = ToyRsa(rsa_public_key(modulus));
        params(&["rsa.example.com"])
            .self_signed(&key)
            .expect("toy RSA certificate")
            .pem()
    }

    /// The SEC1 ECPrivateKey inside a PKCS#8 EC key.
    fn sec1_from_pkcs8(pkcs8: &[u8]) -> Vec<u8> {
        let (body, _) = der_expect(pkcs8, TAG_SEQUENCE).expect("sequence");
        let (_, rest) = der_expect(body, TAG_INTEGER).expect("version");
        let (_, rest) = der_expect(rest, TAG_SEQUENCE).expect("algorithm");
        let (inner, _) = der_expect(rest, TAG_OCTET_STRING).expect("private key");
        inner.to_vec()
    }

    // -- Parsing

    #[test]
    fn ecdsa_pair_parses_and_reports_sans() {
        let mut p = params(&["WWW.Example.COM", "*.apps.example.com", "10.0.0.1", "::1"]);
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, "Example Web");
        let (cert, key) = self_signed(&p);
        let ck = parse_ok(&cert, &key);
        assert_eq!(ck.chain.len(), 1);
        assert!(matches!(ck.key, PrivateKeyDer::Pkcs8(_)));
        assert_eq!(ck.dns_names, ["www.example.com", "*.apps.example.com"]);
        assert_eq!(
            ck.ip_addresses,
            [
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                IpAddr::V6(Ipv6Addr::LOCALHOST)
            ]
        );
        assert_eq!(ck.common_name.as_deref(), Some("Example Web"));
        assert!(ck.not_before < ck.not_after);

        // CRLF line endings, as files edited on Windows have, parse the same.
        let crlf = parse_ok(&cert.replace('\n', "\r\n"), &key.replace('\n', "\r\n"));
        assert_eq!(crlf.chain, ck.chain);
    }

    #[test]
    fn sec1_key_parses() {
        let key = key_for(&PKCS_ECDSA_P256_SHA256);
        let cert = params(&["a.example.com"]).self_signed(&key).expect("cert");
        let sec1 = pem_block("EC PRIVATE KEY", &sec1_from_pkcs8(&key.serialize_der()));
        let ck = parse_ok(&cert.pem(), &sec1);
        assert!(matches!(ck.key, PrivateKeyDer::Sec1(_)));
    }

    #[test]
    fn ed25519_pair_parses() {
        let key = key_for(&PKCS_ED25519);
        let cert = params(&["ed.example.com"]).self_signed(&key).expect("cert");
        let ck = parse_ok(&cert.pem(), &key.serialize_pem());
        assert!(ck.covers("ed.example.com"));
    }

    #[test]
    fn rsa_keys_in_pkcs1_and_pkcs8_match_rsa_certificate() {
        let modulus = toy_modulus(1);
        let cert = toy_rsa_cert(&modulus);
        let pkcs1 = rsa_pkcs1_key(&modulus);
        let ck = parse_ok(&cert, &pem_block("RSA PRIVATE KEY", &pkcs1));
        assert!(matches!(ck.key, PrivateKeyDer::Pkcs1(_)));
        assert_eq!(ck.dns_names, ["rsa.example.com"]);
        let pkcs8 = pkcs8_wrap(OID_RSA, &[0x05, 0x00], &pkcs1);
        let ck = parse_ok(&cert, &pem_block("PRIVATE KEY", &pkcs8));
        assert!(matches!(ck.key, PrivateKeyDer::Pkcs8(_)));
    }

    #[test]
    fn chain_keeps_order() {
        let ca_key = key_for(&PKCS_ECDSA_P256_SHA256);
        let mut ca_params = params(&[]);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA");
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = key_for(&PKCS_ECDSA_P256_SHA256);
        let leaf = params(&["leaf.example.com"])
            .signed_by(&leaf_key, &issuer)
            .expect("leaf");

        let crt = format!("{}{}", leaf.pem(), ca_cert.pem());
        let ck = parse_ok(&crt, &leaf_key.serialize_pem());
        assert_eq!(ck.chain, [leaf.der().clone(), ca_cert.der().clone()]);
        assert_eq!(ck.dns_names, ["leaf.example.com"]);

        // Intermediate first: the key belongs to the second certificate.
        let reversed = format!("{}{}", ca_cert.pem(), leaf.pem());
        assert_eq!(
            parse(&reversed, &leaf_key.serialize_pem()).err(),
            Some(TlsError::ChainOrder { index: 1 })
        );
    }

    #[test]
    fn clone_and_debug_do_not_leak_the_key() {
        let key = key_for(&PKCS_ECDSA_P256_SHA256);
        let cert = params(&["a.example.com"]).self_signed(&key).expect("cert");
        let ck = parse_ok(&cert.pem(), &key.serialize_pem());
        let copy = ck.clone();
        assert_eq!(copy.key.secret_der(), ck.key.secret_der());
        let debug = format!("{ck:?}");
        assert!(debug.contains("PKCS#8 private key (redacted)"), "{debug}");
        assert!(debug.contains("a.example.com"), "{debug}");
        let secret = key.serialize_der();
        assert!(!debug.contains(&format!("{secret:?}")));
        assert!(!debug.contains(&format!("{:?}", &secret[..8])[1..]));
    }

    // -- Host coverage

    #[test]
    fn coverage_table() {
        let ck = with_sans(&[
            "example.com",
            "*.example.com",
            "WWW.Other.ORG",
            "f*.partial.com",
            "a.*.inner.com",
            "*.com",
            "*",
        ]);
        let table: &[(&str, bool)] = &[
            // exact names, case-insensitive, trailing dot ignored
            ("example.com", true),
            ("EXAMPLE.com", true),
            ("example.com.", true),
            ("www.other.org", true),
            ("WWW.OTHER.ORG", true),
            ("other.org", false),
            ("example.org", false),
            ("", false),
            (".", false),
            // wildcard covers exactly one extra left-most label
            ("a.example.com", true),
            ("A.Example.Com", true),
            ("a.example.com.", true),
            ("a.b.example.com", false),
            (".example.com", false),
            ("aexample.com", false),
            // a wildcard host needs the identical wildcard name
            ("*.example.com", true),
            ("*.EXAMPLE.com", true),
            ("*.other.org", false),
            ("*.b.example.com", false),
            ("*", false),
            ("a*.example.com", false),
            // partial, inner and too-broad wildcards cover nothing
            ("foo.partial.com", false),
            ("f.partial.com", false),
            ("f*.partial.com", false),
            ("a.b.inner.com", false),
            ("a.*.inner.com", false),
            ("x.com", false),
            ("*.com", false),
            ("anything", false),
            // IPs are not DNS names
            ("10.0.0.1", false),
        ];
        for &(host, want) in table {
            assert_eq!(ck.covers(host), want, "covers({host:?})");
        }
    }

    #[test]
    fn wildcard_san_does_not_cover_wildcard_host_of_a_name() {
        let ck = with_sans(&["a.example.com"]);
        assert!(ck.covers("a.example.com"));
        assert!(!ck.covers("*.example.com"));
    }

    #[test]
    fn ip_hosts_use_ip_sans() {
        let ck = with_sans(&["10.0.0.1", "2001:db8::1", "ip.example.com"]);
        assert!(ck.covers("10.0.0.1"));
        assert!(ck.covers("2001:db8::1"));
        assert!(ck.covers("[2001:DB8::1]"));
        assert!(ck.covers("::ffff:10.0.0.1"));
        assert!(!ck.covers("10.0.0.2"));
        assert!(!ck.covers("::1"));
        assert!(ck.covers("ip.example.com"));
    }

    #[test]
    fn common_name_fallback_without_dns_sans() {
        let mut p = params(&[]);
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(DnType::CommonName, "*.Legacy.example.com");
        let ck = with_params(&p);
        assert!(ck.dns_names.is_empty());
        assert_eq!(ck.common_name.as_deref(), Some("*.Legacy.example.com"));
        assert!(ck.covers("a.legacy.example.com"));
        assert!(ck.covers("*.legacy.example.com"));
        assert!(!ck.covers("legacy.example.com"));
        assert!(!ck.covers("a.b.legacy.example.com"));

        // IP SANs alone do not stop the fallback.
        let mut p = params(&["10.0.0.1"]);
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(DnType::CommonName, "cn.example.com");
        let ck = with_params(&p);
        assert!(ck.covers("cn.example.com"));
        assert!(ck.covers("10.0.0.1"));
    }

    #[test]
    fn common_name_ignored_when_dns_sans_exist() {
        let mut p = params(&["san.example.com"]);
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(DnType::CommonName, "cn.example.com");
        let ck = with_params(&p);
        assert!(ck.covers("san.example.com"));
        assert!(!ck.covers("cn.example.com"));
    }

    #[test]
    fn no_names_covers_nothing() {
        let mut p = params(&[]);
        p.distinguished_name = rcgen::DistinguishedName::new();
        let ck = with_params(&p);
        assert_eq!(ck.common_name, None);
        assert!(!ck.covers("example.com"));
    }

    fn with_params(p: &CertificateParams) -> CertifiedKey {
        let (cert, key) = self_signed(p);
        parse_ok(&cert, &key)
    }

    // -- Expiry

    #[test]
    fn expiry_with_injected_time() {
        let mut p = params(&["a.example.com"]);
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let ck = with_params(&p);
        assert_eq!((ck.not_before, ck.not_after), (Y2020, Y2021));
        assert!(!ck.is_expired_at(Y2020 - 1));
        assert!(!ck.is_expired_at(Y2020 + 86_400));
        assert!(!ck.is_expired_at(Y2021));
        assert!(ck.is_expired_at(Y2021 + 1));
        assert!(ck.is_expired_at(i64::MAX));
    }

    // -- Errors

    #[test]
    fn empty_and_garbage_inputs() {
        let (cert, key) = self_signed(&params(&["a.example.com"]));
        assert_eq!(parse("", &key).err(), Some(TlsError::NoCertificate));
        assert_eq!(
            parse("not PEM at all\n\u{0}\u{1}", &key).err(),
            Some(TlsError::NoCertificate)
        );
        assert_eq!(parse(&cert, "").err(), Some(TlsError::NoKey));
        assert_eq!(parse(&cert, "garbage").err(), Some(TlsError::NoKey));
        let unrelated = pem_block("PUBLIC KEY", b"public");
        assert_eq!(parse(&cert, &unrelated).err(), Some(TlsError::NoKey));
    }

    #[test]
    fn bad_pem_is_reported_per_file() {
        let (cert, key) = self_signed(&params(&["a.example.com"]));
        let bad_base64 = "-----BEGIN CERTIFICATE-----\n@@@@\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            parse(bad_base64, &key),
            Err(TlsError::BadPem {
                file: "tls.crt",
                ..
            })
        ));
        let truncated = &cert[..cert.len() / 2];
        let err = parse(truncated, &key).err();
        assert!(
            matches!(&err, Some(TlsError::BadPem { file: "tls.crt", reason })
                if reason.contains("-----BEGIN CERTIFICATE-----")),
            "{err:?}"
        );
        let truncated_key = &key[..key.len() / 2];
        let err = parse(&cert, truncated_key).expect_err("error");
        assert!(
            matches!(
                &err,
                TlsError::BadPem {
                    file: "tls.key",
                    ..
                }
            ),
            "{err:?}"
        );
        // No key material in the message.
        let body = key.lines().nth(1).expect("base64 line");
        assert!(!err.to_string().contains(&body[..20]));
        let bad_key_base64 = "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n";
        assert!(matches!(
            parse(&cert, bad_key_base64),
            Err(TlsError::BadPem {
                file: "tls.key",
                ..
            })
        ));
    }

    #[test]
    fn bad_certificate_der() {
        let (cert, key) = self_signed(&params(&["a.example.com"]));
        let not_der = pem_block("CERTIFICATE", b"hello");
        assert!(matches!(
            parse(&not_der, &key),
            Err(TlsError::BadCertificate { index: 0, .. })
        ));
        let second_bad = format!("{cert}{not_der}");
        let err = parse(&second_bad, &key).expect_err("error");
        assert!(
            matches!(err, TlsError::BadCertificate { index: 1, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("certificate #2 in tls.crt"));
        let (_, der) = x509_parser::pem::parse_x509_pem(cert.as_bytes()).expect("pem");
        let mut trailing = der.contents.clone();
        trailing.extend([0, 0]);
        let err = parse(&pem_block("CERTIFICATE", &trailing), &key).err();
        assert!(
            matches!(&err, Some(TlsError::BadCertificate { index: 0, reason })
                if reason.contains("trailing")),
            "{err:?}"
        );
    }

    #[test]
    fn swapped_files() {
        let (cert, key) = self_signed(&params(&["a.example.com"]));
        assert_eq!(
            parse(&key, &key).err(),
            Some(TlsError::KeyInCertificateFile)
        );
        assert_eq!(
            parse(&cert, &cert).err(),
            Some(TlsError::CertificateInKeyFile)
        );
        assert_eq!(
            parse(&key, &cert).err(),
            Some(TlsError::KeyInCertificateFile)
        );
        // A certificate before the key in tls.key is fine.
        let both = format!("{cert}{key}");
        assert!(parse(&cert, &both).is_ok());
    }

    #[test]
    fn encrypted_keys() {
        let (cert, _) = self_signed(&params(&["a.example.com"]));
        let pkcs8 = pem_block("ENCRYPTED PRIVATE KEY", b"opaque");
        assert_eq!(parse(&cert, &pkcs8).err(), Some(TlsError::EncryptedKey));
        let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\
                      DEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\n\
                      AAAA\n-----END RSA PRIVATE KEY-----\n";
        assert_eq!(parse(&cert, legacy).err(), Some(TlsError::EncryptedKey));
    }

    #[test]
    fn malformed_key_der() {
        let (cert, _) = self_signed(&params(&["a.example.com"]));
        for (label, format) in [
            ("PRIVATE KEY", "PKCS#8"),
            ("RSA PRIVATE KEY", "PKCS#1"),
            ("EC PRIVATE KEY", "SEC1"),
        ] {
            let err = parse(&cert, &pem_block(label, b"hello")).err();
            assert!(
                matches!(err, Some(TlsError::BadKey { format: f, .. }) if f == format),
                "{label}: {err:?}"
            );
        }
    }

    #[test]
    fn key_mismatch() {
        let (cert, _) = self_signed(&params(&["a.example.com"]));
        let mismatch = |key: &str| match parse(&cert, key) {
            Err(TlsError::KeyMismatch { reason }) => reason,
            other => panic!("expected KeyMismatch, got {other:?}"),
        };

        // Same curve, different key.
        let other = key_for(&PKCS_ECDSA_P256_SHA256).serialize_pem();
        assert!(mismatch(&other).contains("public half"));
        // Different curve.
        let p384 = key_for(&PKCS_ECDSA_P384_SHA384).serialize_pem();
        let reason = mismatch(&p384);
        assert!(
            reason.contains("P-256") && reason.contains("P-384"),
            "{reason}"
        );
        // Different family: Ed25519 and RSA keys for an ECDSA certificate.
        let ed = key_for(&PKCS_ED25519).serialize_pem();
        assert!(mismatch(&ed).contains("Ed25519"));
        let rsa = pem_block("RSA PRIVATE KEY", &rsa_pkcs1_key(&toy_modulus(1)));
        let reason = mismatch(&rsa);
        assert!(
            reason.contains("an ECDSA public key") && reason.contains("an RSA key"),
            "{reason}"
        );

        // RSA certificate: another modulus, or an EC key.
        let rsa_cert = toy_rsa_cert(&toy_modulus(1));
        let other_rsa = pem_block("RSA PRIVATE KEY", &rsa_pkcs1_key(&toy_modulus(2)));
        assert!(matches!(
            parse(&rsa_cert, &other_rsa),
            Err(TlsError::KeyMismatch { .. })
        ));
        assert!(matches!(
            parse(&rsa_cert, &other),
            Err(TlsError::KeyMismatch { .. })
        ));
    }

    #[test]
    fn ec_point_forms() {
        let x = [1u8, 2, 3];
        let uncompressed_even = [4u8, 1, 2, 3, 9, 9, 8];
        let uncompressed_odd = [4u8, 1, 2, 3, 9, 9, 7];
        let compressed = |form: u8| [form, x[0], x[1], x[2]];
        assert_eq!(
            ec_points_equal(&uncompressed_even, &compressed(2)),
            Some(true)
        );
        assert_eq!(
            ec_points_equal(&compressed(3), &uncompressed_odd),
            Some(true)
        );
        assert_eq!(
            ec_points_equal(&uncompressed_even, &compressed(3)),
            Some(false)
        );
        assert_eq!(
            ec_points_equal(&uncompressed_even, &uncompressed_odd),
            Some(false)
        );
        assert_eq!(ec_points_equal(&[], &compressed(2)), None);
        assert_eq!(ec_points_equal(&[7, 1], &compressed(2)), None);
    }

    #[test]
    fn der_reader_rejects_truncation_and_odd_lengths() {
        assert_eq!(der_tlv(&[]), None);
        assert_eq!(der_tlv(&[0x30]), None);
        assert_eq!(der_tlv(&[0x30, 0x02, 0x00]), None);
        assert_eq!(der_tlv(&[0x30, 0x80, 0x00, 0x00]), None);
        assert_eq!(der_tlv(&[0x30, 0x85, 1, 1, 1, 1, 1]), None);
        assert_eq!(der_tlv(&[0x1f, 0x01, 0x00]), None);
        assert_eq!(
            der_tlv(&[0x04, 0x81, 0x01, 0xaa, 0xbb]),
            Some((0x04, &[0xaa][..], &[0xbb][..]))
        );
    }
}
