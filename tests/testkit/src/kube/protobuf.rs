//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`), which
//! kubectl's typed clients send (`create namespace`, `create deployment`,
//! `autoscale`, a drain's DeleteOptions...), turned into the JSON the rest of
//! the emulation works on. Decoding is k8s-pb's (prost); the JSON is written
//! as Go's encoding/json would write the decoded object, minus zero values.
//! Covers the kinds kubectl sends this way; a body that sets a field left
//! out here is refused, never stored without it. Encodes nothing: answers
//! stay JSON, which every protobuf client also accepts.

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_pb::api::{apps, authentication, autoscaling, batch, core, policy};
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde_json::{Map, Value};

/// The media type.
pub(crate) const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// What every Kubernetes protobuf body starts with.
const MAGIC: &[u8] = b"k8s\0";

/// Why a protobuf body did not become JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Undecodable {
    /// Not a Kubernetes protobuf message (no magic, or broken wire data).
    Malformed(String),
    /// A kind this module has no decoder for.
    Kind { api_version: String, kind: String },
    /// A field this module does not decode is set (its JSON path).
    Field(String),
}

impl Undecodable {
    fn under(self, parent: &str) -> Undecodable {
        match self {
            Undecodable::Field(f) => Undecodable::Field(format!("{parent}.{f}")),
            other => other,
        }
    }
}

/// Decode a body: the envelope (`runtime.Unknown` after the magic) names
/// the kind; an empty apiVersion or kind takes the endpoint's, as the API
/// server's defaulting does. Returns the object as JSON, apiVersion and
/// kind included.
pub(crate) fn decode(
    body: &[u8],
    default_api_version: &str,
    default_kind: &str,
) -> Result<Value, Undecodable> {
    let Some(wire) = body.strip_prefix(MAGIC) else {
        // Go's %v of the prefix bytes
        return Err(Undecodable::Malformed(
            "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
                .into(),
        ));
    };
    let envelope = Unknown::decode(wire).map_err(|e| Undecodable::Malformed(e.to_string()))?;
    let type_meta = envelope.type_meta.unwrap_or_default();
    let api_version = type_meta
        .api_version
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default_api_version.to_string());
    let kind = type_meta
        .kind
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| default_kind.to_string());
    let raw = envelope.raw.unwrap_or_default();
    let mut obj = decode_kind(&api_version, &kind, &raw)?;
    if let Value::Object(m) = &mut obj {
        m.insert("apiVersion".into(), Value::String(api_version));
        m.insert("kind".into(), Value::String(kind));
    }
    Ok(obj)
}

fn decode_kind(api_version: &str, kind: &str, raw: &[u8]) -> Result<Value, Undecodable> {
    // DeleteOptions come in meta.k8s.io/v1 or in the group of the
    // resource deleted, as the API server allows for old clients.
    if kind == "DeleteOptions" {
        return typed::<meta::DeleteOptions>(raw);
    }
    match (api_version, kind) {
        ("v1", "Namespace") => typed::<core::v1::Namespace>(raw),
        ("v1", "ConfigMap") => typed::<core::v1::ConfigMap>(raw),
        ("v1", "Secret") => typed::<core::v1::Secret>(raw),
        ("v1", "ServiceAccount") => typed::<core::v1::ServiceAccount>(raw),
        ("v1", "Service") => typed::<core::v1::Service>(raw),
        ("v1", "Pod") => typed::<core::v1::Pod>(raw),
        ("apps/v1", "Deployment") => typed::<apps::v1::Deployment>(raw),
        ("batch/v1", "Job") => typed::<batch::v1::Job>(raw),
        ("policy/v1", "PodDisruptionBudget") => typed::<policy::v1::PodDisruptionBudget>(raw),
        ("policy/v1", "Eviction") => typed::<policy::v1::Eviction>(raw),
        ("autoscaling/v2", "HorizontalPodAutoscaler") => {
            typed::<autoscaling::v2::HorizontalPodAutoscaler>(raw)
        }
        ("autoscaling/v1", "Scale") => typed::<autoscaling::v1::Scale>(raw),
        ("authentication.k8s.io/v1", "SelfSubjectReview") => {
            typed::<authentication::v1::SelfSubjectReview>(raw)
        }
        _ => Err(Undecodable::Kind {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
        }),
    }
}

fn typed<T: Message + Default + Msg>(raw: &[u8]) -> Result<Value, Undecodable> {
    let msg = T::decode(raw).map_err(|e| Undecodable::Malformed(e.to_string()))?;
    msg.to_value()
}

/// A message as JSON: an object, or a string or number for the types Go
/// writes as one (Time, Quantity, IntOrString); `Null` for a zero Time.
trait Msg {
    fn to_value(&self) -> Result<Value, Undecodable>;
}

/// A field as Go's JSON would write it, or `None` when it is left out.
/// Go writes every field of a value type on the wire, zero or not, and a
/// pointer only when set: without `keep`, a zero value is taken for unset.
trait Field {
    fn field(&self, keep: bool) -> Result<Option<Value>, Undecodable>;
}

/// Whether a field this module does not decode is set at all.
trait Present {
    fn present(&self) -> bool;
}

impl<T> Present for Option<T> {
    fn present(&self) -> bool {
        self.is_some()
    }
}

impl<T> Present for Vec<T> {
    fn present(&self) -> bool {
        !self.is_empty()
    }
}

impl<K, V> Present for BTreeMap<K, V> {
    fn present(&self) -> bool {
        !self.is_empty()
    }
}

fn scalar<T: PartialEq + Default + Clone + Into<Value>>(
    v: &Option<T>,
    keep: bool,
) -> Option<Value> {
    v.as_ref()
        .filter(|x| keep || **x != T::default())
        .map(|x| x.clone().into())
}

impl Field for Option<String> {
    fn field(&self, keep: bool) -> Result<Option<Value>, Undecodable> {
        Ok(scalar(self, keep))
    }
}

impl Field for Option<i32> {
    fn field(&self, keep: bool) -> Result<Option<Value>, Undecodable> {
        Ok(scalar(self, keep))
    }
}

impl Field for Option<i64> {
    fn field(&self, keep: bool) -> Result<Option<Value>, Undecodable> {
        Ok(scalar(self, keep))
    }
}

impl Field for Option<bool> {
    fn field(&self, keep: bool) -> Result<Option<Value>, Undecodable> {
        Ok(scalar(self, keep))
    }
}

impl<T: Msg> Field for Option<T> {
    fn field(&self, keep: bool) -> Result<Option<Value>, Undecodable> {
        let Some(m) = self else { return Ok(None) };
        Ok(match m.to_value()? {
            Value::Null => None,
            Value::Object(o) if o.is_empty() && !keep => None,
            v => Some(v),
        })
    }
}

/// A list or map element: always written.
trait Elem {
    fn elem(&self) -> Result<Value, Undecodable>;
}

impl Elem for String {
    fn elem(&self) -> Result<Value, Undecodable> {
        Ok(Value::String(self.clone()))
    }
}

/// Bytes: base64, as Go writes `[]byte`.
impl Elem for Vec<u8> {
    fn elem(&self) -> Result<Value, Undecodable> {
        Ok(Value::String(
            base64::engine::general_purpose::STANDARD.encode(self),
        ))
    }
}

impl<T: Msg> Elem for T {
    fn elem(&self) -> Result<Value, Undecodable> {
        self.to_value()
    }
}

impl<T: Elem> Field for Vec<T> {
    fn field(&self, _keep: bool) -> Result<Option<Value>, Undecodable> {
        if self.is_empty() {
            return Ok(None);
        }
        let items = self.iter().map(Elem::elem).collect::<Result<_, _>>()?;
        Ok(Some(Value::Array(items)))
    }
}

impl<T: Elem> Field for BTreeMap<String, T> {
    fn field(&self, _keep: bool) -> Result<Option<Value>, Undecodable> {
        if self.is_empty() {
            return Ok(None);
        }
        let mut out = Map::new();
        for (k, v) in self {
            out.insert(k.clone(), v.elem()?);
        }
        Ok(Some(Value::Object(out)))
    }
}

/// `generate_name` -> `generateName`; `r#type` -> `type`.
fn camel(rust_name: &str) -> String {
    let name = rust_name.trim_start_matches("r#");
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn put(
    out: &mut Map<String, Value>,
    name: String,
    value: Result<Option<Value>, Undecodable>,
) -> Result<(), Undecodable> {
    if let Some(v) = value.map_err(|e| e.under(&name))? {
        out.insert(name, v);
    }
    Ok(())
}

/// One field of [`message!`]: `keep` writes zero values (a Go pointer),
/// `refuse` fails the decode when the field is set, `as "name"` gives the
/// JSON name where it is not the Rust name in camel case.
macro_rules! field {
    ($out:ident, $f:ident, refuse, $name:expr) => {
        if Present::present($f) {
            return Err(Undecodable::Field($name));
        }
    };
    ($out:ident, $f:ident, keep, $name:expr) => {
        put(&mut $out, $name, Field::field($f, true))?
    };
    ($out:ident, $f:ident, , $name:expr) => {
        put(&mut $out, $name, Field::field($f, false))?
    };
}

/// JSON for a k8s-pb message. Every field is named (the destructuring
/// fails to compile when k8s-pb gains one), so none is dropped unseen.
macro_rules! message {
    ($ty:ty { $($f:ident $(: $mode:ident)? $(as $json:literal)?),* $(,)? }) => {
        impl Msg for $ty {
            fn to_value(&self) -> Result<Value, Undecodable> {
                let Self { $($f),* } = self;
                #[allow(unused_mut)]
                let mut out = Map::new();
                $(
                    #[allow(unused_variables)]
                    let name = camel(stringify!($f));
                    $(let name = String::from($json);)?
                    field!(out, $f, $($mode)?, name);
                )*
                Ok(Value::Object(out))
            }
        }
    };
}

// Types Go writes as strings or numbers.

impl Msg for meta::Time {
    fn to_value(&self) -> Result<Value, Undecodable> {
        // Go keeps seconds only (`metav1.Time.Unmarshal`); no seconds is the zero time: null
        let Some(s) = self.seconds else {
            return Ok(Value::Null);
        };
        Ok(Value::String(rfc3339(s, None)?))
    }
}

impl Msg for meta::MicroTime {
    fn to_value(&self) -> Result<Value, Undecodable> {
        let Some(s) = self.seconds else {
            return Ok(Value::Null);
        };
        let micros = self.nanos.unwrap_or(0) / 1000;
        Ok(Value::String(rfc3339(s, Some(micros))?))
    }
}

fn rfc3339(seconds: i64, micros: Option<i32>) -> Result<String, Undecodable> {
    let t = jiff::Timestamp::from_second(seconds)
        .map_err(|e| Undecodable::Malformed(format!("bad time: {e}")))?;
    let whole = t.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    Ok(match micros {
        Some(us) => format!("{whole}.{us:06}Z"),
        None => format!("{whole}Z"),
    })
}

impl Msg for Quantity {
    fn to_value(&self) -> Result<Value, Undecodable> {
        Ok(Value::String(self.string.clone().unwrap_or_default()))
    }
}

impl Msg for IntOrString {
    fn to_value(&self) -> Result<Value, Undecodable> {
        Ok(match self.r#type.unwrap_or(0) {
            0 => Value::from(self.int_val.unwrap_or(0)),
            _ => Value::String(self.str_val.clone().unwrap_or_default()),
        })
    }
}

// meta/v1

message!(meta::ObjectMeta {
    name,
    generate_name,
    namespace,
    self_link,
    uid,
    resource_version,
    generation,
    creation_timestamp,
    deletion_timestamp,
    deletion_grace_period_seconds: keep,
    labels,
    annotations,
    owner_references,
    finalizers,
    managed_fields: refuse,
});

message!(meta::OwnerReference {
    api_version,
    kind,
    name,
    uid,
    controller: keep,
    block_owner_deletion: keep,
});

message!(meta::LabelSelector {
    match_labels,
    match_expressions,
});

message!(meta::LabelSelectorRequirement {
    key,
    operator,
    values,
});

message!(meta::DeleteOptions {
    grace_period_seconds: keep,
    preconditions: keep,
    orphan_dependents: keep,
    propagation_policy: keep,
    dry_run,
    ignore_store_read_error_with_cluster_breaking_potential: keep,
});

message!(meta::Preconditions {
    uid: keep,
    resource_version: keep,
});

// core/v1

message!(core::v1::Namespace {
    metadata,
    spec,
    status,
});

message!(core::v1::NamespaceSpec { finalizers });

message!(core::v1::NamespaceStatus {
    phase,
    conditions: refuse,
});

message!(core::v1::ConfigMap {
    metadata,
    immutable: keep,
    data,
    binary_data,
});

message!(core::v1::Secret {
    metadata,
    immutable: keep,
    data,
    string_data,
    r#type,
});

message!(core::v1::ServiceAccount {
    metadata,
    secrets,
    image_pull_secrets,
    automount_service_account_token: keep,
});

message!(core::v1::ObjectReference {
    kind,
    namespace,
    name,
    uid,
    api_version,
    resource_version,
    field_path,
});

message!(core::v1::LocalObjectReference { name });

message!(core::v1::Service {
    metadata,
    spec,
    status,
});

message!(core::v1::ServiceSpec {
    ports,
    selector,
    cluster_ip as "clusterIP",
    cluster_ips as "clusterIPs",
    r#type,
    external_ips as "externalIPs",
    session_affinity,
    load_balancer_ip as "loadBalancerIP",
    load_balancer_source_ranges,
    external_name,
    external_traffic_policy,
    health_check_node_port,
    publish_not_ready_addresses,
    session_affinity_config: refuse,
    ip_families,
    ip_family_policy: keep,
    allocate_load_balancer_node_ports: keep,
    load_balancer_class: keep,
    internal_traffic_policy: keep,
    traffic_distribution: keep,
});

message!(core::v1::ServicePort {
    name,
    protocol,
    app_protocol: keep,
    port,
    target_port,
    node_port,
});

message!(core::v1::ServiceStatus {
    load_balancer,
    conditions: refuse,
});

message!(core::v1::LoadBalancerStatus { ingress: refuse });

message!(core::v1::Pod {
    metadata,
    spec,
    status,
});

message!(core::v1::PodStatus {
    observed_generation,
    phase,
    conditions: refuse,
    message,
    reason,
    nominated_node_name,
    host_ip as "hostIP",
    host_ips: refuse,
    pod_ip as "podIP",
    pod_ips: refuse,
    start_time,
    init_container_statuses: refuse,
    container_statuses: refuse,
    qos_class,
    ephemeral_container_statuses: refuse,
    resize,
    resource_claim_statuses: refuse,
    extended_resource_claim_status: refuse,
    allocated_resources: refuse,
    resources: refuse,
});

message!(core::v1::PodTemplateSpec { metadata, spec });

message!(core::v1::PodSpec {
    volumes: refuse,
    init_containers,
    containers,
    ephemeral_containers: refuse,
    restart_policy,
    termination_grace_period_seconds: keep,
    active_deadline_seconds: keep,
    dns_policy,
    node_selector,
    service_account_name,
    service_account,
    automount_service_account_token: keep,
    node_name,
    host_network,
    host_pid as "hostPID",
    host_ipc as "hostIPC",
    share_process_namespace: keep,
    security_context: refuse,
    image_pull_secrets,
    hostname,
    subdomain,
    affinity: refuse,
    scheduler_name,
    tolerations,
    host_aliases: refuse,
    priority_class_name,
    priority: keep,
    dns_config: refuse,
    readiness_gates: refuse,
    runtime_class_name: keep,
    enable_service_links: keep,
    preemption_policy: keep,
    overhead,
    topology_spread_constraints: refuse,
    set_hostname_as_fqdn: keep as "setHostnameAsFQDN",
    os: refuse,
    host_users: keep,
    scheduling_gates: refuse,
    resource_claims: refuse,
    resources: refuse,
    hostname_override: keep,
    workload_ref: refuse,
});

message!(core::v1::Container {
    name,
    image,
    command,
    args,
    working_dir,
    ports,
    env_from: refuse,
    env,
    resources,
    resize_policy: refuse,
    restart_policy: keep,
    restart_policy_rules: refuse,
    volume_mounts,
    volume_devices: refuse,
    liveness_probe: refuse,
    readiness_probe: refuse,
    startup_probe: refuse,
    lifecycle: refuse,
    termination_message_path,
    termination_message_policy,
    image_pull_policy,
    security_context: refuse,
    stdin,
    stdin_once,
    tty,
});

message!(core::v1::ContainerPort {
    name,
    host_port,
    container_port,
    protocol,
    host_ip as "hostIP",
});

message!(core::v1::EnvVar {
    name,
    value,
    value_from: refuse,
});

message!(core::v1::ResourceRequirements {
    limits,
    requests,
    claims: refuse,
});

message!(core::v1::VolumeMount {
    name,
    read_only,
    recursive_read_only: keep,
    mount_path,
    sub_path,
    mount_propagation: keep,
    sub_path_expr,
});

message!(core::v1::Toleration {
    key,
    operator,
    value,
    effect,
    toleration_seconds: keep,
});

// apps/v1

message!(apps::v1::Deployment {
    metadata,
    spec,
    status,
});

message!(apps::v1::DeploymentSpec {
    replicas: keep,
    selector: keep,
    template,
    strategy,
    min_ready_seconds,
    revision_history_limit: keep,
    paused,
    progress_deadline_seconds: keep,
});

message!(apps::v1::DeploymentStrategy {
    r#type,
    rolling_update: keep,
});

message!(apps::v1::RollingUpdateDeployment {
    max_unavailable: keep,
    max_surge: keep,
});

message!(apps::v1::DeploymentStatus {
    observed_generation,
    replicas,
    updated_replicas,
    ready_replicas,
    available_replicas,
    unavailable_replicas,
    terminating_replicas: keep,
    conditions: refuse,
    collision_count: keep,
});

// batch/v1

message!(batch::v1::Job {
    metadata,
    spec,
    status,
});

message!(batch::v1::JobSpec {
    parallelism: keep,
    completions: keep,
    active_deadline_seconds: keep,
    pod_failure_policy: refuse,
    success_policy: refuse,
    backoff_limit: keep,
    backoff_limit_per_index: keep,
    max_failed_indexes: keep,
    selector: keep,
    manual_selector: keep,
    template,
    ttl_seconds_after_finished: keep,
    completion_mode: keep,
    suspend: keep,
    pod_replacement_policy: keep,
    managed_by: keep,
});

message!(batch::v1::JobStatus {
    conditions: refuse,
    start_time,
    completion_time,
    active,
    succeeded,
    failed,
    terminating: keep,
    completed_indexes,
    failed_indexes: keep,
    uncounted_terminated_pods: refuse,
    ready: keep,
});

// policy/v1

message!(policy::v1::PodDisruptionBudget {
    metadata,
    spec,
    status,
});

message!(policy::v1::PodDisruptionBudgetSpec {
    min_available: keep,
    selector: keep,
    max_unavailable: keep,
    unhealthy_pod_eviction_policy: keep,
});

message!(policy::v1::PodDisruptionBudgetStatus {
    observed_generation,
    disrupted_pods,
    disruptions_allowed,
    current_healthy,
    desired_healthy,
    expected_pods,
    conditions: refuse,
});

message!(policy::v1::Eviction {
    metadata,
    delete_options: keep,
});

// autoscaling

message!(autoscaling::v2::HorizontalPodAutoscaler {
    metadata,
    spec,
    status,
});

message!(autoscaling::v2::HorizontalPodAutoscalerSpec {
    scale_target_ref,
    min_replicas: keep,
    max_replicas,
    metrics,
    behavior: refuse,
});

message!(autoscaling::v2::CrossVersionObjectReference {
    kind,
    name,
    api_version,
});

message!(autoscaling::v2::MetricSpec {
    r#type,
    object: refuse,
    pods: refuse,
    resource,
    container_resource: refuse,
    external: refuse,
});

message!(autoscaling::v2::ResourceMetricSource { name, target });

message!(autoscaling::v2::MetricTarget {
    r#type,
    value: keep,
    average_value: keep,
    average_utilization: keep,
});

message!(autoscaling::v2::HorizontalPodAutoscalerStatus {
    observed_generation: keep,
    last_scale_time,
    current_replicas,
    desired_replicas,
    current_metrics: refuse,
    conditions: refuse,
});

// authentication.k8s.io/v1 (`kubectl auth whoami`)

message!(authentication::v1::SelfSubjectReview { metadata, status });

message!(authentication::v1::SelfSubjectReviewStatus { user_info });

message!(authentication::v1::UserInfo {
    username,
    uid,
    groups,
    extra,
});

impl Msg for authentication::v1::ExtraValue {
    fn to_value(&self) -> Result<Value, Undecodable> {
        Ok(Value::Array(
            self.items.iter().cloned().map(Value::String).collect(),
        ))
    }
}

message!(autoscaling::v1::Scale {
    metadata,
    spec,
    status,
});

message!(autoscaling::v1::ScaleSpec { replicas });

message!(autoscaling::v1::ScaleStatus { replicas, selector });

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        [MAGIC, &unknown.encode_to_vec()].concat()
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    /// What kubectl 1.33 sent for `kubectl create namespace shop` (from its `-v=9` log).
    const KUBECTL_CREATE_NAMESPACE: &[u8] = b"k8s\x00\x0a\x0f\x0a\x02v1\x12\x09Namespace\x12\x1c\x0a\x14\x0a\x04shop\x12\x00\x1a\x00\x22\x00\x2a\x00\x32\x00\x38\x00\x42\x00\x12\x00\x1a\x02\x0a\x00\x1a\x00\x22\x00";

    /// And for the DeleteOptions of `kubectl drain --disable-eviction`.
    const KUBECTL_DRAIN_DELETE: &[u8] =
        b"k8s\x00\x0a\x13\x0a\x02v1\x12\x0dDeleteOptions\x12\x00\x1a\x00\x22\x00";

    #[test]
    fn kubectls_namespace_decodes_without_go_zero_values() {
        let v = decode(KUBECTL_CREATE_NAMESPACE, "v1", "Namespace").unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
        );
        let v = decode(KUBECTL_DRAIN_DELETE, "meta.k8s.io/v1", "DeleteOptions").unwrap();
        assert_eq!(v, json!({"apiVersion": "v1", "kind": "DeleteOptions"}));
    }

    #[test]
    fn go_pointers_keep_their_zero_values_and_special_types_read_as_go_writes_them() {
        let meta = meta::ObjectMeta {
            name: s("web"),
            generate_name: s(""),
            creation_timestamp: Some(meta::Time {
                seconds: Some(1_700_000_000),
                nanos: None,
            }),
            labels: [("app".to_string(), "web".to_string())].into(),
            ..Default::default()
        };
        let container = core::v1::Container {
            name: s("web"),
            image: s("nginx"),
            stdin: Some(false),
            resources: Some(core::v1::ResourceRequirements {
                limits: [("memory".to_string(), Quantity { string: s("128Mi") })].into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let d = apps::v1::Deployment {
            metadata: Some(meta),
            spec: Some(apps::v1::DeploymentSpec {
                replicas: Some(0),
                min_ready_seconds: Some(0),
                paused: Some(false),
                strategy: Some(apps::v1::DeploymentStrategy {
                    r#type: s("RollingUpdate"),
                    rolling_update: Some(apps::v1::RollingUpdateDeployment {
                        max_unavailable: Some(IntOrString {
                            r#type: Some(1),
                            int_val: Some(0),
                            str_val: s("25%"),
                        }),
                        max_surge: Some(IntOrString {
                            r#type: Some(0),
                            int_val: Some(1),
                            str_val: s(""),
                        }),
                    }),
                }),
                template: Some(core::v1::PodTemplateSpec {
                    metadata: Some(meta::ObjectMeta::default()),
                    spec: Some(core::v1::PodSpec {
                        containers: vec![container],
                        termination_grace_period_seconds: Some(0),
                        host_network: Some(false),
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }),
            status: Some(apps::v1::DeploymentStatus::default()),
        };
        let body = envelope("apps/v1", "Deployment", d.encode_to_vec());
        let v = decode(&body, "apps/v1", "Deployment").unwrap();
        assert_eq!(
            v,
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web", "creationTimestamp": "2023-11-14T22:13:20Z", "labels": {"app": "web"}},
                "spec": {
                    "replicas": 0,
                    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 1}},
                    "template": {"spec": {
                        "containers": [{"name": "web", "image": "nginx", "resources": {"limits": {"memory": "128Mi"}}}],
                        "terminationGracePeriodSeconds": 0,
                    }},
                },
            })
        );
    }

    #[test]
    fn secrets_bytes_become_base64() {
        let secret = core::v1::Secret {
            metadata: Some(meta::ObjectMeta {
                name: s("s"),
                ..Default::default()
            }),
            data: [("a".to_string(), b"b".to_vec())].into(),
            r#type: s("Opaque"),
            ..Default::default()
        };
        let v = decode(
            &envelope("v1", "Secret", secret.encode_to_vec()),
            "v1",
            "Secret",
        )
        .unwrap();
        assert_eq!(v["data"], json!({"a": "Yg=="}));
        assert_eq!(v["type"], "Opaque");
    }

    /// `kubectl autoscale` (1.33) sends an autoscaling/v2 object.
    #[test]
    fn autoscalers_keep_their_metric_targets() {
        let hpa = autoscaling::v2::HorizontalPodAutoscaler {
            metadata: Some(meta::ObjectMeta {
                name: s("web"),
                ..Default::default()
            }),
            spec: Some(autoscaling::v2::HorizontalPodAutoscalerSpec {
                scale_target_ref: Some(autoscaling::v2::CrossVersionObjectReference {
                    kind: s("Deployment"),
                    name: s("web"),
                    api_version: s("apps/v1"),
                }),
                min_replicas: None,
                max_replicas: Some(3),
                metrics: vec![autoscaling::v2::MetricSpec {
                    r#type: s("Resource"),
                    resource: Some(autoscaling::v2::ResourceMetricSource {
                        name: s("cpu"),
                        target: Some(autoscaling::v2::MetricTarget {
                            r#type: s("Utilization"),
                            average_utilization: Some(70),
                            ..Default::default()
                        }),
                    }),
                    ..Default::default()
                }],
                behavior: None,
            }),
            status: Some(autoscaling::v2::HorizontalPodAutoscalerStatus {
                current_replicas: Some(0),
                desired_replicas: Some(0),
                ..Default::default()
            }),
        };
        let body = envelope(
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            hpa.encode_to_vec(),
        );
        let v = decode(&body, "autoscaling/v2", "HorizontalPodAutoscaler").unwrap();
        assert_eq!(
            v["spec"],
            json!({
                "maxReplicas": 3,
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                             "target": {"type": "Utilization", "averageUtilization": 70}}}],
            })
        );
        assert!(v.get("status").is_none(), "{v}");
    }

    #[test]
    fn a_field_left_out_here_refuses_the_body_instead_of_vanishing() {
        let pod = core::v1::Pod {
            metadata: Some(meta::ObjectMeta {
                name: s("p"),
                ..Default::default()
            }),
            spec: Some(core::v1::PodSpec {
                volumes: vec![core::v1::Volume {
                    name: s("host"),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: None,
        };
        let e = decode(&envelope("v1", "Pod", pod.encode_to_vec()), "v1", "Pod").unwrap_err();
        assert_eq!(e, Undecodable::Field("spec.volumes".into()));
        let e = decode(&envelope("v1", "Node", Vec::new()), "v1", "Node").unwrap_err();
        assert!(matches!(e, Undecodable::Kind { .. }), "{e:?}");
    }

    #[test]
    fn broken_wire_data_is_malformed() {
        let e = decode(b"k8s\x00\x0a\xff", "v1", "Namespace").unwrap_err();
        assert!(matches!(e, Undecodable::Malformed(_)), "{e:?}");
        let e = decode(b"{\"kind\":\"Namespace\"}", "v1", "Namespace").unwrap_err();
        assert!(matches!(e, Undecodable::Malformed(_)), "{e:?}");
    }
}
