//! `[cache]`: the result cache.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{duration, size, ConfigError};

/// Which statements are cached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    /// Nothing is cached; Helios does not look at statements for the cache.
    Off,
    /// Only statements a rule, `CREATE HELIOS CACHE` or a `/*+ cache */`
    /// hint names.
    #[default]
    Explicit,
    /// Every statement that may be cached.
    Auto,
}

/// How Helios learns of writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InvalidationMode {
    /// Writes that pass through Helios, and TTL.
    #[default]
    Writes,
    /// Also writes made elsewhere: triggers installed by `helios
    /// install-invalidation` notify Helios, which listens.
    Notify,
}

/// `[[cache.rules]]`: statements to cache in `explicit` mode.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheRuleConfig {
    /// Cache statements that read this table (`name` or `schema.name`).
    pub table: Option<String>,
    /// Cache statements of this shape (a fingerprint from `SHOW HELIOS CACHES`).
    pub fingerprint: Option<String>,
    /// Cache statements of the same shape as this one.
    pub query: Option<String>,
    /// TTL of their entries (else `cache.ttl`).
    #[serde(with = "opt_duration")]
    pub ttl: Option<Duration>,
}

/// `[cache]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    pub mode: CacheMode,
    /// How long an entry lives when nothing invalidates it first.
    #[serde(with = "duration")]
    pub ttl: Duration,
    /// Memory for cached results (bytes, as stored).
    #[serde(with = "size")]
    pub max_memory: usize,
    /// A larger result is streamed through and not kept.
    #[serde(with = "size")]
    pub max_entry_size: usize,
    pub max_entries: usize,
    pub invalidation: InvalidationMode,
    /// The NOTIFY channel of `invalidation = "notify"`.
    pub notify_channel: String,
    /// How long an identical miss waits for one already on its way upstream.
    #[serde(with = "duration")]
    pub coalesce_wait: Duration,
    pub rules: Vec<CacheRuleConfig>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            mode: CacheMode::Explicit,
            ttl: Duration::from_secs(300),
            max_memory: 256 << 20,
            max_entry_size: 8 << 20,
            max_entries: 100_000,
            invalidation: InvalidationMode::Writes,
            notify_channel: "helios_invalidation".into(),
            coalesce_wait: Duration::from_secs(10),
            rules: vec![],
        }
    }
}

impl CacheConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.ttl.is_zero() {
            return Err(ConfigError::invalid("cache.ttl", "must be more than 0s"));
        }
        if self.max_entries == 0 {
            return Err(ConfigError::invalid(
                "cache.max_entries",
                "must be at least 1",
            ));
        }
        if self.max_entry_size > self.max_memory {
            return Err(ConfigError::invalid(
                "cache.max_entry_size",
                "must not exceed cache.max_memory",
            ));
        }
        if self.notify_channel.is_empty()
            || !self
                .notify_channel
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(ConfigError::invalid(
                "cache.notify_channel",
                "must be a plain identifier (letters, digits, _)",
            ));
        }
        for (i, r) in self.rules.iter().enumerate() {
            let key = format!("cache.rules[{i}]");
            let given = [
                r.table.is_some(),
                r.fingerprint.is_some(),
                r.query.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if given != 1 {
                return Err(ConfigError::invalid(
                    &key,
                    "give exactly one of table, fingerprint, query",
                ));
            }
            if let Some(f) = &r.fingerprint {
                if helios_planner::cacheable::parse_fingerprint_id(f).is_none() {
                    return Err(ConfigError::invalid(
                        &format!("{key}.fingerprint"),
                        format!("\"{f}\" is not a fingerprint (q_ and 16 hex digits)"),
                    ));
                }
            }
            if r.ttl.is_some_and(|t| t.is_zero()) {
                return Err(ConfigError::invalid(
                    &format!("{key}.ttl"),
                    "must be more than 0s",
                ));
            }
        }
        Ok(())
    }
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
