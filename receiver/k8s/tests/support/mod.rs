//! What the receiver-k8s integration tests share: an emulated cluster with
//! heal8s's own clients (built as the service builds them), signals and
//! plans built as the service builds them (an Alertmanager payload parsed,
//! a route of a policy), and the Events heal8s left. No assertions here.

// each test file uses its own part of this module
#![allow(dead_code)]

use std::time::Duration;

use receiver_core::{Plan, Policy, Signal};
use receiver_k8s::client::ClientSettings;
use receiver_k8s::{Clients, KubeExecutor, KubeExecutorSettings};
use serde_json::{Value, json};
use testkit::kube::{Controller, Emulator, PlayedControllers};

/// The replica name the tests' clients and Events carry.
pub const INSTANCE: &str = "heal8s-test-0";

/// heal8s's own namespace in these tests (records of cluster-scoped targets).
pub const OWN_NAMESPACE: &str = "heal8s";

/// An emulated cluster and heal8s's clients for it.
pub struct Cluster {
    pub emu: Emulator,
    pub clients: Clients,
    played: Option<PlayedControllers>,
}

impl Cluster {
    /// A cluster with namespaces `shop` and `heal8s`; no controllers played.
    pub async fn new() -> Cluster {
        let emu = Emulator::start().await.unwrap();
        let clients = Clients::from_config(
            emu.config().await.unwrap(),
            &ClientSettings::for_instance(INSTANCE),
        )
        .unwrap();
        let c = Cluster {
            emu,
            clients,
            played: None,
        };
        for ns in ["shop", OWN_NAMESPACE] {
            c.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
        }
        c
    }

    /// The same cluster, playing `controllers` in the background (the
    /// kubelets of Ready nodes confirm graceful deletions; the namespace
    /// controller empties and finalizes terminating namespaces).
    pub fn playing(mut self, controllers: &[Controller]) -> Cluster {
        self.played = Some(self.emu.play(controllers));
        self
    }

    /// Store `obj` (a fixture's JSON); the object as stored, with its UID.
    pub fn create(&self, obj: Value) -> Value {
        self.emu.create(obj).unwrap()
    }

    /// One object, if it exists.
    pub fn get(&self, api_version: &str, kind: &str, ns: &str, name: &str) -> Option<Value> {
        self.emu.get(api_version, kind, ns, name)
    }

    /// A pod of namespace `shop`.
    pub fn pod(&self, name: &str) -> Option<Value> {
        self.get("v1", "Pod", "shop", name)
    }

    /// A node.
    pub fn node(&self, name: &str) -> Option<Value> {
        self.get("v1", "Node", "", name)
    }

    /// Every events.k8s.io/v1 Event, in every namespace.
    pub fn events(&self) -> Vec<Value> {
        self.emu.list("events.k8s.io/v1", "Event", "")
    }

    /// The reasons of the Events about the object named `name`, oldest first.
    pub fn event_reasons(&self, name: &str) -> Vec<String> {
        self.events()
            .iter()
            .filter(|e| e["regarding"]["name"] == name)
            .filter_map(|e| e["reason"].as_str().map(str::to_string))
            .collect()
    }

    /// The requests answered so far whose path ends with `suffix`, as (method, query, status).
    pub fn requests_to(&self, suffix: &str) -> Vec<(String, String, u16)> {
        self.emu
            .requests()
            .into_iter()
            .filter(|r| r.path.ends_with(suffix))
            .map(|r| (r.method, r.query, r.status))
            .collect()
    }

    /// Install the Remediation CRD the chart ships, as `kubectl apply` of
    /// `charts/heal8s/crds/` would: only then is the record type served.
    pub fn install_remediation_crd(&self) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../charts/heal8s/crds/remediations.heal8s.io.yaml");
        let crd: Value = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        self.create(crd);
    }

    /// A janitor executor over this cluster's clients.
    pub fn executor(&self, settings: KubeExecutorSettings) -> KubeExecutor {
        KubeExecutor::new(self.clients.clone(), settings)
    }
}

/// Executor settings for tests: evictions retried every 100 ms for 600 ms,
/// the finalizer gate at its default 5 minutes, Events as [`INSTANCE`].
pub fn settings() -> KubeExecutorSettings {
    KubeExecutorSettings {
        eviction_retry: Duration::from_millis(100),
        eviction_timeout: Duration::from_millis(600),
        instance: Some(INSTANCE.into()),
        ..KubeExecutorSettings::default()
    }
}

/// The firing alert with `labels`, as heal8s reads it from an Alertmanager
/// webhook (a `uid` label names the object's UID, as kube-state-metrics adds it).
pub fn alert(labels: &[(&str, &str)]) -> Signal {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let body = json!({
        "version": "4", "status": "firing", "receiver": "heal8s", "groupKey": "{}:{}",
        "alerts": [{"status": "firing", "labels": labels, "annotations": {},
                    "startsAt": jiff::Timestamp::now().to_string(),
                    "endsAt": "0001-01-01T00:00:00Z"}],
    });
    let payload = receiver_core::alertmanager::parse(&serde_json::to_vec(&body).unwrap()).unwrap();
    Signal::from_payload(&payload).remove(0)
}

/// The policy `yaml`, validated as at startup.
pub fn policy(yaml: &str) -> Policy {
    Policy::from_yaml(yaml).unwrap_or_else(|e| panic!("{e}"))
}

/// The plan route `route` of policy `yaml` makes for `signal`.
pub fn plan(yaml: &str, route: &str, signal: &Signal) -> Plan {
    let p = policy(yaml);
    let r = p
        .routes
        .iter()
        .find(|r| r.name == route)
        .unwrap_or_else(|| panic!("no route {route}"));
    Plan::build(signal, r).unwrap()
}

/// Whether `obj` is terminating (deletion requested, not finished).
pub fn terminating(obj: &Value) -> bool {
    obj["metadata"]["deletionTimestamp"].is_string()
}
