//! The pipeline: question in, validated SQL out.
//!
//! cache → retrieval → (step plan, for complex questions) → prompt → model →
//! static checks → DataFusion plan check → EXPLAIN on the upstream; a
//! rejected answer goes back to the model with the reason, up to
//! `nl.max_attempts`, and the same SQL twice ends the loop.

use std::sync::Arc;
use std::time::Instant;

use helios_planner::check::PlanChecker;
use helios_planner::{Catalog, QualifiedName};
use tracing::Instrument;

use crate::builtin;
use crate::cache::{cosine, Hit, TranslationCache};
use crate::complexity;
use crate::config::{NlConfig, ProviderKind};
use crate::conversation::Conversation;
use crate::error::{NlError, NlErrorKind};
use crate::prompt::{self, Answer, PromptInput};
use crate::provider::{ChatMessage, ChatRequest, ChatResponse, ProviderChain};
use crate::retrieval::{table_description, RetrievalOptions, SchemaIndex};
use crate::validate::{self, Problem};

/// A translated question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translation {
    pub sql: String,
    /// The relations it reads.
    pub tables: Vec<QualifiedName>,
    /// Which provider wrote it.
    pub provider: String,
    /// Model answers it took (0 when cached).
    pub attempts: u32,
    pub cached: bool,
}

/// A catalog made ready for translation: its retrieval index and plan
/// checker, built once per catalog version.
pub struct Schema {
    pub index: SchemaIndex,
    pub checker: PlanChecker,
    /// Each table's description embedded (catalog order), on first use
    /// when a provider embeds.
    table_embeddings: tokio::sync::OnceCell<Vec<Vec<f32>>>,
}

/// Descriptions per embeddings request.
const EMBED_BATCH: usize = 256;

impl Schema {
    pub fn new(catalog: Arc<Catalog>) -> Schema {
        Schema {
            checker: PlanChecker::new(&catalog),
            index: SchemaIndex::new(catalog),
            table_embeddings: tokio::sync::OnceCell::new(),
        }
    }

    pub fn catalog(&self) -> &Catalog {
        self.index.catalog()
    }

    pub fn version(&self) -> u64 {
        self.catalog().version
    }
}

/// What the translator needs from the upstream: EXPLAIN, as the client's role.
#[async_trait::async_trait]
pub trait Upstream: Send {
    async fn explain(&mut self, sql: &str) -> Result<(), ExplainError>;

    /// Resolves when the client cancels its request; never, by default.
    async fn cancelled(&mut self) {
        std::future::pending::<()>().await
    }
}

/// Why EXPLAIN did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExplainError {
    /// The server rejected the statement; its message goes back to the model.
    Rejected(String),
    /// The connection failed: the translation ends (nothing more can be checked).
    Broken(String),
    /// Cancelled, timed out or deadlocked: the request ends with 57014.
    Interrupted(String),
}

/// Translates questions; shared by every session.
pub struct Translator {
    config: NlConfig,
    providers: ProviderChain,
    cache: TranslationCache,
    builtin: BuiltinUse,
}

/// Where the builtin translator stands among the providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltinUse {
    /// No provider is configured: it answers alone.
    Only,
    /// Listed first: it answers what it can, the models the rest.
    First,
    /// Listed after a model: it answers when no model does.
    Last,
    /// Not listed (and models are).
    Off,
}

impl BuiltinUse {
    fn from_config(providers: &[crate::config::ProviderConfig]) -> BuiltinUse {
        match providers
            .iter()
            .position(|p| p.kind == ProviderKind::Builtin)
        {
            _ if providers.iter().all(|p| p.kind == ProviderKind::Builtin) => BuiltinUse::Only,
            Some(0) => BuiltinUse::First,
            Some(_) => BuiltinUse::Last,
            None => BuiltinUse::Off,
        }
    }
}

/// A translation made now (not cached).
struct Done {
    sql: String,
    tables: Vec<QualifiedName>,
    provider: String,
    attempts: u32,
}

/// The state of one translation's attempts.
struct Attempts {
    used: u32,
    last_sql: Option<String>,
    last_problem: Option<Problem>,
    provider: String,
}

impl Translator {
    /// The providers come from `config.providers`.
    pub fn new(config: NlConfig) -> Result<Translator, String> {
        let providers = ProviderChain::from_config(&config.providers)?;
        Ok(Self::with_providers(config, providers))
    }

    pub fn with_providers(config: NlConfig, providers: ProviderChain) -> Translator {
        Translator {
            cache: TranslationCache::new(config.cache_entries, config.similarity_threshold),
            // A chain built by hand (tests, benches) with no providers in
            // the configuration: the builtin is not listed.
            builtin: if config.providers.is_empty() && !providers.is_empty() {
                BuiltinUse::Off
            } else {
                BuiltinUse::from_config(&config.providers)
            },
            config,
            providers,
        }
    }

    pub fn config(&self) -> &NlConfig {
        &self.config
    }

    pub fn cache(&self) -> &TranslationCache {
        &self.cache
    }

    pub fn providers(&self) -> &ProviderChain {
        &self.providers
    }

    pub fn builtin(&self) -> BuiltinUse {
        self.builtin
    }

    /// Translate `question` against `schema`, in `conversation`, checking the
    /// SQL with `upstream`.
    pub async fn translate(
        &self,
        question: &str,
        schema: &Schema,
        conversation: &Conversation,
        upstream: &mut dyn Upstream,
    ) -> Result<Translation, NlError> {
        let question = question.trim();
        if question.is_empty() {
            return Err(NlError::new(
                NlErrorKind::InvalidQuestion,
                "the question is empty",
            ));
        }
        let span = tracing::info_span!(
            "nl.translate",
            attempts = tracing::field::Empty,
            cached = tracing::field::Empty
        );
        self.translate_in_span(question, schema, conversation, upstream, &span)
            .instrument(span.clone())
            .await
    }

    async fn translate_in_span(
        &self,
        question: &str,
        schema: &Schema,
        conversation: &Conversation,
        upstream: &mut dyn Upstream,
        span: &tracing::Span,
    ) -> Result<Translation, NlError> {
        let started = Instant::now();
        let context_digest = conversation.context_digest(question);

        let embedding = self.embedding(question).await;
        // A similar question's translation saves a model call; the builtin
        // costs nothing and must not answer "order items" with "orders".
        let builtin_first = matches!(self.builtin, BuiltinUse::Only | BuiltinUse::First);
        let hit = self
            .cache
            .get(
                question,
                schema.version(),
                context_digest,
                embedding.as_deref(),
            )
            .and_then(|hit| match hit {
                Hit::Exact(t) => Some(t),
                Hit::Similar { translation, .. }
                    if !builtin_first && translation.provider != builtin::NAME =>
                {
                    Some(translation)
                }
                Hit::Similar { .. } => None,
            });
        if let Some(t) = hit {
            span.record("cached", true);
            metrics::counter!("helios_nl_translations_total", "outcome" => "cached").increment(1);
            return Ok(Translation {
                cached: true,
                attempts: 0,
                ..(*t).clone()
            });
        }
        // The builtin translator first, when it is the only one or listed first.
        let mut builtin_refusal = None;
        let mut answered = None;
        if matches!(self.builtin, BuiltinUse::Only | BuiltinUse::First) {
            answered = match self.translate_builtin(question, schema, upstream).await? {
                Ok((sql, tables)) => Some(Ok(Done {
                    sql,
                    tables,
                    provider: builtin::NAME.into(),
                    attempts: 1,
                })),
                Err(e) if self.builtin == BuiltinUse::Only => Some(Err(e)),
                Err(e) => {
                    tracing::debug!(error = %e.message, "builtin declined; asking the models");
                    builtin_refusal = Some(e);
                    None
                }
            };
        }
        let outcome = match answered {
            Some(outcome) => outcome,
            None => {
                let embedding = embedding.as_deref();
                self.ask_models(
                    question,
                    schema,
                    conversation,
                    upstream,
                    embedding,
                    builtin_refusal,
                )
                .await?
            }
        };
        self.finish(
            question,
            schema,
            context_digest,
            embedding,
            started,
            span,
            outcome,
        )
    }

    /// The models' translation; the builtin's when it is listed last and no
    /// model answered. `builtin_refusal`: why the builtin, asked first, did not.
    async fn ask_models(
        &self,
        question: &str,
        schema: &Schema,
        conversation: &Conversation,
        upstream: &mut dyn Upstream,
        embedding: Option<&[f32]>,
        builtin_refusal: Option<NlError>,
    ) -> Result<Result<Done, NlError>, NlError> {
        let context: Vec<String> = conversation
            .turns()
            .flat_map(|t| [t.question.clone(), t.sql.clone()])
            .collect();
        let table_similarity = match embedding {
            Some(q) => self.table_similarity(schema, q).await,
            None => None,
        };
        let retrieved = schema.index.retrieve(
            question,
            &RetrievalOptions {
                token_budget: self.config.schema_token_budget,
                share_values: self.config.share_values,
                context,
                table_similarity,
            },
        );
        let input = PromptInput {
            question,
            schema: &retrieved,
            examples: &self.config.examples,
            conversation,
            max_examples: 3,
        };

        let mut attempts = Attempts {
            used: 0,
            last_sql: None,
            last_problem: None,
            provider: String::new(),
        };
        let mut result = None;
        if complexity::score(question) > self.config.complexity_threshold {
            result = self
                .translate_in_steps(question, &input, schema, upstream, &mut attempts)
                .await?;
        }
        let outcome = match result {
            Some(done) => Ok(done),
            None => {
                self.translate_direct(&prompt::build(&input), schema, upstream, &mut attempts)
                    .await
            }
        };
        let outcome = match outcome {
            Err(e) if e.kind == NlErrorKind::Provider && self.builtin == BuiltinUse::Last => {
                match self.translate_builtin(question, schema, upstream).await? {
                    Ok(done) => {
                        tracing::info!(error = %e.message, "no model answered; the builtin translator did");
                        attempts.provider = builtin::NAME.into();
                        attempts.used += 1;
                        Ok(done)
                    }
                    Err(refused) => Err(builtin_could_not_either(e, &refused)),
                }
            }
            Err(e) => Err(match builtin_refusal {
                Some(b) if e.kind == NlErrorKind::Provider => builtin_could_not_either(e, &b),
                _ => e,
            }),
            Ok(done) => Ok(done),
        };
        Ok(outcome.map(|(sql, tables)| Done {
            sql,
            tables,
            provider: attempts.provider,
            attempts: attempts.used,
        }))
    }

    /// Record a translation's outcome; a success is cached.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        question: &str,
        schema: &Schema,
        context_digest: u64,
        embedding: Option<Vec<f32>>,
        started: Instant,
        span: &tracing::Span,
        outcome: Result<Done, NlError>,
    ) -> Result<Translation, NlError> {
        metrics::histogram!("helios_nl_translate_seconds").record(started.elapsed().as_secs_f64());
        let done = match outcome {
            Ok(done) => done,
            Err(e) => {
                metrics::counter!("helios_nl_translations_total", "outcome" => "failed")
                    .increment(1);
                return Err(e);
            }
        };
        span.record("attempts", done.attempts);
        metrics::counter!("helios_nl_translations_total", "outcome" => "translated").increment(1);
        let translation = Translation {
            sql: done.sql,
            tables: done.tables,
            provider: done.provider,
            attempts: done.attempts,
            cached: false,
        };
        self.cache.insert(
            question,
            schema.version(),
            context_digest,
            embedding,
            Arc::new(translation.clone()),
        );
        Ok(translation)
    }

    /// The builtin translator's SQL, checked like a model's. The inner
    /// `Err`: it declined, or its SQL did not pass (a bug, said as such).
    async fn translate_builtin(
        &self,
        question: &str,
        schema: &Schema,
        upstream: &mut dyn Upstream,
    ) -> Result<Result<(String, Vec<QualifiedName>), NlError>, NlError> {
        let sql = match builtin::translate(question, schema.catalog(), &self.config.measures) {
            Ok(sql) => sql,
            Err(refusal) => return Ok(Err(refusal.into_error())),
        };
        Ok(match self.check(&sql, schema, upstream).await? {
            Ok(tables) => Ok((sql, tables)),
            Err(problem) => Err(NlError::new(
                NlErrorKind::Untranslatable,
                format!(
                    "the builtin translator's SQL did not pass validation: {}",
                    problem_text(&problem)
                ),
            )
            .with_detail(format!("SQL: {sql}"))),
        })
    }

    /// Cosine similarity of the question to each table's description
    /// (embedded once per schema version, in batches).
    async fn table_similarity(&self, schema: &Schema, question: &[f32]) -> Option<Vec<f32>> {
        // A failure is not kept: the next question tries again.
        let tables = schema
            .table_embeddings
            .get_or_try_init(|| async {
                let descriptions: Vec<String> = schema
                    .catalog()
                    .tables
                    .iter()
                    .map(table_description)
                    .collect();
                let mut out = Vec::with_capacity(descriptions.len());
                for chunk in descriptions.chunks(EMBED_BATCH) {
                    out.extend(self.providers.embed(chunk).await.ok_or(())?);
                }
                if out.len() == descriptions.len() {
                    Ok(out)
                } else {
                    Err(())
                }
            })
            .await
            .ok()?;
        Some(tables.iter().map(|t| cosine(question, t) as f32).collect())
    }

    async fn embedding(&self, question: &str) -> Option<Vec<f32>> {
        self.providers
            .embed(&[question.to_string()])
            .await
            .and_then(|mut v| v.pop())
    }

    /// Ask, check, and ask again with the reason, until valid or out of attempts.
    async fn translate_direct(
        &self,
        first: &ChatRequest,
        schema: &Schema,
        upstream: &mut dyn Upstream,
        attempts: &mut Attempts,
    ) -> Result<(String, Vec<QualifiedName>), NlError> {
        let mut request = first.clone();
        while attempts.used < self.config.max_attempts.max(1) {
            let reply = self.ask(&request, attempts, upstream).await?;
            let sql = match prompt::extract_sql(&reply.content) {
                Answer::Sql(sql) => sql,
                Answer::CannotAnswer(why) => {
                    return Err(NlError::new(
                        NlErrorKind::Untranslatable,
                        format!("the question cannot be answered from the schema: {why}"),
                    ))
                }
                Answer::Empty => {
                    let problem = Problem::Invalid("the answer held no SQL".into());
                    request = prompt::correction(&request, "", &problem_text(&problem));
                    attempts.last_problem = Some(problem);
                    continue;
                }
            };
            if attempts.last_sql.as_deref() == Some(sql.as_str()) {
                // The same SQL twice: the model is not converging.
                break;
            }
            attempts.last_sql = Some(sql.clone());
            match self.check(&sql, schema, upstream).await? {
                Ok(tables) => return Ok((sql, tables)),
                Err(problem) => {
                    tracing::debug!(%sql, problem = %problem_text(&problem), "rejected");
                    request = prompt::correction(&request, &sql, &problem_text(&problem));
                    attempts.last_problem = Some(problem);
                }
            }
        }
        Err(failure(attempts))
    }

    /// Complex questions: a step plan, each step written and checked as a
    /// CTE over the earlier ones. `Ok(None)`: no usable plan, translate directly.
    async fn translate_in_steps(
        &self,
        question: &str,
        input: &PromptInput<'_>,
        schema: &Schema,
        upstream: &mut dyn Upstream,
        attempts: &mut Attempts,
    ) -> Result<Option<(String, Vec<QualifiedName>)>, NlError> {
        let base = prompt::build(input);
        let mut plan_request = base.clone();
        plan_request.messages.push(ChatMessage::user(format!(
            "{}\nQuestion: {question}",
            complexity::PLAN_INSTRUCTION
        )));
        let reply = self.ask(&plan_request, attempts, upstream).await?;
        let Some(steps) = complexity::parse_plan(&reply.content) else {
            tracing::debug!("no usable step plan; translating directly");
            return Ok(None);
        };
        let mut done: Vec<(String, String)> = Vec::new();
        for step in &steps {
            let mut request = base.clone();
            let earlier: String = done
                .iter()
                .map(|(n, s)| format!("\n{n}:\n```sql\n{s}\n```"))
                .collect();
            request.messages.push(ChatMessage::user(format!(
                "We answer \"{question}\" in steps. Write the SQL for step {}: {}.{}{}",
                step.name,
                step.description,
                if earlier.is_empty() {
                    ""
                } else {
                    "\nEarlier steps, usable as tables by name:"
                },
                earlier
            )));
            let mut last = None;
            let per_step = self.config.max_attempts.max(1);
            let mut tries = 0;
            let mut written = None;
            while tries < per_step {
                tries += 1;
                let reply = self.ask(&request, attempts, upstream).await?;
                let Answer::Sql(sql) = prompt::extract_sql(&reply.content) else {
                    break;
                };
                if last.as_deref() == Some(sql.as_str()) {
                    break;
                }
                last = Some(sql.clone());
                let mut so_far = done.clone();
                so_far.push((step.name.clone(), sql.clone()));
                match self
                    .check(&complexity::compose(&so_far), schema, upstream)
                    .await?
                {
                    Ok(_) => {
                        written = Some(sql);
                        break;
                    }
                    Err(problem) => {
                        request = prompt::correction(&request, &sql, &problem_text(&problem));
                        attempts.last_problem = Some(problem);
                    }
                }
            }
            match written {
                Some(sql) => done.push((step.name.clone(), sql)),
                None => {
                    tracing::debug!(step = %step.name, "step failed; translating directly");
                    return Ok(None);
                }
            }
        }
        let sql = complexity::compose(&done);
        match self.check(&sql, schema, upstream).await? {
            Ok(tables) => Ok(Some((sql, tables))),
            Err(_) => Ok(None),
        }
    }

    /// One model call; a cancel from the client ends it (and the request).
    async fn ask(
        &self,
        request: &ChatRequest,
        attempts: &mut Attempts,
        upstream: &mut dyn Upstream,
    ) -> Result<ChatResponse, NlError> {
        attempts.used += 1;
        let answer = tokio::select! {
            // A cancel that arrives with the answer wins.
            biased;
            () = upstream.cancelled() => {
                return Err(NlError::new(
                    NlErrorKind::Interrupted,
                    "canceling statement due to user request",
                ))
            }
            answer = self.providers.complete(request) => answer,
        };
        match answer {
            Ok(reply) => {
                attempts.provider = reply.provider.clone();
                Ok(reply)
            }
            Err(errors) => Err(NlError::new(
                NlErrorKind::Provider,
                "no natural-language provider answered",
            )
            .with_detail(
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )),
        }
    }

    /// Static checks, the DataFusion plan, then EXPLAIN upstream. The outer
    /// `Err`: the upstream connection failed and the translation ends.
    async fn check(
        &self,
        sql: &str,
        schema: &Schema,
        upstream: &mut dyn Upstream,
    ) -> Result<Result<Vec<QualifiedName>, Problem>, NlError> {
        let validated = match validate::check_static(sql, schema.catalog()) {
            Ok(v) => v,
            Err(p) => return Ok(Err(p)),
        };
        if let Err(p) = validate::check_plan(&schema.checker, &validated.sql).await {
            return Ok(Err(p));
        }
        match upstream.explain(&validated.sql).await {
            Ok(()) => Ok(Ok(validated.tables)),
            Err(ExplainError::Rejected(m)) => Ok(Err(Problem::Invalid(m))),
            Err(ExplainError::Broken(m)) => Err(NlError::new(
                NlErrorKind::Upstream,
                format!("lost the upstream connection while checking the SQL: {m}"),
            )),
            Err(ExplainError::Interrupted(m)) => Err(NlError::new(
                NlErrorKind::Interrupted,
                format!("checking the generated SQL was interrupted: {m}"),
            )),
        }
    }
}

/// No model answered, and the builtin could not either: say both.
fn builtin_could_not_either(models: NlError, builtin: &NlError) -> NlError {
    models.with_hint(format!(
        "The builtin translator could not answer either: {}",
        builtin.message
    ))
}

fn problem_text(p: &Problem) -> String {
    match p {
        Problem::Refused(m) => format!("it is not allowed: {m}"),
        Problem::Invalid(m) => m.clone(),
    }
}

/// The error after the attempts ran out.
fn failure(attempts: &Attempts) -> NlError {
    let detail = attempts
        .last_sql
        .as_ref()
        .map(|sql| format!("last SQL: {sql}"));
    let e = match &attempts.last_problem {
        Some(Problem::Refused(m)) => NlError::new(
            NlErrorKind::Refused,
            format!("refused the generated SQL: {m}"),
        )
        .with_hint("Natural-language queries only read data."),
        Some(Problem::Invalid(m)) => NlError::new(
            NlErrorKind::Untranslatable,
            format!(
                "could not translate the question after {} attempt{}: {m}",
                attempts.used,
                if attempts.used == 1 { "" } else { "s" }
            ),
        )
        .with_hint("Rephrase the question, or name the tables and columns it is about."),
        None => NlError::new(NlErrorKind::Untranslatable, "the model gave no usable SQL"),
    };
    match detail {
        Some(d) => e.with_detail(d),
        None => e,
    }
}
