//! Column names out of the condition texts EXPLAIN prints, and the wording
//! of the hints built from them.
//!
//! PostgreSQL prints conditions deparsed, in a regular shape: every operator
//! clause in parentheses, literals quoted and cast (`'open'::text`),
//! columns bare or qualified (`o.amount`), functions followed by `(`. That
//! is regular enough to pick out column names with a small scanner rather
//! than a SQL parser. The result is a hint: the index module proposes and
//! verifies indexes on its own, so a missed or extra name costs little.

use helios_planner::catalog::quote_ident;

/// A column a condition mentions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ColumnRef {
    /// The table alias or name before the dot, if printed.
    pub qualifier: Option<String>,
    pub name: String,
    /// Compared with `=` (or `= ANY (...)`): such columns lead an index.
    pub equality: bool,
}

/// Words that look like identifiers in deparsed conditions but are not
/// columns.
const NOT_COLUMNS: &[&str] = &[
    "and",
    "or",
    "not",
    "is",
    "null",
    "true",
    "false",
    "any",
    "all",
    "some",
    "like",
    "ilike",
    "similar",
    "to",
    "in",
    "between",
    "symmetric",
    "distinct",
    "from",
    "case",
    "when",
    "then",
    "else",
    "end",
    "array",
    "collate",
    "unknown",
    "subplan",
    "initplan",
    "hashed",
    "returns",
    "interval",
    "escape",
    "at",
    "time",
    "zone",
    "exists",
];

/// The columns `text` mentions, each once, in order of first appearance.
pub(crate) fn condition_columns(text: &str) -> Vec<ColumnRef> {
    let chars: Vec<char> = text.chars().collect();
    let mut out: Vec<ColumnRef> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            i = skip_string(&chars, i);
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            // A cast: the type name may be several words
            // (`timestamp with time zone`), none of them columns.
            i += 2;
            while i < chars.len() && (is_ident_char(chars[i]) || " \"[]".contains(chars[i])) {
                i += 1;
            }
        } else if c == '$' {
            // A parameter ($1) or an InitPlan's output ($0).
            i += 1;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
        } else if is_ident_start(c) || c == '"' {
            let start = i;
            let mut parts = Vec::new();
            loop {
                let (part, next) = identifier(&chars, i);
                parts.push(part);
                i = next;
                if chars.get(i) == Some(&'.') {
                    i += 1;
                } else {
                    break;
                }
            }
            let quoted = chars[start] == '"';
            let rest = chars[i..].iter().skip_while(|c| c.is_whitespace());
            let next: String = rest.take(2).collect();
            let function = next.starts_with('(');
            // EXPLAIN quotes every column name that is not all lower case,
            // so a bare word with a capital is a keyword (AND, SubPlan).
            let keyword = !quoted
                && parts.len() == 1
                && (parts[0].chars().any(char::is_uppercase)
                    || NOT_COLUMNS.contains(&parts[0].as_str()));
            let number_like = parts.iter().any(|p| p.is_empty());
            if !function && !keyword && !number_like {
                let name = parts.pop().unwrap_or_default();
                let equality = next.starts_with('=') && !next.starts_with("=>");
                push(&mut out, parts.pop(), name, equality);
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The column a sort key sorts by, when it is a plain column
/// (`amount DESC`, `o.created_at NULLS FIRST`); `None` for expressions
/// (`(sum(amount))`), which no plain index provides.
pub(crate) fn sort_key_column(key: &str) -> Option<ColumnRef> {
    let mut key = key.trim();
    for suffix in [" NULLS FIRST", " NULLS LAST", " DESC", " ASC"] {
        key = key.strip_suffix(suffix).unwrap_or(key).trim_end();
    }
    let cols = condition_columns(key);
    match cols.as_slice() {
        [one] if is_just(key, one) => Some(one.clone()),
        _ => None,
    }
}

/// `key` is nothing but the column `col` (possibly qualified and quoted).
fn is_just(key: &str, col: &ColumnRef) -> bool {
    let plain = |s: &str| s.trim_matches('"').to_string();
    let parts: Vec<String> = key.split('.').map(plain).collect();
    match (&col.qualifier, parts.as_slice()) {
        (None, [name]) => *name == col.name,
        (Some(q), [qual, name]) => qual == q && *name == col.name,
        _ => false,
    }
}

/// Order columns for an index: equality columns first (an index can only
/// range-scan on its last used column), at most `max` of them.
pub(crate) fn index_columns(cols: &[ColumnRef], max: usize) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let ordered = cols
        .iter()
        .filter(|c| c.equality)
        .chain(cols.iter().filter(|c| !c.equality));
    for c in ordered {
        if names.len() < max && !names.contains(&c.name) {
            names.push(c.name.clone());
        }
    }
    names
}

/// `CREATE INDEX CONCURRENTLY ON schema.table (a, b)`: concurrently, because
/// a plain CREATE INDEX blocks writes to the table while it builds.
pub(crate) fn create_index(schema: Option<&str>, table: &str, columns: &[String]) -> String {
    let items: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
    create_index_on(schema, table, &items)
}

/// [`create_index`] with the key items already written as SQL
/// (`amount DESC`).
pub(crate) fn create_index_on(schema: Option<&str>, table: &str, items: &[String]) -> String {
    format!(
        "CREATE INDEX CONCURRENTLY ON {} ({})",
        table_name(schema, table),
        items.join(", ")
    )
}

/// `schema.table`, quoted where needed; the bare table when the plan did
/// not say its schema.
pub(crate) fn table_name(schema: Option<&str>, table: &str) -> String {
    match schema {
        Some(s) => format!("{}.{}", quote_ident(s), quote_ident(table)),
        None => quote_ident(table),
    }
}

/// A work_mem value comfortably above `kb` kilobytes: twice it (rows take
/// more room in memory than in a temporary file), rounded up to a power of
/// two so the advice reads like a setting a person would pick.
pub(crate) fn memory_setting(kb: f64) -> String {
    let want = (kb.max(1.0) * 2.0).ceil() as u64;
    let kb = want.next_power_of_two().max(64);
    if kb >= 1024 * 1024 {
        format!("{}GB", kb / (1024 * 1024))
    } else if kb >= 1024 {
        format!("{}MB", kb / 1024)
    } else {
        format!("{kb}kB")
    }
}

/// Shorten a condition for a one-line location.
pub(crate) fn clip(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        text.to_string()
    } else {
        let head: String = text.chars().take(max_chars).collect();
        format!("{head}…")
    }
}

fn push(out: &mut Vec<ColumnRef>, qualifier: Option<String>, name: String, equality: bool) {
    match out
        .iter_mut()
        .find(|c| c.name == name && c.qualifier == qualifier)
    {
        Some(seen) => seen.equality |= equality,
        None => out.push(ColumnRef {
            qualifier,
            name,
            equality,
        }),
    }
}

/// One identifier part from `i`: bare (lower-cased as PostgreSQL folds it —
/// EXPLAIN prints bare names only when they are already lower case) or
/// double-quoted (kept as written, `""` unescaped).
fn identifier(chars: &[char], mut i: usize) -> (String, usize) {
    let mut part = String::new();
    if chars.get(i) == Some(&'"') {
        i += 1;
        while i < chars.len() {
            if chars[i] == '"' {
                if chars.get(i + 1) == Some(&'"') {
                    part.push('"');
                    i += 2;
                    continue;
                }
                i += 1;
                break;
            }
            part.push(chars[i]);
            i += 1;
        }
    } else if chars.get(i).is_some_and(|&c| is_ident_start(c)) {
        while i < chars.len() && is_ident_char(chars[i]) {
            part.push(chars[i]);
            i += 1;
        }
    }
    (part, i)
}

fn skip_string(chars: &[char], mut i: usize) -> usize {
    i += 1;
    while i < chars.len() {
        if chars[i] == '\'' {
            if chars.get(i + 1) == Some(&'\'') {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    i
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<String> {
        condition_columns(text)
            .into_iter()
            .map(|c| match c.qualifier {
                Some(q) => format!("{q}.{}", c.name),
                None => c.name,
            })
            .collect()
    }

    #[test]
    fn finds_columns_in_deparsed_conditions() {
        assert_eq!(names("(status = 'open'::text)"), ["status"]);
        assert_eq!(names("((sensor = 7) AND (site = 7))"), ["sensor", "site"]);
        assert_eq!(
            names("((o.amount >= b.lo) AND (o.amount < b.hi))"),
            ["o.amount", "b.lo", "b.hi"]
        );
        assert_eq!(
            names("((created_at)::date = '2024-01-01 00:00:00+00'::timestamp with time zone)"),
            ["created_at"]
        );
        assert_eq!(
            names("((lower(name) ~~ 'a%'::text) OR (\"Region\" = ANY ('{n,s}'::text[])))"),
            ["name", "Region"]
        );
        assert_eq!(names("(NOT (hashed SubPlan 1))"), Vec::<String>::new());
        assert_eq!(names("((id = $1) AND (note IS NOT NULL))"), ["id", "note"]);
        assert_eq!(names("('it''s' = label)"), ["label"]);
    }

    #[test]
    fn equality_columns_lead_an_index() {
        let cols = condition_columns("((amount > 10.0) AND (status = 'open'::text))");
        assert!(!cols[0].equality && cols[1].equality);
        assert_eq!(index_columns(&cols, 3), ["status", "amount"]);
        assert_eq!(index_columns(&cols, 1), ["status"]);
        let any = condition_columns("(region = ANY ('{a,b}'::text[]))");
        assert!(any[0].equality);
    }

    #[test]
    fn sort_keys_are_columns_only_when_plain() {
        let key = |k| sort_key_column(k).map(|c| (c.qualifier, c.name));
        assert_eq!(key("amount DESC"), Some((None, "amount".into())));
        assert_eq!(
            key("o.created_at NULLS FIRST"),
            Some((Some("o".into()), "created_at".into()))
        );
        assert_eq!(key("(sum(amount)) DESC"), None);
        assert_eq!(key("(a + b)"), None);
    }

    #[test]
    fn hints_read_like_something_to_type() {
        assert_eq!(
            create_index(
                Some("public"),
                "orders",
                &["status".into(), "Amount".into()]
            ),
            "CREATE INDEX CONCURRENTLY ON public.orders (status, \"Amount\")"
        );
        assert_eq!(memory_setting(6216.0), "16MB");
        assert_eq!(memory_setting(20.0), "64kB");
        assert_eq!(memory_setting(100.0), "256kB");
        assert_eq!(memory_setting(3.0 * 1024.0 * 1024.0), "8GB");
        assert_eq!(clip("abcdef", 3), "abc…");
        assert_eq!(clip("abc", 3), "abc");
    }
}
