//! Route one Alertmanager payload through the default policy and the guard,
//! using only the pure core (no cluster, no network).
//!
//! Run: `cargo run -p heal8s-examples --example plan_payload -- receiver/core/tests/fixtures/sample-webhook.json`

use anyhow::Context;
use jiff::Timestamp;
use receiver_core::guard::Verdict;
use receiver_core::{Facts, Guard, Plan, Policy, Signal, alertmanager, route};

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .context("usage: plan_payload PAYLOAD.json")?;
    let body = std::fs::read(&path).with_context(|| format!("reading {path}"))?;
    let payload = alertmanager::parse(&body)?;
    let policy = Policy::default_policy()?;
    let mut guard = Guard::new(&policy.guard, &policy.features, "heal8s")?;
    let now = Timestamp::now();
    for signal in Signal::from_payload(&payload) {
        println!("{} ({})", signal.source.name(), signal.status.as_str());
        for r in route::route(&policy, &signal) {
            match Plan::build(&signal, r) {
                Err(e) => println!("  route {}: no plan: {e}", r.name),
                Ok(plan) => {
                    let verdict = guard.check(&plan, &Facts::unknown(), now).verdict;
                    if let Verdict::Allow { .. } = verdict {
                        guard.record(&plan, now);
                    }
                    println!("  route {}: {} -> {verdict:?}", r.name, plan.kind());
                }
            }
        }
    }
    Ok(())
}
