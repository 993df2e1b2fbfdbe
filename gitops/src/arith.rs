//! Remediation arithmetic: the new memory limit after OOM kills (the VPA rule),
//! the new replica ceiling when an HPA is maxed out. Never lower a value;
//! at the cap, say so instead of patching.
//!
//! Pure: numbers in, numbers out.

use crate::quantity::{Quantity, Unit};

/// 64Mi: new limits are rounded up to a multiple of this.
pub const ROUND_TO: u128 = 64 << 20;

/// How requests follow a raised limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requests {
    Keep,
    /// By the same factor, never above the new limit.
    Scale,
    MatchLimit,
}

/// The bump-memory rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BumpRule {
    pub factor: f64,
    pub step: u128,
    pub max: u128,
    /// Start here when the container has neither limit, request nor observed peak.
    pub default: u128,
    pub requests: Requests,
}

/// What a container has now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryNow {
    pub limit: Option<Quantity>,
    pub request: Option<Quantity>,
    /// Observed peak usage in bytes, if the signal carried one.
    pub peak: Option<u128>,
}

/// The outcome of the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryBump {
    /// New values; `request` is `None` when it stays as it is.
    Change {
        limit: Quantity,
        request: Option<Quantity>,
        /// What the new limit was computed from, for the pull request body.
        why: String,
    },
    /// The limit is already at (or above) the cap: escalate instead.
    AtCap { limit: u128, max: u128 },
}

fn times(bytes: u128, factor: f64) -> u128 {
    // f64 is exact for integers below 2^53 (8 PiB); memory limits are far below
    (bytes as f64 * factor).ceil() as u128
}

/// Apply the rule: new limit = max(current × factor, current + step), rounded up
/// to 64Mi, capped at `max`, never lower than now.
pub fn bump_memory(now: MemoryNow, rule: BumpRule) -> MemoryBump {
    let (base, from) = match (now.limit, now.request, now.peak) {
        (Some(l), _, _) => (l.bytes, format!("the current limit {l}")),
        (None, Some(r), _) => (r.bytes, format!("the request {r} (no limit set)")),
        (None, None, Some(p)) => (
            p,
            format!(
                "the observed peak {} (no limit or request)",
                Quantity::in_unit(p, Unit::Binary(2))
            ),
        ),
        (None, None, None) => (
            rule.default,
            format!(
                "the default {} (no limit, request or observed peak)",
                Quantity::in_unit(rule.default, Unit::Binary(2))
            ),
        ),
    };
    if base >= rule.max {
        return MemoryBump::AtCap {
            limit: base,
            max: rule.max,
        };
    }
    let grown = times(base, rule.factor).max(base + rule.step);
    let rounded = grown.div_ceil(ROUND_TO) * ROUND_TO;
    let limit_bytes = rounded.min(rule.max).max(base);
    let unit = now
        .limit
        .or(now.request)
        .map_or(Unit::Binary(2), |q| q.unit);
    let limit = Quantity::in_unit(limit_bytes, unit);
    let request = match (rule.requests, now.request) {
        (Requests::Keep, _) | (Requests::Scale, None) => None,
        (Requests::Scale, Some(r)) => {
            // whole Mi, so the diff shows a number a reviewer can read
            let scaled = times(r.bytes, rule.factor)
                .div_ceil(1 << 20)
                .saturating_mul(1 << 20)
                .min(limit_bytes)
                .max(r.bytes);
            (scaled != r.bytes).then(|| Quantity::in_unit(scaled, r.unit))
        }
        (Requests::MatchLimit, r) => {
            let keep = r.is_some_and(|r| r.bytes >= limit_bytes);
            (!keep).then(|| Quantity::in_unit(limit_bytes, r.map_or(unit, |r| r.unit)))
        }
    };
    let capped = if rounded > rule.max {
        ", capped at the maximum"
    } else {
        ""
    };
    MemoryBump::Change {
        limit,
        request,
        why: format!(
            "from {from}: max(×{}, +{}) rounded up to 64Mi{capped}",
            rule.factor,
            Quantity::in_unit(rule.step, Unit::Binary(2))
        ),
    }
}

impl BumpRule {
    /// The rule from a policy's `bump-memory` parameters (already validated
    /// by the policy; a quantity that still fails to parse is an error).
    pub fn from_params(p: &receiver_core::remediation::BumpMemory) -> Result<BumpRule, String> {
        let q = |field: &str, v: &str| {
            Quantity::parse(v)
                .map(|q| q.bytes)
                .map_err(|e| format!("bump-memory {field}: {e}"))
        };
        Ok(BumpRule {
            factor: p.factor,
            step: q("step", &p.step)?,
            max: q("max", &p.max)?,
            default: q("default", &p.default)?,
            requests: match p.requests {
                receiver_core::remediation::RequestsRule::Keep => Requests::Keep,
                receiver_core::remediation::RequestsRule::Scale => Requests::Scale,
                receiver_core::remediation::RequestsRule::MatchLimit => Requests::MatchLimit,
            },
        })
    }
}

/// The outcome of scale-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleUp {
    To(u32),
    AtCap { current: u32, cap: u32 },
}

/// Raise `current` by `percent` (at least +1), up to `cap`; never lower.
pub fn scale_up(current: u32, percent: u32, cap: u32) -> ScaleUp {
    if current >= cap {
        return ScaleUp::AtCap { current, cap };
    }
    let add = (u64::from(current) * u64::from(percent))
        .div_ceil(100)
        .max(1);
    let new = (u64::from(current) + add).min(u64::from(cap));
    ScaleUp::To(u32::try_from(new).unwrap_or(cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MI: u128 = 1 << 20;
    const GI: u128 = 1 << 30;

    fn rule() -> BumpRule {
        BumpRule {
            factor: 1.2,
            step: 100 * MI,
            max: 8 * GI,
            default: 256 * MI,
            requests: Requests::Scale,
        }
    }

    fn q(s: &str) -> Option<Quantity> {
        Some(Quantity::parse(s).unwrap())
    }

    fn change(b: MemoryBump) -> (String, Option<String>) {
        match b {
            MemoryBump::Change { limit, request, .. } => {
                (limit.to_string(), request.map(|r| r.to_string()))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn small_limits_grow_by_the_step_and_large_ones_by_the_factor() {
        // 256Mi: ×1.2 = 307.2Mi < +100Mi = 356Mi → 384Mi (64Mi multiple)
        let now = MemoryNow {
            limit: q("256Mi"),
            request: q("128Mi"),
            peak: None,
        };
        assert_eq!(
            change(bump_memory(now, rule())),
            ("384Mi".into(), Some("154Mi".into()))
        );
        // 2Gi: ×1.2 = 2457.6Mi > +100Mi → 2496Mi
        let now = MemoryNow {
            limit: q("2Gi"),
            request: None,
            peak: None,
        };
        assert_eq!(change(bump_memory(now, rule())), ("2496Mi".into(), None));
    }

    #[test]
    fn the_files_unit_is_kept_when_exact() {
        let now = MemoryNow {
            limit: q("1Gi"),
            request: None,
            peak: None,
        };
        // 1Gi ×1.2 = 1228.8Mi → 1280Mi: not whole Gi, so Mi
        assert_eq!(change(bump_memory(now, rule())).0, "1280Mi");
        let r = BumpRule {
            factor: 2.0,
            ..rule()
        };
        assert_eq!(change(bump_memory(now, r)).0, "2Gi");
        let dec = MemoryNow {
            limit: q("1000M"),
            request: None,
            peak: None,
        };
        // 1000M ×1.2 = 1.2e9 → rounded up to 64Mi = 1152Mi, not exact in M
        assert_eq!(change(bump_memory(dec, rule())).0, "1152Mi");
    }

    #[test]
    fn without_a_limit_start_from_request_then_peak_then_default() {
        let now = MemoryNow {
            limit: None,
            request: q("512Mi"),
            peak: None,
        };
        let (limit, _) = change(bump_memory(now, rule()));
        assert_eq!(limit, "640Mi");
        let now = MemoryNow {
            limit: None,
            request: None,
            peak: Some(700 * MI),
        };
        assert_eq!(change(bump_memory(now, rule())).0, "896Mi");
        let now = MemoryNow::default();
        assert_eq!(change(bump_memory(now, rule())).0, "384Mi");
    }

    #[test]
    fn capped_at_max_and_at_cap_when_already_there() {
        let now = MemoryNow {
            limit: q("7900Mi"),
            request: None,
            peak: None,
        };
        assert_eq!(
            change(bump_memory(now, rule())).0,
            "8192Mi",
            "the file's unit is kept"
        );
        let now = MemoryNow {
            limit: q("7Gi"),
            request: None,
            peak: None,
        };
        assert_eq!(change(bump_memory(now, rule())).0, "8Gi");
        let now = MemoryNow {
            limit: q("8Gi"),
            request: None,
            peak: None,
        };
        assert_eq!(
            bump_memory(now, rule()),
            MemoryBump::AtCap {
                limit: 8 * GI,
                max: 8 * GI
            }
        );
        let now = MemoryNow {
            limit: q("16Gi"),
            request: None,
            peak: None,
        };
        assert!(
            matches!(bump_memory(now, rule()), MemoryBump::AtCap { .. }),
            "never lowered"
        );
    }

    #[test]
    fn request_rules() {
        let now = MemoryNow {
            limit: q("1Gi"),
            request: q("1Gi"),
            peak: None,
        };
        // scale: 1Gi ×1.2 = 1228.8Mi → 1229Mi (whole Mi), never above the new limit 1280Mi
        let (limit, req) = change(bump_memory(now, rule()));
        assert_eq!(limit, "1280Mi");
        assert_eq!(req.as_deref(), Some("1229Mi"));
        let tight = MemoryNow {
            limit: q("1Gi"),
            request: q("1200Mi"),
            peak: None,
        };
        assert_eq!(
            change(bump_memory(tight, rule())).1.as_deref(),
            Some("1280Mi"),
            "never above the limit"
        );
        let keep = BumpRule {
            requests: Requests::Keep,
            ..rule()
        };
        assert_eq!(change(bump_memory(now, keep)).1, None);
        let matched = BumpRule {
            requests: Requests::MatchLimit,
            ..rule()
        };
        assert_eq!(change(bump_memory(now, matched)).1, Some("1280Mi".into()));
    }

    #[test]
    fn scale_up_by_percent_at_least_one_never_above_cap() {
        assert_eq!(scale_up(10, 50, 50), ScaleUp::To(15));
        assert_eq!(scale_up(1, 50, 50), ScaleUp::To(2));
        assert_eq!(scale_up(3, 10, 50), ScaleUp::To(4));
        assert_eq!(scale_up(40, 50, 50), ScaleUp::To(50));
        assert_eq!(
            scale_up(50, 50, 50),
            ScaleUp::AtCap {
                current: 50,
                cap: 50
            }
        );
        assert_eq!(
            scale_up(60, 50, 50),
            ScaleUp::AtCap {
                current: 60,
                cap: 50
            }
        );
    }
}
