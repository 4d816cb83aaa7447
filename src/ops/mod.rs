//! Operations: what an operator sees of and does to a running Helios.
//!
//! - [`clients`]: every client connection open now.
//! - [`lifecycle`]: serving, paused (`HELIOS PAUSE`) or draining (SIGTERM).
//! - [`observe`]: what happens to each answered statement (metrics, the
//!   per-database counters, the slow-query and audit logs).
//! - [`audit`]: the audit log file.
//! - [`reload`]: which settings a reload can change, and what changed.
//! - [`metrics`]: the Prometheus recorder and the gauges read at scrape time.
//!
//! The admin HTTP endpoint is in `crate::admin`; the SQL commands
//! (`SHOW HELIOS STATS`, `HELIOS RELOAD`, ...) in `session::admin`.

pub mod audit;
pub mod clients;
pub mod commands;
pub mod lifecycle;
pub mod metrics;
pub mod observe;
pub mod reload;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

pub use clients::{ClientEntry, ClientRegistry, ClientState};
pub use lifecycle::{Lifecycle, Phase};
pub use observe::{QueryRecord, Route, SessionObserver};

use crate::config::Config;

/// The outcome of the last reload, for readiness and `SHOW HELIOS CONFIG`.
#[derive(Debug, Clone)]
pub struct ReloadStatus {
    pub at: SystemTime,
    /// `None` when it applied; else why the file was rejected.
    pub error: Option<String>,
}

/// Operations state shared by every session.
pub struct Ops {
    pub clients: Arc<ClientRegistry>,
    pub lifecycle: Lifecycle,
    pub stats: observe::DbStatsTable,
    pub audit: Option<audit::AuditLog>,
    /// `log.slow_query_threshold` in microseconds (0: off); reloadable.
    slow_query_us: AtomicU64,
    pub started: Instant,
    pub started_at: SystemTime,
    /// Listeners are bound and sessions served (`/health/startup`).
    pub serving: std::sync::atomic::AtomicBool,
    pub last_reload: Mutex<Option<ReloadStatus>>,
}

impl Ops {
    pub fn new(config: &Config) -> anyhow::Result<Arc<Ops>> {
        let audit = if config.audit.enabled {
            Some(audit::AuditLog::open(&config.audit)?)
        } else {
            None
        };
        Ok(Arc::new(Ops {
            clients: Arc::new(ClientRegistry::default()),
            lifecycle: Lifecycle::default(),
            stats: observe::DbStatsTable::default(),
            audit,
            slow_query_us: AtomicU64::new(config.log.slow_query_threshold.as_micros() as u64),
            started: Instant::now(),
            started_at: SystemTime::now(),
            serving: Default::default(),
            last_reload: Mutex::new(None),
        }))
    }

    pub fn slow_query_threshold(&self) -> Duration {
        Duration::from_micros(self.slow_query_us.load(Ordering::Relaxed))
    }

    pub fn set_slow_query_threshold(&self, d: Duration) {
        self.slow_query_us
            .store(d.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn is_serving(&self) -> bool {
        self.serving.load(Ordering::Acquire)
    }
}

/// Helios's version line (`SHOW HELIOS VERSION`, `/admin/config`).
pub fn version() -> String {
    format!("Helios {}", env!("CARGO_PKG_VERSION"))
}
