//! Trust controls (issue 22) through a real `heal8s serve` and its webhook:
//! a route's occurrence threshold defers the first occurrences of a problem
//! (visible on `/outcomes`, in the log and the metrics) and acts from the
//! N-th; Alertmanager's repeats do not count.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::Duration;

use receiver_core::OutcomeKind;
use serde_json::{Value, json};
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
            .find(|o| o.result == OutcomeKind::DryRun)
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
