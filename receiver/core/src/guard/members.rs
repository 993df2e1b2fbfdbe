//! Which served cluster an alert is about, when heal8s serves several (the
//! policy's `clusters`). The alert's cluster label (`guard.clusterLabel`)
//! must name a member exactly. An alert without the label, or naming a
//! cluster heal8s does not serve, is refused `unknown_cluster`: it is never
//! applied to a default cluster. The alert sender only names the cluster; the
//! member's own guard and live state decide the rest, and that guard refuses
//! an alert naming another cluster again (`wrong_cluster`).
//!
//! Owns: that choice. Must not connect anywhere.

use std::collections::BTreeMap;

use super::{Refusal, RefusalReason};
use crate::policy::clusters::Member;

/// The member `labels` name under `label`, or why none.
pub fn member_of<'a>(
    members: &'a [Member],
    label: &str,
    labels: &BTreeMap<String, String>,
) -> Result<&'a Member, Refusal> {
    let served = || {
        members
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    // Prometheus treats an empty label as absent
    let Some(named) = labels.get(label).filter(|v| !v.is_empty()) else {
        return Err(Refusal::new(
            RefusalReason::UnknownCluster,
            format!(
                "the alert has no {label} label, and this heal8s serves several clusters ({}): it does not guess which",
                served()
            ),
        ));
    };
    members.iter().find(|m| m.name == *named).ok_or_else(|| {
        Refusal::new(
            RefusalReason::UnknownCluster,
            format!(
                "the alert is about cluster {:?} (label {label}), which this heal8s does not serve ({})",
                crate::text::one_line(named, 64),
                served()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str) -> Member {
        Member {
            name: name.into(),
            context: Some(name.into()),
            kubeconfig: None,
            namespace: None,
            detectors: true,
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_label_picks_the_member_exactly() {
        let m = [member("prod-eu"), member("prod-us")];
        let got = member_of(&m, "cluster", &labels(&[("cluster", "prod-us")])).unwrap();
        assert_eq!(got.name, "prod-us");
        let got = member_of(&m, "k8s", &labels(&[("k8s", "prod-eu"), ("cluster", "x")])).unwrap();
        assert_eq!(got.name, "prod-eu");
    }

    #[test]
    fn no_label_or_an_empty_one_is_refused_not_defaulted() {
        let m = [member("prod-eu")];
        for l in [labels(&[]), labels(&[("cluster", "")])] {
            let r = member_of(&m, "cluster", &l).unwrap_err();
            assert_eq!(r.reason, RefusalReason::UnknownCluster);
            assert!(r.message.contains("no cluster label"), "{}", r.message);
            assert!(r.message.contains("prod-eu"), "{}", r.message);
        }
        // the label under another name does not count
        let r = member_of(&m, "k8s", &labels(&[("cluster", "prod-eu")])).unwrap_err();
        assert_eq!(r.reason, RefusalReason::UnknownCluster);
    }

    #[test]
    fn another_cluster_is_refused_and_never_matched_loosely() {
        let m = [member("prod-eu")];
        for other in ["prod-us", "PROD-EU", "prod-eu ", "prod"] {
            let r = member_of(&m, "cluster", &labels(&[("cluster", other)])).unwrap_err();
            assert_eq!(r.reason, RefusalReason::UnknownCluster, "{other}");
            assert!(r.message.contains("does not serve"), "{}", r.message);
        }
        // a hostile value is shown on one line and cut
        let long = format!("a\nb{}", "x".repeat(500));
        let r = member_of(&m, "cluster", &labels(&[("cluster", &long)])).unwrap_err();
        assert!(
            !r.message.contains('\n') && r.message.len() < 300,
            "{}",
            r.message
        );
    }
}
