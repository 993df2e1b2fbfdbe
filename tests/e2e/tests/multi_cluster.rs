//! One heal8s serving two clusters (issue 14): two Kubernetes API emulations
//! at once, reached through a kubeconfig context and a kubeconfig file. The
//! alert's `cluster` label picks the cluster; each has its own guard and
//! budgets, records, pause ConfigMap and detectors (off for one); an alert
//! naming no served cluster, or none at all, is refused `unknown_cluster`
//! and changes nothing anywhere.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::Duration;

use receiver_core::{OutcomeKind, RefusalReason};
use serde_json::{Value, json};
use testkit::kube::{Controller, Emulator};
use testkit::{Heal8s, TempDir, eventually};

const TOKEN: &str = "multi-token";
const WAIT: Duration = Duration::from_secs(30);

fn ago(secs: i64) -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(secs)).to_string()
}

fn crashloop(cluster: Option<&str>, pod: &str, fingerprint: &str) -> Value {
    let mut labels = json!({"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": pod});
    if let Some(c) = cluster {
        labels["cluster"] = c.into();
    }
    json!({"version": "4", "status": "firing", "receiver": "heal8s", "groupKey": "{}",
        "alerts": [{"status": "firing", "startsAt": ago(300), "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": fingerprint, "labels": labels}]})
}

/// A cluster with a node and crash-looping pods `shop/api-1..=n`.
async fn cluster(pods: usize) -> Emulator {
    let emu = Emulator::start().await.unwrap();
    let pods: Vec<String> = (1..=pods).map(|i| format!("api-{i}")).collect();
    let pods: Vec<&str> = pods.iter().map(String::as_str).collect();
    testkit::scenario::seed_crash_loops(&emu, &["heal8s", "shop"], &pods).unwrap();
    emu
}

fn pod(emu: &Emulator, name: &str) -> bool {
    emu.get("v1", "Pod", "shop", name).is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_heal8s_serves_two_clusters_each_with_its_own_guard() {
    let (east, west) = (cluster(4).await, cluster(4).await);
    let _played = (
        east.play(&[Controller::Kubelet]),
        west.play(&[Controller::Kubelet]),
    );
    // west is paused by its own ConfigMap; east is not
    west.create(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "heal8s-pause", "namespace": "heal8s"},
        "data": {"reason": "west freeze", "by": "sre"}}))
        .unwrap();
    let dir = TempDir::new("multi-cluster");
    // one kubeconfig with both contexts, whose *current* context is west:
    // east is reached only if its context is honoured
    let both = dir.path().join("kubeconfig");
    std::fs::write(
        &both,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: east\n  cluster: {{server: '{}'}}\n- name: west\n  cluster: {{server: '{}'}}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: east-ctx\n  context: {{cluster: east, user: u}}\n- name: west-ctx\n  context: {{cluster: west, user: u}}\ncurrent-context: west-ctx\n",
            east.url(),
            west.url()
        ),
    )
    .unwrap();
    let west_file = dir.path().join("west.kubeconfig");
    west.write_kubeconfig(&west_file).unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "guard:\n  cooldown: 1s\n  budgets: {{global: {{max: 1, per: 1h}}}}\nclusters:\n- {{name: east, context: east-ctx}}\n- {{name: west, kubeconfig: '{}', detectors: false}}\nroutes:\n- {{name: crashloop, matchers: ['alertname=\"KubePodCrashLooping\"'], remediation: delete-pod}}\n",
            west_file.display()
        ),
    )
    .unwrap();
    let h = Heal8s::start(
        TOKEN,
        &[
            "--kubeconfig",
            both.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
        ],
    )
    .await
    .unwrap();
    let fail = |what: &str| format!("{what}\n--- heal8s ---\n{}", h.proc.output());

    // an alert for east acts in east only, though west has a pod of that name
    h.post_webhook(TOKEN, &crashloop(Some("east"), "api-1", "e000000000000001"))
        .await;
    eventually(WAIT, "east's api-1 deleted", || async {
        (!pod(&east, "api-1")).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{}", fail(&e.to_string())));
    assert!(pod(&west, "api-1"), "west untouched");

    // no cluster label, and a cluster not served: refused, nothing changes
    h.post_webhook(TOKEN, &crashloop(None, "api-2", "e000000000000002"))
        .await;
    h.post_webhook(
        TOKEN,
        &crashloop(Some("north"), "api-2", "e000000000000003"),
    )
    .await;
    let refused = eventually(WAIT, "two unknown_cluster refusals", || async {
        let r: Vec<_> = h
            .outcomes()
            .await
            .into_iter()
            .filter(|o| o.reason == Some(RefusalReason::UnknownCluster))
            .collect();
        (r.len() == 2).then_some(r)
    })
    .await
    .unwrap_or_else(|e| panic!("{}", fail(&e.to_string())));
    assert!(
        refused
            .iter()
            .any(|o| o.message.contains("no cluster label"))
    );
    assert!(refused.iter().any(|o| o.message.contains("\"north\"")));
    assert!(refused.iter().all(|o| o.cluster.is_none()));

    // budgets are per cluster: east spent its one, so east's next is refused
    h.post_webhook(TOKEN, &crashloop(Some("east"), "api-3", "e000000000000004"))
        .await;
    eventually(WAIT, "east's budget refusal", || async {
        h.outcomes().await.into_iter().find(|o| {
            o.reason == Some(RefusalReason::GlobalBudget)
                && o.cluster.as_deref() == Some("east")
                && o.target.as_deref() == Some("Pod shop/api-3")
        })
    })
    .await
    .unwrap_or_else(|e| panic!("{}", fail(&e.to_string())));

    // west is paused by its ConfigMap: refused there, while east was not
    h.post_webhook(TOKEN, &crashloop(Some("west"), "api-1", "e000000000000005"))
        .await;
    let paused = eventually(WAIT, "west's paused refusal", || async {
        h.outcomes()
            .await
            .into_iter()
            .find(|o| o.reason == Some(RefusalReason::Paused))
    })
    .await
    .unwrap_or_else(|e| panic!("{}", fail(&e.to_string())));
    assert_eq!(paused.cluster.as_deref(), Some("west"));
    assert!(paused.message.contains("west freeze"), "{}", paused.message);
    // resumed (the ConfigMap deleted), west acts with a budget of its own
    west.delete("v1", "ConfigMap", "heal8s", "heal8s-pause")
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    h.post_webhook(TOKEN, &crashloop(Some("west"), "api-4", "e000000000000006"))
        .await;
    eventually(WAIT, "west's api-4 deleted", || async {
        (!pod(&west, "api-4")).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{}", fail(&e.to_string())));
    for p in ["api-1", "api-2", "api-3"] {
        assert!(pod(&west, p), "west's {p} untouched");
    }
    for p in ["api-2", "api-3", "api-4"] {
        assert!(pod(&east, p), "east's {p} untouched");
    }
    let acted: Vec<_> = h
        .outcomes()
        .await
        .into_iter()
        .filter(|o| o.result == OutcomeKind::Acted)
        .map(|o| (o.cluster.unwrap_or_default(), o.target.unwrap_or_default()))
        .collect();
    assert_eq!(
        acted,
        vec![
            ("east".to_string(), "Pod shop/api-1".to_string()),
            ("west".to_string(), "Pod shop/api-4".to_string())
        ]
    );

    // each cluster keeps its own records (a lone pod: its recovery cannot be told)
    let records = |emu: &Emulator| -> Vec<String> {
        emu.list("heal8s.io/v1alpha1", "Remediation", "shop")
            .into_iter()
            .filter(|r| r["status"]["phase"] == "Unverified")
            .map(|r| {
                r["spec"]["target"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    };
    eventually(WAIT, "a record in each cluster", || async {
        (records(&east) == ["api-1"] && records(&west) == ["api-4"]).then_some(())
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{}\neast: {:#?}\nwest: {:#?}",
            fail(&e.to_string()),
            east.list("heal8s.io/v1alpha1", "Remediation", "shop"),
            west.list("heal8s.io/v1alpha1", "Remediation", "shop")
        )
    });

    // detectors watch east only (west: detectors: false)
    let watched_pods = |emu: &Emulator| {
        emu.requests()
            .iter()
            .any(|r| r.verb == "watch" && r.path.ends_with("/pods"))
    };
    assert!(watched_pods(&east), "east's pods are watched");
    assert!(!watched_pods(&west), "west's detectors are off");
    assert!(h.proc.output().contains("east, west"));
    // each cluster's summary names its own connection and cluster
    let banner = |log: &str, cluster: &str, context: &str| {
        log.lines().any(|l| {
            l.contains(&format!("cluster{{cluster={cluster}}}"))
                && l.contains(&format!("kubeconfig context {context}"))
        })
    };
    eventually(WAIT, "each cluster's summary", || async {
        let log = h.proc.output();
        (banner(&log, "east", "east-ctx") && banner(&log, "west", "heal8s-emulator")).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{}", fail(&e.to_string())));

    // the dashboard shows one cluster at a time
    let http = reqwest::Client::new();
    let state = |q: &'static str| {
        let (http, url) = (http.clone(), h.url.clone());
        async move {
            let r = http
                .get(format!("{url}/ui/state{q}"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (code, first) = state("").await;
    assert_eq!((code, first["cluster"].as_str()), (200, Some("east")));
    assert_eq!(first["clusters"], json!(["east", "west"]));
    let (code, w) = state("?cluster=west").await;
    assert_eq!((code, w["cluster"].as_str()), (200, Some("west")));
    let targets: Vec<&str> = w["records"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["target"]["name"].as_str())
        .collect();
    assert_eq!(targets, ["api-4"], "{w:#}");
    assert!(
        w["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["cluster"] != "east"),
        "west's view shows no outcome of east"
    );
    assert!(
        w["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["cluster"] == "west"),
        "west's view shows west's outcomes"
    );
    let (code, none) = state("?cluster=nope").await;
    assert_eq!(
        (code, none["code"].as_str()),
        (404, Some("unknown_cluster"))
    );

    // the API's pause pauses every cluster
    let r = http
        .post(format!("{}/pause", h.url))
        .bearer_auth(TOKEN)
        .body(r#"{"reason": "all hands", "by": "ops"}"#)
        .send()
        .await
        .unwrap();
    let paused: Value = r.json().await.unwrap();
    let each: Vec<(&str, &str)> = paused["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["cluster"].as_str().unwrap(),
                c["paused"]["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(each, [("east", "all hands"), ("west", "all hands")]);
    assert_eq!(
        h.metric("heal8s_paused").await,
        2.0,
        "the number of clusters paused"
    );
    // and /breakers answers for both
    let b = h.read("/breakers").await;
    assert!(b["open"].is_array() && b["closed"].is_array(), "{b}");
}
