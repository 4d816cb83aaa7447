//! The typed configuration, section by section, with defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub tls: TlsConfig,
    pub auth: AuthConfig,
    pub upstream: UpstreamConfig,
    pub pool: PoolConfig,
    pub log: LogConfig,
    /// `[cache]`: the result cache.
    pub cache: super::CacheConfig,
    /// `[nl]`: natural language (owned by helios-nl).
    pub nl: helios_nl::NlConfig,
    /// `[advisor]`: the query advisor.
    pub advisor: super::AdvisorConfig,
    /// `[engine]`: the embedded database (no upstream).
    pub engine: super::EngineConfig,
    /// `[admin]`: the admin HTTP endpoint and admin users.
    pub admin: super::AdminConfig,
    /// `[audit]`: the audit log.
    pub audit: super::AuditConfig,
    /// `[limits]`: timeouts and rate limits per user and client address.
    pub limits: super::LimitsConfig,
}

/// `[server]`: where Helios listens and how much it accepts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Directory for a Unix socket `.s.PGSQL.<port>`, as PostgreSQL names it.
    pub unix_socket_dir: Option<PathBuf>,
    pub max_client_conn: usize,
    #[serde(with = "duration")]
    pub startup_timeout: Duration,
    /// Largest message a client may send.
    #[serde(with = "size")]
    pub max_message_size: usize,
    /// How long a shutdown waits for clients to leave.
    #[serde(with = "duration")]
    pub shutdown_timeout: Duration,
    /// Event loops relaying traffic, each on its own thread with its own
    /// listening socket (SO_REUSEPORT); a session stays on one loop. 0 (the
    /// default) means one per CPU core.
    pub worker_threads: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:6432".parse().unwrap(),
            unix_socket_dir: None,
            max_client_conn: 1000,
            startup_timeout: Duration::from_secs(15),
            // PostgreSQL's own limit (PQ_LARGE_MESSAGE_LIMIT, 1GB - 1): a
            // bigger message would be refused upstream anyway.
            max_message_size: 1 << 30,
            shutdown_timeout: Duration::from_secs(30),
            worker_threads: 0,
        }
    }
}

impl ServerConfig {
    /// The largest message (tag and length included) a client may send:
    /// `max_message_size`, but never more than PostgreSQL takes (a length
    /// field up to 0x3FFFFFFE; "1GB" would let one more byte through, and a
    /// message that size streams to the upstream before it is refused).
    pub fn message_limit(&self) -> usize {
        self.max_message_size.min((1 << 30) - 1)
    }
}

/// `[tls]`: the certificate clients see. Both files, or neither (no TLS).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Refuse clients that do not negotiate TLS (FATAL 28000). Unix-socket
    /// clients are local and exempt, as with PostgreSQL's `hostssl`.
    pub require_tls: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMethodName {
    #[default]
    Trust,
    Md5,
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    /// Pass the client's password through to the upstream.
    Upstream,
}

/// `[auth]`: how clients prove who they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub method: AuthMethodName,
    pub users: Vec<UserConfig>,
}

/// `[[auth.users]]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    /// The password, used to check the client and to log into the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// A stored secret instead of the password: `md5...` or `SCRAM-SHA-256$...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// The password for the upstream, when it differs from `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_password: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamTlsMode {
    Disable,
    /// Try TLS, fall back to plain text if the server does not offer it.
    #[default]
    Prefer,
    /// TLS, without checking the certificate.
    Require,
    VerifyCa,
    VerifyFull,
}

/// `[upstream]`: the PostgreSQL server behind Helios.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// `postgres://[user[:password]@]host[:port][/database]`, or libpq
    /// key/value form. Clients log in as themselves; the URL's user and
    /// password are Helios's own (and the password is also used for clients
    /// logging in as that same user).
    pub url: Option<String>,
    /// TLS to the upstream; when unset, the URL's `sslmode`, else `prefer`.
    pub tls: Option<UpstreamTlsMode>,
    pub tls_ca_file: Option<PathBuf>,
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    /// Further connection attempts after a failed one (nothing sent yet).
    pub connect_retries: u32,
    /// Consecutive failed connection attempts (after their retries) that
    /// open the circuit breaker: new sessions then fail at once with 08006
    /// until a trial connection succeeds. 0: no breaker.
    pub breaker_failures: u32,
    /// How long the breaker stays open before it lets a trial through.
    #[serde(with = "duration")]
    pub breaker_cooldown: Duration,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            url: None,
            tls: None,
            tls_ca_file: None,
            connect_timeout: Duration::from_secs(5),
            connect_retries: 2,
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(1),
        }
    }
}

/// `[pool]`: upstream connections kept for reuse, per (database, user).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolConfig {
    /// Upstream connections (in use + idle) per (database, user).
    pub max_size: usize,
    /// How long a client waits for a connection when the pool is full.
    #[serde(with = "duration")]
    pub acquire_timeout: Duration,
    /// Idle connections older than this are closed.
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
    /// Connections older than this are closed when next released.
    #[serde(with = "duration")]
    pub max_lifetime: Duration,
    /// A connection idle for longer than this is checked with a query before reuse.
    #[serde(with = "duration")]
    pub check_after_idle: Duration,
    /// Run when a client leaves, before the connection is reused.
    pub reset_query: String,
    /// Give a client its upstream connection at its first message rather
    /// than at login, once a login with the same startup parameters has
    /// taught Helios the server's greeting (as PgBouncer does): clients that
    /// sit idle hold no upstream connection. The BackendKeyData pid is then
    /// Helios's own rather than the backend's (`pg_backend_pid()` differs).
    pub lazy_attach: bool,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_size: 50,
            acquire_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(3600),
            check_after_idle: Duration::from_secs(30),
            reset_query: "DISCARD ALL".to_string(),
            lazy_attach: false,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[log]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter: `info`, `helios=debug`, ... (`RUST_LOG` wins).
    pub level: String,
    pub format: LogFormat,
    /// Statements taking longer than this are logged (WARN) with their
    /// text; 0 turns the slow-query log off.
    #[serde(with = "duration")]
    pub slow_query_threshold: Duration,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
            slow_query_threshold: Duration::ZERO,
        }
    }
}

impl Config {
    /// Checks that need more than one key, or more than a type.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        if s.max_client_conn == 0 {
            return Err(ConfigError::invalid(
                "server.max_client_conn",
                "must be at least 1",
            ));
        }
        if s.max_message_size < 1024 {
            return Err(ConfigError::invalid(
                "server.max_message_size",
                "must be at least 1kB",
            ));
        }
        if s.startup_timeout.is_zero() {
            return Err(ConfigError::invalid(
                "server.startup_timeout",
                "must be more than 0s",
            ));
        }
        match (&self.tls.cert_file, &self.tls.key_file) {
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    "tls.key_file",
                    "is required with tls.cert_file",
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    "tls.cert_file",
                    "is required with tls.key_file",
                ))
            }
            _ => {}
        }
        if self.tls.require_tls && self.tls.cert_file.is_none() {
            return Err(ConfigError::invalid(
                "tls.require_tls",
                "needs tls.cert_file and tls.key_file (clients cannot negotiate TLS without a certificate)",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, u) in self.auth.users.iter().enumerate() {
            let key = format!("auth.users[{i}]");
            if u.name.is_empty() {
                return Err(ConfigError::invalid(
                    &format!("{key}.name"),
                    "must not be empty",
                ));
            }
            if !seen.insert(u.name.as_str()) {
                return Err(ConfigError::invalid(
                    &format!("{key}.name"),
                    format!("user \"{}\" is listed twice", u.name),
                ));
            }
            if u.password.is_some() && u.secret.is_some() {
                return Err(ConfigError::invalid(
                    &format!("{key}.secret"),
                    "give password or secret, not both",
                ));
            }
            if let Some(secret) = &u.secret {
                let cred = helios_wire::auth::Credential::from_stored(secret)
                    .map_err(|m| ConfigError::invalid(&format!("{key}.secret"), m))?;
                if self.auth.method == AuthMethodName::ScramSha256
                    && matches!(cred, helios_wire::auth::Credential::Md5Hash(_))
                {
                    return Err(ConfigError::invalid(
                        &format!("{key}.secret"),
                        "an md5 secret cannot check a scram-sha-256 login; give the password or a SCRAM secret",
                    ));
                }
            }
            if matches!(
                self.auth.method,
                AuthMethodName::Md5 | AuthMethodName::ScramSha256
            ) && u.password.is_none()
                && u.secret.is_none()
            {
                return Err(ConfigError::invalid(
                    &format!("{key}.password"),
                    format!(
                        "auth.method = \"{}\" needs a password or secret for every user",
                        self.auth.method.as_str()
                    ),
                ));
            }
        }
        if matches!(
            self.auth.method,
            AuthMethodName::Md5 | AuthMethodName::ScramSha256
        ) && self.auth.users.is_empty()
        {
            return Err(ConfigError::invalid(
                "auth.users",
                format!(
                    "auth.method = \"{}\" needs at least one [[auth.users]] entry",
                    self.auth.method.as_str()
                ),
            ));
        }
        if self.pool.max_size == 0 {
            return Err(ConfigError::invalid("pool.max_size", "must be at least 1"));
        }
        if self.upstream.connect_timeout.is_zero() {
            return Err(ConfigError::invalid(
                "upstream.connect_timeout",
                "must be more than 0s",
            ));
        }
        for (i, p) in self.nl.providers.iter().enumerate() {
            let key = format!("nl.providers[{i}]");
            if p.kind == helios_nl::ProviderKind::Builtin {
                if self.nl.providers[..i]
                    .iter()
                    .any(|q| q.kind == helios_nl::ProviderKind::Builtin)
                {
                    return Err(ConfigError::invalid(&key, "builtin is listed twice"));
                }
                continue;
            }
            if p.model.trim().is_empty() {
                return Err(ConfigError::invalid(
                    &format!("{key}.model"),
                    "must not be empty",
                ));
            }
            if let Some(url) = &p.base_url {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(ConfigError::invalid(
                        &format!("{key}.base_url"),
                        format!("\"{url}\" is not an http(s) URL"),
                    ));
                }
            }
            if p.timeout.is_zero() {
                return Err(ConfigError::invalid(
                    &format!("{key}.timeout"),
                    "must be more than 0s",
                ));
            }
        }
        for (i, m) in self.nl.measures.iter().enumerate() {
            let key = format!("nl.measures[{i}]");
            if m.name.trim().is_empty() {
                return Err(ConfigError::invalid(
                    &format!("{key}.name"),
                    "must not be empty",
                ));
            }
            if let Err(e) = helios_nl::builtin::check_measure(m) {
                return Err(ConfigError::invalid(&format!("{key}.sql"), e));
            }
        }
        if self.nl.max_attempts == 0 {
            return Err(ConfigError::invalid(
                "nl.max_attempts",
                "must be at least 1",
            ));
        }
        if !(0.0..=1.0).contains(&self.nl.similarity_threshold) {
            return Err(ConfigError::invalid(
                "nl.similarity_threshold",
                "must be between 0 and 1",
            ));
        }
        if self.auth.method == AuthMethodName::Upstream && self.upstream.url.is_none() {
            return Err(ConfigError::invalid(
                "auth.method",
                "\"upstream\" passes passwords to the upstream, and none is configured (without one Helios serves its embedded demo database: use trust, md5 or scram-sha-256)",
            ));
        }
        self.cache.validate()?;
        self.advisor.validate()?;
        self.engine.validate()?;
        self.admin.validate()?;
        self.audit.validate()?;
        self.limits.validate()?;
        if self.upstream.breaker_failures > 0 && self.upstream.breaker_cooldown.is_zero() {
            return Err(ConfigError::invalid(
                "upstream.breaker_cooldown",
                "must be more than 0s while upstream.breaker_failures is set",
            ));
        }
        if let Some(url) = &self.upstream.url {
            crate::upstream::UpstreamTarget::from_config(url, &self.upstream)
                .map_err(|m| ConfigError::invalid("upstream.url", m))?;
        }
        Ok(())
    }
}

impl AuthMethodName {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethodName::Trust => "trust",
            AuthMethodName::Md5 => "md5",
            AuthMethodName::ScramSha256 => "scram-sha-256",
            AuthMethodName::Upstream => "upstream",
        }
    }
}

/// Durations as `"5s"`, `"250ms"`, `"10m"` (humantime), or a number of
/// seconds: the same reading as `[nl]`'s, so every duration key takes the same forms.
pub use helios_nl::config::duration;

/// Sizes as `"64MB"`, `"512kB"`, `"1GB"` (PostgreSQL's units, 1024-based), or bytes.
pub mod size {
    use serde::{de, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(n: &usize, s: S) -> Result<S::Ok, S::Error> {
        let n = *n;
        for (unit, size) in [("GB", 1usize << 30), ("MB", 1 << 20), ("kB", 1 << 10)] {
            if n >= size && n % size == 0 {
                return s.serialize_str(&format!("{}{unit}", n / size));
            }
        }
        s.serialize_u64(n as u64)
    }

    pub fn parse(t: &str) -> Option<usize> {
        let t = t.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: usize = num.parse().ok()?;
        let mult = match unit.trim() {
            "" | "B" => 1,
            "kB" | "KB" | "k" => 1 << 10,
            "MB" | "M" => 1 << 20,
            "GB" | "G" => 1 << 30,
            _ => return None,
        };
        n.checked_mul(mult)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(usize),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bytes(n) => Ok(n),
            Raw::Text(t) => parse(&t).ok_or_else(|| {
                de::Error::custom(format!(
                    "invalid size \"{t}\"; write e.g. \"512kB\", \"64MB\", \"1GB\""
                ))
            }),
        }
    }
}
