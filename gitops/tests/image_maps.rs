//! Helm values image mappings as public charts spell them (our own fixtures,
//! after the shapes of widely used charts), each rolled back with the
//! smallest diff; a mapping whose repository key is unclear is refused,
//! naming the keys found, never given a key the chart does not read.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gitops::patch::{Edit, PatchError, Target, patch};

fn top() -> Target {
    Target::HelmValues { path: Vec::new() }
}

fn rollback(text: &str, image: &str) -> Result<String, PatchError> {
    patch(text, &top(), &Edit::Image(image.into())).map(|p| p.text)
}

/// (a chart's spelling, the values, the image rolled back to, the values after)
const SPELLINGS: &[(&str, &str, &str, &str)] = &[
    (
        "registry + repository + tag + digest (the bitnami charts)",
        "image:\n  registry: docker.io\n  repository: bitnami/postgresql\n  tag: 16.1.0-debian-11-r15\n  digest: \"\"\n  pullPolicy: IfNotPresent\n",
        "docker.io/bitnami/postgresql:16.1.0-debian-11-r14",
        "image:\n  registry: docker.io\n  repository: bitnami/postgresql\n  tag: 16.1.0-debian-11-r14\n  digest: \"\"\n  pullPolicy: IfNotPresent\n",
    ),
    (
        "repository with the registry in it, an empty quoted tag (argo-cd's global.image)",
        "image:\n  repository: quay.io/argoproj/argocd\n  # Overrides the image tag whose default is the chart appVersion\n  tag: \"\"\n  imagePullPolicy: IfNotPresent\n",
        "quay.io/argoproj/argocd:v2.9.2",
        "image:\n  repository: quay.io/argoproj/argocd\n  # Overrides the image tag whose default is the chart appVersion\n  tag: \"v2.9.2\"\n  imagePullPolicy: IfNotPresent\n",
    ),
    (
        "repository and a tag with nothing after the colon (grafana)",
        "image:\n  registry: docker.io\n  repository: grafana/grafana\n  # Overrides the Grafana image tag whose default is the chart appVersion\n  tag:\n  sha: \"\"\n  pullPolicy: IfNotPresent\n",
        "docker.io/grafana/grafana:10.2.2",
        "image:\n  registry: docker.io\n  repository: grafana/grafana\n  # Overrides the Grafana image tag whose default is the chart appVersion\n  tag: \"10.2.2\"\n  sha: \"\"\n  pullPolicy: IfNotPresent\n",
    ),
    (
        "name + tag",
        "image:\n  name: ghcr.io/acme/api\n  tag: v1.8.0 # released 2026-11-30\n  pullPolicy: Always\n",
        "ghcr.io/acme/api:v1.7.3",
        "image:\n  name: ghcr.io/acme/api\n  tag: v1.7.3 # released 2026-11-30\n  pullPolicy: Always\n",
    ),
    (
        "registry + name + tag",
        "image:\n  registry: ghcr.io\n  name: acme/api\n  tag: v1.8.0\n",
        "ghcr.io/acme/api:v1.7.3",
        "image:\n  registry: ghcr.io\n  name: acme/api\n  tag: v1.7.3\n",
    ),
    (
        "repo + tag",
        "image:\n  repo: registry.gitlab.com/acme/worker\n  tag: '2.4.1'\n",
        "registry.gitlab.com/acme/worker:2.4.0",
        "image:\n  repo: registry.gitlab.com/acme/worker\n  tag: '2.4.0'\n",
    ),
    (
        "image + tag",
        "image:\n  image: bitnami/kubectl\n  tag: \"1.29\"\n",
        "bitnami/kubectl:1.28",
        "image:\n  image: bitnami/kubectl\n  tag: \"1.28\"\n",
    ),
    (
        "flow style, name + tag",
        "image: {name: nginx, tag: 1.25.3-alpine}\n",
        "nginx:1.25.2-alpine",
        "image: {name: nginx, tag: 1.25.2-alpine}\n",
    ),
    (
        // a tag of digits and dots is quoted: some loader could read it as a number
        "flow style, a version tag",
        "image: {name: nginx, tag: 1.25.3}\n",
        "nginx:1.25.2",
        "image: {name: nginx, tag: \"1.25.2\"}\n",
    ),
    (
        "a placeholder the deploy tooling fills in stays plain",
        "image:\n  repository: ${REGISTRY}/acme/api\n  tag: v2\n",
        "${REGISTRY}/acme/api:v1",
        "image:\n  repository: ${REGISTRY}/acme/api\n  tag: v1\n",
    ),
];

#[test]
fn each_spelling_is_rolled_back_in_its_own_keys() {
    for (what, before, image, after) in SPELLINGS {
        match rollback(before, image) {
            Ok(out) => assert_eq!(&out, after, "{what}"),
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

#[test]
fn another_repository_goes_in_the_key_the_chart_reads() {
    let out = rollback(
        "image:\n  name: ghcr.io/acme/api\n  tag: v1.8.0\n",
        "registry.example.com/mirror/api:v1.8.0",
    )
    .unwrap();
    assert_eq!(
        out,
        "image:\n  name: registry.example.com/mirror/api\n  tag: v1.8.0\n"
    );
    let out = rollback(
        "image:\n  registry: ghcr.io\n  repo: acme/api\n  tag: v1\n",
        "quay.io/acme/api:v1",
    )
    .unwrap();
    assert_eq!(
        out,
        "image:\n  registry: quay.io\n  repo: acme/api\n  tag: v1\n"
    );
}

#[test]
fn an_unclear_mapping_is_refused_naming_the_keys_found() {
    for (values, says) in [
        (
            // no key names the repository: a `repository:` beside it would be ignored
            "image:\n  tag: v1\n  pullPolicy: Always\n",
            "keys tag, pullPolicy and none names the repository (repository, repo, name, image)",
        ),
        (
            "image:\n  name: api\n  repository: acme/api\n  tag: v1\n",
            "keys name, repository, tag: repository and name could each name the repository",
        ),
        (
            "image:\n  repository:\n    host: ghcr.io\n  tag: v1\n",
            "repository is not a plain value",
        ),
        ("image: {}\n", "no keys and none names the repository"),
    ] {
        let before = values.to_string();
        match rollback(values, "ghcr.io/acme/api:v0") {
            Err(PatchError::Invalid(e)) => {
                assert!(e.contains(says), "{values:?}: {e}");
                assert!(e.starts_with("image: "), "names the mapping: {e}");
            }
            other => panic!("{values:?}: {other:?}"),
        }
        assert_eq!(values, before);
    }
}
