//! Running a statement in DataFusion for a session.
//!
//! Sessions live on single-threaded event loops (see `server`), so a query
//! is executed on the engine's own multi-threaded runtime, where DataFusion
//! spreads its partitions over the cores; its batches come back through a
//! small bounded channel. The channel is the back-pressure: a client that
//! reads slowly holds at most a few batches in memory, and one that leaves
//! drops the receiver, which stops the query.

use datafusion::arrow::record_batch::RecordBatch;
use futures_util::StreamExt;
use helios_wire::arrow::TextSettings;
use helios_wire::PgError;
use tokio::sync::mpsc;

use super::session::engine_error;

/// Batches in flight between the engine and a session, at most.
const IN_FLIGHT: usize = 4;

/// A statement's rows on their way.
pub struct Running {
    rx: mpsc::Receiver<Result<RecordBatch, PgError>>,
    /// What is left of a batch a row limit cut.
    pending: Option<RecordBatch>,
    /// The task producing the batches: stopped when this is dropped (a
    /// cancel, a client gone), even if it has not produced a batch to
    /// notice the channel closing by (an aggregate over a long join).
    task: tokio::task::AbortHandle,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What one step of sending produced.
pub enum Step {
    Rows(u64),
    Done,
    Failed(PgError),
}

impl Running {
    pub fn spawn(
        rt: &tokio::runtime::Handle,
        stream: impl std::future::Future<
                Output = Result<
                    datafusion::physical_plan::SendableRecordBatchStream,
                    helios_planner::engine::EngineError,
                >,
            > + Send
            + 'static,
    ) -> Running {
        let (tx, rx) = mpsc::channel(IN_FLIGHT);
        let task = rt.spawn(async move {
            let mut stream = match stream.await {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(Err(engine_error(e))).await;
                    return;
                }
            };
            while let Some(item) = stream.next().await {
                let item =
                    item.map_err(|e| engine_error(helios_planner::engine::EngineError::from(e)));
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    // The session went away (or the query failed): stop.
                    return;
                }
            }
        });
        Running {
            rx,
            pending: None,
            task: task.abort_handle(),
        }
    }

    /// Encode the next rows as DataRows: at most `max` (0 = no limit).
    pub async fn next(
        &mut self,
        max: u64,
        formats: &[i16],
        text: &TextSettings,
        out: &mut bytes::BytesMut,
    ) -> Step {
        let batch = match self.pending.take() {
            Some(b) => b,
            None => match self.rx.recv().await {
                Some(Ok(b)) => b,
                Some(Err(e)) => return Step::Failed(e),
                None => return Step::Done,
            },
        };
        let rows = batch.num_rows() as u64;
        let batch = if max > 0 && rows > max {
            self.pending = Some(batch.slice(max as usize, (rows - max) as usize));
            batch.slice(0, max as usize)
        } else {
            batch
        };
        match helios_wire::arrow::encode_batch(&batch, formats, text, out) {
            Ok(()) => Step::Rows(batch.num_rows() as u64),
            Err(e) => Step::Failed(PgError::error(
                helios_wire::SqlState::FEATURE_NOT_SUPPORTED,
                e.to_string(),
            )),
        }
    }
}
