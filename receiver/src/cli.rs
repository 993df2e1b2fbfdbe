//! The command line: `heal8s serve | check-config | plan | default-policy`.
//!
//! Owns: flags and environment variables, and turning them into settings.
//! Every flag has an environment variable (HEAL8S_*) for container use.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use receiver_core::Policy;
use receiver_core::duration::PromDuration;

use crate::telemetry::{self, LogFormat};

/// heal8s keeps Kubernetes clusters healthy: it turns alerts into guarded remediations.
#[derive(Debug, Parser)]
#[command(name = "heal8s", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// heal8s's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: receive Alertmanager webhooks and remediate.
    Serve(ServeArgs),
    /// Validate a policy file and list every problem in it.
    CheckConfig {
        /// The policy file to check.
        policy: PathBuf,
    },
    /// Show offline what heal8s would do with each alert of a webhook payload.
    Plan(PlanArgs),
    /// Print the built-in default policy.
    DefaultPolicy,
}

/// Flags of `heal8s serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (webhook, health, metrics, policy).
    #[arg(long, env = "HEAL8S_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// File holding the webhook bearer token (e.g. a mounted Secret).
    #[arg(long, env = "HEAL8S_WEBHOOK_TOKEN_FILE")]
    pub webhook_token_file: Option<PathBuf>,
    /// The webhook bearer token itself. Prefer the file or the environment variable:
    /// a command-line value is visible to other users of the machine.
    #[arg(long, env = "HEAL8S_WEBHOOK_TOKEN", hide_env_values = true)]
    pub webhook_token: Option<String>,
    /// Accept webhooks without a token. Only for local experiments.
    #[arg(long, env = "HEAL8S_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
    /// Remediation policy file (YAML). Without it the built-in default policy is used.
    #[arg(long, env = "HEAL8S_POLICY")]
    pub policy: Option<PathBuf>,
    /// Decide and record everything, change nothing (overrides the policy's guard.dryRun).
    #[arg(long, env = "HEAL8S_DRY_RUN")]
    pub dry_run: bool,
    /// heal8s's own namespace; always protected.
    #[arg(long, env = "HEAL8S_NAMESPACE", default_value = "heal8s")]
    pub namespace: String,
    /// Largest accepted webhook body, in bytes.
    #[arg(long, env = "HEAL8S_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// How many alerts may wait in the work queue; beyond it webhooks get 503.
    #[arg(long, env = "HEAL8S_QUEUE_CAPACITY", default_value_t = 1024)]
    pub queue_capacity: usize,
    /// How long shutdown may take to finish queued work.
    #[arg(long, env = "HEAL8S_SHUTDOWN_TIMEOUT", default_value = "25s")]
    pub shutdown_timeout: PromDuration,
    #[command(flatten)]
    pub log: LogArgs,
}

/// Logging flags.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log line format.
    #[arg(long, env = "HEAL8S_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `info,receiver=debug`.
    #[arg(long, env = "HEAL8S_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

/// Output format of `heal8s plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// Flags of `heal8s plan`.
#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    /// An Alertmanager webhook payload (JSON), or `-` for standard input.
    #[arg(long)]
    pub alert: PathBuf,
    /// Policy file; the built-in default when absent.
    #[arg(long, env = "HEAL8S_POLICY")]
    pub policy: Option<PathBuf>,
    /// heal8s's own namespace; always protected.
    #[arg(long, env = "HEAL8S_NAMESPACE", default_value = "heal8s")]
    pub namespace: String,
    /// Plan as if in global dry-run.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

/// Load the policy file, or the default one.
pub fn load_policy(path: Option<&std::path::Path>) -> anyhow::Result<Policy> {
    match path {
        None => Ok(Policy::default_policy()?),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read policy file {}", p.display()))?;
            Policy::from_yaml(&text).with_context(|| format!("policy file {}", p.display()))
        }
    }
}

/// Parse the command line and run; the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("heal8s: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => {
            telemetry::init(args.log.log_format, &args.log.log_level)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(crate::serve::run(args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { policy } => {
            let text = std::fs::read_to_string(&policy)
                .with_context(|| format!("cannot read policy file {}", policy.display()))?;
            match Policy::from_yaml(&text) {
                Ok(p) => {
                    println!(
                        "{}: OK ({} routes, dryRun {})",
                        policy.display(),
                        p.routes.len(),
                        p.guard.dry_run
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("{}: {e}", policy.display());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Plan(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .context("cannot start the async runtime")?;
            let text = runtime.block_on(crate::plan_cmd::run(&args))?;
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Command::DefaultPolicy => {
            print!("{}", receiver_core::policy::DEFAULT_POLICY_YAML);
            Ok(ExitCode::SUCCESS)
        }
    }
}
