//! Which prepared statements the upstream holds: a Parse relayed for the
//! client counts once its ParseComplete comes back.
//!
//! Drivers such as tokio-postgres and JDBC prepare with `Parse Describe
//! Sync` and execute with `Bind Execute Sync`: the second batch can be
//! answered from the cache only if the statement is known to exist
//! upstream, or the client would get rows where PostgreSQL would have said
//! the statement does not exist.
//!
//! ParseComplete messages come back in the order the Parses went; a Parse
//! that fails (or is skipped after an earlier error) gets none, and its
//! batch ends with the ReadyForQuery that answers its Sync. So the oldest
//! Parse still waiting is the one a ParseComplete answers, once those whose
//! batch has ended are dropped.

use std::collections::VecDeque;
use std::sync::Arc;

use helios_wire::frame::tag;

struct Pending {
    name: String,
    text: Arc<str>,
    /// The ReadyForQuery (counted by this tracker) that ends its batch.
    due: u64,
}

#[derive(Default)]
pub(super) struct ParseTracker {
    pending: VecDeque<Pending>,
    /// ReadyForQuery messages seen.
    readies: u64,
    /// The header of the message in progress, and how much of it is in.
    header: [u8; 5],
    have: usize,
    /// Body bytes of the current message still to skip.
    skip: usize,
}

impl ParseTracker {
    /// A Parse went upstream with `in_flight` requests ahead of it.
    pub fn sent(&mut self, name: &str, text: Arc<str>, in_flight: u32) {
        self.pending.push_back(Pending {
            name: name.to_string(),
            text,
            due: self.readies + u64::from(in_flight) + 1,
        });
    }

    /// A ReadyForQuery went by that [`ParseTracker::feed`] did not see (a
    /// handler read it): Parses it ended got their answers elsewhere.
    pub fn ready_elsewhere(&mut self) {
        self.ready();
    }

    fn ready(&mut self) {
        self.readies += 1;
        while self.pending.front().is_some_and(|p| p.due <= self.readies) {
            self.pending.pop_front();
        }
    }

    /// Bytes cleared for the client, in order; `confirmed` is called with
    /// each statement (name, text) whose ParseComplete is among them.
    pub fn feed(&mut self, mut bytes: &[u8], mut confirmed: impl FnMut(&str, &Arc<str>)) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
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
            match self.header[0] {
                tag::PARSE_COMPLETE => {
                    if let Some(p) = self.pending.pop_front() {
                        confirmed(&p.name, &p.text);
                    }
                }
                tag::READY_FOR_QUERY => self.ready(),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(t: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![t];
        v.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    fn run(t: &mut ParseTracker, wire: &[u8], chunk: usize) -> Vec<String> {
        let mut got = Vec::new();
        for piece in wire.chunks(chunk) {
            t.feed(piece, |name, _| got.push(name.to_string()));
        }
        got
    }

    #[test]
    fn confirms_parses_in_order_and_forgets_failed_ones() {
        for chunk in [1, 3, 1000] {
            let mut t = ParseTracker::default();
            // Batch 1: s1 fails, s2 is skipped. Batch 2: s3 succeeds.
            t.sent("s1", Arc::from("bad"), 0);
            t.sent("s2", Arc::from("skipped"), 0);
            t.sent("s3", Arc::from("good"), 1);
            let mut wire = msg(b'E', b"Sboom\0\0");
            wire.extend(msg(b'Z', b"I"));
            wire.extend(msg(b'1', b""));
            wire.extend(msg(b'T', &[0; 30]));
            wire.extend(msg(b'Z', b"I"));
            assert_eq!(run(&mut t, &wire, chunk), ["s3"], "chunk {chunk}");
            assert!(t.pending.is_empty());
        }
    }

    #[test]
    fn a_later_batch_waits_its_turn() {
        let mut t = ParseTracker::default();
        t.sent("a", Arc::from("x"), 0);
        t.sent("b", Arc::from("y"), 0);
        let mut wire = msg(b'1', b"");
        wire.extend(msg(b'1', b""));
        wire.extend(msg(b'Z', b"I"));
        assert_eq!(run(&mut t, &wire, 2), ["a", "b"]);
    }
}
