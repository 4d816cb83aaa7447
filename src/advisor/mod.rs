//! The query advisor, server-wide: the per-statement counters every session
//! feeds ([`QueryLog`]), catalog snapshots and their static analyzers per
//! database and role, and the options from `[advisor]`.
//!
//! Each session's part (the commands, notices in `helios.advise` mode,
//! timing what it relays) is in `session::advise` and `session::stats`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use helios_advisor::rules::StaticAnalyzer;
use helios_advisor::workload::QueryLog;
use helios_advisor::Options;
use helios_planner::catalog::{self, Catalog, LoadOptions, TextQuery};

use crate::config::AdvisorConfig;

/// A catalog snapshot with the analyzer built over it.
#[derive(Clone)]
pub struct Snapshot {
    pub catalog: Arc<Catalog>,
    pub analyzer: Arc<StaticAnalyzer>,
    at: Instant,
}

pub struct AdvisorService {
    pub config: AdvisorConfig,
    pub options: Options,
    /// What every statement shape cost (`SHOW HELIOS QUERIES`).
    pub log: Arc<QueryLog>,
    snapshots: Mutex<HashMap<(String, String), Snapshot>>,
    /// Statement texts' fingerprints (bounded by bytes).
    fingerprints: moka::sync::Cache<Arc<str>, u64>,
}

/// Texts remembered with their fingerprint, by bytes.
const FINGERPRINT_BYTES: u64 = 16 << 20;

/// The advisor's options from `[advisor]`.
pub fn options(config: &AdvisorConfig) -> Options {
    Options {
        large_table_rows: config.large_table_rows,
        min_saving_pct: config.min_saving_pct,
        max_index_columns: config.max_index_columns,
        workload_top: config.workload_top,
        ..Options::default()
    }
}

impl AdvisorService {
    /// `None` when `advisor.enabled = false`.
    pub fn new(config: &AdvisorConfig) -> Option<Arc<AdvisorService>> {
        if !config.enabled {
            return None;
        }
        let options = options(config);
        Some(Arc::new(AdvisorService {
            config: config.clone(),
            options,
            log: Arc::new(QueryLog::default()),
            snapshots: Mutex::new(HashMap::new()),
            fingerprints: moka::sync::Cache::builder()
                .max_capacity(FINGERPRINT_BYTES)
                .weigher(|k: &Arc<str>, _| (k.len() + 64).min(u32::MAX as usize) as u32)
                .build(),
        }))
    }

    /// A statement text's fingerprint (remembered).
    pub fn fingerprint(&self, text: &str) -> u64 {
        if let Some(fp) = self.fingerprints.get(text) {
            return fp;
        }
        let fp = helios_planner::cacheable::fingerprint(text);
        self.fingerprints.insert(Arc::from(text), fp);
        fp
    }

    /// The snapshot for this database and role, unless older than
    /// `advisor.catalog_refresh`.
    pub fn cached(&self, database: &str, role: &str) -> Option<Snapshot> {
        let snapshots = self.snapshots.lock().expect("snapshots");
        let s = snapshots.get(&(database.to_string(), role.to_string()))?;
        (s.at.elapsed() < self.config.catalog_refresh).then(|| s.clone())
    }

    /// Read the catalog through `q` (the session's connection, as its role).
    pub async fn load<Q: TextQuery>(
        &self,
        database: &str,
        role: &str,
        q: &mut Q,
    ) -> Result<Snapshot, String> {
        let started = Instant::now();
        let catalog = Arc::new(catalog::load(q, &LoadOptions::default()).await?);
        let analyzer = Arc::new(StaticAnalyzer::new(&catalog));
        tracing::debug!(
            tables = catalog.tables.len(),
            ms = started.elapsed().as_millis() as u64,
            "advisor: catalog loaded"
        );
        let s = Snapshot {
            catalog,
            analyzer,
            at: Instant::now(),
        };
        self.snapshots
            .lock()
            .expect("snapshots")
            .insert((database.to_string(), role.to_string()), s.clone());
        Ok(s)
    }
}
