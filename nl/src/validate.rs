//! Is the model's SQL something Helios will run?
//!
//! Two verdicts, because the model gets them back differently:
//! - [`Problem::Refused`]: the statement would write, lock, sleep, read
//!   files or signal backends. It is never run; the message tells the model
//!   why, and a refusal on the last attempt is a 42501 error.
//! - [`Problem::Invalid`]: it does not parse, or names something that does
//!   not exist. The message (PostgreSQL-style) goes back to the model.
//!
//! The session's `BEGIN READ ONLY` is the last line of defence; these checks
//! are the first, so a destructive answer is refused before the upstream
//! sees any of it.

use helios_planner::check::{PlanCheck, PlanChecker};
use helios_planner::sql::{analyze, parse, FunctionRef, StatementKind};
use helios_planner::{Catalog, QualifiedName};

/// SQL that passed [`check_static`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    /// The statement as the model wrote it, without a trailing `;`.
    pub sql: String,
    /// The catalog relations it reads, in first-use order.
    pub tables: Vec<QualifiedName>,
}

/// Why an answer was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Not read-only; never run.
    Refused(String),
    /// Unparsable or naming something unknown.
    Invalid(String),
}

/// Functions that write, sleep, touch files, signal backends, change
/// settings or reach outside the database. `BEGIN READ ONLY` stops some of
/// these but not all (`pg_sleep`, `pg_read_file`, `pg_terminate_backend`,
/// `set_config`, advisory locks run fine in a read-only transaction).
const DENIED_FUNCTIONS: &[&str] = &[
    // sequences
    "nextval",
    "setval",
    // time
    "pg_sleep",
    "pg_sleep_for",
    "pg_sleep_until",
    // files and the server's file system
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_stat_file",
    "pg_ls_logdir",
    "pg_ls_waldir",
    "pg_ls_tmpdir",
    "pg_ls_archive_statusdir",
    "pg_file_write",
    "pg_file_rename",
    "pg_file_unlink",
    "lo_import",
    "lo_export",
    "lo_unlink",
    "lo_create",
    "lo_from_bytea",
    "lo_put",
    // other backends and the server
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_promote",
    "pg_switch_wal",
    "pg_create_restore_point",
    "pg_backup_start",
    "pg_backup_stop",
    "pg_start_backup",
    "pg_stop_backup",
    "pg_notify",
    "set_config",
    // whole-database dumps as XML run arbitrary queries
    "query_to_xml",
    "query_to_xmlschema",
    "query_to_xml_and_xmlschema",
    "cursor_to_xml",
    "cursor_to_xmlschema",
    "table_to_xml",
    "table_to_xmlschema",
    "table_to_xml_and_xmlschema",
    "schema_to_xml",
    "schema_to_xmlschema",
    "schema_to_xml_and_xmlschema",
    "database_to_xml",
    "database_to_xmlschema",
    "database_to_xml_and_xmlschema",
    // functions that run SQL text of their own, out of the checker's sight
    "ts_stat",
    "ts_rewrite",
    "pg_stat_statements_reset",
    // other databases
    "dblink",
    "dblink_exec",
    "dblink_connect",
    "dblink_send_query",
];

/// Function-name prefixes denied as families.
const DENIED_PREFIXES: &[&str] = &[
    "pg_advisory_",
    "pg_try_advisory_",
    "pg_stat_reset",
    "pg_create_",
    "pg_drop_replication",
    "pg_replication_",
    "pg_copy_",
    "pg_logical_",
    "pg_import_",
    "pg_wal_replay_",
    "pg_log_backend",
    "dblink_",
    "lo_",
];

/// Volatile functions that only read: sizes of relations, random numbers,
/// the wall clock. Every other volatile function is refused.
const HARMLESS_VOLATILE: &[&str] = &[
    "random",
    "random_normal",
    "gen_random_uuid",
    "uuid_generate_v4",
    "clock_timestamp",
    "timeofday",
    "pg_relation_size",
    "pg_total_relation_size",
    "pg_table_size",
    "pg_indexes_size",
    "pg_database_size",
    "pg_tablespace_size",
];

fn denied(f: &FunctionRef) -> bool {
    // A function in a user schema that happens to share a name is still
    // refused: the model has no business calling it.
    let name = f.name.as_str();
    DENIED_FUNCTIONS.contains(&name) || DENIED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Parse, one statement, read-only, known relations.
pub fn check_static(sql: &str, catalog: &Catalog) -> Result<Validated, Problem> {
    let text = sql.trim().trim_end_matches(';').trim_end().to_string();
    if text.is_empty() {
        return Err(Problem::Invalid("the answer held no SQL statement".into()));
    }
    let mut statements =
        parse(&text).map_err(|e| Problem::Invalid(format!("syntax error: {e}")))?;
    match statements.len() {
        0 => return Err(Problem::Invalid("the answer held no SQL statement".into())),
        1 => {}
        n => {
            return Err(Problem::Refused(format!(
                "{n} statements; exactly one SELECT is allowed"
            )))
        }
    }
    let lower = text.to_ascii_lowercase();
    if lower.contains("u&\"") || lower.contains("u&'") {
        // Unicode escapes can spell any name (U&"pg\005fsleep"): what the
        // parser sees is not what PostgreSQL calls.
        return Err(Problem::Refused(
            "Unicode-escaped identifiers and strings (U&...) are not allowed".into(),
        ));
    }
    let statement = statements.pop().expect("one statement");
    let info = analyze(&statement);
    match &info.kind {
        StatementKind::Query => {}
        StatementKind::Insert => return Err(refused_kind("INSERT")),
        StatementKind::Update => return Err(refused_kind("UPDATE")),
        StatementKind::Delete => return Err(refused_kind("DELETE")),
        StatementKind::Merge => return Err(refused_kind("MERGE")),
        StatementKind::Ddl => return Err(refused_kind("a DDL statement")),
        StatementKind::Other(word) => return Err(refused_kind(word)),
    }
    if info.data_modifying_cte {
        return Err(Problem::Refused(
            "a WITH clause that inserts, updates or deletes writes data".into(),
        ));
    }
    if info.select_into {
        return Err(Problem::Refused("SELECT INTO creates a table".into()));
    }
    if info.locking {
        return Err(Problem::Refused(
            "a locking clause (FOR UPDATE / FOR SHARE) takes row locks".into(),
        ));
    }
    if let Some(f) = info.functions.iter().find(|f| denied(f)) {
        return Err(Problem::Refused(format!(
            "function {}() writes, waits, reads files or acts on the server",
            f.name
        )));
    }
    // PostgreSQL's own word on the rest: a volatile function may change
    // things (or run SQL of its own), whatever its name.
    if let Some(f) = info.functions.iter().find(|f| {
        catalog.volatile_functions.contains(&f.name)
            && !HARMLESS_VOLATILE.contains(&f.name.as_str())
    }) {
        return Err(Problem::Refused(format!(
            "function {}() is volatile: it may change data or settings",
            f.name
        )));
    }
    let mut tables = Vec::new();
    for r in &info.relations {
        if is_system_schema(r.schema.as_deref()) {
            continue;
        }
        match catalog.resolve(r.schema.as_deref(), &r.name) {
            Some(t) => {
                let q = t.qualified_name();
                if !tables.contains(&q) {
                    tables.push(q);
                }
            }
            None => {
                let shown = match &r.schema {
                    Some(s) => format!("{s}.{}", r.name),
                    None => r.name.clone(),
                };
                return Err(Problem::Invalid(format!(
                    "relation \"{shown}\" does not exist; use only the tables listed in the schema"
                )));
            }
        }
    }
    Ok(Validated { sql: text, tables })
}

/// Plan in DataFusion against the catalog: unknown columns and relations
/// come back as [`Problem::Invalid`]; what DataFusion cannot plan (PostgreSQL
/// features it lacks) is left to the upstream's EXPLAIN.
pub async fn check_plan(checker: &PlanChecker, sql: &str) -> Result<(), Problem> {
    match checker.check(sql).await {
        PlanCheck::Ok | PlanCheck::Unsupported { .. } => Ok(()),
        PlanCheck::Unknown { message } => Err(Problem::Invalid(message)),
    }
}

fn refused_kind(what: &str) -> Problem {
    Problem::Refused(format!("{what} is not a read-only query"))
}

fn is_system_schema(schema: Option<&str>) -> bool {
    matches!(schema, Some("pg_catalog" | "information_schema"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use helios_planner::{Column, RelationKind, Table};

    fn catalog() -> Catalog {
        let col = |n: &str, t: &str| Column {
            name: n.into(),
            data_type: t.into(),
            type_oid: 0,
            nullable: true,
            comment: None,
            common_values: vec![],
            n_distinct: None,
        };
        let table = |n: &str, cols: Vec<Column>| Table {
            schema: "public".into(),
            name: n.into(),
            kind: RelationKind::Table,
            comment: None,
            row_estimate: 0.0,
            columns: cols,
            primary_key: vec!["id".into()],
            foreign_keys: vec![],
            indexes: vec![],
            stats: None,
        };
        Catalog::new(
            "shop".into(),
            vec!["public".into()],
            vec![
                table("customers", vec![col("id", "integer"), col("name", "text")]),
                table(
                    "orders",
                    vec![
                        col("id", "integer"),
                        col("customer_id", "integer"),
                        col("total", "numeric(10,2)"),
                    ],
                ),
            ],
        )
    }

    fn refused(sql: &str) -> String {
        match check_static(sql, &catalog()) {
            Err(Problem::Refused(m)) => m,
            other => panic!("{sql}: expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn accepts_one_read_only_query_and_names_its_tables() {
        let v = check_static(
            "SELECT c.name, sum(o.total) FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY 1;\n",
            &catalog(),
        )
        .unwrap();
        assert!(!v.sql.ends_with(';'));
        let names: Vec<String> = v.tables.iter().map(|t| t.to_string()).collect();
        assert_eq!(names, ["public.customers", "public.orders"]);
        for ok in [
            "WITH t AS (SELECT * FROM orders) SELECT count(*) FROM t",
            "VALUES (1)",
            "SELECT now(), count(*) FROM pg_catalog.pg_class",
        ] {
            check_static(ok, &catalog()).unwrap_or_else(|e| panic!("{ok}: {e:?}"));
        }
    }

    #[test]
    fn refuses_writes_locks_and_dangerous_functions() {
        assert!(refused("DELETE FROM orders").contains("DELETE"));
        assert!(refused("UPDATE orders SET total = 0").contains("UPDATE"));
        assert!(refused("DROP TABLE orders").contains("DDL"));
        assert!(refused("INSERT INTO orders VALUES (1, 1, 1)").contains("INSERT"));
        assert!(refused("SELECT * FROM orders FOR UPDATE").contains("locking"));
        assert!(
            refused("WITH gone AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM gone")
                .contains("WITH")
        );
        assert!(refused("SELECT * INTO copy FROM orders").contains("INTO"));
        assert!(refused("SELECT pg_read_file('/etc/passwd')").contains("pg_read_file"));
        assert!(refused("SELECT pg_sleep(10)").contains("pg_sleep"));
        assert!(refused("SELECT pg_catalog.pg_sleep(10)").contains("pg_sleep"));
        assert!(refused("SELECT pg_terminate_backend(1)").contains("pg_terminate_backend"));
        assert!(refused("SELECT pg_advisory_lock(1)").contains("pg_advisory_lock"));
        assert!(
            refused("SELECT query_to_xml('delete from orders', true, true, '')")
                .contains("query_to_xml")
        );
        assert!(refused("SELECT 1; DELETE FROM orders").contains("2 statements"));
        assert!(refused("SET statement_timeout = 0").contains("SET"));
    }

    #[test]
    fn volatile_functions_are_refused_unless_harmless_and_unicode_escapes_always() {
        let mut c = catalog();
        c.volatile_functions = ["my_audit_log", "random", "pg_relation_size", "nextval"]
            .into_iter()
            .map(String::from)
            .collect();
        match check_static("SELECT my_audit_log(id) FROM orders", &c) {
            Err(Problem::Refused(m)) => {
                assert!(m.contains("my_audit_log") && m.contains("volatile"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        check_static(
            "SELECT random(), pg_relation_size('orders') FROM orders",
            &c,
        )
        .unwrap();
        assert!(refused(r#"SELECT U&"pg\005fsleep"(5)"#).contains("U&"));
        assert!(refused("SELECT u&'\\0041' FROM orders").contains("U&"));
        assert!(
            refused("SELECT word FROM ts_stat('SELECT to_tsvector(name) FROM customers')")
                .contains("ts_stat")
        );
    }

    #[test]
    fn unknown_relations_and_syntax_errors_are_invalid() {
        match check_static("SELECT * FROM invoices", &catalog()) {
            Err(Problem::Invalid(m)) => assert!(m.contains("\"invoices\" does not exist"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            check_static("SELEC 1", &catalog()),
            Err(Problem::Invalid(_))
        ));
        assert!(matches!(
            check_static("  ; ", &catalog()),
            Err(Problem::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn plan_check_names_a_missing_column() {
        let c = catalog();
        let checker = PlanChecker::new(&c);
        let err = check_plan(&checker, "SELECT revenue FROM orders")
            .await
            .unwrap_err();
        match err {
            Problem::Invalid(m) => assert!(m.contains("revenue"), "{m}"),
            other => panic!("{other:?}"),
        }
        check_plan(&checker, "SELECT total FROM orders")
            .await
            .unwrap();
    }
}
