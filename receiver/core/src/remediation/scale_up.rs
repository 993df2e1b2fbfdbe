//! scale-up: propose a higher HPA `maxReplicas` (or `replicas` without an HPA).

use serde::{Deserialize, Serialize};

use super::{ParamIssue, range_issue};

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

impl ScaleUp {
    /// Every problem with these parameters.
    pub fn validate(&self) -> Vec<ParamIssue> {
        let mut out = Vec::new();
        out.extend(range_issue("percent", self.percent, 1, 1000));
        out.extend(range_issue("maxReplicas", self.max_replicas, 1, 10_000));
        out
    }
}
