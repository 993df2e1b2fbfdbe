//! Resolving resource types (group/version/kind or plural) to `ApiResource`s
//! through discovery. A type the server does not serve (its API group is not
//! installed, or its CRD is not) resolves to "not served", never to an error
//! that stops heal8s; a real API server answers such a group with a
//! plain-text `404 page not found`, which is read as exactly that.
//!
//! `by_kind` caches its answers; a "not served" answer only for
//! [`NOT_SERVED_TTL`], so a type installed later is found without a restart.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::Client;
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{ApiCapabilities, Scope};
use tokio::sync::Mutex;

use crate::K8sError;

/// How long a "not served" answer of [`Resources::by_kind`] is trusted.
pub const NOT_SERVED_TTL: Duration = Duration::from_secs(60);

/// A resolved resource type.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub resource: ApiResource,
    pub namespaced: bool,
}

/// What discovery says about a type.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// Served.
    Served(Resolved),
    /// `/apis/<group>/<version>` answers 404: the API group (or this version
    /// of it) is not installed.
    GroupNotInstalled,
    /// The group version is served, without this type.
    NotInGroup,
}

impl Lookup {
    /// The type, when served.
    pub fn served(self) -> Option<Resolved> {
        match self {
            Lookup::Served(r) => Some(r),
            _ => None,
        }
    }
}

type KindKey = (String, String, String);
/// A cached answer and when it was given.
type Cached = (Option<Resolved>, Instant);

/// Discovery with a cache.
#[derive(Clone)]
pub struct Resources {
    client: Client,
    by_kind: Arc<Mutex<HashMap<KindKey, Cached>>>,
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

/// Whether a cached answer still stands: "served" until the process ends
/// (a type that goes away answers 404 where it is used), "not served" for
/// [`NOT_SERVED_TTL`].
fn fresh(entry: &Cached, now: Instant) -> bool {
    entry.0.is_some() || now.saturating_duration_since(entry.1) < NOT_SERVED_TTL
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
        let key = (group.to_string(), version.to_string(), kind.to_string());
        if let Some(hit) = self.by_kind.lock().await.get(&key)
            && fresh(hit, Instant::now())
        {
            return Ok(hit.0.clone());
        }
        let found = self.lookup_kind(group, version, kind).await?.served();
        self.by_kind
            .lock()
            .await
            .insert(key, (found.clone(), Instant::now()));
        Ok(found)
    }

    /// Ask the API server (no cache) about the type with this group,
    /// version and kind.
    pub async fn lookup_kind(
        &self,
        group: &str,
        version: &str,
        kind: &str,
    ) -> Result<Lookup, K8sError> {
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
        let gvk = GroupVersionKind::gvk(group, version, kind);
        match kube::discovery::pinned_kind(&self.client, &gvk).await {
            Ok((ar, caps)) => Ok(Lookup::Served(resolved(ar, &caps))),
            Err(e) => not_served(e),
        }
    }

    /// The type with this plural in `group/version`; `None` when not served.
    pub async fn by_plural(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Result<Option<Resolved>, K8sError> {
        Ok(self.lookup_plural(group, version, plural).await?.served())
    }

    /// Ask the API server (no cache) about the type with this plural in
    /// `group/version`.
    pub async fn lookup_plural(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Result<Lookup, K8sError> {
        let gv = kube::core::GroupVersion::gv(group, version);
        let list = match kube::discovery::oneshot::pinned_group(&self.client, &gv).await {
            Ok(g) => g,
            Err(e) => return not_served(e),
        };
        Ok(list
            .resources_by_stability()
            .into_iter()
            .find(|(ar, _)| ar.plural == plural && ar.version == version)
            .map_or(Lookup::NotInGroup, |(ar, caps)| {
                Lookup::Served(resolved(ar, &caps))
            }))
    }
}

/// A discovery error read as an answer: 404 (a JSON `Status`, or the plain
/// text `404 page not found` a real server sends for a group it does not
/// serve) means the group is not installed; a group without the kind is
/// `NotInGroup`; anything else is an error.
fn not_served(e: kube::Error) -> Result<Lookup, K8sError> {
    match &e {
        // kube's `Status::is_not_found` misses the plain-text 404 (its reason
        // is "Failed to parse error data"): the code says it
        kube::Error::Api(_) if crate::is_not_found(&e) => Ok(Lookup::GroupNotInstalled),
        kube::Error::Discovery(kube::error::DiscoveryError::MissingKind(_)) => {
            Ok(Lookup::NotInGroup)
        }
        kube::Error::Discovery(_) => Ok(Lookup::NotInGroup),
        _ => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(served: bool) -> Cached {
        let r = served.then(|| Resolved {
            resource: ApiResource::from_gvk(&GroupVersionKind::gvk(
                "kubevirt.io",
                "v1",
                "VirtualMachine",
            )),
            namespaced: true,
        });
        (r, Instant::now())
    }

    #[test]
    fn a_not_served_answer_expires_and_a_served_one_does_not() {
        let (missing, served) = (entry(false), entry(true));
        let at = |e: &Cached, age: Duration| fresh(e, e.1 + age);
        assert!(at(&missing, Duration::ZERO));
        assert!(at(&missing, NOT_SERVED_TTL - Duration::from_millis(1)));
        assert!(!at(&missing, NOT_SERVED_TTL));
        assert!(at(&served, NOT_SERVED_TTL * 100));
    }

    #[test]
    fn a_plain_text_404_means_the_group_is_not_installed() {
        // what kube makes of a real API server's `404 page not found`
        let status =
            kube::core::Status::failure("404 page not found", "Failed to parse error data")
                .with_code(404);
        let e = kube::Error::Api(status.boxed());
        assert!(matches!(not_served(e), Ok(Lookup::GroupNotInstalled)));
    }

    #[test]
    fn other_errors_stay_errors() {
        let status = kube::core::Status::failure("forbidden", "Forbidden").with_code(403);
        assert!(not_served(kube::Error::Api(status.boxed())).is_err());
    }
}
