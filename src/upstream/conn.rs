//! One logged-in connection to the upstream, and Helios's own short
//! conversations on it (login, reset, health check).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use helios_wire::auth::UpstreamAuth;
use helios_wire::frame::{read_frame_buffered, tag};
use helios_wire::{
    messages, startup, ErrorFields, Frame, StartupParams, TransactionStatus, UpstreamKey,
    UpstreamStream,
};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use super::{CancelTarget, ConnectError, Endpoint, UpstreamTarget};

/// Messages Helios reads from the upstream itself are small; a bigger one
/// means something is wrong.
const MAX_CONTROL_MESSAGE: usize = 1 << 20;

/// A logged-in upstream connection.
pub struct UpstreamConn {
    pub stream: UpstreamStream,
    /// Bytes read from the upstream and not yet consumed; the relay starts
    /// from these, so nothing read during Helios's own conversations is lost.
    pub rbuf: BytesMut,
    pub key: UpstreamKey,
    /// ParameterStatus values in the order the server first reported them.
    pub params: Vec<(String, String)>,
    pub status: TransactionStatus,
    pub endpoint: Endpoint,
    /// The startup parameters it was opened with (part of its pool identity).
    pub startup: StartupParams,
    pub created: Instant,
    pub id: u64,
}

impl std::fmt::Debug for UpstreamConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamConn")
            .field("id", &self.id)
            .field("endpoint", &self.endpoint)
            .field("pid", &self.key.pid)
            .finish_non_exhaustive()
    }
}

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl UpstreamConn {
    /// Open a connection and log in with `startup` (user, database and the
    /// client's other parameters) and `password`.
    pub async fn connect(
        target: &UpstreamTarget,
        startup: &StartupParams,
        password: Option<&str>,
    ) -> Result<UpstreamConn, ConnectError> {
        let (stream, endpoint) = open(target).await?;
        let upstream = endpoint.to_string();
        match tokio::time::timeout(
            target.connect_timeout,
            login(stream, endpoint, startup, password),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(ConnectError::Broken {
                upstream,
                reason: format!(
                    "login did not complete within {}",
                    humantime::format_duration(target.connect_timeout)
                ),
            }),
        }
    }

    pub fn cancel_target(&self) -> CancelTarget {
        CancelTarget {
            endpoint: self.endpoint.clone(),
            tls: self.stream.is_tls(),
            key: self.key,
            in_flight: Default::default(),
            requested: Default::default(),
        }
    }

    /// Set a reported parameter, keeping the first-seen order.
    pub fn set_param(&mut self, name: &str, value: &str) {
        match self.params.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => *v = value.to_string(),
            None => self.params.push((name.to_string(), value.to_string())),
        }
    }

    /// Run a statement of Helios's own (reset, health check) and wait for
    /// ReadyForQuery. Fails on an error or if the session is left in a transaction.
    pub async fn run_control_query(&mut self, sql: &str, limit: Duration) -> io::Result<()> {
        let mut out = BytesMut::new();
        messages::query(sql, &mut out);
        let work = async {
            self.stream.write_all(&out).await?;
            self.stream.flush().await?;
            let mut failed = None;
            loop {
                let frame =
                    read_frame_buffered(&mut self.stream, &mut self.rbuf, MAX_CONTROL_MESSAGE)
                        .await?
                        .ok_or(io::ErrorKind::UnexpectedEof)?;
                match frame.tag {
                    tag::ERROR_RESPONSE => failed = Some(ErrorFields::parse(&frame.body)),
                    tag::PARAMETER_STATUS => {
                        if let Some((k, v)) = parse_parameter_status(&frame) {
                            self.set_param(&k, &v);
                        }
                    }
                    tag::READY_FOR_QUERY => {
                        self.status = frame
                            .body
                            .first()
                            .and_then(|&b| TransactionStatus::from_byte(b))
                            .unwrap_or(TransactionStatus::Failed);
                        break;
                    }
                    _ => {}
                }
            }
            if let Some(e) = failed {
                return Err(io::Error::other(format!("\"{sql}\" failed: {e}")));
            }
            if self.status != TransactionStatus::Idle {
                return Err(io::Error::other(format!(
                    "\"{sql}\" left a transaction open"
                )));
            }
            Ok(())
        };
        tokio::time::timeout(limit, work)
            .await
            .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
    }

    /// Without waiting: whether the socket still looks usable. An idle
    /// connection has nothing to say; if it has (a FATAL from an admin
    /// shutdown, say) or it is closed, it is not reusable.
    pub fn is_quiet(&mut self) -> bool {
        if !self.rbuf.is_empty() {
            return false;
        }
        let mut byte = [0u8; 1];
        let mut buf = ReadBuf::new(&mut byte);
        let mut cx = Context::from_waker(Waker::noop());
        matches!(
            Pin::new(&mut self.stream).poll_read(&mut cx, &mut buf),
            Poll::Pending
        )
    }

    /// Say goodbye (best effort) and close.
    pub async fn terminate(mut self) {
        let mut out = BytesMut::new();
        messages::terminate(&mut out);
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            self.stream.write_all(&out).await?;
            self.stream.shutdown().await
        })
        .await;
    }
}

fn parse_parameter_status(frame: &Frame) -> Option<(String, String)> {
    let mut body = &frame.body[..];
    let k = helios_wire::frame::get_cstr(&mut body)?;
    let v = helios_wire::frame::get_cstr(&mut body)?;
    Some((k, v))
}

/// Open the transport: each endpoint in turn, then again after a backoff, up
/// to `connect_retries` more rounds. Nothing has been sent when this retries.
async fn open(target: &UpstreamTarget) -> Result<(UpstreamStream, Endpoint), ConnectError> {
    let mut last = String::new();
    for attempt in 0..=target.connect_retries {
        if attempt > 0 {
            tokio::time::sleep(backoff(attempt)).await;
        }
        for ep in &target.endpoints {
            match tokio::time::timeout(target.connect_timeout, open_endpoint(ep)).await {
                Ok(Ok(raw)) => {
                    // The server answered; TLS negotiation is bounded too (a
                    // server that accepts and then says nothing must not hang
                    // the client), but not retried: bytes were sent.
                    let tls = tokio::time::timeout(
                        target.connect_timeout,
                        negotiate_tls(target, raw, ep),
                    );
                    return match tls.await {
                        Ok(result) => result.map(|s| (s, ep.clone())),
                        Err(_) => Err(ConnectError::Unreachable {
                            upstream: ep.to_string(),
                            reason: format!(
                                "no answer to SSLRequest or TLS handshake within {}",
                                humantime::format_duration(target.connect_timeout)
                            ),
                        }),
                    };
                }
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => {
                    last = format!(
                        "timed out after {}",
                        humantime::format_duration(target.connect_timeout)
                    )
                }
            }
            tracing::debug!(upstream = %ep, attempt, error = %last, "upstream connect failed");
        }
    }
    Err(ConnectError::Unreachable {
        upstream: target.describe(),
        reason: last,
    })
}

/// Exponential backoff with jitter: ~100ms, ~200ms, ~400ms, ... capped at 2s.
fn backoff(attempt: u32) -> Duration {
    let base = 100u64
        .saturating_mul(1 << attempt.min(5).saturating_sub(1))
        .min(2000);
    let jitter = rand::random::<u64>() % (base / 2 + 1);
    Duration::from_millis(base / 2 + jitter)
}

enum RawStream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

async fn open_endpoint(ep: &Endpoint) -> io::Result<RawStream> {
    match ep {
        Endpoint::Tcp { host, port } => {
            let s = TcpStream::connect((host.as_str(), *port)).await?;
            s.set_nodelay(true)?;
            Ok(RawStream::Tcp(s))
        }
        Endpoint::Unix(path) => Ok(RawStream::Unix(UnixStream::connect(path).await?)),
    }
}

async fn negotiate_tls(
    target: &UpstreamTarget,
    raw: RawStream,
    ep: &Endpoint,
) -> Result<UpstreamStream, ConnectError> {
    let mut tcp = match raw {
        // libpq does not use TLS over Unix sockets either.
        RawStream::Unix(s) => return Ok(UpstreamStream::Unix(s)),
        RawStream::Tcp(s) => s,
    };
    let Some(config) = &target.tls_config else {
        return Ok(UpstreamStream::Tcp(tcp));
    };
    let broken = |reason: String| ConnectError::Unreachable {
        upstream: ep.to_string(),
        reason,
    };
    tcp.write_all(&startup::ssl_request())
        .await
        .map_err(|e| broken(e.to_string()))?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer)
        .await
        .map_err(|e| broken(format!("no answer to SSLRequest: {e}")))?;
    match answer[0] {
        b'S' => {
            let host = match ep {
                Endpoint::Tcp { host, .. } => host.clone(),
                Endpoint::Unix(_) => "localhost".into(),
            };
            let name = ServerName::try_from(host)
                .map_err(|e| broken(format!("invalid server name for TLS: {e}")))?;
            let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
            let tls = connector
                .connect(name, tcp)
                .await
                .map_err(|e| broken(format!("TLS handshake failed: {e}")))?;
            Ok(UpstreamStream::Tls(Box::new(tls)))
        }
        b'N' if target.tls_mode == crate::config::UpstreamTlsMode::Prefer => {
            Ok(UpstreamStream::Tcp(tcp))
        }
        b'N' => Err(broken(format!(
            "the server does not support TLS, and upstream.tls = \"{}\" requires it",
            match target.tls_mode {
                crate::config::UpstreamTlsMode::VerifyCa => "verify-ca",
                crate::config::UpstreamTlsMode::VerifyFull => "verify-full",
                _ => "require",
            }
        ))),
        other => Err(broken(format!(
            "unexpected answer to SSLRequest: {:?}",
            other as char
        ))),
    }
}

async fn login(
    mut stream: UpstreamStream,
    endpoint: Endpoint,
    startup: &StartupParams,
    password: Option<&str>,
) -> Result<UpstreamConn, ConnectError> {
    let upstream = endpoint.to_string();
    let broken = |reason: String| ConnectError::Broken {
        upstream: upstream.clone(),
        reason,
    };
    let io_err = |e: io::Error| broken(e.to_string());
    stream.write_all(&startup.encode()).await.map_err(io_err)?;
    stream.flush().await.map_err(io_err)?;

    let user = startup.user().unwrap_or_default();
    let mut auth = UpstreamAuth::new(user, password);
    let mut rbuf = BytesMut::with_capacity(8192);
    let mut key = None;
    let mut params = Vec::new();
    loop {
        let frame = read_frame_buffered(&mut stream, &mut rbuf, MAX_CONTROL_MESSAGE)
            .await
            .map_err(io_err)?
            .ok_or_else(|| broken("the server closed the connection".into()))?;
        match frame.tag {
            tag::AUTHENTICATION => {
                let (back, reply) = respond_off_loop(auth, frame.body).await;
                auth = back;
                let reply = reply.map_err(|reason| ConnectError::Auth {
                    upstream: upstream.clone(),
                    reason,
                })?;
                if let Some(reply) = reply {
                    stream.write_all(&reply).await.map_err(io_err)?;
                    stream.flush().await.map_err(io_err)?;
                }
            }
            tag::ERROR_RESPONSE => {
                let fields = ErrorFields::parse(&frame.body);
                return Err(ConnectError::Rejected {
                    frame,
                    fields,
                    after_auth_ok: auth.is_done(),
                });
            }
            tag::PARAMETER_STATUS => {
                if let Some(kv) = parse_parameter_status(&frame) {
                    params.push(kv);
                }
            }
            tag::BACKEND_KEY_DATA if frame.body.len() == 8 => {
                let b = &frame.body;
                key = Some(UpstreamKey {
                    pid: i32::from_be_bytes([b[0], b[1], b[2], b[3]]),
                    secret: i32::from_be_bytes([b[4], b[5], b[6], b[7]]),
                });
            }
            tag::READY_FOR_QUERY => break,
            // Startup notices and protocol negotiation need no answer.
            tag::NOTICE_RESPONSE | tag::NEGOTIATE_PROTOCOL_VERSION => {}
            other => {
                return Err(broken(format!(
                    "unexpected message type {:?} during login",
                    other as char
                )))
            }
        }
    }
    if !auth.is_done() {
        return Err(broken("ReadyForQuery before AuthenticationOk".into()));
    }
    Ok(UpstreamConn {
        stream,
        rbuf,
        key: key.unwrap_or(UpstreamKey { pid: 0, secret: 0 }),
        params,
        status: TransactionStatus::Idle,
        endpoint,
        startup: startup.clone(),
        created: Instant::now(),
        id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
    })
}

/// Answer an authentication request. SCRAM's key derivation (PBKDF2, a few
/// milliseconds) runs on the blocking pool so it never stalls the event loop
/// that relays everyone else's traffic.
async fn respond_off_loop(
    mut auth: UpstreamAuth,
    body: BytesMut,
) -> (
    UpstreamAuth,
    Result<Option<BytesMut>, helios_wire::auth::upstream::UpstreamAuthError>,
) {
    const SASL_CONTINUE: i32 = 11;
    if body.len() >= 4 && i32::from_be_bytes([body[0], body[1], body[2], body[3]]) == SASL_CONTINUE
    {
        tokio::task::spawn_blocking(move || {
            let r = auth.respond(&body);
            (auth, r)
        })
        .await
        .expect("the SCRAM step does not panic")
    } else {
        let r = auth.respond(&body);
        (auth, r)
    }
}

/// Send a CancelRequest for `target` on a fresh connection, as libpq does.
pub async fn send_cancel(upstream: &UpstreamTarget, target: &CancelTarget) -> io::Result<()> {
    let raw = open_endpoint(&target.endpoint).await?;
    let mut stream = if target.tls {
        negotiate_tls(upstream, raw, &target.endpoint)
            .await
            .map_err(|e| io::Error::other(e.to_string()))?
    } else {
        match raw {
            RawStream::Tcp(s) => UpstreamStream::Tcp(s),
            RawStream::Unix(s) => UpstreamStream::Unix(s),
        }
    };
    stream
        .write_all(&startup::cancel_request(target.key.pid, target.key.secret))
        .await?;
    stream.flush().await?;
    // The server closes the connection when it has processed the request.
    let mut sink = [0u8; 64];
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut sink)).await;
    Ok(())
}
