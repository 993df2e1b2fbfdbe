//! The finalizer age gate: whether heal8s may strip the finalizers of an
//! object stuck terminating (cleanup-resource's last resort), decided.
//!
//! Owns: the rule (removal enabled by the route, and the object terminating
//! for at least the gate) and the sentences that explain the decision. Pure:
//! the executor in receiver-k8s reads the object, asks [`decide`] with the
//! time, and carries the answer out; nothing here does IO.

use std::fmt;
use std::time::Duration;

use jiff::Timestamp;

use crate::detect::custom::Meta;

/// The rule a removal must pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gate {
    /// The route enables finalizer removal (cleanup-resource's `removeFinalizers`).
    pub enabled: bool,
    /// How long the object must have been terminating first.
    pub after: Duration,
}

/// Why finalizers holding a terminating object stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The route does not enable finalizer removal.
    NotEnabled,
    /// Terminating for less than the gate.
    TooYoung,
}

/// What may be done about an object's finalizers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finalizers {
    /// Not terminating: its deletion (not its finalizers) is what is due.
    NotTerminating,
    /// Terminating with no finalizers: the API server finishes the deletion.
    None,
    /// Terminating, held by `finalizers`, and they stay.
    Wait {
        why: Wait,
        finalizers: Vec<String>,
        stuck_for: Duration,
        after: Duration,
    },
    /// Remove `finalizers`: terminating for `stuck_for`, at least the gate.
    Remove {
        finalizers: Vec<String>,
        stuck_for: Duration,
        after: Duration,
    },
}

/// Whether the finalizers of an object with metadata `meta` may be removed at
/// `now` under `gate`. Exactly at the gate counts as old enough.
pub fn decide(meta: &Meta, gate: Gate, now: Timestamp) -> Finalizers {
    let Some(since) = meta.deleting_since else {
        return Finalizers::NotTerminating;
    };
    if meta.finalizers.is_empty() {
        return Finalizers::None;
    }
    let stuck_for = crate::detect::age(now, since);
    let finalizers = meta.finalizers.clone();
    let after = gate.after;
    if !gate.enabled {
        Finalizers::Wait {
            why: Wait::NotEnabled,
            finalizers,
            stuck_for,
            after,
        }
    } else if stuck_for < after {
        Finalizers::Wait {
            why: Wait::TooYoung,
            finalizers,
            stuck_for,
            after,
        }
    } else {
        Finalizers::Remove {
            finalizers,
            stuck_for,
            after,
        }
    }
}

impl Finalizers {
    /// The sentence the outcome says about `object`'s finalizers (`None`
    /// when there is nothing to say about them). For a removal it is also
    /// the note of the Event on the object.
    pub fn sentence(&self, object: &dyn fmt::Display) -> Option<String> {
        match self {
            Finalizers::NotTerminating | Finalizers::None => None,
            Finalizers::Wait {
                why: Wait::NotEnabled,
                finalizers,
                stuck_for,
                ..
            } => Some(format!(
                "{object} has been terminating for {}s held by finalizers [{}]; finalizer removal is not enabled",
                stuck_for.as_secs(),
                finalizers.join(", ")
            )),
            Finalizers::Wait {
                why: Wait::TooYoung,
                finalizers,
                stuck_for,
                after,
            } => Some(format!(
                "{object} has been terminating for {}s; finalizers [{}] are removed only after {}s",
                stuck_for.as_secs(),
                finalizers.join(", "),
                after.as_secs()
            )),
            Finalizers::Remove {
                finalizers,
                stuck_for,
                after,
            } => Some(format!(
                "heal8s removed finalizers [{}] from {object}: terminating for {}s, longer than {}s (last resort)",
                finalizers.join(", "),
                stuck_for.as_secs(),
                after.as_secs()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    /// An object deleted `ago` seconds before `t(0)` (not deleted: `None`).
    fn mk_meta(ago: Option<i64>, finalizers: &[&str]) -> Meta {
        Meta {
            name: "dv-1".into(),
            namespace: Some("e2e-1".into()),
            uid: None,
            created: Some(t(-3600)),
            deleting_since: ago.map(|a| t(-a)),
            finalizers: finalizers.iter().map(|f| f.to_string()).collect(),
        }
    }

    const ON: Gate = Gate {
        enabled: true,
        after: Duration::from_secs(300),
    };

    #[test]
    fn a_young_terminating_object_keeps_its_finalizers() {
        let d = decide(&mk_meta(Some(299), &["cdi.kubevirt.io/x"]), ON, t(0));
        assert_eq!(
            d,
            Finalizers::Wait {
                why: Wait::TooYoung,
                finalizers: vec!["cdi.kubevirt.io/x".into()],
                stuck_for: Duration::from_secs(299),
                after: Duration::from_secs(300),
            }
        );
        assert_eq!(
            d.sentence(&"DataVolume e2e-1/dv-1").as_deref(),
            Some(
                "DataVolume e2e-1/dv-1 has been terminating for 299s; finalizers [cdi.kubevirt.io/x] are removed only after 300s"
            )
        );
    }

    #[test]
    fn exactly_at_the_gate_the_finalizers_are_removed() {
        let d = decide(&mk_meta(Some(300), &["a", "b"]), ON, t(0));
        assert_eq!(
            d,
            Finalizers::Remove {
                finalizers: vec!["a".into(), "b".into()],
                stuck_for: Duration::from_secs(300),
                after: Duration::from_secs(300),
            }
        );
    }

    #[test]
    fn an_object_stuck_longer_than_the_gate_loses_its_finalizers() {
        let d = decide(&mk_meta(Some(3600), &["a", "b"]), ON, t(0));
        assert!(matches!(d, Finalizers::Remove { .. }), "{d:?}");
        assert_eq!(
            d.sentence(&"DataVolume e2e-1/dv-1").as_deref(),
            Some(
                "heal8s removed finalizers [a, b] from DataVolume e2e-1/dv-1: terminating for 3600s, longer than 300s (last resort)"
            )
        );
        // the clock moving on never undoes the decision
        assert!(matches!(
            decide(&mk_meta(Some(3600), &["a"]), ON, t(86_400)),
            Finalizers::Remove { .. }
        ));
    }

    #[test]
    fn removal_not_enabled_waits_however_long_it_is_stuck() {
        let off = Gate {
            enabled: false,
            ..ON
        };
        let d = decide(&mk_meta(Some(86_400), &["a"]), off, t(0));
        assert!(
            matches!(
                d,
                Finalizers::Wait {
                    why: Wait::NotEnabled,
                    ..
                }
            ),
            "{d:?}"
        );
        assert_eq!(
            d.sentence(&"X e2e-1/dv-1").as_deref(),
            Some(
                "X e2e-1/dv-1 has been terminating for 86400s held by finalizers [a]; finalizer removal is not enabled"
            )
        );
    }

    #[test]
    fn an_object_not_terminating_has_no_finalizer_decision() {
        let d = decide(&mk_meta(None, &["a"]), ON, t(0));
        assert_eq!(d, Finalizers::NotTerminating);
        assert_eq!(d.sentence(&"X"), None);
    }

    #[test]
    fn a_terminating_object_without_finalizers_needs_nothing_removed() {
        let d = decide(&mk_meta(Some(86_400), &[]), ON, t(0));
        assert_eq!(d, Finalizers::None);
        assert_eq!(d.sentence(&"X"), None);
    }

    #[test]
    fn a_deletion_time_in_the_future_counts_as_just_now() {
        // clock skew between heal8s and the API server
        let d = decide(&mk_meta(Some(-60), &["a"]), ON, t(0));
        assert!(
            matches!(
                d,
                Finalizers::Wait {
                    why: Wait::TooYoung,
                    stuck_for: Duration::ZERO,
                    ..
                }
            ),
            "{d:?}"
        );
    }
}
