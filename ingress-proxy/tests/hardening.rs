//! The hardening checklist as an automated suite (docs/SECURITY.md, "Hardening
//! checklist", maps each T-number to its test): raw bytes from a raw client, a
//! recording raw-socket canary upstream, the proxy in-process on loopback.
//!
//! - `framing`: section A, HTTP/1.1 framing and request smuggling.
//! - `limits`: section B, header handling, limits and trust.
//! - `paths`: section C end to end, path normalisation against access rules.
//! - `injection`: section D end to end, hostile annotations through the proxy.

#[path = "hardening/canary.rs"]
mod canary;
#[path = "hardening/framing.rs"]
mod framing;
#[path = "hardening/injection.rs"]
mod injection;
#[path = "hardening/limits.rs"]
mod limits;
#[path = "hardening/paths.rs"]
mod paths;
mod support;
