//! The seams between decisions and IO, gathered for the IO crates: what the
//! live cluster says (`facts`), who carries a plan out and what came of it
//! (`outcome`), and the durable record (`journal`). Core modules import
//! those modules directly; this one only re-exports them.

pub use crate::facts::{
    ActError, ClusterFacts, FactSource, Facts, LiveState, ObjectMeta, ServedType,
};
pub use crate::journal::{History, Journal, NoJournal};
pub use crate::outcome::{
    ActionReport, Executor, PullRequestRef, Verification, Verifier, VerifyResult,
};
