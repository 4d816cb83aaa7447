//! Accelerated tables: Arrow copies of upstream tables kept in memory.
//!
//! Each is loaded with the engine's parallel scan (one snapshot, N COPY
//! partitions) and reloaded on its interval, and soon after the result
//! cache's invalidation signals a write to it (the table's generation
//! moves). A copy is used only while it is fresh — no write seen since its
//! load began — and only for roles that may read the whole table; otherwise
//! the statement reads the upstream (or, when only `engine.auto` chose the
//! engine, is relayed). All copies together stay under
//! `engine.memory_limit`: a load that would pass it fails and says so.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use futures_util::StreamExt;
use helios_planner::engine::upstream::{ScanOptions, UpstreamRelation, UpstreamTable};
use helios_planner::engine::Engine;
use helios_planner::sql::RelationRef;
use tokio::sync::Notify;

use super::catalog;
use super::workers::{SnapshotSource, WorkerLogin, Workers};
use crate::session::nl::Side;
use crate::upstream::{UpstreamConn, UpstreamTarget};

/// How often a copy checks whether a write made it stale.
const WATCH: Duration = Duration::from_millis(100);
/// Wait before retrying a failed load.
const RETRY: Duration = Duration::from_secs(5);

/// The generation counters a copy was loaded under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    epoch: u64,
    table: u64,
}

/// A loaded copy.
pub struct AccelData {
    pub relation: Arc<UpstreamRelation>,
    pub table: Arc<MemTable>,
    pub rows: u64,
    /// Memory held by its arrays.
    pub bytes: usize,
    pub loaded_at: SystemTime,
    pub load_time: Duration,
    pub partitions: usize,
    stamp: Option<Stamp>,
}

#[derive(Default)]
struct AccelState {
    data: Option<Arc<AccelData>>,
    loading: bool,
    error: Option<String>,
}

/// One accelerated table.
pub struct Accelerated {
    pub database: String,
    pub schema: String,
    pub name: String,
    pub refresh: Option<Duration>,
    login: WorkerLogin,
    state: Mutex<AccelState>,
    wake: Notify,
    dropped: AtomicBool,
}

/// A row of `SHOW HELIOS ACCELERATIONS`.
pub struct AccelStatus {
    pub table: String,
    pub database: String,
    pub state: String,
    pub rows: Option<i64>,
    pub bytes: Option<i64>,
    pub partitions: Option<i64>,
    pub refresh: Option<String>,
    pub last_refresh: Option<SystemTime>,
    pub load_ms: Option<f64>,
    pub staleness_s: Option<f64>,
}

/// What loading needs from the engine.
pub struct Deps {
    pub target: Arc<UpstreamTarget>,
    pub workers: Arc<Workers>,
    /// The result cache, whose generations say when a table was written.
    pub cache: Option<Arc<crate::cache::CacheService>>,
    pub options: ScanOptions,
}

/// Every accelerated table.
pub struct Accelerations {
    entries: RwLock<Vec<Arc<Accelerated>>>,
    limit: usize,
    used: AtomicUsize,
    deps: Arc<Deps>,
}

impl Accelerations {
    pub fn new(limit: usize, deps: Arc<Deps>) -> Arc<Self> {
        Arc::new(Accelerations {
            entries: RwLock::new(Vec::new()),
            limit,
            used: AtomicUsize::new(0),
            deps,
        })
    }

    /// Whether writes can be seen: the result cache's invalidation is the
    /// only signal, and a copy that could go stale unseen is never kept.
    pub fn sees_writes(&self) -> bool {
        self.deps.cache.is_some()
    }

    /// No table is accelerated.
    pub fn is_empty(&self) -> bool {
        self.entries.read().expect("accelerations").is_empty()
    }

    /// Memory the copies hold now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Start keeping `schema.name` of `database` in memory (loaded on `rt`
    /// as `login`); `false` if it already is (its interval is updated).
    pub fn add(
        self: &Arc<Self>,
        rt: &tokio::runtime::Handle,
        database: &str,
        schema: &str,
        name: &str,
        refresh: Option<Duration>,
        login: WorkerLogin,
    ) -> bool {
        let mut entries = self.entries.write().expect("accelerations");
        if entries
            .iter()
            .any(|e| e.database == database && e.schema == schema && e.name == name)
        {
            return false;
        }
        let entry = Arc::new(Accelerated {
            database: database.to_string(),
            schema: schema.to_string(),
            name: name.to_string(),
            refresh,
            login,
            state: Mutex::new(AccelState {
                loading: true,
                ..Default::default()
            }),
            wake: Notify::new(),
            dropped: AtomicBool::new(false),
        });
        entries.push(entry.clone());
        let this = self.clone();
        rt.spawn(async move { this.keep_fresh(entry).await });
        true
    }

    /// Stop keeping a table; `false` if it was not kept.
    pub fn remove(&self, database: &str, schema: &str, name: &str) -> bool {
        let mut entries = self.entries.write().expect("accelerations");
        let Some(i) = entries
            .iter()
            .position(|e| e.database == database && e.schema == schema && e.name == name)
        else {
            return false;
        };
        let e = entries.remove(i);
        e.dropped.store(true, Ordering::SeqCst);
        e.wake.notify_one();
        if let Some(d) = e.state.lock().expect("acceleration").data.take() {
            self.used.fetch_sub(d.bytes, Ordering::Relaxed);
            drop(d);
            release_freed_memory();
        }
        true
    }

    /// The entry for a name a statement wrote (unqualified: schema `public`).
    pub fn find(&self, database: &str, r: &RelationRef) -> Option<Arc<Accelerated>> {
        let schema = r.schema.as_deref().unwrap_or("public");
        self.entries
            .read()
            .expect("accelerations")
            .iter()
            .find(|e| e.database == database && e.schema == schema && e.name == r.name)
            .cloned()
    }

    /// The copy of the relation the upstream resolved, if one is loaded and fresh.
    pub fn fresh(&self, database: &str, rel: &UpstreamRelation) -> Option<Arc<AccelData>> {
        let entries = self.entries.read().expect("accelerations");
        let e = entries
            .iter()
            .find(|e| e.database == database && e.schema == rel.schema && e.name == rel.name)?;
        let data = e.state.lock().expect("acceleration").data.clone()?;
        (data.relation.oid == rel.oid && self.stamp(e) == data.stamp).then_some(data)
    }

    pub fn status(&self) -> Vec<AccelStatus> {
        let entries = self.entries.read().expect("accelerations");
        entries
            .iter()
            .map(|e| {
                let st = e.state.lock().expect("acceleration");
                let data = st.data.clone();
                let fresh = data.as_ref().is_some_and(|d| self.stamp(e) == d.stamp);
                let state = match (&st.error, &data, st.loading) {
                    (Some(err), _, false) => format!("failed: {err}"),
                    (_, None, _) => "loading".to_string(),
                    (_, Some(_), true) => "refreshing".to_string(),
                    (_, Some(_), false) if fresh => "ready".to_string(),
                    (_, Some(_), false) => "stale".to_string(),
                };
                AccelStatus {
                    table: format!("{}.{}", e.schema, e.name),
                    database: e.database.clone(),
                    state,
                    rows: data.as_ref().map(|d| d.rows as i64),
                    bytes: data.as_ref().map(|d| d.bytes as i64),
                    partitions: data.as_ref().map(|d| d.partitions as i64),
                    refresh: e.refresh.map(|r| humantime::format_duration(r).to_string()),
                    last_refresh: data.as_ref().map(|d| d.loaded_at),
                    load_ms: data.as_ref().map(|d| d.load_time.as_secs_f64() * 1000.0),
                    staleness_s: data
                        .as_ref()
                        .map(|d| d.loaded_at.elapsed().unwrap_or_default().as_secs_f64()),
                }
            })
            .collect()
    }

    /// Reload now (`REFRESH HELIOS ACCELERATION`); `false` if not kept.
    pub fn refresh_now(&self, database: &str, schema: &str, name: &str) -> bool {
        let entries = self.entries.read().expect("accelerations");
        match entries
            .iter()
            .find(|e| e.database == database && e.schema == schema && e.name == name)
        {
            Some(e) => {
                e.wake.notify_one();
                true
            }
            None => false,
        }
    }

    fn stamp(&self, e: &Accelerated) -> Option<Stamp> {
        let gens = self
            .deps
            .cache
            .as_ref()?
            .store
            .generations
            .database(&e.database);
        Some(Stamp {
            epoch: gens.epoch(),
            table: gens.table(&e.name).load(Ordering::Acquire),
        })
    }

    /// Load, then reload on the interval, on a write, or when asked.
    async fn keep_fresh(self: Arc<Self>, e: Arc<Accelerated>) {
        loop {
            if e.dropped.load(Ordering::SeqCst) {
                return;
            }
            e.state.lock().expect("acceleration").loading = true;
            let started = Instant::now();
            let result = self.load(&e).await;
            let failed = result.is_err();
            {
                let mut st = e.state.lock().expect("acceleration");
                st.loading = false;
                match result {
                    Ok(data) => {
                        tracing::info!(
                            table = %format!("{}.{}", e.schema, e.name),
                            rows = data.rows,
                            bytes = data.bytes,
                            ms = started.elapsed().as_millis() as u64,
                            "accelerated table loaded"
                        );
                        st.error = None;
                        if e.dropped.load(Ordering::SeqCst) {
                            self.used.fetch_sub(data.bytes, Ordering::Relaxed);
                            return;
                        }
                        if let Some(old) = st.data.replace(Arc::new(data)) {
                            self.used.fetch_sub(old.bytes, Ordering::Relaxed);
                            // Freed once the last statement reading it ends.
                            drop(old);
                            release_freed_memory();
                        }
                    }
                    Err(err) => {
                        tracing::warn!(table = %format!("{}.{}", e.schema, e.name), error = %err, "loading an accelerated table failed");
                        st.error = Some(err);
                    }
                }
            }
            let loaded_at = Instant::now();
            loop {
                tokio::select! {
                    _ = e.wake.notified() => break,
                    _ = tokio::time::sleep(WATCH) => {}
                }
                if e.dropped.load(Ordering::SeqCst) {
                    return;
                }
                let due = if failed {
                    loaded_at.elapsed() >= RETRY
                } else {
                    e.refresh.is_some_and(|r| loaded_at.elapsed() >= r)
                };
                let data = e.state.lock().expect("acceleration").data.clone();
                let stale = data.is_some_and(|d| d.stamp != self.stamp(&e));
                if due || (stale && !failed) {
                    break;
                }
            }
        }
    }

    /// One load: snapshot and catalog on a connection of its own, the rows
    /// by the parallel scan, counted against the memory limit as they come.
    async fn load(&self, e: &Accelerated) -> Result<AccelData, String> {
        let started = Instant::now();
        let stamp = self.stamp(e);
        let deps = &self.deps;
        let mut coordinator =
            UpstreamConn::connect(&deps.target, &e.login.params, e.login.password.as_deref())
                .await
                .map_err(|err| err.to_string())?;
        let mut unsolicited = bytes::BytesMut::new();
        let mut side = Side::new(&mut coordinator, &mut unsolicited);
        let begun = side
            .query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(|err| err.to_string())?;
        begun.map_err(|err| err.message)?;
        let snapshot = side
            .query("SELECT pg_export_snapshot()")
            .await
            .map_err(|err| err.to_string())?
            .map_err(|err| err.message)?;
        let snapshot = snapshot
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .ok_or("no snapshot")?;
        let reference = RelationRef {
            schema: Some(e.schema.clone()),
            name: e.name.clone(),
        };
        let refs = [reference];
        let rows = side
            .query(&catalog::relations_sql(&refs))
            .await
            .map_err(|err| err.to_string())?
            .map_err(|err| err.message)?;
        let resolved = catalog::parse_relations(&refs, &rows)
            .and_then(|mut r| r.pop())
            .ok_or_else(|| format!("relation \"{}.{}\" does not exist", e.schema, e.name))?;

        if !resolved.readable_in_full {
            // A copy others may read must hold every row.
            return Err(format!(
                "{} cannot read all of \"{}.{}\" (privileges or row level security)",
                e.login.params.user().unwrap_or("the loading role"),
                e.schema,
                e.name
            ));
        }
        if resolved.temporary {
            return Err("a temporary table cannot be accelerated".into());
        }
        let source = SnapshotSource {
            workers: deps.workers.clone(),
            login: Arc::new(e.login.clone()),
            snapshot: Some(snapshot),
            settings: String::new(),
        };
        let relation = resolved.relation.clone();
        let table = UpstreamTable::new(relation.clone(), Arc::new(source), deps.options);
        let engine = Engine::new(&e.database);
        let ctx = engine.context();
        let state = ctx.state();
        let plan = datafusion::datasource::TableProvider::scan(&table, &state, None, &[], None)
            .await
            .map_err(|err| err.to_string())?;
        let partitions = plan.properties().partitioning.partition_count();
        // Room for the new copy next to the old one, if there is; else the
        // old one goes first (statements read the upstream meanwhile), so
        // that memory never passes the limit.
        let old_bytes = e
            .state
            .lock()
            .expect("acceleration")
            .data
            .as_ref()
            .map_or(0, |d| d.bytes);
        if old_bytes > 0 && self.limit.saturating_sub(self.used()) < old_bytes {
            if let Some(old) = e.state.lock().expect("acceleration").data.take() {
                self.used.fetch_sub(old.bytes, Ordering::Relaxed);
                drop(old);
                release_freed_memory();
            }
        }
        let budget = self.limit.saturating_sub(self.used());
        let taken = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for p in 0..partitions {
            let stream = plan
                .execute(p, ctx.task_ctx())
                .map_err(|err| err.to_string())?;
            let taken = taken.clone();
            tasks.push(tokio::spawn(collect_partition(stream, taken, budget)));
        }
        let mut batches = Vec::with_capacity(partitions);
        let mut failure = None;
        for t in tasks {
            match t.await {
                Ok(Ok(b)) => batches.push(b),
                Ok(Err(err)) => failure = failure.or(Some(err)),
                Err(err) => failure = failure.or(Some(err.to_string())),
            }
        }
        let _ = side.query("COMMIT").await;
        if let Some(err) = failure {
            return Err(err);
        }
        let bytes = taken.load(Ordering::Relaxed);
        self.used.fetch_add(bytes, Ordering::Relaxed);
        let rows = batches.iter().flatten().map(|b| b.num_rows() as u64).sum();
        let mem =
            MemTable::try_new(relation.arrow_schema(), batches).map_err(|err| err.to_string())?;
        Ok(AccelData {
            relation,
            table: Arc::new(mem),
            rows,
            bytes,
            loaded_at: SystemTime::now(),
            load_time: started.elapsed(),
            partitions,
            stamp,
        })
    }
}

/// A partition's batches, trimmed to their size, counted against `budget`.
async fn collect_partition(
    mut stream: datafusion::execution::SendableRecordBatchStream,
    taken: Arc<AtomicUsize>,
    budget: usize,
) -> Result<Vec<RecordBatch>, String> {
    let mut out = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = shrink(batch.map_err(|e| helios_planner::engine::map_error(&e).message)?);
        let size = batch.get_array_memory_size();
        let now = taken.fetch_add(size, Ordering::Relaxed) + size;
        if now > budget {
            return Err(format!(
                "it needs more than the {} left of engine.memory_limit",
                humansize(budget)
            ));
        }
        out.push(batch);
    }
    Ok(out)
}

/// A batch whose buffers hold no spare capacity (builders over-allocate).
fn shrink(batch: RecordBatch) -> RecordBatch {
    let (schema, columns, rows) = batch.into_parts();
    let columns = columns
        .into_iter()
        .map(|mut c| {
            if let Some(a) = Arc::get_mut(&mut c) {
                a.shrink_to_fit();
            }
            c
        })
        .collect();
    RecordBatch::try_new_with_options(
        schema,
        columns,
        &datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows)),
    )
    .expect("the same columns")
}

/// Give memory freed by a dropped copy back to the operating system.
/// glibc's allocator keeps freed heap pages for reuse, so without this a
/// refreshed or dropped copy would still count in Helios's RSS (measured:
/// 2.4× the Arrow size after a refresh of a 1 GB copy).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::os::raw::c_int;
        }
        // SAFETY: malloc_trim only returns free pages of glibc's heap to the
        // kernel; it takes no pointers and is safe to call at any time.
        unsafe {
            malloc_trim(0);
        }
    }
}

pub fn humansize(n: usize) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} kB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}
