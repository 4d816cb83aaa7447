//! Framing of the PostgreSQL v3 message stream, without decoding it.
//!
//! After startup every message is `tag: u8, len: i32 (includes itself), body`.
//! The relay never needs most bodies: it only has to know where each message
//! starts and ends, and to look inside a handful of them (ReadyForQuery,
//! ParameterStatus, ...). [`FrameScanner`] walks a byte buffer, reports each
//! header, hands whole frames of the tags it was asked to inspect to the
//! caller, and lets every other byte pass through as soon as it has arrived —
//! so a 500 MB `DataRow` streams through a 64 KB buffer.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes in a message header: tag + length.
pub const HEADER_LEN: usize = 5;

/// Message tags (the first byte of every message after startup).
pub mod tag {
    // Frontend (client -> server).
    pub const BIND: u8 = b'B';
    pub const CLOSE: u8 = b'C';
    pub const COPY_DATA: u8 = b'd';
    pub const COPY_DONE: u8 = b'c';
    pub const COPY_FAIL: u8 = b'f';
    pub const DESCRIBE: u8 = b'D';
    pub const EXECUTE: u8 = b'E';
    pub const FLUSH: u8 = b'H';
    pub const FUNCTION_CALL: u8 = b'F';
    pub const PARSE: u8 = b'P';
    pub const PASSWORD: u8 = b'p';
    pub const QUERY: u8 = b'Q';
    pub const SYNC: u8 = b'S';
    pub const TERMINATE: u8 = b'X';

    // Backend (server -> client).
    pub const AUTHENTICATION: u8 = b'R';
    pub const BACKEND_KEY_DATA: u8 = b'K';
    pub const COMMAND_COMPLETE: u8 = b'C';
    pub const COPY_IN_RESPONSE: u8 = b'G';
    pub const COPY_OUT_RESPONSE: u8 = b'H';
    pub const DATA_ROW: u8 = b'D';
    pub const ERROR_RESPONSE: u8 = b'E';
    pub const NEGOTIATE_PROTOCOL_VERSION: u8 = b'v';
    pub const NOTICE_RESPONSE: u8 = b'N';
    pub const NOTIFICATION_RESPONSE: u8 = b'A';
    pub const PARAMETER_STATUS: u8 = b'S';
    pub const PARSE_COMPLETE: u8 = b'1';
    pub const READY_FOR_QUERY: u8 = b'Z';
}

/// Whether `t` is a message a client may send once startup is over.
pub fn is_frontend_tag(t: u8) -> bool {
    matches!(
        t,
        b'B' | b'C' | b'D' | b'E' | b'F' | b'H' | b'P' | b'Q' | b'S' | b'X' | b'c' | b'd' | b'f'
    )
}

/// A set of message tags, as a 256-bit table (one lookup on the hot path).
#[derive(Clone, Copy, Default, Debug)]
pub struct TagSet([u64; 4]);

impl TagSet {
    pub const fn empty() -> Self {
        TagSet([0; 4])
    }

    pub const fn with(mut self, t: u8) -> Self {
        self.0[(t >> 6) as usize] |= 1 << (t & 63);
        self
    }

    #[inline]
    pub fn contains(&self, t: u8) -> bool {
        self.0[(t >> 6) as usize] & (1 << (t & 63)) != 0
    }
}

/// A problem with the framing itself: the stream cannot be followed further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("invalid message length {len} for message type \"{}\"", *tag as char)]
    BadLength { tag: u8, len: i32 },
    #[error("message of type \"{}\" is {len} bytes, over the limit of {limit} bytes", *tag as char)]
    TooLarge { tag: u8, len: usize, limit: usize },
    #[error("invalid frontend message type {tag}")]
    BadTag { tag: u8 },
}

/// What the scanner wants the caller to do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    /// Everything that could be scanned was; read more bytes to go on.
    NeedMore,
    /// A whole frame of an intercepted tag starts at [`FrameScanner::ready`]
    /// and is `len` bytes long (header included). The scanner is parked on it:
    /// the caller must consume it (see [`FrameScanner::consume_intercepted`])
    /// or let it through ([`FrameScanner::pass_intercepted`]) before scanning on.
    Intercept { tag: u8, len: usize },
}

/// Callbacks the scanner makes while walking the stream.
pub trait FrameVisitor {
    /// Every frame header, as soon as it is seen (the body may not have arrived).
    fn header(&mut self, tag: u8, len: usize) -> Result<(), FrameError> {
        let _ = (tag, len);
        Ok(())
    }
    /// The whole frame (header included) of each tag in the `inspect` set,
    /// before it is let through; `offset` is where it starts in the buffer
    /// (so a caller can patch it in place before forwarding).
    fn frame(&mut self, offset: usize, frame: &[u8]) {
        let _ = (offset, frame);
    }
}

/// Incremental frame boundary tracker for one direction of a connection.
///
/// The buffer it scans belongs to the caller. `ready` counts the bytes at the
/// front of that buffer that are whole-or-streaming frames cleared to be
/// forwarded; when the caller has written `n` of them it calls
/// [`FrameScanner::advance`] with `n` (after `buf.advance(n)`).
#[derive(Debug)]
pub struct FrameScanner {
    /// Bytes of the current frame's body still to come (pass-through mode).
    streaming: usize,
    /// Offset in the caller's buffer up to which bytes are cleared to forward.
    ready: usize,
    /// Frames larger than this are refused.
    max_len: usize,
    /// Tags whose whole frame is shown to [`FrameVisitor::frame`].
    inspect: TagSet,
    /// Tags the scanner stops on, so that the caller decides.
    intercept: TagSet,
    /// Whether only frontend tags are acceptable.
    frontend: bool,
    parked: bool,
    /// Intercepted tags in frames larger than this stream through instead.
    intercept_limit: usize,
}

impl FrameScanner {
    /// A scanner for messages from a client (tags are checked).
    pub fn frontend(max_len: usize, inspect: TagSet, intercept: TagSet) -> Self {
        Self::new(max_len, inspect, intercept, true)
    }

    /// A scanner for messages from a server.
    pub fn backend(inspect: TagSet, intercept: TagSet) -> Self {
        // The server is trusted to frame correctly; PostgreSQL caps messages at 1 GB.
        Self::new(i32::MAX as usize, inspect, intercept, false)
    }

    fn new(max_len: usize, inspect: TagSet, intercept: TagSet, frontend: bool) -> Self {
        FrameScanner {
            streaming: 0,
            ready: 0,
            max_len,
            inspect,
            intercept,
            frontend,
            parked: false,
            intercept_limit: usize::MAX,
        }
    }

    /// Intercept only frames up to `limit` bytes; larger ones stream through
    /// (reported to the visitor like any other frame).
    pub fn with_intercept_limit(mut self, limit: usize) -> Self {
        self.intercept_limit = limit;
        self
    }

    /// Bytes at the front of the buffer cleared to be forwarded.
    #[inline]
    pub fn ready(&self) -> usize {
        self.ready
    }

    /// The caller removed `n` forwarded bytes from the front of its buffer.
    #[inline]
    pub fn advance(&mut self, n: usize) {
        debug_assert!(n <= self.ready);
        self.ready -= n;
    }

    /// Whether part of a frame has been cleared to forward and the rest has
    /// not: the reader is in the middle of a message.
    pub fn mid_frame(&self) -> bool {
        self.streaming > 0
    }

    /// Forget the bytes after `ready` (the caller drops them from its
    /// buffer): the sender is gone, and they were never forwarded.
    pub fn drop_unforwarded(&mut self) {
        debug_assert_eq!(self.streaming, 0);
        self.parked = false;
    }

    /// Whether the scanner is stopped on an intercepted frame.
    pub fn is_parked(&self) -> bool {
        self.parked
    }

    /// Whether the scanner is between frames (no partial frame pending).
    pub fn at_boundary(&self, buffered: usize) -> bool {
        self.streaming == 0 && buffered == self.ready && !self.parked
    }

    /// How many more bytes are needed before scanning can progress, when the
    /// buffer holds an incomplete inspected frame. Zero when none is pending.
    pub fn pending_frame_len(&self, buf: &[u8]) -> usize {
        let rest = &buf[self.ready..];
        if self.streaming > 0 || rest.len() < HEADER_LEN {
            return 0;
        }
        1 + frame_len_field(rest) as usize
    }

    /// Walk `buf` from `ready` on, as far as it goes.
    pub fn scan<V: FrameVisitor>(&mut self, buf: &[u8], v: &mut V) -> Result<Scan, FrameError> {
        if self.parked {
            return Ok(self.parked_scan(buf));
        }
        loop {
            if self.streaming > 0 {
                let n = self.streaming.min(buf.len() - self.ready);
                self.streaming -= n;
                self.ready += n;
                if self.streaming > 0 {
                    return Ok(Scan::NeedMore);
                }
            }
            let rest = &buf[self.ready..];
            if rest.len() < HEADER_LEN {
                return Ok(Scan::NeedMore);
            }
            let t = rest[0];
            if self.frontend && !is_frontend_tag(t) {
                return Err(FrameError::BadTag { tag: t });
            }
            let len_field = frame_len_field(rest);
            if len_field < 4 {
                return Err(FrameError::BadLength {
                    tag: t,
                    len: len_field,
                });
            }
            let total = 1 + len_field as usize;
            if total > self.max_len {
                return Err(FrameError::TooLarge {
                    tag: t,
                    len: total,
                    limit: self.max_len,
                });
            }
            // Frames too big to hold whole are never intercepted: they stream.
            let intercepted = self.intercept.contains(t) && total <= self.intercept_limit;
            let whole = self.inspect.contains(t) || intercepted;
            if whole && rest.len() < total {
                return Ok(Scan::NeedMore);
            }
            if intercepted {
                // Not reported to the visitor: the caller decides whether the
                // frame goes on (`pass_intercepted`) or is answered by Helios.
                self.parked = true;
                return Ok(Scan::Intercept { tag: t, len: total });
            }
            v.header(t, total)?;
            if whole {
                v.frame(self.ready, &rest[..total]);
                self.ready += total;
            } else {
                // Let the header through now and stream the body as it comes.
                self.ready += HEADER_LEN;
                self.streaming = total - HEADER_LEN;
            }
        }
    }

    fn parked_scan(&self, buf: &[u8]) -> Scan {
        let rest = &buf[self.ready..];
        Scan::Intercept {
            tag: rest[0],
            len: 1 + frame_len_field(rest) as usize,
        }
    }

    /// The intercepted frame was removed from the buffer by the caller
    /// (who must first have forwarded everything before it).
    pub fn consume_intercepted(&mut self) {
        debug_assert!(self.parked && self.ready == 0);
        self.parked = false;
    }

    /// The intercepted frame may go through unchanged. (It was not reported
    /// to the visitor; the caller does that if it needs to.)
    pub fn pass_intercepted(&mut self, len: usize) {
        debug_assert!(self.parked);
        self.parked = false;
        self.ready += len;
    }
}

#[inline]
fn frame_len_field(header: &[u8]) -> i32 {
    i32::from_be_bytes([header[1], header[2], header[3], header[4]])
}

/// How far ahead of the bytes received so far [`read_frame`] and
/// [`read_frame_buffered`] reserve room for a message's body. Past this the
/// buffer grows as bytes arrive (doubling, so a large message costs
/// amortized linear copying), never by the length a header claims.
const MAX_RESERVE_AHEAD: usize = 64 * 1024;

/// A whole message, for the places (startup, authentication, Helios's own
/// conversations with the upstream) where messages are read one at a time.
#[derive(Debug, Clone)]
pub struct Frame {
    pub tag: u8,
    /// The body, without tag and length.
    pub body: BytesMut,
}

impl Frame {
    /// The frame as it appears on the wire.
    pub fn to_bytes(&self) -> BytesMut {
        let mut out = BytesMut::with_capacity(HEADER_LEN + self.body.len());
        out.extend_from_slice(&[self.tag]);
        out.extend_from_slice(&((self.body.len() + 4) as i32).to_be_bytes());
        out.extend_from_slice(&self.body);
        out
    }
}

/// Read one whole tagged message, refusing any longer than `max_len`.
/// `Ok(None)` on a clean end of stream before the first byte.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max_len: usize,
) -> std::io::Result<Option<Frame>> {
    let mut header = [0u8; HEADER_LEN];
    match r.read_exact(&mut header[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    r.read_exact(&mut header[1..]).await?;
    let len = frame_len_field(&header);
    if len < 4 || 1 + len as usize > max_len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            FrameError::BadLength {
                tag: header[0],
                len,
            },
        ));
    }
    // Grow the body with the bytes that arrive: the length is the peer's
    // word until then, and a 5-byte header claiming `max_len` bytes must not
    // allocate them up front (found by fuzz/: `regressions/frontend/`).
    let want = len as usize - 4;
    let mut body = BytesMut::with_capacity(want.min(MAX_RESERVE_AHEAD));
    while body.len() < want {
        body.reserve((want - body.len()).min(MAX_RESERVE_AHEAD));
        let left = (want - body.len()) as u64;
        if (&mut *r).take(left).read_buf(&mut body).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(Some(Frame {
        tag: header[0],
        body,
    }))
}

/// Read one whole message through `buf`, Helios's read buffer for this
/// stream: bytes that arrive past the message stay in `buf` for the next call
/// (or for the relay), so nothing is lost and a burst of small messages costs
/// one read. `Ok(None)` on a clean end of stream at a message boundary.
pub async fn read_frame_buffered<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    max_len: usize,
) -> std::io::Result<Option<Frame>> {
    loop {
        if buf.len() >= HEADER_LEN {
            let len = frame_len_field(buf);
            if len < 4 || 1 + len as usize > max_len {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    FrameError::BadLength { tag: buf[0], len },
                ));
            }
            let total = 1 + len as usize;
            if buf.len() >= total {
                let mut frame = buf.split_to(total);
                let tag = frame[0];
                frame.advance(HEADER_LEN);
                return Ok(Some(Frame { tag, body: frame }));
            }
            // Not `total - buf.len()`: as in `read_frame`, memory follows the
            // bytes that arrive, not the length the peer claims (callers pass
            // `server.max_message_size`, 1 GiB by default).
            buf.reserve((total - buf.len()).min(MAX_RESERVE_AHEAD));
        } else {
            buf.reserve(4096);
        }
        if r.read_buf(buf).await? == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(std::io::ErrorKind::UnexpectedEof.into())
            };
        }
    }
}

/// Read a NUL-terminated string from the front of `buf`.
pub fn get_cstr(buf: &mut impl Buf) -> Option<String> {
    let chunk = buf.chunk();
    let end = chunk.iter().position(|&b| b == 0)?;
    let s = String::from_utf8_lossy(&chunk[..end]).into_owned();
    buf.advance(end + 1);
    Some(s)
}

/// Split a NUL-terminated string off the front of `buf`, without copying.
pub fn split_cstr<'a>(buf: &mut &'a [u8]) -> Option<&'a [u8]> {
    let end = buf.iter().position(|&b| b == 0)?;
    let (s, rest) = buf.split_at(end);
    *buf = &rest[1..];
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_c_strings_in_place() {
        let mut b: &[u8] = b"portal\0stmt\0rest";
        assert_eq!(split_cstr(&mut b), Some(&b"portal"[..]));
        assert_eq!(split_cstr(&mut b), Some(&b"stmt"[..]));
        assert_eq!(split_cstr(&mut b), None);
        assert_eq!(b, b"rest");
    }

    #[derive(Default)]
    struct Seen {
        headers: Vec<(u8, usize)>,
        frames: Vec<Vec<u8>>,
    }
    impl FrameVisitor for Seen {
        fn header(&mut self, tag: u8, len: usize) -> Result<(), FrameError> {
            self.headers.push((tag, len));
            Ok(())
        }
        fn frame(&mut self, _offset: usize, frame: &[u8]) {
            self.frames.push(frame.to_vec());
        }
    }

    fn msg(t: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![t];
        v.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn streams_bodies_and_inspects_whole_frames() {
        let z = TagSet::empty().with(b'Z');
        let mut s = FrameScanner::backend(z, TagSet::empty());
        let mut stream = msg(b'D', &[7; 100]);
        stream.extend(msg(b'Z', b"I"));
        let mut seen = Seen::default();
        // Feed it three bytes at a time: nothing may be lost or duplicated.
        let mut buf = Vec::new();
        let mut forwarded = Vec::new();
        for chunk in stream.chunks(3) {
            buf.extend_from_slice(chunk);
            assert_eq!(s.scan(&buf, &mut seen).unwrap(), Scan::NeedMore);
            let n = s.ready();
            forwarded.extend(buf.drain(..n));
            s.advance(n);
        }
        assert_eq!(forwarded, stream);
        assert_eq!(seen.headers, vec![(b'D', 105), (b'Z', 6)]);
        assert_eq!(seen.frames, vec![msg(b'Z', b"I")]);
    }

    #[test]
    fn refuses_bad_frontend_input_before_forwarding_it() {
        let mut s = FrameScanner::frontend(100, TagSet::empty(), TagSet::empty());
        let mut buf = msg(b'Q', b"select 1\0");
        buf.extend(msg(b'Q', &[b'x'; 200]));
        assert!(matches!(
            s.scan(&buf, &mut Seen::default()),
            Err(FrameError::TooLarge { tag: b'Q', .. })
        ));
        // The first, valid, message is cleared; not one byte of the second.
        assert_eq!(s.ready(), 14);

        let mut s = FrameScanner::frontend(100, TagSet::empty(), TagSet::empty());
        assert_eq!(
            s.scan(&msg(b'!', b""), &mut Seen::default()),
            Err(FrameError::BadTag { tag: b'!' })
        );
        let mut s = FrameScanner::frontend(100, TagSet::empty(), TagSet::empty());
        assert!(matches!(
            s.scan(&[b'Q', 0, 0, 0, 2], &mut Seen::default()),
            Err(FrameError::BadLength { len: 2, .. })
        ));
    }

    #[test]
    fn parks_on_intercepted_frames() {
        let x = TagSet::empty().with(b'X');
        let mut s = FrameScanner::frontend(1 << 20, TagSet::empty(), x);
        let mut buf = msg(b'S', b"");
        buf.extend(msg(b'X', b""));
        let r = s.scan(&buf, &mut Seen::default()).unwrap();
        assert_eq!(r, Scan::Intercept { tag: b'X', len: 5 });
        assert_eq!(s.ready(), 5);
        // Scanning again stays on the same frame.
        assert_eq!(s.scan(&buf, &mut Seen::default()).unwrap(), r);
        buf.drain(..5);
        s.advance(5);
        buf.drain(..5);
        s.consume_intercepted();
        assert!(s.at_boundary(buf.len()));
    }
}
