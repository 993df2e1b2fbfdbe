//! Times heal8s only records: maintenance windows (weekday and time ranges
//! in a time zone, per remediation and namespace) and holds while an alert
//! fires ("no node drains while KubeAPIErrorBudgetBurn fires").
//!
//! Owns: whether a window is open at an instant, which alerts fire now (as
//! heal8s has seen them: firing and not resolved), and the refusals
//! (`maintenance_window`, `held_by_alert`). Pure; the clock is passed in.

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;
use regex::Regex;

use crate::alertmanager::AlertStatus;
use crate::plan::Plan;
use crate::policy::{HoldWhileFiring, MaintenanceWindow};
use crate::signal::{Signal, SourceKind};

use super::{Refusal, RefusalReason};

/// An alert heal8s saw firing and never resolved stops holding anything this
/// long after its last delivery (Alertmanager re-sends a firing alert at
/// least every `repeat_interval`, 4h by default).
pub const FIRING_FORGOTTEN_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Firing alerts remembered at most.
pub const MAX_FIRING: usize = 10_000;

/// A window ready to be asked.
#[derive(Debug, Clone)]
struct Window {
    spec: MaintenanceWindow,
    tz: TimeZone,
    start: Time,
    end: Time,
    namespaces: Vec<Regex>,
}

fn weekday(d: Weekday) -> crate::policy::Day {
    use crate::policy::Day;
    match d {
        Weekday::Monday => Day::Mon,
        Weekday::Tuesday => Day::Tue,
        Weekday::Wednesday => Day::Wed,
        Weekday::Thursday => Day::Thu,
        Weekday::Friday => Day::Fri,
        Weekday::Saturday => Day::Sat,
        Weekday::Sunday => Day::Sun,
    }
}

impl Window {
    fn new(spec: &MaintenanceWindow) -> Result<Window, String> {
        let (tz, start, end, namespaces) = spec.parts()?;
        Ok(Window {
            spec: spec.clone(),
            tz,
            start,
            end,
            namespaces,
        })
    }

    fn on(&self, d: Weekday) -> bool {
        self.spec.days.is_empty() || self.spec.days.contains(&weekday(d))
    }

    /// Whether the window is open at `now`. A window whose end is not after
    /// its start runs past midnight into the next day.
    fn open(&self, now: Timestamp) -> bool {
        let z = now.to_zoned(self.tz.clone());
        let (day, t) = (z.weekday(), z.time());
        if self.start < self.end {
            self.on(day) && t >= self.start && t < self.end
        } else {
            (self.on(day) && t >= self.start) || (self.on(day.previous()) && t < self.end)
        }
    }

    fn covers(&self, plan: &Plan) -> bool {
        let kind_ok =
            self.spec.remediations.is_empty() || self.spec.remediations.contains(&plan.kind());
        let ns_ok = self.namespaces.is_empty()
            || plan
                .namespace()
                .is_some_and(|ns| self.namespaces.iter().any(|r| r.is_match(ns)));
        kind_ok && ns_ok
    }
}

/// The policy's windows and holds, and the alerts firing now.
#[derive(Debug, Clone, Default)]
pub struct Holds {
    windows: Vec<Window>,
    rules: Vec<HoldWhileFiring>,
    /// Alerts matching a hold, firing as last seen: fingerprint → (alertname, rule index, last seen).
    firing: HashMap<String, (String, usize, Timestamp)>,
}

impl Holds {
    /// The holds of the policy; every problem at once (path under `guard`, message).
    pub fn new(
        windows: &[MaintenanceWindow],
        rules: &[HoldWhileFiring],
    ) -> Result<Holds, Vec<(String, String)>> {
        let problems = crate::policy::holds_problems(windows, rules);
        if !problems.is_empty() {
            return Err(problems);
        }
        let windows = windows
            .iter()
            .map(Window::new)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| vec![("maintenanceWindows".to_string(), e)])?;
        Ok(Holds {
            windows,
            rules: rules.to_vec(),
            firing: HashMap::new(),
        })
    }

    /// Learn from an alert: firing and matching a hold, it holds from now;
    /// resolved, it no longer does.
    pub fn observe(&mut self, signal: &Signal, now: Timestamp) {
        if signal.source.kind() != SourceKind::Alert || self.rules.is_empty() {
            return;
        }
        match signal.status {
            AlertStatus::Resolved => {
                self.firing.remove(&signal.fingerprint);
            }
            AlertStatus::Firing => {
                let Some(i) = self
                    .rules
                    .iter()
                    .position(|r| r.matchers.iter().all(|m| m.matches(&signal.labels)))
                else {
                    return;
                };
                if self.firing.len() >= MAX_FIRING && !self.firing.contains_key(&signal.fingerprint)
                {
                    return;
                }
                self.firing.insert(
                    signal.fingerprint.clone(),
                    (signal.name().to_string(), i, now),
                );
            }
        }
    }

    /// Why `plan` may not change anything at `now`, if a window is open or
    /// a hold's alert fires.
    pub fn refusal(&self, plan: &Plan, now: Timestamp) -> Option<Refusal> {
        if let Some(w) = self.windows.iter().find(|w| w.covers(plan) && w.open(now)) {
            return Some(Refusal::new(
                RefusalReason::MaintenanceWindow,
                format!(
                    "maintenance window {} is open ({}–{} {}{}): heal8s only records",
                    w.spec.name,
                    w.spec.start,
                    w.spec.end,
                    w.spec.time_zone,
                    if w.spec.days.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " on {}",
                            w.spec
                                .days
                                .iter()
                                .map(|d| d.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                ),
            ));
        }
        let kind = plan.kind();
        self.firing
            .values()
            .filter(|(_, _, seen)| now.duration_since(*seen).unsigned_abs() < FIRING_FORGOTTEN_AFTER)
            .find(|(_, i, _)| {
                self.rules.get(*i).is_some_and(|r| {
                    r.remediations.is_empty() || r.remediations.contains(&kind)
                })
            })
            .map(|(name, _, seen)| {
                Refusal::new(
                    RefusalReason::HeldByAlert,
                    format!(
                        "{kind} is held while {name} fires (last delivered {seen}; guard.holdWhileFiring)"
                    ),
                )
            })
    }

    /// The alerts holding something now, by name (for `/readyz` and the dashboard).
    pub fn firing(&self, now: Timestamp) -> Vec<String> {
        let mut v: Vec<String> = self
            .firing
            .values()
            .filter(|(_, _, seen)| {
                now.duration_since(*seen).unsigned_abs() < FIRING_FORGOTTEN_AFTER
            })
            .map(|(n, _, _)| n.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Day, Policy};
    use crate::testutil::signal;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn plan(remediation: &str, labels: &[(&str, &str)]) -> Plan {
        let p = Policy::from_yaml(&format!("routes: [{{remediation: {remediation}}}]")).unwrap();
        Plan::build(&signal(labels), &p.routes[0]).unwrap()
    }

    fn drain() -> Plan {
        plan(
            "drain-node",
            &[("alertname", "KubeNodeNotReady"), ("node", "w1")],
        )
    }

    fn pod(ns: &str) -> Plan {
        plan(
            "delete-pod",
            &[("alertname", "A"), ("namespace", ns), ("pod", "p")],
        )
    }

    fn window(days: &[Day], start: &str, end: &str, tz: &str) -> MaintenanceWindow {
        MaintenanceWindow {
            name: "freeze".into(),
            days: days.to_vec(),
            start: start.into(),
            end: end.into(),
            time_zone: tz.into(),
            remediations: Vec::new(),
            namespaces: Vec::new(),
        }
    }

    #[test]
    fn a_window_is_open_in_its_own_time_zone_and_days() {
        // 2026-12-05 is a Saturday; 09:30 UTC is 10:30 in Berlin (CET)
        let w = window(&[Day::Sat, Day::Sun], "10:00", "18:00", "Europe/Berlin");
        let h = Holds::new(&[w], &[]).unwrap();
        let refused = |t: &str| h.refusal(&pod("shop"), at(t)).map(|r| r.reason);
        assert_eq!(
            refused("2026-12-05T09:30:00Z"),
            Some(RefusalReason::MaintenanceWindow)
        );
        assert_eq!(refused("2026-12-05T08:59:00Z"), None, "09:59 in Berlin");
        assert_eq!(
            refused("2026-12-05T17:00:00Z"),
            None,
            "18:00 in Berlin: ended"
        );
        assert_eq!(refused("2026-12-07T09:30:00Z"), None, "a Monday");
        let r = h.refusal(&pod("shop"), at("2026-12-06T12:00:00Z")).unwrap();
        assert!(
            r.message.contains("freeze") && r.message.contains("sat, sun"),
            "{}",
            r.message
        );
    }

    #[test]
    fn a_window_past_midnight_belongs_to_the_day_it_starts() {
        // Fridays 22:00 to 06:00 UTC: open Friday night and early Saturday only
        let h = Holds::new(&[window(&[Day::Fri], "22:00", "06:00", "UTC")], &[]).unwrap();
        let open = |t: &str| h.refusal(&drain(), at(t)).is_some();
        assert!(open("2026-12-04T23:00:00Z"), "Friday 23:00");
        assert!(open("2026-12-05T05:59:00Z"), "Saturday 05:59");
        assert!(!open("2026-12-05T06:00:00Z"), "Saturday 06:00");
        assert!(!open("2026-12-05T23:00:00Z"), "Saturday 23:00");
        assert!(
            !open("2026-12-04T05:00:00Z"),
            "Friday 05:00 (Thursday is not in it)"
        );
    }

    #[test]
    fn a_window_can_cover_some_remediations_and_namespaces_only() {
        let mut w = window(&[], "00:00", "00:00", "UTC");
        w.remediations = vec![crate::remediation::RemediationKind::DrainNode];
        let h = Holds::new(&[w], &[]).unwrap();
        let now = at("2026-12-07T12:00:00Z");
        assert!(h.refusal(&drain(), now).is_some(), "00:00-00:00 is all day");
        assert!(h.refusal(&pod("shop"), now).is_none());
        let mut w = window(&[], "00:00", "00:00", "UTC");
        w.namespaces = vec!["prod-.*".into()];
        let h = Holds::new(&[w], &[]).unwrap();
        assert!(h.refusal(&pod("prod-eu"), now).is_some());
        assert!(h.refusal(&pod("shop"), now).is_none());
        assert!(
            h.refusal(&drain(), now).is_none(),
            "a node is in no namespace"
        );
    }

    #[test]
    fn bad_windows_and_holds_are_reported_at_once() {
        let mut bad = window(&[], "25:00", "7", "Mars/Olympus");
        bad.namespaces = vec!["(".into()];
        let hold = HoldWhileFiring {
            matchers: Vec::new(),
            remediations: Vec::new(),
        };
        let e = Holds::new(
            &[bad, window(&[], "10:00", "11:00", "Nowhere/City")],
            &[hold],
        )
        .unwrap_err();
        let paths: Vec<&str> = e.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "maintenanceWindows[0]",
                "maintenanceWindows[1]",
                "holdWhileFiring[0].matchers"
            ]
        );
        assert!(e[0].1.contains("time zone"), "{e:?}");
    }

    #[test]
    fn a_firing_alert_holds_matching_remediations_until_it_resolves_or_is_forgotten() {
        let hold = HoldWhileFiring {
            matchers: vec![
                crate::policy::Matcher::parse("alertname=\"KubeAPIErrorBudgetBurn\"").unwrap(),
            ],
            remediations: vec![crate::remediation::RemediationKind::DrainNode],
        };
        let mut h = Holds::new(&[], &[hold]).unwrap();
        let t0 = at("2026-12-07T12:00:00Z");
        let mut burn = signal(&[
            ("alertname", "KubeAPIErrorBudgetBurn"),
            ("severity", "critical"),
        ]);
        // another alert holds nothing
        h.observe(&signal(&[("alertname", "Other")]), t0);
        assert!(h.refusal(&drain(), t0).is_none());
        h.observe(&burn, t0);
        let r = h.refusal(&drain(), t0).unwrap();
        assert_eq!(r.reason, RefusalReason::HeldByAlert);
        assert!(
            r.message.contains("KubeAPIErrorBudgetBurn"),
            "{}",
            r.message
        );
        assert!(
            h.refusal(&pod("shop"), t0).is_none(),
            "only drains are held"
        );
        assert_eq!(h.firing(t0), ["KubeAPIErrorBudgetBurn"]);
        // a detector's signal of the same name is not an alert
        burn.status = AlertStatus::Resolved;
        h.observe(&burn, t0);
        assert!(h.refusal(&drain(), t0).is_none(), "resolved");
        // firing again, then never re-sent for a day: forgotten
        burn.status = AlertStatus::Firing;
        h.observe(&burn, t0);
        let later = t0
            .checked_add(jiff::SignedDuration::from_secs(24 * 3600))
            .unwrap();
        assert!(h.refusal(&drain(), later).is_none());
        assert!(h.firing(later).is_empty());
    }
}
