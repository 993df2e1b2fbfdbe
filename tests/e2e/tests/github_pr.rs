//! The pull request lifecycle through heal8s's GitHub client (octocrab, App
//! authentication) against the stateful GitHub emulation, and through Prism's
//! proxy, which checks every request and response against GitHub's OpenAPI
//! description: one pull request per workload and fix, updated in place,
//! suppressed after a close, resumed after a crash, paced and retried on
//! rate limits, capped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gitops::github::text::Evidence;
use gitops::github::{
    Auth, Github, GithubConfig, PrAction, Proposal, PullRequestSettings, Repo, propose,
};
use gitops::locate::{Workload, load_dir};
use gitops::patch::Edit;
use testkit::github::{
    Fault, GithubEmulator, PrismProxy, RequestMatch, TEST_APP_ID, TEST_APP_KEY_PEM,
};

const REPO: &str = "acme/manifests";

async fn emulator() -> GithubEmulator {
    let gh = GithubEmulator::start().await.unwrap();
    gh.create_repo("acme", "manifests", 7).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../gitops/tests/fixtures/repo");
    let files = load_dir(&fixture).unwrap();
    let list: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    gh.put_files(REPO, "main", &list, "initial manifests")
        .unwrap();
    gh
}

fn client(url: &str) -> Github {
    Github::new(GithubConfig::new(
        url,
        Auth::App {
            app_id: TEST_APP_ID,
            private_key_pem: TEST_APP_KEY_PEM.to_string(),
        },
    ))
    .unwrap()
}

fn settings() -> PullRequestSettings {
    PullRequestSettings {
        repo: Repo::parse(REPO).unwrap(),
        base: None,
        roots: vec![],
        sources: vec![],
        environment: Some("prod".into()),
        reviewers: vec![],
        assignees: vec![],
        ignore_closed_for: Duration::from_secs(3600),
        max_files: 1000,
        max_new_per_hour: Some(10),
        max_open: Some(10),
    }
}

fn bump(ns: &str, name: &str, memory: &str) -> Proposal {
    Proposal {
        remediation: "bump-memory".into(),
        workload: Workload {
            kind: "Deployment".into(),
            namespace: Some(ns.into()),
            name: name.into(),
            source_annotation: None,
        },
        container: Some("app".into()),
        edit: Edit::Memory(memory.into()),
        evidence: Evidence {
            trigger: "alert KubeContainerOOMKilled".into(),
            workload: format!("Deployment {ns}/{name}"),
            container: Some("app".into()),
            facts: vec!["OOM kills: 3".into()],
            record: Some(format!("bump-memory-{name}")),
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
            ..Evidence::default()
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pull_request_per_workload_updated_in_place_and_suppressed_after_a_close() {
    let gh = emulator().await;
    let github = client(&gh.url());
    let mut cache = BTreeMap::new();
    let s = settings();

    let s = PullRequestSettings {
        reviewers: vec!["sre-oncall".into()],
        assignees: vec!["alice".into()],
        ..s
    };
    let (prepared, first) = propose(&github, &s, &bump("prod", "prod-api", "768Mi"), &mut cache)
        .await
        .unwrap();
    assert_eq!(first.action, PrAction::Created);
    assert_eq!(prepared.request.files[0].path, "overlays/prod/memory.yaml");
    let pulls = gh.pulls(REPO);
    assert_eq!(pulls.len(), 1);
    let pr = &pulls[0];
    assert_eq!(pr.head_ref, "heal8s/bump-memory/prod/prod-api");
    assert_eq!(pr.base_ref, "main");
    assert_eq!(pr.user, "heal8s[bot]", "opened as the App installation");
    assert_eq!(pr.labels, vec!["heal8s", "bump-memory", "env:prod"]);
    assert_eq!(pr.requested_reviewers, vec!["sre-oncall"]);
    assert_eq!(pr.assignees, vec!["alice"]);
    assert!(
        pr.body
            .as_deref()
            .unwrap()
            .contains("<!-- heal8s-apply: -k overlays/prod -->")
    );
    let on_branch = gh
        .file(REPO, &pr.head_ref, "overlays/prod/memory.yaml")
        .unwrap();
    assert!(
        on_branch.contains("memory: 768Mi # prod traffic"),
        "{on_branch}"
    );
    assert_eq!(
        gh.file(REPO, "main", "overlays/prod/memory.yaml").unwrap(),
        load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../gitops/tests/fixtures/repo"))
            .unwrap()["overlays/prod/memory.yaml"],
        "main is untouched"
    );
    eprintln!("new pull request: {} GitHub calls", first.calls);

    // the same fix again, many times, each from a signal of its own (a new
    // trace): still one pull request, nothing written, the first trace kept
    let writes_before = github.counters.writes.load(Ordering::Relaxed);
    let mut repeat_calls = 0;
    for i in 0..20 {
        let mut again = bump("prod", "prod-api", "768Mi");
        again.evidence.trace_id = Some(format!("{:032x}", i + 1));
        let (_, again) = propose(&github, &s, &again, &mut cache).await.unwrap();
        assert_eq!(again.action, PrAction::Unchanged);
        assert_eq!(again.number, first.number);
        repeat_calls = again.calls;
    }
    assert_eq!(
        github.counters.writes.load(Ordering::Relaxed),
        writes_before
    );
    assert_eq!(gh.pulls(REPO).len(), 1);
    assert!(
        gh.pulls(REPO)[0]
            .body
            .as_deref()
            .unwrap()
            .contains("- trace: `4bf92f3577b34da6a3ce929d0e0e4736`")
    );
    eprintln!("unchanged repeat: {repeat_calls} GitHub calls (reads only)");

    // a new value: the same pull request, its branch rebuilt in one commit on main
    let (_, updated) = propose(&github, &s, &bump("prod", "prod-api", "1Gi"), &mut cache)
        .await
        .unwrap();
    assert_eq!(updated.action, PrAction::Updated);
    assert_eq!(updated.number, first.number);
    let pulls = gh.pulls(REPO);
    assert_eq!(pulls.len(), 1);
    assert_eq!(pulls[0].head_sha, updated.head_sha);
    assert!(
        gh.file(REPO, &pulls[0].head_ref, "overlays/prod/memory.yaml")
            .unwrap()
            .contains("memory: 1Gi # prod traffic")
    );
    let commits = gh.commits_on(REPO, &pulls[0].head_ref);
    assert_eq!(
        commits[0].parents,
        vec![gh.branch_sha(REPO, "main").unwrap()],
        "one commit on the current main"
    );
    assert!(pulls[0].body.as_deref().unwrap().contains("`1Gi`"));
    eprintln!("update: {} GitHub calls", updated.calls);

    // closed without merging: heal8s stays quiet for that workload and fix
    gh.close_pull(REPO, first.number).unwrap();
    let (_, quiet) = propose(&github, &s, &bump("prod", "prod-api", "2Gi"), &mut cache)
        .await
        .unwrap();
    assert_eq!(quiet.action, PrAction::Suppressed);
    assert_eq!(gh.pulls(REPO).len(), 1);
    // reopened: it is updated again
    gh.reopen_pull(REPO, first.number).unwrap();
    let (_, back) = propose(&github, &s, &bump("prod", "prod-api", "2Gi"), &mut cache)
        .await
        .unwrap();
    assert_eq!(back.action, PrAction::Updated);

    // a conditional look costs nothing while nothing changes
    let (open, etag) = github
        .pull_state_if_changed(&s.repo, first.number, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(open.state, "open");
    let etag = etag.expect("an etag");
    assert!(
        github
            .pull_state_if_changed(&s.repo, first.number, Some(&etag))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(gh.requests().last().unwrap().status, 304);

    // merged: the state says so
    gh.merge_pull(REPO, first.number).unwrap();
    let (merged, _) = github
        .pull_state_if_changed(&s.repo, first.number, Some(&etag))
        .await
        .unwrap()
        .expect("changed since the etag");
    assert!(merged.merged);
    let state = github.pull_state(&s.repo, first.number).await.unwrap();
    assert!(state.merged && state.state == "closed", "{state:?}");
    assert!(
        gh.file(REPO, "main", "overlays/prod/memory.yaml")
            .unwrap()
            .contains("memory: 2Gi")
    );
    // the merged value is on main now: nothing left to propose
    let err = propose(&github, &s, &bump("prod", "prod-api", "2Gi"), &mut cache)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.patch_error(),
            Some(gitops::patch::PatchError::NoChange(_))
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secondary_rate_limit_waits_and_then_succeeds_without_duplicates() {
    let gh = emulator().await;
    let github = client(&gh.url());
    gh.faults().fail_next(
        1,
        RequestMatch::any()
            .method("POST")
            .prefix("/repos/acme/manifests/pulls"),
        Fault::secondary_rate_limit(1),
    );
    let start = Instant::now();
    let (_, out) = propose(
        &github,
        &settings(),
        &bump("prod", "prod-api", "768Mi"),
        &mut BTreeMap::new(),
    )
    .await
    .unwrap();
    assert_eq!(out.action, PrAction::Created);
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "waited for retry-after"
    );
    assert_eq!(github.counters.retries.load(Ordering::Relaxed), 1);
    assert_eq!(gh.pulls(REPO).len(), 1);
    let posts = gh
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/repos/acme/manifests/pulls")
        .count();
    assert_eq!(posts, 2, "the refused request and its retry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cut_off_between_branch_and_pull_request_resumes_without_duplicates() {
    let gh = emulator().await;
    let github = client(&gh.url());
    // opening the pull request fails as if heal8s died right there (a write
    // that creates is never retried blindly after a server error)
    gh.faults().fail_next(
        1,
        RequestMatch::any()
            .method("POST")
            .prefix("/repos/acme/manifests/pulls"),
        Fault::status(502),
    );
    let err = propose(
        &github,
        &settings(),
        &bump("prod", "prod-api", "768Mi"),
        &mut BTreeMap::new(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("502"), "{err}");
    assert!(
        gh.branches(REPO)
            .contains(&"heal8s/bump-memory/prod/prod-api".to_string())
    );
    assert!(gh.pulls(REPO).is_empty());
    // the next run (a new process: a new client) finds the branch and opens the one pull request
    let github = client(&gh.url());
    let (_, out) = propose(
        &github,
        &settings(),
        &bump("prod", "prod-api", "768Mi"),
        &mut BTreeMap::new(),
    )
    .await
    .unwrap();
    assert_eq!(out.action, PrAction::Created);
    assert_eq!(gh.pulls(REPO).len(), 1);
    assert_eq!(
        gh.branches(REPO)
            .iter()
            .filter(|b| b.starts_with("heal8s/"))
            .count(),
        1
    );
    let commits = gh.commits_on(REPO, "heal8s/bump-memory/prod/prod-api");
    assert_eq!(
        commits[0].parents,
        vec![gh.branch_sha(REPO, "main").unwrap()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_put_new_pull_requests_off_but_never_updates() {
    let gh = emulator().await;
    let github = client(&gh.url());
    let s = PullRequestSettings {
        max_open: Some(1),
        ..settings()
    };
    let mut cache = BTreeMap::new();
    let (_, a) = propose(&github, &s, &bump("prod", "prod-api", "768Mi"), &mut cache)
        .await
        .unwrap();
    assert_eq!(a.action, PrAction::Created);
    let (_, b) = propose(&github, &s, &bump("staging", "api", "384Mi"), &mut cache)
        .await
        .unwrap();
    assert_eq!(b.action, PrAction::Deferred);
    assert_eq!(gh.pulls(REPO).len(), 1);
    assert_eq!(
        gh.branches(REPO)
            .iter()
            .filter(|br| br.starts_with("heal8s/"))
            .count(),
        1,
        "nothing written when deferred"
    );
    let (_, a2) = propose(&github, &s, &bump("prod", "prod-api", "1Gi"), &mut cache)
        .await
        .unwrap();
    assert_eq!(
        a2.action,
        PrAction::Updated,
        "the open one is still updated"
    );
    let s = PullRequestSettings {
        max_new_per_hour: Some(1),
        max_open: None,
        ..settings()
    };
    let (_, c) = propose(&github, &s, &bump("staging", "api", "384Mi"), &mut cache)
        .await
        .unwrap();
    assert_eq!(
        c.action,
        PrAction::Deferred,
        "one was opened in the last hour"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_and_a_wrong_key_are_handled() {
    let gh = emulator().await;
    let bad = Github::new(GithubConfig::new(
        gh.url(),
        Auth::App {
            app_id: TEST_APP_ID,
            private_key_pem: testkit::github::WRONG_APP_KEY_PEM.to_string(),
        },
    ))
    .unwrap();
    let err = propose(
        &bad,
        &settings(),
        &bump("prod", "prod-api", "768Mi"),
        &mut BTreeMap::new(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    assert!(gh.pulls(REPO).is_empty());
    assert!(
        format!("{bad:?}").contains("<redacted>"),
        "the key never reaches a log"
    );
    let err = Github::new(GithubConfig::new(
        gh.url(),
        Auth::App {
            app_id: 1,
            private_key_pem: "not a key".into(),
        },
    ))
    .unwrap_err();
    assert!(err.to_string().contains("not an RSA PEM key"), "{err}");
}

/// The same lifecycle through `prism proxy --errors` in front of the
/// emulation: every request heal8s sends and every response it gets must
/// match GitHub's official OpenAPI description.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_prism_the_pull_request_lifecycle_matches_githubs_openapi_description() {
    let gh = emulator().await;
    let prism = PrismProxy::start(&gh.url()).await.unwrap();
    let github = client(&prism.url);
    let s = settings();
    let mut cache = BTreeMap::new();
    let (_, created) = propose(&github, &s, &bump("prod", "prod-api", "768Mi"), &mut cache)
        .await
        .unwrap();
    assert_eq!(created.action, PrAction::Created);
    let (_, same) = propose(&github, &s, &bump("prod", "prod-api", "768Mi"), &mut cache)
        .await
        .unwrap();
    assert_eq!(same.action, PrAction::Unchanged);
    let (_, updated) = propose(&github, &s, &bump("prod", "prod-api", "1Gi"), &mut cache)
        .await
        .unwrap();
    assert_eq!(updated.action, PrAction::Updated);
    // several files' worth of the git data API, and the contents API: a second workload
    let (_, other) = propose(&github, &s, &bump("staging", "api", "384Mi"), &mut cache)
        .await
        .unwrap();
    assert_eq!(other.action, PrAction::Created);
    gh.merge_pull(REPO, created.number).unwrap();
    assert!(
        github
            .pull_state(&s.repo, created.number)
            .await
            .unwrap()
            .merged
    );
    let violations = prism.violations().unwrap();
    assert!(
        violations.is_empty(),
        "contract violations: {violations:#?}"
    );
    let exchanges = prism.exchanges_at_least(20).unwrap();
    assert!(
        exchanges.len() >= 20,
        "the run went through Prism: {} exchanges",
        exchanges.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_rate_limit_waits_for_the_reset() {
    let gh = emulator().await;
    let github = client(&gh.url());
    let reset = jiff::Timestamp::now().as_second() as u64 + 1;
    gh.faults().fail_next(
        1,
        RequestMatch::any()
            .method("GET")
            .prefix("/repos/acme/manifests/git/trees"),
        Fault::primary_rate_limit(reset),
    );
    let start = Instant::now();
    let (_, out) = propose(
        &github,
        &settings(),
        &bump("prod", "prod-api", "768Mi"),
        &mut BTreeMap::new(),
    )
    .await
    .unwrap();
    assert_eq!(out.action, PrAction::Created);
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "waited until the reset"
    );
    assert_eq!(github.counters.retries.load(Ordering::Relaxed), 1);
}

/// GitHub's 422 "A pull request already exists" (another replica, or an
/// answer lost on the way back) counts as success: the existing one is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_already_existing_pull_request_is_success_not_a_duplicate() {
    let gh = emulator().await;
    let github = client(&gh.url());
    let s = settings();
    let (_, first) = propose(
        &github,
        &s,
        &bump("prod", "prod-api", "768Mi"),
        &mut BTreeMap::new(),
    )
    .await
    .unwrap();
    // the next look for it misses it, as if it were being opened right now
    gh.faults().fail_next(
        1,
        RequestMatch::any()
            .method("GET")
            .prefix("/repos/acme/manifests/pulls")
            .query("head="),
        Fault::status(200).with_body(serde_json::json!([])),
    );
    let (_, again) = propose(
        &github,
        &s,
        &bump("prod", "prod-api", "768Mi"),
        &mut BTreeMap::new(),
    )
    .await
    .unwrap();
    assert_eq!(again.number, first.number);
    assert_eq!(gh.pulls(REPO).len(), 1);
    assert!(
        gh.requests().iter().any(|r| r.method == "POST"
            && r.path == "/repos/acme/manifests/pulls"
            && r.status == 422),
        "GitHub refused the duplicate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_files_in_the_repository_cost_little_and_block_nothing() {
    let gh = emulator().await;
    let github = client(&gh.url());
    // beside the real manifests: a file larger than heal8s reads, and one
    // over the anchor limit; neither declares the workload
    let huge = format!(
        "kind: ConfigMap\nmetadata: {{name: huge}}\ndata: {{x: [{}1]}}\n",
        "1,".repeat(gitops::yaml::MAX_FILE_BYTES / 2)
    );
    let anchors: String = (0..=gitops::yaml::MAX_ANCHORS)
        .map(|i| format!("a{i}: &a{i} v\n"))
        .collect();
    gh.put_files(
        REPO,
        "main",
        &[("apps/huge.yaml", &huge), ("apps/anchors.yaml", &anchors)],
        "hostile files",
    )
    .unwrap();
    gh.clear_requests();
    let (prepared, out) = propose(
        &github,
        &settings(),
        &bump("prod", "prod-api", "768Mi"),
        &mut BTreeMap::new(),
    )
    .await
    .unwrap();
    assert_eq!(out.action, PrAction::Created);
    assert_eq!(prepared.request.files[0].path, "overlays/prod/memory.yaml");
    // every YAML file was read but the oversized one: the tree said its size
    let blob_reads = gh
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/git/blobs/"))
        .count();
    let readable = gh
        .files(REPO, "main")
        .iter()
        .filter(|p| {
            (p.ends_with(".yaml") || p.ends_with(".yml") || p.ends_with("Kustomization"))
                && p.as_str() != "apps/huge.yaml"
        })
        .count();
    assert_eq!(blob_reads, readable);
}
