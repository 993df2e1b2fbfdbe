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
//! A second test has the real Prometheus scrape a real heal8s (job `heal8s`,
//! as the chart's ServiceMonitor names it) and shows heal8s's own rules fire
//! on the first event heal8s ever counts.
//!
//! Needs `prometheus` and `prometheus-alertmanager` (`.ci/run` installs them).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::Path;
use std::time::Duration;

use receiver_core::{AlertStatus, Outcome, OutcomeKind, RefusalReason, RemediationKind};
use serde_json::{Value, json};
use testkit::github::GithubEmulator;
use testkit::kube::Emulator;
use testkit::prometheus::{Exporter, Prometheus};
use testkit::scenario::{self, CRASHLOOP_POD, PodState, PodUids, Problems, REPOSITORY};
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

    // Prometheus labels its alerts `cluster: e2e` (external_labels)
    let (h, _files) = Heal8s::start_against(
        TOKEN,
        &kube,
        &gh,
        &policy(),
        &["--cluster-name", "e2e", "--verify-stable-for", "1s"],
    )
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
    // heal8s is scraped too, as in a cluster (Heal8sDown stays quiet)
    let heal8s_target = h.url.trim_start_matches("http://").to_string();
    let prom = Prometheus::start_scraping(
        &exporter.target,
        Some(&heal8s_target),
        &fast_rules(),
        &am_target,
    )
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
        .find(|o| o.name == "KubePodCrashLooping" && o.result == OutcomeKind::Acted)
        .unwrap_or_else(|| panic!("no acted KubePodCrashLooping outcome"));
    assert_eq!(acted.route.as_deref(), Some("crashloop-delete"));
    assert_eq!(acted.remediation, Some(RemediationKind::DeletePod));
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

    // 3. the crash loop stops being reported: Prometheus resolves the alert
    //    and Alertmanager sends the resolved webhook. The pod's alert resolved
    //    because heal8s deleted the pod, which is no evidence: the record
    //    notes it and waits for the Deployment's own recovery
    exporter.set(scenario::kube_state_metrics(&uids, false, 4));
    let noted = eventually(WAIT, "the resolved alert noted on the record", || async {
        kube.list("heal8s.io/v1alpha1", "Remediation", "shop")
            .into_iter()
            .find(|r| r["spec"]["remediation"] == "delete-pod")
            .filter(|r| {
                r["status"]["history"].as_array().is_some_and(|h| {
                    h.iter().any(|e| {
                        e["message"]
                            .as_str()
                            .is_some_and(|m| m.contains("no evidence of recovery"))
                    })
                })
            })
    })
    .await;
    let noted = match noted {
        Ok(r) => r,
        Err(e) => panic!("{}", context(&e.to_string()).await),
    };
    assert_eq!(noted["status"]["phase"], "Acting", "{noted:#}");
    // the Deployment controller (played here) brings api back to 1/1 ready
    kube.modify("apps/v1", "Deployment", "shop", "api", |d| {
        d["status"]["readyReplicas"] = json!(1);
        d["status"]["availableReplicas"] = json!(1);
    })
    .unwrap();
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
    assert_eq!(settled, (json!("Succeeded"), json!("Recovered")));
    let resolved: Vec<Outcome> = h
        .outcomes()
        .await
        .into_iter()
        .filter(|o| o.name == "KubePodCrashLooping" && o.status == AlertStatus::Resolved)
        .collect();
    assert!(!resolved.is_empty(), "no resolved outcome");
    assert!(
        h.metric("heal8s_alerts_received_total{status=\"resolved\"}")
            .await
            >= 1.0
    );
}

/// A firing `KubePodCrashLooping` delivery for `pod` (container `container`)
/// in `shop`, as Alertmanager sends it, labelled with the e2e cluster.
fn crashlooping(pod: &str, container: &str, fingerprint: &str) -> Value {
    let now = jiff::Timestamp::now().to_string();
    json!({"version": "4", "status": "firing", "receiver": "heal8s", "groupKey": "{}", "alerts": [{
        "status": "firing", "startsAt": now, "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": fingerprint,
        "generatorURL": "http://prometheus.e2e:9090/graph",
        "labels": {"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": pod,
                   "container": container, "severity": "warning", "cluster": "e2e",
                   "job": "kube-state-metrics"},
        "annotations": {}}]})
}

/// The first global-budget refusal a heal8s ever makes fires
/// `Heal8sBudgetExhausted` in a real Prometheus scraping that heal8s: the
/// refusal counter was scraped at 0 before it (a counter that appeared at 1
/// would show no `increase()`, and the alert would never fire).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_prometheus_fires_budget_exhausted_on_the_first_refusal_of_a_real_heal8s() {
    let kube = Emulator::start().await.unwrap();
    scenario::seed(
        &kube,
        Problems {
            crashloop: true,
            oom: false,
            node: false,
            vm: false,
            namespace: false,
            protected: false,
        },
    )
    .unwrap();
    // a second crash-looping workload: the one action the budget allows goes
    // to api, so cart's pod is refused
    let image = "registry.example/shop/cart:3.1.0";
    scenario::workload(&kube, "shop", "cart", "6c4d", image, json!({}), 1, 0).unwrap();
    kube.create(scenario::pod(
        "shop",
        "cart-6c4d-z9",
        "cart",
        "6c4d",
        "cart",
        image,
        json!({}),
        "w1",
        PodState::CrashLoop,
    ))
    .unwrap();
    let gh = GithubEmulator::start().await.unwrap();
    gh.create_repo("acme", "manifests", 7).unwrap();
    let old = "global: {max: 30, per: 1m}";
    let policy = policy();
    assert!(policy.contains(old));
    let policy = policy.replace(old, "global: {max: 1, per: 1h}");
    let (h, _files) = Heal8s::start_against(TOKEN, &kube, &gh, &policy, &["--cluster-name", "e2e"])
        .await
        .unwrap();
    let am = Alertmanager::start(
        &format!("{}/webhook/alertmanager", h.url),
        TOKEN,
        AmTiming::default(),
    )
    .await
    .unwrap();
    // no kube-state-metrics series: every alert here is heal8s's own
    let exporter = Exporter::start(String::new()).await.unwrap();
    let am_target = am.url.trim_start_matches("http://").to_string();
    let heal8s_target = h.url.trim_start_matches("http://").to_string();
    let prom = Prometheus::start_scraping(
        &exporter.target,
        Some(&heal8s_target),
        &fast_rules(),
        &am_target,
    )
    .await
    .unwrap();
    let context = |what: &str| {
        let (h, prom) = (&h, &prom);
        let what = what.to_string();
        async move {
            format!(
                "{what}\nprometheus alerts: {:?}\noutcomes: {:#?}\n--- heal8s ---\n{}\n--- prometheus ---\n{}",
                prom.alerts().await,
                h.outcomes().await,
                h.proc.output(),
                prom.log()
            )
        }
    };

    // 1. Prometheus sees the refusal counter of a heal8s that has refused nothing, at 0
    let refusals = r#"heal8s_guard_refusals_total{job="heal8s", reason="global_budget"}"#;
    let zero = eventually(WAIT, "the budget refusal counter scraped at 0", || async {
        let samples = prom.query(refusals).await;
        (samples.len() == 1 && samples[0].1 == 0.0).then_some(())
    })
    .await;
    if let Err(e) = zero {
        panic!("{}", context(&e.to_string()).await);
    }
    assert!(
        prom.alerts()
            .await
            .iter()
            .all(|(name, _)| name != "Heal8sBudgetExhausted"),
        "fired before any refusal"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 2. one action is allowed, the next one is the first refusal ever
    assert_eq!(
        h.post_webhook(
            TOKEN,
            &crashlooping(CRASHLOOP_POD, "api", "00000000000000a1")
        )
        .await,
        200
    );
    assert_eq!(
        h.post_webhook(
            TOKEN,
            &crashlooping("cart-6c4d-z9", "cart", "00000000000000b2")
        )
        .await,
        200
    );
    let refused = eventually(WAIT, "the global_budget refusal", || async {
        h.outcomes()
            .await
            .into_iter()
            .find(|o| o.reason == Some(RefusalReason::GlobalBudget))
    })
    .await;
    if let Err(e) = refused {
        panic!("{}", context(&e.to_string()).await);
    }
    assert_eq!(
        h.metric(r#"heal8s_guard_refusals_total{reason="global_budget"}"#)
            .await,
        1.0
    );

    // 3. the real Prometheus, evaluating the shipped rule on the real series, fires
    let fired = eventually(WAIT, "Heal8sBudgetExhausted to fire", || async {
        prom.alerts()
            .await
            .into_iter()
            .find(|(name, state)| name == "Heal8sBudgetExhausted" && state == "firing")
    })
    .await;
    if let Err(e) = fired {
        panic!("{}", context(&e.to_string()).await);
    }
}
