//! The controllers and kubelets a bare kube-apiserver does not run, played
//! on a test's request (as envtest leaves controllers out and kwok plays
//! kubelets): each `Controller` is one pass over the store that does what
//! that controller would do now, and says what it did. Each pass writes
//! through the store's API rules (graceful deletion, finalizers, admission
//! where the real controller's writes meet it). No HTTP, no timers here.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde_json::{Value, json};

use super::auth::UserInfo;
use super::object;
use super::resources::{ResourceDef, StorageKey};
use super::store::{
    DeleteOpts, NOT_READY_TAINT, Requester, State, WriteOpts, deletion_grace, spec_finalizers,
};

/// A controller (or kubelet) a real cluster runs and the emulation does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Controller {
    /// The kubelets of Ready nodes: each confirms the graceful deletion of
    /// its pods (a delete with grace 0), as kwok's fake kubelets do. Pods on
    /// a node that is not Ready stay `Terminating`, as on a real cluster.
    Kubelet,
    /// The namespace controller: empties a terminating namespace (deletes
    /// everything in it, through graceful deletion and finalizers), then
    /// removes its `kubernetes` finalizer so the namespace goes.
    Namespace,
    /// The ServiceAccount controller: a `default` ServiceAccount in every
    /// active namespace.
    ServiceAccount,
    /// The node lifecycle controller's tainting: `not-ready` / `unreachable`
    /// taints (NoSchedule and NoExecute) follow the Ready condition, and
    /// `unschedulable:NoSchedule` follows a cordon. It evicts nothing.
    NodeLifecycle,
}

impl Controller {
    /// Every controller the emulation can play.
    pub const ALL: [Controller; 4] = [
        Controller::Kubelet,
        Controller::Namespace,
        Controller::ServiceAccount,
        Controller::NodeLifecycle,
    ];

    /// The name `testkit kube --play` takes.
    pub fn name(self) -> &'static str {
        match self {
            Controller::Kubelet => "kubelet",
            Controller::Namespace => "namespace",
            Controller::ServiceAccount => "serviceaccount",
            Controller::NodeLifecycle => "node-lifecycle",
        }
    }
}

impl fmt::Display for Controller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Controller {
    type Err = String;

    fn from_str(s: &str) -> Result<Controller, String> {
        Controller::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Controller::ALL.iter().map(|c| c.name()).collect();
                format!("unknown controller {s:?} (one of: {})", names.join(", "))
            })
    }
}

/// One thing a played controller did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerAction {
    /// Which controller.
    pub controller: Controller,
    /// Who acted, for narration: `the kubelet of w1`, `the namespace controller`.
    pub actor: String,
    /// What it did, a clause: `confirms that pod shop/api-1 has stopped`.
    pub action: String,
}

impl fmt::Display for ControllerAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.actor, self.action)
    }
}

fn storage(group: &str, plural: &str) -> StorageKey {
    (group.to_string(), plural.to_string())
}

impl State {
    /// One pass of `controller` over the store; what it did.
    pub(crate) fn play(&mut self, controller: Controller) -> Vec<ControllerAction> {
        match controller {
            Controller::Kubelet => self.play_kubelets(),
            Controller::Namespace => self.play_namespace_controller(),
            Controller::ServiceAccount => self.play_service_account_controller(),
            Controller::NodeLifecycle => self.play_node_lifecycle_controller(),
        }
    }

    fn def_for(&self, group: &str, plural: &str) -> Option<ResourceDef> {
        self.registry.for_storage(&storage(group, plural)).cloned()
    }

    fn play_kubelets(&mut self) -> Vec<ControllerAction> {
        let Some(pods) = self.def_for("", "pods") else {
            return Vec::new();
        };
        let Some(nodes) = self.def_for("", "nodes") else {
            return Vec::new();
        };
        let mut ready: BTreeMap<String, bool> = BTreeMap::new();
        let mut done = Vec::new();
        for pod in self.deleting_in(&storage("", "pods"), None) {
            let p = pod.value();
            let node = object::path_string(&p, "spec.nodeName");
            // Grace 0 already: confirmed (or forced); only finalizers hold it.
            if node.is_empty() || deletion_grace(&p) == 0 {
                continue;
            }
            let live = *ready.entry(node.clone()).or_insert_with(|| {
                self.get(&nodes, None, &node)
                    .is_ok_and(|n| object::node_is_ready(&n.value()))
            });
            if !live {
                continue;
            }
            let ns = object::meta_str(&p, "namespace").unwrap_or("").to_string();
            let name = object::name(&p).unwrap_or("").to_string();
            let opts = DeleteOpts {
                grace_period_seconds: Some(0),
                precondition_uid: object::meta_str(&p, "uid").map(str::to_string),
                ..DeleteOpts::default()
            };
            let Ok(after) = self.delete(&pods, Some(&ns), &name, &opts) else {
                continue;
            };
            let held = object::finalizers(&after);
            let action = if held.is_empty() {
                format!("confirms that pod {ns}/{name} has stopped; the pod is gone")
            } else {
                format!(
                    "confirms that pod {ns}/{name} has stopped; its finalizers ({}) still hold it",
                    held.join(", ")
                )
            };
            done.push(ControllerAction {
                controller: Controller::Kubelet,
                actor: format!("the kubelet of {node}"),
                action,
            });
        }
        done
    }

    fn play_namespace_controller(&mut self) -> Vec<ControllerAction> {
        let Some(ns_def) = self.def_for("", "namespaces") else {
            return Vec::new();
        };
        let mut done = Vec::new();
        let act = |action: String| ControllerAction {
            controller: Controller::Namespace,
            actor: "the namespace controller".into(),
            action,
        };
        for ns_obj in self.deleting_in(&storage("", "namespaces"), None) {
            let v = ns_obj.value();
            let ns = object::name(&v).unwrap_or("").to_string();
            let key = (String::new(), ns.clone());
            if !spec_finalizers(&v).iter().any(|f| f == "kubernetes") {
                // finalized already (or never ours): its status write removes it
                if self.remove_if_finished(&ns_def, key) {
                    done.push(act(format!("removes the finalized namespace {ns}")));
                }
                continue;
            }
            let mut deleted = 0usize;
            for st in self.registry.namespaced_storages() {
                let Some(def) = self.registry.for_storage(&st).cloned() else {
                    continue;
                };
                for obj in self.objects_in(&st, Some(&ns)) {
                    if obj.deleting() {
                        continue;
                    }
                    let o = obj.value();
                    let name = object::name(&o).unwrap_or("").to_string();
                    if self
                        .delete(&def, Some(&ns), &name, &DeleteOpts::default())
                        .is_ok()
                    {
                        deleted += 1;
                    }
                }
            }
            if deleted > 0 {
                done.push(act(format!(
                    "deletes the {deleted} object{} in namespace {ns}",
                    if deleted == 1 { "" } else { "s" }
                )));
            }
            let (kinds, finalizers) = self.namespace_remains(&ns);
            if kinds.is_empty() {
                let finalized = self.modify(&ns_def, None, &ns, |n| {
                    let keep: Vec<Value> = spec_finalizers(n)
                        .into_iter()
                        .filter(|f| f != "kubernetes")
                        .map(Value::String)
                        .collect();
                    n["spec"]["finalizers"] = Value::Array(keep);
                    set_namespace_conditions(n, &BTreeMap::new(), &BTreeMap::new());
                });
                let gone = self.get(&ns_def, None, &ns).is_err();
                if finalized.is_ok() {
                    done.push(act(if gone {
                        format!("finalizes the empty namespace {ns}; it is gone")
                    } else {
                        format!(
                            "finalizes the empty namespace {ns}; other finalizers still hold it"
                        )
                    }));
                }
            } else {
                // say what remains, as the real controller's conditions do
                let _ = self.modify(&ns_def, None, &ns, |n| {
                    set_namespace_conditions(n, &kinds, &finalizers);
                });
            }
        }
        done
    }

    /// What is left in namespace `ns`: instances per `resource.group`, and
    /// per finalizer.
    fn namespace_remains(&self, ns: &str) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
        let mut kinds = BTreeMap::new();
        let mut finalizers = BTreeMap::new();
        for st in self.registry.namespaced_storages() {
            let objs = self.objects_in(&st, Some(ns));
            if objs.is_empty() {
                continue;
            }
            *kinds.entry(format!("{}.{}", st.1, st.0)).or_insert(0) += objs.len();
            for o in objs {
                for f in object::finalizers(&o.value()) {
                    *finalizers.entry(f).or_insert(0) += 1;
                }
            }
        }
        (kinds, finalizers)
    }

    fn play_service_account_controller(&mut self) -> Vec<ControllerAction> {
        let mut done = Vec::new();
        let Some(sa_def) = self.def_for("", "serviceaccounts") else {
            return done;
        };
        for ns_obj in self.objects_in(&storage("", "namespaces"), None) {
            if ns_obj.deleting() {
                continue;
            }
            let v = ns_obj.value();
            let ns = object::name(&v).unwrap_or("").to_string();
            if self.get(&sa_def, Some(&ns), "default").is_ok() {
                continue;
            }
            // the controller's own identity (kube-controller-manager's
            // --use-service-account-credentials), which admission policies see
            let user = UserInfo::new(
                "system:serviceaccount:kube-system:service-account-controller",
                &[
                    "system:serviceaccounts",
                    "system:serviceaccounts:kube-system",
                ],
            );
            let warnings = RefCell::new(Vec::new());
            let created = self.create(
                &sa_def,
                Some(&ns),
                json!({"apiVersion": "v1", "kind": "ServiceAccount",
                       "metadata": {"name": "default", "namespace": ns}}),
                WriteOpts {
                    by: Some(Requester {
                        user: &user,
                        warnings: &warnings,
                    }),
                    ..WriteOpts::default()
                },
            );
            if created.is_ok() {
                done.push(ControllerAction {
                    controller: Controller::ServiceAccount,
                    actor: "the ServiceAccount controller".into(),
                    action: format!("creates ServiceAccount {ns}/default"),
                });
            }
        }
        done
    }

    fn play_node_lifecycle_controller(&mut self) -> Vec<ControllerAction> {
        let mut done = Vec::new();
        let Some(nodes) = self.def_for("", "nodes") else {
            return done;
        };
        for node in self.objects_in(&storage("", "nodes"), None) {
            let v = node.value();
            let name = object::name(&v).unwrap_or("").to_string();
            let current: Vec<Value> = v
                .pointer("/spec/taints")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let wanted = lifecycle_taints(&v, &current);
            if wanted == current {
                continue;
            }
            let has = |ts: &[Value], t: &Value| {
                ts.iter()
                    .any(|x| x["key"] == t["key"] && x["effect"] == t["effect"])
            };
            let added: Vec<String> = wanted
                .iter()
                .filter(|t| !has(&current, t))
                .map(taint_text)
                .collect();
            let removed: Vec<String> = current
                .iter()
                .filter(|t| !has(&wanted, t))
                .map(taint_text)
                .collect();
            let written = self.modify(&nodes, None, &name, |n| {
                n["spec"]["taints"] = Value::Array(wanted.clone());
            });
            if written.is_err() {
                continue;
            }
            let mut parts = Vec::new();
            if !added.is_empty() {
                parts.push(format!("taints node {name} {}", added.join(", ")));
            }
            if !removed.is_empty() {
                parts.push(format!("removes {} from node {name}", removed.join(", ")));
            }
            done.push(ControllerAction {
                controller: Controller::NodeLifecycle,
                actor: "the node lifecycle controller".into(),
                action: parts.join(" and "),
            });
        }
        done
    }
}

const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";
const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

fn taint_text(t: &Value) -> String {
    format!(
        "{}:{}",
        t["key"].as_str().unwrap_or(""),
        t["effect"].as_str().unwrap_or("")
    )
}

/// The taints the node lifecycle controller leaves on `node`: its own
/// follow the Ready condition and the cordon; everything else is kept.
fn lifecycle_taints(node: &Value, current: &[Value]) -> Vec<Value> {
    let ready = object::node_ready_status(node);
    let cordoned = node.pointer("/spec/unschedulable") == Some(&json!(true));
    let mut managed: Vec<(&str, &str)> = Vec::new();
    match ready {
        Some("True") => {}
        Some("False") => managed.extend([
            (NOT_READY_TAINT, "NoSchedule"),
            (NOT_READY_TAINT, "NoExecute"),
        ]),
        Some(_) => managed.extend([
            (UNREACHABLE_TAINT, "NoSchedule"),
            (UNREACHABLE_TAINT, "NoExecute"),
        ]),
        // no Ready condition yet: the kubelet has not reported; leave the
        // registration taint alone (the startup grace period)
        None => managed.extend(
            current
                .iter()
                .filter(|t| t["key"] == NOT_READY_TAINT || t["key"] == UNREACHABLE_TAINT)
                .filter_map(|t| Some((t["key"].as_str()?, t["effect"].as_str()?)))
                .map(|(k, e)| {
                    (
                        if k == NOT_READY_TAINT {
                            NOT_READY_TAINT
                        } else {
                            UNREACHABLE_TAINT
                        },
                        if e == "NoExecute" {
                            "NoExecute"
                        } else {
                            "NoSchedule"
                        },
                    )
                }),
        ),
    }
    if cordoned {
        managed.push((UNSCHEDULABLE_TAINT, "NoSchedule"));
    }
    let is_managed = |t: &Value| {
        t["key"] == NOT_READY_TAINT
            || t["key"] == UNREACHABLE_TAINT
            || t["key"] == UNSCHEDULABLE_TAINT
    };
    let mut out: Vec<Value> = current
        .iter()
        .filter(|t| {
            !is_managed(t)
                || managed
                    .iter()
                    .any(|(k, e)| t["key"] == *k && t["effect"] == *e)
        })
        .cloned()
        .collect();
    for (k, e) in managed {
        if out.iter().any(|t| t["key"] == k && t["effect"] == e) {
            continue;
        }
        let mut t = json!({"key": k, "effect": e});
        if e == "NoExecute" {
            t["timeAdded"] = json!(object::now_rfc3339());
        }
        out.push(t);
    }
    out
}

/// Set the namespace controller's deletion conditions: what remains (per
/// `resource.group`) and which finalizers hold it. Keeps
/// `lastTransitionTime` where a condition's status did not change.
fn set_namespace_conditions(
    ns: &mut Value,
    kinds: &BTreeMap<String, usize>,
    finalizers: &BTreeMap<String, usize>,
) {
    let now = object::now_rfc3339();
    let remaining = if kinds.is_empty() {
        (
            "False",
            "ContentRemoved",
            "All content successfully removed".to_string(),
        )
    } else {
        let list: Vec<String> = kinds
            .iter()
            .map(|(k, n)| format!("{k} has {n} resource instances"))
            .collect();
        (
            "True",
            "SomeResourcesRemain",
            format!("Some resources are remaining: {}", list.join(", ")),
        )
    };
    let held = if finalizers.is_empty() {
        (
            "False",
            "ContentHasNoFinalizers",
            "All content-preserving finalizers finished".to_string(),
        )
    } else {
        let list: Vec<String> = finalizers
            .iter()
            .map(|(f, n)| format!("{f} in {n} resource instances"))
            .collect();
        (
            "True",
            "SomeFinalizersRemain",
            format!(
                "Some content in the namespace has finalizers remaining: {}",
                list.join(", ")
            ),
        )
    };
    let wanted = [
        (
            "NamespaceDeletionDiscoveryFailure",
            (
                "False",
                "ResourcesDiscovered",
                "All resources successfully discovered".to_string(),
            ),
        ),
        (
            "NamespaceDeletionGroupVersionParsingFailure",
            (
                "False",
                "ParsedGroupVersions",
                "All legacy kube types successfully parsed".to_string(),
            ),
        ),
        (
            "NamespaceDeletionContentFailure",
            (
                "False",
                "ContentDeleted",
                "All content successfully deleted, may be waiting on finalization".to_string(),
            ),
        ),
        ("NamespaceContentRemaining", remaining),
        ("NamespaceFinalizersRemaining", held),
    ];
    let old: Vec<Value> = ns
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let conds: Vec<Value> = wanted
        .into_iter()
        .map(|(type_, (status, reason, message))| {
            let prev = old.iter().find(|c| c["type"] == type_);
            let since = prev
                .filter(|c| c["status"] == status)
                .and_then(|c| c.get("lastTransitionTime").cloned())
                .unwrap_or_else(|| json!(now));
            json!({"type": type_, "status": status, "reason": reason,
                   "message": message, "lastTransitionTime": since})
        })
        .collect();
    ns["status"]["conditions"] = Value::Array(conds);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn controllers_parse_by_name() {
        for c in Controller::ALL {
            assert_eq!(c.name().parse::<Controller>().unwrap(), c);
        }
        assert!("kubelets".parse::<Controller>().is_err());
    }

    #[test]
    fn lifecycle_taints_follow_ready_and_the_cordon() {
        let node = |ready: Option<&str>, cordoned: bool| {
            let mut n = json!({"spec": {"unschedulable": cordoned}});
            if let Some(r) = ready {
                n["status"] = json!({"conditions": [{"type": "Ready", "status": r}]});
            }
            n
        };
        let keys = |ts: Vec<Value>| -> Vec<String> { ts.iter().map(taint_text).collect() };
        let registered = vec![json!({"key": NOT_READY_TAINT, "effect": "NoSchedule"})];
        assert_eq!(
            keys(lifecycle_taints(&node(None, false), &registered)),
            ["node.kubernetes.io/not-ready:NoSchedule"]
        );
        let mine = json!({"key": "x.io/mine", "effect": "NoSchedule"});
        let with_mine = vec![registered[0].clone(), mine.clone()];
        assert_eq!(
            keys(lifecycle_taints(&node(Some("True"), true), &with_mine)),
            [
                "x.io/mine:NoSchedule",
                "node.kubernetes.io/unschedulable:NoSchedule"
            ]
        );
        assert_eq!(
            keys(lifecycle_taints(&node(Some("Unknown"), false), &with_mine)),
            [
                "x.io/mine:NoSchedule",
                "node.kubernetes.io/unreachable:NoSchedule",
                "node.kubernetes.io/unreachable:NoExecute"
            ]
        );
    }
}
