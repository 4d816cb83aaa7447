//! The listener and what every session shares: configuration, users, TLS,
//! the upstream pool and the cancel-key registry.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use helios_wire::auth::{AuthMethod, Credential};
use helios_wire::{CancelRegistry, ClientStream};
use tokio::net::{TcpListener, UnixListener};
use tokio_rustls::TlsAcceptor;

use crate::config::{AuthMethodName, Config};
use crate::upstream::{CancelTarget, Pool, UpstreamTarget};

/// A configured user.
pub struct UserEntry {
    pub credential: Option<Credential>,
    /// The password for the upstream login, when Helios has one.
    pub upstream_password: Option<String>,
}

/// The client-facing TLS setup.
pub struct ServerTls {
    pub acceptor: TlsAcceptor,
    /// The certificate chain, for SCRAM channel binding.
    pub certificate_pem: Vec<u8>,
}

/// How clients authenticate (reloadable).
pub struct AuthState {
    pub method: AuthMethod,
    pub users: HashMap<String, UserEntry>,
}

/// Reads the configuration again (file, environment, command line) for a reload.
pub type ConfigLoader = Box<dyn Fn() -> Result<Config, crate::config::ConfigError> + Send + Sync>;

/// State shared by all sessions.
pub struct Server {
    /// The configuration Helios started with. Settings a reload can change
    /// are read from [`Server::config_now`] instead.
    pub config: Config,
    /// The running configuration: `config` with reloaded live settings.
    current: ArcSwap<Config>,
    auth: ArcSwap<AuthState>,
    /// Rate limits (`[limits]`), rebuilt when a reload changes them.
    limits: ArcSwap<crate::limits::Limits>,
    pub tls: Option<ServerTls>,
    /// The upstream's connection pool; `None` when no upstream is
    /// configured and Helios serves its embedded database instead.
    pub pool: Option<Pool>,
    /// The embedded database, when there is no upstream.
    pub embedded: Option<Arc<crate::embedded::EmbeddedDb>>,
    pub cancels: CancelRegistry<CancelTarget>,
    /// Natural language, when enabled.
    pub nl: Option<crate::nl::NlService>,
    /// The result cache, unless `cache.mode = "off"`.
    pub cache: Option<Arc<crate::cache::CacheService>>,
    /// The query advisor, unless `advisor.enabled = false`.
    pub advisor: Option<Arc<crate::advisor::AdvisorService>>,
    /// DataFusion over the upstream (routed statements, accelerated tables).
    pub engine: Option<Arc<crate::engine::EngineService>>,
    /// Client connections open now (including ones still starting up).
    clients: Arc<AtomicUsize>,
    /// Secret for decoy credentials of unknown users.
    pub decoy_key: [u8; 32],
    /// Clients, counters, pause/drain, audit.
    pub ops: Arc<crate::ops::Ops>,
    loader: OnceLock<ConfigLoader>,
    /// The last upstream probe (readiness), kept for a second.
    probed: tokio::sync::Mutex<Option<(Instant, Result<(), String>)>>,
}

/// A client's place in the connection count; freed on drop.
pub struct ClientSlot {
    clients: Arc<AtomicUsize>,
    over: bool,
}

impl ClientSlot {
    /// Whether this client is one too many.
    pub fn over_limit(&self) -> bool {
        self.over
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.clients.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Server {
    /// Build the shared state from a validated configuration.
    pub fn new(config: Config) -> anyhow::Result<Arc<Server>> {
        // No upstream: the embedded demo database.
        let target = match &config.upstream.url {
            Some(url) => Some(
                UpstreamTarget::from_config(url, &config.upstream)
                    .map_err(|m| anyhow::anyhow!("upstream.url: {m}"))?,
            ),
            None => None,
        };
        let tls = match (&config.tls.cert_file, &config.tls.key_file) {
            (Some(cert), Some(key)) => {
                let server_config = helios_wire::tls::server_config(cert, key)?;
                let certificate_pem =
                    std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
                Some(ServerTls {
                    acceptor: TlsAcceptor::from(server_config),
                    certificate_pem,
                })
            }
            _ => None,
        };
        let auth = auth_state(&config)?;
        let embedded = match &target {
            Some(_) => None,
            None => Some(Arc::new(crate::embedded::EmbeddedDb::demo(
                "helios",
                &config.engine.tables,
            )?)),
        };
        let pool = target.map(|t| Pool::new(Arc::new(t), config.pool.clone()));
        let nl = if config.nl.enabled {
            Some(
                crate::nl::NlService::new(crate::nl::effective_config(
                    &config.nl,
                    embedded.is_some(),
                ))
                .map_err(|m| anyhow::anyhow!("nl.providers: {m}"))?,
            )
        } else {
            None
        };
        // The cache and the advisor work on the upstream's statements.
        let cache = pool
            .as_ref()
            .and_then(|_| crate::cache::CacheService::new(&config.cache));
        let advisor = pool
            .as_ref()
            .and_then(|_| crate::advisor::AdvisorService::new(&config.advisor));
        let engine = match &pool {
            Some(p) => Some(crate::engine::EngineService::new(
                &config.engine,
                p.target().clone(),
                cache.clone(),
            )?),
            None => None,
        };
        let ops = crate::ops::Ops::new(&config)?;
        Ok(Arc::new(Server {
            nl,
            cache,
            advisor,
            engine,
            limits: ArcSwap::from_pointee(crate::limits::Limits::new(&config.limits)),
            current: ArcSwap::from_pointee(config.clone()),
            config,
            auth: ArcSwap::from_pointee(auth),
            ops,
            loader: OnceLock::new(),
            probed: tokio::sync::Mutex::new(None),
            tls,
            pool,
            embedded,
            cancels: CancelRegistry::new(),
            clients: Arc::new(AtomicUsize::new(0)),
            decoy_key: rand::random(),
        }))
    }

    /// The running configuration (live settings as last reloaded).
    pub fn config_now(&self) -> Arc<Config> {
        self.current.load_full()
    }

    /// How clients authenticate now.
    pub fn auth(&self) -> Arc<AuthState> {
        self.auth.load_full()
    }

    /// The rate limiters now (a cheap guard: this is read per statement).
    pub fn limits(&self) -> arc_swap::Guard<Arc<crate::limits::Limits>> {
        self.limits.load()
    }

    /// Where reloads read the configuration from (set once, by `main`).
    pub fn set_loader(&self, loader: ConfigLoader) {
        let _ = self.loader.set(loader);
    }

    /// Read the configuration again and apply its live settings. An
    /// invalid file changes nothing.
    pub fn reload(&self) -> Result<crate::ops::reload::ReloadReport, String> {
        let result = match self.loader.get() {
            None => Err("Helios was started without a configuration source to reload".to_string()),
            Some(load) => load()
                .map_err(|e| e.to_string())
                .and_then(|new| self.apply(&new)),
        };
        let status = match &result {
            Ok(report) => {
                tracing::info!(changes = %report.describe(), "configuration reloaded");
                metrics::counter!("helios_config_reloads_total", "status" => "ok").increment(1);
                crate::ops::ReloadStatus {
                    at: std::time::SystemTime::now(),
                    error: None,
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "configuration reload failed; the running configuration is kept");
                metrics::counter!("helios_config_reloads_total", "status" => "error").increment(1);
                crate::ops::ReloadStatus {
                    at: std::time::SystemTime::now(),
                    error: Some(e.clone()),
                }
            }
        };
        *self.ops.last_reload.lock().expect("last reload") = Some(status);
        result
    }

    /// Swap in `new`'s live settings.
    pub fn apply(&self, new: &Config) -> Result<crate::ops::reload::ReloadReport, String> {
        let running = self.config_now();
        let (effective, report) = crate::ops::reload::merge(&running, new);
        let auth = auth_state(&effective).map_err(|e| e.to_string())?;
        crate::logging::set_level(&effective.log.level)?;
        self.auth.store(Arc::new(auth));
        if let Some(pool) = &self.pool {
            pool.set_config(effective.pool.clone());
        }
        if let Some(cache) = &self.cache {
            cache.set_ttl(effective.cache.ttl);
        }
        self.ops
            .set_slow_query_threshold(effective.log.slow_query_threshold);
        if effective.limits != running.limits {
            self.limits
                .store(Arc::new(crate::limits::Limits::new(&effective.limits)));
        }
        self.current.store(Arc::new(effective));
        Ok(report)
    }

    /// Whether the upstream accepts connections (cached for a second).
    pub async fn upstream_ready(&self) -> Result<(), String> {
        let Some(pool) = &self.pool else {
            return Ok(());
        };
        let mut probed = self.probed.lock().await;
        if let Some((at, r)) = &*probed {
            if at.elapsed() < Duration::from_secs(1) {
                return r.clone();
            }
        }
        let limit = pool.target().connect_timeout.min(Duration::from_secs(3));
        let r = match tokio::time::timeout(limit, crate::upstream::probe(pool.target())).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "no answer within {}",
                humantime::format_duration(limit)
            )),
        };
        metrics::gauge!("helios_upstream_up").set(if r.is_ok() { 1.0 } else { 0.0 });
        *probed = Some((Instant::now(), r.clone()));
        r
    }

    /// The password Helios uses upstream for `user`, when the client did not give one.
    pub fn upstream_password(&self, user: &str) -> Option<String> {
        if let Some(p) = self
            .auth()
            .users
            .get(user)
            .and_then(|u| u.upstream_password.clone())
        {
            return Some(p);
        }
        let target = self.pool.as_ref()?.target();
        (target.service_user.as_deref() == Some(user))
            .then(|| target.service_password.clone())
            .flatten()
    }

    fn take_slot(&self) -> ClientSlot {
        let n = self.clients.fetch_add(1, Ordering::AcqRel) + 1;
        ClientSlot {
            clients: self.clients.clone(),
            over: n > self.config_now().server.max_client_conn,
        }
    }

    /// Client connections open now.
    pub fn client_count(&self) -> usize {
        self.clients.load(Ordering::Acquire)
    }

    /// Serve clients on this thread (and `server.worker_threads - 1` more)
    /// until `shutdown` resolves, then wait up to `server.shutdown_timeout`
    /// for the sessions to end.
    ///
    /// Each thread runs its own single-threaded event loop with its own
    /// listening socket (`SO_REUSEPORT` spreads connections over them): a
    /// session lives on one loop from start to end, so relaying never needs
    /// a cross-thread wakeup, and one loop being descheduled does not stall
    /// the sessions of the others.
    pub fn serve<F>(self: Arc<Self>, shutdown: F) -> anyhow::Result<()>
    where
        F: Future<Output = ()>,
    {
        let loops = match self.config.server.worker_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let reuse_port = loops > 1;
        let mut listen = self.config.server.listen;

        // Bind everything before serving anything, so errors surface at once.
        let first = event_loop()?;
        let tcp = first
            .block_on(async { bind_tcp(listen, reuse_port) })
            .with_context(|| format!("cannot listen on {listen}"))?;
        listen = tcp.local_addr()?;
        let unix = match &self.config.server.unix_socket_dir {
            Some(dir) => Some(first.block_on(async { bind_unix(dir, listen.port()) })?),
            None => None,
        };
        let mut others = Vec::new();
        for _ in 1..loops {
            let rt = event_loop()?;
            let l = rt
                .block_on(async { bind_tcp(listen, true) })
                .with_context(|| format!("cannot listen on {listen}"))?;
            others.push((rt, l));
        }
        let upstream = match &self.pool {
            Some(p) => p.target().describe(),
            None => "none: serving the embedded demo database".to_string(),
        };
        let user = if self.pool.is_none() && self.auth().users.is_empty() {
            "helios"
        } else {
            "<user>"
        };
        let database = if self.pool.is_none() {
            ""
        } else {
            " <database>"
        };
        tracing::info!(
            %listen,
            unix = ?unix.as_ref().map(|(_, p)| p.display().to_string()),
            %upstream,
            auth = self.config.auth.method.as_str(),
            tls = self.tls.is_some(),
            loops,
            "Helios is ready; connect with: psql -h {} -p {} -U {user}{database}",
            listen.ip(),
            listen.port(),
        );

        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        // The admin endpoint outlives the listeners: readiness must answer
        // 503 "draining" while sessions finish.
        let (admin_stop_tx, admin_stop_rx) = tokio::sync::watch::channel(false);
        let admin = crate::admin::start(self.clone(), admin_stop_rx)?;
        if let Some((addr, _)) = &admin {
            tracing::info!(%addr, "admin endpoint: /health/*, /metrics, /admin/*");
        }
        let threads = others
            .into_iter()
            .enumerate()
            .map(|(i, (rt, listener))| {
                let server = self.clone();
                let stop = stop_rx.clone();
                std::thread::Builder::new()
                    .name(format!("helios-loop-{}", i + 1))
                    .spawn(move || rt.block_on(server.event_loop_main(listener, None, stop)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.ops.serving.store(true, Ordering::Release);

        let unix_path = unix.as_ref().map(|(_, p)| p.clone());
        first.block_on(async {
            let reaper = {
                let server = self.clone();
                tokio::spawn(async move {
                    let every = server
                        .pool
                        .as_ref()
                        .map_or(Duration::from_secs(30), |p| p.reap_interval());
                    let mut tick = tokio::time::interval(every);
                    loop {
                        tick.tick().await;
                        if let Some(pool) = &server.pool {
                            pool.reap();
                        }
                        server.limits().forget_idle();
                    }
                })
            };
            let hangup = tokio::spawn(reload_on_sighup(self.clone()));
            let main_loop = self
                .clone()
                .event_loop_main(tcp, unix.map(|(l, _)| l), stop_rx);
            tokio::pin!(main_loop);
            tokio::select! {
                _ = &mut main_loop => {}
                _ = shutdown => {
                    // Sessions end as soon as they are idle; transactions
                    // under way get until the deadline.
                    let limit = self.config_now().server.shutdown_timeout;
                    self.ops.lifecycle.drain(Instant::now() + limit);
                    let _ = stop_tx.send(true);
                    main_loop.await;
                }
            }
            hangup.abort();
            reaper.abort();
            if let Some(pool) = &self.pool {
                pool.close_idle().await;
            }
        });
        let _ = stop_tx.send(true);
        for t in threads {
            let _ = t.join();
        }
        let _ = admin_stop_tx.send(true);
        if let Some((_, t)) = admin {
            let _ = t.join();
        }
        if let Some(audit) = &self.ops.audit {
            audit.flush();
        }
        if let Some(path) = unix_path {
            let _ = std::fs::remove_file(path);
        }
        tracing::info!(clients_left = self.client_count(), "Helios stopped");
        Ok(())
    }

    /// One event loop: accept until told to stop, then keep the loop (and
    /// its sessions) running until every client has left or the shutdown
    /// timeout passes.
    async fn event_loop_main(
        self: Arc<Self>,
        tcp: TcpListener,
        unix: Option<UnixListener>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let accept_tcp = async {
            loop {
                match tcp.accept().await {
                    Ok((sock, peer)) => {
                        let _ = sock.set_nodelay(true);
                        self.clone()
                            .spawn_session(ClientStream::Tcp(sock), Some(peer));
                    }
                    Err(e) => accept_error(e).await,
                }
            }
        };
        let accept_unix = async {
            let Some(listener) = &unix else {
                return std::future::pending().await;
            };
            loop {
                match listener.accept().await {
                    Ok((sock, _)) => self.clone().spawn_session(ClientStream::Unix(sock), None),
                    Err(e) => accept_error(e).await,
                }
            }
        };
        tokio::select! {
            _ = accept_tcp => {}
            _ = accept_unix => {}
            _ = stop.wait_for(|stop| *stop) => {}
        }
        drop(tcp);
        drop(unix);
        // Sessions end themselves by the drain deadline; a little more
        // time lets them say so (FATAL 57P01) and close.
        let deadline = self
            .ops
            .lifecycle
            .phase()
            .draining
            .unwrap_or_else(|| Instant::now() + self.config_now().server.shutdown_timeout)
            + Duration::from_secs(2);
        let open = self.client_count();
        if open > 0 {
            tracing::info!(
                clients = open,
                "shutting down: waiting for clients to disconnect"
            );
        }
        while self.client_count() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `peer`: the client's address; `None` on the Unix socket.
    fn spawn_session(self: Arc<Self>, stream: ClientStream, peer: Option<std::net::SocketAddr>) {
        metrics::counter!("helios_client_connections_total").increment(1);
        let slot = self.take_slot();
        tokio::spawn(crate::session::serve(self, stream, slot, peer));
    }
}

/// Users and method from `[auth]`.
fn auth_state(config: &Config) -> anyhow::Result<AuthState> {
    let users = config
        .auth
        .users
        .iter()
        .map(|u| {
            let credential = match (&u.password, &u.secret) {
                (Some(p), _) => Some(Credential::from_password(p)),
                (None, Some(s)) => Some(Credential::from_stored(s).map_err(anyhow::Error::msg)?),
                (None, None) => None,
            };
            let upstream_password = u.upstream_password.clone().or_else(|| u.password.clone());
            Ok((
                u.name.clone(),
                UserEntry {
                    credential,
                    upstream_password,
                },
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    let method = match config.auth.method {
        AuthMethodName::Trust => AuthMethod::Trust,
        AuthMethodName::Md5 => AuthMethod::Md5,
        AuthMethodName::ScramSha256 => AuthMethod::ScramSha256,
        AuthMethodName::Upstream => AuthMethod::Upstream,
    };
    Ok(AuthState { method, users })
}

/// SIGHUP: reload the configuration (as PgBouncer and PostgreSQL do).
async fn reload_on_sighup(server: Arc<Server>) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!(
            "cannot install the SIGHUP handler: reload with HELIOS RELOAD or POST /admin/reload"
        );
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the configuration");
        let _ = server.reload();
    }
}

/// A single-threaded tokio runtime: one event loop.
fn event_loop() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// A listening TCP socket; with `reuse_port`, one of several sharing the address.
fn bind_tcp(addr: std::net::SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if reuse_port {
        socket.set_reuseport(true)?;
    }
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Bind `<dir>/.s.PGSQL.<port>`, replacing a stale socket file.
fn bind_unix(dir: &std::path::Path, port: u16) -> anyhow::Result<(UnixListener, PathBuf)> {
    let path = dir.join(format!(".s.PGSQL.{port}"));
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            bail!("{} is in use by another server", path.display());
        }
        std::fs::remove_file(&path)
            .with_context(|| format!("removing stale {}", path.display()))?;
    }
    let listener = UnixListener::bind(&path)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))?;
    Ok((listener, path))
}

/// Accept errors (EMFILE, ...) are transient: log, pause briefly, go on.
async fn accept_error(e: std::io::Error) {
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}
