//! What a pull request says and where it lives: the stable branch name, the
//! title, the body a reviewer reads, the labels. Pure.
//!
//! Alert labels and live object names never reach a branch name or a path
//! unescaped: names are reduced to `[a-z0-9._-]`, and paths must stay inside
//! the configured roots.

use std::fmt::Write as _;

use crate::patch::FieldChange;

/// Longest branch name heal8s makes (git allows more; reviewers read less).
const MAX_BRANCH: usize = 200;

/// One path component of a branch name: lower case `[a-z0-9._-]`, no leading
/// dot or dash, no `..`, no `.lock` suffix, never empty.
pub fn branch_component(raw: &str) -> String {
    let mut out: String = raw
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '.' | '_' | '-') => c,
            _ => '-',
        })
        .collect();
    while out.contains("..") {
        out = out.replace("..", ".");
    }
    let trimmed = out.trim_start_matches(['.', '-']).trim_end_matches('.');
    let mut out = trimmed.strip_suffix(".lock").unwrap_or(trimmed).to_string();
    if out.is_empty() {
        out.push('x');
    }
    out.chars().take(63).collect()
}

/// `heal8s/<remediation>/<namespace>/<name>`: one branch, so one pull
/// request, per target workload and remediation.
pub fn branch_name(remediation: &str, namespace: Option<&str>, name: &str) -> String {
    let ns = namespace.map_or_else(|| "_cluster".to_string(), branch_component);
    let b = format!(
        "heal8s/{}/{ns}/{}",
        branch_component(remediation),
        branch_component(name)
    );
    b.chars().take(MAX_BRANCH).collect()
}

/// A repository path heal8s may write: relative, no `..`, no empty or
/// hidden components (`.github/` stays out of reach), under one of `roots`
/// (all paths when `roots` is empty).
pub fn check_path(path: &str, roots: &[String]) -> Result<(), String> {
    if path.is_empty() || path.starts_with('/') || path.contains('\\') || path.contains('\0') {
        return Err(format!("{path:?} is not a relative repository path"));
    }
    for part in path.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.starts_with('.') {
            return Err(format!("{path:?}: component {part:?} is not allowed"));
        }
    }
    let inside = roots.is_empty()
        || roots.iter().any(|r| {
            let r = r.trim_matches('/');
            r.is_empty() || path == r || path.starts_with(&format!("{r}/"))
        });
    if inside {
        Ok(())
    } else {
        Err(format!(
            "{path:?} is outside the configured roots ({})",
            roots.join(", ")
        ))
    }
}

/// Why the pull request exists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    /// The alert name, or `detector <name>`.
    pub trigger: String,
    /// `Deployment shop/web`, container `app`.
    pub workload: String,
    pub container: Option<String>,
    /// RFC 3339.
    pub first_seen: Option<String>,
    /// Facts with numbers: `restarts: 14`, `OOM kills: 3 (10:02, 10:17, 10:31 UTC)`,
    /// `HPA at maxReplicas since 09:40 UTC`.
    pub facts: Vec<String>,
    /// Alertmanager's `generatorURL`.
    pub generator_url: Option<String>,
    /// The alert's `runbook_url` annotation.
    pub runbook_url: Option<String>,
    /// The Remediation record's name, for `kubectl get remediation`.
    pub record: Option<String>,
}

/// A file the pull request changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChanges {
    pub path: String,
    pub fields: Vec<FieldChange>,
    pub notes: Vec<String>,
}

/// The title: what changes, on what.
pub fn title(remediation: &str, evidence: &Evidence, files: &[FileChanges]) -> String {
    let change = files
        .iter()
        .flat_map(|f| f.fields.first())
        .next()
        .map(|c| format!(" to {}", c.after))
        .unwrap_or_default();
    let what = match remediation {
        "bump-memory" => "raise the memory limit",
        "scale-up" => "raise the replica ceiling",
        "rollback-image" => "roll back the image",
        other => other,
    };
    let container = evidence
        .container
        .as_deref()
        .map(|c| format!(" ({c})"))
        .unwrap_or_default();
    format!("heal8s: {what} of {}{container}{change}", evidence.workload)
}

/// The body: what happened, what changes, why this value, links, how to
/// revert. Markdown; every value comes from heal8s's own evidence, and text
/// from alerts is shown as code so it cannot format the page.
///
/// Machine-readable markers for the apply-on-merge workflow close the body:
/// `<!-- heal8s-apply: -f FILE -->` or `-k DIR` per target (`apply`, checked
/// again by the workflow), and `<!-- heal8s-record: NAME -->`.
pub fn body(
    remediation: &str,
    evidence: &Evidence,
    files: &[FileChanges],
    why: Option<&str>,
    apply: &[String],
) -> String {
    let mut b = String::new();
    let code = |s: &str| format!("`{}`", s.replace('`', "'"));
    let _ = writeln!(b, "## What happened\n");
    let _ = writeln!(
        b,
        "{} fired for {}{}.",
        code(&evidence.trigger),
        code(&evidence.workload),
        evidence
            .container
            .as_deref()
            .map(|c| format!(", container {}", code(c)))
            .unwrap_or_default()
    );
    if let Some(first) = &evidence.first_seen {
        let _ = writeln!(b, "\n- first seen: {}", code(first));
    }
    for fact in &evidence.facts {
        let _ = writeln!(b, "- {}", fact.replace(['\n', '\r'], " "));
    }
    let _ = writeln!(b, "\n## What changes\n");
    let _ = writeln!(
        b,
        "| file | field | before | after |\n| --- | --- | --- | --- |"
    );
    for f in files {
        for c in &f.fields {
            let _ = writeln!(
                b,
                "| {} | {} | {} | {} |",
                code(&f.path),
                code(&c.path),
                c.before
                    .as_deref()
                    .map_or_else(|| "(unset)".to_string(), code),
                code(&c.after)
            );
        }
    }
    for note in files.iter().flat_map(|f| &f.notes) {
        let _ = writeln!(b, "\n> Note: {}", note.replace(['\n', '\r'], " "));
    }
    let _ = writeln!(b, "\n## Why this value\n");
    let _ = writeln!(
        b,
        "{}",
        why.map_or_else(
            || format!("The {remediation} remediation sets the value it was given."),
            |w| format!("{remediation}: {w}.")
        )
    );
    let links: Vec<String> = [
        evidence
            .generator_url
            .as_ref()
            .map(|u| format!("- [alert source]({})", url(u))),
        evidence
            .runbook_url
            .as_ref()
            .map(|u| format!("- [runbook]({})", url(u))),
        evidence.record.as_ref().map(|r| {
            format!(
                "- record: `kubectl get remediation {}`",
                r.replace('`', "'")
            )
        }),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !links.is_empty() {
        let _ = writeln!(b, "\n## Links\n\n{}", links.join("\n"));
    }
    let _ = writeln!(
        b,
        "\n## How to revert\n\nClose this pull request to decline: heal8s will not propose {remediation} for this workload again until the pull request is reopened or the ignore period ends. After merging, revert the merge commit (the apply-on-merge workflow applies the revert the same way)."
    );
    let _ = write!(
        b,
        "\n<sub>Opened by heal8s. Edit nothing on this branch by hand: heal8s updates it in place while the problem persists.</sub>\n"
    );
    let safe = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._/-".contains(c))
            && !s.contains("..")
            && !s.starts_with('/')
    };
    for target in apply {
        if let Some((flag, path)) = target.split_once(' ')
            && matches!(flag, "-f" | "-k")
            && safe(path)
        {
            let _ = write!(b, "\n<!-- heal8s-apply: {flag} {path} -->");
        }
    }
    if let Some(record) = evidence
        .record
        .as_deref()
        .filter(|r| safe(r) && !r.contains('/'))
    {
        let _ = write!(b, "\n<!-- heal8s-record: {record} -->");
    }
    if !apply.is_empty() || evidence.record.is_some() {
        b.push('\n');
    }
    b
}

/// Only http(s) links, with characters that would end a Markdown link escaped.
fn url(u: &str) -> String {
    if u.starts_with("https://") || u.starts_with("http://") {
        u.replace(' ', "%20")
            .replace(')', "%29")
            .replace('(', "%28")
    } else {
        "about:blank".to_string()
    }
}

/// Labels: `heal8s`, the remediation, and the environment when known.
pub fn labels(remediation: &str, environment: Option<&str>) -> Vec<String> {
    let mut l = vec!["heal8s".to_string(), branch_component(remediation)];
    if let Some(env) = environment {
        l.push(format!("env:{}", branch_component(env)));
    }
    l
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn branch_names_are_stable_and_safe() {
        assert_eq!(
            branch_name("bump-memory", Some("shop"), "web"),
            "heal8s/bump-memory/shop/web"
        );
        assert_eq!(
            branch_name("scale-up", None, "api"),
            "heal8s/scale-up/_cluster/api"
        );
        for evil in [
            "../../etc",
            "a b;rm -rf /",
            "$(reboot)",
            "x.lock",
            "..",
            "-flag",
            "A\nB",
            "ünï",
        ] {
            let b = branch_name("bump-memory", Some(evil), evil);
            assert!(
                b.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c)),
                "{b}"
            );
            assert!(
                !b.contains("..")
                    && !b.contains("/.")
                    && !b.contains("/-")
                    && !b.ends_with(".lock"),
                "{b}"
            );
        }
        let long = "x".repeat(500);
        assert!(branch_name(&long, Some(&long), &long).len() <= 200);
    }

    #[test]
    fn paths_stay_inside_the_roots() {
        let roots = vec!["apps".to_string(), "clusters/prod/".to_string()];
        assert!(check_path("apps/shop/web.yaml", &roots).is_ok());
        assert!(check_path("clusters/prod/x.yaml", &roots).is_ok());
        for bad in [
            "apps/../secrets.yaml",
            "/etc/passwd",
            "other/x.yaml",
            ".github/workflows/x.yml",
            "apps//x",
            "appsx/y.yaml",
            "",
        ] {
            assert!(check_path(bad, &roots).is_err(), "{bad}");
        }
        assert!(check_path("anything/x.yaml", &[]).is_ok());
        assert!(check_path(".github/workflows/x.yml", &[]).is_err());
    }

    #[test]
    fn the_body_says_what_why_and_how_to_revert_and_cannot_be_hijacked() {
        let evidence = Evidence {
            trigger: "KubeContainerOOMKilled".into(),
            workload: "Deployment shop/web".into(),
            container: Some("app".into()),
            first_seen: Some("2026-11-23T10:02:00Z".into()),
            facts: vec!["OOM kills: 3 (10:02, 10:17, 10:31 UTC)".into()],
            generator_url: Some("http://prometheus:9090/graph?g0.expr=x (y)".into()),
            runbook_url: Some("javascript:alert(1)".into()),
            record: Some("bump-memory-shop-web-1a2b".into()),
        };
        let files = vec![FileChanges {
            path: "apps/shop/web.yaml".into(),
            fields: vec![FieldChange {
                path: "spec.template.spec.containers.0.resources.limits.memory".into(),
                before: Some("1Gi".into()),
                after: "1280Mi".into(),
            }],
            notes: vec![],
        }];
        let t = title("bump-memory", &evidence, &files);
        assert_eq!(
            t,
            "heal8s: raise the memory limit of Deployment shop/web (app) to 1280Mi"
        );
        let b = body(
            "bump-memory",
            &evidence,
            &files,
            Some("from the current limit 1Gi: max(×1.2, +100Mi) rounded up to 64Mi"),
            &[
                "-k overlays/prod".to_string(),
                "-f ../../etc/passwd".to_string(),
            ],
        );
        for needle in [
            "`KubeContainerOOMKilled` fired for `Deployment shop/web`, container `app`.",
            "- OOM kills: 3 (10:02, 10:17, 10:31 UTC)",
            "| `apps/shop/web.yaml` | `spec.template.spec.containers.0.resources.limits.memory` | `1Gi` | `1280Mi` |",
            "bump-memory: from the current limit 1Gi",
            "[alert source](http://prometheus:9090/graph?g0.expr=x%20%28y%29)",
            "[runbook](about:blank)",
            "## How to revert",
            "\n<!-- heal8s-apply: -k overlays/prod -->\n<!-- heal8s-record: bump-memory-shop-web-1a2b -->\n",
        ] {
            assert!(b.contains(needle), "missing {needle:?} in\n{b}");
        }
        let hostile = Evidence {
            trigger: "X` <img src=x> `".into(),
            ..evidence
        };
        let b2 = body("bump-memory", &hostile, &files, None, &[]);
        assert!(b2.contains("`X' <img src=x> '`"));
        assert!(
            !b.contains("etc/passwd"),
            "an unsafe apply target is dropped"
        );
        assert_eq!(
            labels("bump-memory", Some("Prod EU")),
            vec!["heal8s", "bump-memory", "env:prod-eu"]
        );
    }
}
