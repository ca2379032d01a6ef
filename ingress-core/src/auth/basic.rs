//! Basic authentication: the credentials of a request and the challenge.
//!
//! As nginx's `auth_basic`: the first `Authorization` header counts; its scheme
//! is `Basic` (any case) and its value standard base64 of `user:password` (the
//! password may hold `:`). A request without usable credentials, with an unknown
//! user or a wrong password is answered 401 with [`BasicAuth::challenge`].

use std::fmt;

use base64::Engine as _;
use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::annotations::auth::{BasicAuth, PasswordHash};

/// The user and password of an `Authorization: Basic` header. `Debug` never
/// shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub user: String,
    /// The password, as sent (not necessarily UTF-8).
    pub password: Vec<u8>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"..")
            .finish()
    }
}

impl Drop for Credentials {
    fn drop(&mut self) {
        self.password.iter_mut().for_each(|b| *b = 0);
    }
}

/// The Basic credentials of a request: `None` when the first `Authorization`
/// header is absent, of another scheme, not base64 or without `:`.
pub fn credentials(headers: &HeaderMap) -> Option<Credentials> {
    let v = headers.get(AUTHORIZATION)?.as_bytes();
    let sp = v.iter().position(|b| *b == b' ')?;
    let (scheme, rest) = v.split_at(sp);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let rest = rest.trim_ascii();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest)
        .ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    let user = std::str::from_utf8(&decoded[..colon]).ok()?.to_owned();
    let password = decoded[colon + 1..].to_vec();
    let mut decoded = decoded;
    decoded.iter_mut().for_each(|b| *b = 0);
    Some(Credentials { user, password })
}

impl BasicAuth {
    /// The hash of `user`, if the Secret lists it.
    pub fn user_hash(&self, user: &str) -> Option<&PasswordHash> {
        self.users.iter().find(|e| e.user == user).map(|e| &e.hash)
    }

    /// The `WWW-Authenticate` value of a 401: `Basic realm="<auth-realm>"` (an
    /// empty realm when unset, as ingress-nginx). The realm holds no quote or
    /// backslash (the annotation refuses them).
    pub fn challenge(&self) -> String {
        format!("Basic realm=\"{}\"", self.realm.as_deref().unwrap_or(""))
    }

    /// Whether the request's credentials are valid (runs the hash: slow for
    /// bcrypt, see [`PasswordHash::is_slow`]).
    pub fn verify(&self, headers: &HeaderMap) -> bool {
        credentials(headers).is_some_and(|c| {
            self.user_hash(&c.user)
                .is_some_and(|h| h.verify(&c.password))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotations::auth::parse_htpasswd;
    use http::HeaderValue;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(v).expect("value"));
        h
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn credentials_as_nginx_reads_them() {
        let c = credentials(&headers(&format!("Basic {}", b64("alice:se:cret")))).expect("ok");
        assert_eq!(
            (c.user.as_str(), c.password.as_slice()),
            ("alice", &b"se:cret"[..])
        );
        assert!(format!("{c:?}").contains("alice") && !format!("{c:?}").contains("se:cret"));
        let c = credentials(&headers(&format!("bAsIc  {} ", b64("bob:")))).expect("ok");
        assert_eq!((c.user.as_str(), c.password.len()), ("bob", 0));
        for bad in [
            "Bearer abc".to_owned(),
            "Basic".to_owned(),
            "Basic !!!".to_owned(),
            format!("Basic {}", b64("nocolon")),
            format!("Digest {}", b64("a:b")),
        ] {
            assert!(credentials(&headers(&bad)).is_none(), "{bad}");
        }
        assert!(credentials(&HeaderMap::new()).is_none());
    }

    #[test]
    fn verify_and_challenge() {
        let users = parse_htpasswd(
            "alice:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\nbob:$apr1$FpD1wUQG$Km7KDahdOB7Kb1a.LrDgZ1\n",
        )
        .expect("users");
        let mut b = BasicAuth {
            secret: crate::annotations::values::ObjectName {
                namespace: None,
                name: "users".into(),
            },
            secret_type: crate::annotations::auth::SecretType::AuthFile,
            realm: None,
            users,
        };
        assert_eq!(b.challenge(), "Basic realm=\"\"");
        b.realm = Some("Staff only".into());
        assert_eq!(b.challenge(), "Basic realm=\"Staff only\"");
        assert!(b.verify(&headers(&format!("Basic {}", b64("alice:secret")))));
        assert!(b.verify(&headers(&format!("Basic {}", b64("bob:secret")))));
        assert!(!b.verify(&headers(&format!("Basic {}", b64("alice:wrong")))));
        assert!(!b.verify(&headers(&format!("Basic {}", b64("carol:secret")))));
        assert!(!b.verify(&HeaderMap::new()));
    }
}
