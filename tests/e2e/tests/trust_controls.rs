//! Trust controls (issue 22) through a real `heal8s serve` and its webhook:
//! a route's occurrence threshold defers the first occurrences of a problem
//! (visible on `/outcomes`, in the log and the metrics) and acts from the
//! N-th; Alertmanager's repeats do not count. Warm-up: a leader that cannot
//! read the Remediation records decides nothing, and the signals wait.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::Duration;

use receiver_core::OutcomeKind;
use serde_json::{Value, json};
use testkit::kube::{Controller, Emulator, RequestMatch};
use testkit::{Heal8s, TempDir, eventually};

const TOKEN: &str = "trust-token";
const WAIT: Duration = Duration::from_secs(20);

fn ago(secs: i64) -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(secs)).to_string()
}

/// One firing occurrence of a crash loop of `shop/api-1`.
fn occurrence(fingerprint: &str, starts: i64) -> Value {
    json!({"version": "4", "status": "firing", "receiver": "heal8s", "groupKey": "{}",
        "alerts": [{"status": "firing", "startsAt": ago(starts), "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": fingerprint,
            "labels": {"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": "api-1",
                       "reason": "CrashLoopBackOff"}}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_problem_is_acted_on_from_its_third_occurrence_only() {
    let dir = TempDir::new("occurrences");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "guard: {cooldown: 1s}\nroutes:\n- {name: crashloop, matchers: ['alertname=\"KubePodCrashLooping\"'], remediation: delete-pod, minOccurrences: 3, window: 10m}\n",
    )
    .unwrap();
    let h = Heal8s::start(
        TOKEN,
        &["--no-cluster", "--policy", policy.to_str().unwrap()],
    )
    .await
    .unwrap();
    let first = occurrence("a000000000000001", 300);
    let about = || async {
        h.outcomes()
            .await
            .into_iter()
            .filter(|o| o.route.as_deref() == Some("crashloop"))
            .collect::<Vec<_>>()
    };
    h.post_webhook(TOKEN, &first).await;
    // Alertmanager repeats the same occurrence: it does not count
    h.post_webhook(TOKEN, &first).await;
    h.post_webhook(TOKEN, &occurrence("a000000000000002", 200))
        .await;
    let deferred = eventually(WAIT, "two deferrals", || async {
        let d: Vec<_> = about()
            .await
            .into_iter()
            .filter(|o| o.result == OutcomeKind::Deferred)
            .collect();
        (d.len() == 2).then_some(d)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", h.proc.output()));
    let said: Vec<_> = deferred
        .iter()
        .map(|o| o.deferred.clone().unwrap())
        .collect();
    assert_eq!(said, ["occurrences 1/3", "occurrences 2/3"]);
    assert_eq!(
        h.metric(r#"heal8s_deferred_below_occurrences_total{remediation="delete-pod"}"#)
            .await,
        2.0
    );
    assert!(
        h.proc.output().contains("occurrences 2/3"),
        "the log says why"
    );
    h.post_webhook(TOKEN, &occurrence("a000000000000003", 100))
        .await;
    let acted = eventually(WAIT, "the third to act", || async {
        about()
            .await
            .into_iter()
            .find(|o| o.result == OutcomeKind::Observed)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", h.proc.output()));
    assert_eq!(
        acted.fingerprint,
        "a000000000000003",
        "{:#?}",
        about().await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_decided_before_the_records_are_read_and_nothing_is_lost() {
    let emu = Emulator::start().await.unwrap();
    let _played = emu.play(&[Controller::Kubelet]);
    testkit::scenario::seed_crash_loops(&emu, &["heal8s", "shop"], &["api-1"]).unwrap();
    // the records cannot be listed (the guard's history)
    let faults = emu.faults();
    let unreadable =
        faults.fail_always(RequestMatch::any().verb("list").path("/remediations"), 500);
    let (h, _files) = Heal8s::start_in(
        TOKEN,
        &emu,
        "guard: {cooldown: 1s}\nroutes:\n- {name: crashloop, matchers: ['alertname=\"KubePodCrashLooping\"'], remediation: delete-pod}\n",
        &["--namespace", "heal8s"],
    )
    .await
    .unwrap();
    assert_eq!(
        h.post_webhook(TOKEN, &occurrence("b000000000000001", 300))
            .await,
        200,
        "taken in: it waits"
    );
    eventually(WAIT, "the warm-up warning", || async {
        h.proc
            .output()
            .contains("the Remediation records cannot be read")
            .then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", h.proc.output()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        h.outcomes().await.is_empty(),
        "nothing decided: {:#?}",
        h.outcomes().await
    );
    assert!(emu.get("v1", "Pod", "shop", "api-1").is_some());
    // readable again: the signal that waited is acted on
    faults.remove(unreadable);
    let acted = eventually(WAIT, "the waiting alert acted on", || async {
        h.outcomes()
            .await
            .into_iter()
            .find(|o| o.result == OutcomeKind::Acted && o.fingerprint == "b000000000000001")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", h.proc.output()));
    assert_eq!(acted.target.as_deref(), Some("Pod shop/api-1"));
    // deleted (the emulated kubelet ends its grace period)
    eventually(WAIT, "the pod gone", || async {
        emu.get("v1", "Pod", "shop", "api-1")
            .is_none()
            .then_some(())
    })
    .await
    .unwrap();
    assert!(h.proc.output().contains("heal8s decides again"));
}
