//! The full chain with real components: kube-state-metrics series (a static
//! exporter) → a real Prometheus evaluating the shipped rules → a real
//! Alertmanager routing to heal8s with a bearer token → `heal8s serve`
//! against the Kubernetes and GitHub emulations. The crash-looping pod is
//! deleted, the OOM-killed container gets a pull request, and when the crash
//! loop stops being reported the resolved webhook completes verification.
//!
//! The rules are `examples/prometheus/heal8s-rules.yaml` with only their time
//! windows shortened (`for:` to 0s, `[5m]`/`[10m]` ranges to seconds), so the
//! chain runs in seconds, not a quarter of an hour. heal8s's own detectors
//! are off: everything it does here comes through Alertmanager.
//!
//! Needs `prometheus` and `prometheus-alertmanager` (`.ci/run` installs them).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use testkit::github::GithubEmulator;
use testkit::kube::Emulator;
use testkit::prometheus::{Exporter, Prometheus};
use testkit::scenario::{self, CRASHLOOP_POD, PodUids, Problems, REPOSITORY};
use testkit::{Alertmanager, AmTiming, Heal8s, eventually};

const TOKEN: &str = "chain-e2e-token-5e1f";
const WAIT: Duration = Duration::from_secs(60);

/// The shipped rules with their windows shortened; each substitution must
/// hit, so a change to the shipped file cannot silently bypass this test.
fn fast_rules() -> String {
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/prometheus/heal8s-rules.yaml"),
    )
    .unwrap();
    let mut rules = shipped.clone();
    for (from, to, at_least) in [
        ("for: 15m", "for: 0s", 3),
        ("[5m]", "[5s]", 1),
        ("[10m]", "[10s]", 2),
    ] {
        let n = rules.matches(from).count();
        assert!(
            n >= at_least,
            "{from:?} found {n} times in the shipped rules"
        );
        rules = rules.replace(from, to);
    }
    rules
}

/// The scenario's policy with every detector off.
fn policy() -> String {
    let p = scenario::POLICY;
    let old = "detectors:\n  resync: 2s\n  namespaces:\n";
    assert!(p.contains(old));
    p.replace(
        old,
        "detectors:\n  resync: 2s\n  pods: {enabled: false}\n  nodes: {enabled: false}\n  \
         virtualMachines: {enabled: false}\n  customResources: {enabled: false}\n  namespaces:\n    enabled: false\n",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_prometheus_chain_deletes_the_crashlooping_pod_opens_a_pr_and_verifies_on_resolve() {
    let kube = Emulator::start().await.unwrap();
    scenario::seed(
        &kube,
        Problems {
            crashloop: true,
            oom: true,
            node: false,
            vm: false,
            namespace: false,
            protected: false,
        },
    )
    .unwrap();
    let uids = PodUids::read(&kube).unwrap();
    let gh = GithubEmulator::start().await.unwrap();
    gh.create_repo("acme", "manifests", 7).unwrap();
    gh.put_files(
        REPOSITORY,
        "main",
        &scenario::manifest_files(),
        "the shop's manifests",
    )
    .unwrap();

    let (h, _files) = Heal8s::start_against(TOKEN, &kube, &gh, &policy(), &[])
        .await
        .unwrap();
    let am = Alertmanager::start(
        &format!("{}/webhook/alertmanager", h.url),
        TOKEN,
        AmTiming::default(),
    )
    .await
    .unwrap();
    let exporter = Exporter::start(scenario::kube_state_metrics(&uids, true, 3))
        .await
        .unwrap();
    let am_target = am.url.trim_start_matches("http://").to_string();
    let prom = Prometheus::start(&exporter.target, &fast_rules(), &am_target)
        .await
        .unwrap();
    let context = |what: &str| {
        let h = &h;
        let am = &am;
        let prom = &prom;
        let what = what.to_string();
        async move {
            format!(
                "{what}\nprometheus alerts: {:?}\noutcomes: {:#?}\n--- heal8s ---\n{}\n--- alertmanager ---\n{}\n--- prometheus ---\n{}",
                prom.alerts().await,
                h.outcomes().await,
                h.proc.output(),
                am.log(),
                prom.log()
            )
        }
    };
    // once Prometheus has scraped the restart counter, the container restarts
    // once more: the OOM rule's increase() sees it
    let scraped = eventually(WAIT, "the first scrape", || async {
        (prom
            .series("kube_pod_container_status_restarts_total")
            .await
            > 0)
        .then_some(())
    })
    .await;
    if let Err(e) = scraped {
        panic!("{}", context(&e.to_string()).await);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    exporter.set(scenario::kube_state_metrics(&uids, true, 4));

    // 1. the crash-looping pod is deleted, on the word of Prometheus's alert
    let deleted = eventually(WAIT, "the crash-looping pod to be deleted", || async {
        kube.get("v1", "Pod", "shop", CRASHLOOP_POD)
            .is_none()
            .then_some(())
    })
    .await;
    if let Err(e) = deleted {
        panic!("{}", context(&e.to_string()).await);
    }
    let acted = h
        .outcomes()
        .await
        .into_iter()
        .find(|o| o["name"] == "KubePodCrashLooping" && o["result"] == "acted")
        .unwrap_or_else(|| panic!("no acted KubePodCrashLooping outcome"));
    assert_eq!(acted["route"], "crashloop-delete");
    assert_eq!(acted["remediation"], "delete-pod");
    assert!(
        kube.get("v1", "Pod", "shop", "checkout-5b8f-q4").is_some(),
        "the OOM-killed pod is not deleted: its fix is declarative"
    );

    // 2. the OOM kill becomes a pull request raising the memory in checkout.yaml
    let pr = eventually(WAIT, "the bump-memory pull request", || async {
        gh.pulls(REPOSITORY)
            .into_iter()
            .find(|p| p.head_ref == "heal8s/bump-memory/shop/checkout")
    })
    .await;
    let pr = match pr {
        Ok(p) => p,
        Err(e) => panic!("{}", context(&e.to_string()).await),
    };
    assert_eq!(pr.state, "open");
    let body = pr.body.clone().unwrap_or_default();
    assert!(body.contains("KubeContainerOOMKilled"), "{body}");
    let before = gh
        .file(REPOSITORY, "main", "apps/shop/checkout.yaml")
        .unwrap();
    let after = gh
        .file(REPOSITORY, &pr.head_ref, "apps/shop/checkout.yaml")
        .unwrap();
    let changed: Vec<(&str, &str)> = before
        .lines()
        .zip(after.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(before.lines().count(), after.lines().count());
    // 256Mi × 1.25 = 320Mi < 256Mi + 128Mi: the step wins; requests scale by 1.25
    assert_eq!(
        changed,
        vec![
            ("              memory: 192Mi", "              memory: 240Mi"),
            (
                "              memory: 256Mi # raise with care: the node pool is small",
                "              memory: 384Mi # raise with care: the node pool is small"
            ),
        ],
        "after:\n{after}"
    );

    // 3. the crash loop stops being reported: Prometheus resolves the alert,
    //    Alertmanager sends the resolved webhook, and the record settles on it
    exporter.set(scenario::kube_state_metrics(&uids, false, 4));
    let settled = eventually(WAIT, "the delete-pod record to settle", || async {
        kube.list("heal8s.io/v1alpha1", "Remediation", "shop")
            .into_iter()
            .find(|r| r["spec"]["remediation"] == "delete-pod")
            .filter(|r| r["status"]["phase"] != "Acting")
            .map(|r| (r["status"]["phase"].clone(), r["status"]["reason"].clone()))
    })
    .await;
    let settled = match settled {
        Ok(s) => s,
        Err(e) => panic!("{}", context(&e.to_string()).await),
    };
    assert_eq!(settled, (json!("Succeeded"), json!("AlertResolved")));
    let resolved: Vec<Value> = h
        .outcomes()
        .await
        .into_iter()
        .filter(|o| o["name"] == "KubePodCrashLooping" && o["status"] == "resolved")
        .collect();
    assert!(!resolved.is_empty(), "no resolved outcome");
    assert!(
        h.metric("heal8s_alerts_received_total{status=\"resolved\"}")
            .await
            >= 1.0
    );
}
