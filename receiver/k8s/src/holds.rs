//! The holds ConfigMap: the alerts holding remediations
//! (`guard.holdWhileFiring`), written by the leader whenever one starts or
//! stops holding, read by a replica that becomes leader. Without it a new
//! leader would hold again only from the alert's next delivery.
//!
//! Owns: the ConfigMap's shape (`data["held.json"]`, a JSON list of
//! `HeldAlert`) and its IO. Must not decide what holds (the guard does).

use async_trait::async_trait;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use receiver_core::guard::holds::HeldAlert;
use receiver_core::journal::HoldKeeper;

/// The ConfigMap, in heal8s's namespace.
pub const HOLDS_CONFIGMAP: &str = "heal8s-holds";
/// Its one key.
const KEY: &str = "held.json";
/// The field manager of heal8s's server-side apply.
const MANAGER: &str = "heal8s";

/// Keeps the holds in the ConfigMap `heal8s-holds` of `namespace`.
#[derive(Clone)]
pub struct KubeHolds {
    api: kube::Api<ConfigMap>,
    namespace: String,
}

impl std::fmt::Debug for KubeHolds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeHolds")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl KubeHolds {
    pub fn new(client: kube::Client, namespace: &str) -> KubeHolds {
        KubeHolds {
            api: kube::Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
        }
    }
}

/// The alerts `cm` keeps; a ConfigMap edited into something else keeps none
/// (said in the log: the holds fill again as the alerts are re-sent).
pub fn of_configmap(cm: &ConfigMap) -> Vec<HeldAlert> {
    let Some(text) = cm.data.as_ref().and_then(|d| d.get(KEY)) else {
        return Vec::new();
    };
    serde_json::from_str(text).unwrap_or_else(|e| {
        tracing::warn!(error = %e, configmap = HOLDS_CONFIGMAP, "The holds ConfigMap does not hold a list of held alerts; starting without them.");
        Vec::new()
    })
}

#[async_trait]
impl HoldKeeper for KubeHolds {
    async fn load(&self) -> Option<Vec<HeldAlert>> {
        match self.api.get_opt(HOLDS_CONFIGMAP).await {
            Ok(Some(cm)) => Some(of_configmap(&cm)),
            Ok(None) => Some(Vec::new()),
            Err(e) => {
                tracing::warn!(error = %e, namespace = %self.namespace, configmap = HOLDS_CONFIGMAP, "Cannot read the alerts that hold remediations; they hold again from their next delivery.");
                None
            }
        }
    }

    async fn save(&self, held: &[HeldAlert]) {
        let text = match serde_json::to_string(held) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot write the held alerts down.");
                return;
            }
        };
        let cm = serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": HOLDS_CONFIGMAP,
                "labels": {"app.kubernetes.io/managed-by": "heal8s"},
            },
            "data": {KEY: text},
        });
        let params = PatchParams::apply(MANAGER).force();
        if let Err(e) = self
            .api
            .patch(HOLDS_CONFIGMAP, &params, &Patch::Apply(&cm))
            .await
        {
            tracing::warn!(error = %e, namespace = %self.namespace, configmap = HOLDS_CONFIGMAP, held = held.len(), "Cannot keep the alerts that hold remediations; a new leader holds again from their next delivery.");
        }
    }
}
