//! Helios's own conversations on the session's upstream connection, for
//! natural language: reading the catalog, EXPLAIN, describing and running the
//! generated statement read-only.
//!
//! They happen while the client waits for its answer, with the connection
//! idle at a Sync boundary. Messages the upstream sends unasked
//! (notifications, notices, parameter changes) are kept for the client in
//! `to_client`, so nothing addressed to it is lost.

use std::io;
use std::time::Duration;

use bytes::BytesMut;
use helios_planner::catalog::{TextQuery, TextRows};
use helios_wire::frame::{get_cstr, read_frame_buffered, tag};
use helios_wire::{
    messages, ClientStream, ErrorFields, Frame, PgError, SqlState, TransactionStatus,
};
use tokio::io::AsyncWriteExt;

use super::client_side;
use crate::upstream::UpstreamConn;

/// The session's upstream connection, borrowed for Helios's own queries.
pub struct Side<'a> {
    pub conn: &'a mut UpstreamConn,
    /// Unsolicited messages for the client, written before its next reply.
    pub to_client: &'a mut BytesMut,
    /// The connection failed (kept for callers that only saw a message,
    /// such as the catalog loader).
    broken: Option<io::ErrorKind>,
}

/// What a statement Helios ran came to.
pub enum Outcome {
    Done,
    /// The upstream's error, already forwarded to the client where that was asked.
    Failed(ErrorFields),
}

impl<'a> Side<'a> {
    pub fn new(conn: &'a mut UpstreamConn, to_client: &'a mut BytesMut) -> Self {
        Side {
            conn,
            to_client,
            broken: None,
        }
    }

    /// `Err` if the connection failed during Helios's own queries.
    pub fn healthy(&self) -> io::Result<()> {
        match self.broken {
            Some(kind) => Err(io::Error::new(kind, "the upstream connection failed")),
            None => Ok(()),
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let sent = async {
            self.conn.stream.write_all(bytes).await?;
            self.conn.stream.flush().await
        }
        .await;
        if let Err(e) = &sent {
            self.broken = Some(e.kind());
        }
        sent
    }

    /// The next message of the reply, keeping unsolicited ones for the client.
    async fn next(&mut self) -> io::Result<Frame> {
        let next = self.next_inner().await;
        if let Err(e) = &next {
            self.broken = Some(e.kind());
        }
        next
    }

    async fn next_inner(&mut self) -> io::Result<Frame> {
        loop {
            // The upstream is trusted, as in the relay: no limit on its messages.
            let f = read_frame_buffered(&mut self.conn.stream, &mut self.conn.rbuf, usize::MAX)
                .await?
                .ok_or(io::ErrorKind::UnexpectedEof)?;
            match f.tag {
                tag::NOTIFICATION_RESPONSE | tag::NOTICE_RESPONSE => {
                    self.to_client.extend_from_slice(&f.to_bytes());
                }
                tag::PARAMETER_STATUS => {
                    let mut body = &f.body[..];
                    if let (Some(k), Some(v)) = (get_cstr(&mut body), get_cstr(&mut body)) {
                        self.conn.set_param(&k, &v);
                    }
                    self.to_client.extend_from_slice(&f.to_bytes());
                }
                tag::READY_FOR_QUERY => {
                    self.conn.status = f
                        .body
                        .first()
                        .and_then(|&b| TransactionStatus::from_byte(b))
                        .unwrap_or(TransactionStatus::Failed);
                    return Ok(f);
                }
                _ => return Ok(f),
            }
        }
    }

    /// A simple query whose rows come back as text; `Err` holds the server's message.
    pub async fn query(&mut self, sql: &str) -> io::Result<Result<TextRows, ErrorFields>> {
        let mut out = BytesMut::new();
        messages::query(sql, &mut out);
        self.send(&out).await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let f = self.next().await?;
            match f.tag {
                tag::DATA_ROW => rows.push(text_row(&f.body)),
                tag::ERROR_RESPONSE => error = Some(ErrorFields::parse(&f.body)),
                tag::READY_FOR_QUERY => break,
                _ => {}
            }
        }
        Ok(match error {
            Some(e) => Err(e),
            None => Ok(rows),
        })
    }

    /// Like [`Side::query`] for one statement, without touching the
    /// client's unnamed prepared statement (see [`messages::own_query`]).
    pub async fn own_query(&mut self, sql: &str) -> io::Result<Result<TextRows, ErrorFields>> {
        let mut out = BytesMut::new();
        messages::own_query(sql, &mut out);
        self.send(&out).await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let f = self.next().await?;
            match f.tag {
                tag::DATA_ROW => rows.push(text_row(&f.body)),
                tag::ERROR_RESPONSE => error = Some(ErrorFields::parse(&f.body)),
                tag::READY_FOR_QUERY => break,
                _ => {}
            }
        }
        Ok(match error {
            Some(e) => Err(e),
            None => Ok(rows),
        })
    }

    /// Send these bytes and read the reply up to ReadyForQuery: the frames
    /// before it, in order (unsolicited ones stay in `to_client`).
    pub async fn exchange(&mut self, bytes: &[u8]) -> io::Result<Vec<Frame>> {
        self.send(bytes).await?;
        let mut frames = Vec::new();
        loop {
            let f = self.next().await?;
            if f.tag == tag::READY_FOR_QUERY {
                return Ok(frames);
            }
            frames.push(f);
        }
    }

    /// Send Sync for messages the client sent without one: their replies,
    /// up to ReadyForQuery (not included), go to `out` for the client.
    /// `true`: one was an error (the client's later messages up to its own
    /// Sync are to be ignored, as PostgreSQL would).
    pub async fn sync_owed(&mut self, out: &mut BytesMut) -> io::Result<bool> {
        let mut sync = BytesMut::new();
        messages::sync(&mut sync);
        self.send(&sync).await?;
        self.replies_until_ready(out).await
    }

    async fn replies_until_ready(&mut self, out: &mut BytesMut) -> io::Result<bool> {
        let mut error = false;
        loop {
            let f = self.next().await?;
            match f.tag {
                tag::READY_FOR_QUERY => return Ok(error),
                t => {
                    error |= t == tag::ERROR_RESPONSE;
                    out.extend_from_slice(self.to_client);
                    self.to_client.clear();
                    out.extend_from_slice(&f.to_bytes());
                }
            }
        }
    }

    /// Open the transaction every statement from the model runs in:
    /// read-only, with a statement timeout, and with standard-conforming
    /// strings, so PostgreSQL reads string literals exactly as Helios's
    /// parser did when it checked the statement (with them off, `'\\'` ends
    /// no string and text Helios saw as a literal would be code).
    /// `Err`: the server's error (the transaction is ended).
    pub async fn begin_guarded(
        &mut self,
        timeout: Duration,
    ) -> io::Result<Result<(), ErrorFields>> {
        if self.conn.status != TransactionStatus::Idle {
            // Never inside the client's transaction: BEGIN would only warn,
            // and the ROLLBACK after would end the client's work.
            return Ok(Err(ErrorFields {
                severity: "ERROR".into(),
                code: "25001".into(),
                message: "natural-language queries cannot run inside a transaction block".into(),
                detail: None,
            }));
        }
        let begin = format!(
            "BEGIN READ ONLY; SET LOCAL statement_timeout = {}; SET LOCAL standard_conforming_strings = on",
            timeout.as_millis().max(1)
        );
        match self.query(&begin).await? {
            Ok(_) if self.conn.status == TransactionStatus::InTransaction => Ok(Ok(())),
            Ok(_) => Err(self.lost("BEGIN did not open a transaction")),
            Err(e) => {
                self.rollback().await?;
                Ok(Err(e))
            }
        }
    }

    /// End Helios's transaction, if one is open. Always a rollback: a
    /// read-only transaction has nothing to commit, and a rollback also
    /// undoes any setting a statement changed (`set_config` in a function
    /// body). A connection that does not come back idle is not used again.
    pub async fn rollback(&mut self) -> io::Result<()> {
        if self.conn.status == TransactionStatus::Idle {
            return Ok(());
        }
        let _ = self.query("ROLLBACK").await?;
        if self.conn.status != TransactionStatus::Idle {
            return Err(self.lost("ROLLBACK did not end Helios's transaction"));
        }
        Ok(())
    }

    /// The connection is in a state Helios cannot vouch for: treat it as broken.
    fn lost(&mut self, why: &str) -> io::Error {
        self.broken = Some(io::ErrorKind::InvalidData);
        io::Error::new(io::ErrorKind::InvalidData, why.to_string())
    }

    /// EXPLAIN the statement (in a guarded transaction, through Parse,
    /// which takes exactly one statement): whether the upstream can plan it.
    pub async fn explain(
        &mut self,
        sql: &str,
        timeout: Duration,
    ) -> io::Result<Result<(), ErrorFields>> {
        if let Err(e) = self.begin_guarded(timeout).await? {
            return Ok(Err(e));
        }
        let mut out = BytesMut::new();
        messages::extended_query(&format!("EXPLAIN {sql}"), &[], false, true, &mut out);
        self.send(&out).await?;
        let error = self.error_until_ready().await?;
        self.rollback().await?;
        Ok(error.map_or(Ok(()), Err))
    }

    /// The RowDescription the statement's result would have, in these formats
    /// (`None`: it returns no rows).
    pub async fn describe(
        &mut self,
        sql: &str,
        result_formats: &[i16],
        timeout: Duration,
    ) -> io::Result<Result<Option<Frame>, ErrorFields>> {
        if let Err(e) = self.begin_guarded(timeout).await? {
            return Ok(Err(e));
        }
        let mut out = BytesMut::new();
        messages::extended_query(sql, result_formats, true, false, &mut out);
        self.send(&out).await?;
        let mut description = None;
        let mut error = None;
        loop {
            let f = self.next().await?;
            match f.tag {
                b'T' => description = Some(f),
                tag::ERROR_RESPONSE => error = Some(ErrorFields::parse(&f.body)),
                tag::READY_FOR_QUERY => break,
                _ => {}
            }
        }
        self.rollback().await?;
        Ok(match error {
            Some(e) => Err(e),
            None => Ok(description),
        })
    }

    /// The first error of a reply, read up to ReadyForQuery.
    async fn error_until_ready(&mut self) -> io::Result<Option<ErrorFields>> {
        let mut error = None;
        loop {
            let f = self.next().await?;
            match f.tag {
                tag::ERROR_RESPONSE if error.is_none() => error = Some(ErrorFields::parse(&f.body)),
                tag::READY_FOR_QUERY => return Ok(error),
                _ => {}
            }
        }
    }

    /// Run `sql` in a guarded transaction, streaming its RowDescription (if
    /// `describe`), rows and CommandComplete — or its error — to the client.
    /// The transaction is always ended.
    pub async fn run_read_only(
        &mut self,
        client: &mut ClientStream,
        sql: &str,
        result_formats: &[i16],
        describe: bool,
        timeout: Duration,
    ) -> io::Result<Outcome> {
        if let Err(e) = self.begin_guarded(timeout).await? {
            // The client hears why (a cancel that raced with BEGIN, say).
            let mut out = BytesMut::new();
            out.extend_from_slice(self.to_client);
            self.to_client.clear();
            let mut pg = PgError::error(SqlState::new(e.code.clone()), e.message.clone());
            pg.detail = e.detail.clone();
            pg.encode(&mut out);
            client.write_all(&out).await.map_err(client_side)?;
            return Ok(Outcome::Failed(e));
        }
        let mut out = BytesMut::new();
        messages::extended_query(sql, result_formats, describe, true, &mut out);
        self.send(&out).await?;
        let mut batch = BytesMut::with_capacity(16 * 1024);
        let mut failed = None;
        loop {
            let f = self.next().await?;
            match f.tag {
                // ParseComplete, BindComplete, NoData: Helios's own protocol, not the client's.
                b'1' | b'2' | b'n' => {}
                tag::READY_FOR_QUERY => break,
                t => {
                    if t == tag::ERROR_RESPONSE {
                        failed = Some(ErrorFields::parse(&f.body));
                    }
                    if !self.to_client.is_empty() {
                        batch.extend_from_slice(self.to_client);
                        self.to_client.clear();
                    }
                    batch.extend_from_slice(&f.to_bytes());
                    if batch.len() >= 64 * 1024 {
                        client.write_all(&batch).await.map_err(client_side)?;
                        batch.clear();
                    }
                }
            }
        }
        client.write_all(&batch).await.map_err(client_side)?;
        self.rollback().await?;
        Ok(match failed {
            Some(e) => Outcome::Failed(e),
            None => Outcome::Done,
        })
    }
}

/// A DataRow's values as text (the simple protocol returns text).
fn text_row(mut body: &[u8]) -> Vec<Option<String>> {
    use bytes::Buf;
    let n = body.get_i16().max(0) as usize;
    let mut row = Vec::with_capacity(n);
    for _ in 0..n {
        let len = body.get_i32();
        if len < 0 {
            row.push(None);
        } else {
            let len = len as usize;
            row.push(Some(String::from_utf8_lossy(&body[..len]).into_owned()));
            body.advance(len);
        }
    }
    row
}

impl TextQuery for Side<'_> {
    async fn query_text(&mut self, sql: &str) -> Result<TextRows, String> {
        match self.query(sql).await {
            Ok(Ok(rows)) => Ok(rows),
            Ok(Err(e)) => Err(e.message),
            Err(e) => Err(e.to_string()),
        }
    }
}
