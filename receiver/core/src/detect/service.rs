//! Service detector: a Service whose selector matches pods, none of them ready
//! and no ready endpoint in its EndpointSlices, for longer than `after`
//! (`Heal8sServiceNoReadyEndpoints`; notify-only by default). Services
//! without a selector, ExternalName services and selectors that match no
//! running pod are not signalled: there is nothing to heal.
//!
//! Pure: a Service, its EndpointSlices and its namespace's pods in, a
//! finding or the reason there is none out. The same examination is the
//! re-check on the live objects before anything is done
//! (`crate::recheck::service_state`). Must not watch or read the cluster.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::{Deserialize, Serialize};

use super::config::{Overrides, Profile};
use super::pod_view::PodView;
use super::{Detector, DetectorSpec, Finding, Object, Watched, age, at_least, namespace};
use crate::duration::PromDuration;
use crate::signal::Evidence;
use crate::target::{ResourceType, Target, TargetKind};

/// The signal's name.
pub const SIGNAL: &str = "Heal8sServiceNoReadyEndpoints";

/// The label the EndpointSlice controller puts on a Service's slices.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// At most this many unready pods are named in a finding's evidence.
pub const MAX_PODS_NAMED: usize = 10;

/// Service detector settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceDetector {
    pub enabled: bool,
    /// A Service without a ready endpoint this long, while its selector
    /// matches pods, is signalled.
    pub after: PromDuration,
    /// Only Services in namespaces matching these patterns (`*` wildcards); empty = all.
    pub namespaces: Vec<String>,
}

impl DetectorSpec for ServiceDetector {
    const KEY: &'static str = "services";

    fn defaults(_profile: Profile) -> ServiceDetector {
        // on in both profiles: it only reads (Services, EndpointSlices and the
        // pods the pod detector already watches) and its signal is
        // notify-only by default, while a Service that serves nothing is an
        // outage someone should hear of
        ServiceDetector {
            enabled: true,
            after: PromDuration::secs(5 * 60),
            namespaces: Vec::new(),
        }
    }

    fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        at_least(&mut out, "after", self.after, 1);
        namespace::check_patterns(&mut out, "namespaces", &self.namespaces);
        out
    }

    fn apply(&mut self, o: &Overrides) {
        if !o.namespaces.is_empty() {
            self.namespaces.clone_from(&o.namespaces);
        }
    }
}

impl Detector for ServiceDetector {
    fn name(&self) -> &'static str {
        "services"
    }

    fn enabled(&self) -> bool {
        self.enabled
    }

    fn watches(&self) -> Vec<Watched> {
        vec![Watched::Services]
    }

    fn detect(&self, o: Object<'_>, now: Timestamp) -> Vec<Finding> {
        match o {
            Object::Service(b) => {
                let ns = b.service.metadata.namespace.as_deref().unwrap_or_default();
                if !self.namespaces.is_empty() && !namespace::matches_any(&self.namespaces, ns) {
                    return Vec::new();
                }
                examine(b, self.after, now).ok().into_iter().collect()
            }
            _ => Vec::new(),
        }
    }
}

/// A Service and what tells whether it can serve: the EndpointSlices and
/// pods of its namespace (others are ignored, so callers may pass more).
#[derive(Debug, Clone)]
pub struct Backends<'a> {
    pub service: &'a Service,
    pub slices: Vec<&'a EndpointSlice>,
    pub pods: Vec<&'a PodView>,
}

/// The v1 Service type, as a signal's target names it.
pub fn service_type() -> ResourceType {
    ResourceType::from_api_version("v1", "Service")
}

/// Whether `slice` is one of Service `name`'s in `ns`.
pub fn slice_of(slice: &EndpointSlice, ns: &str, name: &str) -> bool {
    slice.metadata.namespace.as_deref() == Some(ns)
        && slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
            .is_some_and(|n| n == name)
}

/// An endpoint counts as ready unless its `ready` condition says false (the
/// API reads an absent one as true).
fn ready_endpoints(slices: &[&EndpointSlice]) -> (usize, usize) {
    let all = slices.iter().flat_map(|s| s.endpoints.iter());
    let (mut ready, mut total) = (0, 0);
    for e in all {
        total += 1;
        if e.conditions.as_ref().and_then(|c| c.ready) != Some(false) {
            ready += 1;
        }
    }
    (ready, total)
}

/// Ready as a Service's endpoint would be: running, without a `Ready=False` condition.
fn pod_ready(p: &PodView) -> bool {
    p.phase.as_deref() == Some("Running") && !p.not_ready
}

/// When a pod stopped being ready, as well as it tells: its containers
/// turning unready, else its start, else its creation.
fn unready_since(p: &PodView) -> Option<Timestamp> {
    p.containers_not_ready_since.or(p.started).or(p.created)
}

/// The first [`MAX_PODS_NAMED`] names, and how many more there are.
fn named(mut names: Vec<&str>) -> String {
    names.sort_unstable();
    let more = names.len().saturating_sub(MAX_PODS_NAMED);
    let mut s = names
        .into_iter()
        .take(MAX_PODS_NAMED)
        .collect::<Vec<_>>()
        .join(", ");
    if more > 0 {
        s.push_str(&format!(" (and {more} more)"));
    }
    s
}

/// The finding for `b` at `now`, or why there is none: the Service has a
/// ready endpoint or a ready pod, selects nothing, or has been without a
/// ready one for less than `after`.
pub fn examine(b: &Backends<'_>, after: PromDuration, now: Timestamp) -> Result<Finding, String> {
    let m = &b.service.metadata;
    let (Some(ns), Some(name)) = (m.namespace.as_deref(), m.name.as_deref()) else {
        return Err("the Service has no namespace or name".into());
    };
    let what = format!("Service {ns}/{name}");
    if m.deletion_timestamp.is_some() {
        return Err(format!("{what} is being deleted"));
    }
    let spec = b.service.spec.as_ref();
    if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
        return Err(format!("{what} is an ExternalName Service: it has no endpoints"));
    }
    let selector: BTreeMap<&str, &str> = spec
        .and_then(|s| s.selector.as_ref())
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if selector.is_empty() {
        return Err(format!(
            "{what} has no selector: its endpoints are managed by hand"
        ));
    }
    // terminal pods are never endpoints: a Service selecting only those selects nothing to heal
    let selected: Vec<&PodView> = b
        .pods
        .iter()
        .copied()
        .filter(|p| p.namespace.as_deref() == Some(ns) && !p.deleting)
        .filter(|p| !matches!(p.phase.as_deref(), Some("Succeeded" | "Failed")))
        .filter(|p| p.selected_by(selector.iter().map(|(k, v)| (*k, *v))))
        .collect();
    if selected.is_empty() {
        return Err(format!(
            "the selector of {what} matches no running pod: nothing to heal"
        ));
    }
    let slices: Vec<&EndpointSlice> = b
        .slices
        .iter()
        .copied()
        .filter(|s| slice_of(s, ns, name))
        .collect();
    let (ready, total) = ready_endpoints(&slices);
    if ready > 0 {
        return Err(format!("{what} has {ready} ready endpoints of {total}"));
    }
    if let Some(p) = selected.iter().find(|p| pod_ready(p)) {
        // its EndpointSlices have not caught up yet
        return Err(format!(
            "pod {} selected by {what} is ready",
            p.name.as_deref().unwrap_or("-")
        ));
    }
    let since = selected
        .iter()
        .filter_map(|p| unready_since(p))
        .chain(m.creation_timestamp.as_ref().map(|c| c.0))
        .max()
        .unwrap_or(now);
    if age(now, since) < after.get() {
        return Err(format!(
            "{what} has been without a ready endpoint since {since}, for less than {after}"
        ));
    }
    let names = named(
        selected
            .iter()
            .filter_map(|p| p.name.as_deref())
            .collect(),
    );
    let mut target = Target::new(TargetKind::Custom(service_type()), Some(ns), name);
    target.uid = m.uid.clone();
    Ok(Finding {
        name: SIGNAL,
        detector: "services",
        target,
        reason: "NoReadyEndpoints".into(),
        since,
        evidence: Evidence {
            reason: Some("NoReadyEndpoints".into()),
            details: [
                ("unreadyPods".to_string(), names.clone()),
                ("selectedPods".to_string(), selected.len().to_string()),
                ("endpoints".to_string(), format!("0 ready of {total}")),
            ]
            .into(),
            ..Evidence::default()
        },
        summary: format!(
            "{what} has had no ready endpoint since {since}; its selector matches {} pods, none ready: {names}",
            selected.len()
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

    fn cfg() -> ServiceDetector {
        Detectors::for_profile(Profile::Production).services
    }

    fn mk_service(spec: Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "svc-uid",
                         "creationTimestamp": t(-86_400).to_string()},
            "spec": spec
        }))
        .unwrap()
    }

    fn selecting() -> Service {
        mk_service(json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}))
    }

    /// A pod of the web app: not ready since `since` (seconds), or ready.
    fn mk_pod(name: &str, ready: bool, since: i64) -> PodView {
        let status = if ready { "True" } else { "False" };
        PodView::of(
            &serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "shop", "labels": {"app": "web"},
                             "creationTimestamp": t(-3600).to_string()},
                "status": {"phase": "Running", "startTime": t(-3600).to_string(),
                    "conditions": [
                        {"type": "ContainersReady", "status": status, "lastTransitionTime": t(since).to_string()},
                        {"type": "Ready", "status": status, "lastTransitionTime": t(since).to_string()}]}
            }))
            .unwrap(),
        )
    }

    fn mk_slice(service: &str, ready: &[Option<bool>]) -> EndpointSlice {
        let endpoints: Vec<Value> = ready
            .iter()
            .enumerate()
            .map(|(i, r)| match r {
                Some(r) => json!({"addresses": [format!("10.0.0.{i}")], "conditions": {"ready": r}}),
                None => json!({"addresses": [format!("10.0.0.{i}")]}),
            })
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": format!("{service}-abcde"), "namespace": "shop",
                         "labels": {SERVICE_NAME_LABEL: service}},
            "addressType": "IPv4",
            "endpoints": endpoints
        }))
        .unwrap()
    }

    fn run(svc: &Service, slices: &[EndpointSlice], pods: &[PodView], now: i64) -> Result<Finding, String> {
        let b = Backends {
            service: svc,
            slices: slices.iter().collect(),
            pods: pods.iter().collect(),
        };
        examine(&b, cfg().after, t(now))
    }

    #[test]
    fn a_service_whose_pods_are_all_unready_past_the_threshold_is_signalled() {
        let svc = selecting();
        let pods = [mk_pod("web-2", false, 0), mk_pod("web-1", false, -100)];
        let slices = [mk_slice("web", &[Some(false), Some(false)])];
        // the last pod turned unready at 0: five minutes from then
        let why = run(&svc, &slices, &pods, 299).unwrap_err();
        assert!(why.contains("for less than 5m"), "{why}");
        let f = run(&svc, &slices, &pods, 300).unwrap();
        assert_eq!(f.name, SIGNAL);
        assert_eq!(f.detector, "services");
        assert_eq!(f.since, t(0));
        assert_eq!(f.target.kind, TargetKind::Custom(service_type()));
        assert_eq!(f.target.key(), "Service/shop/web");
        assert_eq!(f.target.uid.as_deref(), Some("svc-uid"));
        assert_eq!(f.evidence.details["unreadyPods"], "web-1, web-2");
        assert_eq!(f.evidence.details["selectedPods"], "2");
        assert_eq!(f.evidence.details["endpoints"], "0 ready of 2");
        assert!(f.summary.contains("none ready: web-1, web-2"), "{}", f.summary);
        // without any EndpointSlice (pods without an address yet) it is the same
        assert!(run(&svc, &[], &pods, 300).is_ok());
    }

    #[test]
    fn the_signal_names_at_most_ten_pods() {
        let svc = selecting();
        let pods: Vec<PodView> = (0..13)
            .map(|i| mk_pod(&format!("web-{i:02}"), false, 0))
            .collect();
        let f = run(&svc, &[], &pods, 600).unwrap();
        let named = &f.evidence.details["unreadyPods"];
        assert!(named.starts_with("web-00, web-01,"), "{named}");
        assert!(named.contains("web-09") && !named.contains("web-10"), "{named}");
        assert!(named.ends_with(" (and 3 more)"), "{named}");
        assert_eq!(f.evidence.details["selectedPods"], "13");
    }

    #[test]
    fn a_ready_endpoint_or_a_ready_pod_means_the_service_serves() {
        let svc = selecting();
        let unready = [mk_pod("web-1", false, 0)];
        let why = run(&svc, &[mk_slice("web", &[Some(false), Some(true)])], &unready, 999)
            .unwrap_err();
        assert!(why.contains("1 ready endpoints of 2"), "{why}");
        // an endpoint without conditions is ready, as the API reads it
        assert!(run(&svc, &[mk_slice("web", &[None])], &unready, 999).is_err());
        // another Service's slice says nothing about this one
        assert!(run(&svc, &[mk_slice("api", &[Some(true)])], &unready, 999).is_ok());
        // a ready pod the slices do not show yet: not conclusive, not signalled
        let pods = [mk_pod("web-1", false, 0), mk_pod("web-2", true, 0)];
        let why = run(&svc, &[mk_slice("web", &[Some(false)])], &pods, 999).unwrap_err();
        assert!(why.contains("pod web-2"), "{why}");
    }

    #[test]
    fn services_with_nothing_to_heal_are_not_signalled() {
        let pods = [mk_pod("web-1", false, 0)];
        let external = mk_service(json!({"type": "ExternalName", "externalName": "db.example.com",
                                         "selector": {"app": "web"}}));
        assert!(run(&external, &[], &pods, 9999).unwrap_err().contains("ExternalName"));
        let manual = mk_service(json!({"ports": [{"port": 80}]}));
        assert!(run(&manual, &[], &pods, 9999).unwrap_err().contains("no selector"));
        let other = mk_service(json!({"selector": {"app": "api"}}));
        assert!(run(&other, &[], &pods, 9999).unwrap_err().contains("matches no running pod"));
        // finished and terminating pods are no backends
        let mut done = mk_pod("web-1", false, 0);
        done.phase = Some("Succeeded".into());
        let mut going = mk_pod("web-2", false, 0);
        going.deleting = true;
        assert!(run(&selecting(), &[], &[done, going], 9999).is_err());
        // nor pods of another namespace
        let mut elsewhere = mk_pod("web-1", false, 0);
        elsewhere.namespace = Some("other".into());
        assert!(run(&selecting(), &[], &[elsewhere], 9999).is_err());
    }

    #[test]
    fn a_new_service_waits_the_threshold_from_its_creation() {
        let mut svc = selecting();
        svc.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t(1000)));
        let pods = [mk_pod("web-1", false, 0)];
        assert!(run(&svc, &[], &pods, 1299).is_err());
        assert_eq!(run(&svc, &[], &pods, 1300).unwrap().since, t(1000));
    }

    #[test]
    fn the_built_in_policy_only_tells_people() {
        let policy = crate::Policy::default_policy().unwrap();
        let pods = [mk_pod("web-1", false, 0)];
        let s = run(&selecting(), &[], &pods, 600)
            .unwrap()
            .to_signal(crate::alertmanager::AlertStatus::Firing, t(600));
        let routes: Vec<(&str, &str)> = crate::route::route(&policy, &s)
            .iter()
            .map(|r| (r.name.as_str(), r.remediation.kind().as_str()))
            .collect();
        assert_eq!(routes, [("detector-notify", "notify-only")]);
        // the labels give back the Service as the target
        assert_eq!(crate::target::extract(&s.labels).unwrap(), s.target);
    }

    #[test]
    fn the_detector_keeps_to_its_namespaces_and_settings_are_checked_at_once() {
        let svc = selecting();
        let pods = [mk_pod("web-1", false, 0)];
        let b = Backends {
            service: &svc,
            slices: Vec::new(),
            pods: pods.iter().collect(),
        };
        let mut d = cfg();
        assert_eq!(d.detect(Object::Service(&b), t(600)).len(), 1);
        d.namespaces = vec!["prod-*".into()];
        assert!(d.detect(Object::Service(&b), t(600)).is_empty());
        d.namespaces = vec!["shop".into()];
        assert_eq!(d.detect(Object::Service(&b), t(600)).len(), 1);
        d.after = PromDuration::secs(0);
        d.namespaces = vec!["Bad Name".into()];
        let paths: Vec<String> = d.validate().into_iter().map(|(p, _)| p).collect();
        assert_eq!(paths, ["after", "namespaces[0]"]);
        // --namespaces reaches it
        d.apply(&Overrides {
            namespaces: vec!["ci-*".into()],
            ..Overrides::default()
        });
        assert_eq!(d.namespaces, ["ci-*"]);
    }
}
