//! Messages Helios writes itself: to clients (startup replies, authentication
//! requests) and to the upstream (its own login, reset and health queries).
//! Encoding is pgwire's where it has the message; these helpers fix the shapes.

use bytes::{BufMut, BytesMut};
use pgwire::messages::extendedquery::{Bind, Close, Describe, Execute, Flush, Parse, Sync};
use pgwire::messages::response::{ReadyForQuery, TransactionStatus as PgwireStatus};
use pgwire::messages::startup::{
    Authentication, BackendKeyData, NegotiateProtocolVersion, ParameterStatus, SecretKey,
};
use pgwire::messages::Message;

use crate::cancel::ClientKey;
use crate::startup::PROTOCOL_3_0;

/// The transaction status a ReadyForQuery reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionStatus {
    Idle,
    InTransaction,
    Failed,
}

impl TransactionStatus {
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            b'I' => Some(Self::Idle),
            b'T' => Some(Self::InTransaction),
            b'E' => Some(Self::Failed),
            _ => None,
        }
    }

    pub fn as_byte(self) -> u8 {
        match self {
            Self::Idle => b'I',
            Self::InTransaction => b'T',
            Self::Failed => b'E',
        }
    }
}

pub(crate) fn encode(m: impl Message, out: &mut BytesMut) {
    m.encode(out).expect("Helios's own messages are small");
}

pub fn authentication_ok(out: &mut BytesMut) {
    encode(Authentication::Ok, out);
}

pub fn authentication_cleartext(out: &mut BytesMut) {
    encode(Authentication::CleartextPassword, out);
}

pub fn authentication_md5(salt: [u8; 4], out: &mut BytesMut) {
    encode(Authentication::MD5Password(salt.to_vec()), out);
}

pub fn authentication_sasl(mechanisms: &[&str], out: &mut BytesMut) {
    encode(
        Authentication::SASL(mechanisms.iter().map(|m| m.to_string()).collect()),
        out,
    );
}

pub fn authentication_sasl_continue(data: &[u8], out: &mut BytesMut) {
    encode(
        Authentication::SASLContinue(bytes::Bytes::copy_from_slice(data)),
        out,
    );
}

pub fn authentication_sasl_final(data: &[u8], out: &mut BytesMut) {
    encode(
        Authentication::SASLFinal(bytes::Bytes::copy_from_slice(data)),
        out,
    );
}

pub fn parameter_status(name: &str, value: &str, out: &mut BytesMut) {
    encode(
        ParameterStatus::new(name.to_string(), value.to_string()),
        out,
    );
}

pub fn backend_key_data(key: ClientKey, out: &mut BytesMut) {
    encode(
        BackendKeyData::new(key.pid, SecretKey::I32(key.secret)),
        out,
    );
}

pub fn ready_for_query(status: TransactionStatus, out: &mut BytesMut) {
    let s = match status {
        TransactionStatus::Idle => PgwireStatus::Idle,
        TransactionStatus::InTransaction => PgwireStatus::Transaction,
        TransactionStatus::Failed => PgwireStatus::Error,
    };
    encode(ReadyForQuery::new(s), out);
}

/// Tell a client that asked for protocol 3.x (x > 0) or sent `_pq_.` options
/// that this server speaks 3.0 and none of those options, as PostgreSQL does.
pub fn negotiate_protocol_version(unsupported: &[String], out: &mut BytesMut) {
    encode(
        NegotiateProtocolVersion::new(PROTOCOL_3_0, unsupported.to_vec()),
        out,
    );
}

/// A client's password message (`p`), for Helios's own logins upstream.
pub fn password_message(password: &[u8], out: &mut BytesMut) {
    out.put_u8(b'p');
    out.put_i32(4 + password.len() as i32 + 1);
    out.put_slice(password);
    out.put_u8(0);
}

/// SASLInitialResponse (`p`), for Helios's own logins upstream.
pub fn sasl_initial_response(mechanism: &str, data: &[u8], out: &mut BytesMut) {
    out.put_u8(b'p');
    out.put_i32(4 + mechanism.len() as i32 + 1 + 4 + data.len() as i32);
    out.put_slice(mechanism.as_bytes());
    out.put_u8(0);
    out.put_i32(data.len() as i32);
    out.put_slice(data);
}

/// SASLResponse (`p`), for Helios's own logins upstream.
pub fn sasl_response(data: &[u8], out: &mut BytesMut) {
    out.put_u8(b'p');
    out.put_i32(4 + data.len() as i32);
    out.put_slice(data);
}

/// A simple Query message.
pub fn query(sql: &str, out: &mut BytesMut) {
    out.put_u8(b'Q');
    out.put_i32(4 + sql.len() as i32 + 1);
    out.put_slice(sql.as_bytes());
    out.put_u8(0);
}

/// Parse, Bind (no parameters; these result formats), Describe portal if
/// `describe`, Execute if `execute`, then Sync — on the unnamed statement
/// and portal: Helios's own one-statement exchange with the upstream.
pub fn extended_query(
    sql: &str,
    result_formats: &[i16],
    describe: bool,
    execute: bool,
    out: &mut BytesMut,
) {
    encode(Parse::new(None, sql.to_string(), vec![]), out);
    encode(
        Bind::new(None, None, vec![], vec![], result_formats.to_vec()),
        out,
    );
    if describe {
        encode(Describe::new(b'P', None), out);
    }
    if execute {
        encode(Execute::new(None, 0), out);
    }
    sync(out);
}

/// A statement of Helios's own that leaves the client's prepared statements
/// alone: Parse into a named statement (a simple Query, or Parse into the
/// unnamed one, would destroy the client's unnamed statement), Bind to the
/// unnamed portal (none is open outside a transaction), Execute, Close, Sync.
pub fn own_query(sql: &str, out: &mut BytesMut) {
    const NAME: &str = "__helios_own";
    encode(
        Parse::new(Some(NAME.to_string()), sql.to_string(), vec![]),
        out,
    );
    encode(
        Bind::new(None, Some(NAME.to_string()), vec![], vec![], vec![]),
        out,
    );
    encode(Execute::new(None, 0), out);
    encode(Close::new(b'S', Some(NAME.to_string())), out);
    sync(out);
}

/// Sync.
pub fn sync(out: &mut BytesMut) {
    encode(Sync::new(), out);
}

/// Flush.
pub fn flush(out: &mut BytesMut) {
    encode(Flush::new(), out);
}

/// Terminate.
pub fn terminate(out: &mut BytesMut) {
    out.put_u8(b'X');
    out.put_i32(4);
}
