//! The policy's `clusters` section: the clusters one heal8s serves. An
//! alert names its cluster in the label `guard.clusterLabel`; each member
//! names how to reach its cluster (a kubeconfig context, a kubeconfig file,
//! or both; neither is the default connection: `--kubeconfig` or in-cluster).
//!
//! Owns: the schema (strict) and its validation, every problem at once. Must
//! not connect anywhere (the service does) nor decide which member an alert
//! belongs to (`guard::members` does).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::PolicyIssue;

/// At most this many clusters: each one costs watchers and connections.
pub const MAX_CLUSTERS: usize = 32;

/// One cluster heal8s serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Member {
    /// The cluster's name: the value of the cluster label on its alerts.
    pub name: String,
    /// The kubeconfig context to use (in `kubeconfig`, or in the default
    /// kubeconfig: `$KUBECONFIG` or `~/.kube/config`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// A kubeconfig file for this cluster (its current context unless
    /// `context` names another).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<String>,
    /// heal8s's namespace in this cluster (its records, pause ConfigMap and
    /// stand-down Events); `--namespace` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Whether heal8s's own detectors watch this cluster (alerts are taken
    /// either way).
    #[serde(default = "yes")]
    pub detectors: bool,
}

fn yes() -> bool {
    true
}

impl Member {
    /// How this member connects, for messages: `context X in file F`.
    pub fn connection(&self) -> String {
        match (&self.context, &self.kubeconfig) {
            (Some(c), Some(f)) => format!("context {c:?} in {f}"),
            (Some(c), None) => format!("context {c:?} of the default kubeconfig"),
            (None, Some(f)) => format!("the current context of {f}"),
            (None, None) => "the default connection (--kubeconfig or in-cluster)".to_string(),
        }
    }
}

/// Parse the `clusters` list, reporting every problem under its path.
pub fn parse(v: &serde_json::Value, issues: &mut Vec<PolicyIssue>) -> Vec<Member> {
    let serde_json::Value::Array(raw) = v else {
        issues.push(PolicyIssue::new(
            "clusters",
            "must be a list of clusters (name, and context and/or kubeconfig)",
        ));
        return Vec::new();
    };
    if raw.len() > MAX_CLUSTERS {
        issues.push(PolicyIssue::new(
            "clusters",
            format!(
                "{} clusters; at most {MAX_CLUSTERS} are served by one heal8s",
                raw.len()
            ),
        ));
    }
    let mut members = Vec::new();
    for (i, m) in raw.iter().enumerate() {
        match serde_path_to_error::deserialize::<_, Member>(m) {
            Ok(m) => members.push((i, m)),
            Err(e) => issues.push(super::serde_issue(&format!("clusters[{i}]"), e)),
        }
    }
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut ways: BTreeMap<(Option<&str>, Option<&str>), usize> = BTreeMap::new();
    for (i, m) in &members {
        let at = format!("clusters[{i}]");
        if let Some(problem) = super::cluster_name_problem(&m.name) {
            issues.push(PolicyIssue::new(format!("{at}.name"), problem));
        }
        if let Some(first) = names.insert(&m.name, *i) {
            issues.push(PolicyIssue::new(
                format!("{at}.name"),
                format!(
                    "duplicate cluster name {:?} (also clusters[{first}])",
                    m.name
                ),
            ));
        }
        for (field, v) in [("context", &m.context), ("kubeconfig", &m.kubeconfig)] {
            if v.as_deref().is_some_and(|s| s.trim().is_empty()) {
                issues.push(PolicyIssue::new(
                    format!("{at}.{field}"),
                    "must not be empty (leave it out instead)",
                ));
            }
        }
        if let Some(ns) = &m.namespace
            && !crate::target::is_dns1123_label(ns)
        {
            issues.push(PolicyIssue::new(
                format!("{at}.namespace"),
                format!("{ns:?} is not a namespace name (a DNS label)"),
            ));
        }
        // one cluster under two names would get two budgets and two guards
        let way = (m.context.as_deref(), m.kubeconfig.as_deref());
        if let Some(first) = ways.insert(way, *i) {
            issues.push(PolicyIssue::new(
                at.clone(),
                format!(
                    "connects as clusters[{first}] does ({}): one cluster under two names would get two guards and two budgets",
                    m.connection()
                ),
            ));
        }
    }
    members.into_iter().map(|(_, m)| m).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;

    const ROUTES: &str =
        "routes:\n- {name: r, matchers: ['alertname=\"A\"'], remediation: delete-pod}\n";

    fn policy(clusters: &str) -> Result<Policy, crate::policy::PolicyError> {
        Policy::from_yaml(&format!("{clusters}\n{ROUTES}"))
    }

    fn paths(e: &crate::policy::PolicyError) -> Vec<String> {
        e.issues.iter().map(|i| i.path.clone()).collect()
    }

    #[test]
    fn members_parse_with_their_defaults() {
        let p = policy(
            "clusters:\n- {name: prod-eu, context: eu}\n- {name: prod-us, kubeconfig: /k/us, namespace: ops, detectors: false}",
        )
        .unwrap();
        assert_eq!(p.clusters.len(), 2);
        assert_eq!(p.clusters[0].context.as_deref(), Some("eu"));
        assert!(p.clusters[0].detectors);
        assert_eq!(p.clusters[1].kubeconfig.as_deref(), Some("/k/us"));
        assert_eq!(p.clusters[1].namespace.as_deref(), Some("ops"));
        assert!(!p.clusters[1].detectors);
        // what /policy serves loads back into an equal policy
        assert_eq!(Policy::from_value(&p.to_json()).unwrap(), p);
    }

    #[test]
    fn no_section_is_single_cluster() {
        assert!(policy("").unwrap().clusters.is_empty());
        assert!(
            !policy("")
                .unwrap()
                .to_json()
                .as_object()
                .unwrap()
                .contains_key("clusters")
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let e = policy(
            "clusters:\n- {name: a, context: ctx-x}\n- {name: a, context: ctx-y}\n- {name: ' b', context: ''}\n- {name: c, context: ctx-x}\n- {name: d, namespace: Not_A_Label}\n- {name: e, color: red}",
        )
        .unwrap_err();
        let p = paths(&e);
        for want in [
            "clusters[1].name",
            "clusters[2].name",
            "clusters[2].context",
            "clusters[3]",
            "clusters[4].namespace",
        ] {
            assert!(p.iter().any(|x| x == want), "{want} missing from {p:?}");
        }
        assert!(p.iter().any(|x| x.starts_with("clusters[5]")), "{p:?}");
        assert!(e.to_string().contains("two budgets"), "{e}");
    }

    #[test]
    fn not_a_list_and_too_many_are_refused() {
        let e = policy("clusters: {name: a}").unwrap_err();
        assert_eq!(paths(&e), vec!["clusters"]);
        let many: String = (0..=MAX_CLUSTERS)
            .map(|i| format!("- {{name: c{i}, context: c{i}}}\n"))
            .collect();
        let e = policy(&format!("clusters:\n{many}")).unwrap_err();
        assert!(e.to_string().contains("at most 32"), "{e}");
    }

    #[test]
    fn a_cluster_name_and_a_clusters_section_do_not_mix() {
        let e =
            policy("guard: {clusterName: hub}\nclusters:\n- {name: a, context: a}").unwrap_err();
        assert_eq!(paths(&e), vec!["guard.clusterName"]);
    }
}
