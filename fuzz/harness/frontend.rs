//! Decode a client's bytes the way Helios does, checking what must hold.
//!
//! Shared, through `#[path]`, by the `frontend` fuzz target
//! (`fuzz/fuzz_targets/frontend.rs`) and by the stable regression test
//! (`wire/tests/fuzz_regressions.rs`), so both run the very same checks.
//!
//! Input layout: two configuration bytes, then the client's byte stream.
//! The stream goes first to the startup packet reader (as Helios's
//! `negotiate` loop does: SSLRequest and GSSENCRequest are followed by another
//! packet); whatever it leaves goes to the frontend decoders: a
//! [`FrameScanner`] driven like the relay drives it, [`read_frame`],
//! [`read_frame_buffered`], and the body parsers Helios applies to whole
//! messages. Each is compared with a small reference decoder written here.
//!
//! The binary that includes this module should install [`TrackingAlloc`] as
//! its global allocator: then no single allocation may exceed
//! [`allocation_budget`] of the input's length (a length prefix is the
//! client's word; memory must follow the bytes that actually arrived).

#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, BytesMut};
use helios_wire::bind::read_bind_tail;
use helios_wire::frame::{
    get_cstr, is_frontend_tag, read_frame, read_frame_buffered, split_cstr, tag, Frame, FrameError,
    FrameScanner, FrameVisitor, Scan, TagSet, HEADER_LEN,
};
use helios_wire::messages;
use helios_wire::startup::{
    parse_startup_packet, read_startup_packet, StartupPacket, MAX_STARTUP_PACKET_LEN,
};
use tokio::io::{AsyncRead, ReadBuf};

/// Helios's default `server.max_message_size` (1 GiB): what the embedded
/// session and the handlers' `read_client_frame` pass to `read_frame_buffered`.
pub const HELIOS_MAX_MESSAGE: usize = 1 << 30;
/// The authentication exchange's limit (`MAX_AUTH_MESSAGE`).
pub const AUTH_MAX_MESSAGE: usize = 65_535;
/// The relay's `INTERCEPT_LIMIT`.
pub const RELAY_INTERCEPT_LIMIT: usize = 1 << 20;

/// The relay's `CLIENT_INTERCEPT` set.
const CLIENT_INTERCEPT: TagSet = TagSet::empty()
    .with(tag::TERMINATE)
    .with(tag::QUERY)
    .with(tag::PARSE)
    .with(tag::BIND)
    .with(tag::DESCRIBE)
    .with(tag::CLOSE)
    .with(tag::SYNC);

const ALL_FRONTEND: TagSet = TagSet::empty()
    .with(b'B')
    .with(b'C')
    .with(b'D')
    .with(b'E')
    .with(b'F')
    .with(b'H')
    .with(b'P')
    .with(b'Q')
    .with(b'S')
    .with(b'X')
    .with(b'c')
    .with(b'd')
    .with(b'f');

// ---------------------------------------------------------------------------
// Allocation tracking.

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// A global allocator that remembers, per thread, the largest single request.
pub struct TrackingAlloc;

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| {
        if size > l.get() {
            l.set(size)
        }
    });
}

unsafe impl GlobalAlloc for TrackingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Forget the largest allocation seen so far on this thread.
pub fn reset_largest() {
    LARGEST.with(|l| l.set(0));
}

/// The largest single allocation on this thread since [`reset_largest`].
pub fn largest_allocation() -> usize {
    LARGEST.with(|l| l.get())
}

/// The largest single allocation decoding `input_len` bytes may make: a
/// fixed allowance (read buffers, a 10 000-byte startup packet, a Bind's
/// parameter table of at most 32 767 entries) plus a multiple of the input.
pub fn allocation_budget(input_len: usize) -> usize {
    (1 << 20) + 8 * input_len
}

// ---------------------------------------------------------------------------
// Driving futures over in-memory input.

/// Poll `f` to completion. The readers here never return `Pending`, so a
/// future that does is stuck for good: a hang.
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("decoder pending on in-memory input that is all there"),
    }
}

/// An in-memory client that delivers at most `chunk` bytes per read.
pub struct Chunked<'a> {
    data: &'a [u8],
    pos: usize,
    chunk: usize,
}

impl<'a> Chunked<'a> {
    pub fn new(data: &'a [u8], chunk: usize) -> Self {
        Chunked {
            data,
            pos: 0,
            chunk: chunk.max(1),
        }
    }
    fn rest(&self) -> &'a [u8] {
        &self.data[self.pos..]
    }
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self
            .chunk
            .min(self.data.len() - self.pos)
            .min(buf.remaining());
        let start = self.pos;
        buf.put_slice(&self.data[start..start + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

// ---------------------------------------------------------------------------
// Configuration from the first two bytes.

#[derive(Debug, Clone, Copy)]
struct Config {
    /// Bytes per read of the in-memory client.
    read_chunk: usize,
    /// Bytes the relay writes on per forward (partial writes).
    write_chunk: usize,
    scanner_max: usize,
    intercept_limit: usize,
    inspect: TagSet,
    intercept: TagSet,
    /// Bit i: whether the i-th intercepted frame is consumed (else passed on).
    consume_bits: u8,
    read_frame_max: usize,
}

impl Config {
    fn from_bytes(c0: u8, c1: u8) -> Self {
        const CHUNKS: [usize; 8] = [1, 2, 3, 5, 8, 64, 4096, usize::MAX];
        let read_chunk = CHUNKS[(c0 & 7) as usize];
        let write_chunk = CHUNKS[((c0 >> 3) & 7) as usize];
        let intercept_limit = match (c0 >> 6) & 3 {
            0 => RELAY_INTERCEPT_LIMIT,
            1 => usize::MAX,
            2 => 16,
            _ => HEADER_LEN,
        };
        let scanner_max = if c1 & 1 == 0 { 1 << 20 } else { 64 };
        let inspect = match (c1 >> 1) & 3 {
            0 => TagSet::empty(),
            1 => TagSet::empty()
                .with(tag::COPY_DATA)
                .with(tag::EXECUTE)
                .with(tag::QUERY),
            2 => ALL_FRONTEND,
            _ => TagSet::empty().with(tag::PASSWORD).with(tag::FLUSH),
        };
        let intercept = match (c1 >> 3) & 3 {
            0 | 1 => CLIENT_INTERCEPT,
            2 => TagSet::empty(),
            _ => ALL_FRONTEND,
        };
        let read_frame_max = if c1 & 0x20 == 0 {
            HELIOS_MAX_MESSAGE
        } else {
            AUTH_MAX_MESSAGE
        };
        Config {
            read_chunk,
            write_chunk,
            scanner_max,
            intercept_limit,
            inspect,
            intercept,
            consume_bits: c1.rotate_right(6),
            read_frame_max,
        }
    }
}

// ---------------------------------------------------------------------------
// The entry point.

/// Decode `data` (two configuration bytes, then a client's stream) every way
/// Helios does, panicking on any broken invariant or oversized allocation.
pub fn decode_frontend(data: &[u8]) {
    reset_largest();
    if data.len() >= 2 {
        let cfg = Config::from_bytes(data[0], data[1]);
        let stream = &data[2..];
        let rest = startup_phase(stream, cfg);
        check_scanner(rest, cfg);
        check_read_frame(rest, cfg);
        // Also the whole stream as frames, as if startup were over already.
        check_scanner(stream, cfg);
        check_read_frame(stream, cfg);
        // And raw bytes as a startup packet body, through the pub parser.
        check_parse_startup(stream);
    }
    let largest = largest_allocation();
    assert!(
        largest <= allocation_budget(data.len()),
        "one allocation of {largest} bytes while decoding {} input bytes",
        data.len()
    );
}

// ---------------------------------------------------------------------------
// Startup.

/// Read startup packets as `negotiate` does; the bytes left for the frontend
/// messages that follow.
fn startup_phase(stream: &[u8], cfg: Config) -> &[u8] {
    let mut r = Chunked::new(stream, cfg.read_chunk);
    // Helios allows one SSLRequest and any number of GSSENCRequests; a few
    // rounds are enough to reach every state.
    for _ in 0..4 {
        let before = r.pos;
        let got = block_on(read_startup_packet(&mut r));
        let used = r.pos - before;
        let at = &stream[before..];
        let len_field = (at.len() >= 4).then(|| i32::from_be_bytes([at[0], at[1], at[2], at[3]]));
        match got {
            Ok(None) => {
                assert!(at.len() < 4, "EOF reported with a length to read");
                return r.rest();
            }
            Ok(Some(packet)) => {
                let len = len_field.expect("a packet without a length");
                assert!((8..=MAX_STARTUP_PACKET_LEN as i32).contains(&len));
                assert_eq!(used, len as usize, "startup packet over- or under-read");
                let code = i32::from_be_bytes([at[4], at[5], at[6], at[7]]);
                match packet {
                    StartupPacket::SslRequest => assert_eq!(code, 80_877_103),
                    StartupPacket::GssEncRequest => assert_eq!(code, 80_877_104),
                    StartupPacket::Cancel(key) => {
                        assert_eq!((code, len), (80_877_102, 16));
                        assert_eq!(
                            (key.pid, key.secret),
                            (
                                i32::from_be_bytes([at[8], at[9], at[10], at[11]]),
                                i32::from_be_bytes([at[12], at[13], at[14], at[15]])
                            )
                        );
                        return r.rest();
                    }
                    StartupPacket::Startup {
                        minor,
                        params,
                        protocol_options,
                    } => {
                        assert_eq!(code >> 16, 3);
                        assert_eq!(minor as i32, code & 0xffff);
                        // What Helios does next with them.
                        let mut out = BytesMut::new();
                        if minor > 0 || !protocol_options.is_empty() {
                            messages::negotiate_protocol_version(&protocol_options, &mut out);
                        }
                        let _ = (params.user(), params.database());
                        for (k, v) in params.iter() {
                            assert!(!k.is_empty() && !k.contains('\0') && !v.contains('\0'));
                            assert!(!k.starts_with("_pq_."));
                            messages::parameter_status(k, v, &mut out);
                        }
                        // The parameters survive encoding and parsing again.
                        let mut enc = params.encode();
                        enc.advance(4);
                        match parse_startup_packet(enc) {
                            Ok(StartupPacket::Startup {
                                minor: 0,
                                params: again,
                                protocol_options: none,
                            }) => {
                                assert_eq!(again, params);
                                assert!(none.is_empty());
                            }
                            other => panic!("re-encoded startup parsed as {other:?}"),
                        }
                        return r.rest();
                    }
                }
            }
            Err(e) => {
                let _ = e.to_string();
                if let Some(len) = len_field {
                    if (8..=MAX_STARTUP_PACKET_LEN as i32).contains(&len) {
                        // A well-sized packet was read whole, or the
                        // stream ended inside it.
                        assert!(used == len as usize || at.len() < len as usize);
                    } else {
                        assert_eq!(used, 4, "read past a refused length");
                    }
                }
                return r.rest();
            }
        }
    }
    r.rest()
}

/// The pub parser on arbitrary bodies: an error, never a panic.
fn check_parse_startup(body: &[u8]) {
    let body = &body[..body.len().min(MAX_STARTUP_PACKET_LEN)];
    let _ = parse_startup_packet(BytesMut::from(body));
}

// ---------------------------------------------------------------------------
// The reference decoder.

#[derive(Debug, Clone, PartialEq, Eq)]
enum RefEnd {
    /// The stream ends on a frame boundary.
    Clean,
    /// The stream ends inside the frame (or header) that starts at `at`.
    Partial { at: usize },
    /// A frame that may not be followed: bad tag, bad or too large length.
    Invalid(FrameError),
}

struct RefFrame<'a> {
    at: usize,
    tag: u8,
    /// Header included.
    len: usize,
    /// The whole frame, when it has all arrived.
    bytes: Option<&'a [u8]>,
}

/// Split `s` into frames; `frontend` checks tags as the frontend scanner does.
fn reference(s: &[u8], max: usize, frontend: bool) -> (Vec<RefFrame<'_>>, RefEnd) {
    let mut frames = Vec::new();
    let mut at = 0;
    loop {
        let rest = &s[at..];
        if rest.is_empty() {
            return (frames, RefEnd::Clean);
        }
        if rest.len() < HEADER_LEN {
            // Even a bad tag waits for a whole header.
            return (frames, RefEnd::Partial { at });
        }
        let t = rest[0];
        if frontend && !is_frontend_tag(t) {
            return (frames, RefEnd::Invalid(FrameError::BadTag { tag: t }));
        }
        let field = i32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]);
        if field < 4 {
            return (
                frames,
                RefEnd::Invalid(FrameError::BadLength { tag: t, len: field }),
            );
        }
        let len = 1 + field as usize;
        if len > max {
            return (
                frames,
                RefEnd::Invalid(FrameError::TooLarge {
                    tag: t,
                    len,
                    limit: max,
                }),
            );
        }
        let bytes = rest.get(..len);
        frames.push(RefFrame {
            at,
            tag: t,
            len,
            bytes,
        });
        if bytes.is_none() {
            return (frames, RefEnd::Partial { at });
        }
        at += len;
    }
}

// ---------------------------------------------------------------------------
// FrameScanner, driven like the relay's client-to-upstream pipe.

#[derive(Default)]
struct Seen {
    /// (tag, len) of every header reported.
    headers: Vec<(u8, usize)>,
    /// Whole frames shown to the visitor, with their buffer offset.
    frames: Vec<(usize, Vec<u8>)>,
}

impl FrameVisitor for Seen {
    fn header(&mut self, tag: u8, len: usize) -> Result<(), FrameError> {
        self.headers.push((tag, len));
        Ok(())
    }
    fn frame(&mut self, offset: usize, frame: &[u8]) {
        self.frames.push((offset, frame.to_vec()));
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Event {
    Header(u8, usize),
    Intercept(u8, usize),
}

fn check_scanner(stream: &[u8], cfg: Config) {
    let (ref_frames, ref_end) = reference(stream, cfg.scanner_max, true);
    let mut s = FrameScanner::frontend(cfg.scanner_max, cfg.inspect, cfg.intercept)
        .with_intercept_limit(cfg.intercept_limit);
    // The caller's buffer, and where its front is in `stream`.
    let mut buf: Vec<u8> = Vec::new();
    let mut front = 0usize;
    let mut fed = 0usize;
    // Bytes that left the buffer (forwarded or consumed), in order.
    let mut out: Vec<u8> = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    let mut intercepts = 0u32;
    let mut error = None;
    let mut seen = Seen::default();
    // Each round: scan, act on the answer, forward; read more when stuck.
    let mut rounds = 0usize;
    loop {
        rounds += 1;
        assert!(rounds <= 4 * stream.len() + 16, "scanner makes no progress");
        let r = s.scan(&buf, &mut seen);
        for (t, l) in seen.headers.drain(..) {
            events.push(Event::Header(t, l));
        }
        for (off, f) in seen.frames.drain(..) {
            assert!(f.len() >= HEADER_LEN);
            assert_eq!(
                &buf[off..off + f.len()],
                &f[..],
                "visitor shown other bytes"
            );
            let field = i32::from_be_bytes([f[1], f[2], f[3], f[4]]);
            assert_eq!(
                1 + field as usize,
                f.len(),
                "frame length is not its header's"
            );
            assert!(cfg.inspect.contains(f[0]));
        }
        assert!(s.ready() <= buf.len(), "more ready bytes than given");
        match r {
            Ok(Scan::NeedMore) => {
                let pending = s.pending_frame_len(&buf);
                if pending > 0 {
                    assert!(pending > buf.len() - s.ready());
                    assert!(pending <= cfg.scanner_max);
                }
                let moved = forward(&mut buf, &mut s, &mut out, &mut front, cfg.write_chunk);
                if fed < stream.len() {
                    let n = cfg.read_chunk.min(stream.len() - fed);
                    buf.extend_from_slice(&stream[fed..fed + n]);
                    fed += n;
                } else if !moved {
                    break;
                }
            }
            Ok(Scan::Intercept { tag: t, len }) => {
                assert!(s.is_parked());
                let at = s.ready();
                assert!(at + len <= buf.len(), "intercepted frame not all there");
                assert_eq!(buf[at], t);
                let field =
                    i32::from_be_bytes([buf[at + 1], buf[at + 2], buf[at + 3], buf[at + 4]]);
                assert_eq!(
                    1 + field as usize,
                    len,
                    "intercept length is not its header's"
                );
                assert!(len <= cfg.scanner_max && len <= cfg.intercept_limit);
                assert!(cfg.intercept.contains(t));
                // Scanning again stays on it.
                assert_eq!(s.scan(&buf, &mut seen), Ok(Scan::Intercept { tag: t, len }));
                assert!(seen.headers.is_empty() && seen.frames.is_empty());
                events.push(Event::Intercept(t, len));
                let consume = cfg.consume_bits & (1 << (intercepts % 8)) != 0;
                intercepts += 1;
                if consume {
                    // Forward everything before it, then take it out.
                    while s.ready() > 0 {
                        forward(&mut buf, &mut s, &mut out, &mut front, cfg.write_chunk);
                    }
                    out.extend(buf.drain(..len));
                    front += len;
                    s.consume_intercepted();
                } else {
                    s.pass_intercepted(len);
                }
                assert!(!s.is_parked());
            }
            Err(e) => {
                error = Some(e);
                while s.ready() > 0 {
                    forward(&mut buf, &mut s, &mut out, &mut front, cfg.write_chunk);
                }
                break;
            }
        }
    }
    assert_eq!(out, stream[..front], "bytes lost, duplicated or reordered");

    // What the scanner reported is what the reference finds.
    let whole_kind = |t: u8, len: usize| {
        cfg.inspect.contains(t) || (cfg.intercept.contains(t) && len <= cfg.intercept_limit)
    };
    let expected: Vec<Event> = ref_frames
        .iter()
        .filter(|f| f.bytes.is_some() || !whole_kind(f.tag, f.len))
        .map(|f| {
            if cfg.intercept.contains(f.tag) && f.len <= cfg.intercept_limit {
                Event::Intercept(f.tag, f.len)
            } else {
                Event::Header(f.tag, f.len)
            }
        })
        .collect();
    assert_eq!(events, expected, "scanner and reference disagree");
    match (&error, &ref_end) {
        (Some(e), RefEnd::Invalid(r)) => {
            assert_eq!(e, r);
            // Not one byte of the invalid frame was cleared.
            let bad_at = ref_frames.last().map_or(0, |f| f.at + f.len);
            assert_eq!(front, bad_at, "invalid frame's bytes forwarded");
        }
        (None, RefEnd::Clean) => {
            assert_eq!(front, stream.len());
            assert!(buf.is_empty() && s.at_boundary(0));
        }
        (None, RefEnd::Partial { at }) => {
            assert!(!s.at_boundary(buf.len()));
            // A streaming frame's arrived bytes all went on; a held one's
            // (or a partial header's) none.
            match ref_frames.last() {
                Some(f) if f.bytes.is_none() && !whole_kind(f.tag, f.len) => {
                    assert_eq!(front, stream.len())
                }
                _ => assert_eq!(front, *at),
            }
        }
        (e, r) => panic!("scanner ended with {e:?}, reference with {r:?}"),
    }
}

/// Forward up to `chunk` ready bytes; whether any moved.
fn forward(
    buf: &mut Vec<u8>,
    s: &mut FrameScanner,
    out: &mut Vec<u8>,
    front: &mut usize,
    chunk: usize,
) -> bool {
    let n = s.ready().min(chunk);
    out.extend(buf.drain(..n));
    s.advance(n);
    *front += n;
    n > 0
}

// ---------------------------------------------------------------------------
// read_frame and read_frame_buffered.

fn check_read_frame(stream: &[u8], cfg: Config) {
    let max = cfg.read_frame_max;
    let (ref_frames, ref_end) = reference(stream, max, false);

    let mut r = Chunked::new(stream, cfg.read_chunk);
    let mut unbuffered = Vec::new();
    let end_unbuffered = loop {
        match block_on(read_frame(&mut r, max)) {
            Ok(Some(f)) => unbuffered.push(f),
            Ok(None) => break Ok(()),
            Err(e) => break Err(e.kind()),
        }
    };

    let mut r = Chunked::new(stream, cfg.read_chunk);
    let mut rbuf = BytesMut::new();
    let mut buffered = Vec::new();
    let end_buffered = loop {
        match block_on(read_frame_buffered(&mut r, &mut rbuf, max)) {
            Ok(Some(f)) => buffered.push(f),
            Ok(None) => break Ok(()),
            Err(e) => break Err(e.kind()),
        }
    };

    let complete: Vec<&RefFrame> = ref_frames.iter().filter(|f| f.bytes.is_some()).collect();
    for frames in [&unbuffered, &buffered] {
        assert_eq!(
            frames.len(),
            complete.len(),
            "frame count differs from reference"
        );
        for (f, want) in frames.iter().zip(&complete) {
            let wire = f.to_bytes();
            assert_eq!(Some(&wire[..]), want.bytes, "frame is not the bytes sent");
            assert_eq!(f.tag, want.tag);
            assert_eq!(HEADER_LEN + f.body.len(), want.len);
            decode_body(f);
        }
    }
    let expected = match ref_end {
        RefEnd::Clean => Ok(()),
        RefEnd::Partial { .. } => Err(io::ErrorKind::UnexpectedEof),
        RefEnd::Invalid(_) => Err(io::ErrorKind::InvalidData),
    };
    assert_eq!(
        end_unbuffered, expected,
        "read_frame ended unlike the reference"
    );
    assert_eq!(
        end_buffered, expected,
        "read_frame_buffered ended unlike the reference"
    );
}

// ---------------------------------------------------------------------------
// Message bodies, parsed as Helios's handlers parse them.

fn decode_body(f: &Frame) {
    let body = &f.body[..];
    match f.tag {
        tag::QUERY => {
            let sql = get_cstr(&mut &body[..]);
            if let Some(sql) = &sql {
                let mut out = BytesMut::new();
                messages::query(sql, &mut out);
            }
            check_cstr_agree(body);
        }
        tag::PARSE => {
            let mut b = body;
            let name = get_cstr(&mut b);
            let sql = get_cstr(&mut b);
            if name.is_some() && sql.is_some() && b.remaining() >= 2 {
                let n = b.get_i16().max(0) as usize;
                for _ in 0..n {
                    if b.remaining() < 4 {
                        break;
                    }
                    let _oid = b.get_u32();
                }
            }
            check_cstr_agree(body);
        }
        tag::BIND => {
            let mut b = body;
            if let (Some(_portal), Some(_stmt)) = (split_cstr(&mut b), split_cstr(&mut b)) {
                if let Some(t) = read_bind_tail(b) {
                    for i in 0..=t.params.len() {
                        let _ = t.param_format(i);
                    }
                    let values: usize = t.params.iter().flatten().map(|v| v.len()).sum();
                    assert!(values <= b.len());
                }
            }
            // The Buf-based reading the statistics use.
            let mut b = body;
            let _ = get_cstr(&mut b);
            let _ = get_cstr(&mut b);
            check_cstr_agree(body);
        }
        tag::DESCRIBE | tag::CLOSE => {
            if let Some((&kind, rest)) = body.split_first() {
                let _ = kind == b'P' || kind == b'S';
                let _ = get_cstr(&mut &rest[..]);
                check_cstr_agree(rest);
            }
        }
        tag::EXECUTE => {
            let mut b = body;
            if split_cstr(&mut b).is_some() && b.len() >= 4 {
                let _max_rows = b.get_i32();
            }
        }
        tag::COPY_FAIL => {
            let _ = get_cstr(&mut &body[..]);
        }
        tag::PASSWORD => {
            // PasswordMessage, or SASLInitialResponse as the client auth reads it.
            let mut b = BytesMut::from(body);
            if let Some(_mechanism) = get_cstr(&mut b) {
                if b.remaining() >= 4 {
                    let len = b.get_i32();
                    let _ = len >= 0 && len as usize == b.remaining();
                }
            }
        }
        _ => {}
    }
}

/// `get_cstr` and `split_cstr` agree on where the first string ends.
fn check_cstr_agree(body: &[u8]) {
    let mut a = body;
    let mut b = body;
    match (get_cstr(&mut a), split_cstr(&mut b)) {
        (Some(s), Some(raw)) => {
            assert_eq!(s, String::from_utf8_lossy(raw));
            assert_eq!(a, b);
            assert_eq!(b.len() + raw.len() + 1, body.len());
        }
        (None, None) => assert_eq!(a, body),
        (x, y) => panic!("get_cstr {x:?} but split_cstr {y:?}"),
    }
}
