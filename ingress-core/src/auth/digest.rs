//! Digest authentication (RFC 7616 / RFC 2617), as nginx's `auth_digest` module
//! (which ingress-nginx loads for `auth-type: digest`) does it: algorithm MD5,
//! `qop="auth"`, users from an htdigest file (`user:realm:HA1`).
//!
//! The challenge is `Digest realm="..", qop="auth", nonce="..", opaque=".."`
//! (`, stale=true` when the request's digest was right but its nonce had
//! expired). A nonce is stateless: the issue time, random bytes and an HMAC-SHA1
//! of both under a process key ([`NonceKey`]), so an unauthenticated client
//! cannot fill any memory. State is kept only for nonces that authenticated a
//! request: [`NonceStore`] remembers which `nc` values each one used, for
//! replay protection, bounded in size. Time (`now`, any monotonic epoch) and
//! randomness are arguments; the data plane supplies both.
//!
//! Lifetimes, as the nginx module's defaults ([`NonceConfig`]): a nonce must be
//! first used within `timeout` (60 s) of its issue; after its first use it
//! stays good for `expires` (10 s) more and for `replays` (20) requests, each
//! with its own `nc` (1..=replays, any order, each once). Past that the client
//! is told `stale=true` and retries with a new nonce without asking the user.
//! So is a client whose answer is right for a nonce this process did not issue
//! (another replica's, or one from before a restart): nonce keys are per process.
//!
//! ```
//! use std::time::Duration;
//! use http::{HeaderMap, HeaderValue};
//! use ingress_core::auth::digest::{self, NonceConfig, NonceKey, NonceStore, Outcome};
//! use ingress_core::annotations::auth::{DigestAuth, parse_htdigest};
//! use ingress_core::annotations::values::ObjectName;
//! let users = parse_htdigest("Mufasa:testrealm@host.com:939e7578ed9e3c518a452acee763bce9").unwrap();
//! let secret = ObjectName { namespace: None, name: "users".into() };
//! let auth = DigestAuth::new(secret, Some("testrealm@host.com".into()), users);
//! let key = NonceKey::new([7; 32]);
//! let mut store = NonceStore::new(NonceConfig::default());
//! let now = Duration::from_secs(100);
//! let (nonce, opaque) = digest::issue(&key, now, [1; 8]);
//! // The client answers the challenge (user Mufasa, password "Circle Of Life").
//! let ha1 = digest::ha1("Mufasa", "testrealm@host.com", "Circle Of Life");
//! let response = digest::response(&ha1, &nonce, "00000001", "0a4f113b", "GET", "/dir/index.html");
//! let header = format!(
//!     "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", nonce=\"{nonce}\", \
//!      uri=\"/dir/index.html\", qop=auth, nc=00000001, cnonce=\"0a4f113b\", \
//!      response=\"{response}\", opaque=\"{opaque}\""
//! );
//! let mut h = HeaderMap::new();
//! h.insert("authorization", HeaderValue::from_str(&header).unwrap());
//! let verify = |store: &mut NonceStore| auth.verify(&key, store, "GET", "/dir/index.html", &h, now);
//! assert_eq!(verify(&mut store), Outcome::Allow);
//! // The same nc again is a replay.
//! assert_eq!(verify(&mut store), Outcome::Challenge { stale: false });
//! ```

use std::fmt;
use std::time::Duration;

use hmac::{KeyInit, Mac};
use http::HeaderMap;
use http::header::AUTHORIZATION;
use md5::{Digest as _, Md5};
use rustc_hash::FxHashMap;
use subtle::ConstantTimeEq;

use crate::annotations::auth::{DigestAuth, DigestEntry};

type HmacSha1 = hmac::Hmac<sha1::Sha1>;

/// The process's secret for nonces and opaque values: 32 random bytes, made
/// once by the data plane. `Debug` never shows it.
#[derive(Clone)]
pub struct NonceKey([u8; 32]);

impl NonceKey {
    /// A key from 32 random bytes.
    pub fn new(bytes: [u8; 32]) -> NonceKey {
        NonceKey(bytes)
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 16] {
        let mut out = [0u8; 16];
        if let Ok(mut m) = HmacSha1::new_from_slice(&self.0) {
            for p in parts {
                m.update(p);
            }
            out.copy_from_slice(&m.finalize().into_bytes()[..16]);
        }
        out
    }
}

impl fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NonceKey(..)")
    }
}

/// Nonce lifetimes and the bound on remembered nonces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct NonceConfig {
    /// How long after its issue a nonce may first be used (`auth_digest_timeout`).
    pub timeout: Duration,
    /// How long after its first use a nonce stays good (`auth_digest_expires`).
    pub expires: Duration,
    /// How many requests one nonce may authenticate, with `nc` 1..=replays
    /// (`auth_digest_replays`; at most 64).
    pub replays: u32,
    /// The most nonces remembered; past it the oldest are forgotten and every
    /// nonce issued up to them counts as stale (never replayable).
    pub capacity: usize,
}

impl Default for NonceConfig {
    fn default() -> Self {
        NonceConfig {
            timeout: Duration::from_secs(60),
            expires: Duration::from_secs(10),
            replays: 20,
            capacity: 65_536,
        }
    }
}

const NONCE_LEN: usize = 32;

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn hex(bytes: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(H[usize::from(b >> 4)]));
        s.push(char::from(H[usize::from(b & 15)]));
    }
    s
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != N * 2 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = digit(b[2 * i])? << 4 | digit(b[2 * i + 1])?;
    }
    Some(out)
}

fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b":");
        }
        h.update(p);
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize());
    out
}

/// A new nonce issued at `now` with 8 random bytes, and its opaque value (both
/// lowercase hex).
pub fn issue(key: &NonceKey, now: Duration, random: [u8; 8]) -> (String, String) {
    let mut body = [0u8; 16];
    body[..8].copy_from_slice(&millis(now).to_be_bytes());
    body[8..].copy_from_slice(&random);
    let mac = key.mac(&[b"nonce", &body]);
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..16].copy_from_slice(&body);
    nonce[16..].copy_from_slice(&mac);
    (hex(&nonce), hex(&key.mac(&[b"opaque", &body])))
}

/// A nonce this process issued: its identity and issue time (milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Issued {
    id: [u8; 16],
    at: u64,
}

/// Check that `nonce` was issued with `key` and `opaque` belongs to it.
fn issued(key: &NonceKey, nonce: &str, opaque: &str) -> Option<Issued> {
    let n: [u8; NONCE_LEN] = unhex(nonce)?;
    let mut id = [0u8; 16];
    id.copy_from_slice(&n[..16]);
    let mac_ok: bool = key.mac(&[b"nonce", &id]).ct_eq(&n[16..]).into();
    let o: [u8; 16] = unhex(opaque)?;
    let opaque_ok: bool = key.mac(&[b"opaque", &id]).ct_eq(&o).into();
    if !(mac_ok && opaque_ok) {
        return None;
    }
    let mut at = [0u8; 8];
    at.copy_from_slice(&id[..8]);
    Some(Issued {
        id,
        at: u64::from_be_bytes(at),
    })
}

/// The fields of an `Authorization: Digest` header. `Debug` never shows the
/// response.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct DigestCredentials {
    /// `username`.
    pub username: String,
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `uri`: the request target the digest covers.
    pub uri: String,
    /// `qop` (`auth` is the only one accepted).
    pub qop: String,
    /// `nc`, as sent (8 hex digits).
    pub nc: String,
    /// `cnonce`.
    pub cnonce: String,
    /// `response`, as sent (32 hex digits).
    pub response: String,
    /// `opaque`.
    pub opaque: String,
    /// `algorithm` (absent or `MD5`).
    pub algorithm: Option<String>,
}

impl fmt::Debug for DigestCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestCredentials")
            .field("username", &self.username)
            .field("realm", &self.realm)
            .field("nonce", &self.nonce)
            .field("uri", &self.uri)
            .field("nc", &self.nc)
            .field("response", &"..")
            .finish_non_exhaustive()
    }
}

/// Split `key=value, key="quoted \" value", ...`; `None` on bad syntax.
fn params(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let key = rest[..eq].trim().to_ascii_lowercase();
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return None;
        }
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(q) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = q.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => v.push(chars.next()?.1),
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => v.push(c),
                }
            }
            value = v;
            rest = &q[end?..];
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_owned();
            if value.is_empty() {
                return None;
            }
            rest = &rest[end..];
        }
        if out.iter().any(|(k, _)| *k == key) {
            return None;
        }
        out.push((key, value));
        rest = rest.trim_start();
        match rest.strip_prefix(',') {
            Some(r) => rest = r.trim_start(),
            None if rest.is_empty() => {}
            None => return None,
        }
    }
    Some(out)
}

/// The Digest credentials of a request: `None` when the first `Authorization`
/// header is absent, of another scheme, malformed, or lacks a field that
/// `qop=auth` needs.
pub fn credentials(headers: &HeaderMap) -> Option<DigestCredentials> {
    let v = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.trim_start().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("digest") {
        return None;
    }
    let mut c = DigestCredentials::default();
    let mut seen = 0u16;
    for (k, v) in params(rest)? {
        let (bit, slot) = match k.as_str() {
            "username" => (0, &mut c.username),
            "realm" => (1, &mut c.realm),
            "nonce" => (2, &mut c.nonce),
            "uri" => (3, &mut c.uri),
            "qop" => (4, &mut c.qop),
            "nc" => (5, &mut c.nc),
            "cnonce" => (6, &mut c.cnonce),
            "response" => (7, &mut c.response),
            "opaque" => (8, &mut c.opaque),
            "algorithm" => {
                c.algorithm = Some(v);
                continue;
            }
            _ => continue,
        };
        seen |= 1 << bit;
        *slot = v;
    }
    (seen == 0x1ff).then_some(c)
}

/// What one nonce did so far.
#[derive(Debug, Clone, Copy)]
struct Used {
    issued: u64,
    first: u64,
    /// Bit `nc - 1` is set once `nc` was used.
    nc: u64,
}

/// The time (ms) until which `u` must be remembered: while it could be used as
/// fresh or is still good.
fn keep_until(u: &Used, timeout: u64, expires: u64) -> u64 {
    u.issued
        .saturating_add(timeout)
        .max(u.first.saturating_add(expires))
}

/// What [`NonceStore::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admit {
    Ok,
    Stale,
    Replay,
}

/// The nonces that authenticated requests and the `nc` values each used.
#[derive(Debug)]
pub struct NonceStore {
    config: NonceConfig,
    used: FxHashMap<[u8; 16], Used>,
    /// Nonces issued at or before this time (ms) are stale: some of their kind
    /// were forgotten to keep the store bounded.
    floor: Option<u64>,
}

impl NonceStore {
    /// An empty store.
    pub fn new(config: NonceConfig) -> NonceStore {
        NonceStore {
            config,
            used: FxHashMap::default(),
            floor: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &NonceConfig {
        &self.config
    }

    /// How many nonces are remembered.
    pub fn len(&self) -> usize {
        self.used.len()
    }

    /// Whether no nonce is remembered.
    pub fn is_empty(&self) -> bool {
        self.used.is_empty()
    }

    /// Use nonce `n` with `nc` at `now` (ms), recording it when good.
    fn admit(&mut self, n: Issued, nc: u32, now: u64) -> Admit {
        let replays = self.config.replays.clamp(1, 64);
        if nc == 0 || nc > replays || self.floor.is_some_and(|f| n.at <= f) {
            return Admit::Stale;
        }
        let bit = 1u64 << (nc - 1);
        if let Some(u) = self.used.get_mut(&n.id) {
            if now > u.first.saturating_add(millis(self.config.expires)) {
                return Admit::Stale;
            }
            if u.nc & bit != 0 {
                return Admit::Replay;
            }
            u.nc |= bit;
            return Admit::Ok;
        }
        if now > n.at.saturating_add(millis(self.config.timeout)) {
            return Admit::Stale;
        }
        if self.used.len() >= self.config.capacity.max(1) {
            self.make_room(now);
            if self.floor.is_some_and(|f| n.at <= f) {
                return Admit::Stale;
            }
        }
        self.used.insert(
            n.id,
            Used {
                issued: n.at,
                first: now,
                nc: bit,
            },
        );
        Admit::Ok
    }

    /// Forget what can no longer be used; if that is not enough, the oldest
    /// eighth, raising the floor past them.
    fn make_room(&mut self, now: u64) {
        let (timeout, expires) = (millis(self.config.timeout), millis(self.config.expires));
        self.used
            .retain(|_, u| keep_until(u, timeout, expires) >= now);
        let cap = self.config.capacity.max(1);
        if self.used.len() < cap {
            return;
        }
        let mut by_age: Vec<([u8; 16], u64)> =
            self.used.iter().map(|(id, u)| (*id, u.issued)).collect();
        by_age.sort_unstable_by_key(|(_, at)| *at);
        let drop = (cap / 8).max(1);
        let oldest = by_age
            .get(drop - 1)
            .or(by_age.last())
            .map_or(0, |(_, at)| *at);
        let floor = self.floor.unwrap_or(0).max(oldest);
        // The floor first: whatever is forgotten below it is stale, never fresh.
        // Nonces issued in the same millisecond as the last one dropped go too.
        self.floor = Some(floor);
        self.used.retain(|_, u| u.issued > floor);
    }
}

/// The answer to a request on a digest-protected route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The credentials are good: forward.
    Allow,
    /// 401 with a new challenge; `stale`: the credentials were right but the
    /// nonce is no longer good (`stale=true` lets the client retry by itself).
    Challenge {
        /// Whether to say `stale=true`.
        stale: bool,
    },
}

impl DigestAuth {
    /// The entry of `user`, if the Secret lists it in this realm.
    pub fn user(&self, user: &str) -> Option<&DigestEntry> {
        let realm = self.realm.as_deref().unwrap_or("");
        self.users
            .iter()
            .find(|e| e.user == user && e.realm == realm)
    }

    /// The `WWW-Authenticate` value of a 401 with a nonce from [`issue`]. The
    /// realm holds no quote or backslash (the annotation refuses them).
    pub fn challenge(&self, nonce: &str, opaque: &str, stale: bool) -> String {
        let realm = self.realm.as_deref().unwrap_or("");
        let mut s = format!(
            "Digest realm=\"{realm}\", qop=\"auth\", nonce=\"{nonce}\", opaque=\"{opaque}\""
        );
        if stale {
            s.push_str(", stale=true");
        }
        s
    }

    /// Check the request's `Authorization: Digest` header: method and
    /// `request_uri` (the request target as received) of the request, `now` on
    /// the same epoch as the nonces' [`issue`]. A good request is recorded in
    /// `store` (its `nc` cannot be used again).
    pub fn verify(
        &self,
        key: &NonceKey,
        store: &mut NonceStore,
        method: &str,
        request_uri: &str,
        headers: &HeaderMap,
        now: Duration,
    ) -> Outcome {
        let deny = Outcome::Challenge { stale: false };
        let Some(c) = credentials(headers) else {
            return deny;
        };
        let realm = self.realm.as_deref().unwrap_or("");
        let algorithm_ok = c
            .algorithm
            .as_deref()
            .is_none_or(|a| a.eq_ignore_ascii_case("md5"));
        if c.realm != realm || c.qop != "auth" || !algorithm_ok || c.uri != request_uri {
            return deny;
        }
        let (Some(nc), Some(response)) = (
            (c.nc.len() == 8)
                .then(|| u32::from_str_radix(&c.nc, 16).ok())
                .flatten(),
            unhex::<16>(&c.response),
        ) else {
            return deny;
        };
        // An unknown user costs the same hashing as a known one.
        let unknown = DigestEntry {
            user: String::new(),
            realm: String::new(),
            ha1: [0; 16],
        };
        let (entry, known) = match self.user(&c.username) {
            Some(e) => (e, true),
            None => (&unknown, false),
        };
        let ha2 = hex(&md5(&[method.as_bytes(), c.uri.as_bytes()]));
        let expected = md5(&[
            hex(&entry.ha1).as_bytes(),
            c.nonce.as_bytes(),
            c.nc.as_bytes(),
            c.cnonce.as_bytes(),
            b"auth",
            ha2.as_bytes(),
        ]);
        if !(bool::from(expected.ct_eq(&response)) && known) {
            return deny;
        }
        // A right answer on a nonce this process did not issue (another
        // replica's, or one from before a restart) is stale: the client retries
        // with ours without asking its user.
        let Some(nonce) = issued(key, &c.nonce, &c.opaque) else {
            return Outcome::Challenge { stale: true };
        };
        match store.admit(nonce, nc, millis(now)) {
            Admit::Ok => Outcome::Allow,
            Admit::Stale => Outcome::Challenge { stale: true },
            Admit::Replay => deny,
        }
    }
}

/// HA1 = MD5(user:realm:password), as htdigest stores it.
pub fn ha1(user: &str, realm: &str, password: &str) -> [u8; 16] {
    md5(&[user.as_bytes(), realm.as_bytes(), password.as_bytes()])
}

/// The `response` a client computes for `qop=auth` (lowercase hex): for tests
/// and clients.
pub fn response(
    ha1: &[u8; 16],
    nonce: &str,
    nc: &str,
    cnonce: &str,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = hex(&md5(&[method.as_bytes(), uri.as_bytes()]));
    hex(&md5(&[
        hex(ha1).as_bytes(),
        nonce.as_bytes(),
        nc.as_bytes(),
        cnonce.as_bytes(),
        b"auth",
        ha2.as_bytes(),
    ]))
}

#[cfg(test)]
mod tests;
