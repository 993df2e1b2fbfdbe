//! The live-fact source: before any action the target is read again, its owner
//! resolved (pod → ReplicaSet → Deployment, StatefulSet, DaemonSet, Job, or any
//! other controller by its ownerReference kind), its namespace read for the
//! opt-out, and the triggering condition re-checked. Alerts are hints; the
//! cluster is the truth.

use async_trait::async_trait;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use kube::Api;
use kube::api::{DynamicObject, ListParams};
use receiver_core::act::{ClusterFacts, LiveState};
use receiver_core::detect::pod_view::PodView;
use receiver_core::detect::{node, pod, rollout, service};
use receiver_core::recheck::{self, Revision};
use receiver_core::target::known_kind;
use receiver_core::{
    ActError, FactSource, Facts, ObjectMeta, Plan, Remediation, TargetKind, WorkloadRef,
};

use crate::resources::Resources;
use crate::{Clients, K8sError};

/// Reads the live cluster for the guard and the pipeline.
#[derive(Debug, Clone)]
pub struct KubeFacts {
    clients: Clients,
    resources: Resources,
    /// The detectors' rules, for re-checking a cleanup on the live object.
    detectors: std::sync::Arc<receiver_core::detect::Detectors>,
}

fn meta_of(m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        labels: m.labels.clone().unwrap_or_default(),
        annotations: m.annotations.clone().unwrap_or_default(),
    }
}

fn controller_of(refs: Option<&Vec<OwnerReference>>) -> Option<&OwnerReference> {
    let refs = refs?;
    refs.iter()
        .find(|r| r.controller == Some(true))
        .or_else(|| refs.first())
}

impl KubeFacts {
    /// A fact source over `clients`.
    pub fn new(clients: Clients) -> KubeFacts {
        let resources = Resources::new(clients.main.clone());
        KubeFacts {
            clients,
            resources,
            detectors: std::sync::Arc::new(receiver_core::detect::Detectors::for_profile(
                receiver_core::detect::Profile::Production,
            )),
        }
    }

    /// Re-check cleanups by `detectors`' rules (staleness, stuck terminating).
    pub fn with_detectors(mut self, detectors: receiver_core::detect::Detectors) -> KubeFacts {
        self.detectors = std::sync::Arc::new(detectors);
        self
    }

    /// The workload that owns `pod`, following a ReplicaSet to its Deployment.
    pub async fn owner_of(&self, pod: &Pod) -> Result<Option<WorkloadRef>, K8sError> {
        let ns = pod.metadata.namespace.clone();
        let Some(r) = controller_of(pod.metadata.owner_references.as_ref()) else {
            return Ok(None);
        };
        let direct = WorkloadRef {
            kind: r.kind.clone(),
            namespace: ns.clone(),
            name: r.name.clone(),
        };
        if r.kind != "ReplicaSet" {
            return Ok(Some(direct));
        }
        let rss: Api<ReplicaSet> = Api::namespaced(
            self.clients.main.clone(),
            ns.as_deref().unwrap_or("default"),
        );
        let Some(rs) = rss.get_opt(&r.name).await? else {
            return Ok(Some(direct));
        };
        // a namesake created since is not the pod's owner: its owner is not
        // the pod's workload either
        if rs.metadata.uid.as_deref() != Some(r.uid.as_str()) {
            return Ok(Some(direct));
        }
        Ok(Some(
            controller_of(rs.metadata.owner_references.as_ref())
                .map(|o| WorkloadRef {
                    kind: o.kind.clone(),
                    namespace: ns,
                    name: o.name.clone(),
                })
                .unwrap_or(direct),
        ))
    }

    /// Every object up the chain of controllers from `refs` (an object's
    /// ownerReferences) in namespace `ns`, nearest first, at most 5 levels.
    /// An owner that no longer exists or whose type is not served ends the
    /// chain; an owner heal8s may not read is an error (the opt-out could
    /// not be checked).
    pub async fn owner_chain(
        &self,
        ns: Option<&str>,
        refs: Option<&Vec<OwnerReference>>,
    ) -> Result<Vec<(String, ObjectMeta)>, K8sError> {
        Ok(self
            .owner_chain_with_refs(ns, refs)
            .await?
            .into_iter()
            .map(|(name, meta, _)| (name, meta))
            .collect())
    }

    /// `owner_chain`, with each owner's own ownerReferences as read.
    async fn owner_chain_with_refs(
        &self,
        ns: Option<&str>,
        refs: Option<&Vec<OwnerReference>>,
    ) -> Result<Vec<(String, ObjectMeta, Option<Vec<OwnerReference>>)>, K8sError> {
        let mut out = Vec::new();
        let mut refs = refs.cloned();
        for _ in 0..5 {
            let Some(r) = controller_of(refs.as_ref()).cloned() else {
                break;
            };
            let rt = receiver_core::target::ResourceType::from_api_version(&r.api_version, &r.kind);
            let Some(res) = self
                .resources
                .by_kind(&rt.group, &rt.version, &rt.kind)
                .await?
            else {
                break;
            };
            let api: Api<DynamicObject> = match (ns, res.namespaced) {
                (Some(ns), true) => {
                    Api::namespaced_with(self.clients.main.clone(), ns, &res.resource)
                }
                _ => Api::all_with(self.clients.main.clone(), &res.resource),
            };
            let Some(o) = api.get_opt(&r.name).await? else {
                break;
            };
            if o.metadata.uid.as_deref().is_some_and(|u| u != r.uid) && !r.uid.is_empty() {
                // a namesake, not the owner
                break;
            }
            out.push((
                format!("{} {}/{}", r.kind, ns.unwrap_or("-"), r.name),
                meta_of(&o.metadata),
                o.metadata.owner_references.clone(),
            ));
            refs = o.metadata.owner_references.clone();
        }
        Ok(out)
    }

    /// An annotation of a live workload (Deployment, StatefulSet, DaemonSet,
    /// ReplicaSet, HorizontalPodAutoscaler, Job, CronJob); `None` when the
    /// object or the annotation is absent.
    pub async fn workload_annotation(
        &self,
        w: &WorkloadRef,
        key: &str,
    ) -> Result<Option<String>, K8sError> {
        // the table's kinds outside the core group (not a node owning a mirror pod)
        let Some(k) = known_kind(&w.kind).filter(|k| !k.group.is_empty()) else {
            return Ok(None);
        };
        let Some(res) = self.resources.by_kind(k.group, k.version, k.kind).await? else {
            return Ok(None);
        };
        let api: Api<DynamicObject> = match (&w.namespace, res.namespaced) {
            (Some(ns), true) => Api::namespaced_with(self.clients.main.clone(), ns, &res.resource),
            _ => Api::all_with(self.clients.main.clone(), &res.resource),
        };
        Ok(api
            .get_opt(&w.name)
            .await?
            .and_then(|o| o.metadata.annotations)
            .and_then(|a| a.get(key).cloned()))
    }

    /// The image `container` had in a Deployment's latest earlier revision
    /// that ran a different image: the last good one before a bad release.
    pub async fn previous_image(
        &self,
        w: &WorkloadRef,
        container: Option<&str>,
    ) -> Result<Option<String>, K8sError> {
        let revisions = self.revisions(w, container).await?;
        Ok(recheck::previous_image(&revisions).map(str::to_string))
    }

    /// A Deployment's revisions (its ReplicaSets), with `container`'s image in
    /// each (the only container when `None`); empty for other kinds.
    async fn revisions(
        &self,
        w: &WorkloadRef,
        container: Option<&str>,
    ) -> Result<Vec<Revision>, K8sError> {
        if w.kind != "Deployment" {
            return Ok(Vec::new());
        }
        let ns = w.namespace.as_deref().unwrap_or("default");
        let rss: Api<ReplicaSet> = Api::namespaced(self.clients.main.clone(), ns);
        let mut revisions = Vec::new();
        for rs in rss.list(&ListParams::default()).await?.items {
            let owned = controller_of(rs.metadata.owner_references.as_ref())
                .is_some_and(|o| o.kind == "Deployment" && o.name == w.name);
            let revision = rs
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("deployment.kubernetes.io/revision"))
                .and_then(|r| r.parse::<u64>().ok());
            let created = rs.metadata.creation_timestamp.as_ref().map(|c| c.0);
            let containers = rs
                .spec
                .and_then(|s| s.template)
                .and_then(|t| t.spec)
                .map(|s| s.containers)
                .unwrap_or_default();
            let image = match container {
                Some(c) => containers.iter().find(|x| x.name == c),
                None if containers.len() == 1 => containers.first(),
                None => None,
            }
            .and_then(|c| c.image.clone());
            if let (true, Some(number), Some(image)) = (owned, revision, image) {
                revisions.push(Revision {
                    number,
                    image,
                    created,
                });
            }
        }
        Ok(revisions)
    }

    /// Whether the evidence a declarative fix depends on is still in the
    /// cluster (see `receiver_core::recheck`): an OOM kill of the container for
    /// bump-memory (on the pod, or on any pod of a workload target), an HPA at
    /// its ceiling for scale-up, a Deployment's recent rollout with an earlier
    /// image for rollback-image. `pod` or `obj` is the live target, `owner`
    /// a pod's owning workload.
    async fn declarative_state(
        &self,
        plan: &Plan,
        t: &receiver_core::Target,
        pod: Option<&Pod>,
        obj: Option<&DynamicObject>,
        owner: Option<&WorkloadRef>,
    ) -> Result<LiveState, K8sError> {
        let ns = t.namespace.as_deref().unwrap_or("default");
        let container = t.container.as_deref();
        let what = format!("{} {ns}/{}", t.kind.kind_name(), t.name);
        let exists = LiveState::Holds(format!("{t} exists"));
        Ok(match (&plan.remediation, &t.kind) {
            (Remediation::BumpMemory(_), TargetKind::Pod) => {
                pod.map_or(exists, |p| recheck::oom_killed(p, container))
            }
            (
                Remediation::BumpMemory(_),
                TargetKind::Deployment | TargetKind::StatefulSet | TargetKind::DaemonSet,
            ) => {
                let selector = obj
                    .and_then(|o| {
                        serde_json::from_value::<LabelSelector>(o.data["spec"]["selector"].clone())
                            .ok()
                    })
                    .and_then(|s| recheck::selector_string(&s));
                match selector {
                    None => LiveState::Cleared(format!(
                        "{what} has no pod selector heal8s can read, so no pod shows an OOM kill"
                    )),
                    Some(sel) => {
                        let api: Api<Pod> = Api::namespaced(self.clients.main.clone(), ns);
                        let pods = api.list(&ListParams::default().labels(&sel)).await?.items;
                        recheck::oom_killed_in(&pods, container, &what)
                    }
                }
            }
            (Remediation::ScaleUp(_), TargetKind::HorizontalPodAutoscaler) => {
                let hpa = obj.and_then(|o| {
                    serde_json::from_value::<HorizontalPodAutoscaler>(serde_json::json!({
                        "apiVersion": <HorizontalPodAutoscaler as k8s_openapi::Resource>::API_VERSION,
                        "kind": "HorizontalPodAutoscaler",
                        "metadata": o.metadata,
                        "spec": o.data["spec"],
                        "status": o.data["status"],
                    }))
                    .ok()
                });
                match hpa {
                    Some(h) => recheck::hpa_at_ceiling(&h),
                    None => LiveState::Cleared(format!(
                        "{what} could not be read as an autoscaling/v2 HPA; its replicas are unknown"
                    )),
                }
            }
            (Remediation::RollbackImage(p), _) => {
                let deployment = match t.kind {
                    TargetKind::Deployment => Some(WorkloadRef {
                        kind: "Deployment".into(),
                        namespace: Some(ns.to_string()),
                        name: t.name.clone(),
                    }),
                    TargetKind::Pod => owner.filter(|w| w.kind == "Deployment").cloned(),
                    _ => None,
                };
                match deployment {
                    // heal8s reads only Deployments' histories; the executor says so for the rest
                    None => exists,
                    Some(w) => {
                        let revisions = self.revisions(&w, container).await?;
                        recheck::rollout_is_recent(
                            &revisions,
                            plan.trigger.first_seen,
                            p.max_rollout_age,
                            &format!("Deployment {ns}/{}", w.name),
                        )
                    }
                }
            }
            _ => exists,
        })
    }

    /// The live re-check of the services and rollouts detectors' signals
    /// (by name, whoever sent them) on their target `o`, read with what the
    /// detector read beside it: a Service's EndpointSlices and pods, a
    /// Deployment's ReplicaSets. `None` for other signals.
    async fn detector_state(
        &self,
        plan: &Plan,
        t: &receiver_core::Target,
        o: &DynamicObject,
        now: Timestamp,
    ) -> Result<Option<LiveState>, K8sError> {
        let ns = t.namespace.as_deref().unwrap_or("default");
        let unreadable = |want: &str, e: serde_json::Error| {
            LiveState::Cleared(format!("{t} could not be read as {want}: {e}"))
        };
        Ok(Some(match plan.trigger.name.as_str() {
            service::SIGNAL => {
                if t.kind != TargetKind::Custom(service::service_type()) {
                    return Ok(Some(LiveState::Cleared(format!(
                        "{} is about a Service; {t} is not one",
                        service::SIGNAL
                    ))));
                }
                let svc = match serde_json::to_value(o).and_then(serde_json::from_value::<Service>)
                {
                    Ok(s) => s,
                    Err(e) => return Ok(Some(unreadable("a v1 Service", e))),
                };
                let slices: Api<EndpointSlice> = Api::namespaced(self.clients.main.clone(), ns);
                let slices = slices
                    .list(&ListParams::default().labels(&format!(
                        "{}={}",
                        service::SERVICE_NAME_LABEL,
                        t.name
                    )))
                    .await?
                    .items;
                let selector: Vec<String> = svc
                    .spec
                    .as_ref()
                    .and_then(|s| s.selector.as_ref())
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let pods = if selector.is_empty() {
                    Vec::new()
                } else {
                    let api: Api<Pod> = Api::namespaced(self.clients.main.clone(), ns);
                    api.list(&ListParams::default().labels(&selector.join(",")))
                        .await?
                        .items
                };
                let views: Vec<PodView> = pods.iter().map(PodView::of).collect();
                recheck::service_state(
                    &service::Backends {
                        service: &svc,
                        slices: slices.iter().collect(),
                        pods: views.iter().collect(),
                    },
                    self.detectors.services.after,
                    now,
                )
            }
            rollout::SIGNAL => {
                if t.kind != TargetKind::Deployment {
                    return Ok(Some(LiveState::Cleared(format!(
                        "{} is about a Deployment; {t} is not one",
                        rollout::SIGNAL
                    ))));
                }
                let d = match serde_json::to_value(o).and_then(serde_json::from_value::<Deployment>)
                {
                    Ok(d) => d,
                    Err(e) => return Ok(Some(unreadable("an apps/v1 Deployment", e))),
                };
                let rss: Api<ReplicaSet> = Api::namespaced(self.clients.main.clone(), ns);
                let rss = rss.list(&ListParams::default()).await?.items;
                recheck::rollout_state(
                    &rollout::Rollout {
                        deployment: &d,
                        replica_sets: rss.iter().collect(),
                    },
                    now,
                )
            }
            _ => return Ok(None),
        }))
    }

    /// Facts for a pull request body, read live: a pod container's restarts
    /// and last termination (an OOM kill with its time), or an HPA's replica
    /// counts and since when it has been held at its maximum.
    pub async fn evidence(&self, target: &receiver_core::Target) -> Result<Vec<String>, K8sError> {
        let ns = target.namespace.as_deref().unwrap_or("default");
        let mut out = Vec::new();
        match target.kind {
            TargetKind::Pod => {
                let api: Api<Pod> = Api::namespaced(self.clients.main.clone(), ns);
                let Some(p) = api.get_opt(&target.name).await? else {
                    return Ok(out);
                };
                let statuses = p
                    .status
                    .and_then(|s| s.container_statuses)
                    .unwrap_or_default();
                let status = match &target.container {
                    Some(c) => statuses.iter().find(|s| &s.name == c),
                    None if statuses.len() == 1 => statuses.first(),
                    None => None,
                };
                if let Some(st) = status {
                    out.push(format!("restarts: {}", st.restart_count));
                    if let Some(t) = st.last_state.as_ref().and_then(|l| l.terminated.as_ref()) {
                        let at = t
                            .finished_at
                            .as_ref()
                            .map(|f| f.0.to_string())
                            .unwrap_or_else(|| "an unknown time".into());
                        match t.reason.as_deref() {
                            Some("OOMKilled") => {
                                out.push(format!("last OOM kill: {at} (exit code {})", t.exit_code))
                            }
                            Some(r) => out.push(format!(
                                "last termination: {r} at {at} (exit code {})",
                                t.exit_code
                            )),
                            None => {}
                        }
                    }
                }
            }
            TargetKind::HorizontalPodAutoscaler => {
                let hpa = TargetKind::HorizontalPodAutoscaler.resource_type();
                let Some(res) = self
                    .resources
                    .by_kind(&hpa.group, &hpa.version, &hpa.kind)
                    .await?
                else {
                    return Ok(out);
                };
                let api: Api<DynamicObject> =
                    Api::namespaced_with(self.clients.main.clone(), ns, &res.resource);
                let Some(h) = api.get_opt(&target.name).await? else {
                    return Ok(out);
                };
                let spec = &h.data["spec"];
                let status = &h.data["status"];
                if let (Some(cur), Some(max)) = (
                    status["currentReplicas"].as_i64(),
                    spec["maxReplicas"].as_i64(),
                ) {
                    out.push(format!("replicas: {cur} of maxReplicas {max}"));
                }
                let limited = status["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|c| {
                        c["type"] == "ScalingLimited"
                            && c["status"] == "True"
                            && c["reason"] == "TooManyReplicas"
                    });
                if let Some(c) = limited
                    && let Some(since) = c["lastTransitionTime"].as_str()
                {
                    out.push(format!("held at maxReplicas since {since}"));
                }
            }
            _ => {}
        }
        Ok(out)
    }

    async fn namespace_meta(&self, ns: Option<&str>) -> Result<Option<ObjectMeta>, K8sError> {
        let Some(ns) = ns else { return Ok(None) };
        // the namespace watch's copy when it holds one (its labels and
        // annotations are what the opt-out reads); else the API server
        if let Some(Some(n)) = self.clients.caches.namespace(ns) {
            return Ok(Some(meta_of(&n.metadata)));
        }
        let api: Api<Namespace> = Api::all(self.clients.main.clone());
        Ok(api.get_opt(ns).await?.map(|n| meta_of(&n.metadata)))
    }

    async fn node_census(&self) -> Result<ClusterFacts, K8sError> {
        let api: Api<Node> = Api::all(self.clients.main.clone());
        let nodes = api.list(&ListParams::default()).await?;
        let (total, down, held) = node::breaker_census(&nodes.items);
        Ok(ClusterFacts {
            nodes_total: total,
            nodes_unhealthy: down,
            nodes_in_remediation: held,
        })
    }

    async fn facts_inner(&self, plan: &Plan) -> Result<Facts, K8sError> {
        let Some(t) = &plan.target else {
            return Ok(Facts::unknown());
        };
        let now = Timestamp::now();
        let uid_differs = |uid: Option<&String>| matches!((&t.uid, uid), (Some(want), Some(have)) if want != have);
        let mut facts = Facts::default();
        match &t.kind {
            TargetKind::Pod => {
                let ns = t.namespace.as_deref().unwrap_or("default");
                let api: Api<Pod> = Api::namespaced(self.clients.main.clone(), ns);
                let Some(p) = api.get_opt(&t.name).await? else {
                    facts.state = LiveState::Gone(format!("pod {ns}/{} no longer exists", t.name));
                    return Ok(facts);
                };
                if uid_differs(p.metadata.uid.as_ref()) {
                    facts.state = LiveState::Gone(format!(
                        "pod {ns}/{} was replaced by another with the same name",
                        t.name
                    ));
                    return Ok(facts);
                }
                facts.object = Some(meta_of(&p.metadata));
                facts.live = serde_json::to_value(&p).ok();
                let chain = self
                    .owner_chain_with_refs(Some(ns), p.metadata.owner_references.as_ref())
                    .await?;
                // the owning workload, from the chain just read: a
                // ReplicaSet's own controller (its Deployment), read once
                let direct = controller_of(p.metadata.owner_references.as_ref());
                facts.owner = match (direct, chain.first()) {
                    (Some(r), Some((_, _, rs_refs))) if r.kind == "ReplicaSet" => {
                        Some(controller_of(rs_refs.as_ref()).map_or_else(
                            || (r.kind.clone(), r.name.clone()),
                            |o| (o.kind.clone(), o.name.clone()),
                        ))
                        .map(|(kind, name)| WorkloadRef {
                            kind,
                            namespace: p.metadata.namespace.clone(),
                            name,
                        })
                    }
                    _ => self.owner_of(&p).await?,
                };
                facts.owners = chain
                    .into_iter()
                    .map(|(name, meta, _)| (name, meta))
                    .collect();
                facts.namespace = self.namespace_meta(Some(ns)).await?;
                facts.state = if plan.kind().is_declarative() {
                    self.declarative_state(plan, t, Some(&p), None, facts.owner.as_ref())
                        .await?
                } else {
                    match pod::still_broken(&p, now) {
                        Some(why) => LiveState::Holds(why),
                        None => LiveState::Cleared(format!(
                            "pod {ns}/{} is healthy now; nothing to do",
                            t.name
                        )),
                    }
                };
            }
            TargetKind::Node => {
                let api: Api<Node> = Api::all(self.clients.main.clone());
                let Some(n) = api.get_opt(&t.name).await? else {
                    facts.state = LiveState::Gone(format!("node {} no longer exists", t.name));
                    return Ok(facts);
                };
                facts.object = Some(meta_of(&n.metadata));
                facts.live = serde_json::to_value(&n).ok();
                facts.cluster = Some(self.node_census().await?);
                facts.state = recheck::node_state(&n, plan.kind().is_mutating());
            }
            TargetKind::Namespace => {
                let api: Api<Namespace> = Api::all(self.clients.main.clone());
                let Some(n) = api.get_opt(&t.name).await? else {
                    facts.state = LiveState::Gone(format!("namespace {} no longer exists", t.name));
                    return Ok(facts);
                };
                if uid_differs(n.metadata.uid.as_ref()) {
                    facts.state = LiveState::Gone(format!("namespace {} was recreated", t.name));
                    return Ok(facts);
                }
                facts.object = Some(meta_of(&n.metadata));
                facts.live = serde_json::to_value(&n).ok();
                facts.namespace = facts.object.clone();
                let min_age = match &plan.remediation {
                    Remediation::DeleteNamespace(p) => Some(p.min_age),
                    _ => None,
                };
                facts.state = recheck::namespace_state(&n, min_age, now);
            }
            kind => {
                let receiver_core::target::ResourceType {
                    group,
                    version,
                    kind: kind_name,
                } = kind.resource_type();
                let Some(res) = self.resources.by_kind(&group, &version, &kind_name).await? else {
                    facts.state = LiveState::Gone(format!(
                        "{kind_name} ({group}/{version}) is not served by this cluster"
                    ));
                    return Ok(facts);
                };
                facts.resource = Some(receiver_core::ServedType {
                    plural: res.resource.plural.clone(),
                    namespaced: res.namespaced,
                });
                // a cluster-scoped object is in no namespace, whatever the signal says
                let ns = t.namespace.as_deref().filter(|_| res.namespaced);
                let api: Api<DynamicObject> = match ns {
                    Some(ns) => Api::namespaced_with(self.clients.main.clone(), ns, &res.resource),
                    None => Api::all_with(self.clients.main.clone(), &res.resource),
                };
                let Some(o) = api.get_opt(&t.name).await? else {
                    facts.state = LiveState::Gone(format!("{} no longer exists", t));
                    return Ok(facts);
                };
                if uid_differs(o.metadata.uid.as_ref()) {
                    facts.state =
                        LiveState::Gone(format!("{t} was replaced by another with the same name"));
                    return Ok(facts);
                }
                facts.object = Some(meta_of(&o.metadata));
                facts.live = serde_json::to_value(&o).ok();
                facts.owners = self
                    .owner_chain(ns, o.metadata.owner_references.as_ref())
                    .await?;
                facts.namespace = self.namespace_meta(ns).await?;
                let detected = self.detector_state(plan, t, &o, now).await?;
                facts.state = if let Some(s) = detected.filter(|s| {
                    // a rule that no longer holds ends it; one that holds
                    // still has a declarative fix's own evidence to pass
                    !matches!(s, LiveState::Holds(_)) || !plan.kind().is_declarative()
                }) {
                    s
                } else if plan.kind().is_declarative() {
                    self.declarative_state(plan, t, None, Some(&o), None)
                        .await?
                } else if let (Remediation::CleanupResource(_), TargetKind::Custom(rt)) =
                    (&plan.remediation, kind)
                {
                    let value = serde_json::to_value(&o).unwrap_or_default();
                    receiver_core::recheck::cleanup_state(&value, rt, &self.detectors, now)
                } else {
                    LiveState::Holds(format!("{t} exists"))
                };
            }
        }
        Ok(facts)
    }
}

#[async_trait]
impl FactSource for KubeFacts {
    async fn facts(&self, plan: &Plan) -> Result<Facts, ActError> {
        self.facts_inner(plan).await.map_err(ActError::from)
    }

    async fn cluster(&self) -> Option<ClusterFacts> {
        self.node_census().await.ok()
    }
}
