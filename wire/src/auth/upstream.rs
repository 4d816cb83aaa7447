//! Answering the upstream's authentication requests when Helios logs in.
//!
//! A pure state machine: feed it each `Authentication` (`R`) message body and
//! write out what it returns. The upstream chooses the method; Helios answers
//! trust, cleartext, md5 and SCRAM-SHA-256 (the client side is
//! `postgres-protocol`'s, the one tokio-postgres uses).

use bytes::{Buf, BytesMut};
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

use crate::frame::get_cstr;
use crate::messages;

/// Why a login could not proceed on Helios's side.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamAuthError {
    #[error("the upstream asks for a password for user \"{user}\" and Helios has none for it")]
    NoPassword { user: String },
    #[error("the upstream asks for an authentication method Helios does not support (code {0})")]
    Unsupported(i32),
    #[error("the upstream offers no SASL mechanism Helios supports ({0})")]
    NoMechanism(String),
    #[error("SCRAM exchange with the upstream failed: {0}")]
    Scram(std::io::Error),
    #[error("malformed authentication message from the upstream")]
    Malformed,
}

/// Helios's side of one login.
pub struct UpstreamAuth {
    user: String,
    password: Option<Vec<u8>>,
    scram: Option<ScramSha256>,
    done: bool,
}

impl UpstreamAuth {
    pub fn new(user: &str, password: Option<&str>) -> Self {
        UpstreamAuth {
            user: user.to_string(),
            password: password.map(|p| p.as_bytes().to_vec()),
            scram: None,
            done: false,
        }
    }

    /// Whether AuthenticationOk has been seen.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Handle one Authentication message body; returns the bytes to send, if any.
    pub fn respond(&mut self, mut body: &[u8]) -> Result<Option<BytesMut>, UpstreamAuthError> {
        if body.remaining() < 4 {
            return Err(UpstreamAuthError::Malformed);
        }
        let code = body.get_i32();
        let mut out = BytesMut::new();
        match code {
            0 => {
                self.done = true;
                return Ok(None);
            }
            3 => messages::password_message(self.password()?, &mut out),
            5 => {
                if body.remaining() < 4 {
                    return Err(UpstreamAuthError::Malformed);
                }
                let salt = [body[0], body[1], body[2], body[3]];
                let hash = md5_hash(self.user.as_bytes(), self.password()?, salt);
                messages::password_message(hash.as_bytes(), &mut out);
            }
            10 => {
                let mut mechanisms = Vec::new();
                while let Some(m) = get_cstr(&mut body) {
                    if m.is_empty() {
                        break;
                    }
                    mechanisms.push(m);
                }
                if !mechanisms.iter().any(|m| m == "SCRAM-SHA-256") {
                    return Err(UpstreamAuthError::NoMechanism(mechanisms.join(", ")));
                }
                // 'n': Helios does not bind to the upstream's TLS channel, so a
                // server offering -PLUS over TLS sees no downgrade.
                let scram = ScramSha256::new(self.password()?, ChannelBinding::unsupported());
                messages::sasl_initial_response("SCRAM-SHA-256", scram.message(), &mut out);
                self.scram = Some(scram);
            }
            11 => {
                let scram = self.scram.as_mut().ok_or(UpstreamAuthError::Malformed)?;
                scram.update(body).map_err(UpstreamAuthError::Scram)?;
                messages::sasl_response(scram.message(), &mut out);
            }
            12 => {
                let scram = self.scram.as_mut().ok_or(UpstreamAuthError::Malformed)?;
                scram.finish(body).map_err(UpstreamAuthError::Scram)?;
                return Ok(None);
            }
            other => return Err(UpstreamAuthError::Unsupported(other)),
        }
        Ok(Some(out))
    }

    fn password(&self) -> Result<&[u8], UpstreamAuthError> {
        self.password
            .as_deref()
            .ok_or_else(|| UpstreamAuthError::NoPassword {
                user: self.user.clone(),
            })
    }
}
