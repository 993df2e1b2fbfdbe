//! Building Kubernetes clients: the main one (kube's defaults), and one
//! without kube's default retry, for evictions: that retry would wait out a
//! PodDisruptionBudget's 429s for minutes inside one call, so the drain loop
//! retries on its own schedule instead.
//!
//! Both send `User-Agent: heal8s/<version> (<instance>)`, as kubectl sends
//! its own, so API server logs and audit attribute requests to heal8s and
//! its replica, not only to its ServiceAccount. Both ride out a restarting
//! API server's transient 403s (its RBAC caches still loading), and a 500 or
//! a lost connection on a read or a delete, with the bounded retry
//! `receiver_core::transient` decides; watches are left to their watcher's
//! own backoff.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response, header::USER_AGENT};
use http_body_util::BodyExt;
use kube::client::{Body, ClientBuilder, DynBody};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use receiver_core::transient::ForbiddenRetry;
use tower::{BoxError, Layer, Service, ServiceExt};

use crate::K8sError;

/// The clients heal8s uses.
#[derive(Clone)]
pub struct Clients {
    /// For everything but evictions.
    pub main: Client,
    /// Without kube's default retry on 429/503/504: for evictions.
    pub no_retry: Client,
    /// What the watches hold (see [`crate::cache`]).
    pub caches: crate::cache::Caches,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients").finish_non_exhaustive()
    }
}

/// How heal8s's clients present themselves and what they retry.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// The `User-Agent` of every request (see [`user_agent`]).
    pub user_agent: String,
    /// Retries of transient 403s.
    pub forbidden: ForbiddenRetry,
}

impl ClientSettings {
    /// `heal8s/<version> (<instance>)`, the default 403 retry.
    pub fn for_instance(instance: &str) -> ClientSettings {
        ClientSettings {
            user_agent: user_agent(instance),
            forbidden: ForbiddenRetry::default(),
        }
    }
}

/// `heal8s/<version> (<instance>)`, like kubectl's `kubectl/v1.33.0 (linux/amd64)`.
/// `instance` is the pod name (or host name); characters a header value or
/// the comment cannot hold become `-`.
pub fn user_agent(instance: &str) -> String {
    let instance: String = instance
        .chars()
        .take(253)
        .map(|c| {
            if c.is_ascii_graphic() && !matches!(c, '(' | ')' | '\\') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let instance = if instance.is_empty() {
        "unknown".to_string()
    } else {
        instance
    };
    format!("heal8s/{} ({instance})", env!("CARGO_PKG_VERSION"))
}

impl Clients {
    /// Clients from a kubeconfig file, or inferred (in-cluster service account,
    /// then `$KUBECONFIG` / `~/.kube/config`) when `kubeconfig` is `None`.
    pub async fn connect(
        kubeconfig: Option<&Path>,
        settings: &ClientSettings,
    ) -> Result<Clients, K8sError> {
        Clients::connect_to(kubeconfig, None, settings).await
    }

    /// Clients for `context` (of `kubeconfig`, or of the default kubeconfig:
    /// `$KUBECONFIG` or `~/.kube/config`); without a context, as `connect`.
    pub async fn connect_to(
        kubeconfig: Option<&Path>,
        context: Option<&str>,
        settings: &ClientSettings,
    ) -> Result<Clients, K8sError> {
        let options = KubeConfigOptions {
            context: context.map(str::to_string),
            ..KubeConfigOptions::default()
        };
        let config = match (kubeconfig, context) {
            (Some(path), _) => {
                let kc = Kubeconfig::read_from(path)
                    .map_err(|e| K8sError::Config(format!("{}: {e}", path.display())))?;
                Config::from_custom_kubeconfig(kc, &options)
                    .await
                    .map_err(|e| K8sError::Config(format!("{}: {e}", path.display())))?
            }
            (None, Some(ctx)) => Config::from_kubeconfig(&options)
                .await
                .map_err(|e| K8sError::Config(format!("context {ctx:?}: {e}")))?,
            (None, None) => Config::infer()
                .await
                .map_err(|e| K8sError::Config(e.to_string()))?,
        };
        Clients::from_config(config, settings)
    }

    /// Clients from a ready `Config`.
    pub fn from_config(mut config: Config, settings: &ClientSettings) -> Result<Clients, K8sError> {
        let agent = HeaderValue::from_str(&settings.user_agent)
            .map_err(|e| K8sError::Config(format!("user agent {:?}: {e}", settings.user_agent)))?;
        config.headers.retain(|(name, _)| name != USER_AGENT);
        config.headers.push((USER_AGENT, agent));
        let main = build(config.clone(), settings.forbidden)?;
        let mut plain = config;
        plain.default_retry = false;
        let no_retry = build(plain, settings.forbidden)?;
        Ok(Clients {
            main,
            no_retry,
            caches: crate::cache::Caches::default(),
        })
    }
}

fn build(config: Config, forbidden: ForbiddenRetry) -> Result<Client, K8sError> {
    Ok(ClientBuilder::try_from(config)?
        // the retry needs a service it can clone for each try
        .with_layer(&tower::buffer::BufferLayer::new(1024))
        .with_layer(&ForbiddenRetryLayer(forbidden))
        .build())
}

/// Retries 403 answers as [`ForbiddenRetry`] decides.
#[derive(Debug, Clone, Copy)]
struct ForbiddenRetryLayer(ForbiddenRetry);

impl<S> Layer<S> for ForbiddenRetryLayer {
    type Service = ForbiddenRetrying<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ForbiddenRetrying {
            inner,
            policy: self.0,
        }
    }
}

#[derive(Debug, Clone)]
struct ForbiddenRetrying<S> {
    inner: S,
    policy: ForbiddenRetry,
}

type Answer = Response<Box<DynBody>>;

impl<S> Service<Request<Body>> for ForbiddenRetrying<S>
where
    S: Service<Request<Body>, Response = Answer, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Answer;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Answer, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        // the ready service serves the first try; a clone serves the rest
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let policy = self.policy;
        Box::pin(async move {
            let mut next = retry_copy(&req);
            let method = req.method().clone();
            let path = req.uri().path().to_string();
            let probe = (method == http::Method::DELETE)
                .then(|| req.body().try_clone())
                .flatten();
            let preconditioned = names_its_uid(probe).await;
            let mut answer = inner.call(req).await;
            let mut attempt = 1;
            loop {
                // a 500, or no answer at all, to a request safe to repeat
                let failed = match &answer {
                    Err(e) => Some((None, e.to_string())),
                    Ok(a) if a.status() == http::StatusCode::INTERNAL_SERVER_ERROR => {
                        Some((Some(500), "500 Internal Server Error".to_string()))
                    }
                    Ok(_) => None,
                };
                if let Some((status, why)) = failed {
                    let wait =
                        policy.after_server_error(method.as_str(), preconditioned, status, attempt);
                    let (Some(wait), Some(req)) = (wait, next.take()) else {
                        return answer;
                    };
                    tracing::debug!(%method, path, attempt, wait_ms = wait.as_millis() as u64, why,
                        "The API server failed a request that is safe to repeat; trying again.");
                    tokio::time::sleep(wait).await;
                    next = retry_copy(&req);
                    attempt += 1;
                    answer = match inner.ready().await {
                        Ok(s) => s.call(req).await,
                        Err(e) => Err(e),
                    };
                    continue;
                }
                let answer_ok = answer?;
                if answer_ok.status() != http::StatusCode::FORBIDDEN {
                    if attempt > 1 {
                        tracing::info!(%method, path, tries = attempt, status = answer_ok.status().as_u16(),
                            "The API server answered after refusing or failing (likely restarting).");
                    }
                    return Ok(answer_ok);
                }
                let Some(req) = next.take() else {
                    return Ok(answer_ok);
                };
                let (parts, body) = answer_ok.into_parts();
                let bytes = body.collect().await?.to_bytes();
                let message = serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|s| s["message"].as_str().map(str::to_string))
                    .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
                let Some(wait) = policy.after(403, &message, attempt) else {
                    return Ok(Response::from_parts(parts, full(bytes)));
                };
                tracing::debug!(%method, path, attempt, wait_ms = wait.as_millis() as u64, message,
                    "The API server refused with 403; trying again (a restarting API server refuses until its RBAC caches load).");
                tokio::time::sleep(wait).await;
                next = retry_copy(&req);
                attempt += 1;
                answer = match inner.ready().await {
                    Ok(s) => s.call(req).await,
                    Err(e) => Err(e),
                };
            }
        })
    }
}

/// Whether a delete's body (a copy) makes the object's uid a precondition.
async fn names_its_uid(body: Option<Body>) -> bool {
    let Some(body) = body else {
        return false;
    };
    let Ok(bytes) = body.collect().await.map(|b| b.to_bytes()) else {
        return false;
    };
    serde_json::from_slice::<serde_json::Value>(&bytes).is_ok_and(|v| {
        v["preconditions"]["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty())
    })
}

/// A copy of `req` for another try; `None` for watches (their watcher
/// retries with its own backoff) and for bodies that cannot be replayed.
fn retry_copy(req: &Request<Body>) -> Option<Request<Body>> {
    let query = req.uri().query().unwrap_or("");
    if query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1")
    {
        return None;
    }
    let body = req.body().try_clone()?;
    let mut copy = Request::builder()
        .method(req.method().clone())
        .uri(req.uri().clone())
        .version(req.version())
        .body(body)
        .ok()?;
    *copy.headers_mut() = req.headers().clone();
    *copy.extensions_mut() = req.extensions().clone();
    Some(copy)
}

fn full(bytes: bytes::Bytes) -> Box<DynBody> {
    Box::new(http_body_util::Full::new(bytes).map_err(|never| match never {}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_agent_names_heal8s_its_version_and_the_instance() {
        assert_eq!(
            user_agent("heal8s-7d9f-abcde"),
            format!("heal8s/{} (heal8s-7d9f-abcde)", env!("CARGO_PKG_VERSION"))
        );
        assert!(HeaderValue::from_str(&user_agent("heal8s-7d9f-abcde")).is_ok());
    }

    #[test]
    fn an_odd_instance_name_still_makes_a_valid_header() {
        for odd in ["", "a b", "x)(y", "nul\0l", "ünï\r\ncode"] {
            let ua = user_agent(odd);
            assert!(HeaderValue::from_str(&ua).is_ok(), "{ua:?}");
            assert!(ua.starts_with("heal8s/") && ua.ends_with(')'), "{ua:?}");
            assert_eq!(ua.matches('(').count(), 1, "{ua:?}");
        }
    }
}
