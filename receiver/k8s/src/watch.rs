//! Detector watchers: kube-runtime watchers with trimmed reflector stores for
//! pods, nodes, namespaces, KubeVirt VMs and configured custom resources. Each
//! change is run through the pure detectors at once (low latency), and every
//! cached object again each `resync` (time-based conditions). Findings go
//! through an `Emitter` and into the same work queue as alerts.
//!
//! A resource type whose CRD is not installed is skipped with one log line.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, PodSpec};
use kube::api::DynamicObject;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, reflector::store::Writer};
use kube::{Api, Resource, ResourceExt};
use receiver_core::Signal;
use receiver_core::detect::{
    Detectors, Emitter, Finding, ResourceSpec, custom, kubevirt, namespace, node, pod, strain,
};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch as stop_watch};

use crate::Clients;
use crate::resources::Resources;

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

/// Run detection over one watched type until `stop` flips or the queue closes.
#[allow(clippy::too_many_arguments)]
async fn run_one<K, D, T>(
    what: String,
    api: Api<K>,
    writer: Writer<K>,
    store: Store<K>,
    trim: T,
    detect: D,
    resync: Duration,
    resignal_after: Duration,
    queue: mpsc::Sender<Signal>,
    mut stop: stop_watch::Receiver<bool>,
    leader: stop_watch::Receiver<bool>,
) where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync,
    D: Fn(&K, Timestamp) -> Vec<Finding> + Send,
    T: FnMut(&mut K) + Send + 'static,
{
    let stream = reflector::reflector(
        writer,
        watcher::watcher(api, watcher::Config::default()).modify(trim),
    )
    .default_backoff();
    futures::pin_mut!(stream);
    let mut emitter = Emitter::new(resignal_after);
    let mut tick = tokio::time::interval(resync);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let key = |o: &K| format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any());
    tracing::info!(detector = %what, "Detector watching.");
    loop {
        let signals = tokio::select! {
            _ = stop.changed() => break,
            ev = stream.next() => match ev {
                None => break,
                // a follower keeps its cache warm but signals nothing; when it becomes
                // leader its emitter is empty, so the next resync signals everything
                Some(Ok(_)) if !*leader.borrow() => {
                    emitter = Emitter::new(resignal_after);
                    Vec::new()
                }
                Some(Ok(Event::Apply(o) | Event::InitApply(o))) => {
                    emitter.observe(&key(&o), detect(&o, Timestamp::now()), Timestamp::now())
                }
                Some(Ok(Event::Delete(o))) => emitter.forget(&key(&o), Timestamp::now()),
                Some(Ok(Event::Init | Event::InitDone)) => Vec::new(),
                Some(Err(e)) => {
                    tracing::warn!(detector = %what, error = %e, "Watch error; retrying with backoff.");
                    Vec::new()
                }
            },
            _ = tick.tick() => {
                if !*leader.borrow() {
                    continue;
                }
                let now = Timestamp::now();
                let mut out = Vec::new();
                for o in store.state() {
                    out.extend(emitter.observe(&key(&o), detect(&o, now), now));
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
/// They stop when `stop` flips to true (or the queue closes).
pub async fn start(
    clients: &Clients,
    cfg: &Detectors,
    resignal_after: Duration,
    strain_eviction: bool,
    queue: mpsc::Sender<Signal>,
    stop: stop_watch::Receiver<bool>,
    leader: stop_watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    let resync = cfg.resync.get();
    let strain = Arc::new(Strain::default());
    let client = clients.main.clone();

    if cfg.pods.enabled {
        let c = cfg.pods.clone();
        let (reader, writer) = reflector::store::<Pod>();
        if strain_eviction && cfg.nodes.enabled {
            tasks.push(tokio::spawn(strain_relief(
                reader.clone(),
                strain.clone(),
                cfg.clone(),
                queue.clone(),
                stop.clone(),
                leader.clone(),
            )));
        }
        tasks.push(tokio::spawn(run_one(
            "pods".into(),
            Api::<Pod>::all(client.clone()),
            writer,
            reader,
            trim_pod,
            move |p: &Pod, now| pod::detect(p, &c, now),
            resync,
            resignal_after,
            queue.clone(),
            stop.clone(),
            leader.clone(),
        )));
    }
    if cfg.nodes.enabled {
        let c = cfg.nodes.clone();
        let (reader, writer) = reflector::store::<Node>();
        let census_store = reader.clone();
        let s = strain.clone();
        tasks.push(tokio::spawn(run_one(
            "nodes".into(),
            Api::<Node>::all(client.clone()),
            writer,
            reader,
            trim_meta::<Node>,
            move |n: &Node, now| {
                let census = node::NodeCensus::of(census_store.state().iter().map(AsRef::as_ref));
                s.total.store(census.total, Ordering::Relaxed);
                s.under_pressure
                    .store(census.under_pressure, Ordering::Relaxed);
                node::detect(n, &c, now)
            },
            resync,
            resignal_after,
            queue.clone(),
            stop.clone(),
            leader.clone(),
        )));
    }
    if cfg.namespaces.enabled {
        let c = cfg.namespaces.clone();
        let threshold = cfg.nodes.strain_threshold_percent;
        let s = strain.clone();
        let (reader, writer) = reflector::store::<Namespace>();
        tasks.push(tokio::spawn(run_one(
            "namespaces".into(),
            Api::<Namespace>::all(client.clone()),
            writer,
            reader,
            trim_meta::<Namespace>,
            move |n: &Namespace, now| {
                warn_if_strained(n, &c.watch, s.percent(), threshold, now);
                namespace::detect(n, &c, now)
            },
            resync,
            resignal_after,
            queue.clone(),
            stop.clone(),
            leader.clone(),
        )));
    }
    let resources = Resources::new(client.clone());
    if cfg.virtual_machines.enabled {
        match resources
            .by_kind("kubevirt.io", "v1", "VirtualMachine")
            .await
        {
            Ok(Some(res)) => {
                let c = cfg.virtual_machines.clone();
                let writer = Writer::new(res.resource.clone());
                let reader = writer.as_reader();
                tasks.push(tokio::spawn(run_one(
                    "virtual-machines".into(),
                    Api::<DynamicObject>::all_with(client.clone(), &res.resource),
                    writer,
                    reader,
                    trim_meta::<DynamicObject>,
                    move |o: &DynamicObject, now| {
                        serde_json::to_value(o)
                            .map(|v| kubevirt::detect(&v, &c, now))
                            .unwrap_or_default()
                    },
                    resync,
                    resignal_after,
                    queue.clone(),
                    stop.clone(),
                    leader.clone(),
                )));
            }
            Ok(None) => tracing::info!(
                "KubeVirt VirtualMachines are not served by this cluster; the VM detector is skipped."
            ),
            Err(e) => {
                tracing::warn!(error = %e, "Could not discover KubeVirt VirtualMachines; the VM detector is skipped.")
            }
        }
    }
    if cfg.custom_resources.enabled {
        for spec in &cfg.custom_resources.resources {
            let Ok(rs) = ResourceSpec::parse(spec) else {
                continue;
            };
            match resources
                .by_plural(&rs.group, &rs.version, &rs.plural)
                .await
            {
                Ok(Some(res)) => {
                    let c = cfg.custom_resources.clone();
                    let rt = rs.with_kind(&res.resource.kind);
                    let writer = Writer::new(res.resource.clone());
                    let reader = writer.as_reader();
                    tasks.push(tokio::spawn(run_one(
                        format!("custom-resources/{rs}"),
                        Api::<DynamicObject>::all_with(client.clone(), &res.resource),
                        writer,
                        reader,
                        trim_meta::<DynamicObject>,
                        move |o: &DynamicObject, now| {
                            serde_json::to_value(o)
                                .map(|v| custom::detect(&v, &rt, &c, now))
                                .unwrap_or_default()
                        },
                        resync,
                        resignal_after,
                        queue.clone(),
                        stop.clone(),
                        leader.clone(),
                    )));
                }
                Ok(None) => {
                    tracing::info!(resource = %rs, "Resource type not served by this cluster (CRD not installed); skipped.")
                }
                Err(e) => {
                    tracing::warn!(resource = %rs, error = %e, "Could not discover resource type; skipped.")
                }
            }
        }
    }
    tasks
}

/// While the cluster is strained, signal a few broken non-test pods for eviction each round.
async fn strain_relief(
    pods: Store<Pod>,
    strain: Arc<Strain>,
    cfg: Detectors,
    queue: mpsc::Sender<Signal>,
    mut stop: stop_watch::Receiver<bool>,
    leader: stop_watch::Receiver<bool>,
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
        if percent < threshold || !*leader.borrow() {
            continue;
        }
        let now = Timestamp::now();
        let state = pods.state();
        let refs: Vec<&Pod> = state.iter().map(AsRef::as_ref).collect();
        let picks: Vec<Finding> = strain::candidates(&refs, &cfg.namespaces.watch, &cfg.pods, now)
            .into_iter()
            .take(cfg.strain_relief.max_per_run as usize)
            .collect();
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
