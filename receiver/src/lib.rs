//! heal8s service and CLI: the composition root. Wires the pure core to its IO
//! (HTTP receiver, work queue, executors), owns configuration and shutdown.

pub mod approve_cmd;
pub mod args;
pub mod banner;
pub mod breakers;
pub mod cli;
pub mod daemon;
pub mod dashboard;
pub mod discover_cmd;
pub mod executor;
pub mod front;
pub mod http;
pub mod listen;
pub mod metrics;
pub mod outcomes;
pub mod patch_cmd;
pub mod pause;
pub mod pause_cmd;
pub mod plan_cmd;
pub mod pulls;
pub mod queue;
pub mod serve;
pub mod show_deleted;
pub mod telemetry;
pub mod trace;
pub mod worker;
