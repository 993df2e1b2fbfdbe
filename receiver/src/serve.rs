//! `heal8s serve`: settings, wiring, the server and graceful shutdown.
//!
//! Shutdown (SIGTERM/SIGINT): readiness fails and new webhooks get 503 at once,
//! in-flight requests finish, then the worker drains the queue within
//! `--shutdown-timeout`; whatever is left is logged and counted, never hidden.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use receiver_core::{Engine, Journal, NoJournal, Policy, SystemClock};
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::args::ServeArgs;
use crate::http::{AppState, Token, WEBHOOK_PATH, router};
use crate::metrics::Metrics;
use crate::worker::{self, Acting, Recorder};
use gitops::executor::PullRequestExecutor;
use receiver_core::duration::PromDuration;
use receiver_k8s::leader::{LeaderGated, Leadership};
use receiver_k8s::record::KubeJournal;
use receiver_k8s::record::upkeep::{self, UpkeepSettings};
use receiver_k8s::verify::KubeVerifier;
use receiver_k8s::{Clients, KubeExecutor, KubeExecutorSettings, KubeFacts};

/// Validated settings for the service.
#[derive(Debug, Clone)]
pub struct Settings {
    pub token: Option<Token>,
    /// Reads `/outcomes` and `/policy` only (with `token`).
    pub read_token: Option<Token>,
    pub policy: Policy,
    pub namespace: String,
    pub max_body_bytes: usize,
    /// What one alert may carry.
    pub alert_limits: receiver_core::alertmanager::AlertLimits,
    pub queue_capacity: usize,
    /// How many plans may wait in the backlog.
    pub backlog_capacity: usize,
    /// How many plans may run at once.
    pub max_running: usize,
    /// The HTTP listener's limits.
    pub listen: crate::listen::Limits,
    pub shutdown_timeout: Duration,
    /// Succeeded records are deleted this long after they finished.
    pub record_ttl: Duration,
    /// Refusal Events sum this long; a breaker episode closes after its class
    /// was free this long.
    pub report_interval: Duration,
    /// This replica's name (lease holder, author of record history).
    pub identity: String,
    /// How often optional API groups not installed are looked up again
    /// (zero: never).
    pub rediscover_every: Duration,
}

/// A token from `--<flag>-file` or `--<flag>` (`HEAL8S_<ENV>`); both is an error.
fn token_from(
    file: Option<&std::path::Path>,
    value: Option<&str>,
    flag: &str,
    env: &str,
) -> anyhow::Result<Option<Token>> {
    match (file, value) {
        (Some(_), Some(_)) => {
            bail!("both --{flag}-file and --{flag} ({env}) are set; set only one")
        }
        (Some(path), None) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --{flag}-file {}", path.display()))?;
            Ok(Some(Token::new(&text).with_context(|| {
                format!("--{flag}-file {} is empty", path.display())
            })?))
        }
        (None, Some(text)) => Ok(Some(
            Token::new(text).with_context(|| format!("--{flag} ({env}) is empty"))?,
        )),
        (None, None) => Ok(None),
    }
}

/// Turn flags into settings, failing with a clear message on anything unusable.
pub fn settings(args: &ServeArgs) -> anyhow::Result<Settings> {
    let token = token_from(
        args.webhook_token_file.as_deref(),
        args.webhook_token.as_deref(),
        "webhook-token",
        "HEAL8S_WEBHOOK_TOKEN",
    )?;
    match (&token, args.insecure_no_auth) {
        (Some(_), true) => bail!("a webhook token is set and --insecure-no-auth too; choose one"),
        (None, false) => bail!(
            "no webhook token configured: set --webhook-token-file or HEAL8S_WEBHOOK_TOKEN \
             (or pass --insecure-no-auth for a local experiment)"
        ),
        _ => {}
    }
    let read_token = token_from(
        args.read_token_file.as_deref(),
        args.read_token.as_deref(),
        "read-token",
        "HEAL8S_READ_TOKEN",
    )?;
    if read_token.is_some() && args.insecure_no_auth {
        bail!(
            "a read token is set and --insecure-no-auth too: without authentication reads are open; choose one"
        );
    }
    if let (Some(w), Some(r)) = (&token, &read_token)
        && w.same_as(r)
    {
        bail!("the read token equals the webhook token; give readers a token of their own");
    }
    if args.max_body_bytes == 0 {
        bail!("--max-body-bytes must be greater than 0");
    }
    let alert_limits = receiver_core::alertmanager::AlertLimits {
        label_value_bytes: args.max_label_bytes,
        annotation_value_bytes: args.max_annotation_bytes,
        entries: args.max_labels_per_alert,
        alert_bytes: args.max_alert_bytes,
    };
    let problems = alert_limits.problems();
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    if args.queue_capacity == 0 || args.queue_capacity > tokio::sync::Semaphore::MAX_PERMITS {
        bail!(
            "--queue-capacity must be between 1 and {}",
            tokio::sync::Semaphore::MAX_PERMITS
        );
    }
    if args.backlog_capacity == 0 {
        bail!("--backlog-capacity must be at least 1");
    }
    if args.max_running == 0 || args.max_running > 1024 {
        bail!("--max-running must be between 1 and 1024");
    }
    if args.max_connections == 0 {
        bail!("--max-connections must be at least 1");
    }
    for (flag, d) in [
        ("--header-timeout", args.header_timeout),
        ("--request-timeout", args.request_timeout),
    ] {
        if d.get() < Duration::from_millis(100) {
            bail!("{flag} must be at least 100ms");
        }
    }
    let mut policy = args.overrides.load(args.policy.as_deref())?;
    for w in policy.warnings() {
        tracing::warn!(path = %w.path, "Policy warning: {}", w.message);
    }
    if args.dry_run {
        policy.guard.dry_run = true;
    }
    crate::args::apply_cluster_name(&mut policy, args.cluster_name.as_deref())?;
    let g = &policy.guard;
    let longest = [
        g.cooldown,
        g.escalation.within,
        g.budgets.global.per,
        g.budgets.per_namespace.per,
        g.budgets.per_workload.per,
    ]
    .into_iter()
    .max()
    .unwrap_or_default();
    if !args.record_ttl.get().is_zero() && args.record_ttl <= longest {
        bail!(
            "--record-ttl {} must be longer than the guard's longest window ({longest}): the guard reads its history from the records",
            args.record_ttl
        );
    }
    Ok(Settings {
        token,
        read_token,
        policy,
        namespace: args.namespace.clone(),
        max_body_bytes: args.max_body_bytes,
        alert_limits,
        queue_capacity: args.queue_capacity,
        backlog_capacity: args.backlog_capacity,
        max_running: args.max_running,
        listen: crate::listen::Limits {
            header_timeout: args.header_timeout.get(),
            request_timeout: args.request_timeout.get(),
            max_connections: crate::listen::connection_cap(
                args.max_connections,
                crate::listen::open_file_limit(),
            ),
        },
        shutdown_timeout: args.shutdown_timeout.get(),
        record_ttl: args.record_ttl.get(),
        report_interval: args.report_interval.get(),
        identity: args
            .pod_name
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| format!("heal8s-{}", std::process::id())),
        rediscover_every: args.rediscover_every.get(),
    })
}

/// How a shutdown went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Signals still queued (or in progress) when the deadline passed.
    pub unprocessed: u64,
}

/// The pull-request executor, when the policy names a repository; the
/// credentials come from files (a Secret mount), never from the policy.
fn pull_request_executor(
    args: &ServeArgs,
    policy: &receiver_core::Policy,
    facts: KubeFacts,
    user_agent: &str,
) -> anyhow::Result<Option<Arc<PullRequestExecutor>>> {
    use gitops::github::{Auth, Github, GithubConfig};
    let Some(prs) =
        gitops::executor::settings_from(&policy.pull_requests).map_err(anyhow::Error::msg)?
    else {
        if args.github_app_id.is_some() || args.github_token_file.is_some() {
            tracing::warn!(
                "GitHub credentials were given but the policy sets no pullRequests.repository: declarative fixes are recorded, not proposed."
            );
        }
        return Ok(None);
    };
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
    };
    let auth = match (
        args.github_app_id,
        &args.github_app_key_file,
        &args.github_token_file,
    ) {
        (Some(app_id), Some(key), _) => Auth::App {
            app_id,
            private_key_pem: read(key)?,
        },
        (_, _, Some(token)) => Auth::Token(read(token)?.trim().to_string()),
        _ => bail!(
            "pullRequests.repository is {} but no GitHub credentials were given: pass --github-app-id with --github-app-key-file, or --github-token-file",
            prs.repo
        ),
    };
    let github = Github::new(GithubConfig {
        user_agent: user_agent.to_string(),
        ..GithubConfig::new(args.github_api_url.clone(), auth)
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    tracing::info!(repository = %prs.repo, api = %args.github_api_url, "Declarative fixes become pull requests.");
    Ok(Some(Arc::new(PullRequestExecutor::new(
        Arc::new(github),
        prs,
        Arc::new(crate::pulls::KubeWorkloads(facts)),
    ))))
}

/// Run the service until SIGTERM or SIGINT.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    run_until(args, shutdown_signal()).await
}

/// Run the service until `shutdown` completes (the demo stops it this way).
pub async fn run_until(
    args: ServeArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let settings = settings(&args)?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    if args.no_cluster && args.leader_elect {
        bail!("--leader-elect needs a cluster (it holds a Lease); drop --no-cluster");
    }
    if args.no_cluster && !settings.policy.clusters.is_empty() {
        bail!(
            "the policy serves clusters (its clusters section) and --no-cluster reaches none; drop one of them"
        );
    }
    let mut lease = None;
    let served = if args.no_cluster {
        tracing::warn!(
            "--no-cluster: no detectors run and every allowed remediation is simulated."
        );
        crate::banner::log_offline(&settings.policy, args.log.log_format);
        vec![Served {
            name: None,
            namespace: settings.namespace.clone(),
            acting: Acting::offline(),
            clients: None,
            detectors: false,
        }]
    } else {
        let client_settings =
            receiver_k8s::client::ClientSettings::for_instance(&settings.identity);
        tracing::info!(user_agent = %client_settings.user_agent, "Kubernetes and GitHub requests carry this User-Agent.");
        let connect_default = || async {
            Clients::connect(args.kubeconfig.as_deref(), &client_settings)
                .await
                .context(
                    "cannot connect to Kubernetes (pass --kubeconfig, run in a cluster, or use --no-cluster)",
                )
        };
        let single = settings.policy.clusters.is_empty();
        let home = if single || args.leader_elect {
            Some(connect_default().await?)
        } else {
            None
        };
        // the lease is held where heal8s runs (the default connection),
        // for every cluster it serves: one replica acts
        let leadership = match (&home, args.leader_elect) {
            (Some(home), true) => {
                let (leadership, handle) = elect(&args, &settings, home).await?;
                lease = Some(handle);
                leadership
            }
            _ => Leadership::always(),
        };
        let mut served = Vec::new();
        match home {
            Some(clients) if single => served.push(
                connect_served(
                    &args,
                    &settings,
                    &client_settings,
                    None,
                    clients,
                    settings.namespace.clone(),
                    leadership,
                )
                .await?,
            ),
            _ => {
                for m in &settings.policy.clusters {
                    let kubeconfig = m
                        .kubeconfig
                        .as_deref()
                        .map(std::path::Path::new)
                        .or(args.kubeconfig.as_deref());
                    let clients =
                        Clients::connect_to(kubeconfig, m.context.as_deref(), &client_settings)
                            .await
                            .with_context(|| {
                                format!(
                                    "cannot connect to cluster {:?} ({})",
                                    m.name,
                                    m.connection()
                                )
                            })?;
                    let mut s = connect_served(
                        &args,
                        &settings,
                        &client_settings,
                        Some(m.name.clone()),
                        clients,
                        m.namespace
                            .clone()
                            .unwrap_or_else(|| settings.namespace.clone()),
                        leadership.clone(),
                    )
                    .await?;
                    s.detectors = m.detectors;
                    served.push(s);
                }
            }
        }
        served
    };
    let result = run_served(listener, settings, served, shutdown).await;
    if let Some(handle) = lease {
        // every receiver is gone now: the manager releases the lease and ends
        match tokio::time::timeout(Duration::from_secs(3), handle).await {
            Ok(_) => tracing::info!("Lease released."),
            Err(_) => {
                tracing::warn!("The lease was not released within 3s; it expires on its own.")
            }
        }
    }
    result.map(|_| ())
}

/// Hold the Lease `heal8s-leader` in heal8s's namespace of `home`.
async fn elect(
    args: &ServeArgs,
    settings: &Settings,
    home: &Clients,
) -> anyhow::Result<(
    Leadership,
    tokio::task::JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>,
)> {
    let identity = settings.identity.clone();
    let manager = kube_lease_manager::LeaseManagerBuilder::new(home.main.clone(), "heal8s-leader")
        .with_namespace(settings.namespace.clone())
        .with_identity(identity.clone())
        .with_duration(args.lease_duration.max(2))
        .with_grace(1)
        .build()
        .await
        .context("cannot set up leader election (Lease heal8s-leader)")?;
    let (rx, handle) = manager.watch().await;
    tracing::info!(identity = %identity, namespace = %settings.namespace, "Leader election on: only the holder of Lease heal8s-leader acts.");
    Ok((Leadership::following(rx), handle))
}

/// How heal8s acts in one cluster it serves.
#[derive(Debug)]
pub struct Served {
    /// The cluster's name with a `clusters` section (`None`: the one cluster).
    pub name: Option<String>,
    /// heal8s's namespace there (records, pause ConfigMap, Events).
    pub namespace: String,
    pub acting: Acting,
    /// `None` offline.
    pub clients: Option<Clients>,
    /// Whether heal8s's detectors watch it.
    pub detectors: bool,
}

/// Everything heal8s needs to act in the cluster `clients` reach.
async fn connect_served(
    args: &ServeArgs,
    settings: &Settings,
    client_settings: &receiver_k8s::client::ClientSettings,
    name: Option<String>,
    clients: Clients,
    namespace: String,
    leadership: Leadership,
) -> anyhow::Result<Served> {
    // the cluster summary; its reads are bounded and serving does not wait for them
    // the member's own kubeconfig and context, else the default connection's
    let member = name
        .as_deref()
        .and_then(|n| settings.policy.clusters.iter().find(|m| m.name == n));
    let banner = crate::banner::log_connected(
        clients.clone(),
        member
            .and_then(|m| m.kubeconfig.clone().map(std::path::PathBuf::from))
            .or_else(|| args.kubeconfig.clone()),
        member.and_then(|m| m.context.clone()),
        settings.policy.clone(),
        args.log.log_format,
    );
    let span = match &name {
        Some(n) => tracing::info_span!("cluster", cluster = %n),
        None => tracing::Span::none(),
    };
    tokio::spawn(banner.instrument(span));
    let exec = KubeExecutor::new(
        clients.clone(),
        KubeExecutorSettings {
            eviction_retry: args.eviction_retry.get(),
            eviction_timeout: args.eviction_timeout.get(),
            finalizers_after: settings
                .policy
                .detectors
                .custom_resources
                .terminating_after
                .get(),
            instance: args.pod_name.clone(),
            protection: receiver_core::Protection::new(&settings.policy.guard, &namespace)?,
            protected_pods: settings.policy.guard.nodes.protected_pods,
        },
    );
    let journal: Arc<dyn Journal> =
        match KubeJournal::connect(clients.main.clone(), &namespace, &settings.identity).await {
            Some(j) => Arc::new(j),
            None => Arc::new(NoJournal),
        };
    let pulls = pull_request_executor(
        args,
        &settings.policy,
        KubeFacts::new(clients.clone()),
        &client_settings.user_agent,
    )?;
    if let Some(p) = &pulls {
        tokio::spawn(crate::pulls::poll_pull_requests(
            p.clone(),
            clients.main.clone(),
            leadership.clone(),
            settings.policy.pull_requests.poll_interval.get(),
            settings.identity.clone(),
        ));
    }
    let dispatch: Arc<dyn receiver_core::Executor> = Arc::new(crate::pulls::Dispatch {
        janitor: Arc::new(exec),
        pulls,
    });
    let executor: Arc<dyn receiver_core::Executor> = if args.leader_elect {
        Arc::new(LeaderGated {
            inner: dispatch,
            leadership: leadership.clone(),
        })
    } else {
        dispatch
    };
    let holds = receiver_k8s::holds::KubeHolds::new(clients.main.clone(), &namespace);
    Ok(Served {
        name,
        namespace,
        acting: Acting {
            facts: Arc::new(
                KubeFacts::new(clients.clone()).with_detectors(settings.policy.detectors.clone()),
            ),
            executor,
            clock: Arc::new(SystemClock),
            leadership,
            history: Some(Arc::new(receiver_k8s::record::KubeHistory::new(
                clients.main.clone(),
                &settings.identity,
            ))),
            // the record upkeep in run_served watches for them
            clears: None,
            approvals: None,
            namespace_policies: None,
            // run_served starts them
            notices: None,
            holds: Some(Arc::new(holds)),
            journal,
            verifier: Some(Arc::new(KubeVerifier::new(
                clients.clone(),
                args.verify_timeout.map(PromDuration::get),
                args.verify_stable_for.get(),
            ))),
        },
        clients: Some(clients),
        detectors: true,
    })
}

/// Run the service on `listener` until `shutdown` completes, for the one
/// cluster `cluster` reaches (`None`: offline).
pub async fn run_with(
    listener: TcpListener,
    settings: Settings,
    acting: Acting,
    cluster: Option<Clients>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<ShutdownReport> {
    let served = vec![Served {
        name: None,
        namespace: settings.namespace.clone(),
        acting,
        detectors: cluster.is_some(),
        clients: cluster,
    }];
    run_served(listener, settings, served, shutdown).await
}

/// What runs for one cluster served, and how to stop it.
struct Running {
    worker: tokio::task::JoinHandle<()>,
    detectors: Vec<tokio::task::JoinHandle<()>>,
    /// Aborted at shutdown (record upkeep, the pause watch).
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Run the service on `listener` until `shutdown` completes, for every
/// cluster in `served`: each with its own engine (guard, budgets, backlog),
/// queue, worker, detectors and records; one HTTP front, one set of metrics,
/// one `/outcomes`.
pub async fn run_served(
    listener: TcpListener,
    settings: Settings,
    served: Vec<Served>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<ShutdownReport> {
    let metrics = Arc::new(Metrics::new());
    let dry_run = settings.policy.guard.dry_run;
    metrics.dry_run.set(i64::from(dry_run));
    let several = served.iter().any(|s| s.name.is_some());
    // the door's recorder keeps every cluster's outcomes (one `/outcomes`)
    let door =
        Arc::new(Recorder::new(metrics.clone()).named(settings.policy.guard.cluster_name.clone()));
    let notify = start_notifications(&settings, &metrics)?;
    let (stop_detectors, _) = tokio::sync::watch::channel(false);
    let leadership = served
        .first()
        .map(|s| s.acting.leadership.clone())
        .unwrap_or_else(Leadership::always);
    let mut running = Vec::new();
    let mut fronts = Vec::new();
    for s in served {
        let mut policy = settings.policy.clone();
        if s.name.is_some() {
            policy.guard.cluster_name = s.name.clone();
        }
        let (r, front) = start_served(
            &settings,
            policy,
            s,
            &door,
            &metrics,
            notify.as_ref().map(|n| &n.0),
            &stop_detectors,
        )
        .await?;
        running.push(r);
        fronts.push(front);
    }
    let front = if several {
        crate::front::Front::Clusters(Arc::new(crate::front::Clusters {
            label: settings.policy.guard.cluster_label.clone(),
            members: settings.policy.clusters.clone(),
            fronts,
        }))
    } else {
        let (queue, recorder) = fronts.into_iter().next().context("no cluster to serve")?;
        crate::front::Front::One { queue, recorder }
    };
    let accepting = Arc::new(AtomicBool::new(true));
    let state = AppState {
        token: settings.token.clone(),
        read_token: settings.read_token.clone(),
        front,
        metrics: metrics.clone(),
        recorder: door,
        policy: Arc::new(settings.policy.to_json()),
        max_body_bytes: settings.max_body_bytes,
        alert_limits: settings.alert_limits,
        accepting: accepting.clone(),
        leadership,
    };
    if state.token.is_none() {
        tracing::warn!(
            "AUTHENTICATION IS DISABLED (--insecure-no-auth): anyone who can reach {WEBHOOK_PATH} can trigger remediations, and /outcomes and /policy are open to read."
        );
    }
    let protected: Vec<String> =
        receiver_core::Protection::new(&settings.policy.guard, &settings.namespace)?
            .namespaces()
            .map(str::to_string)
            .collect();
    let clusters = state.front.names().join(", ");
    tracing::info!(
        listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        routes = settings.policy.routes.len(),
        dry_run,
        protected_namespaces = ?protected,
        queue_capacity = settings.queue_capacity,
        cluster_name = settings.policy.guard.cluster_name.as_deref(),
        cluster_label = %settings.policy.guard.cluster_label,
        clusters = (!clusters.is_empty()).then_some(clusters.as_str()),
        "heal8s is serving."
    );
    let queues: Vec<crate::queue::WorkQueue> = state.front.queues().into_iter().cloned().collect();
    let app = router(state);
    let stop_accepting = accepting.clone();
    crate::listen::serve(listener, app, settings.listen, async move {
        shutdown.await;
        stop_accepting.store(false, Ordering::SeqCst);
        tracing::info!("Shutdown requested: no longer accepting webhooks.");
    })
    .await
    .context("the HTTP server failed")?;
    accepting.store(false, Ordering::SeqCst);
    let _ = stop_detectors.send(true);
    for r in &running {
        for task in &r.tasks {
            task.abort();
        }
    }
    for d in running.iter_mut().flat_map(|r| r.detectors.drain(..)) {
        if tokio::time::timeout(Duration::from_secs(2), d)
            .await
            .is_err()
        {
            tracing::warn!("A detector did not stop within 2s.");
        }
    }
    let left: usize = queues.iter().map(crate::queue::WorkQueue::len).sum();
    drop(queues);
    tracing::info!(queued = left, "Draining the work queue.");
    let deadline = tokio::time::Instant::now() + settings.shutdown_timeout;
    let mut failed = None;
    let mut late = false;
    for r in &mut running {
        match tokio::time::timeout_at(deadline, &mut r.worker).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failed = Some(e),
            Err(_) => late = true,
        }
    }
    if let Some(e) = failed {
        bail!("the worker task failed: {e}");
    }
    if !late {
        if let Some((_, d)) = notify {
            // the workers held the outbox: what they told goes out now
            let left = d.finish(NOTIFY_FLUSH).await;
            if left > 0 {
                tracing::warn!(
                    left,
                    "Notifications not delivered within {NOTIFY_FLUSH:?} of shutdown."
                );
            }
        }
        tracing::info!("Shutdown complete.");
        return Ok(ShutdownReport { unprocessed: 0 });
    }
    // stop the workers mid-signal; the plans running and the queued
    // signals are lost: say so
    for r in &running {
        r.worker.abort();
    }
    let remaining = u64::try_from(metrics.queue_depth.get()).unwrap_or(0)
        + u64::try_from(metrics.running.get()).unwrap_or(0).max(1);
    tracing::error!(
        timeout = ?settings.shutdown_timeout,
        remaining,
        "Shutdown deadline passed with work still queued; those alerts were NOT processed (Alertmanager will resend still-firing alerts)."
    );
    metrics.unprocessed_at_shutdown.inc_by(remaining);
    Ok(ShutdownReport {
        unprocessed: remaining,
    })
}

/// Start one served cluster: its engine, queue, detectors, record upkeep,
/// pause watch and worker.
async fn start_served(
    settings: &Settings,
    policy: Policy,
    s: Served,
    door: &Arc<Recorder>,
    metrics: &Arc<Metrics>,
    outbox: Option<&receiver_notify::Outbox>,
    stop: &tokio::sync::watch::Sender<bool>,
) -> anyhow::Result<(Running, (crate::queue::WorkQueue, Arc<Recorder>))> {
    let Served {
        name,
        namespace,
        mut acting,
        clients,
        detectors,
    } = s;
    // with several clusters, what each cluster's worker logs names it
    let span = match &name {
        Some(n) => tracing::info_span!("cluster", cluster = %n),
        None => tracing::Span::none(),
    };
    let engine = Engine::new(policy.clone(), &namespace)?
        .with_backlog_capacity(settings.backlog_capacity)
        .with_max_running(settings.max_running)
        .with_verification(acting.verifier.is_some());
    let recorder = match &name {
        // with one cluster the door keeps its outcomes itself
        None => door.clone(),
        Some(_) => Arc::new(door.for_cluster(name.clone())),
    };
    recorder.stand_down().set_window(settings.report_interval);
    let (tx, rx) = crate::queue::work_queue_with_repeats(
        settings.queue_capacity,
        policy.guard.dedupe_window.get(),
    );
    tx.count_into(metrics.clone());
    metrics
        .queue_capacity
        .inc_by(i64::try_from(settings.queue_capacity).unwrap_or(i64::MAX));
    let mut running = Running {
        worker: tokio::spawn(async {}),
        detectors: Vec::new(),
        tasks: Vec::new(),
    };
    if let Some(clients) = &clients {
        let sink = receiver_k8s::standdown::KubeStandDown::connect(
            clients.main.clone(),
            &namespace,
            &settings.identity,
        )
        .await;
        recorder.stand_down().publish_to(Arc::new(sink));
        if detectors {
            running.detectors = receiver_k8s::watch::start(
                clients,
                &policy.detectors,
                policy.guard.cooldown.get(),
                policy.features.strain_eviction,
                settings.rediscover_every,
                Arc::new(tx.clone()),
                stop.subscribe(),
                acting.leadership.clone(),
            )
            .await;
        }
        recorder
            .board()
            .read_records_from(Arc::new(crate::dashboard::KubeRecords::new(
                clients.main.clone(),
            )));
        // the records' garbage collection, and the watch for cleared escalations
        let u = upkeep::spawn(
            clients,
            &UpkeepSettings {
                record_ttl: settings.record_ttl,
                namespace: namespace.clone(),
            },
            stop.subscribe(),
        );
        acting.clears = acting.clears.or(Some(u.clears));
        acting.approvals = acting.approvals.or(Some(u.approvals));
        // the teams' own policies for their namespaces (RemediationPolicy)
        let (nsp_tx, nsp_rx) = tokio::sync::watch::channel(Vec::new());
        running
            .tasks
            .push(tokio::spawn(receiver_k8s::nspolicy::watch(
                clients.main.clone(),
                Arc::new(policy.clone()),
                receiver_k8s::events::Events::new(
                    clients.main.clone(),
                    Some(settings.identity.clone()),
                ),
                nsp_tx,
            )));
        acting.namespace_policies = Some(nsp_rx);
        running.tasks.extend(u.tasks);
        // the pause ConfigMap: every replica watches it, so a pause survives failover
        let r = recorder.clone();
        running.tasks.push(tokio::spawn(
            receiver_k8s::pause::watch(
                clients.main.clone(),
                namespace.clone(),
                move |p| r.pause().set_configmap(p),
                stop.subscribe(),
            )
            .instrument(span.clone()),
        ));
    }
    if let Some(outbox) = outbox {
        acting.notices = Some(worker::Notices {
            notifier: receiver_core::notify::Notifier::new(
                policy.notifications.clone(),
                policy.guard.cluster_name.clone(),
            ),
            outbox: outbox.clone(),
        });
    }
    running.worker = tokio::spawn(
        worker::run(engine, rx, acting, recorder.clone(), metrics.clone()).instrument(span),
    );
    Ok((running, (tx, recorder)))
}

/// How long notifications may take to go out at shutdown.
const NOTIFY_FLUSH: Duration = Duration::from_secs(5);

/// Start delivering notifications when the policy names receivers: every
/// secret is read first (a missing one stops heal8s here, naming the
/// receiver and field, never the value).
fn start_notifications(
    settings: &Settings,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Option<(receiver_notify::Outbox, receiver_notify::Delivery)>> {
    let cfg = &settings.policy.notifications;
    if cfg.receivers.is_empty() {
        return Ok(None);
    }
    let problems = receiver_notify::secrets::check(cfg);
    if !problems.is_empty() {
        bail!(
            "cannot read the notification secrets:\n  - {}",
            problems.join("\n  - ")
        );
    }
    metrics.start_notifications(cfg.receivers.iter().map(|r| r.name.as_str()));
    let (outbox, delivery) = receiver_notify::start(cfg, metrics.clone())
        .map_err(|e| anyhow::anyhow!("cannot start notifications: {e}"))?;
    let names: Vec<String> = cfg
        .receivers
        .iter()
        .map(|r| format!("{} ({})", r.name, r.channel().map_or("?", |c| c.as_str())))
        .collect();
    tracing::info!(receivers = %names.join(", "), routes = cfg.routes.len(), "Notifications on.");
    Ok(Some((outbox, delivery)))
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
