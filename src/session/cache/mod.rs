//! The result cache inside a session.
//!
//! [`CacheState`] is asked about every Query, Parse, Bind and Close on its
//! way upstream ([`Intercept::wants`]). From each it learns, without waiting:
//! which prepared statement holds which text; which tables a statement may
//! write (their generations are bumped when its transaction ends, before
//! the client hears of it); whether the session's settings may have changed
//! (then they are read again before the next lookup). It asks for a message
//! only when Helios has something to do with it:
//!
//! - a read it may cache ([`simple`], [`batch`]): served from the store, or
//!   relayed with its reply copied into the store as it streams back;
//! - a read whose functions are not yet known to be harmless, or a write to
//!   a relation whose family (a view's base tables, rule targets) is not yet
//!   known: settled with one catalog query, then relayed;
//! - `CREATE HELIOS CACHE`, `SHOW HELIOS CACHES`, ... ([`admin`]).
//!
//! Lookups happen only outside transaction blocks, with the session's
//! context (database, role, settings digest) known.

mod admin;
mod batch;
mod context;
mod parses;
mod simple;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::Arc;
use std::time::Duration;

use helios_cache::{
    CacheKey, CachedResult, Capture, CaptureEnd, ContextId, FillTicket, Request, Snapshot,
    StatementStats,
};
use helios_planner::cacheable::{ReadShape, ANY_TABLE};
use helios_wire::frame::{get_cstr, tag};
use helios_wire::TransactionStatus;

use super::relay::Relay;
use crate::cache::{Analyzed, CacheService, Choice};

/// A statement the client prepared.
#[derive(Debug, Clone)]
struct Prepared {
    text: Arc<str>,
    param_types: Arc<[u32]>,
    analyzed: Arc<Analyzed>,
    /// The upstream is known to hold it with this text (a Bind of it
    /// succeeded, or Helios parsed it there itself): only then may a Bind
    /// of it be answered from the store.
    verified: bool,
    /// A cache command (`SHOW HELIOS CACHES`, ...): Helios's alone, never
    /// sent upstream.
    admin: bool,
}

/// Writes waiting for their transaction to end.
#[derive(Debug)]
struct PendingWrite {
    /// The ReadyForQuery (counted from the session's start) that answers
    /// the request that writes; the first idle one from then on commits it.
    due: u64,
    tables: Vec<String>,
    everything: bool,
}

/// A reply being copied into the store.
struct Fill {
    capture: Capture,
    ticket: FillTicket,
    snapshot: Snapshot,
    ttl: Duration,
    stats: Arc<StatementStats>,
    /// The prepared statement a complete reply proves the upstream holds.
    verifies: Option<String>,
}

/// What the session asked for with the message it wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    Nothing,
    Admin,
    Read,
    Batch,
    Families,
}

pub struct CacheState {
    /// Metrics, stats, slow-query and audit logs (hits).
    obs: Arc<crate::ops::SessionObserver>,
    svc: Arc<CacheService>,
    /// Where hits are counted with everything the session runs (the
    /// advisor's `SHOW HELIOS QUERIES`).
    log: Option<Arc<helios_advisor::workload::QueryLog>>,
    db: String,
    /// `helios.cache` as the session last showed it.
    enabled: bool,
    /// The session's context as last read; `None` after anything that may
    /// have changed it.
    context: Option<ContextId>,
    statements: HashMap<String, Prepared>,
    pending: VecDeque<PendingWrite>,
    /// ReadyForQuery messages seen so far.
    readies: u64,
    fill: Option<Fill>,
    parses: parses::ParseTracker,
    /// The statement `wants` read for the message it asked for, so the
    /// handler need not read it again.
    analyzed: Option<Arc<Analyzed>>,
    /// A stored reply `wants` found for a simple Query by its text alone.
    hit: Option<Arc<CachedResult>>,
    pub wanted: Wanted,
}

impl CacheState {
    pub fn new(
        svc: Arc<CacheService>,
        db: &str,
        log: Option<Arc<helios_advisor::workload::QueryLog>>,
        obs: Arc<crate::ops::SessionObserver>,
    ) -> Self {
        CacheState {
            obs,
            svc,
            log,
            db: db.to_string(),
            enabled: true,
            context: None,
            statements: HashMap::new(),
            pending: VecDeque::new(),
            readies: 0,
            fill: None,
            parses: parses::ParseTracker::default(),
            analyzed: None,
            hit: None,
            wanted: Wanted::Nothing,
        }
    }

    /// Whether this statement is one to look up and fill (before resolving).
    /// While the context is unread, `helios.cache` may have been turned
    /// back on: the statement is looked at, and the context read first.
    fn chosen(&self, a: &Analyzed) -> bool {
        (self.enabled || self.context.is_none()) && !matches!(self.svc.choose(a), Choice::No)
    }

    /// A read's functions are settled (or it calls none).
    fn functions_known(&self, shape: &ReadShape) -> bool {
        shape.functions.is_empty()
            || self
                .context
                .and_then(|ctx| self.svc.resolved(&self.db, ctx, shape))
                .is_some()
    }

    /// Record a write by the next request to be relayed, with `in_flight`
    /// requests ahead of it.
    fn write_after(&mut self, in_flight: u32, tables: &[String], everything: bool) {
        self.write_ending_in(in_flight + 1, tables, everything);
    }

    /// Record a write that ends with the `ends_in`-th ReadyForQuery from now.
    fn write_ending_in(&mut self, ends_in: u32, tables: &[String], everything: bool) {
        if tables.is_empty() && !everything {
            return;
        }
        let due = self.readies + ends_in as u64;
        // Inside a transaction every statement adds one; they all commit
        // together: one entry, so a long transaction does not grow a queue.
        if let Some(last) = self.pending.back_mut() {
            if last.due <= self.readies + 1 && due == self.readies + 1 {
                last.due = due;
                last.everything |= everything;
                for t in tables {
                    if !last.tables.contains(t) {
                        last.tables.push(t.clone());
                    }
                }
                return;
            }
        }
        self.pending.push_back(PendingWrite {
            due,
            tables: tables.to_vec(),
            everything,
        });
    }

    /// What running a statement means for the session, learned before it runs.
    fn note(&mut self, a: &Analyzed, in_flight: u32) {
        let c = &a.class;
        // What Helios knew of them may no longer be what the upstream
        // holds; a Bind of a name it does not know is taken to do anything.
        if c.forgets_all {
            self.statements.clear();
        }
        for name in &c.forgets {
            self.statements.remove(name);
        }
        self.write_after(in_flight, &c.writes, c.writes_everything);
        // A function that may write (volatile, the user's) may write any
        // table: everything is retired when it commits.
        let resolved = match &c.read {
            Some(shape) => self
                .context
                .and_then(|ctx| self.svc.resolved(&self.db, ctx, shape)),
            None => None,
        };
        match resolved {
            // Settled with the catalog, views and policies included.
            Some(r) => {
                if !r.resolution.keeps_settings {
                    self.context = None;
                }
                self.write_after(in_flight, &[], r.resolution.may_write);
            }
            None => {
                if !c.keeps_settings {
                    self.context = None;
                }
                let may_write = self.svc.calls_writer(&self.db, &c.functions);
                self.write_after(in_flight, &[], may_write);
            }
        }
    }

    /// A current stored reply to this simple Query text in the session's
    /// context, if the context is known and caching is on.
    fn stored(&self, text: &str) -> Option<Arc<CachedResult>> {
        let context = self.context.filter(|_| self.enabled)?;
        self.svc.store.get(&CacheKey {
            context,
            request: Request::Simple(Arc::from(text)),
        })
    }

    /// Whether Helios must read the catalog before relaying `a`: what a
    /// write to its tables reaches, or which functions may write.
    fn must_learn(&self, a: &Analyzed) -> bool {
        self.svc.writers(&self.db).is_none() || self.unknown_families(a)
    }

    /// Relation names written by `a` whose families are not known yet.
    fn unknown_families(&self, a: &Analyzed) -> bool {
        !a.class.writes_everything
            && a.class
                .writes
                .iter()
                .any(|t| self.svc.family(&self.db, t).is_none())
    }

    /// Bump the generations of writes whose transaction has just ended.
    fn commit_writes(&mut self) {
        let gens = self.svc.store.generations.database(&self.db);
        while self.pending.front().is_some_and(|p| p.due <= self.readies) {
            let w = self.pending.pop_front().expect("checked");
            if w.everything {
                gens.bump_epoch();
                metrics::counter!("helios_cache_invalidations_total", "cause" => "ddl")
                    .increment(1);
                continue;
            }
            for t in &w.tables {
                match self.svc.family(&self.db, t) {
                    // Its triggers may write anything.
                    Some(members) if members.iter().any(|m| m == ANY_TABLE) => gens.bump_epoch(),
                    Some(members) => gens.bump_tables(members.iter().map(String::as_str)),
                    // Not known what a write to it reaches (a view's base
                    // tables, say): everything in the database.
                    None => gens.bump_epoch(),
                }
            }
            metrics::counter!("helios_cache_invalidations_total", "cause" => "write").increment(1);
        }
    }

    fn finish_fill(&mut self, end: CaptureEnd) {
        let fill = self.fill.take().expect("a fill in progress");
        match end {
            CaptureEnd::Complete(reply) => {
                let size = reply.size();
                if let Some(name) = &fill.verifies {
                    if let Some(p) = self.statements.get_mut(name) {
                        p.verified = true;
                    }
                }
                let stored =
                    self.svc
                        .store
                        .store(fill.ticket, reply, fill.snapshot, fill.ttl, fill.stats);
                tracing::debug!(stored, size, "cache fill");
            }
            CaptureEnd::NotKept(why) => {
                tracing::debug!(why, "reply not cached");
                metrics::counter!("helios_cache_fills_refused_total", "reason" => why).increment(1);
            }
        }
    }
}

impl CacheState {
    /// A reply about to be sent from the store: counted before it goes, so
    /// that once a client has its answer every session's `SHOW HELIOS
    /// CACHES` shows the hit.
    fn count_hit(&self, hit: &CachedResult) {
        self.svc.store.count(Some(hit.stats()), true);
    }

    /// A reply sent from the store, and how long sending took.
    fn record_hit(&self, hit: &CachedResult, took: std::time::Duration) {
        self.obs.record(&crate::ops::QueryRecord {
            fingerprint: Some(hit.fingerprint()),
            text: &hit.stats().text,
            route: crate::ops::Route::Cache,
            took,
            rows: hit.row_count() as u64,
            error: None,
        });
        if let Some(log) = &self.log {
            log.record(
                hit.fingerprint(),
                &hit.stats().text,
                took,
                hit.row_count() as u64,
                true,
            );
        }
    }
}

impl Drop for CacheState {
    /// A session can end before the replies to its writes came back (the
    /// client went away, the upstream failed): the upstream may still
    /// commit them. Retire what they touch rather than guess.
    fn drop(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        self.readies = u64::MAX;
        self.commit_writes();
    }
}

impl CacheState {
    /// A Parse recorded in [`Intercept::wants`] goes upstream: its
    /// ParseComplete will tell that the upstream holds it.
    fn parse_relayed(&mut self, frame: &[u8], in_flight: u32) {
        let name = get_cstr(&mut &frame[5..]).unwrap_or_default();
        if let Some(p) = self.statements.get(&name) {
            if !p.verified {
                self.parses.sent(&name, p.text.clone(), in_flight);
            }
        }
    }
}

/// A Query or Parse text, if it is UTF-8 (PostgreSQL checks the rest).
fn text_of(mut body: &[u8]) -> Option<&str> {
    let end = body.iter().position(|&b| b == 0)?;
    let text = std::str::from_utf8(&body[..end]).ok()?;
    body = &body[end..];
    let _ = body;
    Some(text)
}

/// The parameter type OIDs of a Parse body after its name and text.
fn param_types(mut rest: &[u8]) -> Arc<[u32]> {
    use bytes::Buf;
    if rest.len() < 2 {
        return Arc::from(Vec::new());
    }
    let n = rest.get_i16().max(0) as usize;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        if rest.len() < 4 {
            break;
        }
        v.push(rest.get_u32());
    }
    Arc::from(v)
}

impl super::relay::Intercept for CacheState {
    fn wants(&mut self, frame: &[u8], in_flight: u32) -> bool {
        self.wanted = Wanted::Nothing;
        self.analyzed = None;
        self.hit = None;
        let mut body = &frame[5..];
        match frame[0] {
            tag::QUERY => {
                // A simple Query destroys the unnamed statement.
                self.statements.remove("");
                let Some(text) = text_of(body) else {
                    self.unseen_statement(tag::QUERY, in_flight + 1);
                    return false;
                };
                // The common case first, without reading the statement:
                // only a cacheable read that was chosen is ever stored, and
                // its text says all that made it so (hints included).
                if let Some(hit) = self.stored(text) {
                    self.wanted = Wanted::Read;
                    self.hit = Some(hit);
                    return true;
                }
                if admin::is_admin(text) {
                    self.wanted = Wanted::Admin;
                    return true;
                }
                let a = self.svc.analyze(text);
                if let Some(shape) = &a.class.read {
                    if self.chosen(&a) || !self.functions_known(shape) {
                        self.wanted = Wanted::Read;
                        self.analyzed = Some(a);
                        return true;
                    }
                }
                if self.must_learn(&a) {
                    self.wanted = Wanted::Families;
                    return true;
                }
                self.note(&a, in_flight);
                false
            }
            tag::PARSE => {
                let name = get_cstr(&mut body).unwrap_or_default();
                let Some(text) = text_of(body) else {
                    self.statements.remove(&name);
                    return false;
                };
                // A named statement cannot be parsed again without a Close:
                // if the upstream holds the name, this Parse fails and the
                // old text stays. Helios cannot tell which text a Bind will
                // run unless it knows the old one is there.
                // (The same text again, or this very Parse handed back by a
                // handler, changes nothing.)
                let types = param_types(&body[text.len() + 1..]);
                let mut verified = false;
                let mut kept_text = None;
                if !name.is_empty() {
                    if let Some(old) = self.statements.get(&name) {
                        let same = *old.text == *text && old.param_types == types;
                        if !same {
                            if !old.verified {
                                self.statements.remove(&name);
                            }
                            return false;
                        }
                        verified = old.verified;
                        kept_text = Some(old.text.clone());
                    }
                }
                let admin = admin::is_admin(text);
                let a = self.svc.analyze(text);
                self.statements.insert(
                    name,
                    Prepared {
                        text: kept_text.unwrap_or_else(|| a.text.clone()),
                        param_types: types,
                        analyzed: a.clone(),
                        verified,
                        admin,
                    },
                );
                if admin {
                    self.wanted = Wanted::Batch;
                    return true;
                }
                // What it does is noted when it is bound.
                if let Some(shape) = &a.class.read {
                    if self.chosen(&a) || !self.functions_known(shape) {
                        self.wanted = Wanted::Batch;
                        return true;
                    }
                }
                if self.must_learn(&a) {
                    self.wanted = Wanted::Families;
                    return true;
                }
                self.parse_relayed(frame, in_flight);
                false
            }
            tag::BIND => {
                let _portal = get_cstr(&mut body);
                let stmt = get_cstr(&mut body).unwrap_or_default();
                let Some(p) = self.statements.get(&stmt) else {
                    // Parsed where Helios could not read it (too large, or
                    // by SQL PREPARE), or never parsed.
                    self.unseen_statement(tag::BIND, in_flight + 1);
                    return false;
                };
                if p.admin {
                    self.wanted = Wanted::Batch;
                    return true;
                }
                let a = p.analyzed.clone();
                if let Some(shape) = &a.class.read {
                    if self.chosen(&a) || !self.functions_known(shape) {
                        self.wanted = Wanted::Batch;
                        return true;
                    }
                }
                self.note(&a, in_flight);
                false
            }
            tag::DESCRIBE => {
                let Some((&b'S', mut name)) = body.split_first() else {
                    return false;
                };
                let name = get_cstr(&mut name).unwrap_or_default();
                let admin = self.statements.get(&name).is_some_and(|p| p.admin);
                if admin {
                    self.wanted = Wanted::Batch;
                }
                admin
            }
            tag::CLOSE => {
                if let Some((&b'S', mut name)) = body.split_first() {
                    let name = get_cstr(&mut name).unwrap_or_default();
                    self.statements.remove(&name);
                }
                false
            }
            _ => false,
        }
    }

    fn refused(&mut self, frame: &[u8], in_flight: u32) {
        // What `wants` left for its handler to note.
        let mut body = &frame[5..];
        let a = match frame[0] {
            tag::QUERY | tag::PARSE => {
                if frame[0] == tag::PARSE {
                    let _ = get_cstr(&mut body);
                }
                match text_of(body) {
                    Some(text) if !admin::is_admin(text) => self.svc.analyze(text),
                    // Relayed: the upstream answers it (with an error).
                    _ => return,
                }
            }
            tag::BIND => {
                let _portal = get_cstr(&mut body);
                let stmt = get_cstr(&mut body).unwrap_or_default();
                match self.statements.get(&stmt) {
                    Some(p) if !p.admin => p.analyzed.clone(),
                    _ => return,
                }
            }
            _ => return,
        };
        // A Parse only prepares; its Bind is noted when it comes.
        if frame[0] == tag::PARSE {
            self.parse_relayed(frame, in_flight);
        } else {
            self.note(&a, in_flight);
        }
    }

    fn unseen_statement(&mut self, tag: u8, ends_in: u32) {
        // A Parse whose name Helios did not read may have replaced any
        // unnamed statement, or named one after a Close.
        if tag == tag::PARSE {
            self.statements.clear();
        }
        // It may write anything and change any setting.
        self.context = None;
        self.write_ending_in(ends_in, &[], true);
    }

    fn upstream_cleared(&mut self, bytes: &[u8]) {
        let statements = &mut self.statements;
        self.parses.feed(bytes, |name, text| {
            if let Some(p) = statements.get_mut(name) {
                if Arc::ptr_eq(&p.text, text) {
                    p.verified = true;
                }
            }
        });
        if let Some(fill) = &mut self.fill {
            if let Some(end) = fill.capture.feed(bytes) {
                self.finish_fill(end);
            }
        }
    }

    fn owed_ready(&mut self, status: TransactionStatus) {
        self.parses.ready_elsewhere();
        self.upstream_ready(status);
    }

    fn upstream_ready(&mut self, status: TransactionStatus) {
        self.readies += 1;
        if status == TransactionStatus::Idle {
            self.commit_writes();
        }
    }
}

/// Handle the message the relay handed over for the cache.
pub async fn handle(
    relay: &mut Relay<'_>,
    st: &mut CacheState,
    max_message: usize,
) -> io::Result<()> {
    let frame = relay.take_client_frame();
    match st.wanted {
        Wanted::Admin => admin::handle(relay, st, frame).await,
        Wanted::Read => simple::handle(relay, st, frame).await,
        Wanted::Batch => batch::handle(relay, st, frame, max_message).await,
        Wanted::Families => context::learn_families_then_pass(relay, st, frame).await,
        Wanted::Nothing => {
            relay.pass_client_frames(&[frame]);
            Ok(())
        }
    }
}
