//! `testkit`: run the test emulations as standalone servers. A shim over the
//! library; `testkit kube --port P --kubeconfig-out FILE` serves the
//! Kubernetes API emulation and `testkit github --port P --repo owner/name=DIR`
//! the GitHub REST API emulation, until SIGTERM/SIGINT.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "testkit",
    about = "heal8s test emulations as standalone servers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the Kubernetes API emulation on 127.0.0.1 (plain HTTP; requests without a bearer token are the admin); prints its URL.
    Kube {
        /// Port to listen on (0 picks a free one).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Write a kubeconfig for the emulator to this file.
        #[arg(long)]
        kubeconfig_out: Option<PathBuf>,
        /// Print every request on stderr.
        #[arg(long)]
        log_requests: bool,
        /// Play these controllers, which a bare API server lacks: kubelet,
        /// namespace, serviceaccount, node-lifecycle (repeatable or comma-separated).
        #[arg(long, value_delimiter = ',')]
        play: Vec<testkit::kube::Controller>,
    },
    /// Serve the GitHub REST API emulation on 127.0.0.1 (plain HTTP); prints its URL.
    Github {
        /// Port to listen on (0 picks a free one).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// The GitHub App id App JWTs must name (default: the test App's).
        #[arg(long)]
        app_id: Option<u64>,
        /// The App's RSA public key in PEM (default: the committed test key).
        #[arg(long)]
        app_public_key: Option<PathBuf>,
        /// Accept this personal access token (repeatable).
        #[arg(long = "pat")]
        pats: Vec<String>,
        /// Create owner/name; with =DIR, seed its main branch with DIR's YAML files (repeatable).
        #[arg(long = "repo")]
        repos: Vec<String>,
        /// Installation the repositories belong to.
        #[arg(long, default_value_t = 1)]
        installation_id: u64,
        /// Print every request on stderr.
        #[arg(long)]
        log_requests: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Kube {
            port,
            kubeconfig_out,
            log_requests,
            play,
        } => {
            testkit::kube::serve_standalone(port, kubeconfig_out.as_deref(), log_requests, &play)
                .await
        }
        Command::Github {
            port,
            app_id,
            app_public_key,
            pats,
            repos,
            installation_id,
            log_requests,
        } => {
            testkit::github::serve_standalone(testkit::github::StandaloneOptions {
                port,
                app_id,
                app_public_key,
                pats,
                repos,
                installation_id,
                log_requests,
            })
            .await
        }
    }
}
