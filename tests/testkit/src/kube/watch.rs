//! Watch streams: newline-delimited `WatchEvent` JSON fed from the store's
//! change feed, with history replay, selectors, bookmarks, streaming-list
//! initial events, `timeoutSeconds`, 410 Gone for expired resourceVersions
//! (on resuming, and on open watches when faults expire them), and closing
//! on demand. One spawned task per open watch.
//!
//! A 410 comes as the real API server sends it once a watch has started:
//! the answer is 200, and its last event is an `ERROR` carrying a `Status`
//! with code 410 and reason `Expired` (the only event when resuming from a
//! too old resourceVersion), never a 410 answer to the request (the cacher
//! answers a too old resourceVersion with an error watcher, as the
//! etcd-backed watch does; kube-rs's watcher re-lists on it).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use serde_json::json;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::Shared;
use super::error::ApiError;
use super::present::{self, Shape};
use super::resources::ResourceDef;
use super::selectors::{FieldSelector, LabelSelector};
use super::store::{ChangeKind, WatchFrom, filter_change};
use super::stored::Stored;

/// What a watch request asked for.
#[derive(Debug, Clone)]
pub(crate) struct WatchRequest {
    pub def: ResourceDef,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub from: WatchFrom,
    pub bookmarks: bool,
    pub send_initial_events: bool,
    pub timeout: Option<Duration>,
    /// `Full` or `Metadata` (PartialObjectMetadata events).
    pub shape: Shape,
}

fn kind_name(k: ChangeKind) -> &'static str {
    match k {
        ChangeKind::Added => "ADDED",
        ChangeKind::Modified => "MODIFIED",
        ChangeKind::Deleted => "DELETED",
    }
}

/// One event line around an already serialized object.
fn line(kind: &str, object: &str) -> Bytes {
    Bytes::from(format!("{{\"type\":\"{kind}\",\"object\":{object}}}\n"))
}

/// An event line for a stored object, shown in the watched version and shape.
fn event(kind: ChangeKind, def: &ResourceDef, obj: &Stored, shape: Shape) -> Bytes {
    line(kind_name(kind), &present::stored(def, obj, shape))
}

fn bookmark(def: &ResourceDef, rv: u64, initial_end: bool, shape: Shape) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end && let Some(m) = meta.as_object_mut() {
        m.insert(
            "annotations".into(),
            json!({"k8s.io/initial-events-end": "true"}),
        );
    }
    let obj = json!({"kind": def.kind, "apiVersion": def.api_version(), "metadata": meta});
    line("BOOKMARK", &present::object(def, &obj, shape))
}

/// What etcd's compaction makes the API server say on a watch it serves
/// from etcd (`interpretWatchError` in the etcd3 storage).
pub(crate) const COMPACTED: &str = "The resourceVersion for the provided watch is too old.";

/// An ERROR event carrying a 410 Gone `Status`.
fn gone(message: &str) -> Bytes {
    line(
        "ERROR",
        &ApiError::expired(message.to_string())
            .to_status()
            .to_string(),
    )
}

/// Start a watch; the body streams until timeout, client disconnect or `drop_watches`.
pub(crate) fn start(shared: &Arc<Shared>, req: WatchRequest) -> Body {
    let sub = shared.lock().subscribe(
        &req.def,
        req.namespace.as_deref(),
        &req.labels,
        &req.fields,
        req.from,
    );
    let mut stop = shared.faults.stop_watches.subscribe();
    stop.mark_unchanged();
    let mut expire = shared.faults.expire_watches.subscribe();
    expire.mark_unchanged();
    let interval = shared.options.bookmark_interval;
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    tokio::spawn(async move {
        let def = &req.def;
        let shape = req.shape;
        if let Some(msg) = sub.gone {
            let _ = tx.send(Ok(gone(&msg))).await;
            return;
        }
        for (kind, obj) in &sub.initial {
            if tx.send(Ok(event(*kind, def, obj, shape))).await.is_err() {
                return;
            }
        }
        if req.send_initial_events
            && tx
                .send(Ok(bookmark(def, sub.start_rv, true, shape)))
                .await
                .is_err()
        {
            return;
        }
        let mut last_rv = sub.start_rv;
        let mut live = sub.live;
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        let deadline = req.timeout.map(|t| tokio::time::Instant::now() + t);
        let timeout = async move {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(timeout);
        let storage = def.storage();
        loop {
            tokio::select! {
                r = live.recv() => match r {
                    Ok(c) => {
                        if c.rv <= last_rv {
                            continue;
                        }
                        last_rv = c.rv;
                        if c.storage != storage
                            || req.namespace.as_deref().is_some_and(|ns| ns != c.namespace)
                        {
                            continue;
                        }
                        if let Some((kind, obj)) = filter_change(&c, &req.labels, &req.fields)
                            && tx.send(Ok(event(kind, def, &obj, shape))).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = tx
                            .send(Ok(gone(&format!("too old resource version: {last_rv} (watch fell behind)"))))
                            .await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = ticker.tick(), if req.bookmarks => {
                    if tx.send(Ok(bookmark(def, last_rv, false, shape))).await.is_err() {
                        return;
                    }
                }
                _ = &mut timeout => return,
                _ = stop.changed() => return,
                _ = expire.changed() => {
                    let _ = tx.send(Ok(gone(COMPACTED))).await;
                    return;
                }
                _ = tx.closed() => return,
            }
        }
    });
    Body::from_stream(ReceiverStream::new(rx))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use std::time::Duration;

    use serde_json::{Value, json};

    use crate::kube::Emulator;

    /// Every event line of a watch body, read until it ends.
    async fn read_to_end(mut r: reqwest::Response) -> Vec<Value> {
        let mut text = String::new();
        let read = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(chunk) = r.chunk().await.unwrap() {
                text.push_str(std::str::from_utf8(&chunk).unwrap());
            }
        })
        .await;
        assert!(read.is_ok(), "the watch did not end; so far: {text}");
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn expired_status(event: &Value, message: &str) {
        assert_eq!(event["type"], "ERROR", "{event}");
        assert_eq!(
            event["object"],
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": message, "reason": "Expired", "code": 410}),
        );
    }

    #[tokio::test]
    async fn an_expired_watch_gets_a_410_expired_error_event_then_ends() {
        let emu = Emulator::start().await.unwrap();
        let w = reqwest::get(format!(
            "{}/api/v1/namespaces/default/configmaps?watch=true",
            emu.url()
        ))
        .await
        .unwrap();
        assert_eq!(w.status(), 200, "a watch that started is a 200");
        emu.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}))
            .unwrap();
        // the ADDED event is sent before the watch is expired
        tokio::time::sleep(Duration::from_millis(200)).await;
        emu.faults().expire_watches();
        let events = read_to_end(w).await;
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[0]["type"], "ADDED");
        expired_status(&events[1], super::COMPACTED);
        // a watch opened afterwards is not expired
        let rv = emu.resource_version();
        let w = reqwest::get(format!(
            "{}/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=1",
            emu.url()
        ))
        .await
        .unwrap();
        assert!(read_to_end(w).await.is_empty());
    }

    #[tokio::test]
    async fn resuming_from_a_compacted_resource_version_is_a_200_with_a_410_error_event() {
        let emu = Emulator::start().await.unwrap();
        let old = emu.resource_version();
        emu.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}))
            .unwrap();
        emu.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}}))
            .unwrap();
        emu.compact_history();
        let w = reqwest::get(format!(
            "{}/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={old}",
            emu.url()
        ))
        .await
        .unwrap();
        assert_eq!(w.status(), 200);
        let events = read_to_end(w).await;
        assert_eq!(events.len(), 1, "{events:?}");
        expired_status(
            &events[0],
            &format!(
                "too old resource version: {old} ({})",
                emu.resource_version() + 1
            ),
        );
    }
}
