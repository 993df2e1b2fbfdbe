//! bump-memory: propose a higher memory limit after OOM kills.

use serde::{Deserialize, Serialize};

use crate::target::TargetKind;
use super::{ActionClass, Feature, ParamIssue, RemediationSpec, Style};
use crate::quantity;

/// How memory requests follow a raised limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestsRule {
    /// Leave requests alone.
    Keep,
    /// Scale requests by the same factor, never above the new limit.
    #[default]
    Scale,
    /// Set requests equal to the new limit.
    MatchLimit,
}

/// Parameters of `bump-memory`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct BumpMemory {
    /// New limit = max(current × factor, current + step).
    pub factor: f64,
    /// Minimum increase, a memory quantity.
    pub step: String,
    /// Never propose more than this; at the cap the remediation escalates.
    pub max: String,
    /// Starting point for containers with neither a limit nor a request.
    pub default: String,
    /// How requests follow the limit.
    pub requests: RequestsRule,
}

impl Default for BumpMemory {
    fn default() -> Self {
        BumpMemory {
            factor: 1.2,
            step: "100Mi".into(),
            max: "8Gi".into(),
            default: "256Mi".into(),
            requests: RequestsRule::Scale,
        }
    }
}

impl RemediationSpec for BumpMemory {
    const NAME: &'static str = "bump-memory";
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
        format!(
            "propose a higher memory limit for {target} (x{} or +{}, at most {})",
            self.factor, self.step, self.max
        )
    }

    /// Every problem with these parameters.
    fn validate(&self) -> Vec<ParamIssue> {
        let mut out = Vec::new();
        if !(self.factor > 1.0 && self.factor <= 4.0) {
            out.push((
                "factor".into(),
                format!("{} is outside (1.0, 4.0]", self.factor),
            ));
        }
        let mut parsed = |field: &str, v: &str| match quantity::parse_bytes(v) {
            Ok(0) => {
                out.push((field.to_string(), "must be greater than zero".into()));
                None
            }
            Ok(b) => Some(b),
            Err(e) => {
                out.push((field.to_string(), e));
                None
            }
        };
        let _step = parsed("step", &self.step);
        let max = parsed("max", &self.max);
        let default = parsed("default", &self.default);
        if let (Some(max), Some(default)) = (max, default)
            && default > max
        {
            out.push((
                "default".into(),
                format!("{} is above max {}", self.default, self.max),
            ));
        }
        out
    }
}
