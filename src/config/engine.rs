//! `[engine]`: the embedded DataFusion database.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[engine]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// `[[engine.tables]]`: local files served as tables next to the demo
    /// data when there is no upstream.
    pub tables: Vec<FileTable>,
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
