//! `heal8s show-deleted RECORD`: print the object a Remediation record kept
//! when heal8s deleted it (or removed its finalizers), as YAML ready for
//! `kubectl apply`.
//!
//! Owns: picking the namespaces to look in and connecting. Reading the record
//! and rendering it are receiver-k8s's (`record::find`, `record::deleted_yaml`);
//! this never changes anything in the cluster.

use anyhow::Context;
use receiver_k8s::Clients;
use receiver_k8s::client::ClientSettings;

use crate::args::ShowDeletedArgs;

/// The namespaces to look for the record in: `--namespace`, else the
/// kubeconfig context's, then heal8s's own (records of cluster-scoped
/// targets, nodes and namespaces, are there).
pub fn namespaces(args: &ShowDeletedArgs, context: &str) -> Vec<String> {
    match &args.namespace {
        Some(ns) => vec![ns.clone()],
        None if context == args.heal8s_namespace => vec![context.to_string()],
        None => vec![context.to_string(), args.heal8s_namespace.clone()],
    }
}

/// The text to print: the record's deleted object, as YAML under comments.
pub async fn run(args: &ShowDeletedArgs) -> anyhow::Result<String> {
    let clients = Clients::connect(
        args.kubeconfig.as_deref(),
        &ClientSettings::for_instance("show-deleted"),
    )
    .await
    .context("cannot connect to Kubernetes (pass --kubeconfig)")?;
    let client = clients.main;
    let look_in = namespaces(args, client.default_namespace());
    let record = receiver_k8s::record::find(&client, &args.record, &look_in)
        .await
        .with_context(|| format!("cannot read Remediation {}", args.record))?
        .with_context(|| {
            format!(
                "no Remediation {} in namespace {} (pass -n NAMESPACE; `kubectl get remediations -A` lists them)",
                args.record,
                look_in.join(" or ")
            )
        })?;
    receiver_k8s::record::deleted_yaml(&record).map_err(anyhow::Error::msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(namespace: Option<&str>) -> ShowDeletedArgs {
        ShowDeletedArgs {
            record: "r".into(),
            namespace: namespace.map(str::to_string),
            heal8s_namespace: "heal8s".into(),
            kubeconfig: None,
        }
    }

    #[test]
    fn the_namespace_given_is_the_only_one_else_the_contexts_then_heal8ss() {
        assert_eq!(namespaces(&args(Some("shop")), "default"), ["shop"]);
        assert_eq!(namespaces(&args(None), "default"), ["default", "heal8s"]);
        assert_eq!(namespaces(&args(None), "heal8s"), ["heal8s"]);
    }
}
