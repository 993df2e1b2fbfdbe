//! Keeping the records true over time: records another process left in
//! flight are marked interrupted when this replica takes over (with drains
//! it left half done), old successful records and cleared breaker records
//! are deleted, and a person's request to end an escalation is watched for.
//! [`spawn`] starts the background part; the take-over runs whenever this
//! replica becomes leader, before the guard is restored
//! ([`super::KubeHistory`]). What each status becomes is receiver-core's
//! (`receiver_core::status`); this module must not decide it.

use std::time::Duration;

use jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, ListParams};
use receiver_core::status::{self, Event};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::crd::Remediation;
use super::write_status;
use crate::Clients;

/// How often old records are looked for (the first look is at start).
pub const COLLECT_EVERY: Duration = Duration::from_secs(600);

/// What the background upkeep needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpkeepSettings {
    /// `Succeeded` records and `Cleared` breaker records are deleted this
    /// long after they finished; zero turns retention off (records are kept,
    /// and heal8s needs no right to delete them).
    pub record_ttl: Duration,
    /// heal8s's own namespace, where the breaker records are.
    pub namespace: String,
}

/// The record upkeep running in the background, from [`spawn`].
#[derive(Debug)]
pub struct Upkeep {
    /// Garbage collection (none when retention is off). It ends when `stop`
    /// changes; abort it to cut a round in progress short.
    pub tasks: Vec<JoinHandle<()>>,
    /// Keys whose escalation a person cleared (see [`super::watch_people`]);
    /// the watch runs until this receiver is dropped.
    pub clears: mpsc::Receiver<String>,
    /// People's decisions on plans awaiting approval (see
    /// [`super::watch_people`]); the watch runs until this is dropped.
    pub approvals: mpsc::Receiver<super::Decision>,
}

/// Start the record upkeep: garbage collection every [`COLLECT_EVERY`] (on
/// every replica: deleting what another replica deleted first is no error)
/// and the watch for cleared escalations.
pub fn spawn(clients: &Clients, settings: &UpkeepSettings, stop: watch::Receiver<bool>) -> Upkeep {
    let mut tasks = Vec::new();
    if !settings.record_ttl.is_zero() {
        tasks.push(tokio::spawn(collect_every(
            clients.main.clone(),
            settings.clone(),
            stop,
        )));
    }
    // a person ends an escalation by annotating its record
    // and approves or rejects plans awaiting approval on their records
    let (clears_tx, clears) = mpsc::channel(64);
    let (approvals_tx, approvals) = mpsc::channel(64);
    tokio::spawn(super::watch_people(
        clients.main.clone(),
        clears_tx,
        approvals_tx,
    ));
    Upkeep {
        tasks,
        clears,
        approvals,
    }
}

/// Delete old records and old breaker records every [`COLLECT_EVERY`] until
/// `stop` changes.
async fn collect_every(
    client: kube::Client,
    settings: UpkeepSettings,
    mut stop: watch::Receiver<bool>,
) {
    let ttl = settings.record_ttl;
    let mut tick = tokio::time::interval(COLLECT_EVERY);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        match collect_garbage(client.clone(), ttl).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                deleted = n,
                "Deleted Succeeded Remediation records past their TTL."
            ),
            Err(e) => {
                tracing::debug!(error = %e, "Could not collect old Remediation records.")
            }
        }
        match crate::standdown::collect_garbage(client.clone(), &settings.namespace, ttl).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                deleted = n,
                "Deleted Cleared breaker records past their TTL."
            ),
            Err(e) => {
                tracing::debug!(error = %e, "Could not collect old breaker records.")
            }
        }
    }
}

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
