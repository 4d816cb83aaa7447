//! Rate limits per user and per client address (`[limits]`), with governor.
//!
//! What is counted, and where it is checked:
//! - a new connection, per address, once its startup packet is in (next to
//!   `max_client_conn`), so the refusal is a FATAL 53400 the client can read;
//! - a failed login, per address: past the allowance, the address's logins
//!   are refused before any password exchange, whichever user they name
//!   (so the refusal tells nothing about which users exist);
//! - a statement, per user and per address: each Query message and each
//!   extended-protocol batch (up to its Sync), whoever answers it.
//!
//! Timeouts (`query_timeout`, `idle_in_transaction_timeout`) are the relay's
//! business ([`crate::session`]); they are read from the same section.
//!
//! The limiters are rebuilt when a reload changes `[limits]`: counts start
//! afresh, which errs on the side of letting a client through.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use helios_wire::{PgError, SqlState};

use crate::config::LimitsConfig;

/// The limiters built from one `[limits]` section.
pub struct Limits {
    pub cfg: LimitsConfig,
    user_queries: Option<DefaultKeyedRateLimiter<String>>,
    address_queries: Option<DefaultKeyedRateLimiter<IpAddr>>,
    address_connections: Option<DefaultKeyedRateLimiter<IpAddr>>,
    auth_failures: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Addresses that ran out of failed logins, and until when.
    locked_out: Mutex<HashMap<IpAddr, Instant>>,
}

fn per_second(n: u32) -> Option<Quota> {
    NonZeroU32::new(n).map(Quota::per_second)
}

fn keyed<K: Clone + std::hash::Hash + Eq>(q: Option<Quota>) -> Option<DefaultKeyedRateLimiter<K>> {
    q.map(RateLimiter::keyed)
}

fn retry_in(wait: Duration) -> String {
    // Whole milliseconds, at least 1: "retry in 0s" reads like a bug.
    let ms = wait.as_millis().max(1) as u64;
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}

impl Limits {
    pub fn new(cfg: &LimitsConfig) -> Limits {
        // Failed logins: the allowance is spent by the first N-1 failures;
        // the Nth finds it empty and locks the address out, so exactly N
        // failures fit in a minute.
        let auth_failures = NonZeroU32::new(cfg.auth_failures_per_minute).map(|n| {
            let burst = NonZeroU32::new(n.get().saturating_sub(1)).unwrap_or(NonZeroU32::MIN);
            RateLimiter::keyed(Quota::per_minute(n).allow_burst(burst))
        });
        Limits {
            cfg: cfg.clone(),
            user_queries: keyed(per_second(cfg.queries_per_second_per_user)),
            address_queries: keyed(per_second(cfg.queries_per_second_per_address)),
            address_connections: keyed(per_second(cfg.connections_per_second_per_address)),
            auth_failures,
            locked_out: Mutex::new(HashMap::new()),
        }
    }

    /// Whether statements are rate-limited at all (sessions skip the check
    /// otherwise).
    pub fn limits_queries(&self) -> bool {
        self.user_queries.is_some() || self.address_queries.is_some()
    }

    /// A new connection from `ip`.
    pub fn check_connection(&self, ip: Option<IpAddr>) -> Result<(), PgError> {
        let (Some(lim), Some(ip)) = (&self.address_connections, ip) else {
            return Ok(());
        };
        lim.check_key(&ip).map_err(|nu| {
            limit_error(format!(
                "too many connection attempts from {ip}: limits.connections_per_second_per_address is {}; retry in {}",
                self.cfg.connections_per_second_per_address,
                retry_in(nu.wait_time_from(DefaultClock::default().now()))
            ))
            .into_fatal()
        })
    }

    /// Before a password exchange: is `ip` locked out by failed logins?
    pub fn check_login(&self, ip: Option<IpAddr>) -> Result<(), PgError> {
        let Some(ip) = ip else { return Ok(()) };
        let mut locked = self.locked_out.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match locked.get(&ip) {
            Some(&until) if until > now => Err(limit_error(format!(
                "too many failed login attempts from {ip}: limits.auth_failures_per_minute is {}; retry in {}",
                self.cfg.auth_failures_per_minute,
                retry_in(until - now)
            ))
            .into_fatal()),
            Some(_) => {
                locked.remove(&ip);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// A login from `ip` failed.
    pub fn login_failed(&self, ip: Option<IpAddr>) {
        let (Some(lim), Some(ip)) = (&self.auth_failures, ip) else {
            return;
        };
        if let Err(nu) = lim.check_key(&ip) {
            let wait = nu.wait_time_from(DefaultClock::default().now());
            tracing::warn!(client = %ip, retry_in = ?wait, "too many failed logins: address locked out");
            metrics::counter!("helios_limit_refusals_total", "limit" => "auth_failures")
                .increment(1);
            self.locked_out
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(ip, Instant::now() + wait);
        }
    }

    /// A statement from `user` at `ip`: `Err` (53400) when either is over
    /// its rate.
    pub fn check_query(&self, user: &str, ip: Option<IpAddr>) -> Result<(), PgError> {
        let clock = DefaultClock::default();
        if let Some(lim) = &self.user_queries {
            // DashMap lookups by &String: one allocation per statement only
            // on the first statement of a user (the key is cloned on insert).
            if let Err(nu) = lim.check_key(&user.to_string()) {
                metrics::counter!("helios_limit_refusals_total", "limit" => "user_queries")
                    .increment(1);
                return Err(limit_error(format!(
                    "rate limit exceeded: user \"{user}\" may start {} statements per second (limits.queries_per_second_per_user); retry in {}",
                    self.cfg.queries_per_second_per_user,
                    retry_in(nu.wait_time_from(clock.now()))
                )));
            }
        }
        if let (Some(lim), Some(ip)) = (&self.address_queries, ip) {
            if let Err(nu) = lim.check_key(&ip) {
                metrics::counter!("helios_limit_refusals_total", "limit" => "address_queries")
                    .increment(1);
                return Err(limit_error(format!(
                    "rate limit exceeded: clients at {ip} may start {} statements per second (limits.queries_per_second_per_address); retry in {}",
                    self.cfg.queries_per_second_per_address,
                    retry_in(nu.wait_time_from(clock.now()))
                )));
            }
        }
        Ok(())
    }

    /// Forget keys that have been quiet long enough to be back at full
    /// allowance (called periodically so the maps do not grow forever).
    pub fn forget_idle(&self) {
        for lim in [
            &self.address_queries,
            &self.address_connections,
            &self.auth_failures,
        ]
        .into_iter()
        .flatten()
        {
            lim.retain_recent();
            lim.shrink_to_fit();
        }
        if let Some(lim) = &self.user_queries {
            lim.retain_recent();
            lim.shrink_to_fit();
        }
        let now = Instant::now();
        self.locked_out
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, until| *until > now);
    }
}

fn limit_error(message: String) -> PgError {
    PgError::error(SqlState::CONFIGURATION_LIMIT_EXCEEDED, message)
}

trait IntoFatal {
    fn into_fatal(self) -> PgError;
}

impl IntoFatal for PgError {
    fn into_fatal(mut self) -> PgError {
        self.severity = helios_wire::error::Severity::Fatal;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn queries_over_the_user_rate_get_53400_naming_the_setting() {
        let l = Limits::new(&LimitsConfig {
            queries_per_second_per_user: 3,
            ..Default::default()
        });
        for _ in 0..3 {
            l.check_query("alice", ip("10.0.0.1")).unwrap();
        }
        let e = l.check_query("alice", ip("10.0.0.2")).unwrap_err();
        assert_eq!(e.code, SqlState::CONFIGURATION_LIMIT_EXCEEDED);
        assert!(
            e.message.contains("queries_per_second_per_user"),
            "{}",
            e.message
        );
        // Another user has an allowance of its own.
        l.check_query("bob", ip("10.0.0.1")).unwrap();
    }

    #[test]
    fn queries_over_the_address_rate_are_refused_whoever_sends_them() {
        let l = Limits::new(&LimitsConfig {
            queries_per_second_per_address: 2,
            ..Default::default()
        });
        l.check_query("a", ip("10.0.0.1")).unwrap();
        l.check_query("b", ip("10.0.0.1")).unwrap();
        assert!(l.check_query("c", ip("10.0.0.1")).is_err());
        l.check_query("c", ip("10.0.0.2")).unwrap();
        // Unix-socket clients have no address: not address-limited.
        for _ in 0..10 {
            l.check_query("c", None).unwrap();
        }
    }

    #[test]
    fn n_failed_logins_lock_the_address_out_and_others_stay_in() {
        let l = Limits::new(&LimitsConfig {
            auth_failures_per_minute: 3,
            ..Default::default()
        });
        for _ in 0..3 {
            l.check_login(ip("10.0.0.9")).unwrap();
            l.login_failed(ip("10.0.0.9"));
        }
        let e = l.check_login(ip("10.0.0.9")).unwrap_err();
        assert_eq!(e.code, SqlState::CONFIGURATION_LIMIT_EXCEEDED);
        assert_eq!(e.severity.as_str(), "FATAL");
        l.check_login(ip("10.0.0.8")).unwrap();
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let l = Limits::new(&LimitsConfig {
            auth_failures_per_minute: 0,
            ..Default::default()
        });
        assert!(!l.limits_queries());
        for _ in 0..100 {
            l.check_connection(ip("10.0.0.1")).unwrap();
            l.login_failed(ip("10.0.0.1"));
            l.check_login(ip("10.0.0.1")).unwrap();
        }
    }

    #[test]
    fn connections_over_the_rate_are_fatal_53400() {
        let l = Limits::new(&LimitsConfig {
            connections_per_second_per_address: 2,
            ..Default::default()
        });
        l.check_connection(ip("10.0.0.1")).unwrap();
        l.check_connection(ip("10.0.0.1")).unwrap();
        let e = l.check_connection(ip("10.0.0.1")).unwrap_err();
        assert_eq!(e.code, SqlState::CONFIGURATION_LIMIT_EXCEEDED);
        assert_eq!(e.severity.as_str(), "FATAL");
    }
}
