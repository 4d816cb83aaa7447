//! Every client connection open now, for `SHOW HELIOS CLIENTS`, `SERVERS`,
//! `POOLS`, the client gauges in `/metrics`, and `HELIOS PAUSE` (which waits
//! until no client has a request or transaction under way).
//!
//! Sessions update their own entry with relaxed atomics; readers take a
//! snapshot. Nothing here is on the per-message path: a session writes at
//! request boundaries only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

/// What a client is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ClientState {
    /// Logging in.
    Startup = 0,
    /// Waiting for an upstream connection, or held by `HELIOS PAUSE`.
    Waiting = 1,
    /// Between requests, outside a transaction.
    Idle = 2,
    /// Between requests, inside a transaction block.
    IdleInTransaction = 3,
    /// A request is under way.
    Active = 4,
}

impl ClientState {
    fn from_u8(v: u8) -> ClientState {
        match v {
            1 => ClientState::Waiting,
            2 => ClientState::Idle,
            3 => ClientState::IdleInTransaction,
            4 => ClientState::Active,
            _ => ClientState::Startup,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ClientState::Startup => "startup",
            ClientState::Waiting => "waiting",
            ClientState::Idle => "idle",
            ClientState::IdleInTransaction => "idle in transaction",
            ClientState::Active => "active",
        }
    }
}

/// A client connection, as an operator sees it.
pub struct ClientEntry {
    /// Helios's own number for the connection (not a PostgreSQL pid).
    pub id: u64,
    pub addr: String,
    pub tls: bool,
    pub connected_at: SystemTime,
    pub user: Mutex<String>,
    pub database: Mutex<String>,
    pub application_name: Mutex<String>,
    state: AtomicU8,
    /// When the state last changed, in microseconds since `epoch`.
    since_us: AtomicU64,
    epoch: Instant,
    /// The upstream backend serving it, 0 when none.
    pub upstream_pid: AtomicI32,
    /// When that upstream connection was opened (Unix microseconds).
    pub upstream_connected_us: AtomicU64,
    /// Whether that upstream connection uses TLS.
    pub upstream_tls: std::sync::atomic::AtomicBool,
    /// Requests it has started.
    pub requests: AtomicU64,
}

impl ClientEntry {
    pub fn state(&self) -> ClientState {
        ClientState::from_u8(self.state.load(Ordering::Relaxed))
    }

    pub fn set_state(&self, s: ClientState) {
        if self.state.swap(s as u8, Ordering::Relaxed) != s as u8 {
            let now = self.epoch.elapsed().as_micros() as u64;
            self.since_us.store(now, Ordering::Relaxed);
            if s == ClientState::Active {
                self.requests.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// How long it has been in its current state.
    pub fn in_state_for(&self) -> std::time::Duration {
        let since = std::time::Duration::from_micros(self.since_us.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(since)
    }

    pub fn set_identity(&self, user: &str, database: &str, application_name: &str) {
        *self.user.lock().expect("user") = user.to_string();
        *self.database.lock().expect("database") = database.to_string();
        *self.application_name.lock().expect("application_name") = application_name.to_string();
    }

    pub fn set_upstream(&self, pid: i32, connected_at: SystemTime, tls: bool) {
        self.upstream_pid.store(pid, Ordering::Relaxed);
        self.upstream_tls.store(tls, Ordering::Relaxed);
        let us = connected_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        self.upstream_connected_us.store(us, Ordering::Relaxed);
    }
}

/// Removes the entry when the session ends.
pub struct ClientGuard {
    registry: Arc<ClientRegistry>,
    pub entry: Arc<ClientEntry>,
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.registry
            .clients
            .lock()
            .expect("clients")
            .remove(&self.entry.id);
    }
}

#[derive(Default)]
pub struct ClientRegistry {
    clients: Mutex<HashMap<u64, Arc<ClientEntry>>>,
    next_id: AtomicU64,
}

impl ClientRegistry {
    pub fn register(self: &Arc<Self>, addr: &str, tls: bool) -> ClientGuard {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let entry = Arc::new(ClientEntry {
            id,
            addr: addr.to_string(),
            tls,
            connected_at: SystemTime::now(),
            user: Mutex::default(),
            database: Mutex::default(),
            application_name: Mutex::default(),
            state: AtomicU8::new(ClientState::Startup as u8),
            since_us: AtomicU64::new(0),
            epoch: Instant::now(),
            upstream_pid: AtomicI32::new(0),
            upstream_connected_us: AtomicU64::new(0),
            upstream_tls: Default::default(),
            requests: AtomicU64::new(0),
        });
        self.clients
            .lock()
            .expect("clients")
            .insert(id, entry.clone());
        ClientGuard {
            registry: self.clone(),
            entry,
        }
    }

    /// Every client now, oldest first.
    pub fn snapshot(&self) -> Vec<Arc<ClientEntry>> {
        let mut v: Vec<_> = self
            .clients
            .lock()
            .expect("clients")
            .values()
            .cloned()
            .collect();
        v.sort_by_key(|c| c.id);
        v
    }

    /// Clients (other than `except`) with a request or a transaction under way.
    pub fn busy(&self, except: Option<u64>) -> usize {
        self.clients
            .lock()
            .expect("clients")
            .values()
            .filter(|c| Some(c.id) != except)
            .filter(|c| {
                matches!(
                    c.state(),
                    ClientState::Active | ClientState::IdleInTransaction
                )
            })
            .count()
    }
}
