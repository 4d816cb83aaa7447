//! Upstream connections for the engine's parallel scans, and the COPY each
//! partition runs on one ([`SnapshotSource`]).
//!
//! A scan partition logs in as the client (the same startup parameters and
//! password as its session's connection, so privileges and row-level
//! security apply as they would to the client), imports the snapshot the
//! session exported, runs its `COPY ... TO STDOUT (FORMAT binary)`, and
//! hands the connection back for the next partition. A partition that stops
//! early (a LIMIT was reached, the client went away) closes its connection
//! rather than drain the rest of the COPY.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use datafusion::common::DataFusionError;
use helios_planner::engine::upstream::{CopySource, CopyStream, UpstreamError};
use helios_wire::frame::{tag, HEADER_LEN};
use helios_wire::{messages, ErrorFields, StartupParams, TransactionStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::upstream::{UpstreamConn, UpstreamTarget};

/// Idle scan connections are closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes read from the socket at a time while a COPY streams.
const READ_CHUNK: usize = 256 * 1024;

/// Who a scan logs in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerLogin {
    pub params: StartupParams,
    pub password: Option<String>,
}

impl WorkerLogin {
    /// The client's login, marked as the engine's in `pg_stat_activity`.
    pub fn new(mut params: StartupParams, password: Option<String>) -> Self {
        params.set("application_name", "helios-engine");
        // Helios decodes text as UTF-8; the server converts if it must.
        params.set("client_encoding", "UTF8");
        WorkerLogin { params, password }
    }
}

struct Idle {
    conn: UpstreamConn,
    since: Instant,
}

/// The engine's upstream connections, bounded by `engine.max_connections`.
pub struct Workers {
    target: Arc<UpstreamTarget>,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Idle>>,
}

/// A connection checked out for one COPY.
struct Worker {
    conn: UpstreamConn,
    _permit: OwnedSemaphorePermit,
}

fn upstream_failed(e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::External(Box::new(UpstreamError {
        code: "08006".into(),
        message: format!("engine scan: the upstream connection failed: {e}"),
        detail: None,
    }))
}

impl Workers {
    pub fn new(target: Arc<UpstreamTarget>, max_connections: usize) -> Self {
        Workers {
            target,
            permits: Arc::new(Semaphore::new(max_connections.max(1))),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Close connections idle past the timeout; run periodically, so that
    /// a burst of engine statements leaves no connections open for long.
    pub fn reap(&self) {
        self.idle
            .lock()
            .expect("idle workers")
            .retain(|i| i.since.elapsed() < IDLE_TIMEOUT);
    }

    async fn acquire(&self, login: &WorkerLogin) -> Result<Worker, DataFusionError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| DataFusionError::Execution("the engine is shutting down".into()))?;
        let reused = {
            let mut idle = self.idle.lock().expect("idle workers");
            idle.retain(|i| i.since.elapsed() < IDLE_TIMEOUT);
            idle.iter()
                .rposition(|i| i.conn.startup == login.params)
                .map(|at| idle.remove(at).conn)
        };
        let conn = match reused {
            Some(c) => c,
            None => UpstreamConn::connect(&self.target, &login.params, login.password.as_deref())
                .await
                .map_err(|e| {
                    let pg = e.to_pg_error();
                    DataFusionError::External(Box::new(UpstreamError {
                        code: pg.code.code().to_string(),
                        message: format!("engine scan: {}", pg.message),
                        detail: None,
                    }))
                })?,
        };
        Ok(Worker {
            conn,
            _permit: permit,
        })
    }

    fn release(&self, worker: Worker) {
        let Worker { conn, .. } = worker;
        if conn.status == TransactionStatus::Idle && conn.rbuf.is_empty() {
            self.idle.lock().expect("idle workers").push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }
}

/// Runs each partition's COPY as the client, in the session's snapshot.
#[derive(Clone)]
pub struct SnapshotSource {
    pub workers: Arc<Workers>,
    pub login: Arc<WorkerLogin>,
    /// `pg_export_snapshot()` of the session's transaction, if any.
    pub snapshot: Option<String>,
    /// `SET LOCAL` statements for settings that change text output (for
    /// columns read as text).
    pub settings: String,
}

impl std::fmt::Debug for SnapshotSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotSource")
            .field("snapshot", &self.snapshot)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl CopySource for SnapshotSource {
    async fn copy_out(&self, sql: String) -> Result<CopyStream, DataFusionError> {
        let mut worker = self.workers.acquire(&self.login).await?;
        let mut text = String::from("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; ");
        if let Some(s) = &self.snapshot {
            text.push_str(&format!("SET TRANSACTION SNAPSHOT '{s}'; "));
        }
        text.push_str(&self.settings);
        text.push_str(&sql);
        text.push_str("; COMMIT");
        let mut out = BytesMut::new();
        messages::query(&text, &mut out);
        worker
            .conn
            .stream
            .write_all(&out)
            .await
            .map_err(upstream_failed)?;
        worker.conn.stream.flush().await.map_err(upstream_failed)?;
        let mut reader = CopyReader {
            worker: Some(worker),
            workers: self.workers.clone(),
            error: None,
            started: false,
        };
        // Up to CopyOutResponse (or the error that replaces it).
        reader.start().await?;
        Ok(Box::pin(futures_util::stream::unfold(
            reader,
            |mut r| async move { r.next_chunk().await.map(|item| (item, r)) },
        )))
    }
}

/// Reads one COPY's data off a worker connection.
struct CopyReader {
    worker: Option<Worker>,
    workers: Arc<Workers>,
    error: Option<ErrorFields>,
    started: bool,
}

impl CopyReader {
    /// Read until the upstream has said CopyOutResponse, or failed.
    async fn start(&mut self) -> Result<(), DataFusionError> {
        loop {
            if !self.fill().await? {
                return Err(upstream_failed("closed during the scan"));
            }
            let (_, done) = self.take_frames(true)?;
            if self.started {
                return Ok(());
            }
            if done {
                return Err(self.finish_error());
            }
        }
    }

    fn finish_error(&mut self) -> DataFusionError {
        let e = self.error.take().unwrap_or_else(|| ErrorFields {
            code: "XX000".into(),
            message: "the upstream ended the scan without data".into(),
            ..Default::default()
        });
        DataFusionError::External(Box::new(UpstreamError {
            code: e.code,
            message: e.message,
            detail: e.detail,
        }))
    }

    /// Read more bytes; `false` at end of stream.
    async fn fill(&mut self) -> Result<bool, DataFusionError> {
        let w = self.worker.as_mut().expect("a worker while reading");
        w.conn.rbuf.reserve(READ_CHUNK);
        let n = w
            .conn
            .stream
            .read_buf(&mut w.conn.rbuf)
            .await
            .map_err(upstream_failed)?;
        Ok(n > 0)
    }

    /// Take the complete frames in the buffer: CopyData payloads
    /// concatenated, and whether ReadyForQuery was among them. Before
    /// CopyOutResponse (`before_copy`) only that is looked for.
    fn take_frames(&mut self, before_copy: bool) -> Result<(BytesMut, bool), DataFusionError> {
        let w = self.worker.as_mut().expect("a worker while reading");
        let buf = &mut w.conn.rbuf;
        let mut data = BytesMut::new();
        let mut at = 0;
        let mut ready = false;
        while buf.len() - at >= HEADER_LEN {
            let t = buf[at];
            let len = u32::from_be_bytes(buf[at + 1..at + 5].try_into().expect("4 bytes")) as usize;
            if len < 4 {
                return Err(upstream_failed("a malformed message"));
            }
            if buf.len() - at < 1 + len {
                break;
            }
            let body = &buf[at + HEADER_LEN..at + 1 + len];
            match t {
                tag::COPY_DATA => data.extend_from_slice(body),
                tag::COPY_OUT_RESPONSE => self.started = true,
                tag::ERROR_RESPONSE => self.error = Some(ErrorFields::parse(body)),
                tag::READY_FOR_QUERY => {
                    w.conn.status = body
                        .first()
                        .and_then(|&b| TransactionStatus::from_byte(b))
                        .unwrap_or(TransactionStatus::Failed);
                    ready = true;
                }
                _ => {}
            }
            at += 1 + len;
            if ready || (before_copy && self.started) {
                break;
            }
        }
        let _ = buf.split_to(at);
        Ok((data, ready))
    }

    /// The next chunk of CopyData payloads (whole rows), or the end.
    async fn next_chunk(&mut self) -> Option<Result<Bytes, DataFusionError>> {
        self.worker.as_ref()?;
        loop {
            let (data, ready) = match self.take_frames(false) {
                Ok(x) => x,
                Err(e) => {
                    self.worker = None;
                    return Some(Err(e));
                }
            };
            if ready {
                let worker = self.worker.take().expect("checked above");
                if self.error.is_some() {
                    let e = self.finish_error();
                    self.workers.release(worker);
                    return Some(Err(e));
                }
                self.workers.release(worker);
                return (!data.is_empty()).then(|| Ok(data.freeze()));
            }
            if !data.is_empty() {
                return Some(Ok(data.freeze()));
            }
            match self.fill().await {
                Ok(true) => {}
                Ok(false) => {
                    self.worker = None;
                    return Some(Err(upstream_failed("closed during the scan")));
                }
                Err(e) => {
                    self.worker = None;
                    return Some(Err(e));
                }
            }
        }
    }
}
