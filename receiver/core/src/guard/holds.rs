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
/// Held alerts kept durably at most (the newest): a ConfigMap holds 1 MiB.
pub const MAX_KEPT: usize = 2_000;
/// A kept label value is cut to this many bytes.
const KEPT_VALUE_BYTES: usize = 128;

/// An alert holding something, as kept durably so that a restarted or new
/// leader holds from its first moment, not from the alert's next delivery.
/// Only the labels some hold's matchers name are kept.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldAlert {
    pub fingerprint: String,
    pub alertname: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub last_seen: Timestamp,
}

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
    /// The labels the holds' matchers name, of each firing alert (for `kept`).
    labels: HashMap<String, std::collections::BTreeMap<String, String>>,
    /// Bumped whenever an alert starts or stops holding (not on a repeat).
    changes: u64,
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
            labels: HashMap::new(),
            changes: 0,
        })
    }

    /// The labels some hold's matchers name, of `labels` (cut to a bound).
    fn named_labels(
        &self,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> std::collections::BTreeMap<String, String> {
        labels
            .iter()
            .filter(|(k, _)| {
                self.rules
                    .iter()
                    .any(|r| r.matchers.iter().any(|m| m.name == **k))
            })
            .map(|(k, v)| (k.clone(), crate::text::one_line(v, KEPT_VALUE_BYTES)))
            .collect()
    }

    /// How many times an alert started or stopped holding: a keeper writes
    /// `kept` again when this moved.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// The alerts holding something at `now`, newest first, at most
    /// [`MAX_KEPT`]: what a keeper writes down.
    pub fn kept(&self, now: Timestamp) -> Vec<HeldAlert> {
        let mut v: Vec<HeldAlert> = self
            .firing
            .iter()
            .filter(|(_, (_, _, seen))| {
                now.duration_since(*seen).unsigned_abs() < FIRING_FORGOTTEN_AFTER
            })
            .map(|(fp, (name, _, seen))| HeldAlert {
                fingerprint: fp.clone(),
                alertname: name.clone(),
                labels: self.labels.get(fp).cloned().unwrap_or_default(),
                last_seen: *seen,
            })
            .collect();
        v.sort_by(|a, b| {
            b.last_seen
                .cmp(&a.last_seen)
                .then_with(|| a.fingerprint.cmp(&b.fingerprint))
        });
        v.truncate(MAX_KEPT);
        v
    }

    /// Hold again for the alerts a keeper wrote down, as the holds of the
    /// policy *now* match their labels (a hold removed since holds nothing;
    /// one forgotten by time stays forgotten). What this process saw itself
    /// is newer and wins.
    pub fn restore(&mut self, kept: &[HeldAlert], now: Timestamp) {
        for k in kept {
            if now.duration_since(k.last_seen).unsigned_abs() >= FIRING_FORGOTTEN_AFTER
                || self.firing.len() >= MAX_FIRING
            {
                continue;
            }
            if self
                .firing
                .get(&k.fingerprint)
                .is_some_and(|(_, _, seen)| *seen >= k.last_seen)
            {
                continue;
            }
            let Some(i) = self
                .rules
                .iter()
                .position(|r| r.matchers.iter().all(|m| m.matches(&k.labels)))
            else {
                continue;
            };
            let labels = self.named_labels(&k.labels);
            self.firing
                .insert(k.fingerprint.clone(), (k.alertname.clone(), i, k.last_seen));
            self.labels.insert(k.fingerprint.clone(), labels);
            self.changes += 1;
        }
    }

    /// Learn from an alert: firing and matching a hold, it holds from now;
    /// resolved, it no longer does.
    pub fn observe(&mut self, signal: &Signal, now: Timestamp) {
        if signal.source.kind() != SourceKind::Alert || self.rules.is_empty() {
            return;
        }
        match signal.status {
            AlertStatus::Resolved => {
                if self.firing.remove(&signal.fingerprint).is_some() {
                    self.labels.remove(&signal.fingerprint);
                    self.changes += 1;
                }
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
                let labels = self.named_labels(&signal.labels);
                let new = self
                    .firing
                    .insert(
                        signal.fingerprint.clone(),
                        (signal.name().to_string(), i, now),
                    )
                    .is_none();
                self.labels.insert(signal.fingerprint.clone(), labels);
                if new {
                    self.changes += 1;
                }
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

    #[test]
    fn what_holds_is_kept_and_restored_as_the_policy_now_says() {
        let rule = |alert: &str, r: crate::remediation::RemediationKind| HoldWhileFiring {
            matchers: vec![
                crate::policy::Matcher::parse(&format!("alertname=\"{alert}\"")).unwrap(),
                crate::policy::Matcher::parse("severity!=\"info\"").unwrap(),
            ],
            remediations: vec![r],
        };
        let drains = rule(
            "KubeAPIErrorBudgetBurn",
            crate::remediation::RemediationKind::DrainNode,
        );
        let mut h = Holds::new(&[], std::slice::from_ref(&drains)).unwrap();
        let t0 = at("2026-12-07T12:00:00Z");
        let before = h.changes();
        let mut burn = signal(&[
            ("alertname", "KubeAPIErrorBudgetBurn"),
            ("severity", "critical"),
            ("secret_note", "not kept"),
        ]);
        h.observe(&burn, t0);
        assert_eq!(h.changes(), before + 1);
        // a repeat refreshes, it is not a change
        h.observe(&burn, t0);
        assert_eq!(h.changes(), before + 1);
        let kept = h.kept(t0);
        assert_eq!(kept.len(), 1);
        assert_eq!(
            kept[0].labels.keys().collect::<Vec<_>>(),
            ["alertname", "severity"],
            "only the labels a hold names"
        );
        // a new leader restores it and holds at once
        let mut fresh = Holds::new(&[], std::slice::from_ref(&drains)).unwrap();
        fresh.restore(&kept, t0);
        assert!(fresh.refusal(&drain(), t0).is_some());
        assert_eq!(fresh.kept(t0), kept, "restored as kept");
        // a policy whose holds no longer match holds nothing
        let other = rule("Other", crate::remediation::RemediationKind::DrainNode);
        let mut changed = Holds::new(&[], &[other]).unwrap();
        changed.restore(&kept, t0);
        assert!(changed.refusal(&drain(), t0).is_none());
        // too old: forgotten
        let later = t0
            .checked_add(jiff::SignedDuration::from_secs(24 * 3600))
            .unwrap();
        let mut late = Holds::new(&[], std::slice::from_ref(&drains)).unwrap();
        late.restore(&kept, later);
        assert!(late.kept(later).is_empty());
        // what this process saw is newer than what was kept: it wins
        burn.status = AlertStatus::Resolved;
        fresh.observe(&burn, t0);
        assert!(fresh.kept(t0).is_empty());
        let mut seen = Holds::new(&[], std::slice::from_ref(&drains)).unwrap();
        let t1 = t0.checked_add(jiff::SignedDuration::from_secs(60)).unwrap();
        burn.status = AlertStatus::Firing;
        seen.observe(&burn, t1);
        seen.restore(&kept, t1);
        assert_eq!(seen.kept(t1)[0].last_seen, t1);
    }

    #[test]
    fn what_is_kept_is_bounded() {
        let hold = HoldWhileFiring {
            matchers: vec![crate::policy::Matcher::parse("alertname=~\"A.*\"").unwrap()],
            remediations: vec![],
        };
        let mut h = Holds::new(&[], &[hold]).unwrap();
        let t0 = at("2026-12-07T12:00:00Z");
        let long = "v".repeat(10_000);
        for i in 0..(MAX_KEPT + 10) {
            let mut s = signal(&[("alertname", "A1")]);
            s.fingerprint = format!("{i:016x}");
            s.labels.insert("alertname".into(), format!("A{long}"));
            let at = t0
                .checked_add(jiff::SignedDuration::from_secs(i as i64))
                .unwrap();
            h.observe(&s, at);
        }
        let end = t0
            .checked_add(jiff::SignedDuration::from_secs(3_000))
            .unwrap();
        let kept = h.kept(end);
        assert_eq!(kept.len(), MAX_KEPT);
        assert_eq!(
            kept[0].fingerprint,
            format!("{:016x}", MAX_KEPT + 9),
            "newest first"
        );
        assert!(
            kept.iter()
                .all(|k| k.labels["alertname"].len() <= KEPT_VALUE_BYTES + 4)
        );
    }
}
