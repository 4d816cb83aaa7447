//! Helios's own catalog queries for the cache, on the session's connection
//! (so `search_path`, the role and every setting are the session's), at a
//! Sync boundary outside any transaction.

use std::io;
use std::sync::Arc;

use helios_cache::{Context, ContextId};
use helios_planner::cacheable::{self, ReadShape};
use helios_wire::frame::get_cstr;
use helios_wire::{Frame, TransactionStatus};

use super::CacheState;
use crate::cache::Resolved;
use crate::session::nl::Side;
use crate::session::relay::Relay;

/// The role results are computed for, a digest of every setting (but
/// `application_name` and Helios's own `helios.*`) and of `session_user` (which a view may read), and
/// `helios.cache` — a placeholder setting
/// PostgreSQL keeps for Helios, so `SET`, `SET LOCAL`, `RESET` and
/// `ALTER ROLE ... SET helios.cache` all work as they do for any setting.
///
/// A session with its own temporary schema can have a temporary table
/// shadow a permanent one of the same name: its context is its own
/// (the backend's pid is part of it), so it never shares entries.
const PROBE: &str = "SELECT current_user::text, \
    pg_catalog.md5(pg_catalog.string_agg(name || '=' || setting, E'\\n' ORDER BY name) \
                   || E'\\nsession_user=' || session_user::text) \
      || CASE WHEN pg_catalog.pg_my_temp_schema() <> 0 \
              THEN ':' || pg_catalog.pg_backend_pid()::text ELSE '' END, \
    pg_catalog.current_setting('helios.cache', true) \
    FROM pg_catalog.pg_settings \
    WHERE name <> 'application_name' AND name NOT LIKE 'helios.%'";

fn on(value: Option<&str>) -> bool {
    !matches!(
        value.map(|v| v.trim().to_ascii_lowercase()).as_deref(),
        Some("off" | "false" | "no" | "0" | "f" | "n")
    )
}

impl CacheState {
    /// The session's context, read again if something may have changed it.
    /// `None`: it could not be read (the statement is then relayed).
    pub(super) async fn context(&mut self, relay: &mut Relay<'_>) -> io::Result<Option<ContextId>> {
        if let Some(c) = self.context {
            return Ok(Some(c));
        }
        if relay.upstream_status() != TransactionStatus::Idle {
            return Ok(None);
        }
        let (_, conn, to_client) = relay.parts();
        let rows = match Side::new(conn, to_client).own_query(PROBE).await? {
            Ok(rows) => rows,
            Err(e) => {
                tracing::debug!(error = %e, "could not read the session's settings");
                return Ok(None);
            }
        };
        let Some([Some(role), Some(digest), flag]) = rows.first().map(|r| {
            [
                r.first().cloned().flatten(),
                r.get(1).cloned().flatten(),
                r.get(2).cloned().flatten(),
            ]
        }) else {
            return Ok(None);
        };
        self.enabled = on(flag.as_deref());
        self.learn_writers(relay).await?;
        let id = self.svc.store.context(Context {
            database: self.db.clone(),
            role,
            settings: digest,
        });
        self.context = Some(id);
        Ok(Some(id))
    }

    /// Read which functions may write, if not known for this epoch. Only
    /// outside transactions, at a Sync boundary.
    pub(super) async fn learn_writers(&mut self, relay: &mut Relay<'_>) -> io::Result<()> {
        if self.svc.writers(&self.db).is_some() {
            return Ok(());
        }
        let epoch = self.svc.epoch(&self.db);
        let (_, conn, to_client) = relay.parts();
        match Side::new(conn, to_client)
            .own_query(cacheable::WRITERS_SQL)
            .await?
        {
            Ok(rows) => self
                .svc
                .learn_writers(&self.db, epoch, cacheable::read_writers(&rows)),
            Err(e) => tracing::warn!(error = %e, "cache: reading which functions may write failed"),
        }
        Ok(())
    }

    /// What the catalog says about a candidate (remembered per context
    /// until the next DDL). `None`: the catalog query failed.
    pub(super) async fn resolve(
        &mut self,
        relay: &mut Relay<'_>,
        ctx: ContextId,
        shape: &ReadShape,
    ) -> io::Result<Option<Arc<Resolved>>> {
        if let Some(r) = self.svc.resolved(&self.db, ctx, shape) {
            return Ok(Some(r));
        }
        let epoch = self.svc.epoch(&self.db);
        let (_, conn, to_client) = relay.parts();
        let sql = cacheable::resolve_sql(shape);
        match Side::new(conn, to_client).own_query(&sql).await? {
            Ok(rows) => {
                let resolution = cacheable::resolution(shape, &rows);
                // A view read is a write's family too.
                Ok(Some(
                    self.svc.remember_resolution(ctx, shape, resolution, epoch),
                ))
            }
            Err(e) => {
                tracing::warn!(error = %e, "cache: resolving a statement's tables failed");
                Ok(None)
            }
        }
    }
}

/// A write to relations whose families are unknown: learn them (outside
/// transactions only: a query of Helios's own inside the client's
/// transaction could take its snapshot), then relay the write.
pub(super) async fn learn_families_then_pass(
    relay: &mut Relay<'_>,
    st: &mut CacheState,
    frame: Frame,
) -> io::Result<()> {
    if relay.upstream_status() == TransactionStatus::Idle && !relay.take_handover_unsynced() {
        let text = {
            let mut body = &frame.body[..];
            if frame.tag == b'P' {
                let _ = get_cstr(&mut body);
            }
            get_cstr(&mut body).unwrap_or_default()
        };
        st.learn_writers(relay).await?;
        let a = st.svc.analyze(&text);
        let names: Vec<String> = a
            .class
            .writes
            .iter()
            .filter(|t| st.svc.family(&st.db, t).is_none())
            .cloned()
            .collect();
        if !names.is_empty() {
            let epoch = st.svc.epoch(&st.db);
            let (_, conn, to_client) = relay.parts();
            match Side::new(conn, to_client)
                .own_query(&cacheable::families_sql(&names))
                .await?
            {
                Ok(rows) => {
                    st.svc
                        .learn_families(&st.db, epoch, cacheable::read_families(&names, &rows))
                }
                Err(e) => tracing::warn!(error = %e, "cache: reading what a write reaches failed"),
            }
        }
    }
    relay.pass_client_frames(&[frame]);
    Ok(())
}
