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
    let mut lease = None;
    let (acting, cluster) = if args.no_cluster {
        tracing::warn!(
            "--no-cluster: no detectors run and every allowed remediation is simulated."
        );
        crate::banner::log_offline(&settings.policy, args.log.log_format);
        (Acting::offline(), None)
    } else {
        let client_settings =
            receiver_k8s::client::ClientSettings::for_instance(&settings.identity);
        tracing::info!(user_agent = %client_settings.user_agent, "Kubernetes and GitHub requests carry this User-Agent.");
        let clients = Clients::connect(args.kubeconfig.as_deref(), &client_settings)
            .await
            .context(
                "cannot connect to Kubernetes (pass --kubeconfig, run in a cluster, or use --no-cluster)",
            )?;
        // the cluster summary; its reads are bounded and serving does not wait for them
        let banner = crate::banner::log_connected(
            clients.clone(),
            args.kubeconfig.clone(),
            settings.policy.clone(),
            args.log.log_format,
        );
        tokio::spawn(banner);
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
                protection: receiver_core::Protection::new(
                    &settings.policy.guard,
                    &settings.namespace,
                )?,
                protected_pods: settings.policy.guard.nodes.protected_pods,
            },
        );
        let journal: Arc<dyn Journal> = match KubeJournal::connect(
            clients.main.clone(),
            &settings.namespace,
            &settings.identity,
        )
        .await
        {
            Some(j) => Arc::new(j),
            None => Arc::new(NoJournal),
        };
        let leadership = if args.leader_elect {
            let identity = settings.identity.clone();
            let manager =
                kube_lease_manager::LeaseManagerBuilder::new(clients.main.clone(), "heal8s-leader")
                    .with_namespace(settings.namespace.clone())
                    .with_identity(identity.clone())
                    .with_duration(args.lease_duration.max(2))
                    .with_grace(1)
                    .build()
                    .await
                    .context("cannot set up leader election (Lease heal8s-leader)")?;
            let (rx, handle) = manager.watch().await;
            lease = Some(handle);
            tracing::info!(identity = %identity, namespace = %settings.namespace, "Leader election on: only the holder of Lease heal8s-leader acts.");
            Leadership::following(rx)
        } else {
            Leadership::always()
        };
        let pulls = pull_request_executor(
            &args,
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
        (
            Acting {
                facts: Arc::new(
                    KubeFacts::new(clients.clone())
                        .with_detectors(settings.policy.detectors.clone()),
                ),
                executor,
                clock: Arc::new(SystemClock),
                leadership,
                history: Some(Arc::new(receiver_k8s::record::KubeHistory::new(
                    clients.main.clone(),
                    &settings.identity,
                ))),
                // the record upkeep in run_with watches for them
                clears: None,
                // run_with starts them
                notices: None,
                journal,
                verifier: Some(Arc::new(KubeVerifier::new(
                    clients.clone(),
                    args.verify_timeout.map(PromDuration::get),
                    args.verify_stable_for.get(),
                ))),
            },
            Some(clients),
        )
    };
    let result = run_with(listener, settings, acting, cluster, shutdown).await;
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

/// Run the service on `listener` until `shutdown` completes.
pub async fn run_with(
    listener: TcpListener,
    settings: Settings,
    mut acting: Acting,
    cluster: Option<Clients>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<ShutdownReport> {
    let engine = Engine::new(settings.policy.clone(), &settings.namespace)?
        .with_backlog_capacity(settings.backlog_capacity)
        .with_max_running(settings.max_running)
        .with_verification(acting.verifier.is_some());
    let metrics = Arc::new(Metrics::new());
    metrics
        .queue_capacity
        .set(i64::try_from(settings.queue_capacity).unwrap_or(i64::MAX));
    let dry_run = settings.policy.guard.dry_run;
    metrics.dry_run.set(i64::from(dry_run));
    let recorder = Arc::new(Recorder::new(metrics.clone()));
    recorder.stand_down().set_window(settings.report_interval);
    if let Some(clients) = &cluster {
        let sink = receiver_k8s::standdown::KubeStandDown::connect(
            clients.main.clone(),
            &settings.namespace,
            &settings.identity,
        )
        .await;
        recorder.stand_down().publish_to(Arc::new(sink));
    }
    let (tx, rx) = crate::queue::work_queue_with_repeats(
        settings.queue_capacity,
        settings.policy.guard.dedupe_window.get(),
    );
    tx.count_into(metrics.clone());
    let accepting = Arc::new(AtomicBool::new(true));
    let state = AppState {
        token: settings.token.clone(),
        read_token: settings.read_token.clone(),
        queue: tx,
        metrics: metrics.clone(),
        recorder: recorder.clone(),
        policy: Arc::new(settings.policy.to_json()),
        max_body_bytes: settings.max_body_bytes,
        alert_limits: settings.alert_limits,
        accepting: accepting.clone(),
        leadership: acting.leadership.clone(),
    };
    if state.token.is_none() {
        tracing::warn!(
            "AUTHENTICATION IS DISABLED (--insecure-no-auth): anyone who can reach {WEBHOOK_PATH} can trigger remediations, and /outcomes and /policy are open to read."
        );
    }
    let protected: Vec<&str> = engine.guard().protected_namespaces().collect();
    tracing::info!(
        listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        routes = settings.policy.routes.len(),
        dry_run,
        protected_namespaces = ?protected,
        queue_capacity = settings.queue_capacity,
        cluster_name = settings.policy.guard.cluster_name.as_deref(),
        cluster_label = %settings.policy.guard.cluster_label,
        "heal8s is serving."
    );
    let (stop_detectors, stop_rx) = tokio::sync::watch::channel(false);
    let detectors = match &cluster {
        Some(clients) => {
            receiver_k8s::watch::start(
                clients,
                &settings.policy.detectors,
                settings.policy.guard.cooldown.get(),
                settings.policy.features.strain_eviction,
                settings.rediscover_every,
                Arc::new(state.queue.clone()),
                stop_rx,
                state.leadership.clone(),
            )
            .await
        }
        None => Vec::new(),
    };
    if let Some(clients) = &cluster {
        recorder
            .board()
            .read_records_from(Arc::new(crate::dashboard::KubeRecords::new(
                clients.main.clone(),
            )));
    }
    let upkeep_settings = UpkeepSettings {
        record_ttl: settings.record_ttl,
        namespace: settings.namespace.clone(),
    };
    // the records' garbage collection, and the watch for cleared escalations
    let upkeep_tasks = match &cluster {
        Some(clients) => {
            let u = upkeep::spawn(clients, &upkeep_settings, stop_detectors.subscribe());
            acting.clears = acting.clears.or(Some(u.clears));
            u.tasks
        }
        None => Vec::new(),
    };
    // the pause ConfigMap: every replica watches it, so a pause survives failover
    let pause_task = cluster.as_ref().map(|clients| {
        let r = recorder.clone();
        tokio::spawn(receiver_k8s::pause::watch(
            clients.main.clone(),
            settings.namespace.clone(),
            move |p| r.pause().set_configmap(p),
            stop_detectors.subscribe(),
        ))
    });
    let delivery = start_notifications(&settings, &metrics, &mut acting)?;
    let mut worker = tokio::spawn(worker::run(engine, rx, acting, recorder, metrics.clone()));
    let queue = state.queue.clone();
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
    for task in upkeep_tasks.into_iter().chain(pause_task) {
        task.abort();
    }
    for d in detectors {
        if tokio::time::timeout(Duration::from_secs(2), d)
            .await
            .is_err()
        {
            tracing::warn!("A detector did not stop within 2s.");
        }
    }
    let left = queue.len();
    drop(queue);
    tracing::info!(queued = left, "Draining the work queue.");
    match tokio::time::timeout(settings.shutdown_timeout, &mut worker).await {
        Ok(Ok(())) => {
            if let Some(d) = delivery {
                // the worker held the outbox: what it told goes out now
                let left = d.finish(NOTIFY_FLUSH).await;
                if left > 0 {
                    tracing::warn!(
                        left,
                        "Notifications not delivered within {NOTIFY_FLUSH:?} of shutdown."
                    );
                }
            }
            tracing::info!("Shutdown complete.");
            Ok(ShutdownReport { unprocessed: 0 })
        }
        Ok(Err(e)) => bail!("the worker task failed: {e}"),
        Err(_) => {
            // stop the worker mid-signal; the plans running and the queued
            // signals are lost: say so
            worker.abort();
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
    }
}

/// How long notifications may take to go out at shutdown.
const NOTIFY_FLUSH: Duration = Duration::from_secs(5);

/// Start delivering notifications when the policy names receivers: every
/// secret is read first (a missing one stops heal8s here, naming the
/// receiver and field, never the value).
fn start_notifications(
    settings: &Settings,
    metrics: &Arc<Metrics>,
    acting: &mut Acting,
) -> anyhow::Result<Option<receiver_notify::Delivery>> {
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
    acting.notices = Some(worker::Notices {
        notifier: receiver_core::notify::Notifier::new(
            cfg.clone(),
            settings.policy.guard.cluster_name.clone(),
        ),
        outbox,
    });
    let names: Vec<String> = cfg
        .receivers
        .iter()
        .map(|r| format!("{} ({})", r.name, r.channel().map_or("?", |c| c.as_str())))
        .collect();
    tracing::info!(receivers = %names.join(", "), routes = cfg.routes.len(), "Notifications on.");
    Ok(Some(delivery))
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
