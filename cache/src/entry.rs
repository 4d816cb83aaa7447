//! What is kept: the upstream's own bytes.
//!
//! A [`Capture`] copies a relayed reply as it streams to the client, frame
//! by frame, up to the first ReadyForQuery. If the reply is exactly what a
//! hit can replay — an optional ParseComplete/BindComplete, an optional
//! RowDescription, DataRows, and CommandComplete — and small enough, it
//! becomes a [`CachedResult`]. Anything else (an error, a notice, a
//! notification, a parameter change, a suspended portal) is not kept: a hit
//! must send exactly the bytes the miss sent.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::generation::Snapshot;
use crate::store::StatementStats;

/// A stored result.
#[derive(Debug)]
pub struct CachedResult {
    bytes: Bytes,
    /// The RowDescription frame, if the filling request asked for one.
    description: Option<Range<usize>>,
    /// The DataRow frames.
    rows: Range<usize>,
    row_count: usize,
    /// The CommandComplete frame.
    complete: Range<usize>,
    pub(crate) snapshot: Snapshot,
    pub created: Instant,
    pub ttl: Duration,
    pub(crate) stats: Arc<StatementStats>,
}

impl CachedResult {
    pub fn description(&self) -> Option<&[u8]> {
        self.description.clone().map(|r| &self.bytes[r])
    }

    /// All DataRow frames.
    pub fn rows(&self) -> &[u8] {
        &self.bytes[self.rows.clone()]
    }

    pub fn row_count(&self) -> usize {
        self.row_count
    }

    pub fn command_complete(&self) -> &[u8] {
        &self.bytes[self.complete.clone()]
    }

    /// RowDescription (if kept), rows and CommandComplete: a simple Query's reply
    /// before its ReadyForQuery.
    pub fn reply(&self) -> &[u8] {
        let start = self
            .description
            .as_ref()
            .map_or(self.rows.start, |d| d.start);
        &self.bytes[start..self.complete.end]
    }

    /// The DataRow frames from row `from` on, at most `max` of them (0: all),
    /// and the index after the last one.
    pub fn rows_from(&self, from: usize, max: usize) -> (&[u8], usize) {
        let rows = self.rows();
        let mut at = 0;
        let mut i = 0;
        while i < from && at < rows.len() {
            at += frame_len(&rows[at..]);
            i += 1;
        }
        let start = at;
        while at < rows.len() && (max == 0 || i < from + max) {
            at += frame_len(&rows[at..]);
            i += 1;
        }
        (&rows[start..at], i)
    }

    /// Bytes held (what the memory bound counts).
    pub fn size(&self) -> usize {
        self.bytes.len() + std::mem::size_of::<Self>()
    }

    /// Whether no write has touched its tables since it was filled.
    pub fn is_current(&self) -> bool {
        self.snapshot.is_current()
    }

    /// The counters of its statement shape.
    pub fn stats(&self) -> &StatementStats {
        &self.stats
    }

    pub fn fingerprint(&self) -> u64 {
        self.stats.fingerprint
    }
}

fn frame_len(b: &[u8]) -> usize {
    1 + u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize
}

/// How a capture ended.
#[derive(Debug)]
pub enum CaptureEnd {
    /// The reply is complete and replayable.
    Complete(CapturedReply),
    /// The reply is not kept (why, for the log).
    NotKept(&'static str),
}

/// A complete, replayable reply.
#[derive(Debug)]
pub struct CapturedReply {
    bytes: Bytes,
    description: Option<Range<usize>>,
    rows: Range<usize>,
    row_count: usize,
    complete: Range<usize>,
}

impl CapturedReply {
    pub fn into_result(
        self,
        snapshot: Snapshot,
        ttl: Duration,
        stats: Arc<StatementStats>,
    ) -> CachedResult {
        CachedResult {
            bytes: self.bytes,
            description: self.description,
            rows: self.rows,
            row_count: self.row_count,
            complete: self.complete,
            snapshot,
            created: Instant::now(),
            ttl,
            stats,
        }
    }

    pub fn size(&self) -> usize {
        self.bytes.len()
    }
}

/// Collects a reply from the bytes the relay forwards.
#[derive(Debug)]
pub struct Capture {
    buf: BytesMut,
    /// Offset of the next frame not yet looked at.
    at: usize,
    limit: usize,
    description: Option<Range<usize>>,
    rows_start: Option<usize>,
    rows_end: usize,
    row_count: usize,
    complete: Option<Range<usize>>,
}

impl Capture {
    /// Keep at most `limit` bytes of reply.
    pub fn new(limit: usize) -> Self {
        Capture {
            buf: BytesMut::with_capacity(limit.min(8 * 1024)),
            at: 0,
            limit,
            description: None,
            rows_start: None,
            rows_end: 0,
            row_count: 0,
            complete: None,
        }
    }

    /// Take the next bytes of the reply. `Some` once it has ended (the rest
    /// of `bytes` belongs to later replies) or cannot be kept.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Option<CaptureEnd> {
        loop {
            // Complete the frame in progress (or its header) first.
            let need = self.needed();
            if need > 0 {
                if bytes.is_empty() {
                    return None;
                }
                let n = need.min(bytes.len());
                if self.buf.len() + n > self.limit {
                    return Some(CaptureEnd::NotKept("larger than cache.max_entry_size"));
                }
                self.buf.extend_from_slice(&bytes[..n]);
                bytes = &bytes[n..];
                continue;
            }
            // A whole frame at `at`.
            let start = self.at;
            let len = frame_len(&self.buf[start..]);
            let t = self.buf[start];
            self.at += len;
            match t {
                // ParseComplete, BindComplete: the extended protocol's own.
                b'1' | b'2' if self.description.is_none() && self.rows_start.is_none() => {}
                b'T' if self.description.is_none() && self.rows_start.is_none() => {
                    self.description = Some(start..start + len)
                }
                b'D' if self.complete.is_none() => {
                    self.rows_start.get_or_insert(start);
                    self.rows_end = start + len;
                    self.row_count += 1;
                }
                b'C' if self.complete.is_none() => self.complete = Some(start..start + len),
                b'Z' => return Some(self.finish()),
                b'E' => return Some(CaptureEnd::NotKept("the statement failed")),
                b'N' => return Some(CaptureEnd::NotKept("the reply has a notice")),
                b'A' => return Some(CaptureEnd::NotKept("a notification arrived")),
                b'S' => return Some(CaptureEnd::NotKept("a setting changed")),
                b's' => return Some(CaptureEnd::NotKept("the portal was suspended")),
                _ => return Some(CaptureEnd::NotKept("an unexpected message")),
            }
        }
    }

    /// Bytes still missing before the frame at `at` is whole (0: it is).
    fn needed(&self) -> usize {
        let have = self.buf.len() - self.at;
        if have < 5 {
            return 5 - have;
        }
        let len = frame_len(&self.buf[self.at..]);
        len.saturating_sub(have)
    }

    fn finish(&mut self) -> CaptureEnd {
        let Some(complete) = self.complete.clone() else {
            return CaptureEnd::NotKept("no CommandComplete");
        };
        // Every read answers `SELECT n`; anything else means the upstream
        // ran another statement than the one the key names (a prepared
        // statement replaced behind Helios's back, say).
        if !self.buf[complete.start + 5..].starts_with(b"SELECT ") {
            return CaptureEnd::NotKept("the statement was not a read");
        }
        let rows_start = self.rows_start.unwrap_or(complete.start);
        let rows_end = if self.rows_start.is_some() {
            self.rows_end
        } else {
            complete.start
        };
        // The buffer grew in steps (8 kB at first): keep only the reply's
        // bytes, or a small entry would hold a mostly empty allocation.
        let buf = std::mem::take(&mut self.buf);
        let bytes = if buf.capacity() > buf.len() + buf.len() / 8 {
            Bytes::copy_from_slice(&buf)
        } else {
            buf.freeze()
        };
        CaptureEnd::Complete(CapturedReply {
            bytes,
            description: self.description.clone(),
            rows: rows_start..rows_end,
            row_count: self.row_count,
            complete,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn frame(t: u8, body: &[u8]) -> Vec<u8> {
        let mut f = vec![t];
        f.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        f.extend_from_slice(body);
        f
    }

    pub fn reply(rows: usize) -> Vec<u8> {
        let mut r = frame(b'T', b"desc");
        for i in 0..rows {
            r.extend(frame(b'D', format!("row{i}").as_bytes()));
        }
        r.extend(frame(b'C', b"SELECT 1\0"));
        r
    }

    fn complete(end: Option<CaptureEnd>) -> CapturedReply {
        match end {
            Some(CaptureEnd::Complete(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn captures_a_reply_fed_in_any_pieces() {
        let mut wire = reply(3);
        wire.extend(frame(b'Z', b"I"));
        wire.extend(frame(b'T', b"next reply"));
        for chunk in [1, 2, 5, 7, 1000] {
            let mut c = Capture::new(1 << 20);
            let mut end = None;
            for piece in wire.chunks(chunk) {
                if let Some(e) = c.feed(piece) {
                    end = Some(e);
                    break;
                }
            }
            let r = complete(end);
            let result = r.into_result(
                crate::Generations::default().snapshot("db", []),
                Duration::from_secs(1),
                Arc::new(StatementStats::new(1, "q".into(), None)),
            );
            assert_eq!(result.reply(), &reply(3)[..], "chunk {chunk}");
            assert_eq!(result.row_count(), 3);
            assert_eq!(result.description(), Some(&frame(b'T', b"desc")[..]));
            let (two, next) = result.rows_from(1, 2);
            assert_eq!(
                two,
                &[frame(b'D', b"row1"), frame(b'D', b"row2")].concat()[..]
            );
            assert_eq!(next, 3);
            assert_eq!(result.rows_from(3, 5).0, b"");
            assert_eq!(result.command_complete(), &frame(b'C', b"SELECT 1\0")[..]);
        }
    }

    #[test]
    fn skips_the_extended_protocols_own_replies() {
        let mut wire = frame(b'1', b"");
        wire.extend(frame(b'2', b""));
        wire.extend(frame(b'D', b"r"));
        wire.extend(frame(b'C', b"SELECT 1\0"));
        wire.extend(frame(b'Z', b"I"));
        let r = complete(Capture::new(1024).feed(&wire));
        assert!(r.description.is_none());
        assert_eq!(r.row_count, 1);
    }

    #[test]
    fn does_not_keep_what_a_hit_could_not_replay() {
        for (t, why) in [
            (b'E', "failed"),
            (b'N', "notice"),
            (b'A', "notification"),
            (b'S', "setting"),
            (b's', "suspended"),
            (b'C', "not a read"),
        ] {
            let mut wire = frame(b'T', b"d");
            wire.extend(frame(t, b"INSERT 0 1\0"));
            wire.extend(frame(b'Z', b"I"));
            match Capture::new(1024).feed(&wire) {
                Some(CaptureEnd::NotKept(m)) => assert!(m.contains(why), "{m}"),
                other => panic!("{other:?}"),
            }
        }
        let mut big = reply(100);
        big.extend(frame(b'Z', b"I"));
        assert!(matches!(
            Capture::new(100).feed(&big),
            Some(CaptureEnd::NotKept(_))
        ));
    }
}
