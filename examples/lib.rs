//! Compiled examples live in this directory; see `plan_payload.rs`.
