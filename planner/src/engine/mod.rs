//! The embedded query engine: DataFusion over in-memory (and file) tables,
//! answering PostgreSQL-dialect SQL for clients that connect without an
//! upstream database.
//!
//! One [`Engine`] serves every session of one database: its tables live in
//! catalog `<database>`, schema `public`, and `information_schema` is there
//! too. Statements are planned once ([`Engine::prepare`], with `$n`
//! parameters) and run many times ([`Engine::execute`]).
//!
//! The engine is read-only. INSERT, UPDATE, DELETE, MERGE, DDL, `SELECT
//! INTO`, data-modifying CTEs and `FOR UPDATE`/`FOR SHARE` are refused with
//! `25006` (PostgreSQL's code for a write in a read-only transaction) before
//! planning, and any plan that would still change something (`EXPLAIN
//! ANALYZE` of a write, DataFusion's file-writing `COPY ... TO`) is refused
//! after it. Session statements (`SET`, `BEGIN`, `PREPARE`, `COPY`, ...) are
//! `0A000`: the engine is shared by sessions, so the wire layer answers
//! those itself.
//!
//! One statement per call: an empty string is `42601 empty query` (the wire
//! layer answers empty queries before asking), several statements are
//! `42601`, as PostgreSQL says for a multi-statement Parse.
//!
//! Errors are [`EngineError`]s with SQLSTATEs ([`map_error`]); errors that
//! surface while a result stream is read are plain DataFusion errors, which
//! `EngineError::from` maps the same way.

pub mod demo;
mod demo_gen;
mod demo_words;
mod error;
mod params;
pub mod pg_avg;
pub mod upstream;

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::config::Dialect;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::TableReference;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::functions::datetime::planner::DatetimeFunctionPlanner;
use datafusion::functions::unicode::planner::UnicodeFunctionPlanner;
use datafusion::logical_expr::planner::ExprPlanner;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{CsvReadOptions, JsonReadOptions, SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

pub use demo::{demo_catalog, demo_data, demo_tables, DemoColumn, DemoForeignKey, DemoTable};
pub use error::{map_error, sqlstate, EngineError};

use crate::sql::{analyze, RelationRef, StatementInfo, StatementKind};

/// The schema every engine table lives in.
pub const SCHEMA: &str = "public";

/// An embedded database: a DataFusion session with its tables registered.
pub struct Engine {
    ctx: SessionContext,
    database: String,
}

/// A planned statement, ready to run with parameter values.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub sql: String,
    /// The logical plan, with `$n` placeholders still in it (each typed).
    pub plan: LogicalPlan,
    /// `$1`, `$2`, ...: the type DataFusion inferred from the placeholder's
    /// context, or `None` when it could not (the value is then text, and
    /// the plan has it as Utf8).
    pub param_types: Vec<Option<DataType>>,
    /// The output columns.
    pub schema: SchemaRef,
}

impl Engine {
    /// An engine with no tables: catalog `database`, schema `public`,
    /// `target_partitions` = the available cores.
    pub fn new(database: &str) -> Engine {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut config = SessionConfig::new()
            .with_default_catalog_and_schema(database, SCHEMA)
            .with_create_default_catalog_and_schema(true)
            .with_information_schema(true)
            .with_target_partitions(cores);
        let sql_options = &mut config.options_mut().sql_parser;
        sql_options.dialect = Dialect::PostgreSQL;
        // One string type (Utf8) everywhere, as the tables have: `::text`
        // would otherwise produce Utf8View.
        sql_options.map_string_types_to_utf8view = false;
        // `EXTRACT`, `POSITION`, `SUBSTRING ... FROM` need the datetime and
        // unicode expression planners, which DataFusion adds only under
        // crate features this workspace does not enable.
        let mut planners = datafusion::execution::SessionStateDefaults::default_expr_planners();
        planners.push(Arc::new(DatetimeFunctionPlanner) as Arc<dyn ExprPlanner>);
        planners.push(Arc::new(UnicodeFunctionPlanner) as Arc<dyn ExprPlanner>);
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_expr_planners(planners)
            .build();
        Engine {
            ctx: SessionContext::new_with_state(state),
            database: database.to_string(),
        }
    }

    /// An engine holding the demo database ([`demo_tables`]), each table
    /// split into one partition per core. The rows are generated once per
    /// process ([`demo_data`]) and shared.
    pub fn demo(database: &str) -> Engine {
        let engine = Engine::new(database);
        let partitions = engine.ctx.copied_config().target_partitions();
        for (name, batch) in &demo_data().tables {
            let table = demo::mem_table(batch, partitions)
                .expect("demo batches match their schemas by construction");
            engine
                .ctx
                .register_table(TableReference::bare(*name), Arc::new(table))
                .expect("the default schema accepts new tables");
        }
        engine
    }

    /// The database (catalog) name.
    pub fn database(&self) -> &str {
        &self.database
    }

    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Register a CSV file (with a header row; types inferred) as table
    /// `name` in schema `public`.
    pub async fn register_csv(&self, name: &str, path: &str) -> Result<(), EngineError> {
        let extension = dotted_extension(path);
        let options = CsvReadOptions::new()
            .has_header(true)
            .file_extension(&extension);
        self.ctx
            .register_csv(TableReference::bare(name), path, options)
            .await
            .map_err(EngineError::from)
    }

    /// Register a newline-delimited JSON file (types inferred) as table
    /// `name` in schema `public`.
    pub async fn register_ndjson(&self, name: &str, path: &str) -> Result<(), EngineError> {
        let extension = dotted_extension(path);
        let options = JsonReadOptions {
            file_extension: &extension,
            ..JsonReadOptions::default()
        };
        self.ctx
            .register_json(TableReference::bare(name), path, options)
            .await
            .map_err(EngineError::from)
    }

    /// Plan one statement (PostgreSQL dialect); `$n` placeholders allowed.
    pub async fn prepare(&self, sql: &str) -> Result<Prepared, EngineError> {
        let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).map_err(|e| {
            EngineError::new(
                sqlstate::SYNTAX_ERROR,
                error::parser_message(&e.to_string()),
            )
        })?;
        if statements.len() > 1 {
            return Err(EngineError::new(
                sqlstate::SYNTAX_ERROR,
                "cannot insert multiple commands into a prepared statement",
            ));
        }
        let Some(statement) = statements.pop() else {
            return Err(EngineError::new(sqlstate::SYNTAX_ERROR, "empty query"));
        };
        let info = analyze(&statement);
        refuse_writes(&info)?;

        let state = self.ctx.state();
        let plan = match state
            .statement_to_plan(DfStatement::Statement(Box::new(statement)))
            .await
        {
            Ok(plan) => plan,
            Err(e) => {
                return Err(self
                    .missing_relation(&info)
                    .unwrap_or_else(|| map_error(&e)))
            }
        };
        refuse_plan(&plan, &info)?;
        // avg() of integers and numerics as PostgreSQL prints it.
        let plan = pg_avg::rewrite(plan).map_err(|e| map_error(&e))?;

        let plan = params::type_limit_placeholders(plan)?;
        let param_types = params::parameter_types(&plan)?;
        let plan = params::type_untyped_placeholders(plan)?;
        // Type checks (coercion) happen in the analyzer; run it now so type
        // errors surface when the statement is prepared, as in PostgreSQL.
        state
            .analyzer()
            .execute_and_check(plan.clone(), state.config_options(), |_, _| {})
            .map_err(|e| map_error(&e))?;
        let schema = Arc::clone(plan.schema().inner());
        Ok(Prepared {
            sql: sql.to_string(),
            plan,
            param_types,
            schema,
        })
    }

    /// The plan DataFusion will run (analyzed and optimized: coercions in
    /// place, filters pushed into scans), for checks before running it.
    pub fn optimized(&self, prepared: &Prepared) -> Result<LogicalPlan, EngineError> {
        self.ctx
            .state()
            .optimize(&prepared.plan)
            .map_err(|e| map_error(&e))
    }

    /// A statement whose rows are already known (answers Helios computes
    /// itself, such as `ADVISE`), so that they are described, limited and
    /// encoded like any query's.
    pub fn prepared_rows(
        &self,
        sql: &str,
        batch: datafusion::arrow::record_batch::RecordBatch,
    ) -> Result<Prepared, EngineError> {
        let schema = batch.schema();
        let plan = self
            .ctx
            .read_batch(batch)
            .map_err(|e| map_error(&e))?
            .into_unoptimized_plan();
        Ok(Prepared {
            sql: sql.to_string(),
            plan,
            param_types: Vec::new(),
            schema,
        })
    }

    /// Run a prepared statement with parameter values: text as the client
    /// sent it, or `None` for NULL, converted to the statement's parameter
    /// types.
    pub async fn execute(
        &self,
        prepared: &Prepared,
        params: &[Option<String>],
    ) -> Result<SendableRecordBatchStream, EngineError> {
        if params.len() != prepared.param_types.len() {
            return Err(EngineError::new(
                sqlstate::PROTOCOL_VIOLATION,
                format!(
                    "bind message supplies {} parameters, but prepared statement requires {}",
                    params.len(),
                    prepared.param_types.len()
                ),
            ));
        }
        let plan = if params.is_empty() {
            prepared.plan.clone()
        } else {
            let values = params::convert(&prepared.param_types, params)?;
            prepared
                .plan
                .clone()
                .with_param_values(values)
                .map_err(|e| map_error(&e))?
        };
        let frame = self
            .ctx
            .execute_logical_plan(plan)
            .await
            .map_err(|e| map_error(&e))?;
        frame.execute_stream().await.map_err(|e| map_error(&e))
    }

    /// The simple protocol: prepare and run one statement without
    /// parameters.
    pub async fn query(&self, sql: &str) -> Result<SendableRecordBatchStream, EngineError> {
        let prepared = self.prepare(sql).await?;
        if !prepared.param_types.is_empty() {
            return Err(EngineError::new(
                sqlstate::UNDEFINED_PARAMETER,
                "there is no parameter $1",
            ));
        }
        self.execute(&prepared, &[]).await
    }

    /// After a planning error: the first relation the statement names that
    /// does not exist, as PostgreSQL reports it (it resolves relations before
    /// anything else).
    fn missing_relation(&self, info: &StatementInfo) -> Option<EngineError> {
        let missing = info.relations.iter().find(|r| {
            let reference = match &r.schema {
                Some(schema) => TableReference::partial(schema.as_str(), r.name.as_str()),
                None => TableReference::bare(r.name.as_str()),
            };
            !self.ctx.table_exist(reference).unwrap_or(false)
        })?;
        Some(EngineError::new(
            sqlstate::UNDEFINED_TABLE,
            format!("relation \"{}\" does not exist", display_relation(missing)),
        ))
    }
}

fn display_relation(r: &RelationRef) -> String {
    match &r.schema {
        Some(s) => format!("{s}.{}", r.name),
        None => r.name.clone(),
    }
}

/// `.csv` for `data/x.csv`; empty when the path has no extension.
fn dotted_extension(path: &str) -> String {
    Path::new(path)
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default()
}

fn read_only(what: &str) -> EngineError {
    EngineError::new(
        sqlstate::READ_ONLY_SQL_TRANSACTION,
        "the embedded demo database is read-only",
    )
    .with_detail(format!("cannot execute {what}"))
}

/// Refuse, from the syntax alone, anything that would write or lock.
fn refuse_writes(info: &StatementInfo) -> Result<(), EngineError> {
    let what = match &info.kind {
        StatementKind::Insert => "INSERT",
        StatementKind::Update => "UPDATE",
        StatementKind::Delete => "DELETE",
        StatementKind::Merge => "MERGE",
        StatementKind::Ddl => "DDL statements",
        _ if info.data_modifying_cte => "a data-modifying WITH query",
        _ if info.select_into => "SELECT INTO",
        _ if info.locking => "SELECT FOR UPDATE/SHARE",
        _ => return Ok(()),
    };
    Err(read_only(what))
}

/// Refuse plans that change something or hold session statements; a
/// second line behind [`refuse_writes`] (an `EXPLAIN ANALYZE INSERT` runs
/// its insert, `COPY ... TO` writes a file).
fn refuse_plan(plan: &LogicalPlan, info: &StatementInfo) -> Result<(), EngineError> {
    let mut refused = None;
    let _ = plan.apply_with_subqueries(|node| {
        refused = match node {
            LogicalPlan::Dml(dml) => Some(read_only(&dml.op.to_string())),
            LogicalPlan::Ddl(ddl) => Some(read_only(ddl.name())),
            LogicalPlan::Copy(_) => Some(read_only("COPY")),
            LogicalPlan::Statement(statement) => Some(
                EngineError::new(
                    sqlstate::FEATURE_NOT_SUPPORTED,
                    format!(
                        "{} is not supported by the embedded engine",
                        match &info.kind {
                            StatementKind::Other(keyword) => keyword.as_str(),
                            _ => statement.name(),
                        }
                    ),
                )
                .with_detail("Session and transaction statements are handled by the server."),
            ),
            _ => None,
        };
        Ok(if refused.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    refused.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests;
