//! The flags of heal8s's subcommands and their environment variables, and
//! turning them into settings (the policy with its overrides). Every flag
//! has an environment variable (HEAL8S_*) for container use.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use receiver_core::Policy;
use receiver_core::detect::Profile;
use receiver_core::duration::PromDuration;

use crate::telemetry::LogFormat;

/// Flags of `heal8s serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (webhook, health, metrics, policy, outcomes).
    #[arg(long, env = "HEAL8S_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// File holding the webhook bearer token (e.g. a mounted Secret).
    #[arg(long, env = "HEAL8S_WEBHOOK_TOKEN_FILE")]
    pub webhook_token_file: Option<PathBuf>,
    /// The webhook bearer token itself. Prefer the file or the environment variable:
    /// a command-line value is visible to other users of the machine.
    #[arg(long, env = "HEAL8S_WEBHOOK_TOKEN", hide_env_values = true)]
    pub webhook_token: Option<String>,
    /// Accept webhooks and serve /outcomes and /policy without a token. Only
    /// for local experiments.
    #[arg(long, env = "HEAL8S_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
    /// File holding a read-only bearer token: it reads /outcomes and /policy
    /// but cannot post alerts (a dashboard). The webhook token reads too.
    #[arg(long, env = "HEAL8S_READ_TOKEN_FILE")]
    pub read_token_file: Option<PathBuf>,
    /// The read-only token itself. Prefer the file or the environment variable.
    #[arg(long, env = "HEAL8S_READ_TOKEN", hide_env_values = true)]
    pub read_token: Option<String>,
    /// Remediation policy file (YAML). Without it the built-in default policy is used.
    #[arg(long, env = "HEAL8S_POLICY")]
    pub policy: Option<PathBuf>,
    /// Export one trace per signal over OTLP/HTTP (protobuf) to this base URL
    /// (`/v1/traces` is appended), e.g. `http://otel-collector:4318`. Without
    /// it, the standard OTEL_EXPORTER_OTLP_ENDPOINT or
    /// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT turns tracing on; with neither,
    /// nothing is exported (records and logs still name each trace id).
    #[arg(long, env = "HEAL8S_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Decide and record everything, change nothing (overrides the policy's guard.dryRun).
    #[arg(long, env = "HEAL8S_DRY_RUN")]
    pub dry_run: bool,
    /// This cluster's name: an alert whose cluster label (guard.clusterLabel)
    /// names another cluster, or any cluster while no name is set, is refused
    /// (overrides the policy's guard.clusterName).
    #[arg(long, env = "HEAL8S_CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// heal8s's own namespace; always protected.
    #[arg(long, env = "HEAL8S_NAMESPACE", default_value = "heal8s")]
    pub namespace: String,
    /// Largest accepted webhook body, in bytes.
    #[arg(long, env = "HEAL8S_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Largest label value of an alert, in bytes; a larger one gets 413.
    #[arg(long, env = "HEAL8S_MAX_LABEL_BYTES", default_value_t = 4 * 1024)]
    pub max_label_bytes: usize,
    /// Largest annotation value, generatorURL or groupKey of an alert, in bytes.
    #[arg(long, env = "HEAL8S_MAX_ANNOTATION_BYTES", default_value_t = 16 * 1024)]
    pub max_annotation_bytes: usize,
    /// Most labels, and most annotations, one alert may carry.
    #[arg(long, env = "HEAL8S_MAX_LABELS_PER_ALERT", default_value_t = 128)]
    pub max_labels_per_alert: usize,
    /// Most bytes one alert may carry in all (label and annotation names and
    /// values, generatorURL, fingerprint, the delivery's groupKey and receiver).
    #[arg(long, env = "HEAL8S_MAX_ALERT_BYTES", default_value_t = 64 * 1024)]
    pub max_alert_bytes: usize,
    /// How many alerts may wait in the work queue; beyond it webhooks get
    /// 503. Detectors' signals wait in a lane of their own, as large.
    #[arg(long, env = "HEAL8S_QUEUE_CAPACITY", default_value_t = 1024)]
    pub queue_capacity: usize,
    /// How many plans may wait in the backlog for their budget (or their
    /// turn). When full, a newcomer takes the place of the newest plan of the
    /// namespace holding the most; if that is its own, it is not kept
    /// (refused `backlog_full`) and runs when signalled again.
    #[arg(long, env = "HEAL8S_BACKLOG_CAPACITY", default_value_t = receiver_core::pipeline::DEFAULT_BACKLOG)]
    pub backlog_capacity: usize,
    /// How many plans may run at once (their facts read, checked, carried
    /// out). Two plans for one target or one workload never run together;
    /// every guard cap holds however many run.
    #[arg(long, env = "HEAL8S_MAX_RUNNING", default_value_t = receiver_core::pipeline::DEFAULT_MAX_RUNNING)]
    pub max_running: usize,
    /// How long a client may take to send a request head, and how long a
    /// keep-alive connection may sit idle, before heal8s closes it.
    #[arg(long, env = "HEAL8S_HEADER_TIMEOUT", default_value = "5s")]
    pub header_timeout: PromDuration,
    /// How long one HTTP request may take, body and answer included (408 after).
    #[arg(long, env = "HEAL8S_REQUEST_TIMEOUT", default_value = "30s")]
    pub request_timeout: PromDuration,
    /// At most this many open HTTP connections; never more than the
    /// process's open-file limit less 64. At the cap, the oldest connection
    /// with no request in progress is closed to make room.
    #[arg(long, env = "HEAL8S_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// How long shutdown may take to finish queued work.
    #[arg(long, env = "HEAL8S_SHUTDOWN_TIMEOUT", default_value = "25s")]
    pub shutdown_timeout: PromDuration,
    /// Kubeconfig file. Default: the in-cluster service account, then
    /// $KUBECONFIG or ~/.kube/config.
    #[arg(long, env = "HEAL8S_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Run without a cluster: no detectors, and every allowed remediation is
    /// simulated (recorded as dry_run).
    #[arg(long, env = "HEAL8S_NO_CLUSTER")]
    pub no_cluster: bool,
    /// How often discovery asks again about optional API groups that are not
    /// installed (KubeVirt, configured custom resources): a detector starts
    /// once its group is installed, without a restart. `0s` turns it off.
    #[arg(long, env = "HEAL8S_REDISCOVER_EVERY", default_value = "3m")]
    pub rediscover_every: PromDuration,
    /// How often an eviction refused by a PodDisruptionBudget (429) is retried.
    #[arg(long, env = "HEAL8S_EVICTION_RETRY", default_value = "5s")]
    pub eviction_retry: PromDuration,
    /// How long evict-pod keeps retrying a refused eviction.
    #[arg(long, env = "HEAL8S_EVICTION_TIMEOUT", default_value = "2m")]
    pub eviction_timeout: PromDuration,
    /// How long to watch a target recover after an action. Default: by cluster
    /// size, 180s up to 50 namespaces, 150s up to 200, 120s above.
    #[arg(long, env = "HEAL8S_VERIFY_TIMEOUT")]
    pub verify_timeout: Option<PromDuration>,
    /// How long a target must stay healthy, without a new container restart,
    /// before verification calls it recovered.
    #[arg(long, env = "HEAL8S_VERIFY_STABLE_FOR", default_value = "60s")]
    pub verify_stable_for: PromDuration,
    /// Succeeded Remediation records are deleted this long after they finished.
    /// Must be longer than the guard's cooldown, budget and escalation windows;
    /// `0s` turns retention off (records are kept; no delete right is needed).
    #[arg(long, env = "HEAL8S_RECORD_TTL", default_value = "7d")]
    pub record_ttl: PromDuration,
    /// Refusals are summed per reason, class and namespace into one Event per
    /// window of this length, and a breaker episode is reported closed once
    /// its class has been free this long.
    #[arg(long, env = "HEAL8S_REPORT_INTERVAL", default_value = "1m")]
    pub report_interval: PromDuration,
    /// Elect a leader through a Lease in --namespace: only the leader acts.
    /// Required when running more than one replica.
    #[arg(long, env = "HEAL8S_LEADER_ELECT")]
    pub leader_elect: bool,
    /// How long the lease is held without renewal (seconds).
    #[arg(long, env = "HEAL8S_LEASE_DURATION", default_value_t = 15)]
    pub lease_duration: u64,
    /// This replica's name, recorded on Kubernetes Events (the pod name).
    #[arg(long, env = "HEAL8S_POD_NAME")]
    pub pod_name: Option<String>,
    /// GitHub API base URL (`https://HOST/api/v3` for GitHub Enterprise Server).
    #[arg(
        long,
        env = "HEAL8S_GITHUB_API_URL",
        default_value = "https://api.github.com"
    )]
    pub github_api_url: String,
    /// GitHub App id (with --github-app-key-file): pull requests as the App.
    #[arg(long, env = "HEAL8S_GITHUB_APP_ID", requires = "github_app_key_file")]
    pub github_app_id: Option<u64>,
    /// The GitHub App's private key, PEM (a mounted Secret); never logged.
    #[arg(long, env = "HEAL8S_GITHUB_APP_KEY_FILE", requires = "github_app_id")]
    pub github_app_key_file: Option<PathBuf>,
    /// A file holding a personal access token, instead of an App (small setups).
    #[arg(
        long,
        env = "HEAL8S_GITHUB_TOKEN_FILE",
        conflicts_with = "github_app_id"
    )]
    pub github_token_file: Option<PathBuf>,
    #[command(flatten)]
    pub overrides: PolicyOverrides,
    #[command(flatten)]
    pub log: LogArgs,
}

/// Flags that override the policy (they mirror the k8s-healer seed's flags).
#[derive(Debug, Clone, Default, Args)]
pub struct PolicyOverrides {
    /// Built-in policy profile when no --policy is given: production or test-cluster.
    #[arg(long, env = "HEAL8S_PROFILE", value_parser = parse_profile)]
    pub profile: Option<Profile>,
    /// Namespaces (names or `*` patterns; `test-123` also covers `test-*`) whose pods
    /// are healed and which are watched for staleness. Comma-separated.
    #[arg(short = 'n', long, env = "HEAL8S_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Namespaces never deleted as stale (their pods are still healed). Comma-separated.
    #[arg(
        short = 'e',
        long,
        env = "HEAL8S_EXCLUDE_NAMESPACES",
        value_delimiter = ','
    )]
    pub exclude_namespaces: Vec<String>,
    /// Extra namespace patterns to watch, e.g. `app-*`. Comma-separated.
    #[arg(long, env = "HEAL8S_NAMESPACE_PATTERN", value_delimiter = ',')]
    pub namespace_pattern: Vec<String>,
    /// Age after which VMs, custom resources and watched namespaces are stale.
    #[arg(long, env = "HEAL8S_STALE_AGE")]
    pub stale_age: Option<PromDuration>,
    /// Cooldown between two remediations of one workload (guard.cooldown).
    #[arg(long, env = "HEAL8S_HEAL_COOLDOWN")]
    pub heal_cooldown: Option<PromDuration>,
    /// Custom resources to watch, `plural.group/version`, comma-separated (replaces the list).
    #[arg(long, env = "HEAL8S_CRD_RESOURCES", value_delimiter = ',')]
    pub crd_resources: Vec<String>,
    /// Allow removing stuck finalizers as a last resort.
    #[arg(long, env = "HEAL8S_CLEANUP_FINALIZERS")]
    pub cleanup_finalizers: bool,
    /// Percent of nodes under pressure from which the cluster counts as strained.
    #[arg(long, env = "HEAL8S_STRAIN_THRESHOLD")]
    pub strain_threshold: Option<u32>,
    /// Turn on the VM detector and cleanup of VMs and custom resources.
    #[arg(long, env = "HEAL8S_ENABLE_VM_CLEANUP")]
    pub enable_vm_cleanup: bool,
    /// Turn on the custom resource detector and cleanup-resource.
    #[arg(long, env = "HEAL8S_ENABLE_CRD_CLEANUP")]
    pub enable_crd_cleanup: bool,
    /// Turn on the namespace detector and delete-namespace.
    #[arg(long, env = "HEAL8S_ENABLE_NAMESPACE_CLEANUP")]
    pub enable_namespace_cleanup: bool,
    /// Allow delete-node.
    #[arg(long, env = "HEAL8S_ENABLE_NODE_DELETE")]
    pub enable_node_delete: bool,
    /// While the cluster is strained, evict broken non-test pods to free room.
    #[arg(long, env = "HEAL8S_ENABLE_STRAIN_EVICTION")]
    pub enable_strain_eviction: bool,
}

/// `production` or `test-cluster`.
pub fn parse_profile(s: &str) -> Result<Profile, String> {
    match s {
        "production" => Ok(Profile::Production),
        "test-cluster" => Ok(Profile::TestCluster),
        _ => Err(format!(
            "{s:?} is not a profile; expected production or test-cluster"
        )),
    }
}

impl PolicyOverrides {
    /// Load the policy (file, or the built-in one of --profile) and apply the flags.
    pub fn load(&self, path: Option<&std::path::Path>) -> anyhow::Result<Policy> {
        let mut p = match (path, self.profile) {
            (Some(_), Some(_)) => anyhow::bail!(
                "--profile selects a built-in policy; with --policy, set `profile:` in the file instead"
            ),
            (Some(path), None) => load_policy(Some(path))?,
            (None, profile) => Policy::builtin(profile.unwrap_or_default())?,
        };
        let mut problems = Vec::new();
        let patterns: Vec<String> = self
            .namespaces
            .iter()
            .chain(&self.namespace_pattern)
            .cloned()
            .collect();
        for (flag, list) in [
            ("--namespaces", &self.namespaces),
            ("--namespace-pattern", &self.namespace_pattern),
            ("--exclude-namespaces", &self.exclude_namespaces),
        ] {
            for v in list {
                if !receiver_core::detect::namespace::is_valid_pattern(v) {
                    problems.push(format!(
                        "{flag}: {v:?} is not a namespace name or `*` pattern"
                    ));
                }
            }
        }
        for r in &self.crd_resources {
            if let Err(e) = receiver_core::detect::ResourceSpec::parse(r) {
                problems.push(format!("--crd-resources: {e}"));
            }
        }
        if let Some(t) = self.strain_threshold
            && !(1..=100).contains(&t)
        {
            problems.push("--strain-threshold: must be between 1 and 100".into());
        }
        if let Some(a) = self.stale_age
            && a.get().as_secs() < 60
        {
            problems.push("--stale-age: must be at least 1m".into());
        }
        if !problems.is_empty() {
            anyhow::bail!("{}", problems.join("\n"));
        }
        p.detectors.apply(&receiver_core::detect::Overrides {
            namespaces: patterns,
            exclude_namespaces: self.exclude_namespaces.clone(),
            stale_age: self.stale_age,
            resources: self.crd_resources.clone(),
            strain_threshold_percent: self.strain_threshold,
        });
        if let Some(c) = self.heal_cooldown {
            p.guard.cooldown = c;
        }
        if self.cleanup_finalizers {
            p.features.remove_finalizers = true;
        }
        if self.enable_vm_cleanup {
            p.detectors.virtual_machines.enabled = true;
            p.features.cleanup_resources = true;
        }
        if self.enable_crd_cleanup {
            p.detectors.custom_resources.enabled = true;
            p.features.cleanup_resources = true;
        }
        if self.enable_namespace_cleanup {
            p.detectors.namespaces.enabled = true;
            p.features.delete_namespaces = true;
        }
        if self.enable_node_delete {
            p.features.delete_nodes = true;
        }
        if self.enable_strain_eviction {
            p.features.strain_eviction = true;
        }
        Ok(p)
    }
}

/// Logging flags.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log line format.
    #[arg(long, env = "HEAL8S_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `info,receiver=debug`.
    #[arg(long, env = "HEAL8S_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Write logs to this file (rotated by size) instead of stderr; `heal8s
    /// start` sets it (default there: heal8s.log in the state directory).
    #[arg(long, env = "HEAL8S_LOG_FILE")]
    pub log_file: Option<PathBuf>,
    /// Rotate the log file before it passes this size (`10MiB`, `512KiB`, bytes).
    #[arg(long, env = "HEAL8S_LOG_MAX_SIZE", default_value = "10MiB", value_parser = parse_size)]
    pub log_max_size: u64,
    /// How many rotated log files to keep (FILE.1 newest .. FILE.N).
    #[arg(long, env = "HEAL8S_LOG_KEEP", default_value_t = 5)]
    pub log_keep: u32,
}

/// A size: bytes, or a number with `KiB`, `MiB`, `GiB` (or `K`, `M`, `G`, `KB`, `MB`, `GB`: powers of 1024 too).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(digits);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("{s:?} is not a size; e.g. 10MiB, 512KiB or 4096")),
    };
    n.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .filter(|&b| b > 0)
        .ok_or_else(|| format!("{s:?} is not a size above 0; e.g. 10MiB, 512KiB or 4096"))
}

/// Output format of `heal8s plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// Flags of `heal8s plan`.
#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    /// An Alertmanager webhook payload (JSON), or `-` for standard input.
    #[arg(long)]
    pub alert: PathBuf,
    /// Policy file; the built-in default when absent.
    #[arg(long, env = "HEAL8S_POLICY")]
    pub policy: Option<PathBuf>,
    /// heal8s's own namespace; always protected.
    #[arg(long, env = "HEAL8S_NAMESPACE", default_value = "heal8s")]
    pub namespace: String,
    /// Plan as if in global dry-run.
    #[arg(long)]
    pub dry_run: bool,
    /// Plan as heal8s in this cluster would (overrides guard.clusterName).
    #[arg(long, env = "HEAL8S_CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

/// Flags of `heal8s show-deleted`.
#[derive(Debug, Clone, Args)]
pub struct ShowDeletedArgs {
    /// The Remediation record's name (`kubectl get remediations`).
    pub record: String,
    /// The record's namespace (the target's; heal8s's own for nodes and
    /// namespaces). Default: the kubeconfig context's namespace, then
    /// --heal8s-namespace.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// heal8s's own namespace, looked in after the context's when no
    /// --namespace is given.
    #[arg(long, env = "HEAL8S_NAMESPACE", default_value = "heal8s")]
    pub heal8s_namespace: String,
    /// Kubeconfig file. Default: $KUBECONFIG or ~/.kube/config, else the
    /// in-cluster service account.
    #[arg(long, env = "HEAL8S_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
}

/// The CRD file as committed under `charts/heal8s/crds/`.
pub fn crd_file(kind: &str) -> anyhow::Result<String> {
    let (yaml, from, command) = match kind {
        "remediation-policy" => (
            receiver_k8s::nspolicy::crd_yaml(),
            "receiver/k8s/src/nspolicy.rs",
            "heal8s crd --kind remediation-policy",
        ),
        _ => (
            receiver_k8s::record::crd_yaml(),
            "receiver/k8s/src/record/crd.rs",
            "heal8s crd",
        ),
    };
    let yaml = yaml.map_err(|e| anyhow::anyhow!("cannot render the CRD: {e}"))?;
    Ok(format!(
        "# Generated by `{command}` from {from}; do not edit.\n{yaml}"
    ))
}

/// Apply `--cluster-name` to `policy`, checked like `guard.clusterName`.
pub fn apply_cluster_name(policy: &mut Policy, name: Option<&str>) -> anyhow::Result<()> {
    if let Some(name) = name {
        if let Some(problem) = receiver_core::policy::cluster_name_problem(name) {
            anyhow::bail!("--cluster-name (HEAL8S_CLUSTER_NAME) {problem}");
        }
        if !policy.clusters.is_empty() {
            anyhow::bail!(
                "--cluster-name (HEAL8S_CLUSTER_NAME) is set but the policy serves several clusters (clusters): each member's name is its cluster's name; drop --cluster-name"
            );
        }
        policy.guard.cluster_name = Some(name.to_string());
    }
    Ok(())
}

/// Load the policy file, or the default one.
pub fn load_policy(path: Option<&std::path::Path>) -> anyhow::Result<Policy> {
    match path {
        None => Ok(Policy::default_policy()?),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read policy file {}", p.display()))?;
            Policy::from_yaml(&text).with_context(|| format!("policy file {}", p.display()))
        }
    }
}
