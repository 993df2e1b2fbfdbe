//! delete-namespace: delete a stale test namespace (and everything in it).
//!
//! Deliberately narrow: only namespaces whose name matches the required pattern.

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::{ActionClass, Feature, ParamIssue, RemediationSpec, Style, TargetMismatch};
use crate::duration::PromDuration;
use crate::signal::Signal;
use crate::target::{Target, TargetKind};

/// Parameters of `delete-namespace`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct DeleteNamespace {
    /// A regular expression (anchored) the namespace name must match, e.g. `e2e-.*`.
    /// Without it, only the namespace detector's findings (which apply its watch
    /// patterns) are acted on, never an alert's namespace label.
    pub name_pattern: String,
    /// Never delete a namespace younger than this (checked against the live object).
    pub min_age: PromDuration,
}

impl Default for DeleteNamespace {
    fn default() -> Self {
        DeleteNamespace {
            name_pattern: String::new(),
            min_age: PromDuration::secs(3600),
        }
    }
}

impl RemediationSpec for DeleteNamespace {
    const NAME: &'static str = "delete-namespace";
    const STYLE: Style = Style::Janitor;
    const FEATURE: Option<Feature> = Some(Feature::DeleteNamespaces);
    const CLASS: ActionClass = ActionClass::Namespaces;
    /// The namespace a signal names, only by `namePattern` (see `target_for`).
    const TARGETS: &'static [TargetKind] = &[];

    /// Every problem with these parameters.
    fn validate(&self) -> Vec<ParamIssue> {
        let mut out = Vec::new();
        if !self.name_pattern.is_empty() {
            match self.regex() {
                Err(e) => out.push(("namePattern".into(), e)),
                Ok(re) if re.is_match("") || re.is_match("default") => out.push((
                    "namePattern".into(),
                    format!(
                        "{:?} matches too much (it matches `default`)",
                        self.name_pattern
                    ),
                )),
                Ok(_) => {}
            }
        }
        if self.min_age < PromDuration::secs(60) {
            out.push(("minAge".into(), "must be at least 1m".into()));
        }
        out
    }

    fn describe(&self, target: &str) -> String {
        format!("delete {target}")
    }

    fn target_for(&self, signal: &Signal) -> Result<Option<Target>, TargetMismatch> {
        self.target(signal).map(Some)
    }
}

impl DeleteNamespace {
    fn regex(&self) -> Result<Regex, String> {
        Regex::new(&format!("^(?:{})$", self.name_pattern))
            .map_err(|e| format!("invalid regular expression: {e}"))
    }

    fn target(&self, signal: &Signal) -> Result<Target, TargetMismatch> {
        let t = signal
            .target
            .as_ref()
            .ok_or_else(|| TargetMismatch::Missing(signal.target_problem.clone()))?;
        let ns = if t.kind == TargetKind::Namespace {
            t.name.as_str()
        } else {
            t.namespace.as_deref().ok_or_else(|| {
                TargetMismatch::Missing(Some("the signal names no namespace".into()))
            })?
        };
        if self.name_pattern.is_empty() {
            if signal.source.kind() == crate::signal::SourceKind::Detector && t.kind == TargetKind::Namespace {
                return Ok(Target::new(TargetKind::Namespace, None, ns));
            }
            return Err(TargetMismatch::NotAllowed(
                "delete-namespace without namePattern acts only on the namespace detector's findings".into(),
            ));
        }
        let re = self.regex().map_err(TargetMismatch::NotAllowed)?;
        if !re.is_match(ns) {
            return Err(TargetMismatch::NotAllowed(format!(
                "namespace {ns} does not match namePattern {:?}",
                self.name_pattern
            )));
        }
        Ok(Target::new(TargetKind::Namespace, None, ns))
    }
}
