//! Watch streams: newline-delimited `WatchEvent` JSON fed from the store's
//! change feed, with history replay, selectors, bookmarks, streaming-list
//! initial events, `timeoutSeconds`, 410 Gone for expired resourceVersions,
//! and closing on demand. One spawned task per open watch.

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
                _ = tx.closed() => return,
            }
        }
    });
    Body::from_stream(ReceiverStream::new(rx))
}
