//! A request refused by a rate limit (`[limits]`): answered with the error
//! (53400) and a ReadyForQuery, as PostgreSQL answers a failed statement;
//! nothing reaches the upstream. In the extended protocol the rest of the
//! batch is skipped up to its Sync, as after any error.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::BytesMut;
use helios_wire::frame::tag;
use helios_wire::{Frame, PgError};

use super::nl::{next_batch_frame, Side};
use super::relay::Relay;
use crate::server::Server;

/// Who a session's statements count against.
pub struct QueryLimit {
    server: Arc<Server>,
    user: String,
    ip: Option<IpAddr>,
}

impl QueryLimit {
    pub fn new(server: Arc<Server>, user: &str, ip: Option<IpAddr>) -> Self {
        QueryLimit {
            server,
            user: user.to_string(),
            ip,
        }
    }

    /// Count one request; `Err` when it is over a rate.
    pub fn check(&self) -> Result<(), PgError> {
        let limits = self.server.limits();
        if !limits.limits_queries() {
            return Ok(());
        }
        limits.check_query(&self.user, self.ip)
    }
}

/// Answer `first` (a Query, or the first message of a batch) with `error`.
pub async fn refuse(
    relay: &mut Relay<'_>,
    first: Frame,
    error: &PgError,
    max_message: usize,
) -> io::Result<()> {
    let mut out = BytesMut::new();
    if relay.take_handover_unsynced() {
        // Messages relayed before it, with no Sync yet: their replies first.
        let (_, conn, to_client) = relay.parts();
        Side::new(conn, to_client).sync_owed(&mut out).await?;
        relay.mark_synced();
    }
    error.encode(&mut out);
    if first.tag != tag::QUERY {
        let mut f = first;
        while f.tag != tag::SYNC {
            if f.tag == tag::TERMINATE {
                // The relay ends the session on it.
                relay.unread_client_frame(&f);
                break;
            }
            f = next_batch_frame(relay, max_message).await?;
        }
    }
    super::admin::finish(relay, out, true).await
}
