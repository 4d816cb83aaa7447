//! Cancel keys and the map from the keys Helios hands to clients to the
//! upstream connections they currently use.
//!
//! A client gets a Helios-issued [`ClientKey`] in its BackendKeyData, never the
//! upstream's: the upstream's secret must not reach a client that might later
//! share that connection (pooling), and a cancel must go through Helios, which
//! knows which upstream connection the client is using right now. The pid may
//! be the upstream backend's (see [`CancelRegistry::issue_preferring`]); the
//! secret never is. The two key types are distinct so they cannot be mixed up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;

/// The (pid, secret) pair Helios gave a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey {
    pub pid: i32,
    pub secret: i32,
}

/// The (pid, secret) pair an upstream server gave Helios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpstreamKey {
    pub pid: i32,
    pub secret: i32,
}

/// Issues client keys and remembers, for each live client, where a cancel
/// must go. `T` is whatever the caller needs to reach the upstream (address
/// plus [`UpstreamKey`]).
#[derive(Debug)]
pub struct CancelRegistry<T> {
    next_pid: AtomicI32,
    targets: Mutex<HashMap<i32, (i32, Option<T>)>>,
}

impl<T: Clone> Default for CancelRegistry<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone> CancelRegistry<T> {
    pub fn new() -> Self {
        CancelRegistry {
            // Start somewhere that does not look like an upstream backend pid.
            next_pid: AtomicI32::new(1 + (rand::random::<u32>() % 1_000_000) as i32),
            targets: Mutex::new(HashMap::new()),
        }
    }

    /// A fresh key for a new client, with no target yet.
    pub fn issue(&self) -> ClientKey {
        self.issue_preferring(0)
    }

    /// A fresh key whose pid is `pid` if no live client has that pid (and it
    /// is positive), else a generated one. The secret is always Helios's own.
    /// A client attached to one upstream backend for its whole session gets
    /// that backend's pid, so BackendKeyData, `pg_backend_pid()` and its own
    /// notifications agree, as they do on a direct connection.
    pub fn issue_preferring(&self, pid: i32) -> ClientKey {
        let mut targets = self.targets.lock().unwrap();
        if pid > 0 && !targets.contains_key(&pid) {
            let key = ClientKey {
                pid,
                secret: rand::random(),
            };
            targets.insert(pid, (key.secret, None));
            return key;
        }
        loop {
            let pid = self.next_pid.fetch_add(1, Ordering::Relaxed) & i32::MAX;
            if pid == 0 || targets.contains_key(&pid) {
                continue;
            }
            let key = ClientKey {
                pid,
                secret: rand::random(),
            };
            targets.insert(pid, (key.secret, None));
            return key;
        }
    }

    /// Where cancels for `key` go from now on (`None`: nowhere).
    pub fn set_target(&self, key: ClientKey, target: Option<T>) {
        if let Some(entry) = self.targets.lock().unwrap().get_mut(&key.pid) {
            entry.1 = target;
        }
    }

    /// The client left: its key is no longer valid.
    pub fn release(&self, key: ClientKey) {
        self.targets.lock().unwrap().remove(&key.pid);
    }

    /// The target for a cancel request, if the key is live and the secret matches.
    pub fn lookup(&self, key: ClientKey) -> Option<T> {
        self.lookup_with(key, T::clone)
    }

    /// Like [`CancelRegistry::lookup`], but runs `f` on the target while the
    /// registry is locked, so that `f` sees it before any concurrent
    /// [`CancelRegistry::release`] of the key completes.
    pub fn lookup_with<R>(&self, key: ClientKey, f: impl FnOnce(&T) -> R) -> Option<R> {
        let targets = self.targets.lock().unwrap();
        let (secret, target) = targets.get(&key.pid)?;
        // Compare without an early exit so timing does not reveal the secret.
        let diff = (*secret ^ key.secret) as u32;
        if diff == 0 {
            target.as_ref().map(f)
        } else {
            None
        }
    }

    /// Number of live client keys.
    pub fn len(&self) -> usize {
        self.targets.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_secret_finds_the_target() {
        let reg = CancelRegistry::<u32>::new();
        let k = reg.issue();
        assert_eq!(reg.lookup(k), None, "no target yet");
        reg.set_target(k, Some(7));
        assert_eq!(reg.lookup(k), Some(7));
        let wrong = ClientKey {
            secret: k.secret.wrapping_add(1),
            ..k
        };
        assert_eq!(reg.lookup(wrong), None);
        reg.release(k);
        assert_eq!(reg.lookup(k), None);
        assert!(reg.is_empty());
    }

    #[test]
    fn a_preferred_pid_is_used_once() {
        let reg = CancelRegistry::<u32>::new();
        let a = reg.issue_preferring(4242);
        assert_eq!(a.pid, 4242);
        let b = reg.issue_preferring(4242);
        assert_ne!(b.pid, 4242, "pids of live clients are unique");
        reg.release(a);
        assert_eq!(reg.issue_preferring(4242).pid, 4242);
    }
}
