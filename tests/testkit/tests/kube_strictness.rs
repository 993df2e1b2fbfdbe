//! What a real kube-apiserver refuses and delays, through a real
//! `kube::Client` (and raw HTTP where headers matter): graceful pod deletion
//! waits for the node's kubelet, a deleted namespace waits for its
//! controller, pods need their ServiceAccount, new nodes are tainted
//! not-ready, API groups that are not installed answer a plain-text 404,
//! warnings come back as `Warning` headers, and a restarted server denies
//! requests until its RBAC caches load. Where a test needs a controller's
//! work, it plays that controller by name (`Controller::*`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, EvictParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::Status;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use testkit::eventually;
use testkit::kube::{Controller, Emulator, RequestMatch};

const WAIT: Duration = Duration::from_secs(10);
const HEAL8S: &str = "system:serviceaccount:heal8s:heal8s";

fn api_error(e: kube::Error) -> Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn setup() -> (Emulator, Client) {
    let emu = Emulator::start().await.unwrap();
    let client = emu.client().await.unwrap();
    (emu, client)
}

/// A node with the given Ready status, scripted through the store API.
fn node(emu: &Emulator, name: &str, ready: &str) {
    emu.create(
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
        "status": {"conditions": [{"type": "Ready", "status": ready}]}}),
    )
    .unwrap();
}

/// A running, ready pod in `default` on `node` ("" for none).
fn running_pod(emu: &Emulator, name: &str, node: &str) {
    let mut spec = json!({"containers": [{"name": "c", "image": "i"}]});
    if !node.is_empty() {
        spec["nodeName"] = json!(node);
    }
    emu.create(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "spec": spec,
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}))
        .unwrap();
}

fn seconds_from_now(ts: &str) -> i64 {
    let t: jiff::Timestamp = ts.parse().unwrap();
    t.as_second() - jiff::Timestamp::now().as_second()
}

#[tokio::test]
async fn a_deleted_pod_on_a_node_stays_terminating_until_that_nodes_kubelet_confirms() {
    let (emu, client) = setup().await;
    node(&emu, "live", "True");
    node(&emu, "dead", "Unknown");
    for (name, on) in [
        ("on-live", "live"),
        ("on-dead", "dead"),
        ("unscheduled", ""),
    ] {
        running_pod(&emu, name, on);
    }
    let pods: Api<Pod> = Api::namespaced(client, "default");

    // a bound pod is only marked: deletionTimestamp = now + grace
    for name in ["on-live", "on-dead"] {
        let marked = pods
            .delete(name, &DeleteParams::default())
            .await
            .unwrap()
            .left()
            .expect("the pod is still there, terminating");
        assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(30));
        let at = marked.metadata.deletion_timestamp.unwrap().0.to_string();
        assert!((29..=31).contains(&seconds_from_now(&at)), "{at}");
        assert!(pods.get_opt(name).await.unwrap().is_some(), "{name}");
    }
    // one bound to no node has no kubelet to wait for
    pods.delete("unscheduled", &DeleteParams::default())
        .await
        .unwrap();
    assert!(pods.get_opt("unscheduled").await.unwrap().is_none());

    // the kubelet of the Ready node confirms; the dead node's never does
    let kubelets = emu.kubelet();
    eventually(WAIT, "on-live to be confirmed", || {
        let pods = pods.clone();
        async move {
            pods.get_opt("on-live")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        }
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stuck = pods.get("on-dead").await.unwrap();
    assert!(stuck.metadata.deletion_timestamp.is_some());
    assert_eq!(
        kubelets
            .actions()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["the kubelet of live confirms that pod default/on-live has stopped; the pod is gone"]
    );

    // deleting again with the default grace changes nothing; force (grace 0) removes it
    pods.delete("on-dead", &DeleteParams::default())
        .await
        .unwrap();
    assert!(pods.get_opt("on-dead").await.unwrap().is_some());
    pods.delete("on-dead", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert!(pods.get_opt("on-dead").await.unwrap().is_none());
}

#[tokio::test]
async fn an_evicted_pod_waits_for_its_kubelet_and_goes_when_its_node_comes_back() {
    let (emu, client) = setup().await;
    node(&emu, "w2", "Unknown");
    running_pod(&emu, "web-1", "w2");
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let _kubelets = emu.kubelet();

    let status = pods.evict("web-1", &EvictParams::default()).await.unwrap();
    assert_eq!(status.code, 201);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let p = pods.get("web-1").await.unwrap();
    assert!(
        p.metadata.deletion_timestamp.is_some(),
        "evicted, and Terminating while its node is down"
    );
    // evicting it again succeeds and changes nothing
    pods.evict("web-1", &EvictParams::default()).await.unwrap();

    // the node's kubelet comes back and confirms
    emu.modify("v1", "Node", "", "w2", |n| {
        n["status"]["conditions"][0]["status"] = json!("True");
    })
    .unwrap();
    eventually(WAIT, "web-1 to be confirmed", || {
        let pods = pods.clone();
        async move { pods.get_opt("web-1").await.unwrap().is_none().then_some(()) }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_deleted_namespace_stays_terminating_until_its_controller_empties_and_finalizes_it() {
    let (emu, client) = setup().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "ci-1"}})).unwrap(),
        )
        .await
        .unwrap();
    node(&emu, "n1", "True");
    emu.create(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ci-1"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]},
        "status": {"phase": "Running"}}))
        .unwrap();
    emu.create(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cm", "namespace": "ci-1"}}))
        .unwrap();

    let t = namespaces
        .delete("ci-1", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert_eq!(
        t.status.as_ref().unwrap().phase.as_deref(),
        Some("Terminating")
    );
    assert_eq!(t.spec.unwrap().finalizers.unwrap(), ["kubernetes"]);
    // nothing runs the namespace controller: contents stay, and so does it
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "ci-1");
    assert!(cms.get_opt("cm").await.unwrap().is_some());
    assert!(namespaces.get_opt("ci-1").await.unwrap().is_some());
    // a second delete is refused as the real server refuses it
    let err = api_error(
        namespaces
            .delete("ci-1", &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        err.message,
        "Operation cannot be fulfilled on namespaces \"ci-1\": The system is ensuring all content is removed from this namespace.  Upon completion, this namespace will automatically be purged by the system."
    );
    // spec.finalizers cannot be dropped through the namespace itself
    let n = namespaces
        .patch(
            "ci-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"finalizers": []}})),
        )
        .await
        .unwrap();
    assert_eq!(n.spec.unwrap().finalizers.unwrap(), ["kubernetes"]);

    // the namespace controller deletes the contents; the pod waits for its kubelet
    let did = emu.play_once(Controller::Namespace);
    assert_eq!(
        did.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["the namespace controller deletes the 2 objects in namespace ci-1"]
    );
    assert!(cms.get_opt("cm").await.unwrap().is_none());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "ci-1");
    assert!(
        pods.get("p")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );
    let ns = namespaces.get("ci-1").await.unwrap();
    let conds = ns.status.unwrap().conditions.unwrap();
    let remaining = conds
        .iter()
        .find(|c| c.type_ == "NamespaceContentRemaining")
        .unwrap();
    assert_eq!(remaining.status, "True");
    assert_eq!(
        remaining.message.as_deref(),
        Some("Some resources are remaining: pods. has 1 resource instances")
    );

    emu.play_once(Controller::Kubelet);
    assert!(pods.get_opt("p").await.unwrap().is_none());
    assert!(namespaces.get_opt("ci-1").await.unwrap().is_some());
    let did = emu.play_once(Controller::Namespace);
    assert_eq!(
        did.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["the namespace controller finalizes the empty namespace ci-1; it is gone"]
    );
    assert!(namespaces.get_opt("ci-1").await.unwrap().is_none());
}

#[tokio::test]
async fn a_namespace_is_finalized_through_its_finalize_subresource() {
    let (emu, _client) = setup().await;
    emu.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "stuck"}}))
        .unwrap();
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/namespaces/stuck", emu.url());
    assert_eq!(http.delete(&url).send().await.unwrap().status(), 200);
    // what `kubectl replace --raw .../finalize` does for a stuck namespace
    let mut ns = emu.get("v1", "Namespace", "", "stuck").unwrap();
    ns["spec"]["finalizers"] = json!([]);
    let r = http
        .put(format!("{url}/finalize"))
        .json(&ns)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(emu.get("v1", "Namespace", "", "stuck").is_none());
    assert_eq!(
        http.get(format!("{url}/finalize"))
            .send()
            .await
            .unwrap()
            .status(),
        405
    );
}

#[tokio::test]
async fn a_pod_is_refused_in_a_namespace_without_its_service_account() {
    let (emu, client) = setup().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "fresh"}})).unwrap(),
        )
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "fresh");
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "x"},
        "spec": {"containers": [{"name": "c", "image": "i"}]}}))
    .unwrap();
    let err = api_error(pods.create(&PostParams::default(), &pod).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        err.message,
        "pods \"x\" is forbidden: error looking up service account fresh/default: serviceaccount \"default\" not found"
    );
    // the ServiceAccount controller makes the default account; then it works
    let did = emu.play_once(Controller::ServiceAccount);
    assert_eq!(
        did.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["the ServiceAccount controller creates ServiceAccount fresh/default"]
    );
    let created = pods.create(&PostParams::default(), &pod).await.unwrap();
    assert_eq!(
        created.spec.unwrap().service_account_name.as_deref(),
        Some("default")
    );
    // a named account must exist too
    let mut named = pod.clone();
    named.metadata.name = Some("y".into());
    named.spec.as_mut().unwrap().service_account_name = Some("runner".into());
    let err = api_error(
        pods.create(&PostParams::default(), &named)
            .await
            .unwrap_err(),
    );
    assert!(
        err.message.ends_with(
            "error looking up service account fresh/runner: serviceaccount \"runner\" not found"
        ),
        "{}",
        err.message
    );
    // the namespaces a cluster starts with have theirs
    let in_default: Api<Pod> = Api::namespaced(client, "default");
    in_default
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_new_node_is_tainted_not_ready_until_the_node_lifecycle_controller_sees_it_ready() {
    let (emu, client) = setup().await;
    let nodes: Api<Node> = Api::all(client);
    let n: Node = serde_json::from_value(json!({"metadata": {"name": "n1"}})).unwrap();
    let created = nodes.create(&PostParams::default(), &n).await.unwrap();
    let taints = |n: &Node| -> Vec<String> {
        n.spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default()
            .iter()
            .map(|t| format!("{}:{}", t.key, t.effect))
            .collect()
    };
    assert_eq!(
        taints(&created),
        ["node.kubernetes.io/not-ready:NoSchedule"]
    );
    // no Ready condition yet: the controller leaves the registration taint
    assert!(emu.play_once(Controller::NodeLifecycle).is_empty());
    let ready = |status: &str| {
        emu.modify("v1", "Node", "", "n1", |n| {
            n["status"]["conditions"] = json!([{"type": "Ready", "status": status}]);
        })
        .unwrap();
        emu.play_once(Controller::NodeLifecycle)
    };
    let did = ready("True");
    assert_eq!(
        did.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "the node lifecycle controller removes node.kubernetes.io/not-ready:NoSchedule from node n1"
        ]
    );
    assert!(taints(&nodes.get("n1").await.unwrap()).is_empty());
    ready("Unknown");
    assert_eq!(
        taints(&nodes.get("n1").await.unwrap()),
        [
            "node.kubernetes.io/unreachable:NoSchedule",
            "node.kubernetes.io/unreachable:NoExecute"
        ]
    );
    // a cordon gets its taint too
    nodes
        .patch(
            "n1",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"unschedulable": true}})),
        )
        .await
        .unwrap();
    ready("True");
    assert_eq!(
        taints(&nodes.get("n1").await.unwrap()),
        ["node.kubernetes.io/unschedulable:NoSchedule"]
    );
    // the store API scripts nodes as they already are: no registration taint
    node(&emu, "scripted", "True");
    assert!(taints(&nodes.get("scripted").await.unwrap()).is_empty());
}

#[tokio::test]
async fn an_api_group_that_is_not_installed_answers_a_plain_text_404() {
    let (emu, client) = setup().await;
    emu.unregister("kubevirt.io", "virtualmachines");
    emu.unregister("kubevirt.io", "virtualmachineinstances");
    let http = reqwest::Client::new();
    for path in [
        "/apis/kubevirt.io/v1",
        "/apis/kubevirt.io",
        "/apis/kubevirt.io/v1/namespaces/vms/virtualmachines",
        "/apis/kubevirt.io/v1/virtualmachines",
        "/apis/apps/v9/deployments",
        "/api/v2",
        "/nothing/here",
    ] {
        let r = http
            .get(format!("{}{path}", emu.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert_eq!(
            r.headers()["content-type"],
            "text/plain; charset=utf-8",
            "{path}"
        );
        assert_eq!(r.text().await.unwrap(), "404 page not found\n", "{path}");
    }
    // a served built-in group version answers an unknown resource with a Status
    let r = http
        .get(format!("{}/api/v1/widgets", emu.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["reason"], "NotFound");

    // kube's client cannot parse the plain text: code 404, no Status reason
    let ar = kube::api::ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk("kubevirt.io", "v1", "VirtualMachine"),
        "virtualmachines",
    );
    let vms: Api<kube::api::DynamicObject> = Api::namespaced_with(client, "vms", &ar);
    let err = api_error(vms.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(err.code, 404);
    assert_ne!(err.reason, "NotFound", "{err:?}");
}

fn warnings(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn warnings_come_back_as_warning_headers() {
    let (emu, _client) = setup().await;
    let http = reqwest::Client::new();
    let crds = format!(
        "{}/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        emu.url()
    );
    let schema = |extra: Value| {
        let mut props = json!({
            "count": {"type": "integer", "format": "uint64"},
            "size": {"type": "integer", "format": "uint32"},
            "total": {"type": "integer", "format": "uint64"},
            "at": {"type": "string", "format": "date-time"},
            "n": {"type": "integer", "format": "int64"}
        });
        if let (Some(p), Some(e)) = (props.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"kind": "Gadget", "plural": "gadgets"},
            "versions": [
                {"name": "v1alpha1", "served": true, "storage": false, "deprecated": true,
                 "schema": {"openAPIV3Schema": {"type": "object"}}},
                {"name": "v1", "served": true, "storage": true,
                 "schema": {"openAPIV3Schema": {"type": "object",
                     "properties": {"spec": {"type": "object", "properties": props}}}}}]}})
    };
    let r = http
        .post(&crds)
        .json(&schema(json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        warnings(&r),
        [
            r#"299 - "unrecognized format \"uint64\"""#,
            r#"299 - "unrecognized format \"uint32\"""#
        ]
    );
    // an update warns only about formats it brings in
    let mut crd = emu
        .get(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            "",
            "gadgets.example.com",
        )
        .unwrap();
    crd["spec"] = schema(json!({"ip": {"type": "string", "format": "ip-address"}}))["spec"].clone();
    let r = http
        .put(format!("{crds}/gadgets.example.com"))
        .json(&crd)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        warnings(&r),
        [r#"299 - "unrecognized format \"ip-address\"""#]
    );

    // a deprecated CRD version warns on every request to it
    let r = http
        .get(format!(
            "{}/apis/example.com/v1alpha1/namespaces/default/gadgets",
            emu.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        warnings(&r),
        [r#"299 - "example.com/v1alpha1 Gadget is deprecated; use example.com/v1 Gadget""#]
    );
    let r = http
        .get(format!(
            "{}/apis/example.com/v1/namespaces/default/gadgets",
            emu.url()
        ))
        .send()
        .await
        .unwrap();
    assert!(warnings(&r).is_empty());

    // so does a deprecated built-in API: v1 Endpoints in Kubernetes 1.33
    let r = http
        .get(format!("{}/api/v1/endpoints", emu.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        warnings(&r),
        [r#"299 - "v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice""#]
    );
}

#[tokio::test]
async fn a_restarted_api_server_denies_requests_until_its_rbac_caches_load() {
    let (emu, client) = setup().await;
    let mut config = emu.config().await.unwrap();
    config.default_retry = false;
    let raw = Client::try_from(config).unwrap();
    running_pod(&emu, "p", "");
    let pods: Api<Pod> = Api::namespaced(raw.clone(), "default");

    emu.faults().restart_with_cold_rbac(3, HEAL8S);
    let err = api_error(
        pods.delete("p", &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        err.message,
        "pods \"p\" is forbidden: User \"system:serviceaccount:heal8s:heal8s\" cannot delete resource \"pods\" in API group \"\" in the namespace \"default\""
    );
    let nodes: Api<Node> = Api::all(raw.clone());
    let err = api_error(nodes.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(
        err.message,
        "nodes is forbidden: User \"system:serviceaccount:heal8s:heal8s\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
    );
    let namespaces: Api<Namespace> = Api::all(raw);
    let err = api_error(namespaces.get("default").await.unwrap_err());
    assert_eq!(
        err.message,
        "namespaces \"default\" is forbidden: User \"system:serviceaccount:heal8s:heal8s\" cannot get resource \"namespaces\" in API group \"\" in the namespace \"default\""
    );
    // the caches have loaded
    pods.delete("p", &DeleteParams::default()).await.unwrap();
    assert_eq!(emu.faults().active(), 0);

    // a narrower rule: only evictions are denied, twice
    running_pod(&emu, "q", "");
    emu.faults()
        .forbid_next(2, RequestMatch::any().path("/eviction"), HEAL8S);
    let all: Api<Pod> = Api::namespaced(client, "default");
    let err = api_error(all.evict("q", &EvictParams::default()).await.unwrap_err());
    assert!(
        err.message.starts_with("pods \"q\" is forbidden: User \"system:serviceaccount:heal8s:heal8s\" cannot create resource \"pods/eviction\""),
        "{}",
        err.message
    );
    assert_eq!(all.get("q").await.unwrap().name_any(), "q");
}
