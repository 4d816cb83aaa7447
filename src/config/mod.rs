//! Helios's configuration: the TOML file, `${VAR}` interpolation, `HELIOS_...`
//! environment overrides, command-line overrides, and validation.
//!
//! Loading goes: file text -> TOML value -> `${VAR}` replaced in every string ->
//! environment overrides applied -> typed [`Config`] (unknown keys are errors
//! naming the key) -> [`Config::validate`]. `config/helios.toml` documents
//! every key.

mod env;
mod types;

use std::path::Path;

pub use types::*;

/// A configuration problem, worded for the person who wrote the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    pub fn invalid(key: &str, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.to_string(),
            message: message.into(),
        }
    }
}

impl Config {
    /// Load from a file (or defaults when `path` is `None`), applying the
    /// process environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        Self::load_with_env(path, &vars)
    }

    /// Load with an explicit environment (tests).
    pub fn load_with_env(
        path: Option<&Path>,
        vars: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let (text, name) = match path {
            Some(p) => (
                std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.display().to_string(),
                    source,
                })?,
                p.display().to_string(),
            ),
            None => (String::new(), "(defaults)".to_string()),
        };
        Self::from_toml_str(&text, &name, vars)
    }

    /// Parse TOML text, with interpolation and overrides from `vars`.
    pub fn from_toml_str(
        text: &str,
        name: &str,
        vars: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let mut value: toml::Value = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: name.to_string(),
            message: e.to_string(),
        })?;
        env::interpolate(&mut value, vars, &mut Vec::new())?;
        env::apply_overrides(&mut value, vars)?;
        let config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
            let key = e.path().to_string();
            ConfigError::Invalid {
                key: if key == "." { "config".into() } else { key },
                // toml's message ends with its own "in `key`" line; the key
                // is already in front.
                message: e
                    .into_inner()
                    .to_string()
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The effective configuration as TOML, with every secret replaced.
    pub fn to_redacted_toml(&self) -> String {
        let mut c = self.clone();
        for u in &mut c.auth.users {
            for secret in [&mut u.password, &mut u.secret, &mut u.upstream_password] {
                if secret.is_some() {
                    *secret = Some(REDACTED.to_string());
                }
            }
        }
        if let Some(url) = &c.upstream.url {
            c.upstream.url = Some(redact_url(url));
        }
        toml::to_string_pretty(&c).expect("the config serializes")
    }
}

pub const REDACTED: &str = "<redacted>";

/// `postgres://user:secret@host` -> `postgres://user:<redacted>@host`, and a
/// `password=` in a key/value string.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((userinfo, host)) = rest.rsplit_once('@') {
            if let Some((user, _)) = userinfo.split_once(':') {
                return format!("{scheme}://{user}:{REDACTED}@{host}");
            }
        }
    }
    url.split(['&', ' '])
        .map(|part| match part.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}={REDACTED}"),
            _ => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join(if url.contains("://") { "&" } else { " " })
}

#[cfg(test)]
mod tests;
