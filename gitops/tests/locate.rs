//! Finding where a workload is declared, and which file an edit belongs in,
//! over a small manifest repository (tests/fixtures/repo): a plain manifest,
//! a kustomize base with prod (prefix, images, replicas, a patch) and staging
//! overlays, and a Helm values file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use gitops::locate::{
    Files, Level, LocateError, Source, SourceRule, Workload, edit_source, load_dir, locate,
};
use gitops::patch::Edit;

fn repo() -> Files {
    load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repo")).unwrap()
}

fn deploy(ns: &str, name: &str) -> Workload {
    Workload {
        kind: "Deployment".into(),
        namespace: Some(ns.into()),
        name: name.into(),
        source_annotation: None,
    }
}

#[test]
fn a_plain_manifest_is_found_by_search() {
    let s = locate(&repo(), &deploy("shop", "web"), &[], None).unwrap();
    assert_eq!(
        s,
        Source::Manifest {
            file: "apps/web/deployment.yaml".into(),
            kind: "Deployment".into(),
            name: "web".into(),
            namespace: Some("shop".into()),
            levels: vec![],
            shared_with: vec![],
        }
    );
}

#[test]
fn a_kustomize_overlay_is_found_through_namespace_and_prefix() {
    let files = repo();
    match locate(&files, &deploy("prod", "prod-api"), &[], None).unwrap() {
        Source::Manifest {
            file,
            name,
            levels,
            shared_with,
            ..
        } => {
            assert_eq!(file, "base/deployment.yaml");
            assert_eq!(name, "api");
            assert_eq!(
                levels,
                vec![
                    Level {
                        file: "base/kustomization.yaml".into(),
                        name: "api".into()
                    },
                    Level {
                        file: "overlays/prod/kustomization.yaml".into(),
                        name: "api".into()
                    },
                ]
            );
            assert_eq!(
                shared_with,
                vec!["overlays/staging/kustomization.yaml".to_string()]
            );
        }
        other => panic!("{other:?}"),
    }
    // the base's own name in staging (no prefix there)
    assert!(locate(&files, &deploy("staging", "api"), &[], None).is_ok());
    // neither the un-prefixed name in prod nor a namespace nobody builds
    assert!(matches!(
        locate(&files, &deploy("prod", "api"), &[], None),
        Err(LocateError::NotFound(_))
    ));
    assert!(matches!(
        locate(&files, &deploy("dev", "prod-api"), &[], None),
        Err(LocateError::NotFound(_))
    ));
}

#[test]
fn edits_go_where_the_field_is_set() {
    let files = repo();
    let prod = locate(&files, &deploy("prod", "prod-api"), &[], None).unwrap();
    // the image: the overlay's images: entry, quoting and comment kept
    let e = edit_source(
        &files,
        &prod,
        Some("app"),
        &Edit::Image("registry.example/api:1.0.9".into()),
    )
    .unwrap();
    assert_eq!(e.file, "overlays/prod/kustomization.yaml");
    assert_eq!(
        e.text,
        files[&e.file].replace(
            "newTag: \"1.1.0\" # promoted",
            "newTag: \"1.0.9\" # promoted"
        )
    );
    // another registry: newName too
    let e = edit_source(
        &files,
        &prod,
        Some("app"),
        &Edit::Image("mirror.example/api:1.0.9".into()),
    )
    .unwrap();
    assert!(e.text.contains("  - name: registry.example/api\n    newTag: \"1.0.9\" # promoted on Monday\n    newName: mirror.example/api\n"), "{}", e.text);
    // replicas: the overlay's replicas: entry
    let e = edit_source(
        &files,
        &prod,
        None,
        &Edit::ScaleUp {
            percent: 50,
            cap: 10,
        },
    )
    .unwrap();
    assert_eq!(e.file, "overlays/prod/kustomization.yaml");
    assert_eq!(e.text, files[&e.file].replace("count: 3", "count: 5"));
    // memory: the overlay patch that sets it
    let e = edit_source(&files, &prod, Some("app"), &Edit::Memory("768Mi".into())).unwrap();
    assert_eq!(e.file, "overlays/prod/memory.yaml");
    assert!(
        e.text.contains("memory: 768Mi # prod traffic\n"),
        "{}",
        e.text
    );
    assert!(
        e.text.contains("requests:\n              memory: 768Mi\n"),
        "{}",
        e.text
    );
    // the sidecar's image is set nowhere in the overlay: the base, with a warning
    let e = edit_source(
        &files,
        &prod,
        Some("proxy"),
        &Edit::Image("envoyproxy/envoy:v1.29.0".into()),
    )
    .unwrap();
    assert_eq!(e.file, "base/deployment.yaml");
    assert!(
        e.notes[0].contains("overlays/staging/kustomization.yaml"),
        "{:?}",
        e.notes
    );
    // staging has no overrides: everything goes to the base
    let staging = locate(&files, &deploy("staging", "api"), &[], None).unwrap();
    let e = edit_source(&files, &staging, Some("app"), &Edit::Memory("384Mi".into())).unwrap();
    assert_eq!(e.file, "base/deployment.yaml");
    assert!(
        e.text.contains("memory: 384Mi # base default"),
        "{}",
        e.text
    );
    assert!(
        e.notes[0].contains("overlays/prod/kustomization.yaml"),
        "{:?}",
        e.notes
    );
    // never lowers, wherever the value is
    assert!(edit_source(&files, &prod, None, &Edit::Replicas(2)).is_err());
}

#[test]
fn ambiguity_names_every_candidate() {
    let mut files = repo();
    files.insert(
        "legacy/api.yaml".into(),
        "kind: Deployment\nmetadata:\n  name: api\n  namespace: staging\nspec:\n  replicas: 1\n"
            .into(),
    );
    match locate(&files, &deploy("staging", "api"), &[], None) {
        Err(e @ LocateError::Ambiguous { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("legacy/api.yaml"), "{msg}");
            assert!(
                msg.contains("base/deployment.yaml built by overlays/staging/kustomization.yaml"),
                "{msg}"
            );
        }
        other => panic!("{other:?}"),
    }
    // a rule settles it
    let rule = SourceRule {
        namespace: Some("staging".into()),
        path: "overlays/{namespace}".into(),
        ..SourceRule::default()
    };
    match locate(&files, &deploy("staging", "api"), &[rule], None).unwrap() {
        Source::Manifest { file, .. } => assert_eq!(file, "base/deployment.yaml"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn rules_come_first_then_the_annotation() {
    let files = repo();
    let rules = [
        SourceRule {
            name: Some("redis*".into()),
            path: "charts/redis/values.yaml".into(),
            values_path: Some(".".into()),
            ..SourceRule::default()
        },
        SourceRule {
            namespace: Some("shop".into()),
            path: "apps/{name}/deployment.yaml".into(),
            ..SourceRule::default()
        },
    ];
    let s = locate(&files, &deploy("cache", "redis-master"), &rules, None).unwrap();
    assert_eq!(
        s,
        Source::HelmValues {
            file: "charts/redis/values.yaml".into(),
            values_path: vec![]
        }
    );
    let e = edit_source(&files, &s, None, &Edit::Image("bitnami/redis:7.2.3".into())).unwrap();
    assert!(e.text.contains("tag: \"7.2.3\""));
    assert_eq!(
        locate(&files, &deploy("shop", "web"), &rules, None)
            .unwrap()
            .file(),
        "apps/web/deployment.yaml"
    );
    // a rule that points at a file without the workload says so
    assert!(matches!(
        locate(&files, &deploy("shop", "cart"), &rules, None),
        Err(LocateError::NotFound(_))
    ));

    let mut w = deploy("prod", "prod-api");
    w.source_annotation = Some("github.com/acme/manifests//overlays/prod".into());
    assert_eq!(
        locate(&files, &w, &[], Some("github.com/acme/manifests"))
            .unwrap()
            .file(),
        "base/deployment.yaml"
    );
    let err = locate(&files, &w, &[], Some("github.com/acme/other")).unwrap_err();
    assert!(
        err.to_string()
            .contains("names the repository github.com/acme/manifests"),
        "{err}"
    );
    w.source_annotation = Some("github.com/acme/manifests//../../etc".into());
    assert!(matches!(
        locate(&files, &w, &[], None),
        Err(LocateError::Invalid(_))
    ));
    w.source_annotation = Some("no-separator".into());
    assert!(matches!(
        locate(&files, &w, &[], None),
        Err(LocateError::Invalid(_))
    ));
    // a values file only through a rule (below)
    w.source_annotation = Some("//charts/redis/values.yaml#.".into());
    assert!(matches!(
        locate(&files, &w, &[], None),
        Err(LocateError::NotOwned(_))
    ));
}

/// A tenant's own Deployment cannot aim an edit at another team's values
/// file through its annotation; the repository owner's rule can.
#[test]
fn a_values_file_is_edited_only_when_a_rule_names_it() {
    let mut files = repo();
    files.insert(
        "charts/redis/values.yaml".into(),
        "master:\n  resources:\n    limits:\n      memory: 1Gi\n".into(),
    );
    let mut tenant = deploy("shop", "web");
    tenant.source_annotation = Some("//charts/redis/values.yaml#master".into());
    let redis_rule = SourceRule {
        namespace: Some("cache".into()),
        name: Some("redis-master".into()),
        path: "charts/redis/values.yaml".into(),
        values_path: Some("master".into()),
        ..SourceRule::default()
    };
    for rules in [&[][..], std::slice::from_ref(&redis_rule)] {
        let err = locate(&files, &tenant, rules, None).unwrap_err();
        assert!(matches!(err, LocateError::NotOwned(_)), "{err:?}");
        let why = err.to_string();
        assert!(
            why.contains("charts/redis/values.yaml at master")
                && why.contains("Deployment shop/web")
                && why.contains("pullRequests.sources rule"),
            "{why}"
        );
    }
    let mut redis = deploy("cache", "redis-master");
    redis.source_annotation = tenant.source_annotation.clone();
    let s = locate(&files, &redis, &[redis_rule], None).unwrap();
    assert_eq!(
        s,
        Source::HelmValues {
            file: "charts/redis/values.yaml".into(),
            values_path: vec!["master".into()]
        }
    );
    let e = edit_source(&files, &s, None, &Edit::Memory("2Gi".into())).unwrap();
    assert!(e.text.contains("memory: 2Gi"), "{}", e.text);
}

#[test]
fn broken_kustomizations_are_reported_not_hidden() {
    let mut files = repo();
    files.insert(
        "overlays/dev/kustomization.yaml".into(),
        "resources:\n- ../../missing\nnamespace: dev\n".into(),
    );
    let err = locate(&files, &deploy("dev", "api"), &[], None).unwrap_err();
    assert!(
        err.to_string().contains("overlays/dev/kustomization.yaml"),
        "{err}"
    );
    files.insert(
        "overlays/loop/kustomization.yaml".into(),
        "resources:\n- ../loop\n".into(),
    );
    let err = locate(&files, &deploy("loop", "api"), &[], None).unwrap_err();
    assert!(!err.to_string().is_empty());
}
