//! Section G of the hardening checklist, control-plane dynamics under load
//! (docs/SECURITY.md maps each item to its test): the proxy in-process on loopback,
//! real HTTP/1.1, HTTP/2 and TLS clients looping requests while endpoints roll,
//! Ingresses churn, certificates rotate, the API server goes away, and a large
//! configuration loads. Scaled to run in well under a minute; each test says what
//! its full-size version is (the soak, `bench/soak.sh`, runs the long one).
//!
//! - `rolling`: T42, a rolling update of EndpointSlices under load.
//! - `churn`: T43 and T44, config churn (and bad objects in it) while long-lived
//!   connections stay open.
//! - `rotation`: T47, certificate rotation under load.
//! - `watch`: T45, API-server disconnects, 410 Gone and an outage in `--kube` mode.
//! - `scale`: T48, a large configuration.
//! - `fastpath`: the folder's Secret and EndpointSlice fast paths (T47's 1 s at
//!   2,000 TLS Ingresses).

#[path = "dynamics/churn.rs"]
mod churn;
#[path = "dynamics/fastpath.rs"]
mod fastpath;
#[path = "dynamics/load.rs"]
mod load;
#[path = "dynamics/rolling.rs"]
mod rolling;
#[path = "dynamics/rotation.rs"]
mod rotation;
#[path = "dynamics/scale.rs"]
mod scale;
mod support;
#[path = "dynamics/watch.rs"]
mod watch;
