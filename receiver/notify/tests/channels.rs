//! Each HTTP channel delivered to a local server standing in for the
//! service: what arrives (path, query, body), and how each service's own
//! answers are read (DingTalk and Bark answer 200 with an error code).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::Uri;
use jiff::Timestamp;
use receiver_core::notify::{Event, Links, Notice, Notifications, Severity};
use receiver_core::signal::SourceKind;

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

/// What arrived (the URI with its query, the JSON body) and the bodies to
/// answer with, in turn (then `{}`).
#[derive(Default)]
struct Service {
    got: Mutex<Vec<(String, serde_json::Value)>>,
    answers: Mutex<Vec<&'static str>>,
}

async fn take(State(s): State<Arc<Service>>, uri: Uri, body: axum::body::Bytes) -> String {
    let v = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    s.got.lock().unwrap().push((uri.to_string(), v));
    let mut a = s.answers.lock().unwrap();
    if a.is_empty() {
        "{}".into()
    } else {
        a.remove(0).into()
    }
}

async fn service(answers: Vec<&'static str>) -> (String, Arc<Service>) {
    let s = Arc::new(Service::default());
    *s.answers.lock().unwrap() = answers;
    let app = axum::Router::new()
        .route("/{*path}", axum::routing::post(take))
        .with_state(s.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    (url, s)
}

fn secret_file(value: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!("heal8s-notify-channels-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join(format!(
        "s{}",
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

fn notice(event: Event, severity: Severity) -> Notice {
    Notice {
        event,
        severity,
        at: Timestamp::now(),
        cluster: Some("prod".into()),
        namespace: Some("shop".into()),
        kind: Some("Pod".into()),
        name: Some("api-1".into()),
        target: Some("Pod shop/api-1".into()),
        remediation: Some(receiver_core::RemediationKind::DeletePod),
        route: Some("crashloop".into()),
        source: SourceKind::Alert,
        signal: "KubePodCrashLooping".into(),
        result: "acted".into(),
        reason: None,
        title: "Done: delete Pod shop/api-1".into(),
        message: "deleted pod shop/api-1".into(),
        evidence: BTreeMap::new(),
        links: Links::default(),
        record: None,
        key: "Deployment/shop/api".into(),
        count: 1,
        examples: Vec::new(),
    }
}

async fn settled(counts: &Counts, receiver: &str) -> (u32, u32, u32) {
    let start = Instant::now();
    loop {
        let c = (
            counts.get(receiver, "sent"),
            counts.get(receiver, "retried"),
            counts.get(receiver, "failed"),
        );
        if c.0 + c.2 > 0 {
            return c;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "nothing settled for {receiver}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Deliver `n` to one receiver of `yaml` (a receiver named `r`), and wait.
async fn deliver(yaml: &str, notices: Vec<Notice>) -> (Arc<Counts>, receiver_notify::Delivery) {
    let counts = Arc::new(Counts::default());
    let (outbox, delivery) = receiver_notify::start(&config(yaml), counts.clone()).unwrap();
    for n in notices {
        outbox.post(n, vec!["r".into()]);
    }
    settled(&counts, "r").await;
    drop(outbox);
    (counts, delivery)
}

#[tokio::test]
async fn slack_and_teams_get_their_documented_messages_at_the_secret_url() {
    let (base, svc) = service(vec![]).await;
    let url = secret_file(&format!("{base}/services/T0/B0/SEKRIT"));
    let (c, _) = deliver(
        &format!("receivers:\n- name: r\n  slack: {{url: {{file: {url}}}}}\n"),
        vec![notice(Event::Acted, Severity::Info)],
    )
    .await;
    assert_eq!(c.get("r", "sent"), 1);
    let got = svc.got.lock().unwrap().clone();
    assert_eq!(got[0].0, "/services/T0/B0/SEKRIT");
    assert!(
        got[0].1["blocks"].is_array() && got[0].1["text"].is_string(),
        "{}",
        got[0].1
    );

    let (base, svc) = service(vec![]).await;
    let url = secret_file(&format!(
        "{base}/workflows/abc/triggers/manual/paths/invoke?sig=SEKRIT"
    ));
    deliver(
        &format!("receivers:\n- name: r\n  teams: {{url: {{file: {url}}}}}\n"),
        vec![notice(Event::Failed, Severity::High)],
    )
    .await;
    let got = svc.got.lock().unwrap().clone();
    assert_eq!(
        got[0].0,
        "/workflows/abc/triggers/manual/paths/invoke?sig=SEKRIT"
    );
    assert_eq!(got[0].1["type"], "message");
    assert_eq!(
        got[0].1["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
}

#[tokio::test]
async fn dingtalk_signs_the_url_and_its_error_codes_are_read() {
    let (base, svc) = service(vec![
        r#"{"errcode":0,"errmsg":"ok"}"#,
        r#"{"errcode":130101,"errmsg":"send too fast"}"#,
        r#"{"errcode":0,"errmsg":"ok"}"#,
        r#"{"errcode":310000,"errmsg":"keywords not in content"}"#,
    ])
    .await;
    let url = secret_file(&format!("{base}/robot/send?access_token=SEKRIT"));
    let key = secret_file("SECsigning");
    let yaml = format!(
        "receivers:\n- name: r\n  dingtalk: {{url: {{file: {url}}}, secret: {{file: {key}}}}}\n"
    );
    let before = Timestamp::now().as_millisecond();
    let (c, _) = deliver(&yaml, vec![notice(Event::Acted, Severity::Info)]).await;
    assert_eq!((c.get("r", "sent"), c.get("r", "failed")), (1, 0));
    {
        let got = svc.got.lock().unwrap();
        let (uri, body) = &got[0];
        assert!(
            uri.starts_with("/robot/send?access_token=SEKRIT&timestamp="),
            "{uri}"
        );
        let ts: i64 = uri
            .split("timestamp=")
            .nth(1)
            .and_then(|r| r.split('&').next())
            .unwrap()
            .parse()
            .unwrap();
        assert!(ts >= before && ts <= Timestamp::now().as_millisecond());
        let sign = uri.split("sign=").nth(1).unwrap();
        assert_eq!(
            sign,
            receiver_notify::format::dingtalk_signed_url("", "SECsigning", ts)
                .split("sign=")
                .nth(1)
                .unwrap()
        );
        assert_eq!(body["msgtype"], "markdown");
    }
    // "sent too fast" is tried again; a refused message is not
    let (c, _) = deliver(&yaml, vec![notice(Event::Failed, Severity::High)]).await;
    assert_eq!((c.get("r", "sent"), c.get("r", "retried")), (1, 1));
    let (c, _) = deliver(&yaml, vec![notice(Event::Failed, Severity::High)]).await;
    assert_eq!(
        (
            c.get("r", "sent"),
            c.get("r", "failed"),
            c.get("r", "retried")
        ),
        (0, 1, 0)
    );
}

#[tokio::test]
async fn bark_pushes_to_the_device_url_and_reads_its_code() {
    let (base, svc) = service(vec![
        r#"{"code":200,"message":"success"}"#,
        r#"{"code":400,"message":"failed to get device token"}"#,
    ])
    .await;
    let url = secret_file(&format!("{base}/DEVICEKEY"));
    let yaml = format!("receivers:\n- name: r\n  bark: {{url: {{file: {url}}}}}\n");
    let (c, _) = deliver(&yaml, vec![notice(Event::Escalated, Severity::Critical)]).await;
    assert_eq!(c.get("r", "sent"), 1);
    {
        let got = svc.got.lock().unwrap();
        assert_eq!(got[0].0, "/DEVICEKEY");
        assert_eq!(got[0].1["group"], "heal8s");
        assert_eq!(got[0].1["level"], "critical");
    }
    let (c, _) = deliver(&yaml, vec![notice(Event::Acted, Severity::Info)]).await;
    assert_eq!((c.get("r", "sent"), c.get("r", "failed")), (0, 1));
}

#[tokio::test]
async fn pagerduty_triggers_then_resolves_the_same_incident() {
    let (base, svc) = service(vec![]).await;
    let key = secret_file("R0UTINGKEY");
    let yaml = format!(
        "receivers:\n- name: r\n  pagerduty: {{routingKey: {{file: {key}}}, url: \"{base}/v2/enqueue\"}}\n"
    );
    let mut recovered = notice(Event::Recovered, Severity::High);
    recovered.title = "Recovered after: delete Pod shop/api-1".into();
    let counts = Arc::new(Counts::default());
    let (outbox, _d) = receiver_notify::start(&config(&yaml), counts.clone()).unwrap();
    outbox.post(notice(Event::Failed, Severity::High), vec!["r".into()]);
    outbox.post(recovered, vec!["r".into()]);
    let start = Instant::now();
    while counts.get("r", "sent") < 2 {
        assert!(start.elapsed() < Duration::from_secs(20), "not both sent");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got = svc.got.lock().unwrap().clone();
    assert!(got.iter().all(|(uri, _)| uri == "/v2/enqueue"));
    let actions: Vec<&str> = got
        .iter()
        .map(|(_, b)| b["event_action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["trigger", "resolve"]);
    assert_eq!(got[0].1["routing_key"], "R0UTINGKEY");
    assert_eq!(got[0].1["dedup_key"], got[1].1["dedup_key"]);
    assert_eq!(got[0].1["payload"]["severity"], "error");
}
