//! A cacheable read in the extended protocol: a batch `[Parse] Bind
//! [Describe portal] Execute Sync`, answered from the store with the message
//! sequence PostgreSQL sends (ParseComplete, BindComplete, RowDescription,
//! DataRows, CommandComplete or PortalSuspended for `max_rows`,
//! ReadyForQuery), or relayed with its reply copied into the store.
//!
//! A Parse in a batch answered from the store is still sent upstream (with
//! its own Sync) before the answer, so statements prepared while served
//! from the store exist on the upstream for later use. Any other batch shape
//! is relayed as it is.

use std::io;

use bytes::{Buf, Bytes, BytesMut};
use helios_cache::{CacheKey, CachedResult, Request};
use helios_planner::cacheable::is_time_word;
use helios_wire::frame::{get_cstr, split_cstr, tag};
use helios_wire::{messages, Frame, TransactionStatus};
use tokio::io::AsyncWriteExt;

use super::simple::{lookup, prepare_fill, ready, Found};
use super::{admin, CacheState};
use crate::session::nl::{client_side, Side};
use crate::session::relay::Relay;

/// At most this many messages are read looking for the batch's Sync.
const MAX_BATCH: usize = 6;

/// A batch Helios can answer.
struct Shape {
    /// Index of the Parse, if there is one.
    parse: Option<usize>,
    statement: String,
    /// The Bind body after the portal and statement names.
    bind_rest: Bytes,
    describe: bool,
    max_rows: usize,
}

fn read_shape(frames: &[Frame]) -> Option<Shape> {
    let (parse, rest) = match frames.first() {
        Some(f) if f.tag == tag::PARSE => (Some(0), &frames[1..]),
        _ => (None, frames),
    };
    let describe = match rest {
        [b, e, s] if (b.tag, e.tag, s.tag) == (tag::BIND, tag::EXECUTE, tag::SYNC) => false,
        [b, d, e, s]
            if (b.tag, d.tag, e.tag, s.tag)
                == (tag::BIND, tag::DESCRIBE, tag::EXECUTE, tag::SYNC) =>
        {
            true
        }
        _ => return None,
    };
    let mut bind = &rest[0].body[..];
    let portal = split_cstr(&mut bind)?;
    let statement = split_cstr(&mut bind)?;
    let bind_at = rest[0].body.len() - bind.len();
    if let Some(i) = parse {
        if split_cstr(&mut &frames[i].body[..])? != statement {
            return None;
        }
    }
    if describe {
        let d = &rest[1].body[..];
        if d.first() != Some(&b'P') || split_cstr(&mut &d[1..])? != portal {
            return None;
        }
    }
    let mut exec = &rest[rest.len() - 2].body[..];
    if split_cstr(&mut exec)? != portal || exec.len() < 4 {
        return None;
    }
    let max_rows = exec.get_i32().max(0) as usize;
    Some(Shape {
        parse,
        statement: String::from_utf8_lossy(statement).into_owned(),
        bind_rest: Bytes::copy_from_slice(&rest[0].body[bind_at..]),
        describe,
        max_rows,
    })
}

/// Whether a text-format parameter reads as a moment ('now', 'today', ...).
fn time_dependent_params(mut bind: &[u8]) -> bool {
    let mut read = || -> Option<bool> {
        if bind.len() < 2 {
            return None;
        }
        let nf = bind.get_i16().max(0) as usize;
        let mut formats = Vec::with_capacity(nf);
        for _ in 0..nf {
            if bind.len() < 2 {
                return None;
            }
            formats.push(bind.get_i16());
        }
        if bind.len() < 2 {
            return None;
        }
        let np = bind.get_i16().max(0) as usize;
        for i in 0..np {
            if bind.len() < 4 {
                return None;
            }
            let len = bind.get_i32();
            if len < 0 {
                continue;
            }
            let len = len as usize;
            if bind.len() < len {
                return None;
            }
            let format = match nf {
                0 => 0,
                1 => formats[0],
                _ => formats.get(i).copied().unwrap_or(0),
            };
            if format == 0 && is_time_word(&bind[..len]) {
                return Some(true);
            }
            bind.advance(len);
        }
        Some(false)
    };
    // A Bind Helios cannot read is left to the upstream to refuse.
    read().unwrap_or(true)
}

pub(super) async fn handle(
    relay: &mut Relay<'_>,
    st: &mut CacheState,
    first: Frame,
    max_message: usize,
) -> io::Result<()> {
    let mut frames = vec![first];
    while frames.len() < MAX_BATCH {
        match frames.last().map(|f| f.tag) {
            Some(tag::PARSE | tag::BIND | tag::DESCRIBE | tag::EXECUTE) => {}
            _ => break,
        }
        match relay
            .read_small_client_frame(max_message)
            .await
            .map_err(client_side)?
        {
            Some(f) => frames.push(f),
            None => break,
        }
    }
    if let Some(reply) = admin_batch(relay, st, &frames).await? {
        let status = relay.upstream_status();
        let (client, _, to_client) = relay.parts();
        let mut out = std::mem::take(to_client);
        out.extend_from_slice(&reply);
        messages::ready_for_query(status, &mut out);
        client.write_all(&out).await.map_err(client_side)?;
        return client.flush().await.map_err(client_side);
    }
    let Some(shape) = read_shape(&frames) else {
        relay.pass_client_frames(&frames);
        return Ok(());
    };
    // `wants` recorded the statement when it saw its Parse.
    let Some(prepared) = st.statements.get(&shape.statement).cloned() else {
        relay.pass_client_frames(&frames);
        return Ok(());
    };
    let a = prepared.analyzed.clone();
    let Some(read) = a.class.read.clone() else {
        relay.pass_client_frames(&frames);
        return Ok(());
    };
    let Some(ctx) = ready(relay, st).await? else {
        st.note(&a, 0);
        relay.pass_client_frames(&frames);
        return Ok(());
    };
    let mut ticket = None;
    if st.chosen(&a) && !time_dependent_params(&shape.bind_rest) {
        let key = CacheKey {
            context: ctx,
            request: Request::Extended {
                text: prepared.text.clone(),
                param_types: prepared.param_types.clone(),
                bind: shape.bind_rest.clone(),
            },
        };
        match lookup(st, &key).await {
            Found::Hit(hit)
                if (shape.parse.is_some() || prepared.verified)
                    && (!shape.describe || hit.description().is_some()) =>
            {
                return answer(relay, st, &frames, &shape, &hit).await;
            }
            // Not answerable as it is (the statement is not known to exist
            // upstream, or no RowDescription was kept): fill it again.
            Found::Hit(_) => ticket = refill(st, &key),
            Found::Fill(t) => ticket = Some(t),
            Found::Neither => {}
        }
    }
    let verifies = Some(shape.statement.clone());
    prepare_fill(relay, st, ctx, &a, &read, ticket, verifies).await?;
    relay.pass_client_frames(&frames);
    Ok(())
}

/// A batch for a cache command (`SHOW HELIOS CACHES`, ... prepared by a
/// driver): its replies up to (not including) ReadyForQuery.
async fn admin_batch(
    relay: &mut Relay<'_>,
    st: &mut CacheState,
    frames: &[Frame],
) -> io::Result<Option<BytesMut>> {
    let first = &frames[0];
    let mut body = &first.body[..];
    let name = match first.tag {
        tag::PARSE => get_cstr(&mut body),
        tag::BIND => {
            let _portal = get_cstr(&mut body);
            get_cstr(&mut body)
        }
        tag::DESCRIBE => get_cstr(&mut first.body.get(1..).unwrap_or_default()),
        _ => None,
    };
    let Some(p) = name.and_then(|n| st.statements.get(&n).cloned()) else {
        return Ok(None);
    };
    if !p.admin {
        return Ok(None);
    }
    let tags: Vec<u8> = frames.iter().map(|f| f.tag).collect();
    let parse = tags[0] == tag::PARSE;
    let rest = if parse { &frames[1..] } else { frames };
    let rest_tags = &tags[tags.len() - rest.len()..];
    match rest_tags {
        [tag::SYNC] | [tag::DESCRIBE, tag::SYNC] => {
            let mut out = BytesMut::new();
            if parse {
                helios_wire::results::parse_complete(&mut out);
            }
            if rest_tags.len() == 2 {
                admin::describe_statement(&p.text, &mut out);
            }
            Ok(Some(out))
        }
        [tag::BIND, tag::EXECUTE, tag::SYNC]
        | [tag::BIND, tag::DESCRIBE, tag::EXECUTE, tag::SYNC] => {
            let mut bind = &rest[0].body[..];
            let _ = get_cstr(&mut bind);
            let _ = get_cstr(&mut bind);
            let formats = helios_wire::bind::read_bind_tail(bind)
                .map(|t| t.result_formats)
                .unwrap_or_default();
            let describe = rest_tags.len() == 4;
            admin::extended(relay, st, &p.text, parse, describe, &formats).await
        }
        _ => {
            let mut out = BytesMut::new();
            helios_wire::PgError::error(
                helios_wire::SqlState::FEATURE_NOT_SUPPORTED,
                "Helios's cache commands take Parse, Bind, Describe, Execute and Sync (one statement per Sync) in the extended protocol",
            )
            .encode(&mut out);
            Ok(Some(out))
        }
    }
}

/// A ticket to replace an entry that exists but cannot answer this batch.
fn refill(st: &CacheState, key: &CacheKey) -> Option<helios_cache::FillTicket> {
    st.svc.store.invalidate(key);
    match st.svc.store.lookup(key) {
        helios_cache::Lookup::Fill(t) => Some(t),
        _ => None,
    }
}

/// Answer the batch from the store.
async fn answer(
    relay: &mut Relay<'_>,
    st: &mut CacheState,
    frames: &[Frame],
    shape: &Shape,
    hit: &CachedResult,
) -> io::Result<()> {
    let mut out = BytesMut::with_capacity(hit.reply().len() + 64);
    if let Some(i) = shape.parse {
        // The statement must exist upstream too.
        let mut msg = BytesMut::new();
        msg.extend_from_slice(&frames[i].to_bytes());
        messages::sync(&mut msg);
        let (_, conn, to_client) = relay.parts();
        let replies = Side::new(conn, to_client).exchange(&msg).await?;
        let failed = replies.iter().find(|f| f.tag == tag::ERROR_RESPONSE);
        if let Some(e) = failed {
            // As PostgreSQL answers a batch whose Parse fails.
            let status = relay.upstream_status();
            let (client, _, to_client) = relay.parts();
            out.extend_from_slice(to_client);
            to_client.clear();
            out.extend_from_slice(&e.to_bytes());
            messages::ready_for_query(status, &mut out);
            client.write_all(&out).await.map_err(client_side)?;
            return client.flush().await.map_err(client_side);
        }
        if let Some(p) = st.statements.get_mut(&shape.statement) {
            p.verified = true;
        }
        helios_wire::results::parse_complete(&mut out);
    }
    let started = std::time::Instant::now();
    helios_wire::results::bind_complete(&mut out);
    if shape.describe {
        out.extend_from_slice(hit.description().expect("checked by the caller"));
    }
    let (rows, sent) = hit.rows_from(0, shape.max_rows);
    out.extend_from_slice(rows);
    // PostgreSQL suspends a portal once it has sent `max_rows` rows, without
    // looking ahead: also when those were the last ones.
    if shape.max_rows > 0 && sent == shape.max_rows {
        // PortalSuspended: the portal ends at Sync, outside a transaction.
        out.extend_from_slice(&[b's', 0, 0, 0, 4]);
    } else {
        out.extend_from_slice(hit.command_complete());
    }
    messages::ready_for_query(TransactionStatus::Idle, &mut out);
    let (client, _, to_client) = relay.parts();
    if !to_client.is_empty() {
        let mut all = BytesMut::with_capacity(to_client.len() + out.len());
        all.extend_from_slice(to_client);
        to_client.clear();
        all.extend_from_slice(&out);
        out = all;
    }
    st.count_hit(hit);
    client.write_all(&out).await.map_err(client_side)?;
    client.flush().await.map_err(client_side)?;
    st.record_hit(hit, started.elapsed());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_time_words_in_text_parameters_only() {
        let bind = |formats: &[i16], values: &[&[u8]]| {
            let mut b = BytesMut::new();
            b.extend_from_slice(&(formats.len() as i16).to_be_bytes());
            for f in formats {
                b.extend_from_slice(&f.to_be_bytes());
            }
            b.extend_from_slice(&(values.len() as i16).to_be_bytes());
            for v in values {
                b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                b.extend_from_slice(v);
            }
            b.extend_from_slice(&0i16.to_be_bytes());
            b
        };
        assert!(!time_dependent_params(&bind(&[], &[b"42", b"x"])));
        assert!(time_dependent_params(&bind(&[], &[b"42", b"Now"])));
        assert!(time_dependent_params(&bind(&[0], &[b"today"])));
        assert!(!time_dependent_params(&bind(&[1], &[b"today"])), "binary");
        assert!(time_dependent_params(&[0, 1]), "unreadable: not cached");
    }
}
