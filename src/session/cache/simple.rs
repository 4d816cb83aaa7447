//! A cacheable read in a simple Query: answered from the store, or relayed
//! with its reply copied into the store.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use helios_cache::{CacheKey, CachedResult, Capture, ContextId, FillTicket, Lookup, Request};
use helios_planner::cacheable::ReadShape;
use helios_wire::frame::get_cstr;
use helios_wire::{messages, Frame, TransactionStatus};
use tokio::io::AsyncWriteExt;

use super::{CacheState, Fill};
use crate::cache::{Analyzed, Choice};
use crate::config::InvalidationMode;
use crate::session::nl::client_side;
use crate::session::relay::Relay;

pub(super) async fn handle(
    relay: &mut Relay<'_>,
    st: &mut CacheState,
    frame: Frame,
) -> io::Result<()> {
    let now = ready(relay, st).await?;
    // Found by its text alone: answered without reading the statement, if
    // nothing stands in the way now (a transaction block, pipelined
    // messages owed their replies, a lost invalidation listener).
    if let (Some(hit), Some(_)) = (st.hit.take(), now) {
        return answer(relay, st, &hit).await;
    }
    let a = match st.analyzed.take() {
        Some(a) if frame.body.strip_suffix(b"\0") == Some(a.text.as_bytes()) => a,
        _ => st
            .svc
            .analyze(&get_cstr(&mut &frame.body[..]).unwrap_or_default()),
    };
    let (Some(shape), Some(ctx)) = (a.class.read.clone(), now) else {
        st.note(&a, 0);
        relay.pass_client_frames(&[frame]);
        return Ok(());
    };
    let key = CacheKey {
        context: ctx,
        request: Request::Simple(a.text.clone()),
    };
    let ticket = if st.chosen(&a) {
        match lookup(st, &key).await {
            Found::Hit(hit) => return answer(relay, st, &hit).await,
            Found::Fill(t) => Some(t),
            Found::Neither => None,
        }
    } else {
        None
    };
    prepare_fill(relay, st, ctx, &a, &shape, ticket, None).await?;
    relay.pass_client_frames(&[frame]);
    Ok(())
}

/// Whether a lookup may happen now, and the session's context if so.
pub(super) async fn ready(
    relay: &mut Relay<'_>,
    st: &mut CacheState,
) -> io::Result<Option<ContextId>> {
    // Messages relayed before this one without a Sync: their replies are
    // owed first; Helios's own queries would take them.
    if relay.take_handover_unsynced() || relay.upstream_status() != TransactionStatus::Idle {
        return Ok(None);
    }
    if !st.svc.usable(&st.db) {
        return Ok(None);
    }
    st.context(relay).await
}

pub(super) enum Found {
    Hit(Arc<CachedResult>),
    Fill(FillTicket),
    /// Someone else's fill took too long: relay without filling.
    Neither,
}

/// Look up, waiting once for an identical miss already on its way.
pub(super) async fn lookup(st: &CacheState, key: &CacheKey) -> Found {
    match st.svc.store.lookup(key) {
        Lookup::Hit(h) => Found::Hit(h),
        Lookup::Fill(t) => Found::Fill(t),
        Lookup::Wait(w) => {
            st.svc.store.wait(w, st.svc.config.coalesce_wait).await;
            match st.svc.store.lookup(key) {
                Lookup::Hit(h) => Found::Hit(h),
                Lookup::Fill(t) => Found::Fill(t),
                Lookup::Wait(_) => Found::Neither,
            }
        }
    }
}

/// Settle the candidate with the catalog and, if it is to be kept, arm the
/// capture of its reply. Notes what running it means for the session.
pub(super) async fn prepare_fill(
    relay: &mut Relay<'_>,
    st: &mut CacheState,
    ctx: ContextId,
    a: &Analyzed,
    shape: &ReadShape,
    ticket: Option<FillTicket>,
    verifies: Option<String>,
) -> io::Result<()> {
    let resolved = if ticket.is_some() || !shape.functions.is_empty() {
        st.resolve(relay, ctx, shape).await?
    } else {
        None
    };
    st.note(a, 0);
    let (Some(ticket), Some(resolved)) = (ticket, resolved) else {
        return Ok(());
    };
    let r = &resolved.resolution;
    if let Some(why) = &r.refusal {
        tracing::debug!(why, "not cacheable");
        return Ok(());
    }
    // In notify mode a table without the trigger would not tell Helios
    // of writes made elsewhere (created after `helios install-invalidation`
    // without its DDL event trigger, say).
    if st.svc.config.invalidation == InvalidationMode::Notify && !r.unwatched.is_empty() {
        tracing::debug!(tables = ?r.unwatched, "not cacheable: not watched for writes made elsewhere");
        return Ok(());
    }
    let ttl: Duration = match st.svc.choose(a) {
        Choice::Yes(ttl) => ttl,
        Choice::AfterResolving => match st.svc.choose_by_tables(&r.tables) {
            Some(ttl) => ttl,
            None => return Ok(()),
        },
        Choice::No => return Ok(()),
    };
    let stats = st.svc.store.statement(a.fingerprint, &a.text);
    st.svc.store.count(Some(&stats), false);
    let snapshot = st.svc.store.generations.snapshot_at(
        &st.db,
        resolved.epoch(),
        r.tables.iter().map(String::as_str),
    );
    st.fill = Some(Fill {
        capture: Capture::new(st.svc.store.limits.max_entry_size),
        ticket,
        snapshot,
        ttl,
        stats,
        verifies,
    });
    Ok(())
}

/// Send a stored reply and ReadyForQuery, after anything the upstream sent
/// the client meanwhile.
async fn answer(relay: &mut Relay<'_>, st: &CacheState, hit: &CachedResult) -> io::Result<()> {
    let started = std::time::Instant::now();
    let (client, _, to_client) = relay.parts();
    let reply = hit.reply();
    let mut out = BytesMut::with_capacity(to_client.len() + reply.len() + 6);
    out.extend_from_slice(to_client);
    to_client.clear();
    out.extend_from_slice(reply);
    messages::ready_for_query(TransactionStatus::Idle, &mut out);
    st.count_hit(hit);
    client.write_all(&out).await.map_err(client_side)?;
    client.flush().await.map_err(client_side)?;
    st.record_hit(hit, started.elapsed());
    Ok(())
}
