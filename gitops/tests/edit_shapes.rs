//! The shapes real manifests come in, each edited with the smallest diff.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gitops::arith::{BumpRule, Requests};
use gitops::edit::EditError;
use gitops::patch::{Edit, PatchError, Target, patch};

fn deploy(name: &str) -> Target {
    Target::Manifest {
        kind: "Deployment".into(),
        name: name.into(),
        namespace: None,
        container: None,
    }
}

fn ok(text: &str, target: &Target, edit: Edit) -> String {
    match patch(text, target, &edit) {
        Ok(p) => p.text,
        Err(e) => panic!("{e}\n--- input ---\n{text}"),
    }
}

fn values(path: &str) -> Target {
    Target::HelmValues {
        path: if path.is_empty() {
            Vec::new()
        } else {
            path.split('.').map(str::to_string).collect()
        },
    }
}

const DEPLOY: &str = "\
# leading comment
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web   # the web tier
spec:
  replicas: 2 # keep in sync with the HPA
  template:
    spec:
      containers:
      - name: app
        image: \"nginx:1.25\"
        resources:
          limits:
            memory: 256Mi  # raised in March
          requests:
            memory: 128Mi
";

#[test]
fn replaces_scalars_in_place_keeping_comments_and_quoting() {
    let out = ok(DEPLOY, &deploy("web"), Edit::Replicas(3));
    assert_eq!(
        out,
        DEPLOY.replace("replicas: 2 #", "replicas: 3 #"),
        "only the value changes"
    );
    let out = ok(DEPLOY, &deploy("web"), Edit::Image("nginx:1.24".into()));
    assert_eq!(out, DEPLOY.replace("\"nginx:1.25\"", "\"nginx:1.24\""));
    let out = ok(DEPLOY, &deploy("web"), Edit::Memory("512Mi".into()));
    assert_eq!(
        out,
        DEPLOY
            .replace("memory: 256Mi  #", "memory: 512Mi  #")
            .replace("memory: 128Mi", "memory: 512Mi")
    );
}

#[test]
fn bump_memory_uses_the_rule_and_keeps_the_unit() {
    let rule = BumpRule {
        factor: 1.2,
        step: 100 << 20,
        max: 8 << 30,
        default: 256 << 20,
        requests: Requests::Scale,
    };
    let p = patch(DEPLOY, &deploy("web"), &Edit::BumpMemory(rule)).unwrap();
    // 256Mi: max(×1.2 = 307.2Mi, +100Mi = 356Mi) rounded up to 64Mi = 384Mi
    assert!(
        p.text.contains("memory: 384Mi  # raised in March"),
        "{}",
        p.text
    );
    // request 128Mi ×1.2 = 153.6Mi → 154Mi
    assert!(p.text.contains("memory: 154Mi\n"), "{}", p.text);
    assert_eq!(p.changes.len(), 2);
    assert_eq!(p.changes[0].before.as_deref(), Some("256Mi"));
    assert!(p.why.unwrap().contains("256Mi"));
    let at_cap = BumpRule {
        max: 256 << 20,
        ..rule
    };
    assert!(matches!(
        patch(DEPLOY, &deploy("web"), &Edit::BumpMemory(at_cap)),
        Err(PatchError::AtCap { .. })
    ));
}

#[test]
fn never_lowers() {
    assert!(matches!(
        patch(DEPLOY, &deploy("web"), &Edit::Replicas(1)),
        Err(PatchError::WouldLower { .. })
    ));
    assert!(matches!(
        patch(DEPLOY, &deploy("web"), &Edit::Memory("200Mi".into())),
        Err(PatchError::WouldLower { .. })
    ));
    assert!(matches!(
        patch(DEPLOY, &deploy("web"), &Edit::Replicas(2)),
        Err(PatchError::NoChange(_))
    ));
}

#[test]
fn scale_up_raises_replicas_or_an_hpas_max() {
    let out = ok(
        DEPLOY,
        &deploy("web"),
        Edit::ScaleUp {
            percent: 50,
            cap: 10,
        },
    );
    assert!(out.contains("replicas: 3 # keep"));
    let hpa = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: web\nspec:\n  minReplicas: 2\n  maxReplicas: 10\n";
    let target = Target::Manifest {
        kind: "HorizontalPodAutoscaler".into(),
        name: "web".into(),
        namespace: None,
        container: None,
    };
    assert_eq!(
        ok(
            hpa,
            &target,
            Edit::ScaleUp {
                percent: 50,
                cap: 20
            }
        ),
        hpa.replace("maxReplicas: 10", "maxReplicas: 15")
    );
    assert!(matches!(
        patch(
            hpa,
            &target,
            &Edit::ScaleUp {
                percent: 50,
                cap: 10
            }
        ),
        Err(PatchError::AtCap { .. })
    ));
}

#[test]
fn multi_document_files_edit_only_the_named_document() {
    let text = "# header\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports: [{port: 80}]\n---\n# the app\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: other\nspec:\n  replicas: 1";
    let out = ok(text, &deploy("web"), Edit::Replicas(2));
    assert_eq!(out, text.replacen("replicas: 1", "replicas: 2", 1));
    // the last document, which has no final newline
    let out = ok(text, &deploy("other"), Edit::Replicas(4));
    assert!(out.ends_with("replicas: 4"), "{out}");
    assert_eq!(out.matches("replicas: 1").count(), 1);
}

#[test]
fn creating_keys_at_the_end_of_a_file_without_a_final_newline() {
    let text = "kind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: app:1";
    let out = ok(text, &deploy("web"), Edit::Memory("512Mi".into()));
    assert!(!out.ends_with('\n'), "still no final newline: {out:?}");
    assert!(
        out.ends_with("image: app:1"),
        "the last line is untouched: {out:?}"
    );
    assert!(
        out.contains("        - name: app\n          resources:\n            limits:\n              memory: 512Mi\n            requests:\n              memory: 512Mi\n          image: app:1"),
        "{out}"
    );
    // spec.replicas is created in spec, two spaces in like its siblings
    let out = ok(text, &deploy("web"), Edit::Replicas(2));
    assert!(out.contains("spec:\n  replicas: 2\n  template:"), "{out}");
}

#[test]
fn kind_list_items() {
    let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: apps/v1\n  kind: Deployment\n  metadata:\n    name: a\n  spec:\n    replicas: 1\n- apiVersion: apps/v1\n  kind: Deployment\n  metadata:\n    name: b\n  spec:\n    replicas: 1\n";
    let out = ok(text, &deploy("b"), Edit::Replicas(3));
    assert_eq!(
        out,
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: apps/v1\n  kind: Deployment\n  metadata:\n    name: a\n  spec:\n    replicas: 1\n- apiVersion: apps/v1\n  kind: Deployment\n  metadata:\n    name: b\n  spec:\n    replicas: 3\n"
    );
}

#[test]
fn crlf_files_stay_crlf() {
    let text = DEPLOY.replace('\n', "\r\n");
    let out = ok(&text, &deploy("web"), Edit::Memory("1Gi".into()));
    assert!(
        !out.replace("\r\n", "").contains('\n'),
        "no bare LF: {out:?}"
    );
    let no_requests = text.replace("          requests:\r\n            memory: 128Mi\r\n", "");
    let out = ok(&no_requests, &deploy("web"), Edit::Memory("1Gi".into()));
    assert!(
        out.contains("          requests:\r\n            memory: 1Gi\r\n"),
        "{out:?}"
    );
    assert!(!out.replace("\r\n", "").contains('\n'));
}

#[test]
fn flow_style_stays_flow_style() {
    let text = "kind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: app:1\n        resources: {limits: {cpu: 100m}}\n";
    let out = ok(text, &deploy("web"), Edit::Memory("512Mi".into()));
    assert!(
        out.contains(
            "resources: {limits: {cpu: 100m, memory: 512Mi}, requests: {memory: 512Mi}}\n"
        ),
        "{out}"
    );
    let empty = text.replace("{limits: {cpu: 100m}}", "{}");
    let out = ok(&empty, &deploy("web"), Edit::Memory("512Mi".into()));
    assert!(
        out.contains("resources: {limits: {memory: 512Mi}, requests: {memory: 512Mi}}\n"),
        "{out}"
    );
    // an image with a colon is quoted inside a flow mapping
    let flow_container = "kind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      containers: [{name: app, image: app}]\n";
    let out = ok(flow_container, &deploy("web"), Edit::Image("app:2".into()));
    assert!(out.contains("[{name: app, image: \"app:2\"}]"), "{out}");
}

#[test]
fn quoting_style_is_kept_and_new_values_quoted_only_when_needed() {
    let text = "kind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: 'app:1'\n";
    assert!(ok(text, &deploy("web"), Edit::Image("app:2".into())).contains("image: 'app:2'\n"));
    let plain = text.replace("'app:1'", "app");
    // a tag that looks like a number must stay a string
    let out = ok(&plain, &deploy("web"), Edit::Image("1.10".into()));
    assert!(out.contains("image: \"1.10\"\n"), "{out}");
    // replicas stay an integer even when the file quoted them
    let quoted = "kind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: \"2\"\n";
    assert!(ok(quoted, &deploy("web"), Edit::Replicas(3)).contains("replicas: 3\n"));
}

#[test]
fn tabs_and_comments_after_values_survive() {
    let text = "kind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\t# tab before the comment\n  # a comment line inside spec\n  template: {}\n";
    let out = ok(text, &deploy("web"), Edit::Replicas(5));
    assert_eq!(out, text.replace("replicas: 2\t", "replicas: 5\t"));
}

#[test]
fn null_and_empty_resources_become_block_mappings() {
    for (resources, expect) in [
        (
            "resources:\n",
            "resources:\n          limits:\n            memory: 1Gi\n          requests:\n            memory: 1Gi\n",
        ),
        (
            "resources: ~ # none yet\n",
            "resources: # none yet\n          limits:\n            memory: 1Gi\n          requests:\n            memory: 1Gi\n",
        ),
        (
            "resources: null\n",
            "resources:\n          limits:\n            memory: 1Gi\n          requests:\n            memory: 1Gi\n",
        ),
    ] {
        let text = format!(
            "kind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        {resources}        image: app\n"
        );
        let out = ok(&text, &deploy("web"), Edit::Memory("1Gi".into()));
        assert!(
            out.contains(&format!(
                "      - name: app\n        {expect}        image: app\n"
            )),
            "{out}"
        );
    }
}

#[test]
fn indentation_follows_the_file() {
    let text = "kind: Deployment\nmetadata:\n    name: web\nspec:\n    template:\n        spec:\n            containers:\n                -   name: app\n                    image: app\n";
    let out = ok(text, &deploy("web"), Edit::Memory("1Gi".into()));
    assert!(
        out.contains("                    image: app\n                    resources:\n                        limits:\n                            memory: 1Gi\n"),
        "{out}"
    );
}

#[test]
fn anchors_edit_where_the_value_lives_and_refuse_shared_values() {
    // an anchor nobody refers to is just a value
    let text = "kind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: &r 2\n";
    assert!(ok(text, &deploy("web"), Edit::Replicas(3)).contains("replicas: &r 3\n"));
    let shared = "x-limits: &limits\n  memory: 1Gi\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        resources:\n          limits: *limits\n          requests:\n            memory: 1Gi\n";
    match patch(shared, &deploy("web"), &Edit::Memory("2Gi".into())) {
        Err(PatchError::Edit(EditError::SharedAnchor { anchor, uses, .. })) => {
            assert_eq!(anchor, "limits");
            assert_eq!(uses, 1);
        }
        other => panic!("{other:?}"),
    }
    let merged = "kind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - <<: {resources: {limits: {memory: 1Gi}}}\n        name: app\n";
    assert!(matches!(
        patch(merged, &deploy("web"), &Edit::Memory("2Gi".into())),
        Err(PatchError::Edit(EditError::Unsupported { .. }))
    ));
}

#[test]
fn documents_and_containers_are_chosen_or_refused_clearly() {
    let two = "kind: Deployment\nmetadata:\n  name: web\n  namespace: a\nspec:\n  replicas: 1\n---\nkind: Deployment\nmetadata:\n  name: web\n  namespace: b\nspec:\n  replicas: 1\n";
    match patch(two, &deploy("web"), &Edit::Replicas(2)) {
        Err(e @ PatchError::Ambiguous { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("namespace a") && msg.contains("namespace b"),
                "{msg}"
            );
        }
        other => panic!("{other:?}"),
    }
    let in_b = Target::Manifest {
        kind: "Deployment".into(),
        name: "web".into(),
        namespace: Some("b".into()),
        container: None,
    };
    let out = ok(two, &in_b, Edit::Replicas(2));
    assert!(
        out.ends_with("namespace: b\nspec:\n  replicas: 2\n"),
        "{out}"
    );
    let err = patch(two, &deploy("api"), &Edit::Replicas(2))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no Deployment api") && err.contains("Deployment web"),
        "{err}"
    );

    let sidecar = "kind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: app:1\n      - name: proxy\n        image: envoy:1\n";
    let err = patch(sidecar, &deploy("web"), &Edit::Image("app:2".into())).unwrap_err();
    assert!(matches!(err, PatchError::Ambiguous { .. }), "{err}");
    let proxy = Target::Manifest {
        kind: "Deployment".into(),
        name: "web".into(),
        namespace: None,
        container: Some("proxy".into()),
    };
    assert!(ok(sidecar, &proxy, Edit::Image("envoy:2".into())).contains("image: envoy:2\n"));
    let cronjob = "kind: CronJob\nmetadata:\n  name: nightly\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers:\n          - name: job\n            image: job:1\n";
    let target = Target::Manifest {
        kind: "CronJob".into(),
        name: "nightly".into(),
        namespace: None,
        container: None,
    };
    assert!(ok(cronjob, &target, Edit::Image("job:0".into())).contains("image: job:0\n"));
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    assert!(matches!(
        patch("a: [", &deploy("web"), &Edit::Replicas(2)),
        Err(PatchError::Edit(EditError::Parse(_)))
    ));
    let templated = "kind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        resources:\n          limits:\n            memory: \"{{ .Values.memory }}\"\n";
    assert!(matches!(
        patch(templated, &deploy("web"), &Edit::Memory("1Gi".into())),
        Err(PatchError::Invalid(_))
    ));
    assert!(matches!(
        patch(DEPLOY, &deploy("web"), &Edit::Image("bad image".into())),
        Err(PatchError::Invalid(_))
    ));
    assert!(matches!(
        patch(DEPLOY, &deploy("web"), &Edit::Memory("lots".into())),
        Err(PatchError::Invalid(_))
    ));
}

const VALUES: &str = "\
# Default values
replicaCount: 1

image:
  registry: docker.io
  repository: bitnami/redis
  tag: \"7.2.4\"   # pinned
  digest: \"\"

metrics:
  image: prom/redis-exporter:v1.58.0
  resources: {}

worker:
  groups:
    - name: g0
      replicas: 2
";

#[test]
fn helm_values_components() {
    let out = ok(
        VALUES,
        &values(""),
        Edit::Image("docker.io/bitnami/redis:7.2.3".into()),
    );
    assert_eq!(out, VALUES.replace("\"7.2.4\"", "\"7.2.3\""));
    let out = ok(
        VALUES,
        &values(""),
        Edit::Image("quay.io/redis/redis:7".into()),
    );
    assert!(
        out.contains("registry: quay.io\n  repository: redis/redis\n  tag: \"7\""),
        "{out}"
    );
    let out = ok(VALUES, &values(""), Edit::Replicas(2));
    assert_eq!(out, VALUES.replace("replicaCount: 1", "replicaCount: 2"));
    let out = ok(
        VALUES,
        &values("metrics"),
        Edit::Image("prom/redis-exporter:v1.57.0".into()),
    );
    assert!(out.contains("  image: prom/redis-exporter:v1.57.0\n"));
    let out = ok(VALUES, &values("metrics"), Edit::Memory("128Mi".into()));
    assert!(
        out.contains("resources: {limits: {memory: 128Mi}, requests: {memory: 128Mi}}\n"),
        "{out}"
    );
    let out = ok(VALUES, &values("worker.groups.0"), Edit::Replicas(3));
    assert!(out.contains("      replicas: 3\n"));
    let out = ok(VALUES, &values(""), Edit::Memory("1Gi".into()));
    assert!(
        out.contains("# Default values\nreplicaCount: 1\n\nimage:"),
        "{out}"
    );
    assert!(
        out.ends_with("resources:\n  limits:\n    memory: 1Gi\n  requests:\n    memory: 1Gi\n"),
        "{out}"
    );
    let err = patch(VALUES, &values("metrics"), &Edit::Replicas(2)).unwrap_err();
    assert!(
        err.to_string().contains("replicaCount or replicas"),
        "{err}"
    );
    let err = patch(VALUES, &values("nope"), &Edit::Replicas(2)).unwrap_err();
    assert!(matches!(err, PatchError::NotFound { .. }), "{err}");
    // a digest set in the values would win over a new tag: it is cleared
    let pinned = VALUES.replace("digest: \"\"", "digest: \"sha256:abc\"");
    let out = ok(
        &pinned,
        &values(""),
        Edit::Image("docker.io/bitnami/redis:7.2.3".into()),
    );
    assert!(
        out.contains("tag: \"7.2.3\"   # pinned\n  digest: \"\"\n"),
        "{out}"
    );
    // and a digest reference goes to the digest field
    let out = ok(
        VALUES,
        &values(""),
        Edit::Image("docker.io/bitnami/redis@sha256:def".into()),
    );
    assert!(out.contains("digest: \"sha256:def\""), "{out}");
}

#[test]
fn block_scalars_end_where_their_indentation_does() {
    let text = "kind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: >-\n          app:1\n        command: |\n          run\n          # not a comment: part of the script\n\n        # a comment after the container\n      volumes: []\n";
    let out = ok(text, &deploy("web"), Edit::Memory("1Gi".into()));
    assert!(
        out.contains("          # not a comment: part of the script\n        resources:\n          limits:\n            memory: 1Gi\n          requests:\n            memory: 1Gi\n\n        # a comment after"),
        "{out}"
    );
    let out = ok(text, &deploy("web"), Edit::Image("app:2".into()));
    assert!(
        out.contains("        image: app:2\n        command: |\n"),
        "{out}"
    );
    let commented = text.replace("image: >-\n", "image: >- # pinned\n");
    let out = ok(&commented, &deploy("web"), Edit::Image("app:2".into()));
    assert!(
        out.contains("        image: app:2 # pinned\n        command: |\n"),
        "{out}"
    );
}
