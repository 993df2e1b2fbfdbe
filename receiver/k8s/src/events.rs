//! Kubernetes Events on the objects heal8s acts on (events.k8s.io/v1 through
//! kube-runtime's recorder). An event that cannot be written is logged, never
//! fatal: the action already happened.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use receiver_core::Target;

/// Publishes events as `heal8s`.
#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

impl Events {
    /// A publisher reporting as controller `heal8s`, instance `instance` (the pod name).
    pub fn new(client: kube::Client, instance: Option<String>) -> Events {
        Events {
            recorder: Recorder::new(
                client,
                Reporter {
                    controller: "heal8s".into(),
                    instance,
                },
            ),
        }
    }

    /// Publish `reason` (PascalCase) with `note` on the object `reference` names.
    pub async fn publish_on(
        &self,
        reference: &ObjectReference,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let ev = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_string(),
            note: Some(note.chars().take(1000).collect()),
            action: action.to_string(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, reference).await {
            tracing::warn!(error = %e, reason, object = ?reference.name, "Could not record a Kubernetes Event.");
        }
    }

    /// Publish `reason` (PascalCase) with `note` on `target`.
    pub async fn publish(
        &self,
        target: &Target,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let reference = ObjectReference {
            api_version: Some(target.kind.api_version()),
            kind: Some(target.kind.kind_name().to_string()),
            name: Some(target.name.clone()),
            namespace: target.namespace.clone(),
            uid: target.uid.clone(),
            ..ObjectReference::default()
        };
        self.publish_on(&reference, warning, reason, action, note)
            .await;
    }
}
