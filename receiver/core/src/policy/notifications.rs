//! The policy's `notifications` section: receivers, routes to them, severity
//! from history and delivery limits.
//!
//! Owns: its schema (strict: unknown keys are errors), validation that reports
//! every problem at once with its path, and the serialized view `/policy`
//! serves. Secrets are never written in the policy: a receiver names them as
//! `{env: NAME}` or `{file: PATH}` ([`Secret`]), which is all `/policy` shows.
//! Must not read a secret (the delivery crate does) or decide anything.

use std::collections::BTreeSet;

use serde::{Deserialize, Deserializer, Serialize};

use super::Budget;
use super::matcher::Matcher;
use crate::duration::PromDuration;
use crate::remediation::RemediationKind;

/// How loud a notice is. Ordered: `info < warning < high < critical`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub enum Severity {
    #[default]
    Info,
    Warning,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// The labels a notification route may match on (see `notify::Notice::labels`).
pub const ROUTE_LABELS: [&str; 12] = [
    "event",
    "severity",
    "remediation",
    "result",
    "reason",
    "namespace",
    "cluster",
    "kind",
    "name",
    "source",
    "signal",
    "route",
];

/// Where a secret comes from. The value is never in the policy, so never in
/// `/policy`, a log line or an error message: only where to read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Secret {
    /// An environment variable of heal8s's process.
    Env(String),
    /// A file (e.g. a mounted Kubernetes Secret); surrounding whitespace is trimmed.
    File(String),
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        use serde::de::Error;
        // read as a value first: a secret written in place must never be
        // echoed by serde's own "invalid type: string \"https://…\"" message
        let v = serde_json::Value::deserialize(d)?;
        let shape = "must be {env: NAME} or {file: PATH}: a secret is read from the environment or a file, never written in the policy";
        let Some(m) = v.as_object().filter(|m| m.len() == 1) else {
            return Err(D::Error::custom(shape));
        };
        let (k, v) = m.iter().next().ok_or_else(|| D::Error::custom(shape))?;
        let Some(s) = v.as_str().filter(|s| !s.is_empty()) else {
            return Err(D::Error::custom(format!("{k}: must be a non-empty string")));
        };
        match k.as_str() {
            "env" => Ok(Secret::Env(s.to_string())),
            "file" => Ok(Secret::File(s.to_string())),
            _ => Err(D::Error::custom(shape)),
        }
    }
}

/// How a mail is protected on its way to the SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587); refused if the server cannot.
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS: only without a password (a password is never sent in clear).
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UrlOnly {
    pub url: Secret,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DingTalk {
    /// The robot's webhook URL (with its access token).
    pub url: Secret,
    /// The robot's signing secret (the "additional signature" security setting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
}

/// PagerDuty's Events API v2.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

fn pagerduty_url() -> String {
    PAGERDUTY_EVENTS_URL.to_string()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PagerDuty {
    /// The integration's routing key.
    pub routing_key: Secret,
    /// The Events API v2 endpoint (another region's, or a proxy's).
    #[serde(default = "pagerduty_url")]
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Email {
    pub host: String,
    /// Default: 587 for `starttls`, 465 for `tls`, 25 for `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: SmtpTls,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// A PEM file of extra certificate authorities the server's certificate may chain to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    pub from: String,
    pub to: Vec<String>,
}

impl Email {
    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Webhook {
    pub url: Secret,
    /// Sent as `Authorization: Bearer …`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<Secret>,
}

/// One receiver: a name and exactly one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Receiver {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<UrlOnly>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teams: Option<UrlOnly>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dingtalk: Option<DingTalk>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bark: Option<UrlOnly>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagerduty: Option<PagerDuty>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Email>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<Webhook>,
}

/// A receiver's channel, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel<'a> {
    Slack(&'a UrlOnly),
    Teams(&'a UrlOnly),
    DingTalk(&'a DingTalk),
    Bark(&'a UrlOnly),
    PagerDuty(&'a PagerDuty),
    Email(&'a Email),
    Webhook(&'a Webhook),
}

impl Channel<'_> {
    /// The channel's key in the policy, also a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Slack(_) => "slack",
            Channel::Teams(_) => "teams",
            Channel::DingTalk(_) => "dingtalk",
            Channel::Bark(_) => "bark",
            Channel::PagerDuty(_) => "pagerduty",
            Channel::Email(_) => "email",
            Channel::Webhook(_) => "webhook",
        }
    }
}

impl Receiver {
    /// Every channel the receiver names (a valid one names exactly one).
    pub fn channels(&self) -> Vec<Channel<'_>> {
        let mut out = Vec::new();
        if let Some(c) = &self.slack {
            out.push(Channel::Slack(c));
        }
        if let Some(c) = &self.teams {
            out.push(Channel::Teams(c));
        }
        if let Some(c) = &self.dingtalk {
            out.push(Channel::DingTalk(c));
        }
        if let Some(c) = &self.bark {
            out.push(Channel::Bark(c));
        }
        if let Some(c) = &self.pagerduty {
            out.push(Channel::PagerDuty(c));
        }
        if let Some(c) = &self.email {
            out.push(Channel::Email(c));
        }
        if let Some(c) = &self.webhook {
            out.push(Channel::Webhook(c));
        }
        out
    }

    /// The receiver's channel. Validation guarantees exactly one.
    pub fn channel(&self) -> Option<Channel<'_>> {
        self.channels().into_iter().next()
    }
}

/// A notification route: when its matchers all match a notice's labels, send
/// it to `receivers`. First match wins unless `continue`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NotifyRoute {
    #[serde(default, with = "super::matcher::as_text")]
    pub matchers: Vec<Matcher>,
    pub receivers: Vec<String>,
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
}

/// Base severity per action class: node > workload (pull requests) > pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct BaseSeverity {
    pub pods: Severity,
    pub pull_requests: Severity,
    pub nodes: Severity,
    pub namespaces: Severity,
    pub resources: Severity,
    pub finalizers: Severity,
    pub notify: Severity,
}

impl Default for BaseSeverity {
    fn default() -> Self {
        BaseSeverity {
            pods: Severity::Info,
            pull_requests: Severity::Warning,
            nodes: Severity::High,
            namespaces: Severity::Info,
            resources: Severity::Info,
            finalizers: Severity::Warning,
            notify: Severity::Warning,
        }
    }
}

/// More than `over` failures of one workload or node within the window: at least `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Raise {
    pub over: u32,
    pub to: Severity,
}

/// The stronger strategy for one remediation: after `after` failures of the
/// same workload or node within the window, at least `severity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EscalationStep {
    pub remediation: RemediationKind,
    pub after: u32,
    pub severity: Severity,
}

/// Severity from history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct SeverityPolicy {
    pub base: BaseSeverity,
    /// How far back failures of the same workload or node count.
    pub within: PromDuration,
    pub raise: Vec<Raise>,
    pub escalations: Vec<EscalationStep>,
}

impl Default for SeverityPolicy {
    fn default() -> Self {
        SeverityPolicy {
            base: BaseSeverity::default(),
            within: PromDuration::secs(3600),
            raise: vec![
                Raise {
                    over: 1,
                    to: Severity::High,
                },
                Raise {
                    over: 3,
                    to: Severity::Critical,
                },
            ],
            escalations: Vec::new(),
        }
    }
}

/// How notifications are delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Delivery {
    /// Notices waiting per receiver at most; past it the oldest is dropped (and counted).
    pub queue: u32,
    /// One attempt's time limit (connect, send, answer).
    pub timeout: PromDuration,
    /// Attempts per message (retries on 5xx, 429 and timeouts).
    pub attempts: u32,
    /// Repeats of the same kind of notice within this window are sent as one summary.
    pub group_window: PromDuration,
    /// Messages per receiver at most; past it notices wait in their group's summary.
    pub rate_limit: Budget,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            queue: 1024,
            timeout: PromDuration::secs(10),
            attempts: 5,
            group_window: PromDuration::secs(60),
            rate_limit: Budget {
                max: 20,
                per: PromDuration::secs(60),
            },
        }
    }
}

/// The `notifications` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Notifications {
    /// The cluster's name in messages (default: `guard.clusterName`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The dashboard's address, for links to records (e.g. `https://heal8s.example.com/ui`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dashboard_url: Option<String>,
    pub receivers: Vec<Receiver>,
    /// Empty: every notice goes to every receiver.
    pub routes: Vec<NotifyRoute>,
    /// Remediations announced before they start ("about to delete namespace
    /// e2e-123"), then told again with their result.
    pub announce: Vec<RemediationKind>,
    pub severity: SeverityPolicy,
    pub delivery: Delivery,
}

impl Default for Notifications {
    fn default() -> Self {
        Notifications {
            cluster: None,
            dashboard_url: None,
            receivers: Vec::new(),
            routes: Vec::new(),
            announce: vec![
                RemediationKind::DeleteNamespace,
                RemediationKind::DeleteNode,
                RemediationKind::CleanupResource,
            ],
            severity: SeverityPolicy::default(),
            delivery: Delivery::default(),
        }
    }
}

fn is_address(s: &str) -> bool {
    match s.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !s.chars().any(|c| c.is_whitespace() || c.is_control())
                && !s.contains(['<', '>', ',', ';'])
        }
        None => false,
    }
}

fn is_http_url(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    (l.starts_with("https://") || l.starts_with("http://"))
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && s.split("://").nth(1).is_some_and(|rest| !rest.is_empty())
}

fn check_secret(path: String, s: &Secret, out: &mut Vec<(String, String)>) {
    match s {
        Secret::Env(name) => {
            if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                || name.starts_with(|c: char| c.is_ascii_digit())
            {
                out.push((
                    format!("{path}.env"),
                    format!("{name:?} is not an environment variable name"),
                ));
            }
        }
        Secret::File(p) => {
            if !p.starts_with('/') {
                out.push((format!("{path}.file"), "must be an absolute path".into()));
            }
        }
    }
}

impl Notifications {
    /// Every problem, as (path under `notifications`, message).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(url) = &self.dashboard_url
            && !is_http_url(url)
        {
            out.push(("dashboardUrl".into(), "must be an http(s) URL".into()));
        }
        let mut names = BTreeSet::new();
        for (i, r) in self.receivers.iter().enumerate() {
            let at = format!("receivers[{i}]");
            if r.name.is_empty()
                || r.name.len() > 63
                || !r
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                out.push((
                    format!("{at}.name"),
                    "must be 1..=63 letters, digits, - or _".into(),
                ));
            }
            if !names.insert(r.name.as_str()) {
                out.push((
                    format!("{at}.name"),
                    format!("duplicate receiver name {:?}", r.name),
                ));
            }
            let channels = r.channels();
            match channels.as_slice() {
                [] => out.push((
                    at.clone(),
                    "names no channel: give one of slack, teams, dingtalk, bark, pagerduty, email, webhook".into(),
                )),
                [_] => {}
                many => out.push((
                    at.clone(),
                    format!(
                        "names {} channels ({}); a receiver has exactly one",
                        many.len(),
                        many.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                )),
            }
            for c in channels {
                let cat = format!("{at}.{}", c.as_str());
                match c {
                    Channel::Slack(u) | Channel::Teams(u) | Channel::Bark(u) => {
                        check_secret(format!("{cat}.url"), &u.url, &mut out)
                    }
                    Channel::DingTalk(d) => {
                        check_secret(format!("{cat}.url"), &d.url, &mut out);
                        if let Some(s) = &d.secret {
                            check_secret(format!("{cat}.secret"), s, &mut out);
                        }
                    }
                    Channel::PagerDuty(p) => {
                        check_secret(format!("{cat}.routingKey"), &p.routing_key, &mut out);
                        if !is_http_url(&p.url) {
                            out.push((format!("{cat}.url"), "must be an http(s) URL".into()));
                        }
                    }
                    Channel::Webhook(w) => {
                        check_secret(format!("{cat}.url"), &w.url, &mut out);
                        if let Some(t) = &w.bearer_token {
                            check_secret(format!("{cat}.bearerToken"), t, &mut out);
                        }
                    }
                    Channel::Email(e) => {
                        if e.host.is_empty() || e.host.contains(char::is_whitespace) {
                            out.push((format!("{cat}.host"), "must be a host name".into()));
                        }
                        if e.port == Some(0) {
                            out.push((format!("{cat}.port"), "must be 1..=65535".into()));
                        }
                        if !is_address(&e.from) {
                            out.push((
                                format!("{cat}.from"),
                                format!("{:?} is not a mail address", e.from),
                            ));
                        }
                        if e.to.is_empty() {
                            out.push((
                                format!("{cat}.to"),
                                "at least one address is required".into(),
                            ));
                        }
                        for (j, a) in e.to.iter().enumerate() {
                            if !is_address(a) {
                                out.push((
                                    format!("{cat}.to[{j}]"),
                                    format!("{a:?} is not a mail address"),
                                ));
                            }
                        }
                        if let Some(p) = &e.password {
                            check_secret(format!("{cat}.password"), p, &mut out);
                            if e.username.is_none() {
                                out.push((
                                    format!("{cat}.username"),
                                    "a password needs a username".into(),
                                ));
                            }
                            if e.tls == SmtpTls::None {
                                out.push((
                                    format!("{cat}.tls"),
                                    "none would send the password in clear: use starttls or tls"
                                        .into(),
                                ));
                            }
                        }
                        if let Some(f) = &e.ca_file
                            && !f.starts_with('/')
                        {
                            out.push((format!("{cat}.caFile"), "must be an absolute path".into()));
                        }
                    }
                }
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            let at = format!("routes[{i}]");
            for (j, m) in r.matchers.iter().enumerate() {
                if !ROUTE_LABELS.contains(&m.name.as_str()) {
                    out.push((
                        format!("{at}.matchers[{j}]"),
                        format!(
                            "{:?} is not a notice label (one of {})",
                            m.name,
                            ROUTE_LABELS.join(", ")
                        ),
                    ));
                }
            }
            if r.receivers.is_empty() {
                out.push((
                    format!("{at}.receivers"),
                    "at least one receiver is required".into(),
                ));
            }
            for (j, name) in r.receivers.iter().enumerate() {
                if !names.contains(name.as_str()) {
                    out.push((
                        format!("{at}.receivers[{j}]"),
                        format!("no receiver is named {name:?}"),
                    ));
                }
            }
        }
        if !self.routes.is_empty() && self.receivers.is_empty() {
            out.push(("routes".into(), "routes without receivers".into()));
        }
        for (i, k) in self.announce.iter().enumerate() {
            if !k.is_mutating() || k.is_declarative() {
                out.push((
                    format!("announce[{i}]"),
                    format!(
                        "{} is not a direct change: only janitor actions are announced",
                        k.as_str()
                    ),
                ));
            }
        }
        let s = &self.severity;
        if s.within.get().is_zero() {
            out.push(("severity.within".into(), "must be longer than 0".into()));
        }
        for w in s.raise.windows(2) {
            if w[1].over <= w[0].over || w[1].to <= w[0].to {
                out.push((
                    "severity.raise".into(),
                    "steps must rise: each `over` and `to` above the one before".into(),
                ));
                break;
            }
        }
        let mut seen = BTreeSet::new();
        for (i, e) in s.escalations.iter().enumerate() {
            if e.after == 0 {
                out.push((
                    format!("severity.escalations[{i}].after"),
                    "must be at least 1".into(),
                ));
            }
            if !seen.insert((e.remediation.as_str(), e.after)) {
                out.push((
                    format!("severity.escalations[{i}]"),
                    "duplicate step for this remediation and count".into(),
                ));
            }
        }
        let d = &self.delivery;
        if !(1..=100_000).contains(&d.queue) {
            out.push(("delivery.queue".into(), "must be 1..=100000".into()));
        }
        if d.timeout.get().is_zero() {
            out.push(("delivery.timeout".into(), "must be longer than 0".into()));
        }
        if !(1..=20).contains(&d.attempts) {
            out.push(("delivery.attempts".into(), "must be 1..=20".into()));
        }
        if d.rate_limit.max == 0 || d.rate_limit.per.get().is_zero() {
            out.push((
                "delivery.rateLimit".into(),
                "max and per must be above 0".into(),
            ));
        }
        out
    }

    /// The receiver called `name`.
    pub fn receiver(&self, name: &str) -> Option<&Receiver> {
        self.receivers.iter().find(|r| r.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Notifications, String> {
        let v: serde_json::Value = serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?;
        serde_path_to_error::deserialize(&v).map_err(|e| format!("{}: {}", e.path(), e.inner()))
    }

    #[test]
    fn a_secret_written_in_place_is_refused_without_being_echoed() {
        let e = parse("receivers:\n- name: s\n  slack: {url: 'https://hooks.slack.com/services/T0/B0/SEKRIT'}\n")
            .unwrap_err();
        assert!(e.contains("receivers[0].slack.url"), "{e}");
        assert!(e.contains("{env: NAME} or {file: PATH}"), "{e}");
        assert!(!e.contains("SEKRIT"), "{e}");
        let ok = parse("receivers:\n- name: s\n  slack: {url: {env: SLACK_URL}}\n").unwrap();
        assert_eq!(
            ok.receivers[0].slack.as_ref().unwrap().url,
            Secret::Env("SLACK_URL".into())
        );
        let e = parse("receivers:\n- name: s\n  slack: {url: {vault: x}}\n").unwrap_err();
        assert!(e.contains("{env: NAME}"), "{e}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let n = parse(
            r#"
dashboardUrl: ftp://x
receivers:
- name: a
- name: a
  slack: {url: {env: 1BAD}}
  teams: {url: {file: relative}}
- name: m
  email: {host: smtp.example.com, tls: none, password: {env: P}, from: nobody, to: []}
routes:
- matchers: ['sevrity="high"']
  receivers: [nope]
- receivers: []
severity:
  raise: [{over: 3, to: critical}, {over: 1, to: high}]
  escalations: [{remediation: delete-pod, after: 0, severity: critical}]
delivery: {queue: 0, attempts: 0}
"#,
        )
        .unwrap();
        let paths: Vec<String> = n.validate().into_iter().map(|(p, _)| p).collect();
        for want in [
            "dashboardUrl",
            "receivers[0]",
            "receivers[1].name",
            "receivers[1]",
            "receivers[1].slack.url.env",
            "receivers[1].teams.url.file",
            "receivers[2].email.from",
            "receivers[2].email.to",
            "receivers[2].email.username",
            "receivers[2].email.tls",
            "routes[0].matchers[0]",
            "routes[0].receivers[0]",
            "routes[1].receivers",
            "severity.raise",
            "severity.escalations[0].after",
            "delivery.queue",
            "delivery.attempts",
        ] {
            assert!(
                paths.iter().any(|p| p == want),
                "missing {want} in {paths:?}"
            );
        }
    }

    #[test]
    fn the_served_view_loads_back_equal_and_names_secrets_only_by_reference() {
        let n = parse(
            r#"
receivers:
- name: pager
  pagerduty: {routingKey: {file: /run/secrets/pd}}
- name: mail
  email: {host: smtp.example.com, username: u, password: {env: SMTP_PASSWORD}, from: h@example.com, to: [o@example.com]}
routes:
- matchers: ['severity=~"high|critical"']
  receivers: [pager]
  continue: true
- receivers: [mail]
"#,
        )
        .unwrap();
        assert!(n.validate().is_empty(), "{:?}", n.validate());
        let served = serde_json::to_value(&n).unwrap();
        assert_eq!(
            served["receivers"][0]["pagerduty"]["url"],
            PAGERDUTY_EVENTS_URL
        );
        assert_eq!(
            served["receivers"][1]["email"]["password"],
            serde_json::json!({"env": "SMTP_PASSWORD"})
        );
        let back: Notifications = serde_json::from_value(served).unwrap();
        assert_eq!(back, n);
        assert_eq!(n.receivers[1].channel().unwrap().as_str(), "email");
        assert_eq!(n.receivers[1].email.as_ref().unwrap().port(), 587);
    }
}
