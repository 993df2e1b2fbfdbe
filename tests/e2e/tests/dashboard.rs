//! The dashboard (`GET /ui`, `GET /ui/state`) in a real headless Chromium,
//! driven through chromedriver (WebDriver) with fantoccini.
//!
//! heal8s runs against the Kubernetes and GitHub emulations seeded with the
//! demo's cluster (`testkit::scenario`): it deletes the crash-looping pod,
//! drains the NotReady node, opens a pull request raising checkout's memory
//! and refuses the crash-looping pod in kube-system. The page must show all
//! of it from the Remediation records and the outcomes, with what an alert
//! sender wrote rendered as text; it must pass basic accessibility checks
//! (labels, one h1, section headings, header scopes, visible focus, text
//! contrast of at least 4.5:1) and fit 375 px without page-level horizontal
//! scrolling. A wrong token shows an error and no data; heal8s gone, the
//! page says so and keeps what it showed; without a cluster it says why
//! there are no records. Screenshots go to `target/dashboard/` (CI keeps
//! them).
//!
//! Needs `chromium` and `chromium-driver` (`.ci/run` installs them; the
//! paths can be overridden with `CHROMIUM` and `CHROMEDRIVER`). The test
//! that needs no browser is not `real_`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use fantoccini::{Client, ClientBuilder, Locator};
use receiver_core::{OutcomeKind, RefusalReason, RemediationKind};
use serde::Deserialize;
use serde_json::{Value, json};
use testkit::github::GithubEmulator;
use testkit::kube::{Controller, Emulator};
use testkit::scenario::{self, BAD_NODE, CRASHLOOP_POD, OOM_POD, Problems, REPOSITORY};
use testkit::{Heal8s, TempDir, eventually, free_port};

const TOKEN: &str = "dashboard-e2e-token-3f9a";
/// What an alert sender may write into a label: shown as text, never markup.
const HOSTILE: &str = "<img src=x onerror=alert(1)>";
const WAIT: Duration = Duration::from_secs(90);
const PAGE: &str = include_str!("../../../receiver/src/dashboard.html");
const FIRING: &str = include_str!("../../../receiver/core/tests/fixtures/sample-webhook.json");

/// Where the screenshots go: `target/dashboard/`.
fn shots_dir() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is inside the target directory")
        .to_path_buf();
    let dir = target.join("dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// chromedriver on a free loopback port, in a process group of its own:
/// dropping it kills the group (chromedriver and the Chromium it started).
struct Chromedriver {
    child: Child,
    url: String,
    dir: TempDir,
}

impl Chromedriver {
    async fn start() -> anyhow::Result<Chromedriver> {
        use std::os::unix::process::CommandExt;
        let bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        ensure!(
            Path::new(&bin).exists(),
            "{bin} is missing: install chromium and chromium-driver (.ci/run does)"
        );
        let dir = TempDir::new("chromedriver");
        let log = std::fs::File::create(dir.path().join("chromedriver.log"))?;
        let port = free_port();
        let child = Command::new(&bin)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {bin}"))?;
        let driver = Chromedriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        };
        let http = reqwest::Client::new();
        let status = format!("{}/status", driver.url);
        let ready = eventually(Duration::from_secs(20), "chromedriver", || {
            let (http, status) = (http.clone(), status.clone());
            async move {
                let v: Value = http.get(&status).send().await.ok()?.json().await.ok()?;
                (v["value"]["ready"] == true).then_some(())
            }
        })
        .await;
        if let Err(e) = ready {
            bail!("{e}; its log:\n{}", driver.log());
        }
        Ok(driver)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default()
    }

    /// A new headless Chromium session at `width`x`height`.
    async fn browser(&self, width: u32, height: u32) -> anyhow::Result<Client> {
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let profile = self.dir.path().join(format!("profile-{}", free_port()));
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-extensions", "--disable-background-networking",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.display()),
                ]
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.url)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "no WebDriver session: {e}; chromedriver's log:\n{}",
                    self.log()
                )
            })
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // the group holds chromedriver and the browsers it started
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `script` every 200 ms until it returns something other than null or
/// false (or `timeout` passes).
async fn until(c: &Client, what: &str, script: &str, timeout: Duration) -> anyhow::Result<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let v = c.execute(script, vec![]).await?;
        if !v.is_null() && v != Value::Bool(false) {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A screenshot of the whole page at `width`: the window is made as tall as
/// the document, then shot.
async fn full_page_shot(c: &Client, width: u32, path: &Path) -> anyhow::Result<()> {
    // the window is a little taller than its viewport: grow it until the
    // viewport holds the document
    let mut window = 0;
    for _ in 0..4 {
        let v = c
            .execute(
                "return [document.documentElement.scrollHeight, window.innerHeight];",
                vec![],
            )
            .await?;
        let (doc, inner) = (
            v[0].as_u64().context("scrollHeight")?,
            v[1].as_u64().context("innerHeight")?,
        );
        if doc <= inner && window > 0 {
            break;
        }
        let (_, current) = c.get_window_size().await?;
        window = (current + doc.saturating_sub(inner)).clamp(400, 16_000);
        c.set_window_size(width, u32::try_from(window)?).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let png = c.screenshot().await?;
    ensure!(png.starts_with(b"\x89PNG"), "the screenshot is no PNG");
    std::fs::write(path, png).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// What the page shows, read from the DOM.
const SNAPSHOT: &str = r#"
const all = (sel) => Array.from(document.querySelectorAll(sel));
const error = document.getElementById('error');
const note = document.getElementById('records-note');
const row = (tr) => ({
  name: tr.getAttribute('data-record'), phase: tr.getAttribute('data-phase'),
  seq: tr.getAttribute('data-outcome-seq'), result: tr.getAttribute('data-result'),
  remediation: tr.getAttribute('data-remediation'), namespace: tr.getAttribute('data-namespace'),
  target: tr.getAttribute('data-target'), text: tr.textContent,
  links: Array.from(tr.querySelectorAll('a')).map(a => ({href: a.getAttribute('href'), rel: a.rel})),
});
return {
  view: !document.getElementById('view').hidden,
  error: error.hidden ? null : error.textContent,
  url: location.href,
  dryRun: document.getElementById('status').getAttribute('data-dry-run'),
  status: document.getElementById('status').textContent,
  records: all('#records tbody tr[data-record]').map(row),
  recordsNote: note.hidden ? null : note.textContent,
  outcomes: all('#outcomes tbody tr[data-outcome-seq]').map(row),
  refusals: all('#refusals tr[data-refusal]').map(tr => ({reason: tr.getAttribute('data-refusal'), text: tr.textContent})),
  budgets: all('[data-budget]').map(d => ({kind: d.getAttribute('data-budget'), text: d.textContent})),
  breakers: document.getElementById('breakers').textContent,
  namespaces: Array.from(document.getElementById('ns').options).map(o => o.value),
  updated: document.getElementById('updated').textContent,
  images: document.images.length,
  handlers: all('[onerror],[onload],[onclick]').length,
};
"#;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    view: bool,
    error: Option<String>,
    url: String,
    dry_run: Option<String>,
    status: String,
    records: Vec<Row>,
    records_note: Option<String>,
    outcomes: Vec<Row>,
    refusals: Vec<Refusal>,
    budgets: Vec<Budget>,
    breakers: String,
    namespaces: Vec<String>,
    updated: String,
    images: u64,
    handlers: u64,
}

#[derive(Debug, Deserialize)]
struct Row {
    name: Option<String>,
    phase: Option<String>,
    seq: Option<String>,
    result: Option<String>,
    remediation: Option<String>,
    namespace: Option<String>,
    target: Option<String>,
    text: String,
    links: Vec<Link>,
}

#[derive(Debug, Deserialize)]
struct Link {
    href: String,
    rel: String,
}

#[derive(Debug, Deserialize)]
struct Refusal {
    reason: String,
    text: String,
}

#[derive(Debug, Deserialize)]
struct Budget {
    kind: String,
    text: String,
}

async fn snapshot(c: &Client) -> anyhow::Result<Page> {
    Ok(serde_json::from_value(c.execute(SNAPSHOT, vec![]).await?)?)
}

/// Accessibility basics: every input and select labelled, one h1, a heading
/// in every section, every th scoped, a visible focus ring, and the WCAG
/// contrast ratio of each element's text colour against its effective
/// background (the first opaque one up the tree) at least 4.5.
const ACCESSIBILITY: &str = r#"
const problems = [];
for (const e of document.querySelectorAll('input, select, textarea')) {
  if (e.type === 'hidden') continue;
  const byLabel = Array.from(e.labels || []).some(l => l.textContent.trim() !== '');
  if (!byLabel && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby'))
    problems.push('no label: ' + e.outerHTML.slice(0, 80));
}
const h1 = document.querySelectorAll('h1').length;
if (h1 !== 1) problems.push(h1 + ' h1 elements');
if (document.documentElement.lang === '') problems.push('no lang');
for (const s of document.querySelectorAll('section'))
  if (!s.querySelector('h2, h3')) problems.push('a section without a heading');
for (const th of document.querySelectorAll('th'))
  if (!th.getAttribute('scope')) problems.push('th without scope: ' + th.textContent);
const token = document.getElementById('token');
token.focus();
const ring = getComputedStyle(token);
if (ring.outlineStyle === 'none' || parseFloat(ring.outlineWidth) < 2)
  problems.push('no visible focus on the token input: ' + ring.outlineStyle + ' ' + ring.outlineWidth);
token.blur();
const parse = (c) => {
  const m = /rgba?\(([^)]+)\)/.exec(c);
  if (!m) return null;
  const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
  return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
};
const channel = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
const luminance = (c) => 0.2126 * channel(c[0]) + 0.7152 * channel(c[1]) + 0.0722 * channel(c[2]);
const background = (e) => {
  for (let n = e; n; n = n.parentElement) {
    const c = parse(getComputedStyle(n).backgroundColor);
    if (c && c[3] > 0) return c;
  }
  return [255, 255, 255, 1];
};
let checked = 0;
for (const e of document.body.querySelectorAll('*')) {
  if (e.tagName === 'SCRIPT' || e.tagName === 'STYLE') continue;
  const text = Array.from(e.childNodes).filter(n => n.nodeType === 3).map(n => n.textContent).join('').trim();
  if (text === '') continue;
  const bg = background(e);
  let fg = parse(getComputedStyle(e).color);
  if (!fg) { problems.push('unparsed colour on ' + e.tagName); continue; }
  // a translucent colour is seen over its background
  fg = [0, 1, 2].map(i => fg[i] * fg[3] + bg[i] * (1 - fg[3]));
  const [hi, lo] = [luminance(fg), luminance(bg)].sort((a, b) => b - a);
  const ratio = (hi + 0.05) / (lo + 0.05);
  checked++;
  if (ratio < 4.5)
    problems.push('contrast ' + ratio.toFixed(2) + ' on ' + e.tagName + ' "' + text.slice(0, 40) + '" ' + getComputedStyle(e).color + ' on ' + bg);
}
return {problems, checked};
"#;

/// A firing alert whose labels and annotations carry markup, routed to the
/// scenario's notify-only route (`everything-else`).
fn hostile_alert() -> Value {
    let now = jiff::Timestamp::now().to_string();
    json!({"version": "4", "status": "firing", "receiver": "heal8s", "groupKey": "{}", "alerts": [{
        "status": "firing", "startsAt": now, "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": "0badc0de0badc0de",
        "generatorURL": "javascript:alert(1)",
        "labels": {"alertname": format!("Hostile{HOSTILE}"), "namespace": "shop",
                   "severity": "info", "note": HOSTILE},
        "annotations": {"summary": HOSTILE, "runbook_url": "javascript:alert(1)"}}]})
}

/// The page against heal8s with the demo's cluster: every section shows what
/// happened, alert text stays text, the filter narrows, a wrong token shows
/// nothing, it passes the accessibility checks and fits a phone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_chromium_dashboard_shows_what_heal8s_did() {
    let started = Instant::now();
    let kube = Emulator::start().await.unwrap();
    scenario::seed(&kube, Problems::all()).unwrap();
    let _controllers = kube.play(&[Controller::Kubelet, Controller::Namespace]);
    let gh = GithubEmulator::start().await.unwrap();
    gh.create_repo("acme", "manifests", 7).unwrap();
    gh.put_files(
        REPOSITORY,
        "main",
        &scenario::manifest_files(),
        "the shop's manifests",
    )
    .unwrap();
    // the demo's flags (start_against adds the kubeconfig, policy and GitHub App)
    let (mut h, _files) = Heal8s::start_against(
        TOKEN,
        &kube,
        &gh,
        scenario::POLICY,
        &[
            "--cluster-name",
            "e2e-dashboard",
            "--pod-name",
            "heal8s-e2e",
            "--eviction-retry",
            "1s",
            "--verify-timeout",
            "60s",
            "--verify-stable-for",
            "2s",
        ],
    )
    .await
    .unwrap();
    assert_eq!(h.post_webhook(TOKEN, &hostile_alert()).await, 200);

    // heal8s deletes the pod, drains the node, opens the pull request and
    // refuses kube-system; the hostile alert is handled too
    let handled = eventually(
        WAIT,
        "the pod delete, the drain, the pull request, the refusal and the hostile alert",
        || async {
            let outcomes = h.outcomes().await;
            let acted = |kind: RemediationKind, target: &str| {
                outcomes.iter().any(|o| {
                    o.result == OutcomeKind::Acted
                        && o.remediation == Some(kind)
                        && o.target.as_deref().is_some_and(|t| t.contains(target))
                })
            };
            let pr = outcomes.iter().find_map(|o| {
                (o.remediation == Some(RemediationKind::BumpMemory))
                    .then(|| o.pull_request.clone())
                    .flatten()
            })?;
            let refused = outcomes
                .iter()
                .any(|o| o.reason == Some(RefusalReason::ProtectedNamespace));
            let hostile = outcomes.iter().any(|o| o.name.contains(HOSTILE));
            let records = kube.list("heal8s.io/v1alpha1", "Remediation", "");
            let recorded = |kind: &str| records.iter().any(|r| r["spec"]["remediation"] == kind);
            (acted(RemediationKind::DeletePod, CRASHLOOP_POD)
                && acted(RemediationKind::DrainNode, BAD_NODE)
                && refused
                && hostile
                && recorded("delete-pod")
                && recorded("drain-node")
                && recorded("bump-memory"))
            .then_some(pr)
        },
    )
    .await;
    let pr = match handled {
        Ok(pr) => pr,
        Err(e) => panic!(
            "{e}\noutcomes: {:#?}\n--- heal8s ---\n{}",
            h.outcomes().await,
            h.proc.output()
        ),
    };
    let ready = started.elapsed();

    let driver = Chromedriver::start().await.unwrap();
    let c = driver.browser(1280, 900).await.unwrap();
    let mut result = in_the_browser(&c, &h, &pr.url).await;
    if result.is_ok() {
        h.proc.kill();
        result = when_heal8s_is_gone(&c).await;
    }
    if result.is_ok() {
        result = without_a_cluster(&c).await;
    }
    let _ = c.close().await;
    if let Err(e) = result {
        panic!(
            "{e:#}\n--- chromedriver ---\n{}\n--- heal8s ---\n{}",
            driver.log(),
            h.proc.output()
        );
    }
    eprintln!(
        "dashboard: heal8s had acted after {ready:?}; the browser part took {:?}; screenshots in {}",
        started.elapsed() - ready,
        shots_dir().display()
    );
}

async fn in_the_browser(c: &Client, h: &Heal8s, pr_url: &str) -> anyhow::Result<()> {
    let shots = shots_dir();

    // a wrong token: an error, no data, and the token leaves the address bar
    c.goto(&format!("{}/ui#token=not-the-token", h.url)).await?;
    until(
        c,
        "the error banner",
        "return !document.getElementById('error').hidden;",
        WAIT,
    )
    .await?;
    let p = snapshot(c).await?;
    let error = p.error.clone().unwrap_or_default();
    ensure!(
        error.contains("401"),
        "the error does not say 401: {error:?}"
    );
    ensure!(
        !p.view && p.records.is_empty() && p.outcomes.is_empty() && p.refusals.is_empty(),
        "data shown with a wrong token: {p:?}"
    );
    ensure!(
        !p.url.contains("token"),
        "the token stayed in the address bar: {}",
        p.url
    );

    // the right token, pasted into the open tab
    c.goto(&format!("{}/ui#token={TOKEN}", h.url)).await?;
    let want = format!(
        "const r = Array.from(document.querySelectorAll('#records tbody tr[data-record]'));
         const has = (kind, target) => r.some(tr => tr.dataset.remediation === kind && (!target || tr.dataset.target === target));
         return has('delete-pod', '{CRASHLOOP_POD}') && has('drain-node', '{BAD_NODE}') && has('bump-memory', '{OOM_POD}')
           && document.querySelector('#outcomes tr[data-outcome-seq]') !== null;"
    );
    until(c, "the records table", &want, WAIT).await?;
    let p = snapshot(c).await?;
    ensure!(
        p.error.is_none(),
        "an error with the right token: {:?}",
        p.error
    );
    ensure!(
        !p.url.contains("token"),
        "the token stayed in the address bar: {}",
        p.url
    );
    ensure!(
        p.updated.starts_with("updated "),
        "no 'updated Ns ago': {:?}",
        p.updated
    );

    // the status bar: dry-run as the policy has it, leader, accepting, the cluster
    let policy = h.policy().await;
    let dry = policy["guard"]["dryRun"] == true;
    ensure!(
        p.dry_run.as_deref() == Some(if dry { "true" } else { "false" }),
        "dry-run shown as {:?}, the policy has {dry}",
        p.dry_run
    );
    ensure!(
        p.status
            .contains(if dry { "Dry-run: ON" } else { "Dry-run: OFF" }),
        "status: {}",
        p.status
    );
    for s in [
        "Cluster: e2e-dashboard",
        "Profile: test-cluster",
        "Role: leader",
        "Accepting alerts: yes",
    ] {
        ensure!(
            p.status.contains(s),
            "the status bar lacks {s:?}: {}",
            p.status
        );
    }

    // the records: the pod delete, the drain, the pull request with its link
    let record = |kind: &str, target: &str| {
        p.records
            .iter()
            .find(|r| r.remediation.as_deref() == Some(kind) && r.target.as_deref() == Some(target))
    };
    let pod = record("delete-pod", CRASHLOOP_POD).context("no delete-pod row")?;
    ensure!(
        pod.namespace.as_deref() == Some("shop") && pod.text.contains(CRASHLOOP_POD),
        "{pod:?}"
    );
    ensure!(
        pod.phase
            .as_deref()
            .is_some_and(|ph| !ph.is_empty() && pod.text.contains(ph)),
        "the phase is not shown as text: {pod:?}"
    );
    let drain = record("drain-node", BAD_NODE).context("no drain-node row")?;
    ensure!(
        drain.namespace.as_deref() == Some("") && drain.text.contains("Node"),
        "{drain:?}"
    );
    let bump = record("bump-memory", OOM_POD).context("no bump-memory row")?;
    ensure!(
        bump.links.iter().any(|l| l.href == pr_url
            && l.rel.contains("noopener")
            && l.rel.contains("noreferrer")),
        "no link to {pr_url} on the bump-memory row: {bump:?}"
    );
    ensure!(
        p.records
            .iter()
            .all(|r| r.name.as_deref().is_some_and(|n| !n.is_empty())),
        "a record row without its name"
    );

    // the outcomes: the same actions, and the hostile alert as text
    for (kind, target) in [
        ("delete-pod", CRASHLOOP_POD),
        ("drain-node", BAD_NODE),
        ("bump-memory", OOM_POD),
    ] {
        ensure!(
            p.outcomes
                .iter()
                .any(|o| o.result.as_deref() == Some("acted")
                    && o.remediation.as_deref() == Some(kind)
                    && o.text.contains(target)),
            "no acted {kind} outcome row for {target}"
        );
    }
    ensure!(
        p.outcomes
            .iter()
            .all(|o| o.seq.as_deref().is_some_and(|s| s.parse::<u64>().is_ok())),
        "an outcome row without its seq"
    );
    ensure!(
        p.outcomes.iter().any(|o| o.text.contains(HOSTILE)),
        "the hostile alert's text is not shown as text"
    );
    ensure!(
        p.images == 0 && p.handlers == 0,
        "markup from an alert became elements: {} images, {} handlers",
        p.images,
        p.handlers
    );

    // refusals by reason, budgets, breakers
    ensure!(
        p.refusals
            .iter()
            .any(|r| r.reason == "protected_namespace" && r.text.contains("protected_namespace")),
        "refusals: {:?}",
        p.refusals
    );
    let global = p
        .budgets
        .iter()
        .find(|b| b.kind == "global")
        .context("no global budget")?;
    ensure!(
        global.text.contains("of 30 per 1m"),
        "the global budget: {global:?}"
    );
    ensure!(
        p.budgets.iter().any(|b| b.kind == "namespace")
            && p.budgets.iter().any(|b| b.kind == "workload"),
        "budgets: {:?}",
        p.budgets
    );
    ensure!(
        !p.breakers.trim().is_empty(),
        "the breakers section is empty"
    );

    // the namespace filter narrows records and outcomes
    ensure!(
        p.namespaces.iter().any(|n| n == "shop") && p.namespaces.iter().any(|n| n == "kube-system"),
        "namespaces offered: {:?}",
        p.namespaces
    );
    let all_records = p.records.len();
    let ns = c.find(Locator::Id("ns")).await?;
    ns.select_by_value("shop").await?;
    let f = snapshot(c).await?;
    ensure!(
        !f.records.is_empty() && f.records.len() < all_records,
        "filtering on shop: {} of {all_records} records",
        f.records.len()
    );
    ensure!(
        f.records
            .iter()
            .all(|r| r.namespace.as_deref() == Some("shop")),
        "a record outside shop: {:?}",
        f.records
    );
    ensure!(
        f.records
            .iter()
            .any(|r| r.remediation.as_deref() == Some("delete-pod")),
        "the pod delete is filtered out"
    );
    ensure!(
        !f.outcomes.is_empty()
            && f.outcomes
                .iter()
                .all(|o| o.namespace.as_deref() == Some("shop")),
        "outcomes under shop: {:?}",
        f.outcomes
    );
    ns.select_by_value("-").await?;
    let f = snapshot(c).await?;
    ensure!(
        f.records
            .iter()
            .any(|r| r.remediation.as_deref() == Some("drain-node"))
            && f.records.iter().all(|r| r.namespace.as_deref() == Some("")),
        "cluster-scoped: {:?}",
        f.records
    );
    ns.select_by_value("").await?;
    ensure!(
        snapshot(c).await?.records.len() >= all_records,
        "the filter did not reset"
    );

    // the pod delete's history unfolds (a click, as a person would)
    c.find(Locator::Css(
        "#records tr[data-remediation='delete-pod'] details[data-fold^='h:'] summary",
    ))
    .await?
    .click()
    .await?;
    let history = c
        .execute(
            "const d = document.querySelector(\"#records tr[data-remediation='delete-pod'] details[data-fold^='h:']\");
             return [d.open, Array.from(d.querySelectorAll('li')).map(li => li.textContent)];",
            vec![],
        )
        .await?;
    ensure!(
        history[0] == true
            && history[1].as_array().is_some_and(|l| l
                .iter()
                .any(|e| e.as_str().is_some_and(|e| e.contains("Acting")))),
        "the pod delete's history: {history}"
    );

    // accessibility at 1280 px, then the full page
    let a11y = c.execute(ACCESSIBILITY, vec![]).await?;
    ensure!(
        a11y["problems"].as_array().is_some_and(|p| p.is_empty()),
        "accessibility: {:#}",
        a11y["problems"]
    );
    ensure!(
        a11y["checked"].as_u64().unwrap_or(0) > 50,
        "too few texts checked: {a11y}"
    );
    full_page_shot(c, 1280, &shots.join("dashboard.png")).await?;

    // a phone: 375 px wide, nothing wider than the window
    c.set_window_size(375, 812).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fit = c
        .execute(
            "return [document.documentElement.scrollWidth, window.innerWidth];",
            vec![],
        )
        .await?;
    let (scroll, inner) = (
        fit[0].as_u64().unwrap_or(u64::MAX),
        fit[1].as_u64().unwrap_or(0),
    );
    ensure!(
        inner <= 400,
        "the window did not narrow: innerWidth {inner}"
    );
    ensure!(
        scroll <= inner,
        "horizontal overflow at {inner} px: scrollWidth {scroll}"
    );
    let a11y = c.execute(ACCESSIBILITY, vec![]).await?;
    ensure!(
        a11y["problems"].as_array().is_some_and(|p| p.is_empty()),
        "accessibility at 375 px: {:#}",
        a11y["problems"]
    );
    full_page_shot(c, 375, &shots.join("dashboard-375.png")).await?;
    Ok(())
}

/// heal8s gone: the page says it cannot reach it and keeps what it showed.
async fn when_heal8s_is_gone(c: &Client) -> anyhow::Result<()> {
    let banner = until(
        c,
        "the network error banner",
        "const e = document.getElementById('error'); return !e.hidden && e.textContent.includes('Cannot reach heal8s') && e.textContent;",
        Duration::from_secs(20),
    )
    .await?;
    ensure!(
        banner
            .as_str()
            .is_some_and(|b| b.contains("Showing what it said")),
        "the banner: {banner}"
    );
    let p = snapshot(c).await?;
    ensure!(
        p.view && !p.records.is_empty() && !p.outcomes.is_empty(),
        "the last data is gone: {p:?}"
    );
    Ok(())
}

/// Without a cluster the page still shows the outcomes, and says why there
/// are no records.
async fn without_a_cluster(c: &Client) -> anyhow::Result<()> {
    let h = Heal8s::start(TOKEN, &["--no-cluster"]).await?;
    let mut alert: Value = serde_json::from_str(FIRING)?;
    alert["alerts"][0]["startsAt"] = json!(jiff::Timestamp::now().to_string());
    ensure!(
        h.post_webhook(TOKEN, &alert).await == 200,
        "the alert was not accepted"
    );
    c.set_window_size(1280, 900).await?;
    c.goto(&format!("{}/ui#token={TOKEN}", h.url)).await?;
    until(
        c,
        "the records notice and an outcome",
        "return !document.getElementById('records-note').hidden && document.querySelector('#outcomes tr[data-outcome-seq]') !== null;",
        WAIT,
    )
    .await?;
    let p = snapshot(c).await?;
    let note = p.records_note.clone().unwrap_or_default();
    ensure!(note.contains("no cluster"), "the records notice: {note:?}");
    ensure!(
        p.records.is_empty()
            && p.outcomes
                .iter()
                .any(|o| o.text.contains("KubePodCrashLooping")),
        "{p:?}"
    );
    Ok(())
}

/// The page is open and locked down (nothing loads from elsewhere); its
/// state needs the token; without a cluster the records say why not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_page_is_open_and_its_state_needs_a_token() {
    let h = Heal8s::start(TOKEN, &["--no-cluster"]).await.unwrap();
    let http = reqwest::Client::new();
    for path in ["/ui", "/"] {
        let r = http.get(format!("{}{path}", h.url)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
            "{csp}"
        );
        let page = r.text().await.unwrap();
        assert!(page == PAGE, "{path} is not receiver/src/dashboard.html");
        assert!(page.len() < 32 * 1024, "the page is {} bytes", page.len());
        assert!(page.contains("<h1>") && page.contains("ui/state"));
        for external in ["<link", " src=", "@import", "url("] {
            assert!(
                !page.contains(external),
                "the page loads something: {external}"
            );
        }
    }
    let state = format!("{}/ui/state", h.url);
    let r = http.get(&state).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let r = http
        .get(&state)
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let s: Value = http
        .get(&state)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(s["records"]["available"], false, "{s:#}");
    assert!(
        s["records"]["why"].as_str().is_some_and(|w| !w.is_empty()),
        "{s:#}"
    );
    assert!(
        s["outcomes"].is_array() && s["refusals"].is_array(),
        "{s:#}"
    );
}
