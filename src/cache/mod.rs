//! The result cache, server-wide: the store (`helios-cache`), what Helios has
//! learned about statements (classification by text, catalog resolution by
//! context), the rules that choose what is cached, and — in notify mode —
//! the listeners that hear about writes made elsewhere.
//!
//! Each session's part (deciding per message, hits, fills, invalidation at
//! commit) is in `session::cache`.

pub mod install;
mod listener;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use helios_cache::{ContextId, Limits, ResultCache};
use helios_planner::cacheable::{self, Classified, Hints, ReadShape, Resolution};

use crate::config::{CacheConfig, CacheMode, InvalidationMode};
use crate::upstream::{Login, UpstreamTarget};

/// A statement text, read once.
#[derive(Debug)]
pub struct Analyzed {
    /// The text it was read from (shown by `SHOW HELIOS CACHES`; a simple
    /// Query's cache key holds this very allocation).
    pub text: Arc<str>,
    /// Shared by every text of the same shape when the shape alone decides
    /// it (see [`cacheable::Scan`]).
    pub class: Arc<Classified>,
    pub fingerprint: u64,
    pub hints: Hints,
}

/// A candidate's resolution, valid until the next DDL in its database.
#[derive(Debug)]
pub struct Resolved {
    pub resolution: Resolution,
    epoch: u64,
}

impl Resolved {
    /// The database epoch the catalog was read under.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}

/// What a rule names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleTarget {
    Fingerprint(u64),
    Table(String),
}

/// A rule of `explicit` mode: from the config or `CREATE HELIOS CACHE`.
#[derive(Debug, Clone)]
pub struct Rule {
    pub target: RuleTarget,
    pub ttl: Option<Duration>,
    /// The statement it was made from, when it was.
    pub text: Option<String>,
}

/// Whether to cache a candidate, as far as can be told before resolving it.
pub enum Choice {
    No,
    Yes(Duration),
    /// Only a table rule could choose it: decide once its tables are known.
    AfterResolving,
}

/// What writes reach, per database, as read from the catalog under one
/// epoch (DDL makes it unknown again).
#[derive(Default)]
struct Families {
    epoch: u64,
    /// Relation name -> the names a write to it may change.
    map: HashMap<String, Vec<String>>,
    /// Functions that may write (volatile, outside `pg_catalog`).
    writers: Option<Arc<HashSet<String>>>,
}

pub struct CacheService {
    pub config: CacheConfig,
    /// `cache.ttl` in milliseconds: reloadable, so not read from `config`.
    ttl_ms: std::sync::atomic::AtomicU64,
    pub store: ResultCache,
    analyzed: moka::sync::Cache<Arc<str>, Arc<Analyzed>>,
    /// Classifications by fingerprint, for texts whose shape decides it: a
    /// statement repeated with other literals is tokenized, not parsed.
    shapes: moka::sync::Cache<u64, Arc<Classified>>,
    resolved: moka::sync::Cache<(ContextId, ReadShape), Arc<Resolved>>,
    families: Mutex<HashMap<String, Families>>,
    rules: RwLock<Vec<Rule>>,
    listeners: Mutex<HashMap<String, Arc<AtomicBool>>>,
}

/// Statement texts remembered with their classification (bounded by bytes).
const ANALYZED_BYTES: u64 = 64 << 20;

/// Statement shapes remembered with their classification.
const SHAPES: u64 = 20_000;

impl CacheService {
    /// `None` when `cache.mode = "off"`.
    pub fn new(config: &CacheConfig) -> Option<Arc<CacheService>> {
        if config.mode == CacheMode::Off {
            return None;
        }
        let rules = config
            .rules
            .iter()
            .map(|r| {
                let target = match (&r.table, &r.fingerprint, &r.query) {
                    (Some(t), _, _) => RuleTarget::Table(table_name(t)),
                    (_, Some(f), _) => RuleTarget::Fingerprint(
                        cacheable::parse_fingerprint_id(f).expect("validated"),
                    ),
                    (_, _, Some(q)) => RuleTarget::Fingerprint(cacheable::fingerprint(q)),
                    _ => unreachable!("validated: one of table, fingerprint, query"),
                };
                Rule {
                    target,
                    ttl: r.ttl,
                    text: r.query.clone(),
                }
            })
            .collect();
        Some(Arc::new(CacheService {
            store: ResultCache::new(Limits {
                max_memory: config.max_memory,
                max_entries: config.max_entries,
                max_entry_size: config.max_entry_size,
            }),
            analyzed: moka::sync::Cache::builder()
                .max_capacity(ANALYZED_BYTES)
                .weigher(|k: &Arc<str>, _v| (2 * k.len() + 512).min(u32::MAX as usize) as u32)
                .build(),
            shapes: moka::sync::Cache::builder().max_capacity(SHAPES).build(),
            resolved: moka::sync::Cache::builder().max_capacity(100_000).build(),
            families: Mutex::new(HashMap::new()),
            rules: RwLock::new(rules),
            listeners: Mutex::new(HashMap::new()),
            ttl_ms: std::sync::atomic::AtomicU64::new(config.ttl.as_millis() as u64),
            config: config.clone(),
        }))
    }

    /// How long a result is kept unless a hint or rule says otherwise.
    pub fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_ms.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// A reloaded `cache.ttl`: applies to results stored from now on.
    pub fn set_ttl(&self, ttl: Duration) {
        self.ttl_ms
            .store(ttl.as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// The classification of a Query or Parse text (remembered).
    pub fn analyze(&self, text: &str) -> Arc<Analyzed> {
        if let Some(a) = self.analyzed.get(text) {
            return a;
        }
        let scan = cacheable::scan(text);
        let class = if scan.shape_decides {
            self.shapes
                .get_with(scan.fingerprint, || Arc::new(cacheable::classify(text)))
        } else {
            Arc::new(cacheable::classify(text))
        };
        let a = Arc::new(Analyzed {
            text: Arc::from(text),
            class,
            fingerprint: scan.fingerprint,
            hints: cacheable::hints(text),
        });
        self.analyzed.insert(a.text.clone(), a.clone());
        a
    }

    /// A remembered resolution, unless DDL has happened since.
    pub fn resolved(&self, db: &str, ctx: ContextId, shape: &ReadShape) -> Option<Arc<Resolved>> {
        let r = self.resolved.get(&(ctx, shape.clone()))?;
        (r.epoch == self.epoch(db)).then_some(r)
    }

    /// Remember a resolution made under the epoch read before the catalog query.
    pub fn remember_resolution(
        &self,
        ctx: ContextId,
        shape: &ReadShape,
        resolution: Resolution,
        epoch: u64,
    ) -> Arc<Resolved> {
        let r = Arc::new(Resolved { resolution, epoch });
        self.resolved.insert((ctx, shape.clone()), r.clone());
        r
    }

    pub fn epoch(&self, db: &str) -> u64 {
        self.store.generations.database(db).epoch()
    }

    /// Whether to cache a candidate, before resolving it.
    pub fn choose(&self, a: &Analyzed) -> Choice {
        if a.hints.no_cache {
            return Choice::No;
        }
        if a.hints.cache {
            return Choice::Yes(a.hints.ttl.unwrap_or(self.ttl()));
        }
        let rules = self.rules.read().expect("rules");
        if let Some(r) = rules
            .iter()
            .find(|r| r.target == RuleTarget::Fingerprint(a.fingerprint))
        {
            return Choice::Yes(r.ttl.unwrap_or(self.ttl()));
        }
        if self.config.mode == CacheMode::Auto {
            return Choice::Yes(self.ttl());
        }
        if rules
            .iter()
            .any(|r| matches!(r.target, RuleTarget::Table(_)))
        {
            return Choice::AfterResolving;
        }
        Choice::No
    }

    /// The table rules' verdict on a resolved candidate.
    pub fn choose_by_tables(&self, tables: &[String]) -> Option<Duration> {
        let rules = self.rules.read().expect("rules");
        rules.iter().find_map(|r| match &r.target {
            RuleTarget::Table(t) if tables.contains(t) => Some(r.ttl.unwrap_or(self.ttl())),
            _ => None,
        })
    }

    pub fn rules(&self) -> Vec<Rule> {
        self.rules.read().expect("rules").clone()
    }

    /// Add (or replace) a statement rule.
    pub fn add_rule(&self, fingerprint: u64, text: &str, ttl: Option<Duration>) {
        let mut rules = self.rules.write().expect("rules");
        rules.retain(|r| r.target != RuleTarget::Fingerprint(fingerprint));
        rules.push(Rule {
            target: RuleTarget::Fingerprint(fingerprint),
            ttl,
            text: Some(text.to_string()),
        });
        let stats = self.store.statement(fingerprint, text);
        *stats.ttl.lock().expect("ttl") = ttl;
    }

    /// Remove a statement rule and drop its entries. `false`: no such rule or entries.
    pub fn drop_rule(&self, fingerprint: u64) -> bool {
        let mut rules = self.rules.write().expect("rules");
        let before = rules.len();
        rules.retain(|r| r.target != RuleTarget::Fingerprint(fingerprint));
        let had_rule = rules.len() != before;
        drop(rules);
        let had_entries = self.store.drop_statement(fingerprint);
        had_rule || had_entries
    }

    /// What a write to each of `names` may change, if known for this epoch.
    pub fn family(&self, db: &str, name: &str) -> Option<Vec<String>> {
        let epoch = self.epoch(db);
        let fams = self.families.lock().expect("families");
        let f = fams.get(db)?;
        if f.epoch != epoch {
            return None;
        }
        f.map.get(name).cloned()
    }

    pub fn learn_families(&self, db: &str, epoch: u64, learned: HashMap<String, Vec<String>>) {
        self.with_families(db, epoch, |f| f.map.extend(learned));
    }

    /// The functions that may write in `db`, if known for this epoch.
    pub fn writers(&self, db: &str) -> Option<Arc<HashSet<String>>> {
        let epoch = self.epoch(db);
        let fams = self.families.lock().expect("families");
        let f = fams.get(db)?;
        (f.epoch == epoch).then(|| f.writers.clone()).flatten()
    }

    pub fn learn_writers(&self, db: &str, epoch: u64, writers: HashSet<String>) {
        self.with_families(db, epoch, |f| f.writers = Some(Arc::new(writers)));
    }

    /// Whether calling these functions may write, as far as `db`'s catalog
    /// is known (unknown: it may).
    pub fn calls_writer(&self, db: &str, functions: &[String]) -> bool {
        if functions.is_empty() {
            return false;
        }
        match self.writers(db) {
            Some(w) => functions.iter().any(|f| w.contains(f)),
            None => true,
        }
    }

    fn with_families(&self, db: &str, epoch: u64, update: impl FnOnce(&mut Families)) {
        // Learned under an older epoch: DDL happened since, it may be wrong.
        if epoch != self.epoch(db) {
            return;
        }
        let mut fams = self.families.lock().expect("families");
        let f = fams.entry(db.to_string()).or_default();
        if f.epoch != epoch {
            *f = Families {
                epoch,
                ..Families::default()
            };
        }
        update(f);
    }

    /// Whether results for `db` may be served and stored now: in notify
    /// mode only while its listener is connected.
    pub fn usable(&self, db: &str) -> bool {
        if self.config.invalidation != InvalidationMode::Notify {
            return true;
        }
        self.listeners
            .lock()
            .expect("listeners")
            .get(db)
            .is_some_and(|l| l.load(Ordering::Acquire))
    }

    /// In notify mode, start listening for `db` (once), logging in as this
    /// session did.
    pub fn ensure_listener(self: &Arc<Self>, db: &str, target: Arc<UpstreamTarget>, login: &Login) {
        if self.config.invalidation != InvalidationMode::Notify {
            return;
        }
        let mut listeners = self.listeners.lock().expect("listeners");
        if listeners.contains_key(db) {
            return;
        }
        let flag = Arc::new(AtomicBool::new(false));
        listeners.insert(db.to_string(), flag.clone());
        listener::spawn(
            self.clone(),
            db.to_string(),
            target,
            login.params.clone(),
            login.password.clone(),
            flag,
        );
    }
}

/// A rule's table name: the relation name (a schema prefix is accepted and
/// ignored, as generations are kept per relation name).
pub fn table_name(t: &str) -> String {
    let last = t.rsplit('.').next().unwrap_or(t).trim();
    match last.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => last.to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_table_names_fold_like_identifiers() {
        assert_eq!(table_name("Orders"), "orders");
        assert_eq!(table_name("sales.Orders"), "orders");
        assert_eq!(table_name("\"Mixed\""), "Mixed");
    }

    #[test]
    fn explicit_mode_caches_only_what_is_named() {
        let mut cfg = CacheConfig {
            mode: CacheMode::Explicit,
            ..CacheConfig::default()
        };
        cfg.rules.push(crate::config::CacheRuleConfig {
            query: Some("select * from t where id = 1".into()),
            ttl: Some(Duration::from_secs(9)),
            ..Default::default()
        });
        let svc = CacheService::new(&cfg).unwrap();
        let yes = |sql: &str| match svc.choose(&svc.analyze(sql)) {
            Choice::Yes(ttl) => Some(ttl),
            _ => None,
        };
        assert_eq!(
            yes("select * from t where id = 7"),
            Some(Duration::from_secs(9))
        );
        assert_eq!(yes("select * from u"), None);
        assert_eq!(
            yes("/*+ cache(ttl=3s) */ select * from u"),
            Some(Duration::from_secs(3))
        );
        assert_eq!(yes("/*+ no_cache */ select * from t where id = 1"), None);
        svc.add_rule(
            cacheable::fingerprint("select * from u"),
            "select * from u",
            None,
        );
        assert_eq!(yes("select * from u"), Some(cfg.ttl));
        assert!(svc.drop_rule(cacheable::fingerprint("select * from u")));
        assert_eq!(yes("select * from u"), None);
    }
}
