//! Test kit: helpers to run heal8s and its real peers in tests.
