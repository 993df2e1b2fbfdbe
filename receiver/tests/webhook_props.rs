//! Property of the webhook endpoint (issue 12): whatever body an
//! authenticated sender posts, heal8s answers 200, 400 or 413, never a 5xx;
//! a refusal is the one JSON error shape with a message and a code, and its
//! status is the one `http.rs` gives the parser's verdict.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

#[path = "../core/tests/mutations/mod.rs"]
mod mutations;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use proptest::prelude::*;
use receiver::http::{AppState, Token, WEBHOOK_PATH, router};
use receiver::metrics::Metrics;
use receiver::worker::Recorder;
use receiver_core::alertmanager::{self, AlertLimits};
use receiver_core::{PayloadError, Policy};
use tower::ServiceExt;

const FIRING: &str = include_str!("../core/tests/fixtures/sample-webhook.json");
const TOKEN: &str = "s3cret-token";
/// Below the largest mutated values, so the body limit is crossed too.
const MAX_BODY: usize = 32 * 1024;

/// Post `body` to a fresh service; its status and JSON answer.
fn post(body: Vec<u8>) -> (StatusCode, serde_json::Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let metrics = Arc::new(Metrics::new());
        // the worker's end stays open for the request, as in the service
        let (tx, _rx) = receiver::queue::work_queue(64);
        let recorder = Arc::new(Recorder::new(metrics.clone()));
        let app = router(AppState {
            token: Token::new(TOKEN),
            read_token: None,
            front: receiver::front::Front::One {
                queue: tx,
                recorder: recorder.clone(),
            },
            metrics: metrics.clone(),
            recorder,
            policy: Arc::new(Policy::default_policy().unwrap().to_json()),
            max_body_bytes: MAX_BODY,
            alert_limits: AlertLimits::default(),
            accepting: Arc::new(AtomicBool::new(true)),
            leadership: receiver_k8s::leader::Leadership::always(),
        });
        let req = Request::post(WEBHOOK_PATH)
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        let resp = app.oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
        });
        (status, json)
    })
}

/// The status `http.rs` maps the parser's verdict to.
fn expected_status(body: &[u8]) -> StatusCode {
    if body.len() > MAX_BODY {
        return StatusCode::PAYLOAD_TOO_LARGE;
    }
    match alertmanager::parse(body) {
        Ok(_) => StatusCode::OK,
        Err(PayloadError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

fn answers_as_documented(body: Vec<u8>) -> Result<(), TestCaseError> {
    let expected = expected_status(&body);
    let verdict = (body.len() <= MAX_BODY).then(|| alertmanager::parse(&body));
    let (status, json) = post(body);
    prop_assert!(!status.is_server_error(), "{} {}", status, json);
    prop_assert_eq!(status, expected, "{}", json);
    if status == StatusCode::OK {
        prop_assert!(json["accepted"].is_u64(), "{}", json);
        return Ok(());
    }
    let error = json["error"].as_str().unwrap_or_default();
    let code = json["code"].as_str().unwrap_or_default();
    prop_assert!(!error.is_empty() && !code.is_empty(), "{}", json);
    // a refusal by the parser passes its message on as it is
    if let Some(Err(e)) = verdict {
        prop_assert_eq!(error, e.to_string());
    }
    Ok(())
}

proptest! {
    // each case starts a runtime and a service: keep the count modest
    #![proptest_config(ProptestConfig { cases: 192, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_mutated_delivery_gets_200_400_or_413_with_a_json_error_never_a_5xx(
        muts in mutations::mutations(&serde_json::from_str(FIRING).unwrap(), 3, &[]),
    ) {
        let (body, _) = mutations::apply(&serde_json::from_str(FIRING).unwrap(), &muts);
        answers_as_documented(body.into_bytes())?;
    }

    #[test]
    fn arbitrary_bytes_get_400_or_413_with_a_json_error_never_a_5xx(
        body in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        answers_as_documented(body)?;
    }
}
