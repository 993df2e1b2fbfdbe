//! The HTTP listener: hyper's HTTP/1 server over the axum router, with the
//! limits an unauthenticated client must not get around:
//! - a header read timeout (`--header-timeout`): a connection that does not
//!   send a whole request head in time is closed, and so is a keep-alive
//!   connection idle that long;
//! - a whole-request timeout (`--request-timeout`): a slow body or a slow
//!   handler gets 408 and the connection closes;
//! - a cap on open connections (`--max-connections`), never above the
//!   process's open-file limit less a reserve for the Kubernetes and GitHub
//!   clients and the watches. At the cap, the oldest connection with no
//!   request in progress (idle, or still sending its head) is closed to
//!   make room, so a probe gets in however many connections someone holds.
//!
//! Owns: accepting, the connection table, and graceful shutdown of the
//! connections. Must not know any route: those are `http`'s.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tower::ServiceExt;

/// The limits of the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a client may take to send a request head, and how long a
    /// keep-alive connection may sit idle.
    pub header_timeout: Duration,
    /// How long one request may take, body and answer included.
    pub request_timeout: Duration,
    /// At most this many connections are open (see [`connection_cap`]).
    pub max_connections: usize,
}

/// File descriptors kept for everything but webhook connections: the
/// Kubernetes and GitHub clients, the watches, logs, the binary itself.
pub const FD_RESERVE: u64 = 64;

/// The process's soft open-file limit, from `/proc/self/limits` (Linux);
/// `None` where it cannot be read or is unlimited.
pub fn open_file_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The connection cap for `requested` connections under the open-file
/// limit `limit`: at most the limit less [`FD_RESERVE`], and at least 8.
pub fn connection_cap(requested: usize, limit: Option<u64>) -> usize {
    let room = limit.map_or(usize::MAX, |l| {
        usize::try_from(l.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX)
    });
    requested.min(room).max(8)
}

/// One open connection.
struct Conn {
    /// Requests in progress on it.
    busy: Arc<AtomicUsize>,
    /// Closes it at once.
    kill: Option<oneshot::Sender<()>>,
}

/// The open connections, oldest first (ids only grow).
#[derive(Default)]
struct Table {
    next: u64,
    conns: BTreeMap<u64, Conn>,
}

impl Table {
    /// Close the oldest connection with no request in progress; false when
    /// every one is busy.
    fn close_oldest_idle(&mut self) -> bool {
        let Some(id) = self
            .conns
            .iter()
            .find(|(_, c)| c.busy.load(Ordering::SeqCst) == 0)
            .map(|(id, _)| *id)
        else {
            return false;
        };
        if let Some(mut c) = self.conns.remove(&id)
            && let Some(kill) = c.kill.take()
        {
            let _ = kill.send(());
        }
        true
    }
}

fn lock(t: &Mutex<Table>) -> std::sync::MutexGuard<'_, Table> {
    t.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Serve `app` on `listener` within `limits` until `shutdown` completes,
/// then close idle connections and let requests in progress finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let table = Arc::new(Mutex::new(Table::default()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            r = listener.accept() => r,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // out of file descriptors (or another transient error):
                // give one back and try again shortly, never give up
                tracing::warn!(error = %e, "Could not accept a connection; closing the oldest idle one.");
                lock(&table).close_oldest_idle();
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let (id, busy, kill) = {
            let mut t = lock(&table);
            if t.conns.len() >= limits.max_connections && !t.close_oldest_idle() {
                // every connection is in the middle of a request: this one waits its turn elsewhere
                drop(stream);
                continue;
            }
            let id = t.next;
            t.next += 1;
            let busy = Arc::new(AtomicUsize::new(0));
            let (kill_tx, kill_rx) = oneshot::channel();
            t.conns.insert(
                id,
                Conn {
                    busy: busy.clone(),
                    kill: Some(kill_tx),
                },
            );
            (id, busy, kill_rx)
        };
        let (app, table, mut stop) = (app.clone(), table.clone(), stop_rx.clone());
        tasks.spawn(async move {
            connection(stream, app, limits, busy, kill, &mut stop).await;
            lock(&table).conns.remove(&id);
        });
        // reap finished connection tasks as we go
        while tasks.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Serve one connection until it ends, is killed, or shutdown asks it to
/// finish its request in progress and close.
async fn connection(
    stream: tokio::net::TcpStream,
    app: Router,
    limits: Limits,
    busy: Arc<AtomicUsize>,
    kill: oneshot::Receiver<()>,
    stop: &mut watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let (app, busy) = (app.clone(), busy.clone());
        async move {
            busy.fetch_add(1, Ordering::SeqCst);
            let answer =
                tokio::time::timeout(limits.request_timeout, app.oneshot(req.map(Body::new))).await;
            busy.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, Infallible>(match answer {
                Ok(Ok(response)) => response,
                Ok(Err(never)) => match never {},
                Err(_) => {
                    let mut r = (
                        http::StatusCode::REQUEST_TIMEOUT,
                        format!(
                            "the request took longer than {:?} (--request-timeout)",
                            limits.request_timeout
                        ),
                    )
                        .into_response();
                    r.headers_mut().insert(
                        http::header::CONNECTION,
                        http::HeaderValue::from_static("close"),
                    );
                    r
                }
            })
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = kill => {}
        _ = async { stop.wait_for(|s| *s).await.map(|_| ()) } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_stays_under_the_open_file_limit() {
        assert_eq!(connection_cap(1024, Some(256)), 192);
        assert_eq!(connection_cap(100, Some(65536)), 100);
        assert_eq!(connection_cap(1024, None), 1024);
        // a tiny limit still serves a few
        assert_eq!(connection_cap(1024, Some(32)), 8);
    }

    #[test]
    fn the_oldest_idle_connection_goes_first_and_a_busy_one_never() {
        let mut t = Table::default();
        let mut kills = Vec::new();
        for busy in [1, 0, 0] {
            let (tx, rx) = oneshot::channel();
            kills.push(rx);
            let id = t.next;
            t.next += 1;
            t.conns.insert(
                id,
                Conn {
                    busy: Arc::new(AtomicUsize::new(busy)),
                    kill: Some(tx),
                },
            );
        }
        assert!(t.close_oldest_idle());
        assert_eq!(t.conns.keys().copied().collect::<Vec<_>>(), [0, 2]);
        assert!(
            kills[1].try_recv().is_ok(),
            "connection 1 was told to close"
        );
        assert!(t.close_oldest_idle());
        assert!(!t.close_oldest_idle(), "the busy one stays");
        assert_eq!(t.conns.keys().copied().collect::<Vec<_>>(), [0]);
    }

    #[test]
    fn the_open_file_limit_is_read() {
        // Linux: the test process has one
        assert!(open_file_limit().is_some_and(|l| l > 0));
    }
}
