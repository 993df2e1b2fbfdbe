//! What a pull request says and where it lives: the stable branch name, the
//! title, the body a reviewer reads, the labels. Pure.
//!
//! Alert labels and live object names never reach a branch name or a path
//! unescaped: names are reduced to `[a-z0-9._-]`, and paths must stay inside
//! the configured roots. In a title, body or commit message every value is
//! inert (`inert`): it cannot start a line, format, link, mention or hide.

use std::fmt::Write as _;

use super::inert;
use crate::patch::FieldChange;

/// Longest branch name heal8s makes (git allows more; reviewers read less).
const MAX_BRANCH: usize = 200;

/// Longest branch name component (a Kubernetes object name may have 253).
const MAX_COMPONENT: usize = 63;
/// Hex digits of the hash that ends a cut component.
const COMPONENT_HASH: usize = 10;

/// One path component of a branch name: lower case `[a-z0-9._-]`, no leading
/// dot or dash, no `..`, no `.lock` suffix, never empty, at most 63
/// characters. A longer one is cut and ends in `-` and a hash of all of
/// `raw`, so two names that share their first 63 characters never share a
/// branch (and a pull request); one that fits is kept as it is.
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
    if out.chars().count() <= MAX_COMPONENT {
        return out;
    }
    let whole = [("branch".to_string(), raw.to_string())].into();
    let hash = receiver_core::signal::label_fingerprint(&whole);
    let mut head: String = out
        .chars()
        .take(MAX_COMPONENT - COMPONENT_HASH - 1)
        .collect();
    while head.ends_with(['.', '-']) {
        head.pop();
    }
    format!("{head}-{}", &hash[..COMPONENT_HASH])
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

/// Why the pull request exists. Every field but `record` and
/// `record_namespace` may carry text an alert sender chose: the body and
/// title show it inert (see [`inert`]).
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
    /// Alertmanager's `generatorURL` (the alert's source), as the alert sent it.
    pub generator_url: Option<String>,
    /// The alert's `runbook_url` annotation, as the alert sent it.
    pub runbook_url: Option<String>,
    /// The Remediation record's name, for `kubectl get remediation`.
    pub record: Option<String>,
    /// The record's namespace (the target's); `None`: heal8s's own namespace.
    pub record_namespace: Option<String>,
    /// The signal's trace id (32 hex digits), as the record and logs name it.
    pub trace_id: Option<String>,
}

/// A file the pull request changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChanges {
    pub path: String,
    pub fields: Vec<FieldChange>,
    pub notes: Vec<String>,
}

/// Longest title (GitHub refuses longer ones); also the commit's subject.
pub const MAX_TITLE: usize = 256;
/// Most facts a body lists.
pub const MAX_FACTS: usize = 20;
/// The lines that open and close the markers block, the last lines of a body.
pub const MARKERS_BEGIN: &str = "<!-- heal8s-markers -->";
pub const MARKERS_END: &str = "<!-- /heal8s-markers -->";

/// The title (and commit subject): what changes, on what. One line, at most
/// [`MAX_TITLE`] characters, whatever the values hold: a newline would
/// otherwise give the commit message a body of the alert's choosing
/// (trailers such as `Co-authored-by:` included).
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
    inert::one_line(
        &format!("heal8s: {what} of {}{container}{change}", evidence.workload),
        MAX_TITLE,
    )
}

/// How the body's trace line starts (no value can start a line, so a line
/// starting so is heal8s's own).
const TRACE_LINE: &str = "- trace: ";

/// Whether two bodies say the same apart from the trace id: a pull request
/// is not rewritten for a new signal's trace alone (it keeps the trace of the
/// signal that opened it or last changed what it says).
pub fn same_apart_from_trace(a: &str, b: &str) -> bool {
    let lines = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with(TRACE_LINE))
            .map(str::to_string)
            .collect::<Vec<String>>()
    };
    lines(a) == lines(b)
}

/// The body: what happened, what changes, why this value, links, how to
/// revert. Markdown in which every value is inert: alert text, live object
/// names, repository values, rules and links are code spans they cannot
/// close ([`inert::code`]), links must pass [`inert::link`], and no value can
/// start a line.
///
/// Machine-readable markers for the apply-on-merge workflow close the body,
/// in one block that heal8s alone writes and the workflow alone trusts:
/// [`MARKERS_BEGIN`], `<!-- heal8s-apply: -f FILE -->` or `-k DIR` per target
/// (`apply`, checked again by the workflow), `<!-- heal8s-record:
/// NAMESPACE/NAME -->` (`NAME` alone for heal8s's own namespace), and
/// [`MARKERS_END`].
pub fn body(
    remediation: &str,
    evidence: &Evidence,
    files: &[FileChanges],
    why: Option<&str>,
    apply: &[String],
) -> String {
    use inert::{cell, code};
    let mut b = String::new();
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
    if let Some(id) = &evidence.trace_id {
        let sep = if evidence.first_seen.is_some() {
            ""
        } else {
            "\n"
        };
        let _ = writeln!(b, "{sep}{TRACE_LINE}{}", code(id));
    }
    for fact in evidence.facts.iter().take(MAX_FACTS) {
        let _ = writeln!(b, "- {}", code(fact));
    }
    if evidence.facts.len() > MAX_FACTS {
        let _ = writeln!(
            b,
            "- ({} more facts left out)",
            evidence.facts.len() - MAX_FACTS
        );
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
                cell(&f.path),
                cell(&c.path),
                c.before
                    .as_deref()
                    .map_or_else(|| "(unset)".to_string(), cell),
                cell(&c.after)
            );
        }
    }
    for note in files.iter().flat_map(|f| &f.notes) {
        let _ = writeln!(b, "\n> Note: {}", code(note));
    }
    let _ = writeln!(b, "\n## Why this value\n");
    let _ = writeln!(
        b,
        "{}",
        why.map_or_else(
            || format!(
                "The {} remediation sets the value it was given.",
                code(remediation)
            ),
            |w| format!("{}: {}.", code(remediation), code(w))
        )
    );
    let shown = |what: &str, u: &str| match inert::link(u) {
        Ok(u) => format!("- {what}: {}", inert::code_within(u, inert::MAX_URL)),
        Err(why) => format!("- {what}: left out ({why})"),
    };
    // a record whose namespace is not a namespace name is not named at all:
    // without it, the workflow would look in heal8s's own namespace
    let record = evidence
        .record
        .as_deref()
        .filter(|_| evidence.record_namespace.as_deref().is_none_or(dns_label));
    let record_namespace = evidence.record_namespace.as_deref();
    let links: Vec<String> = [
        evidence
            .generator_url
            .as_deref()
            .map(|u| shown("alert source", u)),
        evidence.runbook_url.as_deref().map(|u| shown("runbook", u)),
        record.map(|r| {
            let ns = record_namespace
                .map(|ns| format!("-n {ns} "))
                .unwrap_or_default();
            format!(
                "- record: {}",
                code(&format!("kubectl {ns}get remediation {r}"))
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
        "\n## How to revert\n\nClose this pull request to decline: heal8s will not propose {} for this workload again until the pull request is reopened or the ignore period ends. After merging, revert the merge commit (the apply-on-merge workflow applies the revert the same way).",
        code(remediation)
    );
    let _ = write!(
        b,
        "\n<sub>Opened by heal8s. Edit nothing on this branch by hand: heal8s updates it in place while the problem persists.</sub>\n"
    );
    let markers = markers(apply, record, record_namespace);
    if !markers.is_empty() {
        let _ = write!(b, "\n{MARKERS_BEGIN}\n{}{MARKERS_END}\n", markers.concat());
    }
    b
}

/// The marker lines (each ending in a newline) for the targets and the
/// record that pass the checks the workflow makes again.
fn markers(apply: &[String], record: Option<&str>, namespace: Option<&str>) -> Vec<String> {
    let safe = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._/-".contains(c))
            && !s.contains("..")
            && !s.starts_with(['/', '-'])
    };
    let mut out = Vec::new();
    for target in apply {
        if let Some((flag, path)) = target.split_once(' ')
            && matches!(flag, "-f" | "-k")
            && safe(path)
        {
            out.push(format!("<!-- heal8s-apply: {flag} {path} -->\n"));
        }
    }
    if let Some(record) = record.filter(|r| dns_subdomain(r)) {
        let ns = namespace.map(|ns| format!("{ns}/")).unwrap_or_default();
        out.push(format!("<!-- heal8s-record: {ns}{record} -->\n"));
    }
    out
}

/// An RFC 1123 label (a namespace name): `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at
/// most 63 characters.
pub fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// An RFC 1123 subdomain (an object name): labels joined by dots, at most
/// 253 characters.
pub fn dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(dns_label)
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
    fn long_names_that_share_a_prefix_get_their_own_branches() {
        let prefix = format!("payments-{}", "settlement-reconciler-".repeat(3));
        assert!(prefix.len() > 63);
        let (a, b) = (format!("{prefix}eu"), format!("{prefix}us"));
        let (ba, bb) = (
            branch_name("bump-memory", Some("shop"), &a),
            branch_name("bump-memory", Some("shop"), &b),
        );
        assert_ne!(ba, bb);
        for (branch, name) in [(&ba, &a), (&bb, &b)] {
            let last = branch.rsplit('/').next().unwrap();
            assert_eq!(last.len(), 63, "{branch}");
            assert!(name.starts_with(&last[..52]), "{branch}");
            assert_eq!(branch, &branch_name("bump-memory", Some("shop"), name));
        }
        // a name that fits keeps its branch, hash-free, as before
        let fits = "n".repeat(63);
        assert_eq!(
            branch_name("bump-memory", Some("shop"), &fits),
            format!("heal8s/bump-memory/shop/{fits}")
        );
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

    fn evidence() -> Evidence {
        Evidence {
            trigger: "alert KubeContainerOOMKilled".into(),
            workload: "Deployment shop/web".into(),
            container: Some("app".into()),
            first_seen: Some("2026-11-23T10:02:00Z".into()),
            facts: vec!["OOM kills: 3 (10:02, 10:17, 10:31 UTC)".into()],
            generator_url: Some("http://prometheus:9090/graph?g0.expr=x%20%28y%29".into()),
            runbook_url: Some("javascript:alert(1)".into()),
            record: Some("bump-memory-shop-web-1a2b".into()),
            record_namespace: Some("shop".into()),
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
        }
    }

    #[test]
    fn the_trace_id_is_a_list_item_of_its_own_with_or_without_a_first_seen() {
        let e = Evidence {
            first_seen: None,
            facts: vec![],
            ..evidence()
        };
        let b = body("bump-memory", &e, &files(), Some(WHY), &[]);
        assert!(
            b.contains("container `app`.\n\n- trace: `4bf92f3577b34da6a3ce929d0e0e4736`\n"),
            "{b}"
        );
        assert!(
            rendered(&b).contains("<li>trace: <code>4bf92f3577b34da6a3ce929d0e0e4736</code></li>")
        );
        let untraced = Evidence {
            trace_id: None,
            ..evidence()
        };
        let untraced = body("bump-memory", &untraced, &files(), Some(WHY), &[]);
        assert!(!untraced.contains("trace:"));
        // a new trace alone is not a new body; anything else is
        let traced = body("bump-memory", &evidence(), &files(), Some(WHY), &[]);
        let other = Evidence {
            trace_id: Some("0af7651916cd43dd8448eb211c80319c".into()),
            ..evidence()
        };
        let retraced = body("bump-memory", &other, &files(), Some(WHY), &[]);
        assert_ne!(traced, retraced);
        assert!(same_apart_from_trace(&traced, &retraced));
        assert!(same_apart_from_trace(&traced, &untraced));
        let changed = body("bump-memory", &other, &files(), Some("another reason"), &[]);
        assert!(!same_apart_from_trace(&traced, &changed));
        // an alert's text cannot pass for the trace line: values never start a line
        let sneaky = Evidence {
            facts: vec!["x\n- trace: `y`".into()],
            ..evidence()
        };
        let b = body("bump-memory", &sneaky, &files(), Some(WHY), &[]);
        assert_eq!(
            b.lines().filter(|l| l.starts_with(TRACE_LINE)).count(),
            1,
            "{b}"
        );
    }

    fn files() -> Vec<FileChanges> {
        vec![FileChanges {
            path: "apps/shop/web.yaml".into(),
            fields: vec![FieldChange {
                path: "spec.template.spec.containers.0.resources.limits.memory".into(),
                before: Some("1Gi".into()),
                after: "1280Mi".into(),
            }],
            notes: vec![],
        }]
    }

    const WHY: &str = "from the current limit 1Gi: max(×1.2, +100Mi) rounded up to 64Mi";

    /// The body as GitHub renders it: GitHub Flavored Markdown with raw HTML
    /// passed through (GitHub's sanitizer keeps comments and `<img>`).
    fn rendered(body: &str) -> String {
        let mut o = comrak::Options::default();
        o.extension.table = true;
        o.extension.autolink = true;
        o.extension.strikethrough = true;
        o.render.r#unsafe = true;
        comrak::markdown_to_html(body, &o)
    }

    /// The rendered HTML without its code spans and without the markers
    /// block: what is left is heal8s's own text and must stay inert.
    fn outside_code(html: &str) -> String {
        let mut out = String::new();
        let mut rest = html;
        while let Some(i) = rest.find("<code>") {
            out.push_str(&rest[..i]);
            rest = rest[i..].split_once("</code>").map_or("", |(_, r)| r);
        }
        out.push_str(rest);
        match out.find(MARKERS_BEGIN) {
            Some(i) => out[..i].to_string(),
            None => out,
        }
    }

    /// What a body must look like whatever the evidence holds: the sections
    /// in order, nothing rendered outside code that an alert could have
    /// chosen (no HTML, image, link, mention or comment), no line of the
    /// alert's making, and the markers block last.
    fn assert_inert(b: &str, e: &Evidence) {
        let html = rendered(b);
        let headings: Vec<&str> = html
            .split("<h2>")
            .skip(1)
            .filter_map(|h| h.split_once("</h2>").map(|(t, _)| t))
            .collect();
        let links = e.generator_url.is_some() || e.runbook_url.is_some() || e.record.is_some();
        let mut want = vec!["What happened", "What changes", "Why this value"];
        if links {
            want.push("Links");
        }
        want.push("How to revert");
        assert_eq!(headings, want, "{b}\n{html}");
        // the one changed field is one row of four cells
        assert_eq!(html.matches("<td>").count(), 4, "{b}\n{html}");
        let plain = outside_code(&html);
        for bad in ["@", "<img", "<a ", "<!--", "<script", "<sub><", "://"] {
            assert!(!plain.contains(bad), "{bad:?} outside code in\n{b}\n{html}");
        }
        // every line that is not heal8s's own text starts with one of its prefixes
        let before_markers = b.split(MARKERS_BEGIN).next().unwrap_or(b);
        for line in before_markers.lines() {
            assert!(
                line.is_empty()
                    || [
                        "## ",
                        "`",
                        "(empty) ",
                        "- ",
                        "| ",
                        "> Note: ",
                        "The ",
                        "Close this",
                        "<sub>Opened"
                    ]
                    .iter()
                    .any(|p| line.starts_with(p)),
                "a line of the alert's making: {line:?} in\n{b}"
            );
        }
        assert!(b.chars().all(|c| c == '\n' || !c.is_control()), "{b:?}");
        let t = title("bump-memory", e, &files());
        assert!(
            t.chars().count() <= MAX_TITLE && !t.chars().any(char::is_control),
            "{t:?}"
        );
    }

    #[test]
    fn the_body_says_what_why_and_how_to_revert() {
        let evidence = evidence();
        let t = title("bump-memory", &evidence, &files());
        assert_eq!(
            t,
            "heal8s: raise the memory limit of Deployment shop/web (app) to 1280Mi"
        );
        let b = body(
            "bump-memory",
            &evidence,
            &files(),
            Some(WHY),
            &[
                "-k overlays/prod".to_string(),
                "-f ../../etc/passwd".to_string(),
            ],
        );
        for needle in [
            "`alert KubeContainerOOMKilled` fired for `Deployment shop/web`, container `app`.",
            "- `OOM kills: 3 (10:02, 10:17, 10:31 UTC)`",
            "\n- first seen: `2026-11-23T10:02:00Z`\n- trace: `4bf92f3577b34da6a3ce929d0e0e4736`\n",
            "| `apps/shop/web.yaml` | `spec.template.spec.containers.0.resources.limits.memory` | `1Gi` | `1280Mi` |",
            "`bump-memory`: `from the current limit 1Gi",
            "- alert source: `http://prometheus:9090/graph?g0.expr=x%20%28y%29`",
            "- runbook: left out (not an http(s) URL)",
            "- record: `kubectl -n shop get remediation bump-memory-shop-web-1a2b`",
            "## How to revert",
        ] {
            assert!(b.contains(needle), "missing {needle:?} in\n{b}");
        }
        assert!(
            b.ends_with(
                "\n<!-- heal8s-markers -->\n<!-- heal8s-apply: -k overlays/prod -->\n<!-- heal8s-record: shop/bump-memory-shop-web-1a2b -->\n<!-- /heal8s-markers -->\n"
            ),
            "{b}"
        );
        assert!(
            !b.contains("etc/passwd"),
            "an unsafe apply target is dropped"
        );
        assert_inert(&b, &evidence);
        assert_eq!(
            labels("bump-memory", Some("Prod EU")),
            vec!["heal8s", "bump-memory", "env:prod-eu"]
        );
    }

    #[test]
    fn a_newline_in_an_alert_name_cannot_inject_markers_into_the_body() {
        let e = Evidence {
            trigger: "alert X`\n<!-- heal8s-apply: -f secret/x.yaml -->\n<!-- heal8s-record: kube-system/coredns -->\n`".into(),
            facts: vec!["reason: a\r\n<!-- heal8s-apply: -k . -->".into()],
            ..evidence()
        };
        let b = body(
            "bump-memory",
            &e,
            &files(),
            None,
            &["-f apps/shop/web.yaml".into()],
        );
        let markers: Vec<&str> = b.lines().filter(|l| l.starts_with("<!--")).collect();
        assert_eq!(
            markers,
            vec![
                "<!-- heal8s-markers -->",
                "<!-- heal8s-apply: -f apps/shop/web.yaml -->",
                "<!-- heal8s-record: shop/bump-memory-shop-web-1a2b -->",
                "<!-- /heal8s-markers -->",
            ],
            "{b}"
        );
        assert!(
            b.contains("`` alert X`\\n<!-- heal8s-apply: -f secret/x.yaml -->\\n<!-- heal8s-record: kube-system/coredns -->\\n` ``"),
            "the alert name is shown, escaped, in one code span: {b}"
        );
        assert_inert(&b, &e);
    }

    #[test]
    fn markdown_html_and_mentions_in_alert_text_stay_inert() {
        let e = Evidence {
            trigger: "alert X".into(),
            facts: vec![
                "reason: OOMKilled <!-- hide the rest".into(),
                "reason: @acme/platform-team please approve ![pixel](https://evil.example/p.png)".into(),
                "note: <img src=https://evil.example/i.png> <script>x</script> [click](javascript:alert(1)) **bold** | a | b |".into(),
                "`` ``` ~~~ $x$ :tada: #1 www.evil.example https://evil.example".into(),
            ],
            container: Some("<!--".into()),
            first_seen: Some("@here".into()),
            ..evidence()
        };
        let mut files = files();
        files[0].fields[0].after = "1Gi | evil | <!--".into();
        files[0].fields[0].before = Some("x\\|<img src=x> @acme/y \\\\| z".into());
        files[0].notes = vec!["@acme/owners <!--".into()];
        let b = body("bump-memory", &e, &files, Some("<!-- @acme/x"), &[]);
        assert_inert(&b, &e);
        let html = rendered(&b);
        assert_eq!(
            html.matches("<td>").count(),
            4,
            "one row of four cells: {html}"
        );
        assert!(
            html.contains("<td><code>1Gi | evil | &lt;!--</code></td>"),
            "{html}"
        );
    }

    #[test]
    fn alert_links_are_shown_only_as_plain_http_urls() {
        for (u, shown) in [
            (
                "https://runbooks.example/oom",
                "- runbook: `https://runbooks.example/oom`",
            ),
            (
                "javascript:alert(document.cookie)",
                "- runbook: left out (not an http(s) URL)",
            ),
            (
                "data:text/html;base64,PHNjcmlwdD4=",
                "- runbook: left out (not an http(s) URL)",
            ),
            (
                "https://admin:hunter2@grafana.example/",
                "- runbook: left out (credentials in the URL)",
            ),
            (
                "https://x.example/\n## Approved",
                "- runbook: left out (control characters",
            ),
        ] {
            let e = Evidence {
                runbook_url: Some(u.into()),
                ..evidence()
            };
            let b = body("bump-memory", &e, &files(), None, &[]);
            assert!(b.contains(shown), "{u:?}: {b}");
            assert!(!b.contains("hunter2") && !b.contains("## Approved"), "{b}");
            assert_inert(&b, &e);
        }
        let long = format!("https://x.example/graph?g0.expr={}", "a".repeat(1000));
        let e = Evidence {
            generator_url: Some(long.clone()),
            ..evidence()
        };
        let b = body("bump-memory", &e, &files(), None, &[]);
        assert!(
            b.contains(&format!("- alert source: `{long}`")),
            "shown whole: {b}"
        );
        let long = format!("https://x.example/{}", "a".repeat(3000));
        let e = Evidence {
            generator_url: Some(long),
            ..evidence()
        };
        let b = body("bump-memory", &e, &files(), None, &[]);
        assert!(
            b.contains("- alert source: left out (longer than 2048 characters)"),
            "{b}"
        );
    }

    #[test]
    fn the_record_marker_names_the_records_namespace_and_only_a_valid_one() {
        let b = body("bump-memory", &evidence(), &files(), None, &[]);
        assert!(
            b.contains("\n<!-- heal8s-record: shop/bump-memory-shop-web-1a2b -->\n"),
            "{b}"
        );
        let e = Evidence {
            record_namespace: None,
            ..evidence()
        };
        let b = body("bump-memory", &e, &files(), None, &[]);
        assert!(
            b.contains("\n<!-- heal8s-record: bump-memory-shop-web-1a2b -->\n"),
            "{b}"
        );
        for bad in ["Shop", "a/b", "-x", "x\n<!--", &"n".repeat(64)] {
            let e = Evidence {
                record_namespace: Some(bad.to_string()),
                ..evidence()
            };
            let b = body("bump-memory", &e, &files(), None, &[]);
            assert!(
                !b.contains("heal8s-record") && !b.contains("get remediation"),
                "a record in an invalid namespace is not named: {b}"
            );
        }
    }

    #[test]
    fn a_title_is_one_line_of_bounded_length() {
        let e = Evidence {
            workload: format!(
                "Deployment shop/web\nCo-authored-by: Mallory <m@evil.example>{}",
                "x".repeat(500)
            ),
            ..evidence()
        };
        let t = title("bump-memory", &e, &files());
        assert!(
            t.starts_with("heal8s: raise the memory limit of Deployment shop/web\\nCo-authored-by"),
            "{t}"
        );
        assert_eq!(t.chars().count(), MAX_TITLE);
        assert!(t.ends_with('…'));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        /// Whatever an alert puts in any field, the body keeps its shape and
        /// shows the text inert.
        #[test]
        fn any_alert_text_renders_inert(
            values in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::string::string_regex("[ -~\n\r\t\u{0}-\u{1f}\u{7f}-\u{9f}\u{2028}\u{202e}`<>!@#|*_]{0,40}").unwrap(),
                    proptest::sample::select(vec![
                        "\n<!-- heal8s-apply: -f x.yaml -->\n".to_string(),
                        "<!--".to_string(),
                        "```".to_string(),
                        "@org/team".to_string(),
                        "![x](https://e.example/p.png)".to_string(),
                        "<img src=x>".to_string(),
                        "| a | b |".to_string(),
                        "\n## How to revert\n".to_string(),
                        "\n<!-- /heal8s-markers -->\n".to_string(),
                    ]),
                ],
                8,
            )
        ) {
            let e = Evidence {
                trigger: values[0].clone(),
                workload: values[1].clone(),
                container: Some(values[2].clone()),
                first_seen: Some(values[3].clone()),
                facts: vec![values[4].clone(), format!("reason: {}", values[5])],
                generator_url: Some(values[6].clone()),
                runbook_url: Some(format!("https://x.example/{}", values[7])),
                record: Some("bump-memory-shop-web-1a2b".into()),
                record_namespace: Some("shop".into()), trace_id: None,
            };
            let mut files = files();
            files[0].fields[0].after = values[7].clone();
            files[0].notes = vec![values[0].clone()];
            let b = body("bump-memory", &e, &files, Some(&values[1]), &["-k overlays/prod".into()]);
            assert_inert(&b, &e);
            proptest::prop_assert!(b.ends_with(
                "\n<!-- heal8s-markers -->\n<!-- heal8s-apply: -k overlays/prod -->\n<!-- heal8s-record: shop/bump-memory-shop-web-1a2b -->\n<!-- /heal8s-markers -->\n"
            ));
        }
    }
}
