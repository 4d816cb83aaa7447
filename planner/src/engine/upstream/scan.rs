//! The TableProvider for an upstream table and its partitioned scan.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result, Statistics};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::StatisticsArgs;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use futures_util::StreamExt;

use super::copy::CopyDecoder;
use super::pushdown;
use super::types::{UpstreamColumn, UpstreamRelation};
use super::{quote_ident, CopySource, CopyStream};

/// How a scan is split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanOptions {
    /// Partitions (parallel COPYs) per table scan, at most.
    pub partitions: usize,
    /// A partition covers at least this many pages (8 KB each): small
    /// tables are read in one piece.
    pub min_pages_per_partition: u64,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            partitions: std::thread::available_parallelism().map_or(1, |n| n.get()),
            min_pages_per_partition: 128,
        }
    }
}

/// An upstream relation as a DataFusion table.
#[derive(Debug)]
pub struct UpstreamTable {
    relation: Arc<UpstreamRelation>,
    schema: SchemaRef,
    source: Arc<dyn CopySource>,
    options: ScanOptions,
}

impl UpstreamTable {
    pub fn new(
        relation: Arc<UpstreamRelation>,
        source: Arc<dyn CopySource>,
        options: ScanOptions,
    ) -> Self {
        UpstreamTable {
            schema: relation.arrow_schema(),
            relation,
            source,
            options,
        }
    }

    /// Page ranges `[start, end)` (`None`: to the end) for this many partitions.
    fn ranges(&self) -> Vec<(u64, Option<u64>)> {
        let r = &self.relation;
        let min = self.options.min_pages_per_partition.max(1);
        let n = if r.splittable() {
            (self.options.partitions as u64).min(r.pages / min).max(1)
        } else {
            1
        };
        (0..n)
            .map(|i| {
                let start = r.pages * i / n;
                let end = (i + 1 < n).then(|| r.pages * (i + 1) / n);
                (start, end)
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl TableProvider for UpstreamTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| match pushdown::to_sql(f, &self.relation.columns) {
                Some(_) => TableProviderFilterPushDown::Exact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let indices: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.relation.columns.len()).collect(),
        };
        let columns: Vec<UpstreamColumn> = indices
            .iter()
            .map(|&i| self.relation.columns[i].clone())
            .collect();
        let schema = Arc::new(self.schema.project(&indices)?);
        let mut conditions = Vec::new();
        for f in filters {
            conditions.push(pushdown::to_sql(f, &self.relation.columns).ok_or_else(|| {
                DataFusionError::Internal(format!("filter {f} was not accepted for pushdown"))
            })?);
        }
        Ok(Arc::new(UpstreamScanExec::new(
            self.relation.clone(),
            columns,
            schema,
            conditions,
            limit,
            self.ranges(),
            self.source.clone(),
            state.config().batch_size(),
        )))
    }
}

/// Reads an upstream relation in page-range partitions, one COPY each.
pub struct UpstreamScanExec {
    relation: Arc<UpstreamRelation>,
    columns: Vec<UpstreamColumn>,
    schema: SchemaRef,
    conditions: Vec<String>,
    limit: Option<usize>,
    ranges: Vec<(u64, Option<u64>)>,
    source: Arc<dyn CopySource>,
    batch_size: usize,
    properties: Arc<PlanProperties>,
}

impl fmt::Debug for UpstreamScanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamScanExec")
            .field("relation", &self.relation.qualified())
            .field("partitions", &self.ranges.len())
            .finish_non_exhaustive()
    }
}

impl UpstreamScanExec {
    #[allow(clippy::too_many_arguments)]
    fn new(
        relation: Arc<UpstreamRelation>,
        columns: Vec<UpstreamColumn>,
        schema: SchemaRef,
        conditions: Vec<String>,
        limit: Option<usize>,
        ranges: Vec<(u64, Option<u64>)>,
        source: Arc<dyn CopySource>,
        batch_size: usize,
    ) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(ranges.len()),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        UpstreamScanExec {
            relation,
            columns,
            schema,
            conditions,
            limit,
            ranges,
            source,
            batch_size: batch_size.max(1),
            properties: Arc::new(properties),
        }
    }

    /// The number of partitions (parallel COPYs).
    pub fn partitions(&self) -> usize {
        self.ranges.len()
    }

    /// The COPY statement partition `i` runs.
    pub fn copy_sql(&self, i: usize) -> String {
        let select: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                if c.as_text {
                    format!("{}::text", quote_ident(&c.name))
                } else {
                    quote_ident(&c.name)
                }
            })
            .collect();
        let mut conditions = self.conditions.clone();
        if self.ranges.len() > 1 {
            let (start, end) = self.ranges[i];
            if start > 0 {
                conditions.push(format!("ctid >= '({start},0)'::tid"));
            }
            if let Some(end) = end {
                conditions.push(format!("ctid < '({end},0)'::tid"));
            }
        }
        let mut sql = format!(
            "COPY (SELECT {} FROM {}",
            select.join(", "),
            self.relation.qualified()
        );
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        if let Some(n) = self.limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        sql.push_str(") TO STDOUT (FORMAT binary)");
        sql
    }
}

impl DisplayAs for UpstreamScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "UpstreamScanExec: {}, partitions={}, columns=[{}]",
            self.relation.qualified(),
            self.ranges.len(),
            self.columns
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        if !self.conditions.is_empty() {
            write!(f, ", filter={}", self.conditions.join(" AND "))?;
        }
        if let Some(n) = self.limit {
            write!(f, ", limit={n}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for UpstreamScanExec {
    fn name(&self) -> &str {
        "UpstreamScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    /// The planner's row estimate (`reltuples`), so DataFusion builds hash
    /// joins on the smaller side.
    fn statistics_from_inputs(
        &self,
        _input_stats: &[Arc<Statistics>],
        args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        let mut stats = Statistics::new_unknown(&self.schema);
        let rows = self.relation.estimated_rows;
        if rows >= 0 && self.conditions.is_empty() {
            let share = match args.partition() {
                Some(_) => rows as usize / self.ranges.len().max(1),
                None => rows as usize,
            };
            let share = self.limit.map_or(share, |l| share.min(l));
            stats = stats.with_num_rows(Precision::Inexact(share));
        }
        Ok(Arc::new(stats))
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition >= self.ranges.len() {
            return Err(DataFusionError::Internal(format!(
                "UpstreamScanExec has no partition {partition}"
            )));
        }
        let state = ScanState {
            source: self.source.clone(),
            sql: Some(self.copy_sql(partition)),
            copy: None,
            decoder: CopyDecoder::new(self.schema.clone(), &self.columns, self.batch_size),
            batch_size: self.batch_size,
            finished: false,
        };
        let stream = futures_util::stream::unfold(state, ScanState::step);
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            stream,
        )))
    }
}

struct ScanState {
    source: Arc<dyn CopySource>,
    sql: Option<String>,
    copy: Option<CopyStream>,
    decoder: CopyDecoder,
    batch_size: usize,
    finished: bool,
}

type Step = Option<(
    Result<datafusion::arrow::record_batch::RecordBatch>,
    ScanState,
)>;

impl ScanState {
    async fn step(mut self) -> Step {
        if self.finished {
            return None;
        }
        if let Some(sql) = self.sql.take() {
            match self.source.copy_out(sql).await {
                Ok(copy) => self.copy = Some(copy),
                Err(e) => return self.fail(e),
            }
        }
        let copy = self.copy.as_mut().expect("opened above");
        loop {
            match copy.next().await {
                Some(Ok(bytes)) => {
                    if let Err(e) = self.decoder.feed(&bytes) {
                        return self.fail(e);
                    }
                    if self.decoder.rows() >= self.batch_size {
                        let batch = self.decoder.finish_batch();
                        return Some((batch, self));
                    }
                }
                Some(Err(e)) => return self.fail(e),
                None => {
                    self.finished = true;
                    self.copy = None;
                    if !self.decoder.done() {
                        let e = DataFusionError::Execution(
                            "the upstream ended the COPY without its trailer".into(),
                        );
                        return Some((Err(e), self));
                    }
                    if self.decoder.rows() == 0 {
                        return None;
                    }
                    let batch = self.decoder.finish_batch();
                    return Some((batch, self));
                }
            }
        }
    }

    fn fail(mut self, e: DataFusionError) -> Step {
        self.finished = true;
        self.copy = None;
        Some((Err(e), self))
    }
}
