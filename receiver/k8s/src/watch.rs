//! Detector watchers: kube-runtime watchers with trimmed reflector stores for
//! pods, nodes, namespaces, KubeVirt VMs and configured custom resources. Each
//! change is run through the pure detectors at once (low latency), and every
//! cached object again each `resync` (time-based conditions). Findings go
//! through an `Emitter` and into the detector lane of the work queue (alerts
//! have a lane of their own, so a burst here never turns Alertmanager away).
//!
//! Optional resource types (KubeVirt VMs, configured custom resources)
//! whose API group is not installed are named in one info line; discovery
//! asks again periodically and starts their detectors once they are served,
//! without a restart.

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
use receiver_core::detect::config::{CustomResourceDetector, VmDetector};
use receiver_core::detect::{
    Detectors, Emitter, Finding, ResourceSpec, custom, kubevirt, namespace, node, pod, strain,
};
use receiver_core::lanes::SignalSink;
use serde::de::DeserializeOwned;
use tokio::sync::watch as stop_watch;

use crate::Clients;
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
    queue: Arc<dyn SignalSink>,
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
    leader: stop_watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    let resync = cfg.resync.get();
    let strain = Arc::new(Strain::default());
    let client = clients.main.clone();

    if cfg.pods.enabled {
        let c = cfg.pods.clone();
        let (reader, writer) = reflector::store::<Pod>();
        clients.caches.set_pods(reader.clone());
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
    let (ns_reader, ns_writer) = reflector::store::<Namespace>();
    clients.caches.set_namespaces(ns_reader.clone());
    if cfg.namespaces.enabled {
        let c = cfg.namespaces.clone();
        let threshold = cfg.nodes.strain_threshold_percent;
        let s = strain.clone();
        let (reader, writer) = (ns_reader, ns_writer);
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
    } else {
        // no namespace detector: the watch still feeds the cache the
        // opt-out check reads before every action (one watch, not one GET
        // per action)
        tasks.push(tokio::spawn(run_one(
            "namespaces (cache only)".into(),
            Api::<Namespace>::all(client.clone()),
            ns_writer,
            ns_reader,
            trim_meta::<Namespace>,
            |_: &Namespace, _| Vec::new(),
            resync,
            resignal_after,
            queue.clone(),
            stop.clone(),
            leader.clone(),
        )));
    }
    let spawner = Spawner {
        client: client.clone(),
        resync,
        resignal_after,
        queue: queue.clone(),
        stop: stop.clone(),
        leader: leader.clone(),
    };
    let mut optional = Vec::new();
    if cfg.virtual_machines.enabled {
        optional.push(Optional::VirtualMachines(cfg.virtual_machines.clone()));
    }
    if cfg.custom_resources.enabled {
        for spec in &cfg.custom_resources.resources {
            if let Ok(rs) = ResourceSpec::parse(spec) {
                optional.push(Optional::Custom(rs, cfg.custom_resources.clone()));
            }
        }
    }
    if !optional.is_empty() {
        let resources = Resources::new(client.clone());
        let mut pending = Vec::new();
        for o in optional {
            match o.lookup(&resources).await {
                Ok(Lookup::Served(res)) => tasks.push(spawner.spawn(&o, &res)),
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
                    pending, resources, spawner, rediscover, stop,
                )));
            }
        }
    }
    tasks
}

/// A detector of a type the cluster may not serve.
#[derive(Debug, Clone)]
enum Optional {
    VirtualMachines(VmDetector),
    Custom(ResourceSpec, CustomResourceDetector),
}

impl Optional {
    fn name(&self) -> String {
        match self {
            Optional::VirtualMachines(_) => "virtual-machines".into(),
            Optional::Custom(rs, _) => format!("custom-resources/{rs}"),
        }
    }

    /// `group/version` and the type within it, for the log.
    fn what(&self) -> (String, String) {
        match self {
            Optional::VirtualMachines(_) => ("kubevirt.io/v1".into(), "VirtualMachine".into()),
            Optional::Custom(rs, _) => (rs.api_version(), rs.to_string()),
        }
    }

    async fn lookup(&self, resources: &Resources) -> Result<Lookup, crate::K8sError> {
        match self {
            Optional::VirtualMachines(_) => {
                resources
                    .lookup_kind("kubevirt.io", "v1", "VirtualMachine")
                    .await
            }
            Optional::Custom(rs, _) => {
                resources
                    .lookup_plural(&rs.group, &rs.version, &rs.plural)
                    .await
            }
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

/// A detector over dynamic objects.
type Detect = Box<dyn Fn(&DynamicObject, Timestamp) -> Vec<Finding> + Send>;

/// What every detector task needs besides its type.
#[derive(Clone)]
struct Spawner {
    client: kube::Client,
    resync: Duration,
    resignal_after: Duration,
    queue: Arc<dyn SignalSink>,
    stop: stop_watch::Receiver<bool>,
    leader: stop_watch::Receiver<bool>,
}

impl Spawner {
    /// Start the detector of `o`, served as `res`.
    fn spawn(&self, o: &Optional, res: &Resolved) -> tokio::task::JoinHandle<()> {
        let writer = Writer::new(res.resource.clone());
        let reader = writer.as_reader();
        let api = Api::<DynamicObject>::all_with(self.client.clone(), &res.resource);
        let detect: Detect = match o {
            Optional::VirtualMachines(c) => {
                let c = c.clone();
                Box::new(move |o: &DynamicObject, now| {
                    serde_json::to_value(o)
                        .map(|v| kubevirt::detect(&v, &c, now))
                        .unwrap_or_default()
                })
            }
            Optional::Custom(rs, c) => {
                let (c, rt) = (c.clone(), rs.with_kind(&res.resource.kind));
                Box::new(move |o: &DynamicObject, now| {
                    serde_json::to_value(o)
                        .map(|v| custom::detect(&v, &rt, &c, now))
                        .unwrap_or_default()
                })
            }
        };
        tokio::spawn(run_one(
            o.name(),
            api,
            writer,
            reader,
            trim_meta::<DynamicObject>,
            detect,
            self.resync,
            self.resignal_after,
            self.queue.clone(),
            self.stop.clone(),
            self.leader.clone(),
        ))
    }
}

/// Ask again, every `every`, about the optional types not served yet; start
/// each one's detector once it is. Logs only changes. Ends at `stop`, after
/// the detectors it started.
async fn rediscover_loop(
    mut pending: Vec<(Optional, Seen)>,
    resources: Resources,
    spawner: Spawner,
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
                    started.push(spawner.spawn(&o, &res));
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
    pods: Store<Pod>,
    strain: Arc<Strain>,
    cfg: Detectors,
    queue: Arc<dyn SignalSink>,
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
