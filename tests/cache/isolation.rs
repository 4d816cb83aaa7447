//! Isolation.
