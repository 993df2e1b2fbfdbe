//! `heal8s approve RECORD` and `heal8s reject RECORD`: a person's decision
//! on a plan awaiting approval (routes in mode `approve`), written into the
//! record's `spec.approval` with the caller's kubeconfig. The approver's
//! name is the one the API server gives the caller (a SelfSubjectReview),
//! never one they type; the chart's ValidatingAdmissionPolicy refuses any
//! other. heal8s then takes the decision once, checks the live state and
//! its guard again, and acts (docs/safety.md#approval).

use std::path::PathBuf;

use anyhow::{Context, bail};
use kube::Api;
use receiver_k8s::record::{Phase, Remediation};

/// `heal8s approve` / `heal8s reject`.
#[derive(Debug, Clone, clap::Args)]
pub struct DecideArgs {
    /// The Remediation record awaiting approval (`kubectl get remediations -A`
    /// lists them, phase AwaitingApproval).
    pub record: String,
    /// The record's namespace. Default: the kubeconfig context's namespace,
    /// then heal8s's own (records of nodes and namespaces are there).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// heal8s's namespace.
    #[arg(long, env = "HEAL8S_NAMESPACE", default_value = "heal8s")]
    pub heal8s_namespace: String,
    /// Kubeconfig file. Default: $KUBECONFIG or ~/.kube/config, else the
    /// in-cluster service account.
    #[arg(long, env = "HEAL8S_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context. Default: the current one.
    #[arg(long, env = "HEAL8S_CONTEXT")]
    pub context: Option<String>,
}

/// Who the API server says the caller is (SelfSubjectReview, authentication.k8s.io/v1).
pub async fn whoami(client: &kube::Client) -> anyhow::Result<String> {
    let body = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "SelfSubjectReview",
    });
    let req = http::Request::post("/apis/authentication.k8s.io/v1/selfsubjectreviews")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&body)?)
        .context("cannot build the SelfSubjectReview request")?;
    let review: serde_json::Value = client.request(req).await.context(
        "cannot ask the API server who you are (SelfSubjectReview, Kubernetes 1.28 or later)",
    )?;
    match review["status"]["userInfo"]["username"].as_str() {
        Some(u) if !u.is_empty() => Ok(u.to_string()),
        _ => bail!(
            "the API server's SelfSubjectReview names no user (an anonymous request cannot approve)"
        ),
    }
}

/// Approve (`approve`) or reject the record's open request; what was done.
pub async fn decide(a: &DecideArgs, approve: bool) -> anyhow::Result<String> {
    let verb = if approve { "approve" } else { "reject" };
    let (config, _) =
        receiver_k8s::discovery::config(a.kubeconfig.as_deref(), a.context.as_deref())
            .await
            .context("cannot configure a Kubernetes client")?;
    let client = kube::Client::try_from(config).context("cannot build a Kubernetes client")?;
    let look_in = match &a.namespace {
        Some(ns) => vec![ns.clone()],
        None if client.default_namespace() == a.heal8s_namespace => {
            vec![a.heal8s_namespace.clone()]
        }
        None => vec![
            client.default_namespace().to_string(),
            a.heal8s_namespace.clone(),
        ],
    };
    let record = receiver_k8s::record::find(&client, &a.record, &look_in)
        .await
        .with_context(|| format!("cannot read Remediation {}", a.record))?
        .with_context(|| {
            format!(
                "no Remediation {} in namespace {} (pass -n NAMESPACE; `kubectl get remediations -A` lists them)",
                a.record,
                look_in.join(" or ")
            )
        })?;
    let ns = record.metadata.namespace.clone().unwrap_or_default();
    let status = record.status.clone().unwrap_or_default();
    let Some(asked) = status.approval.as_ref() else {
        bail!(
            "Remediation {ns}/{}: heal8s asked no one to approve it (its route is not in mode approve)",
            a.record
        );
    };
    if status.phase != Some(Phase::AwaitingApproval) {
        let phase = status
            .phase
            .map(|p| format!("{p:?}"))
            .unwrap_or_else(|| "without a phase".into());
        bail!(
            "Remediation {ns}/{} is {phase}, not AwaitingApproval: nothing to {verb}{}",
            a.record,
            asked
                .approved_by
                .as_deref()
                .or(asked.rejected_by.as_deref())
                .map(|b| format!(" (decided by {b})"))
                .unwrap_or_default()
        );
    }
    let now = jiff::Timestamp::now();
    if asked
        .expires_at
        .parse::<jiff::Timestamp>()
        .is_ok_and(|e| e <= now)
    {
        bail!(
            "Remediation {ns}/{}: the request expired at {}; heal8s asks again if the problem persists",
            a.record,
            asked.expires_at
        );
    }
    let who = whoami(&client).await?;
    let mut approval = serde_json::json!({"request": asked.request});
    let (by, at) = if approve {
        ("approvedBy", "approvedAt")
    } else {
        ("rejectedBy", "rejectedAt")
    };
    approval[by] = who.clone().into();
    approval[at] = now.to_string().into();
    // only if the record is as read: a request heal8s renewed since is not decided blindly
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": record.metadata.resource_version},
        "spec": {"approval": approval},
    });
    let api: Api<Remediation> = Api::namespaced(client, &ns);
    api.patch(
        &a.record,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .map_err(|e| match e {
        kube::Error::Api(s) if s.code == 409 => anyhow::anyhow!(
            "Remediation {ns}/{} changed while you decided (heal8s renewed or took the request): read it again",
            a.record
        ),
        e => anyhow::anyhow!("cannot write your decision on Remediation {ns}/{}: {e}", a.record),
    })?;
    let plan = asked
        .plan()
        .map(|p| p.describe())
        .unwrap_or_else(|| record.spec.remediation.clone());
    Ok(if approve {
        format!(
            "approved Remediation {ns}/{} ({plan}) as {who}; heal8s checks the live state and its guard again before it acts (kubectl get remediation {} -n {ns} -w)",
            a.record, a.record
        )
    } else {
        format!(
            "rejected Remediation {ns}/{} ({plan}) as {who}; nothing is done",
            a.record
        )
    })
}
