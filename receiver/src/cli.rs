//! The command line: `heal8s serve | start | stop | status | restart | logs |
//! discover | check-config | plan | default-policy | crd | patch | show-deleted |
//! pause | resume | approve | reject`.
//!
//! Owns: the subcommands and running them. Their flags, and turning them
//! into settings, are in `args` (shared by the subcommand modules).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use receiver_core::Policy;

use crate::args::{PlanArgs, ServeArgs, ShowDeletedArgs, crd_file};

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
    Serve(Box<ServeArgs>),
    /// Run the service in the background (`serve` detached, with a PID file and a rotated log file).
    Start(Box<crate::daemon::StartArgs>),
    /// Stop the background service: SIGTERM, wait for it to drain, then SIGKILL.
    Stop(crate::daemon::StopArgs),
    /// Whether the background service runs: exit 0 running, 1 stale PID file, 3 not running.
    Status(crate::daemon::PidFileArg),
    /// Stop the background service and start it again with the flags given.
    Restart(Box<crate::daemon::RestartArgs>),
    /// Print the background service's log (-f: follow it).
    Logs(crate::daemon::LogsArgs),
    /// List the cluster's API groups and resources, and which configured custom resources exist.
    Discover(crate::discover_cmd::DiscoverArgs),
    /// Validate a policy file and list every problem in it.
    CheckConfig {
        /// The policy file to check.
        policy: PathBuf,
    },
    /// Show offline what heal8s would do with each alert of a webhook payload.
    Plan(PlanArgs),
    /// Print the built-in default policy.
    DefaultPolicy,
    /// Print a CustomResourceDefinition heal8s uses (YAML).
    Crd {
        /// Which: `remediation` (the records) or `remediation-policy` (a
        /// team's policy for its namespace).
        #[arg(long, default_value = "remediation", value_parser = ["remediation", "remediation-policy"])]
        kind: String,
    },
    /// Patch a manifest or Helm values file with the smallest diff, as a
    /// declarative fix would: print the new text (or the diff), or write it back.
    Patch(Box<crate::patch_cmd::PatchArgs>),
    /// Print the object a Remediation record kept when heal8s deleted it (or
    /// removed its finalizers), as YAML ready for `kubectl apply`.
    ShowDeleted(ShowDeletedArgs),
    /// Pause a running heal8s: it decides and records, and changes nothing (POST /pause).
    Pause(crate::pause_cmd::PauseArgs),
    /// Let a paused heal8s act again (POST /resume).
    Resume(crate::pause_cmd::Target),
    /// Approve a plan awaiting approval (mode approve), as the user your
    /// kubeconfig authenticates: heal8s checks again, then acts.
    Approve(crate::approve_cmd::DecideArgs),
    /// Reject a plan awaiting approval: nothing is done.
    Reject(crate::approve_cmd::DecideArgs),
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

/// Run `f` to its end on a runtime of this thread (the one-shot commands).
fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(runtime.block_on(f))
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => {
            crate::daemon::init_logging(&args.log)?;
            let endpoint = crate::trace::endpoint_from(args.otlp_endpoint.as_deref(), |k| {
                std::env::var(k).ok()
            })?;
            let exporting = match &endpoint {
                Some(e) => {
                    let exporting = crate::trace::install(e)?;
                    tracing::info!(endpoint = %e.url, from = e.from, "Traces are exported over OTLP/HTTP: one per signal.");
                    Some(exporting)
                }
                None => None,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let served = runtime.block_on(crate::serve::run(*args));
            drop(runtime);
            // the last spans go out before the process ends
            if let Some(e) = exporting {
                e.shutdown(std::time::Duration::from_secs(5));
            }
            served?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Start(a) => crate::daemon::start(&a, &crate::daemon::raw_args()),
        Command::Stop(a) => crate::daemon::stop(&a),
        Command::Status(a) => crate::daemon::status(&a),
        Command::Restart(a) => crate::daemon::restart(&a, &crate::daemon::raw_args()),
        Command::Logs(a) => crate::daemon::logs(&a),
        Command::Discover(a) => crate::discover_cmd::main(&a),
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
                    // each route's rung, and the rungs its remediation may take
                    for r in &p.routes {
                        let kind = r.remediation.kind();
                        let modes: Vec<&str> = kind.modes().iter().map(|m| m.as_str()).collect();
                        println!(
                            "  route {}: {kind} in mode {} (its modes: {})",
                            r.name,
                            r.mode,
                            modes.join(", ")
                        );
                    }
                    for w in p.warnings() {
                        eprintln!("{}: warning: {}: {}", policy.display(), w.path, w.message);
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("{}: {e}", policy.display());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Plan(args) => {
            let text = block_on(crate::plan_cmd::run(&args))??;
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Command::DefaultPolicy => {
            print!("{}", receiver_core::policy::DEFAULT_POLICY_YAML);
            Ok(ExitCode::SUCCESS)
        }
        Command::Crd { kind } => {
            print!("{}", crd_file(&kind)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Patch(args) => crate::patch_cmd::run(&args),
        Command::Pause(args) => {
            println!("{}", block_on(crate::pause_cmd::pause(&args))??);
            Ok(ExitCode::SUCCESS)
        }
        Command::Resume(target) => {
            println!("{}", block_on(crate::pause_cmd::resume(&target))??);
            Ok(ExitCode::SUCCESS)
        }
        Command::Approve(args) => {
            println!("{}", block_on(crate::approve_cmd::decide(&args, true))??);
            Ok(ExitCode::SUCCESS)
        }
        Command::Reject(args) => {
            println!("{}", block_on(crate::approve_cmd::decide(&args, false))??);
            Ok(ExitCode::SUCCESS)
        }
        Command::ShowDeleted(args) => {
            let text = block_on(crate::show_deleted::run(&args))??;
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
