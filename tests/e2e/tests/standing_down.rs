//! Standing down is loud, and its trail lasts (issue 20, items 3, 6, 7, 8):
//! a real `heal8s serve` against the Kubernetes API emulation. A breaker
//! episode leaves an Event, a record listing what it blocked, the gauge and
//! `/breakers` until it ends; refusals are summed into Events and the record;
//! `/outcomes` keeps acted outcomes apart from refused ones; every JSON log
//! line of the run is a map with unique keys, and a failed verification says so.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::Duration;

use receiver_core::{Outcome, OutcomeKind, RefusalReason};
use serde_json::{Value, json};
use testkit::kube::Emulator;
use testkit::{Heal8s, TempDir, eventually};

const TOKEN: &str = "standing-down-token";
const WAIT: Duration = Duration::from_secs(40);

fn ago(secs: i64) -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(secs)).to_string()
}

struct Cluster {
    emu: Emulator,
    dir: TempDir,
}

impl Cluster {
    async fn new(namespaces: &[&str]) -> Cluster {
        let c = Cluster {
            emu: Emulator::start().await.unwrap(),
            dir: TempDir::new("standing-down"),
        };
        for ns in namespaces.iter().chain(&["heal8s"]) {
            c.emu
                .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
                .unwrap();
        }
        c
    }

    fn node(&self, name: &str, ready: &str) {
        self.emu
            .create(json!({
                "apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                "status": {"conditions": [{"type": "Ready", "status": ready, "reason": "KubeletReady",
                                           "lastTransitionTime": ago(600)}]}
            }))
            .unwrap();
    }

    /// A crash-looping pod of Deployment `name` (through its ReplicaSet).
    fn crashlooping(&self, ns: &str, name: &str) {
        let d = self
            .emu
            .create(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name}},
                                      "spec": {"containers": [{"name": "app", "image": "registry/app:1"}]}}}
            }))
            .unwrap();
        let rs = format!("{name}-5d4f");
        let r = self
            .emu
            .create(json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": rs, "namespace": ns,
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                                         "uid": d["metadata"]["uid"], "controller": true}]},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name}},
                                      "spec": {"containers": [{"name": "app", "image": "registry/app:1"}]}}}
            }))
            .unwrap();
        self.emu
            .create(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("{rs}-aaaaa"), "namespace": ns, "labels": {"app": name},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs,
                                         "uid": r["metadata"]["uid"], "controller": true}]},
                "spec": {"nodeName": "w3", "containers": [{"name": "app", "image": "registry/app:1"}]},
                "status": {"phase": "Running", "startTime": ago(600),
                    "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": ago(300)}],
                    "containerStatuses": [{"name": "app", "image": "registry/app:1", "imageID": "",
                        "ready": false, "restartCount": 5,
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}
            }))
            .unwrap();
    }

    async fn heal8s(&self, extra_policy: &str, routes: &str, flags: &[&str]) -> Heal8s {
        let kubeconfig = self.dir.path().join("kubeconfig");
        self.emu.write_kubeconfig(&kubeconfig).unwrap();
        let policy = self.dir.path().join("policy.yaml");
        std::fs::write(
            &policy,
            format!(
                "profile: production\ndetectors:\n  resync: 1s\n  pods: {{waitingAfter: 1s, pendingAfter: 1s, unschedulableAfter: 1s}}\n  nodes: {{notReadyAfter: 1s, unknownAfter: 1s}}\n{extra_policy}\nroutes:\n{routes}\n"
            ),
        )
        .unwrap();
        let mut args = vec![
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
            "--verify-stable-for",
            "1s",
            "--report-interval",
            "2s",
        ];
        args.extend_from_slice(flags);
        Heal8s::start(TOKEN, &args).await.unwrap()
    }

    /// The breaker records of `class` in heal8s's namespace.
    fn breaker_records(&self, class: &str) -> Vec<Value> {
        self.emu
            .list("heal8s.io/v1alpha1", "Remediation", "heal8s")
            .into_iter()
            .filter(|r| {
                r["spec"]["target"]["kind"] == "ActionClass" && r["spec"]["target"]["name"] == class
            })
            .collect()
    }

    fn events(&self, ns: &str) -> Vec<Value> {
        self.emu.list("events.k8s.io/v1", "Event", ns)
    }
}

async fn wait_for<T, Fut>(h: &Heal8s, what: &str, f: impl FnMut() -> Fut) -> T
where
    Fut: std::future::Future<Output = Option<T>>,
{
    match eventually(WAIT, what, f).await {
        Ok(v) => v,
        Err(e) => panic!(
            "{e}\noutcomes: {:#?}\n--- heal8s ---\n{}",
            h.outcomes().await,
            h.proc.output()
        ),
    }
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

const NODE_ROUTE: &str = "  - {matchers: ['alertname=~\"Heal8sNodeNotReady|Heal8sNodeUnreachable|NodeDown\"'], remediation: drain-node, params: {timeout: 20s}}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_is_loud_while_it_holds_and_says_when_it_ends() {
    let c = Cluster::new(&[]).await;
    c.node("w1", "False");
    c.node("w2", "Unknown");
    c.node("w3", "True");
    c.node("w4", "True");
    let h = c.heal8s("", NODE_ROUTE, &[]).await;

    // one record for the episode, listing both nodes it holds back
    let record = wait_for(&h, "a Holding breaker record listing w1 and w2", || async {
        c.breaker_records("nodes").into_iter().find(|r| {
            let blocked = strings(&r["status"]["blocked"]);
            r["status"]["phase"] == "Holding"
                && blocked.contains(&"Node/-/w1")
                && blocked.contains(&"Node/-/w2")
        })
    })
    .await;
    let name = record["metadata"]["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("breaker-nodes-"), "{record:#}");
    assert_eq!(record["spec"]["remediation"], "stand-down");
    assert_eq!(record["spec"]["target"]["key"], "ActionClass/-/nodes");
    assert_eq!(record["status"]["reason"], "partition", "{record:#}");
    assert_eq!(
        c.breaker_records("nodes").len(),
        1,
        "one record per episode"
    );
    // an Event on it, once
    let opened: Vec<Value> = c
        .events("heal8s")
        .into_iter()
        .filter(|e| e["reason"] == "BreakerOpened")
        .collect();
    assert_eq!(opened.len(), 1, "{opened:#?}");
    assert_eq!(opened[0]["regarding"]["name"], name.as_str());
    assert_eq!(opened[0]["regarding"]["kind"], "Remediation");
    assert_eq!(opened[0]["type"], "Warning");
    assert!(
        opened[0]["note"].as_str().unwrap().contains("partition"),
        "{opened:#?}"
    );
    // the gauge and /breakers
    assert_eq!(h.metric("heal8s_breaker_open{class=\"nodes\"}").await, 1.0);
    assert_eq!(h.metric("heal8s_breaker_open{class=\"pods\"}").await, 0.0);
    let b = h.read("/breakers").await;
    assert_eq!(b["open"][0]["class"], "nodes", "{b:#}");
    assert_eq!(b["open"][0]["record"], name.as_str(), "{b:#}");
    assert!(
        strings(&b["open"][0]["blocked"]).contains(&"Node/-/w2"),
        "{b:#}"
    );
    // the refusals are summed: an Event on a refused node, and in the record
    let summed = wait_for(&h, "a RemediationsRefused Event on a node", || async {
        c.events("default")
            .into_iter()
            .find(|e| e["reason"] == "RemediationsRefused" && e["regarding"]["kind"] == "Node")
    })
    .await;
    let note = summed["note"].as_str().unwrap();
    assert!(
        note.contains("(partition)") && note.contains("cluster-wide"),
        "{note}"
    );
    let counted = wait_for(&h, "the record to count the partition refusals", || async {
        c.breaker_records("nodes").into_iter().find_map(|r| {
            r["status"]["refusals"]
                .as_array()?
                .iter()
                .find(|x| x["reason"] == "partition" && x["count"].as_u64() >= Some(2))
                .cloned()
        })
    })
    .await;
    assert!(counted.get("namespace").is_none(), "{counted:#}");

    // the partition heals: w1 is Ready; the next signal about w2 drains it
    c.emu
        .modify("v1", "Node", "", "w1", |n| {
            n["status"]["conditions"][0]["status"] = "True".into();
        })
        .unwrap();
    let now = jiff::Timestamp::now().to_string();
    let alert = json!({
        "receiver": "heal8s", "status": "firing", "version": "4", "groupKey": "{}:{node=\"w2\"}",
        "truncatedAlerts": 0, "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://am",
        "alerts": [{"status": "firing", "labels": {"alertname": "NodeDown", "node": "w2"},
                    "annotations": {}, "startsAt": now, "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prom", "fingerprint": "0000000000000002"}]
    });
    assert_eq!(h.post_webhook(TOKEN, &alert).await, 200);
    wait_for(&h, "w2 drained", || async {
        h.outcomes().await.into_iter().find(|o| {
            o.result == OutcomeKind::Acted && o.target.as_deref().is_some_and(|t| t.contains("w2"))
        })
    })
    .await;
    // the class acted and stayed free for a report interval: the episode ends
    let cleared = wait_for(&h, "the breaker record Cleared", || async {
        c.breaker_records("nodes")
            .into_iter()
            .find(|r| r["status"]["phase"] == "Cleared")
    })
    .await;
    assert_eq!(cleared["metadata"]["name"], name.as_str());
    assert_eq!(cleared["status"]["reason"], "BreakerClosed", "{cleared:#}");
    assert!(cleared["status"]["finishedAt"].is_string(), "{cleared:#}");
    let closed = wait_for(&h, "a BreakerClosed Event", || async {
        c.events("heal8s")
            .into_iter()
            .find(|e| e["reason"] == "BreakerClosed")
    })
    .await;
    assert_eq!(closed["regarding"]["name"], name.as_str());
    assert_eq!(closed["type"], "Normal");
    assert_eq!(h.metric("heal8s_breaker_open{class=\"nodes\"}").await, 0.0);
    let b = h.read("/breakers").await;
    assert_eq!(b["open"], json!([]), "{b:#}");
    assert_eq!(b["closed"][0]["record"], name.as_str(), "{b:#}");
    let log = h.proc.output();
    for failed in [
        "Could not record a Kubernetes Event",
        "Could not write the breaker record",
        "Could not update the breaker record",
        "Could not settle the breaker record",
        "notices waiting",
    ] {
        assert!(!log.contains(failed), "{failed}:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_refusals_is_summed_into_events_and_the_record_and_kept_apart() {
    let c = Cluster::new(&["shop", "blog"]).await;
    c.node("w3", "True");
    for (ns, name) in [
        ("shop", "api"),
        ("shop", "cart"),
        ("shop", "pay"),
        ("blog", "web"),
        ("blog", "feed"),
        ("blog", "rss"),
    ] {
        c.crashlooping(ns, name);
    }
    let h = c
        .heal8s(
            "guard: {budgets: {global: {max: 2, per: 1h}}}",
            "  - {matchers: ['alertname=\"Heal8sPodCrashLooping\"'], remediation: delete-pod}",
            &[],
        )
        .await;
    // two deletions, four refusals on the global budget (a breaker for pods)
    wait_for(&h, "four budget refusals", || async {
        let o = h.outcomes().await;
        (o.iter()
            .filter(|o| o.reason == Some(RefusalReason::GlobalBudget))
            .count()
            >= 4)
            .then_some(())
    })
    .await;
    // summed per namespace into Events on one of the refused pods
    let ev = wait_for(
        &h,
        "RemediationsRefused Events in both namespaces",
        || async {
            let find = |ns: &str| {
                c.events(ns).into_iter().find(|e| {
                    e["reason"] == "RemediationsRefused"
                        && e["note"]
                            .as_str()
                            .is_some_and(|n| n.contains("(global_budget)"))
                })
            };
            Some((find("shop")?, find("blog")?))
        },
    )
    .await;
    for (e, ns) in [(&ev.0, "shop"), (&ev.1, "blog")] {
        let note = e["note"].as_str().unwrap();
        assert!(note.contains(&format!("in namespace {ns}")), "{note}");
        assert!(note.contains(&format!("Pod/{ns}/")), "{note}");
        assert_eq!(e["regarding"]["kind"], "Pod");
        assert_eq!(e["regarding"]["namespace"], ns);
        assert_eq!(e["type"], "Warning");
    }
    // and into the pods breaker record, by namespace, with examples
    let refusals = wait_for(&h, "the pods record to count 4 refusals", || async {
        c.breaker_records("pods").into_iter().find_map(|r| {
            let list = r["status"]["refusals"].as_array()?.clone();
            let n: u64 = list
                .iter()
                .filter(|x| x["reason"] == "global_budget")
                .filter_map(|x| x["count"].as_u64())
                .sum();
            (n >= 4).then_some(list)
        })
    })
    .await;
    let shop = refusals
        .iter()
        .find(|x| x["namespace"] == "shop")
        .expect("shop counted");
    assert!(
        strings(&shop["examples"])
            .iter()
            .all(|e| e.starts_with("Pod/shop/")),
        "{shop:#}"
    );
    // /outcomes keeps what heal8s did apart from what it refused
    let acted: Vec<Outcome> =
        serde_json::from_value(h.read("/outcomes?result=acted&limit=512").await).unwrap();
    let refused: Vec<Outcome> =
        serde_json::from_value(h.read("/outcomes?result=refused&limit=512").await).unwrap();
    assert_eq!(
        acted
            .iter()
            .filter(|o| o.result == OutcomeKind::Acted)
            .count(),
        2,
        "{acted:#?}"
    );
    assert!(
        acted
            .iter()
            .all(|o| o.result != OutcomeKind::Refused && o.result != OutcomeKind::Deduped)
    );
    assert!(refused.len() >= 4, "{refused:#?}");
    assert!(
        refused
            .iter()
            .all(|o| o.result == OutcomeKind::Refused || o.result == OutcomeKind::Deduped)
    );
    // the merged view still pages by seq: raw JSON, since `seq` is a field
    // of the wire format that `Outcome` does not have
    let all: Vec<Value> =
        serde_json::from_value(h.read("/outcomes?since=0&limit=512").await).unwrap();
    assert_eq!(all.len(), acted.len() + refused.len());
    assert!(
        all.windows(2)
            .all(|w| w[0]["seq"].as_u64() < w[1]["seq"].as_u64())
    );
}

/// A JSON value whose every object has unique keys (serde_json's `Value`
/// keeps the last of two, as jq and Python do; this refuses them).
struct Unique;

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Unique, D::Error> {
        d.deserialize_any(UniqueVisitor)
    }
}

struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = Unique;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_str<E>(self, _: &str) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_unit<E>(self) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Unique, A::Error> {
        while a.next_element::<Unique>()?.is_some() {}
        Ok(Unique)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Unique, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(k) = m.next_key::<String>()? {
            if !seen.insert(k.clone()) {
                return Err(serde::de::Error::custom(format!("duplicate key {k:?}")));
            }
            m.next_value::<Unique>()?;
        }
        Ok(Unique)
    }
}

#[test]
fn the_unique_key_check_can_fail() {
    assert!(serde_json::from_str::<Unique>(r#"{"a": {"b": [1, {"c": 2}]}}"#).is_ok());
    assert!(serde_json::from_str::<Unique>(r#"{"target": "Pod shop/a", "target": "m"}"#).is_err());
    assert!(serde_json::from_str::<Unique>(r#"[{"x": 1, "y": {"z": 1, "z": 2}}]"#).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_json_log_line_has_unique_keys_and_a_failed_verification_says_so() {
    let c = Cluster::new(&["shop"]).await;
    c.node("w1", "False");
    c.node("w2", "Unknown");
    c.node("w3", "True");
    c.node("w4", "True");
    c.crashlooping("shop", "api");
    let routes = format!(
        "{NODE_ROUTE}\n  - {{matchers: ['alertname=\"Heal8sPodCrashLooping\"'], remediation: delete-pod}}"
    );
    let mut h = c
        .heal8s(
            "",
            &routes,
            &["--log-format", "json", "--verify-timeout", "2s"],
        )
        .await;
    // a deletion whose workload never recovers, and a partition held
    wait_for(&h, "the failed verification and the breaker", || async {
        let log = h.proc.output();
        (log.contains("did not recover") && log.contains("A breaker holds")).then_some(())
    })
    .await;
    h.proc.terminate();
    assert_eq!(h.proc.wait_exit(Duration::from_secs(15)), Some(0));
    let log = h.proc.output();
    let mut objects = 0;
    for line in log.lines() {
        if let Err(e) = serde_json::from_str::<Unique>(line) {
            panic!("{e}: {line}");
        }
        let v: Value = serde_json::from_str(line).unwrap();
        if v.get("object").is_some() {
            objects += 1;
            // `target` is tracing's own: the module that logged it
            assert!(
                v["target"].as_str().is_some_and(|t| t.contains("::")),
                "{line}"
            );
        }
        assert!(
            !(v["message"] == "Recovery verified."),
            "a verification must say what happened: {line}"
        );
    }
    assert!(objects > 0, "no line names the object acted on:\n{log}");
    let acted = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["message"] == "Remediation carried out.")
        .expect("an outcome line");
    assert!(
        acted["object"]
            .as_str()
            .is_some_and(|o| o.starts_with("Pod shop/api-5d4f-aaaaa")),
        "{acted}"
    );
    let failed = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["result"] == "NotRecovered")
        .expect("a verification line");
    assert_eq!(failed["level"], "WARN", "{failed}");
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .starts_with("Not recovered"),
        "{failed}"
    );
}
