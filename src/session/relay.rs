//! Relaying a session's messages both ways, byte for byte.
//!
//! One state machine per session, polled as a single future: it reads from
//! whichever side has bytes, and writes to whichever side can take them, so
//! neither direction ever waits on the other (a client streaming COPY data
//! while the server sends notices cannot deadlock) and no locks are needed.
//! Each direction has one buffer; bytes are written out of the very buffer
//! they were read into, as soon as [`FrameScanner`] has cleared them, in one
//! write per read (writes coalesce naturally). A direction stops reading when
//! its buffer holds `HIGH_WATER` bytes nobody has taken yet, so a slow reader
//! slows the upstream instead of growing memory.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use helios_wire::frame::{get_cstr, read_frame_buffered, tag, HEADER_LEN};
use helios_wire::{
    ClientStream, Frame, FrameError, FrameScanner, FrameVisitor, Scan, TagSet, TransactionStatus,
};
use tokio::io::AsyncWrite;
use tokio_util::io::poll_read_buf;

use crate::upstream::UpstreamConn;

/// Bytes a direction may hold that the other side has not taken yet.
const HIGH_WATER: usize = 256 * 1024;
/// What is kept of the client's bytes once it is done sending: a Terminate
/// message (tag and length) at most; the rest is discarded.
const HEADER_LEN_OF_TERMINATE: usize = 5;
/// Room made in a buffer before each read.
const READ_CHUNK: usize = 32 * 1024;

/// Decides which client messages Helios answers itself instead of relaying
/// (natural-language requests, for now). Asked only about Query, Parse,
/// Bind, Describe and Close messages of modest size, with the whole message
/// in hand.
pub trait Intercept: Send {
    /// `frame` is the whole message, tag and length included. Also asked,
    /// with the answer ignored, about messages a handler gave back to be
    /// relayed (see [`Relay::pass_client_frames`]): what it learns from a
    /// message it learns on every pass.
    /// `in_flight`: requests (Query, Sync) relayed before this message
    /// whose ReadyForQuery has not come back.
    fn wants(&mut self, frame: &[u8], in_flight: u32) -> bool;

    /// [`Intercept::wants`], for a message a handler gave back to be
    /// relayed: seen for the second time (it must not be counted twice).
    fn handed_back(&mut self, frame: &[u8], in_flight: u32) -> bool {
        self.wants(frame, in_flight)
    }

    /// A message [`Intercept::wants`] asked for is relayed after all: it
    /// came after a Bind or Execute with no Sync since, where Helios cannot
    /// answer without ending the client's portals.
    fn refused(&mut self, _frame: &[u8], _in_flight: u32) {}

    /// A statement went by that [`Intercept::wants`] was not asked about: a
    /// Query, Parse or Bind too large to hand over, or a FunctionCall
    /// (`tag`). It ends with the `ends_in`-th ReadyForQuery from now.
    fn unseen_statement(&mut self, _tag: u8, _ends_in: u32) {}

    /// Bytes from the upstream the relay has just cleared for the client,
    /// in order, before they are written to it (the result cache copies
    /// replies from here).
    fn upstream_cleared(&mut self, _bytes: &[u8]) {}

    /// A ReadyForQuery has been cleared for the client and is not written
    /// yet: with status idle, a transaction (or a statement outside one) has
    /// ended and the client has not heard so.
    fn upstream_ready(&mut self, _status: TransactionStatus) {}

    /// A ReadyForQuery for the client's messages that a handler read
    /// itself (its Sync was Helios's): the replies before it reached the
    /// client through the handler, not [`Intercept::upstream_cleared`].
    fn owed_ready(&mut self, status: TransactionStatus) {
        self.upstream_ready(status);
    }

    /// `n` bytes were read from the client (for the byte counters).
    fn client_read(&mut self, _n: usize) {}
}

/// Why the relay stopped.
#[derive(Debug)]
pub enum RelayEnd {
    /// A client message Helios answers itself sits at the front of the client
    /// buffer; everything before it has been answered. Take it with
    /// [`Relay::take_client_frame`], answer, then `run` again.
    Handover,
    /// The client sent Terminate (not forwarded: the connection may be pooled).
    Terminate,
    /// The client closed its connection.
    ClientClosed,
    ClientFailed(io::Error),
    /// The client sent something that is not a valid message.
    ClientProtocol(FrameError),
    UpstreamClosed,
    UpstreamFailed(io::Error),
    /// Helios is shutting down: the client was told (FATAL 57P01).
    Shutdown,
    /// A request has been running upstream for `limits.query_timeout`: the
    /// session cancels it and relays on (the client gets the upstream's 57014).
    QueryTimeout,
    /// The session sat inside a transaction, sending nothing, for
    /// `limits.idle_in_transaction_timeout`: it ends.
    IdleInTransactionTimeout,
}

/// Time limits the relay watches (`[limits]`); `None` is no limit.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timeouts {
    pub query: Option<Duration>,
    pub idle_in_transaction: Option<Duration>,
}

impl Timeouts {
    pub fn from_config(l: &crate::config::LimitsConfig) -> Self {
        let some = |d: Duration| (!d.is_zero()).then_some(d);
        Timeouts {
            query: some(l.query_timeout),
            idle_in_transaction: some(l.idle_in_transaction_timeout),
        }
    }

    fn any(&self) -> bool {
        self.query.is_some() || self.idle_in_transaction.is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimerKind {
    Query,
    IdleInTransaction,
}

/// The one timer a session needs at a time: armed for what the session is
/// doing now, and re-armed when that changes (a ReadyForQuery arrives).
struct Timer {
    kind: TimerKind,
    /// `SessionState::readies` when armed.
    readies: u64,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

/// What the relay learns about the session from the messages going by.
#[derive(Debug, Default)]
pub struct SessionState {
    /// Requests sent (Query, Sync, FunctionCall) whose ReadyForQuery has not come back.
    pub in_flight: u32,
    /// ReadyForQuery statuses seen in the last scan of upstream bytes.
    pub ready_seen: Vec<TransactionStatus>,
    /// ReadyForQuery messages a handler read for the client's unsynced
    /// messages (see [`Relay::mark_synced`]), not yet told to the intercept.
    pub owed_readies: Vec<TransactionStatus>,
    /// Statements the intercept was not asked about, each as its message
    /// tag and the number of ReadyForQuery messages from now that ends it.
    pub unseen_statements: Vec<(u8, u32)>,
    /// Syncs the client sent since its last Execute or Query: if that
    /// statement turns out to be a COPY FROM STDIN, PostgreSQL ignores them
    /// (it discards Sync in copy-in mode), so they will get no ReadyForQuery.
    syncs_since_statement: u32,
    /// The upstream sent CopyInResponse and the client has not ended the copy.
    copy_in: bool,
    /// Extended-protocol messages were sent since the last Sync: the
    /// upstream is mid-pipeline (maybe inside an implicit transaction).
    unsynced: bool,
    /// A Bind or Execute was among them: portals exist, or a statement ran.
    bound_since_sync: bool,
    /// ReadyForQuery messages seen so far (a request ended).
    readies: u64,
}

/// Client-to-upstream observer: counts requests that will be answered by a
/// ReadyForQuery.
struct FromClient<'a> {
    state: &'a mut SessionState,
}

impl FrameVisitor for FromClient<'_> {
    #[inline]
    fn header(&mut self, t: u8, len: usize) -> Result<(), FrameError> {
        let s = &mut *self.state;
        match t {
            tag::SYNC => {
                s.in_flight += 1;
                s.syncs_since_statement += 1;
                s.unsynced = false;
                s.bound_since_sync = false;
            }
            tag::QUERY => {
                s.in_flight += 1;
                s.syncs_since_statement = 0;
                if len > INTERCEPT_LIMIT {
                    s.unseen_statements.push((t, s.in_flight));
                }
            }
            tag::EXECUTE | tag::BIND => {
                if t == tag::EXECUTE {
                    s.syncs_since_statement = 0;
                } else if len > INTERCEPT_LIMIT {
                    s.unseen_statements.push((t, s.in_flight + 1));
                }
                s.unsynced = true;
                s.bound_since_sync = true;
            }
            tag::PARSE | tag::DESCRIBE | tag::CLOSE => {
                s.unsynced = true;
                if t == tag::PARSE && len > INTERCEPT_LIMIT {
                    s.unseen_statements.push((t, s.in_flight + 1));
                }
            }
            tag::FUNCTION_CALL => {
                s.in_flight += 1;
                s.unseen_statements.push((t, s.in_flight));
            }
            // A client sends these only after CopyInResponse, so `copy_in`
            // is already known here.
            tag::COPY_DONE | tag::COPY_FAIL if s.copy_in => {
                s.in_flight = s.in_flight.saturating_sub(s.syncs_since_statement);
                s.syncs_since_statement = 0;
                s.copy_in = false;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Upstream-to-client observer: transaction status and reported parameters.
struct FromUpstream<'a> {
    state: &'a mut SessionState,
    conn_status: &'a mut TransactionStatus,
    params: &'a mut Vec<(String, String)>,
    fatal_seen: &'a mut bool,
    /// The upstream backend's pid, and where its own NotificationResponses
    /// sit in the buffer (offsets of their pid field) to be rewritten.
    upstream_pid: i32,
    own_notifications: &'a mut Vec<usize>,
}

impl FrameVisitor for FromUpstream<'_> {
    #[inline]
    fn frame(&mut self, offset: usize, frame: &[u8]) {
        match frame[0] {
            tag::COPY_IN_RESPONSE => self.state.copy_in = true,
            tag::READY_FOR_QUERY => {
                // A failed COPY ends copy-in mode without the client's CopyDone.
                self.state.copy_in = false;
                self.state.in_flight = self.state.in_flight.saturating_sub(1);
                self.state.readies += 1;
                if let Some(s) = frame.get(5).and_then(|&b| TransactionStatus::from_byte(b)) {
                    *self.conn_status = s;
                    self.state.ready_seen.push(s);
                }
            }
            tag::PARAMETER_STATUS => {
                let mut body = &frame[5..];
                if let (Some(k), Some(v)) = (get_cstr(&mut body), get_cstr(&mut body)) {
                    match self.params.iter_mut().find(|(name, _)| *name == k) {
                        Some((_, old)) => *old = v,
                        None => self.params.push((k, v)),
                    }
                }
            }
            tag::NOTIFICATION_RESPONSE if frame.len() >= 9 => {
                let pid = i32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]);
                if pid == self.upstream_pid {
                    self.own_notifications.push(offset + 5);
                }
            }
            tag::ERROR_RESPONSE => {
                let severity = helios_wire::ErrorFields::parse(&frame[5..]).severity;
                if severity == "FATAL" || severity == "PANIC" {
                    *self.fatal_seen = true;
                }
            }
            _ => {}
        }
    }
}

const CLIENT_INTERCEPT: TagSet = TagSet::empty()
    .with(tag::TERMINATE)
    .with(tag::QUERY)
    .with(tag::PARSE)
    .with(tag::BIND)
    .with(tag::DESCRIBE)
    .with(tag::CLOSE)
    // Never taken, only seen: it ends a batch of extended messages (the
    // per-statement timing groups by it).
    .with(tag::SYNC);
/// Larger Query/Parse/Bind messages are never handed over (they stream):
/// a natural-language question is not a megabyte long.
const INTERCEPT_LIMIT: usize = 1 << 20;
const UPSTREAM_INSPECT: TagSet = TagSet::empty()
    .with(tag::COPY_IN_RESPONSE)
    .with(tag::NOTIFICATION_RESPONSE)
    .with(tag::READY_FOR_QUERY)
    .with(tag::PARAMETER_STATUS)
    .with(tag::ERROR_RESPONSE);

/// One direction's buffer and scanner.
struct Pipe {
    buf: BytesMut,
    scan: FrameScanner,
    /// Written bytes that may sit in a TLS buffer until flushed.
    unflushed: bool,
    /// No more messages will be taken from this side.
    eof: bool,
    /// The client hung up (noticed while waiting to end the session).
    client_gone: bool,
}

impl Pipe {
    /// Read only while the other side keeps up, unless nothing can be
    /// written until more arrives (an inspected frame still incomplete).
    fn wants_read(&self) -> bool {
        !self.eof && (self.buf.len() < HIGH_WATER || self.scan.ready() == 0)
    }
}

pub struct Relay<'a> {
    client: &'a mut ClientStream,
    up: &'a mut UpstreamConn,
    c2u: Pipe,
    u2c_scan: FrameScanner,
    u2c_unflushed: bool,
    u2c_eof: bool,
    /// The upstream sent a FATAL error (it closes next; the client knows why).
    fatal_seen: bool,
    /// The client sent an invalid message; it ends the session once what
    /// came before it has been answered.
    client_error: Option<FrameError>,
    /// The pid in the BackendKeyData Helios gave the client.
    client_pid: i32,
    own_notifications: Vec<usize>,
    /// The parked client message is to be handed over (not a Terminate).
    handover: bool,
    /// See [`Relay::take_handover_unsynced`].
    handover_unsynced: bool,
    /// Intercepted-kind messages at the front of the client buffer that a
    /// handler gave back: relayed without being handed over again.
    pass_count: usize,
    /// Messages from the upstream for the client, gathered while Helios
    /// talked to the upstream itself.
    to_client: BytesMut,
    pub state: SessionState,
    timeouts: Timeouts,
    timer: Option<Timer>,
    /// The timer that last went off, and for which request: it does not go
    /// off again until the session moves on.
    fired: Option<(TimerKind, u64)>,
}

impl<'a> Relay<'a> {
    pub fn new(
        client: &'a mut ClientStream,
        up: &'a mut UpstreamConn,
        client_pid: i32,
        max_message: usize,
    ) -> Self {
        Relay {
            client,
            up,
            c2u: Pipe {
                buf: BytesMut::with_capacity(READ_CHUNK),
                scan: FrameScanner::frontend(max_message, TagSet::empty(), CLIENT_INTERCEPT)
                    .with_intercept_limit(INTERCEPT_LIMIT),
                unflushed: false,
                eof: false,
                client_gone: false,
            },
            u2c_scan: FrameScanner::backend(UPSTREAM_INSPECT, TagSet::empty()),
            u2c_unflushed: false,
            u2c_eof: false,
            fatal_seen: false,
            client_error: None,
            client_pid,
            own_notifications: Vec::new(),
            handover: false,
            handover_unsynced: false,
            pass_count: 0,
            to_client: BytesMut::new(),
            state: SessionState::default(),
            timeouts: Timeouts::default(),
            timer: None,
            fired: None,
        }
    }

    /// Start from client bytes read before the relay existed.
    pub fn with_client_bytes(mut self, early: BytesMut) -> Self {
        if !early.is_empty() {
            self.c2u.buf.extend_from_slice(&early);
        }
        self
    }

    /// Watch these time limits from now on.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Relay until one side ends the session, or a message is for Helios.
    pub async fn run(&mut self, intercept: &mut dyn Intercept) -> RelayEnd {
        // Time spent outside the relay (a handler answering) is not the
        // client's idling, nor the upstream's running: start counting afresh.
        self.timer = None;
        // Messages for the client a handler collected and did not send (it
        // handed its message back to be relayed): whole messages, at a
        // boundary, so they go out first.
        if !self.to_client.is_empty() {
            use tokio::io::AsyncWriteExt;
            let pending = std::mem::take(&mut self.to_client);
            if let Err(e) = self.client.write_all(&pending).await {
                return RelayEnd::ClientFailed(e);
            }
            self.u2c_unflushed = true;
        }
        // ReadyForQuery messages a handler read for the client's messages.
        for status in self.state.owed_readies.drain(..) {
            intercept.owed_ready(status);
        }
        // Bytes the upstream sent during Helios's own exchanges go first.
        if !self.up.rbuf.is_empty() {
            if let Err(end) = self.scan_upstream(intercept) {
                return end;
            }
        }
        // So do client messages read but not yet looked at.
        if !self.c2u.buf.is_empty() && !self.c2u.scan.is_parked() {
            self.scan_client(intercept);
        }
        poll_fn(|cx| self.poll_relay(cx, intercept)).await
    }

    /// Scan what the client sent, deciding on each intercepted message.
    fn scan_client(&mut self, intercept: &mut dyn Intercept) {
        self.scan_client_frames(intercept);
        for (t, ends_in) in self.state.unseen_statements.drain(..) {
            intercept.unseen_statement(t, ends_in);
        }
    }

    fn scan_client_frames(&mut self, intercept: &mut dyn Intercept) {
        loop {
            let mut v = FromClient {
                state: &mut self.state,
            };
            match self.c2u.scan.scan(&self.c2u.buf, &mut v) {
                Ok(Scan::NeedMore) => return,
                Ok(Scan::Intercept { tag: t, len }) => {
                    if t == tag::TERMINATE {
                        return;
                    }
                    let at = self.c2u.scan.ready();
                    let frame = &self.c2u.buf[at..at + len];
                    let in_flight = v.state.in_flight;
                    if self.pass_count > 0 {
                        self.pass_count -= 1;
                        // Handed back: it is relayed whatever the answer,
                        // but what it does must still be noted (a handler
                        // that gave up on it may not have).
                        if intercept.handed_back(frame, in_flight) {
                            intercept.refused(frame, in_flight);
                        }
                        let _ = v.header(t, len);
                        self.c2u.scan.pass_intercepted(len);
                        continue;
                    }
                    // Helios answers a message itself at a Sync boundary, or
                    // after only Parse/Describe/Close (a driver closing old
                    // statements first): a Sync Helios sends then changes
                    // nothing and brings their replies. After a Bind or
                    // Execute, it would end the client's portals or implicit
                    // transaction: the message is relayed.
                    let wanted = intercept.wants(frame, in_flight);
                    if wanted && !v.state.bound_since_sync {
                        self.handover = true;
                        // `unsynced` stays set until the handler has synced.
                        self.handover_unsynced = v.state.unsynced;
                        return;
                    }
                    if wanted {
                        tracing::debug!("a message Helios would answer came in the middle of an extended-protocol batch: relayed as is");
                        intercept.refused(frame, in_flight);
                    }
                    let _ = v.header(t, len);
                    self.c2u.scan.pass_intercepted(len);
                }
                Err(e) => {
                    // As PostgreSQL would: what came before the bad
                    // message still runs and is answered; then the
                    // session ends. Read nothing more from this client.
                    self.client_error = Some(e);
                    self.c2u.eof = true;
                    return;
                }
            }
        }
    }

    /// Whether the upstream owes replies to messages relayed before the
    /// handed-over one (no Sync since): the handler sends Sync to get them.
    pub fn take_handover_unsynced(&mut self) -> bool {
        std::mem::take(&mut self.handover_unsynced)
    }

    /// The upstream is mid-pipeline because of messages a handler forwarded.
    pub fn mark_unsynced(&mut self) {
        self.state.unsynced = true;
    }

    /// A handler synced the upstream (and read its ReadyForQuery) for
    /// messages the client sent without a Sync: that ReadyForQuery ends
    /// their implicit transaction, and the intercept hears of it (writes
    /// among them are retired now, not at the client's next request).
    pub fn mark_synced(&mut self) {
        self.state.unsynced = false;
        self.state.owed_readies.push(self.up.status);
    }

    /// Put a client message back in front, for the relay to handle (a
    /// handler met a message that is not its business).
    pub fn unread_client_frame(&mut self, f: &Frame) {
        let mut buf = BytesMut::with_capacity(
            (f.body.len() + HEADER_LEN + self.c2u.buf.len()).max(READ_CHUNK),
        );
        buf.extend_from_slice(&f.to_bytes());
        buf.extend_from_slice(&self.c2u.buf);
        self.c2u.buf = buf;
    }

    /// Give messages a handler took back to the relay, in order, to be
    /// forwarded as they are (the [`Intercept`] sees them but cannot take
    /// them again).
    pub fn pass_client_frames(&mut self, frames: &[Frame]) {
        let len: usize = frames.iter().map(|f| f.body.len() + HEADER_LEN).sum();
        let mut buf = BytesMut::with_capacity((len + self.c2u.buf.len()).max(READ_CHUNK));
        for f in frames {
            buf.extend_from_slice(&f.to_bytes());
            if CLIENT_INTERCEPT.contains(f.tag) && f.tag != tag::TERMINATE {
                self.pass_count += 1;
            }
        }
        buf.extend_from_slice(&self.c2u.buf);
        self.c2u.buf = buf;
    }

    /// The handed-over client message (see [`RelayEnd::Handover`]).
    pub fn take_client_frame(&mut self) -> Frame {
        debug_assert!(self.handover && self.c2u.scan.ready() == 0);
        let len = 1 + i32::from_be_bytes([
            self.c2u.buf[1],
            self.c2u.buf[2],
            self.c2u.buf[3],
            self.c2u.buf[4],
        ]) as usize;
        let mut bytes = self.c2u.buf.split_to(len);
        self.c2u.scan.consume_intercepted();
        self.handover = false;
        let t = bytes[0];
        bytes.advance(HEADER_LEN);
        Frame {
            tag: t,
            body: bytes,
        }
    }

    /// The client's next whole message, for a handler answering several.
    pub async fn read_client_frame(&mut self, max: usize) -> io::Result<Option<Frame>> {
        read_frame_buffered(&mut *self.client, &mut self.c2u.buf, max).await
    }

    /// As [`Relay::read_client_frame`], but `None` (the message left
    /// unread, for the relay to stream) when it is larger than what the
    /// relay would hand over: a handler never holds a huge Bind in memory.
    pub async fn read_small_client_frame(&mut self, max: usize) -> io::Result<Option<Frame>> {
        use tokio::io::AsyncReadExt;
        while self.c2u.buf.len() < HEADER_LEN {
            self.c2u.buf.reserve(READ_CHUNK);
            if self.client.read_buf(&mut self.c2u.buf).await? == 0 {
                return Ok(None);
            }
        }
        let len = u32::from_be_bytes([
            self.c2u.buf[1],
            self.c2u.buf[2],
            self.c2u.buf[3],
            self.c2u.buf[4],
        ]) as usize;
        if len > INTERCEPT_LIMIT {
            return Ok(None);
        }
        self.read_client_frame(max).await
    }

    /// The client, the upstream connection, and the buffer for upstream
    /// messages addressed to the client, for a handler.
    pub fn parts(&mut self) -> (&mut ClientStream, &mut UpstreamConn, &mut BytesMut) {
        (self.client, self.up, &mut self.to_client)
    }

    /// The upstream's transaction status as of its last ReadyForQuery.
    pub fn upstream_status(&self) -> TransactionStatus {
        self.up.status
    }

    /// Whether both directions stopped between messages with nothing buffered:
    /// the client may safely be sent a message of Helios's own.
    pub fn at_message_boundary(&self) -> bool {
        self.u2c_scan.at_boundary(self.up.rbuf.len())
    }

    fn scan_upstream(&mut self, intercept: &mut dyn Intercept) -> Result<(), RelayEnd> {
        let before = self.u2c_scan.ready();
        let mut v = FromUpstream {
            state: &mut self.state,
            conn_status: &mut self.up.status,
            params: &mut self.up.params,
            fatal_seen: &mut self.fatal_seen,
            upstream_pid: self.up.key.pid,
            own_notifications: &mut self.own_notifications,
        };
        let scanned = self.u2c_scan.scan(&self.up.rbuf, &mut v);
        // A session's notifications to itself carry its backend's pid; the
        // client knows its backend by the pid Helios gave it, so that is the
        // pid it must see (libpq programs compare be_pid with PQbackendPID).
        for at in self.own_notifications.drain(..) {
            self.up.rbuf[at..at + 4].copy_from_slice(&self.client_pid.to_be_bytes());
        }
        let after = self.u2c_scan.ready();
        if after > before {
            intercept.upstream_cleared(&self.up.rbuf[before..after]);
        }
        for i in 0..self.state.ready_seen.len() {
            intercept.upstream_ready(self.state.ready_seen[i]);
        }
        self.state.ready_seen.clear();
        match scanned {
            Ok(_) => Ok(()),
            Err(e) => Err(RelayEnd::UpstreamFailed(io::Error::new(
                io::ErrorKind::InvalidData,
                e,
            ))),
        }
    }

    fn poll_relay(
        &mut self,
        cx: &mut Context<'_>,
        intercept: &mut dyn Intercept,
    ) -> Poll<RelayEnd> {
        loop {
            let mut progress = false;

            // Upstream -> client.
            if !self.u2c_eof && (self.up.rbuf.len() < HIGH_WATER || self.u2c_scan.ready() == 0) {
                if self.up.rbuf.capacity() - self.up.rbuf.len() < READ_CHUNK / 4 {
                    self.up.rbuf.reserve(READ_CHUNK);
                }
                match poll_read_buf(Pin::new(&mut self.up.stream), cx, &mut self.up.rbuf) {
                    Poll::Ready(Ok(0)) => {
                        self.u2c_eof = true;
                        progress = true;
                    }
                    Poll::Ready(Ok(_)) => {
                        progress = true;
                        if let Err(end) = self.scan_upstream(intercept) {
                            return Poll::Ready(end);
                        }
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(RelayEnd::UpstreamFailed(e)),
                    Poll::Pending => {}
                }
            }
            match poll_forward(
                cx,
                &mut self.up.rbuf,
                &mut self.u2c_scan,
                self.client,
                &mut self.u2c_unflushed,
            ) {
                Poll::Ready(Ok(true)) => progress = true,
                Poll::Ready(Ok(false)) | Poll::Pending => {}
                Poll::Ready(Err(e)) => return Poll::Ready(RelayEnd::ClientFailed(e)),
            }
            if self.u2c_eof && self.u2c_scan.ready() == 0 {
                return Poll::Ready(RelayEnd::UpstreamClosed);
            }

            // Client -> upstream.
            let stopped_reading =
                (self.c2u.scan.is_parked() && !self.handover) || self.client_error.is_some();
            if stopped_reading && self.c2u.scan.ready() == 0 && !self.c2u.client_gone {
                // Terminate is in, everything before it forwarded: only watch
                // for the client hanging up (then nobody awaits the answers),
                // discarding whatever it sends after Terminate.
                let keep = self.c2u.buf.len().min(HEADER_LEN_OF_TERMINATE);
                match poll_read_buf(Pin::new(&mut *self.client), cx, &mut self.c2u.buf) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                        self.c2u.client_gone = true;
                        if let Some(e) = self.client_error.take() {
                            return Poll::Ready(RelayEnd::ClientProtocol(e));
                        }
                        return Poll::Ready(RelayEnd::Terminate);
                    }
                    Poll::Ready(Ok(_)) => {
                        self.c2u.buf.truncate(keep);
                        progress = true;
                    }
                    Poll::Pending => {}
                }
            } else if self.c2u.wants_read() && !self.c2u.scan.is_parked() {
                if self.c2u.buf.capacity() - self.c2u.buf.len() < READ_CHUNK / 4 {
                    self.c2u.buf.reserve(READ_CHUNK);
                }
                match poll_read_buf(Pin::new(&mut *self.client), cx, &mut self.c2u.buf) {
                    Poll::Ready(Ok(0)) => {
                        self.c2u.eof = true;
                        progress = true;
                    }
                    Poll::Ready(Ok(n)) => {
                        progress = true;
                        intercept.client_read(n);
                        self.scan_client(intercept);
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(RelayEnd::ClientFailed(e)),
                    Poll::Pending => {}
                }
            }
            match poll_forward(
                cx,
                &mut self.c2u.buf,
                &mut self.c2u.scan,
                &mut self.up.stream,
                &mut self.c2u.unflushed,
            ) {
                Poll::Ready(Ok(true)) => progress = true,
                Poll::Ready(Ok(false)) | Poll::Pending => {}
                Poll::Ready(Err(e)) => return Poll::Ready(RelayEnd::UpstreamFailed(e)),
            }
            if self.c2u.scan.ready() == 0 && !self.c2u.unflushed {
                // After Terminate or an invalid message, PostgreSQL still
                // answers what came before; so does Helios, then it ends.
                // Unless the upstream waits for COPY data that will never
                // come: then there is nothing to wait for.
                let answered = self.state.copy_in
                    || (self.state.in_flight == 0
                        && self.u2c_scan.ready() == 0
                        && !self.u2c_unflushed);
                if self.client_error.is_some() {
                    if answered {
                        let e = self.client_error.take().expect("checked");
                        return Poll::Ready(RelayEnd::ClientProtocol(e));
                    }
                } else if self.handover {
                    // Everything before it answered, nothing half-sent either way.
                    if self.state.in_flight == 0
                        && self.u2c_scan.ready() == 0
                        && !self.u2c_unflushed
                        && self.u2c_scan.at_boundary(self.up.rbuf.len())
                    {
                        return Poll::Ready(RelayEnd::Handover);
                    }
                } else if self.c2u.scan.is_parked() {
                    if answered {
                        return Poll::Ready(RelayEnd::Terminate);
                    }
                } else if self.c2u.eof {
                    return Poll::Ready(RelayEnd::ClientClosed);
                }
            }

            if !progress {
                if self.timeouts.any() {
                    if let Some(end) = self.poll_timer(cx) {
                        return Poll::Ready(end);
                    }
                }
                return Poll::Pending;
            }
        }
    }

    /// Arm the timer for what the session is doing (a request running
    /// upstream, or idling inside a transaction), and report when it goes off.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Option<RelayEnd> {
        let s = &self.state;
        let want = if self.handover {
            None
        } else if s.in_flight > 0 {
            self.timeouts.query.map(|d| (TimerKind::Query, d))
        } else if self.up.status != TransactionStatus::Idle
            && self.c2u.buf.is_empty()
            && !self.c2u.eof
        {
            // As PostgreSQL's idle_in_transaction_session_timeout: from the
            // ReadyForQuery that left the session in a transaction.
            self.timeouts
                .idle_in_transaction
                .map(|d| (TimerKind::IdleInTransaction, d))
        } else {
            None
        };
        let Some((kind, limit)) = want else {
            self.timer = None;
            return None;
        };
        let readies = s.readies;
        if self.fired == Some((kind, readies)) {
            return None;
        }
        match &self.timer {
            Some(t) if t.kind == kind && t.readies == readies => {}
            _ => {
                self.timer = Some(Timer {
                    kind,
                    readies,
                    sleep: Box::pin(tokio::time::sleep(limit)),
                })
            }
        }
        let timer = self.timer.as_mut().expect("armed above");
        if timer.sleep.as_mut().poll(cx).is_pending() {
            return None;
        }
        self.timer = None;
        self.fired = Some((kind, readies));
        Some(match kind {
            TimerKind::Query => RelayEnd::QueryTimeout,
            TimerKind::IdleInTransaction => RelayEnd::IdleInTransactionTimeout,
        })
    }

    /// Whether everything cleared for the client has been written and the
    /// upstream's bytes stop at a message boundary: a message of Helios's
    /// own can be written now, in order, without waiting on the client.
    pub fn client_caught_up(&self) -> bool {
        self.u2c_scan.ready() == 0 && !self.u2c_unflushed && self.at_message_boundary()
    }

    /// After the relay ended: forward what is still cleared for the client
    /// (used before Helios adds a final error of its own).
    pub async fn drain_to_client(&mut self) -> io::Result<()> {
        poll_fn(|cx| {
            while self.u2c_scan.ready() > 0 || self.u2c_unflushed {
                ready!(poll_forward(
                    cx,
                    &mut self.up.rbuf,
                    &mut self.u2c_scan,
                    self.client,
                    &mut self.u2c_unflushed,
                ))?;
            }
            Poll::Ready(Ok(()))
        })
        .await
    }

    /// After the upstream is gone: whether the client is between messages,
    /// dropping what Helios holds of a message it never began to forward
    /// (a few bytes of the next header), so that an error can follow.
    pub fn client_between_messages(&mut self) -> bool {
        if self.u2c_scan.mid_frame() || self.u2c_scan.ready() > 0 {
            return false;
        }
        self.up.rbuf.clear();
        self.u2c_scan.drop_unforwarded();
        true
    }

    /// Whether the upstream explained its going away with a FATAL error.
    pub fn upstream_reported_fatal(&self) -> bool {
        self.fatal_seen
    }

    /// Write a message of Helios's own (only at a message boundary).
    pub async fn write_to_client(&mut self, bytes: &[u8]) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        debug_assert!(self.at_message_boundary());
        self.client.write_all(bytes).await?;
        self.client.flush().await
    }

    /// Whether the session is between requests, outside a transaction,
    /// with nothing read or written half-way: it may be ended now (a
    /// shutdown) without anyone losing an answer.
    pub fn is_idle(&self) -> bool {
        !self.handover && self.c2u.buf.is_empty() && self.upstream_is_clean()
    }

    /// Whether Helios may reuse the upstream connection after this session.
    pub fn upstream_is_clean(&self) -> bool {
        let client_side_whole =
            self.c2u.scan.is_parked() || self.c2u.scan.at_boundary(self.c2u.buf.len());
        client_side_whole
            && self.state.in_flight == 0
            && !self.state.unsynced
            && !self.state.copy_in
            && self.up.status == TransactionStatus::Idle
            && self.u2c_scan.at_boundary(self.up.rbuf.len())
            && self.up.rbuf.is_empty()
    }
}

/// Write cleared bytes from `buf` to `out`, then flush if the stream buffers.
/// `Ok(true)` when something moved.
fn poll_forward<W: AsyncWrite + Unpin + NeedsFlush>(
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
    scan: &mut FrameScanner,
    out: &mut W,
    unflushed: &mut bool,
) -> Poll<io::Result<bool>> {
    let ready = scan.ready();
    if ready > 0 {
        let n = ready!(Pin::new(&mut *out).poll_write(cx, &buf[..ready]))?;
        if n == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        buf.advance(n);
        scan.advance(n);
        *unflushed = out.needs_flush();
        return Poll::Ready(Ok(true));
    }
    if *unflushed {
        ready!(Pin::new(&mut *out).poll_flush(cx))?;
        *unflushed = false;
        return Poll::Ready(Ok(true));
    }
    Poll::Ready(Ok(false))
}

/// Streams that may hold written bytes back until flushed (TLS).
pub trait NeedsFlush {
    fn needs_flush(&self) -> bool;
}

impl NeedsFlush for ClientStream {
    #[inline]
    fn needs_flush(&self) -> bool {
        ClientStream::needs_flush(self)
    }
}

impl NeedsFlush for helios_wire::UpstreamStream {
    #[inline]
    fn needs_flush(&self) -> bool {
        helios_wire::UpstreamStream::needs_flush(self)
    }
}
