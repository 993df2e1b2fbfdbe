//! A declarative fix becomes a prepared pull request: the right file, the
//! stable branch, the body with its markers, the labels; paths outside the
//! configured roots are refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use gitops::github::text::Evidence;
use gitops::github::{Proposal, ProposeError, PullRequestSettings, Repo, prepare};
use gitops::locate::{Source, Workload, load_dir};
use gitops::patch::Edit;

fn settings(roots: &[&str]) -> PullRequestSettings {
    PullRequestSettings {
        repo: Repo::parse("acme/manifests").unwrap(),
        base: None,
        roots: roots.iter().map(|r| r.to_string()).collect(),
        sources: vec![],
        environment: Some("prod".into()),
        reviewers: vec!["sre-oncall".into()],
        assignees: vec![],
        ignore_closed_for: Duration::from_secs(7 * 24 * 3600),
        max_files: 1000,
        max_new_per_hour: Some(2),
        max_open: Some(10),
    }
}

fn proposal(ns: &str, name: &str, edit: Edit) -> Proposal {
    Proposal {
        remediation: "bump-memory".into(),
        workload: Workload {
            kind: "Deployment".into(),
            namespace: Some(ns.into()),
            name: name.into(),
            source_annotation: None,
        },
        container: Some("app".into()),
        edit,
        evidence: Evidence {
            trigger: "KubeContainerOOMKilled".into(),
            workload: format!("Deployment {ns}/{name}"),
            container: Some("app".into()),
            record: Some("bump-memory-prod-api-0a1b".into()),
            record_namespace: Some(ns.into()),
            ..Evidence::default()
        },
    }
}

#[test]
fn a_kustomize_overlay_fix_is_one_file_with_an_apply_marker_for_the_overlay() {
    let files =
        load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repo")).unwrap();
    let p = prepare(
        &files,
        &settings(&[]),
        &proposal("prod", "prod-api", Edit::Memory("768Mi".into())),
    )
    .unwrap();
    assert_eq!(p.request.branch, "heal8s/bump-memory/prod/prod-api");
    assert_eq!(p.request.files.len(), 1);
    assert_eq!(p.request.files[0].path, "overlays/prod/memory.yaml");
    assert!(
        p.request.files[0]
            .text
            .contains("memory: 768Mi # prod traffic")
    );
    assert_eq!(p.apply, vec!["-k overlays/prod".to_string()]);
    assert!(
        p.request
            .body
            .contains("<!-- heal8s-apply: -k overlays/prod -->"),
        "{}",
        p.request.body
    );
    assert!(
        p.request
            .body
            .contains("<!-- heal8s-record: prod/bump-memory-prod-api-0a1b -->")
    );
    assert_eq!(p.request.labels, vec!["heal8s", "bump-memory", "env:prod"]);
    assert_eq!(p.request.reviewers, vec!["sre-oncall"]);
    assert_eq!(
        p.request.title,
        "heal8s: raise the memory limit of Deployment prod/prod-api (app) to 768Mi"
    );
    assert!(matches!(p.source, Source::Manifest { .. }));
}

#[test]
fn a_plain_manifest_is_applied_by_file_and_roots_are_enforced() {
    let files =
        load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repo")).unwrap();
    let mut web = proposal("shop", "web", Edit::Replicas(3));
    web.remediation = "scale-up".into();
    web.container = None;
    let p = prepare(&files, &settings(&["apps"]), &web).unwrap();
    assert_eq!(p.apply, vec!["-f apps/web/deployment.yaml".to_string()]);
    assert_eq!(p.request.branch, "heal8s/scale-up/shop/web");
    // the base of the prod overlay lies outside roots [apps]
    let err = prepare(
        &files,
        &settings(&["apps"]),
        &proposal("staging", "api", Edit::Memory("1Gi".into())),
    )
    .unwrap_err();
    assert!(matches!(err, ProposeError::Outside(_)), "{err}");
    // nothing to change is the patcher's answer, not a failure of the PR path
    let err = prepare(
        &files,
        &settings(&[]),
        &proposal("prod", "prod-api", Edit::Replicas(3)),
    )
    .unwrap_err();
    assert!(
        matches!(
            err.patch_error(),
            Some(gitops::patch::PatchError::NoChange(_))
        ),
        "{err}"
    );
}
