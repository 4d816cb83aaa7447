//! The embedded database's session settings: what `SHOW` reads, what `SET`
//! may change, which changes the client is told about (ParameterStatus),
//! and the ones that change how values are written as text.

use std::collections::BTreeMap;

use helios_wire::arrow::TextSettings;
use helios_wire::{PgError, SqlState};

/// (name as `SHOW ALL` prints it, default, reported to the client).
const DEFAULTS: &[(&str, &str, bool)] = &[
    ("application_name", "", true),
    ("bytea_output", "hex", false),
    ("client_encoding", "UTF8", true),
    ("client_min_messages", "notice", false),
    ("DateStyle", "ISO, MDY", true),
    ("default_transaction_isolation", "read committed", false),
    ("default_transaction_read_only", "on", true),
    ("extra_float_digits", "1", false),
    ("in_hot_standby", "off", true),
    ("integer_datetimes", "on", true),
    ("IntervalStyle", "postgres", true),
    ("is_superuser", "off", true),
    ("lc_messages", "C", false),
    ("max_identifier_length", "63", false),
    ("search_path", "\"$user\", public", false),
    ("server_encoding", "UTF8", true),
    ("server_version", "15.0", true),
    ("server_version_num", "150000", false),
    ("session_authorization", "", true),
    ("standard_conforming_strings", "on", true),
    ("statement_timeout", "0", false),
    ("TimeZone", "UTC", true),
    ("transaction_isolation", "read committed", false),
    ("transaction_read_only", "on", false),
];

/// Settings that cannot be changed (PostgreSQL: 55P02 / read-only).
const READ_ONLY: &[&str] = &[
    "server_version",
    "server_version_num",
    "server_encoding",
    "integer_datetimes",
    "max_identifier_length",
    "in_hot_standby",
    "is_superuser",
    "lc_messages",
];

/// One session's settings.
pub struct Settings {
    /// Lower-cased name -> value.
    values: BTreeMap<String, String>,
    /// Values `SET LOCAL` replaced, restored at the end of the transaction.
    saved: Vec<(String, String)>,
}

fn canonical(name: &str) -> Option<&'static str> {
    DEFAULTS
        .iter()
        .map(|(n, _, _)| *n)
        .find(|n| n.eq_ignore_ascii_case(name))
}

impl Settings {
    /// PostgreSQL's defaults, then the client's startup parameters.
    pub fn new(user: &str, startup: &[(String, String)]) -> Settings {
        let mut values: BTreeMap<String, String> = DEFAULTS
            .iter()
            .map(|(n, v, _)| (n.to_ascii_lowercase(), v.to_string()))
            .collect();
        values.insert("session_authorization".into(), user.to_string());
        let mut s = Settings {
            values,
            saved: Vec::new(),
        };
        for (name, value) in startup {
            if matches!(name.as_str(), "user" | "database" | "replication") {
                continue;
            }
            // As PostgreSQL: a bad startup setting fails the connection;
            // here it is ignored, so that a driver's defaults never lock a
            // user out of the demo.
            let _ = s.set(name, Some(value), false, false);
        }
        s
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The settings sent as ParameterStatus at startup.
    pub fn reported(&self) -> Vec<(&'static str, String)> {
        DEFAULTS
            .iter()
            .filter(|(_, _, r)| *r)
            .map(|(n, _, _)| (*n, self.get(n).unwrap_or_default().to_string()))
            .collect()
    }

    /// `SHOW ALL`: (name, setting, description).
    pub fn all(&self) -> Vec<(&'static str, String)> {
        DEFAULTS
            .iter()
            .map(|(n, _, _)| (*n, self.get(n).unwrap_or_default().to_string()))
            .collect()
    }

    /// The name as PostgreSQL spells it in `SHOW` headers.
    pub fn display_name(name: &str) -> String {
        canonical(name)
            .map(str::to_ascii_lowercase)
            .unwrap_or_else(|| name.to_ascii_lowercase())
    }

    /// `SET name = value` (`None`: DEFAULT). Returns the ParameterStatus to
    /// send, when the setting is a reported one.
    pub fn set(
        &mut self,
        name: &str,
        value: Option<&str>,
        local: bool,
        in_transaction: bool,
    ) -> Result<Option<(&'static str, String)>, PgError> {
        let key = name.to_ascii_lowercase();
        let known = canonical(&key);
        if READ_ONLY.contains(&key.as_str()) {
            return Err(PgError::error(
                SqlState::new("55P02"),
                format!("parameter \"{key}\" cannot be changed"),
            ));
        }
        let value = match value {
            Some(v) => validate(&key, v)?,
            None => known
                .and_then(|k| DEFAULTS.iter().find(|(n, _, _)| *n == k))
                .map(|(_, d, _)| d.to_string())
                .unwrap_or_default(),
        };
        if known.is_none() && !key.contains('.') {
            return Err(PgError::error(
                SqlState::new("42704"),
                format!("unrecognized configuration parameter \"{name}\""),
            ));
        }
        if local {
            if !in_transaction {
                // PostgreSQL warns and does nothing lasting.
                return Ok(None);
            }
            let old = self.values.get(&key).cloned().unwrap_or_default();
            self.saved.push((key.clone(), old));
        }
        self.values.insert(key.clone(), value.clone());
        Ok(known
            .filter(|k| DEFAULTS.iter().any(|(n, _, r)| n == k && *r))
            .map(|k| (k, value)))
    }

    /// `RESET name` / `RESET ALL`.
    pub fn reset(&mut self, name: Option<&str>) -> Result<Vec<(&'static str, String)>, PgError> {
        let mut reported = Vec::new();
        let names: Vec<String> = match name {
            Some(n) => vec![n.to_string()],
            None => DEFAULTS
                .iter()
                .filter(|(n, _, _)| !READ_ONLY.contains(&n.to_ascii_lowercase().as_str()))
                .filter(|(n, _, _)| *n != "session_authorization")
                .map(|(n, _, _)| n.to_string())
                .collect(),
        };
        for n in names {
            if let Some(r) = self.set(&n, None, false, false)? {
                reported.push(r);
            }
        }
        Ok(reported)
    }

    /// The transaction ended: `SET LOCAL` values go back.
    pub fn end_transaction(&mut self) -> Vec<(&'static str, String)> {
        let mut reported = Vec::new();
        while let Some((k, v)) = self.saved.pop() {
            if let Some(c) = canonical(&k).filter(|c| DEFAULTS.iter().any(|(n, _, r)| n == c && *r))
            {
                reported.push((c, v.clone()));
            }
            self.values.insert(k, v);
        }
        reported
    }

    /// How values are written as text under these settings.
    pub fn text(&self) -> TextSettings {
        TextSettings {
            extra_float_digits: self
                .get("extra_float_digits")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1),
            timezone: self.get("timezone").unwrap_or("UTC").to_string(),
            ..TextSettings::default()
        }
    }
}

fn invalid(name: &str, value: &str, hint: &str) -> PgError {
    PgError::error(
        SqlState::new("22023"),
        format!("invalid value for parameter \"{name}\": \"{value}\""),
    )
    .with_hint(hint.to_string())
}

/// A value the embedded database can honour, normalized as `SHOW` prints it.
fn validate(name: &str, value: &str) -> Result<String, PgError> {
    Ok(match name {
        "extra_float_digits" => match value.trim().parse::<i32>() {
            Ok(n) if (-15..=3).contains(&n) => n.to_string(),
            _ => return Err(invalid(name, value, "Valid values are between -15 and 3.")),
        },
        "client_encoding" => match value.to_ascii_uppercase().replace(['-', '_'], "").as_str() {
            "UTF8" | "UNICODE" => "UTF8".into(),
            _ => {
                return Err(PgError::error(
                    SqlState::FEATURE_NOT_SUPPORTED,
                    format!("the embedded database speaks UTF8 only, not \"{value}\""),
                ))
            }
        },
        "datestyle" => {
            let v = value.to_ascii_uppercase();
            if v.split(',')
                .any(|p| matches!(p.trim(), "SQL" | "POSTGRES" | "GERMAN"))
            {
                return Err(PgError::error(
                    SqlState::FEATURE_NOT_SUPPORTED,
                    "the embedded database writes dates in ISO style only",
                ));
            }
            let order = if v.contains("DMY") {
                "DMY"
            } else if v.contains("YMD") {
                "YMD"
            } else {
                "MDY"
            };
            format!("ISO, {order}")
        }
        "intervalstyle" => {
            if !value.eq_ignore_ascii_case("postgres") {
                return Err(PgError::error(
                    SqlState::FEATURE_NOT_SUPPORTED,
                    "the embedded database writes intervals in the postgres style only",
                ));
            }
            "postgres".into()
        }
        "bytea_output" => {
            if !value.eq_ignore_ascii_case("hex") {
                return Err(PgError::error(
                    SqlState::FEATURE_NOT_SUPPORTED,
                    "the embedded database writes bytea in hex only",
                ));
            }
            "hex".into()
        }
        "timezone" => {
            if !helios_wire::arrow::timezone_supported(value) {
                return Err(invalid(
                    name,
                    value,
                    "The embedded database knows UTC and fixed offsets such as '+02:00'.",
                ));
            }
            value.to_string()
        }
        "default_transaction_read_only" | "transaction_read_only" => {
            match value.to_ascii_lowercase().as_str() {
                "on" | "true" | "1" | "yes" => "on".into(),
                _ => {
                    return Err(PgError::error(
                        SqlState::FEATURE_NOT_SUPPORTED,
                        "the embedded demo database is read-only",
                    ))
                }
            }
        }
        _ => value.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_show_reset() {
        let mut s = Settings::new("alice", &[("application_name".into(), "psql".into())]);
        assert_eq!(s.get("application_name"), Some("psql"));
        assert_eq!(s.get("session_authorization"), Some("alice"));
        let r = s
            .set("extra_float_digits", Some("3"), false, false)
            .unwrap();
        assert_eq!(r, None);
        assert_eq!(s.text().extra_float_digits, 3);
        let r = s.set("application_name", Some("x"), false, false).unwrap();
        assert_eq!(r, Some(("application_name", "x".to_string())));
        let e = s
            .set("extra_float_digits", Some("9"), false, false)
            .unwrap_err();
        assert_eq!(e.code.code(), "22023");
        let e = s.set("nonsense", Some("1"), false, false).unwrap_err();
        assert_eq!(e.code.code(), "42704");
        assert!(s.set("myapp.flag", Some("1"), false, false).is_ok());
        let e = s
            .set("server_version", Some("1"), false, false)
            .unwrap_err();
        assert_eq!(e.code.code(), "55P02");
        s.reset(None).unwrap();
        assert_eq!(s.get("extra_float_digits"), Some("1"));
        assert_eq!(s.get("session_authorization"), Some("alice"));
    }

    #[test]
    fn set_local_lasts_until_the_transaction_ends() {
        let mut s = Settings::new("u", &[]);
        s.set("statement_timeout", Some("5s"), true, true).unwrap();
        assert_eq!(s.get("statement_timeout"), Some("5s"));
        s.end_transaction();
        assert_eq!(s.get("statement_timeout"), Some("0"));
    }
}
