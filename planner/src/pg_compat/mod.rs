//! Enough of PostgreSQL's system catalogs and dialect, on top of an
//! embedded DataFusion [`SessionContext`], for psql's backslash commands,
//! pgjdbc's metadata queries and DBeaver-style browsers to work.
//!
//! - [`register`] snapshots the user tables registered in the context and
//!   registers schema `pg_catalog` (pg_class, pg_attribute, pg_type,
//!   pg_namespace, pg_index, ... as MemTables, with stable oids: user
//!   relations from 16384 in (schema, name) order) and the functions clients
//!   call (`format_type`, `pg_get_userbyid`, `pg_table_is_visible`,
//!   `current_schemas`, `version`, ...). Call it again after tables change.
//! - [`rewrite`] turns the PostgreSQL-isms DataFusion cannot parse or plan
//!   (`OPERATOR(pg_catalog.~)`, `COLLATE`, `::regclass`, `pg_catalog.`
//!   function prefixes, `ARRAY(subquery)`, `= ANY(array)`, correlated
//!   scalar subqueries, subqueries over catalogs that are always empty, ...)
//!   into equivalent SQL.
//! - [`answer`] answers the statements that are not queries at all for
//!   DataFusion: `SET client_encoding ...`, `SHOW search_path`, `SHOW ALL`.
//!
//! Arrays in the catalogs (`reloptions`, `datacl`, `current_schemas(true)`)
//! are text in PostgreSQL's array syntax (`{pg_catalog,public}`): DataFusion
//! is built without its array functions here, and text is what PostgreSQL
//! sends for them in text format anyway. The array functions registered
//! here (`array_to_string`, `array_upper`, subscripts, `= ANY`) accept both
//! that text and real Arrow lists.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::MemorySchemaProvider;
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::SessionContext;

mod arrays;
mod fallback;
mod functions;
mod information_schema;
mod lookup;
mod rewrite;
mod rows;
mod snapshot;
mod subquery;
mod tables;
mod types;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_clients;
#[cfg(test)]
mod tests_describe;
#[cfg(test)]
mod tests_more;

pub use rewrite::rewrite;

/// The oid of the one role (the connected user, owner of everything).
pub(crate) const OWNER_OID: i32 = 10;
/// The oid of schema `pg_catalog`.
pub(crate) const PG_CATALOG_OID: i32 = 11;
/// The oid of schema `public` (the default schema, whatever its name).
pub(crate) const PUBLIC_OID: i32 = 2200;
/// The oid of schema `information_schema`.
pub(crate) const INFORMATION_SCHEMA_OID: i32 = 13_000;
/// The oid of the database.
pub(crate) const DATABASE_OID: i32 = 5;
/// The first oid of user objects, as in PostgreSQL.
pub(crate) const FIRST_USER_OID: i32 = 16_384;

/// The version string `version()` returns; starts like PostgreSQL's so
/// clients that parse it (pgjdbc, DBeaver, SQLAlchemy) see a 15.
pub const VERSION: &str = "PostgreSQL 15.0 (Helios embedded DataFusion) on x86_64-pc-linux-gnu, \
                           compiled by rustc, 64-bit";

/// The `server_version` Helios reports for the embedded database.
pub const SERVER_VERSION: &str = "15.0";

/// Register schema `pg_catalog` (and what information_schema lacks) in
/// `ctx`'s default catalog, describing the user tables registered in `ctx`
/// at call time (call again after tables change), and the PostgreSQL
/// functions clients call. When DataFusion's own information_schema is off
/// (the default), a PostgreSQL-flavoured `information_schema` is registered
/// too (schemata, tables, columns, views, table_constraints,
/// key_column_usage); with it on, DataFusion's answers instead. `database` and `user` are what
/// `current_database()` and `current_user` answer; `user` owns everything.
pub fn register(ctx: &SessionContext, database: &str, user: &str) -> Result<()> {
    let snapshot = Arc::new(snapshot::collect(ctx, database, user)?);
    let catalog_name = ctx
        .copied_config()
        .options()
        .catalog
        .default_catalog
        .clone();
    let catalog = ctx.catalog(&catalog_name).ok_or_else(|| {
        DataFusionError::Plan(format!("default catalog {catalog_name} is not registered"))
    })?;
    let schema = Arc::new(MemorySchemaProvider::new());
    for def in tables::DEFS {
        let rows = rows::rows(def.name, &snapshot);
        let table = tables::mem_table(def, &rows)?;
        datafusion::catalog::SchemaProvider::register_table(
            schema.as_ref(),
            def.name.to_string(),
            Arc::new(table),
        )?;
    }
    catalog.register_schema("pg_catalog", schema)?;
    if !ctx.copied_config().information_schema() {
        let schema = Arc::new(MemorySchemaProvider::new());
        for def in information_schema::DEFS {
            let rows = information_schema::rows(def.name, &snapshot);
            let table = tables::mem_table(def, &rows)?;
            datafusion::catalog::SchemaProvider::register_table(
                schema.as_ref(),
                def.name.to_string(),
                Arc::new(table),
            )?;
        }
        catalog.register_schema("information_schema", schema)?;
    }
    for udf in functions::udfs(&snapshot) {
        ctx.register_udf(udf);
    }
    fallback::register(ctx);
    Ok(())
}

/// The answer to a statement DataFusion does not run.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A result set (one batch), e.g. for `SHOW search_path`.
    Rows(RecordBatch),
    /// A command with no rows; the string is its command tag (`SET`).
    Command(String),
}

/// Statements answered without DataFusion: `SET` of a PostgreSQL session
/// setting (accepted and ignored: `SET extra_float_digits = 3`, `SET
/// application_name = ...`, `SET SESSION CHARACTERISTICS ...`), `SHOW name`
/// and `SHOW ALL`, `SHOW TRANSACTION ISOLATION LEVEL`. None for anything
/// else, including `SET datafusion.*`, which DataFusion handles itself.
/// `user` is the connected user, for `SHOW session_authorization`.
pub fn answer(sql: &str, user: &str) -> Option<Answer> {
    let words: Vec<String> = sql
        .trim()
        .trim_end_matches(';')
        .split_whitespace()
        .map(|w| w.to_ascii_lowercase())
        .collect();
    match words.first().map(String::as_str) {
        Some("set") => {
            let target = match words.get(1).map(String::as_str) {
                Some("session" | "local") => words.get(2),
                _ => words.get(1),
            }?;
            if target.starts_with("datafusion.") {
                return None;
            }
            Some(Answer::Command("SET".into()))
        }
        Some("reset" | "discard" | "unlisten") if words.len() >= 2 => {
            if words[1].starts_with("datafusion.") {
                return None;
            }
            Some(Answer::Command(words[0].to_ascii_uppercase()))
        }
        Some("show") if words.len() >= 2 => {
            let name = words[1..].join(" ");
            let name = name.trim_matches('"');
            if name == "all" {
                let mut names = Vec::new();
                let mut values = Vec::new();
                let mut descs = Vec::new();
                for s in SETTINGS {
                    names.push(s.name.to_string());
                    values.push(setting_value(s.name, user).unwrap_or_default());
                    descs.push(s.description.to_string());
                }
                return Some(Answer::Rows(text_batch(
                    &["name", "setting", "description"],
                    vec![names, values, descs],
                )));
            }
            if name.starts_with("datafusion.") {
                return None;
            }
            let (column, key) = match name {
                "transaction isolation level" => ("transaction_isolation", "transaction_isolation"),
                other => (other, other),
            };
            let value = setting_value(key, user)?;
            Some(Answer::Rows(text_batch(&[column], vec![vec![value]])))
        }
        _ => None,
    }
}

fn text_batch(names: &[&str], columns: Vec<Vec<String>>) -> RecordBatch {
    let schema = Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let arrays: Vec<ArrayRef> = columns
        .into_iter()
        .map(|c| Arc::new(StringArray::from(c)) as ArrayRef)
        .collect();
    RecordBatch::try_new(schema, arrays).expect("text columns match their schema")
}

/// A run-time setting as `pg_settings`, `SHOW` and `current_setting` see it.
pub(crate) struct Setting {
    pub name: &'static str,
    pub value: &'static str,
    pub category: &'static str,
    pub description: &'static str,
}

const fn setting(
    name: &'static str,
    value: &'static str,
    category: &'static str,
    description: &'static str,
) -> Setting {
    Setting {
        name,
        value,
        category,
        description,
    }
}

const CLIENT: &str = "Client Connection Defaults";
const LOCALE: &str = "Client Connection Defaults / Locale and Formatting";
const PRESET: &str = "Preset Options";

/// The settings Helios reports (fixed: `SET` of them is accepted and
/// ignored). `session_authorization` and `is_superuser` follow the user.
pub(crate) const SETTINGS: &[Setting] = &[
    setting(
        "application_name",
        "",
        "Reporting and Logging",
        "Sets the application name.",
    ),
    setting(
        "bytea_output",
        "hex",
        CLIENT,
        "Sets the output format for bytea.",
    ),
    setting(
        "client_encoding",
        "UTF8",
        LOCALE,
        "Sets the client's character set encoding.",
    ),
    setting(
        "client_min_messages",
        "notice",
        CLIENT,
        "Sets the message levels sent to the client.",
    ),
    setting(
        "DateStyle",
        "ISO, MDY",
        LOCALE,
        "Sets the display format for dates.",
    ),
    setting(
        "default_transaction_isolation",
        "read committed",
        CLIENT,
        "Default isolation level.",
    ),
    setting(
        "default_transaction_read_only",
        "off",
        CLIENT,
        "Default read-only status.",
    ),
    setting(
        "extra_float_digits",
        "1",
        LOCALE,
        "Extra digits for floating-point values.",
    ),
    setting(
        "idle_in_transaction_session_timeout",
        "0",
        CLIENT,
        "Idle-in-transaction timeout.",
    ),
    setting(
        "integer_datetimes",
        "on",
        PRESET,
        "Datetimes are integer based.",
    ),
    setting(
        "IntervalStyle",
        "postgres",
        LOCALE,
        "Sets the display format for intervals.",
    ),
    setting(
        "is_superuser",
        "on",
        PRESET,
        "Whether the user is a superuser.",
    ),
    setting(
        "lc_collate",
        "C.UTF-8",
        LOCALE,
        "The collation order locale.",
    ),
    setting(
        "lc_ctype",
        "C.UTF-8",
        LOCALE,
        "The character classification locale.",
    ),
    setting(
        "lc_messages",
        "C.UTF-8",
        LOCALE,
        "The language messages are shown in.",
    ),
    setting(
        "lc_monetary",
        "C.UTF-8",
        LOCALE,
        "The locale for monetary amounts.",
    ),
    setting("lc_numeric", "C.UTF-8", LOCALE, "The locale for numbers."),
    setting(
        "lc_time",
        "C.UTF-8",
        LOCALE,
        "The locale for dates and times.",
    ),
    setting("lock_timeout", "0", CLIENT, "Lock wait timeout."),
    setting(
        "max_identifier_length",
        "63",
        PRESET,
        "Maximum identifier length.",
    ),
    setting(
        "max_index_keys",
        "32",
        PRESET,
        "Maximum number of index keys.",
    ),
    setting(
        "search_path",
        "\"$user\", public",
        CLIENT,
        "Schema search order.",
    ),
    setting(
        "server_encoding",
        "UTF8",
        PRESET,
        "The server character set encoding.",
    ),
    setting(
        "server_version",
        SERVER_VERSION,
        PRESET,
        "The server version.",
    ),
    setting(
        "server_version_num",
        "150000",
        PRESET,
        "The server version as an integer.",
    ),
    setting(
        "session_authorization",
        "",
        "Preset Options",
        "The session user name.",
    ),
    setting(
        "standard_conforming_strings",
        "on",
        CLIENT,
        "'...' strings treat backslashes literally.",
    ),
    setting("statement_timeout", "0", CLIENT, "Statement timeout."),
    setting("TimeZone", "UTC", LOCALE, "Time zone for timestamps."),
    setting(
        "transaction_isolation",
        "read committed",
        CLIENT,
        "Current isolation level.",
    ),
    setting(
        "transaction_read_only",
        "off",
        CLIENT,
        "Current read-only status.",
    ),
];

/// A setting's value by (case-insensitive) name.
pub(crate) fn setting_value(name: &str, user: &str) -> Option<String> {
    let s = SETTINGS
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(name))?;
    Some(match s.name {
        "session_authorization" => user.to_string(),
        _ => s.value.to_string(),
    })
}
