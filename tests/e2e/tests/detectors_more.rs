//! The services and rollouts detectors end to end (issue 14): a real
//! `heal8s serve` against the Kubernetes API emulation (and, for the
//! rollback, the GitHub emulation). A Service whose selected pods are all
//! unready past the threshold is told (notify-only), naming the pods; one
//! that gains a ready endpoint resolves, and Services with a ready endpoint,
//! without a selector, of type ExternalName or selecting no pod are never
//! signalled. A Deployment stuck past its progress deadline after an image
//! change becomes a rollback-image pull request to the previous image, and a
//! notification; one stuck without an image change is not signalled. Forged
//! signals about healthy objects are refused on the live re-check.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::Path;
use std::time::Duration;

use receiver_core::signal::SourceKind;
use receiver_core::{Outcome, OutcomeKind, RefusalReason, RemediationKind};
use serde_json::{Value, json};
use testkit::github::GithubEmulator;
use testkit::kube::Emulator;
use testkit::{Heal8s, TempDir, eventually};

const TOKEN: &str = "detectors-more-token";
const REPO: &str = "acme/manifests";
const WAIT: Duration = Duration::from_secs(40);
const BRANCH: &str = "heal8s/rollback-image/prod/prod-api";

fn ago(secs: i64) -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(secs)).to_string()
}

async fn outcome(h: &Heal8s, what: &str, pred: impl Fn(&Outcome) -> bool) -> Outcome {
    let found = eventually(WAIT, what, || {
        let outcomes = h.outcomes();
        let pred = &pred;
        async move { outcomes.await.into_iter().rev().find(|o| pred(o)) }
    })
    .await;
    match found {
        Ok(o) => o,
        Err(e) => panic!(
            "{e}\noutcomes: {:#?}\n--- heal8s ---\n{}",
            h.outcomes().await,
            h.proc.output()
        ),
    }
}

/// An alert as Alertmanager sends it, firing since a minute ago.
fn alert(fingerprint: &str, labels: Value) -> Value {
    json!({"version": "4", "status": "firing", "receiver": "heal8s", "groupKey": "{}", "alerts": [{
        "status": "firing", "startsAt": ago(60), "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": fingerprint, "labels": labels,
        "annotations": {"summary": "forged"}}]})
}

fn namespace(emu: &Emulator, name: &str) {
    emu.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
        .unwrap();
}

// ---- Services ----

/// A Service in shop, created an hour ago, with `spec`.
fn service(emu: &Emulator, name: &str, spec: Value) {
    emu.create(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "shop", "creationTimestamp": ago(3600)},
        "spec": spec
    }))
    .unwrap();
}

/// A running pod of app `app` in shop, Ready or not since ten minutes ago.
fn pod(emu: &Emulator, name: &str, app: &str, ready: bool) -> Value {
    let status = if ready { "True" } else { "False" };
    emu.create(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "labels": {"app": app},
                     "creationTimestamp": ago(3600)},
        "spec": {"nodeName": "w1", "containers": [{"name": "app", "image": "registry.example/web:2.0"}]},
        "status": {"phase": "Running", "startTime": ago(3600), "podIP": "10.244.1.5",
            "conditions": [
                {"type": "ContainersReady", "status": status, "lastTransitionTime": ago(600)},
                {"type": "Ready", "status": status, "lastTransitionTime": ago(600)}],
            "containerStatuses": [{"name": "app", "image": "registry.example/web:2.0", "imageID": "",
                "ready": ready, "restartCount": 0, "started": true,
                "state": {"running": {"startedAt": ago(3600)}}}]}
    }))
    .unwrap()
}

/// The EndpointSlice the EndpointSlice controller keeps for Service
/// `service`: one endpoint per pod, with its readiness.
fn slice(emu: &Emulator, service: &str, pods: &[(&Value, bool)]) {
    let endpoints: Vec<Value> = pods
        .iter()
        .enumerate()
        .map(|(i, (p, ready))| {
            json!({"addresses": [format!("10.244.1.{}", 10 + i)],
                   "conditions": {"ready": ready, "serving": ready, "terminating": false},
                   "nodeName": "w1",
                   "targetRef": {"kind": "Pod", "namespace": "shop", "name": p["metadata"]["name"],
                                 "uid": p["metadata"]["uid"]}})
        })
        .collect();
    emu.create(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{service}-x7k2p"), "namespace": "shop",
            "labels": {"kubernetes.io/service-name": service,
                       "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints
    }))
    .unwrap();
}

const SERVICE_POLICY: &str = r#"profile: production
detectors:
  resync: 1s
  pods: {enabled: false}
  nodes: {enabled: false}
  rollouts: {enabled: false}
  services: {after: 5m}
guard:
  cooldown: 1s
routes:
  - name: service-no-ready-endpoints-notify
    matchers: ['alertname="Heal8sServiceNoReadyEndpoints"']
    remediation: notify-only
"#;

/// heal8s with `policy` against `emu` (no GitHub).
async fn heal8s(emu: &Emulator, dir: &TempDir, policy: &str) -> Heal8s {
    let kubeconfig = dir.path().join("kubeconfig");
    emu.write_kubeconfig(&kubeconfig).unwrap();
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, policy).unwrap();
    Heal8s::start(
        TOKEN,
        &[
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--policy",
            file.to_str().unwrap(),
        ],
    )
    .await
    .unwrap()
}

fn detected_about(outcomes: &[Outcome], target: &str) -> Vec<Outcome> {
    outcomes
        .iter()
        .filter(|o| o.source == SourceKind::Detector && o.target.as_deref() == Some(target))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_without_ready_endpoints_is_told_naming_its_pods_until_one_is_ready() {
    let emu = Emulator::start().await.unwrap();
    let dir = TempDir::new("detectors-more");
    namespace(&emu, "shop");
    // web: both pods unready for ten minutes, no ready endpoint
    service(
        &emu,
        "web",
        json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}),
    );
    let web1 = pod(&emu, "web-1", "web", false);
    let web2 = pod(&emu, "web-2", "web", false);
    slice(&emu, "web", &[(&web1, false), (&web2, false)]);
    // cart: one of two pods ready, and its endpoint
    service(
        &emu,
        "cart",
        json!({"selector": {"app": "cart"}, "ports": [{"port": 80}]}),
    );
    let cart1 = pod(&emu, "cart-1", "cart", false);
    let cart2 = pod(&emu, "cart-2", "cart", true);
    slice(&emu, "cart", &[(&cart1, false), (&cart2, true)]);
    // nothing to heal: endpoints managed by hand, a DNS name, a selector without pods
    service(&emu, "manual", json!({"ports": [{"port": 5432}]}));
    service(
        &emu,
        "external",
        json!({"type": "ExternalName", "externalName": "db.example.com"}),
    );
    service(
        &emu,
        "idle",
        json!({"selector": {"app": "idle"}, "ports": [{"port": 80}]}),
    );
    slice(&emu, "idle", &[]);
    let h = heal8s(&emu, &dir, SERVICE_POLICY).await;

    // told, once past the threshold, naming the unready pods
    let told = outcome(&h, "the notice about Service shop/web", |o| {
        o.name == "Heal8sServiceNoReadyEndpoints" && o.result == OutcomeKind::Acted
    })
    .await;
    assert_eq!(
        told.target.as_deref(),
        Some("Service shop/web"),
        "{told:#?}"
    );
    assert_eq!(told.remediation, Some(RemediationKind::NotifyOnly));
    assert_eq!(told.source, SourceKind::Detector);
    let plan = told.plan.as_ref().unwrap();
    assert_eq!(
        plan.evidence.details["unreadyPods"], "web-1, web-2",
        "{plan:#?}"
    );
    assert_eq!(plan.evidence.details["selectedPods"], "2");
    assert_eq!(plan.evidence.details["endpoints"], "0 ready of 2");
    assert_eq!(plan.trigger.labels["customresource_kind"], "Service");

    // web-2 turns ready, and its EndpointSlice says so: the signal resolves
    emu.modify("v1", "Pod", "shop", "web-2", |p| {
        for c in p["status"]["conditions"].as_array_mut().unwrap() {
            c["status"] = json!("True");
            c["lastTransitionTime"] = json!(ago(0));
        }
        p["status"]["containerStatuses"][0]["ready"] = json!(true);
    })
    .unwrap();
    emu.modify(
        "discovery.k8s.io/v1",
        "EndpointSlice",
        "shop",
        "web-x7k2p",
        |s| {
            s["endpoints"][1]["conditions"] =
                json!({"ready": true, "serving": true, "terminating": false});
        },
    )
    .unwrap();
    outcome(&h, "the resolved signal of Service shop/web", |o| {
        o.name == "Heal8sServiceNoReadyEndpoints"
            && o.result == OutcomeKind::Resolved
            && o.target.as_deref() == Some("Service shop/web")
    })
    .await;

    // the others were never signalled (several resyncs have passed)
    let all = h.outcomes().await;
    for svc in ["cart", "manual", "external", "idle"] {
        let about = detected_about(&all, &format!("Service shop/{svc}"));
        assert!(about.is_empty(), "{svc}: {about:#?}");
    }

    // a forged signal about cart, which serves: the live re-check refuses it
    let forged = alert(
        "5e1f000000000001",
        json!({"alertname": "Heal8sServiceNoReadyEndpoints", "namespace": "shop",
               "customresource_version": "v1", "customresource_kind": "Service", "name": "cart"}),
    );
    assert_eq!(h.post_webhook(TOKEN, &forged).await, 200);
    let refused = outcome(&h, "the forged signal refused", |o| {
        o.source == SourceKind::Alert && o.result == OutcomeKind::Refused
    })
    .await;
    assert_eq!(
        refused.reason,
        Some(RefusalReason::ConditionCleared),
        "{refused:#?}"
    );
    assert!(
        refused
            .message
            .contains("Service shop/cart has 1 ready endpoints of 2"),
        "{refused:#?}"
    );
}

// ---- Rollouts ----

/// A Deployment in prod running `image` in container app (beside a proxy),
/// its status at generation 1 with `progressing` as its Progressing
/// condition, and ReplicaSets for `revisions` (number, image of app, rolled
/// out how many seconds ago).
fn deployment(emu: &Emulator, name: &str, progressing: Value, revisions: &[(u32, &str, i64)]) {
    let containers = |image: &str| json!([{"name": "app", "image": image}, {"name": "proxy", "image": "envoyproxy/envoy:v1.30.0"}]);
    let newest = revisions.iter().max_by_key(|r| r.0).unwrap().1;
    let d = emu
        .create(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "prod", "creationTimestamp": ago(86_400),
                         "annotations": {"deployment.kubernetes.io/revision": revisions.len().to_string()}},
            "spec": {"replicas": 3, "progressDeadlineSeconds": 600,
                     "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": containers(newest)}}},
            "status": {"observedGeneration": 1, "replicas": 4, "updatedReplicas": 1,
                       "readyReplicas": 3, "availableReplicas": 3, "unavailableReplicas": 1,
                       "conditions": [
                           {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                            "lastUpdateTime": ago(86_000), "lastTransitionTime": ago(86_000)},
                           progressing]}
        }))
        .unwrap();
    for (n, image, secs) in revisions {
        emu.create(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": format!("{name}-{n}a1b"), "namespace": "prod",
                "creationTimestamp": ago(*secs),
                "labels": {"app": name},
                "annotations": {"deployment.kubernetes.io/revision": n.to_string()},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                                     "uid": d["metadata"]["uid"], "controller": true,
                                     "blockOwnerDeletion": true}]},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": containers(image)}}}
        }))
        .unwrap();
    }
}

fn deadline_exceeded(name: &str) -> Value {
    json!({"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
           "message": format!("ReplicaSet \"{name}-2a1b\" has timed out progressing."),
           "lastUpdateTime": ago(60), "lastTransitionTime": ago(60)})
}

const ROLLOUT_ROUTES: &str = r#"routes:
  - name: rollout-stuck-rollback
    matchers: ['alertname="Heal8sRolloutStuck"']
    remediation: rollback-image
    params: {maxRolloutAge: 1h}
    mode: pull-request
    continue: true
  - name: detector-notify
    matchers: ['heal8s_detector=~".+"']
    remediation: notify-only
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_stuck_after_an_image_change_becomes_a_rollback_pull_request_and_a_notice() {
    let kube = Emulator::start().await.unwrap();
    namespace(&kube, "prod");
    // prod-api: revision 2 (1.1.0) rolled out 11 minutes ago, stuck past its 10m deadline
    deployment(
        &kube,
        "prod-api",
        deadline_exceeded("prod-api"),
        &[
            (1, "registry.example/api:1.0.0", 7 * 86_400),
            (2, "registry.example/api:1.1.0", 660),
        ],
    );
    // prod-worker: stuck too, but its revision 2 changed no image
    deployment(
        &kube,
        "prod-worker",
        deadline_exceeded("prod-worker"),
        &[
            (1, "registry.example/worker:3.0", 7 * 86_400),
            (2, "registry.example/worker:3.0", 660),
        ],
    );
    let gh = GithubEmulator::start().await.unwrap();
    gh.create_repo("acme", "manifests", 3).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../gitops/tests/fixtures/repo");
    let files = gitops::locate::load_dir(&fixture).unwrap();
    let list: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    gh.put_files(REPO, "main", &list, "initial manifests")
        .unwrap();
    let policy = format!(
        r#"guard:
  cooldown: 1s
pullRequests:
  repository: {REPO}
  environment: prod
  pollInterval: 1s
detectors:
  resync: 1s
  pods: {{enabled: false}}
  nodes: {{enabled: false}}
  services: {{enabled: false}}
{ROLLOUT_ROUTES}"#
    );
    let (h, _dir) = Heal8s::start_against(TOKEN, &kube, &gh, &policy, &[])
        .await
        .unwrap();

    // the rollback pull request, to the previous revision's image
    let acted = outcome(&h, "the rollback pull request", |o| {
        o.name == "Heal8sRolloutStuck"
            && o.remediation == Some(RemediationKind::RollbackImage)
            && o.result == OutcomeKind::Acted
    })
    .await;
    assert_eq!(
        acted.target.as_deref(),
        Some("Deployment prod/prod-api container app"),
        "{acted:#?}"
    );
    assert_eq!(
        acted.pull_request.as_ref().map(|p| p.branch.as_str()),
        Some(BRANCH),
        "{acted:#?}"
    );
    let pulls = gh.pulls(REPO);
    assert_eq!(pulls.len(), 1, "{pulls:#?}");
    assert_eq!(pulls[0].head_ref, BRANCH);
    let body = pulls[0].body.clone().unwrap();
    assert!(body.contains("Heal8sRolloutStuck"), "{body}");
    assert!(
        body.contains("previousImage: registry.example/api:1.0.0"),
        "{body}"
    );
    let k = gh
        .file(REPO, BRANCH, "overlays/prod/kustomization.yaml")
        .unwrap();
    assert!(k.contains("newTag: \"1.0.0\" # promoted on Monday"), "{k}");

    // and the notice (detector-notify, reached through `continue`)
    let told = outcome(&h, "the notice about the stuck rollout", |o| {
        o.name == "Heal8sRolloutStuck"
            && o.remediation == Some(RemediationKind::NotifyOnly)
            && o.result == OutcomeKind::Acted
    })
    .await;
    let details = &told.plan.as_ref().unwrap().evidence.details;
    assert_eq!(details["image"], "registry.example/api:1.1.0");
    assert_eq!(details["previousImage"], "registry.example/api:1.0.0");
    assert_eq!(details["revision"], "2");

    // the rollout completes (someone fixed it): the signal resolves
    kube.modify("apps/v1", "Deployment", "prod", "prod-api", |d| {
        d["status"]["conditions"][1] = json!({"type": "Progressing", "status": "True",
            "reason": "NewReplicaSetAvailable", "lastUpdateTime": ago(0), "lastTransitionTime": ago(0)});
    })
    .unwrap();
    outcome(&h, "the resolved signal of Deployment prod/prod-api", |o| {
        o.name == "Heal8sRolloutStuck" && o.result == OutcomeKind::Resolved
    })
    .await;

    // the worker, stuck without an image change, was never signalled
    let all = h.outcomes().await;
    for target in [
        "Deployment prod/prod-worker",
        "Deployment prod/prod-worker container app",
    ] {
        let about = detected_about(&all, target);
        assert!(about.is_empty(), "{about:#?}");
    }
    // and a forged signal about it is refused on the live re-check: no pull request
    let forged = alert(
        "5e1f000000000002",
        json!({"alertname": "Heal8sRolloutStuck", "namespace": "prod",
               "deployment": "prod-worker", "container": "app"}),
    );
    assert_eq!(h.post_webhook(TOKEN, &forged).await, 200);
    let refused = outcome(&h, "the forged signal refused", |o| {
        o.source == SourceKind::Alert
            && o.remediation == Some(RemediationKind::RollbackImage)
            && o.result == OutcomeKind::Refused
    })
    .await;
    assert_eq!(
        refused.reason,
        Some(RefusalReason::ConditionCleared),
        "{refused:#?}"
    );
    assert!(
        refused.message.contains("changed no container's image"),
        "{refused:#?}"
    );
    assert_eq!(gh.pulls(REPO).len(), 1, "no second pull request");
}
