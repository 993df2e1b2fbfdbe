//! Router tests through `tower::ServiceExt::oneshot`: authentication (webhook,
//! reads, open endpoints), every rejection path, queue acceptance and the
//! metrics they leave behind.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use receiver::http::{AppState, Token, WEBHOOK_PATH, router};
use receiver::metrics::Metrics;
use receiver::worker::{self, Acting, Recorder};
use receiver_core::{Engine, Policy, Signal, SystemClock};
use tower::ServiceExt;

const FIRING: &str = include_str!("../core/tests/fixtures/sample-webhook.json");
const TOKEN: &str = "s3cret-token";
const READ_TOKEN: &str = "read-only-token";

struct Harness {
    state: AppState,
    rx: receiver::queue::QueueReceiver,
}

fn harness(capacity: usize, max_body: usize) -> Harness {
    let metrics = Arc::new(Metrics::new());
    let (tx, rx) = receiver::queue::work_queue(capacity);
    let recorder = Arc::new(Recorder::new(metrics.clone()));
    tx.count_into(metrics.clone());
    let state = AppState {
        token: Token::new(TOKEN),
        read_token: Token::new(READ_TOKEN),
        front: receiver::front::Front::One {
            queue: tx,
            recorder: recorder.clone(),
        },
        metrics: metrics.clone(),
        recorder,
        policy: Arc::new(Policy::default_policy().unwrap().to_json()),
        max_body_bytes: max_body,
        alert_limits: Default::default(),
        accepting: Arc::new(AtomicBool::new(true)),
        leadership: receiver_k8s::leader::Leadership::always(),
    };
    Harness { state, rx }
}

fn app(h: &Harness) -> Router {
    router(h.state.clone())
}

fn post(body: impl Into<Body>, auth: Option<&str>) -> Request<Body> {
    let mut b = Request::post(WEBHOOK_PATH).header(header::CONTENT_TYPE, "application/json");
    if let Some(a) = auth {
        b = b.header(header::AUTHORIZATION, a);
    }
    b.body(body.into()).unwrap()
}

fn bearer() -> Option<&'static str> {
    Some("Bearer s3cret-token")
}

async fn send(app: Router, req: Request<Body>) -> (StatusCode, serde_json::Value) {
    let resp = app.oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, v)
}

async fn metrics_text(h: &Harness) -> String {
    let resp = app(h)
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let b = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(b.to_vec()).unwrap()
}

fn payload_with(n: usize) -> String {
    payload_range(0, n)
}

/// A delivery of alerts `from..from + n`, each its own series.
fn payload_range(from: usize, n: usize) -> String {
    let mut v: serde_json::Value = serde_json::from_str(FIRING).unwrap();
    let alert = v["alerts"][0].clone();
    let alerts: Vec<_> = (from..from + n)
        .map(|i| {
            let mut a = alert.clone();
            a["labels"]["pod"] = format!("api-{i}").into();
            a["fingerprint"] = format!("{i:016x}").into();
            a
        })
        .collect();
    v["alerts"] = alerts.into();
    v.to_string()
}

#[tokio::test]
async fn valid_delivery_with_token_is_accepted_onto_the_queue() {
    let mut h = harness(8, 1 << 20);
    let (status, body) = send(app(&h), post(FIRING, bearer())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], 1);
    let m = metrics_text(&h).await;
    let s = h.rx.try_recv().unwrap();
    assert_eq!(s.fingerprint, "d8369421dcf3241e");
    assert!(
        metrics_text(&h).await.contains("heal8s_queue_depth 0"),
        "the depth follows the worker taking a signal"
    );
    assert!(
        m.contains("heal8s_alerts_received_total{status=\"firing\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("heal8s_webhook_requests_total{code=\"200\"} 1"),
        "{m}"
    );
    assert!(m.contains("heal8s_queue_depth 1"), "{m}");
}

#[tokio::test]
async fn missing_wrong_or_malformed_token_is_401_and_queues_nothing() {
    let mut h = harness(8, 1 << 20);
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer s3cret-token-but-longer"),
        Some("Basic s3cret-token"),
        Some("s3cret-token"),
    ] {
        let (status, body) = send(app(&h), post(FIRING, auth)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(body["code"], "unauthorized");
    }
    assert!(h.rx.try_recv().is_none());
    let m = metrics_text(&h).await;
    assert!(
        m.contains("heal8s_webhook_requests_total{code=\"401\"} 5"),
        "{m}"
    );
    assert!(
        m.contains("heal8s_alerts_received_total{status=\"firing\"} 0"),
        "{m}"
    );
}

fn get(path: &str, auth: Option<&str>) -> Request<Body> {
    let mut b = Request::get(path);
    if let Some(a) = auth {
        b = b.header(header::AUTHORIZATION, a);
    }
    b.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn outcomes_and_policy_need_the_webhook_or_the_read_token() {
    let h = harness(8, 1 << 20);
    for path in ["/outcomes", "/policy", "/breakers"] {
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("Basic s3cret-token"),
            Some("read-only-token"),
        ] {
            let (status, body) = send(app(&h), get(path, auth)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} {auth:?}: {body}");
            assert_eq!(body["code"], "unauthorized");
        }
        for auth in ["Bearer s3cret-token", "Bearer read-only-token"] {
            let (status, body) = send(app(&h), get(path, Some(auth))).await;
            assert_eq!(status, StatusCode::OK, "{path} {auth}: {body}");
        }
    }
}

#[tokio::test]
async fn health_readiness_and_metrics_stay_open() {
    let h = harness(8, 1 << 20);
    for path in ["/healthz", "/readyz", "/metrics"] {
        let resp = app(&h).oneshot(get(path, None)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn the_read_token_cannot_post_alerts() {
    let mut h = harness(8, 1 << 20);
    let (status, body) = send(app(&h), post(FIRING, Some("Bearer read-only-token"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "read_only_token");
    assert!(h.rx.try_recv().is_none());
    let m = metrics_text(&h).await;
    assert!(
        m.contains("heal8s_webhook_requests_total{code=\"403\"} 1"),
        "{m}"
    );
}

/// Counters the shipped rules use exist at 0 before anything happened, so
/// Prometheus's `increase()` sees the first event.
#[tokio::test]
async fn a_fresh_heal8s_exposes_the_rule_counters_at_zero() {
    let h = harness(8, 1 << 20);
    let m = metrics_text(&h).await;
    let mut want: Vec<String> = receiver_core::RefusalReason::ALL
        .iter()
        .map(|r| format!("heal8s_guard_refusals_total{{reason=\"{}\"}} 0", r.as_str()))
        .collect();
    want.extend(
        receiver_core::OutcomeKind::ALL
            .iter()
            .map(|o| format!("heal8s_outcomes_total{{result=\"{}\"}} 0", o.as_str())),
    );
    want.extend(receiver_core::RemediationKind::ALL.iter().flat_map(|k| {
        [
            format!(
                "heal8s_escalations_total{{remediation=\"{}\"}} 0",
                k.as_str()
            ),
            format!(
                "heal8s_actions_total{{remediation=\"{}\",result=\"failed\"}} 0",
                k.as_str()
            ),
        ]
    }));
    want.extend(
        receiver::metrics::WEBHOOK_CODES
            .iter()
            .map(|c| format!("heal8s_webhook_requests_total{{code=\"{c}\"}} 0")),
    );
    for line in want {
        assert!(m.lines().any(|l| l == line), "{line} missing:\n{m}");
    }
    // and the codes the webhook really answers with are all in the list
    for code in [200u16, 400, 401, 403, 413, 503] {
        assert!(receiver::metrics::WEBHOOK_CODES.contains(&code), "{code}");
    }
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive() {
    let h = harness(8, 1 << 20);
    let (status, _) = send(app(&h), post(FIRING, Some("bearer s3cret-token"))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn body_over_the_limit_is_413_whether_declared_or_streamed() {
    let mut h = harness(8, 64);
    let (status, body) = send(app(&h), post(FIRING, bearer())).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["code"], "body_too_large");
    // no Content-Length: a streamed body is cut off at the limit too
    let chunks: Vec<Result<_, std::io::Error>> = FIRING
        .as_bytes()
        .chunks(16)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let stream = Body::from_stream(futures_stream(chunks));
    let (status, _) = send(app(&h), post(stream, bearer())).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(h.rx.try_recv().is_none());
}

fn futures_stream<T: Send + 'static>(
    items: Vec<T>,
) -> impl tokio_stream::Stream<Item = T> + Send + 'static {
    tokio_stream::iter(items)
}

#[tokio::test]
async fn malformed_json_is_400_naming_the_problem() {
    let h = harness(8, 1 << 20);
    let (status, body) = send(
        app(&h),
        post("{\"version\": \"4\", \"alerts\": [", bearer()),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "malformed_payload");
    let mut v: serde_json::Value = serde_json::from_str(FIRING).unwrap();
    v["alerts"][0]["startsAt"] = "not a time".into();
    let (status, body) = send(app(&h), post(v.to_string(), bearer())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("alerts[0].startsAt"),
        "{body}"
    );
}

/// Exactly one JSON object per request: junk or a second payload after it is
/// refused whole (today's serde_json would stop at the first object and accept).
#[tokio::test]
async fn trailing_data_after_the_payload_is_400_and_queues_nothing() {
    let h = harness(8, 1 << 20);
    for body in [format!("{FIRING}xyz"), format!("{FIRING}{FIRING}")] {
        let (status, v) = send(app(&h), post(body, bearer())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["code"], "malformed_payload");
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains("data after the JSON object"),
            "{v}"
        );
    }
    assert_eq!(h.rx.len(), 0);
    // a trailing newline is not data
    let (status, _) = send(app(&h), post(format!("{FIRING}\n"), bearer())).await;
    assert_eq!(status, StatusCode::OK);
}

/// One oversized label refuses the whole delivery with 413, naming the alert
/// and the label, and queues nothing (the other alerts are fine).
#[tokio::test]
async fn an_oversized_label_is_413_naming_it_and_changes_nothing() {
    let h = harness(8, 4 << 20);
    let mut v: serde_json::Value = serde_json::from_str(&payload_with(3)).unwrap();
    v["alerts"][2]["labels"]["evil"] = "x".repeat(1 << 20).into();
    let (status, body) = send(app(&h), post(v.to_string(), bearer())).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["code"], "alert_too_large");
    let e = body["error"].as_str().unwrap();
    assert!(e.contains(r#"alerts[2].labels["evil"]"#), "{e}");
    assert!(e.contains("--max-label-bytes"), "{e}");
    assert_eq!(h.rx.len(), 0);
    let m = metrics_text(&h).await;
    assert!(
        m.contains("heal8s_alerts_received_total{status=\"firing\"} 0"),
        "{m}"
    );
}

#[tokio::test]
async fn wrong_version_is_400() {
    let h = harness(8, 1 << 20);
    let body = FIRING.replace("\"version\": \"4\"", "\"version\": \"5\"");
    let (status, v) = send(app(&h), post(body, bearer())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["code"], "unsupported_version");
    assert!(v["error"].as_str().unwrap().contains("version"));
}

#[tokio::test]
async fn full_queue_is_503_and_a_delivery_is_all_or_nothing() {
    let mut h = harness(3, 1 << 20);
    let (status, _) = send(app(&h), post(payload_with(2), bearer())).await;
    assert_eq!(status, StatusCode::OK);
    // two of three slots are taken: a delivery of two alerts must not half-enter
    let (status, body) = send(app(&h), post(payload_range(2, 2), bearer())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["code"], "queue_full");
    assert_eq!(h.rx.len(), 2);
    h.rx.try_recv().unwrap();
    let (status, _) = send(app(&h), post(payload_range(2, 2), bearer())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h.rx.len(), 3);
    let m = metrics_text(&h).await;
    assert!(
        m.contains("heal8s_webhook_requests_total{code=\"503\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("heal8s_alerts_received_total{status=\"firing\"} 4"),
        "{m}"
    );
}

#[tokio::test]
async fn delivery_larger_than_the_queue_can_ever_hold_is_413() {
    let h = harness(2, 1 << 20);
    let (status, body) = send(app(&h), post(payload_with(3), bearer())).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["code"], "too_many_alerts");
}

#[tokio::test]
async fn shutting_down_refuses_webhooks_and_fails_readiness() {
    let h = harness(8, 1 << 20);
    let resp = app(&h)
        .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    h.state
        .accepting
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let resp = app(&h)
        .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let (status, _) = send(app(&h), post(FIRING, bearer())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let resp = app(&h)
        .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn policy_endpoint_serves_the_effective_policy_read_only() {
    let h = harness(8, 1 << 20);
    let (status, v) = send(app(&h), get("/policy", bearer())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["routes"][0]["name"], "oom-bump-memory");
    assert_eq!(v["guard"]["protectedNamespaces"][0], "kube-system");
    let resp = app(&h)
        .oneshot(Request::post("/policy").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn no_auth_mode_accepts_without_a_token() {
    let mut h = harness(8, 1 << 20);
    h.state.token = None;
    h.state.read_token = None;
    let (status, _) = send(app(&h), post(FIRING, None)).await;
    assert_eq!(status, StatusCode::OK);
    // reads are open too (the startup warning says so)
    for path in ["/outcomes", "/policy", "/breakers"] {
        let (status, _) = send(app(&h), get(path, None)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
}

/// The whole path: webhook → queue → worker → outcomes, with a repeated delivery deduped.
#[tokio::test]
async fn accepted_alerts_are_processed_and_repeats_deduped() {
    let h = harness(16, 1 << 20);
    let Harness { state, rx } = h;
    let app = router(state.clone());
    let engine = Engine::new(Policy::default_policy().unwrap(), "heal8s").unwrap();
    let acting = Acting {
        facts: Arc::new(receiver::executor::OfflineFacts),
        executor: Arc::new(receiver::executor::SimulatingExecutor),
        clock: Arc::new(SystemClock),
        journal: Arc::new(receiver_core::NoJournal),
        verifier: None,
        leadership: receiver_k8s::leader::Leadership::always(),
        history: None,
        clears: None,
        approvals: None,
        namespace_policies: None,
        notices: None,
        holds: None,
    };
    let recorder = state.recorder.clone();
    let metrics = state.metrics.clone();
    let worker = tokio::spawn(worker::run(
        engine,
        rx,
        acting,
        recorder.clone(),
        metrics.clone(),
    ));
    // one delivery at a time, each processed before the next (a repeat
    // still queued would replace the one waiting instead: see below)
    let resolved = include_str!("../core/tests/fixtures/sample-webhook-resolved.json");
    for (body, outcomes) in [(FIRING, 2), (FIRING, 3), (resolved, 4)] {
        let (status, _) = send(app.clone(), post(body, bearer())).await;
        assert_eq!(status, StatusCode::OK);
        for _ in 0..500 {
            if recorder.recent().len() >= outcomes {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
    drop(app);
    drop(state);
    worker.await.unwrap();

    let results: Vec<_> = recorder
        .recent()
        .iter()
        .map(|o| (o["route"].as_str().map(String::from), o["result"].clone()))
        .collect();
    assert_eq!(
        results,
        vec![
            (Some("crashloop-delete-pod".into()), "observed".into()),
            (Some("crashloop-rollback-image".into()), "observed".into()),
            (None, "deduped".into()),
            (None, "resolved".into()),
        ]
    );
    let m = metrics.encode();
    assert!(
        m.contains("heal8s_outcomes_total{result=\"deduped\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("heal8s_outcomes_total{result=\"observed\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("heal8s_plans_total{remediation=\"delete-pod\",mode=\"direct\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("heal8s_signals_total{source=\"alert\"} 3"),
        "{m}"
    );
}

/// `/outcomes` answers pages: the newest 100 by default, at most 512, and a
/// `since` cursor; anything else in the query is a 400.
#[tokio::test]
async fn outcomes_are_paged_and_capped() {
    let h = harness(1024, 1 << 20);
    let Harness { state, rx } = h;
    let app = router(state.clone());
    let engine = Engine::new(Policy::default_policy().unwrap(), "heal8s").unwrap();
    let acting = Acting {
        facts: Arc::new(receiver::executor::OfflineFacts),
        executor: Arc::new(receiver::executor::SimulatingExecutor),
        clock: Arc::new(SystemClock),
        journal: Arc::new(receiver_core::NoJournal),
        verifier: None,
        leadership: receiver_k8s::leader::Leadership::always(),
        history: None,
        clears: None,
        approvals: None,
        namespace_policies: None,
        notices: None,
        holds: None,
    };
    let (status, _) = send(app.clone(), post(payload_with(400), bearer())).await;
    assert_eq!(status, StatusCode::OK);
    let recorder = state.recorder.clone();
    drop(state);
    let worker = tokio::spawn(worker::run(
        engine,
        rx,
        acting,
        recorder.clone(),
        Arc::new(Metrics::new()),
    ));
    let seqs = |v: &serde_json::Value| -> Vec<u64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|o| o["seq"].as_u64().unwrap())
            .collect()
    };
    // wait for the worker (every alert makes at least one outcome) to settle
    let mut last = 0;
    for _ in 0..500 {
        let n = recorder.recent().len();
        if n >= 400 && n == last {
            break;
        }
        last = n;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let kept = recorder.recent().len() as u64;
    assert!(kept >= 400, "{kept}");

    let (status, v) = send(app.clone(), get("/outcomes", bearer())).await;
    assert_eq!(status, StatusCode::OK);
    let newest = seqs(&v);
    assert_eq!(newest.len(), 100);
    assert!(newest.windows(2).all(|w| w[0] + 1 == w[1]), "{newest:?}");

    let (status, v) = send(app.clone(), get("/outcomes?limit=512", bearer())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v.as_array().unwrap().len() as u64, kept.min(512));

    // following the cursor from the start reads every kept outcome once
    let mut since = 0;
    let mut read = 0;
    loop {
        let path = format!("/outcomes?since={since}&limit=7");
        let (status, v) = send(app.clone(), get(&path, bearer())).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let page = seqs(&v);
        assert!(page.len() <= 7);
        let Some(&last) = page.last() else { break };
        assert!(page[0] > since);
        since = last;
        read += page.len() as u64;
    }
    assert_eq!(read, kept);

    // what heal8s did is kept apart from what it refused (the budget refuses
    // most of 400 alerts), and each part pages the same way
    let (status, acted) = send(
        app.clone(),
        get("/outcomes?result=acted&limit=512", bearer()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{acted}");
    let (status, refused) = send(
        app.clone(),
        get("/outcomes?result=refused&limit=512&since=0", bearer()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{refused}");
    let (acted, refused) = (acted.as_array().unwrap(), refused.as_array().unwrap());
    assert!(!acted.is_empty() && !refused.is_empty());
    assert!(
        acted
            .iter()
            .all(|o| o["result"] != "refused" && o["result"] != "deduped")
    );
    assert!(
        refused
            .iter()
            .all(|o| o["result"] == "refused" || o["result"] == "deduped")
    );
    let (status, b) = send(app.clone(), get("/breakers", bearer())).await;
    assert_eq!(status, StatusCode::OK);
    assert!(b["open"].is_array() && b["closed"].is_array(), "{b}");

    for bad in [
        "/outcomes?result=all",
        "/outcomes?limit=513",
        "/outcomes?limit=0",
        "/outcomes?limit=many",
        "/outcomes?since=-1",
        "/outcomes?page=2",
    ] {
        let (status, v) = send(app.clone(), get(bad, bearer())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert_eq!(v["code"], "invalid_query", "{bad}");
    }
    // the token is checked before the query
    let (status, _) = send(app.clone(), get("/outcomes?limit=0", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    drop(app);
    worker.await.unwrap();
}

fn detector_signal(pod: &str) -> Signal {
    let mut target = receiver_core::Target::new(receiver_core::TargetKind::Pod, Some("shop"), pod);
    target.container = Some("app".into());
    receiver_core::detect::Finding {
        name: "Heal8sPodCrashLooping",
        detector: "pods",
        target,
        reason: "CrashLoopBackOff".into(),
        since: jiff::Timestamp::UNIX_EPOCH,
        evidence: Default::default(),
        summary: "crash looping".into(),
    }
    .to_signal(
        receiver_core::AlertStatus::Firing,
        jiff::Timestamp::UNIX_EPOCH,
    )
}

/// Detectors have a lane of their own: a burst of them that fills it never
/// turns Alertmanager away.
#[tokio::test]
async fn a_detector_burst_never_fills_the_queue_for_alerts() {
    use receiver_core::lanes::SignalSink;
    let h = harness(4, 1 << 20);
    for i in 0..4 {
        h.state.front.queues()[0]
            .send(detector_signal(&format!("p-{i}")))
            .await
            .unwrap();
    }
    // the detector lane is full: a fifth detector signal waits for room
    let more = h.state.front.queues()[0].clone();
    let waiting = tokio::spawn(async move { more.send(detector_signal("p-9")).await });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(!waiting.is_finished());
    let (status, body) = send(app(&h), post(payload_with(4), bearer())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(h.rx.len(), 8);
    waiting.abort();
}

/// A newer signal of a series still queued takes the waiting one's place:
/// a repeated delivery costs no room.
#[tokio::test]
async fn a_repeated_delivery_still_queued_takes_the_waiting_ones_place() {
    let h = harness(2, 1 << 20);
    for _ in 0..3 {
        let (status, _) = send(app(&h), post(payload_with(2), bearer())).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(h.rx.len(), 2);
    let m = metrics_text(&h).await;
    assert!(
        m.contains("heal8s_signals_coalesced_total{source=\"alert\"} 4"),
        "{m}"
    );
    // an alert that resolved while its firing delivery waited: only the resolution is left
    let mut h = harness(1, 1 << 20);
    let resolved = include_str!("../core/tests/fixtures/sample-webhook-resolved.json");
    for body in [FIRING, resolved] {
        let (status, _) = send(app(&h), post(body, bearer())).await;
        assert_eq!(status, StatusCode::OK);
    }
    let only = h.rx.try_recv().unwrap();
    assert_eq!(only.status, receiver_core::AlertStatus::Resolved);
    assert!(h.rx.try_recv().is_none());
}
