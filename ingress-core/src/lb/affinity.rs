//! Cookie affinity: the cookie names its endpoint.
//!
//! The semantics (pinning, retries, change-on-failure, modes) are documented on
//! the module ([`super`], "Cookie affinity"). Here: the cookie value parsed back
//! to its 64-bit hash and found by binary search, so a pick compares no strings.

use crate::annotations::AffinityPolicy;
use crate::annotations::affinity::{AffinityMode, cookie_value};
use crate::routing::EndpointAddr;

/// Cookie lookup for one balancer.
#[derive(Debug)]
pub(crate) struct Sticky {
    /// `(hash, endpoint)` sorted by hash: the cookie value parsed back to its hash.
    by_hash: Box<[(u64, u32)]>,
    /// The cookie value naming each endpoint.
    values: Box<[String]>,
    change_on_failure: bool,
    mode: AffinityMode,
}

/// What the cookie says about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pinned {
    /// It names this endpoint, which is available.
    Here(usize),
    /// It names an avoided endpoint; `true`: issue a new cookie for the new pick.
    Moved(bool),
    /// No cookie, or one that names no endpoint: issue one.
    Nowhere,
}

impl Sticky {
    pub(crate) fn new(endpoints: &[EndpointAddr], policy: &AffinityPolicy) -> Sticky {
        let values: Box<[String]> = endpoints
            .iter()
            .map(|e| cookie_value(&e.to_string()))
            .collect();
        let mut by_hash: Vec<(u64, u32)> = values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| Some((parse_value(v)?, i as u32)))
            .collect();
        // Stable: of two endpoints with one hash (never seen in practice), the
        // first in the list wins.
        by_hash.sort_by_key(|&(h, _)| h);
        Sticky {
            by_hash: by_hash.into_boxed_slice(),
            values,
            change_on_failure: policy.change_on_failure,
            mode: policy.mode,
        }
    }

    /// The endpoint a cookie value names, if any.
    #[inline]
    pub(crate) fn find(&self, cookie: &str) -> Option<usize> {
        let h = parse_value(cookie)?;
        let at = self.by_hash.partition_point(|&(x, _)| x < h);
        match self.by_hash.get(at) {
            Some(&(x, i)) if x == h => Some(i as usize),
            _ => None,
        }
    }

    /// Where the request's cookie pins it.
    #[inline]
    pub(crate) fn pinned(
        &self,
        cookie: Option<&str>,
        avoid: &super::EndpointSet,
        retry: bool,
    ) -> Pinned {
        match cookie.and_then(|c| self.find(c)) {
            None => Pinned::Nowhere,
            Some(i) if !avoid.contains(i) => Pinned::Here(i),
            Some(_) => Pinned::Moved(!retry || self.change_on_failure),
        }
    }

    #[inline]
    pub(crate) fn value(&self, i: usize) -> Option<&str> {
        self.values.get(i).map(String::as_str)
    }

    pub(crate) fn mode(&self) -> AffinityMode {
        self.mode
    }
}

/// A cookie value back to its hash: exactly 16 lower-case hex digits, the only
/// form [`cookie_value`] writes (so `find` agrees with comparing the strings).
#[inline]
fn parse_value(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 16 {
        return None;
    }
    b.iter().try_fold(0u64, |acc, &c| {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        Some(acc << 4 | u64::from(d))
    })
}
