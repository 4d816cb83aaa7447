//! `[limits]`: what one client, user or address may ask of Helios.
//!
//! Every limit is off at 0 except `auth_failures_per_minute`, which guards
//! passwords by default.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// A relayed statement running longer than this is canceled upstream;
    /// the client gets 57014. 0: no limit.
    #[serde(with = "super::duration")]
    pub query_timeout: Duration,
    /// A session that sits inside a transaction, sending nothing, for this
    /// long is ended with FATAL 25P03 (its transaction rolls back), as
    /// PostgreSQL's `idle_in_transaction_session_timeout`. 0: no limit.
    #[serde(with = "super::duration")]
    pub idle_in_transaction_timeout: Duration,
    /// Statements per second one user may start, across all sessions
    /// (bursts of up to a second's worth). Over it: 53400. 0: no limit.
    pub queries_per_second_per_user: u32,
    /// Statements per second from one client address. 0: no limit.
    pub queries_per_second_per_address: u32,
    /// New connections per second from one client address (bursts of up to
    /// a second's worth). Over it: FATAL 53400. 0: no limit.
    pub connections_per_second_per_address: u32,
    /// Failed logins one client address may make per minute; past that,
    /// its logins are refused with 53400 until the minute has passed. 0: no
    /// limit.
    pub auth_failures_per_minute: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            query_timeout: Duration::ZERO,
            idle_in_transaction_timeout: Duration::ZERO,
            queries_per_second_per_user: 0,
            queries_per_second_per_address: 0,
            connections_per_second_per_address: 0,
            auth_failures_per_minute: 20,
        }
    }
}

impl LimitsConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, d) in [
            ("limits.query_timeout", self.query_timeout),
            (
                "limits.idle_in_transaction_timeout",
                self.idle_in_transaction_timeout,
            ),
        ] {
            if !d.is_zero() && d < Duration::from_millis(10) {
                return Err(ConfigError::invalid(
                    key,
                    "must be 0 (off) or at least 10ms",
                ));
            }
        }
        Ok(())
    }
}
