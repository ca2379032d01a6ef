//! The certificates a table serves, one per TLS binding, and the two things the
//! data plane adds to what the core compiled:
//!
//! - **the last good certificate is kept**: when a Secret's new content is unusable
//!   for a host (it does not parse, its key does not match, rustls cannot load the
//!   key, or it no longer covers the host), the host keeps the certificate it was
//!   served from the same Secret by the table before, as ingress-nginx does, with
//!   a `tls-previous-certificate-kept` diagnostic (logged, on `/routes`, and the
//!   `tls_previous_certificate_kept` gauge). The core compiles each table from its
//!   input alone; this state lives here, carried from table to table. A deleted
//!   Secret, a TLS host whose Ingress now names another Secret, or a host no longer
//!   listed gets no carry-over.
//! - **expiry**: the certificates served (kept ones included) are checked against
//!   the system clock when a table is applied
//!   ([`ingress_core::tls::expiry_diagnostic`]: `tls-certificate-expired`, and
//!   `tls-certificate-expires-soon` within 30 days), and the seconds each has left
//!   are a gauge computed at every scrape.

use std::sync::Arc;

use ingress_core::manifest::Located;
use ingress_core::model::Timestamp;
use ingress_core::{Code, Diagnostic, RouteTable};
use rustls::sign::CertifiedKey;

/// One binding's served certificate.
#[derive(Debug, Clone)]
pub(crate) struct Served {
    /// The rustls form handed to handshakes.
    pub(crate) key: Arc<CertifiedKey>,
    /// The parsed certificate (names, validity).
    pub(crate) cert: Arc<ingress_core::tls::CertifiedKey>,
    /// Carried over from an earlier table because the Secret's content became
    /// unusable for the host.
    pub(crate) kept: bool,
}

/// Parallel to `table.tls_bindings()`: what each binding serves, and the notes
/// (diagnostics) the data plane added.
#[derive(Debug, Clone, Default)]
pub(crate) struct Certs {
    pub(crate) served: Vec<Option<Served>>,
    /// Bindings whose certificate rustls could not load (the key is unusable).
    unusable: Vec<bool>,
    /// `tls-previous-certificate-kept` and expiry diagnostics, made by
    /// [`Certs::carry_and_check`].
    pub(crate) notes: Vec<Located>,
}

impl Certs {
    /// The rustls form of each binding's certificate; a key rustls cannot use
    /// leaves the binding without one (logged).
    pub(crate) fn of(table: &RouteTable) -> Self {
        let bindings = table.tls_bindings();
        let mut served = Vec::with_capacity(bindings.len());
        let mut unusable = Vec::with_capacity(bindings.len());
        let mut cache = KeyCache::default();
        for b in bindings {
            let (s, u) = served_of(b, &mut cache);
            served.push(s);
            unusable.push(u);
        }
        Certs {
            served,
            unusable,
            notes: Vec::new(),
        }
    }

    /// `previous` (the certificates of `previous_table`), for `table`, which
    /// differs from `previous_table` only in the certificates and problems of
    /// `changed` (indexes into its TLS bindings, as the Secret fast path gives
    /// them): only those are loaded again, every other binding keeps what it
    /// served (a kept certificate stays kept); then the carry-over and the
    /// expiry check run as for a full table ([`Certs::carry_and_check`]).
    pub(crate) fn refreshed(
        previous: &Certs,
        previous_table: &RouteTable,
        table: &RouteTable,
        changed: &[usize],
        now: Timestamp,
    ) -> Self {
        let mut certs = previous.clone();
        let bindings = table.tls_bindings();
        let mut cache = KeyCache::default();
        for &i in changed {
            let (Some(b), Some(slot), Some(u)) = (
                bindings.get(i),
                certs.served.get_mut(i),
                certs.unusable.get_mut(i),
            ) else {
                continue;
            };
            (*slot, *u) = served_of(b, &mut cache);
        }
        certs.carry_and_check(table, Some((previous_table, previous)), now);
        certs
    }

    /// Keep, for every binding of `table` left without a certificate because its
    /// Secret's content is unusable for its host, the certificate the same host
    /// was served from the same Secret in `previous` (itself possibly kept); then
    /// check every served certificate's expiry at `now`. Makes the notes.
    pub(crate) fn carry_and_check(
        &mut self,
        table: &RouteTable,
        previous: Option<(&RouteTable, &Certs)>,
        now: Timestamp,
    ) {
        self.notes.clear();
        for (i, b) in table.tls_bindings().iter().enumerate() {
            let Some(secret) = b.secret() else { continue };
            if let Some(Some(s)) = self.served.get(i) {
                // Kept by an earlier table and not loaded again since (the Secret
                // fast path): still kept, still said.
                if s.kept {
                    self.notes.push(kept_note(b, secret, s));
                }
                continue;
            }
            let bad = b.problem().is_some_and(|p| p.keeps_previous())
                || self.unusable.get(i).copied().unwrap_or(false);
            let Some((old_table, old)) = previous.filter(|_| bad) else {
                continue;
            };
            let same = |ob: &ingress_core::routing::TlsBinding| {
                ob.host() == b.host() && ob.secret() == Some(secret)
            };
            // The same position first (the bindings of a Secret update are the
            // previous table's), then a search.
            let found = match old_table.tls_bindings().get(i) {
                Some(ob) if same(ob) => old.served.get(i).cloned().flatten(),
                _ => old_table
                    .tls_bindings()
                    .iter()
                    .zip(&old.served)
                    .find(|(ob, _)| same(ob))
                    .and_then(|(_, s)| s.clone()),
            };
            let Some(mut kept) = found else { continue };
            kept.kept = true;
            self.notes.push(kept_note(b, secret, &kept));
            if let Some(slot) = self.served.get_mut(i) {
                *slot = Some(kept);
            }
        }
        for (b, s) in table.tls_bindings().iter().zip(&self.served) {
            let (Some(s), Some(secret)) = (s, b.secret()) else {
                continue;
            };
            let host = b.host().to_string();
            if let Some(d) =
                ingress_core::tls::expiry_diagnostic(&s.cert, secret, &host, b.ingress(), None, now)
            {
                tracing::warn!(code = d.code.as_str(), host, "{}", d.message);
                self.notes.push(Located {
                    location: None,
                    diagnostic: d,
                });
            }
        }
    }
}

/// The rustls form of each certificate already converted, by the address of
/// the core's certificate: the bindings of one Secret share it, and converting a
/// key is the costly part (once per Secret, not per host).
type KeyCache = std::collections::HashMap<
    *const ingress_core::tls::CertifiedKey,
    Result<Arc<CertifiedKey>, String>,
>;

/// A binding's certificate, rustls-ready, and whether rustls refused its key.
fn served_of(
    b: &ingress_core::routing::TlsBinding,
    cache: &mut KeyCache,
) -> (Option<Served>, bool) {
    let s = b.certificate().and_then(|c| {
        let key = cache
            .entry(Arc::as_ptr(c))
            .or_insert_with(|| crate::tls::rustls_key(c).map_err(|e| e.to_string()))
            .clone();
        match key {
            Ok(key) => Some(Served {
                key,
                cert: c.clone(),
                kept: false,
            }),
            Err(e) => {
                tracing::warn!(host = %b.host(), error = %e, "TLS key not usable");
                None
            }
        }
    });
    let unusable = s.is_none() && b.certificate().is_some();
    (s, unusable)
}

/// `tls-previous-certificate-kept` for binding `b` serving `kept` (logged).
fn kept_note(
    b: &ingress_core::routing::TlsBinding,
    secret: &ingress_core::model::ObjectRef,
    kept: &Served,
) -> Located {
    let at = Timestamp::from_unix(kept.cert.not_after);
    let message = format!(
        "Secret {secret} is not usable for host {} (see its other diagnostic); the last good certificate from it (valid until {at}) is kept",
        b.host()
    );
    tracing::warn!(
        code = Code::TlsPreviousCertificateKept.as_str(),
        secret = %secret,
        host = %b.host(),
        "{message}"
    );
    Located {
        location: None,
        diagnostic: Diagnostic::new(
            Code::TlsPreviousCertificateKept,
            Some(b.ingress().clone()),
            None,
            message,
        ),
    }
}

/// The system clock as the core's [`Timestamp`] (the core takes time as an
/// argument; the data plane supplies it).
pub fn system_now() -> Timestamp {
    Timestamp::from_system_time(std::time::SystemTime::now())
}
