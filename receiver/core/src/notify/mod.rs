//! Notifications, decided: which outcomes people hear about (a [`Notice`]),
//! how loud ([`Severity`], from history: [`severity`]), to whom (routes to
//! receivers: [`route`]), and how repeats become one summary ([`group`]).
//!
//! Owns: those decisions, pure and unit-tested with a fake clock. Must not
//! send anything or read a secret: delivery, with its retries and formats
//! per channel, is the `receiver-notify` crate's.
//!
//! Alert senders are untrusted: every text a notice carries from a signal is
//! on one line and cut ([`crate::text::one_line`]), and every link passed
//! [`crate::text::link`]. Each channel's format escapes the rest.

pub mod group;
pub mod severity;

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::guard::RefusalReason;
use crate::outcome::{Outcome, OutcomeKind, Verification, VerifyResult};
use crate::plan::Plan;
use crate::remediation::{ActionClass, RemediationKind};
use crate::signal::SourceKind;
use crate::text::{link, one_line};

/// The policy's `notifications` section (it lives with the policy).
pub use crate::policy::notifications as config;
pub use config::{Notifications, NotifyRoute, Receiver, Secret, Severity};
pub use group::{Grouper, Offer};
pub use severity::SeverityBook;

/// Longest text of one value in a notice (a longer one is cut with `…`).
pub const MAX_VALUE: usize = 200;
/// Longest message in a notice.
pub const MAX_MESSAGE: usize = 1000;
/// Evidence entries a notice carries at most.
pub const MAX_EVIDENCE: usize = 12;

/// What a notice is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// An action was taken (or a notify-only route fired).
    Acted,
    /// An action was observed (mode `observe`, dry-run): what would be done.
    Observed,
    /// A janitor action was proposed (mode `propose`): people decide.
    Proposed,
    /// A plan waits for a person's approval (mode `approve`).
    AwaitingApproval,
    /// A refusal that matters: a budget spent, a breaker open, the cluster unreadable.
    Refused,
    /// The guard escalated a workload healed too often without recovering.
    Escalated,
    /// The action failed.
    Failed,
    /// After the action, the target did not recover (or stayed down).
    Unverified,
    /// A pull request was opened or updated.
    PullRequest,
    /// The target recovered.
    Recovered,
    /// A destructive action is about to start (`notifications.announce`);
    /// its result follows as another notice.
    Starting,
}

impl Event {
    pub const ALL: [Event; 11] = [
        Event::Acted,
        Event::Observed,
        Event::Proposed,
        Event::AwaitingApproval,
        Event::Refused,
        Event::Escalated,
        Event::Failed,
        Event::Unverified,
        Event::PullRequest,
        Event::Recovered,
        Event::Starting,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::Acted => "acted",
            Event::Observed => "observed",
            Event::Proposed => "proposed",
            Event::AwaitingApproval => "awaiting_approval",
            Event::Refused => "refused",
            Event::Escalated => "escalated",
            Event::Failed => "failed",
            Event::Unverified => "unverified",
            Event::PullRequest => "pull_request",
            Event::Recovered => "recovered",
            Event::Starting => "starting",
        }
    }

    /// The least severity of a notice of this event, whatever the history.
    pub fn floor(self) -> Severity {
        match self {
            Event::Escalated => Severity::High,
            Event::Failed | Event::Unverified | Event::Refused | Event::AwaitingApproval => {
                Severity::Warning
            }
            _ => Severity::Info,
        }
    }
}

/// Whether a refusal is worth telling people about: a budget spent, a
/// breaker standing a class down, an unreadable cluster, a full backlog. A
/// cooldown, a protected namespace or a switched-off feature is the policy
/// working as written; an escalation has its own event.
pub fn refusal_matters(reason: RefusalReason) -> bool {
    reason.is_breaker()
        || matches!(
            reason,
            RefusalReason::GlobalBudget
                | RefusalReason::NamespaceBudget
                | RefusalReason::WorkloadBudget
                | RefusalReason::FactsUnavailable
                | RefusalReason::BacklogFull
        )
}

/// Links a notice carries; each passed [`link`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Links {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook: Option<String>,
    /// The alert's source (its `generatorURL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The record on the dashboard (with `notifications.dashboardUrl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
}

/// One thing people should hear about: what, where, why, the result, links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notice {
    pub event: Event,
    pub severity: Severity,
    pub at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The target's kind and name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The target as text, e.g. `Pod shop/api-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediation: Option<RemediationKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    pub source: SourceKind,
    /// The alert's or detector's name.
    pub signal: String,
    /// What came of it: an outcome's result, or a recovery check's.
    pub result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RefusalReason>,
    /// One line that says what happened.
    pub title: String,
    /// The details (the outcome's message).
    pub message: String,
    /// Why: the signal's evidence (reason, restarts, details), bounded.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub evidence: BTreeMap<String, String>,
    #[serde(default)]
    pub links: Links,
    /// The Remediation record's name, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// The owning workload or node: what severity counts and what a pager
    /// deduplicates on (with the remediation).
    pub key: String,
    /// How many notices this one stands for (a summary: more than 1).
    pub count: u32,
    /// In a summary: the first few targets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<String>,
}

/// What a notice is made from besides the outcome.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub cluster: Option<&'a str>,
    pub dashboard_url: Option<&'a str>,
}

fn bounded(s: &str) -> String {
    one_line(s, MAX_VALUE)
}

fn checked(u: Option<&str>) -> Option<String> {
    u.and_then(|u| link(u).ok()).map(str::to_string)
}

impl Notice {
    /// A stable key for the problem: the same workload or node in the same
    /// cluster (PagerDuty's `dedup_key`), whatever remediation is tried on
    /// it, so a resolved alert (which names none) resolves it too.
    pub fn dedup_key(&self) -> String {
        format!(
            "heal8s/{}/{}",
            self.cluster.as_deref().unwrap_or("-"),
            self.key
        )
    }

    /// The labels routes match on (see [`config::ROUTE_LABELS`]).
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut l = BTreeMap::new();
        let mut put = |k: &str, v: Option<&str>| {
            if let Some(v) = v {
                l.insert(k.to_string(), v.to_string());
            }
        };
        put("event", Some(self.event.as_str()));
        put("severity", Some(self.severity.as_str()));
        put("remediation", self.remediation.map(RemediationKind::as_str));
        put("result", Some(&self.result));
        put("reason", self.reason.map(RefusalReason::as_str));
        put("namespace", self.namespace.as_deref());
        put("cluster", self.cluster.as_deref());
        put("kind", self.kind.as_deref());
        put("name", self.name.as_deref());
        put("source", Some(self.source.as_str()));
        put("signal", Some(&self.signal));
        put("route", self.route.as_deref());
        l
    }

    /// The notice for `plan` with `event`, before its severity is known.
    fn of_plan(
        event: Event,
        plan: &Plan,
        at: Timestamp,
        result: &str,
        message: &str,
        cx: Context<'_>,
    ) -> Notice {
        let target = plan.target.as_ref();
        let mut evidence = BTreeMap::new();
        if let Some(r) = &plan.evidence.reason {
            evidence.insert("reason".to_string(), bounded(r));
        }
        if let Some(n) = plan.evidence.restart_count {
            evidence.insert("restarts".to_string(), n.to_string());
        }
        if let Some(b) = plan.evidence.memory_peak_bytes {
            evidence.insert("memoryPeakBytes".to_string(), b.to_string());
        }
        for (k, v) in &plan.evidence.details {
            if evidence.len() >= MAX_EVIDENCE {
                break;
            }
            evidence.insert(bounded(k), bounded(v));
        }
        let record = target.map(|t| crate::names::record_name(t, plan.kind()));
        let record_link = match (cx.dashboard_url, &record) {
            (Some(base), Some(r)) => {
                checked(Some(&format!("{}#{}", base.trim_end_matches('/'), r)))
            }
            _ => None,
        };
        let described = bounded(&plan.describe());
        let title = match event {
            Event::Acted => format!("Done: {described}"),
            Event::Observed => format!("Would {described} (observed)"),
            Event::Proposed => format!("Proposed: {described}"),
            Event::AwaitingApproval => {
                let ns = target
                    .and_then(crate::names::record_namespace)
                    .map(|ns| format!(" -n {ns}"))
                    .unwrap_or_default();
                format!(
                    "Approval needed: {described} (heal8s approve {}{ns})",
                    record.as_deref().unwrap_or("-")
                )
            }
            Event::Refused => format!("Held back: {described}"),
            Event::Escalated => format!("Escalated: {described} keeps being needed"),
            Event::Failed => format!("Failed: {described}"),
            Event::Unverified => format!("Not recovered after: {described}"),
            Event::PullRequest => format!("Pull request: {described}"),
            Event::Recovered => format!("Recovered after: {described}"),
            Event::Starting => format!("About to {described}"),
        };
        Notice {
            event,
            severity: Severity::Info,
            at,
            cluster: cx.cluster.map(bounded),
            namespace: target.and_then(|t| t.namespace.clone()),
            kind: target.map(|t| t.kind.kind_name().to_string()),
            name: target.map(|t| t.name.clone()),
            target: target.map(|t| {
                // a pod is deleted or evicted whole, whatever container the signal named
                let shown = if plan.remediation.whole_pod() {
                    crate::target::Target {
                        container: None,
                        ..t.clone()
                    }
                } else {
                    t.clone()
                };
                bounded(&shown.to_string())
            }),
            remediation: Some(plan.kind()),
            route: Some(bounded(&plan.route)),
            source: plan.trigger.source,
            signal: bounded(&plan.trigger.name),
            result: result.to_string(),
            reason: None,
            title,
            message: one_line(message, MAX_MESSAGE),
            evidence,
            links: Links {
                pull_request: None,
                runbook: checked(plan.trigger.runbook_url.as_deref()),
                source: checked(plan.trigger.generator_url.as_deref()),
                record: record_link,
            },
            record,
            key: plan.workload_key(),
            count: 1,
            examples: Vec::new(),
        }
    }

    /// The notice an outcome gives, if people should hear about it: an action
    /// taken or simulated, a refusal that matters, an escalation, a failure, a
    /// pull request opened or updated. Severity is left at `info`: [`Notifier::notice`]
    /// sets it from history.
    pub fn of_outcome(o: &Outcome, cx: Context<'_>) -> Option<Notice> {
        let plan = o.plan.as_ref()?;
        let event = match o.result {
            OutcomeKind::Acted => match &o.pull_request {
                Some(pr) if pr.action == "unchanged" => return None,
                Some(_) => Event::PullRequest,
                None => Event::Acted,
            },
            OutcomeKind::Observed => Event::Observed,
            OutcomeKind::Proposed => Event::Proposed,
            OutcomeKind::AwaitingApproval => Event::AwaitingApproval,
            OutcomeKind::Failed => Event::Failed,
            OutcomeKind::Refused if o.escalated => Event::Escalated,
            OutcomeKind::Refused if o.reason.is_some_and(refusal_matters) => Event::Refused,
            OutcomeKind::Refused
            | OutcomeKind::Deduped
            | OutcomeKind::Resolved
            | OutcomeKind::Deferred => return None,
        };
        let mut n = Notice::of_plan(event, plan, o.at, o.result.as_str(), &o.message, cx);
        n.reason = o.reason;
        n.links.pull_request = o
            .pull_request
            .as_ref()
            .and_then(|pr| checked(Some(&pr.url)));
        Some(n)
    }

    /// The notice of a resolved alert that the guard counted as a recovery
    /// of `key` (a target that keeps its identity: a node, a workload): it
    /// names no plan, only what the alert said.
    fn of_resolved(o: &Outcome, key: &str, cx: Context<'_>) -> Notice {
        let target = o.target.as_deref().map(bounded);
        Notice {
            event: Event::Recovered,
            severity: Severity::Info,
            at: o.at,
            cluster: cx.cluster.map(bounded),
            namespace: None,
            kind: None,
            name: None,
            title: format!(
                "Recovered: {} (its alert resolved)",
                target.as_deref().unwrap_or(key)
            ),
            target,
            remediation: None,
            route: None,
            source: o.source,
            signal: bounded(&o.name),
            result: "recovered".into(),
            reason: None,
            message: one_line(&o.message, MAX_MESSAGE),
            evidence: BTreeMap::new(),
            links: Links::default(),
            record: None,
            key: key.to_string(),
            count: 1,
            examples: Vec::new(),
        }
    }

    /// The notice a recovery check gives: recovered, or not.
    pub fn of_verification(
        plan: &Plan,
        v: &Verification,
        at: Timestamp,
        cx: Context<'_>,
    ) -> Notice {
        let (event, result) = match v.result {
            VerifyResult::Recovered => (Event::Recovered, "recovered"),
            VerifyResult::NotRecovered => (Event::Unverified, "not_recovered"),
            VerifyResult::Unverified => (Event::Unverified, "unverified"),
            VerifyResult::StillDown => (Event::Unverified, "still_down"),
        };
        Notice::of_plan(event, plan, at, result, &v.message, cx)
    }
}

/// Notices, decided: made from outcomes and recovery checks, given their
/// severity from history, routed to receivers. The worker owns one.
#[derive(Debug)]
pub struct Notifier {
    cfg: Notifications,
    book: SeverityBook,
    cluster: Option<String>,
    /// The severity a key was last told at: a recovery is told as loud, so
    /// it reaches the receivers (a pager) that heard of the problem.
    told: std::collections::HashMap<String, Severity>,
}

impl Notifier {
    /// A notifier for the policy's `notifications`; `cluster` is the name
    /// messages carry when the section names none (`guard.clusterName`).
    pub fn new(cfg: Notifications, cluster: Option<String>) -> Notifier {
        Notifier {
            book: SeverityBook::new(cfg.severity.clone()),
            cluster: cfg.cluster.clone().or(cluster),
            cfg,
            told: std::collections::HashMap::new(),
        }
    }

    /// Whether any receiver is configured.
    pub fn is_on(&self) -> bool {
        !self.cfg.receivers.is_empty()
    }

    pub fn config(&self) -> &Notifications {
        &self.cfg
    }

    fn context(&self) -> Context<'_> {
        Context {
            cluster: self.cluster.as_deref(),
            dashboard_url: self.cfg.dashboard_url.as_deref(),
        }
    }

    /// Learn from the guard's events (live, or replayed from the records).
    pub fn observe(&mut self, events: &[crate::ledger::PastEvent]) {
        for e in events {
            self.book.observe(e);
        }
    }

    fn loudness(&mut self, mut n: Notice, class: ActionClass, now: Timestamp) -> Notice {
        let history = self.book.severity(class, n.remediation, &n.key, now);
        n.severity = history.max(n.event.floor());
        if n.event == Event::Recovered {
            if let Some(s) = self.told.remove(&n.key) {
                n.severity = n.severity.max(s);
            }
        } else {
            if self.told.len() >= severity::MAX_KEYS && !self.told.contains_key(&n.key) {
                self.told.clear();
            }
            let s = self.told.entry(n.key.clone()).or_default();
            *s = (*s).max(n.severity);
        }
        n
    }

    /// What an outcome tells people, with its receivers. The outcome's guard
    /// events are learnt first, so an action counts in its own severity.
    pub fn outcome(&mut self, o: &Outcome, now: Timestamp) -> Option<(Notice, Vec<String>)> {
        self.observe(&o.ledger);
        if o.result == OutcomeKind::Failed
            && let Some(plan) = &o.plan
            && !o
                .ledger
                .iter()
                .any(|e| matches!(e.event, crate::ledger::GuardEvent::Action { .. }))
        {
            self.book.failed(&plan.workload_key(), o.at);
        }
        if !self.is_on() {
            return None;
        }
        // a resolved alert that counted as a recovery of what was told
        if o.result == OutcomeKind::Resolved {
            let key = o.ledger.iter().find_map(|e| match &e.event {
                crate::ledger::GuardEvent::Recovered { key, .. } => Some(key.clone()),
                _ => None,
            })?;
            let told = self.told.remove(&key)?;
            let mut n = Notice::of_resolved(o, &key, self.context());
            n.severity = told;
            let to = route(&self.cfg, &n);
            return Some((n, to));
        }
        let n = Notice::of_outcome(o, self.context())?;
        let class = o.plan.as_ref().map_or(ActionClass::Notify, ActionClass::of);
        let n = self.loudness(n, class, now);
        let to = route(&self.cfg, &n);
        Some((n, to))
    }

    /// What a recovery check tells people, with its receivers.
    pub fn verification(
        &mut self,
        plan: &Plan,
        v: &Verification,
        now: Timestamp,
    ) -> Option<(Notice, Vec<String>)> {
        if !v.recovered() {
            self.book.failed(&plan.workload_key(), now);
        }
        if !self.is_on() {
            return None;
        }
        let n = Notice::of_verification(plan, v, now, self.context());
        let n = self.loudness(n, ActionClass::of(plan), now);
        let to = route(&self.cfg, &n);
        Some((n, to))
    }

    /// What announcing `plan` before it is carried out tells people (a
    /// destructive action listed in `notifications.announce`), with its
    /// receivers; `None` for anything else.
    pub fn starting(&mut self, plan: &Plan, now: Timestamp) -> Option<(Notice, Vec<String>)> {
        if !self.is_on() || !self.cfg.announce.contains(&plan.kind()) {
            return None;
        }
        let mut n = Notice::of_plan(
            Event::Starting,
            plan,
            now,
            "starting",
            &format!("heal8s is about to {}; the result follows", plan.describe()),
            self.context(),
        );
        n.severity = self
            .book
            .severity(ActionClass::of(plan), n.remediation, &n.key, now)
            .max(n.event.floor());
        let to = route(&self.cfg, &n);
        Some((n, to))
    }

    /// Forget history older than the window.
    pub fn prune(&mut self, now: Timestamp) {
        self.book.prune(now);
    }
}

/// The receivers a notice goes to: the routes in order, first match wins
/// unless it says `continue`; with no routes, every receiver. Each receiver once.
pub fn route(cfg: &Notifications, n: &Notice) -> Vec<String> {
    if cfg.routes.is_empty() {
        return cfg.receivers.iter().map(|r| r.name.clone()).collect();
    }
    let labels = n.labels();
    let mut out: Vec<String> = Vec::new();
    for r in &cfg.routes {
        if r.matchers.iter().all(|m| m.matches(&labels)) {
            for name in &r.receivers {
                if !out.contains(name) {
                    out.push(name.clone());
                }
            }
            if !r.continue_matching {
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
