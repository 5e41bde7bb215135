//! Fault injection: rules that make the sink misbehave on purpose so push-side retry logic can
//! be tested against a real socket.
//!
//! Rules match a request by substring of its URL path. Control paths (`/_sink/…`, `/report`)
//! are never subject to faults, so a test can always reconfigure or read the report.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What a fault does to a matching request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Read `n` bytes of the request body (counted on the wire after the request head, chunk
    /// framing included), then reset the connection (TCP RST via `SO_LINGER` 0).
    ResetAfterBytes(u64),
    /// Answer `code` (without reading the body) on the `nth_request`-th matching request
    /// (1-based; 0 = every matching request), then close the connection.
    Status {
        /// HTTP status code to answer, e.g. 403, 409, 503.
        code: u16,
        /// Which matching request gets it (1-based); 0 means all of them.
        nth_request: u32,
    },
    /// Read `after_bytes` body bytes, then stop reading (and never answer) until the client
    /// gives up or the sink shuts down.
    Stall {
        /// Body bytes read before the stall begins.
        after_bytes: u64,
    },
    /// Read the body no faster than `bytes_per_sec`.
    SlowRead {
        /// Read rate limit in bytes per second (at least 1).
        bytes_per_sec: u64,
    },
    /// For `secs` seconds after the rule is installed, reset (RST) every matching connection
    /// right after its request head, without an answer.
    RefuseFor {
        /// Length of the refusal window in seconds.
        secs: u64,
    },
}

/// One fault rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRule {
    /// Substring of the request path the rule applies to; empty matches every (non-control)
    /// request.
    #[serde(default)]
    pub path: String,
    /// What happens.
    pub kind: FaultKind,
    /// How many times the rule may fire; `None` = unlimited. (`Status` with a specific
    /// `nth_request` fires at most once anyway.)
    #[serde(default)]
    pub times: Option<u32>,
}

impl FaultRule {
    /// A rule that fires on every matching request.
    pub fn new(path: impl Into<String>, kind: FaultKind) -> Self {
        Self {
            path: path.into(),
            kind,
            times: None,
        }
    }

    /// The same rule limited to `n` firings.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }
}

/// The fault decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Reset right after the request head.
    Refuse,
    /// Answer this status and close.
    Status(u16),
    /// Apply to the body read loop.
    Body(BodyFault),
}

/// Faults applied while reading a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct BodyFault {
    pub reset_after: Option<u64>,
    pub stall_after: Option<u64>,
    pub bytes_per_sec: Option<u64>,
}

impl BodyFault {
    pub fn is_none(&self) -> bool {
        *self == BodyFault::default()
    }
}

#[derive(Debug)]
struct RuleState {
    rule: FaultRule,
    installed: Instant,
    matched: u64,
    fired: u32,
}

/// The installed rules and their counters.
#[derive(Debug, Default)]
pub(crate) struct FaultSet {
    rules: Vec<RuleState>,
    fired_total: u64,
}

/// True for paths that faults never touch.
pub(crate) fn is_control_path(path: &str) -> bool {
    path.starts_with("/_sink/") || path == "/report"
}

impl FaultSet {
    pub fn new(rules: Vec<FaultRule>, now: Instant) -> Self {
        let mut s = Self::default();
        s.replace(rules, now);
        s
    }

    /// Replaces every rule (counters restart).
    pub fn replace(&mut self, rules: Vec<FaultRule>, now: Instant) {
        self.rules = rules
            .into_iter()
            .map(|rule| RuleState {
                rule,
                installed: now,
                matched: 0,
                fired: 0,
            })
            .collect();
    }

    pub fn rules(&self) -> Vec<FaultRule> {
        self.rules.iter().map(|r| r.rule.clone()).collect()
    }

    /// Total number of faults fired since start.
    pub fn fired_total(&self) -> u64 {
        self.fired_total
    }

    /// Decides what happens to a request for `path`. Counts matches and firings. The first
    /// rule that produces a head-level decision (refuse, status) wins; body faults from all
    /// matching rules are combined.
    pub fn decide(&mut self, path: &str, now: Instant) -> Option<Decision> {
        if is_control_path(path) {
            return None;
        }
        let mut body = BodyFault::default();
        let mut fired = 0;
        let mut head_decision = None;
        for r in &mut self.rules {
            if !path.contains(r.rule.path.as_str()) {
                continue;
            }
            if r.rule.times.is_some_and(|t| r.fired >= t) {
                continue;
            }
            r.matched += 1;
            let fire = match r.rule.kind {
                FaultKind::RefuseFor { secs } => {
                    let active =
                        now.saturating_duration_since(r.installed) < Duration::from_secs(secs);
                    if active && head_decision.is_none() {
                        head_decision = Some(Decision::Refuse);
                    }
                    active
                }
                FaultKind::Status { code, nth_request } => {
                    let hit = nth_request == 0 || r.matched == u64::from(nth_request);
                    if hit && head_decision.is_none() {
                        head_decision = Some(Decision::Status(code));
                    }
                    hit
                }
                FaultKind::ResetAfterBytes(n) => {
                    body.reset_after = Some(body.reset_after.map_or(n, |m| m.min(n)));
                    true
                }
                FaultKind::Stall { after_bytes } => {
                    body.stall_after =
                        Some(body.stall_after.map_or(after_bytes, |m| m.min(after_bytes)));
                    true
                }
                FaultKind::SlowRead { bytes_per_sec } => {
                    let bps = bytes_per_sec.max(1);
                    body.bytes_per_sec = Some(body.bytes_per_sec.map_or(bps, |m| m.min(bps)));
                    true
                }
            };
            if fire {
                r.fired = r.fired.saturating_add(1);
                fired += 1;
            }
        }
        self.fired_total += fired;
        if let Some(d) = head_decision {
            return Some(d);
        }
        if body.is_none() {
            None
        } else {
            Some(Decision::Body(body))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fires_only_on_the_nth_matching_request() {
        let now = Instant::now();
        let mut f = FaultSet::new(
            vec![FaultRule::new(
                "Streams(v)",
                FaultKind::Status {
                    code: 503,
                    nth_request: 2,
                },
            )],
            now,
        );
        assert_eq!(f.decide("/live.isml/Streams(a)", now), None);
        assert_eq!(f.decide("/live.isml/Streams(v)", now), None);
        assert_eq!(
            f.decide("/live.isml/Streams(v)", now),
            Some(Decision::Status(503))
        );
        assert_eq!(f.decide("/live.isml/Streams(v)", now), None);
        assert_eq!(f.decide("/report", now), None);
    }

    #[test]
    fn refuse_window_expires_and_times_limits_firings() {
        let now = Instant::now();
        let mut f = FaultSet::new(
            vec![
                FaultRule::new("", FaultKind::RefuseFor { secs: 2 }),
                FaultRule::new("x", FaultKind::ResetAfterBytes(10)).times(1),
            ],
            now,
        );
        assert_eq!(f.decide("/a", now), Some(Decision::Refuse));
        assert_eq!(f.decide("/a", now + Duration::from_secs(3)), None);
        let later = now + Duration::from_secs(3);
        assert_eq!(
            f.decide("/x", later),
            Some(Decision::Body(BodyFault {
                reset_after: Some(10),
                ..Default::default()
            }))
        );
        assert_eq!(f.decide("/x", later), None);
    }

    #[test]
    fn rules_round_trip_through_json() {
        let rules = vec![
            FaultRule::new("a", FaultKind::ResetAfterBytes(5)),
            FaultRule::new(
                "b",
                FaultKind::Status {
                    code: 403,
                    nth_request: 1,
                },
            )
            .times(1),
            FaultRule::new(
                "",
                FaultKind::SlowRead {
                    bytes_per_sec: 1000,
                },
            ),
        ];
        let json = serde_json::to_string(&rules).unwrap();
        let back: Vec<FaultRule> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, rules);
        let manual: Vec<FaultRule> =
            serde_json::from_str(r#"[{"path":"v","kind":{"stall":{"after_bytes":7}}}]"#).unwrap();
        assert_eq!(manual[0].kind, FaultKind::Stall { after_bytes: 7 });
    }
}
