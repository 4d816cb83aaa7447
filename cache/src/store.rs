//! The bounded store.
//!
//! - Memory: entries are weighed in bytes against `max_memory`; each weighs
//!   at least `max_memory / max_entries`, so the entry count stays bounded
//!   too. moka admits by TinyLFU and evicts by frequency and recency, and
//!   expires each entry after its own TTL.
//! - Staleness: an entry whose [`Snapshot`](crate::Snapshot) is no longer
//!   current is never returned (and is dropped when met).
//! - Coalescing: the first miss for a key takes a [`FillTicket`]; identical
//!   misses meanwhile wait for it instead of going upstream too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moka::notification::RemovalCause;
use moka::sync::Cache;
use moka::Expiry;
use tokio::sync::Notify;

use crate::entry::{CachedResult, CapturedReply};
use crate::generation::{Generations, Snapshot};
use crate::key::{CacheKey, Context, ContextId, Contexts};

/// Bounds of the store.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_memory: usize,
    pub max_entries: usize,
    /// A reply larger than this is streamed through and not kept.
    pub max_entry_size: usize,
}

/// Counters of one statement shape (fingerprint), for `SHOW HELIOS CACHES`.
#[derive(Debug)]
pub struct StatementStats {
    pub fingerprint: u64,
    /// The first text seen with this fingerprint.
    pub text: String,
    /// The TTL its entries get, when a rule or hint sets one.
    pub ttl: Mutex<Option<Duration>>,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub entries: AtomicUsize,
    pub bytes: AtomicUsize,
    pub created: Instant,
}

impl StatementStats {
    pub fn new(fingerprint: u64, text: String, ttl: Option<Duration>) -> Self {
        StatementStats {
            fingerprint,
            text,
            ttl: Mutex::new(ttl),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            entries: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            created: Instant::now(),
        }
    }
}

/// A fill in progress: identical misses wait for it. Dropping it (stored or
/// not) releases them.
pub struct FillTicket {
    key: CacheKey,
    slot: Arc<Inflight>,
    inflight: Arc<Mutex<HashMap<CacheKey, Arc<Inflight>>>>,
}

impl std::fmt::Debug for FillTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FillTicket").finish_non_exhaustive()
    }
}

impl Drop for FillTicket {
    fn drop(&mut self) {
        self.inflight
            .lock()
            .expect("inflight map")
            .remove(&self.key);
        self.slot.done.store(true, Ordering::Release);
        self.slot.notify.notify_waiters();
    }
}

#[derive(Default)]
struct Inflight {
    done: AtomicBool,
    notify: Notify,
}

/// The answer to [`ResultCache::lookup`].
pub enum Lookup {
    Hit(Arc<CachedResult>),
    /// Nobody is filling this key: fill it (the ticket holds the others back).
    Fill(FillTicket),
    /// Another session is filling this key: wait with [`ResultCache::wait`].
    Wait(Waiter),
}

/// A handle on someone else's fill.
pub struct Waiter(Arc<Inflight>);

struct PerEntryTtl;

impl Expiry<CacheKey, Arc<CachedResult>> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        value: &Arc<CachedResult>,
        _now: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Monotonic counters for metrics and `SHOW HELIOS CACHES`.
#[derive(Debug, Default)]
pub struct Counters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub fills: AtomicU64,
    pub fills_refused: AtomicU64,
    pub evictions: AtomicU64,
}

pub struct ResultCache {
    /// foldhash: keys are hashed on every lookup, and SipHash over a
    /// statement's text showed in profiles of cache hits.
    entries: Cache<CacheKey, Arc<CachedResult>, foldhash::fast::RandomState>,
    inflight: Arc<Mutex<HashMap<CacheKey, Arc<Inflight>>>>,
    contexts: Contexts,
    statements: Mutex<HashMap<u64, Arc<StatementStats>>>,
    pub generations: Generations,
    pub limits: Limits,
    pub counters: Arc<Counters>,
}

/// What an entry costs beyond its reply and key bytes: the key and result
/// structs, their `Arc`s and allocations, moka's nodes (hash table, access
/// and expiry order). Measured: two million `pgbench -S` entries took 869
/// bytes of RSS each, 244 of them the reply and the result struct.
const ENTRY_OVERHEAD: usize = 600;

/// Statement shapes remembered for `SHOW HELIOS CACHES` beyond those with
/// entries.
const MAX_STATEMENTS: usize = 10_000;

impl ResultCache {
    pub fn new(limits: Limits) -> Self {
        let floor = (limits.max_memory / limits.max_entries.max(1)).max(1);
        let counters = Arc::new(Counters::default());
        let evictions = counters.clone();
        let entries = Cache::builder()
            .max_capacity(limits.max_memory as u64)
            .weigher(move |k: &CacheKey, v: &Arc<CachedResult>| {
                (v.size() + k.heap_size() + ENTRY_OVERHEAD)
                    .max(floor)
                    .min(u32::MAX as usize) as u32
            })
            .expire_after(PerEntryTtl)
            .support_invalidation_closures()
            .eviction_listener(move |_k, v: Arc<CachedResult>, cause| {
                v.stats.entries.fetch_sub(1, Ordering::AcqRel);
                v.stats.bytes.fetch_sub(v.size(), Ordering::AcqRel);
                metrics::gauge!("helios_cache_entries").decrement(1.0);
                metrics::gauge!("helios_cache_bytes").decrement(v.size() as f64);
                let cause = match cause {
                    RemovalCause::Size => "size",
                    RemovalCause::Expired => "ttl",
                    RemovalCause::Explicit => "explicit",
                    RemovalCause::Replaced => return,
                };
                evictions.evictions.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("helios_cache_evictions_total", "cause" => cause).increment(1);
            })
            .build_with_hasher(foldhash::fast::RandomState::default());
        ResultCache {
            entries,
            inflight: Default::default(),
            contexts: Contexts::default(),
            statements: Mutex::new(HashMap::new()),
            generations: Generations::default(),
            limits,
            counters,
        }
    }

    pub fn context(&self, c: Context) -> ContextId {
        self.contexts.intern(c)
    }

    /// A valid entry, or the right to fill it, or someone else's fill to wait for.
    pub fn lookup(&self, key: &CacheKey) -> Lookup {
        if let Some(hit) = self.get(key) {
            return Lookup::Hit(hit);
        }
        let mut inflight = self.inflight.lock().expect("inflight map");
        if let Some(slot) = inflight.get(key) {
            return Lookup::Wait(Waiter(slot.clone()));
        }
        let slot = Arc::new(Inflight::default());
        inflight.insert(key.clone(), slot.clone());
        Lookup::Fill(FillTicket {
            key: key.clone(),
            slot,
            inflight: self.inflight.clone(),
        })
    }

    /// A valid entry only.
    pub fn get(&self, key: &CacheKey) -> Option<Arc<CachedResult>> {
        let hit = self.entries.get(key)?;
        if hit.is_current() {
            return Some(hit);
        }
        self.entries.invalidate(key);
        None
    }

    /// Drop one entry.
    pub fn invalidate(&self, key: &CacheKey) {
        self.entries.invalidate(key);
    }

    /// Wait (at most `limit`) for another session's fill of the same key.
    pub async fn wait(&self, w: Waiter, limit: Duration) {
        let notified = w.0.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if w.0.done.load(Ordering::Acquire) {
            return;
        }
        let _ = tokio::time::timeout(limit, notified).await;
    }

    /// Store a captured reply, unless a write raced with it. Releases waiters.
    pub fn store(
        &self,
        ticket: FillTicket,
        reply: CapturedReply,
        snapshot: Snapshot,
        ttl: Duration,
        stats: Arc<StatementStats>,
    ) -> bool {
        if !snapshot.is_current() {
            self.counters.fills_refused.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("helios_cache_fills_refused_total", "reason" => "write").increment(1);
            return false;
        }
        let result = Arc::new(reply.into_result(snapshot, ttl, stats.clone()));
        stats.entries.fetch_add(1, Ordering::AcqRel);
        stats.bytes.fetch_add(result.size(), Ordering::AcqRel);
        metrics::gauge!("helios_cache_entries").increment(1.0);
        metrics::gauge!("helios_cache_bytes").increment(result.size() as f64);
        self.entries.insert(ticket.key.clone(), result);
        self.counters.fills.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("helios_cache_fills_total").increment(1);
        drop(ticket);
        true
    }

    /// The counters of a statement shape, registered on first use.
    pub fn statement(&self, fingerprint: u64, text: &str) -> Arc<StatementStats> {
        let mut map = self.statements.lock().expect("statement map");
        if let Some(s) = map.get(&fingerprint) {
            return s.clone();
        }
        if map.len() >= MAX_STATEMENTS {
            map.retain(|_, s| s.entries.load(Ordering::Acquire) > 0);
        }
        let s = Arc::new(StatementStats::new(fingerprint, text.to_string(), None));
        map.insert(fingerprint, s.clone());
        s
    }

    pub fn find_statement(&self, fingerprint: u64) -> Option<Arc<StatementStats>> {
        self.statements
            .lock()
            .expect("statement map")
            .get(&fingerprint)
            .cloned()
    }

    /// Every statement shape seen, by fingerprint.
    pub fn statements(&self) -> Vec<Arc<StatementStats>> {
        let mut v: Vec<_> = self
            .statements
            .lock()
            .expect("statement map")
            .values()
            .cloned()
            .collect();
        v.sort_by_key(|s| s.created);
        v
    }

    /// Forget a statement shape and drop its entries.
    pub fn drop_statement(&self, fingerprint: u64) -> bool {
        let found = self
            .statements
            .lock()
            .expect("statement map")
            .remove(&fingerprint)
            .is_some();
        let _ = self
            .entries
            .invalidate_entries_if(move |_, v| v.fingerprint() == fingerprint);
        found
    }

    /// Drop everything.
    pub fn clear(&self) {
        self.entries.invalidate_all();
    }

    /// Entries held (approximate until pending maintenance runs) and their weight.
    pub fn usage(&self) -> (u64, u64) {
        self.entries.run_pending_tasks();
        (self.entries.entry_count(), self.entries.weighted_size())
    }

    /// Record a hit or a miss.
    pub fn count(&self, stats: Option<&StatementStats>, hit: bool) {
        let (total, name) = if hit {
            (&self.counters.hits, "helios_cache_hits_total")
        } else {
            (&self.counters.misses, "helios_cache_misses_total")
        };
        total.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(name).increment(1);
        if let Some(s) = stats {
            let c = if hit { &s.hits } else { &s.misses };
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::tests::{frame, reply};
    use crate::entry::{Capture, CaptureEnd};
    use crate::key::Request;

    fn captured(rows: usize) -> CapturedReply {
        let mut wire = reply(rows);
        wire.extend(frame(b'Z', b"I"));
        match Capture::new(1 << 20).feed(&wire) {
            Some(CaptureEnd::Complete(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    fn key(c: &ResultCache, text: &str) -> CacheKey {
        CacheKey {
            context: c.context(Context {
                database: "db".into(),
                role: "r".into(),
                settings: "s".into(),
            }),
            request: Request::Simple(text.into()),
        }
    }

    fn cache() -> ResultCache {
        ResultCache::new(Limits {
            max_memory: 1 << 20,
            max_entries: 100,
            max_entry_size: 1 << 16,
        })
    }

    #[test]
    fn fills_then_hits_until_a_write() {
        let c = cache();
        let k = key(&c, "select 1");
        let Lookup::Fill(t) = c.lookup(&k) else {
            panic!("expected a fill")
        };
        let snap = c.generations.snapshot("db", ["t"]);
        let stats = c.statement(1, "select 1");
        assert!(c.store(t, captured(2), snap, Duration::from_secs(60), stats.clone()));
        let Lookup::Hit(h) = c.lookup(&k) else {
            panic!("expected a hit")
        };
        assert_eq!(h.row_count(), 2);
        assert_eq!(stats.entries.load(Ordering::Acquire), 1);
        c.generations.database("db").bump_tables(["t"]);
        assert!(c.get(&k).is_none(), "a write retires it");
    }

    #[test]
    fn a_fill_that_raced_with_a_write_is_refused() {
        let c = cache();
        let k = key(&c, "select 1");
        let Lookup::Fill(t) = c.lookup(&k) else {
            panic!()
        };
        let snap = c.generations.snapshot("db", ["t"]);
        c.generations.database("db").bump_tables(["t"]);
        assert!(!c.store(
            t,
            captured(1),
            snap,
            Duration::from_secs(60),
            c.statement(1, "q")
        ));
        assert!(c.get(&k).is_none());
        assert!(
            matches!(c.lookup(&k), Lookup::Fill(_)),
            "the ticket was released"
        );
    }

    #[tokio::test]
    async fn identical_misses_wait_for_the_first() {
        let c = Arc::new(cache());
        let k = key(&c, "select 1");
        let Lookup::Fill(t) = c.lookup(&k) else {
            panic!()
        };
        let Lookup::Wait(w) = c.lookup(&k) else {
            panic!("expected to wait")
        };
        let c2 = c.clone();
        let k2 = k.clone();
        let waiter = tokio::spawn(async move {
            c2.wait(w, Duration::from_secs(10)).await;
            c2.get(&k2).map(|h| h.row_count())
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let snap = c.generations.snapshot("db", ["t"]);
        c.store(
            t,
            captured(3),
            snap,
            Duration::from_secs(60),
            c.statement(1, "q"),
        );
        assert_eq!(waiter.await.unwrap(), Some(3));
    }

    #[test]
    fn ttl_expires_entries() {
        let c = cache();
        let k = key(&c, "select 1");
        let Lookup::Fill(t) = c.lookup(&k) else {
            panic!()
        };
        let snap = c.generations.snapshot("db", []);
        c.store(
            t,
            captured(1),
            snap,
            Duration::from_millis(30),
            c.statement(1, "q"),
        );
        assert!(c.get(&k).is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(c.get(&k).is_none());
    }

    #[test]
    fn memory_and_entry_count_are_bounded() {
        let c = ResultCache::new(Limits {
            max_memory: 64 * 1024,
            max_entries: 10,
            max_entry_size: 1 << 16,
        });
        for i in 0..200 {
            let k = key(&c, &format!("select {i}"));
            if let Lookup::Fill(t) = c.lookup(&k) {
                let snap = c.generations.snapshot("db", []);
                c.store(
                    t,
                    captured(1),
                    snap,
                    Duration::from_secs(60),
                    c.statement(1, "q"),
                );
            }
        }
        let (entries, weight) = c.usage();
        assert!(entries <= 10, "{entries} entries");
        assert!(weight <= 64 * 1024, "{weight} bytes");
    }
}
