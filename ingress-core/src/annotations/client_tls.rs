//! The `client-tls` family: client-certificate (mutual TLS) authentication and the
//! downstream TLS knobs of a host.
//!
//! Every key here is host-scoped: it applies to every path of the host, across
//! Ingresses, and Ingresses of one host that set different values conflict (the
//! oldest wins, the others are diagnosed by the compile step).
//!
//! Client certificates (`auth-tls-*`, security controls): with `auth-tls-secret`
//! the gateway asks for a client certificate and verifies it against the secret's
//! `ca.crt`. With `verify: on` a request without a valid certificate is answered
//! 400 (or a 302 to `auth-tls-error-page`); `optional` lets requests without a
//! certificate through (an invalid one is still 400); `optional_no_ca` also lets a
//! certificate of an unknown issuer through (for the upstream to decide from
//! `ssl-client-verify`; other faults, such as expiry, are 400); `off` does not ask. A certificate
//! whose subject CN does not match `auth-tls-match-cn` is answered 403, as is a
//! request with no certificate at all when a CN rule exists.
//!
//! Downstream TLS: the gateway offers TLS 1.2 and 1.3 only (rustls); the TLS 1.2
//! cipher suites it offers are the six ECDHE AEAD suites of [`CipherSuite`].

use crate::diagnostics::Code;

use super::spec::{Prefixes, Risk, Scope, Support};
use super::values::{self, ObjectName, Pattern, Url};
use super::{AnnotationFamily, Cx, Family, IngressPolicy, KeySpec};

/// `auth-tls-verify-client`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum VerifyClient {
    /// A valid client certificate is required (400 otherwise).
    #[default]
    On,
    /// No client certificate is asked for.
    Off,
    /// A certificate is asked for and verified if sent; requests without one pass.
    Optional,
    /// A certificate is asked for; one of an unknown issuer passes (for the
    /// upstream to check), other verification faults do not.
    OptionalNoCa,
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    /// TLS 1.0 (not offered by the gateway).
    Tls10,
    /// TLS 1.1 (not offered by the gateway).
    Tls11,
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl TlsVersion {
    /// The lowest version the gateway offers.
    pub const MIN_OFFERED: TlsVersion = TlsVersion::Tls12;

    /// The nginx/Envoy spelling (`TLSv1.2`).
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls10 => "TLSv1.0",
            TlsVersion::Tls11 => "TLSv1.1",
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        }
    }
}

/// `TLSv1`, `TLSv1.0`, `TLSv1.1`, `TLSv1.2` or `TLSv1.3` (ASCII case-insensitive).
pub fn tls_version(s: &str) -> Result<TlsVersion, values::Invalid> {
    let all = [
        TlsVersion::Tls10,
        TlsVersion::Tls10,
        TlsVersion::Tls11,
        TlsVersion::Tls12,
        TlsVersion::Tls13,
    ];
    let i = values::one_of(s, &["TLSv1", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"])?;
    Ok(all[i])
}

/// A TLS 1.2 cipher suite the gateway offers (TLS 1.3 suites are not configurable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CipherSuite {
    /// `ECDHE-ECDSA-AES128-GCM-SHA256`.
    EcdheEcdsaAes128GcmSha256,
    /// `ECDHE-ECDSA-AES256-GCM-SHA384`.
    EcdheEcdsaAes256GcmSha384,
    /// `ECDHE-ECDSA-CHACHA20-POLY1305`.
    EcdheEcdsaChacha20Poly1305,
    /// `ECDHE-RSA-AES128-GCM-SHA256`.
    EcdheRsaAes128GcmSha256,
    /// `ECDHE-RSA-AES256-GCM-SHA384`.
    EcdheRsaAes256GcmSha384,
    /// `ECDHE-RSA-CHACHA20-POLY1305`.
    EcdheRsaChacha20Poly1305,
}

impl CipherSuite {
    /// Every suite, in the gateway's default order.
    pub const ALL: [CipherSuite; 6] = [
        CipherSuite::EcdheEcdsaAes256GcmSha384,
        CipherSuite::EcdheEcdsaAes128GcmSha256,
        CipherSuite::EcdheEcdsaChacha20Poly1305,
        CipherSuite::EcdheRsaAes256GcmSha384,
        CipherSuite::EcdheRsaAes128GcmSha256,
        CipherSuite::EcdheRsaChacha20Poly1305,
    ];

    /// The OpenSSL name.
    pub fn openssl_name(self) -> &'static str {
        match self {
            CipherSuite::EcdheEcdsaAes128GcmSha256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
            CipherSuite::EcdheEcdsaAes256GcmSha384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
            CipherSuite::EcdheEcdsaChacha20Poly1305 => "ECDHE-ECDSA-CHACHA20-POLY1305",
            CipherSuite::EcdheRsaAes128GcmSha256 => "ECDHE-RSA-AES128-GCM-SHA256",
            CipherSuite::EcdheRsaAes256GcmSha384 => "ECDHE-RSA-AES256-GCM-SHA384",
            CipherSuite::EcdheRsaChacha20Poly1305 => "ECDHE-RSA-CHACHA20-POLY1305",
        }
    }

    /// The IANA name (as rustls spells it).
    pub fn iana_name(self) -> &'static str {
        match self {
            CipherSuite::EcdheEcdsaAes128GcmSha256 => "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            CipherSuite::EcdheEcdsaAes256GcmSha384 => "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            CipherSuite::EcdheEcdsaChacha20Poly1305 => {
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
            }
            CipherSuite::EcdheRsaAes128GcmSha256 => "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            CipherSuite::EcdheRsaAes256GcmSha384 => "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            CipherSuite::EcdheRsaChacha20Poly1305 => "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        }
    }
}

/// A cipher list: the suites it names that the gateway offers (in the order written,
/// deduplicated) and the entries it drops (OpenSSL aliases such as `HIGH`,
/// exclusions such as `!aNULL`, suites the gateway does not offer).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct CipherList {
    /// Offered suites named by the list.
    pub suites: Vec<CipherSuite>,
    /// Entries without effect.
    pub dropped: Vec<String>,
}

/// Parse an OpenSSL-style cipher list (`:`, `,` or space separated; OpenSSL or
/// IANA names).
pub fn cipher_list(s: &str) -> Result<CipherList, values::Invalid> {
    if let Some(bad) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "+:_!@=.,- ".contains(*c)))
    {
        return Err(format!("`{bad}` is not allowed in a cipher list"));
    }
    let mut out = CipherList::default();
    for item in s.split([':', ',', ' ']).filter(|i| !i.is_empty()) {
        let found = CipherSuite::ALL.iter().copied().find(|c| {
            c.openssl_name().eq_ignore_ascii_case(item) || c.iana_name().eq_ignore_ascii_case(item)
        });
        match found {
            Some(c) if !out.suites.contains(&c) => out.suites.push(c),
            Some(_) => {}
            None => out.dropped.push(item.to_string()),
        }
    }
    if out.suites.is_empty() && out.dropped.is_empty() {
        return Err("expected a cipher list".into());
    }
    Ok(out)
}

/// Where a failed client-certificate check sends the client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorPage {
    /// An absolute http(s) URL: 302 to it.
    Url(Url),
    /// A path on the same host: 302 to it.
    Path(String),
}

/// Parse `auth-tls-error-page`.
pub fn error_page(s: &str) -> Result<ErrorPage, values::Invalid> {
    if s.starts_with('@') {
        return Err(
            "named nginx locations (`@name`) do not exist here; use a URL or a path".into(),
        );
    }
    if s.starts_with('/') {
        return values::path(s, true).map(ErrorPage::Path);
    }
    if !(s.starts_with("http://") || s.starts_with("https://")) {
        return Err(
            "expected an absolute http(s) URL or a path starting with `/` (a scheme-less `host/path` is ambiguous: add https://)".into(),
        );
    }
    values::url(s).map(ErrorPage::Url)
}

/// Parse `auth-tls-match-cn`: exactly `CN=` followed by a non-empty regex.
pub fn match_cn(s: &str) -> Result<Pattern, values::Invalid> {
    let re = s
        .strip_prefix("CN=")
        .ok_or_else(|| "expected `CN=` followed by a regex".to_string())?;
    if re.is_empty() {
        return Err("expected a regex after `CN=`".into());
    }
    values::regex(re, false).map(Pattern)
}

/// Client certificates and downstream TLS of a host, as one Ingress sets them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientTlsPolicy {
    /// `auth-tls-secret`: the Secret whose `ca.crt` verifies client certificates.
    /// Client-certificate authentication is on when this is set. The compile step
    /// resolves it (and refuses another namespace unless allowed).
    pub ca_secret: Option<ObjectName>,
    /// The certificates of the secret's `ca.crt` (DER), read by the compile step.
    /// Empty until compiled; a Secret that is missing or holds no usable
    /// certificate fails the routes closed.
    pub ca_certificates: Vec<rustls_pki_types::CertificateDer<'static>>,
    /// `auth-tls-verify-client` (default on).
    pub verify: VerifyClient,
    /// `auth-tls-verify-depth` (default 1): the most certificates a client's chain
    /// may hold above its own.
    pub verify_depth: u8,
    /// `auth-tls-error-page`: where a failed check is redirected (else 400).
    pub error_page: Option<ErrorPage>,
    /// `auth-tls-pass-certificate-to-upstream`: send the URL-encoded PEM in
    /// `ssl-client-cert` (`ssl-client-verify`, `ssl-client-subject-dn` and
    /// `ssl-client-issuer-dn` are always sent when client certificates are on).
    pub pass_certificate: bool,
    /// `auth-tls-match-cn`: the regex after `CN=`, searched (unanchored,
    /// case-sensitive) in each CN of the certificate subject; no match: 403.
    pub match_cn: Option<Pattern>,
    /// `tls-min-protocol-version`, as written.
    pub min_version: Option<TlsVersion>,
    /// `tls-max-protocol-version`, as written.
    pub max_version: Option<TlsVersion>,
    /// `ssl-ciphers` (or Higress `ssl-cipher`): TLS 1.2 suites in preference
    /// order. Empty: the gateway's default list.
    pub ciphers: Vec<CipherSuite>,
    /// `ssl-prefer-server-ciphers`: the server's order wins. `None`: the default.
    pub prefer_server_ciphers: Option<bool>,
}

impl Default for ClientTlsPolicy {
    fn default() -> Self {
        ClientTlsPolicy {
            ca_secret: None,
            ca_certificates: Vec::new(),
            verify: VerifyClient::On,
            verify_depth: 1,
            error_page: None,
            pass_certificate: false,
            match_cn: None,
            min_version: None,
            max_version: None,
            ciphers: Vec::new(),
            prefer_server_ciphers: None,
        }
    }
}

impl ClientTlsPolicy {
    /// Whether the gateway asks clients of the host for a certificate.
    pub fn requests_certificate(&self) -> bool {
        self.ca_secret.is_some() && self.verify != VerifyClient::Off
    }

    /// The versions offered, lowest and highest (TLS 1.2 and 1.3 at most).
    pub fn versions(&self) -> (TlsVersion, TlsVersion) {
        let lo = self
            .min_version
            .unwrap_or(TlsVersion::MIN_OFFERED)
            .max(TlsVersion::MIN_OFFERED);
        let hi = self.max_version.unwrap_or(TlsVersion::Tls13).max(lo);
        (lo, hi)
    }

    /// Whether a certificate with these subject CN values passes `match_cn`
    /// (always true without a rule; false for no certificate when there is one).
    pub fn cn_matches<'c>(&self, common_names: impl IntoIterator<Item = &'c str>) -> bool {
        match &self.match_cn {
            None => true,
            Some(p) => common_names.into_iter().any(|cn| p.0.is_match(cn)),
        }
    }
}

const SECRET: KeySpec = KeySpec::new("auth-tls-secret", Family::ClientTls)
    .grammar("`namespace/name` or `name` of a Secret with `ca.crt`")
    .doc("Ask clients of the host for a certificate and verify it against the secret's `ca.crt`; without a valid one the answer is 400 (or auth-tls-error-page).")
    .scope(Scope::Host)
    .risk(Risk::Medium)
    .security();
const VERIFY: KeySpec = KeySpec::new("auth-tls-verify-client", Family::ClientTls)
    .grammar("`on`, `off`, `optional` or `optional_no_ca`")
    .default("on")
    .doc("on: a valid certificate is required (400 otherwise); optional: verified if sent (400 if invalid); optional_no_ca: verified if sent, but an unknown issuer is let through (ssl-client-verify tells the upstream); off: not asked for.")
    .scope(Scope::Host)
    .security();
const DEPTH: KeySpec = KeySpec::new("auth-tls-verify-depth", Family::ClientTls)
    .grammar("whole number 0..255 (0 reads as 1, as in ingress-nginx)")
    .default("1")
    .doc("How deep the chain may be, counted as OpenSSL does: the verified path holds at most depth - 1 intermediates between the client certificate and a CA of the secret.")
    .scope(Scope::Host)
    .security();
const ERROR_PAGE: KeySpec = KeySpec::new("auth-tls-error-page", Family::ClientTls)
    .grammar("absolute http(s) URL or a path")
    .doc("A failed client-certificate check answers 302 to this URL or path instead of 400.")
    .scope(Scope::Host)
    .risk(Risk::High)
    .security();
const PASS_CERT: KeySpec = KeySpec::new("auth-tls-pass-certificate-to-upstream", Family::ClientTls)
    .grammar("boolean")
    .default("false")
    .doc("Send the client certificate upstream as URL-encoded PEM in `ssl-client-cert`.")
    .scope(Scope::Host)
    .security();
const MATCH_CN: KeySpec = KeySpec::new("auth-tls-match-cn", Family::ClientTls)
    .grammar("`CN=` then a regex (linear-time engine)")
    .doc("The regex after `CN=` must be found in a CN of the client certificate's subject, else 403. Without auth-tls-secret the routes fail closed.")
    .scope(Scope::Host)
    .risk(Risk::High)
    .support(Support::Partial("matched against the certificate's CN values, not the whole subject DN text: another attribute holding `CN=...` cannot satisfy it"))
    .security();
const SSL_CIPHERS: KeySpec = KeySpec::new("ssl-ciphers", Family::ClientTls)
    .grammar("OpenSSL cipher list (`:`-separated names)")
    .default("the gateway's list")
    .doc("TLS 1.2 cipher suites offered for the host, in order.")
    .scope(Scope::Host)
    .support(Support::Partial("only the ECDHE AEAD suites the gateway offers count, in the order written; OpenSSL aliases (HIGH, !aNULL, @STRENGTH) and other suites are dropped; TLS 1.3 is not affected"));
const PREFER_SERVER: KeySpec = KeySpec::new("ssl-prefer-server-ciphers", Family::ClientTls)
    .grammar("boolean")
    .default("the gateway's setting")
    .doc("The server's cipher order wins over the client's.")
    .scope(Scope::Host);
const MIN_VERSION: KeySpec = KeySpec::new("tls-min-protocol-version", Family::ClientTls)
    .grammar("`TLSv1.0`, `TLSv1.1`, `TLSv1.2` or `TLSv1.3`")
    .default("TLSv1.2")
    .doc("Lowest TLS version for the host. The gateway offers TLS 1.2 and 1.3 only: a lower minimum acts as TLSv1.2 (reported).")
    .scope(Scope::Host)
    .prefixes(Prefixes::ExtensionAndNginx);
const MAX_VERSION: KeySpec = KeySpec::new("tls-max-protocol-version", Family::ClientTls)
    .grammar("`TLSv1.2` or `TLSv1.3` (`TLSv1.0`, `TLSv1.1` are invalid here)")
    .default("TLSv1.3")
    .doc("Highest TLS version for the host; below the minimum is invalid.")
    .scope(Scope::Host)
    .prefixes(Prefixes::ExtensionAndNginx);
const SSL_CIPHER: KeySpec = KeySpec::new("ssl-cipher", Family::ClientTls)
    .grammar("`:`-separated cipher names")
    .default("the gateway's list")
    .doc("Higress spelling of ssl-ciphers (ssl-ciphers wins when both are set).")
    .scope(Scope::Host)
    .prefixes(Prefixes::ExtensionAndNginx)
    .support(Support::Partial("only the ECDHE AEAD suites the gateway offers count; other names are dropped, as Higress drops invalid ones"));

static KEYS: &[KeySpec] = &[
    SECRET,
    VERIFY,
    DEPTH,
    ERROR_PAGE,
    PASS_CERT,
    MATCH_CN,
    SSL_CIPHERS,
    PREFER_SERVER,
    MIN_VERSION,
    MAX_VERSION,
    SSL_CIPHER,
];

/// The family.
#[derive(Debug)]
pub(crate) struct ClientTls;

fn verify_client(s: &str) -> Result<VerifyClient, values::Invalid> {
    let all = [
        VerifyClient::On,
        VerifyClient::Off,
        VerifyClient::Optional,
        VerifyClient::OptionalNoCa,
    ];
    Ok(all[values::one_of(s, &["on", "off", "optional", "optional_no_ca"])?])
}

impl AnnotationFamily for ClientTls {
    fn family(&self) -> Family {
        Family::ClientTls
    }
    fn keys(&self) -> &'static [KeySpec] {
        KEYS
    }
    fn parse(&self, cx: &mut Cx<'_>, policy: &mut IngressPolicy) {
        let mut p = ClientTlsPolicy {
            ca_secret: cx.parse(&KEYS[0], values::object_ref),
            ..ClientTlsPolicy::default()
        };
        let secret_present = cx.any_present(&KEYS[..1]);
        p.verify = cx.parse(&KEYS[1], verify_client).unwrap_or_default();
        // ingress-nginx reads 0 as the default 1.
        p.verify_depth = cx
            .parse(&KEYS[2], |s| values::uint_max(s, 255))
            .map_or(1, |n| (n as u8).max(1));
        if let Some(raw) = cx.take(&KEYS[3]) {
            match error_page(raw.value) {
                Ok(page) => {
                    if matches!(page, ErrorPage::Path(_)) {
                        cx.report(
                            Code::AnnotationPartial,
                            raw.key,
                            format!("`{}`: a path is answered with a 302 to it on the same host, where nginx serves it by an internal redirect", raw.key),
                        );
                    }
                    p.error_page = Some(page);
                }
                Err(why) => cx.invalid(&raw, &why),
            }
        }
        p.pass_certificate = cx.boolean(&KEYS[4]).unwrap_or(false);
        let cn = cx.take(&KEYS[5]);
        if let Some(raw) = cn {
            match match_cn(raw.value) {
                Ok(re) => p.match_cn = Some(re),
                Err(why) => cx.invalid(&raw, &why),
            }
            if !secret_present {
                cx.report(
                    Code::AnnotationUnenforceable,
                    raw.key,
                    format!("`{}` needs auth-tls-secret (no client certificate is asked for without it); the routes answer 503 rather than serve without the CN check", raw.key),
                );
                cx.fail_closed(raw.key);
            }
        }
        if !secret_present {
            for k in &KEYS[1..5] {
                if cx.any_present(std::slice::from_ref(k)) {
                    cx.report(
                        Code::AnnotationIgnored,
                        k.name,
                        format!("`{}` has no effect without auth-tls-secret", k.name),
                    );
                }
            }
        }

        let nginx_ciphers = cx.take(&KEYS[6]);
        p.prefer_server_ciphers = cx.boolean(&KEYS[7]);
        let min_raw = cx.take(&KEYS[8]);
        let max_raw = cx.take(&KEYS[9]);
        let higress_ciphers = cx.take(&KEYS[10]);
        if let Some(raw) = min_raw {
            match tls_version(raw.value) {
                Ok(v) => {
                    if v < TlsVersion::MIN_OFFERED {
                        cx.report(
                            Code::AnnotationPartial,
                            raw.key,
                            format!(
                                "`{}`: the gateway does not offer {}; the minimum is TLSv1.2",
                                raw.key,
                                v.as_str()
                            ),
                        );
                    }
                    p.min_version = Some(v);
                }
                Err(why) => cx.invalid(&raw, &why),
            }
        }
        if let Some(raw) = max_raw {
            match tls_version(raw.value) {
                Ok(v) if v < TlsVersion::MIN_OFFERED => cx.invalid(
                    &raw,
                    "the gateway offers only TLSv1.2 and TLSv1.3; this maximum leaves no version",
                ),
                Ok(v) if p.min_version.is_some_and(|m| m > v) => {
                    cx.invalid(&raw, "the maximum is below tls-min-protocol-version")
                }
                Ok(v) => p.max_version = Some(v),
                Err(why) => cx.invalid(&raw, &why),
            }
        }
        if let (Some(_), Some(raw)) = (nginx_ciphers, higress_ciphers) {
            cx.report(
                Code::AnnotationIgnored,
                raw.key,
                format!("`{}` is ignored because ssl-ciphers is set", raw.key),
            );
        }
        let ciphers = nginx_ciphers.or(higress_ciphers).and_then(|raw| {
            cipher_list(raw.value)
                .map_err(|why| cx.invalid(&raw, &why))
                .ok()
                .map(|list| (raw.key, list))
        });
        if let Some((key, list)) = ciphers {
            if list.suites.is_empty() {
                cx.report(
                    Code::AnnotationIgnored,
                    key,
                    format!(
                        "`{key}` names no cipher suite the gateway offers; the default list is used"
                    ),
                );
            }
            p.ciphers = list.suites;
        }
        policy.client_tls = p;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::annotations::AnnotationOptions;
    use crate::annotations::test_util::{codes, run};
    use crate::model::{ObjectKind, ObjectRef};

    #[test]
    fn defaults() {
        let p = run(&[]).policy.client_tls;
        assert_eq!(p, ClientTlsPolicy::default());
        assert_eq!((p.verify, p.verify_depth), (VerifyClient::On, 1));
        assert!(!p.requests_certificate());
        assert_eq!(p.versions(), (TlsVersion::Tls12, TlsVersion::Tls13));
        assert!(p.cn_matches([]));
    }

    #[test]
    fn mutual_tls_values() {
        let p = run(&[
            ("auth-tls-secret", "ns/client-ca"),
            ("auth-tls-verify-client", "optional_no_ca"),
            ("auth-tls-verify-depth", "3"),
            ("auth-tls-error-page", "https://errors.example.com/cert"),
            ("auth-tls-pass-certificate-to-upstream", "true"),
            ("auth-tls-match-cn", "CN=(alice|bob)"),
        ]);
        // Only auth-tls-match-cn is partial.
        assert_eq!(codes(&p), vec![Code::AnnotationPartial]);
        assert!(p.policy.fail_closed.is_none());
        let t = &p.policy.client_tls;
        assert_eq!(
            t.ca_secret.as_ref().map(|s| s.name.as_str()),
            Some("client-ca")
        );
        assert_eq!((t.verify, t.verify_depth), (VerifyClient::OptionalNoCa, 3));
        assert!(
            matches!(&t.error_page, Some(ErrorPage::Url(u)) if u.to_string() == "https://errors.example.com/cert")
        );
        assert!(t.pass_certificate && t.requests_certificate());
        assert!(t.cn_matches(["bob"]));
        assert!(t.cn_matches(["x", "alice-2"]), "unanchored, as nginx");
        assert!(!t.cn_matches(["carol"]));
        assert!(!t.cn_matches([]), "no certificate fails a CN rule");
        // Host scope: every key is recorded for conflict checks.
        assert_eq!(p.policy.scoped.len(), 6);
        let p = run(&[
            ("auth-tls-secret", "ca"),
            ("auth-tls-verify-client", "off"),
            ("auth-tls-error-page", "/cert-error"),
        ]);
        assert_eq!(
            codes(&p),
            vec![Code::AnnotationPartial],
            "a path error page is reported"
        );
        assert!(!p.policy.client_tls.requests_certificate());
        assert_eq!(
            p.policy.client_tls.error_page,
            Some(ErrorPage::Path("/cert-error".into()))
        );
        let p = run(&[("auth-tls-secret", "ca"), ("auth-tls-verify-depth", "0")]);
        assert_eq!(
            p.policy.client_tls.verify_depth, 1,
            "0 reads as 1, as in ingress-nginx"
        );
    }

    #[test]
    fn without_secret_knobs_are_ignored_and_cn_fails_closed() {
        let p = run(&[
            ("auth-tls-verify-client", "on"),
            ("auth-tls-pass-certificate-to-upstream", "true"),
        ]);
        assert_eq!(
            codes(&p),
            vec![Code::AnnotationIgnored, Code::AnnotationIgnored]
        );
        assert!(p.policy.fail_closed.is_none());
        let p = run(&[("auth-tls-match-cn", "CN=alice")]);
        assert_eq!(
            codes(&p),
            vec![Code::AnnotationPartial, Code::AnnotationUnenforceable]
        );
        assert!(p.policy.fail_closed.is_some());
    }

    #[test]
    fn versions_and_ciphers() {
        let p = run(&[
            ("tls-min-protocol-version", "TLSv1.0"),
            ("tls-max-protocol-version", "TLSv1.2"),
            (
                "ssl-ciphers",
                "ECDHE-RSA-AES128-GCM-SHA256:HIGH:!aNULL:TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384:ECDHE-RSA-AES128-GCM-SHA256",
            ),
            ("ssl-prefer-server-ciphers", "true"),
        ]);
        assert_eq!(
            codes(&p),
            vec![Code::AnnotationPartial, Code::AnnotationPartial]
        );
        let t = &p.policy.client_tls;
        assert_eq!(
            (t.min_version, t.max_version),
            (Some(TlsVersion::Tls10), Some(TlsVersion::Tls12))
        );
        assert_eq!(t.versions(), (TlsVersion::Tls12, TlsVersion::Tls12));
        assert_eq!(
            t.ciphers,
            vec![
                CipherSuite::EcdheRsaAes128GcmSha256,
                CipherSuite::EcdheEcdsaAes256GcmSha384
            ]
        );
        assert_eq!(t.prefer_server_ciphers, Some(true));
        // Higress spelling under its own prefix; ssl-ciphers wins when both are set.
        let map: BTreeMap<String, String> = [
            ("higress.io/ssl-cipher", "ECDHE-RSA-CHACHA20-POLY1305"),
            ("higress.io/tls-min-protocol-version", "TLSv1.3"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let obj = ObjectRef::namespaced(ObjectKind::Ingress, "ns", "name");
        let p = crate::annotations::parse(&map, &obj, &AnnotationOptions::default());
        assert_eq!(codes(&p), vec![Code::AnnotationPartial]);
        assert_eq!(
            p.policy.client_tls.ciphers,
            vec![CipherSuite::EcdheRsaChacha20Poly1305]
        );
        assert_eq!(
            p.policy.client_tls.versions(),
            (TlsVersion::Tls13, TlsVersion::Tls13)
        );
        let p = run(&[
            ("ssl-ciphers", "ECDHE-RSA-AES256-GCM-SHA384"),
            ("ssl-cipher", "ECDHE-RSA-CHACHA20-POLY1305"),
        ]);
        assert_eq!(
            p.policy.client_tls.ciphers,
            vec![CipherSuite::EcdheRsaAes256GcmSha384]
        );
        assert!(codes(&p).contains(&Code::AnnotationIgnored));
        let p = run(&[("ssl-ciphers", "HIGH:!aNULL:!MD5")]);
        assert_eq!(
            codes(&p),
            vec![Code::AnnotationPartial, Code::AnnotationIgnored]
        );
        assert!(p.policy.client_tls.ciphers.is_empty());
    }

    #[test]
    fn invalid_values_fail_closed() {
        for (key, value) in [
            ("auth-tls-secret", "ns/Bad"),
            ("auth-tls-verify-client", "require"),
            ("auth-tls-verify-depth", "256"),
            ("auth-tls-error-page", "ok.com/error"),
            ("auth-tls-verify-depth", "-1"),
            ("auth-tls-error-page", "@cert_error"),
            ("auth-tls-error-page", "errors.example.com"),
            ("auth-tls-error-page", "/a;b"),
            ("auth-tls-pass-certificate-to-upstream", "on"),
            ("auth-tls-match-cn", "alice"),
            ("auth-tls-match-cn", "cn=alice"),
            ("auth-tls-match-cn", "CN="),
            ("auth-tls-match-cn", "CN=(alice"),
            ("auth-tls-match-cn", "CN=(?!bob)"),
            ("ssl-ciphers", "ECDHE;rm"),
            ("ssl-ciphers", ":::"),
            ("ssl-prefer-server-ciphers", "on"),
            ("tls-min-protocol-version", "TLSv1.4"),
            ("tls-max-protocol-version", "TLSv1.1"),
            ("ssl-cipher", "a'b"),
        ] {
            let p = run(&[("auth-tls-secret", "ca"), (key, value)]);
            assert!(
                codes(&p).contains(&Code::AnnotationInvalidValue),
                "{key}: {value:?} {:?}",
                p.diagnostics
            );
            assert!(p.policy.fail_closed.is_some(), "{key}: {value:?}");
        }
        let p = run(&[
            ("tls-min-protocol-version", "TLSv1.3"),
            ("tls-max-protocol-version", "TLSv1.2"),
        ]);
        assert_eq!(codes(&p), vec![Code::AnnotationInvalidValue]);
    }

    #[test]
    fn parsers() {
        assert_eq!(tls_version("tlsv1"), Ok(TlsVersion::Tls10));
        assert_eq!(tls_version("TLSv1.3"), Ok(TlsVersion::Tls13));
        let l = cipher_list("ECDHE-ECDSA-CHACHA20-POLY1305 DEFAULT").expect("valid");
        assert_eq!(l.suites, vec![CipherSuite::EcdheEcdsaChacha20Poly1305]);
        assert_eq!(l.dropped, vec!["DEFAULT".to_string()]);
        for c in CipherSuite::ALL {
            assert_eq!(cipher_list(c.iana_name()).map(|l| l.suites), Ok(vec![c]));
        }
    }
}
