//! When to try a message again. Pure.

use std::time::Duration;

use crate::SendError;

/// The first retry's wait; each next one doubles, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The longest `Retry-After` honoured; a longer one is cut to it.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// The error an HTTP answer with `status` (and its `Retry-After`) means, or
/// `None` for a success. 429 and 5xx are retried (429 after `Retry-After`),
/// 408 too; other 4xx are not: the message or the configuration is wrong.
pub fn from_status(status: u16, retry_after: Option<&str>, host: &str) -> Option<SendError> {
    match status {
        200..=299 => None,
        429 => Some(SendError {
            retryable: true,
            retry_after: retry_after.and_then(parse_retry_after),
            message: format!("{host} answered 429 Too Many Requests"),
        }),
        408 | 500..=599 => Some(SendError {
            retryable: true,
            retry_after: retry_after.and_then(parse_retry_after),
            message: format!("{host} answered {status}"),
        }),
        _ => Some(SendError::permanent(format!("{host} answered {status}"))),
    }
}

/// `Retry-After` as seconds (the form these services send), at most
/// [`MAX_RETRY_AFTER`]. An HTTP date is not honoured (backoff applies).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let secs: u64 = v.trim().parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// How long to wait before attempt `next` (2 for the first retry) after
/// `error`, or `None` to give up: not retryable, or `attempts` spent.
pub fn wait_before(next: u32, attempts: u32, error: &SendError) -> Option<Duration> {
    if !error.retryable || next > attempts {
        return None;
    }
    if let Some(d) = error.retry_after {
        return Some(d);
    }
    let doublings = next.saturating_sub(2).min(16);
    Some((FIRST_BACKOFF * 2u32.pow(doublings)).min(MAX_BACKOFF))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_back_off_and_client_errors_give_up() {
        let e = from_status(503, None, "hooks.example").unwrap();
        assert!(e.retryable);
        assert_eq!(wait_before(2, 5, &e), Some(Duration::from_secs(1)));
        assert_eq!(wait_before(3, 5, &e), Some(Duration::from_secs(2)));
        assert_eq!(wait_before(5, 5, &e), Some(Duration::from_secs(8)));
        assert_eq!(wait_before(6, 5, &e), None, "attempts spent");
        assert_eq!(wait_before(20, 30, &e), Some(MAX_BACKOFF));
        let e = from_status(404, None, "hooks.example").unwrap();
        assert!(!e.retryable);
        assert_eq!(wait_before(2, 5, &e), None);
        assert!(from_status(204, None, "x").is_none());
        assert!(e.to_string().contains("hooks.example answered 404"));
    }

    #[test]
    fn a_429_waits_as_long_as_retry_after_says_within_a_cap() {
        let e = from_status(429, Some("7"), "x").unwrap();
        assert_eq!(wait_before(2, 5, &e), Some(Duration::from_secs(7)));
        let e = from_status(429, Some("86400"), "x").unwrap();
        assert_eq!(e.retry_after, Some(MAX_RETRY_AFTER));
        let e = from_status(429, Some("Wed, 21 Oct 2015 07:28:00 GMT"), "x").unwrap();
        assert_eq!(e.retry_after, None);
        assert_eq!(wait_before(2, 5, &e), Some(FIRST_BACKOFF));
    }
}
