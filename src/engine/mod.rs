//! DataFusion over the upstream: what runs a statement the session routed
//! to the engine.
//!
//! - [`workers`]: the scan connections (logged in as the client) and the
//!   COPY each partition runs in the session's snapshot.
//! - [`catalog`]: the one catalog query that describes the tables a
//!   statement names.
//! - [`accelerate`]: upstream tables kept in memory as Arrow.
//! - [`route`]: which statements go to the engine.
//!
//! The session side (hints, `SET helios.engine`, the snapshot on the
//! client's connection, streaming rows back) is `session::engine`; the
//! TableProvider and the binary COPY decoder are
//! `helios_planner::engine::upstream`.

pub mod accelerate;
pub mod catalog;
pub mod route;
pub mod workers;

use std::sync::Arc;

use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::TableReference;
use datafusion::datasource::TableProvider;
use helios_planner::engine::upstream::{ScanOptions, UpstreamTable};
use helios_planner::engine::{Engine, EngineError};

use crate::config::{EngineConfig, FileFormat};
use crate::upstream::UpstreamTarget;
use accelerate::{Accelerations, Deps};
use catalog::Resolved;
use workers::{SnapshotSource, WorkerLogin, Workers};

/// Why accelerated tables need the result cache.
pub const NEEDS_CACHE: &str = "accelerated tables need the result cache's write tracking, which \
     makes a copy stale the moment a write to its table is seen: set cache.mode = \"explicit\" \
     (the default; it caches nothing unasked) or \"auto\"";

/// The engine over the upstream, shared by sessions.
pub struct EngineService {
    pub config: EngineConfig,
    runtime: tokio::runtime::Runtime,
    pub workers: Arc<Workers>,
    pub accelerations: Arc<Accelerations>,
    /// `[[engine.tables]]`, loaded once (their schemas inferred at startup).
    files: Vec<(String, Arc<dyn TableProvider>)>,
    target: Arc<UpstreamTarget>,
}

/// How a statement's tables were registered.
#[derive(Debug, Default)]
pub struct Registered {
    /// Tables read from an accelerated copy.
    pub accelerated: Vec<String>,
    /// Tables read from the upstream by parallel scan.
    pub scanned: Vec<String>,
    /// Local file tables.
    pub files: Vec<String>,
}

impl EngineService {
    pub fn new(
        config: &EngineConfig,
        target: Arc<UpstreamTarget>,
        cache: Option<Arc<crate::cache::CacheService>>,
    ) -> anyhow::Result<Arc<EngineService>> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores)
            .thread_name("helios-engine")
            .enable_all()
            .build()?;
        let workers = Arc::new(Workers::new(target.clone(), config.max_connections));
        let deps = Arc::new(Deps {
            target: target.clone(),
            workers: workers.clone(),
            cache,
            options: scan_options(config, None),
        });
        let accelerations = Accelerations::new(config.memory_limit, deps);
        // Local files: registered once in a scratch engine, then shared.
        let scratch = Engine::new("files");
        let mut files = Vec::new();
        for t in &config.tables {
            let path = t.path.to_string_lossy();
            let registered = runtime.block_on(async {
                match t.format() {
                    Some(FileFormat::Csv) => scratch.register_csv(&t.name, &path).await,
                    Some(FileFormat::Json) => scratch.register_ndjson(&t.name, &path).await,
                    None => unreachable!("validated with the configuration"),
                }
            });
            registered.map_err(|e| {
                anyhow::anyhow!("engine.tables \"{}\" ({}): {}", t.name, path, e.message)
            })?;
            let provider = runtime
                .block_on(scratch.context().table_provider(t.name.as_str()))
                .map_err(|e| anyhow::anyhow!("engine.tables \"{}\": {e}", t.name))?;
            files.push((t.name.clone(), provider));
        }
        let reaped = Arc::downgrade(&workers);
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(15));
            loop {
                tick.tick().await;
                match reaped.upgrade() {
                    Some(w) => w.reap(),
                    None => return,
                }
            }
        });
        let service = Arc::new(EngineService {
            config: config.clone(),
            runtime,
            workers,
            accelerations,
            files,
            target: target.clone(),
        });
        if !config.accelerate.is_empty() && !service.accelerations.sees_writes() {
            anyhow::bail!("{NEEDS_CACHE}");
        }
        // Configured accelerations load as Helios's own login (the URL's user).
        for a in &config.accelerate {
            let (schema, name) = split_table(&a.table);
            let database = a
                .database
                .clone()
                .or_else(|| target.service_database.clone())
                .or_else(|| target.service_user.clone())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "engine.accelerate \"{}\": give database = \"...\" or a database in [upstream] url",
                        a.table
                    )
                })?;
            let user = target.service_user.clone().ok_or_else(|| {
                anyhow::anyhow!(
                    "engine.accelerate \"{}\": [upstream] url needs a user to load accelerated tables as",
                    a.table
                )
            })?;
            let mut params = helios_wire::StartupParams::new();
            params.set("user", user);
            params.set("database", database.clone());
            let login = WorkerLogin::new(params, target.service_password.clone());
            service.accelerations.add(
                service.runtime.handle(),
                &database,
                &schema,
                &name,
                a.refresh,
                login,
            );
        }
        Ok(service)
    }

    /// The engine's runtime (DataFusion's partitions run on its workers).
    pub fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime.handle()
    }

    pub fn target(&self) -> &Arc<UpstreamTarget> {
        &self.target
    }

    /// The name of a configured local file table, if `r` names one.
    pub fn is_file_table(&self, r: &helios_planner::sql::RelationRef) -> bool {
        r.schema.is_none() && self.files.iter().any(|(n, _)| *n == r.name)
    }

    /// A DataFusion session for one statement, with its tables registered
    /// under the names the statement uses: local files first (by bare
    /// name), then accelerated copies where fresh and the role may read
    /// them in full, else parallel scans through `source`.
    pub fn context(
        &self,
        database: &str,
        resolved: &[Resolved],
        source: &SnapshotSource,
        options: ScanOptions,
    ) -> Result<(Engine, Registered), EngineError> {
        let engine = Engine::new(database);
        let ctx = engine.context();
        let mut done = Registered::default();
        for (name, provider) in &self.files {
            ctx.register_table(TableReference::bare(name.as_str()), provider.clone())
                .map_err(EngineError::from)?;
            done.files.push(name.clone());
        }
        for r in resolved {
            if r.reference.schema.is_none()
                && self.files.iter().any(|(n, _)| *n == r.reference.name)
            {
                continue;
            }
            let reference = match &r.reference.schema {
                Some(s) => {
                    let catalog = ctx.catalog(database).expect("the engine's catalog exists");
                    if catalog.schema(s).is_none() {
                        catalog
                            .register_schema(s, Arc::new(MemorySchemaProvider::new()))
                            .map_err(EngineError::from)?;
                    }
                    TableReference::partial(s.as_str(), r.reference.name.as_str())
                }
                None => TableReference::bare(r.reference.name.as_str()),
            };
            let provider: Arc<dyn TableProvider> = match self
                .accelerations
                .fresh(database, &r.relation)
                .filter(|_| r.readable_in_full)
            {
                Some(data) => {
                    done.accelerated.push(r.relation.qualified());
                    data.table.clone()
                }
                None => {
                    done.scanned.push(r.relation.qualified());
                    Arc::new(UpstreamTable::new(
                        r.relation.clone(),
                        Arc::new(source.clone()),
                        options,
                    ))
                }
            };
            // The same name twice (a.t and t both in public) registers once.
            if ctx.table_exist(reference.clone()).unwrap_or(false) {
                continue;
            }
            ctx.register_table(reference, provider)
                .map_err(EngineError::from)?;
        }
        Ok((engine, done))
    }
}

/// Scan options from the config, with a session's partition count.
pub fn scan_options(config: &EngineConfig, partitions: Option<usize>) -> ScanOptions {
    ScanOptions {
        partitions: partitions.unwrap_or_else(|| config.partitions()).max(1),
        min_pages_per_partition: config.min_partition_pages,
    }
}

/// `schema.name` or `name` (schema `public`), folded as unquoted identifiers.
pub fn split_table(t: &str) -> (String, String) {
    let fold = |s: &str| {
        let s = s.trim();
        match s.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
            Some(q) => q.replace("\"\"", "\""),
            None => s.to_ascii_lowercase(),
        }
    };
    match t.split_once('.') {
        Some((s, n)) => (fold(s), fold(n)),
        None => ("public".to_string(), fold(t)),
    }
}
