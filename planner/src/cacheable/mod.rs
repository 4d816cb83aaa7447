//! What the result cache may keep, and what a statement retires.
//!
//! [`classify`] reads a Query or Parse text without the catalog: whether it
//! is one read-only query (a candidate), which tables it may write, whether
//! it may change anything at all (DDL, `CALL`, `DO`, statements the parser
//! does not know), and whether it can change the session's settings.
//! [`resolve`] then builds the catalog query that settles a candidate on the
//! session's own connection — its names resolved through `search_path`,
//! views expanded to base tables, partitions and parents included, function
//! volatility from `pg_proc` — and reads its answer into a [`Resolution`].
//! [`hints`] reads `/*+ cache */`-style comments; [`fingerprint`] names a
//! statement's shape (literals and parameters ignored).

mod classify;
mod resolve;

pub use classify::{classify, is_time_word, Classified, ReadShape};

pub use resolve::{
    families_sql, read_families, read_writers, resolution, resolve_sql, Resolution, ANY_TABLE,
    WRITERS_SQL,
};

use std::time::Duration;

/// Cache hints in a statement's comments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hints {
    /// `/*+ cache */` or `/*+ cache(ttl=30s) */`.
    pub cache: bool,
    pub ttl: Option<Duration>,
    /// `/*+ no_cache */`.
    pub no_cache: bool,
    /// `/*+ engine */`: run the statement in DataFusion over the upstream.
    pub engine: bool,
    /// `/*+ no_engine */`: never (relay it), whatever the session says.
    pub no_engine: bool,
}

/// The hints in `text`'s `/*+ ... */` comments.
pub fn hints(text: &str) -> Hints {
    let mut h = Hints::default();
    let mut rest = text;
    while let Some(i) = rest.find("/*+") {
        rest = &rest[i + 3..];
        let end = rest.find("*/").unwrap_or(rest.len());
        let body = rest[..end].trim().to_ascii_lowercase();
        for item in split_items(&body) {
            let item = item.trim();
            if item == "no_cache" || item == "nocache" {
                h.no_cache = true;
            } else if item == "engine" {
                h.engine = true;
            } else if item == "no_engine" || item == "noengine" {
                h.no_engine = true;
            } else if item == "cache" {
                h.cache = true;
            } else if let Some(args) = item
                .strip_prefix("cache")
                .map(str::trim_start)
                .and_then(|a| a.strip_prefix('('))
                .and_then(|a| a.strip_suffix(')'))
            {
                h.cache = true;
                for arg in args.split(',') {
                    if let Some((k, v)) = arg.split_once('=') {
                        if k.trim() == "ttl" {
                            h.ttl = parse_ttl(v.trim());
                        }
                    }
                }
            }
        }
        rest = &rest[end..];
    }
    h
}

/// Items of a hint comment, split at spaces outside parentheses.
fn split_items(body: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in body.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            c if c.is_whitespace() && depth == 0 => {
                if i > start {
                    items.push(&body[start..i]);
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < body.len() {
        items.push(&body[start..]);
    }
    items
}

/// `30s`, `5m`, `500ms`, or plain seconds.
pub fn parse_ttl(v: &str) -> Option<Duration> {
    let v = v.trim().trim_matches('\'');
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let split = v.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = v.split_at(split);
    let n: u64 = n.parse().ok()?;
    Some(match unit.trim() {
        "ms" => Duration::from_millis(n),
        "s" | "sec" | "secs" | "second" | "seconds" => Duration::from_secs(n),
        "m" | "min" | "mins" | "minute" | "minutes" => Duration::from_secs(n * 60),
        "h" | "hour" | "hours" => Duration::from_secs(n * 3600),
        _ => return None,
    })
}

/// A statement's shape: a hash of its tokens with literals, parameters,
/// comments and spacing left out and unquoted words folded, so
/// `select * from t where id = 1` and `SELECT * FROM t WHERE id = $1` share
/// it. FNV-1a: stable across builds, so a fingerprint written in a config
/// keeps meaning the same statements.
pub fn fingerprint(text: &str) -> u64 {
    scan(text).fingerprint
}

/// What one pass of the tokenizer tells about a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    /// See [`fingerprint`].
    pub fingerprint: u64,
    /// A string literal reads as a moment (`'now'`, `'today 10:00'`): the
    /// only literals that change what the cache makes of a read.
    pub time_literal: bool,
    /// Its classification depends on its shape alone, so statements of the
    /// same fingerprint classify alike: a query or a row write (SELECT,
    /// WITH, VALUES, TABLE, INSERT, UPDATE, DELETE, MERGE) without a time
    /// literal. (An `EXPLAIN (ANALYZE 'off')`'s literal decides whether it
    /// runs, say.)
    pub shape_decides: bool,
}

/// Tokenize once: fingerprint, time literals, and whether the shape alone
/// decides the classification.
pub fn scan(text: &str) -> Scan {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

    let mut h = Fnv::default();
    let mut time_literal = false;
    let mut first_word: Option<String> = None;
    let tokenized = Tokenizer::new(&PostgreSqlDialect {}, text).tokenize();
    match &tokenized {
        Ok(tokens) => {
            for t in tokens {
                match t {
                    Token::Whitespace(_) => continue,
                    Token::SingleQuotedString(v)
                    | Token::EscapedStringLiteral(v)
                    | Token::UnicodeStringLiteral(v)
                    | Token::NationalStringLiteral(v) => {
                        time_literal |= classify::is_time_word(v.as_bytes());
                        h.write(b"?")
                    }
                    Token::DollarQuotedString(d) => {
                        time_literal |= classify::is_time_word(d.value.as_bytes());
                        h.write(b"?")
                    }
                    Token::Number(..)
                    | Token::HexStringLiteral(_)
                    | Token::SingleQuotedByteStringLiteral(_)
                    | Token::Placeholder(_) => h.write(b"?"),
                    Token::Word(w) if w.quote_style.is_none() => {
                        let lower = w.value.to_ascii_lowercase();
                        h.write(lower.as_bytes());
                        first_word.get_or_insert(lower);
                    }
                    other => {
                        first_word.get_or_insert_with(String::new);
                        h.write(other.to_string().as_bytes())
                    }
                }
                h.write(b" ");
            }
        }
        // Text the tokenizer refuses: its exact bytes.
        Err(_) => h.write(text.as_bytes()),
    }
    let shape_decides = tokenized.is_ok()
        && !time_literal
        && matches!(
            first_word.as_deref(),
            Some("select" | "with" | "values" | "table" | "insert" | "update" | "delete" | "merge")
        );
    Scan {
        fingerprint: h.0,
        time_literal,
        shape_decides,
    }
}

struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A fingerprint as users see and write it.
pub fn fingerprint_id(fp: u64) -> String {
    format!("q_{fp:016x}")
}

/// The fingerprint of an id written by a user (`q_...` or bare hex).
pub fn parse_fingerprint_id(id: &str) -> Option<u64> {
    let id = id.trim().trim_matches('"').trim_matches('\'');
    let hex = id.strip_prefix("q_").unwrap_or(id);
    u64::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_hints() {
        assert!(!hints("select 1").cache);
        assert!(hints("/*+ cache */ select 1").cache);
        assert!(hints("select /*+ no_cache */ 1").no_cache);
        let h = hints("/*+ cache(ttl=30s) */ select 1");
        assert!(h.cache);
        assert_eq!(h.ttl, Some(Duration::from_secs(30)));
        assert_eq!(
            hints("/*+ CACHE( ttl = 2m ) */ select 1").ttl,
            Some(Duration::from_secs(120))
        );
        assert!(
            !hints("/* cache */ select 1").cache,
            "a plain comment is not a hint"
        );
        assert_eq!(parse_ttl("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_ttl("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_ttl("soon"), None);
    }

    #[test]
    fn a_scan_tells_whether_the_shape_decides() {
        let s = scan("SELECT abalance FROM pgbench_accounts WHERE aid = 42");
        assert!(s.shape_decides && !s.time_literal);
        assert_eq!(
            s.fingerprint,
            fingerprint("select abalance from pgbench_accounts where aid = 7")
        );
        assert!(scan("update t set a = 'x' where id = 1").shape_decides);
        let t = scan("select * from t where d > 'today 10:00'");
        assert!(t.time_literal && !t.shape_decides);
        for sql in [
            "explain (analyze 'off') delete from t",
            "set search_path = x",
            "(select 1)",
        ] {
            assert!(!scan(sql).shape_decides, "{sql}");
        }
    }

    #[test]
    fn fingerprints_ignore_literals_and_spacing() {
        let a = fingerprint("select * from t where id = 1");
        assert_eq!(a, fingerprint("SELECT *\n  FROM t WHERE id = 42"));
        assert_eq!(a, fingerprint("select * from t where id = $1"));
        assert_eq!(a, fingerprint("select * from t where id = 'x'"));
        assert_ne!(a, fingerprint("select * from u where id = 1"));
        assert_ne!(a, fingerprint("select * from \"T\" where id = 1"));
        let id = fingerprint_id(a);
        assert_eq!(parse_fingerprint_id(&id), Some(a));
    }
}
