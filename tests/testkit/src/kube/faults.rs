//! Fault injection and the request log: rules that make matching requests
//! fail with a given status (or with the 403 the RBAC authorizer words for
//! that request, as a restarting API server answers until its caches load)
//! or wait before being served, a switch that closes every open watch, and
//! the record of every request served. Only the HTTP API is affected; the
//! store API used by tests never is.

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

/// What the authorizer knows about a request (Kubernetes' `RequestInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RequestAttrs {
    /// HTTP method.
    pub method: String,
    /// Kubernetes verb (`get`, `list`, ... `deletecollection`).
    pub verb: String,
    /// Request path.
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// For a resource request: group, resource, subresource, namespace, name.
    pub resource: Option<ResourceAttrs>,
}

/// The resource part of a request's attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ResourceAttrs {
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
}

/// How a fault answers.
#[derive(Debug, Clone)]
pub(crate) enum Answer {
    /// Exactly this error.
    Error(ApiError),
    /// 403 Forbidden, worded as the RBAC authorizer denies this request to `user`.
    Forbidden { user: String },
}

impl Answer {
    fn for_request(&self, req: &RequestAttrs) -> ApiError {
        match self {
            Answer::Error(e) => e.clone(),
            Answer::Forbidden { user } => forbidden(user, req),
        }
    }
}

/// The API server's 403 for a request the authorizer did not allow
/// (`responsewriters.Forbidden`).
fn forbidden(user: &str, req: &RequestAttrs) -> ApiError {
    match &req.resource {
        None => ApiError::forbidden(
            "",
            "",
            "",
            &format!(
                "User \"{user}\" cannot {} path \"{}\"",
                req.method.to_lowercase(),
                req.path
            ),
        ),
        Some(r) => {
            let resource = if r.subresource.is_empty() {
                r.resource.clone()
            } else {
                format!("{}/{}", r.resource, r.subresource)
            };
            let scope = if r.namespace.is_empty() {
                "at the cluster scope".to_string()
            } else {
                format!("in the namespace \"{}\"", r.namespace)
            };
            ApiError::forbidden(
                &r.group,
                &r.resource,
                &r.name,
                &format!(
                    "User \"{user}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
                    req.verb, r.group
                ),
            )
        }
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
    /// The `User-Agent` header ("" when none; several joined with ", ").
    pub user_agent: String,
    /// When the request arrived.
    pub at: Instant,
}

/// Shared fault and log state (lives in the emulator).
#[derive(Debug)]
pub(crate) struct FaultState {
    rules: Rules<RequestMatch, Answer>,
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
    pub(crate) fn decide(&self, req: &RequestAttrs) -> (Duration, Option<ApiError>) {
        let (delay, answer) = self
            .rules
            .decide(|m| m.matches(&req.method, &req.verb, &req.path, &req.query));
        (delay, answer.map(|a| a.for_request(req)))
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
        action: Action<Answer>,
        remaining: Option<u64>,
    ) -> FaultId {
        self.state.rules.add(matcher, action, remaining)
    }

    /// The next `n` matching requests fail with `code` (a `Status` with the
    /// reason the real server uses for that code; 429 carries `retryAfterSeconds: 1`).
    pub fn fail_next(&self, n: u64, matcher: RequestMatch, code: u16) -> FaultId {
        let e = ApiError::from_code(code, format!("injected fault ({code})"));
        self.add(matcher, Action::Answer(Answer::Error(e)), Some(n))
    }

    /// The next `n` matching requests fail with exactly this error.
    pub fn fail_next_with(&self, n: u64, matcher: RequestMatch, error: ApiError) -> FaultId {
        self.add(matcher, Action::Answer(Answer::Error(error)), Some(n))
    }

    /// Every matching request fails with `code` until the fault is removed.
    pub fn fail_always(&self, matcher: RequestMatch, code: u16) -> FaultId {
        let e = ApiError::from_code(code, format!("injected fault ({code})"));
        self.add(matcher, Action::Answer(Answer::Error(e)), None)
    }

    /// The next `n` matching requests are denied to `user` (for example
    /// `system:serviceaccount:heal8s:heal8s`): 403 Forbidden worded as the
    /// RBAC authorizer words it for each, e.g. `pods "p" is forbidden: User
    /// "u" cannot delete resource "pods" in API group "" in the namespace "shop"`.
    pub fn forbid_next(&self, n: u64, matcher: RequestMatch, user: &str) -> FaultId {
        let answer = Answer::Forbidden {
            user: user.to_string(),
        };
        self.add(matcher, Action::Answer(answer), Some(n))
    }

    /// Simulate an API server restart whose RBAC caches are still cold:
    /// every open watch ends (clients reconnect), then the next `n` requests,
    /// whatever they are, are denied to `user` as [`Faults::forbid_next`]
    /// words it. A real kube-apiserver does this for a second or two after
    /// it starts, until its authorizer has loaded the roles and bindings.
    pub fn restart_with_cold_rbac(&self, n: u64, user: &str) -> FaultId {
        let id = self.forbid_next(n, RequestMatch::any(), user);
        self.drop_watches();
        id
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
        let req = |method: &str, verb: &str, path: &str| RequestAttrs {
            method: method.into(),
            verb: verb.into(),
            path: path.into(),
            ..RequestAttrs::default()
        };
        let create = req("POST", "create", "/api/v1/namespaces/a/pods");
        let (d, e) = s.decide(&create);
        assert_eq!((d, e.unwrap().code), (Duration::from_millis(5), 500));
        assert!(s.decide(&req("GET", "list", "/api/v1/pods")).1.is_none());
        assert!(s.decide(&create).1.is_some());
        assert!(s.decide(&create).1.is_none());
        assert_eq!(f.active(), 1);
    }

    #[test]
    fn denials_are_worded_as_the_rbac_authorizer_words_them() {
        let user = "system:serviceaccount:heal8s:heal8s";
        let eviction = RequestAttrs {
            method: "POST".into(),
            verb: "create".into(),
            path: "/api/v1/namespaces/shop/pods/p/eviction".into(),
            query: String::new(),
            resource: Some(ResourceAttrs {
                group: String::new(),
                resource: "pods".into(),
                subresource: "eviction".into(),
                namespace: "shop".into(),
                name: "p".into(),
            }),
        };
        let e = forbidden(user, &eviction);
        assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
        assert_eq!(
            e.message,
            "pods \"p\" is forbidden: User \"system:serviceaccount:heal8s:heal8s\" cannot create resource \"pods/eviction\" in API group \"\" in the namespace \"shop\""
        );
        let list = RequestAttrs {
            method: "GET".into(),
            verb: "list".into(),
            path: "/apis/apps/v1/deployments".into(),
            query: String::new(),
            resource: Some(ResourceAttrs {
                group: "apps".into(),
                resource: "deployments".into(),
                ..ResourceAttrs::default()
            }),
        };
        assert_eq!(
            forbidden(user, &list).message,
            "deployments.apps is forbidden: User \"system:serviceaccount:heal8s:heal8s\" cannot list resource \"deployments\" in API group \"apps\" at the cluster scope"
        );
        let discovery = RequestAttrs {
            method: "GET".into(),
            verb: "get".into(),
            path: "/apis".into(),
            ..RequestAttrs::default()
        };
        assert_eq!(
            forbidden(user, &discovery).message,
            "forbidden: User \"system:serviceaccount:heal8s:heal8s\" cannot get path \"/apis\""
        );
    }
}
