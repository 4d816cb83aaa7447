//! The engine's commands, answered by Helios:
//!
//! ```text
//! SET helios.engine { = | TO } { on | off | default }     RESET helios.engine
//! SET helios.engine_partitions { = | TO } { n | default } SHOW helios.engine[_partitions]
//! CREATE HELIOS ACCELERATION ON <table> [REFRESH <interval>]
//! DROP HELIOS ACCELERATION [ON] <table>
//! REFRESH HELIOS ACCELERATION [ON] <table>
//! SHOW HELIOS ACCELERATIONS
//! ```

use std::time::Duration;

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `SET [LOCAL] helios.engine`; `None` = default (off).
    SetEngine {
        on: Option<bool>,
        local: bool,
    },
    ShowEngine,
    /// `SET [LOCAL] helios.engine_partitions`; `None` = default.
    SetPartitions {
        n: Option<usize>,
        local: bool,
    },
    ShowPartitions,
    CreateAcceleration {
        table: String,
        refresh: Option<Duration>,
    },
    DropAcceleration {
        table: String,
    },
    RefreshAcceleration {
        table: String,
    },
    ShowAccelerations,
}

/// Words of a statement, without a trailing `;`.
fn words(text: &str) -> Vec<String> {
    let t = text.trim().trim_end_matches(';').trim();
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in t.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            '=' if !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                out.push("=".into());
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn is(w: Option<&String>, kw: &str) -> bool {
    w.is_some_and(|w| w.eq_ignore_ascii_case(kw))
}

/// `None`: not an engine command. `Some(Err)`: one, malformed (42601).
pub fn parse(text: &str) -> Option<Result<Command, String>> {
    let first = text.trim_start();
    let head: String = first
        .chars()
        .take(8)
        .collect::<String>()
        .to_ascii_lowercase();
    if !["set", "reset", "show", "create", "drop", "refresh"]
        .iter()
        .any(|k| head.starts_with(k))
    {
        return None;
    }
    let w = words(text);
    let mut i = 0;
    let verb = w.first()?.to_ascii_lowercase();
    i += 1;
    match verb.as_str() {
        "set" => {
            let local = is(w.get(i), "local");
            if local || is(w.get(i), "session") {
                i += 1;
            }
            let name = w.get(i)?.to_ascii_lowercase();
            let partitions = match name.as_str() {
                "helios.engine" => false,
                "helios.engine_partitions" => true,
                _ => return None,
            };
            i += 1;
            if !(is(w.get(i), "=") || is(w.get(i), "to")) {
                return Some(Err(format!("syntax error in SET {name}: expected = or TO")));
            }
            i += 1;
            let value = w.get(i).map(|v| v.trim_matches('\'').to_ascii_lowercase());
            if w.len() != i + 1 {
                return Some(Err(format!("SET {name} takes one value")));
            }
            let value = value?;
            Some(if partitions {
                match value.as_str() {
                    "default" => Ok(Command::SetPartitions { n: None, local }),
                    v => match v.parse::<usize>() {
                        Ok(n) if (1..=256).contains(&n) => Ok(Command::SetPartitions { n: Some(n), local }),
                        _ => Err(format!(
                            "invalid value for parameter \"helios.engine_partitions\": \"{v}\" (1 to 256)"
                        )),
                    },
                }
            } else {
                match value.as_str() {
                    "on" | "true" | "yes" | "1" => Ok(Command::SetEngine {
                        on: Some(true),
                        local,
                    }),
                    "off" | "false" | "no" | "0" => Ok(Command::SetEngine {
                        on: Some(false),
                        local,
                    }),
                    "default" => Ok(Command::SetEngine { on: None, local }),
                    v => Err(format!(
                        "invalid value for parameter \"helios.engine\": \"{v}\" (on or off)"
                    )),
                }
            })
        }
        "reset" => match w.get(1)?.to_ascii_lowercase().as_str() {
            "helios.engine" if w.len() == 2 => Some(Ok(Command::SetEngine {
                on: None,
                local: false,
            })),
            "helios.engine_partitions" if w.len() == 2 => Some(Ok(Command::SetPartitions {
                n: None,
                local: false,
            })),
            _ => None,
        },
        "show" => {
            let name = w.get(1)?.to_ascii_lowercase();
            if w.len() == 2 && name == "helios.engine" {
                return Some(Ok(Command::ShowEngine));
            }
            if w.len() == 2 && name == "helios.engine_partitions" {
                return Some(Ok(Command::ShowPartitions));
            }
            if name == "helios" && is(w.get(2), "accelerations") {
                return Some(if w.len() == 3 {
                    Ok(Command::ShowAccelerations)
                } else {
                    Err("syntax error: SHOW HELIOS ACCELERATIONS takes nothing more".into())
                });
            }
            None
        }
        "create" | "drop" | "refresh" => {
            if !is(w.get(1), "helios") || !is(w.get(2), "acceleration") {
                return None;
            }
            let mut j = 3;
            if is(w.get(j), "on") {
                j += 1;
            }
            let Some(table) = w.get(j).cloned() else {
                return Some(Err(format!(
                    "syntax error: {} HELIOS ACCELERATION needs a table",
                    verb.to_uppercase()
                )));
            };
            j += 1;
            let cmd = match verb.as_str() {
                "create" => {
                    let mut refresh = None;
                    if is(w.get(j), "refresh") {
                        let Some(v) = w.get(j + 1) else {
                            return Some(Err(
                                "syntax error: REFRESH needs an interval, e.g. REFRESH 60s".into(),
                            ));
                        };
                        match parse_interval(v) {
                            Some(d) => refresh = Some(d),
                            None => {
                                return Some(Err(format!(
                                    "invalid refresh interval \"{v}\": write e.g. 30s, 5m, 1h, or seconds"
                                )))
                            }
                        }
                        j += 2;
                    }
                    Command::CreateAcceleration { table, refresh }
                }
                "drop" => Command::DropAcceleration { table },
                _ => Command::RefreshAcceleration { table },
            };
            if w.len() != j {
                return Some(Err(format!("syntax error at or near \"{}\"", w[j])));
            }
            Some(Ok(cmd))
        }
        _ => None,
    }
}

fn parse_interval(v: &str) -> Option<Duration> {
    let v = v.trim_matches('\'');
    let d = match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(v).ok()?,
    };
    (!d.is_zero()).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(
            parse("SET helios.engine = on").unwrap().unwrap(),
            Command::SetEngine {
                on: Some(true),
                local: false
            }
        );
        assert_eq!(
            parse("set local helios.engine to off;").unwrap().unwrap(),
            Command::SetEngine {
                on: Some(false),
                local: true
            }
        );
        assert_eq!(
            parse("SHOW helios.engine").unwrap().unwrap(),
            Command::ShowEngine
        );
        assert_eq!(
            parse("SET helios.engine_partitions = 1").unwrap().unwrap(),
            Command::SetPartitions {
                n: Some(1),
                local: false
            }
        );
        assert_eq!(
            parse("CREATE HELIOS ACCELERATION ON lineitem REFRESH 5m")
                .unwrap()
                .unwrap(),
            Command::CreateAcceleration {
                table: "lineitem".into(),
                refresh: Some(Duration::from_secs(300))
            }
        );
        assert_eq!(
            parse("drop helios acceleration on sales.orders")
                .unwrap()
                .unwrap(),
            Command::DropAcceleration {
                table: "sales.orders".into()
            }
        );
        assert_eq!(
            parse("SHOW HELIOS ACCELERATIONS").unwrap().unwrap(),
            Command::ShowAccelerations
        );
        assert!(parse("SET helios.engine = maybe").unwrap().is_err());
        assert!(parse("CREATE HELIOS ACCELERATION ON t REFRESH never")
            .unwrap()
            .is_err());
        // Not ours.
        assert!(parse("SET search_path = x").is_none());
        assert!(parse("SHOW HELIOS CACHES").is_none());
        assert!(parse("CREATE TABLE t (a int)").is_none());
        assert!(parse("SELECT 1").is_none());
    }
}
