//! notify-only: record and notify, change nothing.

use serde::{Deserialize, Serialize};

use super::ParamIssue;

/// Parameters of `notify-only` (none yet).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct NotifyOnly {}

impl NotifyOnly {
    /// Every problem with these parameters (there can be none).
    pub fn validate(&self) -> Vec<ParamIssue> {
        Vec::new()
    }
}
