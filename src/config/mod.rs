//! Helios's configuration: the TOML file, `${VAR}` interpolation, `HELIOS_...`
//! environment overrides, command-line overrides, and validation.
//!
//! Loading goes: file text -> TOML value -> `${VAR}` replaced in every string ->
//! environment overrides applied -> typed [`Config`] (unknown keys are errors
//! naming the key) -> [`Config::validate`]. `config/helios.toml` documents
//! every key.

mod advisor;
mod cache;
mod engine;
mod env;
mod limits;
mod ops;
mod types;

use std::path::Path;

pub use advisor::*;
pub use cache::*;
pub use engine::*;
pub use limits::*;
pub use ops::*;
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

/// A TOML syntax error by line and column, without the source line toml
/// quotes: that line may hold a password.
fn parse_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message.to_string(),
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
            message: parse_error(text, &e),
        })?;
        env::interpolate(&mut value, vars, &mut Vec::new())?;
        env::apply_overrides(&mut value, vars)?;
        let config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
            let key = e.path().to_string();
            let secret = [
                "password",
                "secret",
                "upstream_password",
                "url",
                "api_key",
                "token",
            ]
            .iter()
            .any(|k| key.ends_with(k));
            if secret {
                // serde quotes the offending value; for a secret, say only what
                // was expected.
                return ConfigError::invalid(&key, "invalid value (expected a string)");
            }
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
        if c.admin.token.is_some() {
            c.admin.token = Some(REDACTED.to_string());
        }
        for p in &mut c.nl.providers {
            if p.api_key.is_some() {
                p.api_key = Some(REDACTED.to_string());
            }
        }
        toml::to_string_pretty(&c).expect("the config serializes")
    }
}

pub const REDACTED: &str = "<redacted>";

/// The upstream URL with its password replaced, in either form tokio-postgres
/// accepts: `postgres://user:secret@host/db?password=...` or libpq key/value
/// (`host=db password='a secret'`). Anything it cannot parse is redacted whole.
pub fn redact_url(url: &str) -> String {
    let redacted = if url.contains("://") {
        redact_uri(url)
    } else {
        redact_key_value(url)
    };
    redacted.unwrap_or_else(|| REDACTED.to_string())
}

fn redact_uri(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:{REDACTED}@{hosts}"),
            None => format!("{userinfo}@{hosts}"),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => {
                        format!("{k}={REDACTED}")
                    }
                    _ => kv.to_string(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_string(),
    };
    Some(format!("{scheme}://{authority}{tail}"))
}

/// libpq's key/value syntax: `key = value`, values optionally single-quoted
/// with `\'` and `\\` escapes.
fn redact_key_value(s: &str) -> Option<String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        chars.next_if_eq(&'=')?;
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next()? {
                    '\\' => value.push(chars.next()?),
                    '\'' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.push(chars.next()?);
                } else {
                    value.push(c);
                }
            }
        }
        if key.eq_ignore_ascii_case("password") {
            value = REDACTED.to_string();
        }
        let quoted = value.is_empty() || value.contains([' ', '\'', '\\']);
        out.push(if quoted {
            format!(
                "{key}='{}'",
                value.replace('\\', "\\\\").replace('\'', "\\'")
            )
        } else {
            format!("{key}={value}")
        });
    }
    Some(out.join(" "))
}

#[cfg(test)]
mod tests;
