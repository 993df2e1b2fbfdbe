//! Detector watchers: kube-runtime watchers with trimmed reflector stores for
//! pods, nodes, namespaces, Services (with their EndpointSlices),
//! Deployments (with their ReplicaSets), KubeVirt VMs and configured custom
//! resources. Each change is run through the pure detectors at once (low
//! latency), and every cached object again each `resync` (time-based
//! conditions; a Service is read with its slices and pods, a Deployment with
//! its ReplicaSets, so a change to those is seen at the next resync).
//! Findings go through an `Emitter` and into the detector lane of the work
//! queue (alerts have a lane of their own, so a burst here never turns
//! Alertmanager away).
//!
//! Optional resource types (KubeVirt VMs, configured custom resources)
//! whose API group is not installed are named in one info line; discovery
//! asks again periodically and starts their detectors once they are served,
//! without a restart.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{
    Container, Namespace, Node, Pod, PodSpec, PodTemplateSpec, Service, ServiceSpec,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::DynamicObject;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, reflector::store::Writer};
use kube::{Api, Resource, ResourceExt};
use receiver_core::detect::pod_view::PodView;
use receiver_core::detect::{
    Detector, Detectors, Emitter, Finding, Object, Watched, namespace, node, rollout, service,
    strain,
};
use receiver_core::lanes::SignalSink;
use receiver_core::target::ResourceType;
use serde::de::DeserializeOwned;
use tokio::sync::watch as stop_watch;

use crate::Clients;
use crate::cache::PodViews;
use crate::leader::Leadership;
use crate::resources::{Lookup, Resolved, Resources};

/// Shared node counts, kept by the node watcher, read for strain warnings.
#[derive(Debug, Default)]
pub struct Strain {
    total: AtomicU32,
    under_pressure: AtomicU32,
}

impl Strain {
    /// Percent of nodes under pressure.
    pub fn percent(&self) -> u32 {
        let total = self.total.load(Ordering::Relaxed);
        (self.under_pressure.load(Ordering::Relaxed) * 100)
            .checked_div(total)
            .unwrap_or(0)
    }
}

/// Keep only what detectors read: drop managedFields, most annotations and the pod spec.
fn trim_meta<K: ResourceExt>(o: &mut K) {
    o.managed_fields_mut().clear();
    let keep: Vec<(String, String)> = o
        .annotations()
        .iter()
        .filter(|(k, _)| k.starts_with("heal8s.io/") || k.as_str() == "kubernetes.io/config.mirror")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let a = o.annotations_mut();
    a.clear();
    a.extend(keep);
}

fn trim_pod(p: &mut Pod) {
    trim_meta(p);
    if let Some(spec) = &mut p.spec {
        *spec = PodSpec {
            node_name: spec.node_name.take(),
            ..PodSpec::default()
        };
    }
    if let Some(s) = &mut p.status {
        s.pod_ips = None;
        s.host_ips = None;
        s.message = None;
        s.ephemeral_container_statuses = None;
        s.resource_claim_statuses = None;
    }
}

/// Keep of a Service what the services detector reads: its selector and type.
fn trim_service(s: &mut Service) {
    trim_meta(s);
    s.spec = s.spec.take().map(|spec| ServiceSpec {
        selector: spec.selector,
        type_: spec.type_,
        ..ServiceSpec::default()
    });
    s.status = None;
}

/// Keep of an EndpointSlice its labels (the Service it belongs to) and its
/// endpoints' conditions.
fn trim_slice(s: &mut EndpointSlice) {
    trim_meta(s);
    s.ports = None;
    for e in &mut s.endpoints {
        e.addresses.clear();
        e.deprecated_topology = None;
        e.hints = None;
        e.hostname = None;
        e.node_name = None;
        e.target_ref = None;
        e.zone = None;
    }
}

/// Keep of a Deployment its conditions, generations and `paused`.
fn trim_deployment(d: &mut Deployment) {
    trim_meta(d);
    d.spec = d.spec.take().map(|spec| DeploymentSpec {
        paused: spec.paused,
        ..DeploymentSpec::default()
    });
    if let Some(st) = &mut d.status {
        *st = k8s_openapi::api::apps::v1::DeploymentStatus {
            conditions: st.conditions.take(),
            observed_generation: st.observed_generation,
            ..Default::default()
        };
    }
}

/// Keep of a ReplicaSet its owner, its revision and its containers' images.
fn trim_replica_set(rs: &mut ReplicaSet) {
    rs.managed_fields_mut().clear();
    rs.labels_mut().clear();
    rs.annotations_mut()
        .retain(|k, _| k == rollout::REVISION_ANNOTATION);
    rs.spec = rs.spec.take().map(|spec| ReplicaSetSpec {
        template: spec.template.map(|t| PodTemplateSpec {
            metadata: None,
            spec: t.spec.map(|p| PodSpec {
                containers: p
                    .containers
                    .into_iter()
                    .map(|c| Container {
                        name: c.name,
                        image: c.image,
                        ..Container::default()
                    })
                    .collect(),
                ..PodSpec::default()
            }),
        }),
        ..ReplicaSetSpec::default()
    });
    rs.status = None;
}

/// Whether `store` has listed everything once.
fn synced<K>(store: &Store<K>) -> bool
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    store
        .wait_until_ready()
        .now_or_never()
        .is_some_and(|r| r.is_ok())
}

/// Where a watch keeps what it saw, and how its detectors read it.
trait Keep<K>: Send + 'static {
    /// Take in one watch event.
    fn apply(&mut self, ev: &Event<K>);
    /// The findings on `o`, just seen in an event, at `now`.
    fn detect(&self, o: &K, now: Timestamp) -> Vec<Finding>;
    /// The findings on everything kept, each with its `namespace/name`.
    fn detect_all(&self, now: Timestamp) -> Vec<(String, Vec<Finding>)>;
}

fn key_of<K: ResourceExt>(o: &K) -> String {
    format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any())
}

/// A kube-runtime reflector store; the detectors read the objects themselves.
struct Reflected<K, D>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    writer: Writer<K>,
    store: Store<K>,
    detect: D,
}

impl<K, D> Reflected<K, D>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone + Default,
{
    fn new(detect: D) -> Self {
        let (store, writer) = reflector::store::<K>();
        Reflected {
            writer,
            store,
            detect,
        }
    }
}

impl<K, D> Keep<K> for Reflected<K, D>
where
    K: Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync,
    D: Fn(&K, Timestamp) -> Vec<Finding> + Send + 'static,
{
    fn apply(&mut self, ev: &Event<K>) {
        self.writer.apply_watcher_event(ev);
    }

    fn detect(&self, o: &K, now: Timestamp) -> Vec<Finding> {
        (self.detect)(o, now)
    }

    fn detect_all(&self, now: Timestamp) -> Vec<(String, Vec<Finding>)> {
        self.store
            .state()
            .iter()
            .map(|o| (key_of(o.as_ref()), (self.detect)(o, now)))
            .collect()
    }
}

/// The compact pod cache; the detectors read each pod's view.
struct Pods<D> {
    views: Arc<PodViews>,
    detect: D,
}

impl<D> Keep<Pod> for Pods<D>
where
    D: Fn(&PodView, Timestamp) -> Vec<Finding> + Send + 'static,
{
    fn apply(&mut self, ev: &Event<Pod>) {
        self.views.apply(ev);
    }

    fn detect(&self, o: &Pod, now: Timestamp) -> Vec<Finding> {
        (self.detect)(&PodView::of(o), now)
    }

    fn detect_all(&self, now: Timestamp) -> Vec<(String, Vec<Finding>)> {
        self.views.with_all(|all| {
            all.into_iter()
                .map(|v| {
                    let key = format!(
                        "{}/{}",
                        v.namespace.as_deref().unwrap_or_default(),
                        v.name.as_deref().unwrap_or_default()
                    );
                    (key, (self.detect)(v, now))
                })
                .collect()
        })
    }
}

/// Services, with the EndpointSlice store and the pod cache they are read
/// with; nothing is found before both have listed everything.
struct Services<D> {
    writer: Writer<Service>,
    store: Store<Service>,
    slices: Store<EndpointSlice>,
    pods: Arc<PodViews>,
    detect: D,
}

impl<D> Services<D> {
    fn synced(&self) -> bool {
        synced(&self.slices) && self.pods.is_ready()
    }
}

impl<D> Keep<Service> for Services<D>
where
    D: Fn(&service::Backends<'_>, Timestamp) -> Vec<Finding> + Send + 'static,
{
    fn apply(&mut self, ev: &Event<Service>) {
        self.writer.apply_watcher_event(ev);
    }

    fn detect(&self, o: &Service, now: Timestamp) -> Vec<Finding> {
        if !self.synced() {
            return Vec::new();
        }
        let (ns, name) = (o.namespace().unwrap_or_default(), o.name_any());
        let slices: Vec<Arc<EndpointSlice>> = self
            .slices
            .state()
            .into_iter()
            .filter(|s| service::slice_of(s, &ns, &name))
            .collect();
        self.pods.with_all(|all| {
            let b = service::Backends {
                service: o,
                slices: slices.iter().map(AsRef::as_ref).collect(),
                pods: all
                    .into_iter()
                    .filter(|p| p.namespace.as_deref() == Some(ns.as_str()))
                    .collect(),
            };
            (self.detect)(&b, now)
        })
    }

    fn detect_all(&self, now: Timestamp) -> Vec<(String, Vec<Finding>)> {
        if !self.synced() {
            return Vec::new();
        }
        let services = self.store.state();
        let slices = self.slices.state();
        let mut slices_of: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
        for s in &slices {
            let owner = s
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(service::SERVICE_NAME_LABEL));
            if let (Some(ns), Some(owner)) = (s.metadata.namespace.as_deref(), owner) {
                slices_of.entry((ns, owner)).or_default().push(s);
            }
        }
        // one pass over the pods, under one read lock
        self.pods.with_all(|all| {
            let mut pods_in: HashMap<&str, Vec<&PodView>> = HashMap::new();
            for p in all {
                if let Some(ns) = p.namespace.as_deref() {
                    pods_in.entry(ns).or_default().push(p);
                }
            }
            services
                .iter()
                .map(|svc| {
                    let ns = svc.metadata.namespace.as_deref().unwrap_or_default();
                    let name = svc.metadata.name.as_deref().unwrap_or_default();
                    let b = service::Backends {
                        service: svc,
                        slices: slices_of.get(&(ns, name)).cloned().unwrap_or_default(),
                        pods: pods_in.get(ns).cloned().unwrap_or_default(),
                    };
                    (key_of(svc.as_ref()), (self.detect)(&b, now))
                })
                .collect()
        })
    }
}

/// Deployments, with the ReplicaSet store they are read with; nothing is
/// found before it has listed everything.
struct Deployments<D> {
    writer: Writer<Deployment>,
    store: Store<Deployment>,
    replica_sets: Store<ReplicaSet>,
    detect: D,
}

/// The Deployment (namespace, name) a ReplicaSet's controller reference names.
fn controlled_by(rs: &ReplicaSet) -> Option<(&str, &str)> {
    let refs = rs.metadata.owner_references.as_deref()?;
    let r = refs
        .iter()
        .find(|r| r.controller == Some(true))
        .or_else(|| refs.first())?;
    (r.kind == "Deployment").then_some((rs.metadata.namespace.as_deref()?, r.name.as_str()))
}

impl<D> Keep<Deployment> for Deployments<D>
where
    D: Fn(&rollout::Rollout<'_>, Timestamp) -> Vec<Finding> + Send + 'static,
{
    fn apply(&mut self, ev: &Event<Deployment>) {
        self.writer.apply_watcher_event(ev);
    }

    fn detect(&self, o: &Deployment, now: Timestamp) -> Vec<Finding> {
        if !synced(&self.replica_sets) {
            return Vec::new();
        }
        let (ns, name) = (o.namespace().unwrap_or_default(), o.name_any());
        let rss: Vec<Arc<ReplicaSet>> = self
            .replica_sets
            .state()
            .into_iter()
            .filter(|rs| controlled_by(rs) == Some((ns.as_str(), name.as_str())))
            .collect();
        let r = rollout::Rollout {
            deployment: o,
            replica_sets: rss.iter().map(AsRef::as_ref).collect(),
        };
        (self.detect)(&r, now)
    }

    fn detect_all(&self, now: Timestamp) -> Vec<(String, Vec<Finding>)> {
        if !synced(&self.replica_sets) {
            return Vec::new();
        }
        let rss = self.replica_sets.state();
        let mut of: HashMap<(&str, &str), Vec<&ReplicaSet>> = HashMap::new();
        for rs in &rss {
            if let Some(owner) = controlled_by(rs) {
                of.entry(owner).or_default().push(rs);
            }
        }
        self.store
            .state()
            .iter()
            .map(|d| {
                let ns = d.metadata.namespace.as_deref().unwrap_or_default();
                let name = d.metadata.name.as_deref().unwrap_or_default();
                let r = rollout::Rollout {
                    deployment: d,
                    replica_sets: of.get(&(ns, name)).cloned().unwrap_or_default(),
                };
                (key_of(d.as_ref()), (self.detect)(&r, now))
            })
            .collect()
    }
}

/// Keep `writer` filled from a watch of `api` (trimmed by `trim`) until
/// `stop` flips: a store other watches' detectors read.
async fn mirror<K, T>(
    what: &'static str,
    api: Api<K>,
    trim: T,
    mut writer: Writer<K>,
    mut stop: stop_watch::Receiver<bool>,
) where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync,
    T: FnMut(&mut K) + Send + 'static,
{
    let stream = watcher::watcher(api, watcher::Config::default())
        .modify(trim)
        .default_backoff();
    futures::pin_mut!(stream);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            ev = stream.next() => match ev {
                None => break,
                Some(Ok(ev)) => writer.apply_watcher_event(&ev),
                Some(Err(e)) => {
                    tracing::warn!(watch = what, error = %e, "Watch error; retrying with backoff.");
                }
            },
        }
    }
}

/// Run detection over one watched type until `stop` flips or the queue closes.
async fn run_one<K, C, T>(what: String, api: Api<K>, trim: T, mut keep: C, ctx: WatchContext)
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync,
    C: Keep<K>,
    T: FnMut(&mut K) + Send + 'static,
{
    let WatchContext {
        resync,
        resignal_after,
        queue,
        mut stop,
        leader,
        ..
    } = ctx;
    let stream = watcher::watcher(api, watcher::Config::default())
        .modify(trim)
        .default_backoff();
    futures::pin_mut!(stream);
    let mut emitter = Emitter::new(resignal_after);
    let mut tick = tokio::time::interval(resync);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(detector = %what, "Detector watching.");
    loop {
        let signals = tokio::select! {
            _ = stop.changed() => break,
            ev = stream.next() => match ev {
                None => break,
                Some(Ok(ev)) => {
                    keep.apply(&ev);
                    match ev {
                        // a follower keeps its cache warm but signals nothing; when it
                        // becomes leader its emitter is empty, so the next resync
                        // signals everything
                        _ if !leader.is_leader() => {
                            emitter = Emitter::new(resignal_after);
                            Vec::new()
                        }
                        Event::Apply(o) | Event::InitApply(o) => {
                            let now = Timestamp::now();
                            emitter.observe(&key_of(&o), keep.detect(&o, now), now)
                        }
                        Event::Delete(o) => emitter.forget(&key_of(&o), Timestamp::now()),
                        Event::Init | Event::InitDone => Vec::new(),
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(detector = %what, error = %e, "Watch error; retrying with backoff.");
                    Vec::new()
                }
            },
            _ = tick.tick() => {
                if !leader.is_leader() {
                    continue;
                }
                let now = Timestamp::now();
                let mut out = Vec::new();
                for (key, found) in keep.detect_all(now) {
                    out.extend(emitter.observe(&key, found, now));
                }
                out
            }
        };
        for s in signals {
            if queue.send(s).await.is_err() {
                return;
            }
        }
    }
    tracing::info!(detector = %what, "Detector stopped.");
}

/// Start every enabled detector (and strain relief when `strain_eviction` is on).
/// They stop when `stop` flips to true (or the queue closes). Detectors of
/// optional types (KubeVirt VMs, configured custom resources) whose API group
/// is not installed start when it is: discovery asks again every
/// `rediscover` (zero: never).
#[allow(clippy::too_many_arguments)]
pub async fn start(
    clients: &Clients,
    cfg: &Detectors,
    resignal_after: Duration,
    strain_eviction: bool,
    rediscover: Duration,
    queue: Arc<dyn SignalSink>,
    stop: stop_watch::Receiver<bool>,
    leader: Leadership,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    let strain = Arc::new(Strain::default());
    let client = clients.main.clone();
    let ctx = WatchContext {
        client: client.clone(),
        resync: cfg.resync.get(),
        resignal_after,
        queue: queue.clone(),
        stop: stop.clone(),
        leader: leader.clone(),
    };
    let detectors = cfg.enabled();
    // the detectors of one watched type, and one function running them all
    let on = |w: &Watched| -> Vec<Arc<dyn Detector>> {
        detectors
            .iter()
            .filter(|d| d.watches().contains(w))
            .cloned()
            .collect()
    };
    fn all<'a>(
        ds: &'a [Arc<dyn Detector>],
        o: Object<'a>,
        now: Timestamp,
    ) -> impl Iterator<Item = Finding> + 'a {
        ds.iter().flat_map(move |d| d.detect(o, now))
    }

    let pod_detectors = on(&Watched::Pods);
    let service_detectors = on(&Watched::Services);
    // the services detector reads the pod cache: the pod watch runs for it too
    if !pod_detectors.is_empty() || !service_detectors.is_empty() {
        let views = clients.caches.pods();
        let name = if pod_detectors.is_empty() {
            "pods (cache only)"
        } else {
            "pods"
        };
        if strain_eviction && cfg.nodes.enabled && !pod_detectors.is_empty() {
            tasks.push(tokio::spawn(strain_relief(
                views.clone(),
                strain.clone(),
                cfg.clone(),
                queue.clone(),
                stop.clone(),
                leader.clone(),
            )));
        }
        let keep = Pods {
            views,
            detect: move |p: &PodView, now| all(&pod_detectors, Object::Pod(p), now).collect(),
        };
        tasks.push(tokio::spawn(run_one(
            name.into(),
            Api::<Pod>::all(client.clone()),
            trim_pod,
            keep,
            ctx.clone(),
        )));
    }
    if !service_detectors.is_empty() {
        let (slices, slice_writer) = reflector::store::<EndpointSlice>();
        tasks.push(tokio::spawn(mirror(
            "endpointslices",
            Api::<EndpointSlice>::all(client.clone()),
            trim_slice,
            slice_writer,
            stop.clone(),
        )));
        let (store, writer) = reflector::store::<Service>();
        let keep = Services {
            writer,
            store,
            slices,
            pods: clients.caches.pods(),
            detect: move |b: &service::Backends<'_>, now| {
                all(&service_detectors, Object::Service(b), now).collect()
            },
        };
        tasks.push(tokio::spawn(run_one(
            "services".into(),
            Api::<Service>::all(client.clone()),
            trim_service,
            keep,
            ctx.clone(),
        )));
    }
    let deployment_detectors = on(&Watched::Deployments);
    if !deployment_detectors.is_empty() {
        let (replica_sets, rs_writer) = reflector::store::<ReplicaSet>();
        tasks.push(tokio::spawn(mirror(
            "replicasets",
            Api::<ReplicaSet>::all(client.clone()),
            trim_replica_set,
            rs_writer,
            stop.clone(),
        )));
        let (store, writer) = reflector::store::<Deployment>();
        let keep = Deployments {
            writer,
            store,
            replica_sets,
            detect: move |r: &rollout::Rollout<'_>, now| {
                all(&deployment_detectors, Object::Deployment(r), now).collect()
            },
        };
        tasks.push(tokio::spawn(run_one(
            "deployments".into(),
            Api::<Deployment>::all(client.clone()),
            trim_deployment,
            keep,
            ctx.clone(),
        )));
    }
    let node_detectors = on(&Watched::Nodes);
    if !node_detectors.is_empty() {
        let (census, writer) = reflector::store::<Node>();
        let s = strain.clone();
        let census_store = census.clone();
        let keep = Reflected {
            writer,
            store: census,
            detect: move |n: &Node, now| {
                let census = node::NodeCensus::of(census_store.state().iter().map(AsRef::as_ref));
                s.total.store(census.total, Ordering::Relaxed);
                s.under_pressure
                    .store(census.under_pressure, Ordering::Relaxed);
                all(&node_detectors, Object::Node(n), now).collect()
            },
        };
        tasks.push(tokio::spawn(run_one(
            "nodes".into(),
            Api::<Node>::all(client.clone()),
            trim_meta::<Node>,
            keep,
            ctx.clone(),
        )));
    }
    // namespaces are always watched: the opt-out check before every action
    // reads them from this cache (one watch, not one GET per action)
    let namespace_detectors = on(&Watched::Namespaces);
    let name = if namespace_detectors.is_empty() {
        "namespaces (cache only)"
    } else {
        "namespaces"
    };
    let (watch, threshold) = (
        cfg.namespaces.watch.clone(),
        cfg.nodes.strain_threshold_percent,
    );
    let s = strain.clone();
    let keep = Reflected::new(move |n: &Namespace, now| {
        if namespace_detectors.is_empty() {
            return Vec::new();
        }
        warn_if_strained(n, &watch, s.percent(), threshold, now);
        all(&namespace_detectors, Object::Namespace(n), now).collect()
    });
    clients.caches.set_namespaces(keep.store.clone());
    tasks.push(tokio::spawn(run_one(
        name.into(),
        Api::<Namespace>::all(client.clone()),
        trim_meta::<Namespace>,
        keep,
        ctx.clone(),
    )));

    // types that may not be installed
    let optional: Vec<Optional> = detectors
        .iter()
        .flat_map(|d| {
            d.watches()
                .into_iter()
                .filter(|w| matches!(w, Watched::Kind(_) | Watched::Resource(_)))
                .map(|watched| Optional {
                    detector: d.clone(),
                    watched,
                })
        })
        .collect();
    if !optional.is_empty() {
        let resources = Resources::new(client.clone());
        let mut pending = Vec::new();
        for o in optional {
            match o.lookup(&resources).await {
                Ok(Lookup::Served(res)) => tasks.push(ctx.spawn(&o, &res)),
                Ok(missing) => pending.push((o, Seen::of(&missing))),
                Err(e) => {
                    tracing::warn!(detector = %o.name(), error = %e, "Could not discover this detector's resource type; trying again later.");
                    pending.push((o, Seen::Failed(e.to_string())));
                }
            }
        }
        if !pending.is_empty() {
            // one line for every optional type the cluster lacks, not one each
            let (groups, types) = missing_summary(&pending);
            let every = if rediscover.is_zero() {
                "never: rediscovery is off".to_string()
            } else {
                format!(
                    "every {}",
                    receiver_core::duration::PromDuration(rediscover)
                )
            };
            if !groups.is_empty() || !types.is_empty() {
                tracing::info!(
                    not_installed = %groups.join(", "),
                    not_served = %types.join(", "),
                    "Optional API groups are not installed on this cluster (not_installed), or are without a watched type (not_served); their detectors start once they are (checked {every})."
                );
            }
            if !rediscover.is_zero() {
                tasks.push(tokio::spawn(rediscover_loop(
                    pending, resources, ctx, rediscover, stop,
                )));
            }
        }
    }
    tasks
}

/// A detector of a type the cluster may not serve.
#[derive(Debug, Clone)]
struct Optional {
    detector: Arc<dyn Detector>,
    /// `Watched::Kind` or `Watched::Resource`.
    watched: Watched,
}

impl Optional {
    fn name(&self) -> String {
        match &self.watched {
            Watched::Resource(rs) => format!("{}/{rs}", self.detector.name()),
            _ => self.detector.name().to_string(),
        }
    }

    /// `group/version` and the type within it, for the log.
    fn what(&self) -> (String, String) {
        match &self.watched {
            Watched::Kind(t) => (t.api_version(), t.kind.clone()),
            Watched::Resource(rs) => (rs.api_version(), rs.to_string()),
            other => (String::new(), format!("{other:?}")),
        }
    }

    async fn lookup(&self, resources: &Resources) -> Result<Lookup, crate::K8sError> {
        match &self.watched {
            Watched::Kind(t) => resources.lookup_kind(&t.group, &t.version, &t.kind).await,
            Watched::Resource(rs) => {
                resources
                    .lookup_plural(&rs.group, &rs.version, &rs.plural)
                    .await
            }
            _ => Ok(Lookup::NotInGroup),
        }
    }

    /// The type of the objects it sees, served as `res`.
    fn resource_type(&self, res: &Resolved) -> ResourceType {
        match &self.watched {
            Watched::Resource(rs) => rs.with_kind(&res.resource.kind),
            Watched::Kind(t) => t.clone(),
            _ => ResourceType::from_api_version(&res.resource.api_version, &res.resource.kind),
        }
    }
}

/// What the last discovery of an optional type said, so that only a change is logged.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    GroupNotInstalled,
    NotInGroup,
    Failed(String),
}

impl Seen {
    fn of(lookup: &Lookup) -> Seen {
        match lookup {
            Lookup::NotInGroup => Seen::NotInGroup,
            _ => Seen::GroupNotInstalled,
        }
    }
}

/// The group versions not installed, and the types missing from installed
/// ones, each once, sorted.
fn missing_summary(pending: &[(Optional, Seen)]) -> (Vec<String>, Vec<String>) {
    let mut groups = std::collections::BTreeSet::new();
    let mut types = std::collections::BTreeSet::new();
    for (o, seen) in pending {
        let (gv, t) = o.what();
        match seen {
            Seen::GroupNotInstalled => {
                groups.insert(gv);
            }
            Seen::NotInGroup => {
                types.insert(t);
            }
            Seen::Failed(_) => {}
        }
    }
    (groups.into_iter().collect(), types.into_iter().collect())
}

/// What every watch task needs besides its type.
#[derive(Clone)]
struct WatchContext {
    client: kube::Client,
    resync: Duration,
    resignal_after: Duration,
    queue: Arc<dyn SignalSink>,
    stop: stop_watch::Receiver<bool>,
    leader: Leadership,
}

impl WatchContext {
    /// Start the detector of `o`, served as `res`.
    fn spawn(&self, o: &Optional, res: &Resolved) -> tokio::task::JoinHandle<()> {
        let writer = Writer::new(res.resource.clone());
        let store = writer.as_reader();
        let api = Api::<DynamicObject>::all_with(self.client.clone(), &res.resource);
        let (detector, rt) = (o.detector.clone(), o.resource_type(res));
        let keep = Reflected {
            writer,
            store,
            detect: move |obj: &DynamicObject, now| {
                serde_json::to_value(obj)
                    .map(|v| detector.detect(Object::Dynamic(&v, &rt), now))
                    .unwrap_or_default()
            },
        };
        tokio::spawn(run_one(
            o.name(),
            api,
            trim_meta::<DynamicObject>,
            keep,
            self.clone(),
        ))
    }
}

/// Ask again, every `every`, about the optional types not served yet; start
/// each one's detector once it is. Logs only changes. Ends at `stop`, after
/// the detectors it started.
async fn rediscover_loop(
    mut pending: Vec<(Optional, Seen)>,
    resources: Resources,
    ctx: WatchContext,
    every: Duration,
    mut stop: stop_watch::Receiver<bool>,
) {
    let mut started = Vec::new();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !pending.is_empty() {
        tokio::select! {
            r = stop.changed() => if r.is_err() || *stop.borrow() { break },
            _ = tick.tick() => {}
        }
        let mut still = Vec::new();
        for (o, before) in pending {
            let now = match o.lookup(&resources).await {
                Ok(Lookup::Served(res)) => {
                    let (gv, _) = o.what();
                    tracing::info!(detector = %o.name(), api_version = %gv, "The API group is installed now; starting its detector.");
                    started.push(ctx.spawn(&o, &res));
                    continue;
                }
                Ok(missing) => Seen::of(&missing),
                Err(e) => Seen::Failed(e.to_string()),
            };
            if now != before {
                match &now {
                    Seen::Failed(e) => {
                        tracing::warn!(detector = %o.name(), error = %e, "Could not discover this detector's resource type; trying again later.")
                    }
                    Seen::GroupNotInstalled => {
                        tracing::info!(detector = %o.name(), api_version = %o.what().0, "The API group is not installed; the detector waits for it.")
                    }
                    Seen::NotInGroup => {
                        tracing::info!(detector = %o.name(), resource = %o.what().1, "The API group is installed without this type; the detector waits for it.")
                    }
                }
            }
            still.push((o, now));
        }
        pending = still;
    }
    if !pending.is_empty() || !started.is_empty() {
        // the started detectors stop on the same signal
        while !*stop.borrow() {
            if stop.changed().await.is_err() {
                break;
            }
        }
    }
    for t in started {
        let _ = t.await;
    }
}

/// While the cluster is strained, signal a few broken non-test pods for eviction each round.
async fn strain_relief(
    pods: Arc<PodViews>,
    strain: Arc<Strain>,
    cfg: Detectors,
    queue: Arc<dyn SignalSink>,
    mut stop: stop_watch::Receiver<bool>,
    leader: Leadership,
) {
    let mut tick = tokio::time::interval(cfg.strain_relief.every.get());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let threshold = cfg.nodes.strain_threshold_percent;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let percent = strain.percent();
        if percent < threshold || !leader.is_leader() {
            continue;
        }
        let now = Timestamp::now();
        let picks: Vec<Finding> = pods.with_all(|all| {
            strain::candidates(&all, &cfg.namespaces.watch, &cfg.pods, now)
                .into_iter()
                .take(cfg.strain_relief.max_per_run as usize)
                .collect()
        });
        if !picks.is_empty() {
            tracing::warn!(
                strain_percent = percent,
                pods = picks.len(),
                "The cluster is strained; signalling broken non-test pods for eviction to free room."
            );
        }
        for f in picks {
            if queue
                .send(f.to_signal(receiver_core::AlertStatus::Firing, now))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// New namespaces created while the cluster is strained get a log line with guidance.
fn warn_if_strained(
    ns: &Namespace,
    watched: &[String],
    percent: u32,
    threshold: u32,
    now: Timestamp,
) {
    let Some(created) = ns.metadata.creation_timestamp.as_ref().map(|t| t.0) else {
        return;
    };
    if percent < threshold || receiver_core::detect::age(now, created) > Duration::from_secs(60) {
        return;
    }
    let name = ns.name_any();
    if namespace::matches_any(watched, &name) {
        tracing::info!(namespace = %name, strain_percent = percent, "Test namespace created while the cluster is strained; expect slower scheduling. Consider fewer parallel test runs.");
    } else {
        tracing::warn!(namespace = %name, strain_percent = percent, "Namespace created while the cluster is strained ({percent}% of nodes under pressure); new workloads may not schedule. Free capacity or wait.");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;
    use receiver_core::duration::PromDuration;
    use serde_json::json;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn rs(n: u32, image: &str) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": format!("api-{n}"), "namespace": "shop",
                "labels": {"app": "api", "pod-template-hash": "abc"},
                "annotations": {"deployment.kubernetes.io/revision": n.to_string(),
                                "deployment.kubernetes.io/desired-replicas": "3"},
                "managedFields": [{"manager": "kube-controller-manager"}],
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "api",
                                     "uid": "d", "controller": true}]},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "api"}},
                     "template": {"metadata": {"labels": {"app": "api"}},
                                  "spec": {"containers": [{"name": "app", "image": image,
                                      "env": [{"name": "A", "value": "b"}], "args": ["--x"]}]}}},
            "status": {"replicas": 3}
        }))
        .unwrap()
    }

    #[test]
    fn trimmed_deployments_and_replica_sets_keep_what_the_rollouts_detector_reads() {
        let mut d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "api", "namespace": "shop", "uid": "d", "generation": 2,
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"paused": false, "selector": {"matchLabels": {"app": "api"}},
                     "template": {"spec": {"containers": [{"name": "app", "image": "api:2"}]}}},
            "status": {"observedGeneration": 2, "replicas": 4, "conditions": [
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                 "lastTransitionTime": t(0).to_string()}]}
        }))
        .unwrap();
        let (mut one, mut two) = (rs(1, "api:1"), rs(2, "api:2"));
        trim_deployment(&mut d);
        trim_replica_set(&mut one);
        trim_replica_set(&mut two);
        assert!(d.annotations().is_empty());
        assert_eq!(d.status.as_ref().unwrap().replicas, None);
        assert!(two.labels().is_empty() && two.managed_fields().is_empty());
        assert_eq!(
            two.annotations().keys().collect::<Vec<_>>(),
            ["deployment.kubernetes.io/revision"]
        );
        let c = &two.spec.as_ref().unwrap().template.as_ref().unwrap();
        let c = &c.spec.as_ref().unwrap().containers[0];
        assert_eq!(
            (c.name.as_str(), c.image.as_deref()),
            ("app", Some("api:2"))
        );
        assert!(c.env.is_none() && c.args.is_none());
        assert_eq!(controlled_by(&two), Some(("shop", "api")));
        // and the detector still finds the stuck rollout in what is kept
        let r = rollout::Rollout {
            deployment: &d,
            replica_sets: vec![&one, &two],
        };
        let f = rollout::examine(&r, t(60)).unwrap();
        assert_eq!(f.evidence.details["previousImage"], "api:1");
    }

    #[test]
    fn trimmed_services_and_slices_keep_what_the_services_detector_reads() {
        let mut svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop", "creationTimestamp": t(-3600).to_string()},
            "spec": {"selector": {"app": "web"}, "type": "ClusterIP", "clusterIP": "10.0.0.1",
                     "ports": [{"port": 80}]},
            "status": {"loadBalancer": {}}
        }))
        .unwrap();
        let mut slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "web-x", "namespace": "shop",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"port": 8080}],
            "endpoints": [{"addresses": ["10.244.0.1"], "nodeName": "w1",
                           "conditions": {"ready": true},
                           "targetRef": {"kind": "Pod", "name": "web-1"}}]
        }))
        .unwrap();
        trim_service(&mut svc);
        trim_slice(&mut slice);
        let spec = svc.spec.as_ref().unwrap();
        assert!(spec.cluster_ip.is_none() && spec.ports.is_none() && svc.status.is_none());
        assert!(slice.ports.is_none() && slice.endpoints[0].addresses.is_empty());
        let pod = PodView::of(
            &serde_json::from_value(json!({
                "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"}},
                "status": {"phase": "Running", "conditions": [
                    {"type": "Ready", "status": "False", "lastTransitionTime": t(-600).to_string()}]}
            }))
            .unwrap(),
        );
        let b = service::Backends {
            service: &svc,
            slices: vec![&slice],
            pods: vec![&pod],
        };
        // the kept endpoint is still ready: the Service serves
        let why = service::examine(&b, PromDuration::secs(60), t(0)).unwrap_err();
        assert!(why.contains("1 ready endpoints of 1"), "{why}");
        // without it, the kept selector still selects the unready pod
        let b = service::Backends {
            service: &svc,
            slices: Vec::new(),
            pods: vec![&pod],
        };
        assert!(service::examine(&b, PromDuration::secs(60), t(0)).is_ok());
    }
}
