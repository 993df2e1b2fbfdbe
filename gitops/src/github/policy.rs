//! When to retry a GitHub call and how long to wait, and how fast heal8s may
//! create content. Pure: statuses, headers and instants in, decisions out.
//!
//! GitHub's rules (docs.github.com, "Rate limits for the REST API"): on a
//! secondary rate limit (403 or 429) wait for `retry-after` if given, else
//! until `x-ratelimit-reset` if `x-ratelimit-remaining` is 0, else at least a
//! minute; on a primary limit wait until `x-ratelimit-reset`. Content-creating
//! requests are limited to 80 a minute and 500 an hour. A 5xx is retried only
//! when the call is idempotent (or its effect was checked first).

use std::collections::VecDeque;
use std::time::Duration;

/// What to do after a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Success, or an answer the caller handles (404, 409, 422...).
    Done,
    /// Wait this long, then send the same request again.
    RetryAfter(Duration),
    /// Give up: retrying could do harm or cannot help.
    GiveUp,
}

/// Retry limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// First backoff for a 5xx; doubled each time.
    pub backoff: Duration,
    /// Longest single wait heal8s accepts; beyond it the call fails and the
    /// remediation waits for its next turn instead of holding the worker.
    pub max_wait: Duration,
    /// A secondary limit without `retry-after`: wait this long (GitHub: at
    /// least a minute).
    pub secondary_default: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            backoff: Duration::from_secs(1),
            max_wait: Duration::from_secs(15 * 60),
            secondary_default: Duration::from_secs(60),
        }
    }
}

/// The parts of a response the policy reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response<'a> {
    pub status: u16,
    pub retry_after: Option<&'a str>,
    pub ratelimit_remaining: Option<&'a str>,
    pub ratelimit_reset: Option<&'a str>,
    /// The start of the body, to tell a rate limit from a permission error.
    pub body: &'a str,
}

impl RetryPolicy {
    /// Decide after attempt number `attempt` (1-based); `now_epoch` is the
    /// current Unix time in seconds (for `x-ratelimit-reset`).
    pub fn decide(
        &self,
        r: &Response<'_>,
        attempt: u32,
        idempotent: bool,
        now_epoch: u64,
    ) -> Decision {
        let limited = matches!(r.status, 403 | 429) && is_rate_limit(r);
        let wait = if limited {
            let retry_after = r
                .retry_after
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let reset = (r.ratelimit_remaining.map(str::trim) == Some("0"))
                .then(|| r.ratelimit_reset.and_then(|v| v.trim().parse::<u64>().ok()))
                .flatten()
                .map(|reset| Duration::from_secs(reset.saturating_sub(now_epoch) + 1));
            retry_after.or(reset).unwrap_or(self.secondary_default)
        } else if r.status >= 500 && idempotent {
            self.backoff
                .saturating_mul(1 << (attempt.saturating_sub(1)).min(10))
        } else if r.status >= 500 {
            return Decision::GiveUp;
        } else {
            return Decision::Done;
        };
        if attempt >= self.max_attempts || wait > self.max_wait {
            Decision::GiveUp
        } else {
            Decision::RetryAfter(wait)
        }
    }
}

/// A 403 is a rate limit only when GitHub says so (a permission error is
/// also a 403 and must not be retried).
fn is_rate_limit(r: &Response<'_>) -> bool {
    r.status == 429
        || r.retry_after.is_some()
        || r.ratelimit_remaining.map(str::trim) == Some("0")
        || r.body.to_ascii_lowercase().contains("rate limit")
}

/// Content-creating requests allowed per window: GitHub's secondary limits
/// (80 a minute, 500 an hour) by default.
#[derive(Debug, Clone)]
pub struct ContentBudget {
    per_minute: usize,
    per_hour: usize,
    /// When each of the last hour's requests was sent (seconds, monotonic).
    sent: VecDeque<f64>,
}

impl Default for ContentBudget {
    fn default() -> Self {
        ContentBudget::new(80, 500)
    }
}

impl ContentBudget {
    pub fn new(per_minute: usize, per_hour: usize) -> ContentBudget {
        ContentBudget {
            per_minute: per_minute.max(1),
            per_hour: per_hour.max(1),
            sent: VecDeque::new(),
        }
    }

    /// How long to wait before sending one more at `now` (seconds on any
    /// monotonic clock); zero when it may go now.
    pub fn wait(&mut self, now: f64) -> Duration {
        while self.sent.front().is_some_and(|&t| now - t >= 3600.0) {
            self.sent.pop_front();
        }
        let in_minute = self.sent.iter().filter(|&&t| now - t < 60.0).count();
        let mut until = now;
        if in_minute >= self.per_minute {
            // the oldest request of the last minute must leave the window
            let oldest = self
                .sent
                .iter()
                .rev()
                .nth(self.per_minute - 1)
                .copied()
                .unwrap_or(now);
            until = until.max(oldest + 60.0);
        }
        if self.sent.len() >= self.per_hour {
            let oldest = self
                .sent
                .iter()
                .rev()
                .nth(self.per_hour - 1)
                .copied()
                .unwrap_or(now);
            until = until.max(oldest + 3600.0);
        }
        Duration::from_secs_f64((until - now).max(0.0))
    }

    /// Record one sent at `now`.
    pub fn record(&mut self, now: f64) {
        self.sent.push_back(now);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn r(status: u16) -> Response<'static> {
        Response {
            status,
            ..Response::default()
        }
    }

    #[test]
    fn secondary_limits_wait_for_retry_after_or_a_minute() {
        let p = RetryPolicy::default();
        let mut limited = r(403);
        limited.body = "You have exceeded a secondary rate limit";
        assert_eq!(
            p.decide(&limited, 1, false, 0),
            Decision::RetryAfter(Duration::from_secs(60))
        );
        limited.retry_after = Some("3");
        assert_eq!(
            p.decide(&limited, 1, false, 0),
            Decision::RetryAfter(Duration::from_secs(3))
        );
        let mut too_many = r(429);
        too_many.retry_after = Some("7");
        assert_eq!(
            p.decide(&too_many, 2, false, 0),
            Decision::RetryAfter(Duration::from_secs(7))
        );
        assert_eq!(
            p.decide(&too_many, 5, false, 0),
            Decision::GiveUp,
            "attempts run out"
        );
    }

    #[test]
    fn primary_limits_wait_until_the_reset() {
        let p = RetryPolicy::default();
        let mut primary = r(403);
        primary.ratelimit_remaining = Some("0");
        primary.ratelimit_reset = Some("1000");
        assert_eq!(
            p.decide(&primary, 1, true, 990),
            Decision::RetryAfter(Duration::from_secs(11))
        );
        // a reset an hour away is longer than heal8s holds a call
        primary.ratelimit_reset = Some("3700");
        assert_eq!(p.decide(&primary, 1, true, 0), Decision::GiveUp);
    }

    #[test]
    fn a_permission_error_is_not_a_rate_limit() {
        let mut denied = r(403);
        denied.body = "Resource not accessible by integration";
        assert_eq!(
            RetryPolicy::default().decide(&denied, 1, true, 0),
            Decision::Done
        );
    }

    #[test]
    fn server_errors_are_retried_only_when_idempotent() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.decide(&r(502), 1, true, 0),
            Decision::RetryAfter(Duration::from_secs(1))
        );
        assert_eq!(
            p.decide(&r(502), 3, true, 0),
            Decision::RetryAfter(Duration::from_secs(4))
        );
        assert_eq!(p.decide(&r(502), 1, false, 0), Decision::GiveUp);
        assert_eq!(p.decide(&r(422), 1, true, 0), Decision::Done);
        assert_eq!(p.decide(&r(201), 1, false, 0), Decision::Done);
    }

    #[test]
    fn the_content_budget_keeps_under_80_a_minute_and_500_an_hour() {
        let mut b = ContentBudget::default();
        for i in 0..80 {
            assert_eq!(b.wait(i as f64 * 0.1), Duration::ZERO);
            b.record(i as f64 * 0.1);
        }
        // the 81st waits until the first leaves the minute
        assert_eq!(b.wait(8.0), Duration::from_secs(52));
        let mut t = 60.0;
        let mut sent = 80;
        while sent < 500 {
            let w = b.wait(t).as_secs_f64();
            t += w;
            b.record(t);
            sent += 1;
        }
        assert!(t < 3600.0, "500 fit in the hour at 80 a minute: {t}");
        let w = b.wait(t);
        assert!(
            w.as_secs_f64() > 3600.0 - t - 1.0,
            "the 501st waits for the hour: {w:?} at {t}"
        );
    }
}
