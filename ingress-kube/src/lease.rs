//! Leader election on a `coordination.k8s.io/v1` Lease.
//!
//! The decision is a small pure function ([`decide`]) of the Lease as read, our
//! identity and the time; [`LeaderElector`] carries it out with optimistic
//! concurrency (a `PUT` with the `resourceVersion` read, so two replicas racing for an
//! expired Lease cannot both win: the loser gets `409 Conflict`). A replica is leader
//! only while its last round succeeded; on any error it stops writing at once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::WriteError;

/// What the Lease says, in plain values (times in Unix milliseconds).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaseRecord {
    /// `spec.holderIdentity`.
    pub holder: Option<String>,
    /// `spec.renewTime`.
    pub renew_ms: Option<i64>,
    /// `spec.leaseDurationSeconds`.
    pub duration_s: Option<i32>,
    /// `spec.leaseTransitions`.
    pub transitions: i32,
}

/// What to do with the Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// There is no Lease: create it, holding it.
    Create,
    /// We hold it: renew it.
    Renew,
    /// It is free or expired: take it over.
    TakeOver,
    /// Another replica holds it until `expires_ms`.
    Follow {
        /// The holder.
        holder: String,
        /// When its hold ends unless renewed (Unix ms).
        expires_ms: i64,
    },
}

/// Decide from the Lease as read (`None`: not found). A Lease without a renew time
/// or duration counts as expired; `default_duration` is used when it has none.
pub fn decide(
    identity: &str,
    lease: Option<&LeaseRecord>,
    now_ms: i64,
    default_duration: Duration,
) -> Decision {
    let Some(lease) = lease else {
        return Decision::Create;
    };
    let holder = lease.holder.as_deref().filter(|h| !h.is_empty());
    match holder {
        Some(h) if h == identity => Decision::Renew,
        None => Decision::TakeOver,
        Some(h) => {
            let duration_ms = lease
                .duration_s
                .filter(|d| *d > 0)
                .map(|d| i64::from(d) * 1000)
                .unwrap_or_else(|| i64::try_from(default_duration.as_millis()).unwrap_or(i64::MAX));
            match lease.renew_ms {
                Some(renew) if renew.saturating_add(duration_ms) > now_ms => Decision::Follow {
                    holder: h.to_owned(),
                    expires_ms: renew.saturating_add(duration_ms),
                },
                _ => Decision::TakeOver,
            }
        }
    }
}

impl LeaseRecord {
    /// The record of a Lease object.
    pub fn of(lease: &Lease) -> Self {
        let spec = lease.spec.clone().unwrap_or_default();
        LeaseRecord {
            holder: spec.holder_identity,
            renew_ms: spec.renew_time.map(|t| t.0.as_millisecond()),
            duration_s: spec.lease_duration_seconds,
            transitions: spec.lease_transitions.unwrap_or(0),
        }
    }
}

/// Leader election settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LeaseOptions {
    /// The Lease's namespace (the controller's own).
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long a hold lasts without renewal.
    pub duration: Duration,
    /// How often the Lease is renewed or retried.
    pub retry_period: Duration,
}

impl LeaseOptions {
    /// Options with the usual timings (15 s hold, 2 s retry).
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        LeaseOptions {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            duration: Duration::from_secs(15),
            retry_period: Duration::from_secs(2),
        }
    }

    /// Set the hold duration and retry period.
    pub fn timings(mut self, duration: Duration, retry_period: Duration) -> Self {
        self.duration = duration;
        self.retry_period = retry_period;
        self
    }
}

/// Runs rounds of the election against the API server.
#[derive(Debug, Clone)]
pub struct LeaderElector {
    api: Api<Lease>,
    options: LeaseOptions,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn micro(ms: i64) -> Option<MicroTime> {
    Timestamp::from_millisecond(ms).ok().map(MicroTime)
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

impl LeaderElector {
    /// An elector for `options.namespace/options.name`.
    pub fn new(client: Client, options: LeaseOptions) -> Self {
        LeaderElector {
            api: Api::namespaced(client, &options.namespace),
            options,
        }
    }

    /// One round: read the Lease, decide, write. `Ok(true)` when we hold it now.
    pub async fn round(&self) -> Result<bool, WriteError> {
        let o = &self.options;
        let what = |verb: &str| format!("{verb} Lease {}/{}", o.namespace, o.name);
        let current = self
            .api
            .get_opt(&o.name)
            .await
            .map_err(|source| WriteError::Api {
                what: what("reading"),
                source,
            })?;
        let now = now_ms();
        let record = current.as_ref().map(LeaseRecord::of);
        let duration_s = i32::try_from(o.duration.as_secs())
            .unwrap_or(i32::MAX)
            .max(1);
        let result = match decide(&o.identity, record.as_ref(), now, o.duration) {
            Decision::Follow { .. } => return Ok(false),
            Decision::Create => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(o.name.clone()),
                        namespace: Some(o.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(o.identity.clone()),
                        lease_duration_seconds: Some(duration_s),
                        acquire_time: micro(now),
                        renew_time: micro(now),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                self.api
                    .create(&PostParams::default(), &lease)
                    .await
                    .map_err(|e| (e, "creating"))
            }
            decision @ (Decision::Renew | Decision::TakeOver) => {
                let Some(mut lease) = current else {
                    return Ok(false);
                };
                let mut spec = lease.spec.take().unwrap_or_default();
                if decision == Decision::TakeOver {
                    spec.holder_identity = Some(o.identity.clone());
                    spec.acquire_time = micro(now);
                    spec.lease_transitions =
                        Some(record.map_or(0, |r| r.transitions).saturating_add(1));
                }
                spec.renew_time = micro(now);
                spec.lease_duration_seconds = Some(duration_s);
                lease.spec = Some(spec);
                lease.metadata.managed_fields = None;
                self.api
                    .replace(&o.name, &PostParams::default(), &lease)
                    .await
                    .map_err(|e| (e, "updating"))
            }
        };
        match result {
            Ok(_) => Ok(true),
            Err((e, _)) if is_conflict(&e) => Ok(false),
            Err((source, verb)) => Err(WriteError::Api {
                what: what(verb),
                source,
            }),
        }
    }

    /// Give the Lease up if we hold it (on shutdown), so another replica takes over
    /// at its next round instead of after the hold expires. `Ok(true)` if released.
    pub async fn release(&self) -> Result<bool, WriteError> {
        let o = &self.options;
        let what = || format!("releasing Lease {}/{}", o.namespace, o.name);
        let Some(mut lease) =
            self.api
                .get_opt(&o.name)
                .await
                .map_err(|source| WriteError::Api {
                    what: what(),
                    source,
                })?
        else {
            return Ok(false);
        };
        let mut spec = lease.spec.take().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(o.identity.as_str()) {
            return Ok(false);
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        lease.spec = Some(spec);
        lease.metadata.managed_fields = None;
        match self
            .api
            .replace(&o.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_conflict(&e) => Ok(false),
            Err(source) => Err(WriteError::Api {
                what: what(),
                source,
            }),
        }
    }

    /// Run rounds every `retry_period` until the task is aborted; the receiver says
    /// whether this replica is the leader.
    pub fn spawn(self) -> (watch::Receiver<bool>, JoinHandle<()>) {
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.options.retry_period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let leader = match self.round().await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "leader election round failed; not writing until it succeeds");
                        false
                    }
                };
                if *tx.borrow() != leader {
                    tracing::info!(identity = %self.options.identity, leader, "leadership changed");
                }
                tx.send_if_modified(|l| std::mem::replace(l, leader) != leader);
            }
        });
        (rx, task)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_secs(15);

    fn rec(holder: &str, renew_ms: i64) -> LeaseRecord {
        LeaseRecord {
            holder: Some(holder.into()),
            renew_ms: Some(renew_ms),
            duration_s: Some(10),
            transitions: 0,
        }
    }

    #[test]
    fn no_lease_is_created() {
        assert_eq!(decide("a", None, 0, D), Decision::Create);
    }

    #[test]
    fn own_lease_is_renewed_even_when_expired() {
        assert_eq!(decide("a", Some(&rec("a", 0)), 99_000, D), Decision::Renew);
    }

    #[test]
    fn a_live_hold_is_followed_and_an_expired_one_taken_over() {
        let l = rec("b", 1_000);
        assert_eq!(
            decide("a", Some(&l), 10_999, D),
            Decision::Follow {
                holder: "b".into(),
                expires_ms: 11_000
            }
        );
        assert_eq!(decide("a", Some(&l), 11_000, D), Decision::TakeOver);
    }

    #[test]
    fn free_or_incomplete_leases_are_taken_over() {
        let free = LeaseRecord {
            holder: Some(String::new()),
            ..rec("", 0)
        };
        assert_eq!(decide("a", Some(&free), 0, D), Decision::TakeOver);
        let no_renew = LeaseRecord {
            renew_ms: None,
            ..rec("b", 0)
        };
        assert_eq!(decide("a", Some(&no_renew), 0, D), Decision::TakeOver);
        // No duration on the Lease: ours applies.
        let no_duration = LeaseRecord {
            duration_s: None,
            ..rec("b", 0)
        };
        assert!(matches!(
            decide("a", Some(&no_duration), 14_999, D),
            Decision::Follow { .. }
        ));
        assert_eq!(
            decide("a", Some(&no_duration), 15_000, D),
            Decision::TakeOver
        );
    }
}
