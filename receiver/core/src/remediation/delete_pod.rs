//! delete-pod: delete a broken pod so its controller recreates it.

use serde::{Deserialize, Serialize};

use crate::target::TargetKind;
use super::{ActionClass, Feature, ParamIssue, RemediationSpec, Style, range_issue};

/// Parameters of `delete-pod`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct DeletePod {
    /// Grace period for the deletion; the pod's own when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<u32>,
}

impl RemediationSpec for DeletePod {
    const NAME: &'static str = "delete-pod";
    const STYLE: Style = Style::Janitor;
    const FEATURE: Option<Feature> = Some(Feature::HealPods);
    const CLASS: ActionClass = ActionClass::Pods;
    const TARGETS: &'static [TargetKind] = &[TargetKind::Pod];

    fn describe(&self, target: &str) -> String {
        format!("delete {target}")
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
