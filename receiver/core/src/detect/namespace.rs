//! Namespace detector: which namespaces are watched (names, `*` patterns and
//! prefixes derived from names), and which watched ones are stale.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Namespace;
use serde::{Deserialize, Serialize};

use super::config::{Overrides, Profile};
use super::{Detector, DetectorSpec, Finding, Object, Watched, at_least, stale};
use crate::duration::PromDuration;
use crate::target::{Target, TargetKind, is_dns1123_label};

/// Namespace detector settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NamespaceDetector {
    pub enabled: bool,
    /// Names or `*` patterns to watch; a name such as `test-123` also watches `test-*`.
    pub watch: Vec<String>,
    /// Names or `*` patterns never signalled as stale (their pods are still healed).
    pub exclude: Vec<String>,
    /// Watched namespaces older than this are stale.
    pub stale_age: PromDuration,
}

impl DetectorSpec for NamespaceDetector {
    const KEY: &'static str = "namespaces";

    fn defaults(profile: Profile) -> NamespaceDetector {
        let test = profile == Profile::TestCluster;
        NamespaceDetector {
            enabled: test,
            watch: if test {
                vec!["test-*".into(), "e2e-*".into()]
            } else {
                Vec::new()
            },
            exclude: Vec::new(),
            stale_age: super::stale_age_of(profile),
        }
    }

    fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        at_least(&mut out, "staleAge", self.stale_age, 60);
        check_patterns(&mut out, "watch", &self.watch);
        check_patterns(&mut out, "exclude", &self.exclude);
        out
    }

    fn apply(&mut self, o: &Overrides) {
        if !o.namespaces.is_empty() {
            self.watch.clone_from(&o.namespaces);
        }
        if !o.exclude_namespaces.is_empty() {
            self.exclude.clone_from(&o.exclude_namespaces);
        }
        if let Some(a) = o.stale_age {
            self.stale_age = a;
        }
    }
}

impl Detector for NamespaceDetector {
    fn name(&self) -> &'static str {
        "namespaces"
    }

    fn enabled(&self) -> bool {
        self.enabled
    }

    fn watches(&self) -> Vec<Watched> {
        vec![Watched::Namespaces]
    }

    fn detect(&self, o: Object<'_>, now: Timestamp) -> Vec<Finding> {
        match o {
            Object::Namespace(n) => detect(n, self, now),
            _ => Vec::new(),
        }
    }
}

/// Add a problem for each entry of `list` (at `field`) that is not a
/// namespace name or `*` pattern.
pub(super) fn check_patterns(out: &mut Vec<(String, String)>, field: &str, list: &[String]) {
    for (i, p) in list.iter().enumerate() {
        if !is_valid_pattern(p) {
            out.push((
                format!("{field}[{i}]"),
                format!("{p:?} is not a namespace name or `*` pattern"),
            ));
        }
    }
}


/// Whether `p` is a namespace name or a pattern with `*` wildcards.
pub fn is_valid_pattern(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 63
        && p.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '*')
}

/// Glob match with `*` only.
pub fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// The prefix pattern a concrete name stands for: `test-123` → `test-*`,
/// `e2e-run-7f3a` → `e2e-run-*`; a name without a `-suffix` stands for itself.
pub fn derived_pattern(name: &str) -> String {
    if name.contains('*') {
        return name.to_string();
    }
    match name.rsplit_once('-') {
        Some((prefix, suffix))
            if !prefix.is_empty() && suffix.chars().any(|c| c.is_ascii_digit()) =>
        {
            format!("{prefix}-*")
        }
        _ => name.to_string(),
    }
}

/// Whether `name` matches any of `patterns` (each also standing for its derived prefix).
pub fn matches_any(patterns: &[String], name: &str) -> bool {
    patterns
        .iter()
        .any(|p| glob(p, name) || glob(&derived_pattern(p), name))
}

/// Everything the detector finds wrong with `ns` at `now`.
pub fn detect(ns: &Namespace, cfg: &NamespaceDetector, now: Timestamp) -> Vec<Finding> {
    let Some(name) = ns.metadata.name.as_deref() else {
        return Vec::new();
    };
    if !is_dns1123_label(name)
        || ns.metadata.deletion_timestamp.is_some()
        || !matches_any(&cfg.watch, name)
        || cfg.exclude.iter().any(|p| glob(p, name))
    {
        return Vec::new();
    }
    let Some(created) = ns.metadata.creation_timestamp.as_ref().map(|t| t.0) else {
        return Vec::new();
    };
    let mut target = Target::new(TargetKind::Namespace, None, name);
    target.uid = ns.metadata.uid.clone();
    stale(
        "Heal8sStaleNamespace",
        "namespaces",
        target,
        &format!("namespace {name}"),
        created,
        cfg.stale_age,
        now,
    )
    .into_iter()
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Detectors;
    use crate::detect::config::Profile;
    use serde_json::json;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn mk_ns(name: &str) -> Namespace {
        serde_json::from_value(
            json!({"metadata": {"name": name, "creationTimestamp": t(0).to_string()}}),
        )
        .unwrap()
    }

    #[test]
    fn globs_and_derived_prefixes() {
        assert!(glob("app-*", "app-1"));
        assert!(!glob("app-*", "myapp-1"));
        assert!(glob("*-e2e-*", "x-e2e-y"));
        assert!(glob("a*b*c", "aXbYc"));
        assert!(!glob("a*b*c", "aXcYb"));
        assert_eq!(derived_pattern("test-123"), "test-*");
        assert_eq!(derived_pattern("e2e-run-7f3a"), "e2e-run-*");
        assert_eq!(derived_pattern("staging"), "staging");
        assert!(matches_any(&["test-123".into()], "test-456"));
        assert!(!matches_any(&["test-123".into()], "prod-456"));
    }

    #[test]
    fn watched_namespace_older_than_stale_age_is_stale() {
        let mut c = Detectors::for_profile(Profile::TestCluster).namespaces;
        c.watch = vec!["test-1".into()];
        let ns = mk_ns("test-42");
        assert!(detect(&ns, &c, t(359)).is_empty());
        let f = detect(&ns, &c, t(360));
        assert_eq!(f[0].name, "Heal8sStaleNamespace");
        assert_eq!(f[0].target.kind, TargetKind::Namespace);
        assert!(detect(&mk_ns("prod-42"), &c, t(9999)).is_empty());
        c.exclude = vec!["test-4*".into()];
        assert!(
            detect(&ns, &c, t(9999)).is_empty(),
            "excluded is never stale"
        );
    }

    #[test]
    fn patterns_are_validated() {
        assert!(is_valid_pattern("app-*"));
        assert!(!is_valid_pattern("App"));
        assert!(!is_valid_pattern(""));
    }
}
