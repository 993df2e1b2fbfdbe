//! The queues and tasks: the outbox the worker posts to, the dispatcher that
//! groups and rate-limits, and one sender per receiver with its retries.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use receiver_core::notify::config::Channel;
use receiver_core::notify::{Grouper, Notice, Notifications, Offer, Receiver};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::post::{Poster, host_of};
use crate::{SendError, format, retry, secrets, smtp};

/// Where delivery results are counted (`heal8s_notifications_total`).
pub trait Report: Send + Sync + 'static {
    /// `result`: `sent`, `retried` (an attempt failed, another follows),
    /// `failed` (every attempt failed, or one that cannot succeed),
    /// `dropped` (a full queue).
    fn delivered(&self, receiver: &str, result: &'static str);
}

/// The worker's side: posting never waits.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<(Notice, Vec<String>)>,
    report: Arc<dyn ReportDebug>,
}

/// [`Report`] with `Debug`, for the handles that hold one.
trait ReportDebug: Report {}
impl<T: Report> ReportDebug for T {}
impl std::fmt::Debug for dyn ReportDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Report")
    }
}

impl Outbox {
    /// Hand `notice` over for `receivers`. A full queue drops it (counted per
    /// receiver as `dropped`, and logged): a remediation never waits for a
    /// notification.
    pub fn post(&self, notice: Notice, receivers: Vec<String>) {
        if receivers.is_empty() {
            return;
        }
        if let Err(e) = self.tx.try_send((notice, receivers)) {
            let (n, receivers) = match e {
                mpsc::error::TrySendError::Full(x) | mpsc::error::TrySendError::Closed(x) => x,
            };
            for r in &receivers {
                self.report.delivered(r, "dropped");
            }
            tracing::warn!(
                event = n.event.as_str(),
                target = n.target.as_deref().unwrap_or(""),
                receivers = receivers.join(","),
                "notification dropped: the notification queue is full"
            );
        }
    }
}

/// One receiver's queue: the oldest goes when it is full.
#[derive(Debug)]
struct Queue {
    items: Mutex<VecDeque<Notice>>,
    wake: Notify,
    cap: usize,
    /// A message is being delivered now.
    busy: std::sync::atomic::AtomicBool,
}

impl Queue {
    fn idle(&self) -> bool {
        !self.busy.load(std::sync::atomic::Ordering::SeqCst)
            && self.items.lock().map(|q| q.is_empty()).unwrap_or(true)
    }
}

/// The running delivery: its tasks and queues.
#[derive(Debug)]
pub struct Delivery {
    dispatcher: JoinHandle<()>,
    senders: Vec<JoinHandle<()>>,
    queues: Vec<Arc<Queue>>,
}

impl Delivery {
    /// After every [`Outbox`] is gone: let what is held and queued go out,
    /// for at most `within`, then stop. Returns how many notices were left.
    pub async fn finish(mut self, within: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + within;
        let _ = tokio::time::timeout_at(deadline, &mut self.dispatcher).await;
        while tokio::time::Instant::now() < deadline && !self.queues.iter().all(|q| q.idle()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.dispatcher.abort();
        for t in &self.senders {
            t.abort();
        }
        self.queues
            .iter()
            .map(|q| q.items.lock().map(|i| i.len()).unwrap_or(0) + usize::from(!q.idle()))
            .sum()
    }
}

impl Queue {
    fn push(&self, n: Notice) -> Option<Notice> {
        let dropped = match self.items.lock() {
            Ok(mut q) => {
                let old = if q.len() >= self.cap {
                    q.pop_front()
                } else {
                    None
                };
                q.push_back(n);
                old
            }
            Err(_) => None,
        };
        self.wake.notify_one();
        dropped
    }

    /// The next notice; the queue is busy until the caller says otherwise.
    async fn pop(&self) -> Notice {
        loop {
            if let Some(n) = self.items.lock().ok().and_then(|mut q| {
                let n = q.pop_front();
                if n.is_some() {
                    self.busy.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                n
            }) {
                return n;
            }
            self.wake.notified().await;
        }
    }
}

/// Start delivery for `cfg`: the dispatcher and one sender per receiver.
/// Returns the outbox to post to, and the delivery to [`Delivery::finish`]
/// at shutdown.
pub fn start<R: Report>(cfg: &Notifications, report: Arc<R>) -> Result<(Outbox, Delivery), String> {
    let poster = Poster::new()?;
    let d = &cfg.delivery;
    let cap = d.queue as usize;
    let (tx, mut rx) = mpsc::channel::<(Notice, Vec<String>)>(cap);
    let mut senders = Vec::new();
    let mut queues = std::collections::BTreeMap::new();
    for r in &cfg.receivers {
        let q = Arc::new(Queue {
            items: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            cap,
            busy: std::sync::atomic::AtomicBool::new(false),
        });
        queues.insert(r.name.clone(), q.clone());
        let (r, poster, report) = (r.clone(), poster.clone(), report.clone());
        let (timeout, attempts) = (d.timeout.get(), d.attempts);
        senders.push(tokio::spawn(async move {
            loop {
                let n = q.pop().await;
                deliver(&poster, &r, &n, timeout, attempts, &*report).await;
                q.busy.store(false, std::sync::atomic::Ordering::SeqCst);
            }
        }));
    }
    let pagers: Vec<String> = cfg
        .receivers
        .iter()
        .filter(|r| r.pagerduty.is_some())
        .map(|r| r.name.clone())
        .collect();
    let mut grouper = Grouper::new(d.group_window.get(), d.rate_limit);
    let dispatch_report = report.clone();
    let all_queues: Vec<Arc<Queue>> = queues.values().cloned().collect();
    let enqueue = move |to: &str, n: Notice| {
        if let Some(q) = queues.get(to)
            && q.push(n).is_some()
        {
            dispatch_report.delivered(to, "dropped");
            tracing::warn!(
                receiver = to,
                "notification dropped: the receiver's queue is full"
            );
        }
    };
    let dispatcher = tokio::spawn(async move {
        loop {
            let wait = grouper.next_due().map(|at| {
                let left = at.duration_since(Timestamp::now()).as_millis().max(0);
                Duration::from_millis(u64::try_from(left).unwrap_or(0))
            });
            tokio::select! {
                got = rx.recv() => match got {
                    Some((n, receivers)) => {
                        let now = Timestamp::now();
                        for to in receivers {
                            let per_problem = pagers.contains(&to);
                            if let Offer::Send(n) = grouper.offer(&to, n.clone(), per_problem, now) {
                                enqueue(&to, *n);
                            }
                        }
                    }
                    None => {
                        // shutting down: what is held goes out now
                        for (to, n) in grouper.due(Timestamp::MAX) {
                            enqueue(&to, n);
                        }
                        break;
                    }
                },
                () = sleep(wait) => {
                    for (to, n) in grouper.due(Timestamp::now()) {
                        enqueue(&to, n);
                    }
                }
            }
        }
    });
    Ok((
        Outbox {
            tx,
            report: report as Arc<dyn ReportDebug>,
        },
        Delivery {
            dispatcher,
            senders,
            queues: all_queues,
        },
    ))
}

async fn sleep(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// Send `n` to `r`, trying again as [`retry::wait_before`] says; count the result.
async fn deliver(
    poster: &Poster,
    r: &Receiver,
    n: &Notice,
    timeout: Duration,
    attempts: u32,
    report: &dyn Report,
) {
    let mut attempt = 1;
    loop {
        match send(poster, r, n, timeout).await {
            Ok(()) => {
                report.delivered(&r.name, "sent");
                tracing::debug!(receiver = %r.name, event = n.event.as_str(), "notification sent");
                return;
            }
            Err(e) => match retry::wait_before(attempt + 1, attempts, &e) {
                Some(wait) => {
                    report.delivered(&r.name, "retried");
                    tracing::info!(receiver = %r.name, attempt, error = %e, ?wait, "notification not delivered; trying again");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                None => {
                    report.delivered(&r.name, "failed");
                    tracing::warn!(receiver = %r.name, attempt, error = %e, event = n.event.as_str(), target = n.target.as_deref().unwrap_or(""), "notification failed");
                    return;
                }
            },
        }
    }
}

fn secret(s: &receiver_core::notify::Secret) -> Result<String, SendError> {
    secrets::read(s).map_err(SendError::permanent)
}

fn json(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// One attempt to send `n` to `r`.
pub(crate) async fn send(
    poster: &Poster,
    r: &Receiver,
    n: &Notice,
    timeout: Duration,
) -> Result<(), SendError> {
    let Some(channel) = r.channel() else {
        return Err(SendError::permanent("the receiver names no channel"));
    };
    match channel {
        Channel::Slack(u) => {
            let url = secret(&u.url)?;
            poster
                .post_json(&url, &[], json(&format::slack(n)), timeout)
                .await
                .map(drop)
        }
        Channel::Teams(u) => {
            let url = secret(&u.url)?;
            poster
                .post_json(&url, &[], json(&format::teams(n)), timeout)
                .await
                .map(drop)
        }
        Channel::DingTalk(d) => {
            let mut url = secret(&d.url)?;
            if let Some(s) = &d.secret {
                url = format::dingtalk_signed_url(
                    &url,
                    &secret(s)?,
                    Timestamp::now().as_millisecond(),
                );
            }
            let answer = poster
                .post_json(&url, &[], json(&format::dingtalk(n)), timeout)
                .await?;
            answer_code(&answer, "errcode", 0, &host_of(&url), &[130_101])
        }
        Channel::Bark(u) => {
            let url = secret(&u.url)?;
            let answer = poster
                .post_json(&url, &[], json(&format::bark(n)), timeout)
                .await?;
            answer_code(&answer, "code", 200, &host_of(&url), &[])
        }
        Channel::PagerDuty(p) => {
            let key = secret(&p.routing_key)?;
            poster
                .post_json(&p.url, &[], json(&format::pagerduty(n, &key)), timeout)
                .await
                .map(drop)
        }
        Channel::Webhook(w) => {
            let url = secret(&w.url)?;
            let mut headers = Vec::new();
            if let Some(t) = &w.bearer_token {
                headers.push(("authorization", format!("Bearer {}", secret(t)?)));
            }
            poster
                .post_json(&url, &headers, json(&format::webhook(n)), timeout)
                .await
                .map(drop)
        }
        Channel::Email(e) => {
            let password = match &e.password {
                Some(p) => Some(secret(p)?),
                None => None,
            };
            let (subject, body) = format::email(n);
            smtp::send(e, password.as_deref(), &subject, &body, timeout).await
        }
    }
}

/// Services that answer 200 with an error code in the body (DingTalk's
/// `errcode`, Bark's `code`): anything but `ok` is an error; codes in
/// `retry` (DingTalk's "sent too fast") are worth another attempt.
fn answer_code(
    answer: &[u8],
    field: &str,
    ok: i64,
    host: &str,
    retry: &[i64],
) -> Result<(), SendError> {
    let v: serde_json::Value = serde_json::from_slice(answer).unwrap_or_default();
    match v.get(field).and_then(serde_json::Value::as_i64) {
        Some(c) if c == ok => Ok(()),
        None => Ok(()),
        Some(c) => {
            let msg = v
                .get("errmsg")
                .or_else(|| v.get("message"))
                .and_then(serde_json::Value::as_str)
                .unwrap_or("")
                .chars()
                .take(200)
                .collect::<String>();
            let e = format!("{host} answered {field} {c}: {msg}");
            Err(if retry.contains(&c) {
                SendError::transient(e)
            } else {
                SendError::permanent(e)
            })
        }
    }
}
