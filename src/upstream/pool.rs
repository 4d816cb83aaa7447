//! Session pooling: a client owns one upstream connection for its whole
//! session; when it leaves, the connection is reset and kept for the next
//! client of the same database and user.
//!
//! Per (database, user) there is a semaphore of `max_size` permits; every
//! upstream connection, in use or idle, holds one. A connection is reused only
//! by a client with the very same startup parameters (so that `RESET ALL`
//! inside the reset query restores exactly what a fresh connection would
//! have). A socket is registered with the reactor of the event loop (thread)
//! that opened it; a connection reused on another loop is moved to that
//! loop's reactor first, so no message ever needs a cross-thread wakeup. TLS
//! streams cannot be moved, so they are reused on their own loop only. The
//! size limit is shared by all loops.
//!
//! Connections logged in with a client's own password (passthrough) are
//! never reused: each such client logs in afresh, so the upstream decides
//! every time, and a changed password or a NOLOGIN role takes effect at once.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use helios_nl::provider::{Breaker, BreakerState};
use helios_wire::{StartupParams, TransactionStatus, UpstreamStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::{ConnectError, UpstreamConn, UpstreamTarget};
use crate::config::PoolConfig;

/// The pool a connection belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    pub database: String,
    pub user: String,
}

/// How a client logs into the upstream.
pub struct Login {
    /// The startup parameters sent upstream (user, database, and the rest).
    pub params: StartupParams,
    pub password: Option<String>,
    /// Whether the password came from the client (passthrough): then the
    /// connection is not reused by anyone else.
    pub password_from_client: bool,
}

struct Idle {
    conn: UpstreamConn,
    permit: OwnedSemaphorePermit,
    since: Instant,
    /// The event loop whose reactor the socket is registered with.
    owner: ThreadId,
}

impl Idle {
    fn fits(&self, params: &StartupParams) -> bool {
        self.conn.startup == *params
    }
}

struct Shard {
    permits: Arc<Semaphore>,
    /// Oldest first; reuse takes the newest so that the rest age out.
    idle: VecDeque<Idle>,
    /// Woken when a connection goes idle, for clients waiting on a full pool.
    returned: Arc<Notify>,
    /// Clients waiting for a connection now.
    waiting: Arc<AtomicUsize>,
}

/// An upstream connection checked out by a client.
pub struct PooledConn {
    pub conn: UpstreamConn,
    pub key: PoolKey,
    permit: OwnedSemaphorePermit,
    /// Whether it may be kept for another client afterwards.
    poolable: bool,
    /// Whether it came from the pool rather than a fresh login.
    pub reused: bool,
}

/// Register a plain socket with the current event loop's reactor instead of
/// the one it was opened on, checking on the way that it is still quiet: a
/// freshly registered socket has no readiness recorded yet, so
/// [`UpstreamConn::is_quiet`] could not tell.
fn rehome(stream: UpstreamStream) -> std::io::Result<UpstreamStream> {
    Ok(match stream {
        UpstreamStream::Tcp(s) => {
            let mut s = s.into_std()?;
            ensure_quiet(&mut s)?;
            UpstreamStream::Tcp(tokio::net::TcpStream::from_std(s)?)
        }
        UpstreamStream::Unix(s) => {
            let mut s = s.into_std()?;
            ensure_quiet(&mut s)?;
            UpstreamStream::Unix(tokio::net::UnixStream::from_std(s)?)
        }
        tls @ UpstreamStream::Tls(_) => tls,
    })
}

/// A non-blocking read on an idle connection: nothing to read is the only
/// healthy answer (a byte or end-of-stream means it cannot be reused, so
/// consuming it does no harm).
fn ensure_quiet(s: &mut impl std::io::Read) -> std::io::Result<()> {
    match s.read(&mut [0u8; 1]) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(e),
        Ok(0) => Err(std::io::Error::other("closed by the server")),
        Ok(_) => Err(std::io::Error::other("unexpected data from the server")),
    }
}

/// Counts for an operator.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PoolStats {
    pub idle: usize,
    pub in_use: usize,
}

/// One (database, user) pool, for `SHOW HELIOS POOLS` and `/metrics`.
#[derive(Debug, Clone)]
pub struct ShardStats {
    pub key: PoolKey,
    pub idle: usize,
    pub in_use: usize,
    pub waiting: usize,
}

/// An idle upstream connection, for `SHOW HELIOS SERVERS`.
#[derive(Debug, Clone)]
pub struct IdleConn {
    pub key: PoolKey,
    pub pid: i32,
    pub endpoint: String,
    pub tls: bool,
    pub connected_at: std::time::SystemTime,
    pub idle_for: Duration,
}

pub struct Pool {
    target: Arc<UpstreamTarget>,
    /// Reloadable, except `max_size` (the semaphores are sized by it).
    cfg: arc_swap::ArcSwap<PoolConfig>,
    max_size: usize,
    shards: Mutex<HashMap<PoolKey, Shard>>,
    /// Fails new connections fast while the upstream is down.
    breaker: Breaker,
    /// What the upstream said at login (ParameterStatus), per database,
    /// user and startup parameters, from the last fresh connection: the
    /// greeting a lazily attached client gets before it has a connection.
    greetings: Mutex<HashMap<(PoolKey, StartupParams), Greeting>>,
}

/// The server parameters a login reports, shared by the clients greeted with them.
pub type Greeting = Arc<[(String, String)]>;

/// Greetings remembered at most (distinct startup parameters); past it the
/// memory starts afresh rather than growing with every application_name.
const MAX_GREETINGS: usize = 1024;

impl Pool {
    pub fn new(target: Arc<UpstreamTarget>, cfg: PoolConfig) -> Self {
        Pool {
            breaker: Breaker::new(target.breaker_failures, target.breaker_cooldown),
            greetings: Mutex::new(HashMap::new()),
            target,
            max_size: cfg.max_size,
            cfg: arc_swap::ArcSwap::from_pointee(cfg),
            shards: Mutex::new(HashMap::new()),
        }
    }

    /// Apply reloaded settings (`max_size` keeps its running value).
    pub fn set_config(&self, cfg: PoolConfig) {
        self.cfg.store(Arc::new(PoolConfig {
            max_size: self.max_size,
            ..cfg
        }));
    }

    pub fn target(&self) -> &Arc<UpstreamTarget> {
        &self.target
    }

    /// A logged-in connection for `login`: a pooled one if one fits, else a
    /// new one, waiting up to `acquire_timeout` when the pool is full.
    pub async fn acquire(&self, key: PoolKey, login: &Login) -> Result<PooledConn, ConnectError> {
        let poolable = !login.password_from_client;
        let deadline = Instant::now() + self.cfg.load().acquire_timeout;
        loop {
            // 1. A matching idle connection.
            let (found, permits, returned) = if poolable {
                self.take_idle(&key, &login.params)
            } else {
                self.shard_handles(&key)
            };
            if let Some(idle) = found {
                if let Some(pooled) = self.check(idle, &key).await {
                    return Ok(pooled);
                }
                continue;
            }
            // 2. Room for a new connection, making room by closing an idle
            //    connection of other startup parameters if the pool is full.
            let permit = match permits.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    if let Some(victim) = self.evict_other(&key, &login.params, poolable) {
                        tokio::spawn(victim.conn.terminate());
                        drop(victim.permit);
                        continue;
                    }
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(self.pool_timeout(&key));
                    }
                    // Wait for a permit, or for a connection to come back idle.
                    let _waiting = Waiting::new(self.waiting_counter(&key));
                    tokio::select! {
                        p = permits.clone().acquire_owned() => p.expect("pool semaphores are never closed"),
                        _ = returned.notified() => continue,
                        _ = tokio::time::sleep(deadline - now) => return Err(self.pool_timeout(&key)),
                    }
                }
            };
            let conn = self.connect(login).await?;
            if poolable {
                self.remember_greeting(&key, &conn);
            }
            tracing::debug!(
                conn = conn.id,
                pid = conn.key.pid,
                "new upstream connection"
            );
            return Ok(PooledConn {
                conn,
                key,
                permit,
                poolable,
                reused: false,
            });
        }
    }

    /// A new connection, through the circuit breaker. Only failures to
    /// reach the upstream count: a refused or slow login means it is up.
    async fn connect(&self, login: &Login) -> Result<UpstreamConn, ConnectError> {
        if let Err(retry_in) = self.breaker.try_acquire() {
            return Err(ConnectError::Unavailable {
                upstream: self.target.describe(),
                failures: self.breaker.consecutive_failures(),
                retry_in,
            });
        }
        let result =
            UpstreamConn::connect(&self.target, &login.params, login.password.as_deref()).await;
        match &result {
            // Only an upstream that cannot be reached: one that answered but
            // was slow to log in (many logins at once) is up, and failing
            // every new session fast would only add to the trouble.
            Err(ConnectError::Unreachable { .. }) => {
                let was = self.breaker.state();
                self.breaker.record_failure();
                if was != BreakerState::Open && self.breaker.state() == BreakerState::Open {
                    tracing::warn!(
                        upstream = %self.target.describe(),
                        cooldown = ?self.breaker.cooldown(),
                        "upstream circuit breaker open: new sessions fail at once until a trial connection succeeds"
                    );
                }
            }
            _ => {
                if self.breaker.state() != BreakerState::Closed {
                    tracing::info!(upstream = %self.target.describe(), "upstream circuit breaker closed");
                }
                self.breaker.record_success();
            }
        }
        result
    }

    fn remember_greeting(&self, key: &PoolKey, conn: &UpstreamConn) {
        let mut g = self.greetings.lock().unwrap();
        if g.len() >= MAX_GREETINGS {
            g.clear();
        }
        g.insert(
            (key.clone(), conn.startup.clone()),
            conn.params.clone().into(),
        );
    }

    /// The greeting for a client that attaches lazily, when
    /// `pool.lazy_attach` is on and a login like it has been seen.
    pub fn lazy_greeting(&self, key: &PoolKey, login: &Login) -> Option<Greeting> {
        if !self.cfg.load().lazy_attach || login.password_from_client {
            // A client's own password must be checked by the upstream at login.
            return None;
        }
        let g = self.greetings.lock().unwrap();
        g.get(&(key.clone(), login.params.clone())).cloned()
    }

    /// The circuit breaker's state (for metrics and readiness).
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    fn waiting_counter(&self, key: &PoolKey) -> Arc<AtomicUsize> {
        let mut shards = self.shards.lock().unwrap();
        self.shard(&mut shards, key).waiting.clone()
    }

    fn pool_timeout(&self, key: &PoolKey) -> ConnectError {
        ConnectError::PoolTimeout {
            database: key.database.clone(),
            user: key.user.clone(),
            max_size: self.max_size,
            waited: self.cfg.load().acquire_timeout,
        }
    }

    fn take_idle(
        &self,
        key: &PoolKey,
        params: &StartupParams,
    ) -> (Option<Idle>, Arc<Semaphore>, Arc<Notify>) {
        let mut shards = self.shards.lock().unwrap();
        let shard = self.shard(&mut shards, key);
        let here = std::thread::current().id();
        let pos = (shard.idle.iter())
            .rposition(|i| i.fits(params) && i.owner == here)
            .or_else(|| {
                (shard.idle.iter()).rposition(|i| i.fits(params) && !i.conn.stream.is_tls())
            });
        let found = pos.and_then(|p| shard.idle.remove(p));
        (found, shard.permits.clone(), shard.returned.clone())
    }

    /// The pool's limit and wake-up for a client that takes no idle connection.
    fn shard_handles(&self, key: &PoolKey) -> (Option<Idle>, Arc<Semaphore>, Arc<Notify>) {
        let mut shards = self.shards.lock().unwrap();
        let shard = self.shard(&mut shards, key);
        (None, shard.permits.clone(), shard.returned.clone())
    }

    fn shard<'s>(&self, shards: &'s mut HashMap<PoolKey, Shard>, key: &PoolKey) -> &'s mut Shard {
        shards.entry(key.clone()).or_insert_with(|| Shard {
            permits: Arc::new(Semaphore::new(self.max_size)),
            idle: VecDeque::new(),
            returned: Arc::new(Notify::new()),
            waiting: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// An idle connection the client cannot use (other parameters, or TLS on
    /// another loop; any, for a client that takes none), to close to make room.
    fn evict_other(&self, key: &PoolKey, params: &StartupParams, poolable: bool) -> Option<Idle> {
        let mut shards = self.shards.lock().unwrap();
        let shard = shards.get_mut(key)?;
        let here = std::thread::current().id();
        let usable = |i: &Idle| i.fits(params) && (i.owner == here || !i.conn.stream.is_tls());
        let pos = shard.idle.iter().position(|i| !poolable || !usable(i))?;
        shard.idle.remove(pos)
    }

    /// Make sure an idle connection is still good before handing it out.
    async fn check(&self, mut idle: Idle, key: &PoolKey) -> Option<PooledConn> {
        if idle.owner != std::thread::current().id() {
            idle.conn.stream = match rehome(idle.conn.stream) {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::debug!(conn = idle.conn.id, error = %e, "cannot move a pooled connection");
                    return None;
                }
            };
        }
        let too_old = idle.conn.created.elapsed() >= self.cfg.load().max_lifetime;
        if too_old || !idle.conn.is_quiet() {
            tracing::debug!(conn = idle.conn.id, too_old, "dropping pooled connection");
            tokio::spawn(idle.conn.terminate());
            return None;
        }
        if idle.since.elapsed() >= self.cfg.load().check_after_idle {
            if let Err(e) = idle
                .conn
                .run_control_query("", self.target.connect_timeout)
                .await
            {
                tracing::info!(conn = idle.conn.id, error = %e, "pooled connection failed its health check");
                return None;
            }
        }
        Some(PooledConn {
            conn: idle.conn,
            key: key.clone(),
            permit: idle.permit,
            poolable: true,
            reused: true,
        })
    }

    /// A client is done with its connection. If `reusable` (the session left
    /// it idle, with nothing in flight) it is reset and kept; else closed.
    pub async fn release(&self, mut pooled: PooledConn, reusable: bool) {
        let keep = reusable
            && pooled.poolable
            && pooled.conn.status == TransactionStatus::Idle
            && pooled.conn.rbuf.is_empty()
            && pooled.conn.created.elapsed() < self.cfg.load().max_lifetime;
        if !keep {
            tracing::debug!(conn = pooled.conn.id, "closing upstream connection");
            pooled.conn.terminate().await;
            return;
        }
        if !self.cfg.load().reset_query.is_empty() {
            if let Err(e) = pooled
                .conn
                .run_control_query(&self.cfg.load().reset_query, self.target.connect_timeout)
                .await
            {
                tracing::info!(conn = pooled.conn.id, error = %e, "reset failed; closing upstream connection");
                return;
            }
        }
        let mut shards = self.shards.lock().unwrap();
        if let Some(shard) = shards.get_mut(&pooled.key) {
            shard.idle.push_back(Idle {
                conn: pooled.conn,
                permit: pooled.permit,
                since: Instant::now(),
                owner: std::thread::current().id(),
            });
            shard.returned.notify_one();
        }
    }

    /// Close idle connections past `idle_timeout` or `max_lifetime`, and
    /// forget empty pools. Called periodically.
    pub fn reap(&self) {
        let mut expired = Vec::new();
        {
            let mut shards = self.shards.lock().unwrap();
            for shard in shards.values_mut() {
                let mut i = 0;
                while i < shard.idle.len() {
                    let idle = &shard.idle[i];
                    if idle.since.elapsed() >= self.cfg.load().idle_timeout
                        || idle.conn.created.elapsed() >= self.cfg.load().max_lifetime
                    {
                        expired.extend(shard.idle.remove(i));
                    } else {
                        i += 1;
                    }
                }
            }
            let max = self.max_size;
            shards.retain(|_, s| !s.idle.is_empty() || s.permits.available_permits() < max);
        }
        for idle in expired {
            tracing::debug!(conn = idle.conn.id, "closing idle upstream connection");
            tokio::spawn(idle.conn.terminate());
        }
    }

    /// How often [`Pool::reap`] should run.
    pub fn reap_interval(&self) -> Duration {
        (self.cfg.load().idle_timeout / 4)
            .clamp(Duration::from_millis(100), Duration::from_secs(10))
    }

    pub fn stats(&self) -> PoolStats {
        let shards = self.shards.lock().unwrap();
        let mut s = PoolStats::default();
        for shard in shards.values() {
            s.idle += shard.idle.len();
            s.in_use += self.max_size - shard.permits.available_permits() - shard.idle.len();
        }
        s
    }

    /// Every (database, user) pool.
    pub fn shard_stats(&self) -> Vec<ShardStats> {
        let shards = self.shards.lock().unwrap();
        let mut v: Vec<ShardStats> = shards
            .iter()
            .map(|(key, shard)| ShardStats {
                key: key.clone(),
                idle: shard.idle.len(),
                in_use: self.max_size - shard.permits.available_permits() - shard.idle.len(),
                waiting: shard.waiting.load(Ordering::Relaxed),
            })
            .collect();
        v.sort_by(|a, b| (&a.key.database, &a.key.user).cmp(&(&b.key.database, &b.key.user)));
        v
    }

    /// The idle connections.
    pub fn idle_conns(&self) -> Vec<IdleConn> {
        let shards = self.shards.lock().unwrap();
        let now = std::time::SystemTime::now();
        let mut v = Vec::new();
        for (key, shard) in shards.iter() {
            for i in &shard.idle {
                v.push(IdleConn {
                    key: key.clone(),
                    pid: i.conn.key.pid,
                    endpoint: i.conn.endpoint.to_string(),
                    tls: i.conn.stream.is_tls(),
                    connected_at: now - i.conn.created.elapsed(),
                    idle_for: i.since.elapsed(),
                });
            }
        }
        v
    }

    /// Close every idle connection (shutdown).
    pub async fn close_idle(&self) {
        let all: Vec<Idle> = {
            let mut shards = self.shards.lock().unwrap();
            shards.values_mut().flat_map(|s| s.idle.drain(..)).collect()
        };
        for idle in all {
            idle.conn.terminate().await;
        }
    }
}

/// A client counted as waiting for a connection while this lives.
struct Waiting(Arc<AtomicUsize>);

impl Waiting {
    fn new(counter: Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Waiting(counter)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
