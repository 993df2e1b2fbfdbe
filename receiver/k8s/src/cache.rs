//! What the watches already hold, for reads that need not cost an API
//! request: a namespace's labels and annotations (the opt-out, read before
//! every action), how many namespaces there are, and the pods a workload
//! selects (verification's restart count). Pods are kept compact: only
//! what heal8s reads of each ([`PodView`]), with shared strings.
//!
//! A cache answers only once its watch has listed everything (`InitDone`);
//! before that, or without a watch, callers read the API server as before.
//! The target itself is always read live.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use futures::FutureExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::Event;
use receiver_core::detect::pod_view::{Interner, PodView};

/// The watch caches, shared by every clone of [`crate::Clients`].
#[derive(Clone, Default)]
pub struct Caches {
    pods: Arc<PodViews>,
    namespaces: Arc<OnceLock<Store<Namespace>>>,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches")
            .field("pods", &self.pods.len())
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
    /// The pod cache, which the pod watch fills.
    pub fn pods(&self) -> Arc<PodViews> {
        self.pods.clone()
    }

    /// Serve namespaces from `store` (the first one set stays).
    pub fn set_namespaces(&self, store: Store<Namespace>) {
        let _ = self.namespaces.set(store);
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

    /// The restarts of the pods in `namespace` whose labels hold every pair
    /// of `selector`, when the pod cache is synced.
    pub fn restarts_selected(
        &self,
        namespace: &str,
        selector: &BTreeMap<String, String>,
    ) -> Option<u64> {
        self.pods.restarts_selected(namespace, selector)
    }
}

/// Pods as the pod watch last saw them, compact.
#[derive(Default)]
pub struct PodViews {
    inner: RwLock<PodMap>,
}

impl std::fmt::Debug for PodViews {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.read();
        f.debug_struct("PodViews")
            .field("ready", &m.ready)
            .field("pods", &m.pods.len())
            .field("strings", &m.interner.len())
            .finish()
    }
}

/// Pods by namespace and name.
type ByName = HashMap<(Arc<str>, Box<str>), PodView>;

#[derive(Default)]
struct PodMap {
    /// Whether the first list is complete.
    ready: bool,
    pods: ByName,
    /// A relist in progress: replaces `pods` when done.
    building: Option<ByName>,
    interner: Interner,
}

fn key_of(v: &PodView) -> Option<(Arc<str>, Box<str>)> {
    Some((v.namespace.clone()?, v.name.clone()?))
}

impl PodViews {
    fn read(&self) -> RwLockReadGuard<'_, PodMap> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, PodMap> {
        self.inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Take in one watch event (a relist replaces everything once it is done).
    pub fn apply(&self, ev: &Event<Pod>) {
        let mut m = self.write();
        let m = &mut *m;
        match ev {
            Event::Init => {
                // strings still in use stay valid; the relist shares anew
                m.interner.clear();
                m.building = Some(HashMap::new());
            }
            Event::InitApply(p) => {
                let v = PodView::new(p, &mut m.interner);
                if let (Some(k), Some(b)) = (key_of(&v), m.building.as_mut()) {
                    b.insert(k, v);
                }
            }
            Event::InitDone => {
                if let Some(b) = m.building.take() {
                    m.pods = b;
                }
                m.pods.shrink_to_fit();
                m.ready = true;
            }
            Event::Apply(p) => {
                let v = PodView::new(p, &mut m.interner);
                if let Some(k) = key_of(&v) {
                    m.pods.insert(k, v);
                }
            }
            Event::Delete(p) => {
                if let (Some(ns), Some(name)) = (&p.metadata.namespace, &p.metadata.name) {
                    m.pods.remove(&(
                        Arc::<str>::from(ns.as_str()),
                        Box::<str>::from(name.as_str()),
                    ));
                }
            }
        }
    }

    /// Whether the first list is complete.
    pub fn is_ready(&self) -> bool {
        self.read().ready
    }

    /// How many pods it holds.
    pub fn len(&self) -> usize {
        self.read().pods.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `f` over every pod held, under one read lock.
    pub fn with_all<T>(&self, f: impl FnOnce(Vec<&PodView>) -> T) -> T {
        let m = self.read();
        f(m.pods.values().collect())
    }

    /// See [`Caches::restarts_selected`].
    pub fn restarts_selected(
        &self,
        namespace: &str,
        selector: &BTreeMap<String, String>,
    ) -> Option<u64> {
        let m = self.read();
        if !m.ready {
            return None;
        }
        let pairs: Vec<(&str, &str)> = selector
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Some(
            m.pods
                .values()
                .filter(|p| p.namespace.as_deref() == Some(namespace))
                .filter(|p| p.selected_by(pairs.iter().copied()))
                .map(PodView::restarts)
                .sum(),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;
    use serde_json::json;

    fn pod(ns: &str, name: &str, app: &str, restarts: i32) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns, "labels": {"app": app}},
            "status": {"containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": true,
                "restartCount": restarts}]}
        }))
        .unwrap()
    }

    fn sel(app: &str) -> BTreeMap<String, String> {
        [("app".to_string(), app.to_string())].into()
    }

    #[test]
    fn pods_are_served_once_listed_and_follow_the_watch() {
        let v = PodViews::default();
        v.apply(&Event::Init);
        v.apply(&Event::InitApply(pod("shop", "a", "api", 2)));
        v.apply(&Event::InitApply(pod("shop", "b", "api", 3)));
        // not before the list is complete: the caller reads the API instead
        assert_eq!(v.restarts_selected("shop", &sel("api")), None);
        v.apply(&Event::InitDone);
        assert_eq!(v.restarts_selected("shop", &sel("api")), Some(5));
        assert_eq!(v.restarts_selected("shop", &sel("web")), Some(0));
        assert_eq!(v.restarts_selected("other", &sel("api")), Some(0));
        v.apply(&Event::Apply(pod("shop", "a", "api", 7)));
        v.apply(&Event::Delete(pod("shop", "b", "api", 3)));
        assert_eq!(v.restarts_selected("shop", &sel("api")), Some(7));
        assert_eq!(v.len(), 1);
        // a relist replaces everything once it is done, and not before
        v.apply(&Event::Init);
        v.apply(&Event::InitApply(pod("shop", "c", "api", 1)));
        assert_eq!(v.restarts_selected("shop", &sel("api")), Some(7));
        v.apply(&Event::InitDone);
        assert_eq!(v.restarts_selected("shop", &sel("api")), Some(1));
        let names = v.with_all(|all| {
            all.iter()
                .map(|p| p.name.as_deref().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
        });
        assert_eq!(names, ["c"]);
    }
}
