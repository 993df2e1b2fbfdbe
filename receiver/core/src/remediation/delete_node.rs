//! delete-node: delete a failed Node object so the machine controller replaces it.

use serde::{Deserialize, Serialize};

use crate::target::TargetKind;
use super::{ActionClass, Feature, ParamIssue, RemediationSpec, Style, range_issue};
use crate::duration::PromDuration;

/// Parameters of `delete-node`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct DeleteNode {
    /// Drain the node before deleting it (on by default).
    pub drain_first: bool,
    /// Give up on the drain after this long.
    pub drain_timeout: PromDuration,
}

impl Default for DeleteNode {
    fn default() -> Self {
        DeleteNode {
            drain_first: true,
            drain_timeout: PromDuration::secs(600),
        }
    }
}

impl RemediationSpec for DeleteNode {
    const NAME: &'static str = "delete-node";
    const STYLE: Style = Style::Janitor;
    const FEATURE: Option<Feature> = Some(Feature::DeleteNodes);
    const CLASS: ActionClass = ActionClass::Nodes;
    const TARGETS: &'static [TargetKind] = &[TargetKind::Node];

    fn describe(&self, target: &str) -> String {
        if self.drain_first {
            format!("drain and delete {target}")
        } else {
            format!("delete {target}")
        }
    }

    /// Every problem with these parameters.
    fn validate(&self) -> Vec<ParamIssue> {
        range_issue(
            "drainTimeout",
            self.drain_timeout,
            PromDuration::secs(10),
            PromDuration::secs(6 * 3600),
        )
        .into_iter()
        .collect()
    }
}
