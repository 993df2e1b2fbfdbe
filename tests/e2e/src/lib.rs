//! Placeholder for the e2e package; the tests live in `tests/`.
