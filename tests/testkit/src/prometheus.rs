//! A real Prometheus (Debian's `prometheus`) on loopback, scraping a static
//! exporter served from the test process (a stand-in for kube-state-metrics
//! whose text the test replaces at will) and, if asked, heal8s itself (job
//! `heal8s`, as the chart's ServiceMonitor names it), evaluating a rules file
//! and sending alerts to an Alertmanager.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::bail;
use axum::Router;
use axum::extract::State;
use axum::routing::get;

use crate::{Proc, TempDir, free_port, wait_ok};

/// The Prometheus binary: `$PROM_BIN`, else `prometheus` on `PATH`.
pub fn prometheus_bin() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("PROM_BIN") {
        return Ok(PathBuf::from(p));
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("prometheus");
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!("Prometheus is not installed: `apt-get install prometheus` (.ci/run does this)")
}

/// An exporter serving `/metrics` from text the test sets.
#[derive(Debug, Clone)]
pub struct Exporter {
    text: Arc<Mutex<String>>,
    /// `127.0.0.1:PORT`.
    pub target: String,
}

impl Exporter {
    /// Serve `text` on a free loopback port (until the runtime ends).
    pub async fn start(text: String) -> anyhow::Result<Exporter> {
        let text = Arc::new(Mutex::new(text));
        let app = Router::new()
            .route(
                "/metrics",
                get(|State(t): State<Arc<Mutex<String>>>| async move {
                    (
                        [("content-type", "text/plain; version=0.0.4")],
                        t.lock().unwrap().clone(),
                    )
                }),
            )
            .with_state(text.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let target = listener.local_addr()?.to_string();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Exporter { text, target })
    }

    /// Replace what is served.
    pub fn set(&self, text: String) {
        *self.text.lock().unwrap() = text;
    }
}

/// A running Prometheus.
#[derive(Debug)]
pub struct Prometheus {
    pub proc: Proc,
    pub url: String,
    pub dir: TempDir,
}

impl Prometheus {
    /// Start Prometheus scraping `scrape_target` as job `kube-state-metrics`
    /// every second, evaluating `rules` every second, and alerting
    /// `alertmanager` (`host:port`). Waits for `/-/ready`.
    pub async fn start(
        scrape_target: &str,
        rules: &str,
        alertmanager: &str,
    ) -> anyhow::Result<Prometheus> {
        Prometheus::start_scraping(scrape_target, None, rules, alertmanager).await
    }

    /// As `start`, and also scrape heal8s's `/metrics` at `heal8s_target`
    /// (`host:port`) every second as job `heal8s`.
    pub async fn start_scraping(
        scrape_target: &str,
        heal8s_target: Option<&str>,
        rules: &str,
        alertmanager: &str,
    ) -> anyhow::Result<Prometheus> {
        let bin = prometheus_bin()?;
        let dir = TempDir::new("prom");
        fs::write(dir.path().join("rules.yml"), rules)?;
        let config = format!(
            r#"global:
  scrape_interval: 1s
  evaluation_interval: 1s
  external_labels:
    cluster: e2e
alerting:
  alertmanagers:
    - static_configs:
        - targets: ['{alertmanager}']
rule_files:
  - '{rules}'
scrape_configs:
  - job_name: kube-state-metrics
    honor_labels: true
    static_configs:
      - targets: ['{scrape_target}']
{heal8s}"#,
            rules = dir.path().join("rules.yml").display(),
            heal8s = heal8s_target
                .map(|t| {
                    format!("  - job_name: heal8s\n    static_configs:\n      - targets: ['{t}']\n")
                })
                .unwrap_or_default(),
        );
        fs::write(dir.path().join("prometheus.yml"), config)?;
        fs::create_dir_all(dir.path().join("data"))?;
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        let proc = Proc::spawn(cmd, dir.path().join("prometheus.log"))?;
        let p = Prometheus {
            proc,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        };
        wait_ok(
            &format!("{}/-/ready", p.url),
            Duration::from_secs(30),
            &p.proc,
        )
        .await?;
        Ok(p)
    }

    /// Prometheus's current alerts (`/api/v1/alerts`), as `(alertname, state)`.
    pub async fn alerts(&self) -> Vec<(String, String)> {
        let Ok(r) = reqwest::get(format!("{}/api/v1/alerts", self.url)).await else {
            return Vec::new();
        };
        let v: serde_json::Value = r.json().await.unwrap_or_default();
        v["data"]["alerts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| {
                        (
                            x["labels"]["alertname"].as_str().unwrap_or("").to_string(),
                            x["state"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The samples an instant query returns, as (labels, value); empty on any error.
    pub async fn query(&self, query: &str) -> Vec<(serde_json::Value, f64)> {
        let Ok(url) = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query", self.url),
            [("query", query)],
        ) else {
            return Vec::new();
        };
        let Ok(r) = reqwest::get(url).await else {
            return Vec::new();
        };
        let v: serde_json::Value = r.json().await.unwrap_or_default();
        v["data"]["result"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|s| {
                        let value = s["value"][1]
                            .as_str()
                            .and_then(|x| x.parse().ok())
                            .unwrap_or(f64::NAN);
                        (s["metric"].clone(), value)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many series an instant query returns (0 on any error).
    pub async fn series(&self, query: &str) -> usize {
        let Ok(url) = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query", self.url),
            [("query", query)],
        ) else {
            return 0;
        };
        let Ok(r) = reqwest::get(url).await else {
            return 0;
        };
        let v: serde_json::Value = r.json().await.unwrap_or_default();
        v["data"]["result"].as_array().map_or(0, Vec::len)
    }

    /// Everything Prometheus logged so far.
    pub fn log(&self) -> String {
        self.proc.output()
    }
}
