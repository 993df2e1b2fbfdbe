//! The journal: writes what happens to each remediation into its record.
//! Every method reads the record, lets receiver-core's `status::apply` take
//! the event in, and writes the status back; no rule about the status lives here.

use jiff::Timestamp;
use kube::Api;
use kube::api::{ListParams, PostParams};
use receiver_core::status::{self, Event, Phase, PullRequestStatus, RemediationStatus};

use super::crd::{Remediation, spec_for};
use super::{write_status, write_status_over};

/// A record `begin` wrote: its `namespace/name`, the status written and the
/// record's generation.
type Begun = (String, RemediationStatus, Option<i64>);

/// The records a journal knows exist (`namespace/name`), and the
/// fingerprints of the signals that triggered them.
#[derive(Debug, Default)]
struct Known {
    records: std::collections::HashSet<String>,
    fingerprints: std::collections::HashSet<String>,
}

/// Writes Remediation objects: created when heal8s acts, simulates, fails or
/// escalates; updated on every later outcome for the same target and remediation.
#[derive(Clone)]
pub struct KubeJournal {
    client: kube::Client,
    own_namespace: String,
    identity: String,
    /// The records known to exist (`namespace/name`): an outcome that can
    /// only update a record (a refusal) costs no read when there is none.
    /// `None` until listed once, and again after this replica takes the lead.
    known: std::sync::Arc<std::sync::Mutex<Option<Known>>>,
    /// The status `begin` last wrote, by record (`namespace/name`), with the
    /// record's generation: the outcome written right after builds on it
    /// instead of reading the record back (the worker writes a record's
    /// status from one task, so nothing comes in between).
    begun: std::sync::Arc<std::sync::Mutex<Option<Begun>>>,
}

impl std::fmt::Debug for KubeJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeJournal").finish_non_exhaustive()
    }
}

impl KubeJournal {
    /// The record of `kind` on `t`: its API (in the target's namespace, or
    /// heal8s's own for cluster-scoped targets such as nodes) and its name.
    fn locate(
        &self,
        t: &receiver_core::Target,
        kind: receiver_core::RemediationKind,
    ) -> (Api<Remediation>, String) {
        let ns = receiver_core::names::record_namespace(t)
            .unwrap_or(&self.own_namespace)
            .to_string();
        (
            Api::namespaced(self.client.clone(), &ns),
            receiver_core::names::record_name(t, kind),
        )
    }

    /// `namespace/name` of the record of `kind` on `t`.
    fn record_key(
        &self,
        t: &receiver_core::Target,
        kind: receiver_core::RemediationKind,
    ) -> String {
        format!(
            "{}/{}",
            receiver_core::names::record_namespace(t).unwrap_or(&self.own_namespace),
            receiver_core::names::record_name(t, kind)
        )
    }

    /// What is known of the records, listing them once (one request) if
    /// nothing is; `f` reads it.
    async fn with_known<T>(&self, f: impl Fn(&Known) -> T) -> Result<T, kube::Error> {
        if let Ok(known) = self.known.lock()
            && let Some(k) = known.as_ref()
        {
            return Ok(f(k));
        }
        let api: Api<Remediation> = Api::all(self.client.clone());
        let mut listed = Known::default();
        for r in api.list(&ListParams::default()).await?.items {
            if let (Some(ns), Some(name)) = (r.metadata.namespace, r.metadata.name) {
                listed.records.insert(format!("{ns}/{name}"));
                listed.fingerprints.insert(r.spec.trigger.fingerprint);
            }
        }
        let out = f(&listed);
        if let Ok(mut known) = self.known.lock() {
            *known = Some(listed);
        }
        Ok(out)
    }

    /// Whether the record of `kind` on `t` may exist: every record is listed
    /// once, then those this replica creates are added.
    async fn may_exist(
        &self,
        t: &receiver_core::Target,
        kind: receiver_core::RemediationKind,
    ) -> Result<bool, kube::Error> {
        let key = self.record_key(t, kind);
        self.with_known(|k| k.records.contains(&key)).await
    }

    /// The record of `kind` on `t` (triggered by `fingerprint`) exists, or is about to.
    fn note_exists(
        &self,
        t: &receiver_core::Target,
        kind: receiver_core::RemediationKind,
        fingerprint: &str,
    ) {
        if let Ok(mut known) = self.known.lock()
            && let Some(k) = known.as_mut()
        {
            k.records.insert(self.record_key(t, kind));
            k.fingerprints.insert(fingerprint.to_string());
        }
    }

    /// A journal when the CRD is served; `None` (with one warning) when it is not,
    /// so recording degrades to Events and logs.
    pub async fn connect(
        client: kube::Client,
        own_namespace: &str,
        identity: &str,
    ) -> Option<KubeJournal> {
        let resources = crate::resources::Resources::new(client.clone());
        match resources
            .by_kind("heal8s.io", "v1alpha1", "Remediation")
            .await
        {
            Ok(Some(_)) => Some(KubeJournal {
                client,
                own_namespace: own_namespace.to_string(),
                identity: identity.to_string(),
                known: Default::default(),
                begun: Default::default(),
            }),
            Ok(None) => {
                tracing::warn!(
                    "The Remediation CRD (remediations.heal8s.io) is not installed: outcomes are recorded as Events and logs only. Install charts/heal8s/crds/ to keep records."
                );
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "Could not check for the Remediation CRD: outcomes are recorded as Events and logs only.");
                None
            }
        }
    }

    async fn write_inner(&self, o: &receiver_core::Outcome) -> Result<(), kube::Error> {
        let (Some(plan), Some(kind)) = (&o.plan, o.remediation) else {
            return Ok(());
        };
        let Some(t) = &plan.target else {
            return Ok(());
        };
        let (api, name) = self.locate(t, kind);
        let creates = status::creates_record(o);
        // a refusal only adds to a record that exists: most have none
        if !creates && !self.may_exist(t, kind).await? {
            return Ok(());
        }
        let key = self.record_key(t, kind);
        let begun = self
            .begun
            .lock()
            .ok()
            .and_then(|mut b| b.take_if(|(k, _, _)| *k == key));
        let existing = match begun {
            Some((_, status, generation)) => Some((Some(status), generation)),
            None => api
                .get_opt(&name)
                .await?
                .map(|r| (r.status, r.metadata.generation)),
        };
        if existing.is_some() || creates {
            self.note_exists(t, kind, &plan.trigger.fingerprint);
        }
        let generation = existing.as_ref().and_then(|(_, g)| *g).unwrap_or(1);
        let mut status = match existing {
            Some((status, _)) => status.unwrap_or_default(),
            None if !creates => return Ok(()),
            None => {
                let r = Remediation::new(&name, spec_for(plan, t, kind));
                match api.create(&PostParams::default(), &r).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.is_already_exists() => {}
                    Err(e) => return Err(e),
                }
                RemediationStatus::default()
            }
        };
        // an outcome is stamped with its own time
        let event = Event::Outcome {
            outcome: o,
            generation,
        };
        let was = status.deleted.clone();
        if status::apply(&mut status, event, o.at, &self.identity) {
            write_status_over(&api, &name, &status, was.as_ref()).await?;
        }
        Ok(())
    }

    async fn begin_inner(
        &self,
        plan: &receiver_core::Plan,
        event: Option<&receiver_core::PastEvent>,
    ) -> Result<(), kube::Error> {
        let Some(t) = &plan.target else { return Ok(()) };
        let kind = plan.kind();
        let (api, name) = self.locate(t, kind);
        // a record known to be absent is created without reading it first
        let existing = if self.may_exist(t, kind).await? {
            api.get_opt(&name).await?
        } else {
            None
        };
        self.note_exists(t, kind, &plan.trigger.fingerprint);
        let (mut status, generation) = match existing {
            Some(r) => (r.status.unwrap_or_default(), r.metadata.generation),
            None => {
                let r = Remediation::new(&name, spec_for(plan, t, kind));
                match api.create(&PostParams::default(), &r).await {
                    Ok(created) => (RemediationStatus::default(), created.metadata.generation),
                    Err(kube::Error::Api(s)) if s.is_already_exists() => {
                        // written by someone since heal8s listed the records
                        match api.get_opt(&name).await? {
                            Some(r) => (r.status.unwrap_or_default(), r.metadata.generation),
                            None => (RemediationStatus::default(), None),
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        let what = plan.describe();
        let begun = Event::Begun {
            what: &what,
            action: event,
        };
        status::apply(&mut status, begun, Timestamp::now(), &self.identity);
        write_status(&api, &name, &status).await?;
        if let Ok(mut b) = self.begun.lock() {
            *b = Some((self.record_key(t, kind), status, generation));
        }
        Ok(())
    }

    async fn verified_inner(
        &self,
        plan: &receiver_core::Plan,
        v: &receiver_core::Verification,
        events: &[receiver_core::PastEvent],
    ) -> Result<(), kube::Error> {
        let Some(t) = &plan.target else { return Ok(()) };
        let (api, name) = self.locate(t, plan.kind());
        let Some(r) = api.get_opt(&name).await? else {
            return Ok(());
        };
        let generation = r.metadata.generation.unwrap_or(1);
        let mut status = r.status.unwrap_or_default();
        let event = Event::Verified {
            verification: v,
            ledger: events,
            generation,
        };
        // a record already settled (e.g. its alert resolved first) stays as it is
        if status::apply(&mut status, event, Timestamp::now(), &self.identity) {
            write_status(&api, &name, &status).await?;
        }
        Ok(())
    }

    async fn resolved_inner(&self, fingerprint: &str) -> Result<(), kube::Error> {
        // most signals that resolve (a pod that recovered, or was deleted
        // while its plan waited) triggered no record: nothing to read
        if !self
            .with_known(|k| k.fingerprints.contains(fingerprint))
            .await?
        {
            return Ok(());
        }
        let all: Api<Remediation> = Api::all(self.client.clone());
        for r in all.list(&ListParams::default()).await?.items {
            // an alert's or a detector's signal resolving alike
            if r.spec.trigger.fingerprint != fingerprint {
                continue;
            }
            let (Some(mut status), Some(ns), Some(name)) = (
                r.status.clone(),
                r.metadata.namespace.as_deref(),
                r.metadata.name.as_deref(),
            ) else {
                continue;
            };
            let target = r.spec.target.target_kind();
            let event = Event::Resolved {
                alertname: &r.spec.trigger.alertname,
                fingerprint,
                remediation: &r.spec.remediation,
                target: &target,
            };
            if status::apply(&mut status, event, Timestamp::now(), &self.identity) {
                let api: Api<Remediation> = Api::namespaced(self.client.clone(), ns);
                write_status(&api, name, &status).await?;
            }
        }
        Ok(())
    }

    /// Append a recovery (or a cleared escalation) to every record whose
    /// ledger concerns its key; with `cleared`, escalated records of that key
    /// become `Cleared`.
    async fn remember_inner(
        &self,
        events: &[receiver_core::PastEvent],
        cleared: bool,
    ) -> Result<(), kube::Error> {
        if events.is_empty() {
            return Ok(());
        }
        let all: Api<Remediation> = Api::all(self.client.clone());
        for r in all.list(&ListParams::default()).await?.items {
            let (Some(mut status), Some(ns), Some(name)) = (
                r.status.clone(),
                r.metadata.namespace.as_deref(),
                r.metadata.name.as_deref(),
            ) else {
                continue;
            };
            let event = Event::Remembered { events, cleared };
            if status::apply(&mut status, event, Timestamp::now(), &self.identity) {
                let api: Api<Remediation> = Api::namespaced(self.client.clone(), ns);
                write_status(&api, name, &status).await?;
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl receiver_core::Journal for KubeJournal {
    async fn resume(&self) {
        // another replica may have written records since: list them again
        if let Ok(mut known) = self.known.lock() {
            *known = None;
        }
    }

    async fn write(&self, outcome: &receiver_core::Outcome) {
        if let Err(e) = self.write_inner(outcome).await {
            tracing::warn!(error = %e, "Could not write the Remediation record.");
        }
    }

    async fn begin(&self, plan: &receiver_core::Plan, event: Option<&receiver_core::PastEvent>) {
        if let Err(e) = self.begin_inner(plan, event).await {
            tracing::warn!(error = %e, "Could not record the start of an action on the Remediation.");
        }
    }

    async fn resolved(&self, fingerprint: &str) {
        if let Err(e) = self.resolved_inner(fingerprint).await {
            tracing::warn!(error = %e, "Could not record the resolved alert on its Remediations.");
        }
    }

    async fn verified(
        &self,
        plan: &receiver_core::Plan,
        v: &receiver_core::Verification,
        events: &[receiver_core::PastEvent],
    ) {
        if let Err(e) = self.verified_inner(plan, v, events).await {
            tracing::warn!(error = %e, "Could not record the verification on the Remediation.");
        }
    }

    async fn remember(&self, events: &[receiver_core::PastEvent], cleared: bool) {
        if let Err(e) = self.remember_inner(events, cleared).await {
            tracing::warn!(error = %e, "Could not keep a recovery on the Remediation records.");
        }
    }

    async fn decided(
        &self,
        plan: &receiver_core::Plan,
        request: &str,
        by: &str,
        approved: bool,
    ) -> bool {
        match self.decided_inner(plan, request, by, approved).await {
            Ok(took) => took,
            Err(e) => {
                tracing::warn!(error = %e, "Could not record the decision on the Remediation; it is not acted on yet (taken again when the record is next read).");
                false
            }
        }
    }
}

impl KubeJournal {
    async fn decided_inner(
        &self,
        plan: &receiver_core::Plan,
        request: &str,
        by: &str,
        approved: bool,
    ) -> Result<bool, kube::Error> {
        let Some(t) = &plan.target else {
            return Ok(false);
        };
        let (api, name) = self.locate(t, plan.kind());
        let Some(r) = api.get_opt(&name).await? else {
            return Ok(false);
        };
        let mut status = r.status.unwrap_or_default();
        // taken already (by this replica before a restart, or another):
        // an approval heal8s wrote but did not act on is acted on now
        if approved
            && status.phase == Some(Phase::Approved)
            && status
                .approval
                .as_ref()
                .is_some_and(|a| a.request == request && a.approved_by.as_deref() == Some(by))
        {
            return Ok(true);
        }
        let event = Event::Decided {
            request,
            by,
            approved,
        };
        if !status::apply(&mut status, event, Timestamp::now(), &self.identity) {
            return Ok(false);
        }
        write_status(&api, &name, &status).await?;
        Ok(true)
    }
}

/// Records whose pull request is open: (namespace, name, pull request).
pub async fn open_pull_requests(
    client: kube::Client,
) -> Result<Vec<(String, String, PullRequestStatus)>, kube::Error> {
    let all: Api<Remediation> = Api::all(client);
    Ok(all
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|r| {
            let status = r.status?;
            if status.phase != Some(Phase::PrOpen) {
                return None;
            }
            Some((
                r.metadata.namespace?,
                r.metadata.name?,
                status.pull_request?,
            ))
        })
        .collect())
}

/// A pull request was merged (`Merged`) or closed without merging
/// (`Refused`, reason `Declined`): settle its record.
pub async fn settle_pull_request(
    client: kube::Client,
    namespace: &str,
    name: &str,
    phase: Phase,
    reason: &str,
    message: &str,
    me: &str,
) -> Result<(), kube::Error> {
    let api: Api<Remediation> = Api::namespaced(client, namespace);
    let Some(r) = api.get_opt(name).await? else {
        return Ok(());
    };
    let mut status = r.status.unwrap_or_default();
    let event = Event::PullRequestSettled {
        phase,
        reason,
        message,
    };
    if status::apply(&mut status, event, Timestamp::now(), me) {
        write_status(&api, name, &status).await?;
    }
    Ok(())
}
