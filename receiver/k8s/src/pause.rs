//! The pause ConfigMap: while `heal8s-pause` exists in heal8s's namespace,
//! heal8s is paused (every replica watches it, so the pause survives
//! restarts and failovers). See `receiver::pause` for the switch it feeds.

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::{WatchStreamExt, watcher};
use receiver_core::guard::Pause;
use tokio::sync::watch;

/// The ConfigMap that pauses heal8s while it exists (keys `reason`, `by`).
pub const PAUSE_CONFIGMAP: &str = "heal8s-pause";

/// The pause a `heal8s-pause` ConfigMap means: its `reason` and `by` keys,
/// since its creation.
pub fn of_configmap(cm: &ConfigMap) -> Pause {
    let data = cm.data.clone().unwrap_or_default();
    let cut = |k: &str| {
        data.get(k)
            .map(|v| receiver_core::text::one_line(v, 200))
            .unwrap_or_default()
    };
    Pause {
        source: "configmap".into(),
        by: cut("by"),
        reason: cut("reason"),
        since: cm
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or_else(jiff::Timestamp::now, |t| t.0),
    }
}

/// Watch the pause ConfigMap in `namespace` until `stop` flips, calling
/// `changed` when it appears, changes or goes. The watch retries with
/// backoff; while it cannot read, the last known state stays.
pub async fn watch(
    client: kube::Client,
    namespace: String,
    mut changed: impl FnMut(Option<Pause>) + Send,
    mut stop: watch::Receiver<bool>,
) {
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, &namespace);
    let cfg = watcher::Config::default().fields(&format!("metadata.name={PAUSE_CONFIGMAP}"));
    let stream = watcher::watcher(api, cfg).default_backoff();
    futures::pin_mut!(stream);
    // what the current (re)list found, applied when it is complete
    let mut listed: Option<Pause> = None;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            ev = stream.next() => match ev {
                None => break,
                Some(Ok(watcher::Event::Init)) => listed = None,
                Some(Ok(watcher::Event::InitApply(cm))) => listed = Some(of_configmap(&cm)),
                Some(Ok(watcher::Event::InitDone)) => changed(listed.take()),
                Some(Ok(watcher::Event::Apply(cm))) => changed(Some(of_configmap(&cm))),
                Some(Ok(watcher::Event::Delete(_))) => changed(None),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, configmap = PAUSE_CONFIGMAP, "Cannot watch the pause ConfigMap; retrying with backoff (the last known pause state stays).");
                }
            },
        }
    }
}
