//! The client's side of startup: SSL/GSS negotiation, the StartupMessage
//! (or a CancelRequest), protocol negotiation, and authentication.

use bytes::BytesMut;
use helios_wire::auth::client::AuthContext;
use helios_wire::auth::{authenticate_client, ClientAuth};
use helios_wire::startup::read_startup_packet;
use helios_wire::{
    messages, ClientKey, ClientStream, PgError, SqlState, StartupPacket, StartupParams,
};
use tokio::io::AsyncWriteExt;

use crate::server::Server;

/// What the first packets of a connection amounted to.
pub enum Negotiated {
    /// A session wants to start.
    Startup {
        stream: ClientStream,
        params: StartupParams,
    },
    /// A cancel request for another session (the connection then closes).
    Cancel(ClientKey),
    /// The client left before sending anything meaningful.
    Closed,
    /// Something to report to the client, if it can still be reached.
    Failed {
        stream: Option<ClientStream>,
        error: PgError,
    },
}

/// Read packets until a StartupMessage or CancelRequest, answering SSL and
/// GSS encryption requests on the way.
pub async fn negotiate(server: &Server, mut stream: ClientStream) -> Negotiated {
    let mut tls_done = false;
    loop {
        let packet = match read_startup_packet(&mut stream).await {
            Ok(Some(p)) => p,
            Ok(None) => return Negotiated::Closed,
            Err(error) => {
                return Negotiated::Failed {
                    stream: Some(stream),
                    error,
                }
            }
        };
        match packet {
            StartupPacket::SslRequest if tls_done => {
                return Negotiated::Failed {
                    stream: Some(stream),
                    error: PgError::fatal(
                        SqlState::PROTOCOL_VIOLATION,
                        "unexpected SSL request after SSL negotiation",
                    ),
                }
            }
            StartupPacket::SslRequest => {
                tls_done = true;
                let acceptor = match (&server.tls, stream) {
                    (Some(tls), ClientStream::Tcp(tcp)) => Ok((tls.acceptor.clone(), tcp)),
                    (_, other) => Err(other),
                };
                match acceptor {
                    Ok((acceptor, mut tcp)) => {
                        if tcp.write_all(b"S").await.is_err() {
                            return Negotiated::Closed;
                        }
                        stream = match acceptor.accept(tcp).await {
                            Ok(tls) => ClientStream::Tls(Box::new(tls)),
                            Err(e) => {
                                tracing::info!(error = %e, "client TLS handshake failed");
                                return Negotiated::Closed;
                            }
                        };
                    }
                    Err(mut plain) => {
                        if plain.write_all(b"N").await.is_err() {
                            return Negotiated::Closed;
                        }
                        stream = plain;
                    }
                }
            }
            StartupPacket::GssEncRequest => {
                if stream.write_all(b"N").await.is_err() {
                    return Negotiated::Closed;
                }
            }
            StartupPacket::Cancel(key) => return Negotiated::Cancel(key),
            StartupPacket::Startup {
                minor,
                params,
                protocol_options,
            } => {
                if minor > 0 || !protocol_options.is_empty() {
                    // Speak 3.0 and none of the options, as PostgreSQL 15 would.
                    let mut out = BytesMut::new();
                    messages::negotiate_protocol_version(&protocol_options, &mut out);
                    if stream.write_all(&out).await.is_err() {
                        return Negotiated::Closed;
                    }
                }
                return Negotiated::Startup { stream, params };
            }
        }
    }
}

/// Whether this client may go on to authenticate: TLS when `require_tls`
/// asks for it, the address's connection rate, and no lockout for failed
/// logins. Checked before any password exchange, so a refusal says the same
/// whichever user the client named.
pub fn admit(
    server: &Server,
    stream: &ClientStream,
    user: &str,
    ip: Option<std::net::IpAddr>,
) -> Result<(), PgError> {
    let config = server.config_now();
    if config.tls.require_tls && matches!(stream, ClientStream::Tcp(_)) {
        metrics::counter!("helios_limit_refusals_total", "limit" => "require_tls").increment(1);
        let peer = ip.map_or_else(|| "[local]".to_string(), |ip| ip.to_string());
        return Err(PgError::fatal(
            SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
            format!("connection from {peer} for user \"{user}\" refused: Helios requires SSL (tls.require_tls)"),
        )
        .with_hint("Connect with sslmode=require (or stricter)."));
    }
    let limits = server.limits();
    if let Err(e) = limits.check_connection(ip) {
        metrics::counter!("helios_limit_refusals_total", "limit" => "connections").increment(1);
        return Err(e);
    }
    limits.check_login(ip)
}

/// Check the client's identity with the configured method.
pub async fn authenticate(
    server: &Server,
    stream: &mut ClientStream,
    user: &str,
) -> Result<ClientAuth, PgError> {
    let auth = server.auth();
    let method = auth.method;
    if method == helios_wire::auth::AuthMethod::Upstream && !(stream.is_tls() || stream.is_local())
    {
        return Err(PgError::fatal(
            SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
            "password passthrough needs an encrypted or local connection",
        )
        .with_hint("Connect with sslmode=require, or from the host Helios runs on."));
    }
    let tls_certificate_pem = match (&server.tls, stream.is_tls()) {
        (Some(tls), true) => Some(tls.certificate_pem.as_slice()),
        _ => None,
    };
    let ctx = AuthContext {
        user,
        credential: auth.users.get(user).and_then(|u| u.credential.as_ref()),
        tls_certificate_pem,
        decoy_key: &server.decoy_key,
    };
    authenticate_client(stream, method, ctx).await
}
