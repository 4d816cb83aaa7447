//! The workload view.
