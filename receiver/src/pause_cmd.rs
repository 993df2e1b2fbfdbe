//! `heal8s pause` and `heal8s resume`: the pause switch of one running
//! process, through its API (`POST /pause`, `POST /resume`) with the webhook
//! token. In a cluster, pause with the `heal8s-pause` ConfigMap instead: it
//! holds for every replica and across restarts (docs/safety.md#pausing).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};

/// Where the running heal8s is, and its token.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The running heal8s (plain HTTP, e.g. through `kubectl port-forward`).
    #[arg(long, env = "HEAL8S_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// File holding the webhook token (the read token may not pause).
    #[arg(long, env = "HEAL8S_WEBHOOK_TOKEN_FILE")]
    pub webhook_token_file: Option<PathBuf>,
}

/// `heal8s pause`.
#[derive(Debug, Clone, clap::Args)]
pub struct PauseArgs {
    #[command(flatten)]
    pub target: Target,
    /// Why (shown in every refusal, the log and the dashboard).
    #[arg(long, default_value = "")]
    pub reason: String,
    /// Who pauses (default: $USER).
    #[arg(long, env = "USER", default_value = "")]
    pub by: String,
}

fn token(t: &Target) -> anyhow::Result<Option<String>> {
    match &t.webhook_token_file {
        None => Ok(None),
        Some(p) => {
            let v = std::fs::read_to_string(p)
                .with_context(|| format!("--webhook-token-file {}: cannot read it", p.display()))?;
            let v = v.trim().to_string();
            if v.is_empty() {
                bail!("--webhook-token-file {}: the file is empty", p.display());
            }
            Ok(Some(v))
        }
    }
}

/// POST `path` on the running heal8s; its JSON answer.
async fn post(t: &Target, path: &str, body: String) -> anyhow::Result<serde_json::Value> {
    let url = format!("{}{path}", t.url.trim_end_matches('/'));
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("--url {}: not a URL", t.url))?;
    if uri.scheme_str() != Some("http") {
        bail!(
            "--url {}: only plain http (e.g. through kubectl port-forward)",
            t.url
        );
    }
    let mut req = http::Request::post(uri).header(http::header::CONTENT_TYPE, "application/json");
    if let Some(tok) = token(t)? {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {tok}"));
    }
    let req = req.body(Full::new(Bytes::from(body)))?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .with_context(|| format!("{url}: no answer within 10s"))?
        .with_context(|| format!("{url}: cannot connect"))?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if !status.is_success() {
        bail!(
            "{url}: {status}: {}",
            v["error"].as_str().unwrap_or("unexpected answer")
        );
    }
    Ok(v)
}

fn said(v: &serde_json::Value) -> String {
    match &v["paused"] {
        serde_json::Value::Null => "heal8s is not paused: it acts".into(),
        p => {
            let mut s = format!(
                "heal8s is PAUSED (via {}, since {}",
                p["source"].as_str().unwrap_or("?"),
                p["since"].as_str().unwrap_or("?")
            );
            if let Some(by) = p["by"].as_str() {
                s.push_str(&format!(", by {by}"));
            }
            s.push(')');
            if let Some(r) = p["reason"].as_str() {
                s.push_str(&format!(": {r}"));
            }
            if v["heldByConfigMap"] == true {
                s.push_str("; the heal8s-pause ConfigMap holds it: delete it to resume");
            }
            s
        }
    }
}

/// `heal8s pause`: the state after it.
pub async fn pause(a: &PauseArgs) -> anyhow::Result<String> {
    let body = serde_json::json!({"reason": a.reason, "by": a.by}).to_string();
    Ok(said(&post(&a.target, "/pause", body).await?))
}

/// `heal8s resume`: the state after it.
pub async fn resume(t: &Target) -> anyhow::Result<String> {
    Ok(said(&post(t, "/resume", String::new()).await?))
}
