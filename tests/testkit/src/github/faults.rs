//! Fault injection and the request log of the GitHub emulation: rules that
//! make matching requests answer with a given status, body and headers (rate
//! limits, 5xx), and the record of every request.
//! Only the HTTP API is affected; the store API used by tests never is.

use std::sync::Arc;

use anyhow::Context;
use serde_json::{Value, json};

use super::error::DOCS;
pub use crate::faults::FaultId;
use crate::faults::{Action, RequestLog, Rules};

/// Which requests a fault applies to; unset parts match anything.
#[derive(Debug, Clone, Default)]
pub struct RequestMatch {
    /// HTTP method (`GET`, `POST`...), case-insensitive.
    pub method: Option<String>,
    /// The path starts with this (`/repos/acme/manifests/pulls`).
    pub path_prefix: Option<String>,
    /// The path matches this regular expression (`/pulls$`).
    pub path_regex: Option<regex::Regex>,
    /// Substring of the raw query string.
    pub query: Option<String>,
}

impl RequestMatch {
    /// Matches every request.
    pub fn any() -> RequestMatch {
        RequestMatch::default()
    }

    /// Only this HTTP method.
    pub fn method(mut self, method: &str) -> RequestMatch {
        self.method = Some(method.to_string());
        self
    }

    /// Only paths starting with `prefix`.
    pub fn prefix(mut self, prefix: &str) -> RequestMatch {
        self.path_prefix = Some(prefix.to_string());
        self
    }

    /// Only paths matching the regular expression `re`.
    pub fn regex(mut self, re: &str) -> anyhow::Result<RequestMatch> {
        self.path_regex =
            Some(regex::Regex::new(re).with_context(|| format!("invalid path regex {re:?}"))?);
        Ok(self)
    }

    /// Only query strings containing `fragment`.
    pub fn query(mut self, fragment: &str) -> RequestMatch {
        self.query = Some(fragment.to_string());
        self
    }

    fn matches(&self, method: &str, path: &str, query: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| path.starts_with(p))
            && self.path_regex.as_ref().is_none_or(|r| r.is_match(path))
            && self.query.as_deref().is_none_or(|q| query.contains(q))
    }
}

/// An injected answer: status, JSON body (none for 304-like answers) and headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub status: u16,
    pub body: Option<Value>,
    pub headers: Vec<(String, String)>,
}

impl Fault {
    /// `code` with `{"message": <reason phrase>, "documentation_url": ...}`.
    pub fn status(code: u16) -> Fault {
        let reason = axum::http::StatusCode::from_u16(code)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error");
        Fault {
            status: code,
            body: Some(json!({"message": reason, "documentation_url": DOCS})),
            headers: Vec::new(),
        }
    }

    /// GitHub's secondary rate limit: 403 with `retry-after`.
    pub fn secondary_rate_limit(retry_after_secs: u64) -> Fault {
        Fault {
            status: 403,
            body: Some(json!({
                "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
            })),
            headers: vec![("retry-after".into(), retry_after_secs.to_string())],
        }
    }

    /// GitHub's primary rate limit as a 403: `x-ratelimit-remaining: 0` and
    /// `x-ratelimit-reset: reset_epoch` (seconds since the epoch).
    pub fn primary_rate_limit(reset_epoch: u64) -> Fault {
        Fault {
            status: 403,
            body: Some(json!({
                "message": "API rate limit exceeded for installation. If you reach out to GitHub Support for help, please include the request ID.",
                "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-the-primary-rate-limit",
            })),
            headers: vec![
                ("x-ratelimit-remaining".into(), "0".into()),
                ("x-ratelimit-reset".into(), reset_epoch.to_string()),
                ("x-ratelimit-used".into(), "5000".into()),
                ("x-ratelimit-limit".into(), "5000".into()),
            ],
        }
    }

    /// Replace the body.
    pub fn with_body(mut self, body: Value) -> Fault {
        self.body = Some(body);
        self
    }
}

/// One request the emulation served.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Request path as sent (still percent-encoded).
    pub path: String,
    /// HTTP status answered.
    pub status: u16,
    /// POST, PUT, PATCH or DELETE.
    pub mutating: bool,
    /// Whether an injected fault answered.
    pub faulted: bool,
    /// Who the credentials identified (`heal8s[bot]`, a PAT's user, `app:<id>`), if anyone.
    pub auth: Option<String>,
    /// Every `User-Agent` header the request carried, in order (GitHub
    /// expects exactly one, naming the application).
    pub user_agents: Vec<String>,
}

/// Shared fault and log state (lives in the emulator).
#[derive(Debug)]
pub(crate) struct FaultState {
    rules: Rules<RequestMatch, Fault>,
    pub(crate) log: RequestLog<RequestRecord>,
}

impl FaultState {
    pub(crate) fn new(log_cap: usize) -> FaultState {
        FaultState {
            rules: Rules::new(),
            log: RequestLog::new(log_cap),
        }
    }

    /// The injected answer for a request, if any. Consumes one use of the
    /// first matching counted rule.
    pub(crate) fn decide(&self, method: &str, path: &str, query: &str) -> Option<Fault> {
        self.rules.decide(|m| m.matches(method, path, query)).1
    }
}

/// Handle to inject faults into the emulation's HTTP API (cheap to clone).
#[derive(Debug, Clone)]
pub struct Faults {
    pub(crate) state: Arc<FaultState>,
}

impl Faults {
    /// The next `n` matching requests get `fault` instead of being served.
    pub fn fail_next(&self, n: u64, matcher: RequestMatch, fault: Fault) -> FaultId {
        self.state
            .rules
            .add(matcher, Action::Answer(fault), Some(n))
    }

    /// Number of faults still installed.
    pub fn active(&self) -> usize {
        self.state.rules.active()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_faults_expire_and_match_by_prefix_and_regex() {
        let f = Faults {
            state: Arc::new(FaultState::new(10)),
        };
        f.fail_next(
            1,
            RequestMatch::any().method("post").regex("/pulls$").unwrap(),
            Fault::secondary_rate_limit(1),
        );
        f.fail_next(
            2,
            RequestMatch::any().prefix("/repos/a/b/git"),
            Fault::status(502),
        );
        let s = &f.state;
        assert!(s.decide("GET", "/repos/a/b/pulls", "").is_none());
        let hit = s.decide("POST", "/repos/a/b/pulls", "").unwrap();
        assert_eq!(hit.status, 403);
        assert_eq!(
            hit.headers,
            vec![("retry-after".to_string(), "1".to_string())]
        );
        assert!(s.decide("POST", "/repos/a/b/pulls", "").is_none());
        assert_eq!(
            s.decide("GET", "/repos/a/b/git/ref/heads/main", "")
                .unwrap()
                .status,
            502
        );
        assert_eq!(f.active(), 1);
        assert!(RequestMatch::any().regex("(").is_err());
    }
}
