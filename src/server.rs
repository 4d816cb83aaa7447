//! The listener and what every session shares: configuration, users, TLS,
//! the upstream pool and the cancel-key registry.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
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

/// State shared by all sessions.
pub struct Server {
    pub config: Config,
    pub auth_method: AuthMethod,
    pub users: HashMap<String, UserEntry>,
    pub tls: Option<ServerTls>,
    pub pool: Pool,
    pub cancels: CancelRegistry<CancelTarget>,
    /// Client connections open now (including ones still starting up).
    clients: Arc<AtomicUsize>,
    /// Secret for decoy credentials of unknown users.
    pub decoy_key: [u8; 32],
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
        let Some(url) = config.upstream.url.clone() else {
            bail!(
                "no upstream configured: pass --upstream postgres://host:port, set [upstream] url in the config file, or HELIOS_UPSTREAM__URL"
            );
        };
        let target = UpstreamTarget::from_config(&url, &config.upstream)
            .map_err(|m| anyhow::anyhow!("upstream.url: {m}"))?;
        let tls = match (&config.tls.cert_file, &config.tls.key_file) {
            (Some(cert), Some(key)) => {
                let server_config = helios_wire::tls::server_config(cert, key)?;
                let certificate_pem = std::fs::read(cert)
                    .with_context(|| format!("reading {}", cert.display()))?;
                Some(ServerTls {
                    acceptor: TlsAcceptor::from(server_config),
                    certificate_pem,
                })
            }
            _ => None,
        };
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
        let auth_method = match config.auth.method {
            AuthMethodName::Trust => AuthMethod::Trust,
            AuthMethodName::Md5 => AuthMethod::Md5,
            AuthMethodName::ScramSha256 => AuthMethod::ScramSha256,
            AuthMethodName::Upstream => AuthMethod::Upstream,
        };
        let pool = Pool::new(Arc::new(target), config.pool.clone());
        Ok(Arc::new(Server {
            config,
            auth_method,
            users,
            tls,
            pool,
            cancels: CancelRegistry::new(),
            clients: Arc::new(AtomicUsize::new(0)),
            decoy_key: rand::random(),
        }))
    }

    /// The password Helios uses upstream for `user`, when the client did not give one.
    pub fn upstream_password(&self, user: &str) -> Option<String> {
        if let Some(p) = self.users.get(user).and_then(|u| u.upstream_password.clone()) {
            return Some(p);
        }
        let target = self.pool.target();
        (target.service_user.as_deref() == Some(user))
            .then(|| target.service_password.clone())
            .flatten()
    }

    fn take_slot(&self) -> ClientSlot {
        let n = self.clients.fetch_add(1, Ordering::AcqRel) + 1;
        ClientSlot {
            clients: self.clients.clone(),
            over: n > self.config.server.max_client_conn,
        }
    }

    /// Client connections open now.
    pub fn client_count(&self) -> usize {
        self.clients.load(Ordering::Acquire)
    }

    /// Accept clients until `shutdown` resolves, then wait (up to
    /// `server.shutdown_timeout`) for the sessions to end.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let listen = self.config.server.listen;
        let tcp = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let (unix, unix_path) = match &self.config.server.unix_socket_dir {
            Some(dir) => {
                let (l, p) = bind_unix(dir, listen.port())?;
                (Some(l), Some(p))
            }
            None => (None, None),
        };
        tracing::info!(
            listen = %tcp.local_addr()?,
            unix = ?unix_path.as_ref().map(|p| p.display().to_string()),
            upstream = %self.pool.target().describe(),
            auth = self.config.auth.method.as_str(),
            tls = self.tls.is_some(),
            "Helios is ready; connect with: psql -h {} -p {} -U <user> <database>",
            listen.ip(),
            listen.port(),
        );

        let reaper = {
            let server = self.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(server.pool.reap_interval());
                loop {
                    tick.tick().await;
                    server.pool.reap();
                }
            })
        };

        let accept_tcp = {
            let server = self.clone();
            async move {
                loop {
                    match tcp.accept().await {
                        Ok((sock, peer)) => {
                            let _ = sock.set_nodelay(true);
                            server.clone().spawn_session(ClientStream::Tcp(sock), peer.to_string());
                        }
                        Err(e) => accept_error(e).await,
                    }
                }
            }
        };
        let accept_unix = {
            let server = self.clone();
            async move {
                let Some(listener) = &unix else {
                    return std::future::pending().await;
                };
                loop {
                    match listener.accept().await {
                        Ok((sock, _)) => server.clone().spawn_session(ClientStream::Unix(sock), "[local]".into()),
                        Err(e) => accept_error(e).await,
                    }
                }
            }
        };
        tokio::select! {
            _ = accept_tcp => {}
            _ = accept_unix => {}
            _ = shutdown => {}
        }
        reaper.abort();
        if let Some(path) = &unix_path {
            let _ = std::fs::remove_file(path);
        }

        let deadline = Instant::now() + self.config.server.shutdown_timeout;
        let open = self.client_count();
        if open > 0 {
            tracing::info!(clients = open, "shutting down: waiting for clients to disconnect");
        }
        while self.client_count() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.pool.close_idle().await;
        tracing::info!(clients_left = self.client_count(), "Helios stopped");
        Ok(())
    }

    fn spawn_session(self: Arc<Self>, stream: ClientStream, peer: String) {
        let slot = self.take_slot();
        tokio::spawn(crate::session::serve(self, stream, slot, peer));
    }
}

/// The tokio runtime for `server.worker_threads`: one event loop on the
/// calling thread for 1 (no cross-thread wakeups: the cheapest way to relay
/// when the proxy shares a small machine with its clients and server), else
/// that many workers (0: one per CPU).
pub fn runtime(worker_threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if worker_threads == 1 {
        return tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if worker_threads > 1 {
        builder.worker_threads(worker_threads);
    }
    builder.enable_all().build()
}

/// Bind `<dir>/.s.PGSQL.<port>`, replacing a stale socket file.
fn bind_unix(dir: &std::path::Path, port: u16) -> anyhow::Result<(UnixListener, PathBuf)> {
    let path = dir.join(format!(".s.PGSQL.{port}"));
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            bail!("{} is in use by another server", path.display());
        }
        std::fs::remove_file(&path).with_context(|| format!("removing stale {}", path.display()))?;
    }
    let listener = UnixListener::bind(&path).with_context(|| format!("cannot listen on {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))?;
    Ok((listener, path))
}

/// Accept errors (EMFILE, ...) are transient: log, pause briefly, go on.
async fn accept_error(e: std::io::Error) {
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}
