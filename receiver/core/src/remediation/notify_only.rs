//! notify-only: record and notify, change nothing.

use serde::{Deserialize, Serialize};

use super::{ActionClass, Feature, ParamIssue, RemediationSpec, Style, TargetMismatch};
use crate::signal::Signal;
use crate::target::{Target, TargetKind};

/// Parameters of `notify-only` (none yet).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct NotifyOnly {}

impl RemediationSpec for NotifyOnly {
    const NAME: &'static str = "notify-only";
    const STYLE: Style = Style::Notify;
    const FEATURE: Option<Feature> = None;
    const CLASS: ActionClass = ActionClass::Notify;
    const TARGETS: &'static [TargetKind] = &[];

    /// Every problem with these parameters (there can be none).
    fn validate(&self) -> Vec<ParamIssue> {
        Vec::new()
    }

    fn describe(&self, target: &str) -> String {
        format!("notify about {target}")
    }

    /// Whatever the signal is about, if anything.
    fn target_for(&self, signal: &Signal) -> Result<Option<Target>, TargetMismatch> {
        Ok(signal.target.clone())
    }
}
