//! Timing what the session relays, per statement shape, for `SHOW HELIOS
//! QUERIES` and `ADVISE WORKLOAD` (the data `pg_stat_statements` keeps, as
//! the client sees it: from when Helios forwards a request until its
//! ReadyForQuery comes back), and for the operations observers (query
//! metrics, `SHOW HELIOS STATS`, the slow-query and audit logs, the
//! client's state in `SHOW HELIOS CLIENTS`).
//!
//! A request is a simple Query (its statements) or the extended messages up
//! to a Sync (the statements bound in it). Requests are answered in order,
//! so a queue of the ones in flight is enough; rows are counted from their
//! CommandComplete tags. Messages Helios answers itself never reach this
//! (the result cache records its hits directly).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use helios_wire::frame::{get_cstr, tag};

use crate::advisor::AdvisorService;
use crate::ops::{ClientEntry, ClientState, QueryRecord, Route, SessionObserver};

/// A statement in a request.
struct Shape {
    /// Computed when the advisor is on (its log is keyed by it).
    fingerprint: Option<u64>,
    text: Arc<str>,
}

/// A request in flight.
struct Request {
    shapes: Vec<Shape>,
    start: Instant,
    rows: u64,
    /// The SQLSTATE of its first error.
    error: Option<String>,
}

pub struct StatsTracker {
    /// The advisor's per-shape log, when the advisor is on.
    svc: Option<Arc<AdvisorService>>,
    obs: Arc<SessionObserver>,
    entry: Arc<ClientEntry>,
    /// Bytes relayed since the last request ended, not yet counted.
    bytes_in: u64,
    bytes_out: u64,
    /// Prepared statements: name -> shape.
    statements: HashMap<String, (Option<u64>, Arc<str>)>,
    /// Statements bound since the last Sync, and when the first was.
    batch: Vec<Shape>,
    batch_start: Option<Instant>,
    in_flight: VecDeque<Request>,
    /// The backend message being read from the relayed bytes: its header
    /// so far, and body bytes still to skip or to keep (CommandComplete).
    header: [u8; 5],
    have: usize,
    skip: usize,
    keep: Option<Vec<u8>>,
    keeping: u8,
}

/// Requests kept in flight at most (a client pipelining without end).
const MAX_IN_FLIGHT: usize = 4096;

impl StatsTracker {
    pub fn new(
        svc: Option<Arc<AdvisorService>>,
        obs: Arc<SessionObserver>,
        entry: Arc<ClientEntry>,
    ) -> Self {
        StatsTracker {
            svc,
            obs,
            entry,
            bytes_in: 0,
            bytes_out: 0,
            statements: HashMap::new(),
            batch: Vec::new(),
            batch_start: None,
            in_flight: VecDeque::new(),
            header: [0; 5],
            have: 0,
            skip: 0,
            keep: None,
            keeping: 0,
        }
    }

    fn fingerprint(&self, text: &str) -> Option<u64> {
        self.svc.as_ref().map(|svc| svc.fingerprint(text))
    }

    /// Bytes read from the client.
    pub fn client_read(&mut self, n: usize) {
        self.bytes_in += n as u64;
    }

    fn push(&mut self, shapes: Vec<Shape>, start: Instant) {
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            self.in_flight.pop_front();
        }
        self.in_flight.push_back(Request {
            shapes,
            start,
            rows: 0,
            error: None,
        });
        self.entry.set_state(ClientState::Active);
    }

    /// A client message the relay forwards to the upstream.
    pub fn forwarded(&mut self, frame: &[u8]) {
        let mut body = &frame[5..];
        match frame[0] {
            tag::QUERY => {
                let text = get_cstr(&mut body).unwrap_or_default();
                let fp = self.fingerprint(&text);
                let shape = Shape {
                    fingerprint: fp,
                    text: Arc::from(text),
                };
                self.push(vec![shape], Instant::now());
            }
            tag::PARSE => {
                let name = get_cstr(&mut body).unwrap_or_default();
                let text = get_cstr(&mut body).unwrap_or_default();
                let fp = self.fingerprint(&text);
                self.statements.insert(name, (fp, Arc::from(text)));
            }
            tag::BIND => {
                let _portal = get_cstr(&mut body);
                let stmt = get_cstr(&mut body).unwrap_or_default();
                if let Some((fp, text)) = self.statements.get(&stmt) {
                    self.batch.push(Shape {
                        fingerprint: *fp,
                        text: text.clone(),
                    });
                }
                self.batch_start.get_or_insert_with(Instant::now);
            }
            tag::SYNC => {
                let shapes = std::mem::take(&mut self.batch);
                let start = self.batch_start.take().unwrap_or_else(Instant::now);
                self.push(shapes, start);
            }
            tag::CLOSE => {
                if let Some((&b'S', mut name)) = body.split_first() {
                    let name = get_cstr(&mut name).unwrap_or_default();
                    self.statements.remove(&name);
                }
            }
            _ => {}
        }
    }

    /// Bytes the relay cleared for the client, in order.
    pub fn cleared(&mut self, mut bytes: &[u8]) {
        self.bytes_out += bytes.len() as u64;
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                if let Some(k) = &mut self.keep {
                    k.extend_from_slice(&bytes[..n]);
                }
                self.skip -= n;
                bytes = &bytes[n..];
                if self.skip == 0 {
                    if let Some(k) = self.keep.take() {
                        self.kept(&k);
                    }
                }
                continue;
            }
            let n = (5 - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have < 5 {
                return;
            }
            self.have = 0;
            let len = u32::from_be_bytes([
                self.header[1],
                self.header[2],
                self.header[3],
                self.header[4],
            ]) as usize;
            self.skip = len.saturating_sub(4);
            if self.header[0] == tag::READY_FOR_QUERY {
                self.ready();
            }
            // A CommandComplete tag is short; an error's fields are
            // small: anything longer is not kept.
            let t = self.header[0];
            self.keeping = t;
            self.keep = ((t == tag::COMMAND_COMPLETE && self.skip <= 64)
                || (t == tag::ERROR_RESPONSE && self.skip <= 8192))
                .then(|| Vec::with_capacity(self.skip));
            if self.skip == 0 {
                if let Some(k) = self.keep.take() {
                    self.kept(&k);
                }
            }
        }
    }

    fn kept(&mut self, body: &[u8]) {
        if self.keeping == tag::ERROR_RESPONSE {
            let code = helios_wire::ErrorFields::parse(body).code;
            if let Some(r) = self.in_flight.front_mut() {
                r.error.get_or_insert(code);
            }
        } else {
            self.command_complete(body);
        }
    }

    /// `SELECT 5`, `UPDATE 3`, `INSERT 0 1`: the last number is the rows.
    fn command_complete(&mut self, body: &[u8]) {
        let text = String::from_utf8_lossy(body);
        let rows = text
            .trim_end_matches('\0')
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        if let Some(r) = self.in_flight.front_mut() {
            r.rows += rows;
        }
    }

    /// A ReadyForQuery (seen in the relayed bytes, or read by a handler
    /// for the client's messages): the oldest request in flight is done.
    pub fn ready(&mut self) {
        self.obs.bytes(
            std::mem::take(&mut self.bytes_in),
            std::mem::take(&mut self.bytes_out),
        );
        let Some(r) = self.in_flight.pop_front() else {
            return;
        };
        let took = r.start.elapsed();
        let n = r.shapes.len().max(1) as u32;
        if let Some(svc) = &self.svc {
            for (i, s) in r.shapes.iter().enumerate() {
                // A request of several statements: its time shared evenly, its
                // rows counted once.
                let rows = if i == 0 { r.rows } else { 0 };
                svc.log.record(
                    s.fingerprint.unwrap_or_default(),
                    &s.text,
                    took / n,
                    rows,
                    false,
                );
            }
        }
        // A Sync with nothing bound (a Describe, a Close) is not a statement.
        if let Some(first) = r.shapes.first() {
            self.obs.record(&QueryRecord {
                fingerprint: first.fingerprint,
                text: &first.text,
                route: Route::Upstream,
                took,
                rows: r.rows,
                error: r.error.as_deref(),
            });
        }
    }

    /// The upstream said where the session stands (ReadyForQuery).
    pub fn status(&mut self, status: helios_wire::TransactionStatus) {
        if self.in_flight.is_empty() {
            self.entry.set_state(match status {
                helios_wire::TransactionStatus::Idle => ClientState::Idle,
                _ => ClientState::IdleInTransaction,
            });
        }
    }
}
