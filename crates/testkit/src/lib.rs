//! Test support for herald. Dev-only: nothing in a shipped binary depends on it.
pub mod apiserver;
