//! Prism in proxy mode in front of an upstream (the emulation): every request
//! is validated against GitHub's OpenAPI description before it is forwarded,
//! every answer after. Started through the shared harness
//! (`github-prism/run-prism.sh` with `MODE=proxy`), which puts `shim.js` in
//! front of Prism and records every exchange in `requests.jsonl`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_json::Value;

/// How long Prism may take to parse the 13 MB spec and start.
const START_TIMEOUT: Duration = Duration::from_secs(180);

/// The harness directory: `$HEAL8S_HARNESS`, else `/work/shared/harness`,
/// else `../shared/harness` next to the workspace root (a clean clone in CI).
fn harness_dir() -> anyhow::Result<PathBuf> {
    let usable = |p: &Path| p.join("github-prism/run-prism.sh").is_file();
    if let Some(p) = std::env::var_os("HEAL8S_HARNESS") {
        let p = PathBuf::from(p);
        if usable(&p) {
            return Ok(p);
        }
        bail!(
            "HEAL8S_HARNESS={} has no github-prism/run-prism.sh",
            p.display()
        );
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let candidates = [
        PathBuf::from("/work/shared/harness"),
        workspace.join("../shared/harness"),
    ];
    for c in &candidates {
        if usable(c) {
            return Ok(c.canonicalize().unwrap_or_else(|_| c.clone()));
        }
    }
    bail!(
        "the GitHub contract harness is missing: set HEAL8S_HARNESS to the directory holding \
         github-prism/run-prism.sh (looked in {})",
        candidates
            .iter()
            .map(|c| c.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A running `prism proxy --errors` (behind the harness shim) on loopback.
#[derive(Debug)]
pub struct PrismProxy {
    /// `http://127.0.0.1:PORT` of the shim: send requests here.
    pub url: String,
    /// Logs (`prism.log`, `shim.log`) and the exchange record (`requests.jsonl`).
    pub workdir: PathBuf,
    /// The harness used.
    pub harness: PathBuf,
    /// How long starting took.
    pub startup: Duration,
    stopped: bool,
}

impl PrismProxy {
    /// Start Prism in proxy mode in front of `upstream_url` (e.g. a
    /// [`super::GithubEmulator::url`]); waits until it listens (~10 s).
    pub async fn start(upstream_url: &str) -> anyhow::Result<PrismProxy> {
        let harness = harness_dir()?;
        let script = harness.join("github-prism/run-prism.sh");
        let started = Instant::now();
        let mut cmd = tokio::process::Command::new("bash");
        cmd.arg(&script)
            .arg("0")
            .env("MODE", "proxy")
            .env("UPSTREAM", upstream_url)
            .env("SCARF_ANALYTICS", "false")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let out = tokio::time::timeout(START_TIMEOUT, cmd.output())
            .await
            .map_err(|_| {
                anyhow!(
                    "{} did not finish within {START_TIMEOUT:?}",
                    script.display()
                )
            })?
            .with_context(|| format!("cannot run {}", script.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            bail!(
                "{} failed ({}):\n{stdout}\n{stderr}",
                script.display(),
                out.status
            );
        }
        let var = |k: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let missing = |k: &str| {
            anyhow!(
                "{} printed no {k}; output:\n{stdout}\n{stderr}",
                script.display()
            )
        };
        let workdir = PathBuf::from(var("PRISM_WORKDIR").ok_or_else(|| missing("PRISM_WORKDIR"))?);
        let proxy = PrismProxy {
            url: var("PRISM_URL")
                .ok_or_else(|| missing("PRISM_URL"))?
                .to_string(),
            workdir,
            harness,
            startup: started.elapsed(),
            stopped: false,
        };
        if !proxy.url.starts_with("http://127.0.0.1:") {
            bail!("Prism is not on loopback: {}", proxy.url);
        }
        Ok(proxy)
    }

    /// Every exchange the shim recorded so far (`requests.jsonl`): objects with
    /// `n`, `method`, `path`, `headers`, `body`, `status`, `via` (`prism`,
    /// `shim`, `stub`), `response` and, when Prism reported any, `violations`.
    pub fn exchanges(&self) -> anyhow::Result<Vec<Value>> {
        let path = self.workdir.join("requests.jsonl");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).with_context(|| format!("bad record line: {l}")))
            .collect()
    }

    /// The exchanges once at least `n` are recorded: the shim writes each
    /// record as the answer goes out, so the last may land a moment after
    /// the client has it. Waits up to 10 s, then returns what there is.
    pub fn exchanges_at_least(&self, n: usize) -> anyhow::Result<Vec<Value>> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match self.exchanges() {
                Ok(x) if x.len() >= n => return Ok(x),
                result if std::time::Instant::now() > deadline => return result,
                _ => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        }
    }

    /// The exchanges in which Prism found the request or the answer at odds
    /// with the spec: a `violations` list (from `sl-violations`), a 422
    /// `UNPROCESSABLE_ENTITY` (invalid request, not forwarded) or a 500
    /// `VIOLATIONS` (invalid upstream answer), or any other Prism error type.
    pub fn violations(&self) -> anyhow::Result<Vec<Value>> {
        Ok(self
            .exchanges()?
            .into_iter()
            .filter(|x| {
                let listed = x
                    .get("violations")
                    .is_some_and(|v| !matches!(v, Value::Array(a) if a.is_empty()) && !v.is_null());
                let prism_error = x
                    .pointer("/response/type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.contains("stoplight.io/prism/errors"));
                listed || prism_error
            })
            .collect())
    }

    /// The end of Prism's log, for diagnostics.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.workdir.join("prism.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Stop Prism and the shim (by their pids) and remove the work directory
    /// unless `HEAL8S_KEEP_PRISM=1`.
    fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let script = self.harness.join("github-prism/stop-prism.sh");
        let mut cmd = std::process::Command::new("bash");
        cmd.arg(&script).arg(&self.workdir);
        if std::env::var("HEAL8S_KEEP_PRISM").as_deref() != Ok("1") {
            cmd.arg("--rm");
        }
        let _ = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for PrismProxy {
    fn drop(&mut self) {
        self.stop();
    }
}
