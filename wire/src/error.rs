//! PostgreSQL errors and notices, as Helios builds them and as it reads them
//! from the upstream.

use std::borrow::Cow;
use std::fmt;

use bytes::{Buf, BytesMut};
use pgwire::messages::response::{ErrorResponse, NoticeResponse};
use pgwire::messages::Message;

use crate::frame::get_cstr;

/// A SQLSTATE code (five characters).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SqlState(Cow<'static, str>);

impl SqlState {
    pub const SUCCESSFUL_COMPLETION: SqlState = SqlState::from_static("00000");
    pub const CONNECTION_EXCEPTION: SqlState = SqlState::from_static("08000");
    pub const CONNECTION_DOES_NOT_EXIST: SqlState = SqlState::from_static("08003");
    pub const SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION: SqlState =
        SqlState::from_static("08001");
    pub const CONNECTION_FAILURE: SqlState = SqlState::from_static("08006");
    pub const PROTOCOL_VIOLATION: SqlState = SqlState::from_static("08P01");
    pub const FEATURE_NOT_SUPPORTED: SqlState = SqlState::from_static("0A000");
    pub const CHARACTER_NOT_IN_REPERTOIRE: SqlState = SqlState::from_static("22021");
    pub const INVALID_AUTHORIZATION_SPECIFICATION: SqlState = SqlState::from_static("28000");
    pub const INVALID_PASSWORD: SqlState = SqlState::from_static("28P01");
    pub const SYNTAX_ERROR: SqlState = SqlState::from_static("42601");
    pub const INSUFFICIENT_PRIVILEGE: SqlState = SqlState::from_static("42501");
    pub const UNDEFINED_OBJECT: SqlState = SqlState::from_static("42704");
    pub const TOO_MANY_CONNECTIONS: SqlState = SqlState::from_static("53300");
    pub const CONFIGURATION_LIMIT_EXCEEDED: SqlState = SqlState::from_static("53400");
    pub const QUERY_CANCELED: SqlState = SqlState::from_static("57014");
    pub const ADMIN_SHUTDOWN: SqlState = SqlState::from_static("57P01");
    pub const CANNOT_CONNECT_NOW: SqlState = SqlState::from_static("57P03");
    pub const CONFIG_FILE_ERROR: SqlState = SqlState::from_static("F0000");
    pub const INTERNAL_ERROR: SqlState = SqlState::from_static("XX000");

    pub const fn from_static(code: &'static str) -> Self {
        SqlState(Cow::Borrowed(code))
    }

    pub fn new(code: impl Into<String>) -> Self {
        SqlState(Cow::Owned(code.into()))
    }

    pub fn code(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SqlState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for SqlState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Error severities PostgreSQL uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Ends the statement; the session goes on.
    Error,
    /// Ends the session.
    Fatal,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
        }
    }
}

/// An error Helios reports to a client as a PostgreSQL ErrorResponse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgError {
    pub severity: Severity,
    pub code: SqlState,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl PgError {
    pub fn new(severity: Severity, code: SqlState, message: impl Into<String>) -> Self {
        PgError {
            severity,
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    pub fn fatal(code: SqlState, message: impl Into<String>) -> Self {
        Self::new(Severity::Fatal, code, message)
    }

    pub fn error(code: SqlState, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, code, message)
    }

    /// A broken client socket. Nobody will read the report, but the session
    /// code handles every failure the same way.
    pub fn io(e: std::io::Error) -> Self {
        Self::fatal(
            SqlState::CONNECTION_FAILURE,
            format!("client connection: {e}"),
        )
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The ErrorResponse message.
    pub fn encode(&self, out: &mut BytesMut) {
        let mut fields = vec![
            (b'S', self.severity.as_str().to_string()),
            (b'V', self.severity.as_str().to_string()),
            (b'C', self.code.code().to_string()),
            (b'M', self.message.clone()),
        ];
        if let Some(d) = &self.detail {
            fields.push((b'D', d.clone()));
        }
        if let Some(h) = &self.hint {
            fields.push((b'H', h.clone()));
        }
        ErrorResponse::new(fields)
            .encode(out)
            .expect("an error message always fits");
    }

    pub fn to_bytes(&self) -> BytesMut {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out
    }
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.severity.as_str(),
            self.code,
            self.message
        )?;
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

impl std::error::Error for PgError {}

/// A NoticeResponse with severity WARNING/NOTICE/... and a message.
pub fn notice(severity: &str, code: SqlState, message: &str, out: &mut BytesMut) {
    NoticeResponse::new(vec![
        (b'S', severity.to_string()),
        (b'V', severity.to_string()),
        (b'C', code.code().to_string()),
        (b'M', message.to_string()),
    ])
    .encode(out)
    .expect("a notice always fits");
}

/// The fields of an ErrorResponse or NoticeResponse body, as the upstream sent them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorFields {
    pub severity: String,
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
}

impl ErrorFields {
    /// Parse a body; fields that are absent stay empty.
    pub fn parse(mut body: &[u8]) -> Self {
        let mut f = ErrorFields::default();
        while body.has_remaining() {
            let t = body.get_u8();
            if t == 0 {
                break;
            }
            let Some(v) = get_cstr(&mut body) else { break };
            match t {
                b'V' => f.severity = v,
                b'S' if f.severity.is_empty() => f.severity = v,
                b'C' => f.code = v,
                b'M' => f.message = v,
                b'D' => f.detail = Some(v),
                _ => {}
            }
        }
        f
    }
}

impl fmt::Display for ErrorFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.severity, self.code, self.message)
    }
}

/// A NoticeResponse with a detail and a hint, when given.
pub fn notice_with(
    severity: &str,
    code: SqlState,
    message: &str,
    detail: Option<&str>,
    hint: Option<&str>,
    out: &mut BytesMut,
) {
    let mut fields = vec![
        (b'S', severity.to_string()),
        (b'V', severity.to_string()),
        (b'C', code.code().to_string()),
        (b'M', message.to_string()),
    ];
    if let Some(d) = detail {
        fields.push((b'D', d.to_string()));
    }
    if let Some(h) = hint {
        fields.push((b'H', h.to_string()));
    }
    NoticeResponse::new(fields)
        .encode(out)
        .expect("a notice always fits");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_round_trips_through_the_wire_format() {
        let e = PgError::fatal(SqlState::INVALID_PASSWORD, "nope").with_detail("why");
        let bytes = e.to_bytes();
        assert_eq!(bytes[0], b'E');
        let f = ErrorFields::parse(&bytes[5..]);
        assert_eq!(f.severity, "FATAL");
        assert_eq!(f.code, "28P01");
        assert_eq!(f.message, "nope");
        assert_eq!(f.detail.as_deref(), Some("why"));
    }
}
