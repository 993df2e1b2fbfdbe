//! What both emulations' fault injection and request logs share: rules that
//! answer matching requests with an injected answer or delay them, counted
//! or until removed, and a capped log of served requests. Each emulation
//! brings its own matcher, answer and record types.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Identifies an installed fault, for `Faults::remove`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FaultId(u64);

/// What a rule does to a matching request.
#[derive(Debug, Clone)]
pub(crate) enum Action<A> {
    Answer(A),
    Delay(Duration),
}

#[derive(Debug, Clone)]
struct Rule<M, A> {
    id: u64,
    matcher: M,
    action: Action<A>,
    /// Requests left to affect; `None` = until removed.
    remaining: Option<u64>,
}

/// The installed rules.
#[derive(Debug)]
pub(crate) struct Rules<M, A> {
    rules: Mutex<Vec<Rule<M, A>>>,
    next_id: AtomicU64,
}

impl<M, A: Clone> Rules<M, A> {
    pub(crate) fn new() -> Rules<M, A> {
        Rules {
            rules: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Rule<M, A>>> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn add(&self, matcher: M, action: Action<A>, remaining: Option<u64>) -> FaultId {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().push(Rule {
            id,
            matcher,
            action,
            remaining,
        });
        FaultId(id)
    }

    /// What to do with a request `matches` recognises: the total delay, then
    /// maybe the first matching answer. Consumes one use of every matching
    /// counted rule (of answers, only the one given).
    pub(crate) fn decide(&self, matches: impl Fn(&M) -> bool) -> (Duration, Option<A>) {
        let mut rules = self.lock();
        let mut delay = Duration::ZERO;
        let mut answer = None;
        for r in rules.iter_mut() {
            if !matches(&r.matcher) {
                continue;
            }
            match &r.action {
                Action::Delay(d) => delay += *d,
                Action::Answer(a) => {
                    if answer.is_some() {
                        continue;
                    }
                    answer = Some(a.clone());
                }
            }
            if let Some(n) = r.remaining.as_mut() {
                *n = n.saturating_sub(1);
            }
        }
        rules.retain(|r| r.remaining != Some(0));
        (delay, answer)
    }

    pub(crate) fn remove(&self, id: FaultId) {
        self.lock().retain(|r| r.id != id.0);
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    pub(crate) fn active(&self) -> usize {
        self.lock().len()
    }
}

/// The last `cap` requests served, and how many were served in all.
#[derive(Debug)]
pub(crate) struct RequestLog<R> {
    log: Mutex<VecDeque<R>>,
    cap: usize,
    count: AtomicU64,
}

impl<R: Clone> RequestLog<R> {
    pub(crate) fn new(cap: usize) -> RequestLog<R> {
        RequestLog {
            log: Mutex::new(VecDeque::new()),
            cap: cap.max(1),
            count: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<R>> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn record(&self, rec: R) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut log = self.lock();
        if log.len() >= self.cap {
            log.pop_front();
        }
        log.push_back(rec);
    }

    pub(crate) fn requests(&self) -> Vec<R> {
        self.lock().iter().cloned().collect()
    }

    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
    }
}
