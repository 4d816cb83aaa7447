//! `[nl]`: the natural-language section of Helios's configuration.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[nl]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NlConfig {
    /// Answer `nl(...)`, `nl_sql(...)` and NL comments. Off: they reach the
    /// upstream as written (and fail there as unknown functions).
    pub enabled: bool,
    /// Attempts per translation: the first, then corrections.
    pub max_attempts: u32,
    /// `statement_timeout` for the generated statement.
    #[serde(with = "duration")]
    pub statement_timeout: Duration,
    /// Send sample values (most common values) to the model. Off: no data
    /// value leaves Helios; values still rank tables locally.
    pub share_values: bool,
    /// `schema.table` glob patterns the model may see; empty: all.
    pub include_tables: Vec<String>,
    /// Patterns the model never sees.
    pub exclude_tables: Vec<String>,
    /// Token budget for the schema part of the prompt.
    pub schema_token_budget: usize,
    /// Conversation turns (question + SQL) kept per connection and shown to the model.
    pub history_turns: usize,
    /// Questions scoring above this are first broken into steps.
    pub complexity_threshold: u32,
    /// Semantic cache: a cached translation answers a question this similar.
    pub similarity_threshold: f64,
    /// Translations kept in the cache.
    pub cache_entries: u64,
    /// A catalog snapshot older than this is reloaded before use.
    #[serde(with = "duration")]
    pub catalog_refresh: Duration,
    /// Providers, tried in order.
    pub providers: Vec<ProviderConfig>,
    /// Question -> SQL examples; the most similar go into the prompt.
    pub examples: Vec<Example>,
    /// Named business measures (`revenue`, `sales`) the builtin translator
    /// uses when a question names them.
    pub measures: Vec<Measure>,
}

impl Default for NlConfig {
    fn default() -> Self {
        NlConfig {
            enabled: true,
            max_attempts: 3,
            statement_timeout: Duration::from_secs(30),
            share_values: true,
            include_tables: vec![],
            exclude_tables: vec![],
            schema_token_budget: 4000,
            history_turns: 10,
            complexity_threshold: 6,
            similarity_threshold: 0.9,
            cache_entries: 10_000,
            catalog_refresh: Duration::from_secs(60),
            providers: vec![],
            examples: vec![],
            measures: vec![],
        }
    }
}

/// Which API a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI's chat completions API, or any compatible endpoint (DeepSeek,
    /// xAI, Ollama, vLLM, llama.cpp) at `base_url`.
    Openai,
    /// Anthropic's Messages API.
    Anthropic,
    /// Helios's own deterministic translator (no model, no network): see
    /// [`crate::builtin`]. Listed first, it answers what it can and the
    /// models get the rest; listed anywhere else, it answers when no model
    /// does. With no providers at all it is the only one.
    Builtin,
}

/// `[[nl.providers]]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    /// A name for logs, metrics and `nl_sql`'s provider column; defaults to kind/model.
    #[serde(default)]
    pub name: Option<String>,
    /// API root, e.g. `https://api.openai.com/v1`, `http://localhost:11434/v1`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// The model; required for `openai` and `anthropic`.
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub api_key: Option<String>,
    /// Per request.
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
    /// Retries after a failed request (timeouts, 429, 5xx), with backoff and jitter.
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// Requests per minute; 0: unlimited.
    #[serde(default)]
    pub requests_per_minute: u32,
    #[serde(default)]
    pub temperature: f32,
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// Consecutive failures that open the circuit breaker.
    #[serde(default = "default_breaker_failures")]
    pub breaker_failures: u32,
    /// How long an open breaker waits before a trial request.
    #[serde(default = "default_breaker_cooldown", with = "duration")]
    pub breaker_cooldown: Duration,
    /// Embedding model (OpenAI kind) for retrieval and the semantic cache.
    #[serde(default)]
    pub embedding_model: Option<String>,
}

impl ProviderConfig {
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            let kind = match self.kind {
                ProviderKind::Openai => "openai",
                ProviderKind::Anthropic => "anthropic",
                ProviderKind::Builtin => return "builtin".to_string(),
            };
            format!("{kind}/{}", self.model)
        })
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_retries() -> u32 {
    2
}
fn default_max_tokens() -> u32 {
    1024
}
fn default_breaker_failures() -> u32 {
    5
}
fn default_breaker_cooldown() -> Duration {
    Duration::from_secs(30)
}

/// `[[nl.examples]]`: a question and the SQL that answers it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    pub question: String,
    pub sql: String,
}

/// `[[nl.measures]]`: a measure by name, for the builtin translator:
/// `name = "revenue"`, `sql = "sum(order_items.quantity * order_items.unit_price)"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measure {
    /// What questions call it ("revenue"); matched like a column name.
    pub name: String,
    /// An aggregate expression over `table.column` references.
    pub sql: String,
    /// Other names for it ("sales", "turnover").
    #[serde(default)]
    pub synonyms: Vec<String>,
}

/// Durations as `"30s"` (humantime) or seconds.
pub mod duration {
    use std::time::Duration;

    use serde::{de, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Seconds(s) => Ok(Duration::from_secs(s)),
            Raw::Text(t) => humantime::parse_duration(&t).map_err(|e| {
                de::Error::custom(format!(
                    "invalid duration \"{t}\" ({e}); write e.g. \"500ms\", \"5s\", \"10m\""
                ))
            }),
        }
    }
}
