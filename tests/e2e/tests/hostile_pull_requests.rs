//! Hostile input on the pull-request path, end to end: a real `heal8s serve`
//! against the Kubernetes and GitHub emulations, fed what an alert sender or
//! a tenant controls (alert labels, object names, the `heal8s.io/source`
//! annotation on their own objects). Each case shows the attack opens no
//! pull request it should not, and that the honest case still gets its own.
//! What heal8s writes from hostile text (body, title, commit message) stays
//! inert, and the apply-on-merge workflow run on that body applies only what
//! the pull request changed. Every future route or remediation that opens
//! pull requests adds its hostile cases here (the cluster-side ones go to
//! `hostile_input.rs`). Append new cases; keep the helpers generic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

#[path = "support/workflow.rs"]
mod workflow;

use std::time::Duration;

use receiver_core::{Outcome, OutcomeKind};
use serde_json::{Value, json};
use testkit::github::GithubEmulator;
use testkit::kube::Emulator;
use testkit::{Heal8s, TempDir, eventually};

const TOKEN: &str = "hostile-pr-e2e-token";
const REPO: &str = "acme/manifests";
const WAIT: Duration = Duration::from_secs(30);

const OOM_ROUTE: &str = r#"  - name: oom-bump-memory
    matchers: ['alertname="KubeContainerOOMKilled"']
    remediation: bump-memory
    mode: pull-request
    params: {factor: 1.2, step: 100Mi, max: 8Gi, requests: keep}
"#;

fn ago(secs: i64) -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(secs)).to_string()
}

struct Setup {
    kube: Emulator,
    gh: GithubEmulator,
    heal8s: Heal8s,
    _dir: TempDir,
}

/// The emulations, `files` on the repository's main branch, and a heal8s
/// with these routes and `pullRequests.sources` rules (YAML list items, may
/// be empty).
async fn setup(files: &[(&str, &str)], routes: &str, sources: &str) -> Setup {
    let kube = Emulator::start().await.unwrap();
    let gh = GithubEmulator::start().await.unwrap();
    gh.create_repo("acme", "manifests", 3).unwrap();
    gh.put_files(REPO, "main", files, "initial manifests")
        .unwrap();
    let sources = if sources.is_empty() {
        String::new()
    } else {
        format!("  sources:\n{sources}")
    };
    let policy = format!(
        r#"guard:
  cooldown: 1s
pullRequests:
  repository: {REPO}
  pollInterval: 1s
  maxNewPerHour: 10
{sources}detectors:
  pods: {{enabled: false}}
  nodes: {{enabled: false}}
routes:
{routes}"#
    );
    let (heal8s, dir) = Heal8s::start_against(TOKEN, &kube, &gh, &policy, &[])
        .await
        .unwrap();
    Setup {
        kube,
        gh,
        heal8s,
        _dir: dir,
    }
}

/// A live Deployment `ns/name` (with `annotations`) whose one pod,
/// `<name>-5f7c-x1`, was OOM-killed; its namespace is created if missing.
fn oom_deployment(kube: &Emulator, ns: &str, name: &str, annotations: Value) {
    let _ = kube.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
    // a label value has at most 63 characters; a name may have 253
    let app = name.rsplit('.').next().unwrap();
    let template = json!({"metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": "app", "image": "registry.example/app:1.0.0"}]}});
    let d = kube
        .create(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "annotations": annotations},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": app}}, "template": template}
        }))
        .unwrap();
    let rs = kube
        .create(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": format!("{name}-5f7c"), "namespace": ns,
                "annotations": {"deployment.kubernetes.io/revision": "1"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                                     "uid": d["metadata"]["uid"], "controller": true}]},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": app}}, "template": template}
        }))
        .unwrap();
    kube.create(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("{name}-5f7c-x1"), "namespace": ns, "labels": {"app": app},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{name}-5f7c"),
                                 "uid": rs["metadata"]["uid"], "controller": true}]},
        "spec": {"containers": [{"name": "app", "image": "registry.example/app:1.0.0"}]},
        "status": {"phase": "Running", "startTime": ago(600),
            "containerStatuses": [{"name": "app", "image": "registry.example/app:1.0.0", "imageID": "",
                "ready": true, "restartCount": 2, "state": {"running": {"startedAt": ago(30)}},
                "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137,
                                             "startedAt": ago(300), "finishedAt": ago(31)}}}]}
    }))
    .unwrap();
}

/// The Deployment manifest heal8s finds for `ns/name`: 512Mi of memory.
fn deployment_yaml(ns: &str, name: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {ns}\n\
         spec:\n  template:\n    spec:\n      containers:\n        - name: app\n\
         \x20         image: registry.example/app:1.0.0\n          resources:\n\
         \x20           limits:\n              memory: 512Mi\n"
    )
}

/// The OOMKilled alert for the pod of `oom_deployment(ns, name)`.
fn oom_alert(ns: &str, name: &str, fingerprint: &str) -> Value {
    json!({"version": "4", "status": "firing", "receiver": "heal8s", "groupKey": "{}", "alerts": [{
        "status": "firing", "startsAt": ago(120), "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": fingerprint,
        "labels": {"alertname": "KubeContainerOOMKilled", "namespace": ns,
                   "pod": format!("{name}-5f7c-x1"), "container": "app"},
        "annotations": {}}]})
}

async fn post(h: &Heal8s, body: &Value) {
    assert_eq!(h.post_webhook(TOKEN, body).await, 200);
}

/// The newest outcome matching `pred`, waited for.
async fn outcome(h: &Heal8s, what: &str, pred: impl Fn(&Outcome) -> bool) -> Outcome {
    let found = eventually(WAIT, what, || {
        let outcomes = h.outcomes();
        let pred = &pred;
        async move { outcomes.await.into_iter().rev().find(|o| pred(o)) }
    })
    .await;
    match found {
        Ok(o) => o,
        Err(e) => panic!(
            "{e}\noutcomes: {:#?}\n--- heal8s ---\n{}",
            h.outcomes().await,
            h.proc.output()
        ),
    }
}

fn about(o: &Outcome, name: &str) -> bool {
    o.target.as_deref().is_some_and(|t| t.contains(name))
}

/// Two Deployments whose names share their first 63 characters (names may
/// have 253) get a branch and a pull request each: neither alert rewrites
/// the other's pull request, and each record points at its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_names_sharing_a_prefix_get_a_pull_request_each() {
    let prefix = format!("payments.{}", "settlement-reconciler.".repeat(3));
    assert!(prefix.len() > 63);
    let (eu, us) = (format!("{prefix}eu"), format!("{prefix}us"));
    let (eu_file, us_file) = (deployment_yaml("shop", &eu), deployment_yaml("shop", &us));
    let s = setup(
        &[
            ("apps/payments/eu.yaml", &eu_file),
            ("apps/payments/us.yaml", &us_file),
        ],
        OOM_ROUTE,
        "",
    )
    .await;
    oom_deployment(&s.kube, "shop", &eu, json!({}));
    oom_deployment(&s.kube, "shop", &us, json!({}));
    let h = &s.heal8s;

    post(h, &oom_alert("shop", &eu, "0000000000000e01")).await;
    let first = outcome(h, "eu's pull request", |o| {
        o.result == OutcomeKind::Acted && about(o, &eu)
    })
    .await;
    post(h, &oom_alert("shop", &us, "0000000000000e02")).await;
    let second = outcome(h, "us's pull request", |o| {
        o.result == OutcomeKind::Acted && about(o, &us)
    })
    .await;
    assert_eq!(
        second.pull_request.as_ref().map(|p| p.action.as_str()),
        Some("created"),
        "{second:#?}"
    );

    let pulls = s.gh.pulls(REPO);
    assert_eq!(pulls.len(), 2, "{pulls:#?}");
    let branch = |o: &Outcome| o.pull_request.as_ref().unwrap().branch.clone();
    let (eu_branch, us_branch) = (branch(&first), branch(&second));
    assert_ne!(eu_branch, us_branch);
    assert_ne!(
        first.pull_request.as_ref().map(|p| p.number),
        second.pull_request.as_ref().map(|p| p.number)
    );
    for (b, mine, other) in [
        (&eu_branch, "apps/payments/eu.yaml", "apps/payments/us.yaml"),
        (&us_branch, "apps/payments/us.yaml", "apps/payments/eu.yaml"),
    ] {
        assert!(b.len() <= "heal8s/bump-memory/shop/".len() + 63, "{b}");
        let changed = s.gh.file(REPO, b, mine).unwrap();
        assert!(changed.contains("memory: 640Mi"), "{b}: {changed}");
        assert_eq!(
            s.gh.file(REPO, b, other),
            s.gh.file(REPO, "main", other),
            "{b} changes only its own workload"
        );
    }

    // each record points at its own pull request
    let numbers = eventually(WAIT, "two PROpen records", || async {
        let open: Vec<Value> = s
            .kube
            .list("heal8s.io/v1alpha1", "Remediation", "shop")
            .into_iter()
            .filter(|r| r["status"]["phase"] == "PROpen")
            .map(|r| r["status"]["pullRequest"]["number"].clone())
            .collect();
        (open.len() == 2).then_some(open)
    })
    .await
    .unwrap();
    assert_ne!(numbers[0], numbers[1]);
}

/// The values file the Redis team's release is installed from.
const REDIS_VALUES: &str = "master:\n  resources:\n    limits:\n      memory: 1Gi\n";

/// A tenant's own Deployment carries `heal8s.io/source` naming another
/// team's Helm values file: no pull request, and the outcome says why. The
/// same file, mapped by the repository owner's rule to Redis's own workload,
/// is edited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_annotation_cannot_aim_an_edit_at_another_workloads_values_file() {
    let web = deployment_yaml("shop", "web");
    let s = setup(
        &[
            ("apps/web/deployment.yaml", &web),
            ("charts/redis/values.yaml", REDIS_VALUES),
        ],
        OOM_ROUTE,
        "    - {namespace: cache, name: redis-master, path: charts/redis/values.yaml, valuesPath: master}\n",
    )
    .await;
    let aimed = json!({"heal8s.io/source": "//charts/redis/values.yaml#master"});
    oom_deployment(&s.kube, "shop", "web", aimed.clone());
    oom_deployment(&s.kube, "cache", "redis-master", aimed);
    let h = &s.heal8s;

    post(h, &oom_alert("shop", "web", "0000000000000f01")).await;
    let failed = outcome(h, "the tenant's refusal", |o| {
        o.result == OutcomeKind::Failed && about(o, "web")
    })
    .await;
    let why = &failed.message;
    assert!(
        why.contains("charts/redis/values.yaml at master")
            && why.contains("Deployment shop/web")
            && why.contains("pullRequests.sources rule"),
        "{failed:#?}"
    );
    assert!(s.gh.pulls(REPO).is_empty(), "no pull request");
    let writes: Vec<String> =
        s.gh.requests()
            .iter()
            .filter(|r| r.mutating && r.path.starts_with("/repos/"))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
    assert!(
        writes.is_empty(),
        "nothing written to the repository: {writes:?}"
    );

    // the owner's rule maps Redis's own workload to the same component
    post(h, &oom_alert("cache", "redis-master", "0000000000000f02")).await;
    let acted = outcome(h, "redis's pull request", |o| {
        o.result == OutcomeKind::Acted && about(o, "redis-master")
    })
    .await;
    let branch = &acted.pull_request.as_ref().unwrap().branch;
    assert_eq!(branch, "heal8s/bump-memory/cache/redis-master");
    let values = s.gh.file(REPO, branch, "charts/redis/values.yaml").unwrap();
    assert!(values.contains("memory: 1280Mi"), "{values}");
    assert_eq!(s.gh.pulls(REPO).len(), 1);
}

/// A route that matches on `severity`, so the alert's sender chooses its name.
const PAGE_ROUTE: &str = r#"  - name: page-bump-memory
    matchers: ['severity="page"']
    remediation: bump-memory
    mode: pull-request
    params: {factor: 1.2, step: 100Mi, max: 8Gi, requests: keep}
"#;

/// A body as GitHub renders it (GitHub Flavored Markdown, raw HTML passed
/// to GitHub's sanitizer, which keeps comments and images), without its code
/// spans and without the markers block: what an alert could make GitHub
/// render, hide, fetch or notify.
fn rendered_outside_code(body: &str) -> (String, String) {
    let mut o = comrak::Options::default();
    o.extension.table = true;
    o.extension.autolink = true;
    o.extension.strikethrough = true;
    o.render.r#unsafe = true;
    let html = comrak::markdown_to_html(body, &o);
    let mut plain = String::new();
    let mut rest = html.as_str();
    while let Some(i) = rest.find("<code>") {
        plain.push_str(&rest[..i]);
        rest = rest[i..].split_once("</code>").map_or("", |(_, r)| r);
    }
    plain.push_str(rest);
    let plain = plain
        .split("<!-- heal8s-markers -->")
        .next()
        .unwrap_or_default()
        .to_string();
    (html, plain)
}

/// An alert whose name, `reason` label and links its sender wrote: a name
/// that closes its code span and adds marker lines, a reason with a mention,
/// an image and an unclosed comment. The pull request shows all of it as
/// text, every section stays visible, the links are shown as checked URLs,
/// the record marker names the record's namespace, and the workflow run on
/// that very body applies only the file the pull request changed and marks
/// the record where it lives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_alert_text_stays_inert_in_the_pull_request_and_the_workflow() {
    let web = deployment_yaml("shop", "web");
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n  namespace: kube-system\n";
    let main_files = [
        ("apps/web/deployment.yaml", web.as_str()),
        ("secret/x.yaml", secret),
    ];
    let s = setup(&main_files, PAGE_ROUTE, "").await;
    oom_deployment(&s.kube, "shop", "web", json!({}));
    let h = &s.heal8s;
    let alertname = "KubeContainerOOMKilled`\n<!-- heal8s-apply: -f secret/x.yaml -->\n<!-- heal8s-record: kube-system/coredns -->\n`";
    let alert = json!({"version": "4", "status": "firing", "receiver": "heal8s", "groupKey": "{}", "alerts": [{
        "status": "firing", "startsAt": ago(120), "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": "0000000000000a01",
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=oom",
        "labels": {"alertname": alertname, "severity": "page", "namespace": "shop",
                   "pod": "web-5f7c-x1", "container": "app",
                   "reason": "OOMKilled @acme/platform-team ![p](https://evil.example/p.png) <!--"},
        "annotations": {"runbook_url": "https://runbooks.example/oom"}}]});
    post(h, &alert).await;
    let acted = outcome(h, "the pull request", |o| {
        o.result == OutcomeKind::Acted && about(o, "web")
    })
    .await;
    let branch = acted.pull_request.as_ref().unwrap().branch.clone();
    let pr = s.gh.pulls(REPO).into_iter().next().unwrap();
    let body = pr.body.clone().unwrap();
    let record = eventually(WAIT, "the record in the target's namespace", || async {
        s.kube
            .list("heal8s.io/v1alpha1", "Remediation", "shop")
            .into_iter()
            .find(|r| r["spec"]["remediation"] == "bump-memory")
            .and_then(|r| r["metadata"]["name"].as_str().map(str::to_string))
    })
    .await
    .unwrap();

    // no line of the alert's making: the only marker lines are heal8s's block
    let record_marker = format!("<!-- heal8s-record: shop/{record} -->");
    let markers: Vec<&str> = body.lines().filter(|l| l.starts_with("<!--")).collect();
    assert_eq!(
        markers,
        vec![
            "<!-- heal8s-markers -->",
            "<!-- heal8s-apply: -f apps/web/deployment.yaml -->",
            record_marker.as_str(),
            "<!-- /heal8s-markers -->",
        ],
        "{body}"
    );
    // rendered, every section is visible and nothing outside code came from the alert
    let (html, plain) = rendered_outside_code(&body);
    for section in [
        "What happened",
        "What changes",
        "Why this value",
        "Links",
        "How to revert",
    ] {
        assert!(
            plain.contains(&format!("<h2>{section}</h2>")),
            "{section}: {html}"
        );
    }
    for bad in ["@", "<img", "<a ", "<!--", "://"] {
        assert!(!plain.contains(bad), "{bad:?} outside code: {html}");
    }
    assert!(
        body.contains(
            "- `reason: OOMKilled @acme/platform-team ![p](https://evil.example/p.png) <!--`"
        ),
        "{body}"
    );
    // the alert's links, checked and inert
    assert!(
        body.contains("- alert source: `http://prometheus.example:9090/graph?g0.expr=oom`"),
        "{body}"
    );
    assert!(
        body.contains("- runbook: `https://runbooks.example/oom`"),
        "{body}"
    );
    assert!(
        body.contains(&format!("`kubectl -n shop get remediation {record}`")),
        "{body}"
    );
    // the title and the commit message are one line each
    let message = &s.gh.commits_on(REPO, &branch)[0].message;
    for line in [&pr.title, message] {
        assert!(!line.trim_end().contains('\n'), "{line:?}");
    }

    // the workflow, on this body and a checkout of the merged branch
    let checkout: Vec<(String, String)> = main_files
        .iter()
        .map(|(p, _)| (p.to_string(), s.gh.file(REPO, &branch, p).unwrap()))
        .collect();
    let changed: Vec<&str> = main_files
        .iter()
        .filter(|(p, t)| s.gh.file(REPO, &branch, p).as_deref() != Some(*t))
        .map(|(p, _)| *p)
        .collect();
    assert_eq!(changed, vec!["apps/web/deployment.yaml"]);
    let sb = workflow::Sandbox::with_files(&checkout, &changed);
    let r = sb.run("Decide what to apply", &body, "", &[]);
    assert!(r.ok, "{}", r.log);
    assert_eq!(r.targets, "-f apps/web/deployment.yaml\n");
    assert_eq!(
        r.output,
        format!("record={record}\nrecord-namespace=shop\n")
    );
    let r = sb.run(
        "Mark the Remediation Applied and report",
        "",
        "",
        &[("RECORD", &record), ("RECORD_NAMESPACE", "shop")],
    );
    assert!(r.ok, "{}", r.log);
    assert!(
        r.log
            .contains(&format!("kubectl -n shop patch remediation {record} ")),
        "{}",
        r.log
    );
}
