//! Transient refusals from the Kubernetes API server: which answers are worth
//! another try, and how long to wait first.
//!
//! A restarting API server answers 403 for a second or two, until its RBAC
//! caches are loaded: the same request, a moment later, is allowed. Every
//! try is bounded; heal8s never loops on a refusal. Pure: the IO wrapper that
//! applies the decision lives in receiver-k8s (`client`).

use std::time::Duration;

/// How heal8s retries a 403: `retries` more tries after the first, waiting
/// `first`, then twice as long each time, never longer than `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForbiddenRetry {
    /// Tries after the first one.
    pub retries: u32,
    /// The first wait.
    pub first: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for ForbiddenRetry {
    /// 4 retries after 200 ms, 400 ms, 800 ms and 1 s: 2.4 s in all, longer
    /// than the "second or two" a restarting API server refuses for.
    fn default() -> Self {
        ForbiddenRetry {
            retries: 4,
            first: Duration::from_millis(200),
            max: Duration::from_secs(1),
        }
    }
}

/// 403s that no wait changes: admission refusals, not authorization.
const PERMANENT: &[&str] = &[
    // a terminating namespace takes no new objects
    "because it is being terminated",
    // Pod Security admission
    "violates PodSecurity",
    // ResourceQuota admission
    "exceeded quota",
    // a validating admission webhook or policy said no
    "denied the request",
    "denied request",
];

impl ForbiddenRetry {
    /// The wait before trying again after the API server answered `status`
    /// with `message` to try number `attempt` (1 = the first try), or `None`
    /// when heal8s should give up and report the answer.
    pub fn after(&self, status: u16, message: &str, attempt: u32) -> Option<Duration> {
        if status != 403 || attempt == 0 || attempt > self.retries {
            return None;
        }
        if PERMANENT.iter().any(|p| message.contains(p)) {
            return None;
        }
        let doubled = self.first.saturating_mul(1u32 << (attempt - 1).min(16));
        Some(doubled.min(self.max))
    }

    /// The wait before trying a `method` request again after the API server
    /// failed it with `status` (`None`: no answer at all, the connection
    /// refused or cut) on try number `attempt`, on the same schedule as a
    /// 403; `None` when heal8s should give up and report the failure. Only
    /// a 500 or a missing answer, and only for requests that change nothing
    /// when repeated: a read, or a delete whose body names the object's uid
    /// as a precondition (`preconditioned`: a repeat of one that went
    /// through finds the object gone or terminating, never a namesake made
    /// since). 429, 503 and 504 are kube's own retry's business; a create,
    /// patch or update is never repeated blind (it may have been applied).
    pub fn after_server_error(
        &self,
        method: &str,
        preconditioned: bool,
        status: Option<u16>,
        attempt: u32,
    ) -> Option<Duration> {
        let repeatable = matches!(method, "GET" | "HEAD") || (method == "DELETE" && preconditioned);
        if !repeatable || !matches!(status, None | Some(500)) {
            return None;
        }
        self.after(403, "", attempt)
    }

    /// The longest a request can be held up by refusals, all waits together.
    pub fn budget(&self) -> Duration {
        (1..=self.retries)
            .filter_map(|a| self.after(403, "", a))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RBAC: &str = r#"pods "api-1" is forbidden: User "system:serviceaccount:heal8s:heal8s" cannot create resource "pods/eviction" in API group "" in the namespace "shop""#;

    fn waits(r: &ForbiddenRetry, message: &str) -> Vec<Duration> {
        (1..=20).map_while(|a| r.after(403, message, a)).collect()
    }

    #[test]
    fn an_rbac_refusal_is_retried_four_times_with_a_doubling_capped_backoff() {
        let ms = Duration::from_millis;
        assert_eq!(
            waits(&ForbiddenRetry::default(), RBAC),
            vec![ms(200), ms(400), ms(800), ms(1000)]
        );
        assert_eq!(ForbiddenRetry::default().budget(), ms(2400));
    }

    #[test]
    fn retries_end_whatever_the_settings() {
        let r = ForbiddenRetry {
            retries: 100,
            first: Duration::from_secs(3600),
            max: Duration::from_secs(5),
        };
        let w = waits(&r, RBAC);
        assert_eq!(w.len(), 20, "bounded by the attempts asked for here");
        assert!(w.iter().all(|d| *d == Duration::from_secs(5)));
        assert_eq!(r.after(403, RBAC, 101), None);
        assert_eq!(r.after(403, RBAC, u32::MAX), None);
        assert_eq!(r.after(403, RBAC, 0), None);
    }

    #[test]
    fn other_statuses_are_not_this_policys_business() {
        let r = ForbiddenRetry::default();
        for status in [200, 400, 401, 404, 409, 422, 429, 500, 503] {
            assert_eq!(r.after(status, RBAC, 1), None, "{status}");
        }
    }

    #[test]
    fn a_read_or_delete_that_failed_on_the_server_is_tried_again() {
        let r = ForbiddenRetry::default();
        let ms = Duration::from_millis;
        for method in ["GET", "DELETE"] {
            for status in [None, Some(500)] {
                let w: Vec<_> = (1..=10)
                    .map_while(|a| r.after_server_error(method, true, status, a))
                    .collect();
                assert_eq!(
                    w,
                    [ms(200), ms(400), ms(800), ms(1000)],
                    "{method} {status:?}"
                );
            }
        }
        // what may have been applied is never repeated blind, nor a delete
        // that could reach a namesake made since
        for method in ["POST", "PATCH", "PUT"] {
            assert_eq!(
                r.after_server_error(method, true, Some(500), 1),
                None,
                "{method}"
            );
            assert_eq!(
                r.after_server_error(method, true, None, 1),
                None,
                "{method}"
            );
        }
        assert_eq!(r.after_server_error("DELETE", false, Some(500), 1), None);
        assert_eq!(r.after_server_error("GET", false, None, 1), Some(ms(200)));
        // kube's retry owns these; the rest are answers
        for status in [400, 404, 409, 422, 429, 501, 503, 504] {
            assert_eq!(
                r.after_server_error("DELETE", true, Some(status), 1),
                None,
                "{status}"
            );
        }
    }

    #[test]
    fn admission_refusals_are_final() {
        let r = ForbiddenRetry::default();
        for m in [
            "unable to create new content in namespace shop because it is being terminated",
            r#"pods "x" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true"#,
            r#"pods "x" is forbidden: exceeded quota: compute, requested: cpu=1, used: cpu=4, limited: cpu=4"#,
            r#"admission webhook "policy.example.com" denied the request: no"#,
        ] {
            assert_eq!(r.after(403, m, 1), None, "{m}");
        }
    }

    #[test]
    fn no_retries_means_the_first_answer_stands() {
        let r = ForbiddenRetry {
            retries: 0,
            ..ForbiddenRetry::default()
        };
        assert_eq!(r.after(403, RBAC, 1), None);
        assert_eq!(r.budget(), Duration::ZERO);
    }
}
