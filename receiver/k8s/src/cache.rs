//! What the watches already hold, for reads that need not cost an API
//! request: a namespace's labels and annotations (the opt-out, read before
//! every action), how many namespaces there are, and the pods a workload
//! selects (verification's restart count).
//!
//! A cache answers only once its watch has listed everything (`InitDone`);
//! before that, or without a watch, callers read the API server as before.
//! The target itself is always read live.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use futures::FutureExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

/// The watch caches, shared by every clone of [`crate::Clients`].
#[derive(Clone, Default)]
pub struct Caches {
    pods: Arc<OnceLock<Store<Pod>>>,
    namespaces: Arc<OnceLock<Store<Namespace>>>,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches")
            .field("pods", &self.pods.get().map(Store::len))
            .field("namespaces", &self.namespaces.get().map(Store::len))
            .finish()
    }
}

/// `store` once its first list is complete.
fn ready<K>(store: &OnceLock<Store<K>>) -> Option<&Store<K>>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    let s = store.get()?;
    s.wait_until_ready().now_or_never()?.ok()?;
    Some(s)
}

impl Caches {
    /// Serve pods from `store` (the pod watch's; the first one set stays).
    pub fn set_pods(&self, store: Store<Pod>) {
        let _ = self.pods.set(store);
    }

    /// Serve namespaces from `store` (the first one set stays).
    pub fn set_namespaces(&self, store: Store<Namespace>) {
        let _ = self.namespaces.set(store);
    }

    /// Whether namespaces are cached (a watch feeds them).
    pub fn has_namespaces(&self) -> bool {
        self.namespaces.get().is_some()
    }

    /// Namespace `name` as the watch last saw it: `Some(None)` when the
    /// synced cache does not hold it, `None` when there is no synced cache.
    pub fn namespace(&self, name: &str) -> Option<Option<Arc<Namespace>>> {
        let s = ready(&self.namespaces)?;
        Some(s.get(&ObjectRef::new(name)))
    }

    /// How many namespaces there are, when the cache is synced.
    pub fn namespace_count(&self) -> Option<usize> {
        ready(&self.namespaces).map(Store::len)
    }

    /// The pods in `namespace` whose labels hold every pair of `selector`,
    /// when the pod cache is synced.
    pub fn pods_selected(
        &self,
        namespace: &str,
        selector: &BTreeMap<String, String>,
    ) -> Option<Vec<Arc<Pod>>> {
        let s = ready(&self.pods)?;
        Some(s.state_filter(|p| {
            p.namespace().as_deref() == Some(namespace)
                && selector
                    .iter()
                    .all(|(k, v)| p.labels().get(k).is_some_and(|have| have == v))
        }))
    }
}
