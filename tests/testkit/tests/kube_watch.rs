//! Watches against the Kubernetes API emulation: kube-runtime's watcher and
//! reflector following live changes, resumption from a resourceVersion,
//! 410 Gone forcing a re-list, selectors, bookmarks, timeouts and streaming lists.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use testkit::kube::{Emulator, EmulatorOptions};
use tokio::sync::mpsc;
use tokio::time::timeout;

fn pod(name: &str, app: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    }))
    .unwrap()
}

/// Run a watcher in the background; its events come out of the receiver.
fn spawn_watcher(
    api: Api<Pod>,
    cfg: watcher::Config,
) -> mpsc::UnboundedReceiver<watcher::Event<Pod>> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut s = watcher(api, cfg).boxed();
        while let Some(ev) = s.next().await {
            if let Ok(ev) = ev
                && tx.send(ev).is_err()
            {
                return;
            }
        }
    });
    rx
}

/// The next event that is not part of an initial listing.
async fn next_live(rx: &mut mpsc::UnboundedReceiver<watcher::Event<Pod>>) -> watcher::Event<Pod> {
    loop {
        let ev = timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("no watch event within 10s")
            .expect("watcher ended");
        match ev {
            watcher::Event::Apply(_) | watcher::Event::Delete(_) => return ev,
            _ => continue,
        }
    }
}

async fn wait_init_done(rx: &mut mpsc::UnboundedReceiver<watcher::Event<Pod>>) -> Vec<String> {
    let mut listed = Vec::new();
    loop {
        let ev = timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("no init within 10s")
            .expect("watcher ended");
        match ev {
            watcher::Event::Init => listed.clear(),
            watcher::Event::InitApply(p) => listed.push(p.name_any()),
            watcher::Event::InitDone => return listed,
            _ => {}
        }
    }
}

async fn setup() -> (Emulator, Client) {
    let emu = Emulator::start().await.unwrap();
    let client = emu.client().await.unwrap();
    (emu, client)
}

#[tokio::test]
async fn watcher_sees_creates_updates_and_deletes_live() {
    let (emu, client) = setup().await;
    emu.create(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "before"},
        "spec": {"containers": [{"name": "c", "image": "i"}]}}),
    )
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let mut rx = spawn_watcher(pods.clone(), watcher::Config::default());
    assert_eq!(wait_init_done(&mut rx).await, ["before"]);

    pods.create(&PostParams::default(), &pod("a", "web"))
        .await
        .unwrap();
    match next_live(&mut rx).await {
        watcher::Event::Apply(p) => assert_eq!(p.name_any(), "a"),
        other => panic!("expected the create, got {other:?}"),
    }
    pods.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"v": "2"}}})),
    )
    .await
    .unwrap();
    match next_live(&mut rx).await {
        watcher::Event::Apply(p) => assert_eq!(p.labels()["v"], "2"),
        other => panic!("expected the update, got {other:?}"),
    }
    pods.delete("a", &DeleteParams::default()).await.unwrap();
    match next_live(&mut rx).await {
        watcher::Event::Delete(p) => assert_eq!(p.name_any(), "a"),
        other => panic!("expected the delete, got {other:?}"),
    }
    // the store API emits events too
    emu.modify("v1", "Pod", "default", "before", |p| {
        p["status"] = json!({"phase": "Failed"});
    })
    .unwrap();
    match next_live(&mut rx).await {
        watcher::Event::Apply(p) => {
            assert_eq!(p.status.unwrap().phase.as_deref(), Some("Failed"))
        }
        other => panic!("expected the status change, got {other:?}"),
    }
}

#[tokio::test]
async fn streaming_list_watcher_initialises_then_follows() {
    let (_emu, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    pods.create(&PostParams::default(), &pod("a", "web"))
        .await
        .unwrap();
    let mut rx = spawn_watcher(pods.clone(), watcher::Config::default().streaming_lists());
    assert_eq!(wait_init_done(&mut rx).await, ["a"]);
    pods.create(&PostParams::default(), &pod("b", "web"))
        .await
        .unwrap();
    match next_live(&mut rx).await {
        watcher::Event::Apply(p) => assert_eq!(p.name_any(), "b"),
        other => panic!("expected the create, got {other:?}"),
    }
}

#[tokio::test]
async fn reflector_store_follows_the_emulator() {
    let (emu, client) = setup().await;
    let pods: Api<Pod> = Api::all(client);
    let (reader, writer) = reflector::store();
    let stream = reflector(
        writer,
        watcher(pods, watcher::Config::default().labels("app=web")),
    )
    .applied_objects()
    .boxed();
    let task = tokio::spawn(async move { stream.try_for_each(|_| async { Ok(()) }).await });
    for i in 0..5 {
        let app = if i % 2 == 0 { "web" } else { "db" };
        emu.create(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("p{i}"), "labels": {"app": app}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}}))
            .unwrap();
    }
    timeout(Duration::from_secs(10), reader.wait_until_ready())
        .await
        .unwrap()
        .unwrap();
    testkit::eventually(Duration::from_secs(10), "3 web pods in the store", || {
        let n = reader.state().len();
        async move { (n == 3).then_some(()) }
    })
    .await
    .unwrap();
    // relabelling out of the selector removes it from the store
    emu.modify("v1", "Pod", "default", "p0", |p| {
        p["metadata"]["labels"]["app"] = json!("db");
    })
    .unwrap();
    emu.delete("v1", "Pod", "default", "p2").unwrap();
    testkit::eventually(Duration::from_secs(10), "only p4 left", || {
        let names: Vec<String> = reader.state().iter().map(|p| p.name_any()).collect();
        async move { (names == ["p4"]).then_some(()) }
    })
    .await
    .unwrap();
    task.abort();
}

#[tokio::test]
async fn expired_history_makes_the_watcher_relist_and_recover() {
    let (emu, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    pods.create(&PostParams::default(), &pod("a", "web"))
        .await
        .unwrap();
    let mut rx = spawn_watcher(pods.clone(), watcher::Config::default());
    assert_eq!(wait_init_done(&mut rx).await, ["a"]);
    let lists_before = emu.requests().iter().filter(|r| r.verb == "list").count();

    // while no watch is open, changes happen and the history is compacted away
    emu.faults()
        .fail_always(testkit::kube::RequestMatch::any().verb("watch"), 503);
    emu.faults().drop_watches();
    tokio::time::sleep(Duration::from_millis(200)).await;
    pods.create(&PostParams::default(), &pod("b", "web"))
        .await
        .unwrap();
    pods.delete("a", &DeleteParams::default()).await.unwrap();
    emu.compact_history();
    emu.faults().clear();

    // the resumed watch gets 410 Gone, and the watcher re-lists
    assert_eq!(wait_init_done(&mut rx).await, ["b"]);
    let lists_after = emu.requests().iter().filter(|r| r.verb == "list").count();
    assert!(lists_after > lists_before, "a re-list happened");
    pods.create(&PostParams::default(), &pod("c", "web"))
        .await
        .unwrap();
    match next_live(&mut rx).await {
        watcher::Event::Apply(p) => assert_eq!(p.name_any(), "c"),
        other => panic!("expected the create, got {other:?}"),
    }
}

#[tokio::test]
async fn watching_from_a_compacted_resource_version_is_410_gone() {
    let (emu, client) = setup().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let old_rv = emu.resource_version().to_string();
    emu.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}))
        .unwrap();
    emu.compact_history();
    let mut s = cms
        .watch(&WatchParams::default(), &old_rv)
        .await
        .unwrap()
        .boxed();
    match timeout(Duration::from_secs(5), s.next()).await.unwrap() {
        Some(Ok(WatchEvent::Error(e))) => {
            assert_eq!((e.code, e.reason.as_str()), (410, "Expired"));
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    assert!(
        timeout(Duration::from_secs(5), s.next())
            .await
            .unwrap()
            .is_none(),
        "the stream ends after the error"
    );
}

#[tokio::test]
async fn watching_from_a_resource_version_replays_what_came_after() {
    let (emu, client) = setup().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let cm = |n: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n}});
    emu.create(cm("old")).unwrap();
    let from = emu.resource_version().to_string();
    emu.create(cm("new")).unwrap();
    emu.delete("v1", "ConfigMap", "default", "old").unwrap();
    let mut s = cms
        .watch(&WatchParams::default().timeout(2), &from)
        .await
        .unwrap()
        .boxed();
    let mut seen = Vec::new();
    while let Some(ev) = s.try_next().await.unwrap() {
        match ev {
            WatchEvent::Added(c) => seen.push(format!("ADDED {}", c.name_any())),
            WatchEvent::Deleted(c) => seen.push(format!("DELETED {}", c.name_any())),
            WatchEvent::Bookmark(_) => {}
            other => seen.push(format!("{other:?}")),
        }
    }
    assert_eq!(
        seen,
        ["ADDED new", "DELETED old"],
        "then the 2s timeout ended it"
    );
}

#[tokio::test]
async fn selector_watches_turn_relabels_into_added_and_deleted() {
    let (emu, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let from = emu.resource_version().to_string();
    pods.create(&PostParams::default(), &pod("a", "db"))
        .await
        .unwrap();
    for app in ["web", "db"] {
        pods.patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"app": app}}})),
        )
        .await
        .unwrap();
    }
    let wp = WatchParams::default().labels("app=web").timeout(1);
    let kinds: Vec<&str> = pods
        .watch(&wp, &from)
        .await
        .unwrap()
        .filter_map(|e| async move {
            match e.unwrap() {
                WatchEvent::Added(_) => Some("ADDED"),
                WatchEvent::Modified(_) => Some("MODIFIED"),
                WatchEvent::Deleted(_) => Some("DELETED"),
                WatchEvent::Bookmark(_) => None,
                WatchEvent::Error(_) => Some("ERROR"),
            }
        })
        .collect()
        .await;
    assert_eq!(kinds, ["ADDED", "DELETED"]);
}

#[tokio::test]
async fn bookmarks_carry_the_latest_resource_version() {
    let emu = Emulator::start_with(EmulatorOptions {
        bookmark_interval: Duration::from_millis(200),
        ..EmulatorOptions::default()
    })
    .await
    .unwrap();
    let client = emu.client().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let mut s = pods
        .watch(
            &WatchParams {
                bookmarks: true,
                ..WatchParams::default()
            },
            "0",
        )
        .await
        .unwrap()
        .boxed();
    // a change to another type still advances the bookmark
    emu.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}))
        .unwrap();
    let want = emu.resource_version().to_string();
    let bm = timeout(Duration::from_secs(5), async {
        loop {
            if let Some(Ok(WatchEvent::Bookmark(b))) = s.next().await
                && b.metadata.resource_version == want
            {
                return b;
            }
        }
    })
    .await
    .expect("a bookmark at the current resourceVersion");
    assert_eq!(bm.types.kind, "Pod");
}

#[tokio::test]
async fn dropped_watches_resume_without_missing_changes() {
    let (emu, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let mut rx = spawn_watcher(pods.clone(), watcher::Config::default());
    wait_init_done(&mut rx).await;
    let lists = || emu.requests().iter().filter(|r| r.verb == "list").count();
    let lists_before = lists();
    emu.faults()
        .fail_next(2, testkit::kube::RequestMatch::any().verb("watch"), 500);
    emu.faults().drop_watches();
    pods.create(&PostParams::default(), &pod("while-away", "web"))
        .await
        .unwrap();
    match next_live(&mut rx).await {
        watcher::Event::Apply(p) => assert_eq!(p.name_any(), "while-away"),
        other => panic!("expected the create made while disconnected, got {other:?}"),
    }
    assert_eq!(
        lists(),
        lists_before,
        "resumed from its resourceVersion, no re-list"
    );
    let failed_watches = emu
        .requests()
        .iter()
        .filter(|r| r.verb == "watch" && r.status == 500)
        .count();
    assert_eq!(failed_watches, 2);
}

#[tokio::test]
async fn metadata_only_calls_and_watchers_get_partial_objects() {
    let (emu, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    pods.create(&PostParams::default(), &pod("a", "web"))
        .await
        .unwrap();
    let listed = pods
        .list_metadata(&kube::api::ListParams::default())
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].labels()["app"], "web");
    let one = pods.get_metadata("a").await.unwrap();
    assert_eq!(one.types.unwrap().kind, "PartialObjectMetadata");

    let (tx, mut rx) = mpsc::unbounded_channel();
    let metas: Api<kube::core::PartialObjectMeta<Pod>> =
        Api::namespaced(pods.clone().into_client(), "default");
    let stream = watcher(metas, watcher::Config::default());
    tokio::spawn(async move {
        let mut s = stream.boxed();
        while let Some(Ok(ev)) = s.next().await {
            if tx.send(ev).is_err() {
                return;
            }
        }
    });
    loop {
        let ev = timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        if matches!(ev, watcher::Event::InitDone) {
            break;
        }
    }
    emu.modify("v1", "Pod", "default", "a", |p| {
        p["metadata"]["labels"]["app"] = json!("db");
    })
    .unwrap();
    let ev = timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    match ev {
        watcher::Event::Apply(m) => assert_eq!(m.labels()["app"], "db"),
        other => panic!("expected the relabel, got {other:?}"),
    }
}
