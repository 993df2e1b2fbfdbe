//! Fault injection and the request log: rules that make matching requests
//! fail with a given status (or with the 403 the RBAC authorizer words for
//! that request, as a restarting API server answers until its caches load)
//! or wait before being served, switches that close every open watch or
//! expire it with a 410 as etcd's compaction does, an outage (the port
//! closed and every connection cut, as when the kube-apiserver process is
//! down), counters of arriving requests, and the record of every request
//! served. Only the HTTP API is affected; the store API used by tests never is.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

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

    fn matches(&self, method: &str, verb: &str, path: &str) -> bool {
        self.verb
            .as_deref()
            .is_none_or(|v| v.eq_ignore_ascii_case(verb) || v.eq_ignore_ascii_case(method))
            && self.path.as_deref().is_none_or(|p| path.contains(p))
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
    pub(crate) log: RequestLog<RequestRecord>,
    /// Bumped by [`Faults::drop_watches`]: every open watch ends.
    pub(crate) stop_watches: tokio::sync::watch::Sender<u64>,
    /// Bumped by [`Faults::expire_watches`]: every open watch gets a 410
    /// `Expired` ERROR event, then ends.
    pub(crate) expire_watches: tokio::sync::watch::Sender<u64>,
    /// Whether the server is up (see [`Faults::go_down`]).
    up: tokio::sync::watch::Sender<bool>,
    /// A second handle on each open connection's socket, to cut it.
    connections: Mutex<HashMap<u64, std::net::TcpStream>>,
    next_connection: AtomicU64,
    /// Counters of arriving requests ([`Faults::count_arrivals`]).
    arrivals: Mutex<Vec<(RequestMatch, Arc<AtomicU64>)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FaultState {
    /// Whether the server is up: a request that reaches the handler while
    /// it is down (read from a connection `go_down` is about to cut) is
    /// never answered, as a dead process answers nothing.
    pub(crate) fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    pub(crate) fn new(log_cap: usize) -> FaultState {
        FaultState {
            rules: Rules::new(),
            log: RequestLog::new(log_cap),
            stop_watches: tokio::sync::watch::Sender::new(0),
            expire_watches: tokio::sync::watch::Sender::new(0),
            up: tokio::sync::watch::Sender::new(true),
            connections: Mutex::new(HashMap::new()),
            next_connection: AtomicU64::new(0),
            arrivals: Mutex::new(Vec::new()),
        }
    }

    /// What to do with a request: total delay, then maybe a failure.
    /// Consumes one use of every matching counted rule, and counts the
    /// request's arrival.
    pub(crate) fn decide(&self, req: &RequestAttrs) -> (Duration, Option<ApiError>) {
        let matches = |m: &RequestMatch| m.matches(&req.method, &req.verb, &req.path);
        for (m, n) in lock(&self.arrivals).iter() {
            if matches(m) {
                n.fetch_add(1, Ordering::Relaxed);
            }
        }
        let (delay, answer) = self.rules.decide(matches);
        (delay, answer.map(|a| a.for_request(req)))
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

    /// Expire every open watch, as etcd's compaction does to a watch the
    /// API server serves from etcd: each gets an `ERROR` event carrying a
    /// `Status` with code 410, reason `Expired` and etcd's message ("The
    /// resourceVersion for the provided watch is too old."), then its body
    /// ends. Clients must re-list. To make resuming from an older
    /// resourceVersion fail as well (`too old resource version`, also a 410
    /// ERROR event on an answer of 200), compact the history too
    /// (`Emulator::compact_history`).
    pub fn expire_watches(&self) {
        self.state.expire_watches.send_modify(|g| *g += 1);
    }

    /// The API server goes down, as when its process dies: every open
    /// connection is cut (watches included: their bodies end mid-stream)
    /// and the port is closed, so new connections are refused
    /// (`ECONNREFUSED`), not answered. Nothing is logged while it is down.
    /// [`Faults::come_back`] opens the same address again.
    pub fn go_down(&self) {
        // first down, then cut: a connection accepted meanwhile sees one or the other
        self.state.up.send_replace(false);
        self.drop_watches();
        for socket in lock(&self.state.connections).values() {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }

    /// The API server is back after [`Faults::go_down`]: it listens on the
    /// same address again (within a few milliseconds) and serves as before,
    /// every object and the watch history kept, as an API server restarted
    /// over the same etcd.
    pub fn come_back(&self) {
        self.state.up.send_replace(true);
    }

    /// Count the requests matching `matcher` from now on, as they arrive:
    /// before any fault delays or answers them, so a request a
    /// [`Faults::delay`] holds, or whose client went away meanwhile, counts
    /// at once (the request log records a request only once it is answered).
    pub fn count_arrivals(&self, matcher: RequestMatch) -> Arrivals {
        let n = Arc::new(AtomicU64::new(0));
        lock(&self.state.arrivals).push((matcher, n.clone()));
        Arrivals(n)
    }
}

/// How many matching requests arrived (see [`Faults::count_arrivals`]).
#[derive(Debug, Clone)]
pub struct Arrivals(Arc<AtomicU64>);

impl Arrivals {
    /// The requests counted so far.
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The emulator's listener. While the server is up it accepts on its
/// address; while it is down ([`Faults::go_down`]) the port is closed and
/// every connection refused; when it comes back, it binds the same address
/// again. Each connection it hands out can be cut by [`Faults::go_down`].
#[derive(Debug)]
pub(crate) struct Listener {
    addr: SocketAddr,
    inner: Option<TcpListener>,
    up: tokio::sync::watch::Receiver<bool>,
    state: Arc<FaultState>,
}

impl Listener {
    /// Serve on `listener` (its address is where the server comes back).
    pub(crate) fn new(listener: TcpListener, state: Arc<FaultState>) -> std::io::Result<Listener> {
        Ok(Listener {
            addr: listener.local_addr()?,
            inner: Some(listener),
            up: state.up.subscribe(),
            state,
        })
    }

    /// Register `stream` so that going down cuts it.
    fn track(&self, stream: TcpStream) -> std::io::Result<Connection> {
        let stream = stream.into_std()?;
        let handle = stream.try_clone()?;
        let stream = TcpStream::from_std(stream)?;
        let id = self.state.next_connection.fetch_add(1, Ordering::Relaxed);
        lock(&self.state.connections).insert(id, handle);
        let conn = Connection {
            stream,
            _tracked: Tracked {
                id,
                state: self.state.clone(),
            },
        };
        // registered first, then checked: `go_down` flips first, then cuts
        if !*self.up.borrow() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "the server went down",
            ));
        }
        Ok(conn)
    }
}

impl axum::serve::Listener for Listener {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Connection, SocketAddr) {
        loop {
            let up = *self.up.borrow_and_update();
            if !up {
                // a dead process holds no port
                self.inner = None;
                let closed = self.up.wait_for(|up| *up).await.is_err();
                if closed {
                    std::future::pending::<()>().await;
                }
                continue;
            }
            if self.inner.is_none() {
                match TcpListener::bind(self.addr).await {
                    Ok(l) => self.inner = Some(l),
                    Err(e) => {
                        tracing::warn!(addr = %self.addr, error = %e, "The Kubernetes emulator cannot listen again yet; retrying.");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                }
            }
            let Some(listener) = self.inner.as_ref() else {
                continue;
            };
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => match self.track(stream) {
                        Ok(conn) => return (conn, peer),
                        Err(e) => tracing::debug!(error = %e, "Connection dropped as it was accepted."),
                    },
                    // as axum's own listener does (out of file descriptors, say)
                    Err(e) => {
                        tracing::warn!(error = %e, "The Kubernetes emulator could not accept a connection.");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                _ = self.up.changed() => {}
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

/// Unregisters a connection when hyper drops it (closing the second handle,
/// so the socket closes with it).
#[derive(Debug)]
struct Tracked {
    id: u64,
    state: Arc<FaultState>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        lock(&self.state.connections).remove(&self.id);
    }
}

/// One accepted connection.
#[derive(Debug)]
pub(crate) struct Connection {
    stream: TcpStream,
    _tracked: Tracked,
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
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
    fn arrivals_are_counted_before_any_fault_answers_or_delays_them() {
        let f = Faults {
            state: Arc::new(FaultState::new(10)),
        };
        let before = f.count_arrivals(RequestMatch::any().verb("create"));
        f.fail_next(1, RequestMatch::any().verb("create"), 503);
        f.delay(RequestMatch::any(), Duration::from_secs(60));
        let evictions = f.count_arrivals(RequestMatch::any().path("/eviction"));
        let req = |verb: &str, path: &str| RequestAttrs {
            method: "POST".into(),
            verb: verb.into(),
            path: path.into(),
            ..RequestAttrs::default()
        };
        let (_, e) = f
            .state
            .decide(&req("create", "/api/v1/namespaces/a/pods/p/eviction"));
        assert_eq!(e.map(|e| e.code), Some(503));
        f.state.decide(&req("create", "/api/v1/namespaces/a/pods"));
        f.state.decide(&req("list", "/api/v1/pods"));
        assert_eq!((before.count(), evictions.count()), (2, 1));
        // nothing was answered yet as far as the log knows
        assert!(f.state.log.requests().is_empty());
    }

    /// `GET url`'s status through a fresh connection, or the connect error.
    async fn status_of(url: &str) -> Result<u16, String> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        match client.get(url).send().await {
            Ok(r) => Ok(r.status().as_u16()),
            Err(e) => Err(format!("{e:?}")),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_that_goes_down_refuses_connections_and_cuts_open_ones_until_it_comes_back() {
        let emu = crate::kube::Emulator::start().await.unwrap();
        let namespaces = format!("{}/api/v1/namespaces", emu.url());
        assert_eq!(status_of(&namespaces).await, Ok(200));
        let mut watch = reqwest::get(format!("{}/api/v1/pods?watch=true", emu.url()))
            .await
            .unwrap();
        assert_eq!(watch.status(), 200);
        // a connection that sits idle with nothing asked yet is cut too
        let idle = tokio::net::TcpStream::connect(emu.addr()).await.unwrap();
        let served_before = emu.request_count();

        emu.faults().go_down();
        let cut = tokio::time::timeout(Duration::from_secs(5), async {
            while let Ok(Some(_)) = watch.chunk().await {}
        })
        .await;
        assert!(cut.is_ok(), "the open watch was not cut");
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), async {
            use tokio::io::AsyncReadExt;
            let mut idle = idle;
            idle.read(&mut byte).await
        })
        .await
        .unwrap();
        assert!(matches!(read, Ok(0) | Err(_)), "idle connection: {read:?}");
        // new connections are refused, as on a host with nothing on the port
        let refused = || async {
            matches!(
                tokio::net::TcpStream::connect(emu.addr()).await,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
            )
            .then_some(())
        };
        crate::eventually(Duration::from_secs(5), "connections refused", refused)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(refused().await.is_some(), "it stays down");
        assert!(status_of(&namespaces).await.is_err());
        assert_eq!(emu.request_count(), served_before, "nothing was served");

        emu.faults().come_back();
        crate::eventually(Duration::from_secs(5), "served again", || async {
            (status_of(&namespaces).await == Ok(200)).then_some(())
        })
        .await
        .unwrap();
        // and down again, and back again
        emu.faults().go_down();
        crate::eventually(Duration::from_secs(5), "down again", refused)
            .await
            .unwrap();
        emu.faults().come_back();
        crate::eventually(Duration::from_secs(5), "back again", || async {
            (status_of(&namespaces).await == Ok(200)).then_some(())
        })
        .await
        .unwrap();
    }

    #[test]
    fn denials_are_worded_as_the_rbac_authorizer_words_them() {
        let user = "system:serviceaccount:heal8s:heal8s";
        let eviction = RequestAttrs {
            method: "POST".into(),
            verb: "create".into(),
            path: "/api/v1/namespaces/shop/pods/p/eviction".into(),
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
