//! The cluster summary `serve` logs once it is connected: what cluster this
//! is (version, platform, OpenShift, KubeVirt/CDI), how heal8s reaches it
//! (API host, kubeconfig context and cluster, or in-cluster), its nodes, and
//! what heal8s will do there (profile, dry-run, watched namespaces, features,
//! detector thresholds, the custom resources watched and how many objects
//! of each exist). A few INFO lines in text logs; exactly one event, every
//! item a field, in JSON logs.
//!
//! Owns: gathering and wording the summary. Its reads run concurrently and
//! within [`WAIT`]; what does not answer in time reads `unknown`. Must not
//! hold serving up (serve spawns it) nor change anything.

use std::path::PathBuf;
use std::time::Duration;

use receiver_core::Policy;
use receiver_core::detect::{Detectors, Watched};
use receiver_k8s::Clients;
use receiver_k8s::discovery::{self, Connection, NodeCount, Platform, ServerVersion, TypeCount};
use receiver_k8s::resources::Resources;
use serde_json::Value;

use crate::telemetry::LogFormat;

/// How long the summary's reads may take, all together.
pub const WAIT: Duration = Duration::from_secs(3);

/// What the cluster answered; `None` where it did not (in time).
#[derive(Debug, Clone, Default)]
pub struct ClusterFacts {
    pub connection: Option<Connection>,
    pub version: Option<ServerVersion>,
    pub platform: Option<Platform>,
    pub nodes: Option<NodeCount>,
    /// Each watched custom resource type, by name, and what it holds.
    pub custom: Vec<(String, Option<TypeCount>)>,
}

/// The summary: the cluster's facts (`None` with `--no-cluster`) and the policy's.
#[derive(Debug, Clone)]
pub struct Summary {
    pub cluster: Option<ClusterFacts>,
    pub profile: String,
    pub dry_run: bool,
    /// Names of the features on, in policy spelling.
    pub features: Vec<String>,
    /// Each detector on, with its thresholds (policy keys and values).
    pub detectors: Vec<(String, Vec<(String, String)>)>,
    /// Where pods are healed (`detectors.pods.namespaces`; empty: all).
    pub pod_namespaces: Vec<String>,
    /// The namespaces watched for staleness (`None`: the detector is off).
    pub stale_namespaces: Option<Vec<String>>,
    /// The namespaces never deleted as stale.
    pub excluded_namespaces: Vec<String>,
}

/// Log the summary of a connected `serve` (spawned: it never delays serving).
pub async fn log_connected(
    clients: Clients,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    policy: Policy,
    format: LogFormat,
) {
    let facts = gather(&clients, kubeconfig, context, &policy).await;
    log(&Summary::of(&policy, Some(facts)), format);
}

/// Log the summary of a `serve --no-cluster`.
pub fn log_offline(policy: &Policy, format: LogFormat) {
    log(&Summary::of(policy, None), format);
}

/// The optional types the enabled detectors watch, each once.
fn watched_types(detectors: &Detectors) -> Vec<Watched> {
    let mut out: Vec<Watched> = Vec::new();
    for d in detectors.enabled() {
        for w in d.watches() {
            if matches!(w, Watched::Kind(_) | Watched::Resource(_)) && !out.contains(&w) {
                out.push(w);
            }
        }
    }
    out
}

/// Ask the cluster, every question at once, none for longer than [`WAIT`].
pub async fn gather(
    clients: &Clients,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    policy: &Policy,
) -> ClusterFacts {
    let deadline = tokio::time::Instant::now() + WAIT;
    let client = clients.main.clone();
    let connection = async {
        discovery::config(kubeconfig.as_deref(), context.as_deref())
            .await
            .map(|(_, c)| c)
            .map_err(|e| tracing::debug!(error = %e, "The summary cannot describe the connection."))
            .ok()
    };
    let version = async {
        answered(
            "version",
            tokio::time::timeout_at(deadline, discovery::version(&client)).await,
        )
    };
    let platform = async {
        answered(
            "API groups",
            tokio::time::timeout_at(deadline, discovery::groups(&client)).await,
        )
        .map(|g| Platform::of(&g))
    };
    let nodes = async {
        answered(
            "nodes",
            tokio::time::timeout_at(deadline, discovery::count_nodes(&client)).await,
        )
    };
    let watched = watched_types(&policy.detectors);
    let resources = Resources::new(client.clone());
    let counts: Vec<_> = watched
        .iter()
        .map(|w| {
            let (r, c, w) = (resources.clone(), client.clone(), w.clone());
            tokio::spawn(async move {
                tokio::time::timeout_at(deadline, discovery::count_watched(&r, &c, &w)).await
            })
        })
        .collect();
    let custom = async {
        let mut out = Vec::new();
        for (w, task) in watched.iter().zip(counts) {
            let name = discovery::watched_name(w);
            let count = task.await.ok().and_then(|r| answered(&name, r));
            out.push((name, count));
        }
        out
    };
    let (connection, version, platform, nodes, custom) =
        tokio::join!(connection, version, platform, nodes, custom);
    ClusterFacts {
        connection,
        version,
        platform,
        nodes,
        custom,
    }
}

/// The value of an answer in time, else `None` (the reason at debug level).
fn answered<T>(
    what: &str,
    r: Result<Result<T, receiver_k8s::K8sError>, tokio::time::error::Elapsed>,
) -> Option<T> {
    match r {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            tracing::debug!(what, error = %e, "The summary could not read this.");
            None
        }
        Err(_) => {
            tracing::debug!(what, "The summary's read did not answer within {WAIT:?}.");
            None
        }
    }
}

/// A JSON value as a short text: strings bare, lists comma-separated.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(plain).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

impl Summary {
    /// The summary of `policy`, with the cluster's `facts`.
    pub fn of(policy: &Policy, facts: Option<ClusterFacts>) -> Summary {
        let features_json = serde_json::to_value(&policy.features).unwrap_or_default();
        // policy keys in alphabetical order (serde_json's maps are sorted)
        let features: Vec<String> = features_json
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(_, v)| v.as_bool() == Some(true))
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default();
        let all = serde_json::to_value(&policy.detectors).unwrap_or_default();
        let mut detectors = Vec::new();
        for key in Detectors::KEYS {
            let Some(settings) = all.get(*key).and_then(Value::as_object) else {
                continue;
            };
            if settings.get("enabled").and_then(Value::as_bool) != Some(true) {
                continue;
            }
            // lists (namespaces, resources) are said on their own lines
            let thresholds = settings
                .iter()
                .filter(|(k, v)| *k != "enabled" && !v.is_array())
                .map(|(k, v)| (k.clone(), plain(v)))
                .collect();
            detectors.push((key.to_string(), thresholds));
        }
        if policy.features.strain_eviction
            && let Some(relief) = all.get("strainRelief").and_then(Value::as_object)
        {
            detectors.push((
                "strainRelief".into(),
                relief.iter().map(|(k, v)| (k.clone(), plain(v))).collect(),
            ));
        }
        let ns = &policy.detectors.namespaces;
        Summary {
            cluster: facts,
            profile: policy.profile.as_str().to_string(),
            dry_run: policy.guard.dry_run,
            features,
            detectors,
            pod_namespaces: policy.detectors.pods.namespaces.clone(),
            stale_namespaces: ns.enabled.then(|| ns.watch.clone()),
            excluded_namespaces: ns.exclude.clone(),
        }
    }

    /// The text lines.
    pub fn lines(&self) -> Vec<String> {
        let unknown = || "unknown".to_string();
        let list = |l: &[String], empty: &str| {
            if l.is_empty() {
                empty.to_string()
            } else {
                l.join(", ")
            }
        };
        let mut out = Vec::new();
        match &self.cluster {
            None => out.push(
                "Cluster: none (--no-cluster): no detectors run and every allowed remediation is simulated."
                    .to_string(),
            ),
            Some(c) => {
                let (version, os) = c.version.as_ref().map_or_else(
                    || (unknown(), unknown()),
                    |v| (v.git_version.clone(), v.platform.clone()),
                );
                let (distribution, addons) = c.platform.map_or_else(
                    || (unknown(), unknown()),
                    |p| {
                        let a: Vec<String> = p.addons().iter().map(|s| s.to_string()).collect();
                        (p.distribution().to_string(), list(&a, "none"))
                    },
                );
                out.push(format!(
                    "Cluster: Kubernetes {version} ({os}), distribution {distribution}, add-ons: {addons}."
                ));
                let api = c
                    .connection
                    .as_ref()
                    .map_or_else(unknown, ToString::to_string);
                let nodes = c.nodes.map_or_else(unknown, |n| {
                    format!("{} ({} ready)", n.total, n.ready)
                });
                out.push(format!("API: {api}; nodes: {nodes}."));
            }
        }
        let stale = match &self.stale_namespaces {
            None => "off".to_string(),
            Some(w) => list(w, "none"),
        };
        out.push(format!(
            "Policy: profile {}, dry-run {}; pods healed in: {}; namespaces watched for staleness: {stale} (excluded: {}).",
            self.profile,
            if self.dry_run { "on" } else { "off" },
            list(&self.pod_namespaces, "all namespaces"),
            list(&self.excluded_namespaces, "none"),
        ));
        let detectors: Vec<String> = self
            .detectors
            .iter()
            .map(|(name, t)| {
                let t: Vec<String> = t.iter().map(|(k, v)| format!("{k} {v}")).collect();
                if t.is_empty() {
                    name.clone()
                } else {
                    format!("{name} ({})", t.join(", "))
                }
            })
            .collect();
        out.push(format!(
            "Features on: {}; detectors on: {}.",
            list(&self.features, "none"),
            list(&detectors, "none")
        ));
        if let Some(c) = &self.cluster {
            let custom: Vec<String> = c
                .custom
                .iter()
                .map(|(name, count)| {
                    format!("{name}: {}", count.map_or_else(unknown, |n| n.to_string()))
                })
                .collect();
            out.push(format!(
                "Custom resources watched: {}.",
                list(&custom, "none")
            ));
        }
        out
    }

    /// What did not answer in time, by name.
    pub fn unknown(&self) -> Vec<&'static str> {
        let Some(c) = &self.cluster else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if c.connection.is_none() {
            out.push("connection");
        }
        if c.version.is_none() {
            out.push("version");
        }
        if c.platform.is_none() {
            out.push("api_groups");
        }
        if c.nodes.is_none() {
            out.push("nodes");
        }
        if c.custom.iter().any(|(_, n)| n.is_none()) {
            out.push("custom_resources");
        }
        out
    }

    /// The watched custom resources as a JSON object: name to object
    /// count, or `"not installed"`, `"not served"`, `"unknown"`.
    pub fn custom_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        for (name, count) in self.cluster.iter().flat_map(|c| &c.custom) {
            let v = match count {
                Some(TypeCount::Objects(n)) => Value::from(*n),
                Some(other) => Value::from(other.to_string()),
                None => Value::from("unknown"),
            };
            m.insert(name.clone(), v);
        }
        Value::Object(m)
    }

    /// The detectors on and their thresholds as a JSON object.
    pub fn detectors_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        for (name, t) in &self.detectors {
            let inner: serde_json::Map<String, Value> = t
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                .collect();
            m.insert(name.clone(), Value::Object(inner));
        }
        Value::Object(m)
    }
}

/// Log `s`: INFO lines as text, or one event with every item a field.
pub fn log(s: &Summary, format: LogFormat) {
    if format == LogFormat::Text {
        for line in s.lines() {
            tracing::info!("{line}");
        }
        return;
    }
    let c = s.cluster.as_ref();
    let version = c.and_then(|c| c.version.as_ref());
    let platform = c.and_then(|c| c.platform);
    let connection = c.and_then(|c| c.connection.as_ref());
    let nodes = c.and_then(|c| c.nodes);
    let addons = platform.map(|p| p.addons().join(","));
    let kubeconfig =
        connection.and_then(|c| c.kubeconfig.as_ref().map(|p| p.display().to_string()));
    tracing::info!(
        no_cluster = c.is_none(),
        kubernetes_version = version.map(|v| v.git_version.as_str()),
        platform = version.map(|v| v.platform.as_str()),
        distribution = platform.map(|p| p.distribution()),
        openshift = platform.map(|p| p.openshift),
        kubevirt = platform.map(|p| p.kubevirt),
        cdi = platform.map(|p| p.cdi),
        addons = addons.as_deref(),
        api_host = connection.map(|c| c.api_host.as_str()),
        in_cluster = connection.map(|c| c.in_cluster),
        kubeconfig = kubeconfig.as_deref(),
        context = connection.and_then(|c| c.context.as_deref()),
        cluster = connection.and_then(|c| c.cluster.as_deref()),
        nodes_total = nodes.map(|n| n.total),
        nodes_ready = nodes.map(|n| n.ready),
        profile = %s.profile,
        dry_run = s.dry_run,
        features = %s.features.join(","),
        detectors = %s.detectors_json(),
        pod_namespaces = %s.pod_namespaces.join(","),
        stale_namespaces = s.stale_namespaces.as_ref().map(|w| w.join(",")).as_deref(),
        excluded_namespaces = %s.excluded_namespaces.join(","),
        custom_resources = %s.custom_json(),
        unknown = %s.unknown().join(","),
        "Cluster summary."
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;
    use receiver_core::detect::Profile;

    fn facts() -> ClusterFacts {
        ClusterFacts {
            connection: Some(Connection {
                api_host: "https://api.ci.example:6443".into(),
                kubeconfig: None,
                context: Some("ci".into()),
                cluster: Some("shared".into()),
                in_cluster: false,
            }),
            version: Some(ServerVersion {
                git_version: "v1.33.1".into(),
                platform: "linux/amd64".into(),
            }),
            platform: Some(Platform {
                openshift: false,
                kubevirt: true,
                cdi: true,
            }),
            nodes: Some(NodeCount { total: 3, ready: 2 }),
            custom: vec![
                (
                    "datavolumes.cdi.kubevirt.io/v1beta1".into(),
                    Some(TypeCount::Objects(4)),
                ),
                (
                    "widgets.example.com/v1".into(),
                    Some(TypeCount::GroupNotInstalled),
                ),
                ("slow.example.com/v1".into(), None),
            ],
        }
    }

    #[test]
    fn the_summary_says_what_the_cluster_is_and_what_heal8s_does_there() {
        let policy = Policy::builtin(Profile::TestCluster).unwrap();
        let s = Summary::of(&policy, Some(facts()));
        let text = s.lines().join("\n");
        for want in [
            "Kubernetes v1.33.1 (linux/amd64), distribution Kubernetes, add-ons: KubeVirt, CDI.",
            "API: https://api.ci.example:6443, kubeconfig context ci (cluster shared); nodes: 3 (2 ready).",
            "profile test-cluster, dry-run off",
            "pods healed in: all namespaces",
            "namespaces watched for staleness: test-*, e2e-*",
            "Features on: cleanupResources, deleteNamespaces, drainNodes, healPods, removeFinalizers;",
            "restartThreshold 3",
            "datavolumes.cdi.kubevirt.io/v1beta1: 4 objects",
            "widgets.example.com/v1: not installed",
            "slow.example.com/v1: unknown",
        ] {
            assert!(text.contains(want), "{want:?} missing from:\n{text}");
        }
        assert_eq!(s.unknown(), vec!["custom_resources"]);
        assert_eq!(
            s.custom_json(),
            serde_json::json!({"datavolumes.cdi.kubevirt.io/v1beta1": 4,
                "widgets.example.com/v1": "not installed", "slow.example.com/v1": "unknown"})
        );
        assert_eq!(s.detectors_json()["pods"]["restartThreshold"], "3");
    }

    #[test]
    fn what_did_not_answer_reads_unknown() {
        let policy = Policy::builtin(Profile::Production).unwrap();
        let s = Summary::of(&policy, Some(ClusterFacts::default()));
        let text = s.lines().join("\n");
        assert!(
            text.contains(
                "Cluster: Kubernetes unknown (unknown), distribution unknown, add-ons: unknown."
            ),
            "{text}"
        );
        assert!(text.contains("API: unknown; nodes: unknown."), "{text}");
        assert!(
            text.contains("namespaces watched for staleness: off"),
            "{text}"
        );
        assert_eq!(
            s.unknown(),
            vec!["connection", "version", "api_groups", "nodes"]
        );
    }

    #[test]
    fn without_a_cluster_the_summary_says_so() {
        let policy = Policy::builtin(Profile::Production).unwrap();
        let s = Summary::of(&policy, None);
        let lines = s.lines();
        assert!(
            lines[0].starts_with("Cluster: none (--no-cluster)"),
            "{lines:?}"
        );
        assert!(!lines.iter().any(|l| l.starts_with("Custom resources")));
        assert!(s.unknown().is_empty());
    }
}
