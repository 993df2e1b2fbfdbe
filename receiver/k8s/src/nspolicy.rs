//! The namespaced `RemediationPolicy` custom resource (heal8s.io/v1alpha1):
//! a team tightens what heal8s does in its namespace. heal8s watches them,
//! has receiver-core check each against the cluster policy
//! (`policy::namespaced::accept`: only tightening is accepted), writes the
//! verdict into the object's status (`Accepted` condition) and an Event, and
//! hands the accepted ones to the guard.
//!
//! Owns: the CRD type, the watch and the status and Event writes. Must not
//! decide what a policy may say: that is receiver-core's.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Patch, PatchParams};
use kube::{Api, CustomResource, Resource, ResourceExt};
use receiver_core::Policy;
use receiver_core::policy::namespaced::{NamespacePolicy, RemediationPolicySpec, accept};
use receiver_core::status::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What heal8s made of a RemediationPolicy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemediationPolicyStatus {
    /// `Accepted`: `True` when heal8s applies it; `False` (reason `Loosens`
    /// or `Invalid`) naming each refused field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// What a team asks of heal8s in its namespace: it can only tighten the
/// cluster policy (heal8s refuses, by field, what would loosen it).
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "heal8s.io",
    version = "v1alpha1",
    kind = "RemediationPolicy",
    namespaced,
    status = "RemediationPolicyStatus",
    shortname = "rempol",
    category = "heal8s",
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.mode"),
    printcolumn(name = "Opt-Out", type_ = "boolean", json_path = ".spec.optOut"),
    printcolumn(
        name = "Accepted",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Accepted\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[schemars(transform = crate::schema::kubernetes_formats)]
pub struct RemediationPolicyCrdSpec {
    #[serde(flatten)]
    pub spec: RemediationPolicySpec,
}

/// The CRD as YAML, as `heal8s crd --kind remediation-policy` prints it.
pub fn crd_yaml() -> Result<String, String> {
    use kube::CustomResourceExt;
    let json = serde_json::to_value(RemediationPolicy::crd()).map_err(|e| e.to_string())?;
    serde_saphyr::to_string(&json).map_err(|e| e.to_string())
}

/// The verdict on `obj` under `cluster`: the accepted policy, or the
/// `Accepted=False` condition's reason and message.
pub fn judge(
    obj: &serde_json::Value,
    cluster: &Policy,
) -> Result<NamespacePolicy, (String, String)> {
    let ns = obj["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let spec = obj.get("spec").cloned().unwrap_or(serde_json::json!({}));
    accept(ns, name, &spec, cluster).map_err(|issues| {
        let loosens = issues.iter().any(|i| i.message.contains("loosen"));
        let message = issues
            .iter()
            .map(|i| format!("{}: {}", i.path, i.message))
            .collect::<Vec<_>>()
            .join("; ");
        (
            if loosens { "Loosens" } else { "Invalid" }.to_string(),
            message,
        )
    })
}

/// Watch RemediationPolicies in every namespace, judge each against
/// `cluster`, say so on the object (status and an Event, once per change)
/// and send the accepted ones to `tx` whenever they change. Runs until `tx`
/// is closed. Without the CRD it retries quietly.
pub async fn watch(
    client: kube::Client,
    cluster: Arc<Policy>,
    events: crate::events::Events,
    tx: tokio::sync::watch::Sender<Vec<NamespacePolicy>>,
) {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    // read as they are (a field of the wrong type is judged and refused by
    // name, not lost to a decoding error)
    let ar = kube::discovery::ApiResource::erase::<RemediationPolicy>(&());
    let api: Api<kube::api::DynamicObject> = Api::all_with(client.clone(), &ar);
    let stream = watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    let mut accepted: BTreeMap<String, NamespacePolicy> = BTreeMap::new();
    let mut fresh: Option<BTreeMap<String, NamespacePolicy>> = None;
    while let Some(item) = stream.next().await {
        if tx.is_closed() {
            return;
        }
        let e = match item {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!(error = %e, "Watching RemediationPolicies failed; retrying.");
                continue;
            }
        };
        match e {
            watcher::Event::Init => fresh = Some(BTreeMap::new()),
            watcher::Event::InitApply(p) => {
                let into = fresh.get_or_insert_with(BTreeMap::new);
                take(&client, &cluster, &events, p, into).await;
            }
            watcher::Event::InitDone => {
                accepted = fresh.take().unwrap_or_default();
                let _ = tx.send(accepted.values().cloned().collect());
            }
            watcher::Event::Apply(p) => {
                take(&client, &cluster, &events, p, &mut accepted).await;
                let _ = tx.send(accepted.values().cloned().collect());
            }
            watcher::Event::Delete(p) => {
                let key = format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any());
                if accepted.remove(&key).is_some() {
                    tracing::info!(policy = %key, "RemediationPolicy deleted; the cluster policy alone applies there again.");
                }
                let _ = tx.send(accepted.values().cloned().collect());
            }
        }
    }
}

/// Judge `p`, keep it in `into` if accepted, and say so on the object.
async fn take(
    client: &kube::Client,
    cluster: &Policy,
    events: &crate::events::Events,
    p: kube::api::DynamicObject,
    into: &mut BTreeMap<String, NamespacePolicy>,
) {
    let ns = p.namespace().unwrap_or_default();
    let name = p.name_any();
    let key = format!("{ns}/{name}");
    let obj = serde_json::to_value(&p).unwrap_or_default();
    let verdict = judge(&obj, cluster);
    let (status, reason, message) = match &verdict {
        Ok(_) => (
            "True",
            "Accepted".to_string(),
            "heal8s applies it: it only tightens the cluster policy".to_string(),
        ),
        Err((reason, message)) => ("False", reason.clone(), message.clone()),
    };
    match verdict {
        Ok(np) => {
            into.insert(key.clone(), np);
        }
        Err(_) => {
            into.remove(&key);
        }
    }
    let generation = p.metadata.generation;
    let current: Option<(Condition, Option<i64>)> = p
        .data
        .get("status")
        .cloned()
        .and_then(|s| serde_json::from_value::<RemediationPolicyStatus>(s).ok())
        .and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == "Accepted")
                .cloned()
                .map(|c| (c, s.observed_generation))
        });
    let unchanged = current.as_ref().is_some_and(|(c, g)| {
        c.status == status && c.reason == reason && c.message == message && *g == generation
    });
    if unchanged {
        return;
    }
    let condition = Condition {
        type_: "Accepted".into(),
        status: status.into(),
        last_transition_time: jiff::Timestamp::now().to_string(),
        reason: reason.clone(),
        message: message.clone(),
    };
    let ar = kube::discovery::ApiResource::erase::<RemediationPolicy>(&());
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
    let patch = serde_json::json!({"status": {"conditions": [condition], "observedGeneration": generation}});
    if let Err(e) = api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        tracing::warn!(policy = %key, error = %e, "Could not write the RemediationPolicy's status.");
    }
    let reference = ObjectReference {
        api_version: Some(RemediationPolicy::api_version(&()).to_string()),
        kind: Some(RemediationPolicy::kind(&()).to_string()),
        name: Some(name.clone()),
        namespace: Some(ns.clone()),
        uid: p.metadata.uid.clone(),
        ..ObjectReference::default()
    };
    let warning = status == "False";
    if warning {
        tracing::warn!(policy = %key, %message, "RemediationPolicy refused: it would loosen the cluster policy or is not valid.");
    } else {
        tracing::info!(policy = %key, "RemediationPolicy accepted.");
    }
    events
        .publish_on(
            &reference,
            warning,
            if warning {
                "PolicyRefused"
            } else {
                "PolicyAccepted"
            },
            "Judge",
            message,
        )
        .await;
}
