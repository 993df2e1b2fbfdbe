//! `heal8s-demo`: heal8s's first five minutes, with no cluster and no GitHub
//! account. It starts the Kubernetes API emulation seeded with a small
//! cluster that has problems, the GitHub API emulation with the manifest
//! repository, and heal8s itself (the library's `serve`, the code path of
//! `heal8s serve`) with the test-cluster profile; alerts come through a real
//! Alertmanager when one is installed, else the demo posts captured real
//! payloads itself. Then it narrates what heal8s does, and stops on Ctrl+C.
//!
//! The emulation is an API server alone: it runs no controllers and no
//! kubelets, so the demo plays them and says so each time it does: the
//! ReplicaSet controller (a deleted or evicted pod gets a replacement), the
//! kubelets of Ready nodes (a deleted pod is gone only once its kubelet
//! confirms), the kubelet of the drained node (it comes back, reports Ready
//! and confirms the evictions it missed) and the namespace controller (a
//! deleted namespace is emptied and finalized).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use receiver::cli::{Cli, Command};
use serde_json::{Value, json};
use testkit::github::{GithubEmulator, TEST_APP_ID, TEST_APP_KEY_PEM};
use testkit::kube::{Controller, Emulator};
use testkit::scenario::{self, Problems, REPOSITORY};
use testkit::{Alertmanager, AmTiming, TempDir};

/// A captured Alertmanager 0.25 webhook (firing KubePodCrashLooping for
/// shop/api-7d9c-x2), posted when no Alertmanager is installed.
const CAPTURED_PAYLOAD: &str =
    include_str!("../../receiver/core/tests/fixtures/sample-webhook.json");
const TOKEN: &str = "heal8s-demo-token";
const INSTALLATION: u64 = 7;

/// Run heal8s against an emulated cluster with problems and narrate what it does.
#[derive(Debug, Parser)]
#[command(name = "heal8s-demo", version)]
struct Args {
    /// Where heal8s listens (webhook, /metrics, /policy, /outcomes).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Post the captured Alertmanager payload directly, even when
    /// Alertmanager is installed.
    #[arg(long)]
    no_alertmanager: bool,
    /// Stop once everything is handled (or at --timeout) instead of waiting
    /// for Ctrl+C; exit 1 if something was not handled.
    #[arg(long)]
    exit_when_done: bool,
    /// Seconds to wait for heal8s to handle every problem before saying
    /// which ones it did not.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("heal8s-demo: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("heal8s-demo: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The team chat the demo plays: a webhook receiver on loopback that keeps
/// what heal8s tells it.
type Chat = std::sync::Arc<Mutex<Vec<Value>>>;

async fn team_chat() -> anyhow::Result<(String, Chat)> {
    let chat: Chat = Default::default();
    let kept = chat.clone();
    let app = axum::Router::new().route(
        "/chat/{secret}",
        axum::routing::post(move |body: axum::Json<Value>| async move {
            if let Ok(mut c) = kept.lock() {
                c.push(body.0);
            }
            "ok"
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/chat/demo-secret", l.local_addr()?);
    tokio::spawn(async move { axum::serve(l, app).await });
    Ok((url, chat))
}

/// What the narration has seen so far.
#[derive(Debug, Default)]
struct Seen {
    /// Messages of the team chat already narrated.
    told: usize,
    outcomes: BTreeSet<String>,
    records: BTreeSet<String>,
    pulls: BTreeMap<u64, String>,
    replaced: BTreeSet<String>,
    node_back: bool,
}

/// The problems the demo seeded, and whether heal8s has handled each.
#[derive(Debug, Default)]
struct Handled {
    crashloop_deleted: bool,
    protected_refused: bool,
    node_drained: bool,
    vm_deleted: bool,
    namespace_deleted: bool,
    pull_request: bool,
    pod_verified: bool,
    node_verified: bool,
    alert_handled: bool,
    told: bool,
}

impl Handled {
    fn all(&self) -> bool {
        self.crashloop_deleted
            && self.protected_refused
            && self.node_drained
            && self.vm_deleted
            && self.namespace_deleted
            && self.pull_request
            && self.pod_verified
            && self.node_verified
            && self.alert_handled
            && self.told
    }

    fn missing(&self) -> Vec<&'static str> {
        [
            (
                self.crashloop_deleted,
                "the crash-looping pod was not deleted",
            ),
            (
                self.protected_refused,
                "the kube-system pod was not refused",
            ),
            (self.node_drained, "node w2 was not drained"),
            (self.vm_deleted, "the stale VM was not deleted"),
            (
                self.namespace_deleted,
                "the stale test namespace was not deleted",
            ),
            (self.pull_request, "no pull request was opened"),
            (
                self.pod_verified,
                "the crash-looping pod's Deployment was not verified",
            ),
            (self.node_verified, "node w2 was not verified"),
            (self.alert_handled, "no alert from Alertmanager was handled"),
            (self.told, "the team chat was told nothing"),
        ]
        .into_iter()
        .filter(|(done, _)| !done)
        .map(|(_, what)| what)
        .collect()
    }
}

async fn run(args: Args) -> anyhow::Result<bool> {
    let started = Instant::now();
    let dir = TempDir::new("demo");
    let log_path = dir.path().join("heal8s.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    tracing_subscriber::fmt()
        .with_writer(Mutex::new(log))
        .with_ansi(false)
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))?;

    // the emulations
    let kube = Emulator::start().await?;
    scenario::seed(&kube, Problems::all())?;
    let kubeconfig = dir.path().join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig)?;
    let gh = GithubEmulator::start().await?;
    gh.create_repo("acme", "manifests", INSTALLATION)?;
    gh.put_files(
        REPOSITORY,
        "main",
        &scenario::manifest_files(),
        "the shop's manifests",
    )?;

    // heal8s, configured as a user would: files and flags
    // the team chat hears what heal8s does: a webhook receiver whose URL
    // (a secret, as a real one is) heal8s reads from a file
    let (chat_url, chat) = team_chat().await?;
    let chat_url_file = dir.path().join("chat-webhook-url");
    std::fs::write(&chat_url_file, &chat_url)?;
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "{}\nnotifications:\n  receivers:\n  - name: team-chat\n    webhook: {{url: {{file: {}}}}}\n  delivery: {{groupWindow: 5s}}\n",
            scenario::POLICY.trim_end(),
            chat_url_file.display()
        ),
    )?;
    let token_file = dir.path().join("webhook-token");
    std::fs::write(&token_file, TOKEN)?;
    let key = dir.path().join("github-app.pem");
    std::fs::write(&key, TEST_APP_KEY_PEM)?;
    let app_id = TEST_APP_ID.to_string();
    let flags: Vec<String> = [
        "heal8s",
        "serve",
        "--listen",
        &args.listen.to_string(),
        "--webhook-token-file",
        &path(&token_file),
        "--policy",
        &path(&policy),
        "--kubeconfig",
        &path(&kubeconfig),
        "--github-api-url",
        &gh.url(),
        "--github-app-id",
        &app_id,
        "--github-app-key-file",
        &path(&key),
        "--pod-name",
        "heal8s-demo",
        "--eviction-retry",
        "1s",
        "--verify-timeout",
        "60s",
        // the demo's Deployment controller is played at once: a short
        // stability window (the default is 60s) keeps the narration brisk
        "--verify-stable-for",
        "2s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let serve_args = match Cli::try_parse_from(&flags)
        .context("heal8s rejected the demo's flags")?
        .command
    {
        Command::Serve(a) => *a,
        _ => bail!("not a serve command"),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(receiver::serve::run_until(serve_args, async move {
        let _ = stopped.await;
    }));
    let url = format!("http://{}", args.listen);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    wait_ready(&http, &url, &mut server).await?;

    println!(
        "heal8s demo: an emulated cluster with problems, and heal8s with the test-cluster profile.\n"
    );
    println!(
        "  heal8s        {url}  (policy {}, log {})",
        policy.display(),
        log_path.display()
    );
    println!(
        "  cluster       {}  (Kubernetes API emulation; kubeconfig {})",
        kube.url(),
        kubeconfig.display()
    );
    println!(
        "  GitHub        {}  (GitHub API emulation; repository {REPOSITORY})",
        gh.url()
    );
    let webhook = format!("{url}/webhook/alertmanager");
    let am = if args.no_alertmanager {
        None
    } else {
        match Alertmanager::start(&webhook, TOKEN, AmTiming::default()).await {
            Ok(am) => {
                println!(
                    "  Alertmanager  {}  (real, routing to heal8s with a bearer token)",
                    am.url
                );
                Some(am)
            }
            Err(e) => {
                println!("  Alertmanager  not started ({e:#}); posting a captured payload instead");
                None
            }
        }
    };
    println!("\nThe cluster's problems:");
    for line in [
        "shop/api-7d9c-x2 is crash looping after a bad release",
        "shop/checkout-5b8f-q4 was OOM-killed at its 256Mi memory limit",
        "node w2 has reported no status for 20 minutes (NotReady); shop/web-66f1-b2 runs on it",
        "vms/vm-fedora-ci is a KubeVirt VM a CI run left behind 3 hours ago",
        "e2e-run-4711 is a test namespace created 2 hours ago",
        "kube-system/coredns-6d4b-k2 is crash looping too, in a protected namespace",
    ] {
        println!("  - {line}");
    }
    println!("\nWhat heal8s does (its detectors watch the cluster; alerts arrive as webhooks):");

    match &am {
        Some(am) => {
            let now = jiff::Timestamp::now().to_string();
            am.post_alerts(json!([
                {"labels": {"alertname": "KubePodCrashLooping", "namespace": "shop",
                            "pod": scenario::CRASHLOOP_POD, "container": "api", "severity": "warning"},
                 "annotations": {"summary": "Pod shop/api-7d9c-x2 (api) is crash looping."},
                 "startsAt": now, "generatorURL": "http://prometheus.demo:9090/graph"},
                {"labels": {"alertname": "KubeContainerOOMKilled", "namespace": "shop",
                            "pod": scenario::OOM_POD, "container": "checkout", "severity": "warning"},
                 "annotations": {"summary": "Container checkout of shop/checkout-5b8f-q4 was OOM-killed.",
                                 "runbook_url": "https://github.com/heal8s/heal8s#pull-requests"},
                 "startsAt": now, "generatorURL": "http://prometheus.demo:9090/graph"}
            ]))
            .await?;
            note(
                started,
                "Alertmanager got KubePodCrashLooping and KubeContainerOOMKilled (as Prometheus would send them)",
            );
        }
        None => {
            let mut payload: Value = serde_json::from_str(CAPTURED_PAYLOAD)?;
            let now = jiff::Timestamp::now().to_string();
            if let Some(alerts) = payload["alerts"].as_array_mut() {
                for a in alerts {
                    a["startsAt"] = now.clone().into();
                }
            }
            let r = http
                .post(&webhook)
                .bearer_auth(TOKEN)
                .json(&payload)
                .send()
                .await?;
            note(
                started,
                &format!(
                    "posted a captured Alertmanager webhook (KubePodCrashLooping): HTTP {}",
                    r.status()
                ),
            );
        }
    }

    let mut seen = Seen::default();
    let mut handled = Handled::default();
    let deadline = started + Duration::from_secs(args.timeout);
    let mut reported = false;
    let mut ok = true;
    // Ctrl+C, or SIGTERM (a `timeout` or a process manager), stops it all
    let stop_signal = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            Some(()) = async { match term.as_mut() { Some(t) => t.recv().await, None => None } } => {}
        }
    };
    tokio::pin!(stop_signal);
    loop {
        narrate(
            started,
            &http,
            &url,
            &kube,
            &gh,
            &chat,
            &mut seen,
            &mut handled,
        )
        .await;
        play_controllers(started, &kube, &mut seen);
        if !reported && (handled.all() || Instant::now() > deadline) {
            reported = true;
            ok = handled.all();
            summary(&url, &kube, &gh, &kubeconfig, &log_path, &handled);
            if args.exit_when_done {
                break;
            }
            println!("\nPress Ctrl+C to stop (the emulations and their files go with it).");
        }
        if server.is_finished() {
            println!("heal8s stopped unexpectedly; see {}", log_path.display());
            ok = false;
            break;
        }
        tokio::select! {
            () = &mut stop_signal => {
                println!();
                break;
            }
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
    let _ = stop.send(());
    match tokio::time::timeout(Duration::from_secs(30), server).await {
        Ok(Ok(Ok(()))) => println!("heal8s stopped cleanly."),
        Ok(Ok(Err(e))) => {
            println!("heal8s stopped with an error: {e:#}");
            ok = false;
        }
        Ok(Err(e)) => {
            println!("heal8s's task failed: {e}");
            ok = false;
        }
        Err(_) => println!("heal8s did not stop within 30s; leaving it."),
    }
    drop(am);
    Ok(ok)
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn note(started: Instant, text: &str) {
    println!("  [{:>5.1}s] {text}", started.elapsed().as_secs_f64());
}

async fn wait_ready(
    http: &reqwest::Client,
    url: &str,
    server: &mut tokio::task::JoinHandle<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if server.is_finished() {
            return match server.await {
                Ok(Err(e)) => Err(e.context(
                    "heal8s did not start (another process on the port? pass --listen 127.0.0.1:PORT)",
                )),
                _ => bail!("heal8s stopped before it was ready"),
            };
        }
        if let Ok(r) = http.get(format!("{url}/readyz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("heal8s was not ready within 30s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Print what is new: outcomes, verified records, pull requests.
#[allow(clippy::too_many_arguments)]
async fn narrate(
    started: Instant,
    http: &reqwest::Client,
    url: &str,
    kube: &Emulator,
    gh: &GithubEmulator,
    chat: &Chat,
    seen: &mut Seen,
    handled: &mut Handled,
) {
    let told: Vec<Value> = chat
        .lock()
        .map(|c| c.iter().skip(seen.told).cloned().collect())
        .unwrap_or_default();
    seen.told += told.len();
    for m in told {
        let n = &m["notice"];
        handled.told = true;
        note(
            started,
            &format!(
                "TOLD      team-chat [{}] {}",
                n["severity"].as_str().unwrap_or(""),
                n["title"].as_str().unwrap_or("")
            ),
        );
    }
    // /outcomes needs the webhook token (or a read token) like the webhook does
    let outcomes: Vec<Value> = match http
        .get(format!("{url}/outcomes"))
        .bearer_auth(TOKEN)
        .send()
        .await
    {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    for o in outcomes {
        let key = o.to_string();
        if !seen.outcomes.insert(key) {
            continue;
        }
        let text = |k: &str| o[k].as_str().unwrap_or("").to_string();
        let (result, target, remediation) = (text("result"), text("target"), text("remediation"));
        let source = if text("source") == "detector" {
            "detector"
        } else {
            "alert"
        };
        let head = format!("{} ({source} {})", remediation, text("name"));
        if source == "alert" && !remediation.is_empty() {
            handled.alert_handled = true;
        }
        match result.as_str() {
            "acted" => {
                note(started, &format!("ACTED     {head}: {}", text("message")));
                if remediation == "delete-pod" && target.contains(scenario::CRASHLOOP_POD) {
                    handled.crashloop_deleted = true;
                }
                if remediation == "drain-node" {
                    handled.node_drained = true;
                }
                if remediation == "cleanup-resource" && target.contains(scenario::STALE_VM) {
                    handled.vm_deleted = true;
                }
                if remediation == "delete-namespace" {
                    handled.namespace_deleted = true;
                }
            }
            "refused" => {
                note(
                    started,
                    &format!(
                        "REFUSED   {head} for {target}: {} ({})",
                        text("reason"),
                        text("message")
                    ),
                );
                if target.contains(scenario::PROTECTED_POD) {
                    handled.protected_refused = true;
                }
            }
            "dry_run" | "failed" | "deferred" => note(
                started,
                &format!(
                    "{:<9} {head} for {target}: {}",
                    result.to_uppercase(),
                    text("message")
                ),
            ),
            // deduped deliveries, resolved alerts and notify-only routes are
            // bookkeeping: /outcomes has them
            _ => {}
        }
    }
    for r in kube.list("heal8s.io/v1alpha1", "Remediation", "") {
        let phase = r["status"]["phase"].as_str().unwrap_or("");
        if !matches!(phase, "Succeeded" | "Failed" | "Escalated") {
            continue;
        }
        let name = r["metadata"]["name"].as_str().unwrap_or("").to_string();
        if !seen.records.insert(format!("{name}/{phase}")) {
            continue;
        }
        let target = &r["spec"]["target"];
        let what = format!(
            "{} {}{}",
            target["kind"].as_str().unwrap_or(""),
            target["namespace"]
                .as_str()
                .map(|n| format!("{n}/"))
                .unwrap_or_default(),
            target["name"].as_str().unwrap_or("")
        );
        if phase == "Succeeded" {
            let target_name = target["name"].as_str().unwrap_or("");
            handled.pod_verified |= target_name == scenario::CRASHLOOP_POD;
            handled.node_verified |= target_name == scenario::BAD_NODE;
        }
        let label = if phase == "Succeeded" {
            "VERIFIED "
        } else {
            "NOT FIXED"
        };
        note(
            started,
            &format!(
                "{label} {} {what}: {} ({})",
                r["spec"]["remediation"].as_str().unwrap_or(""),
                r["status"]["message"].as_str().unwrap_or(""),
                r["status"]["reason"].as_str().unwrap_or("")
            ),
        );
    }
    for p in gh.pulls(REPOSITORY) {
        if seen.pulls.get(&p.number) == Some(&p.head_sha) {
            continue;
        }
        let updated = seen.pulls.insert(p.number, p.head_sha.clone()).is_some();
        handled.pull_request = true;
        note(
            started,
            &format!(
                "PR        {} {REPOSITORY}#{}: {} (branch {}, labels {})",
                if updated { "updated" } else { "opened" },
                p.number,
                p.title,
                p.head_ref,
                p.labels.join(", ")
            ),
        );
        for file in gh.files(REPOSITORY, &p.head_ref) {
            let before = gh.file(REPOSITORY, &p.base_ref, &file).unwrap_or_default();
            let after = gh.file(REPOSITORY, &p.head_ref, &file).unwrap_or_default();
            if before == after {
                continue;
            }
            let diff = similar::TextDiff::from_lines(&before, &after);
            let text = diff
                .unified_diff()
                .context_radius(2)
                .header(&format!("a/{file}"), &format!("b/{file}"))
                .to_string();
            for line in text.lines() {
                println!("              {line}");
            }
        }
    }
}

/// Play the controllers the emulation lacks, and say so.
fn play_controllers(started: Instant, kube: &Emulator, seen: &mut Seen) {
    // the kubelets of Ready nodes confirm graceful deletions; the namespace
    // controller empties and finalizes deleted namespaces
    for controller in [Controller::Kubelet, Controller::Namespace] {
        for a in kube.play_once(controller) {
            note(
                started,
                &format!("  (the demo, as {}, {})", a.actor, a.action),
            );
        }
    }
    // the ReplicaSet controller: keep each shop Deployment at its replicas
    for d in kube.list("apps/v1", "Deployment", "shop") {
        let name = d["metadata"]["name"].as_str().unwrap_or("").to_string();
        let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
        let Some(rs) = kube
            .list("apps/v1", "ReplicaSet", "shop")
            .into_iter()
            .find(|r| r["metadata"]["ownerReferences"][0]["name"] == name.as_str())
        else {
            continue;
        };
        let rs_name = rs["metadata"]["name"].as_str().unwrap_or("").to_string();
        let pods: Vec<Value> = kube
            .list("v1", "Pod", "shop")
            .into_iter()
            .filter(|p| {
                p["metadata"]["ownerReferences"][0]["name"] == rs_name.as_str()
                    && p["metadata"]["deletionTimestamp"].is_null()
            })
            .collect();
        let missing = want - i64::try_from(pods.len()).unwrap_or(want);
        if missing <= 0 {
            continue;
        }
        let container = &d["spec"]["template"]["spec"]["containers"][0];
        for _ in 0..missing {
            let new_name = format!("{rs_name}-new{}", seen.replaced.len() + 1);
            let hash = rs_name.trim_start_matches(&format!("{name}-")).to_string();
            let mut pod = scenario::pod(
                "shop",
                &new_name,
                &name,
                &hash,
                container["name"].as_str().unwrap_or(&name),
                container["image"].as_str().unwrap_or(""),
                container["resources"].clone(),
                "w1",
                scenario::PodState::Healthy,
            );
            let now = jiff::Timestamp::now().to_string();
            pod["metadata"]["creationTimestamp"] = json!(now);
            pod["status"]["startTime"] = json!(now);
            pod["status"]["containerStatuses"][0]["state"] = json!({"running": {"startedAt": now}});
            if kube.create(scenario::owned_by_live(kube, pod)).is_ok() {
                seen.replaced.insert(new_name.clone());
                note(
                    started,
                    &format!("  (the demo, as the ReplicaSet controller, starts shop/{new_name})"),
                );
            }
        }
        let _ = kube.modify("apps/v1", "ReplicaSet", "shop", &rs_name, |r| {
            r["status"]["readyReplicas"] = json!(want);
        });
        let _ = kube.modify("apps/v1", "Deployment", "shop", &name, |d| {
            d["status"]["readyReplicas"] = json!(want);
            d["status"]["availableReplicas"] = json!(want);
        });
    }
    // the kubelet of the drained node: it comes back once every pod on it
    // was evicted (they stay Terminating while it is down: nothing confirms)
    if !seen.node_back {
        let Some(node) = kube.get("v1", "Node", "", scenario::BAD_NODE) else {
            return;
        };
        let cordoned = node["spec"]["unschedulable"] == true;
        let evicted = kube
            .list("v1", "Pod", "")
            .iter()
            .filter(|p| p["spec"]["nodeName"] == scenario::BAD_NODE)
            .all(|p| p["metadata"]["deletionTimestamp"].is_string());
        if cordoned && evicted {
            let now = jiff::Timestamp::now().to_string();
            let back = kube.modify("v1", "Node", "", scenario::BAD_NODE, |n| {
                n["status"]["conditions"] = json!([{"type": "Ready", "status": "True",
                    "reason": "KubeletReady", "lastTransitionTime": now}]);
            });
            if back.is_ok() {
                seen.node_back = true;
                note(
                    started,
                    "  (the demo, as w2's kubelet after a restart, reports Ready and will confirm the evictions it missed; w2 stays cordoned until someone uncordons it)",
                );
            }
        }
    }
}

fn summary(
    url: &str,
    kube: &Emulator,
    gh: &GithubEmulator,
    kubeconfig: &Path,
    log: &Path,
    handled: &Handled,
) {
    let missing = handled.missing();
    if missing.is_empty() {
        println!(
            "\nEvery problem is handled: fixed, refused with a reason, or proposed as a pull request."
        );
    } else {
        println!("\nNot handled in time:");
        for m in missing {
            println!("  - {m}");
        }
    }
    let token = gh.installation_token(INSTALLATION);
    println!(
        "\nWhere to look:
  curl -s -H 'Authorization: Bearer {TOKEN}' {url}/outcomes   what heal8s decided, and why
  curl -s -H 'Authorization: Bearer {TOKEN}' {url}/policy     the policy in force, defaults filled in
  curl -s {url}/metrics          Prometheus metrics (heal8s_*)
  kubectl --kubeconfig {kc} get pods,remediations -A
  curl -s -H 'Authorization: token {token}' {gh}/repos/{REPOSITORY}/pulls
  heal8s's log: {log}
  (the emulation at {k} answers kubectl; it runs no controllers or kubelets: the demo played them, as the lines in parentheses say)",
        kc = kubeconfig.display(),
        gh = gh.url(),
        log = log.display(),
        k = kube.url(),
    );
}
