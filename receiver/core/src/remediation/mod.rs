//! The remediations heal8s knows, their typed parameters and the one registration point.
//!
//! Owns: names, parameter parsing/validation, which target each remediation
//! acts on, its class, feature switch and style. One file per remediation;
//! each implements [`RemediationSpec`] (what it says about itself), and
//! adding one is that file plus one line in the `registry!` call below.
//! Must not do IO: executors live in receiver-k8s and gitops.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::signal::Signal;
use crate::target::{Target, TargetKind};

/// How a remediation is carried out: the rungs of the ladder a team climbs
/// as it comes to trust heal8s, per route (docs/policy.md#modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Decide and record what would be done (phase `Observed`); change
    /// nothing, consume no budget. `dry-run` is its older name.
    #[serde(alias = "dry-run")]
    Observe,
    /// Declarative fixes: a pull request. Janitor actions: a notification and
    /// a record in phase `Proposed`; nothing changed. `pull-request` is its
    /// older name.
    #[serde(alias = "pull-request")]
    Propose,
    /// Record the plan in phase `AwaitingApproval` and act only once a person
    /// approves that record (`heal8s approve`), after the live state and the
    /// guard are checked again.
    Approve,
    /// Act through the Kubernetes API (janitor actions).
    Direct,
}

impl Mode {
    /// Every mode, lowest rung first.
    pub const ALL: [Mode; 4] = [Mode::Observe, Mode::Propose, Mode::Approve, Mode::Direct];

    /// The policy-file spelling, also a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Observe => "observe",
            Mode::Propose => "propose",
            Mode::Approve => "approve",
            Mode::Direct => "direct",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of fix a remediation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Acts on the cluster through the Kubernetes API (`mode: direct`).
    Janitor,
    /// Changes what git declares, through a pull request (`mode: pull-request`).
    Declarative,
    /// Changes nothing; tells people.
    Notify,
}

/// The policy switch (`features`) that enables a remediation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    HealPods,
    DrainNodes,
    DeleteNodes,
    CleanupResources,
    DeleteNamespaces,
}

/// The class of an action, for the breakers that act per class (rates,
/// in-flight caps, mass flips). `as_str` is a bounded metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionClass {
    /// delete-pod, evict-pod.
    Pods,
    /// drain-node, delete-node.
    Nodes,
    /// delete-namespace.
    Namespaces,
    /// cleanup-resource without finalizer removal.
    Resources,
    /// cleanup-resource that may remove finalizers.
    Finalizers,
    /// bump-memory, scale-up, rollback-image.
    PullRequests,
    /// notify-only.
    Notify,
}

impl ActionClass {
    /// Every class, for metrics that start at 0.
    pub const ALL: [ActionClass; 7] = [
        ActionClass::Pods,
        ActionClass::Nodes,
        ActionClass::Namespaces,
        ActionClass::Resources,
        ActionClass::Finalizers,
        ActionClass::PullRequests,
        ActionClass::Notify,
    ];

    /// kebab-case name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionClass::Pods => "pods",
            ActionClass::Nodes => "nodes",
            ActionClass::Namespaces => "namespaces",
            ActionClass::Resources => "resources",
            ActionClass::Finalizers => "finalizers",
            ActionClass::PullRequests => "pull-requests",
            ActionClass::Notify => "notify",
        }
    }
}

impl fmt::Display for ActionClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a remediation says about itself: its parameters (the type that
/// implements this), its name, style, feature switch, class, the targets it
/// acts on, and how a plan of it reads. Everything else (the policy, the
/// guard, plans) asks the registry instead of keeping its own table.
pub trait RemediationSpec: Sized + Default + Serialize + DeserializeOwned {
    /// The policy-file spelling, also a metric label: `evict-pod`.
    const NAME: &'static str;
    /// Janitor, declarative or notify.
    const STYLE: Style;
    /// The `features` switch that enables it; `None`: always enabled.
    const FEATURE: Option<Feature>;
    /// Its usual class of action (see [`RemediationSpec::class`]).
    const CLASS: ActionClass;
    /// The kinds of target it acts on, for the default `target_for`.
    const TARGETS: &'static [TargetKind];

    /// Every problem with these parameters, at once.
    fn validate(&self) -> Vec<ParamIssue>;

    /// What the plan does, as a sentence fragment, given the target's
    /// display: "evict Pod shop/api-1".
    fn describe(&self, target: &str) -> String;

    /// The object it acts on for `signal`, or why there is none.
    fn target_for(&self, signal: &Signal) -> Result<Option<Target>, TargetMismatch> {
        need(signal, Self::TARGETS).map(Some)
    }

    /// The class of this action with these parameters.
    fn class(&self) -> ActionClass {
        Self::CLASS
    }

    /// Whether it acts on a pod whole (the target is shown without the
    /// container a signal named).
    fn whole_pod(&self) -> bool {
        false
    }
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

fn build<T: RemediationSpec>(
    params: Option<&serde_json::Value>,
    wrap: fn(T) -> Remediation,
) -> Result<Remediation, Vec<ParamIssue>> {
    let p: T = decode(params)?;
    let issues = p.validate();
    if issues.is_empty() {
        Ok(wrap(p))
    } else {
        Err(issues)
    }
}

/// The registry: one line per remediation, `module::Type`, in documentation
/// order. It declares the module and generates [`RemediationKind`],
/// [`Remediation`] and their dispatch.
macro_rules! registry {
    ($($module:ident :: $ty:ident),+ $(,)?) => {
        $(pub mod $module;)+
        $(pub use $module::$ty;)+

        /// The name of a remediation, without parameters.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum RemediationKind {
            $($ty,)+
        }

        /// A remediation with its validated parameters.
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(tag = "remediation", content = "params", rename_all = "kebab-case")]
        pub enum Remediation {
            $($ty($ty),)+
        }

        impl RemediationKind {
            /// Every remediation, in documentation order.
            pub const ALL: [RemediationKind; [$(stringify!($ty)),+].len()] =
                [$(RemediationKind::$ty,)+];

            /// The policy-file spelling, also a metric label.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(RemediationKind::$ty => <$ty as RemediationSpec>::NAME,)+
                }
            }

            /// Janitor, declarative or notify.
            pub fn style(self) -> Style {
                match self {
                    $(RemediationKind::$ty => <$ty as RemediationSpec>::STYLE,)+
                }
            }

            /// The `features` switch that enables it, if any.
            pub fn feature(self) -> Option<Feature> {
                match self {
                    $(RemediationKind::$ty => <$ty as RemediationSpec>::FEATURE,)+
                }
            }

            /// Its usual class (cleanup-resource: without finalizers).
            pub fn class(self) -> ActionClass {
                match self {
                    $(RemediationKind::$ty => <$ty as RemediationSpec>::CLASS,)+
                }
            }
        }

        impl Remediation {
            /// Decode and validate the parameters of `kind`; every problem is reported.
            pub fn from_params(
                kind: RemediationKind,
                params: Option<&serde_json::Value>,
            ) -> Result<Remediation, Vec<ParamIssue>> {
                match kind {
                    $(RemediationKind::$ty => build::<$ty>(params, Remediation::$ty),)+
                }
            }

            /// The remediation's name.
            pub fn kind(&self) -> RemediationKind {
                match self {
                    $(Remediation::$ty(_) => RemediationKind::$ty,)+
                }
            }

            /// The object this remediation acts on for `signal`, or why there is none.
            /// `Ok(None)` only for remediations that need no target (notify-only).
            pub fn target_for(&self, signal: &Signal) -> Result<Option<Target>, TargetMismatch> {
                match self {
                    $(Remediation::$ty(p) => p.target_for(signal),)+
                }
            }

            /// The class of this action (cleanup-resource that may remove
            /// finalizers is a class of its own).
            pub fn class(&self) -> ActionClass {
                match self {
                    $(Remediation::$ty(p) => p.class(),)+
                }
            }

            /// What it does to `target` (its display), as a sentence fragment.
            pub fn describe(&self, target: &str) -> String {
                match self {
                    $(Remediation::$ty(p) => p.describe(target),)+
                }
            }

            /// Whether it acts on a pod whole.
            pub fn whole_pod(&self) -> bool {
                match self {
                    $(Remediation::$ty(p) => p.whole_pod(),)+
                }
            }
        }
    };
}

registry! {
    delete_pod::DeletePod,
    evict_pod::EvictPod,
    drain_node::DrainNode,
    delete_node::DeleteNode,
    cleanup_resource::CleanupResource,
    delete_namespace::DeleteNamespace,
    bump_memory::BumpMemory,
    scale_up::ScaleUp,
    rollback_image::RollbackImage,
    notify_only::NotifyOnly,
}

pub use bump_memory::RequestsRule;

/// A remediation reads back as it is written (`{remediation, params}`), and
/// its parameters are checked again as in a policy.
impl<'de> Deserialize<'de> for Remediation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Remediation, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            remediation: RemediationKind,
            #[serde(default)]
            params: Option<serde_json::Value>,
        }
        let raw = Raw::deserialize(d)?;
        Remediation::from_params(raw.remediation, raw.params.as_ref()).map_err(|issues| {
            let all: Vec<String> = issues
                .into_iter()
                .map(|(path, msg)| {
                    if path.is_empty() {
                        format!("params: {msg}")
                    } else {
                        format!("params.{path}: {msg}")
                    }
                })
                .collect();
            serde::de::Error::custom(all.join("; "))
        })
    }
}

impl RemediationKind {
    /// Parse the policy-file spelling.
    pub fn parse(s: &str) -> Option<RemediationKind> {
        RemediationKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Declarative fixes change what git declares, so they go through pull requests.
    pub fn is_declarative(self) -> bool {
        self.style() == Style::Declarative
    }

    /// Whether the remediation changes anything at all (everything but notify-only).
    pub fn is_mutating(self) -> bool {
        self.style() != Style::Notify
    }

    /// The mode used when a route names none.
    pub fn default_mode(self) -> Mode {
        if self.is_declarative() {
            Mode::Propose
        } else {
            Mode::Direct
        }
    }

    /// Whether a route may run this remediation in `mode`: every remediation
    /// may be observed; a pull request is proposed (its review is its
    /// approval), never approved here or applied directly; a janitor action
    /// climbs the whole ladder; a notification has nothing to propose or approve.
    pub fn allows(self, mode: Mode) -> bool {
        match (self.style(), mode) {
            (_, Mode::Observe) => true,
            (Style::Janitor, _) => true,
            (Style::Declarative, m) => m == Mode::Propose,
            (Style::Notify, m) => m == Mode::Direct,
        }
    }

    /// The modes a route may give it, lowest rung first (for `check-config`
    /// and the policy errors).
    pub fn modes(self) -> Vec<Mode> {
        Mode::ALL.into_iter().filter(|m| self.allows(*m)).collect()
    }
}

impl fmt::Display for RemediationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
            // the serde spelling is the registered name
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::Value::String(k.as_str().into())
            );
            // every remediation has usable defaults
            let r = Remediation::from_params(k, None).unwrap();
            assert_eq!(r.kind(), k);
            assert_eq!(
                r.class(),
                k.class(),
                "{k}: its defaults are its usual class"
            );
        }
        assert_eq!(RemediationKind::parse("restart-everything"), None);
    }

    #[test]
    fn each_remediation_describes_itself() {
        use ActionClass as C;
        let table: Vec<(&str, Style, Option<Feature>, C)> = RemediationKind::ALL
            .into_iter()
            .map(|k| (k.as_str(), k.style(), k.feature(), k.class()))
            .collect();
        assert_eq!(
            table,
            [
                (
                    "delete-pod",
                    Style::Janitor,
                    Some(Feature::HealPods),
                    C::Pods
                ),
                (
                    "evict-pod",
                    Style::Janitor,
                    Some(Feature::HealPods),
                    C::Pods
                ),
                (
                    "drain-node",
                    Style::Janitor,
                    Some(Feature::DrainNodes),
                    C::Nodes
                ),
                (
                    "delete-node",
                    Style::Janitor,
                    Some(Feature::DeleteNodes),
                    C::Nodes
                ),
                (
                    "cleanup-resource",
                    Style::Janitor,
                    Some(Feature::CleanupResources),
                    C::Resources
                ),
                (
                    "delete-namespace",
                    Style::Janitor,
                    Some(Feature::DeleteNamespaces),
                    C::Namespaces
                ),
                ("bump-memory", Style::Declarative, None, C::PullRequests),
                ("scale-up", Style::Declarative, None, C::PullRequests),
                ("rollback-image", Style::Declarative, None, C::PullRequests),
                ("notify-only", Style::Notify, None, C::Notify),
            ]
        );
        let finalizers = Remediation::from_params(
            RemediationKind::CleanupResource,
            Some(&json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "removeFinalizers": true})),
        )
        .unwrap();
        assert_eq!(finalizers.class(), C::Finalizers);
        let evict = Remediation::from_params(RemediationKind::EvictPod, None).unwrap();
        assert_eq!(evict.describe("Pod shop/api-1"), "evict Pod shop/api-1");
        assert!(evict.whole_pod());
    }

    #[test]
    fn modes_follow_the_kind_of_fix() {
        use Mode::*;
        let modes = |k: RemediationKind| k.modes();
        // a janitor action climbs the whole ladder
        assert_eq!(
            modes(RemediationKind::DeletePod),
            [Observe, Propose, Approve, Direct]
        );
        assert_eq!(
            modes(RemediationKind::DeleteNode),
            [Observe, Propose, Approve, Direct]
        );
        // a pull request is proposed (its review approves it), never applied directly
        assert_eq!(modes(RemediationKind::BumpMemory), [Observe, Propose]);
        // a notification has nothing to propose or approve
        assert_eq!(modes(RemediationKind::NotifyOnly), [Observe, Direct]);
        assert_eq!(RemediationKind::RollbackImage.default_mode(), Propose);
        assert_eq!(RemediationKind::DrainNode.default_mode(), Direct);
        // the older spellings read as the rungs they were
        let m: Vec<Mode> =
            serde_json::from_str(r#"["dry-run", "pull-request", "approve"]"#).unwrap();
        assert_eq!(m, [Observe, Propose, Approve]);
        assert_eq!(serde_json::to_string(&Observe).unwrap(), r#""observe""#);
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
