//! Fault injection and the request log: rules that make matching requests
//! fail with a given status or wait before being served, a switch that closes
//! every open watch, and the record of every request served. Only the HTTP
//! API is affected; the store API used by tests never is.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::ApiError;
pub use crate::faults::FaultId;
use crate::faults::{Action, RequestLog, Rules};

/// Which requests a fault applies to; unset parts match anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestMatch {
    /// Kubernetes verb (`get`, `list`, `watch`, `create`, `update`, `patch`,
    /// `delete`, `deletecollection`) or HTTP method (`GET`, `POST`...), case-insensitive.
    pub verb: Option<String>,
    /// Substring of the request path (`/pods`, `/eviction`, `nodes/n1`).
    pub path: Option<String>,
    /// Substring of the raw query string (`watch=true`, `fieldSelector`).
    pub query: Option<String>,
}

impl RequestMatch {
    /// Matches every request.
    pub fn any() -> RequestMatch {
        RequestMatch::default()
    }

    /// Only this verb (or HTTP method).
    pub fn verb(mut self, verb: &str) -> RequestMatch {
        self.verb = Some(verb.to_string());
        self
    }

    /// Only paths containing `fragment`.
    pub fn path(mut self, fragment: &str) -> RequestMatch {
        self.path = Some(fragment.to_string());
        self
    }

    /// Only query strings containing `fragment`.
    pub fn query(mut self, fragment: &str) -> RequestMatch {
        self.query = Some(fragment.to_string());
        self
    }

    fn matches(&self, method: &str, verb: &str, path: &str, query: &str) -> bool {
        self.verb
            .as_deref()
            .is_none_or(|v| v.eq_ignore_ascii_case(verb) || v.eq_ignore_ascii_case(method))
            && self.path.as_deref().is_none_or(|p| path.contains(p))
            && self.query.as_deref().is_none_or(|q| query.contains(q))
    }
}

/// One request the emulator served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Kubernetes verb (`get`, `list`, `watch`, `create`, `update`, `patch`,
    /// `delete`, `deletecollection`); `get` for discovery and other paths.
    pub verb: String,
    /// Request path.
    pub path: String,
    /// Raw query string ("" when none).
    pub query: String,
    /// HTTP status answered (200 for a watch that was started).
    pub status: u16,
    /// When the request arrived.
    pub at: Instant,
}

/// Shared fault and log state (lives in the emulator).
#[derive(Debug)]
pub(crate) struct FaultState {
    rules: Rules<RequestMatch, ApiError>,
    log: RequestLog<RequestRecord>,
    pub(crate) stop_watches: tokio::sync::watch::Sender<u64>,
}

impl FaultState {
    pub(crate) fn new(log_cap: usize) -> FaultState {
        FaultState {
            rules: Rules::new(),
            log: RequestLog::new(log_cap),
            stop_watches: tokio::sync::watch::Sender::new(0),
        }
    }

    /// What to do with a request: total delay, then maybe a failure.
    /// Consumes one use of every matching counted rule.
    pub(crate) fn decide(
        &self,
        method: &str,
        verb: &str,
        path: &str,
        query: &str,
    ) -> (Duration, Option<ApiError>) {
        self.rules.decide(|m| m.matches(method, verb, path, query))
    }

    pub(crate) fn record(&self, rec: RequestRecord) {
        self.log.record(rec);
    }
}

/// Handle to inject faults into the emulator's HTTP API (cheap to clone).
#[derive(Debug, Clone)]
pub struct Faults {
    pub(crate) state: Arc<FaultState>,
}

impl Faults {
    fn add(
        &self,
        matcher: RequestMatch,
        action: Action<ApiError>,
        remaining: Option<u64>,
    ) -> FaultId {
        self.state.rules.add(matcher, action, remaining)
    }

    /// The next `n` matching requests fail with `code` (a `Status` with the
    /// reason the real server uses for that code; 429 carries `retryAfterSeconds: 1`).
    pub fn fail_next(&self, n: u64, matcher: RequestMatch, code: u16) -> FaultId {
        let e = ApiError::from_code(code, format!("injected fault ({code})"));
        self.add(matcher, Action::Answer(e), Some(n))
    }

    /// The next `n` matching requests fail with exactly this error.
    pub fn fail_next_with(&self, n: u64, matcher: RequestMatch, error: ApiError) -> FaultId {
        self.add(matcher, Action::Answer(error), Some(n))
    }

    /// Every matching request fails with `code` until the fault is removed.
    pub fn fail_always(&self, matcher: RequestMatch, code: u16) -> FaultId {
        let e = ApiError::from_code(code, format!("injected fault ({code})"));
        self.add(matcher, Action::Answer(e), None)
    }

    /// Every matching request waits `latency` before being served, until removed.
    pub fn delay(&self, matcher: RequestMatch, latency: Duration) -> FaultId {
        self.add(matcher, Action::Delay(latency), None)
    }

    /// The next `n` matching requests wait `latency` before being served.
    pub fn delay_next(&self, n: u64, matcher: RequestMatch, latency: Duration) -> FaultId {
        self.add(matcher, Action::Delay(latency), Some(n))
    }

    /// Remove one fault.
    pub fn remove(&self, id: FaultId) {
        self.state.rules.remove(id);
    }

    /// Remove every fault.
    pub fn clear(&self) {
        self.state.rules.clear();
    }

    /// Number of faults still installed.
    pub fn active(&self) -> usize {
        self.state.rules.active()
    }

    /// End every open watch now (the response body ends, as when the API
    /// server restarts); clients reconnect from their last resourceVersion.
    pub fn drop_watches(&self) {
        self.state.stop_watches.send_modify(|g| *g += 1);
    }
}

/// The request log's public face, used by the emulator.
pub(crate) fn requests(state: &FaultState) -> Vec<RequestRecord> {
    state.log.requests()
}

pub(crate) fn request_count(state: &FaultState) -> u64 {
    state.log.count()
}

pub(crate) fn clear_requests(state: &FaultState) {
    state.log.clear();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn counted_faults_expire_and_delays_add_up() {
        let f = Faults {
            state: Arc::new(FaultState::new(10)),
        };
        f.fail_next(2, RequestMatch::any().verb("create").path("/pods"), 500);
        f.delay(RequestMatch::any().path("/pods"), Duration::from_millis(5));
        let s = &f.state;
        let (d, e) = s.decide("POST", "create", "/api/v1/namespaces/a/pods", "");
        assert_eq!((d, e.unwrap().code), (Duration::from_millis(5), 500));
        assert!(s.decide("GET", "list", "/api/v1/pods", "").1.is_none());
        assert!(
            s.decide("POST", "create", "/api/v1/namespaces/a/pods", "")
                .1
                .is_some()
        );
        assert!(
            s.decide("POST", "create", "/api/v1/namespaces/a/pods", "")
                .1
                .is_none()
        );
        assert_eq!(f.active(), 1);
    }
}
