//! Deletion records (issue 13), end to end: a real `heal8s serve` against
//! the Kubernetes API emulation deletes a crash-looping pod, a stale VM, a
//! stuck DataVolume's finalizers and a stale namespace; each record keeps
//! the object in `status.deleted`, and `heal8s show-deleted` prints it as
//! YAML that re-creates it through the API. A dry run keeps nothing, and
//! `show-deleted` says so. (That a Secret's data is never kept is the
//! core's unit test: heal8s deletes no Secret.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use testkit::kube::{Controller, Emulator, PlayedControllers};
use testkit::{Heal8s, TempDir, eventually, heal8s_bin};

const TOKEN: &str = "deletion-record-token";
const WAIT: Duration = Duration::from_secs(30);

fn ago(secs: i64) -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(secs)).to_string()
}

struct Cluster {
    emu: Emulator,
    dir: TempDir,
    /// The kubelets of Ready nodes and the namespace controller, played.
    _controllers: PlayedControllers,
}

impl Cluster {
    async fn new() -> Cluster {
        let emu = Emulator::start().await.unwrap();
        let controllers = emu.play(&[Controller::Kubelet, Controller::Namespace]);
        let c = Cluster {
            emu,
            dir: TempDir::new("deletion-record"),
            _controllers: controllers,
        };
        c.namespace("heal8s");
        c
    }

    fn namespace(&self, name: &str) {
        if self.emu.get("v1", "Namespace", "", name).is_none() {
            self.emu
                .create(
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
                )
                .unwrap();
        }
    }

    fn kubeconfig(&self) -> PathBuf {
        let path = self.dir.path().join("kubeconfig");
        self.emu.write_kubeconfig(&path).unwrap();
        path
    }

    async fn heal8s(&self, policy: &str, extra: &[&str]) -> Heal8s {
        let kubeconfig = self.kubeconfig();
        let policy_file = self.dir.path().join("policy.yaml");
        std::fs::write(&policy_file, policy).unwrap();
        let mut args = vec![
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--policy",
            policy_file.to_str().unwrap(),
            "--verify-stable-for",
            "1s",
        ];
        args.extend_from_slice(extra);
        Heal8s::start(TOKEN, &args).await.unwrap()
    }

    /// A crash-looping pod of Deployment `api` (through ReplicaSet
    /// `api-7d9c`) on Ready node `w1`; the pod as stored.
    fn crashlooping_pod(&self, ns: &str, name: &str) -> Value {
        self.emu
            .create(json!({
                "apiVersion": "v1", "kind": "Node", "metadata": {"name": "w1"},
                "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                           "lastTransitionTime": ago(600)}]}
            }))
            .unwrap();
        let template = json!({"metadata": {"labels": {"app": "api"}},
                              "spec": {"containers": [{"name": "api", "image": "registry/app:2"}]}});
        let d = self
            .emu
            .create(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "api", "namespace": ns},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "api"}}, "template": template}
            }))
            .unwrap();
        let rs = self
            .emu
            .create(json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": "api-7d9c", "namespace": ns,
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "api",
                                         "uid": d["metadata"]["uid"], "controller": true}]},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "api"}}, "template": template}
            }))
            .unwrap();
        self.emu
            .create(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": ns,
                    "labels": {"app": "api", "tier": "web"},
                    "annotations": {"team": "shop"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-7d9c",
                                         "uid": rs["metadata"]["uid"], "controller": true}]},
                "spec": {"nodeName": "w1", "restartPolicy": "Always",
                         "containers": [{"name": "api", "image": "registry/app:2",
                                         "args": ["--port", "8080"],
                                         "env": [{"name": "MODE", "value": "prod"}]}]},
                "status": {"phase": "Running", "startTime": ago(600),
                    "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": ago(300)}],
                    "containerStatuses": [{"name": "api", "image": "registry/app:2", "imageID": "",
                        "ready": false, "restartCount": 5,
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}
            }))
            .unwrap()
    }

    /// The record of `remediation` on target `name` in `ns`, once it keeps
    /// a deleted object.
    async fn record_with_deleted(
        &self,
        h: &Heal8s,
        ns: &str,
        remediation: &str,
        name: &str,
    ) -> Value {
        let found = eventually(
            WAIT,
            &format!("the {remediation} record of {name} to keep the object"),
            || async {
                self.emu
                    .list("heal8s.io/v1alpha1", "Remediation", ns)
                    .into_iter()
                    .find(|r| {
                        r["spec"]["remediation"] == remediation
                            && r["spec"]["target"]["name"] == name
                            && r["status"]["deleted"].is_object()
                    })
            },
        )
        .await;
        match found {
            Ok(r) => r,
            Err(e) => panic!(
                "{e}\nrecords: {:#?}\noutcomes: {:#?}\n--- heal8s ---\n{}",
                self.emu.list("heal8s.io/v1alpha1", "Remediation", ns),
                h.outcomes().await,
                h.proc.output()
            ),
        }
    }

    async fn gone(&self, h: &Heal8s, api_version: &str, kind: &str, ns: &str, name: &str) {
        let r = eventually(WAIT, &format!("{kind} {name} to be gone"), || async {
            self.emu
                .get(api_version, kind, ns, name)
                .is_none()
                .then_some(())
        })
        .await;
        if let Err(e) = r {
            panic!(
                "{e}\noutcomes: {:#?}\n--- heal8s ---\n{}",
                h.outcomes().await,
                h.proc.output()
            );
        }
    }

    /// `heal8s show-deleted ARGS --kubeconfig ...`: exit code, stdout, stderr.
    async fn show_deleted(&self, args: &[&str]) -> (i32, String, String) {
        let mut all: Vec<String> = vec!["show-deleted".into()];
        all.extend(args.iter().map(|a| a.to_string()));
        all.push("--kubeconfig".into());
        all.push(self.kubeconfig().to_str().unwrap().into());
        // the emulation serves from this runtime: never block it
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(heal8s_bin())
                .args(&all)
                .env_remove("HEAL8S_NAMESPACE")
                .env_remove("HEAL8S_KUBECONFIG")
                .output()
                .unwrap();
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
        .await
        .unwrap()
    }
}

fn name_of(v: &Value) -> String {
    v["metadata"]["name"].as_str().unwrap().to_string()
}

fn comments(text: &str) -> Vec<&str> {
    text.lines().take_while(|l| l.starts_with('#')).collect()
}

fn policy(profile: &str, routes: &str) -> String {
    format!(
        r#"profile: {profile}
detectors:
  resync: 1s
  pods: {{waitingAfter: 1s, pendingAfter: 1s, unschedulableAfter: 1s}}
  customResources: {{terminatingAfter: 1s, resources: ["datavolumes.cdi.kubevirt.io/v1beta1"]}}
routes:
{routes}
"#
    )
}

const POD_ROUTE: &str =
    "  - {matchers: ['alertname=\"Heal8sPodCrashLooping\"'], remediation: delete-pod}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_pod_is_kept_in_its_record_and_show_deleted_yaml_recreates_it() {
    let c = Cluster::new().await;
    c.namespace("shop");
    let original = c.crashlooping_pod("shop", "api-7d9c-aaaaa");
    let h = c.heal8s(&policy("production", POD_ROUTE), &[]).await;
    c.gone(&h, "v1", "Pod", "shop", "api-7d9c-aaaaa").await;
    let rec = c
        .record_with_deleted(&h, "shop", "delete-pod", "api-7d9c-aaaaa")
        .await;
    let deleted = &rec["status"]["deleted"];
    let manifest = &deleted["manifest"];
    assert_eq!(manifest["kind"], "Pod", "{rec:#}");
    assert_eq!(manifest["metadata"]["name"], "api-7d9c-aaaaa");
    assert_eq!(
        manifest["metadata"]["labels"],
        original["metadata"]["labels"]
    );
    for gone in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "ownerReferences",
    ] {
        assert!(manifest["metadata"].get(gone).is_none(), "{gone}: {rec:#}");
    }
    assert!(manifest.get("status").is_none(), "{rec:#}");
    assert!(manifest["spec"].get("nodeName").is_none(), "{rec:#}");
    assert!(deleted.get("truncated").is_none(), "{rec:#}");
    assert!(
        deleted["at"].as_str().is_some_and(|a| !a.is_empty()),
        "{rec:#}"
    );

    let record = name_of(&rec);
    let (code, out, err) = c.show_deleted(&[&record, "-n", "shop"]).await;
    assert_eq!(code, 0, "{err}");
    let head = comments(&out);
    assert!(
        head[0].starts_with("# heal8s deleted Pod shop/api-7d9c-aaaaa at "),
        "{out}"
    );
    assert!(
        head[1].contains(&format!(
            "by remediation delete-pod (record shop/{record}, triggered by detector Heal8sPodCrashLooping)"
        )),
        "{out}"
    );
    let printed: Value = serde_saphyr::from_str(&out).unwrap();
    assert_eq!(&printed, manifest, "{out}");

    // re-created from that YAML through the API: the same name, labels and spec
    drop(h);
    let recreated = c.emu.create(printed).unwrap();
    assert_eq!(name_of(&recreated), "api-7d9c-aaaaa");
    assert_eq!(recreated["metadata"]["namespace"], "shop");
    assert_eq!(
        recreated["metadata"]["labels"],
        original["metadata"]["labels"]
    );
    assert_eq!(
        recreated["metadata"]["annotations"],
        original["metadata"]["annotations"]
    );
    let mut spec = original["spec"].clone();
    spec.as_object_mut().unwrap().remove("nodeName");
    assert_eq!(recreated["spec"], spec);
    assert_ne!(recreated["metadata"]["uid"], original["metadata"]["uid"]);
}

const CLEANUP_ROUTES: &str = "  - {matchers: ['alertname=\"Heal8sStaleVirtualMachine\"'], remediation: cleanup-resource, params: {apiVersion: kubevirt.io/v1, kind: VirtualMachine}}
  - {matchers: ['alertname=\"Heal8sResourceStuckTerminating\"'], remediation: cleanup-resource, params: {removeFinalizers: true}}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_vm_and_the_finalizers_of_a_stuck_datavolume_are_recorded_with_the_finalizers_removed()
 {
    let c = Cluster::new().await;
    c.namespace("e2e-1");
    c.emu
        .create(json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                       "metadata": {"name": "vm-a", "namespace": "e2e-1", "creationTimestamp": ago(600),
                                    "labels": {"suite": "smoke"}},
                       "spec": {"running": true, "template": {"spec": {"domain": {"cpu": {"cores": 2}}}}},
                       "status": {"printableStatus": "Running"}}))
        .unwrap();
    c.emu
        .create(
            json!({"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
                   "metadata": {"name": "dv-a", "namespace": "e2e-1",
                                "finalizers": ["cdi.kubevirt.io/dataVolumeFinalizer"]},
                   "spec": {"source": {"blank": {}}}}),
        )
        .unwrap();
    // someone deleted it; the finalizer's controller is gone, so it hangs
    c.emu
        .delete("cdi.kubevirt.io/v1beta1", "DataVolume", "e2e-1", "dv-a")
        .unwrap();
    let h = c.heal8s(&policy("test-cluster", CLEANUP_ROUTES), &[]).await;
    c.gone(&h, "kubevirt.io/v1", "VirtualMachine", "e2e-1", "vm-a")
        .await;
    c.gone(&h, "cdi.kubevirt.io/v1beta1", "DataVolume", "e2e-1", "dv-a")
        .await;

    let vm = c
        .record_with_deleted(&h, "e2e-1", "cleanup-resource", "vm-a")
        .await;
    let kept = &vm["status"]["deleted"];
    assert_eq!(
        kept["manifest"]["spec"],
        json!({"running": true, "template": {"spec": {"domain": {"cpu": {"cores": 2}}}}}),
        "{vm:#}"
    );
    assert_eq!(kept["manifest"]["metadata"]["labels"]["suite"], "smoke");
    assert!(kept.get("finalizersRemoved").is_none(), "{vm:#}");

    let dv = c
        .record_with_deleted(&h, "e2e-1", "cleanup-resource", "dv-a")
        .await;
    let kept = &dv["status"]["deleted"];
    assert_eq!(
        kept["finalizersRemoved"],
        json!(["cdi.kubevirt.io/dataVolumeFinalizer"]),
        "{dv:#}"
    );
    // the object as it was: its finalizers still listed, no deletion mark
    assert_eq!(
        kept["manifest"]["metadata"]["finalizers"],
        json!(["cdi.kubevirt.io/dataVolumeFinalizer"])
    );
    assert!(
        kept["manifest"]["metadata"]
            .get("deletionTimestamp")
            .is_none()
    );
    assert_eq!(kept["manifest"]["spec"], json!({"source": {"blank": {}}}));

    let (code, out, err) = c.show_deleted(&[&name_of(&dv), "-n", "e2e-1"]).await;
    assert_eq!(code, 0, "{err}");
    let head = comments(&out);
    assert!(
        head[0].starts_with("# heal8s removed the finalizers of DataVolume e2e-1/dv-a at "),
        "{out}"
    );
    assert!(
        head.contains(
            &"# finalizers removed: cdi.kubevirt.io/dataVolumeFinalizer (the manifest lists them as they were)"
        ),
        "{out}"
    );
    let printed: Value = serde_saphyr::from_str(&out).unwrap();
    assert_eq!(printed, kept["manifest"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_namespace_is_kept_in_heal8ss_namespace_and_found_without_n() {
    let c = Cluster::new().await;
    c.emu
        .create(json!({"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": "test-1", "creationTimestamp": ago(3600),
                                    "labels": {"ci-run": "1234"}}}))
        .unwrap();
    let h = c
        .heal8s(
            &policy(
                "test-cluster",
                "  - {matchers: ['alertname=\"Heal8sStaleNamespace\"'], remediation: delete-namespace}",
            ),
            &["--namespaces", "test-1", "--stale-age", "10m"],
        )
        .await;
    c.gone(&h, "v1", "Namespace", "", "test-1").await;
    let rec = c
        .record_with_deleted(&h, "heal8s", "delete-namespace", "test-1")
        .await;
    let manifest = rec["status"]["deleted"]["manifest"].clone();
    assert_eq!(manifest["kind"], "Namespace", "{rec:#}");
    assert_eq!(manifest["metadata"]["labels"]["ci-run"], "1234");

    // no -n: the context's namespace (default) holds no such record; heal8s's does
    let (code, out, err) = c.show_deleted(&[&name_of(&rec)]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        comments(&out)[0].starts_with("# heal8s deleted Namespace test-1 at "),
        "{out}"
    );
    let printed: Value = serde_saphyr::from_str(&out).unwrap();
    assert_eq!(printed, manifest);
    drop(h);
    let recreated = c.emu.create(printed).unwrap();
    assert_eq!(name_of(&recreated), "test-1");
    assert_eq!(recreated["metadata"]["labels"]["ci-run"], "1234");

    // a record that does not exist, in the namespaces looked in
    let (code, _, err) = c.show_deleted(&["no-such-record"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("no Remediation no-such-record in namespace default or heal8s"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_deletes_nothing_keeps_nothing_and_show_deleted_says_so() {
    let c = Cluster::new().await;
    c.namespace("shop");
    c.crashlooping_pod("shop", "api-7d9c-aaaaa");
    let h = c
        .heal8s(&policy("production", POD_ROUTE), &["--dry-run"])
        .await;
    let rec = match eventually(WAIT, "the dry run's record", || async {
        c.emu
            .list("heal8s.io/v1alpha1", "Remediation", "shop")
            .into_iter()
            .find(|r| r["status"]["phase"] == "Observed")
    })
    .await
    {
        Ok(r) => r,
        Err(e) => panic!("{e}\n--- heal8s ---\n{}", h.proc.output()),
    };
    assert!(rec["status"].get("deleted").is_none(), "{rec:#}");
    assert!(c.emu.get("v1", "Pod", "shop", "api-7d9c-aaaaa").is_some());
    assert!(
        h.outcomes().await.iter().all(|o| o.deleted.is_none()),
        "a dry run keeps nothing"
    );

    let (code, out, err) = c.show_deleted(&[&name_of(&rec), "-n", "shop"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("(delete-pod on Pod/shop/api-7d9c-aaaaa) holds no deleted object"),
        "{err}"
    );
}
