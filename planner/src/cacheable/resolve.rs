//! The catalog query that settles a candidate read, run on the session's
//! own connection so that `search_path` and the role are exactly the
//! session's, and the reading of its answer.

use std::collections::HashMap;

use crate::catalog::TextRows;
use crate::sql::{FunctionRef, RelationRef};

use super::ReadShape;

/// Names the parser reports as functions that are SQL syntax, not `pg_proc`
/// entries: their volatility is their arguments'.
const SYNTAX_FUNCTIONS: &[&str] = &["coalesce", "nullif", "greatest", "least"];

/// `CURRENT_DATE`, `CURRENT_TIMESTAMP`, `LOCALTIME`, ... in a view or a
/// policy are stored as SQLValueFunction nodes, which record no dependency
/// on a function: found in the stored expression by their result type
/// (date, time, timetz, timestamp, timestamptz).
const CLOCK_KEYWORD: &str = r"\{SQLVALUEFUNCTION :op [0-9]+ :type (1082|1083|1266|1114|1184) ";

/// What the catalog says about a candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// Why it may not be cached, if it may not.
    pub refusal: Option<String>,
    /// Relation names whose writes retire its results: the relations it
    /// names, the base tables of views (recursively), partitions and
    /// inheritance children, their parents, and tables that row-level
    /// security policies on them read.
    pub tables: Vec<String>,
    /// Every function it calls (directly or through a view or policy) is
    /// immutable: running it cannot change the session's settings.
    pub keeps_settings: bool,
    /// It calls a volatile function outside `pg_catalog`, which may write
    /// anything: when it commits, everything cached for the database is retired.
    pub may_write: bool,
    /// Tables (and materialized views) it reads that `helios
    /// install-invalidation` does not watch: writes made to them elsewhere
    /// would go unheard.
    pub unwatched: Vec<String>,
}

/// A string literal PostgreSQL reads the same whatever
/// `standard_conforming_strings` says.
fn literal(s: &str) -> String {
    format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn regclass_text(r: &RelationRef) -> String {
    match &r.schema {
        Some(s) => format!("{}.{}", quote_ident(s), quote_ident(&r.name)),
        None => quote_ident(&r.name),
    }
}

fn function_label(f: &FunctionRef) -> String {
    match &f.schema {
        Some(s) => format!("{s}.{}", f.name),
        None => f.name.clone(),
    }
}

/// Relations a relation's rows come from: those a view's rewrite rules
/// read (or a table's rules write), inheritance children and partitions,
/// and what its policies read. Read from the stored expression trees (the
/// `:relid` of each range table entry), not `pg_depend`, which records no
/// dependency on the system catalogs.
const EXPAND: &str = "\
    SELECT m[1]::pg_catalog.oid AS oid FROM pg_catalog.pg_rewrite r, \
           pg_catalog.regexp_matches(r.ev_action::text, ':relid ([0-9]+)', 'g') AS m \
     WHERE r.ev_class = {rel}.oid AND m[1]::pg_catalog.oid <> {rel}.oid \
    UNION ALL \
    SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent = {rel}.oid \
    UNION ALL \
    SELECT m[1]::pg_catalog.oid FROM pg_catalog.pg_policy p, \
           pg_catalog.regexp_matches(COALESCE(p.polqual::text, '') || ' ' || COALESCE(p.polwithcheck::text, ''), \
                                     ':relid ([0-9]+)', 'g') AS m \
     WHERE p.polrelid = {rel}.oid AND m[1]::pg_catalog.oid <> {rel}.oid";

/// The stored expression trees of a relation's rewrite rules and policies.
const TREES: &str = "\
    SELECT r.ev_action::text AS tree FROM pg_catalog.pg_rewrite r WHERE r.ev_class = down.oid \
    UNION ALL \
    SELECT COALESCE(p2.polqual::text, '') || ' ' || COALESCE(p2.polwithcheck::text, '') \
      FROM pg_catalog.pg_policy p2 WHERE p2.polrelid = down.oid";

/// The query that settles `shape`. Rows: `(what, name, kind, persistence,
/// schema, watched)` with `what` one of `rel`, `missing`, `dep_fn`, `fn`.
pub fn resolve_sql(shape: &ReadShape) -> String {
    let names: Vec<String> = shape
        .relations
        .iter()
        .map(|r| literal(&regclass_text(r)))
        .collect();
    let mut sql = format!(
        "WITH RECURSIVE named AS (\
           SELECT n, pg_catalog.to_regclass(n) AS oid \
             FROM pg_catalog.unnest(ARRAY[{names}]::text[]) AS n), \
         down(oid) AS (\
           SELECT oid FROM named WHERE oid IS NOT NULL \
           UNION \
           SELECT x.oid FROM down, LATERAL ({expand}) x), \
         rels(oid) AS (\
           SELECT oid FROM down \
           UNION \
           SELECT i.inhparent FROM rels JOIN pg_catalog.pg_inherits i ON i.inhrelid = rels.oid) \
         SELECT 'rel', c.relname::text, c.relkind::text, c.relpersistence::text, s.nspname::text, \
                CASE WHEN c.relkind IN ('r', 'p') THEN EXISTS (\
                       SELECT FROM pg_catalog.pg_trigger t \
                        WHERE t.tgrelid = c.oid AND t.tgname = 'helios_notify' AND t.tgenabled <> 'D')::text \
                     WHEN c.relkind = 'm' THEN EXISTS (\
                       SELECT FROM pg_catalog.pg_event_trigger e \
                        WHERE e.evtname = 'helios_ddl' AND e.evtenabled <> 'D')::text \
                     ELSE 'true' END \
           FROM rels JOIN pg_catalog.pg_class c ON c.oid = rels.oid \
           JOIN pg_catalog.pg_namespace s ON s.oid = c.relnamespace \
         UNION ALL \
         SELECT 'missing', n, NULL, NULL, NULL, NULL FROM named WHERE oid IS NULL \
         UNION ALL \
         SELECT DISTINCT 'dep_fn', p.proname::text, p.provolatile::text, NULL, s.nspname::text, NULL \
           FROM down, LATERAL ({trees}) t, \
                pg_catalog.regexp_matches(t.tree, ':(?:funcid|opfuncid|aggfnoid|winfnoid) ([0-9]+)', 'g') AS m \
           JOIN pg_catalog.pg_proc p ON p.oid = m[1]::pg_catalog.oid \
           JOIN pg_catalog.pg_namespace s ON s.oid = p.pronamespace \
         UNION ALL \
         SELECT 'dep_fn', 'CURRENT_DATE, CURRENT_TIMESTAMP, LOCALTIME or the like', 's', NULL, 'pg_catalog', NULL \
           FROM down WHERE EXISTS (SELECT FROM ({trees}) t WHERE t.tree ~ {clock})",
        clock = literal(CLOCK_KEYWORD),
        trees = TREES,
        names = names.join(","),
        expand = EXPAND.replace("{rel}", "down"),
    );
    let functions: Vec<&FunctionRef> = shape
        .functions
        .iter()
        .filter(|f| f.schema.is_some() || !SYNTAX_FUNCTIONS.contains(&f.name.as_str()))
        .collect();
    if !functions.is_empty() {
        let values: Vec<String> = functions
            .iter()
            .map(|f| {
                format!(
                    "({}, {}, {})",
                    literal(&function_label(f)),
                    f.schema.as_deref().map_or("NULL".to_string(), literal),
                    literal(&f.name)
                )
            })
            .collect();
        sql.push_str(&format!(
            " UNION ALL \
             SELECT 'fn', f.label, \
                    pg_catalog.string_agg(DISTINCT p.provolatile::text || COALESCE(a.provolatile::text, ''), ''), NULL, \
                    pg_catalog.string_agg(DISTINCT s.nspname::text, ','), NULL \
               FROM (VALUES {}) AS f(label, sch, name) \
               JOIN pg_catalog.pg_proc p ON p.proname = f.name \
               JOIN pg_catalog.pg_namespace s ON s.oid = p.pronamespace \
               LEFT JOIN pg_catalog.pg_aggregate g ON g.aggfnoid = p.oid \
               LEFT JOIN pg_catalog.pg_proc a \
                 ON a.oid IN (g.aggtransfn, g.aggfinalfn, g.aggcombinefn, g.aggmtransfn, g.aggmfinalfn) \
              WHERE CASE WHEN f.sch IS NULL THEN s.nspname = ANY (pg_catalog.current_schemas(true)) \
                         ELSE s.nspname = f.sch END \
              GROUP BY f.label",
            values.join(",")
        ));
    }
    sql
}

/// Read the answer to [`resolve_sql`] for `shape`.
pub fn resolution(shape: &ReadShape, rows: &TextRows) -> Resolution {
    let mut r = Resolution {
        refusal: None,
        tables: Vec::new(),
        keeps_settings: true,
        may_write: false,
        unwatched: Vec::new(),
    };
    let refuse = |r: &mut Resolution, why: String| {
        if r.refusal.is_none() {
            r.refusal = Some(why);
        }
    };
    let mut seen_fns: HashMap<String, ()> = HashMap::new();
    for row in rows {
        let col = |i: usize| row.get(i).and_then(|v| v.as_deref()).unwrap_or("");
        let name = col(1).to_string();
        match col(0) {
            "rel" => {
                let (kind, persistence, schema) = (col(2), col(3), col(4));
                if schema == "pg_catalog" || schema == "information_schema" || schema == "pg_toast"
                {
                    refuse(
                        &mut r,
                        format!("it reads the system catalog ({schema}.{name})"),
                    );
                } else if persistence == "t" {
                    refuse(&mut r, format!("it reads the temporary table {name}"));
                } else if kind == "S" {
                    refuse(&mut r, format!("it reads the sequence {name}"));
                } else if kind == "f" {
                    refuse(&mut r, format!("it reads the foreign table {name}"));
                } else if !matches!(kind, "r" | "p" | "v" | "m") {
                    refuse(&mut r, format!("it reads {name}, of kind {kind}"));
                }
                if col(5) != "true" && !r.unwatched.contains(&name) {
                    r.unwatched.push(name.clone());
                }
                if !r.tables.contains(&name) {
                    r.tables.push(name);
                }
            }
            "missing" => refuse(&mut r, format!("{name} does not resolve to a relation")),
            "dep_fn" | "fn" => {
                let (volatility, schemas) = (col(2), col(4));
                if col(0) == "fn" {
                    seen_fns.insert(name.clone(), ());
                }
                // Every overload, and an aggregate's support functions
                // (an aggregate itself is always marked immutable).
                if volatility.chars().any(|v| v != 'i') {
                    r.keeps_settings = false;
                    let what = if volatility.contains('v') {
                        "volatile"
                    } else {
                        "stable"
                    };
                    refuse(&mut r, format!("it calls {name}(), which is {what}"));
                    if volatility.contains('v') && schemas.split(',').any(|s| s != "pg_catalog") {
                        r.may_write = true;
                    }
                }
            }
            _ => {}
        }
    }
    for f in &shape.functions {
        let label = function_label(f);
        if f.schema.is_none() && SYNTAX_FUNCTIONS.contains(&f.name.as_str()) {
            continue;
        }
        if !seen_fns.contains_key(&label) {
            r.keeps_settings = false;
            // Unknown to the catalog: a SQL keyword such as current_date, or
            // a function the upstream will reject.
            refuse(
                &mut r,
                format!("{label} is not a function Helios can vouch for"),
            );
        }
    }
    r
}

/// A family member that stands for "anything": a write to the relation
/// fires triggers of the user's, which may write any table. (No relation
/// has an empty name.)
pub const ANY_TABLE: &str = "";

/// Referencing tables whose rows a change to the referenced one changes
/// (`ON DELETE/UPDATE CASCADE`, `SET NULL`, `SET DEFAULT`).
const CASCADES: &str = "\
    SELECT k.conrelid FROM pg_catalog.pg_constraint k \
     WHERE k.contype = 'f' AND k.confrelid = {rel}.oid AND k.conrelid <> {rel}.oid \
       AND (k.confdeltype IN ('c', 'n', 'd') OR k.confupdtype IN ('c', 'n', 'd'))";

/// For writes: the relations whose rows a write to each named relation
/// (in any schema) may change — itself, a view's base tables, a table's
/// rule targets and partitions, tables its foreign keys cascade into — and
/// [`ANY_TABLE`] when one of them has a trigger (other than Helios's own
/// notify trigger). Rows: `(name, member)`.
pub fn families_sql(names: &[String]) -> String {
    let list: Vec<String> = names.iter().map(|n| literal(n)).collect();
    format!(
        "WITH RECURSIVE fam(name, oid) AS (\
           SELECT c.relname::text, c.oid FROM pg_catalog.pg_class c \
            WHERE c.relname = ANY (ARRAY[{}]::text[]) \
           UNION \
           SELECT fam.name, x.oid FROM fam, LATERAL ({} UNION ALL {}) x) \
         SELECT fam.name, c.relname::text FROM fam JOIN pg_catalog.pg_class c ON c.oid = fam.oid \
         UNION ALL \
         SELECT DISTINCT fam.name, '' FROM fam JOIN pg_catalog.pg_trigger t ON t.tgrelid = fam.oid \
          WHERE NOT t.tgisinternal AND t.tgname <> 'helios_notify'",
        list.join(","),
        EXPAND.replace("{rel}", "fam"),
        CASCADES.replace("{rel}", "fam"),
    )
}

/// Names of functions outside `pg_catalog` that are volatile: a statement
/// calling one may write anything. Rows: `(name)`.
pub const WRITERS_SQL: &str = "SELECT DISTINCT p.proname::text FROM pg_catalog.pg_proc p \
    JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
    WHERE p.provolatile = 'v' AND n.nspname NOT IN ('pg_catalog', 'information_schema')";

/// Read the answer to [`WRITERS_SQL`].
pub fn read_writers(rows: &TextRows) -> std::collections::HashSet<String> {
    rows.iter()
        .filter_map(|r| r.first().cloned().flatten())
        .collect()
}

/// Read the answer to [`families_sql`]: each name's members (itself included).
pub fn read_families(names: &[String], rows: &TextRows) -> HashMap<String, Vec<String>> {
    let mut fam: HashMap<String, Vec<String>> =
        names.iter().map(|n| (n.clone(), vec![n.clone()])).collect();
    for row in rows {
        if let (Some(Some(n)), Some(Some(m))) = (row.first(), row.get(1)) {
            let members = fam.entry(n.clone()).or_default();
            if !members.contains(m) {
                members.push(m.clone());
            }
        }
    }
    fam
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cacheable::classify;

    fn row(v: &[&str]) -> Vec<Option<String>> {
        v.iter()
            .map(|s| (!s.is_empty()).then(|| s.to_string()))
            .collect()
    }

    #[test]
    fn quotes_names_for_to_regclass() {
        let shape = classify("select * from \"My\"\"T\", s.t2").read.unwrap();
        let sql = resolve_sql(&shape);
        assert!(sql.contains(r#"E'"My""T"'"#), "{sql}");
        assert!(sql.contains(r#"E'"s"."t2"'"#), "{sql}");
        assert_eq!(literal("a'b\\c"), r"E'a\'b\\c'");
    }

    #[test]
    fn reads_the_verdict() {
        let shape = classify("select lower(a), coalesce(b, 0) from v")
            .read
            .unwrap();
        let ok = resolution(
            &shape,
            &vec![
                row(&["rel", "v", "v", "p", "public", "true"]),
                row(&["rel", "t", "r", "p", "public", "false"]),
                row(&["fn", "lower", "ii", "", "pg_catalog"]),
            ],
        );
        assert_eq!(ok.refusal, None);
        assert_eq!(ok.tables, ["v", "t"]);
        assert_eq!(ok.unwatched, ["t"]);
        assert!(ok.keeps_settings);

        let stable = resolution(
            &shape,
            &vec![
                row(&["rel", "v", "v", "p", "public"]),
                row(&["fn", "lower", "s", "", "pg_catalog"]),
            ],
        );
        assert!(stable.refusal.unwrap().contains("stable"));
        assert!(!stable.may_write);

        let missing_fn = resolution(&shape, &vec![row(&["rel", "v", "v", "p", "public"])]);
        assert!(missing_fn.refusal.unwrap().contains("lower"));

        for (r, why) in [
            (row(&["rel", "t", "r", "t", "pg_temp_3"]), "temporary"),
            (row(&["rel", "s", "S", "p", "public"]), "sequence"),
            (row(&["rel", "pg_class", "r", "p", "pg_catalog"]), "system"),
            (row(&["missing", "nope", "", "", ""]), "does not resolve"),
        ] {
            let shape = classify("select * from t").read.unwrap();
            let v = resolution(&shape, &vec![r]);
            assert!(v.refusal.unwrap().contains(why), "{why}");
        }

        let writer = classify("select f()").read.unwrap();
        let v = resolution(&writer, &vec![row(&["fn", "f", "v", "", "public"])]);
        assert!(v.may_write && !v.keeps_settings);
        let agg = classify("select my_agg(x) from t").read.unwrap();
        let v = resolution(&agg, &vec![row(&["fn", "my_agg", "iv", "", "public"])]);
        assert!(
            v.refusal.unwrap().contains("volatile"),
            "a volatile transition function"
        );
        let random = classify("select random()").read.unwrap();
        let v = resolution(
            &random,
            &vec![row(&["fn", "random", "v", "", "pg_catalog"])],
        );
        assert!(!v.may_write);
    }

    #[test]
    fn reads_families() {
        let f = read_families(
            &["v".into(), "t".into()],
            &vec![row(&["v", "v"]), row(&["v", "base"]), row(&["t", "t"])],
        );
        assert_eq!(f["v"], ["v", "base"]);
        assert_eq!(f["t"], ["t"]);
    }
}
