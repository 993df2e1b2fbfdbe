//! The Remediation CRD heal8s generates is accepted by the API (emulation)
//! and round-trips the Rust type through a real `kube::Client`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use kube::Api;
use kube::api::PostParams;
use receiver_core::names::record_name;
use receiver_core::{RemediationKind, Target, TargetKind};
use receiver_k8s::record::{
    Phase, Remediation, RemediationSpec, RemediationStatus, TargetSpec, TriggerSpec,
};
use serde_json::json;
use testkit::kube::Emulator;

#[tokio::test]
async fn generated_crd_is_served_and_a_remediation_round_trips() {
    let emu = Emulator::start().await.unwrap();
    let yaml = receiver_k8s::record::crd_yaml().unwrap();
    let crd: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
    // the emulation serves heal8s.io already; creating the CRD must still be accepted
    let _ = emu.create(crd);
    emu.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}))
        .unwrap();
    let client = emu.client().await.unwrap();
    let api: Api<Remediation> = Api::namespaced(client, "shop");
    let target = Target::new(TargetKind::Pod, Some("shop"), "api-7d9c-x2");
    let name = record_name(&target, RemediationKind::DeletePod);
    let mut r = Remediation::new(
        &name,
        RemediationSpec {
            trigger: TriggerSpec {
                source: "alert".into(),
                alertname: "KubePodCrashLooping".into(),
                fingerprint: "d8369421dcf3241e".into(),
                labels: [("alertname".to_string(), "KubePodCrashLooping".to_string())].into(),
                first_seen: "2026-11-22T12:52:25Z".into(),
            },
            target: TargetSpec {
                api_version: "v1".into(),
                kind: "Pod".into(),
                namespace: Some("shop".into()),
                name: "api-7d9c-x2".into(),
                container: Some("api".into()),
                workload: None,
                key: target.key(),
            },
            remediation: "delete-pod".into(),
            parameters: json!({"gracePeriodSeconds": 30}),
            mode: "direct".into(),
        },
    );
    r.status = Some(RemediationStatus {
        phase: Some(Phase::Planned),
        ..RemediationStatus::default()
    });
    let created = api.create(&PostParams::default(), &r).await.unwrap();
    let got = api.get(&name).await.unwrap();
    assert_eq!(got.spec, r.spec);
    assert_eq!(created.spec.parameters["gracePeriodSeconds"], 30);
}
