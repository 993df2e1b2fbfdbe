//! Resolving resource types (group/version/kind or plural) to `ApiResource`s
//! through discovery, cached. A type the server does not serve (its CRD is not
//! installed) resolves to `None`, never to an error that stops heal8s.

use std::collections::HashMap;
use std::sync::Arc;

use kube::Client;
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{ApiCapabilities, Scope};
use tokio::sync::Mutex;

use crate::K8sError;

/// A resolved resource type.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub resource: ApiResource,
    pub namespaced: bool,
}

type KindKey = (String, String, String);

/// Discovery with a cache.
#[derive(Clone)]
pub struct Resources {
    client: Client,
    by_kind: Arc<Mutex<HashMap<KindKey, Option<Resolved>>>>,
}

impl std::fmt::Debug for Resources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resources").finish_non_exhaustive()
    }
}

fn resolved(ar: ApiResource, caps: &ApiCapabilities) -> Resolved {
    Resolved {
        resource: ar,
        namespaced: caps.scope == Scope::Namespaced,
    }
}

impl Resources {
    /// Discovery through `client`.
    pub fn new(client: Client) -> Resources {
        Resources {
            client,
            by_kind: Arc::default(),
        }
    }

    /// The type with this group, version and kind; `None` when not served.
    pub async fn by_kind(
        &self,
        group: &str,
        version: &str,
        kind: &str,
    ) -> Result<Option<Resolved>, K8sError> {
        let problems = receiver_core::target::ResourceType {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
        }
        .problems();
        if !problems.is_empty() {
            // never let a malformed type reach a discovery URL
            return Err(K8sError::Refused(format!(
                "not a resource type: {}",
                problems.join("; ")
            )));
        }
        let key = (group.to_string(), version.to_string(), kind.to_string());
        if let Some(hit) = self.by_kind.lock().await.get(&key) {
            return Ok(hit.clone());
        }
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let found = match kube::discovery::pinned_kind(&self.client, &gvk).await {
            Ok((ar, caps)) => Some(resolved(ar, &caps)),
            Err(e) if not_served(&e) => None,
            Err(e) => return Err(e.into()),
        };
        self.by_kind.lock().await.insert(key, found.clone());
        Ok(found)
    }

    /// The type with this plural in `group/version`; `None` when not served.
    pub async fn by_plural(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Result<Option<Resolved>, K8sError> {
        let gv = kube::core::GroupVersion::gv(group, version);
        let list = match kube::discovery::oneshot::pinned_group(&self.client, &gv).await {
            Ok(g) => g,
            Err(e) if not_served(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(list
            .resources_by_stability()
            .into_iter()
            .find(|(ar, _)| ar.plural == plural && ar.version == version)
            .map(|(ar, caps)| resolved(ar, &caps)))
    }
}

fn not_served(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.is_not_found(),
        kube::Error::Discovery(_) => true,
        _ => false,
    }
}
