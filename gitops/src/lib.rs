//! Manifest patching and the pull-request workflow for heal8s's declarative
//! fixes. So far: exact memory quantities and the remediation arithmetic
//! (issue 5); minimal-diff editing, source location and pull requests follow.

pub mod arith;
pub mod edit;
pub mod patch;
pub use receiver_core::quantity;
pub mod yaml;
