//! Checking a connecting client's identity.
//!
//! A wrong password and an unknown user look the same to the client, in
//! message and in timing: an unknown user goes through the whole exchange
//! against a decoy secret derived from the user name, and fails at the end.

use bytes::{Buf, BytesMut};
use pgwire::api::auth::sasl::scram::ScramServerAuth;
use pgwire::error::PgWireError;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::{Credential, ScramVerifier, SCRAM_ITERATIONS};
use crate::error::{PgError, SqlState};
use crate::frame::{get_cstr, read_frame, tag};
use crate::messages;

/// Longest authentication message accepted (PostgreSQL's PG_MAX_AUTH_TOKEN_LENGTH).
const MAX_AUTH_MESSAGE: usize = 65_535;

const SCRAM: &str = "SCRAM-SHA-256";
const SCRAM_PLUS: &str = "SCRAM-SHA-256-PLUS";

/// How clients prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// Anyone who can connect is who they say they are.
    Trust,
    /// md5 challenge; users with a SCRAM secret only are asked for SCRAM, as PostgreSQL does.
    Md5,
    ScramSha256,
    /// Helios asks for the cleartext password and logs into the upstream with
    /// it: the upstream decides.
    Upstream,
}

/// What the exchange learnt.
#[derive(Debug, Default)]
pub struct ClientAuth {
    /// The cleartext password, with [`AuthMethod::Upstream`].
    pub password: Option<String>,
}

/// What the exchange needs besides the stream.
pub struct AuthContext<'a> {
    pub user: &'a str,
    /// The configured credential; `None` for an unknown user.
    pub credential: Option<&'a Credential>,
    /// The server certificate chain (PEM) when the client is on TLS, for
    /// SCRAM-SHA-256-PLUS channel binding.
    pub tls_certificate_pem: Option<&'a [u8]>,
    /// A per-process secret from which decoy credentials are derived.
    pub decoy_key: &'a [u8; 32],
}

/// Run the authentication exchange for `method`. On success nothing has been
/// sent that ends the exchange: the caller sends AuthenticationOk once the
/// session is ready.
pub async fn authenticate_client<S>(
    s: &mut S,
    method: AuthMethod,
    ctx: AuthContext<'_>,
) -> Result<ClientAuth, PgError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match method {
        AuthMethod::Trust => Ok(ClientAuth::default()),
        AuthMethod::Upstream => {
            send(s, messages::authentication_cleartext).await?;
            let body = read_password_message(s).await?;
            let password = password_from_body(body)?;
            Ok(ClientAuth {
                password: Some(password),
            })
        }
        AuthMethod::Md5 => match ctx.credential {
            Some(Credential::Scram(v)) => scram(s, &ctx, v.clone()).await,
            Some(Credential::Password { password, .. }) => {
                let stored = super::md5_stored(ctx.user, password);
                md5(s, &ctx, Some(&stored)).await
            }
            Some(Credential::Md5Hash(stored)) => md5(s, &ctx, Some(stored)).await,
            None => md5(s, &ctx, None).await,
        },
        AuthMethod::ScramSha256 => {
            let verifier = match ctx.credential {
                Some(Credential::Password { scram, .. }) => Some(scram.clone()),
                Some(Credential::Scram(v)) => Some(v.clone()),
                // An md5 secret cannot answer SCRAM; fail like a wrong password.
                Some(Credential::Md5Hash(_)) | None => None,
            };
            match verifier {
                Some(v) => scram(s, &ctx, v).await,
                None => {
                    let decoy = decoy_verifier(ctx.decoy_key, ctx.user);
                    scram(s, &ctx, decoy).await?;
                    Err(auth_failed(ctx.user))
                }
            }
        }
    }
}

fn auth_failed(user: &str) -> PgError {
    PgError::fatal(
        SqlState::INVALID_PASSWORD,
        format!("password authentication failed for user \"{user}\""),
    )
}

async fn send<S: AsyncWrite + Unpin>(
    s: &mut S,
    f: impl FnOnce(&mut BytesMut),
) -> Result<(), PgError> {
    let mut out = BytesMut::with_capacity(64);
    f(&mut out);
    s.write_all(&out).await.map_err(PgError::io)?;
    s.flush().await.map_err(PgError::io)
}

async fn read_password_message<S: AsyncRead + Unpin>(s: &mut S) -> Result<BytesMut, PgError> {
    match read_frame(s, MAX_AUTH_MESSAGE).await {
        Ok(Some(f)) if f.tag == tag::PASSWORD => Ok(f.body),
        Ok(Some(f)) => Err(PgError::fatal(
            SqlState::PROTOCOL_VIOLATION,
            format!(
                "expected password response, got message type {}",
                f.tag as char
            ),
        )),
        // psql hangs up here to prompt for a password, then reconnects.
        Ok(None) => Err(PgError::fatal(
            SqlState::CONNECTION_FAILURE,
            "client closed the connection during authentication",
        )),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(PgError::fatal(
            SqlState::PROTOCOL_VIOLATION,
            format!("invalid authentication message: {e}"),
        )),
        Err(e) => Err(PgError::io(e)),
    }
}

fn password_from_body(mut body: BytesMut) -> Result<String, PgError> {
    get_cstr(&mut body).ok_or_else(|| {
        PgError::fatal(
            SqlState::PROTOCOL_VIOLATION,
            "invalid password packet: missing terminator",
        )
    })
}

async fn md5<S>(
    s: &mut S,
    ctx: &AuthContext<'_>,
    stored: Option<&str>,
) -> Result<ClientAuth, PgError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let salt: [u8; 4] = rand::random();
    send(s, |out| messages::authentication_md5(salt, out)).await?;
    let answer = password_from_body(read_password_message(s).await?)?;
    // For an unknown user, compute against a decoy so the work is the same.
    let decoy;
    let stored = match stored {
        Some(st) => st,
        None => {
            decoy = format!("md5{:x}", md5::compute(decoy_seed(ctx.decoy_key, ctx.user)));
            &decoy
        }
    };
    let mut input = Vec::with_capacity(36);
    input.extend_from_slice(stored.trim_start_matches("md5").as_bytes());
    input.extend_from_slice(&salt);
    let expected = format!("md5{:x}", md5::compute(input));
    if constant_time_eq(expected.as_bytes(), answer.as_bytes()) && ctx.credential.is_some() {
        Ok(ClientAuth::default())
    } else {
        Err(auth_failed(ctx.user))
    }
}

async fn scram<S>(
    s: &mut S,
    ctx: &AuthContext<'_>,
    verifier: ScramVerifier,
) -> Result<ClientAuth, PgError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut server = ScramServerAuth::new();
    let mut mechanisms = vec![SCRAM];
    if let Some(pem) = ctx.tls_certificate_pem {
        if server.configure_certificate(pem).is_ok() {
            mechanisms.insert(0, SCRAM_PLUS);
        }
    }
    send(s, |out| messages::authentication_sasl(&mechanisms, out)).await?;

    let mut initial = read_password_message(s).await?;
    let malformed = || {
        PgError::fatal(
            SqlState::PROTOCOL_VIOLATION,
            "malformed SASL message: invalid SASLInitialResponse",
        )
    };
    let mechanism = get_cstr(&mut initial).ok_or_else(malformed)?;
    if !mechanisms.contains(&mechanism.as_str()) {
        return Err(PgError::fatal(
            SqlState::PROTOCOL_VIOLATION,
            format!("client selected an invalid SASL authentication mechanism: {mechanism}"),
        ));
    }
    if initial.remaining() < 4 {
        return Err(malformed());
    }
    let len = initial.get_i32();
    if len < 0 || len as usize != initial.remaining() {
        return Err(malformed());
    }
    let (server_first, waiting) = server
        .on_client_first_message_with_secret(&initial, verifier.to_secret())
        .map_err(|e| scram_error(e, ctx.user))?;
    send(s, |out| {
        messages::authentication_sasl_continue(server_first.as_bytes(), out)
    })
    .await?;

    let client_final = read_password_message(s).await?;
    let server_final = waiting
        .on_client_final_message(&client_final)
        .map_err(|e| scram_error(e, ctx.user))?;
    if ctx.credential.is_none() {
        return Err(auth_failed(ctx.user));
    }
    send(s, |out| {
        messages::authentication_sasl_final(server_final.as_bytes(), out)
    })
    .await?;
    Ok(ClientAuth::default())
}

fn scram_error(e: PgWireError, user: &str) -> PgError {
    match e {
        PgWireError::InvalidPassword(_) => auth_failed(user),
        other => PgError::fatal(
            SqlState::PROTOCOL_VIOLATION,
            format!("malformed SCRAM message: {other}"),
        ),
    }
}

/// Stable per-user bytes from the process secret, so that repeated attempts
/// for one unknown user see the same salt, as they would for a real one.
fn decoy_seed(key: &[u8; 32], user: &str) -> Vec<u8> {
    let mut seed = key.to_vec();
    seed.extend_from_slice(user.as_bytes());
    let digest = md5::compute(&seed);
    digest.0.to_vec()
}

fn decoy_verifier(key: &[u8; 32], user: &str) -> ScramVerifier {
    let seed = decoy_seed(key, user);
    ScramVerifier {
        iterations: SCRAM_ITERATIONS,
        salt: seed.clone(),
        stored_key: [seed.as_slice(), seed.as_slice()].concat(),
        server_key: [seed.as_slice(), seed.as_slice()].concat(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
