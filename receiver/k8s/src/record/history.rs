//! Reading the records back: the guard's history for a replica that starts
//! or becomes leader (the ledgers, alert occurrences), and a person's request
//! to end an escalation (the `heal8s.io/clear-escalation` annotation).

use kube::Api;
use kube::api::ListParams;
use receiver_core::status::Phase;

use super::crd::{CLEAR_ESCALATION, Remediation};

/// What the records tell a restarted replica.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Every guard event the records kept (actions, escalations, recoveries).
    pub events: Vec<receiver_core::PastEvent>,
    /// Alert occurrences (fingerprint, startsAt) that led to a record.
    pub alerts: Vec<(String, jiff::Timestamp)>,
}

/// Read every Remediation object back, for the guard (cooldowns, budgets,
/// escalation, alert dedupe) after a restart.
pub async fn load_history(client: kube::Client) -> Result<History, kube::Error> {
    let api: Api<Remediation> = Api::all(client);
    let mut out = History::default();
    let now = jiff::Timestamp::now();
    for r in api.list(&ListParams::default()).await?.items {
        out.events.extend(past_events(&r, now));
        if r.spec.trigger.source == receiver_core::signal::SourceKind::Alert.as_str()
            && let Ok(at) = r.spec.trigger.first_seen.parse()
        {
            out.alerts.push((r.spec.trigger.fingerprint.clone(), at));
        }
    }
    Ok(out)
}

/// The guard events one record stands for: its ledger, plus a human clear
/// (the annotation on an escalated record) that no leader has taken in yet.
pub fn past_events(r: &Remediation, now: jiff::Timestamp) -> Vec<receiver_core::PastEvent> {
    let mut out: Vec<receiver_core::PastEvent> = r
        .status
        .as_ref()
        .map(|s| s.ledger.clone())
        .unwrap_or_default();
    if let Some(key) = escalation_to_clear(r) {
        out.push(receiver_core::PastEvent {
            at: now,
            event: receiver_core::GuardEvent::Recovered {
                key,
                by: receiver_core::RecoveryBy::Human,
            },
        });
    }
    out
}

/// The key whose escalation a person asked to end on this record (phase
/// `Escalated` and the `heal8s.io/clear-escalation=true` annotation).
pub fn escalation_to_clear(r: &Remediation) -> Option<String> {
    let asked = r
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CLEAR_ESCALATION))
        .is_some_and(|v| v == "true");
    let status = r.status.as_ref()?;
    if !asked || status.phase != Some(Phase::Escalated) {
        return None;
    }
    status
        .ledger
        .iter()
        .rev()
        .find_map(|e| match &e.event {
            receiver_core::GuardEvent::Escalated { key, .. } => Some(key.clone()),
            _ => None,
        })
        .or_else(|| {
            let t = &r.spec.target;
            Some(match &t.workload {
                Some(w) => format!(
                    "{}/{}/{}",
                    w.kind,
                    t.namespace.as_deref().unwrap_or("-"),
                    w.name
                ),
                None => t.key.clone(),
            })
        })
}

/// Watch Remediation records for what people ask of heal8s on them: to end
/// an escalation (`kubectl annotate remediation NAME
/// heal8s.io/clear-escalation=true`; the key goes to `clears`) and their
/// decisions on plans awaiting approval (to `approvals`; see
/// [`super::decision_of`]). One watch for both; it runs until both
/// receivers are gone.
pub async fn watch_people(
    client: kube::Client,
    clears: tokio::sync::mpsc::Sender<String>,
    approvals: tokio::sync::mpsc::Sender<super::Decision>,
) {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let api: Api<Remediation> = Api::all(client);
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .applied_objects();
    futures::pin_mut!(stream);
    while let Some(item) = stream.next().await {
        if clears.is_closed() && approvals.is_closed() {
            return;
        }
        match item {
            Ok(r) => {
                if let Some(key) = escalation_to_clear(&r) {
                    let _ = clears.send(key).await;
                }
                if let Some(d) = super::decision_of(&r) {
                    let _ = approvals.send(d).await;
                }
            }
            Err(e) => tracing::debug!(error = %e, "Watching Remediation records failed; retrying."),
        }
    }
}

/// The guard's history, read from Remediation records.
#[derive(Clone)]
pub struct KubeHistory {
    client: kube::Client,
    identity: String,
}

impl std::fmt::Debug for KubeHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeHistory").finish_non_exhaustive()
    }
}

impl KubeHistory {
    /// History through `client`; `identity` is this replica's name.
    pub fn new(client: kube::Client, identity: &str) -> KubeHistory {
        KubeHistory {
            client,
            identity: identity.to_string(),
        }
    }
}

#[async_trait::async_trait]
impl receiver_core::History for KubeHistory {
    async fn load(
        &self,
    ) -> Option<(
        Vec<receiver_core::PastEvent>,
        Vec<(String, jiff::Timestamp)>,
    )> {
        super::upkeep::take_over(self.client.clone(), &self.identity).await;
        match load_history(self.client.clone()).await {
            Ok(h) => {
                tracing::info!(
                    events = h.events.len(),
                    alerts = h.alerts.len(),
                    "Guard state restored from Remediation records."
                );
                Some((h.events, h.alerts))
            }
            // no Remediation CRD: there is no history to wait for
            Err(kube::Error::Api(e)) if e.code == 404 => {
                tracing::info!(
                    "No Remediation records to restore the guard from (the CRD is not installed)."
                );
                Some((Vec::new(), Vec::new()))
            }
            Err(e) => {
                tracing::warn!(error = %e, "Cannot read the Remediation records; heal8s acts only once it has read them (signals wait).");
                None
            }
        }
    }
}
