//! Keeping the records true over time: records another process left in
//! flight are marked interrupted when this replica takes over (with drains
//! it left half done), and old successful records are deleted. What each
//! status becomes is receiver-core's (`receiver_core::status`).

use jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, ListParams};
use receiver_core::status::{self, Event};

use super::crd::Remediation;
use super::write_status;

/// Mark records left `Acting` by another process (an earlier run, or a
/// leader that lost its lease) as `Failed`, reason `Interrupted`; returns how many.
pub async fn mark_interrupted(client: kube::Client, me: &str) -> Result<usize, kube::Error> {
    let all: Api<Remediation> = Api::all(client.clone());
    let now = Timestamp::now();
    let mut n = 0;
    for r in all.list(&ListParams::default()).await?.items {
        let (Some(mut status), Some(ns), Some(name)) = (
            r.status.clone(),
            r.metadata.namespace.as_deref(),
            r.metadata.name.as_deref(),
        ) else {
            continue;
        };
        if !status::apply(&mut status, Event::Interrupted, now, me) {
            continue;
        }
        let api: Api<Remediation> = Api::namespaced(client.clone(), ns);
        write_status(&api, name, &status).await?;
        n += 1;
    }
    Ok(n)
}

/// Delete `Succeeded` records that finished more than `ttl` ago; returns how many.
/// Failed, refused and escalated records are kept for people to read.
pub async fn collect_garbage(
    client: kube::Client,
    ttl: std::time::Duration,
) -> Result<usize, kube::Error> {
    let all: Api<Remediation> = Api::all(client.clone());
    let now = Timestamp::now();
    let mut deleted = 0;
    for r in all.list(&ListParams::default()).await?.items {
        let Some(s) = &r.status else { continue };
        if !status::expired(s, now, ttl) {
            continue;
        }
        let (Some(ns), Some(name)) = (r.metadata.namespace.as_deref(), r.metadata.name.as_deref())
        else {
            continue;
        };
        let api: Api<Remediation> = Api::namespaced(client.clone(), ns);
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => deleted += 1,
            Err(e) if crate::is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}

/// Add `message` to the history of every node remediation record of `node`.
pub async fn note_on_node(
    client: kube::Client,
    node: &str,
    message: &str,
    me: &str,
) -> Result<(), kube::Error> {
    let all: Api<Remediation> = Api::all(client.clone());
    for r in all.list(&ListParams::default()).await?.items {
        let t = &r.spec.target;
        let (Some(ns), Some(name), true) = (
            r.metadata.namespace.as_deref(),
            r.metadata.name.as_deref(),
            t.kind == "Node" && t.name == node,
        ) else {
            continue;
        };
        let mut status = r.status.clone().unwrap_or_default();
        status::apply(&mut status, Event::Noted { message }, Timestamp::now(), me);
        let api: Api<Remediation> = Api::namespaced(client.clone(), ns);
        write_status(&api, name, &status).await?;
    }
    Ok(())
}

/// Before a replica that becomes leader decides anything: reconcile drains
/// and records another process left in flight, then read the records back.
pub(super) async fn take_over(client: kube::Client, me: &str) {
    // records first: a drain's "started" entry becomes Failed/Interrupted
    match mark_interrupted(client.clone(), me).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            records = n,
            "Remediations left in flight by another heal8s process were marked Failed (Interrupted)."
        ),
        Err(e) => tracing::debug!(error = %e, "Could not check for interrupted Remediations."),
    }
    match crate::drain::reconcile_interrupted(client.clone()).await {
        Ok(nodes) => {
            for (node, message) in nodes {
                if let Err(e) = note_on_node(client.clone(), &node, &message, me).await {
                    tracing::debug!(error = %e, node = %node, "Could not note the reconciled drain on its record.");
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "Could not reconcile interrupted drains; a node left marked draining blocks other node remediations.")
        }
    }
}
