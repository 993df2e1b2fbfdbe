//! `heal8s discover`: what a cluster serves, as heal8s sees it. Its version
//! and platform, its API groups and their resource types grouped (core,
//! KubeVirt/CDI, OpenShift, others), and which of the policy's configured
//! custom resources (`detectors.customResources.resources`) exist and which
//! are missing, before `serve` watches them.
//!
//! Owns: the command's flags, asking and printing. Read-only: discovery
//! documents and nothing else; no object is listed or changed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::Args;
use receiver_core::detect::{Profile, ResourceSpec};
use receiver_k8s::Clients;
use receiver_k8s::client::ClientSettings;
use receiver_k8s::discovery::{
    self, ApiGroup, ApiResourceInfo, Connection, Family, Platform, ServerVersion,
};
use receiver_k8s::resources::{Lookup, Resources};
use serde::Serialize;
use serde_json::json;

use crate::args::{Output, PolicyOverrides};

/// How long discovery may take in all.
const DEADLINE: Duration = Duration::from_secs(30);

/// Flags of `heal8s discover`.
#[derive(Debug, Clone, Args)]
pub struct DiscoverArgs {
    /// Kubeconfig file. Default: $KUBECONFIG or ~/.kube/config, else the
    /// in-cluster service account.
    #[arg(long, env = "HEAL8S_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use. Default: the kubeconfig's current context.
    #[arg(long, env = "HEAL8S_CONTEXT")]
    pub context: Option<String>,
    /// Policy file whose configured custom resources are looked for.
    #[arg(long, env = "HEAL8S_POLICY")]
    pub policy: Option<PathBuf>,
    /// Built-in policy profile when no --policy is given: production or test-cluster.
    #[arg(long, env = "HEAL8S_PROFILE", value_parser = crate::args::parse_profile)]
    pub profile: Option<Profile>,
    /// Custom resources to look for, `plural.group/version`, comma-separated
    /// (replaces the policy's list).
    #[arg(long, env = "HEAL8S_CRD_RESOURCES", value_delimiter = ',')]
    pub crd_resources: Vec<String>,
    /// Output format: text or json.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: Output,
}

/// A group with its preferred version's resource types.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupReport {
    #[serde(flatten)]
    group: ApiGroup,
    resources: Vec<ApiResourceInfo>,
    /// Why its resources could not be read (a broken aggregated API).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// One configured custom resource and whether the cluster serves it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Configured {
    resource: String,
    present: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespaced: Option<bool>,
    /// Why it is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// Everything `discover` found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    connection: Connection,
    version: Option<ServerVersion>,
    platform: Platform,
    groups: BTreeMap<Family, Vec<GroupReport>>,
    custom_resources_enabled: bool,
    custom_resources: Vec<Configured>,
}

/// Run `heal8s discover`: the report, as text or JSON.
pub async fn run(args: &DiscoverArgs) -> anyhow::Result<String> {
    let overrides = PolicyOverrides {
        profile: args.profile,
        crd_resources: args.crd_resources.clone(),
        ..PolicyOverrides::default()
    };
    let policy = overrides.load(args.policy.as_deref())?;
    let (config, connection) =
        discovery::config(args.kubeconfig.as_deref(), args.context.as_deref())
            .await
            .context("cannot configure a Kubernetes client")?;
    let instance = std::env::var("HOSTNAME").unwrap_or_else(|_| "cli".into());
    let clients = Clients::from_config(config, &ClientSettings::for_instance(&instance))
        .map_err(|e| anyhow!("{e}"))?;
    let configured = &policy.detectors.custom_resources;
    let report = tokio::time::timeout(
        DEADLINE,
        discover(&clients, connection.clone(), &configured.resources),
    )
    .await
    .map_err(|_| {
        anyhow!(
            "the Kubernetes API at {} did not answer within {}s",
            connection.api_host,
            DEADLINE.as_secs()
        )
    })??;
    let report = Report {
        custom_resources_enabled: configured.enabled,
        ..report
    };
    Ok(match args.output {
        Output::Json => format!("{:#}\n", serde_json::to_value(&report).unwrap_or(json!({}))),
        Output::Text => text(&report),
    })
}

async fn discover(
    clients: &Clients,
    connection: Connection,
    configured: &[String],
) -> anyhow::Result<Report> {
    let client = clients.main.clone();
    let (version, groups) = tokio::join!(discovery::version(&client), discovery::groups(&client));
    let groups =
        groups.map_err(|e| anyhow!("cannot reach the Kubernetes API at {connection}: {e}"))?;
    let platform = Platform::of(&groups);
    let tasks: Vec<_> = groups
        .iter()
        .map(|g| {
            let (c, gv) = (client.clone(), g.preferred_group_version());
            tokio::spawn(async move { discovery::resources(&c, &gv).await })
        })
        .collect();
    let mut by_family: BTreeMap<Family, Vec<GroupReport>> = BTreeMap::new();
    for (g, task) in groups.into_iter().zip(tasks) {
        let (resources, error) = match task.await {
            Ok(Ok(r)) => (r, None),
            Ok(Err(e)) => (Vec::new(), Some(e.to_string())),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        by_family
            .entry(Family::of(&g.name))
            .or_default()
            .push(GroupReport {
                group: g,
                resources,
                error,
            });
    }
    for family in Family::ALL {
        by_family.entry(family).or_default();
    }
    let lookups = Resources::new(client.clone());
    let mut custom = Vec::new();
    for r in configured {
        custom.push(check(&lookups, r).await);
    }
    Ok(Report {
        connection,
        version: version.ok(),
        platform,
        groups: by_family,
        custom_resources_enabled: false,
        custom_resources: custom,
    })
}

/// Whether the cluster serves the configured resource `r`.
async fn check(lookups: &Resources, r: &str) -> Configured {
    let missing = |reason: String| Configured {
        resource: r.to_string(),
        present: false,
        kind: None,
        namespaced: None,
        reason: Some(reason),
    };
    let spec = match ResourceSpec::parse(r) {
        Ok(s) => s,
        Err(e) => return missing(e),
    };
    match lookups
        .lookup_plural(&spec.group, &spec.version, &spec.plural)
        .await
    {
        Ok(Lookup::Served(res)) => Configured {
            resource: r.to_string(),
            present: true,
            kind: Some(res.resource.kind),
            namespaced: Some(res.namespaced),
            reason: None,
        },
        Ok(Lookup::GroupNotInstalled) => {
            missing(format!("API group {} is not installed", spec.api_version()))
        }
        Ok(Lookup::NotInGroup) => missing(format!(
            "{} is served without {}",
            spec.api_version(),
            spec.plural
        )),
        Err(e) => missing(format!("could not be looked up: {e}")),
    }
}

fn text(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let version = r.version.as_ref().map_or_else(
        || "unknown version".to_string(),
        |v| format!("{} ({})", v.git_version, v.platform),
    );
    let addons = r.platform.addons();
    let _ = writeln!(out, "Cluster: {}", r.connection);
    let _ = writeln!(
        out,
        "Kubernetes {version}, distribution {}, add-ons: {}",
        r.platform.distribution(),
        if addons.is_empty() {
            "none".to_string()
        } else {
            addons.join(", ")
        }
    );
    for (family, groups) in &r.groups {
        let plural = if groups.len() == 1 { "" } else { "s" };
        let _ = writeln!(
            out,
            "\n{} ({} API group{plural})",
            family.title(),
            groups.len()
        );
        if groups.is_empty() {
            let _ = writeln!(out, "  none");
        }
        for g in groups {
            let versions = if g.group.versions.len() > 1 {
                format!(" (also served: {})", {
                    let others: Vec<&str> = g
                        .group
                        .versions
                        .iter()
                        .filter(|v| **v != g.group.preferred)
                        .map(String::as_str)
                        .collect();
                    others.join(", ")
                })
            } else {
                String::new()
            };
            let names: Vec<&str> = g.resources.iter().map(|x| x.name.as_str()).collect();
            let what = match &g.error {
                Some(e) => format!("unavailable: {e}"),
                None if names.is_empty() => "no resources".to_string(),
                None => names.join(", "),
            };
            let _ = writeln!(
                out,
                "  {}{versions}: {what}",
                g.group.preferred_group_version()
            );
        }
    }
    let _ = writeln!(
        out,
        "\nConfigured custom resources (detectors.customResources.resources; the detector is {}):",
        if r.custom_resources_enabled {
            "on"
        } else {
            "off"
        }
    );
    if r.custom_resources.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for c in &r.custom_resources {
        match (&c.kind, &c.reason) {
            (Some(kind), _) => {
                let scope = if c.namespaced == Some(true) {
                    "namespaced"
                } else {
                    "cluster-scoped"
                };
                let _ = writeln!(out, "  present  {} ({kind}, {scope})", c.resource);
            }
            (None, reason) => {
                let _ = writeln!(
                    out,
                    "  missing  {}: {}",
                    c.resource,
                    reason.as_deref().unwrap_or("not served")
                );
            }
        }
    }
    let (present, missing) =
        r.custom_resources.iter().fold(
            (0, 0),
            |(p, m), c| {
                if c.present { (p + 1, m) } else { (p, m + 1) }
            },
        );
    let _ = writeln!(out, "  {present} present, {missing} missing");
    out
}

/// `heal8s discover` on a runtime of its own: print the report, exit 0.
pub fn main(args: &DiscoverArgs) -> anyhow::Result<std::process::ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let text = runtime.block_on(run(args))?;
    print!("{text}");
    Ok(std::process::ExitCode::SUCCESS)
}
