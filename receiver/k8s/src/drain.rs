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
    /// `ns/name (why)` of pods left alone: DaemonSet-managed and mirror pods.
    pub skipped: Vec<String>,
}

/// Drain options.
#[derive(Debug, Clone, Copy)]
pub struct DrainOptions {
    pub grace_period_seconds: Option<u32>,
    pub delete_emptydir_data: bool,
    pub timeout: Duration,
    pub retry_every: Duration,
    pub dry_run: bool,
}

fn node_ready(n: &Node) -> bool {
    receiver_core::detect::node::ready_status(n) == Some("True")
}

fn has_owner_kind(p: &Pod, kind: &str) -> bool {
    p.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.kind == kind && r.controller == Some(true))
}

fn has_controller(p: &Pod) -> bool {
    p.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true))
}

fn is_mirror(p: &Pod) -> bool {
    p.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"))
}

fn uses_emptydir(p: &Pod) -> bool {
    p.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .is_some_and(|vs| vs.iter().any(|v| v.empty_dir.is_some()))
}

fn key(p: &Pod) -> String {
    format!(
        "{}/{}",
        p.metadata.namespace.as_deref().unwrap_or("-"),
        p.metadata.name.as_deref().unwrap_or("-")
    )
}

/// Mark `node` unschedulable and record heal8s's remediation state on it.
pub async fn cordon(
    clients: &Clients,
    node: &str,
    state: &str,
    dry_run: bool,
) -> Result<(), K8sError> {
    let api: Api<Node> = Api::all(clients.main.clone());
    let patch = json!({
        "metadata": {"annotations": {NODE_REMEDIATION_ANNOTATION: state}},
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

/// Evict every pod of `node` except DaemonSet-managed and mirror pods, like
/// `kubectl drain --ignore-daemonsets`. Refuses before evicting anything when a
/// pod has no controller (it would not come back) or uses emptyDir without
/// `delete_emptydir_data`. Waits for the evicted pods to be gone.
pub async fn drain(
    clients: &Clients,
    node: &str,
    opts: DrainOptions,
) -> Result<DrainReport, K8sError> {
    let deadline = Instant::now() + opts.timeout;
    let pods: Api<Pod> = Api::all(clients.main.clone());
    let list = pods
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await?;
    let mut report = DrainReport::default();
    let mut to_evict = Vec::new();
    let mut problems = Vec::new();
    for p in list.items {
        if p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if has_owner_kind(&p, "DaemonSet") {
            report.skipped.push(format!("{} (DaemonSet)", key(&p)));
        } else if is_mirror(&p) {
            report.skipped.push(format!("{} (mirror pod)", key(&p)));
        } else if !has_controller(&p) {
            problems.push(format!(
                "{} has no controller and would not come back",
                key(&p)
            ));
        } else if uses_emptydir(&p) && !opts.delete_emptydir_data {
            problems.push(format!(
                "{} uses emptyDir (its data would be lost; set deleteEmptydirData)",
                key(&p)
            ));
        } else {
            to_evict.push(p);
        }
    }
    if !problems.is_empty() {
        return Err(K8sError::Refused(format!(
            "cannot drain node {node}: {}",
            problems.join("; ")
        )));
    }
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
                deadline,
                opts.retry_every,
            )
            .await
        }
    }))
    .await;
    let mut failures = Vec::new();
    for (p, r) in to_evict.iter().zip(results) {
        match r {
            Ok(_) => report.evicted.push(key(p)),
            Err(e) => failures.push(e.to_string()),
        }
    }
    if !failures.is_empty() {
        return Err(K8sError::Timeout(format!(
            "drain of node {node} incomplete after evicting {} pod(s): {}",
            report.evicted.len(),
            failures.join("; ")
        )));
    }
    if !opts.dry_run {
        // Wait for the evicted pods to go away, like kubectl drain does. On a
        // node that is not Ready no kubelet will confirm the deletion, so a pod
        // marked for deletion counts as gone (kubectl's --skip-wait-for-delete-timeout).
        let nodes: Api<Node> = Api::all(clients.main.clone());
        let kubelet_alive = nodes.get_opt(node).await?.is_some_and(|n| node_ready(&n));
        for p in &to_evict {
            let ns = p.metadata.namespace.as_deref().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(clients.main.clone(), ns);
            let name = p.metadata.name.as_deref().unwrap_or_default();
            loop {
                match api.get_opt(name).await? {
                    Some(cur)
                        if cur.metadata.uid == p.metadata.uid
                            && (kubelet_alive || cur.metadata.deletion_timestamp.is_none()) => {}
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
