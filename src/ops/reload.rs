//! Which settings a reload (SIGHUP, `HELIOS RELOAD`, `POST /admin/reload`)
//! changes in a running Helios, and how the rest is reported.
//!
//! A reload reads the file (with the environment and command line, as at
//! start), validates it whole, and then takes only the *live* settings from
//! it; everything else keeps its running value and is reported as needing
//! a restart. An invalid file changes nothing.

use crate::config::Config;

/// Settings a reload applies at once. A key names a setting or a whole
/// section prefix (`auth.users` covers every user entry).
pub const LIVE: &[&str] = &[
    "server.max_client_conn",
    "server.startup_timeout",
    "server.max_message_size",
    "server.shutdown_timeout",
    "auth.method",
    "auth.users",
    "pool.acquire_timeout",
    "pool.idle_timeout",
    "pool.max_lifetime",
    "pool.check_after_idle",
    "pool.reset_query",
    "pool.lazy_attach",
    "log.level",
    "log.slow_query_threshold",
    "cache.ttl",
    "admin.token",
    "admin.users",
    "limits",
];

pub fn is_live(key: &str) -> bool {
    LIVE.iter().any(|l| {
        key == *l || key.starts_with(&format!("{l}.")) || key.starts_with(&format!("{l}["))
    })
}

/// What a reload did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// Settings that changed and took effect.
    pub applied: Vec<String>,
    /// Settings that changed in the file but keep their running value.
    pub restart_needed: Vec<String>,
}

impl ReloadReport {
    /// One line for logs and NOTICEs.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.applied.is_empty() {
            parts.push("no live setting changed".to_string());
        } else {
            parts.push(format!("applied: {}", self.applied.join(", ")));
        }
        if !self.restart_needed.is_empty() {
            parts.push(format!(
                "changed but need a restart (running values kept): {}",
                self.restart_needed.join(", ")
            ));
        }
        parts.join("; ")
    }
}

/// The running configuration with `new`'s live settings, and what changed.
pub fn merge(running: &Config, new: &Config) -> (Config, ReloadReport) {
    let mut eff = running.clone();
    eff.server.max_client_conn = new.server.max_client_conn;
    eff.server.startup_timeout = new.server.startup_timeout;
    eff.server.max_message_size = new.server.max_message_size;
    eff.server.shutdown_timeout = new.server.shutdown_timeout;
    eff.auth = new.auth.clone();
    eff.pool = crate::config::PoolConfig {
        max_size: running.pool.max_size,
        ..new.pool.clone()
    };
    eff.log.level = new.log.level.clone();
    eff.log.slow_query_threshold = new.log.slow_query_threshold;
    eff.cache.ttl = new.cache.ttl;
    eff.admin.token = new.admin.token.clone();
    eff.admin.users = new.admin.users.clone();
    eff.limits = new.limits.clone();
    let before = flatten(running);
    let after = flatten(&eff);
    let wanted = flatten(new);
    let changed = |a: &[(String, String)], b: &[(String, String)]| -> Vec<String> {
        let mut keys: Vec<String> = a
            .iter()
            .filter(|(k, v)| b.iter().find(|(k2, _)| k2 == k).map(|(_, v2)| v2) != Some(v))
            .map(|(k, _)| k.clone())
            .chain(
                b.iter()
                    .filter(|(k, _)| !a.iter().any(|(k2, _)| k2 == k))
                    .map(|(k, _)| k.clone()),
            )
            .collect();
        keys.sort();
        keys.dedup();
        keys
    };
    let report = ReloadReport {
        applied: changed(&before, &after),
        restart_needed: changed(&after, &wanted),
    };
    (eff, report)
}

/// Every setting as `section.key = value` (values as TOML writes them;
/// arrays of tables as one inline value). Secrets are kept: callers show
/// [`flatten_redacted`] instead.
pub fn flatten(config: &Config) -> Vec<(String, String)> {
    let value = toml::Value::try_from(config).expect("the config serializes");
    let mut out = Vec::new();
    walk("", &value, &mut out);
    out
}

/// As [`flatten`], with every secret replaced.
pub fn flatten_redacted(config: &Config) -> Vec<(String, String)> {
    let text = config.to_redacted_toml();
    let value: toml::Value = toml::from_str(&text).expect("redacted config parses");
    let mut out = Vec::new();
    walk("", &value, &mut out);
    out
}

fn walk(prefix: &str, v: &toml::Value, out: &mut Vec<(String, String)>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                walk(&key, v, out);
            }
        }
        toml::Value::String(s) => out.push((prefix.to_string(), s.clone())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        Config::from_toml_str(text, "test", &[]).unwrap()
    }

    #[test]
    fn live_settings_apply_and_the_rest_is_reported() {
        let running = config("[cache]\nttl = \"60s\"\n[server]\nlisten = \"127.0.0.1:7000\"\n");
        let new = config("[cache]\nttl = \"5s\"\n[server]\nlisten = \"127.0.0.1:7001\"\n");
        let (eff, report) = merge(&running, &new);
        assert_eq!(eff.cache.ttl, std::time::Duration::from_secs(5));
        assert_eq!(eff.server.listen, running.server.listen);
        assert_eq!(report.applied, vec!["cache.ttl".to_string()]);
        assert_eq!(report.restart_needed, vec!["server.listen".to_string()]);
    }

    #[test]
    fn pool_size_needs_a_restart_but_its_timeouts_do_not() {
        let running = config("");
        let new = config("[pool]\nmax_size = 3\nacquire_timeout = \"2s\"\n");
        let (eff, report) = merge(&running, &new);
        assert_eq!(eff.pool.max_size, running.pool.max_size);
        assert_eq!(eff.pool.acquire_timeout, std::time::Duration::from_secs(2));
        assert_eq!(report.applied, vec!["pool.acquire_timeout".to_string()]);
        assert_eq!(report.restart_needed, vec!["pool.max_size".to_string()]);
    }

    #[test]
    fn an_unchanged_file_changes_nothing() {
        let c =
            config("[auth]\nmethod = \"md5\"\n[[auth.users]]\nname = \"a\"\npassword = \"p\"\n");
        let (_, report) = merge(&c, &c);
        assert_eq!(report, ReloadReport::default());
        assert!(is_live("auth.users"));
        assert!(!is_live("server.listen"));
    }
}
