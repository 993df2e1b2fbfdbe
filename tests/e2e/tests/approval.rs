//! The mode ladder (issue 22, part 1) through a real `heal8s serve`, the
//! Kubernetes API emulation and the real `heal8s approve` / `reject` CLI:
//! - `observe` records phase `Observed` and changes nothing, using no budget;
//! - `propose` (a janitor action) records phase `Proposed` and changes nothing;
//! - `approve` records the plan in phase `AwaitingApproval` and changes
//!   nothing until a person approves that record; the approver's name is the
//!   one the API server gives their credentials (SelfSubjectReview), heal8s
//!   then checks the live state and the guard again and acts once;
//! - an approval for a pod that was replaced since is refused
//!   (`target_changed`); a rejection ends the record; an approved record
//!   cannot be approved again;
//! - the chart's ValidatingAdmissionPolicy (rendered by the chart tools and
//!   enforced by the emulation's CEL evaluation) refuses an approval naming
//!   someone else, and any retargeting of the plan.
//!
//! Needs the chart tools for the admission policy (`scripts/chart-check.py
//! render`; `.ci/run` installs them) and kubectl for the columns.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use receiver_core::{OutcomeKind, RefusalReason};
use serde_json::{Value, json};
use testkit::kube::{Controller, Emulator};
use testkit::{Heal8s, TempDir, eventually, heal8s_bin};

const TOKEN: &str = "approval-token";
const WAIT: Duration = Duration::from_secs(20);

fn alert(fingerprint: &str, ns: &str, pod: &str) -> Value {
    testkit::scenario::crash_loop_alert(fingerprint, ns, pod)
}

const POLICY: &str = r#"
guard:
  cooldown: 1s
  budgets: {global: {max: 1, per: 1h}}
routes:
- {name: watch-web, matchers: ['alertname="KubePodCrashLooping"', 'namespace="web"'], remediation: delete-pod, mode: observe}
- {name: offer-ops, matchers: ['alertname="KubePodCrashLooping"', 'namespace="ops"'], remediation: delete-pod, mode: propose}
- {name: ask-shop, matchers: ['alertname="KubePodCrashLooping"', 'namespace="shop"'], remediation: delete-pod, mode: approve}
"#;

struct Setup {
    emu: Emulator,
    h: Heal8s,
    _files: TempDir,
    dir: TempDir,
}

impl Setup {
    /// The record of delete-pod on `pod` in `ns`, once `pred` holds.
    async fn record(
        &self,
        ns: &str,
        pod: &str,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let found = eventually(WAIT, what, || async {
            self.emu
                .list("heal8s.io/v1alpha1", "Remediation", ns)
                .into_iter()
                .find(|r| r["spec"]["target"]["name"] == pod && pred(r))
        })
        .await;
        match found {
            Ok(r) => r,
            Err(e) => panic!(
                "{e}\nrecords: {:#?}\noutcomes: {:#?}\n--- heal8s ---\n{}",
                self.emu.list("heal8s.io/v1alpha1", "Remediation", ns),
                self.h.outcomes().await,
                self.h.proc.output()
            ),
        }
    }

    /// `heal8s approve|reject RECORD -n NS` as the user of `token`.
    async fn decide(&self, verb: &str, record: &str, ns: &str, token: &str) -> (bool, String) {
        let kubeconfig = self.dir.path().join(format!("{token}.kubeconfig"));
        self.emu.write_kubeconfig_as(&kubeconfig, token).unwrap();
        let out = tokio::process::Command::new(heal8s_bin())
            .args([verb, record, "-n", ns, "--kubeconfig"])
            .arg(&kubeconfig)
            .env_remove("KUBECONFIG")
            .env_remove("HEAL8S_KUBECONFIG")
            .output()
            .await
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }
}

fn name(r: &Value) -> String {
    r["metadata"]["name"].as_str().unwrap().to_string()
}

async fn start() -> Setup {
    let emu = Emulator::start().await.unwrap();
    emu.add_user("alice-token", "alice", &["sre"]);
    emu.add_user("mallory-token", "mallory", &[]);
    testkit::scenario::seed_crash_loops(
        &emu,
        &["heal8s", "shop", "web", "ops"],
        &["api-1", "api-2", "api-3"],
    )
    .unwrap();
    for (ns, pod) in [("web", "api-1"), ("web", "api-2"), ("ops", "api-1")] {
        emu.create(testkit::scenario::lone_crash_looping_pod(ns, pod, "w1"))
            .unwrap();
    }
    let (h, files) = Heal8s::start_in(TOKEN, &emu, POLICY, &["--namespace", "heal8s"])
        .await
        .unwrap();
    Setup {
        emu,
        h,
        _files: files,
        dir: TempDir::new("approval"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_and_propose_record_what_would_be_done_and_change_nothing() {
    let s = start().await;
    let _played = s.emu.play(&[Controller::Kubelet]);
    s.h.post_webhook(TOKEN, &alert("f000000000000001", "web", "api-1"))
        .await;
    s.h.post_webhook(TOKEN, &alert("f000000000000002", "ops", "api-1"))
        .await;
    s.h.post_webhook(TOKEN, &alert("f000000000000003", "web", "api-2"))
        .await;
    let observed = s
        .record("web", "api-1", "an Observed record", |r| {
            r["status"]["phase"] == "Observed"
        })
        .await;
    assert_eq!(observed["spec"]["mode"], "observe");
    s.record("web", "api-2", "a second Observed record", |r| {
        r["status"]["phase"] == "Observed"
    })
    .await;
    let proposed = s
        .record("ops", "api-1", "a Proposed record", |r| {
            r["status"]["phase"] == "Proposed"
        })
        .await;
    assert_eq!(proposed["spec"]["mode"], "propose");
    let outcomes = s.h.outcomes().await;
    let kinds: Vec<_> = outcomes.iter().map(|o| o.result).collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == OutcomeKind::Observed)
            .count(),
        2,
        "{outcomes:#?}"
    );
    assert!(kinds.contains(&OutcomeKind::Proposed), "{outcomes:#?}");
    // nothing changed, and three would-be actions used none of the budget of one
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (ns, pod) in [("web", "api-1"), ("web", "api-2"), ("ops", "api-1")] {
        let p = s.emu.get("v1", "Pod", ns, pod).unwrap();
        assert!(p["metadata"]["deletionTimestamp"].is_null(), "{ns}/{pod}");
    }
    assert_eq!(
        s.h.metric(r#"heal8s_outcomes_total{result="observed"}"#)
            .await,
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_waits_for_a_person_and_acts_once_when_approved() {
    let s = start().await;
    let _played = s.emu.play(&[Controller::Kubelet]);
    s.h.post_webhook(TOKEN, &alert("a000000000000001", "shop", "api-1"))
        .await;
    let awaiting = s
        .record("shop", "api-1", "a record awaiting approval", |r| {
            r["status"]["phase"] == "AwaitingApproval"
        })
        .await;
    let record = name(&awaiting);
    let asked = &awaiting["status"]["approval"];
    let uid = s.emu.get("v1", "Pod", "shop", "api-1").unwrap()["metadata"]["uid"].clone();
    assert_eq!(asked["plan"]["approval"]["uid"], uid, "{asked:#}");
    assert_eq!(asked["plan"]["route"], "ask-shop");
    let o =
        s.h.outcomes()
            .await
            .into_iter()
            .find(|o| o.result == OutcomeKind::AwaitingApproval)
            .unwrap();
    assert!(o.message.contains("awaiting approval"), "{}", o.message);
    // nothing happens while it waits, whatever repeats
    s.h.post_webhook(TOKEN, &alert("a000000000000001", "shop", "api-1"))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        s.emu.get("v1", "Pod", "shop", "api-1").unwrap()["metadata"]["deletionTimestamp"].is_null()
    );

    // the approver is who the API server says the credentials belong to
    let (ok, said) = s.decide("approve", &record, "shop", "alice-token").await;
    assert!(ok, "{said}");
    assert!(said.contains("as alice"), "{said}");
    let done = s
        .record("shop", "api-1", "the approved record to act", |r| {
            matches!(
                r["status"]["phase"].as_str(),
                Some("Acting" | "Succeeded" | "Unverified")
            )
        })
        .await;
    assert_eq!(done["status"]["approval"]["approvedBy"], "alice");
    assert_eq!(done["spec"]["approval"]["approvedBy"], "alice");
    let history: Vec<String> = done["status"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["phase"].as_str().unwrap().to_string())
        .collect();
    assert!(history.iter().any(|p| p == "Approved"), "{history:?}");
    let acted = eventually(WAIT, "the approved action", || async {
        s.h.outcomes()
            .await
            .into_iter()
            .find(|o| o.result == OutcomeKind::Acted)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", s.h.proc.output()));
    assert_eq!(acted.approved_by.as_deref(), Some("alice"));
    assert!(
        acted.message.contains("approved by alice"),
        "{}",
        acted.message
    );
    eventually(WAIT, "the pod deleted", || async {
        s.emu
            .get("v1", "Pod", "shop", "api-1")
            .is_none()
            .then_some(())
    })
    .await
    .unwrap();
    // one approval, one action: it cannot be approved again
    let (ok, said) = s.decide("approve", &record, "shop", "alice-token").await;
    assert!(!ok, "{said}");
    assert!(said.contains("not AwaitingApproval"), "{said}");
    assert_eq!(
        s.h.outcomes()
            .await
            .iter()
            .filter(|o| o.result == OutcomeKind::Acted)
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_pod_is_not_what_was_approved_and_a_rejection_ends_it() {
    let s = start().await;
    s.h.post_webhook(TOKEN, &alert("b000000000000002", "shop", "api-2"))
        .await;
    s.h.post_webhook(TOKEN, &alert("b000000000000003", "shop", "api-3"))
        .await;
    let two = name(
        &s.record("shop", "api-2", "api-2 awaiting", |r| {
            r["status"]["phase"] == "AwaitingApproval"
        })
        .await,
    );
    let three = name(
        &s.record("shop", "api-3", "api-3 awaiting", |r| {
            r["status"]["phase"] == "AwaitingApproval"
        })
        .await,
    );
    // api-2 is replaced by a namesake (another UID) before anyone approves
    let mut pod = s.emu.get("v1", "Pod", "shop", "api-2").unwrap();
    s.emu.delete_now("v1", "Pod", "shop", "api-2").unwrap();
    pod["metadata"]["uid"] = "replaced-uid".into();
    pod["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    s.emu.create(pod).unwrap();
    let (ok, said) = s.decide("approve", &two, "shop", "alice-token").await;
    assert!(ok, "{said}");
    let refused = s
        .record("shop", "api-2", "the approval refused", |r| {
            r["status"]["phase"] == "Refused"
        })
        .await;
    assert_eq!(refused["status"]["reason"], "target_changed");
    let o =
        s.h.outcomes()
            .await
            .into_iter()
            .find(|o| o.reason == Some(RefusalReason::TargetChanged))
            .unwrap();
    assert_eq!(o.approved_by.as_deref(), Some("alice"));
    assert!(s.emu.get("v1", "Pod", "shop", "api-2").is_some());
    // api-3 is rejected: nothing is done
    let (ok, said) = s.decide("reject", &three, "shop", "mallory-token").await;
    assert!(ok, "{said}");
    assert!(said.contains("as mallory"), "{said}");
    let rejected = s
        .record("shop", "api-3", "the rejection", |r| {
            r["status"]["phase"] == "Rejected"
        })
        .await;
    assert_eq!(rejected["status"]["approval"]["rejectedBy"], "mallory");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        s.emu.get("v1", "Pod", "shop", "api-3").unwrap()["metadata"]["deletionTimestamp"].is_null()
    );
    // an unknown credential is refused by the API server itself
    let (ok, said) = s.decide("approve", &three, "shop", "nobody-token").await;
    assert!(!ok, "{said}");
}

/// The chart's objects rendered with the default values, as JSON.
fn render_chart() -> Vec<Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("python3")
        .arg(root.join("scripts/chart-check.py"))
        .args(["render", "--namespace", "heal8s", "--name", "heal8s"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_charts_admission_policy_refuses_an_approval_in_someone_elses_name() {
    let chart = render_chart();
    let s = start().await;
    let client_as = |token: &str| {
        let path = s.dir.path().join(format!("{token}.cfg"));
        s.emu.write_kubeconfig_as(&path, token).unwrap();
        path
    };
    for o in chart.into_iter().filter(|o| {
        matches!(
            o["kind"].as_str(),
            Some("ValidatingAdmissionPolicy" | "ValidatingAdmissionPolicyBinding")
        )
    }) {
        s.emu.create(o).unwrap();
    }
    s.h.post_webhook(TOKEN, &alert("c000000000000001", "shop", "api-1"))
        .await;
    let awaiting = s
        .record("shop", "api-1", "a record awaiting approval", |r| {
            r["status"]["phase"] == "AwaitingApproval"
        })
        .await;
    let record = name(&awaiting);
    let request = awaiting["status"]["approval"]["request"].clone();
    let patch_as = async |token: &str, patch: Value| {
        let cfg = client_as(token);
        let out = tokio::process::Command::new(testkit::kubectl_bin().unwrap())
            .arg("--kubeconfig")
            .arg(&cfg)
            .args([
                "patch",
                "remediation",
                &record,
                "-n",
                "shop",
                "--type=merge",
                "-p",
            ])
            .arg(patch.to_string())
            .env_remove("KUBECONFIG")
            .output()
            .await
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    // mallory writes an approval in alice's name: refused at admission
    let (ok, said) = patch_as(
        "mallory-token",
        json!({"spec": {"approval": {"request": request, "approvedBy": "alice"}}}),
    )
    .await;
    assert!(!ok, "{said}");
    assert!(
        said.contains("spec.approval may only name the user who makes the change"),
        "{said}"
    );
    // nor may anyone retarget the plan
    let (ok, said) = patch_as(
        "alice-token",
        json!({"spec": {"target": {"name": "api-2"}}}),
    )
    .await;
    assert!(!ok, "{said}");
    assert!(said.contains("only spec.approval"), "{said}");
    let stored = s
        .emu
        .get("heal8s.io/v1alpha1", "Remediation", "shop", &record)
        .unwrap();
    assert!(stored["spec"]["approval"].is_null(), "{stored:#}");
    assert_eq!(stored["spec"]["target"]["name"], "api-1");
    // alice's own approval passes the policy, and heal8s acts on it
    let (ok, said) = s.decide("approve", &record, "shop", "alice-token").await;
    assert!(ok, "{said}");
    s.record("shop", "api-1", "the approval taken", |r| {
        r["status"]["approval"]["approvedBy"] == "alice"
    })
    .await;

    // kubectl shows who approved what
    let crd = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../charts/heal8s/crds/remediations.heal8s.io.yaml");
    let admin = s.dir.path().join("admin.cfg");
    s.emu.write_kubeconfig(&admin).unwrap();
    let kubectl = async |args: &[&str]| {
        let out = tokio::process::Command::new(testkit::kubectl_bin().unwrap())
            .arg("--kubeconfig")
            .arg(&admin)
            .args(args)
            .env_remove("KUBECONFIG")
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    kubectl(&["apply", "-f", crd.to_str().unwrap()]).await;
    let table = kubectl(&["get", "remediations", "-n", "shop"]).await;
    assert!(table.contains("APPROVED BY"), "{table}");
    let line = table.lines().find(|l| l.starts_with(&record)).unwrap();
    assert!(line.contains("alice"), "{table}");
}
