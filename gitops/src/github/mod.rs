//! GitHub: the client (App or token authentication, rate-limit-aware retries,
//! paced writes) and the pull request lifecycle built on it.

pub mod client;
pub mod inert;
pub mod policy;
pub mod pr;
pub mod propose;
pub mod text;

pub use client::{Auth, CallKind, Github, GithubConfig, GithubError, Repo};
pub use pr::{NewFile, PrAction, PrOutcome, PrRequest, PrState};
pub use propose::{
    Prepared, Proposal, ProposeError, PullRequestSettings, prepare, prepare_from_base, propose,
};
