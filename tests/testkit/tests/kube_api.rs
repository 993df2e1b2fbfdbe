//! The Kubernetes API emulation through a real `kube::Client`: CRUD,
//! conflicts, selectors, pagination, patch types, subresources, dry-run,
//! finalizers, namespace deletion, discovery and custom resources.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{GroupVersionKind, Status};
use kube::discovery::{self, Discovery, Scope};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use testkit::kube::{Controller, Emulator};

fn pod(name: &str, labels: Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "app:1"}]},
    }))
    .unwrap()
}

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

fn ns(name: &str) -> Namespace {
    serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
}

#[tokio::test]
async fn client_built_from_the_kubeconfig_reaches_the_emulator() {
    let (emu, client) = setup().await;
    assert!(emu.kubeconfig_yaml().contains(&emu.url()));
    let v = client.apiserver_version().await.unwrap();
    assert_eq!((v.major.as_str(), v.minor.as_str()), ("1", "33"));
    let names: Vec<String> = Api::<Namespace>::all(client)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|n| n.name_any())
        .collect();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
}

#[tokio::test]
async fn pods_round_trip_with_server_filled_metadata() {
    let (_emu, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let created = pods
        .create(&PostParams::default(), &pod("a", json!({"app": "web"})))
        .await
        .unwrap();
    let uid = created.uid().unwrap();
    assert_eq!(uid.len(), 36);
    assert!(created.metadata.creation_timestamp.is_some());
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(
        created.status.as_ref().unwrap().phase.as_deref(),
        Some("Pending"),
        "the API server resets a new pod's status"
    );
    let rv1: u64 = created.resource_version().unwrap().parse().unwrap();

    let mut fetched = pods.get("a").await.unwrap();
    assert_eq!(fetched.uid().as_deref(), Some(uid.as_str()));
    fetched.labels_mut().insert("tier".into(), "front".into());
    let replaced = pods
        .replace("a", &PostParams::default(), &fetched)
        .await
        .unwrap();
    let rv2: u64 = replaced.resource_version().unwrap().parse().unwrap();
    assert!(rv2 > rv1);
    assert_eq!(replaced.labels()["tier"], "front");
    assert_eq!(
        replaced.metadata.generation,
        Some(1),
        "metadata-only change"
    );
    assert_eq!(replaced.uid(), created.uid());

    let deleted = pods.delete("a", &DeleteParams::default()).await.unwrap();
    let gone = deleted.left().expect("the deleted pod is returned");
    assert_eq!(
        gone.metadata.deletion_grace_period_seconds,
        Some(0),
        "a pod bound to no node has no kubelet to wait for: it goes at once"
    );
    assert!(pods.get_opt("a").await.unwrap().is_none());
    let err = api_error(pods.get("a").await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    assert_eq!(err.message, "pods \"a\" not found");
}

#[tokio::test]
async fn conflicting_writes_get_409s() {
    let (_emu, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let first = pods
        .create(&PostParams::default(), &pod("a", json!({})))
        .await
        .unwrap();
    let err = api_error(
        pods.create(&PostParams::default(), &pod("a", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));

    let mut newer = first.clone();
    newer.labels_mut().insert("x".into(), "1".into());
    pods.replace("a", &PostParams::default(), &newer)
        .await
        .unwrap();
    let mut stale = first;
    stale.labels_mut().insert("x".into(), "2".into());
    let err = api_error(
        pods.replace("a", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert!(
        err.message.contains("the object has been modified"),
        "{}",
        err.message
    );

    let stale_patch = json!({"metadata": {"resourceVersion": "1", "labels": {"x": "3"}}});
    let err = api_error(
        pods.patch("a", &PatchParams::default(), &Patch::Merge(&stale_patch))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 409);
    assert_eq!(pods.get("a").await.unwrap().labels()["x"], "1");
}

#[tokio::test]
async fn generate_name_and_missing_namespaces_behave_like_the_api_server() {
    let (_emu, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut p = pod("", json!({}));
    p.metadata.name = None;
    p.metadata.generate_name = Some("web-".into());
    let a = pods.create(&PostParams::default(), &p).await.unwrap();
    let b = pods.create(&PostParams::default(), &p).await.unwrap();
    assert!(
        a.name_any().starts_with("web-") && a.name_any().len() == 9,
        "{}",
        a.name_any()
    );
    assert_ne!(a.name_any(), b.name_any());

    let nowhere: Api<Pod> = Api::namespaced(client.clone(), "nowhere");
    let err = api_error(
        nowhere
            .create(&PostParams::default(), &pod("x", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (err.code, err.message.as_str()),
        (404, "namespaces \"nowhere\" not found")
    );

    let err = api_error(
        pods.create(&PostParams::default(), &pod("Not_Valid", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    let err = api_error(
        pods.create(
            &PostParams::default(),
            &pod("ok", json!({"alert": "High Memory"})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 422, "label values may not contain spaces");
}

#[tokio::test]
async fn label_and_field_selectors_filter_lists() {
    let (emu, client) = setup().await;
    emu.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}))
        .unwrap();
    for (ns, name, labels, node, phase) in [
        (
            "default",
            "a",
            json!({"app": "web", "tier": "front"}),
            "n1",
            "Running",
        ),
        (
            "default",
            "b",
            json!({"app": "web", "tier": "back"}),
            "n2",
            "Running",
        ),
        ("default", "c", json!({"app": "db"}), "n1", "Failed"),
        (
            "shop",
            "d",
            json!({"app": "web", "canary": "true"}),
            "n1",
            "Pending",
        ),
    ] {
        emu.create(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": phase},
        }))
        .unwrap();
    }
    let all: Api<Pod> = Api::all(client.clone());
    let names = |l: kube::core::ObjectList<Pod>| -> Vec<String> {
        l.items.iter().map(|p| p.name_any()).collect()
    };
    let q = |lp: ListParams| {
        let all = all.clone();
        async move { names(all.list(&lp).await.unwrap()) }
    };
    assert_eq!(
        q(ListParams::default().labels("app=web")).await,
        ["a", "b", "d"]
    );
    assert_eq!(
        q(ListParams::default().labels("app==web,tier!=back")).await,
        ["a", "d"]
    );
    assert_eq!(
        q(ListParams::default().labels("tier in (front,back)")).await,
        ["a", "b"]
    );
    assert_eq!(
        q(ListParams::default().labels("app notin (web)")).await,
        ["c"]
    );
    assert_eq!(q(ListParams::default().labels("canary")).await, ["d"]);
    assert_eq!(
        q(ListParams::default().labels("app,!canary")).await,
        ["a", "b", "c"]
    );
    assert_eq!(
        q(ListParams::default().fields("spec.nodeName=n1")).await,
        ["a", "c", "d"]
    );
    assert_eq!(
        q(ListParams::default().fields("spec.nodeName==n1,status.phase!=Failed")).await,
        ["a", "d"]
    );
    assert_eq!(
        q(ListParams::default().fields("metadata.namespace=shop")).await,
        ["d"]
    );
    assert_eq!(
        q(ListParams::default()
            .fields("metadata.name=b")
            .labels("app=web"))
        .await,
        ["b"]
    );
    let in_default: Api<Pod> = Api::namespaced(client.clone(), "default");
    assert_eq!(
        names(
            in_default
                .list(&ListParams::default().labels("app=web"))
                .await
                .unwrap()
        ),
        ["a", "b"]
    );
    let err = api_error(
        all.list(&ListParams::default().fields("spec.foo=bar"))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 400);
    let nodes: Api<Node> = Api::all(client);
    let err = api_error(
        nodes
            .list(&ListParams::default().labels("a in b"))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 400);
}

#[tokio::test]
async fn lists_paginate_with_limit_and_continue() {
    let (emu, client) = setup().await;
    for i in 0..25 {
        emu.create(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("cm-{i:02}"), "namespace": "default"}}))
            .unwrap();
    }
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut lp = ListParams::default().limit(10);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = cms.list(&lp).await.unwrap();
        pages += 1;
        assert_eq!(
            page.metadata.resource_version.as_deref(),
            Some(emu.resource_version().to_string().as_str())
        );
        if pages == 1 {
            assert_eq!(page.metadata.remaining_item_count, Some(15));
        }
        seen.extend(page.items.iter().map(|c| c.name_any()));
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..25).map(|i| format!("cm-{i:02}")).collect();
    assert_eq!(seen, expected);
    // served from "the cache": resourceVersion=0 ignores the limit, as the API server
    // does (kube itself never sends both)
    let whole: Value = reqwest::get(format!(
        "{}/api/v1/namespaces/default/configmaps?limit=10&resourceVersion=0",
        emu.url()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(whole["items"].as_array().unwrap().len(), 25);
    assert!(whole["metadata"].get("continue").is_none());
    let err = api_error(
        cms.list(&ListParams::default().continue_token("bogus"))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 400);
}

#[tokio::test]
async fn every_patch_type_changes_what_it_should() {
    let (emu, client) = setup().await;
    emu.create(json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "n1", "labels": {"zone": "a"}, "finalizers": ["x.io/a", "x.io/b"]},
        "spec": {"taints": [{"key": "k1", "effect": "NoSchedule"}]}}))
        .unwrap();
    let nodes: Api<Node> = Api::all(client.clone());
    let pp = PatchParams::default();

    // strategic merge: what `kubectl cordon` sends; taints merge by key
    let smp =
        json!({"spec": {"unschedulable": true, "taints": [{"key": "k2", "effect": "NoExecute"}]}});
    let n = nodes
        .patch("n1", &pp, &Patch::Strategic(&smp))
        .await
        .unwrap();
    let spec = n.spec.unwrap();
    assert_eq!(spec.unschedulable, Some(true));
    let taints: Vec<String> = spec.taints.unwrap().into_iter().map(|t| t.key).collect();
    assert_eq!(taints, ["k1", "k2"]);
    assert_eq!(
        n.metadata.generation,
        Some(2),
        "a spec change bumps generation"
    );

    // merge patch: null deletes a label
    let merge = json!({"metadata": {"labels": {"zone": null, "heal8s.io/quarantined": "true"}}});
    let n = nodes.patch("n1", &pp, &Patch::Merge(&merge)).await.unwrap();
    assert_eq!(n.labels().len(), 1);
    assert_eq!(n.labels()["heal8s.io/quarantined"], "true");

    // JSON patch: remove one finalizer by index, guarded by a test op
    let jp: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers/0", "value": "x.io/a"},
        {"op": "remove", "path": "/metadata/finalizers/0"}
    ]))
    .unwrap();
    let n = nodes
        .patch("n1", &pp, &Patch::<()>::Json(jp.clone()))
        .await
        .unwrap();
    assert_eq!(n.finalizers(), ["x.io/b"]);
    let err = api_error(
        nodes
            .patch("n1", &pp, &Patch::<()>::Json(jp))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422, "a failing test op rejects the whole patch");

    // server-side apply: creates when absent, then merges
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let ssa = PatchParams::apply("heal8s").force();
    let applied = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg", "labels": {"a": "1"}}, "data": {"k": "v"}});
    cms.patch("cfg", &ssa, &Patch::Apply(&applied))
        .await
        .unwrap();
    let more = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg", "labels": {"b": "2"}}, "data": {"k2": "v2"}});
    let cm = cms.patch("cfg", &ssa, &Patch::Apply(&more)).await.unwrap();
    assert_eq!(cm.labels().len(), 2);
    assert_eq!(cm.data.unwrap().len(), 2);
    let err = api_error(
        cms.patch("cfg", &PatchParams::default(), &Patch::Apply(&more))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 400, "apply needs a field manager");

    // strategic merge on a custom resource is refused, as by the real server
    emu.create(
        json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": "vm1", "namespace": "default"}, "spec": {"running": true}}),
    )
    .unwrap();
    let gvk = GroupVersionKind::gvk("kubevirt.io", "v1", "VirtualMachine");
    let (ar, _) = discovery::pinned_kind(&client, &gvk).await.unwrap();
    let vms: Api<DynamicObject> = Api::namespaced_with(client, "default", &ar);
    let err = api_error(
        vms.patch(
            "vm1",
            &pp,
            &Patch::Strategic(json!({"spec": {"running": false}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 415);
    let vm = vms
        .patch(
            "vm1",
            &pp,
            &Patch::Merge(json!({"spec": {"running": false}})),
        )
        .await
        .unwrap();
    assert_eq!(vm.data["spec"]["running"], false);
}

#[tokio::test]
async fn strategic_merge_patches_container_resources_by_name() {
    let (emu, client) = setup().await;
    emu.create(json!({"apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "api", "namespace": "default"},
    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}},
        "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [
            {"name": "sidecar", "image": "envoy:1"},
            {"name": "api", "image": "api:1", "resources": {"limits": {"memory": "256Mi"}}}
        ]}}}}))
    .unwrap();
    let deploys: Api<Deployment> = Api::namespaced(client, "default");
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "api", "resources": {"limits": {"memory": "512Mi"}}}
    ]}}}});
    let d = deploys
        .patch("api", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    let cs = d.spec.unwrap().template.spec.unwrap().containers;
    assert_eq!(cs.len(), 2);
    assert_eq!(cs[0].image.as_deref(), Some("envoy:1"));
    assert_eq!(cs[1].image.as_deref(), Some("api:1"));
    let limits = cs[1].resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert_eq!(limits["memory"].0, "512Mi");
    let bad = json!({"spec": {"selector": {"matchLabels": {"app": "other"}}}});
    let err = api_error(
        deploys
            .patch("api", &PatchParams::default(), &Patch::Merge(&bad))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422, "a deployment's selector is immutable");
}

#[tokio::test]
async fn status_subresource_separates_spec_and_status_writes() {
    let (emu, client) = setup().await;
    emu.create(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}},
        "status": {"replicas": 3, "readyReplicas": 3}}))
        .unwrap();
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");

    // a main-resource write cannot change status
    let main = json!({"spec": {"replicas": 4}, "status": {"readyReplicas": 0}});
    let d = deploys
        .patch("web", &PatchParams::default(), &Patch::Merge(&main))
        .await
        .unwrap();
    assert_eq!(d.spec.as_ref().unwrap().replicas, Some(4));
    assert_eq!(d.status.as_ref().unwrap().ready_replicas, Some(3));
    assert_eq!(d.metadata.generation, Some(2));

    // a status write cannot change spec, and does not bump generation
    let st =
        json!({"spec": {"replicas": 9}, "status": {"readyReplicas": 1, "observedGeneration": 2}});
    let d = deploys
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&st))
        .await
        .unwrap();
    assert_eq!(d.spec.as_ref().unwrap().replicas, Some(4));
    assert_eq!(d.status.as_ref().unwrap().ready_replicas, Some(1));
    assert_eq!(d.metadata.generation, Some(2));

    let mut whole = deploys.get_status("web").await.unwrap();
    whole.status.as_mut().unwrap().ready_replicas = Some(4);
    let d = deploys
        .replace_status("web", &PostParams::default(), &whole)
        .await
        .unwrap();
    assert_eq!(d.status.unwrap().ready_replicas, Some(4));

    // creating through the API drops status; nodes keep theirs (kubelets register with it)
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut p = pod("p", json!({}));
    p.status = Some(serde_json::from_value(json!({"phase": "Running"})).unwrap());
    let created = pods.create(&PostParams::default(), &p).await.unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Pending"));
    let nodes: Api<Node> = Api::all(client);
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "n1"},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}}))
    .unwrap();
    let n = nodes.create(&PostParams::default(), &node).await.unwrap();
    assert_eq!(n.status.unwrap().conditions.unwrap()[0].status, "True");
}

#[tokio::test]
async fn pod_specs_are_immutable_except_images_and_resizable_through_resize() {
    let (_emu, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    pods.create(&PostParams::default(), &pod("p", json!({})))
        .await
        .unwrap();
    let image = json!({"spec": {"containers": [{"name": "app", "image": "app:2"}]}});
    pods.patch("p", &PatchParams::default(), &Patch::Strategic(&image))
        .await
        .unwrap();
    let res = json!({"spec": {"containers": [{"name": "app", "resources": {"limits": {"memory": "1Gi"}}}]}});
    let err = api_error(
        pods.patch("p", &PatchParams::default(), &Patch::Strategic(&res))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert!(
        err.message.contains("pod updates may not change fields"),
        "{}",
        err.message
    );
    let p = pods
        .patch_resize("p", &PatchParams::default(), &Patch::Strategic(&res))
        .await
        .unwrap();
    let c = &p.spec.unwrap().containers[0];
    assert_eq!(c.image.as_deref(), Some("app:2"));
    assert_eq!(
        c.resources.as_ref().unwrap().limits.as_ref().unwrap()["memory"].0,
        "1Gi"
    );
}

#[tokio::test]
async fn scale_subresource_reads_and_writes_replicas() {
    let (emu, client) = setup().await;
    emu.create(json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "default"},
        "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}},
        "status": {"replicas": 1}}))
        .unwrap();
    let sts: Api<k8s_openapi::api::apps::v1::StatefulSet> = Api::namespaced(client, "default");
    let scale = sts.get_scale("db").await.unwrap();
    assert_eq!(scale.spec.as_ref().unwrap().replicas, Some(1));
    assert_eq!(
        scale.status.as_ref().unwrap().selector.as_deref(),
        Some("app=db")
    );
    let s = sts
        .patch_scale(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(s.spec.unwrap().replicas, Some(3));
    assert_eq!(
        emu.get("apps/v1", "StatefulSet", "default", "db").unwrap()["spec"]["replicas"],
        3
    );
    let mut s = sts.get_scale("db").await.unwrap();
    s.spec.as_mut().unwrap().replicas = Some(0);
    let s = sts
        .replace_scale("db", &PostParams::default(), &s)
        .await
        .unwrap();
    assert_eq!(s.spec.as_ref().unwrap().replicas, Some(0));
    let mut stale = s.clone();
    stale.metadata.resource_version = Some("1".into());
    let err = api_error(
        sts.replace_scale("db", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 409);
}

#[tokio::test]
async fn dry_run_all_validates_but_stores_nothing() {
    let (emu, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let rv = emu.resource_version();
    let would = pods.create(&dry, &pod("a", json!({}))).await.unwrap();
    assert_eq!(would.name_any(), "a");
    assert!(pods.get_opt("a").await.unwrap().is_none());
    let err = api_error(pods.create(&dry, &pod("BAD", json!({}))).await.unwrap_err());
    assert_eq!(err.code, 422, "dry-run still validates");

    pods.create(&PostParams::default(), &pod("a", json!({})))
        .await
        .unwrap();
    let rv_before = emu.resource_version();
    assert_eq!(rv_before, rv + 1);
    let dry_patch = PatchParams {
        dry_run: true,
        ..Default::default()
    };
    let would = pods
        .patch(
            "a",
            &dry_patch,
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(would.labels()["x"], "y");
    assert!(pods.get("a").await.unwrap().labels().is_empty());
    let dp = DeleteParams {
        dry_run: true,
        ..Default::default()
    };
    pods.delete("a", &dp).await.unwrap();
    assert!(pods.get_opt("a").await.unwrap().is_some());
    assert_eq!(emu.resource_version(), rv_before, "nothing was written");
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let (_emu, client) = setup().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "held", "finalizers": ["heal8s.io/cleanup", "other.io/x"]}}))
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let held = cms
        .delete("held", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    let still = cms.get("held").await.unwrap();
    assert!(still.metadata.deletion_timestamp.is_some());

    // deleting again changes nothing
    cms.delete("held", &DeleteParams::default()).await.unwrap();
    // removing one finalizer keeps it terminating
    let strip_one = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["other.io/x"]}});
    let c = cms
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Strategic(&strip_one),
        )
        .await
        .unwrap();
    assert_eq!(c.finalizers(), ["heal8s.io/cleanup"]);
    // removing the last one completes the deletion
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(cms.get_opt("held").await.unwrap().is_none());
}

#[tokio::test]
async fn deleting_a_namespace_deletes_everything_in_it() {
    let (emu, client) = setup().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let created = namespaces
        .create(&PostParams::default(), &ns("test-123"))
        .await
        .unwrap();
    assert_eq!(
        created.spec.unwrap().finalizers.unwrap(),
        ["kubernetes"],
        "the API server adds the kubernetes finalizer"
    );
    // as the ServiceAccount controller would: pods need the default account
    emu.play_once(Controller::ServiceAccount);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "test-123");
    pods.create(&PostParams::default(), &pod("a", json!({})))
        .await
        .unwrap();
    let mut held = pod("held", json!({}));
    held.metadata.finalizers = Some(vec!["heal8s.io/hold".into()]);
    pods.create(&PostParams::default(), &held).await.unwrap();
    emu.create(
        json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": "vm", "namespace": "test-123"}}),
    )
    .unwrap();

    let t = namespaces
        .delete("test-123", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert_eq!(t.status.unwrap().phase.as_deref(), Some("Terminating"));
    // the namespace controller empties it (played here; the emulation runs none)
    emu.play_once(Controller::Namespace);
    assert!(pods.get_opt("a").await.unwrap().is_none());
    assert!(
        emu.get("kubevirt.io/v1", "VirtualMachine", "test-123", "vm")
            .is_none()
    );
    let held_now = pods.get("held").await.unwrap();
    assert!(held_now.metadata.deletion_timestamp.is_some());
    let ns_now = namespaces.get("test-123").await.unwrap();
    assert_eq!(ns_now.status.unwrap().phase.as_deref(), Some("Terminating"));
    let err = api_error(
        pods.create(&PostParams::default(), &pod("late", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (403, "Forbidden"));

    pods.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": []}})),
    )
    .await
    .unwrap();
    // empty now, but only its controller finalizes it
    assert!(namespaces.get_opt("test-123").await.unwrap().is_some());
    emu.play_once(Controller::Namespace);
    assert!(namespaces.get_opt("test-123").await.unwrap().is_none());
}

#[tokio::test]
async fn delete_options_are_honoured() {
    let (_emu, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    // bound to a node, so that its deletion is graceful
    let mut bound = pod("a", json!({}));
    bound.spec.as_mut().unwrap().node_name = Some("n1".into());
    let created = pods.create(&PostParams::default(), &bound).await.unwrap();
    let wrong_uid = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some("00000000-0000-4000-8000-000000000000".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let err = api_error(pods.delete("a", &wrong_uid).await.unwrap_err());
    assert_eq!(err.code, 409);
    let gone = pods
        .delete("a", &DeleteParams::default().grace_period(5))
        .await
        .unwrap()
        .left()
        .unwrap();
    assert_eq!(gone.metadata.deletion_grace_period_seconds, Some(5));
    assert_eq!(gone.uid(), created.uid());
    // a longer grace changes nothing; a shorter one (0: forced) removes it
    let again = pods
        .delete("a", &DeleteParams::default().grace_period(20))
        .await
        .unwrap()
        .left()
        .unwrap();
    assert_eq!(again.metadata.deletion_grace_period_seconds, Some(5));
    pods.delete("a", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert!(pods.get_opt("a").await.unwrap().is_none());

    for name in ["x", "y", "z"] {
        let labels = if name == "z" {
            json!({"keep": "1"})
        } else {
            json!({})
        };
        pods.create(&PostParams::default(), &pod(name, labels))
            .await
            .unwrap();
    }
    pods.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("!keep"),
    )
    .await
    .unwrap();
    let left: Vec<String> = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| p.name_any())
        .collect();
    assert_eq!(left, ["z"]);
}

#[tokio::test]
async fn discovery_serves_builtin_and_kubevirt_types() {
    let (_emu, client) = setup().await;
    for aggregated in [false, true] {
        let d = Discovery::new(client.clone());
        let d = if aggregated {
            d.run_aggregated().await.unwrap()
        } else {
            d.run().await.unwrap()
        };
        for (group, kind, scope) in [
            ("", "Pod", Scope::Namespaced),
            ("", "Node", Scope::Cluster),
            ("apps", "Deployment", Scope::Namespaced),
            ("policy", "PodDisruptionBudget", Scope::Namespaced),
            ("coordination.k8s.io", "Lease", Scope::Namespaced),
            ("kubevirt.io", "VirtualMachineInstance", Scope::Namespaced),
            ("cdi.kubevirt.io", "DataVolume", Scope::Namespaced),
            ("heal8s.io", "Remediation", Scope::Namespaced),
        ] {
            let g = d
                .get(group)
                .unwrap_or_else(|| panic!("group {group:?} missing"));
            let (ar, caps) = g
                .recommended_kind(kind)
                .unwrap_or_else(|| panic!("{kind} missing"));
            assert_eq!(caps.scope, scope, "{kind}");
            assert!(caps.supports_operation(kube::discovery::verbs::WATCH));
            if kind == "Pod" {
                let subs: Vec<String> = caps
                    .subresources
                    .iter()
                    .map(|(r, _)| r.plural.clone())
                    .collect();
                assert!(subs.contains(&"eviction".to_string()), "{subs:?}");
                assert!(subs.contains(&"status".to_string()), "{subs:?}");
            }
            if kind == "Deployment" {
                assert_eq!(ar.plural, "deployments");
                assert!(caps.subresources.iter().any(|(r, _)| r.plural == "scale"));
            }
        }
    }
}

#[tokio::test]
async fn dynamic_objects_work_through_pinned_kinds() {
    let (_emu, client) = setup().await;
    let gvk = GroupVersionKind::gvk("heal8s.io", "v1alpha1", "Remediation");
    let (ar, caps) = discovery::pinned_kind(&client, &gvk).await.unwrap();
    assert_eq!(caps.scope, Scope::Namespaced);
    let rems: Api<DynamicObject> = Api::namespaced_with(client, "default", &ar);
    let obj = DynamicObject::new("r1", &ar).data(json!({"spec": {"action": "DeletePod"},
        "status": {"phase": "Ignored"}}));
    let created = rems.create(&PostParams::default(), &obj).await.unwrap();
    assert!(
        created.data.get("status").is_none(),
        "status is dropped on create"
    );
    let done = rems
        .patch_status(
            "r1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Succeeded"}})),
        )
        .await
        .unwrap();
    assert_eq!(done.data["status"]["phase"], "Succeeded");
    assert_eq!(done.data["spec"]["action"], "DeletePod");
    assert_eq!(
        rems.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
}

#[tokio::test]
async fn creating_a_crd_serves_its_kind_and_deleting_it_removes_them() {
    let (emu, client) = setup().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Cluster",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                "subresources": {"status": {}}}]}}))
    .unwrap();
    let created = crds.create(&PostParams::default(), &crd).await.unwrap();
    let conds = created.status.unwrap().conditions.unwrap();
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );

    let gvk = GroupVersionKind::gvk("example.com", "v1", "Widget");
    let (ar, caps) = discovery::pinned_kind(&client, &gvk).await.unwrap();
    assert_eq!(caps.scope, Scope::Cluster);
    let widgets: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    widgets
        .create(
            &PostParams::default(),
            &DynamicObject::new("w", &ar).data(json!({"spec": {"size": 1}})),
        )
        .await
        .unwrap();
    assert!(emu.get("example.com/v1", "Widget", "", "w").is_some());

    let mut bad = crd.clone();
    bad.metadata.name = Some("wrong".into());
    let err = api_error(crds.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!(err.code, 422);

    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    assert!(emu.get("example.com/v1", "Widget", "", "w").is_none());
    let err = api_error(widgets.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(err.code, 404, "the type is no longer served");
}

#[tokio::test]
async fn store_api_scripts_what_controllers_would_do() {
    let (emu, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    emu.create(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}),
    )
    .unwrap();
    let p = pods.get("p").await.unwrap();
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Running"));
    emu.modify("v1", "Pod", "default", "p", |p| {
        p["status"]["phase"] = json!("Failed");
        p["spec"]["containers"][0]["resources"] = json!({"limits": {"memory": "1Gi"}});
    })
    .unwrap();
    let p = pods.get("p").await.unwrap();
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Failed"));
    let mut v = emu.get("v1", "pods", "default", "p").unwrap();
    v["metadata"]["resourceVersion"] = json!("1");
    assert_eq!(emu.update(v).unwrap_err().code, 409);
    assert_eq!(emu.list("v1", "Pod", "").len(), 1);
    emu.delete("v1", "Pod", "default", "p").unwrap();
    assert!(pods.get_opt("p").await.unwrap().is_none());
    assert!(
        emu.create(json!({"apiVersion": "v1", "kind": "Nope", "metadata": {"name": "x"}}))
            .is_err()
    );
}

#[tokio::test]
async fn runtime_registered_types_are_served() {
    let (emu, client) = setup().await;
    emu.register(
        testkit::kube::ResourceDef::new("example.org", "v2", "Gadget", "gadgets", false)
            .with_subresources(&["status"]),
    );
    emu.create(
        json!({"apiVersion": "example.org/v2", "kind": "Gadget", "metadata": {"name": "g"}}),
    )
    .unwrap();
    let gvk = GroupVersionKind::gvk("example.org", "v2", "Gadget");
    let (ar, caps) = discovery::pinned_kind(&client, &gvk).await.unwrap();
    assert_eq!(caps.scope, Scope::Cluster);
    let gadgets: Api<DynamicObject> = Api::all_with(client, &ar);
    assert_eq!(gadgets.get("g").await.unwrap().name_any(), "g");
}

#[tokio::test]
async fn events_published_by_the_kube_runtime_recorder_are_stored_and_deduplicated() {
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let (emu, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let p = pods
        .create(&PostParams::default(), &pod("p", json!({})))
        .await
        .unwrap();
    let recorder = Recorder::new(client, Reporter::from("heal8s"));
    let ev = Event {
        type_: EventType::Normal,
        reason: "PodDeleted".into(),
        note: Some("deleted a crashlooping pod".into()),
        action: "Delete".into(),
        secondary: None,
    };
    let reference = kube::Resource::object_ref(&p, &());
    recorder.publish(&ev, &reference).await.unwrap();
    recorder.publish(&ev, &reference).await.unwrap();
    let events = emu.list("events.k8s.io/v1", "Event", "default");
    assert_eq!(
        events.len(),
        1,
        "the second publish patches the series: {events:?}"
    );
    assert_eq!(events[0]["reason"], "PodDeleted");
    assert_eq!(events[0]["regarding"]["name"], "p");
    assert_eq!(events[0]["series"]["count"], 2);
}

#[tokio::test]
async fn store_api_may_backdate_creation_but_the_http_api_may_not() {
    let emu = Emulator::start().await.unwrap();
    let client = emu.client().await.unwrap();
    let old = "2020-01-02T03:04:05Z";
    emu.create(json!({"apiVersion": "v1", "kind": "Namespace",
                      "metadata": {"name": "old-ns", "creationTimestamp": old}}))
        .unwrap();
    let ns: Api<Namespace> = Api::all(client);
    let got = ns.get("old-ns").await.unwrap();
    assert_eq!(got.metadata.creation_timestamp.unwrap().0.to_string(), old);
    let mut fresh: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "new-ns", "creationTimestamp": old}}))
            .unwrap();
    fresh.metadata.resource_version = None;
    let created = ns.create(&PostParams::default(), &fresh).await.unwrap();
    assert_ne!(
        created.metadata.creation_timestamp.unwrap().0.to_string(),
        old
    );
}
