//! Describing a cluster for people: how heal8s reaches it (API host,
//! kubeconfig context and cluster, or in-cluster), its version and platform,
//! the API groups and resources it serves (grouped: core, KubeVirt/CDI,
//! OpenShift, others), its nodes, and how many objects of a type it holds.
//!
//! Owns: read-only discovery for `serve`'s cluster summary and `heal8s
//! discover`. Must not change anything, nor decide: the callers choose what
//! to ask, with their own time limits.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DynamicObject, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde::Serialize;

use crate::K8sError;
use crate::resources::{Lookup, Resolved, Resources};
use receiver_core::detect::Watched;

/// How heal8s reaches the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    /// The API server's URL (`https://api.example.com:6443`).
    pub api_host: String,
    /// The kubeconfig file named on the command line; `None` when it was
    /// found through `$KUBECONFIG` / `~/.kube/config`, or in-cluster.
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context used (`None` in-cluster).
    pub context: Option<String>,
    /// The kubeconfig cluster of that context (`None` in-cluster).
    pub cluster: Option<String>,
    /// Through the pod's service account, without a kubeconfig.
    pub in_cluster: bool,
}

impl std::fmt::Display for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.in_cluster {
            return write!(f, "{} in-cluster (service account)", self.api_host);
        }
        write!(f, "{}", self.api_host)?;
        if let Some(c) = &self.context {
            write!(f, ", kubeconfig context {c}")?;
        }
        if let Some(c) = &self.cluster {
            write!(f, " (cluster {c})")?;
        }
        if let Some(p) = &self.kubeconfig {
            write!(f, " from {}", p.display())?;
        }
        Ok(())
    }
}

/// The client configuration and its description, found as
/// [`crate::Clients::connect`] finds it: the kubeconfig file when one is
/// named, else `$KUBECONFIG` / `~/.kube/config`, else the in-cluster service
/// account. `context` picks a kubeconfig context other than the current one.
pub async fn config(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<(Config, Connection), K8sError> {
    let (kc, named) = match kubeconfig {
        Some(path) => (
            Some(
                Kubeconfig::read_from(path)
                    .map_err(|e| K8sError::Config(format!("{}: {e}", path.display())))?,
            ),
            Some(path.to_path_buf()),
        ),
        None => (Kubeconfig::read().ok(), None),
    };
    let Some(kc) = kc else {
        if let Some(c) = context {
            return Err(K8sError::Config(format!(
                "--context {c}: no kubeconfig found ($KUBECONFIG, ~/.kube/config)"
            )));
        }
        let config = Config::incluster().map_err(|e| {
            K8sError::Config(format!(
                "no kubeconfig ($KUBECONFIG, ~/.kube/config) and not in a cluster: {e}"
            ))
        })?;
        let connection = Connection {
            api_host: host_of(&config),
            kubeconfig: None,
            context: None,
            cluster: None,
            in_cluster: true,
        };
        return Ok((config, connection));
    };
    let context_name = context
        .map(str::to_string)
        .or_else(|| kc.current_context.clone());
    let cluster = context_name.as_deref().and_then(|name| {
        kc.contexts
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.context.as_ref())
            .map(|c| c.cluster.clone())
    });
    if let Some(name) = context
        && !kc.contexts.iter().any(|c| c.name == name)
    {
        let known: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
        return Err(K8sError::Config(format!(
            "--context {name}: no such context in the kubeconfig (it has: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    }
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..KubeConfigOptions::default()
    };
    let where_ = named
        .as_deref()
        .map_or_else(|| "kubeconfig".to_string(), |p| p.display().to_string());
    let config = Config::from_custom_kubeconfig(kc, &options)
        .await
        .map_err(|e| K8sError::Config(format!("{where_}: {e}")))?;
    let connection = Connection {
        api_host: host_of(&config),
        kubeconfig: named,
        context: context_name,
        cluster,
        in_cluster: false,
    };
    Ok((config, connection))
}

/// The cluster URL without its trailing slash.
fn host_of(config: &Config) -> String {
    config.cluster_url.to_string().trim_end_matches('/').into()
}

/// What `/version` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerVersion {
    /// `v1.33.2`, `v1.31.6+k3s1`, `v1.30.4+rhos` ...
    pub git_version: String,
    /// `linux/amd64`.
    pub platform: String,
}

/// The API server's version.
pub async fn version(client: &Client) -> Result<ServerVersion, K8sError> {
    let info = client.apiserver_version().await?;
    Ok(ServerVersion {
        git_version: info.git_version,
        platform: info.platform,
    })
}

/// Where an API group comes from, for grouping what a cluster serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// The core group and the Kubernetes project's groups (`apps`,
    /// `batch`, `*.k8s.io` but not the `x-k8s.io` SIG projects).
    Core,
    /// KubeVirt and CDI (`kubevirt.io`, `*.kubevirt.io`).
    Kubevirt,
    /// OpenShift (`*.openshift.io`).
    Openshift,
    /// Everything else (operators, CNI, storage vendors, heal8s itself).
    Other,
}

impl Family {
    /// The family of `group` (empty: the core group).
    pub fn of(group: &str) -> Family {
        let under = |suffix: &str| group == suffix || group.ends_with(&format!(".{suffix}"));
        if under("kubevirt.io") {
            Family::Kubevirt
        } else if under("openshift.io") {
            Family::Openshift
        } else if group.is_empty()
            || !group.contains('.')
            || (group.ends_with(".k8s.io") && !group.ends_with("x-k8s.io"))
        {
            Family::Core
        } else {
            Family::Other
        }
    }

    /// How people name it.
    pub fn title(self) -> &'static str {
        match self {
            Family::Core => "core",
            Family::Kubevirt => "KubeVirt/CDI",
            Family::Openshift => "OpenShift",
            Family::Other => "others",
        }
    }

    /// Every family, in display order.
    pub const ALL: [Family; 4] = [
        Family::Core,
        Family::Kubevirt,
        Family::Openshift,
        Family::Other,
    ];
}

/// An API group the cluster serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiGroup {
    /// Empty for the core group.
    pub name: String,
    /// Served versions, as the server orders them.
    pub versions: Vec<String>,
    /// The preferred version.
    pub preferred: String,
}

impl ApiGroup {
    /// `group/version` of the preferred version (`v1` for the core group).
    pub fn preferred_group_version(&self) -> String {
        if self.name.is_empty() {
            self.preferred.clone()
        } else {
            format!("{}/{}", self.name, self.preferred)
        }
    }
}

/// The API groups the cluster serves, the core group first.
pub async fn groups(client: &Client) -> Result<Vec<ApiGroup>, K8sError> {
    let (core, named) = tokio::join!(client.list_core_api_versions(), client.list_api_groups());
    let core = core?;
    let mut out = vec![ApiGroup {
        name: String::new(),
        preferred: core
            .versions
            .first()
            .cloned()
            .unwrap_or_else(|| "v1".into()),
        versions: core.versions,
    }];
    for g in named?.groups {
        let versions: Vec<String> = g.versions.iter().map(|v| v.version.clone()).collect();
        let preferred = g
            .preferred_version
            .map(|v| v.version)
            .or_else(|| versions.first().cloned())
            .unwrap_or_default();
        out.push(ApiGroup {
            name: g.name,
            versions,
            preferred,
        });
    }
    Ok(out)
}

/// Which platforms the served API groups reveal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Platform {
    /// `config.openshift.io` is served.
    pub openshift: bool,
    /// `kubevirt.io` is served.
    pub kubevirt: bool,
    /// `cdi.kubevirt.io` (the Containerized Data Importer) is served.
    pub cdi: bool,
}

impl Platform {
    /// Read from the served groups.
    pub fn of(groups: &[ApiGroup]) -> Platform {
        let has = |name: &str| groups.iter().any(|g| g.name == name);
        Platform {
            openshift: has("config.openshift.io"),
            kubevirt: has("kubevirt.io"),
            cdi: has("cdi.kubevirt.io"),
        }
    }

    /// `OpenShift` or `Kubernetes`.
    pub fn distribution(&self) -> &'static str {
        if self.openshift {
            "OpenShift"
        } else {
            "Kubernetes"
        }
    }

    /// The add-ons found, e.g. `["KubeVirt", "CDI"]`.
    pub fn addons(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.kubevirt {
            out.push("KubeVirt");
        }
        if self.cdi {
            out.push("CDI");
        }
        out
    }
}

/// A resource type of a group version (subresources left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiResourceInfo {
    /// The plural (`virtualmachines`).
    pub name: String,
    pub kind: String,
    pub namespaced: bool,
}

/// The resource types of one group version (`v1` or `group/version`).
pub async fn resources(
    client: &Client,
    group_version: &str,
) -> Result<Vec<ApiResourceInfo>, K8sError> {
    let list = if group_version.contains('/') {
        client.list_api_group_resources(group_version).await?
    } else {
        client.list_core_api_resources(group_version).await?
    };
    let mut out: Vec<ApiResourceInfo> = list
        .resources
        .into_iter()
        .filter(|r| !r.name.contains('/'))
        .map(|r| ApiResourceInfo {
            name: r.name,
            kind: r.kind,
            namespaced: r.namespaced,
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// How many nodes there are, and how many are Ready.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NodeCount {
    pub total: u64,
    pub ready: u64,
}

/// Count the nodes (in pages of 500).
pub async fn count_nodes(client: &Client) -> Result<NodeCount, K8sError> {
    let api = Api::<Node>::all(client.clone());
    let mut count = NodeCount::default();
    let mut params = ListParams::default().limit(500);
    loop {
        let page = api.list(&params).await?;
        for n in &page.items {
            count.total += 1;
            let ready = n
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            count.ready += u64::from(ready);
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(count),
        }
    }
}

/// How many objects of `resource` exist in the whole cluster. Asks for one
/// object and reads the server's `remainingItemCount`; when the server does
/// not say, counts the names page by page.
pub async fn count_objects(client: &Client, resource: &Resolved) -> Result<u64, K8sError> {
    let api = Api::<DynamicObject>::all_with(client.clone(), &resource.resource);
    let first = api.list_metadata(&ListParams::default().limit(1)).await?;
    let mut count = first.items.len() as u64;
    let Some(mut token) = first.metadata.continue_.filter(|c| !c.is_empty()) else {
        return Ok(count);
    };
    if let Some(rest) = first
        .metadata
        .remaining_item_count
        .and_then(|r| u64::try_from(r).ok())
    {
        return Ok(count + rest);
    }
    loop {
        let page = api
            .list_metadata(&ListParams::default().limit(500).continue_token(&token))
            .await?;
        count += page.items.len() as u64;
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(t) => token = t,
            None => return Ok(count),
        }
    }
}

/// What a cluster holds of a type a detector watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeCount {
    /// Served, with this many objects.
    Objects(u64),
    /// Its API group (or that version of it) is not installed.
    GroupNotInstalled,
    /// The group version is served, without this type.
    NotServed,
}

impl std::fmt::Display for TypeCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TypeCount::Objects(1) => f.write_str("1 object"),
            TypeCount::Objects(n) => write!(f, "{n} objects"),
            TypeCount::GroupNotInstalled => f.write_str("not installed"),
            TypeCount::NotServed => f.write_str("not served"),
        }
    }
}

/// How people name a watched type: `datavolumes.cdi.kubevirt.io/v1beta1`,
/// or `VirtualMachine.kubevirt.io/v1` for a type watched by its kind.
pub fn watched_name(w: &Watched) -> String {
    match w {
        Watched::Resource(rs) => rs.to_string(),
        Watched::Kind(t) if t.group.is_empty() => format!("{}/{}", t.kind, t.version),
        Watched::Kind(t) => format!("{}.{}/{}", t.kind, t.group, t.version),
        // the built-in types (pods, nodes, ...) are always there
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Look a watched type up and count its objects.
pub async fn count_watched(
    resources: &Resources,
    client: &Client,
    watched: &Watched,
) -> Result<TypeCount, K8sError> {
    let lookup = match watched {
        Watched::Kind(t) => resources.lookup_kind(&t.group, &t.version, &t.kind).await?,
        Watched::Resource(rs) => {
            resources
                .lookup_plural(&rs.group, &rs.version, &rs.plural)
                .await?
        }
        _ => {
            return Err(K8sError::Refused(format!(
                "{} is not an optional type",
                watched_name(watched)
            )));
        }
    };
    Ok(match lookup {
        Lookup::Served(r) => TypeCount::Objects(count_objects(client, &r).await?),
        Lookup::GroupNotInstalled => TypeCount::GroupNotInstalled,
        Lookup::NotInGroup => TypeCount::NotServed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_fall_into_their_families() {
        for (group, family) in [
            ("", Family::Core),
            ("apps", Family::Core),
            ("batch", Family::Core),
            ("storage.k8s.io", Family::Core),
            ("gateway.networking.k8s.io", Family::Core),
            ("cluster.x-k8s.io", Family::Other),
            ("kubevirt.io", Family::Kubevirt),
            ("cdi.kubevirt.io", Family::Kubevirt),
            ("snapshot.kubevirt.io", Family::Kubevirt),
            ("config.openshift.io", Family::Openshift),
            ("route.openshift.io", Family::Openshift),
            ("k8s.cni.cncf.io", Family::Other),
            ("heal8s.io", Family::Other),
            ("notkubevirt.io", Family::Other),
        ] {
            assert_eq!(Family::of(group), family, "{group:?}");
        }
    }

    #[test]
    fn the_platform_is_read_from_the_groups() {
        let g = |name: &str| ApiGroup {
            name: name.into(),
            versions: vec!["v1".into()],
            preferred: "v1".into(),
        };
        let p = Platform::of(&[g(""), g("apps"), g("config.openshift.io"), g("kubevirt.io")]);
        assert_eq!(p.distribution(), "OpenShift");
        assert_eq!(p.addons(), vec!["KubeVirt"]);
        let plain = Platform::of(&[g(""), g("route.openshift.io")]);
        assert_eq!(plain.distribution(), "Kubernetes");
        assert!(plain.addons().is_empty());
    }

    #[test]
    fn a_connection_reads_as_its_host_and_context() {
        let c = Connection {
            api_host: "https://api.example.com:6443".into(),
            kubeconfig: None,
            context: Some("ci".into()),
            cluster: Some("shared-test".into()),
            in_cluster: false,
        };
        assert_eq!(
            c.to_string(),
            "https://api.example.com:6443, kubeconfig context ci (cluster shared-test)"
        );
        let inside = Connection {
            api_host: "https://10.96.0.1".into(),
            kubeconfig: None,
            context: None,
            cluster: None,
            in_cluster: true,
        };
        assert_eq!(
            inside.to_string(),
            "https://10.96.0.1 in-cluster (service account)"
        );
    }
}
