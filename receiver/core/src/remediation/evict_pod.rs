//! evict-pod: evict a pod through the Eviction API so PodDisruptionBudgets are honoured.

use serde::{Deserialize, Serialize};

use crate::target::TargetKind;
use super::{ActionClass, Feature, ParamIssue, RemediationSpec, Style, range_issue};

/// Parameters of `evict-pod`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct EvictPod {
    /// Grace period for the eviction; the pod's own when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<u32>,
    /// Delete the pod when a PodDisruptionBudget keeps refusing the eviction. Off by default.
    pub fallback_to_delete: bool,
}

impl RemediationSpec for EvictPod {
    const NAME: &'static str = "evict-pod";
    const STYLE: Style = Style::Janitor;
    const FEATURE: Option<Feature> = Some(Feature::HealPods);
    const CLASS: ActionClass = ActionClass::Pods;
    const TARGETS: &'static [TargetKind] = &[TargetKind::Pod];

    fn describe(&self, target: &str) -> String {
        format!("evict {target}")
    }

    fn whole_pod(&self) -> bool {
        true
    }

    /// Every problem with these parameters.
    fn validate(&self) -> Vec<ParamIssue> {
        self.grace_period_seconds
            .and_then(|g| range_issue("gracePeriodSeconds", g, 0, 3600))
            .into_iter()
            .collect()
    }
}
