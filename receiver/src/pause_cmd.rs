//! `heal8s pause` and `heal8s resume`: the pause switch of one running
//! process, through its API (`POST /pause`, `POST /resume`) with the webhook
//! token; or, with `--configmap`, of every replica in a cluster, by creating
//! (deleting) the `heal8s-pause` ConfigMap in heal8s's namespace with the
//! caller's kubeconfig: it holds across restarts and failovers
//! (docs/safety.md#pausing).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};

/// Where the running heal8s is, and its token; or the cluster whose
/// `heal8s-pause` ConfigMap pauses every replica.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The running heal8s (plain HTTP, e.g. through `kubectl port-forward`).
    #[arg(long, env = "HEAL8S_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// File holding the webhook token (the read token may not pause).
    #[arg(long, env = "HEAL8S_WEBHOOK_TOKEN_FILE", conflicts_with = "configmap")]
    pub webhook_token_file: Option<PathBuf>,
    /// Pause (resume) every replica in a cluster instead: create (delete)
    /// the ConfigMap heal8s-pause in heal8s's namespace with your kubeconfig.
    #[arg(long)]
    pub configmap: bool,
    /// With --configmap: kubeconfig file. Default: $KUBECONFIG or
    /// ~/.kube/config, else the in-cluster service account.
    #[arg(long, env = "HEAL8S_KUBECONFIG", requires = "configmap")]
    pub kubeconfig: Option<PathBuf>,
    /// With --configmap: the kubeconfig context. Default: the current one.
    #[arg(long, env = "HEAL8S_CONTEXT", requires = "configmap")]
    pub context: Option<String>,
    /// With --configmap: heal8s's namespace.
    #[arg(long, short = 'n', env = "HEAL8S_NAMESPACE", default_value = "heal8s")]
    pub namespace: String,
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
    if a.target.configmap {
        return pause_configmap(a).await;
    }
    let body = serde_json::json!({"reason": a.reason, "by": a.by}).to_string();
    Ok(said(&post(&a.target, "/pause", body).await?))
}

/// `heal8s resume`: the state after it.
pub async fn resume(t: &Target) -> anyhow::Result<String> {
    if t.configmap {
        return resume_configmap(t).await;
    }
    Ok(said(&post(t, "/resume", String::new()).await?))
}

/// The ConfigMaps of heal8s's namespace, through the caller's kubeconfig.
async fn configmaps(
    t: &Target,
) -> anyhow::Result<kube::Api<k8s_openapi::api::core::v1::ConfigMap>> {
    if !receiver_core::target::is_dns1123_label(&t.namespace) {
        bail!("--namespace {:?}: not a namespace name", t.namespace);
    }
    let (config, _) =
        receiver_k8s::discovery::config(t.kubeconfig.as_deref(), t.context.as_deref())
            .await
            .context("cannot configure a Kubernetes client")?;
    let client = kube::Client::try_from(config).context("cannot build a Kubernetes client")?;
    Ok(kube::Api::namespaced(client, &t.namespace))
}

/// How a pause ConfigMap reads.
fn said_configmap(cm: &k8s_openapi::api::core::v1::ConfigMap, namespace: &str) -> String {
    let p = receiver_k8s::pause::of_configmap(cm);
    said(&serde_json::json!({
        "paused": {"source": format!("configmap {namespace}/{PAUSE}"), "since": p.since, "by": p.by, "reason": p.reason},
        "heldByConfigMap": true,
    }))
}

const PAUSE: &str = receiver_k8s::pause::PAUSE_CONFIGMAP;

async fn pause_configmap(a: &PauseArgs) -> anyhow::Result<String> {
    let api = configmaps(&a.target).await?;
    let cut = |v: &str| receiver_core::text::one_line(v, 200);
    let cm: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": PAUSE, "labels": {"app.kubernetes.io/managed-by": "heal8s"}},
        "data": {"reason": cut(&a.reason), "by": cut(&a.by)},
    }))?;
    let ns = &a.target.namespace;
    match api.create(&kube::api::PostParams::default(), &cm).await {
        Ok(made) => Ok(said_configmap(&made, ns)),
        // already paused: say by whom, change nothing
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let cur = api
                .get(PAUSE)
                .await
                .with_context(|| format!("{ns}/{PAUSE} exists but cannot be read"))?;
            Ok(format!("{} (already)", said_configmap(&cur, ns)))
        }
        Err(e) => Err(anyhow::anyhow!(
            "cannot create ConfigMap {ns}/{PAUSE}: {e} (it needs permission to create ConfigMaps in {ns})"
        )),
    }
}

async fn resume_configmap(t: &Target) -> anyhow::Result<String> {
    let api = configmaps(t).await?;
    let ns = &t.namespace;
    match api.delete(PAUSE, &kube::api::DeleteParams::default()).await {
        Ok(_) => Ok(format!(
            "ConfigMap {ns}/{PAUSE} deleted: every replica acts again (unless one was paused through its API)"
        )),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(format!(
            "no ConfigMap {ns}/{PAUSE}: heal8s was not paused through one"
        )),
        Err(e) => Err(anyhow::anyhow!("cannot delete ConfigMap {ns}/{PAUSE}: {e}")),
    }
}
