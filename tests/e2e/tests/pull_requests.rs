//! Declarative fixes end to end: a real `heal8s serve` against the Kubernetes
//! API emulation and the GitHub emulation. An OOMKilled alert for a
//! Deployment's pod becomes one pull request with the memory raised minimally
//! in the right file; a thousand repeats of it change nothing; a new value
//! updates the same pull request; merging moves the Remediation to `Merged`;
//! a pull request closed unmerged stops further ones.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::Path;
use std::time::Duration;

use receiver_core::{Outcome, OutcomeKind, RefusalReason};
use serde_json::{Value, json};
use testkit::github::GithubEmulator;
use testkit::kube::Emulator;
use testkit::{Heal8s, TempDir, eventually};

const TOKEN: &str = "pr-e2e-token";
const REPO: &str = "acme/manifests";
const WAIT: Duration = Duration::from_secs(30);
const BRANCH: &str = "heal8s/bump-memory/prod/prod-api";

fn ago(secs: i64) -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(secs)).to_string()
}

/// The prod-api Deployment (of the fixture repository's prod overlay) as
/// the cluster runs it, with one pod that was OOM-killed.
fn seed_cluster(emu: &Emulator) {
    emu.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}}))
        .unwrap();
    let d = emu
        .create(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "prod-api", "namespace": "prod"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "api"}},
                     "template": {"metadata": {"labels": {"app": "api"}},
                                  "spec": {"containers": [{"name": "app", "image": "registry.example/api:1.1.0"}]}}}
        }))
        .unwrap();
    emu.create(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "prod-api-5f7c", "namespace": "prod",
            "annotations": {"deployment.kubernetes.io/revision": "2"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "prod-api",
                                 "uid": d["metadata"]["uid"], "controller": true}]},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "api"}},
                 "template": {"metadata": {"labels": {"app": "api"}},
                              "spec": {"containers": [{"name": "app", "image": "registry.example/api:1.1.0"}]}}}
    }))
    .unwrap();
    let rs = emu
        .get("apps/v1", "ReplicaSet", "prod", "prod-api-5f7c")
        .unwrap();
    emu.create(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "prod-api-5f7c-x1", "namespace": "prod", "labels": {"app": "api"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "prod-api-5f7c",
                                 "uid": rs["metadata"]["uid"], "controller": true}]},
        "spec": {"containers": [{"name": "app", "image": "registry.example/api:1.1.0"}]},
        "status": {"phase": "Running", "startTime": ago(600),
            "containerStatuses": [{"name": "app", "image": "registry.example/api:1.1.0", "imageID": "",
                "ready": true, "restartCount": 3, "state": {"running": {"startedAt": ago(30)}},
                "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137,
                                             "startedAt": ago(300), "finishedAt": ago(31)}}}]}
    }))
    .unwrap();
}

fn alert(starts_secs_ago: i64) -> Value {
    json!({"version": "4", "status": "firing", "receiver": "heal8s", "groupKey": "{}", "alerts": [{
        "status": "firing", "startsAt": ago(starts_secs_ago), "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": "c0ffee0000000001",
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=oom",
        "labels": {"alertname": "KubeContainerOOMKilled", "namespace": "prod",
                   "pod": "prod-api-5f7c-x1", "container": "app", "severity": "warning"},
        "annotations": {"summary": "container app was OOM-killed"}}]})
}

struct Setup {
    kube: Emulator,
    gh: GithubEmulator,
    heal8s: Heal8s,
    _dir: TempDir,
}

const OOM_ROUTE: &str = r#"  - name: oom-bump-memory
    matchers: ['alertname="KubeContainerOOMKilled"']
    remediation: bump-memory
    mode: pull-request
    params: {factor: 1.2, step: 100Mi, max: 8Gi, requests: match-limit}
"#;

async fn setup() -> Setup {
    setup_with(OOM_ROUTE).await
}

/// The emulations seeded, and a heal8s with these routes.
async fn setup_with(routes: &str) -> Setup {
    let kube = Emulator::start().await.unwrap();
    seed_cluster(&kube);
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
  pods: {{enabled: false}}
  nodes: {{enabled: false}}
routes:
{routes}"#
    );
    let (heal8s, dir) = Heal8s::start_against(TOKEN, &kube, &gh, &policy, &[])
        .await
        .unwrap();
    Setup {
        kube,
        gh,
        heal8s,
        _dir: dir,
    }
}

async fn post(h: &Heal8s, body: &Value) {
    assert_eq!(h.post_webhook(TOKEN, body).await, 200);
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

fn record(kube: &Emulator) -> Value {
    let records = kube.list("heal8s.io/v1alpha1", "Remediation", "prod");
    records
        .into_iter()
        .find(|r| r["spec"]["remediation"] == "bump-memory")
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oom_killed_pod_becomes_one_pull_request_updated_in_place_then_merged() {
    let s = setup().await;
    let h = &s.heal8s;

    // 1. the alert: one pull request, the memory raised minimally in the overlay patch
    let first = alert(120);
    post(h, &first).await;
    let acted = outcome(h, "the pull request", |o| o.result == OutcomeKind::Acted).await;
    assert_eq!(
        acted.pull_request.as_ref().map(|p| p.action.as_str()),
        Some("created"),
        "{acted:#?}"
    );
    let pulls = s.gh.pulls(REPO);
    assert_eq!(pulls.len(), 1, "{pulls:#?}");
    assert_eq!(pulls[0].head_ref, BRANCH);
    assert_eq!(pulls[0].labels, vec!["heal8s", "bump-memory", "env:prod"]);
    let body = pulls[0].body.clone().unwrap();
    assert!(
        body.contains("`alert KubeContainerOOMKilled` fired for `Deployment prod/prod-api`"),
        "{body}"
    );
    assert!(
        body.contains("<!-- heal8s-apply: -k overlays/prod -->"),
        "{body}"
    );
    // live evidence from the pod: restarts and the last OOM kill with its time
    assert!(body.contains("- `restarts: 3`\n"), "{body}");
    assert!(body.contains("- `last OOM kill: 20"), "{body}");
    assert!(body.contains("(exit code 137)"), "{body}");
    let file =
        s.gh.file(REPO, BRANCH, "overlays/prod/memory.yaml")
            .unwrap();
    // 512Mi: max(×1.2 = 614.4Mi, +100Mi) rounded up to 64Mi = 640Mi; requests match the limit
    assert!(file.contains("memory: 640Mi # prod traffic\n"), "{file}");
    assert!(
        file.contains("requests:\n              memory: 640Mi\n"),
        "{file}"
    );
    let main =
        s.gh.file(REPO, "main", "overlays/prod/memory.yaml")
            .unwrap();
    let changed: Vec<(&str, &str)> = main
        .lines()
        .zip(file.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(changed.len(), 1, "one existing line changed: {changed:?}");
    assert_eq!(
        file.lines().count(),
        main.lines().count() + 2,
        "two lines added (requests)"
    );

    // the record tracks the pull request
    let rec = eventually(WAIT, "a PROpen record", || async {
        let r = record(&s.kube);
        (r["status"]["phase"] == "PROpen").then_some(r)
    })
    .await
    .unwrap();
    assert_eq!(rec["status"]["pullRequest"]["number"], pulls[0].number);
    assert_eq!(rec["status"]["pullRequest"]["branch"], BRANCH);
    assert_eq!(rec["status"]["pullRequest"]["repository"], REPO);

    // 2. the same alert delivered a thousand times more: deduped, nothing written
    let writes = s.gh.requests().iter().filter(|r| r.mutating).count();
    for _ in 0..1000 {
        post(h, &first).await;
    }
    // each is answered at the door as a repeat, deduped, or coalesced with
    // the same alert still waiting in the queue (each counted apart); none
    // is dropped unaccounted
    eventually(WAIT, "1000 deduped deliveries", || async {
        let deduped = h.metric("heal8s_outcomes_total{result=\"deduped\"}").await;
        let repeated = h.metric("heal8s_alerts_repeated_total").await;
        let coalesced = h
            .metric("heal8s_signals_coalesced_total{source=\"alert\"}")
            .await;
        (deduped + repeated + coalesced >= 1000.0).then_some(())
    })
    .await
    .unwrap();
    assert_eq!(s.gh.pulls(REPO).len(), 1);
    assert_eq!(
        s.gh.requests().iter().filter(|r| r.mutating).count(),
        writes
    );

    // 3. someone raised the limit on main meanwhile; a new occurrence updates the same pull request
    let raised = main.replace("memory: 512Mi # prod traffic", "memory: 1Gi # prod traffic");
    s.gh.put_files(
        REPO,
        "main",
        &[("overlays/prod/memory.yaml", &raised)],
        "raise prod memory",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the cooldown
    post(h, &alert(20)).await;
    let updated = outcome(h, "the updated pull request", |o| {
        o.pull_request.as_ref().map(|p| p.action.as_str()) == Some("updated")
    })
    .await;
    assert_eq!(
        updated.pull_request.as_ref().map(|p| p.number),
        Some(pulls[0].number)
    );
    assert_eq!(s.gh.pulls(REPO).len(), 1);
    let file =
        s.gh.file(REPO, BRANCH, "overlays/prod/memory.yaml")
            .unwrap();
    // 1Gi ×1.2 = 1228.8Mi → 1280Mi, written in Mi as it is not a whole number of Gi
    assert!(file.contains("memory: 1280Mi # prod traffic\n"), "{file}");

    // 4. merged: the record follows
    s.gh.merge_pull(REPO, pulls[0].number).unwrap();
    let rec = eventually(WAIT, "a Merged record", || async {
        let r = record(&s.kube);
        (r["status"]["phase"] == "Merged").then_some(r)
    })
    .await;
    let rec = match rec {
        Ok(r) => r,
        Err(e) => panic!("{e}\n{:#}\n{}", record(&s.kube), h.proc.output()),
    };
    assert_eq!(rec["status"]["reason"], "Merged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_request_closed_unmerged_stops_further_ones() {
    let s = setup().await;
    let h = &s.heal8s;
    post(h, &alert(120)).await;
    outcome(h, "the pull request", |o| o.result == OutcomeKind::Acted).await;
    let number = s.gh.pulls(REPO)[0].number;
    s.gh.close_pull(REPO, number).unwrap();
    let rec = eventually(WAIT, "a Declined record", || async {
        let r = record(&s.kube);
        (r["status"]["reason"] == "Declined").then_some(r)
    })
    .await
    .unwrap();
    assert_eq!(rec["status"]["phase"], "Refused");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    post(h, &alert(10)).await;
    let deferred = outcome(h, "a deferred outcome", |o| {
        o.result == OutcomeKind::Deferred
    })
    .await;
    assert_eq!(
        deferred.deferred.as_deref(),
        Some("Declined"),
        "{deferred:#?}"
    );
    assert_eq!(s.gh.pulls(REPO).len(), 1, "no second pull request");
    assert_eq!(s.gh.pull(REPO, number).unwrap().state, "closed");
}

/// A crash loop that began with a new image: the pull request sets the image
/// of the previous revision, in the overlay's `images:` entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_release_is_rolled_back_to_the_previous_revisions_image() {
    let s = setup_with(
        "  - {matchers: ['alertname=\"KubePodCrashLooping\"'], remediation: rollback-image, mode: pull-request}\n",
    )
    .await;
    add_revision_one(&s.kube);
    let h2 = &s.heal8s;
    let mut crash = alert(60);
    crash["alerts"][0]["labels"]["alertname"] = json!("KubePodCrashLooping");
    post(h2, &crash).await;
    let acted = outcome(h2, "the rollback pull request", |o| {
        o.result == OutcomeKind::Acted
    })
    .await;
    assert_eq!(
        acted.pull_request.as_ref().map(|p| p.branch.as_str()),
        Some("heal8s/rollback-image/prod/prod-api"),
        "{acted:#?}"
    );
    let k =
        s.gh.file(
            REPO,
            "heal8s/rollback-image/prod/prod-api",
            "overlays/prod/kustomization.yaml",
        )
        .unwrap();
    assert!(k.contains("newTag: \"1.0.0\" # promoted on Monday"), "{k}");
}

/// The older revision of prod-api, which ran 1.0.0 (the current one,
/// revision 2, runs 1.1.0).
fn add_revision_one(kube: &Emulator) {
    let d = kube
        .get("apps/v1", "Deployment", "prod", "prod-api")
        .unwrap();
    kube.create(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "prod-api-4a1b", "namespace": "prod",
            "annotations": {"deployment.kubernetes.io/revision": "1"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "prod-api",
                                 "uid": d["metadata"]["uid"], "controller": true}]},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "api"}},
                 "template": {"metadata": {"labels": {"app": "api"}},
                              "spec": {"containers": [{"name": "app", "image": "registry.example/api:1.0.0"}]}}}
    }))
    .unwrap();
}

/// Revision 2 of prod-api (1.1.0) again, as if rolled out `secs` ago.
fn roll_out_revision_two(kube: &Emulator, secs: i64) {
    let mut rs = kube
        .get("apps/v1", "ReplicaSet", "prod", "prod-api-5f7c")
        .unwrap();
    kube.delete("apps/v1", "ReplicaSet", "prod", "prod-api-5f7c")
        .unwrap();
    let meta = rs["metadata"].as_object_mut().unwrap();
    for k in ["uid", "resourceVersion", "generation"] {
        meta.remove(k);
    }
    meta.insert("creationTimestamp".into(), json!(ago(secs)));
    let uid = kube.create(rs).unwrap()["metadata"]["uid"].clone();
    // its pods are the new ReplicaSet's, as its controller would have made them
    for p in kube.list("v1", "Pod", "prod") {
        let name = p["metadata"]["name"].as_str().unwrap().to_string();
        kube.modify("v1", "Pod", "prod", &name, |p| {
            p["metadata"]["ownerReferences"][0]["uid"] = uid.clone();
        })
        .unwrap();
    }
}

/// A rollback is proposed only for a release that is recent when the crash
/// loop starts (the route's `maxRolloutAge`): a crash loop hours after a
/// rollout did not start with it, and rolling back would not fix it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_older_than_max_rollout_age_is_not_rolled_back() {
    let s = setup_with(
        "  - {matchers: ['alertname=\"KubePodCrashLooping\"'], remediation: rollback-image, mode: pull-request, params: {maxRolloutAge: 1h}}\n",
    )
    .await;
    add_revision_one(&s.kube);
    roll_out_revision_two(&s.kube, 3 * 3600);
    let h = &s.heal8s;
    let crash = |starts_secs_ago: i64| {
        let mut a = alert(starts_secs_ago);
        a["alerts"][0]["labels"]["alertname"] = json!("KubePodCrashLooping");
        a
    };
    post(h, &crash(60)).await;
    let refused = outcome(h, "a refusal", |o| o.result == OutcomeKind::Refused).await;
    assert_eq!(
        refused.reason,
        Some(RefusalReason::ConditionCleared),
        "{refused:#?}"
    );
    let why = &refused.message;
    assert!(why.contains("maxRolloutAge 1h"), "{why}");
    assert!(why.contains("revision 2"), "{why}");
    assert!(s.gh.pulls(REPO).is_empty(), "no pull request");
    // the same release rolled out 10 minutes before the crash loop: rolled back
    roll_out_revision_two(&s.kube, 11 * 60);
    post(h, &crash(60 - 1)).await;
    let acted = outcome(h, "the rollback pull request", |o| {
        o.result == OutcomeKind::Acted
    })
    .await;
    assert_eq!(
        acted.pull_request.as_ref().map(|p| p.branch.as_str()),
        Some("heal8s/rollback-image/prod/prod-api"),
        "{acted:#?}"
    );
}

/// An OOMKilled alert about a container that was never OOM-killed (stale,
/// misrouted or forged) opens no pull request: the live pod is the truth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oom_alert_about_a_container_without_an_oom_kill_opens_no_pull_request() {
    let s = setup().await;
    let rs = s
        .kube
        .get("apps/v1", "ReplicaSet", "prod", "prod-api-5f7c")
        .unwrap();
    s.kube
        .create(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "prod-api-5f7c-x2", "namespace": "prod", "labels": {"app": "api"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "prod-api-5f7c",
                                     "uid": rs["metadata"]["uid"], "controller": true}]},
            "spec": {"containers": [{"name": "app", "image": "registry.example/api:1.1.0"}]},
            "status": {"phase": "Running", "startTime": ago(600),
                "containerStatuses": [{"name": "app", "image": "registry.example/api:1.1.0", "imageID": "",
                    "ready": true, "restartCount": 0, "state": {"running": {"startedAt": ago(600)}}}]}
        }))
        .unwrap();
    let h = &s.heal8s;
    let mut healthy = alert(120);
    healthy["alerts"][0]["labels"]["pod"] = json!("prod-api-5f7c-x2");
    healthy["alerts"][0]["fingerprint"] = json!("c0ffee0000000002");
    post(h, &healthy).await;
    let refused = outcome(h, "a refusal", |o| o.result == OutcomeKind::Refused).await;
    assert_eq!(
        refused.reason,
        Some(RefusalReason::ConditionCleared),
        "{refused:#?}"
    );
    assert!(
        refused
            .message
            .contains("container app of pod prod/prod-api-5f7c-x2 shows no OOM kill"),
        "{refused:#?}"
    );
    assert!(s.gh.pulls(REPO).is_empty(), "no pull request");
    assert!(
        s.gh.requests().iter().all(|r| !r.mutating),
        "nothing written to GitHub"
    );
    // the pod that was OOM-killed still gets its pull request
    post(h, &alert(120)).await;
    outcome(h, "the pull request", |o| o.result == OutcomeKind::Acted).await;
    assert_eq!(s.gh.pulls(REPO).len(), 1);
}

/// An HPA below its ceiling (the alert is stale or forged) gets no pull request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hpa_below_its_ceiling_gets_no_pull_request() {
    let s = setup_with(
        "  - {matchers: ['alertname=\"KubeHpaMaxedOut\"'], remediation: scale-up, mode: pull-request}\n",
    )
    .await;
    s.kube
        .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}))
        .unwrap();
    s.kube
        .create(json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "minReplicas": 2, "maxReplicas": 6},
            "status": {"currentReplicas": 3, "desiredReplicas": 3}
        }))
        .unwrap();
    let mut maxed = alert(60);
    maxed["alerts"][0]["labels"] = json!({"alertname": "KubeHpaMaxedOut", "namespace": "shop",
                                          "horizontalpodautoscaler": "web"});
    post(&s.heal8s, &maxed).await;
    let refused = outcome(&s.heal8s, "a refusal", |o| o.result == OutcomeKind::Refused).await;
    assert_eq!(
        refused.reason,
        Some(RefusalReason::ConditionCleared),
        "{refused:#?}"
    );
    assert!(
        refused.message.contains("runs 3 of maxReplicas 6"),
        "{refused:#?}"
    );
    assert!(s.gh.pulls(REPO).is_empty(), "no pull request");
}

/// An HPA held at its ceiling: the pull request raises `maxReplicas` in the
/// HPA's own manifest, and says since when it has been at the maximum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maxed_out_hpa_gets_a_higher_ceiling() {
    let s = setup_with(
        "  - {matchers: ['alertname=\"KubeHpaMaxedOut\"'], remediation: scale-up, mode: pull-request, params: {percent: 50, maxReplicas: 20}}\n",
    )
    .await;
    s.kube
        .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}))
        .unwrap();
    let since = ago(900);
    s.kube
        .create(json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "minReplicas": 2, "maxReplicas": 6},
            "status": {"currentReplicas": 6, "desiredReplicas": 6,
                "conditions": [{"type": "ScalingLimited", "status": "True", "reason": "TooManyReplicas",
                                "lastTransitionTime": since}]}
        }))
        .unwrap();
    let mut maxed = alert(60);
    maxed["alerts"][0]["labels"] = json!({"alertname": "KubeHpaMaxedOut", "namespace": "shop",
                                          "horizontalpodautoscaler": "web"});
    post(&s.heal8s, &maxed).await;
    let acted = outcome(&s.heal8s, "the scale-up pull request", |o| {
        o.result == OutcomeKind::Acted
    })
    .await;
    assert_eq!(
        acted.pull_request.as_ref().map(|p| p.branch.as_str()),
        Some("heal8s/scale-up/shop/web"),
        "{acted:#?}"
    );
    let hpa =
        s.gh.file(REPO, "heal8s/scale-up/shop/web", "apps/web/hpa.yaml")
            .unwrap();
    assert!(
        hpa.contains("maxReplicas: 9 # sized for the spring sale"),
        "6 + 50%: {hpa}"
    );
    let pr =
        s.gh.pulls(REPO)
            .into_iter()
            .find(|p| p.head_ref == "heal8s/scale-up/shop/web")
            .unwrap();
    let body = pr.body.unwrap();
    assert!(body.contains("- `replicas: 6 of maxReplicas 6`"), "{body}");
    assert!(
        body.contains(&format!("- `held at maxReplicas since {since}`")),
        "{body}"
    );
    assert!(
        body.contains("<!-- heal8s-apply: -f apps/web/hpa.yaml -->"),
        "{body}"
    );
}
