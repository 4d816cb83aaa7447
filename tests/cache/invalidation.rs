//! Invalidation.
