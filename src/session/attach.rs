//! Giving a logged-in client its upstream connection, and the greeting.
//!
//! By default a client gets its connection at login, and the greeting is
//! that connection's: the server's parameters, and a BackendKeyData whose
//! pid is the backend's, as on a direct connection.
//!
//! With `pool.lazy_attach`, once a login with the same database, user and
//! startup parameters has been seen, the client is greeted at once with
//! what that login reported, and gets a connection only when its first
//! message arrives (as PgBouncer does). A client that connects and sits
//! idle then costs Helios a few hundred bytes and the upstream nothing.

use std::sync::Arc;

use bytes::BytesMut;
use helios_wire::frame::tag;
use helios_wire::{messages, ClientKey, ClientStream, TransactionStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::gate::{shutdown_error, Gate};
use super::send_error;
use crate::ops::{ClientEntry, ClientState, SessionObserver};
use crate::server::Server;
use crate::upstream::{ConnectError, Login, Pool, PoolKey, PooledConn};

/// A session with its upstream connection.
pub struct Attached {
    pub pooled: PooledConn,
    pub client_key: ClientKey,
    /// What the client sent before the connection was attached (lazily
    /// attached sessions): the relay starts from it.
    pub early: BytesMut,
    /// The greeting reached the client.
    pub greeted: bool,
}

/// What an attach needs from the session.
pub struct AttachCtx<'a> {
    pub server: &'a Arc<Server>,
    pub pool: &'a Pool,
    pub key: &'a PoolKey,
    pub login: &'a Login,
    pub entry: &'a ClientEntry,
    pub obs: &'a SessionObserver,
}

/// Attach the session, greeting the client. `None`: the session is over
/// (the client was told why, or left).
pub async fn attach(
    stream: &mut ClientStream,
    gate: &mut Gate,
    ctx: &AttachCtx<'_>,
) -> Option<Attached> {
    if let Some(greeting) = ctx.pool.lazy_greeting(ctx.key, ctx.login) {
        return attach_lazily(stream, gate, ctx, &greeting).await;
    }
    if let Err(e) = gate.admit().await {
        send_error(stream, &e).await;
        return None;
    }
    let pooled = acquire(stream, ctx, false).await?;
    let client_key = ctx.server.cancels.issue_preferring(pooled.conn.key.pid);
    let greeted = greet(stream, &pooled.conn.params, client_key).await.is_ok();
    Some(Attached {
        pooled,
        client_key,
        early: BytesMut::new(),
        greeted,
    })
}

async fn attach_lazily(
    stream: &mut ClientStream,
    gate: &mut Gate,
    ctx: &AttachCtx<'_>,
    greeting: &[(String, String)],
) -> Option<Attached> {
    let cancels = &ctx.server.cancels;
    let client_key = cancels.issue();
    let release = |_: ()| {
        cancels.release(client_key);
        None
    };
    if greet(stream, greeting, client_key).await.is_err() {
        return release(());
    }
    ctx.entry.set_state(ClientState::Idle);
    let Some(early) = first_message(stream, gate).await else {
        return release(());
    };
    if early.first() == Some(&tag::TERMINATE) {
        return release(());
    }
    ctx.entry.set_state(ClientState::Waiting);
    if let Err(e) = gate.admit().await {
        send_error(stream, &e).await;
        return release(());
    }
    let Some(pooled) = acquire(stream, ctx, true).await else {
        return release(());
    };
    Some(Attached {
        pooled,
        client_key,
        early,
        greeted: true,
    })
}

/// Wait, idle, for the client's first bytes. `None`: it left, or Helios is
/// shutting down (the client was told).
async fn first_message(stream: &mut ClientStream, gate: &mut Gate) -> Option<BytesMut> {
    // Small: most first messages fit, and the relay reads the rest.
    let mut buf = BytesMut::with_capacity(256);
    loop {
        tokio::select! {
            read = stream.read_buf(&mut buf) => {
                return match read {
                    Ok(0) | Err(_) => None,
                    Ok(_) => Some(buf),
                };
            }
            _ = gate.wake() => {
                if gate.phase().draining.is_some() {
                    send_error(stream, &shutdown_error()).await;
                    return None;
                }
            }
        }
    }
}

/// A connection from the pool; on failure the client is told and `None`.
/// `greeted`: the client has had its AuthenticationOk already.
async fn acquire(
    stream: &mut ClientStream,
    ctx: &AttachCtx<'_>,
    greeted: bool,
) -> Option<PooledConn> {
    let wait_started = std::time::Instant::now();
    let acquired = ctx.pool.acquire(ctx.key.clone(), ctx.login).await;
    ctx.obs.waited(wait_started.elapsed());
    match acquired {
        Ok(p) => Some(p),
        Err(ConnectError::Rejected {
            frame,
            fields,
            after_auth_ok,
        }) => {
            tracing::info!(error = %fields, "upstream refused the login");
            // As PostgreSQL does: "database does not exist" and the like
            // come after AuthenticationOk.
            let mut out = BytesMut::new();
            if after_auth_ok && !greeted {
                messages::authentication_ok(&mut out);
            }
            out.extend_from_slice(&frame.to_bytes());
            let _ = stream.write_all(&out).await;
            let _ = stream.flush().await;
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "no upstream connection");
            send_error(stream, &e.to_pg_error()).await;
            None
        }
    }
}

/// The greeting: AuthenticationOk, the server's parameters, Helios's cancel
/// key, ReadyForQuery, in one write.
async fn greet(
    stream: &mut ClientStream,
    params: &[(String, String)],
    key: ClientKey,
) -> std::io::Result<()> {
    let mut out = BytesMut::with_capacity(512);
    messages::authentication_ok(&mut out);
    for (name, value) in params {
        messages::parameter_status(name, value, &mut out);
    }
    messages::backend_key_data(key, &mut out);
    messages::ready_for_query(TransactionStatus::Idle, &mut out);
    stream.write_all(&out).await?;
    stream.flush().await
}
