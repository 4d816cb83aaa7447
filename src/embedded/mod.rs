//! The embedded database: what Helios serves when no upstream is
//! configured, so that the README's first command gives a new user
//! something real to query.
//!
//! - [`commands`]: statements answered without DataFusion (transactions,
//!   `SET` / `SHOW` / `RESET`, `DISCARD`, `DEALLOCATE`).
//! - [`settings`]: the session's settings and the ones that change how
//!   values are written.
//! - [`session`]: the simple and extended query protocol over the engine.
//! - [`execute`]: queries run on the engine's multi-threaded runtime, rows
//!   streamed back through a bounded channel.
//! - [`params`]: binary-format parameters.
//!
//! The data and the SQL engine are `helios_planner::engine` (a generated
//! retail dataset in DataFusion); the PostgreSQL catalog that psql and
//! drivers read is `helios_planner::pg_compat`; Arrow values become
//! PostgreSQL's text and binary forms in `helios_wire::arrow`.

pub mod commands;
pub mod execute;
pub mod features;
pub mod params;
pub mod session;
pub mod settings;

use std::sync::Arc;

use bytes::BytesMut;
use helios_planner::engine::{Engine, EngineError, Prepared};
use helios_wire::{messages, ClientKey, ClientStream, StartupParams};
use tokio::io::AsyncWriteExt;

use execute::Running;
use settings::Settings;

/// The embedded database every session shares.
pub struct EmbeddedDb {
    engine: Arc<Engine>,
    /// DataFusion's runtime: one worker per core.
    runtime: tokio::runtime::Runtime,
    /// The database name `\l` and `current_database()` show.
    pub database: String,
    /// The demo tables as a catalog, for `ADVISE` and natural language.
    pub catalog: Arc<helios_planner::Catalog>,
    /// Per-shape statistics of the statements run (`SHOW HELIOS QUERIES`).
    pub log: helios_advisor::workload::QueryLog,
}

impl EmbeddedDb {
    /// Generate the demo data and start the engine's runtime.
    pub fn demo(database: &str, files: &[crate::config::FileTable]) -> anyhow::Result<EmbeddedDb> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores)
            .thread_name("helios-engine")
            .enable_all()
            .build()?;
        let started = std::time::Instant::now();
        let engine = Engine::demo(database);
        // The configured files, next to the demo tables (their schemas are
        // inferred now, so a bad file stops Helios at startup).
        for t in files {
            let path = t.path.to_string_lossy();
            let registered = runtime.block_on(async {
                match t.format() {
                    Some(crate::config::FileFormat::Csv) => {
                        engine.register_csv(&t.name, &path).await
                    }
                    Some(crate::config::FileFormat::Json) => {
                        engine.register_ndjson(&t.name, &path).await
                    }
                    None => unreachable!("validated with the configuration"),
                }
            });
            registered.map_err(|e| {
                anyhow::anyhow!("engine.tables \"{}\" ({}): {}", t.name, path, e.message)
            })?;
        }
        {
            let state = engine.context().state_ref();
            let mut state = state.write();
            let options = state.config_mut().options_mut();
            // timestamptz values (`now()`, `TIMESTAMPTZ '...'`) carry a
            // zone, as PostgreSQL's do; sessions write them in theirs.
            options.execution.time_zone = Some("+00:00".to_string());
            // pg_compat's information_schema names types as PostgreSQL
            // does; DataFusion's would say `Int32`, `Utf8`.
            options.catalog.information_schema = false;
        }
        // What psql and drivers read: pg_catalog over the demo tables. The
        // catalog is shared by every session, so its one role is `helios`
        // (the user the README connects as).
        helios_planner::pg_compat::register(engine.context(), database, "helios")
            .map_err(|e| anyhow::anyhow!("the demo database's catalog: {e}"))?;
        tracing::info!(took = ?started.elapsed(), "demo database generated");
        Ok(EmbeddedDb {
            engine: Arc::new(engine),
            catalog: Arc::new(helios_planner::engine::demo_catalog(database)),
            log: Default::default(),
            runtime,
            database: database.to_string(),
        })
    }

    /// Plan one statement.
    pub async fn prepare(&self, sql: &str) -> Result<Prepared, EngineError> {
        let sql = helios_planner::pg_compat::rewrite(sql);
        // The rewrite also names result columns as PostgreSQL does
        // (`count`, `?column?`), where DataFusion would say `count(*)`.
        self.engine.prepare(&sql).await
    }

    /// Rows Helios computed, as a statement.
    pub fn prepared_rows(
        &self,
        sql: &str,
        batch: datafusion::arrow::record_batch::RecordBatch,
    ) -> Result<Prepared, EngineError> {
        self.engine.prepared_rows(sql, batch)
    }

    /// Start running a planned statement with these parameters.
    pub async fn start(
        &self,
        prepared: &Arc<Prepared>,
        params: &[Option<String>],
    ) -> Result<Running, EngineError> {
        let engine = self.engine.clone();
        let prepared = prepared.clone();
        let params = params.to_vec();
        Ok(Running::spawn(self.runtime.handle(), async move {
            engine.execute(&prepared, &params).await
        }))
    }
}

impl Drop for EmbeddedDb {
    fn drop(&mut self) {
        // A runtime may not be dropped from inside another's async context.
        let rt = std::mem::replace(
            &mut self.runtime,
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("an empty runtime"),
        );
        rt.shutdown_background();
    }
}

/// Who a session serves and what it may take.
pub struct Client<'a> {
    pub user: &'a str,
    pub params: &'a StartupParams,
    /// The cancel key the client is told.
    pub key: ClientKey,
    pub max_message: usize,
    /// Raised by the client's cancel requests.
    pub cancel: std::sync::Arc<crate::upstream::CancelSignal>,
    /// Whether Helios is shutting down (the session then ends when idle).
    pub phase: Option<tokio::sync::watch::Receiver<crate::ops::Phase>>,
    /// Where each statement is reported (metrics, stats, audit).
    pub obs: Option<std::sync::Arc<crate::ops::SessionObserver>>,
}

/// Serve one authenticated client: the greeting, then its queries.
pub async fn serve(
    db: &EmbeddedDb,
    stream: &mut ClientStream,
    client: Client<'_>,
    features: features::Features<'_>,
) -> std::io::Result<()> {
    let Client {
        user,
        params,
        key,
        max_message,
        cancel,
        phase,
        obs,
    } = client;
    let startup: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let settings = Settings::new(user, &startup);
    let mut out = BytesMut::with_capacity(512);
    messages::authentication_ok(&mut out);
    for (name, value) in settings.reported() {
        messages::parameter_status(name, &value, &mut out);
    }
    messages::backend_key_data(key, &mut out);
    messages::ready_for_query(helios_wire::TransactionStatus::Idle, &mut out);
    stream.write_all(&out).await?;
    stream.flush().await?;
    session::Session::new(db, stream, settings, max_message, cancel, features)
        .with_phase(phase)
        .with_observer(obs)
        .run()
        .await
}
