//! `[admin]` and `[audit]`: what operators get (the admin HTTP endpoint,
//! admin users for `HELIOS RELOAD`/`PAUSE`/`RESUME`, the audit log).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[admin]`: health, metrics and admin actions over HTTP; who may run
/// Helios's admin commands over SQL.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Serve the admin HTTP endpoint (health, `/metrics`, `/admin/*`).
    pub enabled: bool,
    pub listen: SocketAddr,
    /// Bearer token for `/admin/*`; without one those endpoints answer 401.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Users who may run `HELIOS RELOAD`, `HELIOS PAUSE` and `HELIOS RESUME`.
    pub users: Vec<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: true,
            listen: "127.0.0.1:9930".parse().unwrap(),
            token: None,
            users: Vec::new(),
        }
    }
}

/// `[audit]`: who ran what, as JSON lines in a file of its own.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    pub enabled: bool,
    pub file: PathBuf,
    /// Replace literals in statement texts with `?`.
    pub redact_literals: bool,
    /// Rotate when the file reaches this size.
    #[serde(with = "super::size")]
    pub max_size: usize,
    /// Rotated files kept (`audit.log.1` ... `audit.log.<keep>`).
    pub keep: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            enabled: false,
            file: PathBuf::from("helios-audit.log"),
            redact_literals: true,
            max_size: 100 << 20,
            keep: 5,
        }
    }
}

impl AdminConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(t) = &self.token {
            if t.len() < 16 {
                return Err(ConfigError::invalid(
                    "admin.token",
                    "must be at least 16 characters",
                ));
            }
        }
        Ok(())
    }
}

impl AuditConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.enabled && self.file.as_os_str().is_empty() {
            return Err(ConfigError::invalid("audit.file", "must not be empty"));
        }
        if self.max_size < 4096 {
            return Err(ConfigError::invalid(
                "audit.max_size",
                "must be at least 4kB",
            ));
        }
        Ok(())
    }
}
