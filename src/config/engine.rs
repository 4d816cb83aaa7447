//! `[engine]`: DataFusion — the embedded database (no upstream), and
//! analytical queries over the upstream: routing, parallel scans,
//! accelerated tables, local files.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{duration, size, ConfigError};

/// `[engine]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// `[[engine.tables]]`: local files served as tables: next to the demo
    /// data when there is no upstream, and joinable with upstream tables in
    /// statements routed to the engine.
    pub tables: Vec<FileTable>,
    /// Parallel COPY partitions per upstream table scan (default: the cores).
    pub partitions: Option<usize>,
    /// A partition covers at least this many 8 kB pages; smaller tables
    /// are read in one piece.
    pub min_partition_pages: u64,
    /// Upstream connections the engine's scans may hold at once, over all
    /// sessions (each partition takes one while it reads).
    pub max_connections: usize,
    /// Run read-only analytical statements that read only accelerated
    /// tables in DataFusion without a hint.
    pub auto: bool,
    /// Memory for accelerated tables, all together (their Arrow size).
    #[serde(with = "size")]
    pub memory_limit: usize,
    /// `[[engine.route]]`: statements sent to the engine by rule.
    pub route: Vec<RouteRule>,
    /// `[[engine.accelerate]]`: upstream tables kept in memory.
    pub accelerate: Vec<AccelerateTable>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            tables: Vec::new(),
            partitions: None,
            min_partition_pages: 128,
            max_connections: 16,
            auto: false,
            memory_limit: 1 << 30,
            route: Vec::new(),
            accelerate: Vec::new(),
        }
    }
}

impl EngineConfig {
    /// Partitions per scan: the setting, else one per core.
    pub fn partitions(&self) -> usize {
        self.partitions
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }
}

/// `[[engine.route]]`: read-only statements reading any of `tables` run in
/// the engine.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteRule {
    /// Table names (`name` or `schema.name`).
    pub tables: Vec<String>,
}

/// `[[engine.accelerate]]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccelerateTable {
    /// `name` or `schema.name` (default schema `public`).
    pub table: String,
    /// The database it is in (default: the upstream URL's).
    #[serde(default)]
    pub database: Option<String>,
    /// Reload it this often (besides when a write to it is seen).
    #[serde(default, with = "opt_duration")]
    pub refresh: Option<Duration>,
}

mod opt_duration {
    use std::time::Duration;

    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::duration::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::duration::deserialize(d).map(Some)
    }
}

/// `[[engine.tables]]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTable {
    /// The table's name in schema `public`.
    pub name: String,
    pub path: PathBuf,
    /// `csv` (with a header row) or `json` (one object per line); by
    /// default from the file's extension.
    #[serde(default)]
    pub format: Option<FileFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    Csv,
    Json,
}

impl FileTable {
    /// The format given, or read from the extension.
    pub fn format(&self) -> Option<FileFormat> {
        self.format.or_else(|| {
            match self
                .path
                .extension()?
                .to_str()?
                .to_ascii_lowercase()
                .as_str()
            {
                "csv" => Some(FileFormat::Csv),
                "json" | "ndjson" | "jsonl" => Some(FileFormat::Json),
                _ => None,
            }
        })
    }
}

impl EngineConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.partitions == Some(0) {
            return Err(ConfigError::invalid(
                "engine.partitions",
                "must be at least 1",
            ));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::invalid(
                "engine.max_connections",
                "must be at least 1",
            ));
        }
        for (i, a) in self.accelerate.iter().enumerate() {
            if a.table.trim().is_empty() || a.table.split('.').count() > 2 {
                return Err(ConfigError::invalid(
                    &format!("engine.accelerate[{i}].table"),
                    "a table name: name or schema.name",
                ));
            }
            if a.refresh.is_some_and(|d| d.is_zero()) {
                return Err(ConfigError::invalid(
                    &format!("engine.accelerate[{i}].refresh"),
                    "must be more than 0s",
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, t) in self.tables.iter().enumerate() {
            let key = format!("engine.tables[{i}]");
            let valid_name = !t.name.is_empty()
                && t.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                && !t.name.starts_with(|c: char| c.is_ascii_digit());
            if !valid_name {
                return Err(ConfigError::invalid(
                    &format!("{key}.name"),
                    "a lower-case SQL name (letters, digits, _)",
                ));
            }
            if !seen.insert(t.name.as_str()) {
                return Err(ConfigError::invalid(
                    &format!("{key}.name"),
                    format!("\"{}\" is declared twice", t.name),
                ));
            }
            if t.format().is_none() {
                return Err(ConfigError::invalid(
                    &format!("{key}.format"),
                    "give format = \"csv\" or \"json\" (newline-delimited), or name the file *.csv / *.json",
                ));
            }
        }
        Ok(())
    }
}
