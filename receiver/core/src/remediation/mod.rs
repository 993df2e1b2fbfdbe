//! The remediations heal8s knows, their typed parameters and the one registration point.
//!
//! Owns: names, parameter parsing/validation, and which target each remediation acts on.
//! One file per remediation; adding one touches this file's three tables and nothing else.
//! Must not do IO: executors live in receiver-k8s and gitops.

mod bump_memory;
pub mod cleanup_resource;
mod delete_namespace;
mod delete_node;
mod delete_pod;
mod drain_node;
mod evict_pod;
mod notify_only;
mod rollback_image;
mod scale_up;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use bump_memory::{BumpMemory, RequestsRule};
pub use cleanup_resource::CleanupResource;
pub use delete_namespace::DeleteNamespace;
pub use delete_node::DeleteNode;
pub use delete_pod::DeletePod;
pub use drain_node::DrainNode;
pub use evict_pod::EvictPod;
pub use notify_only::NotifyOnly;
pub use rollback_image::RollbackImage;
pub use scale_up::ScaleUp;

use crate::signal::Signal;
use crate::target::{Target, TargetKind};

/// How a remediation is carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Through the Kubernetes API (janitor actions).
    Direct,
    /// As a pull request against the manifest repository (declarative fixes).
    PullRequest,
    /// Decide and record, change nothing.
    DryRun,
}

impl Mode {
    /// The policy-file spelling, also a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Direct => "direct",
            Mode::PullRequest => "pull-request",
            Mode::DryRun => "dry-run",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name of a remediation, without parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RemediationKind {
    DeletePod,
    EvictPod,
    DrainNode,
    DeleteNode,
    CleanupResource,
    DeleteNamespace,
    BumpMemory,
    ScaleUp,
    RollbackImage,
    NotifyOnly,
}

impl RemediationKind {
    /// Every remediation, in documentation order.
    pub const ALL: [RemediationKind; 10] = [
        RemediationKind::DeletePod,
        RemediationKind::EvictPod,
        RemediationKind::DrainNode,
        RemediationKind::DeleteNode,
        RemediationKind::CleanupResource,
        RemediationKind::DeleteNamespace,
        RemediationKind::BumpMemory,
        RemediationKind::ScaleUp,
        RemediationKind::RollbackImage,
        RemediationKind::NotifyOnly,
    ];

    /// The policy-file spelling, also a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            RemediationKind::DeletePod => "delete-pod",
            RemediationKind::EvictPod => "evict-pod",
            RemediationKind::DrainNode => "drain-node",
            RemediationKind::DeleteNode => "delete-node",
            RemediationKind::CleanupResource => "cleanup-resource",
            RemediationKind::DeleteNamespace => "delete-namespace",
            RemediationKind::BumpMemory => "bump-memory",
            RemediationKind::ScaleUp => "scale-up",
            RemediationKind::RollbackImage => "rollback-image",
            RemediationKind::NotifyOnly => "notify-only",
        }
    }

    /// Parse the policy-file spelling.
    pub fn parse(s: &str) -> Option<RemediationKind> {
        RemediationKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Declarative fixes change what git declares, so they go through pull requests.
    pub fn is_declarative(self) -> bool {
        matches!(
            self,
            RemediationKind::BumpMemory | RemediationKind::ScaleUp | RemediationKind::RollbackImage
        )
    }

    /// Whether the remediation changes anything at all (everything but notify-only).
    pub fn is_mutating(self) -> bool {
        self != RemediationKind::NotifyOnly
    }

    /// The mode used when a route names none.
    pub fn default_mode(self) -> Mode {
        if self.is_declarative() {
            Mode::PullRequest
        } else {
            Mode::Direct
        }
    }

    /// Whether a route may run this remediation in `mode`.
    pub fn allows(self, mode: Mode) -> bool {
        match mode {
            Mode::DryRun => true,
            Mode::Direct => !self.is_declarative(),
            Mode::PullRequest => self.is_declarative(),
        }
    }
}

impl fmt::Display for RemediationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A remediation with its validated parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "remediation", content = "params", rename_all = "kebab-case")]
pub enum Remediation {
    DeletePod(DeletePod),
    EvictPod(EvictPod),
    DrainNode(DrainNode),
    DeleteNode(DeleteNode),
    CleanupResource(CleanupResource),
    DeleteNamespace(DeleteNamespace),
    BumpMemory(BumpMemory),
    ScaleUp(ScaleUp),
    RollbackImage(RollbackImage),
    NotifyOnly(NotifyOnly),
}

/// One problem found in a remediation's parameters: a path below `params` and a message.
pub type ParamIssue = (String, String);

fn decode<T: serde::de::DeserializeOwned + Default>(
    params: Option<&serde_json::Value>,
) -> Result<T, Vec<ParamIssue>> {
    match params {
        None | Some(serde_json::Value::Null) => Ok(T::default()),
        Some(v) => serde_path_to_error::deserialize(v).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            vec![(path, e.into_inner().to_string())]
        }),
    }
}

fn checked<T>(
    value: T,
    issues: Vec<ParamIssue>,
    wrap: fn(T) -> Remediation,
) -> Result<Remediation, Vec<ParamIssue>> {
    if issues.is_empty() {
        Ok(wrap(value))
    } else {
        Err(issues)
    }
}

impl Remediation {
    /// Decode and validate the parameters of `kind`; every problem is reported.
    pub fn from_params(
        kind: RemediationKind,
        params: Option<&serde_json::Value>,
    ) -> Result<Remediation, Vec<ParamIssue>> {
        macro_rules! build {
            ($ty:ident) => {{
                let p: $ty = decode(params)?;
                let issues = p.validate();
                checked(p, issues, Remediation::$ty)
            }};
        }
        match kind {
            RemediationKind::DeletePod => build!(DeletePod),
            RemediationKind::EvictPod => build!(EvictPod),
            RemediationKind::DrainNode => build!(DrainNode),
            RemediationKind::DeleteNode => build!(DeleteNode),
            RemediationKind::CleanupResource => build!(CleanupResource),
            RemediationKind::DeleteNamespace => build!(DeleteNamespace),
            RemediationKind::BumpMemory => build!(BumpMemory),
            RemediationKind::ScaleUp => build!(ScaleUp),
            RemediationKind::RollbackImage => build!(RollbackImage),
            RemediationKind::NotifyOnly => build!(NotifyOnly),
        }
    }

    /// The remediation's name.
    pub fn kind(&self) -> RemediationKind {
        match self {
            Remediation::DeletePod(_) => RemediationKind::DeletePod,
            Remediation::EvictPod(_) => RemediationKind::EvictPod,
            Remediation::DrainNode(_) => RemediationKind::DrainNode,
            Remediation::DeleteNode(_) => RemediationKind::DeleteNode,
            Remediation::CleanupResource(_) => RemediationKind::CleanupResource,
            Remediation::DeleteNamespace(_) => RemediationKind::DeleteNamespace,
            Remediation::BumpMemory(_) => RemediationKind::BumpMemory,
            Remediation::ScaleUp(_) => RemediationKind::ScaleUp,
            Remediation::RollbackImage(_) => RemediationKind::RollbackImage,
            Remediation::NotifyOnly(_) => RemediationKind::NotifyOnly,
        }
    }

    /// The object this remediation acts on for `signal`, or why there is none.
    /// `Ok(None)` only for remediations that need no target (notify-only).
    pub fn target_for(&self, signal: &Signal) -> Result<Option<Target>, TargetMismatch> {
        match self {
            Remediation::DeletePod(_) | Remediation::EvictPod(_) => {
                need(signal, &[TargetKind::Pod]).map(Some)
            }
            Remediation::DrainNode(_) | Remediation::DeleteNode(_) => {
                need(signal, &[TargetKind::Node]).map(Some)
            }
            Remediation::CleanupResource(p) => p.target_for(signal).map(Some),
            Remediation::DeleteNamespace(p) => p.target_for(signal).map(Some),
            Remediation::BumpMemory(_) | Remediation::RollbackImage(_) => need(
                signal,
                &[
                    TargetKind::Pod,
                    TargetKind::Deployment,
                    TargetKind::StatefulSet,
                    TargetKind::DaemonSet,
                ],
            )
            .map(Some),
            Remediation::ScaleUp(_) => need(
                signal,
                &[
                    TargetKind::HorizontalPodAutoscaler,
                    TargetKind::Deployment,
                    TargetKind::StatefulSet,
                ],
            )
            .map(Some),
            Remediation::NotifyOnly(_) => Ok(signal.target.clone()),
        }
    }
}

/// Why a signal has no target this remediation can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetMismatch {
    #[error("the signal names no target{}", .0.as_deref().map(|p| format!(" ({p})")).unwrap_or_default())]
    Missing(Option<String>),
    #[error("{remediation_needs} is needed but the signal is about a {found}")]
    WrongKind {
        remediation_needs: String,
        found: String,
    },
    #[error("{0}")]
    NotAllowed(String),
}

fn need(signal: &Signal, kinds: &[TargetKind]) -> Result<Target, TargetMismatch> {
    let t = signal
        .target
        .as_ref()
        .ok_or_else(|| TargetMismatch::Missing(signal.target_problem.clone()))?;
    if kinds.contains(&t.kind) {
        Ok(t.clone())
    } else {
        Err(TargetMismatch::WrongKind {
            remediation_needs: kinds
                .iter()
                .map(|k| k.kind_name().to_string())
                .collect::<Vec<_>>()
                .join(" or "),
            found: t.kind.kind_name().to_string(),
        })
    }
}

fn range_issue<T: PartialOrd + fmt::Display>(
    field: &str,
    v: T,
    lo: T,
    hi: T,
) -> Option<ParamIssue> {
    (v < lo || v > hi).then(|| (field.to_string(), format!("{v} is outside {lo}..={hi}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_kind_round_trips_its_name_and_has_defaults() {
        for k in RemediationKind::ALL {
            assert_eq!(RemediationKind::parse(k.as_str()), Some(k));
            let r = Remediation::from_params(k, None).unwrap_or_else(|e| {
                // only the remediations with required parameters may fail without params
                assert!(
                    matches!(
                        k,
                        RemediationKind::CleanupResource | RemediationKind::DeleteNamespace
                    ),
                    "{k}: {e:?}"
                );
                Remediation::NotifyOnly(NotifyOnly::default())
            });
            if !matches!(
                k,
                RemediationKind::CleanupResource | RemediationKind::DeleteNamespace
            ) {
                assert_eq!(r.kind(), k);
            }
        }
        assert_eq!(RemediationKind::parse("restart-everything"), None);
    }

    #[test]
    fn modes_follow_the_kind_of_fix() {
        assert!(RemediationKind::DeletePod.allows(Mode::Direct));
        assert!(!RemediationKind::DeletePod.allows(Mode::PullRequest));
        assert!(RemediationKind::BumpMemory.allows(Mode::PullRequest));
        assert!(!RemediationKind::BumpMemory.allows(Mode::Direct));
        assert!(RemediationKind::ScaleUp.allows(Mode::DryRun));
        assert_eq!(
            RemediationKind::RollbackImage.default_mode(),
            Mode::PullRequest
        );
        assert_eq!(RemediationKind::DrainNode.default_mode(), Mode::Direct);
    }

    #[test]
    fn unknown_parameter_is_reported_with_its_name() {
        let e =
            Remediation::from_params(RemediationKind::DeletePod, Some(&json!({"gracePeriod": 3})))
                .unwrap_err();
        assert!(e[0].1.contains("gracePeriod"), "{e:?}");
    }

    #[test]
    fn all_invalid_values_are_reported_at_once() {
        let e = Remediation::from_params(
            RemediationKind::BumpMemory,
            Some(&json!({"factor": 9.0, "step": "lots", "max": "1Gi", "default": "2Gi"})),
        )
        .unwrap_err();
        let fields: Vec<_> = e.iter().map(|(f, _)| f.as_str()).collect();
        assert!(fields.contains(&"factor"), "{e:?}");
        assert!(fields.contains(&"step"), "{e:?}");
        assert!(fields.contains(&"default"), "{e:?}");
    }
}
