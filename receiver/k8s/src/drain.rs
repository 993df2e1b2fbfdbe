//! Eviction with our own retry loop, and node drain like `kubectl drain`.
//!
//! Evictions use the client without kube's default retry: a 429 (a
//! PodDisruptionBudget says no) is retried here every `retry_every` until a
//! deadline, a 500 (typically several PDBs selecting the pod) stops at once,
//! and a 404 means the pod is already gone.

use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;
use tokio::time::Instant;

use crate::{Clients, K8sError, NODE_REMEDIATION_ANNOTATION, is_not_found, status_code};

/// How one eviction ended (errors aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evicted {
    /// The eviction was accepted.
    Evicted,
    /// The pod did not exist.
    AlreadyGone,
}

/// Evict `ns/name`, retrying 429s every `retry_every` until `deadline`.
pub async fn evict_until(
    clients: &Clients,
    ns: &str,
    name: &str,
    grace_period_seconds: Option<u32>,
    dry_run: bool,
    deadline: Instant,
    retry_every: Duration,
) -> Result<Evicted, K8sError> {
    // The Eviction is posted by hand: kube's EvictParams serializes its delete
    // options as `delete_options`, which the API server ignores, so a grace
    // period would silently not apply.
    let mut delete_options = serde_json::Map::new();
    if let Some(g) = grace_period_seconds {
        delete_options.insert("gracePeriodSeconds".into(), json!(g));
    }
    if dry_run {
        delete_options.insert("dryRun".into(), json!(["All"]));
    }
    let body = json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": name, "namespace": ns},
        "deleteOptions": delete_options,
    });
    let path = format!(
        "/api/v1/namespaces/{ns}/pods/{name}/eviction{}",
        if dry_run { "?dryRun=All" } else { "" }
    );
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let req = http::Request::post(&path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&body).unwrap_or_default())
            .map_err(|e| K8sError::Refused(format!("cannot build the eviction request: {e}")))?;
        match clients.no_retry.request::<kube::core::Status>(req).await {
            Ok(_) => return Ok(Evicted::Evicted),
            Err(e) if is_not_found(&e) => return Ok(Evicted::AlreadyGone),
            Err(e) if status_code(&e) == Some(429) => {
                if Instant::now() + retry_every > deadline {
                    return Err(K8sError::Timeout(format!(
                        "eviction of pod {ns}/{name} was refused {attempts} time(s) (429: a PodDisruptionBudget would be violated) until the deadline"
                    )));
                }
                tracing::debug!(
                    namespace = ns,
                    pod = name,
                    attempts,
                    "Eviction blocked by a PodDisruptionBudget; retrying."
                );
                tokio::time::sleep(retry_every).await;
            }
            Err(e) if status_code(&e) == Some(500) => {
                return Err(K8sError::Refused(format!(
                    "eviction of pod {ns}/{name} failed with 500 (is the pod selected by more than one PodDisruptionBudget?): {e}"
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// What a drain did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// `ns/name` of evicted pods.
    pub evicted: Vec<String>,
    /// `ns/name (why)` of pods left alone: DaemonSet-managed, mirror and
    /// terminating pods, and pods heal8s must not touch.
    pub skipped: Vec<String>,
    /// `ns/name` of evicted pods left `Terminating` because the node's kubelet
    /// is gone and will never confirm their deletion.
    pub terminating: Vec<String>,
    /// Whether the node's kubelet was gone (the node not Ready).
    pub kubelet_gone: bool,
}

/// Drain options.
#[derive(Debug, Clone)]
pub struct DrainOptions {
    pub grace_period_seconds: Option<u32>,
    pub delete_emptydir_data: bool,
    pub timeout: Duration,
    pub retry_every: Duration,
    pub dry_run: bool,
    /// The guard's protection rules, applied to every pod the drain would evict.
    pub protection: receiver_core::Protection,
    /// What to do with a pod the rules protect.
    pub protected_pods: receiver_core::policy::ProtectedPods,
}

/// How many times an eviction refused by a PodDisruptionBudget is tried on a
/// node whose kubelet is gone: its pods are not Ready, so the budget will not
/// free up by waiting; heal8s says which budget blocks and stops.
pub const DEAD_NODE_EVICTION_TRIES: u32 = 3;

fn node_ready(n: &Node) -> bool {
    receiver_core::detect::node::ready_status(n) == Some("True")
}

/// Mark `node` unschedulable and record heal8s's remediation state on it.
/// `heal8s.io/cordoned: "true"` marks a cordon heal8s made (the node was
/// schedulable before), so heal8s only ever undoes its own cordon.
pub async fn cordon(
    clients: &Clients,
    node: &str,
    state: &str,
    mark: &receiver_core::ownership::Mark,
    dry_run: bool,
) -> Result<(), K8sError> {
    let api: Api<Node> = Api::all(clients.main.clone());
    let already = api
        .get_opt(node)
        .await?
        .and_then(|n| n.spec)
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    let mut annotations = serde_json::Map::new();
    annotations.insert(NODE_REMEDIATION_ANNOTATION.into(), json!(state));
    if !already {
        annotations.insert(crate::NODE_CORDONED_ANNOTATION.into(), json!("true"));
        // who cordoned, for which record, why and when
        for (k, v) in mark.annotations() {
            annotations.insert(k.into(), json!(v));
        }
    }
    let patch = json!({
        "metadata": {"annotations": annotations},
        "spec": {"unschedulable": true}
    });
    let pp = PatchParams {
        dry_run,
        ..PatchParams::default()
    };
    api.patch(node, &pp, &Patch::Strategic(&patch)).await?;
    Ok(())
}

/// Set heal8s's remediation state annotation on `node`.
pub async fn mark(clients: &Clients, node: &str, state: &str) -> Result<(), K8sError> {
    let api: Api<Node> = Api::all(clients.main.clone());
    let patch = json!({"metadata": {"annotations": {NODE_REMEDIATION_ANNOTATION: state}}});
    api.patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// The node's pods and the drain plan for them (see `receiver_core::drain`):
/// each pod's owners and namespace are read for the opt-out. An error when
/// the plan refuses the drain.
pub async fn plan(
    clients: &Clients,
    node: &str,
    opts: &DrainOptions,
) -> Result<(Vec<Pod>, receiver_core::drain::DrainPlan), K8sError> {
    use std::collections::BTreeMap;
    let pods: Api<Pod> = Api::all(clients.main.clone());
    let list = pods
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await?;
    let facts = crate::KubeFacts::new(clients.clone());
    let mut owners = Vec::with_capacity(list.items.len());
    for p in &list.items {
        owners.push(
            facts
                .owner_chain(
                    p.metadata.namespace.as_deref(),
                    p.metadata.owner_references.as_ref(),
                )
                .await?,
        );
    }
    let namespaces: BTreeMap<String, receiver_core::ObjectMeta> =
        Api::<k8s_openapi::api::core::v1::Namespace>::all(clients.main.clone())
            .list_metadata(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter_map(|n| {
                let meta = receiver_core::ObjectMeta {
                    labels: n.metadata.labels.clone().unwrap_or_default(),
                    annotations: n.metadata.annotations.clone().unwrap_or_default(),
                };
                n.metadata.name.map(|name| (name, meta))
            })
            .collect();
    let drain_pods: Vec<receiver_core::drain::DrainPod<'_>> = list
        .items
        .iter()
        .zip(owners)
        .map(|(pod, owners)| receiver_core::drain::DrainPod { pod, owners })
        .collect();
    let plan = receiver_core::drain::plan(
        &drain_pods,
        &namespaces,
        &opts.protection,
        opts.protected_pods,
        opts.delete_emptydir_data,
    );
    if !plan.refused.is_empty() {
        return Err(K8sError::Refused(format!(
            "cannot drain node {node}: {}",
            plan.refused.join("; ")
        )));
    }
    Ok((list.items, plan))
}

/// Evict what the drain plan for `node` says (see [`plan`]), like `kubectl
/// drain --ignore-daemonsets` with heal8s's protection on top, and wait for
/// the evicted pods to be gone.
pub async fn drain(
    clients: &Clients,
    node: &str,
    opts: &DrainOptions,
) -> Result<DrainReport, K8sError> {
    let deadline = Instant::now() + opts.timeout;
    let (pods, plan) = plan(clients, node, opts).await?;
    let nodes: Api<Node> = Api::all(clients.main.clone());
    let kubelet_alive = nodes.get_opt(node).await?.is_some_and(|n| node_ready(&n));
    let mut report = DrainReport {
        skipped: plan.skipped.clone(),
        kubelet_gone: !kubelet_alive,
        ..DrainReport::default()
    };
    // on a dead node a budget that says no will keep saying no: a few tries, then say why
    let eviction_deadline = if kubelet_alive {
        deadline
    } else {
        deadline.min(Instant::now() + opts.retry_every * DEAD_NODE_EVICTION_TRIES)
    };
    let key = |p: &Pod| {
        format!(
            "{}/{}",
            p.metadata.namespace.as_deref().unwrap_or("-"),
            p.metadata.name.as_deref().unwrap_or("-")
        )
    };
    let to_evict: Vec<Pod> = pods
        .into_iter()
        .filter(|p| plan.evict.contains(&key(p)))
        .collect();
    let results = join_all(to_evict.iter().map(|p| {
        let ns = p.metadata.namespace.clone().unwrap_or_default();
        let name = p.metadata.name.clone().unwrap_or_default();
        async move {
            evict_until(
                clients,
                &ns,
                &name,
                opts.grace_period_seconds,
                opts.dry_run,
                eviction_deadline,
                opts.retry_every,
            )
            .await
        }
    }))
    .await;
    let mut failures = Vec::new();
    let mut blocked: Vec<&Pod> = Vec::new();
    for (p, r) in to_evict.iter().zip(results) {
        match r {
            Ok(_) => report.evicted.push(key(p)),
            Err(K8sError::Timeout(_)) => blocked.push(p),
            Err(e) => failures.push(e.to_string()),
        }
    }
    if !blocked.is_empty() {
        // name the budget that blocks each pod (a list heal8s may not be
        // allowed is no reason to hide the rest)
        let pdbs: Vec<k8s_openapi::api::policy::v1::PodDisruptionBudget> =
            Api::<k8s_openapi::api::policy::v1::PodDisruptionBudget>::all(clients.main.clone())
                .list(&ListParams::default())
                .await
                .map(|l| l.items)
                .unwrap_or_default();
        for p in blocked {
            let by = receiver_core::drain::blocking_budgets(p, &pdbs);
            failures.push(format!(
                "{} blocked by {}",
                key(p),
                if by.is_empty() {
                    "a PodDisruptionBudget (429)".to_string()
                } else {
                    by.join(" and ")
                }
            ));
        }
    }
    if !failures.is_empty() {
        let why = if kubelet_alive {
            String::new()
        } else {
            format!(
                " Node {node}'s kubelet is gone (not Ready): its pods are not Ready, so a budget that says no will not change its mind by waiting; the budget's owner can set unhealthyPodEvictionPolicy: AlwaysAllow."
            )
        };
        return Err(K8sError::Timeout(format!(
            "drain of node {node} incomplete after evicting {} pod(s): {}.{why}",
            report.evicted.len(),
            failures.join("; ")
        )));
    }
    if !opts.dry_run {
        // Wait for the evicted pods to go away, like kubectl drain does. On a
        // node that is not Ready no kubelet will confirm the deletion: a pod
        // marked for deletion counts as evicted (kubectl's
        // --skip-wait-for-delete-timeout), and the report names it.
        for p in &to_evict {
            let ns = p.metadata.namespace.as_deref().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(clients.main.clone(), ns);
            let name = p.metadata.name.as_deref().unwrap_or_default();
            loop {
                match api.get_opt(name).await? {
                    Some(cur) if cur.metadata.uid == p.metadata.uid => {
                        if !kubelet_alive && cur.metadata.deletion_timestamp.is_some() {
                            report.terminating.push(key(p));
                            break;
                        }
                    }
                    _ => break,
                }
                if Instant::now() > deadline {
                    return Err(K8sError::Timeout(format!(
                        "pod {ns}/{name} was evicted from node {node} but still exists at the deadline"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    Ok(report)
}

/// Reconcile drains another process left in flight (nodes still marked
/// `draining`): see `receiver_core::drain::reconcile_interrupted`. Returns
/// each node reconciled with what was done, for the records.
pub async fn reconcile_interrupted(
    client: kube::Client,
) -> Result<Vec<(String, String)>, K8sError> {
    let api: Api<Node> = Api::all(client);
    let mut out = Vec::new();
    for n in api.list(&ListParams::default()).await?.items {
        let annotations = n.metadata.annotations.clone().unwrap_or_default();
        if annotations
            .get(NODE_REMEDIATION_ANNOTATION)
            .is_none_or(|v| v != "draining")
        {
            continue;
        }
        let Some(name) = n.metadata.name.clone() else {
            continue;
        };
        let ours = annotations
            .get(crate::NODE_CORDONED_ANNOTATION)
            .is_some_and(|v| v == "true");
        let r = receiver_core::drain::reconcile_interrupted(&name, node_ready(&n), ours);
        let mut patch = json!({"metadata": {"annotations": {
            NODE_REMEDIATION_ANNOTATION: r.mark,
        }}});
        if r.mark.is_none() {
            patch["metadata"]["annotations"][crate::NODE_CORDONED_ANNOTATION] = json!(null);
        }
        if r.uncordon {
            patch["spec"] = json!({"unschedulable": null});
        }
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        tracing::warn!(node = %name, uncordoned = r.uncordon, "{}", r.message);
        out.push((name, r.message));
    }
    Ok(out)
}

/// Kubernetes' non-graceful node shutdown taint: pods on the node are
/// force-deleted and their volumes detached, so StatefulSets can move. Only
/// for a node that is really shut down (fenced).
pub const OUT_OF_SERVICE_TAINT: &str = "node.kubernetes.io/out-of-service";

/// Add the out-of-service taint (`nodeshutdown:NoExecute`) to `node`, keeping
/// its other taints.
pub async fn taint_out_of_service(
    clients: &Clients,
    node: &str,
    mark: &receiver_core::ownership::Mark,
    dry_run: bool,
) -> Result<(), K8sError> {
    let api: Api<Node> = Api::all(clients.main.clone());
    let Some(n) = api.get_opt(node).await? else {
        return Ok(());
    };
    let mut taints = n.spec.and_then(|s| s.taints).unwrap_or_default();
    if taints.iter().any(|t| t.key == OUT_OF_SERVICE_TAINT) {
        return Ok(());
    }
    taints.push(k8s_openapi::api::core::v1::Taint {
        key: OUT_OF_SERVICE_TAINT.into(),
        value: Some("nodeshutdown".into()),
        effect: "NoExecute".into(),
        time_added: None,
    });
    let pp = PatchParams {
        dry_run,
        ..PatchParams::default()
    };
    // heal8s's mark names the taint: only that one is lifted when the node
    // is given back (a taint a person set stays)
    let mut annotations = serde_json::Map::new();
    for (k, v) in mark.annotations() {
        annotations.insert(k.into(), json!(v));
    }
    annotations.insert(
        receiver_core::ownership::TAINTED.into(),
        json!(OUT_OF_SERVICE_TAINT),
    );
    api.patch(
        node,
        &pp,
        &Patch::Merge(
            &json!({"metadata": {"annotations": annotations}, "spec": {"taints": taints}}),
        ),
    )
    .await?;
    Ok(())
}
