//! One HTTP client for every webhook channel: rustls with the system's
//! certificate authorities, a time limit per attempt, JSON bodies.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

use crate::SendError;
use crate::retry::from_status;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// Most bytes of an answer read (the rest is not needed).
const MAX_ANSWER: usize = 64 << 10;

#[derive(Clone)]
pub struct Poster {
    client: Client<Connector, Full<Bytes>>,
}

impl std::fmt::Debug for Poster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Poster")
    }
}

/// The host of `url`, the only part of a webhook URL shown in errors and
/// logs (the path or query of most carries the secret).
pub fn host_of(url: &str) -> String {
    url.split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(url)
        .split(['/', '?', '#'])
        .next()
        .unwrap_or("")
        .rsplit('@')
        .next()
        .unwrap_or("")
        .to_string()
}

impl Poster {
    pub fn new() -> Result<Poster, String> {
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider)
            .map_err(|e| format!("TLS roots: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        let client =
            Client::builder(hyper_util::rt::TokioExecutor::new()).build::<_, Full<Bytes>>(https);
        Ok(Poster { client })
    }

    /// POST `body` (JSON) to `url` with `headers`, within `timeout`.
    /// Returns the answer's body on a 2xx.
    pub async fn post_json(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Bytes, SendError> {
        let host = host_of(url);
        let uri: http::Uri = url
            .parse()
            .map_err(|_| SendError::permanent(format!("the URL for {host} is not a valid URL")))?;
        let mut req = http::Request::post(uri)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("heal8s/", env!("CARGO_PKG_VERSION")),
            );
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| SendError::permanent(format!("a header for {host} is not valid")))?;
        let attempt = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| SendError::transient(format!("{host}: {}", connect_error(&e))))?;
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            match from_status(status, retry_after.as_deref(), &host) {
                None => Ok(body),
                Some(mut e) => {
                    let said = String::from_utf8_lossy(&body[..body.len().min(200)])
                        .replace(['\n', '\r'], " ");
                    if !said.trim().is_empty() {
                        e.message = format!("{}: {}", e.message, said.trim());
                    }
                    Err(e)
                }
            }
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(SendError::transient(format!(
                "{host} did not answer within {timeout:?}"
            ))),
        }
    }
}

fn connect_error(e: &hyper_util::client::legacy::Error) -> String {
    use std::error::Error;
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s = format!("{s}: {c}");
        src = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_host_of_a_url_is_shown() {
        assert_eq!(
            host_of("https://hooks.slack.com/services/T0/B0/SEKRIT"),
            "hooks.slack.com"
        );
        assert_eq!(
            host_of("http://127.0.0.1:8080/x?token=SEKRIT"),
            "127.0.0.1:8080"
        );
        assert_eq!(host_of("https://user:pw@h.example/"), "h.example");
    }
}
