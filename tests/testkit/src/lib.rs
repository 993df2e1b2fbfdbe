//! Test kit: start heal8s and its real peers (Alertmanager) as processes on
//! loopback, and talk to them. Every server binds 127.0.0.1 only.
//!
//! `kube` holds the Kubernetes API emulation, `github` the GitHub REST API
//! emulation (plus a Prism contract proxy for it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test support code

mod faults;
pub mod fixtures;
pub mod github;
pub mod kube;
pub mod prometheus;
pub mod scenario;

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Serve `app` on `listener` in the background until the returned sender
/// fires (or is dropped); `what` names the server in the error log.
pub(crate) fn serve_in_background<L>(
    listener: L,
    app: axum::Router,
    what: &'static str,
) -> tokio::sync::oneshot::Sender<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "The {what} stopped serving.");
        }
    });
    tx
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on loopback")
}

/// A fresh temporary directory under the target dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Create one named after `prefix`.
    pub fn new(prefix: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("heal8s-{prefix}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// `cargo` run from a test, without the variables cargo sets for the test
/// process: build scripts that track them (ring tracks `CARGO_MANIFEST_DIR`)
/// would otherwise rebuild half the tree on every nested and outer build.
fn nested_cargo(cargo: String) -> Command {
    let mut cmd = Command::new(cargo);
    for (key, _) in std::env::vars_os() {
        let Some(k) = key.to_str() else { continue };
        if k == "CARGO_MANIFEST_DIR"
            || k == "CARGO_MANIFEST_PATH"
            || k == "CARGO_CRATE_NAME"
            || k == "CARGO_PRIMARY_PACKAGE"
            || k == "CARGO_TARGET_TMPDIR"
            || k == "CARGO_RUSTC_CURRENT_DIR"
            || k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_BIN_")
        {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Build `bin` of `package` in the same profile as the running test and return
/// its path (target/<profile>/deps/<test-exe> -> target/<profile>/<bin>).
fn workspace_bin(package: &str, bin: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = nested_cargo(cargo);
    cmd.args(["build", "--quiet", "-p", package, "--bin", bin]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build {bin}: {e}"));
    assert!(status.success(), "building {bin} failed");
    let path = profile_dir.join(bin);
    assert!(path.exists(), "{} missing after build", path.display());
    path
}

/// The `heal8s` binary of this workspace, built once per test process
/// (`cargo build -p receiver --bin heal8s` in the same profile as the tests).
pub fn heal8s_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| workspace_bin("receiver", "heal8s"))
        .clone()
}

/// The `heal8s-demo` binary of this workspace, built once per test process.
pub fn demo_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| workspace_bin("heal8s-demo", "heal8s-demo"))
        .clone()
}

/// The `testkit` binary of this workspace, built once per test process
/// (`cargo build -p testkit --bin testkit` in the same profile as the tests).
pub fn testkit_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| workspace_bin("testkit", "testkit"))
        .clone()
}

/// `kubectl`: `$KUBECTL` if set, else the first `kubectl` on `PATH`.
pub fn kubectl_bin() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("KUBECTL") {
        return Ok(PathBuf::from(p));
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("kubectl");
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!("kubectl is not installed (set $KUBECTL or put kubectl on PATH)")
}

/// A standalone Kubernetes API emulation (`testkit kube`) running as a
/// process on loopback, with a kubeconfig for it; every request is logged.
#[derive(Debug)]
pub struct KubeProcess {
    pub proc: Proc,
    pub url: String,
    pub kubeconfig: PathBuf,
    pub dir: TempDir,
}

impl KubeProcess {
    /// Start `testkit kube --port 0 --kubeconfig-out ... --log-requests` and wait for its URL.
    pub fn start() -> anyhow::Result<KubeProcess> {
        KubeProcess::start_with(&[])
    }

    /// [`KubeProcess::start`] with more arguments, e.g. `["--play", "kubelet,namespace"]`.
    pub fn start_with(extra: &[&str]) -> anyhow::Result<KubeProcess> {
        let dir = TempDir::new("kube");
        let kubeconfig = dir.path().join("kubeconfig");
        let mut cmd = Command::new(testkit_bin());
        cmd.args(["kube", "--port", "0", "--log-requests", "--kubeconfig-out"])
            .arg(&kubeconfig)
            .args(extra);
        let proc = Proc::spawn(cmd, dir.path().join("kube.log"))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = proc.output();
            if let Some(url) = out.lines().find(|l| l.starts_with("http://127.0.0.1:")) {
                return Ok(KubeProcess {
                    url: url.trim().to_string(),
                    proc,
                    kubeconfig,
                    dir,
                });
            }
            if Instant::now() > deadline {
                bail!("testkit kube printed no URL within 20s; output:\n{out}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the server printed (its URL, then one line per request).
    pub fn log(&self) -> String {
        self.proc.output()
    }
}

/// A child process killed (SIGKILL) on drop if still running; its output goes to a log file.
#[derive(Debug)]
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// Start `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(mut cmd: Command, log: PathBuf) -> anyhow::Result<Proc> {
        let out = fs::File::create(&log)?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start {cmd:?}"))?;
        Ok(Proc { child, log })
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Send SIGTERM (through `kill(1)`; this workspace forbids unsafe code).
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// Kill the process with SIGKILL, as the kernel's OOM killer or a node
    /// failure would (no shutdown runs), and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Wait up to `timeout` for exit; the exit code, or `None` if still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `f` every 100 ms until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Wait until `GET url` answers 200 (up to `timeout`); on failure, the error
/// carries `proc`'s output so the reason is in the test's message.
pub async fn wait_ok(url: &str, timeout: Duration, proc: &Proc) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let ready = eventually(timeout, url, || {
        let c = client.clone();
        async move { c.get(url).send().await.ok().filter(|r| r.status() == 200) }
    })
    .await;
    if let Err(e) = ready {
        bail!("{e}; output:\n{}", proc.output());
    }
    Ok(())
}

/// A running `heal8s serve` on loopback.
#[derive(Debug)]
pub struct Heal8s {
    pub proc: Proc,
    pub url: String,
    pub dir: TempDir,
    /// The webhook token it was started with (it also reads `/outcomes` and `/policy`).
    token: String,
    client: reqwest::Client,
}

/// A kubeconfig for `kube` and the `policy` text, written to a fresh
/// directory, and the flags that name them.
fn user_files(kube: &kube::Emulator, policy: &str) -> anyhow::Result<(TempDir, Vec<String>)> {
    let dir = TempDir::new("heal8s-files");
    let kubeconfig = dir.path().join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig)?;
    let policy_file = dir.path().join("policy.yaml");
    fs::write(&policy_file, policy)?;
    let args = vec![
        "--kubeconfig".to_string(),
        kubeconfig.display().to_string(),
        "--policy".to_string(),
        policy_file.display().to_string(),
    ];
    Ok((dir, args))
}

impl Heal8s {
    /// Start `heal8s serve` with `token` (in a file) and extra flags; waits for `/readyz`.
    pub async fn start(token: &str, extra: &[&str]) -> anyhow::Result<Heal8s> {
        let dir = TempDir::new("heal8s");
        let token_file = dir.path().join("token");
        fs::write(&token_file, format!("{token}\n"))?;
        let port = free_port();
        let mut cmd = Command::new(heal8s_bin());
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--webhook-token-file")
            .arg(&token_file)
            .args(extra)
            .env_remove("HEAL8S_WEBHOOK_TOKEN")
            .env("HEAL8S_LOG_LEVEL", "debug");
        let proc = Proc::spawn(cmd, dir.path().join("heal8s.log"))?;
        let h = Heal8s {
            proc,
            url: format!("http://127.0.0.1:{port}"),
            dir,
            token: token.to_string(),
            client: reqwest::Client::new(),
        };
        wait_ok(
            &format!("{}/readyz", h.url),
            Duration::from_secs(20),
            &h.proc,
        )
        .await?;
        Ok(h)
    }

    /// Start `heal8s serve` against the Kubernetes emulation, configured as a
    /// user would: a kubeconfig and the `policy` text in a file, plus `extra`
    /// flags. The files live in the returned directory; keep it alive.
    pub async fn start_in(
        token: &str,
        kube: &kube::Emulator,
        policy: &str,
        extra: &[&str],
    ) -> anyhow::Result<(Heal8s, TempDir)> {
        let (dir, mut args) = user_files(kube, policy)?;
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Ok((Heal8s::start(token, &args).await?, dir))
    }

    /// [`Heal8s::start_in`], with the GitHub emulation and the test GitHub
    /// App (`TEST_APP_ID` and its key file) as well.
    pub async fn start_against(
        token: &str,
        kube: &kube::Emulator,
        gh: &github::GithubEmulator,
        policy: &str,
        extra: &[&str],
    ) -> anyhow::Result<(Heal8s, TempDir)> {
        let (dir, mut args) = user_files(kube, policy)?;
        let key = dir.path().join("app.pem");
        fs::write(&key, github::TEST_APP_KEY_PEM)?;
        args.extend([
            "--github-api-url".to_string(),
            gh.url(),
            "--github-app-id".to_string(),
            github::TEST_APP_ID.to_string(),
            "--github-app-key-file".to_string(),
            key.display().to_string(),
        ]);
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Ok((Heal8s::start(token, &args).await?, dir))
    }

    /// POST an Alertmanager webhook `body` with the bearer `token`; the HTTP status.
    pub async fn post_webhook(&self, token: &str, body: &serde_json::Value) -> u16 {
        self.client
            .post(format!("{}/webhook/alertmanager", self.url))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of one metric sample, by its full text before the value
    /// (e.g. `heal8s_outcomes_total{result="deduped"}`); 0 when absent.
    pub async fn metric(&self, sample: &str) -> f64 {
        metric_value(&self.metrics().await, sample)
    }

    /// `GET path` with the webhook token (`/outcomes` and `/policy` need one).
    pub async fn read(&self, path: &str) -> serde_json::Value {
        let r = self
            .client
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// The recent outcomes (`/outcomes`, the largest page: the newest 512),
    /// typed. The wire adds `seq` (and `truncated` to one it cut), which
    /// `Outcome` ignores. An outcome over `receiver::worker::OUTCOME_BYTES`
    /// is kept cut, and a cut one may no longer read as an `Outcome` (its
    /// plan's parameters shortened, or nothing left but `at` and `result`):
    /// this panics naming it, and a test that makes such outcomes reads the
    /// raw JSON with [`Heal8s::read`].
    pub async fn outcomes(&self) -> Vec<receiver_core::Outcome> {
        let page = self.read("/outcomes?limit=512").await;
        let serde_json::Value::Array(items) = page else {
            panic!("/outcomes is not a JSON array: {page}");
        };
        items
            .into_iter()
            .map(|o| {
                serde_json::from_value(o.clone())
                    .unwrap_or_else(|e| panic!("/outcomes: not an Outcome ({e}): {o}"))
            })
            .collect()
    }

    /// The effective policy (`/policy`).
    pub async fn policy(&self) -> serde_json::Value {
        self.read("/policy").await
    }
}

/// The value of `sample` in a Prometheus text exposition; 0 when absent.
pub fn metric_value(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(sample)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0.0)
}

/// Intervals for a test Alertmanager.
#[derive(Debug, Clone)]
pub struct AmTiming {
    pub group_wait: &'static str,
    pub group_interval: &'static str,
    pub repeat_interval: &'static str,
}

impl Default for AmTiming {
    fn default() -> Self {
        AmTiming {
            group_wait: "1s",
            group_interval: "2s",
            repeat_interval: "1h",
        }
    }
}

/// A real Prometheus Alertmanager (Debian's `prometheus-alertmanager`) on loopback,
/// sending webhooks with a bearer token read from a file.
#[derive(Debug)]
pub struct Alertmanager {
    pub proc: Proc,
    pub url: String,
    pub dir: TempDir,
}

/// The Alertmanager binary: `$AM_BIN`, else Debian's name, else upstream's.
pub fn alertmanager_bin() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("AM_BIN") {
        return Ok(PathBuf::from(p));
    }
    for name in ["prometheus-alertmanager", "alertmanager"] {
        for dir in std::env::var("PATH").unwrap_or_default().split(':') {
            let p = Path::new(dir).join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    bail!(
        "Alertmanager is not installed: `apt-get install prometheus-alertmanager` (.ci/run does this)"
    )
}

impl Alertmanager {
    /// Start Alertmanager with one webhook receiver at `webhook_url`, authenticating with `token`.
    pub async fn start(
        webhook_url: &str,
        token: &str,
        timing: AmTiming,
    ) -> anyhow::Result<Alertmanager> {
        let bin = alertmanager_bin()?;
        let dir = TempDir::new("am");
        let token_file = dir.path().join("token");
        fs::write(&token_file, token)?;
        let config = format!(
            r#"route:
  receiver: heal8s
  group_by: ['alertname', 'namespace', 'pod']
  group_wait: {gw}
  group_interval: {gi}
  repeat_interval: {ri}
receivers:
  - name: heal8s
    webhook_configs:
      - url: '{webhook_url}'
        send_resolved: true
        max_alerts: 0
        http_config:
          authorization:
            type: Bearer
            credentials_file: '{tf}'
"#,
            gw = timing.group_wait,
            gi = timing.group_interval,
            ri = timing.repeat_interval,
            tf = token_file.display(),
        );
        fs::write(dir.path().join("alertmanager.yml"), config)?;
        fs::create_dir_all(dir.path().join("data"))?;
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.arg(format!(
            "--config.file={}",
            dir.path().join("alertmanager.yml").display()
        ))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .arg("--log.level=debug");
        let proc = Proc::spawn(cmd, dir.path().join("alertmanager.log"))?;
        let am = Alertmanager {
            proc,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        };
        wait_ok(
            &format!("{}/-/ready", am.url),
            Duration::from_secs(20),
            &am.proc,
        )
        .await?;
        Ok(am)
    }

    /// Post alerts through Alertmanager's v2 API (`POST /api/v2/alerts`).
    pub async fn post_alerts(&self, alerts: serde_json::Value) -> anyhow::Result<()> {
        let r = reqwest::Client::new()
            .post(format!("{}/api/v2/alerts", self.url))
            .json(&alerts)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!(
                "alertmanager refused the alerts: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }

    /// Everything Alertmanager logged so far.
    pub fn log(&self) -> String {
        self.proc.output()
    }
}
