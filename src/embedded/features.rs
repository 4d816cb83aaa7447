//! What Helios adds, in the embedded database: `ADVISE` (the static rules;
//! there is no upstream planner to ask) and natural language (`nl()`,
//! `nl_sql()`, NL comments, `nl_reset()`, `SHOW HELIOS NL HISTORY`), whose
//! SQL is checked by planning it in DataFusion and runs there.
//!
//! Each answer is a [`Special`]: rows Helios computed (an Arrow batch the
//! session then describes and encodes like a query's), or SQL to run.

use std::sync::Arc;

use bytes::BytesMut;
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use helios_advisor::{advise, Mode, Options};
use helios_nl::conversation::Conversation;
use helios_nl::detect::{self, NlCall, QuestionArg};
use helios_nl::translate::{ExplainError, Schema as NlSchema, Upstream};
use helios_nl::{NlError, NlErrorKind};
use helios_planner::catalog::Catalog;
use helios_wire::error::notice;
use helios_wire::{PgError, Severity, SqlState};

use super::EmbeddedDb;
use crate::nl::NlService;
use crate::session::advise_command::{self, Command};

/// A statement Helios answers itself.
pub enum Special {
    Rows(RecordBatch),
    /// Translated SQL to plan and run.
    Sql(String),
    /// An admin command carried out: its tag.
    Done(&'static str),
}

/// Helios's features for one embedded session.
pub struct Features<'a> {
    pub nl: Option<&'a NlService>,
    pub conversation: Conversation,
    /// The demo catalog (what `ADVISE` and NL see), and its NL schema,
    /// built on first use.
    catalog: Arc<Catalog>,
    nl_schema: Option<Arc<NlSchema>>,
    options: Options,
    /// Helios's admin commands (`SHOW HELIOS STATS`, ...): the server and
    /// the session's user.
    admin: Option<(Arc<crate::server::Server>, String, u64)>,
}

impl<'a> Features<'a> {
    pub fn new(db: &EmbeddedDb, nl: Option<&'a NlService>, options: Options) -> Self {
        Features {
            nl: nl.filter(|s| s.config().enabled),
            conversation: Conversation::new(nl.map_or(0, |s| s.config().history_turns)),
            catalog: db.catalog.clone(),
            nl_schema: None,
            options,
            admin: None,
        }
    }

    /// Answer Helios's admin commands too, as `user`.
    pub fn with_admin(
        mut self,
        server: Arc<crate::server::Server>,
        user: &str,
        client_id: u64,
    ) -> Self {
        self.admin = Some((server, user.to_string(), client_id));
        self
    }

    async fn admin(
        &self,
        cmd: crate::ops::commands::AdminCommand,
        out: &mut BytesMut,
    ) -> Option<Result<Special, PgError>> {
        let (server, user, client_id) = self.admin.as_ref()?;
        let answer = match crate::ops::commands::run(server, user, Some(*client_id), cmd).await {
            Ok(a) => a,
            Err(e) => return Some(Err(e)),
        };
        if let Some(n) = &answer.notice {
            notice("NOTICE", SqlState::SUCCESSFUL_COMPLETION, n, out);
        }
        if answer.columns.is_empty() {
            let tag = match cmd {
                crate::ops::commands::AdminCommand::Reload => "HELIOS RELOAD",
                crate::ops::commands::AdminCommand::Pause => "HELIOS PAUSE",
                _ => "HELIOS RESUME",
            };
            return Some(Ok(Special::Done(tag)));
        }
        Some(admin_batch(&answer).map(Special::Rows))
    }

    /// Whether `text` is a question in a comment (`/* nl: ... */`).
    pub fn is_nl_comment(&self, text: &str) -> bool {
        self.nl.is_some()
            && detect::detect(text).is_some()
            && helios_planner::sql::statement_count(text) == 0
    }

    /// `None`: an ordinary statement. NOTICEs (the generated SQL) go to `out`.
    pub async fn answer(
        &mut self,
        db: &EmbeddedDb,
        sql: &str,
        out: &mut BytesMut,
    ) -> Option<Result<Special, PgError>> {
        if let Some(cmd) = advise_command::parse(sql) {
            return Some(self.advise(db, cmd).await);
        }
        if let Some(cmd) = crate::ops::commands::parse(sql) {
            if let Some(answer) = self.admin(cmd, out).await {
                return Some(answer);
            }
        }
        let nl = self.nl?;
        let call = match detect::detect(sql)? {
            Ok(c) => c,
            Err(e) => return Some(Err(nl_error(&e))),
        };
        Some(self.nl(nl, db, call, out).await)
    }

    async fn advise(
        &self,
        db: &EmbeddedDb,
        cmd: Result<Command, String>,
    ) -> Result<Special, PgError> {
        let cmd = cmd.map_err(|m| PgError::error(SqlState::SYNTAX_ERROR, m))?;
        let (sql, analyze) =
            match cmd {
                Command::Advise { sql, analyze } => (sql, analyze),
                Command::Queries => return queries(db),
                _ => return Err(PgError::error(
                    SqlState::FEATURE_NOT_SUPPORTED,
                    "this advisor command needs an upstream PostgreSQL",
                )
                .with_hint(
                    "ADVISE <statement> and SHOW HELIOS QUERIES work here; ADVISE WORKLOAD and \
                     SET helios.advise need [upstream] url.",
                )),
            };
        let analyzer = helios_advisor::rules::StaticAnalyzer::new(&self.catalog);
        let mut advice = advise::<crate::session::nl::Side<'_>>(
            &sql,
            &self.catalog,
            &analyzer,
            None,
            Mode::Static,
            &self.options,
        )
        .await;
        if analyze {
            advice.findings.push(helios_advisor::Finding::new(
                helios_advisor::Severity::Info,
                "plan_not_consulted",
                "no upstream: there is no PostgreSQL plan to consult",
                "The embedded database runs in DataFusion; ADVISE gives its static findings. \
                 With an [upstream] url, ADVISE ANALYZE runs the statement read-only and reads the plan.",
            ));
        }
        let mut severity = Vec::new();
        let mut rule = Vec::new();
        let mut title = Vec::new();
        let mut detail = Vec::new();
        let mut location = Vec::new();
        let mut suggestion = Vec::new();
        let score = advice.score as i32;
        if advice.findings.is_empty() {
            severity.push("info".to_string());
            rule.push("no_findings".to_string());
            title.push("no problems found".to_string());
            detail.push("The static rules found nothing to improve.".to_string());
            location.push(None);
            suggestion.push(None);
        }
        for f in &advice.findings {
            severity.push(f.severity.as_str().to_string());
            rule.push(f.rule.to_string());
            title.push(f.title.clone());
            detail.push(f.detail.clone());
            location.push(f.location.clone());
            suggestion.push(f.suggestion.clone());
        }
        let n = severity.len();
        let text = |name: &str| Field::new(name, DataType::Utf8, true);
        let schema = Schema::new(vec![
            text("severity"),
            text("rule"),
            text("title"),
            text("detail"),
            text("location"),
            text("suggestion"),
            Field::new("cost_before", DataType::Float64, true),
            Field::new("cost_after", DataType::Float64, true),
            Field::new("saving_pct", DataType::Float64, true),
            Field::new("score", DataType::Int32, true),
        ]);
        let nulls = || Arc::new(Float64Array::from(vec![None::<f64>; n])) as ArrayRef;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(severity)),
            Arc::new(StringArray::from(rule)),
            Arc::new(StringArray::from(title)),
            Arc::new(StringArray::from(detail)),
            Arc::new(StringArray::from(location)),
            Arc::new(StringArray::from(suggestion)),
            nulls(),
            nulls(),
            nulls(),
            Arc::new(Int32Array::from(vec![score; n])),
        ];
        batch(schema, columns)
    }

    async fn nl(
        &mut self,
        svc: &NlService,
        db: &EmbeddedDb,
        call: NlCall,
        out: &mut BytesMut,
    ) -> Result<Special, PgError> {
        let (question, run) = match call {
            NlCall::Reset => {
                self.conversation.reset();
                let schema = Schema::new(vec![Field::new("nl_reset", DataType::Boolean, true)]);
                return batch(schema, vec![Arc::new(BooleanArray::from(vec![true]))]);
            }
            NlCall::History => {
                let turns: Vec<_> = self.conversation.turns().collect();
                let schema = Schema::new(vec![
                    Field::new("turn", DataType::Int32, true),
                    Field::new("question", DataType::Utf8, true),
                    Field::new("sql", DataType::Utf8, true),
                ]);
                let columns: Vec<ArrayRef> = vec![
                    Arc::new(Int32Array::from_iter_values(1..=turns.len() as i32)),
                    Arc::new(StringArray::from_iter_values(
                        turns.iter().map(|t| t.question.clone()),
                    )),
                    Arc::new(StringArray::from_iter_values(
                        turns.iter().map(|t| t.sql.clone()),
                    )),
                ];
                return batch(schema, columns);
            }
            NlCall::Run(QuestionArg::Text(q)) => (q, true),
            NlCall::Sql(QuestionArg::Text(q)) => (q, false),
            NlCall::Run(QuestionArg::Param(_)) | NlCall::Sql(QuestionArg::Param(_)) => {
                return Err(nl_error(
                    &NlError::new(
                        NlErrorKind::BadRequest,
                        "the embedded database takes the question as text, not as a parameter",
                    )
                    .with_hint("Write the question in quotes: SELECT * FROM nl('...')."),
                ))
            }
        };
        let schema = self
            .nl_schema
            .get_or_insert_with(|| Arc::new(NlSchema::new(self.catalog.clone())))
            .clone();
        let mut planner = PlanCheck { db };
        let t = svc
            .translator
            .translate(&question, &schema, &self.conversation, &mut planner)
            .await
            .map_err(|e| nl_error(&e))?;
        let how = if t.cached {
            "cached".to_string()
        } else {
            format!(
                "{}, {} attempt{}",
                t.provider,
                t.attempts,
                if t.attempts == 1 { "" } else { "s" }
            )
        };
        notice(
            "NOTICE",
            SqlState::SUCCESSFUL_COMPLETION,
            &format!("nl: {} -- ({how})", t.sql),
            out,
        );
        self.conversation.push(&question, &t.sql);
        if run {
            return Ok(Special::Sql(t.sql));
        }
        let schema = Schema::new(vec![
            Field::new("sql", DataType::Utf8, true),
            Field::new("provider", DataType::Utf8, true),
            Field::new("attempts", DataType::Int32, true),
            Field::new("cached", DataType::Boolean, true),
        ]);
        batch(
            schema,
            vec![
                Arc::new(StringArray::from(vec![t.sql.clone()])),
                Arc::new(StringArray::from(vec![t.provider.clone()])),
                Arc::new(Int32Array::from(vec![t.attempts as i32])),
                Arc::new(BooleanArray::from(vec![t.cached])),
            ],
        )
    }
}

/// `SHOW HELIOS QUERIES`: the statements run so far, by shape.
fn queries(db: &EmbeddedDb) -> Result<Special, PgError> {
    let all = db.log.snapshot();
    let ms = |d: std::time::Duration| (d.as_secs_f64() * 100_000.0).round() / 100.0;
    let schema = Schema::new(vec![
        Field::new("fingerprint", DataType::Utf8, true),
        Field::new("query", DataType::Utf8, true),
        Field::new("calls", DataType::Int64, true),
        Field::new("total_ms", DataType::Float64, true),
        Field::new("mean_ms", DataType::Float64, true),
        Field::new("max_ms", DataType::Float64, true),
        Field::new("rows", DataType::Int64, true),
        Field::new("cache_hits", DataType::Int64, true),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(all.iter().map(|q| {
            helios_planner::cacheable::fingerprint_id(q.fingerprint)
        }))),
        Arc::new(StringArray::from_iter_values(
            all.iter().map(|q| q.text.clone()),
        )),
        Arc::new(Int64Array::from_iter_values(
            all.iter().map(|q| q.calls as i64),
        )),
        Arc::new(Float64Array::from_iter_values(
            all.iter().map(|q| ms(q.total)),
        )),
        Arc::new(Float64Array::from_iter_values(
            all.iter().map(|q| ms(q.mean())),
        )),
        Arc::new(Float64Array::from_iter_values(
            all.iter().map(|q| ms(q.max)),
        )),
        Arc::new(Int64Array::from_iter_values(
            all.iter().map(|q| q.rows as i64),
        )),
        Arc::new(Int64Array::from_iter_values(
            all.iter().map(|q| q.cache_hits as i64),
        )),
    ];
    batch(schema, columns)
}

fn batch(schema: Schema, columns: Vec<ArrayRef>) -> Result<Special, PgError> {
    RecordBatch::try_new(Arc::new(schema), columns)
        .map(Special::Rows)
        .map_err(|e| PgError::error(SqlState::INTERNAL_ERROR, e.to_string()))
}

/// The translator's check of generated SQL: planning it in DataFusion
/// (the embedded database's own planner stands in for EXPLAIN).
struct PlanCheck<'a> {
    db: &'a EmbeddedDb,
}

#[async_trait::async_trait]
impl Upstream for PlanCheck<'_> {
    async fn explain(&mut self, sql: &str) -> Result<(), ExplainError> {
        self.db
            .prepare(sql)
            .await
            .map(|_| ())
            .map_err(|e| ExplainError::Rejected(e.message))
    }
}

fn nl_error(e: &NlError) -> PgError {
    let mut pg = PgError::new(
        Severity::Error,
        SqlState::new(e.sqlstate()),
        e.message.clone(),
    );
    pg.detail = e.detail.clone();
    pg.hint = e.hint.clone();
    pg
}

/// An admin command's rows as an Arrow batch (text, bigint, boolean columns).
fn admin_batch(a: &crate::ops::commands::Answer) -> Result<RecordBatch, PgError> {
    use crate::ops::commands::Cell;
    use helios_wire::results::Type;
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (i, c) in a.columns.iter().enumerate() {
        let cells = a.rows.iter().map(|r| &r[i]);
        if c.ty == Type::INT8 {
            fields.push(Field::new(&c.name, DataType::Int64, true));
            let v: Int64Array = cells
                .map(|x| match x {
                    Cell::Int(n) => Some(*n),
                    _ => None,
                })
                .collect();
            columns.push(Arc::new(v));
        } else if c.ty == Type::BOOL {
            fields.push(Field::new(&c.name, DataType::Boolean, true));
            let v: BooleanArray = cells
                .map(|x| match x {
                    Cell::Bool(b) => Some(*b),
                    _ => None,
                })
                .collect();
            columns.push(Arc::new(v));
        } else {
            fields.push(Field::new(&c.name, DataType::Utf8, true));
            let v: StringArray = cells
                .map(|x| match x {
                    Cell::Text(s) => Some(s.clone()),
                    Cell::Int(n) => Some(n.to_string()),
                    Cell::Bool(b) => Some(b.to_string()),
                    Cell::Null => None,
                })
                .collect();
            columns.push(Arc::new(v));
        }
    }
    match batch(Schema::new(fields), columns)? {
        Special::Rows(b) => Ok(b),
        _ => unreachable!("batch() makes rows"),
    }
}
