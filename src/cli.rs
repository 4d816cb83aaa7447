//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError};

/// Helios: a PostgreSQL-wire-compatible SQL proxy.
#[derive(Debug, Clone, Parser)]
#[command(name = "helios", version, about)]
pub struct Cli {
    /// Configuration file (TOML). Defaults apply without one.
    #[arg(long, short = 'c', env = "HELIOS_CONFIG", global = true)]
    pub config: Option<PathBuf>,

    /// Address to listen on (overrides server.listen).
    #[arg(long)]
    pub listen: Option<SocketAddr>,

    /// Upstream PostgreSQL, e.g. postgres://localhost:5432 (overrides upstream.url).
    #[arg(long)]
    pub upstream: Option<String>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Validate a configuration file and print the effective configuration,
    /// secrets redacted.
    CheckConfig {
        /// The file to check (else --config).
        file: Option<PathBuf>,
    },
    /// Install, in the upstream database, the triggers that tell Helios of
    /// writes made elsewhere (for `cache.invalidation = "notify"`). Connects
    /// as the upstream URL's user; run it again after adding tables unless
    /// it could install the DDL event trigger (superuser).
    InstallInvalidation,
}

impl Cli {
    /// The configuration: file, environment, then these flags.
    pub fn load_config(&self, file: Option<&std::path::Path>) -> Result<Config, ConfigError> {
        let mut config = Config::load(file.or(self.config.as_deref()))?;
        if let Some(listen) = self.listen {
            config.server.listen = listen;
        }
        if let Some(url) = &self.upstream {
            config.upstream.url = Some(url.clone());
            config.validate()?;
        }
        Ok(config)
    }
}
