//! Index recommendations.
