//! Delivery against local HTTP receivers: retries on 5xx, `Retry-After` on
//! 429, no retry on other 4xx, a receiver that never answers holds up no
//! other, grouping into summaries, full queues counted, and what is held
//! sent at shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use receiver_core::notify::{Event, Links, Notice, Notifications, Severity};
use receiver_core::signal::SourceKind;

/// Counts of (receiver, result).
#[derive(Default)]
struct Counts(Mutex<BTreeMap<(String, &'static str), u32>>);

impl receiver_notify::Report for Counts {
    fn delivered(&self, receiver: &str, result: &'static str) {
        *self
            .0
            .lock()
            .unwrap()
            .entry((receiver.to_string(), result))
            .or_default() += 1;
    }
}

impl Counts {
    fn get(&self, receiver: &str, result: &'static str) -> u32 {
        self.0
            .lock()
            .unwrap()
            .get(&(receiver.to_string(), result))
            .copied()
            .unwrap_or(0)
    }
}

/// What a local receiver got, and how it answers: a script of statuses
/// (with an optional `Retry-After`), then 200.
#[derive(Default)]
struct Inbox {
    got: Mutex<Vec<(Instant, HeaderMap, serde_json::Value)>>,
    script: Mutex<Vec<(u16, Option<&'static str>)>>,
}

async fn take(
    State(inbox): State<Arc<Inbox>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let v = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    inbox.got.lock().unwrap().push((Instant::now(), headers, v));
    let next = {
        let mut s = inbox.script.lock().unwrap();
        (!s.is_empty()).then(|| s.remove(0))
    };
    match next {
        Some((code, retry_after)) => {
            let mut r = (StatusCode::from_u16(code).unwrap(), "no").into_response();
            if let Some(ra) = retry_after {
                r.headers_mut().insert("retry-after", ra.parse().unwrap());
            }
            r
        }
        None => (StatusCode::OK, "ok").into_response(),
    }
}

/// A local receiver; its URL.
async fn receiver(script: Vec<(u16, Option<&'static str>)>) -> (String, Arc<Inbox>) {
    let inbox = Arc::new(Inbox::default());
    *inbox.script.lock().unwrap() = script;
    let app = axum::Router::new()
        .route("/hook/{secret}", axum::routing::post(take))
        .with_state(inbox.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook/SEKRIT", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    (url, inbox)
}

/// A receiver that takes connections and never answers.
async fn silent() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    url
}

/// A unique secret file holding `value` (tests run in threads of one process).
fn secret_file(value: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!("heal8s-notify-deliver-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join(format!(
        "secret-{}",
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    std::fs::write(&f, value).unwrap();
    f.to_string_lossy().into_owned()
}

fn config(yaml: &str) -> Notifications {
    let v: serde_json::Value = serde_saphyr::from_str(yaml).unwrap();
    let n: Notifications = serde_json::from_value(v).unwrap();
    assert!(n.validate().is_empty(), "{:?}", n.validate());
    n
}

fn notice(ns: &str, pod: &str) -> Notice {
    Notice {
        event: Event::Acted,
        severity: Severity::Info,
        at: Timestamp::now(),
        cluster: Some("test".into()),
        namespace: Some(ns.into()),
        kind: Some("Pod".into()),
        name: Some(pod.into()),
        target: Some(format!("Pod {ns}/{pod}")),
        remediation: Some(receiver_core::RemediationKind::DeletePod),
        route: Some("crashloop".into()),
        source: SourceKind::Detector,
        signal: "Heal8sCrashLoop".into(),
        result: "acted".into(),
        reason: None,
        title: format!("Done: delete Pod {ns}/{pod}"),
        message: "deleted".into(),
        evidence: BTreeMap::new(),
        links: Links::default(),
        record: None,
        key: format!("Deployment/{ns}/api"),
        count: 1,
        examples: Vec::new(),
    }
}

async fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn webhook(name: &str, url: &str, token: Option<&str>) -> String {
    let mut s = format!(
        "- name: {name}\n  webhook:\n    url: {{file: {}}}\n",
        secret_file(url)
    );
    if let Some(t) = token {
        s.push_str(&format!("    bearerToken: {{file: {}}}\n", secret_file(t)));
    }
    s
}

#[tokio::test]
async fn a_webhook_gets_the_notice_with_its_bearer_token() {
    let (url, inbox) = receiver(vec![]).await;
    let cfg = config(&format!(
        "receivers:\n{}",
        webhook("hook", &url, Some("t0ken"))
    ));
    let counts = Arc::new(Counts::default());
    let (outbox, delivery) = receiver_notify::start(&cfg, counts.clone()).unwrap();
    outbox.post(notice("shop", "api-1"), vec!["hook".into()]);
    until("the delivery", || {
        (counts.get("hook", "sent") == 1).then_some(())
    })
    .await;
    {
        let got = inbox.got.lock().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1["authorization"], "Bearer t0ken");
        assert_eq!(got[0].1["content-type"], "application/json");
        assert_eq!(got[0].2["notice"]["target"], "Pod shop/api-1");
    }
    drop(outbox);
    assert_eq!(delivery.finish(Duration::from_secs(2)).await, 0);
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_and_a_429_waits_for_retry_after() {
    let (url, inbox) = receiver(vec![(500, None), (429, Some("2")), (503, None)]).await;
    let cfg = config(&format!("receivers:\n{}", webhook("hook", &url, None)));
    let counts = Arc::new(Counts::default());
    let (outbox, _delivery) = receiver_notify::start(&cfg, counts.clone()).unwrap();
    outbox.post(notice("shop", "api-1"), vec!["hook".into()]);
    until("the delivery", || {
        (counts.get("hook", "sent") == 1).then_some(())
    })
    .await;
    assert_eq!(counts.get("hook", "retried"), 3);
    let got = inbox.got.lock().unwrap();
    let at: Vec<Instant> = got.iter().map(|g| g.0).collect();
    assert_eq!(at.len(), 4);
    // 1 s after the 500; 2 s (Retry-After) after the 429; 4 s after the 503
    assert!(
        at[1] - at[0] >= Duration::from_millis(950),
        "{:?}",
        at[1] - at[0]
    );
    assert!(
        at[2] - at[1] >= Duration::from_millis(1950),
        "{:?}",
        at[2] - at[1]
    );
    assert!(
        at[3] - at[2] >= Duration::from_millis(3950),
        "{:?}",
        at[3] - at[2]
    );
}

#[tokio::test]
async fn a_client_error_is_not_retried_and_attempts_are_bounded() {
    let (url, inbox) = receiver(vec![(404, None)]).await;
    let (url2, inbox2) = receiver(vec![(500, None), (500, None), (500, None)]).await;
    let cfg = config(&format!(
        "receivers:\n{}{}delivery: {{attempts: 2}}\n",
        webhook("gone", &url, None),
        webhook("down", &url2, None)
    ));
    let counts = Arc::new(Counts::default());
    let (outbox, _delivery) = receiver_notify::start(&cfg, counts.clone()).unwrap();
    outbox.post(notice("shop", "api-1"), vec!["gone".into(), "down".into()]);
    until("both to fail", || {
        (counts.get("gone", "failed") == 1 && counts.get("down", "failed") == 1).then_some(())
    })
    .await;
    assert_eq!(
        inbox.got.lock().unwrap().len(),
        1,
        "a 404 is not tried again"
    );
    assert_eq!(inbox2.got.lock().unwrap().len(), 2, "two attempts, no more");
    assert_eq!(counts.get("down", "retried"), 1);
}

#[tokio::test]
async fn a_receiver_that_never_answers_holds_up_no_other() {
    let dead = silent().await;
    let (url, inbox) = receiver(vec![]).await;
    let cfg = config(&format!(
        "receivers:\n{}{}delivery: {{timeout: 30s}}\n",
        webhook("dead", &dead, None),
        webhook("live", &url, None)
    ));
    let counts = Arc::new(Counts::default());
    let (outbox, delivery) = receiver_notify::start(&cfg, counts.clone()).unwrap();
    for (i, ns) in ["a", "b", "c"].iter().enumerate() {
        outbox.post(
            notice(ns, &format!("p{i}")),
            vec!["dead".into(), "live".into()],
        );
    }
    until("the live receiver", || {
        (inbox.got.lock().unwrap().len() == 3).then_some(())
    })
    .await;
    assert_eq!(counts.get("live", "sent"), 3);
    assert_eq!(counts.get("dead", "sent") + counts.get("dead", "failed"), 0);
    drop(outbox);
    let left = delivery.finish(Duration::from_millis(200)).await;
    assert_eq!(
        left, 3,
        "the dead receiver's three are reported left at shutdown"
    );
}

#[tokio::test]
async fn a_full_receiver_queue_drops_the_oldest_and_counts_it() {
    let dead = silent().await;
    let cfg = config(&format!(
        "receivers:\n{}delivery: {{queue: 1, timeout: 30s}}\n",
        webhook("dead", &dead, None)
    ));
    let counts = Arc::new(Counts::default());
    let (outbox, _delivery) = receiver_notify::start(&cfg, counts.clone()).unwrap();
    outbox.post(notice("a", "p"), vec!["dead".into()]);
    // the first is being sent (and never answered); the next waits, the third pushes it out
    tokio::time::sleep(Duration::from_millis(300)).await;
    outbox.post(notice("b", "p"), vec!["dead".into()]);
    outbox.post(notice("c", "p"), vec!["dead".into()]);
    until("the drop", || {
        (counts.get("dead", "dropped") == 1).then_some(())
    })
    .await;
}

#[tokio::test]
async fn repeats_become_one_summary_and_what_is_held_goes_out_at_shutdown() {
    let (url, inbox) = receiver(vec![]).await;
    let cfg = config(&format!(
        "receivers:\n{}delivery: {{groupWindow: 1s}}\n",
        webhook("hook", &url, None)
    ));
    let counts = Arc::new(Counts::default());
    let (outbox, delivery) = receiver_notify::start(&cfg, counts.clone()).unwrap();
    for i in 0..6 {
        outbox.post(notice("shop", &format!("api-{i}")), vec!["hook".into()]);
    }
    until("the summary", || {
        (inbox.got.lock().unwrap().len() == 2).then_some(())
    })
    .await;
    {
        let got = inbox.got.lock().unwrap();
        assert_eq!(got[0].2["notice"]["count"], 1);
        assert_eq!(got[1].2["notice"]["count"], 5);
        assert_eq!(
            got[1].2["notice"]["title"],
            "5 more delete-pod acted in shop in the last 1s"
        );
        assert!(got[1].0 - got[0].0 >= Duration::from_millis(900));
    }
    // held at shutdown: sent then, not lost
    outbox.post(notice("shop", "api-6"), vec!["hook".into()]);
    outbox.post(notice("shop", "api-7"), vec!["hook".into()]);
    drop(outbox);
    assert_eq!(delivery.finish(Duration::from_secs(5)).await, 0);
    let got = inbox.got.lock().unwrap();
    assert_eq!(
        got.len(),
        3,
        "{:?}",
        got.iter().map(|g| &g.2).collect::<Vec<_>>()
    );
    assert_eq!(got[2].2["notice"]["count"], 2);
}

#[tokio::test]
async fn a_secret_file_is_read_at_each_send_so_a_rotation_needs_no_restart() {
    let (old, old_inbox) = receiver(vec![]).await;
    let (new, new_inbox) = receiver(vec![]).await;
    let dir = std::env::temp_dir().join(format!("heal8s-notify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("url");
    std::fs::write(&file, &old).unwrap();
    let cfg = config(&format!(
        "receivers:\n- name: hook\n  webhook: {{url: {{file: {}}}}}\n",
        file.display()
    ));
    let counts = Arc::new(Counts::default());
    let (outbox, _delivery) = receiver_notify::start(&cfg, counts.clone()).unwrap();
    outbox.post(notice("a", "p"), vec!["hook".into()]);
    until("the first", || {
        (counts.get("hook", "sent") == 1).then_some(())
    })
    .await;
    std::fs::write(&file, &new).unwrap();
    outbox.post(notice("b", "p"), vec!["hook".into()]);
    until("the second", || {
        (counts.get("hook", "sent") == 2).then_some(())
    })
    .await;
    assert_eq!(old_inbox.got.lock().unwrap().len(), 1);
    assert_eq!(new_inbox.got.lock().unwrap().len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}
