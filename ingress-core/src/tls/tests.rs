//! Tests of TLS Secret parsing and host coverage.

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
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
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
    // Within 30 days of notAfter: expires soon; at it: still soon; past it: expired.
    let day = 86_400;
    assert_eq!(ck.expiry_at(Y2021 - 31 * day), Expiry::Valid);
    assert_eq!(ck.expiry_at(Y2021 - 30 * day), Expiry::Valid);
    assert_eq!(
        ck.expiry_at(Y2021 - 30 * day + 1),
        Expiry::ExpiresSoon {
            seconds_left: 30 * day - 1
        }
    );
    assert_eq!(ck.expiry_at(Y2021), Expiry::ExpiresSoon { seconds_left: 0 });
    assert_eq!(ck.expiry_at(Y2021 + 1), Expiry::Expired);
    assert_eq!(ck.expiry_at(i64::MIN), Expiry::Valid);
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
