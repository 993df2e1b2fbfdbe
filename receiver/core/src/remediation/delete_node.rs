//! delete-node: delete a failed Node object so the machine controller replaces it.

use serde::{Deserialize, Serialize};

use super::{ParamIssue, range_issue};
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

impl DeleteNode {
    /// Every problem with these parameters.
    pub fn validate(&self) -> Vec<ParamIssue> {
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
