//! heal8s's pure decision core: Alertmanager payloads, Signals, the routing
//! policy, Plans and the guard.
//!
//! Nothing in this crate does IO: no Kubernetes client, no HTTP server or
//! client, no tokio networking (a test proves it). IO implementations plug in
//! through the traits in [`act`].

pub mod act;
pub mod alertmanager;
pub mod backlog;
pub mod deleted;
pub mod detect;
pub mod drain;
pub mod duration;
pub mod facts;
pub mod finalizers;
pub mod guard;
pub mod journal;
pub mod lanes;
pub mod ledger;
pub mod names;
pub mod notify;
pub mod outcome;
pub mod ownership;
pub mod pipeline;
pub mod plan;
pub mod policy;
pub mod quantity;
pub mod recheck;
pub mod remediation;
pub mod route;
pub mod signal;
pub mod standdown;
pub mod status;
pub mod target;
pub mod text;
pub mod trace;
pub mod transient;
pub mod verify;

#[cfg(test)]
mod testutil;

pub use act::{
    ActError, ActionReport, Executor, FactSource, Facts, History, Journal, NoJournal, ObjectMeta,
    ServedType, Verification, Verifier, VerifyResult,
};
pub use alertmanager::{Alert, AlertStatus, PayloadError, WebhookPayload};
pub use guard::{
    Admission, Decision, Guard, GuardEvent, PastEvent, Protection, RecoveryBy, Refusal,
    RefusalReason, Verdict,
};
pub use outcome::{Outcome, OutcomeKind};
pub use pipeline::{Clock, Engine, SystemClock};
pub use plan::{Plan, Trigger, WorkloadRef};
pub use policy::{Policy, PolicyError, PolicyIssue};
pub use remediation::{Mode, Remediation, RemediationKind};
pub use signal::{Evidence, Signal, Source};
pub use target::{KnownKind, Target, TargetKind, known_kind};
pub use trace::TraceContext;
