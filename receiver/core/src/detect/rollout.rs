//! Rollout detector: a Deployment whose rollout exceeded its progress
//! deadline (`Progressing=False`, reason `ProgressDeadlineExceeded`) after
//! its newest ReplicaSet changed a container's image from the previous
//! ReplicaSet's (`Heal8sRolloutStuck`; by default a rollback-image pull
//! request to the previous image, and a notification). A stuck rollout that
//! changed no image is not signalled: rolling the image back would not fix it.
//!
//! Pure: a Deployment and its namespace's ReplicaSets in, a finding or the
//! reason there is none out. The same examination is the re-check on the
//! live objects before anything is done (`crate::recheck::rollout_state`).
//! Must not watch or read the cluster.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, ReplicaSet};
use serde::{Deserialize, Serialize};

use super::config::{Overrides, Profile};
use super::{Detector, DetectorSpec, Finding, Object, Watched, namespace};
use crate::signal::Evidence;
use crate::target::{Target, TargetKind};

/// The signal's name.
pub const SIGNAL: &str = "Heal8sRolloutStuck";

/// The reason of the `Progressing=False` condition of a rollout past its deadline.
pub const DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";

/// The annotation numbering a Deployment's ReplicaSets (its revisions).
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

/// Longest condition message kept in a finding's evidence.
const MAX_MESSAGE: usize = 200;

/// Rollout detector settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RolloutDetector {
    pub enabled: bool,
    /// Only Deployments in namespaces matching these patterns (`*` wildcards); empty = all.
    pub namespaces: Vec<String>,
}

impl DetectorSpec for RolloutDetector {
    const KEY: &'static str = "rollouts";

    fn defaults(_profile: Profile) -> RolloutDetector {
        // on in both profiles: it only reads, the Deployment's own progress
        // deadline is its threshold, and what it leads to by default is a
        // pull request a person reviews, not a change to the cluster
        RolloutDetector {
            enabled: true,
            namespaces: Vec::new(),
        }
    }

    fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        namespace::check_patterns(&mut out, "namespaces", &self.namespaces);
        out
    }

    fn apply(&mut self, o: &Overrides) {
        if !o.namespaces.is_empty() {
            self.namespaces.clone_from(&o.namespaces);
        }
    }
}

impl Detector for RolloutDetector {
    fn name(&self) -> &'static str {
        "rollouts"
    }

    fn enabled(&self) -> bool {
        self.enabled
    }

    fn watches(&self) -> Vec<Watched> {
        vec![Watched::Deployments]
    }

    fn detect(&self, o: Object<'_>, now: Timestamp) -> Vec<Finding> {
        match o {
            Object::Deployment(r) => {
                let ns = r.deployment.metadata.namespace.as_deref().unwrap_or_default();
                if !self.namespaces.is_empty() && !namespace::matches_any(&self.namespaces, ns) {
                    return Vec::new();
                }
                examine(r, now).ok().into_iter().collect()
            }
            _ => Vec::new(),
        }
    }
}

/// A Deployment and the ReplicaSets of its namespace (those it controls are
/// read, so callers may pass more).
#[derive(Debug, Clone)]
pub struct Rollout<'a> {
    pub deployment: &'a Deployment,
    pub replica_sets: Vec<&'a ReplicaSet>,
}

/// One revision: its ReplicaSet's name and number, and its containers' images.
struct Revision<'a> {
    name: &'a str,
    number: u64,
    images: Vec<(&'a str, &'a str)>,
    created: Option<Timestamp>,
}

/// The revisions of Deployment `d` among `rss`, newest first: the
/// ReplicaSets whose controller is `d` (by UID when both tell one).
fn revisions<'a>(d: &Deployment, rss: &[&'a ReplicaSet]) -> Vec<Revision<'a>> {
    let (ns, name, uid) = (
        d.metadata.namespace.as_deref(),
        d.metadata.name.as_deref(),
        d.metadata.uid.as_deref(),
    );
    let mut out: Vec<Revision<'a>> = rss
        .iter()
        .copied()
        .filter(|rs| rs.metadata.namespace.as_deref() == ns)
        .filter(|rs| {
            let refs = rs.metadata.owner_references.as_deref().unwrap_or_default();
            refs.iter()
                .find(|r| r.controller == Some(true))
                .or_else(|| refs.first())
                .is_some_and(|r| {
                    r.kind == "Deployment"
                        && Some(r.name.as_str()) == name
                        && (r.uid.is_empty() || uid.is_none_or(|u| u == r.uid))
                })
        })
        .filter_map(|rs| {
            let number = rs
                .metadata
                .annotations
                .as_ref()?
                .get(REVISION_ANNOTATION)?
                .parse()
                .ok()?;
            let images = rs
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .and_then(|t| t.spec.as_ref())
                .map(|s| {
                    s.containers
                        .iter()
                        .map(|c| (c.name.as_str(), c.image.as_deref().unwrap_or_default()))
                        .collect()
                })
                .unwrap_or_default();
            Some(Revision {
                name: rs.metadata.name.as_deref().unwrap_or_default(),
                number,
                images,
                created: rs.metadata.creation_timestamp.as_ref().map(|c| c.0),
            })
        })
        .collect();
    out.sort_by_key(|r| std::cmp::Reverse(r.number));
    out
}

/// The Deployment's `Progressing` condition.
fn progressing(d: &Deployment) -> Option<&DeploymentCondition> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Progressing")
}

/// The finding for `r` at `now`, or why there is none: the rollout is not
/// past its deadline (or is paused, or its status is not yet current), or
/// its newest revision changed no container's image.
pub fn examine(r: &Rollout<'_>, now: Timestamp) -> Result<Finding, String> {
    let d = r.deployment;
    let m = &d.metadata;
    let (Some(ns), Some(name)) = (m.namespace.as_deref(), m.name.as_deref()) else {
        return Err("the Deployment has no namespace or name".into());
    };
    let what = format!("Deployment {ns}/{name}");
    if m.deletion_timestamp.is_some() {
        return Err(format!("{what} is being deleted"));
    }
    if d.spec.as_ref().and_then(|s| s.paused) == Some(true) {
        return Err(format!("{what} is paused"));
    }
    let observed = d.status.as_ref().and_then(|s| s.observed_generation);
    if let (Some(g), Some(o)) = (m.generation, observed)
        && o < g
    {
        return Err(format!(
            "the status of {what} is of generation {o}, its spec of {g}: a newer rollout has not been observed yet"
        ));
    }
    let stuck = progressing(d).filter(|c| {
        c.status == "False" && c.reason.as_deref() == Some(DEADLINE_EXCEEDED)
    });
    let Some(cond) = stuck else {
        return Err(match progressing(d) {
            Some(c) => format!(
                "{what} is Progressing={} ({}), not past its progress deadline",
                c.status,
                c.reason.as_deref().unwrap_or("no reason")
            ),
            None => format!("{what} has no Progressing condition"),
        });
    };
    let history = revisions(d, &r.replica_sets);
    let (Some(newest), Some(previous)) = (history.first(), history.get(1)) else {
        return Err(format!(
            "{what} has no earlier revision to compare its stuck one with"
        ));
    };
    let changed: Vec<(&str, &str, &str)> = newest
        .images
        .iter()
        .filter_map(|(c, image)| {
            previous
                .images
                .iter()
                .find(|(p, _)| p == c)
                .filter(|(_, was)| was != image)
                .map(|(_, was)| (*c, *was, *image))
        })
        .collect();
    let Some((container, was, image)) = changed.first().copied() else {
        return Err(format!(
            "revision {} of {what} changed no container's image from revision {}: rolling an image back would not fix it",
            newest.number, previous.number
        ));
    };
    let since = cond
        .last_transition_time
        .as_ref()
        .or(cond.last_update_time.as_ref())
        .map(|t| t.0)
        .or(newest.created)
        .unwrap_or(now);
    let mut details: std::collections::BTreeMap<String, String> = [
        ("revision".to_string(), newest.number.to_string()),
        ("replicaSet".to_string(), newest.name.to_string()),
        ("image".to_string(), image.to_string()),
        ("previousRevision".to_string(), previous.number.to_string()),
        ("previousReplicaSet".to_string(), previous.name.to_string()),
        ("previousImage".to_string(), was.to_string()),
    ]
    .into();
    if changed.len() > 1 {
        details.insert(
            "changedContainers".into(),
            changed
                .iter()
                .map(|(c, _, _)| *c)
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    if let Some(msg) = cond.message.as_deref() {
        details.insert("message".into(), crate::text::one_line(msg, MAX_MESSAGE));
    }
    let mut target = Target::new(TargetKind::Deployment, Some(ns), name);
    target.container = Some(container.to_string());
    target.uid = m.uid.clone();
    Ok(Finding {
        name: SIGNAL,
        detector: "rollouts",
        target,
        reason: DEADLINE_EXCEEDED.into(),
        since,
        evidence: Evidence {
            reason: Some(DEADLINE_EXCEEDED.into()),
            details,
            ..Evidence::default()
        },
        summary: format!(
            "the rollout of {what} to revision {} exceeded its progress deadline at {since}; it changed the image of container {container} from {was} to {image}",
            newest.number
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Detectors;
    use serde_json::{Value, json};

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn mk_deployment(progressing: Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "api", "namespace": "shop", "uid": "dep-uid", "generation": 3},
            "spec": {"selector": {"matchLabels": {"app": "api"}},
                     "template": {"spec": {"containers": [{"name": "app", "image": "api:1.2"}]}}},
            "status": {"observedGeneration": 3, "conditions": [
                {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
                progressing]}
        }))
        .unwrap()
    }

    fn stuck() -> Deployment {
        mk_deployment(json!({"type": "Progressing", "status": "False", "reason": DEADLINE_EXCEEDED,
            "message": "ReplicaSet \"api-3\" has timed out progressing.",
            "lastUpdateTime": t(0).to_string(), "lastTransitionTime": t(0).to_string()}))
    }

    /// Revision `n` of the api Deployment, running `images` (container, image).
    fn mk_rs(n: u64, images: &[(&str, &str)], owner_uid: &str) -> ReplicaSet {
        let containers: Vec<Value> = images
            .iter()
            .map(|(c, i)| json!({"name": c, "image": i}))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": format!("api-{n}"), "namespace": "shop",
                "creationTimestamp": t(-600).to_string(),
                "annotations": {REVISION_ANNOTATION: n.to_string()},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "api",
                                     "uid": owner_uid, "controller": true}]},
            "spec": {"selector": {"matchLabels": {"app": "api"}},
                     "template": {"spec": {"containers": containers}}}
        }))
        .unwrap()
    }

    fn run(d: &Deployment, rss: &[ReplicaSet]) -> Result<Finding, String> {
        examine(
            &Rollout {
                deployment: d,
                replica_sets: rss.iter().collect(),
            },
            t(60),
        )
    }

    fn history() -> Vec<ReplicaSet> {
        vec![
            mk_rs(1, &[("app", "api:1.0")], "dep-uid"),
            mk_rs(3, &[("app", "api:1.2")], "dep-uid"),
            mk_rs(2, &[("app", "api:1.1")], "dep-uid"),
        ]
    }

    #[test]
    fn a_rollout_past_its_deadline_after_an_image_change_is_signalled() {
        let f = run(&stuck(), &history()).unwrap();
        assert_eq!(f.name, SIGNAL);
        assert_eq!(f.detector, "rollouts");
        assert_eq!(f.target.kind, TargetKind::Deployment);
        assert_eq!(f.target.key(), "Deployment/shop/api");
        assert_eq!(f.target.container.as_deref(), Some("app"));
        assert_eq!(f.target.uid.as_deref(), Some("dep-uid"));
        assert_eq!(f.reason, DEADLINE_EXCEEDED);
        // when it got stuck, not when it was seen
        assert_eq!(f.since, t(0));
        let d = &f.evidence.details;
        assert_eq!(d["revision"], "3");
        assert_eq!(d["image"], "api:1.2");
        // compared with the revision just before, not the oldest
        assert_eq!(d["previousRevision"], "2");
        assert_eq!(d["previousImage"], "api:1.1");
        assert_eq!(d["replicaSet"], "api-3");
        assert!(d["message"].contains("timed out progressing"));
        assert!(f.summary.contains("from api:1.1 to api:1.2"), "{}", f.summary);
        // the labels give back the same target, container included
        let s = f.to_signal(crate::alertmanager::AlertStatus::Firing, t(60));
        assert_eq!(crate::target::extract(&s.labels).unwrap(), s.target);
    }

    #[test]
    fn a_stuck_rollout_that_changed_no_image_is_not_signalled() {
        let rss = [
            mk_rs(1, &[("app", "api:1.1"), ("proxy", "envoy:1")], "dep-uid"),
            mk_rs(2, &[("app", "api:1.1"), ("proxy", "envoy:1")], "dep-uid"),
        ];
        let why = run(&stuck(), &rss).unwrap_err();
        assert!(why.contains("changed no container's image"), "{why}");
        // the first rollout has nothing to compare with
        let why = run(&stuck(), &rss[..1]).unwrap_err();
        assert!(why.contains("no earlier revision"), "{why}");
        // a sidecar's image change is found, and named
        let rss = [
            mk_rs(1, &[("app", "api:1.1"), ("proxy", "envoy:1")], "dep-uid"),
            mk_rs(2, &[("app", "api:1.1"), ("proxy", "envoy:2")], "dep-uid"),
        ];
        let f = run(&stuck(), &rss).unwrap();
        assert_eq!(f.target.container.as_deref(), Some("proxy"));
    }

    #[test]
    fn several_changed_images_are_all_named() {
        let rss = [
            mk_rs(1, &[("app", "api:1.1"), ("proxy", "envoy:1")], "dep-uid"),
            mk_rs(2, &[("app", "api:1.2"), ("proxy", "envoy:2")], "dep-uid"),
        ];
        let f = run(&stuck(), &rss).unwrap();
        assert_eq!(f.target.container.as_deref(), Some("app"));
        assert_eq!(f.evidence.details["changedContainers"], "app, proxy");
    }

    #[test]
    fn only_a_rollout_past_its_deadline_is_stuck() {
        let progressing = mk_deployment(json!({"type": "Progressing", "status": "True",
            "reason": "ReplicaSetUpdated"}));
        let why = run(&progressing, &history()).unwrap_err();
        assert!(why.contains("Progressing=True (ReplicaSetUpdated)"), "{why}");
        let done = mk_deployment(json!({"type": "Progressing", "status": "True",
            "reason": "NewReplicaSetAvailable"}));
        assert!(run(&done, &history()).is_err());
        // paused, or a spec the controller has not observed yet: not conclusive
        let mut paused = stuck();
        paused.spec.as_mut().unwrap().paused = Some(true);
        assert!(run(&paused, &history()).unwrap_err().contains("paused"));
        let mut newer = stuck();
        newer.metadata.generation = Some(4);
        assert!(run(&newer, &history()).unwrap_err().contains("generation 3"));
    }

    #[test]
    fn replica_sets_of_another_owner_are_not_its_history() {
        // a namesake Deployment's (another UID) ReplicaSet is not a revision of this one
        let rss = [
            mk_rs(1, &[("app", "api:1.0")], "other-uid"),
            mk_rs(2, &[("app", "api:1.2")], "dep-uid"),
        ];
        assert!(run(&stuck(), &rss).is_err());
        let mut elsewhere = mk_rs(1, &[("app", "api:1.0")], "dep-uid");
        elsewhere.metadata.namespace = Some("other".into());
        assert!(run(&stuck(), &[elsewhere, mk_rs(2, &[("app", "api:1.2")], "dep-uid")]).is_err());
    }

    #[test]
    fn the_built_in_policy_proposes_a_rollback_and_tells_people() {
        let policy = crate::Policy::default_policy().unwrap();
        let s = run(&stuck(), &history())
            .unwrap()
            .to_signal(crate::alertmanager::AlertStatus::Firing, t(60));
        let routes: Vec<(&str, &str)> = crate::route::route(&policy, &s)
            .iter()
            .map(|r| (r.name.as_str(), r.remediation.kind().as_str()))
            .collect();
        assert_eq!(
            routes,
            [
                ("rollout-stuck-rollback", "rollback-image"),
                ("detector-notify", "notify-only")
            ]
        );
    }

    #[test]
    fn the_detector_keeps_to_its_namespaces_and_settings_are_checked() {
        let d = stuck();
        let rss = history();
        let r = Rollout {
            deployment: &d,
            replica_sets: rss.iter().collect(),
        };
        let mut det = Detectors::for_profile(Profile::Production).rollouts;
        assert!(det.enabled);
        assert_eq!(det.detect(Object::Deployment(&r), t(60)).len(), 1);
        det.namespaces = vec!["prod-*".into()];
        assert!(det.detect(Object::Deployment(&r), t(60)).is_empty());
        det.namespaces = vec!["Nope".into(), "ok-*".into(), "".into()];
        let paths: Vec<String> = det.validate().into_iter().map(|(p, _)| p).collect();
        assert_eq!(paths, ["namespaces[0]", "namespaces[2]"]);
    }
}
