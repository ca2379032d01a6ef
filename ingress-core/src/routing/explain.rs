//! [`RouteTable::explain`]: the decision for one request, and why.

use serde::Serialize;

use super::matching::{match_key, rank};
use super::request::{self, RequestView, normalize_path};
use super::table::{HostRoutes, Route, RouteId, RouteMatch};
use super::{Decision, RouteTable};
use crate::compile::Profile;

/// Which host level of the table a route belongs to, in the order they are consulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostLevel {
    /// The exact host.
    Exact,
    /// A wildcard host.
    Wildcard,
    /// Rules without a host.
    AnyHost,
    /// The catch-all default backend.
    CatchAll,
}

impl HostLevel {
    /// Human name.
    pub fn describe(self) -> &'static str {
        match self {
            HostLevel::Exact => "exact host",
            HostLevel::Wildcard => "wildcard host",
            HostLevel::AnyHost => "rules without a host",
            HostLevel::CatchAll => "default backend",
        }
    }
}

/// What happened to one candidate route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// It decided the request.
    Chosen,
    /// It matched, but another route ranks higher.
    Outranked {
        /// The winner.
        by: RouteId,
        /// Why the winner ranks higher.
        why: String,
    },
    /// It does not match the request.
    NoMatch {
        /// Why.
        why: String,
    },
    /// It was never looked at: an earlier level decided.
    NotConsulted {
        /// Why.
        why: String,
    },
}

/// One route considered for the request.
#[derive(Debug, Clone, Serialize)]
pub struct Step<'a> {
    /// The route.
    #[serde(skip)]
    pub route: &'a Route,
    /// The host level it sits in.
    pub level: HostLevel,
    /// What happened to it.
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// The decision for one request and the reasoning behind it.
#[derive(Debug, Clone)]
pub struct Explanation<'a> {
    /// The decision, identical to [`RouteTable::route`]'s.
    pub decision: Decision<'a>,
    /// The host as compared (lower case, no port).
    pub host: String,
    /// The path as compared (normalised).
    pub path: String,
    /// The level that decided.
    pub level: HostLevel,
    /// Every route of the hosts that could apply, in consultation order.
    pub steps: Vec<Step<'a>>,
}

impl RouteTable {
    /// Like [`RouteTable::route`], plus which routes were considered and why each one
    /// won, lost or did not match. Slower; for tools, not for the data path.
    pub fn explain<'a>(&'a self, req: &RequestView<'a>) -> Explanation<'a> {
        self.explain_with(req, &super::RouteInputs::default())
    }

    /// [`RouteTable::explain`] with caller-supplied randomness (as
    /// [`RouteTable::route_with`]).
    pub fn explain_with<'a>(
        &'a self,
        req: &RequestView<'a>,
        inputs: &super::RouteInputs,
    ) -> Explanation<'a> {
        let mut buf = [0u8; 256];
        let path = normalize_path(req.path).into_owned();
        let Some(host) = request::host_key(req.host, &mut buf).map(str::to_owned) else {
            // An unusable Host header: route() answered 400 without looking at routes.
            return Explanation {
                decision: self.route_with(req, inputs),
                host: req.host.to_owned(),
                path,
                level: HostLevel::CatchAll,
                steps: Vec::new(),
            };
        };
        let found = self.find(&host, &path);
        // The same decision route() makes, from this very lookup.
        let decision = match found.route {
            None => self
                .www_redirect_for(&host, req)
                .unwrap_or_else(|| self.decide(None, req, normalize_path(req.path), inputs)),
            route => self.decide(route, req, normalize_path(req.path), inputs),
        };
        let nginx = self.profile == Profile::IngressNginx;

        let mut levels: Vec<(HostLevel, &HostRoutes)> = Vec::new();
        if let Some(hr) = self.exact_hosts.get(host.as_str()) {
            levels.push((HostLevel::Exact, hr));
        }
        if let Some(hr) = self.wildcard(&host) {
            levels.push((HostLevel::Wildcard, hr));
        }
        if let Some(hr) = &self.any_host {
            levels.push((HostLevel::AnyHost, hr));
        }

        let winner = found.route;
        let winner_rank = winner.and_then(|id| self.rank_of(id, &path));
        let mut steps = Vec::new();
        let mut decided = false;
        for (level, hr) in levels {
            for &id in &hr.all {
                let route = self.route_by_id(id);
                let verdict = if Some(id) == winner {
                    Verdict::Chosen
                } else if decided {
                    Verdict::NotConsulted {
                        why: format!("the {} decided first", found.level.describe()),
                    }
                } else {
                    self.verdict(route, &path, winner, winner_rank, found.level, level)
                };
                steps.push(Step {
                    route,
                    level,
                    verdict,
                });
            }
            if let Some(fb) = hr.fallback
                && !hr.all.contains(&fb)
            {
                let route = self.route_by_id(fb);
                let verdict = if Some(fb) == winner {
                    Verdict::Chosen
                } else {
                    Verdict::NotConsulted {
                        why: "used only when no path of this host matches".into(),
                    }
                };
                steps.push(Step {
                    route,
                    level,
                    verdict,
                });
            }
            if level == found.level || (nginx && level != HostLevel::AnyHost) {
                decided = true;
            }
        }
        if let Some(id) = self.catch_all {
            let verdict = if Some(id) == winner {
                Verdict::Chosen
            } else {
                Verdict::NotConsulted {
                    why: "used only when nothing else matches".into(),
                }
            };
            steps.push(Step {
                route: self.route_by_id(id),
                level: HostLevel::CatchAll,
                verdict,
            });
        }
        Explanation {
            decision,
            host,
            path,
            level: found.level,
            steps,
        }
    }

    fn rank_of(&self, id: RouteId, path: &str) -> Option<super::Rank> {
        let route = self.route_by_id(id);
        if route.regex.is_some() {
            return None;
        }
        let RouteMatch::Path(p) = &route.matcher else {
            return None;
        };
        let (kind, key) = match_key(p, self.profile == Profile::IngressNginx);
        rank(
            kind,
            key,
            p.path_type(),
            path,
            self.profile == Profile::IngressNginx,
        )
    }

    fn verdict(
        &self,
        route: &Route,
        path: &str,
        winner: Option<RouteId>,
        winner_rank: Option<super::Rank>,
        winner_level: HostLevel,
        level: HostLevel,
    ) -> Verdict {
        let RouteMatch::Path(p) = &route.matcher else {
            return Verdict::NotConsulted {
                why: "used only when no path of this host matches".into(),
            };
        };
        if let Some(re) = &route.regex {
            if !re.0.is_match(path) {
                return Verdict::NoMatch {
                    why: format!("regex {} does not match {path}", re.as_str()),
                };
            }
            let Some(by) = winner else {
                return Verdict::NoMatch {
                    why: "no route chosen".into(),
                };
            };
            let why = if level != winner_level {
                format!(
                    "the {} is consulted before the {}",
                    winner_level.describe(),
                    level.describe()
                )
            } else if self.route_by_id(by).regex.is_some() {
                "an earlier regex in the host's order (longest path first) matched".to_owned()
            } else {
                "Exact and Prefix paths win over regex paths".to_owned()
            };
            return Verdict::Outranked { by, why };
        }
        let Some(r) = self.rank_of(route.id, path) else {
            let why = match p.path_type() {
                super::super::model::PathType::Exact => {
                    format!("Exact path {} is not {path}", p.as_str())
                }
                _ if self.profile == Profile::IngressNginx
                    && p.path_type() == crate::model::PathType::ImplementationSpecific =>
                {
                    format!("{path} does not start with {}", p.as_str())
                }
                _ => format!(
                    "{} is not {path} nor a path-element prefix of it",
                    p.as_str()
                ),
            };
            return Verdict::NoMatch { why };
        };
        let Some(by) = winner else {
            return Verdict::NoMatch {
                why: "no route chosen".into(),
            };
        };
        if level != winner_level {
            return Verdict::Outranked {
                by,
                why: format!(
                    "the {} is consulted before the {}",
                    winner_level.describe(),
                    level.describe()
                ),
            };
        }
        let why = match winner_rank {
            Some(w) if w.exact && !r.exact => "an exact match beats a prefix match".to_owned(),
            Some(w) if w.len > r.len => "the longest matching path wins".to_owned(),
            Some(w) if w.path_type != r.path_type => {
                format!("{} beats {} for the same path", w.path_type, r.path_type)
            }
            _ => "an older Ingress owns the same path".to_owned(),
        };
        Verdict::Outranked { by, why }
    }
}
