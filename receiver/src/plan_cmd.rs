//! `heal8s plan`: what heal8s would do with each alert of a payload, offline.
//!
//! Runs the same Engine as `serve` (routing, planning, guard with its budgets and
//! dedupe across the payload) with the offline fact source and executor.

use std::fmt::Write as _;
use std::io::Read as _;

use anyhow::Context;
use receiver_core::{Engine, Outcome, Signal, SystemClock, alertmanager};

use crate::args::{Output, PlanArgs, load_policy};
use crate::executor::{OfflineFacts, SimulatingExecutor};

/// Plan every alert of the payload and render the result.
pub async fn run(args: &PlanArgs) -> anyhow::Result<String> {
    let body = if args.alert.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::stdin()
            .read_to_end(&mut b)
            .context("cannot read the payload from standard input")?;
        b
    } else {
        std::fs::read(&args.alert)
            .with_context(|| format!("cannot read --alert {}", args.alert.display()))?
    };
    let payload = alertmanager::parse(&body)
        .with_context(|| format!("--alert {} is not a webhook payload", args.alert.display()))?;
    let mut policy = load_policy(args.policy.as_deref())?;
    if args.dry_run {
        policy.guard.dry_run = true;
    }
    crate::args::apply_cluster_name(&mut policy, args.cluster_name.as_deref())?;
    let mut engine = Engine::new(policy, &args.namespace)?;
    let mut all = Vec::new();
    for signal in Signal::from_payload(&payload) {
        let outcomes = engine
            .process(&signal, &OfflineFacts, &SimulatingExecutor, &SystemClock)
            .await;
        all.push((signal, outcomes));
    }
    Ok(match args.output {
        Output::Json => {
            let v: Vec<&Outcome> = all.iter().flat_map(|(_, o)| o).collect();
            let mut s = serde_json::to_string_pretty(&v)?;
            s.push('\n');
            s
        }
        Output::Text => render(&all),
    })
}

/// Human-readable rendering: one block per alert, one line per route taken.
pub fn render(all: &[(Signal, Vec<Outcome>)]) -> String {
    let mut s = String::new();
    for (signal, outcomes) in all {
        let _ = writeln!(
            s,
            "{} [{}] fingerprint {} first seen {}",
            signal.name(),
            signal.status.as_str(),
            signal.fingerprint,
            signal.first_seen
        );
        match (&signal.target, &signal.target_problem) {
            (Some(t), _) => {
                let _ = writeln!(s, "  target: {t}");
            }
            (None, Some(p)) => {
                let _ = writeln!(s, "  target: none ({p})");
            }
            (None, None) => {
                let _ = writeln!(s, "  target: none");
            }
        }
        for o in outcomes {
            let route = match (&o.route, o.remediation, o.mode) {
                (Some(r), Some(k), Some(m)) => format!("route {r}: {k} ({m})"),
                _ => "no route".to_string(),
            };
            let verdict = match o.reason {
                Some(reason) => format!("{} [{}]", o.result.as_str(), reason.as_str()),
                None => o.result.as_str().to_string(),
            };
            let _ = writeln!(s, "  {route} -> {verdict}: {}", o.message);
        }
        s.push('\n');
    }
    s
}
