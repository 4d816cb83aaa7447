//! `[advisor]`: the query advisor.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{duration, ConfigError};

/// `[advisor]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdvisorConfig {
    /// `ADVISE`, `helios_advise()`, `SHOW HELIOS QUERIES`, `ADVISE
    /// WORKLOAD`, `SET helios.advise`. Off: those reach the upstream as
    /// written, and Helios keeps no per-statement counters.
    pub enabled: bool,
    /// Recommend an index when it saves at least this share of a
    /// statement's cost, in percent.
    pub min_saving_pct: f64,
    /// A table with at least this many rows is "large" to the rules.
    pub large_table_rows: f64,
    /// Columns in a recommended index, at most.
    pub max_index_columns: usize,
    /// Statement shapes `ADVISE WORKLOAD` considers: the most total time first.
    pub workload_top: usize,
    /// Indexes `ADVISE WORKLOAD` chooses, at most.
    pub workload_max_indexes: usize,
    /// How long a catalog snapshot is used before it is read again.
    #[serde(with = "duration")]
    pub catalog_refresh: Duration,
}

impl Default for AdvisorConfig {
    fn default() -> Self {
        AdvisorConfig {
            enabled: true,
            min_saving_pct: 30.0,
            large_table_rows: 100_000.0,
            max_index_columns: 3,
            workload_top: 20,
            workload_max_indexes: 5,
            catalog_refresh: Duration::from_secs(30),
        }
    }
}

impl AdvisorConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(0.0..=100.0).contains(&self.min_saving_pct) {
            return Err(ConfigError::invalid(
                "advisor.min_saving_pct",
                "must be between 0 and 100",
            ));
        }
        if self.max_index_columns == 0 {
            return Err(ConfigError::invalid(
                "advisor.max_index_columns",
                "must be at least 1",
            ));
        }
        if self.workload_top == 0 {
            return Err(ConfigError::invalid(
                "advisor.workload_top",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}
