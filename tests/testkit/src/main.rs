//! `testkit`: run the test emulations as standalone servers. A shim over the
//! library; `testkit kube --port P --kubeconfig-out FILE` serves the
//! Kubernetes API emulation until SIGTERM/SIGINT.

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
    /// Serve the Kubernetes API emulation on 127.0.0.1 (plain HTTP, no auth); prints its URL.
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
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Kube {
            port,
            kubeconfig_out,
            log_requests,
        } => testkit::kube::serve_standalone(port, kubeconfig_out.as_deref(), log_requests).await,
    }
}
