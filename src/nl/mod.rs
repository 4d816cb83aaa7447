//! The natural-language service every session shares: the translator (with
//! its providers and caches) and the schemas it translates against, one per
//! (database, user), reloaded when older than `nl.catalog_refresh`.
//!
//! A catalog is loaded over the asking session's own upstream connection, so
//! it is what that role sees in that database, with that search_path — and
//! needs no second login.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use helios_nl::translate::{Schema, Translator};
use helios_nl::{NlConfig, NlError, NlErrorKind};
use helios_planner::catalog::{self, LoadOptions, TextQuery};

/// The `[nl]` section as the service runs it: serving the embedded demo
/// with no `nl.measures` configured, the demo's own measures ("revenue",
/// "sales") are there for the builtin translator.
pub fn effective_config(config: &NlConfig, embedded: bool) -> NlConfig {
    let mut config = config.clone();
    if embedded && config.measures.is_empty() {
        config.measures = helios_planner::engine::demo::demo_measures()
            .into_iter()
            .map(|(name, sql, synonyms)| helios_nl::config::Measure {
                name: name.into(),
                sql: sql.into(),
                synonyms: synonyms.iter().map(|s| s.to_string()).collect(),
            })
            .collect();
    }
    config
}

/// Whose view of the schema a snapshot is: the database, the role that
/// reads it (after any `SET ROLE`) and its search_path. Sessions that differ
/// in any of these see different tables under the same names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SchemaKey {
    pub database: String,
    pub role: String,
    pub search_path: String,
}

struct Loaded {
    schema: Arc<Schema>,
    at: Instant,
}

/// Shared by all sessions.
pub struct NlService {
    pub translator: Translator,
    schemas: Mutex<HashMap<SchemaKey, Loaded>>,
}

impl NlService {
    pub fn new(config: NlConfig) -> Result<NlService, String> {
        Ok(NlService {
            translator: Translator::new(config)?,
            schemas: Mutex::new(HashMap::new()),
        })
    }

    pub fn config(&self) -> &NlConfig {
        self.translator.config()
    }

    /// The snapshot for `key`, unless missing or older than `nl.catalog_refresh`.
    pub fn cached_schema(&self, key: &SchemaKey) -> Option<Arc<Schema>> {
        let refresh = self.config().catalog_refresh;
        let schemas = self.schemas.lock().unwrap();
        let l = schemas.get(key)?;
        (l.at.elapsed() < refresh).then(|| l.schema.clone())
    }

    /// Load the snapshot for `key` through `q` and keep it.
    pub async fn load_schema<Q: TextQuery>(
        &self,
        key: &SchemaKey,
        q: &mut Q,
    ) -> Result<Arc<Schema>, NlError> {
        let started = Instant::now();
        let opts = LoadOptions {
            include: self.config().include_tables.clone(),
            exclude: self.config().exclude_tables.clone(),
            ..LoadOptions::default()
        };
        let catalog = catalog::load(q, &opts).await.map_err(|e| {
            NlError::new(
                NlErrorKind::Catalog,
                format!("could not read the schema: {e}"),
            )
        })?;
        let tables = catalog.tables.len();
        let schema = Arc::new(Schema::new(Arc::new(catalog)));
        tracing::debug!(
            tables,
            version = schema.version(),
            ms = started.elapsed().as_millis() as u64,
            "catalog loaded"
        );
        let old = self.schemas.lock().unwrap().insert(
            key.clone(),
            Loaded {
                schema: schema.clone(),
                at: Instant::now(),
            },
        );
        if let Some(old) = old {
            if old.schema.version() != schema.version() {
                // The schema changed: translations made for it may be wrong now.
                self.translator
                    .cache()
                    .invalidate_schema(old.schema.version());
            }
        }
        Ok(schema)
    }
}
