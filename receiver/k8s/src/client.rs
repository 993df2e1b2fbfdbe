//! Building Kubernetes clients: the main one (kube's defaults), and one
//! without kube's default retry, for evictions: that retry would wait out a
//! PodDisruptionBudget's 429s for minutes inside one call, so the drain loop
//! retries on its own schedule instead.

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::K8sError;

/// The clients heal8s uses.
#[derive(Clone)]
pub struct Clients {
    /// For everything but evictions.
    pub main: Client,
    /// Without kube's default retry on 429/503/504: for evictions.
    pub no_retry: Client,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients").finish_non_exhaustive()
    }
}

impl Clients {
    /// Clients from a kubeconfig file, or inferred (in-cluster service account,
    /// then `$KUBECONFIG` / `~/.kube/config`) when `kubeconfig` is `None`.
    pub async fn connect(kubeconfig: Option<&Path>) -> Result<Clients, K8sError> {
        let config = match kubeconfig {
            Some(path) => {
                let kc = Kubeconfig::read_from(path)
                    .map_err(|e| K8sError::Config(format!("{}: {e}", path.display())))?;
                Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                    .await
                    .map_err(|e| K8sError::Config(format!("{}: {e}", path.display())))?
            }
            None => Config::infer()
                .await
                .map_err(|e| K8sError::Config(e.to_string()))?,
        };
        Clients::from_config(config)
    }

    /// Clients from a ready `Config`.
    pub fn from_config(config: Config) -> Result<Clients, K8sError> {
        let main = Client::try_from(config.clone())?;
        let mut plain = config;
        plain.default_retry = false;
        let no_retry = Client::try_from(plain)?;
        Ok(Clients { main, no_retry })
    }
}
