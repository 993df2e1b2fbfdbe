//! heal8s's notification delivery, off the remediation path.
//!
//! The worker hands each notice (decided in `receiver_core::notify`: what,
//! how loud, to whom) to [`Outbox::post`], which never waits: a bounded queue,
//! and a notice that does not fit is counted as dropped, never blocking a
//! remediation. One task groups repeats and keeps each receiver's rate limit
//! ([`receiver_core::notify::Grouper`]); each receiver then has a task and a
//! bounded queue of its own, so a receiver that is down or slow holds up
//! nobody else. Each message is tried `delivery.attempts` times: again after
//! a 5xx, a timeout or a lost connection with backoff, after a 429 when its
//! `Retry-After` says ([`retry`]); never after another 4xx.
//!
//! Owns: secrets (read when sending, never logged: [`secrets`]), the HTTP and
//! SMTP clients, the queues, retries and counts. Formats per channel are in
//! [`format`].

pub mod format;
pub mod retry;
pub mod secrets;
pub mod smtp;

mod deliver;
mod post;

pub use deliver::{Delivery, Outbox, Report, start};

/// Why a message was not delivered, and whether to try again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// Worth another attempt (5xx, 429, a timeout, a lost connection).
    pub retryable: bool,
    /// What the receiver asked for (`Retry-After`).
    pub retry_after: Option<std::time::Duration>,
    /// What went wrong; never a secret (a URL is shown by its host only).
    pub message: String,
}

impl SendError {
    /// A failure no retry will fix (a 4xx, a bad address, a missing secret).
    pub fn permanent(message: impl Into<String>) -> SendError {
        SendError {
            retryable: false,
            retry_after: None,
            message: message.into(),
        }
    }

    /// A failure another attempt may not meet.
    pub fn transient(message: impl Into<String>) -> SendError {
        SendError {
            retryable: true,
            retry_after: None,
            message: message.into(),
        }
    }
}
