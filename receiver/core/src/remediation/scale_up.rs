//! scale-up: propose a higher HPA `maxReplicas` (or `replicas` without an HPA).

use serde::{Deserialize, Serialize};

use crate::target::TargetKind;
use super::{ActionClass, Feature, ParamIssue, RemediationSpec, Style, range_issue};

/// Parameters of `scale-up`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ScaleUp {
    /// Raise by this percentage (at least +1 replica).
    pub percent: u32,
    /// Never propose more than this many replicas.
    pub max_replicas: u32,
}

impl Default for ScaleUp {
    fn default() -> Self {
        ScaleUp {
            percent: 50,
            max_replicas: 50,
        }
    }
}

impl RemediationSpec for ScaleUp {
    const NAME: &'static str = "scale-up";
    const STYLE: Style = Style::Declarative;
    const FEATURE: Option<Feature> = None;
    const CLASS: ActionClass = ActionClass::PullRequests;
    const TARGETS: &'static [TargetKind] = &[
        TargetKind::HorizontalPodAutoscaler,
        TargetKind::Deployment,
        TargetKind::StatefulSet,
    ];

    fn describe(&self, target: &str) -> String {
        format!(
            "propose {}% more replicas for {target} (at most {})",
            self.percent, self.max_replicas
        )
    }

    /// Every problem with these parameters.
    fn validate(&self) -> Vec<ParamIssue> {
        let mut out = Vec::new();
        out.extend(range_issue("percent", self.percent, 1, 1000));
        out.extend(range_issue("maxReplicas", self.max_replicas, 1, 10_000));
        out
    }
}
