//! HTTPS for the emulation (`EmulatorOptions::tls`): a fixed test CA and a
//! server certificate it signed for `127.0.0.1`, `::1` and `localhost`
//! (ECDSA P-256, valid 2000 to 2125), and a listener that does the TLS
//! handshake (HTTP/1.1 only, no client certificates) before axum serves the
//! connection. kubectl sends a kubeconfig's bearer token only over TLS, so
//! a token user needs it. The key is public, for loopback tests only.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// The CA that signed the server certificate (a kubeconfig's
/// `certificate-authority-data`, decoded).
pub const CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBgTCCASegAwIBAgIBATAKBggqhkjOPQQDAjAnMSUwIwYDVQQDDBxoZWFsOHMg
dGVzdCBraXQgZW11bGF0aW9uIENBMCAXDTAwMDEwMTAwMDAwMFoYDzIxMjUwMTAx
MDAwMDAwWjAnMSUwIwYDVQQDDBxoZWFsOHMgdGVzdCBraXQgZW11bGF0aW9uIENB
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAESWJxMbBXI1UC7i18pz6OChwnhAZg
3RT6PkT+QUuMxqiY/j8C6JMYnWruHdx5hFQnqhorWB9YPGsy2NFF8t45taNCMEAw
DwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAQYwHQYDVR0OBBYEFJCs9Fjf
Oy2OjNpnV8RDGoZLgso5MAoGCCqGSM49BAMCA0gAMEUCIFtPkJ+HoLj6+PvrycbU
xkO2WyMo92Uxk/ASIdEgeBljAiEA/xLCBlj4j2UncGtRvP+2zh6TtOBhRkDIwGw8
uj+jsJ4=
-----END CERTIFICATE-----
";

const SERVER_CERT_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIB0jCCAXegAwIBAgIBAjAKBggqhkjOPQQDAjAnMSUwIwYDVQQDDBxoZWFsOHMg
dGVzdCBraXQgZW11bGF0aW9uIENBMCAXDTAwMDEwMTAwMDAwMFoYDzIxMjUwMTAx
MDAwMDAwWjAUMRIwEAYDVQQDDAkxMjcuMC4wLjEwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAASXXwcFBEfuwyD/4OP/AfQ+hHdEu8ANx60PLI/dccO/ll0Vr0TRY7t1
d1J4LorAJtMBoU1MdtAXgaysUwy6Q0njo4GkMIGhMAwGA1UdEwEB/wQCMAAwDgYD
VR0PAQH/BAQDAgeAMBMGA1UdJQQMMAoGCCsGAQUFBwMBMCwGA1UdEQQlMCOHBH8A
AAGHEAAAAAAAAAAAAAAAAAAAAAGCCWxvY2FsaG9zdDAfBgNVHSMEGDAWgBSQrPRY
3zstjozaZ1fEQxqGS4LKOTAdBgNVHQ4EFgQUNe5gNqvvWp7vqaZGtNMMadmD6Jww
CgYIKoZIzj0EAwIDSQAwRgIhAN5yDo8T6UCeiUw8r8vd2oKolYFXNsnpCKdWwRQF
c9+CAiEAp8rMrZyxjI2agcSc57rZ4eStnqs3ZoqLJI61gdhYV+Q=
-----END CERTIFICATE-----
";

const SERVER_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgLD4ETaoM/TifTujd
rS+ZkL4BUOTO1i/iXGN828ItCU6hRANCAASXXwcFBEfuwyD/4OP/AfQ+hHdEu8AN
x60PLI/dccO/ll0Vr0TRY7t1d1J4LorAJtMBoU1MdtAXgaysUwy6Q0nj
-----END PRIVATE KEY-----
";

/// How long a client may take over its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's TLS configuration.
fn server_config() -> anyhow::Result<rustls::ServerConfig> {
    let certs = [SERVER_CERT_PEM, CA_PEM]
        .iter()
        .map(|pem| CertificateDer::from_pem_slice(pem.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(SERVER_KEY_PEM.as_bytes())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

type Handshake<Io, Addr> = Pin<Box<dyn Future<Output = Option<(TlsStream<Io>, Addr)>> + Send>>;

/// `inner`'s connections, served after their TLS handshake; handshakes run
/// side by side, so a slow client holds up no other.
pub(crate) struct TlsListener<L: axum::serve::Listener> {
    inner: L,
    acceptor: TlsAcceptor,
    handshakes: FuturesUnordered<Handshake<L::Io, L::Addr>>,
}

impl<L: axum::serve::Listener> TlsListener<L> {
    pub(crate) fn new(inner: L) -> anyhow::Result<TlsListener<L>> {
        Ok(TlsListener {
            inner,
            acceptor: TlsAcceptor::from(Arc::new(server_config()?)),
            handshakes: FuturesUnordered::new(),
        })
    }
}

impl<L> axum::serve::Listener for TlsListener<L>
where
    L: axum::serve::Listener,
    L::Addr: Send + 'static,
{
    type Io = TlsStream<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                (io, addr) = self.inner.accept() => {
                    let acceptor = self.acceptor.clone();
                    self.handshakes.push(Box::pin(async move {
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
                            Ok(Ok(stream)) => Some((stream, addr)),
                            Ok(Err(e)) => {
                                tracing::debug!(error = %e, "A TLS handshake failed.");
                                None
                            }
                            Err(_) => None,
                        }
                    }));
                }
                Some(done) = self.handshakes.next(), if !self.handshakes.is_empty() => {
                    if let Some(conn) = done {
                        return conn;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_built_in_certificate_and_key_load() {
        server_config().unwrap();
    }
}
