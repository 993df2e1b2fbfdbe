//! The hostile-input suite: alert senders are untrusted, so every label,
//! annotation and URL of a webhook is an attacker's. Each case sends what an
//! attacker would to the real `heal8s` binary and checks that it is refused
//! or rendered inert. Future routes and remediations add their cases here
//! (append; one test per attack, named for what must hold).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod alert_input {
    //! Oversized labels and control characters (issue 19, items 4 and 5).

    use std::time::Duration;

    use testkit::{Heal8s, eventually};

    const FIRING: &str = include_str!("../../../receiver/core/tests/fixtures/sample-webhook.json");

    fn alert() -> serde_json::Value {
        serde_json::from_str(FIRING).unwrap()
    }

    /// One alert with a 1 MB label (the memory attack's unit) is refused with
    /// 413 naming it, and leaves nothing behind; a normal alert still goes through.
    #[tokio::test]
    async fn an_oversized_label_is_refused_and_changes_nothing() {
        let h = Heal8s::start("tok", &["--no-cluster"]).await.unwrap();
        let mut big = alert();
        big["alerts"][0]["labels"]["blob"] = "x".repeat(1_000_000).into();
        for _ in 0..3 {
            assert_eq!(h.post_webhook("tok", &big).await, 413);
        }
        let mut many = alert();
        for i in 0..1000 {
            many["alerts"][0]["annotations"][format!("a{i}")] = "y".into();
        }
        assert_eq!(h.post_webhook("tok", &many).await, 413);
        assert!(h.outcomes().await.is_empty());
        assert_eq!(
            h.metric("heal8s_alerts_received_total{status=\"firing\"}")
                .await,
            0.0
        );
        let log = h.proc.output();
        assert!(log.contains(r#"alerts[0].labels[\"blob\"]"#), "{log}");
        assert!(
            log.len() < 64 * 1024,
            "the refusal logged the label: {} bytes",
            log.len()
        );

        assert_eq!(h.post_webhook("tok", &alert()).await, 200);
        eventually(Duration::from_secs(10), "an outcome", || async {
            (!h.outcomes().await.is_empty()).then_some(())
        })
        .await
        .unwrap();
    }

    /// A forged log line and terminal escapes in an alert's name, labels and
    /// annotations: the text log keeps one line per event, with no raw ESC,
    /// BEL or CSI byte; the JSON log stays one valid object per line.
    #[tokio::test]
    async fn control_characters_in_alerts_never_reach_the_log_raw() {
        let forged = "2030-01-01T00:00:00.000000Z  INFO receiver::worker: Remediation carried out. result=\"acted\"";
        let name = format!("Evil\n{forged}\r\u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}31m");
        for format in ["text", "json"] {
            let h = Heal8s::start("tok", &["--no-cluster", "--log-format", format])
                .await
                .unwrap();
            let mut v = alert();
            v["alerts"][0]["labels"]["alertname"] = name.clone().into();
            v["alerts"][0]["labels"]["reason"] = name.clone().into();
            v["alerts"][0]["annotations"]["summary"] = name.clone().into();
            v["alerts"][0]["fingerprint"] = "bad\nfingerprint\u{1b}[0m".into();
            v["groupKey"] = name.clone().into();
            v["truncatedAlerts"] = 1.into();
            assert_eq!(h.post_webhook("tok", &v).await, 200);
            // and a refused one, whose error names a hostile label
            let mut refused = alert();
            refused["alerts"][0]["labels"][format!("k\n{forged}\u{1b}[2J")] =
                "x".repeat(10_000).into();
            assert_eq!(h.post_webhook("tok", &refused).await, 413);
            let o = eventually(Duration::from_secs(10), "an outcome", || async {
                h.outcomes().await.into_iter().next()
            })
            .await
            .unwrap();
            assert_eq!(o.name, name, "{o:?}");
            // the outcome's log line is written before it is kept
            let bytes = std::fs::read(&h.proc.log).unwrap();
            let log = String::from_utf8_lossy(&bytes);
            for bad in [0x1b_u8, 0x07, b'\r'] {
                assert!(
                    !bytes.contains(&bad),
                    "{format}: raw byte {bad:#x} in\n{log}"
                );
            }
            assert!(!log.contains('\u{9b}'), "{format}: raw CSI in\n{log}");
            for line in log.lines() {
                assert!(
                    !line.starts_with("2030-"),
                    "{format}: forged line in\n{log}"
                );
                if format == "json" {
                    let parsed: Result<serde_json::Value, _> = serde_json::from_str(line);
                    assert!(parsed.is_ok(), "not one JSON object: {line}");
                }
            }
            assert!(
                log.contains("Evil"),
                "{format}: the alert was never logged\n{log}"
            );
        }
    }
}

mod cluster_targets {
    //! Labels naming types, namespaces and objects the policy does not cover
    //! (issue 19, items 1 and 2): the policy bounds what may be touched, the
    //! live cluster decides whether it still needs it; an alert only names it.

    use std::time::Duration;

    use receiver_core::{Outcome, OutcomeKind, RefusalReason};
    use serde_json::{Value, json};
    use testkit::kube::Emulator;
    use testkit::{Heal8s, TempDir, eventually};

    pub(super) const TOKEN: &str = "hostile-token";

    fn ago(secs: i64) -> String {
        (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(secs)).to_string()
    }

    /// The test-cluster profile's cleanup routes: one bounded by its own type
    /// (VMs), one bounded by the policy's list (DataVolumes only).
    const POLICY: &str = r#"profile: test-cluster
detectors:
  resync: 1s
  pods: {enabled: false}
  nodes: {enabled: false}
  virtualMachines: {enabled: false}
  namespaces: {enabled: false}
  customResources: {enabled: false, resources: ["datavolumes.cdi.kubevirt.io/v1beta1"]}
routes:
  - name: stale-vm
    matchers: ['alertname="Heal8sStaleVirtualMachine"']
    remediation: cleanup-resource
    params: {apiVersion: kubevirt.io/v1, kind: VirtualMachine}
  - name: stale-or-stuck-resource
    matchers: ['alertname="Heal8sStaleResource"']
    remediation: cleanup-resource
  - name: crashloop
    matchers: ['alertname="KubePodCrashLooping"']
    remediation: delete-pod
  - name: stale-namespace
    matchers: ['alertname="Heal8sStaleNamespace"']
    remediation: delete-namespace
"#;

    fn alert(name: &str, labels: Value) -> Value {
        let mut l = labels;
        l["alertname"] = name.into();
        json!({"version": "4", "status": "firing", "receiver": "heal8s", "groupKey": "{}",
            "alerts": [{"status": "firing", "startsAt": ago(60), "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": fingerprint(&l), "labels": l}]})
    }

    /// A short fingerprint per label set, as Alertmanager's (16 hex digits).
    fn fingerprint(labels: &Value) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        labels.to_string().hash(&mut h);
        format!("{:016x}", h.finish())
    }

    fn resource(group: &str, version: &str, kind: &str, ns: &str, name: &str) -> Value {
        json!({"customresource_group": group, "customresource_version": version,
               "customresource_kind": kind, "namespace": ns, "name": name})
    }

    /// A firing delivery of one alert with `labels` (alertname included).
    pub(super) fn alert_for(labels: Value) -> Value {
        let name = labels["alertname"].as_str().unwrap_or("X").to_string();
        alert(&name, labels)
    }

    pub(super) async fn setup_for_scope() -> (Emulator, Heal8s, TempDir) {
        setup().await
    }

    /// A cluster with objects an attacker would like deleted, and heal8s on it.
    async fn setup() -> (Emulator, Heal8s, TempDir) {
        let emu = Emulator::start().await.unwrap();
        for ns in ["shop", "e2e-1", "heal8s"] {
            emu.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
                .unwrap();
        }
        emu.create(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "w1"},
            "status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": ago(600)}]}}))
            .unwrap();
        emu.create(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db-password", "namespace": "shop"}, "data": {}}))
            .unwrap();
        emu.create(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "namespace": "shop"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "api"}},
                     "template": {"metadata": {"labels": {"app": "api"}},
                                  "spec": {"containers": [{"name": "api", "image": "a:1"}]}}}}))
            .unwrap();
        emu.create(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "api-1", "namespace": "shop"},
            "spec": {"containers": [{"name": "api", "image": "a:1"}]}}))
            .unwrap();
        // a fresh VM (seconds old) and an old, stale DataVolume
        emu.create(
            json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": "vm-new", "namespace": "e2e-1", "creationTimestamp": ago(5)},
            "spec": {"running": true}, "status": {"printableStatus": "Running"}}),
        )
        .unwrap();
        emu.create(
            json!({"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
            "metadata": {"name": "dv-old", "namespace": "e2e-1", "creationTimestamp": ago(3600)},
            "spec": {}}),
        )
        .unwrap();
        emu.create(
            json!({"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
            "metadata": {"name": "dv-new", "namespace": "e2e-1", "creationTimestamp": ago(5)},
            "spec": {}}),
        )
        .unwrap();
        let dir = TempDir::new("hostile");
        let kubeconfig = dir.path().join("kubeconfig");
        emu.write_kubeconfig(&kubeconfig).unwrap();
        let policy = dir.path().join("policy.yaml");
        std::fs::write(&policy, POLICY).unwrap();
        let h = Heal8s::start(
            TOKEN,
            &[
                "--kubeconfig",
                kubeconfig.to_str().unwrap(),
                "--policy",
                policy.to_str().unwrap(),
            ],
        )
        .await
        .unwrap();
        (emu, h, dir)
    }

    async fn outcomes_for(h: &Heal8s, n: usize) -> Vec<Outcome> {
        let r = eventually(Duration::from_secs(30), "the outcomes", || async {
            let o = h.outcomes().await;
            (o.len() >= n).then_some(o)
        })
        .await;
        match r {
            Ok(o) => o,
            Err(e) => panic!("{e}\n{:#?}\n{}", h.outcomes().await, h.proc.output()),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_forged_cleanup_alert_never_deletes_a_type_the_policy_does_not_list() {
        let (emu, h, _dir) = setup().await;
        let attacks = [
            resource("", "v1", "Secret", "shop", "db-password"),
            resource("", "v1", "Pod", "shop", "api-1"),
            resource("", "v1", "Node", "e2e-1", "w1"),
            resource("apps", "v1", "Deployment", "shop", "api"),
            resource(
                "apiextensions.k8s.io",
                "v1",
                "CustomResourceDefinition",
                "e2e-1",
                "datavolumes.cdi.kubevirt.io",
            ),
            resource("heal8s.io", "v1alpha1", "Remediation", "shop", "x"),
            resource(
                "rbac.authorization.k8s.io",
                "v1",
                "ClusterRole",
                "e2e-1",
                "admin",
            ),
            // a well-formed custom resource the policy does not list
            resource("kubevirt.io", "v1", "VirtualMachine", "e2e-1", "vm-new"),
            // labels that would reach a URL
            resource(
                "apps/v1/namespaces/kube-system/deployments/coredns#",
                "v1",
                "Deployment",
                "shop",
                "api",
            ),
            resource("apps", "v1?dryRun=All&x=", "Deployment", "shop", "api"),
            resource(
                "cdi.kubevirt.io",
                "v1beta1",
                "DataVolume/../../secrets",
                "e2e-1",
                "dv-old",
            ),
        ];
        for a in &attacks {
            let status = h
                .post_webhook(TOKEN, &alert("Heal8sStaleResource", a.clone()))
                .await;
            assert!(status == 200 || status == 400, "{status} for {a}");
        }
        // the control: a stale DataVolume, a listed type, is cleaned up
        assert_eq!(
            h.post_webhook(
                TOKEN,
                &alert(
                    "Heal8sStaleResource",
                    resource(
                        "cdi.kubevirt.io",
                        "v1beta1",
                        "DataVolume",
                        "e2e-1",
                        "dv-old"
                    )
                )
            )
            .await,
            200
        );
        let r = eventually(
            Duration::from_secs(30),
            "the stale DataVolume to be deleted",
            || async {
                emu.get("cdi.kubevirt.io/v1beta1", "DataVolume", "e2e-1", "dv-old")
                    .is_none()
                    .then_some(())
            },
        )
        .await;
        if let Err(e) = r {
            panic!("{e}\n{:#?}\n{}", h.outcomes().await, h.proc.output());
        }
        let deletes: Vec<String> = emu
            .requests()
            .iter()
            .filter(|r| r.method == "DELETE" || r.method == "PATCH")
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert!(
            deletes
                .iter()
                .all(|d| d.contains("/datavolumes/dv-old") || d.contains("/remediations/")),
            "{deletes:#?}"
        );
        for (v, k, ns, n) in [
            ("v1", "Secret", "shop", "db-password"),
            ("v1", "Pod", "shop", "api-1"),
            ("v1", "Node", "", "w1"),
            ("apps/v1", "Deployment", "shop", "api"),
            ("kubevirt.io/v1", "VirtualMachine", "e2e-1", "vm-new"),
        ] {
            assert!(emu.get(v, k, ns, n).is_some(), "{k} {n} was deleted");
        }
        // nothing an alert named reached a URL unescaped
        let paths: Vec<String> = emu.requests().iter().map(|r| r.path.clone()).collect();
        assert!(
            paths.iter().all(|p| !p.contains("coredns")
                && !p.contains("dryRun=All&x")
                && !p.contains("..")),
            "{paths:#?}"
        );
        let outcomes = h.outcomes().await;
        let refused_type = outcomes
            .iter()
            .filter(|o| {
                matches!(
                    o.reason,
                    Some(
                        RefusalReason::TypeNotAllowed
                            | RefusalReason::TargetMismatch
                            | RefusalReason::MissingTarget
                    )
                )
            })
            .count();
        assert!(refused_type >= 8, "{outcomes:#?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_forged_stale_alert_about_a_fresh_object_deletes_nothing() {
        let (emu, h, _dir) = setup().await;
        assert_eq!(
            h.post_webhook(
                TOKEN,
                &alert(
                    "Heal8sStaleVirtualMachine",
                    json!({"namespace": "e2e-1", "name": "vm-new"})
                )
            )
            .await,
            200
        );
        assert_eq!(
            h.post_webhook(
                TOKEN,
                &alert(
                    "Heal8sStaleResource",
                    resource(
                        "cdi.kubevirt.io",
                        "v1beta1",
                        "DataVolume",
                        "e2e-1",
                        "dv-new"
                    )
                )
            )
            .await,
            200
        );
        let outcomes = outcomes_for(&h, 2).await;
        for o in &outcomes {
            assert_eq!(o.result, OutcomeKind::Refused, "{o:#?}");
            assert_eq!(o.reason, Some(RefusalReason::ConditionCleared), "{o:#?}");
        }
        assert!(
            emu.get("kubevirt.io/v1", "VirtualMachine", "e2e-1", "vm-new")
                .is_some()
        );
        assert!(
            emu.get("cdi.kubevirt.io/v1beta1", "DataVolume", "e2e-1", "dv-new")
                .is_some()
        );
    }
}

mod cluster_scope {
    //! Labels naming namespaces and objects the policy protects (issue 19):
    //! protected namespaces and their spoofs, and namespace deletion, which an
    //! alert can never trigger.

    use std::time::Duration;

    use receiver_core::OutcomeKind;
    use serde_json::json;
    use testkit::{Heal8s, eventually};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_alert_naming_a_protected_namespace_or_one_to_delete_changes_nothing() {
        let (emu, h, _dir) = super::cluster_targets::setup_for_scope().await;
        emu.create(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "coredns-1", "namespace": "kube-system"},
            "spec": {"containers": [{"name": "c", "image": "a:1"}]}}))
            .unwrap();
        let post = |labels: serde_json::Value| {
            let h: &Heal8s = &h;
            async move {
                h.post_webhook(
                    super::cluster_targets::TOKEN,
                    &super::cluster_targets::alert_for(labels),
                )
                .await
            }
        };
        let mut n = 0;
        for labels in [
            json!({"alertname": "KubePodCrashLooping", "namespace": "kube-system", "pod": "coredns-1"}),
            json!({"alertname": "KubePodCrashLooping", "namespace": "Kube-System", "pod": "coredns-1"}),
            json!({"alertname": "KubePodCrashLooping", "namespace": "kube-system ", "pod": "coredns-1"}),
            json!({"alertname": "KubePodCrashLooping", "namespace": "kube\u{200b}system", "pod": "coredns-1"}),
            json!({"alertname": "Heal8sStaleNamespace", "namespace": "shop"}),
            json!({"alertname": "Heal8sStaleNamespace", "namespace": "kube-system"}),
        ] {
            let status = post(labels.clone()).await;
            assert!(status == 200 || status == 400, "{status} for {labels}");
            if status == 200 {
                n += 1;
            }
        }
        let outcomes = eventually(Duration::from_secs(30), "the outcomes", || async {
            let o = h.outcomes().await;
            (o.len() >= n).then_some(o)
        })
        .await
        .unwrap();
        assert!(
            outcomes.iter().all(|o| o.result == OutcomeKind::Refused),
            "{outcomes:#?}"
        );
        let writes: Vec<String> = emu
            .requests()
            .iter()
            .filter(|r| {
                matches!(r.method.as_str(), "DELETE" | "PATCH" | "POST")
                    && !r.path.contains("remediations")
            })
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert!(writes.iter().all(|w| w.contains("/events")), "{writes:#?}");
        assert!(emu.get("v1", "Pod", "kube-system", "coredns-1").is_some());
        assert!(emu.get("v1", "Namespace", "", "shop").is_some());
    }
}
