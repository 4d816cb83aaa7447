//! One client's session, from the first packet to the last.
//!
//! ```text
//! negotiate (SSL, GSS, startup / cancel) -> authenticate -> acquire upstream
//!   -> greet (AuthenticationOk, ParameterStatus*, BackendKeyData, ReadyForQuery)
//!   -> relay until either side ends -> release the upstream to the pool
//! ```

mod admin;
mod advise;
mod attach;
mod cache;
mod engine;
mod gate;
mod limit;
pub(crate) mod nl;
mod relay;
mod startup;
mod stats;

use std::sync::Arc;

use bytes::BytesMut;
use helios_wire::frame::tag;
use helios_wire::{ClientKey, ClientStream, PgError, SqlState, TransactionStatus};
use tokio::io::AsyncWriteExt;
use tracing::Instrument;

pub(crate) use advise::command as advise_command;
pub use gate::shutdown_error;
pub use relay::{Intercept, Relay, RelayEnd, Timeouts};
use startup::Negotiated;

use crate::server::{ClientSlot, Server};
use crate::upstream::{Login, PoolKey};

/// Serve one client connection.
pub async fn serve(
    server: Arc<Server>,
    stream: ClientStream,
    slot: ClientSlot,
    addr: Option<std::net::SocketAddr>,
) {
    let peer = addr.map_or_else(|| "[local]".to_string(), |a| a.to_string());
    let ip = addr.map(|a| a.ip());
    let span = tracing::info_span!(
        "session",
        %peer,
        user = tracing::field::Empty,
        db = tracing::field::Empty,
        application_name = tracing::field::Empty
    );
    async move {
        // One deadline for SSL negotiation, startup and authentication.
        let deadline = tokio::time::Instant::now() + server.config_now().server.startup_timeout;
        let startup = tokio::time::timeout_at(deadline, startup::negotiate(&server, stream)).await;
        let (mut stream, params) = match startup {
            Err(_) => {
                tracing::debug!("startup timed out");
                return;
            }
            Ok(Negotiated::Closed) => return,
            Ok(Negotiated::Cancel(key)) => return cancel(&server, key).await,
            Ok(Negotiated::Failed { stream, error }) => {
                tracing::info!(%error, "startup failed");
                if let Some(mut s) = stream {
                    send_error(&mut s, &error).await;
                }
                return;
            }
            Ok(Negotiated::Startup { stream, params }) => (stream, params),
        };
        let client = server.ops.clients.register(&peer, stream.is_tls());
        let entry = client.entry.clone();

        let Some(user) = params.user().map(str::to_string) else {
            let e = PgError::fatal(
                SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
                "no PostgreSQL user name specified in startup packet",
            );
            return send_error(&mut stream, &e).await;
        };
        let database = params.database().unwrap_or(&user).to_string();
        let application_name = params
            .get("application_name")
            .unwrap_or_default()
            .to_string();
        tracing::Span::current().record("user", user.as_str());
        tracing::Span::current().record("db", database.as_str());
        if !application_name.is_empty() {
            tracing::Span::current().record("application_name", application_name.as_str());
        }
        entry.set_identity(&user, &database, &application_name);
        let obs = crate::ops::SessionObserver::new(
            server.ops.clone(),
            &user,
            &database,
            &peer,
            &application_name,
        );
        let mut gate = gate::Gate::new(server.ops.lifecycle.subscribe());

        if slot.over_limit() {
            let e = PgError::fatal(
                SqlState::TOO_MANY_CONNECTIONS,
                "sorry, too many clients already",
            );
            return send_error(&mut stream, &e).await;
        }
        if let Err(e) = startup::admit(&server, &stream, &user, ip) {
            tracing::info!(error = %e, "connection refused");
            return send_error(&mut stream, &e).await;
        }

        let auth = match tokio::time::timeout_at(
            deadline,
            startup::authenticate(&server, &mut stream, &user),
        )
        .await
        {
            Ok(Ok(auth)) => auth,
            Ok(Err(e)) if e.code == SqlState::CONNECTION_FAILURE => return,
            Ok(Err(e)) => {
                tracing::info!(error = %e, "authentication failed");
                if e.code == SqlState::INVALID_PASSWORD {
                    server.limits().login_failed(ip);
                }
                return send_error(&mut stream, &e).await;
            }
            Err(_) => {
                let e = PgError::fatal(
                    SqlState::PROTOCOL_VIOLATION,
                    "canceling authentication due to timeout",
                );
                return send_error(&mut stream, &e).await;
            }
        };

        if let Some(db) = &server.embedded {
            // No upstream: the embedded database answers. A cancel raises
            // the session's signal, which stops the query it is running.
            let key = server.cancels.issue();
            let target = crate::upstream::CancelTarget::local();
            let signal = target.requested.clone();
            server.cancels.set_target(key, Some(target));
            let max_message = server.config_now().server.message_limit();
            entry.set_state(crate::ops::ClientState::Idle);
            let client = crate::embedded::Client {
                user: &user,
                params: &params,
                key,
                max_message,
                cancel: signal,
                phase: Some(server.ops.lifecycle.subscribe()),
                obs: Some(obs.clone()),
            };
            let served = crate::embedded::serve(
                db,
                &mut stream,
                client,
                crate::embedded::features::Features::new(
                    db,
                    server.nl.as_ref(),
                    crate::advisor::options(&server.config.advisor),
                )
                .with_admin(server.clone(), &user, entry.id),
            )
            .await;
            if let Err(e) = served {
                tracing::debug!(error = %e, "embedded session ended");
            }
            server.cancels.release(key);
            return;
        }
        let Some(pool) = &server.pool else {
            unreachable!("a server has an upstream or the embedded database")
        };

        let login = Login {
            password: auth
                .password
                .clone()
                .or_else(|| server.upstream_password(&user)),
            password_from_client: auth.password.is_some(),
            params,
        };
        let key = PoolKey { database, user };
        entry.set_state(crate::ops::ClientState::Waiting);
        let ctx = attach::AttachCtx {
            server: &server,
            pool,
            key: &key,
            login: &login,
            entry: &entry,
            obs: &obs,
        };
        let Some(attached) = attach::attach(&mut stream, &mut gate, &ctx).await else {
            return;
        };
        let attach::Attached {
            mut pooled,
            client_key,
            early,
            greeted,
        } = attached;
        let cancel_target = pooled.conn.cancel_target();
        let cancels_in_flight = cancel_target.in_flight.clone();
        let cancel_signal = cancel_target.requested.clone();
        server
            .cancels
            .set_target(client_key, Some(cancel_target.clone()));
        entry.set_upstream(
            pooled.conn.key.pid,
            std::time::SystemTime::now() - pooled.conn.created.elapsed(),
            pooled.conn.stream.is_tls(),
        );
        entry.set_state(crate::ops::ClientState::Idle);
        tracing::debug!(
            conn = pooled.conn.id,
            reused = pooled.reused,
            "session attached"
        );

        let mut reusable = false;
        if greeted {
            let max_message = server.config_now().server.message_limit();
            let timeouts = Timeouts::from_config(&server.config_now().limits);
            let mut relay = Relay::new(&mut stream, &mut pooled.conn, client_key.pid, max_message)
                .with_timeouts(timeouts)
                .with_client_bytes(early);
            if let Some(svc) = &server.cache {
                svc.ensure_listener(&key.database, pool.target().clone(), &login);
            }
            let mut intercepts = Intercepts {
                nl: server.nl.as_ref().map(|s| (s, nl::NlState::new(Some(s)))),
                advise: server
                    .advisor
                    .as_ref()
                    .map(|a| advise::AdviseState::new(a.clone(), &key.database, &key.user)),
                cache: server.cache.as_ref().map(|c| {
                    cache::CacheState::new(
                        c.clone(),
                        &key.database,
                        server.advisor.as_ref().map(|a| a.log.clone()),
                        obs.clone(),
                    )
                }),
                engine: server.engine.as_ref().map(|e| {
                    engine::EngineState::new(
                        e.clone(),
                        &key.database,
                        crate::engine::workers::WorkerLogin::new(
                            login.params.clone(),
                            login.password.clone(),
                        ),
                        server.advisor.as_ref().map(|a| a.log.clone()),
                        obs.clone(),
                    )
                }),
                stats: stats::StatsTracker::new(server.advisor.clone(), obs.clone(), entry.clone()),
                admin: admin::AdminState::new(server.clone(), &key.user, entry.id, obs.clone()),
                limit: limit::QueryLimit::new(server.clone(), &key.user, ip),
                refusal: None,
                passing: false,
                phase: server.ops.lifecycle.subscribe(),
                status: TransactionStatus::Idle,
                batch_open: false,
                owner: None,
            };
            let end = loop {
                let end = tokio::select! {
                    end = relay.run(&mut intercepts) => end,
                    _ = gate.wake() => match gate.check(&mut relay).await {
                        Some(end) => break end,
                        None => continue,
                    },
                };
                match end {
                    RelayEnd::Handover => {}
                    RelayEnd::QueryTimeout => {
                        query_timed_out(&server, &mut relay, &cancel_target, timeouts).await;
                        continue;
                    }
                    RelayEnd::IdleInTransactionTimeout => {
                        metrics::counter!("helios_limit_refusals_total", "limit" => "idle_in_transaction_timeout").increment(1);
                        tracing::info!("ending a session idle in a transaction for limits.idle_in_transaction_timeout");
                        if relay.client_caught_up() {
                            let e = PgError::fatal(
                                SqlState::new("25P03"),
                                "terminating connection due to idle-in-transaction timeout",
                            );
                            let _ = relay.write_to_client(&e.to_bytes()).await;
                        }
                        break end;
                    }
                    end => break end,
                }
                if let Some(Owner::Gate) = intercepts.owner {
                    intercepts.owner = None;
                    let frame = relay.take_client_frame();
                    match gate.hold(&mut relay, frame, &entry).await {
                        Some(end) => break end,
                        None => continue,
                    }
                }
                let handled = match (intercepts.owner.take(), &mut intercepts) {
                    (Some(Owner::Limit), Intercepts { refusal, .. }) => {
                        let frame = relay.take_client_frame();
                        let e = refusal.take().expect("a refusal has its error");
                        limit::refuse(&mut relay, frame, &e, max_message).await
                    }
                    (Some(Owner::Admin), Intercepts { admin, .. }) => {
                        let frame = relay.take_client_frame();
                        admin::handle(&mut relay, admin, frame, max_message).await
                    }
                    (
                        Some(Owner::Nl),
                        Intercepts {
                            nl: Some((service, nl_state)),
                            ..
                        },
                    ) => {
                        let ctx = nl::Ctx {
                            service,
                            key: &key,
                            max_message,
                            cancel: &cancel_signal,
                            cancels_seen: cancel_signal.seen(),
                            obs: &obs,
                        };
                        nl::handle(&mut relay, nl_state, &ctx).await
                    }
                    (
                        Some(Owner::Cache),
                        Intercepts {
                            cache: Some(state), ..
                        },
                    ) => cache::handle(&mut relay, state, max_message).await,
                    (
                        Some(Owner::Advise),
                        Intercepts {
                            advise: Some(state),
                            ..
                        },
                    ) => advise::handle(&mut relay, state, max_message).await,
                    (
                        Some(Owner::Engine),
                        Intercepts {
                            engine: Some(state),
                            ..
                        },
                    ) => {
                        let ctx = engine::Ctx {
                            cancel: &cancel_signal,
                            cancels_seen: cancel_signal.seen(),
                            max_message,
                        };
                        engine::handle(&mut relay, state, &ctx).await
                    }
                    _ => unreachable!("a handover has an owner"),
                };
                if let Err(e) = handled {
                    break nl::relay_end(e);
                }
            };
            tracing::debug!(?end, "session ended");
            reusable = matches!(
                end,
                RelayEnd::Terminate | RelayEnd::ClientClosed | RelayEnd::ClientFailed(_)
            ) && relay.upstream_is_clean();
            match end {
                RelayEnd::ClientProtocol(e) => {
                    tracing::info!(error = %e, "invalid message from client");
                    let err = PgError::fatal(SqlState::PROTOCOL_VIOLATION, e.to_string());
                    final_error(&mut relay, &err).await;
                }
                RelayEnd::UpstreamClosed | RelayEnd::UpstreamFailed(_) => {
                    let reason = match &end {
                        RelayEnd::UpstreamFailed(e) => e.to_string(),
                        _ => "the server closed the connection unexpectedly".into(),
                    };
                    tracing::warn!(%reason, "upstream connection lost");
                    if !relay.upstream_reported_fatal() {
                        let err = PgError::fatal(
                            SqlState::CONNECTION_FAILURE,
                            format!(
                                "lost the connection to upstream {}: {reason}",
                                pool.target().describe()
                            ),
                        );
                        // Bytes of a message the upstream never finished
                        // and Helios never forwarded do not stop the error.
                        if relay.drain_to_client().await.is_ok() && relay.client_between_messages() {
                            let _ = relay.write_to_client(&err.to_bytes()).await;
                        }
                    }
                }
                _ => {}
            }
            drop(relay);
        }
        server.cancels.release(client_key);
        // Wait for cancels already on their way to this connection.
        let _no_cancels = cancels_in_flight.write().await;
        pool.release(pooled, reusable).await;
    }
    .instrument(span)
    .await
}

/// Who asked for the message the relay handed over.
enum Owner {
    /// Paused or shutting down: the request waits or the session ends.
    Gate,
    /// `SHOW HELIOS STATS`, `HELIOS RELOAD`, ...
    Admin,
    /// Over a rate limit: answered with 53400.
    Limit,
    Nl,
    Advise,
    Engine,
    Cache,
}

/// The session's interceptors, asked in this order: natural language, the
/// advisor (its commands must never look like writes to the cache), the
/// engine (statements it runs are answered from DataFusion, not cached),
/// the result cache. The statistics tracker sees what is forwarded.
struct Intercepts<'s> {
    nl: Option<(&'s crate::nl::NlService, nl::NlState)>,
    advise: Option<advise::AdviseState>,
    engine: Option<engine::EngineState>,
    cache: Option<cache::CacheState>,
    stats: stats::StatsTracker,
    admin: admin::AdminState,
    limit: limit::QueryLimit,
    /// Why [`Owner::Limit`] refused the request.
    refusal: Option<PgError>,
    /// The message being asked about was handed back by a handler: it was
    /// counted against the rate limits the first time.
    passing: bool,
    /// Paused or draining?
    phase: tokio::sync::watch::Receiver<crate::ops::Phase>,
    /// The upstream's transaction status as of its last ReadyForQuery.
    status: TransactionStatus,
    /// Extended-protocol messages since the last Sync.
    batch_open: bool,
    owner: Option<Owner>,
}

impl Intercepts<'_> {
    fn claim(&mut self, frame: &[u8], in_flight: u32) -> Option<Owner> {
        // Admin commands first: HELIOS RESUME must get through a pause.
        if self.admin.wants(frame) {
            return Some(Owner::Admin);
        }
        // A new request, outside a transaction, while paused or draining.
        let starts_request = matches!(frame[0], tag::QUERY | tag::PARSE | tag::BIND);
        if starts_request
            && !self.batch_open
            && in_flight == 0
            && self.status == TransactionStatus::Idle
            && self.phase.borrow().holds()
        {
            return Some(Owner::Gate);
        }
        // Each Query, and each extended-protocol batch at its first message,
        // counts against the rate limits, whoever answers it.
        let new_request = frame[0] == tag::QUERY || (frame[0] != tag::SYNC && !self.batch_open);
        if new_request && !self.passing {
            if let Err(e) = self.limit.check() {
                self.refusal = Some(e);
                return Some(Owner::Limit);
            }
        }
        if let Some((_, nl)) = &mut self.nl {
            if nl.wants(frame, in_flight) {
                return Some(Owner::Nl);
            }
        }
        if let Some(a) = &mut self.advise {
            if a.wants(frame, in_flight) {
                return Some(Owner::Advise);
            }
        }
        if let Some(e) = &mut self.engine {
            if e.wants(frame, in_flight) {
                return Some(Owner::Engine);
            }
        }
        if let Some(c) = &mut self.cache {
            if c.wants(frame, in_flight) {
                return Some(Owner::Cache);
            }
        }
        None
    }
}

impl Intercept for Intercepts<'_> {
    fn wants(&mut self, frame: &[u8], in_flight: u32) -> bool {
        self.owner = self.claim(frame, in_flight);
        if self.owner.is_none() {
            self.stats.forwarded(frame);
            self.batch_open = match frame[0] {
                tag::SYNC | tag::QUERY => false,
                tag::PARSE | tag::BIND | tag::DESCRIBE | tag::CLOSE => true,
                _ => self.batch_open,
            };
        }
        self.owner.is_some()
    }

    fn handed_back(&mut self, frame: &[u8], in_flight: u32) -> bool {
        self.passing = true;
        let wanted = self.wants(frame, in_flight);
        self.passing = false;
        wanted
    }

    fn refused(&mut self, frame: &[u8], in_flight: u32) {
        // It goes upstream after all.
        self.stats.forwarded(frame);
        if frame[0] != tag::SYNC && frame[0] != tag::QUERY {
            self.batch_open = true;
        }
        let Some(c) = &mut self.cache else {
            return;
        };
        match self.owner.take() {
            Some(Owner::Cache) => c.refused(frame, in_flight),
            // Asked first, so the cache has not seen it: it is relayed,
            // and may write.
            Some(
                Owner::Nl
                | Owner::Advise
                | Owner::Engine
                | Owner::Admin
                | Owner::Gate
                | Owner::Limit,
            ) if c.wants(frame, in_flight) => c.refused(frame, in_flight),
            _ => {}
        }
    }

    fn unseen_statement(&mut self, tag: u8, ends_in: u32) {
        if let Some(c) = &mut self.cache {
            c.unseen_statement(tag, ends_in);
        }
    }

    fn upstream_cleared(&mut self, bytes: &[u8]) {
        if let Some(c) = &mut self.cache {
            c.upstream_cleared(bytes);
        }
        self.stats.cleared(bytes);
    }

    fn client_read(&mut self, n: usize) {
        self.stats.client_read(n);
    }

    fn upstream_ready(&mut self, status: TransactionStatus) {
        self.status = status;
        self.stats.status(status);
        if let Some(c) = &mut self.cache {
            c.upstream_ready(status);
        }
        if let Some(a) = &mut self.advise {
            a.upstream_ready(status);
        }
        if let Some(e) = &mut self.engine {
            e.upstream_ready(status);
        }
    }

    fn owed_ready(&mut self, status: TransactionStatus) {
        self.status = status;
        if let Some(c) = &mut self.cache {
            c.owed_ready(status);
        }
        if let Some(a) = &mut self.advise {
            a.upstream_ready(status);
        }
        if let Some(e) = &mut self.engine {
            e.upstream_ready(status);
        }
        self.stats.ready();
        self.stats.status(status);
    }
}

/// A request ran for `limits.query_timeout`: cancel it upstream, as a
/// client's cancel would be (the upstream answers 57014), telling the client
/// why first when nothing else is on its way to it.
async fn query_timed_out(
    server: &Arc<Server>,
    relay: &mut Relay<'_>,
    target: &crate::upstream::CancelTarget,
    timeouts: Timeouts,
) {
    let limit = timeouts.query.unwrap_or_default();
    let limit = humantime::format_duration(limit);
    metrics::counter!("helios_limit_refusals_total", "limit" => "query_timeout").increment(1);
    tracing::info!(%limit, "canceling a statement that ran longer than limits.query_timeout");
    if relay.client_caught_up() {
        let mut out = BytesMut::new();
        helios_wire::error::notice(
            "WARNING",
            SqlState::QUERY_CANCELED,
            &format!("canceling statement due to statement timeout: it ran longer than limits.query_timeout ({limit})"),
            &mut out,
        );
        let _ = relay.write_to_client(&out).await;
    }
    let Some(pool) = &server.pool else { return };
    // Awaited, not spawned: nothing more is relayed until PostgreSQL has
    // taken the cancel. Its signal can reach the backend after the statement
    // it was meant for has ended; if the client's next statement were
    // already waiting in the socket, that statement would be canceled too.
    let upstream = pool.target();
    let limit = upstream.connect_timeout * 2;
    let sent = tokio::time::timeout(limit, crate::upstream::send_cancel(upstream, target))
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()));
    match sent {
        Ok(()) => tracing::debug!(upstream_pid = target.key.pid, "cancel sent"),
        Err(e) => {
            tracing::warn!(error = %e, "could not cancel a statement past limits.query_timeout")
        }
    }
}

/// Tell the client why the session ends, if the message stream is at a
/// boundary where a message of Helios's own can go.
async fn final_error(relay: &mut Relay<'_>, err: &PgError) {
    if relay.drain_to_client().await.is_ok() && relay.at_message_boundary() {
        let _ = relay.write_to_client(&err.to_bytes()).await;
    }
}

async fn send_error(stream: &mut ClientStream, e: &PgError) {
    let _ = stream.write_all(&e.to_bytes()).await;
    let _ = stream.flush().await;
}

async fn cancel(server: &Server, key: ClientKey) {
    // Take the connection's cancel guard while the registry still lists the
    // key, so the session cannot hand the connection on before we are done.
    let found = server.cancels.lookup_with(key, |t| {
        (t.clone(), t.in_flight.clone().try_read_owned().ok())
    });
    match (found, &server.pool) {
        (Some((target, _guard)), Some(pool)) => {
            target.requested.raise();
            if target.requested.is_absorbing() {
                tracing::debug!(pid = key.pid, "cancel taken by Helios's own work");
                return;
            }
            tracing::debug!(
                pid = key.pid,
                upstream_pid = target.key.pid,
                "forwarding cancel"
            );
            let limit = pool.target().connect_timeout * 2;
            let sent =
                tokio::time::timeout(limit, crate::upstream::send_cancel(pool.target(), &target))
                    .await
                    .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()));
            if let Err(e) = sent {
                tracing::warn!(error = %e, "could not forward cancel request");
            }
        }
        // The embedded database: the session watches the signal.
        (Some((target, _guard)), None) => target.requested.raise(),
        // PostgreSQL says nothing to the requester either way.
        _ => tracing::debug!(pid = key.pid, "cancel request for an unknown key"),
    }
}
