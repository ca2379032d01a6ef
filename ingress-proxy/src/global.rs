//! Cluster-wide rate limits: the rates of `limit-rps`, `limit-rpm` and
//! `route-limit-*` counted in one Redis server that every replica shares.
//!
//! When the gateway is started with a Redis address (`--redis`), a route's rates are
//! counted there instead of in the replica's memory: the windows of
//! [`ingress_core::limits::global`] (sliding by default), keyed by Ingress and client
//! address (`namespace/name|client`) or by Ingress alone for the route-wide Higress
//! limit (`namespace/name|route`). `limit-connections` stays per replica (a
//! connection is held by one replica). One check is one round trip: a Lua script
//! reads every window the request counts under and increments them all only if
//! every one has room, so a request one limit refuses is counted by none (the
//! local limiters' rule). The script is loaded once (`SCRIPT LOAD`) and called by
//! its hash (`EVALSHA`); a server that lost it (`NOSCRIPT`, after a restart or a
//! failover) gets the whole script once more (`EVAL`).
//!
//! When Redis is down, slow (past `--redis-timeout`) or answers nonsense, the
//! request is decided by `--redis-fail` (open by default: served; closed: refused
//! with the limit's status), counted in `ingress_proxy_global_limit_checks`
//! (`outcome="error"`), and logged at most once a second.
//!
//! Keys carry a Redis Cluster hash tag (`{namespace/name|client}`), so the windows
//! of one key are on one node; a request that counts both per client and per route
//! touches two tags, which one script call on Redis Cluster does not allow: use a
//! single Redis server (or a primary with replicas), as Higress's and Kong's
//! cluster limits do.

use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use ingress_core::annotations::RateLimitPolicy;
use ingress_core::annotations::rate_limit::RateLimit;
use ingress_core::limits::global::{WindowKind, WindowPlan};
use ingress_core::limits::{FailMode, LimitKind, Rejected, Verdict};
use ingress_core::model::ObjectRef;

use crate::metrics::Metrics;
use crate::redis::{Redis, RedisAddr, RedisError, Reply};

/// The script: for each window `i` (1-based), `KEYS[2i-1]` is its counter and
/// `KEYS[2i]` the previous window's; `ARGV[1]` is the number of windows, then four
/// numbers per window: the previous window's weight (ms; 0 for fixed windows),
/// the window length (ms), the limit, and the counter's time to live (ms).
/// Returns the counts before this request, previous then current, per window.
pub const SCRIPT: &str = r"
local n = tonumber(ARGV[1])
local counts = {}
local fits = true
for i = 1, n do
  local weight = tonumber(ARGV[4 * i - 2])
  local length = tonumber(ARGV[4 * i - 1])
  local limit = tonumber(ARGV[4 * i])
  local current = tonumber(redis.call('GET', KEYS[2 * i - 1]) or '0')
  local previous = 0
  if weight > 0 then
    previous = tonumber(redis.call('GET', KEYS[2 * i]) or '0')
  end
  if math.floor(previous * weight / length) + current >= limit then
    fits = false
  end
  counts[2 * i - 1] = previous
  counts[2 * i] = current
end
if fits then
  for i = 1, n do
    redis.call('INCR', KEYS[2 * i - 1])
    redis.call('PEXPIRE', KEYS[2 * i - 1], ARGV[4 * i + 1])
  end
end
return counts
";

/// How the global limits are set up (the gateway config's Redis section).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalConfig {
    /// The Redis server.
    pub redis: RedisAddr,
    /// What a request gets when Redis has no answer.
    pub fail: FailMode,
    /// How long a check may wait for Redis.
    pub timeout: Duration,
    /// Fixed or sliding windows.
    pub window: WindowKind,
    /// The prefix of every key.
    pub prefix: String,
}

impl GlobalConfig {
    /// Redis at `redis`, failing open, 100 ms per check, sliding windows, keys
    /// under `ingress-rs:rl:`.
    pub fn new(redis: RedisAddr) -> GlobalConfig {
        GlobalConfig {
            redis,
            fail: FailMode::Open,
            timeout: Duration::from_millis(100),
            window: WindowKind::Sliding,
            prefix: "ingress-rs:rl:".into(),
        }
    }
}

/// The connection to Redis and what the checks need.
#[derive(Debug)]
pub(crate) struct GlobalLimits {
    config: GlobalConfig,
    redis: Redis,
    /// The script's SHA-1 as Redis returned it from `SCRIPT LOAD`.
    sha: Mutex<Option<String>>,
    /// Last error log line (ms since the epoch), to log at most once a second.
    last_log_ms: AtomicU64,
}

/// Why a check failed.
type CheckError = RedisError;

impl GlobalLimits {
    /// Starts the Redis connection task (on the current runtime).
    pub(crate) fn start(config: GlobalConfig) -> GlobalLimits {
        let redis = Redis::spawn(
            config.redis.clone(),
            config.timeout.max(Duration::from_secs(1)),
        );
        GlobalLimits {
            config,
            redis,
            sha: Mutex::new(None),
            last_log_ms: AtomicU64::new(0),
        }
    }

    /// The settings this store was started with.
    pub(crate) fn config(&self) -> &GlobalConfig {
        &self.config
    }

    /// Counts the request of `client` on a route of `ingress` under `policy`'s
    /// rates; `Err` with the refusal when a rate has no room.
    pub(crate) async fn check(
        &self,
        ingress: &ObjectRef,
        policy: &RateLimitPolicy,
        client: IpAddr,
        metrics: &Metrics,
    ) -> Result<(), Rejected> {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let owner = format!(
            "{}/{}",
            ingress.namespace.as_deref().unwrap_or(""),
            ingress.name
        );
        let mut plans: Vec<(LimitKind, RateLimit, WindowPlan)> = Vec::with_capacity(3);
        if !policy.exempt(Some(client)) {
            let key = format!("{owner}|{client}");
            for (index, limit) in policy.per_client.iter().enumerate() {
                let plan =
                    WindowPlan::new(&self.config.prefix, &key, limit, self.config.window, now);
                plans.push((
                    LimitKind::ClientRate {
                        index,
                        limit: *limit,
                    },
                    *limit,
                    plan,
                ));
            }
        }
        if let Some(limit) = policy.route {
            let key = format!("{owner}|route");
            let plan = WindowPlan::new(&self.config.prefix, &key, &limit, self.config.window, now);
            plans.push((LimitKind::RouteRate(limit), limit, plan));
        }
        if plans.is_empty() {
            return Ok(());
        }
        let counted = tokio::time::timeout(self.config.timeout, self.run(&plans)).await;
        let counts = match counted {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return self.failed(&plans, &e.to_string(), metrics),
            Err(_) => return self.failed(&plans, "timed out", metrics),
        };
        for ((by, limit, plan), (previous, current)) in plans.iter().zip(counts) {
            let v = plan.decide(previous, current);
            if !v.allowed {
                metrics.global_limit_check("limited");
                return Err(Rejected {
                    by: *by,
                    status: limit.status,
                    retry_after: v.retry_after,
                });
            }
        }
        metrics.global_limit_check("allowed");
        Ok(())
    }

    /// The answer when Redis has none: by the fail mode.
    fn failed(
        &self,
        plans: &[(LimitKind, RateLimit, WindowPlan)],
        why: &str,
        metrics: &Metrics,
    ) -> Result<(), Rejected> {
        metrics.global_limit_check("error");
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let last = self.last_log_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) >= 1000
            && self
                .last_log_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                redis = %self.config.redis.host_port,
                error = why,
                fail = ?self.config.fail,
                "global rate limit not checked"
            );
        }
        let verdict: Verdict =
            self.config
                .fail
                .resolve(Err(ingress_core::limits::GlobalError::Unavailable(
                    why.into(),
                )));
        match (verdict.allowed, plans.first()) {
            (true, _) | (false, None) => Ok(()),
            (false, Some((by, limit, _))) => Err(Rejected {
                by: *by,
                status: limit.status,
                retry_after: None,
            }),
        }
    }

    /// One script call; the (previous, current) counts per plan.
    async fn run(
        &self,
        plans: &[(LimitKind, RateLimit, WindowPlan)],
    ) -> Result<Vec<(u64, u64)>, CheckError> {
        let mut owned: Vec<String> = Vec::with_capacity(2 + plans.len() * 6);
        owned.push(plans.len().to_string());
        for (_, _, p) in plans {
            owned.push(p.current_key.clone());
            owned.push(
                p.previous_key
                    .clone()
                    .unwrap_or_else(|| p.current_key.clone()),
            );
        }
        for (_, _, p) in plans {
            owned.push(p.previous_weight_ms.to_string());
            owned.push(p.window.length_ms.to_string());
            owned.push(p.limit.to_string());
            owned.push(p.ttl.as_millis().max(1).to_string());
        }
        let keys = plans.len() * 2;
        let numkeys = keys.to_string();
        // [n, keys..., args...] -> EVALSHA sha numkeys keys... n args...
        let (n, rest) = owned.split_at(1);
        let (key_args, num_args) = rest.split_at(keys);
        let tail: Vec<&[u8]> = key_args
            .iter()
            .chain(n.iter())
            .chain(num_args.iter())
            .map(|s| s.as_bytes())
            .collect();
        let sha = match self.sha() {
            Some(s) => s,
            None => self.load().await?,
        };
        let mut args: Vec<&[u8]> = vec![b"EVALSHA", sha.as_bytes(), numkeys.as_bytes()];
        args.extend(tail.iter().copied());
        let mut reply = self.redis.command(&args).await?;
        if matches!(&reply, Reply::Error(e) if e.starts_with("NOSCRIPT")) {
            let mut args: Vec<&[u8]> = vec![b"EVAL", SCRIPT.as_bytes(), numkeys.as_bytes()];
            args.extend(tail.iter().copied());
            reply = self.redis.command(&args).await?;
        }
        counts(reply, plans.len())
    }

    fn sha(&self) -> Option<String> {
        self.sha
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    async fn load(&self) -> Result<String, CheckError> {
        match self
            .redis
            .command(&[b"SCRIPT", b"LOAD", SCRIPT.as_bytes()])
            .await?
        {
            Reply::Bulk(Some(b)) => {
                let sha = String::from_utf8(b)
                    .map_err(|_| RedisError::Protocol("script hash is not text".into()))?;
                *self
                    .sha
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(sha.clone());
                Ok(sha)
            }
            Reply::Error(e) => Err(RedisError::Server(e)),
            other => Err(RedisError::Protocol(format!(
                "SCRIPT LOAD answered {other:?}"
            ))),
        }
    }
}

/// The script's answer: 2 × `n` integers.
fn counts(reply: Reply, n: usize) -> Result<Vec<(u64, u64)>, CheckError> {
    let items = match reply {
        Reply::Array(Some(items)) if items.len() == 2 * n => items,
        Reply::Error(e) => return Err(RedisError::Server(e)),
        other => {
            return Err(RedisError::Protocol(format!(
                "the script answered {other:?}"
            )));
        }
    };
    let int = |r: &Reply| match r {
        Reply::Int(i) => {
            u64::try_from(*i).map_err(|_| RedisError::Protocol("negative count".into()))
        }
        other => Err(RedisError::Protocol(format!("count {other:?}"))),
    };
    items
        .chunks(2)
        .map(|c| Ok((int(&c[0])?, int(&c[1])?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_answers_are_read_in_pairs() {
        let r = Reply::Array(Some(vec![
            Reply::Int(3),
            Reply::Int(4),
            Reply::Int(0),
            Reply::Int(9),
        ]));
        assert_eq!(counts(r, 2), Ok(vec![(3, 4), (0, 9)]));
        assert!(counts(Reply::Array(Some(vec![Reply::Int(1)])), 1).is_err());
        assert!(counts(Reply::Error("ERR x".into()), 1).is_err());
        let neg = Reply::Array(Some(vec![Reply::Int(-1), Reply::Int(0)]));
        assert!(counts(neg, 1).is_err());
    }
}
