//! The pause switch: a person pauses heal8s through its API (`heal8s pause`,
//! `POST /pause`) or, in a cluster, with the ConfigMap `heal8s-pause` in
//! heal8s's namespace (which every replica sees, so it survives restarts and
//! failovers). While paused, the guard refuses every change (`paused`).
//!
//! Owns: the two sources and the pause they make together (the ConfigMap's
//! first: it is the durable one). Must not decide anything: the guard does.

use std::sync::Mutex;

use receiver_core::guard::Pause;
use tokio::sync::watch;

pub use receiver_k8s::pause::PAUSE_CONFIGMAP;

/// The pause sources, and the pause in force.
#[derive(Debug)]
pub struct Switch {
    api: Mutex<Option<Pause>>,
    configmap: Mutex<Option<Pause>>,
    tx: watch::Sender<Option<Pause>>,
    /// This switch's part of `heal8s_paused`, set as the pause changes.
    gauge: Option<crate::metrics::Level>,
}

impl Default for Switch {
    fn default() -> Self {
        Switch {
            api: Mutex::new(None),
            configmap: Mutex::new(None),
            tx: watch::Sender::new(None),
            gauge: None,
        }
    }
}

impl Switch {
    /// A switch that shows its state in `gauge` (`heal8s_paused`).
    pub fn with_gauge(gauge: &prometheus_client::metrics::gauge::Gauge) -> Switch {
        Switch {
            gauge: Some(crate::metrics::Level::of(gauge)),
            ..Switch::default()
        }
    }

    fn publish(&self) {
        let api = self.api.lock().ok().and_then(|p| p.clone());
        let cm = self.configmap.lock().ok().and_then(|p| p.clone());
        let now = cm.or(api);
        if let Some(g) = &self.gauge {
            g.set(i64::from(now.is_some()));
        }
        self.tx.send_if_modified(|cur| {
            if *cur == now {
                false
            } else {
                *cur = now;
                true
            }
        });
    }

    /// Pause (or resume, with `None`) through the API.
    pub fn set_api(&self, pause: Option<Pause>) {
        if let Ok(mut p) = self.api.lock() {
            *p = pause;
        }
        self.publish();
    }

    /// The pause ConfigMap appeared (`Some`) or went (`None`).
    pub fn set_configmap(&self, pause: Option<Pause>) {
        if let Ok(mut p) = self.configmap.lock() {
            *p = pause;
        }
        self.publish();
    }

    /// The pause in force.
    pub fn current(&self) -> Option<Pause> {
        self.tx.borrow().clone()
    }

    /// Whether it is paused only through the API (a resume through the API
    /// cannot end a ConfigMap's pause).
    pub fn held_by_configmap(&self) -> bool {
        self.configmap.lock().map(|p| p.is_some()).unwrap_or(false)
    }

    /// A receiver of changes, for the worker.
    pub fn subscribe(&self) -> watch::Receiver<Option<Pause>> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pause(source: &str) -> Option<Pause> {
        Some(Pause {
            source: source.into(),
            by: String::new(),
            reason: String::new(),
            since: jiff::Timestamp::from_second(1_800_000_000).unwrap(),
        })
    }

    #[test]
    fn the_configmap_pause_outlives_an_api_resume() {
        let s = Switch::default();
        let mut rx = s.subscribe();
        assert!(s.current().is_none());
        s.set_api(pause("api"));
        assert!(rx.has_changed().unwrap());
        assert_eq!(rx.borrow_and_update().as_ref().unwrap().source, "api");
        s.set_configmap(pause("configmap"));
        assert_eq!(s.current().unwrap().source, "configmap");
        s.set_api(None);
        assert_eq!(s.current().unwrap().source, "configmap", "still paused");
        assert!(s.held_by_configmap());
        s.set_configmap(None);
        assert!(s.current().is_none());
        // the same state again is no change
        let _ = rx.borrow_and_update();
        s.set_api(None);
        assert!(!rx.has_changed().unwrap());
    }
}
