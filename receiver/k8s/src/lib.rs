//! Kubernetes IO for heal8s: the live-fact source (re-read the target, resolve
//! its owner, re-check the condition), the janitor executors, Kubernetes
//! Events on targets, and the detector watchers that feed signals in.
//!
//! Decisions stay in receiver-core; this crate only reads, writes and watches.

pub mod cache;
pub mod client;
pub mod discovery;
pub mod drain;
pub mod events;
pub mod executor;
pub mod facts;
pub mod holds;
pub mod leader;
pub mod nspolicy;
pub mod pause;
pub mod record;
pub mod resources;
pub mod schema;
pub mod standdown;
pub mod verify;
pub mod watch;

pub use client::Clients;
pub use executor::{KubeExecutor, KubeExecutorSettings};
pub use facts::KubeFacts;

/// Annotation heal8s puts on a node it is remediating (see `receiver_core::detect::node`).
pub const NODE_REMEDIATION_ANNOTATION: &str = receiver_core::detect::node::REMEDIATION_ANNOTATION;

/// Annotation heal8s puts on a node it cordoned itself (see `receiver_core::detect::node`).
pub const NODE_CORDONED_ANNOTATION: &str = receiver_core::detect::node::CORDONED_ANNOTATION;

/// What failed talking to Kubernetes.
#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    #[error("Kubernetes API error: {0}")]
    Api(#[source] kube::Error),
    #[error("no Kubernetes configuration: {0}")]
    Config(String),
    #[error("resource type {0} is not served by the API server")]
    UnknownResource(String),
    #[error("{0}")]
    Refused(String),
    #[error("timed out: {0}")]
    Timeout(String),
}

impl K8sError {
    /// A bounded label for metrics and outcomes.
    pub fn category(&self) -> &'static str {
        match self {
            K8sError::Api(_) => "kube_api",
            K8sError::Config(_) => "config",
            K8sError::UnknownResource(_) => "unknown_resource",
            K8sError::Refused(_) => "refused",
            K8sError::Timeout(_) => "timeout",
        }
    }
}

impl From<kube::Error> for K8sError {
    fn from(e: kube::Error) -> Self {
        K8sError::Api(e)
    }
}

impl From<K8sError> for receiver_core::ActError {
    fn from(e: K8sError) -> Self {
        receiver_core::ActError {
            category: e.category(),
            message: e.to_string(),
        }
    }
}

/// Whether `e` is the API's 404: a `NotFound` Status, or any 404 (a real
/// API server answers a path it does not serve, such as an API group that
/// is not installed, with a plain-text `404 page not found`, which kube
/// reads as a Status with reason "Failed to parse error data").
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_not_found() || s.code == 404)
}

/// The API's status code for `e`, if it is an API error.
pub fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}
