//! The catalog queries. Plain SQL over `pg_catalog`, valid on PostgreSQL 10
//! and later, returning text (they run over the simple protocol).

/// Database and effective search_path (existing schemas, `$user` resolved).
pub const SEARCH_PATH: &str =
    "select current_database(), array_to_string(current_schemas(false), chr(31))";

/// One row per column of every readable relation outside the system schemas.
/// Partitions are left out: queries name their parent.
pub const COLUMNS: &str = "\
select n.nspname, c.relname, c.relkind, obj_description(c.oid, 'pg_class'), c.reltuples::text,
       a.attname, format_type(a.atttypid, a.atttypmod), a.atttypid::int8::text,
       (not a.attnotnull)::text, col_description(c.oid, a.attnum)
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
where c.relkind in ('r', 'v', 'm', 'p', 'f')
  and not c.relispartition
  and n.nspname not in ('pg_catalog', 'information_schema')
  and n.nspname not like 'pg\\_toast%' and n.nspname not like 'pg\\_temp%'
order by n.nspname, c.relname, a.attnum";

/// Primary and foreign keys; column lists joined by chr(31).
pub const KEYS: &str = "\
select n.nspname, c.relname, con.contype::text,
       (select string_agg(a.attname, chr(31) order by k.ord)
          from unnest(con.conkey) with ordinality k(attnum, ord)
          join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.attnum),
       rn.nspname, rc.relname,
       (select string_agg(a.attname, chr(31) order by k.ord)
          from unnest(con.confkey) with ordinality k(attnum, ord)
          join pg_attribute a on a.attrelid = con.confrelid and a.attnum = k.attnum)
from pg_constraint con
join pg_class c on c.oid = con.conrelid
join pg_namespace n on n.oid = c.relnamespace
left join pg_class rc on rc.oid = con.confrelid
left join pg_namespace rn on rn.oid = rc.relnamespace
where con.contype in ('p', 'f')
  and n.nspname not in ('pg_catalog', 'information_schema')
order by n.nspname, c.relname, con.conname";

/// Column statistics: distinct counts and most common values (as an array literal).
pub const STATS: &str = "\
select schemaname, tablename, attname, n_distinct::text, most_common_vals::text
from pg_stats
where schemaname not in ('pg_catalog', 'information_schema')";

/// Indexes: table, index name, unique, primary, access method, partial,
/// key columns joined by chr(31) (an empty name for an expression), and
/// the definition.
pub const INDEXES: &str = "\
select n.nspname, c.relname, i.relname, ix.indisunique::text, ix.indisprimary::text, am.amname,
       (ix.indpred is not null)::text,
       (select string_agg(coalesce(a.attname, ''), chr(31) order by k.ord)
          from unnest(ix.indkey::int2[]) with ordinality k(attnum, ord)
          left join pg_attribute a on a.attrelid = c.oid and a.attnum = k.attnum and k.attnum > 0
         where k.ord <= ix.indnkeyatts),
       pg_get_indexdef(ix.indexrelid)
from pg_index ix
join pg_class c on c.oid = ix.indrelid
join pg_class i on i.oid = ix.indexrelid
join pg_namespace n on n.oid = c.relnamespace
join pg_am am on am.oid = i.relam
where n.nspname not in ('pg_catalog', 'information_schema')
  and n.nspname not like 'pg\\_toast%' and ix.indisvalid
order by n.nspname, c.relname, i.relname";

/// Table activity: pages, live/dead rows, writes, changes since ANALYZE,
/// seconds since the last ANALYZE, sequential and index scans.
pub const TABLE_STATS: &str = "\
select s.schemaname, s.relname, c.relpages::text, s.n_live_tup::text, s.n_dead_tup::text,
       s.n_tup_ins::text, s.n_tup_upd::text, s.n_tup_del::text, s.n_mod_since_analyze::text,
       extract(epoch from now() - greatest(s.last_analyze, s.last_autoanalyze))::text,
       coalesce(s.seq_scan, 0)::text, coalesce(s.idx_scan, 0)::text
from pg_stat_user_tables s
join pg_class c on c.oid = s.relid";

/// PostgreSQL's reserved key words (`pg_get_keywords()` with catcode 'R'):
/// identifiers spelled like these must be quoted.
/// Names of volatile functions. All of them, user-defined included: a name
/// is refused if any function of that name is volatile.
pub const VOLATILE_FUNCTIONS: &str =
    "SELECT DISTINCT proname FROM pg_catalog.pg_proc WHERE provolatile = 'v'";

pub fn is_reserved_keyword(s: &str) -> bool {
    const RESERVED: &[&str] = &[
        "all",
        "analyse",
        "analyze",
        "and",
        "any",
        "array",
        "as",
        "asc",
        "asymmetric",
        "both",
        "case",
        "cast",
        "check",
        "collate",
        "column",
        "constraint",
        "create",
        "current_catalog",
        "current_date",
        "current_role",
        "current_time",
        "current_timestamp",
        "current_user",
        "default",
        "deferrable",
        "desc",
        "distinct",
        "do",
        "else",
        "end",
        "except",
        "false",
        "fetch",
        "for",
        "foreign",
        "from",
        "grant",
        "group",
        "having",
        "in",
        "initially",
        "intersect",
        "into",
        "lateral",
        "leading",
        "limit",
        "localtime",
        "localtimestamp",
        "not",
        "null",
        "offset",
        "on",
        "only",
        "or",
        "order",
        "placing",
        "primary",
        "references",
        "returning",
        "select",
        "session_user",
        "some",
        "symmetric",
        "system_user",
        "table",
        "then",
        "to",
        "trailing",
        "true",
        "union",
        "unique",
        "user",
        "using",
        "variadic",
        "when",
        "where",
        "window",
        "with",
    ];
    RESERVED.binary_search(&s).is_ok()
}

/// Parse PostgreSQL's text form of a one-dimensional array: `{a,"b c",NULL}`.
/// NULL elements are dropped. `None` if it is not an array literal.
pub fn parse_array_literal(s: &str) -> Option<Vec<String>> {
    let inner = s.strip_prefix('{')?.strip_suffix('}')?;
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    if inner.is_empty() {
        return Some(out);
    }
    loop {
        let mut item = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            loop {
                match chars.next()? {
                    '\\' => item.push(chars.next()?),
                    '"' => break,
                    c => item.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                item.push(c);
                chars.next();
            }
        }
        if quoted || item != "NULL" {
            out.push(item);
        }
        match chars.next() {
            None => return Some(out),
            Some(',') => continue,
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_sorted_for_binary_search() {
        assert!(is_reserved_keyword("order") && is_reserved_keyword("with"));
        assert!(!is_reserved_keyword("orders"));
    }

    #[test]
    fn parses_array_literals() {
        assert_eq!(
            parse_array_literal(r#"{a,"b c","d\"e",NULL,"NULL"}"#).unwrap(),
            vec!["a", "b c", "d\"e", "NULL"]
        );
        assert_eq!(parse_array_literal("{}").unwrap(), Vec::<String>::new());
        assert!(parse_array_literal("nope").is_none());
    }
}
