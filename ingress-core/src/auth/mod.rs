//! Authentication, the pure parts: what a data plane needs to enforce the `auth`
//! and `client-tls` annotation families, with no IO.
//!
//! - [`password`]: verification of htpasswd hashes ([`PasswordHash::verify`]);
//! - [`basic`]: the `Authorization: Basic` header, the user lookup and the
//!   `WWW-Authenticate` challenge of [`BasicAuth`];
//! - [`digest`]: RFC 7616 digest authentication (MD5, `qop=auth`): nonces,
//!   their lifetimes and `nc` replay protection, with injected time and
//!   randomness;
//! - [`external`]: the `auth-url` sub-request's headers and what its answer means,
//!   as ingress-nginx's `auth_request` location does it;
//! - [`client_cert`]: client-certificate facts as nginx exposes them (RFC 2253
//!   subject and issuer, the escaped PEM, the verification outcome) and the
//!   request-time decision of `auth-tls-verify-client`.
//!
//! ```
//! use ingress_core::annotations::auth::PasswordHash;
//! let h = PasswordHash::parse("{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=").unwrap();
//! assert!(h.verify(b"secret"));
//! assert!(!h.verify(b"guess"));
//! ```
//!
//! [`PasswordHash::verify`]: crate::annotations::auth::PasswordHash::verify
//! [`BasicAuth`]: crate::annotations::auth::BasicAuth

pub mod basic;
pub mod client_cert;
pub mod digest;
pub mod external;
pub mod password;
