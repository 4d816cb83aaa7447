//! `cache.invalidation = "notify"`: one connection per database LISTENs on
//! the channel the triggers of `helios install-invalidation` notify at
//! commit. A notification names a table (or `*` for DDL); its generation is
//! bumped, so every result that read it is retired at once.
//!
//! While the listener is not connected, writes made elsewhere would go
//! unheard: the database's results are neither served nor stored, and
//! everything cached is retired each time the connection is (re)made.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use helios_wire::frame::{get_cstr, read_frame_buffered, tag};
use helios_wire::StartupParams;

use super::CacheService;
use crate::upstream::{UpstreamConn, UpstreamTarget};

const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub(super) fn spawn(
    svc: Arc<CacheService>,
    db: String,
    target: Arc<UpstreamTarget>,
    mut params: StartupParams,
    password: Option<String>,
    listening: Arc<AtomicBool>,
) {
    params.set("application_name", "helios-invalidation");
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(100);
        loop {
            match listen(&svc, &db, &target, &params, password.as_deref(), &listening).await {
                Ok(()) => delay = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(%db, error = %e, "cache invalidation listener down; results for this database are not cached until it is back")
                }
            }
            listening.store(false, Ordering::Release);
            svc.store.generations.database(&db).bump_epoch();
            metrics::counter!("helios_cache_invalidations_total", "cause" => "listener_lost")
                .increment(1);
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_BACKOFF);
        }
    });
}

/// Connect, LISTEN, and bump generations until the connection ends.
async fn listen(
    svc: &CacheService,
    db: &str,
    target: &UpstreamTarget,
    params: &StartupParams,
    password: Option<&str>,
    listening: &AtomicBool,
) -> std::io::Result<()> {
    let mut conn = UpstreamConn::connect(target, params, password)
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    conn.run_control_query(
        &format!("LISTEN {}", svc.config.notify_channel),
        target.connect_timeout,
    )
    .await?;
    // Writes made while nobody listened went unheard.
    svc.store.generations.database(db).bump_epoch();
    listening.store(true, Ordering::Release);
    tracing::info!(%db, channel = %svc.config.notify_channel, "cache invalidation listener connected");
    let gens = svc.store.generations.database(db);
    loop {
        let f = read_frame_buffered(&mut conn.stream, &mut conn.rbuf, 1 << 20)
            .await?
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        match f.tag {
            tag::NOTIFICATION_RESPONSE => {
                let mut body = &f.body[4.min(f.body.len())..];
                let _channel = get_cstr(&mut body);
                let payload = get_cstr(&mut body).unwrap_or_default();
                if payload == "*" || payload.is_empty() {
                    gens.bump_epoch();
                    metrics::counter!("helios_cache_invalidations_total", "cause" => "notify_ddl")
                        .increment(1);
                } else {
                    gens.bump_tables([payload.as_str()]);
                    metrics::counter!("helios_cache_invalidations_total", "cause" => "notify")
                        .increment(1);
                }
                tracing::debug!(%db, %payload, "invalidation notification");
            }
            tag::ERROR_RESPONSE => {
                let e = helios_wire::ErrorFields::parse(&f.body);
                return Err(std::io::Error::other(e.to_string()));
            }
            _ => {}
        }
    }
}
