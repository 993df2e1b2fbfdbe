//! Manifest patching for heal8s's declarative fixes: the remediation
//! arithmetic (`arith`), YAML with spans (`yaml`), minimal-diff edits proven
//! by re-parsing (`edit`), workload documents, containers and Helm values
//! components (`patch`), and where a workload is declared in a repository,
//! kustomize included (`locate`). Pure: text in, text out. Pull requests
//! build on this: the GitHub client and the pull request lifecycle
//! (`github`), and the executor that turns a declarative plan into one
//! (`executor`).

pub mod arith;
pub mod edit;
pub mod executor;
pub mod github;
pub mod locate;
pub mod patch;
pub use receiver_core::quantity;
pub mod yaml;
