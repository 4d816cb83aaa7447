//! The upstream PostgreSQL server: where it is ([`UpstreamTarget`]), one
//! logged-in connection to it ([`UpstreamConn`]), and the session pool of
//! such connections ([`Pool`]).

mod conn;
mod pool;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use helios_wire::tls::{self, Verify};
use helios_wire::{ErrorFields, Frame, PgError, SqlState, UpstreamKey};
use tokio_postgres::config::Host;

pub use conn::{send_cancel, UpstreamConn};
pub use pool::{Login, Pool, PoolKey, PoolStats, PooledConn};

use crate::config::{UpstreamConfig, UpstreamTlsMode};

/// One address the upstream may be reached at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Tcp {
        host: String,
        port: u16,
    },
    /// The socket file itself (`<dir>/.s.PGSQL.<port>`).
    Unix(PathBuf),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Endpoint::Tcp { host, port } => write!(f, "{host}:{port}"),
            Endpoint::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Everything needed to open a connection to the upstream.
pub struct UpstreamTarget {
    /// Tried in order, as libpq tries a host list.
    pub endpoints: Vec<Endpoint>,
    pub tls_mode: UpstreamTlsMode,
    tls_config: Option<Arc<rustls::ClientConfig>>,
    pub connect_timeout: Duration,
    pub connect_retries: u32,
    /// Circuit breaker: consecutive failed connects that open it (0: none),
    /// and how long it stays open before a trial.
    pub breaker_failures: u32,
    pub breaker_cooldown: Duration,
    /// Helios's own login (the URL's user, password, database).
    pub service_user: Option<String>,
    pub service_password: Option<String>,
    pub service_database: Option<String>,
}

impl fmt::Debug for UpstreamTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamTarget")
            .field("endpoints", &self.endpoints)
            .field("tls_mode", &self.tls_mode)
            .field("service_user", &self.service_user)
            .finish_non_exhaustive()
    }
}

impl UpstreamTarget {
    /// Parse the upstream URL (or libpq key/value string) with the rest of `[upstream]`.
    pub fn from_config(url: &str, cfg: &UpstreamConfig) -> Result<Self, String> {
        // libpq's verify-ca / verify-full are not tokio-postgres sslmode values;
        // take them out of the URL and apply them here.
        let mut url_mode = None;
        let mut cleaned = url.to_string();
        for (text, mode) in [
            ("sslmode=verify-full", UpstreamTlsMode::VerifyFull),
            ("sslmode=verify-ca", UpstreamTlsMode::VerifyCa),
        ] {
            if cleaned.contains(text) {
                url_mode = Some(mode);
                cleaned = cleaned.replace(text, "sslmode=require");
            }
        }
        let pg = tokio_postgres::Config::from_str(&cleaned)
            .map_err(|e| format!("cannot parse \"{}\": {e}", crate::config::redact_url(url)))?;
        let url_mode = url_mode.or_else(|| {
            url.contains("sslmode=").then(|| match pg.get_ssl_mode() {
                tokio_postgres::config::SslMode::Disable => UpstreamTlsMode::Disable,
                tokio_postgres::config::SslMode::Require => UpstreamTlsMode::Require,
                _ => UpstreamTlsMode::Prefer,
            })
        });
        let tls_mode = cfg.tls.or(url_mode).unwrap_or_default();

        let ports = pg.get_ports();
        let port_for = |i: usize| match ports.len() {
            0 => Ok(5432),
            1 => Ok(ports[0]),
            n if i < n => Ok(ports[i]),
            _ => Err("give one port, or one port per host".to_string()),
        };
        let mut endpoints = Vec::new();
        for (i, host) in pg.get_hosts().iter().enumerate() {
            let port = port_for(i)?;
            endpoints.push(match host {
                Host::Tcp(h) => Endpoint::Tcp {
                    host: h.clone(),
                    port,
                },
                Host::Unix(dir) => Endpoint::Unix(dir.join(format!(".s.PGSQL.{port}"))),
            });
        }
        if endpoints.is_empty() {
            return Err("no host given (postgres://host:port/...)".into());
        }
        let tls_config = match tls_mode {
            UpstreamTlsMode::Disable => None,
            mode => {
                let verify = match mode {
                    UpstreamTlsMode::VerifyFull => Verify::Full,
                    UpstreamTlsMode::VerifyCa => Verify::Ca,
                    _ => Verify::None,
                };
                Some(
                    tls::client_config(verify, cfg.tls_ca_file.as_deref())
                        .map_err(|e| format!("upstream TLS: {e}"))?,
                )
            }
        };
        Ok(UpstreamTarget {
            endpoints,
            tls_mode,
            tls_config,
            connect_timeout: *pg.get_connect_timeout().unwrap_or(&cfg.connect_timeout),
            connect_retries: cfg.connect_retries,
            breaker_failures: cfg.breaker_failures,
            breaker_cooldown: cfg.breaker_cooldown,
            service_user: pg.get_user().map(str::to_string),
            service_password: pg
                .get_password()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
            service_database: pg.get_dbname().map(str::to_string),
        })
    }

    /// A short name for messages: the first endpoint (and how many more).
    pub fn describe(&self) -> String {
        match self.endpoints.len() {
            1 => self.endpoints[0].to_string(),
            n => format!("{} (+{} more)", self.endpoints[0], n - 1),
        }
    }
}

/// Where a client's cancel request goes: the upstream connection it is using.
#[derive(Debug, Clone)]
pub struct CancelTarget {
    pub endpoint: Endpoint,
    pub tls: bool,
    pub key: UpstreamKey,
    /// Held (shared) by each cancel on its way to the upstream; the session
    /// takes it exclusively before its connection is reset for another
    /// client, so a late cancel can never hit the next client's query.
    pub in_flight: Arc<tokio::sync::RwLock<()>>,
    /// Raised on every cancel request, for work Helios does itself while the
    /// upstream is idle (asking an LLM), which a cancel sent upstream misses.
    pub requested: Arc<CancelSignal>,
}

impl CancelTarget {
    /// The target of a session with no upstream connection (the embedded
    /// database): a cancel only raises `requested`; the endpoint and key
    /// are never used, as there is no pool to send them through.
    pub fn local() -> CancelTarget {
        CancelTarget {
            endpoint: Endpoint::Unix(PathBuf::new()),
            tls: false,
            key: UpstreamKey { pid: 0, secret: 0 },
            in_flight: Default::default(),
            requested: Default::default(),
        }
    }
}

/// Cancel requests for one session, counted, with a way to wait for the next.
#[derive(Debug, Default)]
pub struct CancelSignal {
    count: std::sync::atomic::AtomicU64,
    notify: tokio::sync::Notify,
    /// Helios is waiting on work of its own with the upstream idle: a cancel
    /// is Helios's alone, and forwarding it could hit the session's next
    /// statement instead.
    absorbing: std::sync::atomic::AtomicBool,
}

/// While alive, cancels are not forwarded upstream (see [`CancelSignal::absorb`]).
pub struct Absorbing<'a>(&'a CancelSignal);

impl Drop for Absorbing<'_> {
    fn drop(&mut self) {
        self.0
            .absorbing
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl CancelSignal {
    /// Mark the upstream idle while Helios works (an LLM call), until the
    /// guard is dropped.
    pub fn absorb(&self) -> Absorbing<'_> {
        self.absorbing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Absorbing(self)
    }

    /// Whether a cancel now is Helios's alone.
    pub fn is_absorbing(&self) -> bool {
        self.absorbing.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn raise(&self) {
        self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Requests so far: pass it to [`CancelSignal::after`].
    pub fn seen(&self) -> u64 {
        self.count.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Resolves once a request arrives after `seen` (at once if one already has).
    pub async fn after(&self, seen: u64) {
        loop {
            let notified = self.notify.notified();
            if self.seen() != seen {
                return;
            }
            notified.await;
        }
    }
}

/// Why Helios could not get a logged-in upstream connection.
#[derive(Debug)]
pub enum ConnectError {
    /// Nothing answered, or the transport failed (before anything was sent,
    /// or TLS).
    Unreachable { upstream: String, reason: String },
    /// The upstream refused the login with an error of its own, passed on as is.
    Rejected {
        frame: Frame,
        fields: ErrorFields,
        /// Whether the upstream had accepted the credentials first (errors
        /// like "database does not exist" come after AuthenticationOk).
        after_auth_ok: bool,
    },
    /// Helios could not answer the upstream's authentication request.
    Auth {
        upstream: String,
        reason: helios_wire::auth::upstream::UpstreamAuthError,
    },
    /// The upstream broke the protocol or hung up during login.
    Broken { upstream: String, reason: String },
    /// The circuit breaker is open: recent connects all failed, so this one
    /// was not tried.
    Unavailable {
        upstream: String,
        failures: u32,
        retry_in: Duration,
    },
    /// Every connection the pool allows for this database and user is in use.
    PoolTimeout {
        database: String,
        user: String,
        max_size: usize,
        waited: Duration,
    },
}

impl ConnectError {
    /// The error the client sees, except for [`ConnectError::Rejected`],
    /// whose upstream frame goes to the client unchanged.
    pub fn to_pg_error(&self) -> PgError {
        match self {
            ConnectError::Unreachable { upstream, reason } => PgError::fatal(
                SqlState::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
                format!("could not connect to upstream {upstream}: {reason}"),
            )
            .with_hint("Check that the upstream PostgreSQL is running and that [upstream] url points at it."),
            ConnectError::Rejected { fields, .. } => PgError::fatal(
                SqlState::new(fields.code.clone()),
                fields.message.clone(),
            ),
            ConnectError::Auth { upstream, reason } => {
                let code = match reason {
                    helios_wire::auth::upstream::UpstreamAuthError::NoPassword { .. } => {
                        SqlState::INVALID_PASSWORD
                    }
                    _ => SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
                };
                PgError::fatal(code, format!("login to upstream {upstream} failed: {reason}"))
            }
            ConnectError::Broken { upstream, reason } => PgError::fatal(
                SqlState::CONNECTION_FAILURE,
                format!("upstream {upstream} failed during login: {reason}"),
            ),
            ConnectError::Unavailable {
                upstream,
                failures,
                retry_in,
            } => {
                // Whole milliseconds read better than nanoseconds.
                let ms = Duration::from_millis(retry_in.as_millis().max(1) as u64);
                PgError::fatal(
                    SqlState::CONNECTION_FAILURE,
                    format!(
                        "upstream {upstream} unavailable, retrying in {}",
                        humantime::format_duration(ms)
                    ),
                )
                .with_detail(format!(
                    "The last {failures} connection attempts failed; until a trial connection succeeds, new sessions fail at once (upstream.breaker_failures)."
                ))
            }
            ConnectError::PoolTimeout {
                database,
                user,
                max_size,
                waited,
            } => PgError::fatal(
                SqlState::TOO_MANY_CONNECTIONS,
                format!(
                    "no upstream connection for database \"{database}\", user \"{user}\": all {max_size} are in use (waited {})",
                    humantime::format_duration(*waited)
                ),
            )
            .with_hint("Raise pool.max_size, or pool.acquire_timeout to wait longer."),
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_pg_error().message)
    }
}

/// Whether the upstream accepts connections now, as `pg_isready` decides:
/// any answer to a login (even a refused password or an unknown database)
/// means it is up; no answer, or "the database system is starting up /
/// shutting down" (57P03), means it is not. Logs in as Helios's own user
/// when the URL names one.
pub async fn probe(target: &UpstreamTarget) -> Result<(), String> {
    let mut params = helios_wire::StartupParams::new();
    let user = target.service_user.as_deref().unwrap_or("helios");
    params.set("user", user);
    params.set(
        "database",
        target.service_database.as_deref().unwrap_or("postgres"),
    );
    params.set("application_name", "helios-readiness");
    match UpstreamConn::connect(target, &params, target.service_password.as_deref()).await {
        Ok(conn) => {
            conn.terminate().await;
            Ok(())
        }
        Err(ConnectError::Rejected { fields, .. }) if fields.code == "57P03" => Err(fields.message),
        Err(ConnectError::Rejected { .. } | ConnectError::Auth { .. }) => Ok(()),
        Err(e) => Err(e.to_pg_error().message),
    }
}
