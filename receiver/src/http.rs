//! The HTTP surface: the Alertmanager webhook, health, readiness, metrics, the
//! effective policy, recent outcomes and the breakers standing down.
//!
//! Owns: authentication, body limits, payload acceptance into the alert lane
//! of the bounded work queue (detectors have a lane of their own, so they
//! never fill it), and one JSON error shape. Must not route or decide:
//! accepted alerts become Signals on the queue and the worker does the rest.
//!
//! Who may do what: the webhook token posts alerts and reads `/outcomes`,
//! `/breakers` and `/policy`; the optional read token only reads them (403 at the webhook);
//! `/healthz`, `/readyz` and `/metrics` are open. Without any token
//! (`--insecure-no-auth`) everything is open.
//!
//! Alert senders are untrusted: a delivery is one JSON object within the body
//! limit and the alert limits, or it is refused whole and changes nothing.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use receiver_core::alertmanager::AlertLimits;
use receiver_core::{PayloadError, Signal, alertmanager};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::metrics::{CodeLabel, Metrics, StatusLabel};
use crate::worker::Recorder;

/// The webhook path Alertmanager posts to.
pub const WEBHOOK_PATH: &str = "/webhook/alertmanager";

/// A bearer token. Never printed.
#[derive(Clone)]
pub struct Token(Arc<[u8]>);

impl Token {
    /// A token from its text; surrounding whitespace (a file's trailing newline) is dropped.
    pub fn new(text: &str) -> Option<Token> {
        let t = text.trim();
        (!t.is_empty()).then(|| Token(Arc::from(t.as_bytes())))
    }

    /// Whether two tokens are the same secret (constant-time).
    pub fn same_as(&self, other: &Token) -> bool {
        self.matches(&other.0)
    }

    fn matches(&self, presented: &[u8]) -> bool {
        // constant-time over the token's bytes; only the length can leak
        self.0.len() == presented.len() && bool::from(self.0.as_ref().ct_eq(presented))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Everything the handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    /// `None` only when authentication was explicitly disabled.
    pub token: Option<Token>,
    /// A token that may read `/outcomes` and `/policy` but not post alerts
    /// (a dashboard). Only with `token`; the webhook token reads too.
    pub read_token: Option<Token>,
    /// The work queues (one per cluster served); the webhook fills their
    /// alert lanes.
    pub front: crate::front::Front,
    pub metrics: Arc<Metrics>,
    /// Keeps the outcomes `/outcomes` serves (every cluster's), and those of
    /// alerts refused at the door.
    pub recorder: Arc<Recorder>,
    pub policy: Arc<serde_json::Value>,
    pub max_body_bytes: usize,
    /// What one alert may carry; more is refused with 413.
    pub alert_limits: AlertLimits,
    /// Cleared when shutdown starts: readiness fails and new webhooks get 503.
    pub accepting: Arc<AtomicBool>,
    /// Followers answer webhooks with 503 `not_leader`.
    pub leadership: receiver_k8s::leader::Leadership,
}

/// The one error shape: a status and a JSON body `{"error": ..., "code": ...}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            Json(json!({"error": self.message, "code": self.code})),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        r
    }
}

/// The service's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(WEBHOOK_PATH, post(webhook))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/policy", get(policy))
        .route("/outcomes", get(outcomes))
        .route("/breakers", get(breakers))
        .route("/", get(ui_page))
        .route("/ui", get(ui_page))
        .route("/ui/state", get(ui_state))
        .route("/pause", post(pause))
        .route("/resume", post(resume))
        .with_state(state)
}

async fn webhook(State(s): State<AppState>, req: Request) -> Response {
    let result = accept(&s, req).await;
    let response = match result {
        Ok(n) => (StatusCode::OK, Json(json!({"accepted": n}))).into_response(),
        Err(e) => {
            tracing::warn!(status = e.status.as_u16(), code = e.code, error = ?e.message, "Webhook delivery rejected.");
            e.into_response()
        }
    };
    s.metrics
        .webhook_requests
        .get_or_create(&CodeLabel {
            code: response.status().as_u16(),
        })
        .inc();
    response
}

/// The sender's trace (W3C `traceparent`), when it sent exactly one
/// well-formed header; otherwise each signal starts a trace of its own (the
/// W3C rule for a header that cannot be read), and the delivery is taken.
fn sender_trace(headers: &HeaderMap) -> Option<receiver_core::TraceContext> {
    let mut values = headers.get_all("traceparent").iter();
    let (Some(v), None) = (values.next(), values.next()) else {
        return None;
    };
    match v
        .to_str()
        .map_err(|_| "not ASCII")
        .and_then(|v| receiver_core::TraceContext::parse(v).map_err(|_| "malformed"))
    {
        Ok(t) => Some(t),
        Err(why) => {
            tracing::debug!(why, "The delivery's traceparent header is ignored.");
            None
        }
    }
}

fn authorized(token: &Token, headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, presented)) = value.split_once(' ') else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer") && token.matches(presented.trim().as_bytes())
}

fn unauthorized() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "a valid bearer token is required",
    )
}

/// Reads (`/outcomes`, `/policy`) take the webhook token or the read token;
/// without a webhook token (`--insecure-no-auth`) they are open.
fn may_read(s: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = &s.token else {
        return Ok(());
    };
    if authorized(token, headers)
        || s.read_token
            .as_ref()
            .is_some_and(|t| authorized(t, headers))
    {
        Ok(())
    } else {
        Err(unauthorized())
    }
}

async fn accept(s: &AppState, req: Request) -> Result<usize, ApiError> {
    if let Some(token) = &s.token
        && !authorized(token, req.headers())
    {
        if s.read_token
            .as_ref()
            .is_some_and(|t| authorized(t, req.headers()))
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "read_only_token",
                "the read token may read /outcomes and /policy but not post alerts",
            ));
        }
        return Err(unauthorized());
    }
    if !s.accepting.load(Ordering::SeqCst) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "heal8s is shutting down; retry against another replica",
        ));
    }
    if !s.leadership.is_leader() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_leader",
            "this replica is not the leader; Alertmanager will retry and reach the leader",
        ));
    }
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body exceeds {} bytes", s.max_body_bytes),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > s.max_body_bytes) {
        return Err(too_large());
    }
    let sender_trace = sender_trace(req.headers());
    let body: Body = req.into_body();
    let bytes = axum::body::to_bytes(body, s.max_body_bytes)
        .await
        .map_err(|e| {
            let limited = std::error::Error::source(&e)
                .is_some_and(|src| src.is::<http_body_util::LengthLimitError>());
            if limited {
                too_large()
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "unreadable_body",
                    format!("could not read the body: {e}"),
                )
            }
        })?;
    let payload = alertmanager::parse_with(&bytes, &s.alert_limits).map_err(|e| {
        let (status, code) = match e {
            PayloadError::Malformed { .. } => (StatusCode::BAD_REQUEST, "malformed_payload"),
            PayloadError::UnsupportedVersion { .. } => {
                (StatusCode::BAD_REQUEST, "unsupported_version")
            }
            PayloadError::Invalid { .. } => (StatusCode::BAD_REQUEST, "invalid_payload"),
            PayloadError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "alert_too_large"),
        };
        ApiError::new(status, code, e.to_string())
    })?;
    if payload.truncated_alerts > 0 {
        s.metrics.alerts_truncated.inc_by(payload.truncated_alerts);
        tracing::warn!(
            truncated = payload.truncated_alerts,
            group_key = ?payload.group_key,
            "Alertmanager left alerts out of this delivery (max_alerts); they were never seen."
        );
    }
    let mut signals = Signal::from_payload(&payload);
    let n = signals.len();
    if n == 0 {
        return Ok(0);
    }
    // each signal's trace starts here, under the sender's when it sent one;
    // the spans end when this delivery is answered
    let _received: Vec<crate::trace::Stage> = signals
        .iter_mut()
        .map(|signal| {
            let mut stage = crate::trace::start_server("receive", sender_trace);
            stage.set("heal8s.source", "alert");
            stage.set("heal8s.alertname", signal.name().to_string());
            stage.set("heal8s.fingerprint", signal.fingerprint.clone());
            stage.set("heal8s.status", signal.status.as_str());
            if let Some(t) = &signal.target {
                stage.set("heal8s.target", t.to_string());
            }
            signal.trace = Some(stage.context());
            tracing::debug!(
                trace_id = %stage.context().trace_id_hex(),
                alertname = ?signal.name(),
                fingerprint = ?signal.fingerprint,
                "Alert received."
            );
            stage
        })
        .collect();
    let split = s.front.split(signals, jiff::Timestamp::now());
    for (part, queue) in split.per_queue.iter().zip(s.front.queues()) {
        let capacity = queue.max_capacity();
        if part.len() > capacity {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_alerts",
                format!(
                    "the delivery has {} alerts for one cluster but its work queue holds {capacity}; raise --queue-capacity or set max_alerts in Alertmanager",
                    part.len()
                ),
            ));
        }
    }
    let statuses: Vec<&'static str> = split
        .per_queue
        .iter()
        .flatten()
        .chain(split.refused.iter().map(|(s, _)| s))
        .map(|s| s.status.as_str())
        .collect();
    // all or nothing per cluster: either every alert of its part is queued, or none is
    s.front.send(split.per_queue).map_err(|e| match e {
        crate::queue::QueueError::Full => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "queue_full",
            "the work queue is full; Alertmanager will retry",
        ),
        crate::queue::QueueError::Closed => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "heal8s is shutting down; retry against another replica",
        ),
    })?;
    // refused at the door (no served cluster named): recorded, never queued
    for (signal, outcome) in &split.refused {
        s.recorder.record(signal, std::slice::from_ref(outcome));
    }
    for status in statuses {
        s.metrics
            .alerts_received
            .get_or_create(&StatusLabel { status })
            .inc();
    }
    Ok(n)
}

async fn readyz(State(s): State<AppState>) -> Response {
    if s.accepting.load(Ordering::SeqCst) {
        // paused is still ready (it takes alerts in, and records them): said in the body
        match s.front.paused() {
            Some(p) => (
                StatusCode::OK,
                format!(
                    "ready (paused since {} by {} via {}: {})",
                    p.since,
                    if p.by.is_empty() { "someone" } else { &p.by },
                    p.source,
                    if p.reason.is_empty() {
                        "no reason given"
                    } else {
                        &p.reason
                    }
                ),
            )
                .into_response(),
            None => (StatusCode::OK, "ready").into_response(),
        }
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response()
    }
}

async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

async fn policy(State(s): State<AppState>, headers: HeaderMap) -> Response {
    match may_read(&s, &headers) {
        Ok(()) => Json(s.policy.as_ref().clone()).into_response(),
        Err(e) => e.into_response(),
    }
}

/// How many outcomes `/outcomes` answers without `?limit=`.
pub const OUTCOMES_PAGE: usize = 100;

/// `/outcomes?limit=N&since=SEQ&result=acted|refused`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutcomesQuery {
    limit: Option<usize>,
    since: Option<u64>,
    result: Option<ResultQuery>,
}

/// `?result=`: the outcomes kept apart (see `crate::outcomes`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ResultQuery {
    Acted,
    Refused,
}

/// A page of recent outcomes, oldest first; each carries its `seq`. Without
/// `since`, the newest `limit`; with it, the first `limit` after that `seq`.
async fn outcomes(
    State(s): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<OutcomesQuery>, QueryRejection>,
) -> Response {
    if let Err(e) = may_read(&s, &headers) {
        return e.into_response();
    }
    let max = crate::worker::RECENT_OUTCOMES;
    let bad_query = |why: String| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!(
                "{why}; /outcomes takes ?limit=1..{max} (default {OUTCOMES_PAGE}), ?since=<seq> and ?result=acted|refused"
            ),
        )
        .into_response()
    };
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return bad_query(e.body_text()),
    };
    let limit = q.limit.unwrap_or(OUTCOMES_PAGE);
    if limit == 0 || limit > max {
        return bad_query(format!("limit {limit} is out of range"));
    }
    let which = match q.result {
        None => crate::outcomes::Which::All,
        Some(ResultQuery::Acted) => crate::outcomes::Which::Acted,
        Some(ResultQuery::Refused) => crate::outcomes::Which::Refused,
    };
    (
        [(header::CONTENT_TYPE, "application/json")],
        s.recorder.page_of(which, q.since, limit),
    )
        .into_response()
}

/// The breaker episodes holding now and the last few that ended, with the
/// targets each blocked and its refusals by reason and namespace.
async fn breakers(State(s): State<AppState>, headers: HeaderMap) -> Response {
    match may_read(&s, &headers) {
        Ok(()) => Json(s.front.breakers()).into_response(),
        Err(e) => e.into_response(),
    }
}

/// What `POST /pause` may carry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PauseBody {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    by: String,
}

/// Changes take the webhook token; the read token may not.
fn may_change(s: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = &s.token else {
        return Ok(());
    };
    if authorized(token, headers) {
        return Ok(());
    }
    if s.read_token
        .as_ref()
        .is_some_and(|t| authorized(t, headers))
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "read_only_token",
            "the read token may read but not pause or resume",
        ));
    }
    Err(unauthorized())
}

/// The pause state, as `/pause` and `/resume` answer it.
fn pause_state(s: &AppState) -> Response {
    let mut state = json!({
        "paused": s.front.paused(),
        "heldByConfigMap": s.front.recorders().iter().any(|r| r.pause().held_by_configmap()),
    });
    if let crate::front::Front::Clusters(_) = &s.front {
        state["clusters"] = s
            .front
            .recorders()
            .iter()
            .map(|r| {
                json!({
                    "cluster": r.cluster(),
                    "paused": r.pause().current(),
                    "heldByConfigMap": r.pause().held_by_configmap(),
                })
            })
            .collect();
    }
    Json(state).into_response()
}

/// `POST /pause` (`{"reason": "...", "by": "..."}`, both optional): heal8s
/// decides and records, and changes nothing, until resumed.
async fn pause(State(s): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if let Err(e) = may_change(&s, &headers) {
        return e.into_response();
    }
    let b: PauseBody = if body.iter().all(u8::is_ascii_whitespace) {
        PauseBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => {
                return ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    format!("expected {{\"reason\": \"...\", \"by\": \"...\"}}: {e}"),
                )
                .into_response();
            }
        }
    };
    let cut = |v: String| receiver_core::text::one_line(&v, 200);
    let p = receiver_core::guard::Pause {
        source: "api".into(),
        by: cut(b.by),
        reason: cut(b.reason),
        since: jiff::Timestamp::now(),
    };
    // the API pauses every cluster served; a pause ConfigMap, its own
    for r in s.front.recorders() {
        r.pause().set_api(Some(p.clone()));
    }
    pause_state(&s)
}

/// `POST /resume`: lift the API's pause (the pause ConfigMap's stays until
/// it is deleted).
async fn resume(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(e) = may_change(&s, &headers) {
        return e.into_response();
    }
    for r in s.front.recorders() {
        r.pause().set_api(None);
    }
    pause_state(&s)
}

/// The dashboard's page: no data in it, so no token (see `crate::dashboard`).
async fn ui_page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            // the page loads nothing from elsewhere and runs only its own script
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        crate::dashboard::PAGE,
    )
        .into_response()
}

/// Which cluster the dashboard shows (with several served).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UiQuery {
    cluster: Option<String>,
}

/// What the dashboard shows (token as for `/outcomes`): with several
/// clusters served, one of them (`?cluster=`, the first by default).
async fn ui_state(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<UiQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(e) = may_read(&s, &headers) {
        return e.into_response();
    }
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => {
            return ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text())
                .into_response();
        }
    };
    let Some(r) = s.front.recorder_of(q.cluster.as_deref()) else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_cluster",
            format!(
                "no cluster {:?} is served here (served: {})",
                receiver_core::text::one_line(q.cluster.as_deref().unwrap_or_default(), 64),
                s.front.names().join(", ")
            ),
        )
        .into_response();
    };
    let refusals: Vec<serde_json::Value> = receiver_core::RefusalReason::ALL
        .iter()
        .filter_map(|r| {
            let n = s
                .metrics
                .guard_refusals
                .get_or_create(&crate::metrics::ReasonLabel { reason: r.as_str() })
                .get();
            (n > 0).then(|| json!({"reason": r.as_str(), "count": n}))
        })
        .collect();
    let mut outcomes: Vec<serde_json::Value> =
        serde_json::from_str(&s.recorder.page(None, crate::dashboard::MAX_OUTCOMES))
            .unwrap_or_default();
    let clusters = s.front.names();
    if !clusters.is_empty() {
        // this cluster's, and those no cluster took (refused at the door)
        outcomes.retain(|o| o["cluster"].is_null() || o["cluster"].as_str() == r.cluster());
    }
    let policy = &*s.policy;
    Json(json!({
        "at": jiff::Timestamp::now(),
        "cluster": r.cluster().map(serde_json::Value::from).unwrap_or_else(|| policy["guard"]["clusterName"].clone()),
        "clusters": clusters,
        "dryRun": policy["guard"]["dryRun"],
        "profile": policy["profile"],
        "accepting": s.accepting.load(Ordering::SeqCst),
        "leader": s.leadership.is_leader(),
        "guard": r.board().view(),
        "paused": r.pause().current(),
        "breakers": r.stand_down().view(),
        "refusals": refusals,
        "records": r.board().records().await,
        "outcomes": outcomes,
    }))
    .into_response()
}
