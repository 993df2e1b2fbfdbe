//! A team's own policy for its namespace (issue 22, part 6): the chart's
//! RemediationPolicy CRD in the Kubernetes API emulation, a real `heal8s
//! serve`, and policies written through a real `kube::Client`. heal8s
//! accepts one that only tightens (status `Accepted=True`, an Event) and
//! applies it (a forced `observe`, a remediation switched off, refusals
//! naming both policies); it refuses one that would loosen the cluster
//! policy (`Accepted=False` naming the field, a Warning Event) and applies
//! nothing of it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::Duration;

use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use receiver_core::{OutcomeKind, RefusalReason};
use serde_json::{Value, json};
use testkit::kube::{Controller, Emulator};
use testkit::{Heal8s, eventually};

const TOKEN: &str = "nspolicy-token";
const WAIT: Duration = Duration::from_secs(20);

fn alert(fingerprint: &str, ns: &str, pod: &str) -> Value {
    testkit::scenario::crash_loop_alert(fingerprint, ns, pod)
}

fn resource() -> ApiResource {
    ApiResource {
        group: "heal8s.io".into(),
        version: "v1alpha1".into(),
        api_version: "heal8s.io/v1alpha1".into(),
        kind: "RemediationPolicy".into(),
        plural: "remediationpolicies".into(),
    }
}

fn accepted(p: &Value) -> Option<Value> {
    p["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Accepted")
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teams_policy_tightens_its_namespace_and_one_that_loosens_is_refused_by_field() {
    let emu = Emulator::start().await.unwrap();
    let _played = emu.play(&[Controller::Kubelet]);
    // the chart's CRD, as a cluster would have it
    let crd_text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../charts/heal8s/crds/remediationpolicies.heal8s.io.yaml"),
    )
    .unwrap();
    let crd: Value = serde_saphyr::from_str(&crd_text).unwrap();
    emu.create(crd).unwrap();
    testkit::scenario::seed_crash_loops(&emu, &["heal8s", "shop", "web"], &["api-1", "api-2"])
        .unwrap();
    emu.create(testkit::scenario::lone_crash_looping_pod(
        "web", "api-1", "w1",
    ))
    .unwrap();
    let (h, _files) = Heal8s::start_in(
        TOKEN,
        &emu,
        "guard: {cooldown: 1s, budgets: {perNamespace: {max: 5, per: 5m}}}\nroutes:\n- {name: crashloop, matchers: ['alertname=\"KubePodCrashLooping\"'], remediation: delete-pod}\n",
        &["--namespace", "heal8s"],
    )
    .await
    .unwrap();
    let client = emu.client().await.unwrap();
    let write = |ns: &str, name: &str, spec: Value| {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource());
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "heal8s.io/v1alpha1", "kind": "RemediationPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}))
        .unwrap();
        async move { api.create(&PostParams::default(), &obj).await.unwrap() }
    };
    write("shop", "team", json!({"mode": "observe"})).await;
    write(
        "web",
        "loose",
        json!({"budgets": {"perNamespace": {"max": 100, "per": "1s"}}, "optOut": true}),
    )
    .await;
    let condition = |ns: &'static str, name: &'static str| {
        let emu = &emu;
        async move {
            eventually(WAIT, &format!("{ns}/{name} judged"), || async {
                emu.get("heal8s.io/v1alpha1", "RemediationPolicy", ns, name)
                    .and_then(|p| accepted(&p))
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"))
        }
    };
    let ok = condition("shop", "team").await;
    assert_eq!(ok["status"], "True", "{ok:#}");
    let refused = condition("web", "loose").await;
    assert_eq!(refused["status"], "False", "{refused:#}");
    assert_eq!(refused["reason"], "Loosens");
    let msg = refused["message"].as_str().unwrap();
    assert!(msg.contains("spec.budgets.perNamespace"), "{msg}");
    assert!(msg.contains("only lower a budget"), "{msg}");
    // and an Event on each
    let events = |ns: &str| emu.list("events.k8s.io/v1", "Event", ns);
    eventually(WAIT, "the Events", || async {
        let shop = events("shop")
            .iter()
            .any(|e| e["reason"] == "PolicyAccepted" && e["regarding"]["name"] == "team");
        let web = events("web")
            .iter()
            .any(|e| e["reason"] == "PolicyRefused" && e["type"] == "Warning");
        (shop && web).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{:#?}", events("web")));

    // shop is held to observe; web's refused policy (with its optOut) is not applied at all
    h.post_webhook(TOKEN, &alert("d000000000000001", "shop", "api-1"))
        .await;
    h.post_webhook(TOKEN, &alert("d000000000000002", "web", "api-1"))
        .await;
    let outcome = |fp: &'static str| {
        let h = &h;
        async move {
            eventually(WAIT, fp, || async {
                h.outcomes().await.into_iter().find(|o| {
                    o.fingerprint == fp
                        && matches!(
                            o.result,
                            OutcomeKind::Observed | OutcomeKind::Acted | OutcomeKind::Refused
                        )
                })
            })
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", h.proc.output()))
        }
    };
    let shop = outcome("d000000000000001").await;
    assert_eq!(shop.result, OutcomeKind::Observed, "{shop:#?}");
    let web = outcome("d000000000000002").await;
    assert_eq!(web.result, OutcomeKind::Acted, "{web:#?}");
    assert!(
        emu.get("v1", "Pod", "shop", "api-1").unwrap()["metadata"]["deletionTimestamp"].is_null()
    );

    // the team switches delete-pod off instead: refused, naming both policies
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "shop", &resource());
    api.patch(
        "team",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"mode": null, "disabled": ["delete-pod"]}})),
    )
    .await
    .unwrap();
    eventually(WAIT, "the change taken", || async {
        let p = emu.get("heal8s.io/v1alpha1", "RemediationPolicy", "shop", "team")?;
        (p["status"]["observedGeneration"] == p["metadata"]["generation"]).then_some(())
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.post_webhook(TOKEN, &alert("d000000000000003", "shop", "api-2"))
        .await;
    let off = outcome("d000000000000003").await;
    assert_eq!(off.reason, Some(RefusalReason::NamespacePolicy), "{off:#?}");
    assert!(
        off.message.contains("switches delete-pod off"),
        "{}",
        off.message
    );
    assert!(
        off.message
            .contains("the cluster's and RemediationPolicy shop/team"),
        "{}",
        off.message
    );
    assert!(emu.get("v1", "Pod", "shop", "api-2").is_some());
}
