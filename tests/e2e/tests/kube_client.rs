//! How heal8s talks to the API servers it depends on, against the emulations
//! and a real `heal8s serve` process: who it says it is (`User-Agent`, to
//! Kubernetes and to GitHub), how it rides out a restarting API server's
//! transient 403s (and gives up on lasting ones), and how it finds an
//! optional API group installed after it started.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::{Duration, Instant};

use gitops::github::{Auth, CallKind, Github, GithubConfig, Repo};
use kube::api::{Api, PostParams};
use receiver_core::OutcomeKind;
use receiver_k8s::Clients;
use receiver_k8s::client::ClientSettings;
use receiver_k8s::resources::{Lookup, Resources};
use serde_json::{Value, json};
use testkit::github::{GithubEmulator, TEST_APP_ID, TEST_APP_KEY_PEM};
use testkit::kube::{ApiError, Emulator, RequestMatch, builtin_resources};
use testkit::{Heal8s, TempDir, eventually};

const TOKEN: &str = "kube-client-e2e-token";
const WAIT: Duration = Duration::from_secs(30);

fn ago(secs: i64) -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(secs)).to_string()
}

fn agent(instance: &str) -> String {
    format!("heal8s/{} ({instance})", env!("CARGO_PKG_VERSION"))
}

/// What a real API server says while its RBAC caches are still loading.
fn rbac_refusal(what: &str) -> ApiError {
    ApiError::new(
        403,
        "Forbidden",
        format!(
            r#"{what} is forbidden: User "system:serviceaccount:heal8s:heal8s" cannot create resource "pods/eviction" in API group "" in the namespace "shop""#
        ),
    )
}

async fn clients(emu: &Emulator, instance: &str) -> Clients {
    Clients::from_config(
        emu.config().await.unwrap(),
        &ClientSettings::for_instance(instance),
    )
    .unwrap()
}

fn namespace(emu: &Emulator, name: &str) {
    emu.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
        .unwrap();
}

fn node(emu: &Emulator, name: &str, ready: &str) {
    emu.create(json!({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
        "status": {"conditions": [{"type": "Ready", "status": ready, "reason": "KubeletReady",
                                   "lastTransitionTime": ago(600)}]}
    }))
    .unwrap();
}

/// A running pod of ReplicaSet `api-rs`, with no node (so an eviction removes it at once).
fn pod(emu: &Emulator, ns: &str, name: &str, node: Option<&str>) {
    let mut spec = json!({"containers": [{"name": "api", "image": "registry/app:1"}]});
    if let Some(n) = node {
        spec["nodeName"] = json!(n);
    }
    emu.create(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": "api"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-rs",
                                          "uid": "rs-uid", "controller": true}]},
        "spec": spec,
        "status": {"phase": "Running", "startTime": ago(600)}
    }))
    .unwrap();
}

fn eviction_body(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "policy/v1", "kind": "Eviction",
           "metadata": {"name": name, "namespace": ns}})
}

async fn evict(clients: &Clients, ns: &str, name: &str) -> Result<(), kube::Error> {
    let req = kube::api::Request::new(format!("/api/v1/namespaces/{ns}/pods"))
        .create_subresource(
            "eviction",
            name,
            &PostParams::default(),
            serde_json::to_vec(&eviction_body(ns, name)).unwrap(),
        )
        .unwrap();
    clients
        .no_retry
        .request::<kube::core::Status>(req)
        .await
        .map(|_| ())
}

fn evictions(emu: &Emulator) -> Vec<u16> {
    emu.requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/eviction"))
        .map(|r| r.status)
        .collect()
}

// ------------------------------------------------------------ User-Agent

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_kubernetes_clients_say_they_are_heal8s_and_which_replica() {
    let emu = Emulator::start().await.unwrap();
    namespace(&emu, "shop");
    pod(&emu, "shop", "api-1", None);
    let c = clients(&emu, "heal8s-7d9f-x2x").await;
    let _ = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(c.main.clone(), "shop")
        .list(&Default::default())
        .await
        .unwrap();
    evict(&c, "shop", "api-1").await.unwrap();
    let log = emu.requests();
    assert!(log.len() >= 2, "{log:#?}");
    for r in &log {
        assert_eq!(r.user_agent, agent("heal8s-7d9f-x2x"), "{r:?}");
    }
    assert!(
        log.iter().any(|r| r.path.ends_with("/eviction")),
        "{log:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_of_a_running_heal8s_carries_its_user_agent() {
    let emu = Emulator::start().await.unwrap();
    namespace(&emu, "heal8s");
    let dir = TempDir::new("kube-client-ua");
    let kubeconfig = dir.path().join("kubeconfig");
    emu.write_kubeconfig(&kubeconfig).unwrap();
    let h = Heal8s::start(
        TOKEN,
        &[
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--pod-name",
            "heal8s-abc12",
        ],
    )
    .await
    .unwrap();
    // the detectors list and watch; the journal and stand-down look up their types
    eventually(WAIT, "the detectors' watches", || async {
        (emu.requests().iter().filter(|r| r.verb == "watch").count() >= 3).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", h.proc.output()));
    let log = emu.requests();
    let strangers: Vec<_> = log
        .iter()
        .filter(|r| r.user_agent != agent("heal8s-abc12"))
        .collect();
    assert!(strangers.is_empty(), "{strangers:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_gets_one_user_agent_and_it_is_heal8s() {
    let gh = GithubEmulator::start().await.unwrap();
    gh.create_repo("acme", "manifests", 7).unwrap();
    let github = Github::new(GithubConfig {
        user_agent: agent("heal8s-abc12"),
        ..GithubConfig::new(
            gh.url(),
            Auth::App {
                app_id: TEST_APP_ID,
                private_key_pem: TEST_APP_KEY_PEM.to_string(),
            },
        )
    })
    .unwrap();
    let repo = Repo::parse("acme/manifests").unwrap();
    let reply = github
        .call(
            &repo,
            http::Method::GET,
            "/repos/acme/manifests",
            None,
            CallKind::Read,
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let log = gh.requests();
    // the installation lookup (App JWT), the token exchange, the read
    assert!(log.len() >= 2, "{log:#?}");
    for r in &log {
        assert_eq!(r.user_agents, vec![agent("heal8s-abc12")], "{r:?}");
    }
}

// ------------------------------------------------------------ transient 403s

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eviction_refused_twice_while_rbac_loads_goes_through() {
    let emu = Emulator::start().await.unwrap();
    namespace(&emu, "shop");
    pod(&emu, "shop", "api-1", None);
    emu.faults().fail_next_with(
        2,
        RequestMatch::any().path("/eviction"),
        rbac_refusal(r#"pods "api-1""#),
    );
    let c = clients(&emu, "t").await;
    let started = Instant::now();
    evict(&c, "shop", "api-1").await.unwrap();
    assert_eq!(evictions(&emu), vec![403, 403, 201]);
    // 200 ms, then 400 ms
    assert!(started.elapsed() >= Duration::from_millis(600));
    assert!(emu.get("v1", "Pod", "shop", "api-1").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lasting_403_fails_after_a_bounded_number_of_tries_with_its_message() {
    let emu = Emulator::start().await.unwrap();
    namespace(&emu, "shop");
    pod(&emu, "shop", "api-1", None);
    emu.faults().fail_next_with(
        1000,
        RequestMatch::any().path("/eviction"),
        rbac_refusal(r#"pods "api-1""#),
    );
    let c = clients(&emu, "t").await;
    let started = Instant::now();
    let err = evict(&c, "shop", "api-1").await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(receiver_k8s::status_code(&err), Some(403), "{err}");
    assert!(err.to_string().contains("cannot create resource"), "{err}");
    assert_eq!(evictions(&emu), vec![403; 5], "the first try and 4 more");
    assert!(
        took >= Duration::from_millis(2400) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert!(emu.get("v1", "Pod", "shop", "api-1").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_403_that_no_wait_changes_is_not_retried() {
    let emu = Emulator::start().await.unwrap();
    namespace(&emu, "shop");
    emu.faults().fail_next_with(
        1000,
        RequestMatch::any().verb("create").path("/configmaps"),
        ApiError::new(
            403,
            "Forbidden",
            "unable to create new content in namespace shop because it is being terminated",
        ),
    );
    let c = clients(&emu, "t").await;
    let cms = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(c.main.clone(), "shop");
    let cm = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
    let err = cms.create(&PostParams::default(), &cm).await.unwrap_err();
    assert_eq!(receiver_k8s::status_code(&err), Some(403));
    let creates = emu.requests().iter().filter(|r| r.verb == "create").count();
    assert_eq!(creates, 1);
}

/// The drain of a node heal8s started while the API server restarts: its
/// first two evictions answer 403 (RBAC caches loading). It used to fail at
/// once; it finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_drain_rides_out_a_restarting_api_servers_403s() {
    let emu = Emulator::start().await.unwrap();
    namespace(&emu, "shop");
    namespace(&emu, "heal8s");
    node(&emu, "w1", "False");
    for n in ["w2", "w3", "w4", "w5"] {
        node(&emu, n, "True");
    }
    pod(&emu, "shop", "api-1", Some("w1"));
    emu.faults().fail_next_with(
        2,
        RequestMatch::any().path("/eviction"),
        rbac_refusal(r#"pods "api-1""#),
    );
    let dir = TempDir::new("kube-client-drain");
    let kubeconfig = dir.path().join("kubeconfig");
    emu.write_kubeconfig(&kubeconfig).unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "profile: production
detectors:
  resync: 1s
  nodes: {notReadyAfter: 1s, unknownAfter: 1s}
routes:
  - {matchers: ['alertname=\"Heal8sNodeNotReady\"'], remediation: drain-node, params: {timeout: 20s}}
",
    )
    .unwrap();
    let h = Heal8s::start(
        TOKEN,
        &[
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
            "--eviction-retry",
            "200ms",
        ],
    )
    .await
    .unwrap();
    let acted = eventually(WAIT, "the drain", || {
        let outcomes = h.outcomes();
        async move {
            outcomes
                .await
                .into_iter()
                .find(|o| o.target.as_deref().is_some_and(|t| t.contains("Node w1")))
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", h.proc.output()));
    // the drain went on past the refusals (on a dead node the evicted pod may
    // stay Terminating, which the outcome reports; a 403 never ends it)
    assert_ne!(
        acted.result,
        OutcomeKind::Failed,
        "{acted:#?}\n{}",
        h.proc.output()
    );
    assert!(!acted.message.contains("forbidden"), "{acted:#?}");
    let statuses = evictions(&emu);
    assert_eq!(&statuses[..2], &[403, 403], "{statuses:?}");
    assert!(statuses[2..].iter().all(|s| *s < 300), "{statuses:?}");
}

// ------------------------------------------------------------ optional API groups

/// A real API server answers a path it does not serve, such as an API group
/// that is not installed, with a plain-text body, not a JSON `Status`.
async fn plain_404_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = vec![0u8; 8192];
                let _ = sock.read(&mut buf).await;
                let body = "404 page not found\n";
                let answer = format!(
                    "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(answer.as_bytes()).await;
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_text_404_for_a_group_means_it_is_not_installed() {
    let url = plain_404_server().await;
    let config = kube::Config::new(url.parse().unwrap());
    let c = Clients::from_config(config, &ClientSettings::for_instance("t")).unwrap();
    let r = Resources::new(c.main.clone());
    assert!(matches!(
        r.lookup_kind("kubevirt.io", "v1", "VirtualMachine")
            .await
            .unwrap(),
        Lookup::GroupNotInstalled
    ));
    assert!(matches!(
        r.lookup_plural("cdi.kubevirt.io", "v1beta1", "datavolumes")
            .await
            .unwrap(),
        Lookup::GroupNotInstalled
    ));
    assert!(
        r.by_kind("kubevirt.io", "v1", "VirtualMachine")
            .await
            .unwrap()
            .is_none()
    );
}

/// KubeVirt is installed after heal8s started: the VM detector starts
/// without a restart and cleans a stale VM up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubevirt_installed_later_starts_the_vm_detector_without_a_restart() {
    let emu = Emulator::start().await.unwrap();
    let kubevirt: Vec<_> = builtin_resources()
        .into_iter()
        .filter(|d| d.group == "kubevirt.io")
        .collect();
    assert!(kubevirt.iter().any(|d| d.kind == "VirtualMachine"));
    for d in &kubevirt {
        emu.unregister(&d.group, &d.plural);
    }
    namespace(&emu, "heal8s");
    namespace(&emu, "e2e-1");
    let dir = TempDir::new("kube-client-rediscover");
    let kubeconfig = dir.path().join("kubeconfig");
    emu.write_kubeconfig(&kubeconfig).unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "profile: test-cluster
detectors:
  resync: 1s
  customResources: {resources: []}
routes:
  - {matchers: ['alertname=\"Heal8sStaleVirtualMachine\"'], remediation: cleanup-resource, params: {apiVersion: kubevirt.io/v1, kind: VirtualMachine}}
",
    )
    .unwrap();
    let h = Heal8s::start(
        TOKEN,
        &[
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
            "--rediscover-every",
            "1s",
        ],
    )
    .await
    .unwrap();
    eventually(WAIT, "heal8s to say KubeVirt is not installed", || async {
        h.proc
            .output()
            .lines()
            .any(|l| {
                l.contains("INFO") && l.contains("not installed") && l.contains("kubevirt.io/v1")
            })
            .then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", h.proc.output()));
    // KubeVirt is installed; a VM that has run too long on a test cluster appears
    for d in kubevirt {
        emu.register(d);
    }
    emu.create(json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                      "metadata": {"name": "vm-a", "namespace": "e2e-1", "creationTimestamp": ago(600)},
                      "spec": {"running": true}, "status": {"printableStatus": "Running"}}))
        .unwrap();
    eventually(WAIT, "the stale VM to be cleaned up", || async {
        emu.get("kubevirt.io/v1", "VirtualMachine", "e2e-1", "vm-a")
            .is_none()
            .then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", h.proc.output()));
    let out = h.proc.output();
    assert!(
        out.lines()
            .any(|l| l.contains("installed now") && l.contains("virtual-machines")),
        "{out}"
    );
    // one plain line, never a warning about the missing group
    let warnings: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("WARN") && (l.contains("kubevirt") || l.contains("Failed to parse")))
        .collect();
    assert!(warnings.is_empty(), "{warnings:#?}");
    // the watch says so once (the cluster summary at start lists it too)
    let not_installed = out
        .lines()
        .filter(|l| {
            l.contains("INFO") && l.contains("receiver_k8s::watch") && l.contains("not installed")
        })
        .count();
    assert_eq!(not_installed, 1, "{out}");
}

// ------------------------------------------------------------ CRD warnings

/// Create `crd` through the API; the `Warning` headers of the answer.
async fn create_crd_warnings(c: &Clients, crd: &Value) -> Vec<String> {
    let req = http::Request::post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(kube::client::Body::from(serde_json::to_vec(crd).unwrap()))
        .unwrap();
    let res = c.main.send(req).await.unwrap();
    assert!(res.status().is_success(), "{:?}", res.status());
    res.headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

fn committed_crd() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../charts/heal8s/crds/remediations.heal8s.io.yaml");
    serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_remediation_crd_is_created_without_a_warning() {
    let emu = Emulator::start().await.unwrap();
    let c = clients(&emu, "t").await;
    assert_eq!(
        create_crd_warnings(&c, &committed_crd()).await,
        Vec::<String>::new()
    );
    // the emulation would have said so: the same CRD with the formats schemars
    // writes for u32 and u64 warns, as a real API server does
    let emu = Emulator::start().await.unwrap();
    let c = clients(&emu, "t").await;
    let mut old = committed_crd();
    let status = &mut old["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
        ["properties"];
    status["attempts"]["format"] = json!("uint32");
    status["pullRequest"]["properties"]["number"]["format"] = json!("uint64");
    let warnings = create_crd_warnings(&c, &old).await;
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("unrecognized format") && w.contains("uint32")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("uint64")),
        "{warnings:?}"
    );
}
