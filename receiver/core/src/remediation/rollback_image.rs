//! rollback-image: propose setting a container's image back to the last image that was healthy.

use serde::{Deserialize, Serialize};

use crate::target::TargetKind;
use super::{ActionClass, Feature, ParamIssue, RemediationSpec, Style, range_issue};
use crate::duration::PromDuration;

/// Parameters of `rollback-image`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct RollbackImage {
    /// Only roll back when the current image was rolled out at most this long
    /// before the problem started: a crash loop that began with a new image.
    pub max_rollout_age: PromDuration,
}

impl Default for RollbackImage {
    fn default() -> Self {
        RollbackImage {
            max_rollout_age: PromDuration::secs(3600),
        }
    }
}

impl RemediationSpec for RollbackImage {
    const NAME: &'static str = "rollback-image";
    const STYLE: Style = Style::Declarative;
    const FEATURE: Option<Feature> = None;
    const CLASS: ActionClass = ActionClass::PullRequests;
    const TARGETS: &'static [TargetKind] = &[
        TargetKind::Pod,
        TargetKind::Deployment,
        TargetKind::StatefulSet,
        TargetKind::DaemonSet,
    ];

    fn describe(&self, target: &str) -> String {
        format!("propose rolling back the image of {target} to the last healthy one")
    }

    /// Every problem with these parameters.
    fn validate(&self) -> Vec<ParamIssue> {
        range_issue(
            "maxRolloutAge",
            self.max_rollout_age,
            PromDuration::secs(60),
            PromDuration::secs(7 * 86400),
        )
        .into_iter()
        .collect()
    }
}
