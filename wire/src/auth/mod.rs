//! Authentication, both ways.
//!
//! - [`client`]: Helios as the server, checking a connecting client
//!   (`trust`, `md5`, `scram-sha-256`, or taking a cleartext password to pass on).
//! - [`upstream`]: Helios as the client, answering the upstream's requests
//!   (trust, cleartext, md5, SCRAM-SHA-256).

pub mod client;
pub mod upstream;

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

pub use client::{authenticate_client, AuthMethod, ClientAuth};
pub use upstream::UpstreamAuth;

/// SCRAM iteration count for verifiers Helios derives from configured passwords.
pub const SCRAM_ITERATIONS: usize = 4096;

/// What Helios knows about a configured user's password.
#[derive(Clone)]
pub enum Credential {
    /// The password itself. SCRAM keys are derived once, when the
    /// credential is built, so each login costs no PBKDF2.
    Password {
        password: String,
        scram: ScramVerifier,
    },
    /// PostgreSQL's `md5<hex(md5(password || user))>`: usable for md5 only.
    Md5Hash(String),
    /// A PostgreSQL SCRAM verifier: usable for SCRAM only.
    Scram(ScramVerifier),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print secrets, not even in debug output.
        f.write_str(match self {
            Credential::Password { .. } => "Credential::Password(<redacted>)",
            Credential::Md5Hash(_) => "Credential::Md5Hash(<redacted>)",
            Credential::Scram(_) => "Credential::Scram(<redacted>)",
        })
    }
}

impl Credential {
    /// A cleartext password, with a fresh random salt for SCRAM.
    pub fn from_password(password: &str) -> Self {
        let salt: [u8; 16] = rand::random();
        Credential::Password {
            password: password.to_string(),
            scram: ScramVerifier::derive(password, &salt, SCRAM_ITERATIONS),
        }
    }

    /// Parse a stored secret as `pg_authid.rolpassword` holds it:
    /// `md5...` or `SCRAM-SHA-256$...`.
    pub fn from_stored(secret: &str) -> Result<Self, String> {
        if let Some(hex) = secret.strip_prefix("md5") {
            if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Ok(Credential::Md5Hash(secret.to_ascii_lowercase()));
            }
            return Err("an md5 secret is \"md5\" followed by 32 hex digits".into());
        }
        if secret.starts_with("SCRAM-SHA-256$") {
            return ScramVerifier::parse(secret).map(Credential::Scram);
        }
        Err("expected \"md5<32 hex digits>\" or \"SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>\"".into())
    }

    /// The cleartext password, when Helios has it (to log in upstream).
    pub fn password(&self) -> Option<&str> {
        match self {
            Credential::Password { password, .. } => Some(password),
            _ => None,
        }
    }
}

/// A SCRAM-SHA-256 verifier (RFC 5803 / PostgreSQL format).
#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    pub iterations: usize,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl ScramVerifier {
    pub fn derive(password: &str, salt: &[u8], iterations: usize) -> Self {
        let salted =
            pgwire::api::auth::sasl::scram::gen_salted_password(password, salt, iterations);
        match pgwire::api::auth::sasl::scram::ScramSecret::verifier_from_salted_password(
            salt.to_vec(),
            salted,
            iterations,
        ) {
            pgwire::api::auth::sasl::scram::ScramSecret::Verifier {
                salt,
                iterations,
                stored_key,
                server_key,
            } => ScramVerifier {
                iterations,
                salt,
                stored_key,
                server_key,
            },
            _ => unreachable!("verifier_from_salted_password returns a verifier"),
        }
    }

    /// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, base64 parts.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || {
            "malformed SCRAM verifier (expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>)"
                .to_string()
        };
        let rest = s.strip_prefix("SCRAM-SHA-256$").ok_or_else(bad)?;
        let (params, keys) = rest.split_once('$').ok_or_else(bad)?;
        let (iters, salt) = params.split_once(':').ok_or_else(bad)?;
        let (stored, server) = keys.split_once(':').ok_or_else(bad)?;
        let iterations: usize = iters.parse().map_err(|_| bad())?;
        let salt = B64.decode(salt).map_err(|_| bad())?;
        let stored_key = B64.decode(stored).map_err(|_| bad())?;
        let server_key = B64.decode(server).map_err(|_| bad())?;
        if iterations == 0 || stored_key.len() != 32 || server_key.len() != 32 {
            return Err(bad());
        }
        Ok(ScramVerifier {
            iterations,
            salt,
            stored_key,
            server_key,
        })
    }

    fn to_secret(&self) -> pgwire::api::auth::sasl::scram::ScramSecret {
        pgwire::api::auth::sasl::scram::ScramSecret::Verifier {
            salt: self.salt.clone(),
            iterations: self.iterations,
            stored_key: self.stored_key.clone(),
            server_key: self.server_key.clone(),
        }
    }
}

impl fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ScramVerifier(iterations: {}, <redacted>)",
            self.iterations
        )
    }
}

impl fmt::Display for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(&self.stored_key),
            B64.encode(&self.server_key)
        )
    }
}

/// md5 of `password || user`, as PostgreSQL stores md5 passwords.
pub fn md5_stored(user: &str, password: &str) -> String {
    format!("md5{:x}", md5::compute(format!("{password}{user}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_round_trips_and_rejects_garbage() {
        let v = ScramVerifier::derive("secret", b"0123456789abcdef", 4096);
        let text = v.to_string();
        assert_eq!(ScramVerifier::parse(&text).unwrap(), v);
        assert!(ScramVerifier::parse("SCRAM-SHA-256$x").is_err());
        assert!(Credential::from_stored("md5nothex").is_err());
        assert!(Credential::from_stored(&md5_stored("u", "p")).is_ok());
    }
}
