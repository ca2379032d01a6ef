//! Resource limits and robustness of the proxy on loopback: sections E (HTTP/2)
//! and H (slow clients, connection caps, panics) of the hardening checklist
//! (docs/SECURITY.md maps each item to its test). The proxy runs in-process; the
//! timeouts are shrunk to a second and the floods scaled down so the whole target
//! runs in well under a minute; each test says what its full-size version is.

#[path = "limits/conns.rs"]
mod conns;
#[path = "limits/http2.rs"]
mod http2;
#[path = "limits/panics.rs"]
mod panics;
#[path = "limits/raw.rs"]
mod raw;
#[path = "limits/slow.rs"]
mod slow;
mod support;
