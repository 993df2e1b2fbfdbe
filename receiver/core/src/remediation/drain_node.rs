//! drain-node: cordon a failed node and evict its pods (like `kubectl drain`).

use serde::{Deserialize, Serialize};

use crate::target::TargetKind;
use super::{ActionClass, Feature, ParamIssue, RemediationSpec, Style, range_issue};
use crate::duration::PromDuration;

/// Parameters of `drain-node`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct DrainNode {
    /// Only cordon; evict nothing.
    pub cordon_only: bool,
    /// Give up (and record Failed) after this long.
    pub timeout: PromDuration,
    /// Grace period for each eviction; the pod's own when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<u32>,
    /// Evict pods that use emptyDir volumes (their data is lost). Off by default.
    pub delete_emptydir_data: bool,
    /// On a node whose kubelet is gone, after the drain, add Kubernetes'
    /// non-graceful node shutdown taint `node.kubernetes.io/out-of-service=
    /// nodeshutdown:NoExecute`, so StatefulSet pods and their volumes move
    /// off it. Only safe when the node is really shut down (fenced). Off by default.
    pub out_of_service_taint: bool,
}

impl Default for DrainNode {
    fn default() -> Self {
        DrainNode {
            cordon_only: false,
            timeout: PromDuration::secs(600),
            grace_period_seconds: None,
            delete_emptydir_data: false,
            out_of_service_taint: false,
        }
    }
}

impl RemediationSpec for DrainNode {
    const NAME: &'static str = "drain-node";
    const STYLE: Style = Style::Janitor;
    const FEATURE: Option<Feature> = Some(Feature::DrainNodes);
    const CLASS: ActionClass = ActionClass::Nodes;
    const TARGETS: &'static [TargetKind] = &[TargetKind::Node];

    fn describe(&self, target: &str) -> String {
        if self.cordon_only {
            format!("cordon {target}")
        } else {
            format!("cordon and drain {target}")
        }
    }

    /// Every problem with these parameters.
    fn validate(&self) -> Vec<ParamIssue> {
        let mut out = Vec::new();
        out.extend(
            self.grace_period_seconds
                .and_then(|g| range_issue("gracePeriodSeconds", g, 0, 3600)),
        );
        out.extend(range_issue(
            "timeout",
            self.timeout,
            PromDuration::secs(10),
            PromDuration::secs(6 * 3600),
        ));
        out
    }
}
