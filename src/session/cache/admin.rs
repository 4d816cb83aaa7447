//! The cache's commands, answered by Helios (simple protocol):
//!
//! - `CREATE HELIOS CACHE [TTL <duration>] FROM <select>`: cache statements
//!   of this shape (any literals); answers the rule's id.
//! - `DROP HELIOS CACHE <id>`: remove the rule and the shape's entries.
//! - `SHOW HELIOS CACHES`: every statement shape cached or named by a rule.
//! - `HELIOS CACHE CLEAR [<table>]`: drop everything, or what read a table.
//!
//! `helios.cache` itself is a setting PostgreSQL keeps (see `context`).

use std::io;
use std::sync::atomic::Ordering;

use bytes::BytesMut;
use helios_planner::cacheable::{self, fingerprint_id, parse_fingerprint_id};
use helios_wire::frame::get_cstr;
use helios_wire::results::{command_complete, Column, ResultRows, Type};
use helios_wire::{messages, Frame, PgError, SqlState, TransactionStatus};
use tokio::io::AsyncWriteExt;

use super::CacheState;
use crate::cache::RuleTarget;
use crate::session::nl::client_side;
use crate::session::relay::Relay;

#[derive(Debug, PartialEq, Eq)]
enum Command {
    Create {
        ttl: Option<std::time::Duration>,
        select: String,
    },
    Drop(String),
    Show,
    Clear(Option<String>),
}

/// Skip whitespace and comments.
fn skip_space(mut s: &str) -> &str {
    loop {
        s = s.trim_start();
        if let Some(r) = s.strip_prefix("--") {
            s = r.split_once('\n').map_or("", |(_, r)| r);
        } else if let Some(r) = s.strip_prefix("/*") {
            s = r.split_once("*/").map_or("", |(_, r)| r);
        } else {
            return s;
        }
    }
}

/// The next word (letters, digits, `_`, `.`), and the rest.
fn word(s: &str) -> (String, &str) {
    let s = skip_space(s);
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(s.len());
    (s[..end].to_ascii_uppercase(), &s[end..])
}

fn parse(text: &str) -> Option<Result<Command, String>> {
    let (w1, rest) = word(text);
    let (w2, rest) = word(rest);
    let (w3, rest) = word(rest);
    let tail = skip_space(rest).trim_end().trim_end_matches(';').trim();
    match (w1.as_str(), w2.as_str(), w3.as_str()) {
        ("SHOW", "HELIOS", "CACHES") => Some(if tail.is_empty() {
            Ok(Command::Show)
        } else {
            Err(format!("syntax error at or near \"{tail}\""))
        }),
        ("HELIOS", "CACHE", "CLEAR") => Some(if tail.is_empty() {
            Ok(Command::Clear(None))
        } else {
            one_name(tail).map(|t| Command::Clear(Some(t)))
        }),
        ("DROP", "HELIOS", "CACHE") => Some(if tail.is_empty() {
            Err("DROP HELIOS CACHE needs a cache id (see SHOW HELIOS CACHES)".into())
        } else {
            one_name(tail).map(Command::Drop)
        }),
        ("CREATE", "HELIOS", "CACHE") => {
            let (w, after) = word(rest);
            let (ttl, rest) = if w == "TTL" {
                let after = skip_space(after);
                let end = after.find(char::is_whitespace).unwrap_or(after.len());
                match cacheable::parse_ttl(&after[..end]) {
                    Some(t) if !t.is_zero() => (Some(t), &after[end..]),
                    _ => {
                        return Some(Err(format!(
                            "invalid TTL \"{}\"; write e.g. TTL 30s or TTL 60",
                            &after[..end]
                        )))
                    }
                }
            } else {
                (None, rest)
            };
            let (from, select) = word(rest);
            if from != "FROM" {
                return Some(Err(
                    "expected CREATE HELIOS CACHE [TTL <duration>] FROM <select>".into(),
                ));
            }
            let select = skip_space(select).trim_end().trim_end_matches(';').trim();
            if helios_planner::sql::statement_count(select) != 1 {
                return Some(Err(
                    "CREATE HELIOS CACHE takes exactly one SELECT statement".into(),
                ));
            }
            Some(Ok(Command::Create {
                ttl,
                select: select.to_string(),
            }))
        }
        _ => None,
    }
}

/// A command's one argument: a name (`orders`, `sales."Orders"`, a cache
/// id), nothing after it — `HELIOS CACHE CLEAR; DELETE FROM t` must not
/// swallow the DELETE.
fn one_name(tail: &str) -> Result<String, String> {
    let mut quoted = false;
    for c in tail.chars() {
        match c {
            '"' => quoted = !quoted,
            ';' | ' ' | '\t' | '\n' | '\r' if !quoted => {
                return Err(format!("syntax error at or near \"{tail}\""))
            }
            _ => {}
        }
    }
    Ok(tail.to_string())
}

/// Whether a Query text is one of the cache's commands.
pub(super) fn is_admin(text: &str) -> bool {
    let (w, _) = word(text);
    matches!(w.as_str(), "SHOW" | "HELIOS" | "DROP" | "CREATE") && parse(text).is_some()
}

pub(super) async fn handle(
    relay: &mut Relay<'_>,
    st: &mut CacheState,
    frame: Frame,
) -> io::Result<()> {
    let text = get_cstr(&mut &frame.body[..]).unwrap_or_default();
    let mut out = BytesMut::new();
    match parse(&text) {
        None => {
            relay.pass_client_frames(&[frame]);
            return Ok(());
        }
        Some(Err(m)) => PgError::error(SqlState::SYNTAX_ERROR, m).encode(&mut out),
        Some(Ok(cmd)) => {
            let mut description = BytesMut::new();
            run(relay, st, cmd, &[], &mut description, &mut out).await?;
            description.extend_from_slice(&out);
            out = description;
        }
    }
    let status = relay.upstream_status();
    messages::ready_for_query(status, &mut out);
    let (client, _, to_client) = relay.parts();
    if !to_client.is_empty() {
        let pending = std::mem::take(to_client);
        client.write_all(&pending).await.map_err(client_side)?;
    }
    client.write_all(&out).await.map_err(client_side)?;
    client.flush().await.map_err(client_side)
}

/// Run a command: its RowDescription (if it returns rows) goes to
/// `description`, its rows and CommandComplete (or error) to `out`.
/// `formats`: the result formats a Bind asked for.
/// A cache command in the extended protocol: `[Parse] Bind [Describe
/// portal] Execute Sync` (how JDBC and most drivers send a statement), with
/// the replies PostgreSQL would send. `None`: not a command.
pub(super) async fn extended(
    relay: &mut Relay<'_>,
    st: &mut CacheState,
    text: &str,
    parsed_here: bool,
    describe: bool,
    formats: &[i16],
) -> io::Result<Option<BytesMut>> {
    let Some(parsed) = parse(text) else {
        return Ok(None);
    };
    let mut out = BytesMut::new();
    if parsed_here {
        helios_wire::results::parse_complete(&mut out);
    }
    match parsed {
        Err(m) => {
            // PostgreSQL reports a syntax error at Parse, before BindComplete.
            out.clear();
            PgError::error(SqlState::SYNTAX_ERROR, m).encode(&mut out);
        }
        Ok(cmd) => {
            helios_wire::results::bind_complete(&mut out);
            let mut description = BytesMut::new();
            let mut rest = BytesMut::new();
            run(relay, st, cmd, formats, &mut description, &mut rest).await?;
            if describe {
                if description.is_empty() {
                    helios_wire::results::no_data(&mut out);
                } else {
                    out.extend_from_slice(&description);
                }
            }
            out.extend_from_slice(&rest);
        }
    }
    Ok(Some(out))
}

async fn run(
    relay: &mut Relay<'_>,
    st: &mut CacheState,
    cmd: Command,
    formats: &[i16],
    description: &mut BytesMut,
    out: &mut BytesMut,
) -> io::Result<()> {
    let svc = st.svc.clone();
    match cmd {
        Command::Show => show(st, formats, description, out),
        Command::Clear(None) => {
            svc.store.clear();
            metrics::counter!("helios_cache_invalidations_total", "cause" => "clear").increment(1);
            command_complete("HELIOS CACHE CLEAR", out);
        }
        Command::Clear(Some(table)) => {
            let name = crate::cache::table_name(&table);
            svc.store.generations.bump_table_everywhere(&name);
            metrics::counter!("helios_cache_invalidations_total", "cause" => "clear").increment(1);
            command_complete("HELIOS CACHE CLEAR", out);
        }
        Command::Drop(id) => match parse_fingerprint_id(&id) {
            Some(fp) if svc.drop_rule(fp) => command_complete("DROP HELIOS CACHE", out),
            _ => PgError::error(
                SqlState::UNDEFINED_OBJECT,
                format!("cache \"{id}\" does not exist"),
            )
            .encode(out),
        },
        Command::Create { ttl, select } => {
            let a = svc.analyze(&select);
            let Some(shape) = a.class.read.clone() else {
                PgError::error(
                    SqlState::FEATURE_NOT_SUPPORTED,
                    "only a single read-only query can be cached (SELECT, WITH ... SELECT, VALUES, without FOR UPDATE/SHARE, INTO or data-modifying CTEs)",
                )
                .encode(out);
                return Ok(());
            };
            // Where the session can ask the catalog now, refuse what could
            // never be kept (volatile functions, temporary tables, ...).
            let ctx = if relay.upstream_status() == TransactionStatus::Idle
                && !relay.take_handover_unsynced()
            {
                st.context(relay).await?
            } else {
                None
            };
            if let Some(ctx) = ctx {
                if let Some(r) = st.resolve(relay, ctx, &shape).await? {
                    if let Some(why) = &r.resolution.refusal {
                        PgError::error(
                            SqlState::FEATURE_NOT_SUPPORTED,
                            format!("this statement cannot be cached: {why}"),
                        )
                        .encode(out);
                        return Ok(());
                    }
                }
            }
            svc.add_rule(a.fingerprint, &select, ttl);
            let mut rows = ResultRows::new(&create_columns(), formats);
            rows.describe(description);
            rows.push(&fingerprint_id(a.fingerprint));
            rows.push(&select);
            rows.end_row(out);
            command_complete("CREATE HELIOS CACHE", out);
        }
    }
    Ok(())
}

fn show_columns() -> Vec<Column> {
    vec![
        Column::new("id", Type::TEXT),
        Column::new("query", Type::TEXT),
        Column::new("rule", Type::BOOL),
        Column::new("ttl", Type::TEXT),
        Column::new("hits", Type::INT8),
        Column::new("misses", Type::INT8),
        Column::new("entries", Type::INT8),
        Column::new("bytes", Type::INT8),
        Column::new("age", Type::TEXT),
    ]
}

fn create_columns() -> Vec<Column> {
    vec![
        Column::new("id", Type::TEXT),
        Column::new("query", Type::TEXT),
    ]
}

/// A prepared command's description (Describe statement): no parameters,
/// then its RowDescription or NoData. `false`: not a command.
pub(super) fn describe_statement(text: &str, out: &mut BytesMut) -> bool {
    let Some(parsed) = parse(text) else {
        return false;
    };
    helios_wire::results::parameter_description(&[], out);
    match parsed {
        Ok(Command::Show) => ResultRows::new(&show_columns(), &[]).describe(out),
        Ok(Command::Create { .. }) => ResultRows::new(&create_columns(), &[]).describe(out),
        _ => helios_wire::results::no_data(out),
    }
    true
}

fn show(st: &CacheState, formats: &[i16], description: &mut BytesMut, out: &mut BytesMut) {
    let svc = &st.svc;
    let rules = svc.rules();
    let mut rows = ResultRows::new(&show_columns(), formats);
    rows.describe(description);
    let mut listed = Vec::new();
    for s in svc.store.statements() {
        let rule = rules
            .iter()
            .find(|r| r.target == RuleTarget::Fingerprint(s.fingerprint));
        let ttl = rule
            .and_then(|r| r.ttl)
            .or(*s.ttl.lock().expect("ttl"))
            .unwrap_or(svc.ttl());
        listed.push(s.fingerprint);
        rows.push(&fingerprint_id(s.fingerprint));
        rows.push(&s.text);
        rows.push(&rule.is_some());
        rows.push(&humantime::format_duration(ttl).to_string());
        rows.push(&(s.hits.load(Ordering::Relaxed) as i64));
        rows.push(&(s.misses.load(Ordering::Relaxed) as i64));
        rows.push(&(s.entries.load(Ordering::Relaxed) as i64));
        rows.push(&(s.bytes.load(Ordering::Relaxed) as i64));
        let age = std::time::Duration::from_secs(s.created.elapsed().as_secs());
        rows.push(&humantime::format_duration(age).to_string());
        rows.end_row(out);
    }
    // Rules whose statements have not been seen yet.
    for r in &rules {
        let (id, text) = match &r.target {
            RuleTarget::Fingerprint(fp) if !listed.contains(fp) => {
                (fingerprint_id(*fp), r.text.clone().unwrap_or_default())
            }
            RuleTarget::Table(t) => (format!("table:{t}"), format!("(statements reading {t})")),
            _ => continue,
        };
        rows.push(&id);
        rows.push(&text);
        rows.push(&true);
        rows.push(&humantime::format_duration(r.ttl.unwrap_or(svc.ttl())).to_string());
        for _ in 0..4 {
            rows.push(&0i64);
        }
        rows.push(&"0s".to_string());
        rows.end_row(out);
    }
    rows.complete("SHOW", out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn parses_the_commands() {
        assert_eq!(parse("show helios caches"), Some(Ok(Command::Show)));
        assert_eq!(parse(" SHOW HELIOS CACHES ;"), Some(Ok(Command::Show)));
        assert_eq!(parse("helios cache clear"), Some(Ok(Command::Clear(None))));
        assert_eq!(
            parse("HELIOS CACHE CLEAR orders"),
            Some(Ok(Command::Clear(Some("orders".into()))))
        );
        assert_eq!(
            parse("drop helios cache q_00000000000000ff"),
            Some(Ok(Command::Drop("q_00000000000000ff".into())))
        );
        assert_eq!(
            parse("create helios cache ttl 30s from select * from t where id = 1;"),
            Some(Ok(Command::Create {
                ttl: Some(Duration::from_secs(30)),
                select: "select * from t where id = 1".into()
            }))
        );
        assert_eq!(
            parse("CREATE HELIOS CACHE FROM select 1"),
            Some(Ok(Command::Create {
                ttl: None,
                select: "select 1".into()
            }))
        );
        assert!(matches!(
            parse("create helios cache ttl soon from select 1"),
            Some(Err(_))
        ));
        assert!(matches!(
            parse("create helios cache select 1"),
            Some(Err(_))
        ));
        assert_eq!(parse("show search_path"), None);
        assert_eq!(parse("create table helios (a int)"), None);
        // Nothing is swallowed after a command.
        assert!(matches!(
            parse("helios cache clear; delete from t"),
            Some(Err(_))
        ));
        assert!(matches!(
            parse("helios cache clear t; delete from t"),
            Some(Err(_))
        ));
        assert!(matches!(parse("drop helios cache q_1 q_2"), Some(Err(_))));
        assert!(matches!(
            parse("create helios cache from select 1; delete from t"),
            Some(Err(_))
        ));
        assert_eq!(
            parse("helios cache clear s.\"My Table\""),
            Some(Ok(Command::Clear(Some("s.\"My Table\"".into()))))
        );
        assert!(!is_admin("drop table t"));
        assert!(is_admin("/* hi */ show helios caches"));
    }
}
