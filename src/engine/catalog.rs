//! What the engine needs to know of the upstream tables a statement names:
//! one catalog query, run as the client in the statement's snapshot.

use std::sync::Arc;

use helios_planner::catalog::TextRows;
use helios_planner::engine::upstream::{quote_literal, UpstreamColumn, UpstreamRelation};
use helios_planner::sql::RelationRef;

/// A relation a statement names, as the upstream resolved it.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The name as the statement wrote it.
    pub reference: RelationRef,
    pub relation: Arc<UpstreamRelation>,
    /// The client's role may read all of it (`SELECT` on the table, no
    /// row-level security in the way): an accelerated copy may stand in.
    pub readable_in_full: bool,
    /// A temporary table: only the session's own connection sees it.
    pub temporary: bool,
}

/// The settings that change how text values print, who the session is,
/// and how the database orders text (its `LC_COLLATE`, and a probe that
/// also catches ICU databases: bytewise order puts `B` before `a`).
pub const SETTINGS_SQL: &str = "SELECT current_setting('TimeZone'), current_setting('DateStyle'), \
     current_setting('IntervalStyle'), current_setting('extra_float_digits'), \
     current_setting('bytea_output'), current_setting('client_encoding'), \
     current_setting('server_encoding'), session_user, current_user, \
     (SELECT datcollate FROM pg_database WHERE datname = current_database()), \
     'a' < 'B'";

/// The catalog query for `refs` (resolved through the session's
/// search_path, as the statement's own names would be).
pub fn relations_sql(refs: &[RelationRef]) -> String {
    let values: Vec<String> = refs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let name = match &r.schema {
                Some(s) => format!("{}.{}", ident(s), ident(&r.name)),
                None => ident(&r.name),
            };
            format!("({i}, to_regclass({}))", quote_literal(&name))
        })
        .collect();
    format!(
        "SELECT r.i, c.oid, n.nspname, c.relname, c.relkind, \
           ((CASE WHEN c.relkind = 'p' \
                 THEN (SELECT coalesce(sum(pg_relation_size(t.relid)), 0) FROM pg_partition_tree(c.oid) t) \
                 ELSE pg_relation_size(c.oid) END) / current_setting('block_size')::int8)::int8, \
           c.reltuples::int8, \
           has_table_privilege(c.oid, 'SELECT') AND NOT (c.relrowsecurity AND NOT r2.rolbypassrls), \
           a.attname, a.atttypid, a.atttypmod, c.relpersistence = 't' \
         FROM (VALUES {}) AS r(i, oid) \
         JOIN pg_class c ON c.oid = r.oid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_roles r2 ON r2.rolname = current_user \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') \
         ORDER BY r.i, a.attnum",
        values.join(", ")
    )
}

fn ident(s: &str) -> String {
    helios_planner::engine::upstream::quote_ident(s)
}

/// The rows of [`relations_sql`], one [`Resolved`] per relation found.
pub fn parse_relations(refs: &[RelationRef], rows: &TextRows) -> Option<Vec<Resolved>> {
    let mut out: Vec<Resolved> = Vec::new();
    let mut current: Option<(usize, UpstreamRelation, bool, bool)> = None;
    let field = |row: &Vec<Option<String>>, i: usize| row.get(i).cloned().flatten();
    for row in rows {
        let i: usize = field(row, 0)?.parse().ok()?;
        if current.as_ref().is_none_or(|(ci, ..)| *ci != i) {
            if let Some((ci, rel, full, temporary)) = current.take() {
                out.push(Resolved {
                    reference: refs.get(ci)?.clone(),
                    relation: Arc::new(rel),
                    readable_in_full: full,
                    temporary,
                });
            }
            let rel = UpstreamRelation {
                oid: field(row, 1)?.parse().ok()?,
                schema: field(row, 2)?,
                name: field(row, 3)?,
                kind: field(row, 4)?.chars().next()?,
                pages: field(row, 5)?.parse().ok()?,
                estimated_rows: field(row, 6)?.parse().ok()?,
                columns: Vec::new(),
            };
            current = Some((
                i,
                rel,
                field(row, 7).as_deref() == Some("t"),
                field(row, 11).as_deref() == Some("t"),
            ));
        }
        let (_, rel, ..) = current.as_mut()?;
        rel.columns.push(UpstreamColumn::new(
            &field(row, 8)?,
            field(row, 9)?.parse().ok()?,
            field(row, 10)?.parse().ok()?,
        ));
    }
    if let Some((ci, rel, full, temporary)) = current.take() {
        out.push(Resolved {
            reference: refs.get(ci)?.clone(),
            relation: Arc::new(rel),
            readable_in_full: full,
            temporary,
        });
    }
    Some(out)
}

/// `SET LOCAL` statements carrying the session's identity and text
/// settings (only columns read as text depend on those) to a scan
/// connection, which logged in as `login_user`: after `SET ROLE` or `SET
/// SESSION AUTHORIZATION` in the session, the scans read as the role the
/// session has now, never as the one it logged in with.
pub fn settings_for_scan(row: &[Option<String>], login_user: &str) -> String {
    let mut out = String::new();
    let get = |i: usize| row.get(i).cloned().flatten();
    if let Some(session_user) = get(7).filter(|u| u != login_user) {
        out.push_str(&format!(
            "SET LOCAL SESSION AUTHORIZATION {}; ",
            ident(&session_user)
        ));
    }
    if let (Some(session_user), Some(current)) = (get(7), get(8)) {
        if current != session_user {
            out.push_str(&format!("SET LOCAL ROLE {}; ", ident(&current)));
        }
    }
    let names = [
        "TimeZone",
        "DateStyle",
        "IntervalStyle",
        "extra_float_digits",
        "bytea_output",
    ];
    for (name, value) in names.iter().zip(row) {
        if let Some(v) = value {
            out.push_str(&format!("SET LOCAL {name} = {}; ", quote_literal(v)));
        }
    }
    out
}
