//! The first packet a client sends: untagged, `len: i32, code: i32, ...`.
//!
//! It is one of SSLRequest, GSSENCRequest, CancelRequest or StartupMessage.
//! Parsing keeps the startup parameters in the order the client sent them, so
//! that what reaches the upstream is what the client wrote.

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::cancel::ClientKey;
use crate::error::{PgError, SqlState};

/// Largest startup packet accepted (PostgreSQL's MAX_STARTUP_PACKET_LENGTH).
pub const MAX_STARTUP_PACKET_LEN: usize = 10_000;

const SSL_REQUEST_CODE: i32 = 80_877_103;
const GSSENC_REQUEST_CODE: i32 = 80_877_104;
const CANCEL_REQUEST_CODE: i32 = 80_877_102;

/// Protocol 3.0, the only version PostgreSQL before 18 speaks.
pub const PROTOCOL_3_0: i32 = 196_608;

/// The parameters of a StartupMessage, in the client's order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct StartupParams(Vec<(String, String)>);

impl StartupParams {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Set `name`, replacing an existing value in place.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => *v = value,
            None => self.0.push((name.to_string(), value)),
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<String> {
        let i = self.0.iter().position(|(k, _)| k == name)?;
        Some(self.0.remove(i).1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The user name; PostgreSQL refuses a startup without one.
    pub fn user(&self) -> Option<&str> {
        self.get("user").filter(|u| !u.is_empty())
    }

    /// The database, which defaults to the user name.
    pub fn database(&self) -> Option<&str> {
        self.get("database")
            .filter(|d| !d.is_empty())
            .or_else(|| self.user())
    }

    /// The StartupMessage for these parameters (protocol 3.0).
    pub fn encode(&self) -> BytesMut {
        let mut body = BytesMut::with_capacity(128);
        body.put_i32(PROTOCOL_3_0);
        for (k, v) in &self.0 {
            body.put_slice(k.as_bytes());
            body.put_u8(0);
            body.put_slice(v.as_bytes());
            body.put_u8(0);
        }
        body.put_u8(0);
        let mut out = BytesMut::with_capacity(body.len() + 4);
        out.put_i32(body.len() as i32 + 4);
        out.extend_from_slice(&body);
        out
    }
}

/// The first packet of a connection.
#[derive(Debug)]
pub enum StartupPacket {
    SslRequest,
    GssEncRequest,
    Cancel(ClientKey),
    /// A StartupMessage. `minor` is the requested 3.x minor version and
    /// `protocol_options` the `_pq_.` options, both of which Helios must
    /// answer with NegotiateProtocolVersion when non-zero / non-empty.
    Startup {
        minor: u16,
        params: StartupParams,
        protocol_options: Vec<String>,
    },
}

/// Read and parse the first (or, after SSL/GSS negotiation, the next) packet.
pub async fn read_startup_packet<R: AsyncRead + Unpin>(
    r: &mut R,
) -> Result<Option<StartupPacket>, PgError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        // A client that connects and leaves (a port probe) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(PgError::io(e)),
    }
    let len = i32::from_be_bytes(len);
    if !(8..=MAX_STARTUP_PACKET_LEN as i32).contains(&len) {
        return Err(PgError::fatal(
            SqlState::PROTOCOL_VIOLATION,
            "invalid length of startup packet",
        ));
    }
    let mut body = BytesMut::zeroed(len as usize - 4);
    r.read_exact(&mut body).await.map_err(PgError::io)?;
    parse_startup_packet(body).map(Some)
}

/// Parse a startup packet body (everything after the length).
pub fn parse_startup_packet(mut body: BytesMut) -> Result<StartupPacket, PgError> {
    // `read_startup_packet` never passes fewer than 4 bytes, but this is
    // public: a short body is a bad packet, not a panic in `get_i32`.
    if body.len() < 4 {
        return Err(PgError::fatal(
            SqlState::PROTOCOL_VIOLATION,
            "invalid length of startup packet",
        ));
    }
    let code = body.get_i32();
    match code {
        SSL_REQUEST_CODE => Ok(StartupPacket::SslRequest),
        GSSENC_REQUEST_CODE => Ok(StartupPacket::GssEncRequest),
        CANCEL_REQUEST_CODE => {
            if body.len() != 8 {
                return Err(PgError::fatal(
                    SqlState::PROTOCOL_VIOLATION,
                    "invalid length of cancel request packet",
                ));
            }
            Ok(StartupPacket::Cancel(ClientKey {
                pid: body.get_i32(),
                secret: body.get_i32(),
            }))
        }
        _ => {
            let major = (code >> 16) as u16;
            let minor = (code & 0xffff) as u16;
            if major != 3 {
                return Err(PgError::fatal(
                    SqlState::FEATURE_NOT_SUPPORTED,
                    format!(
                        "unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.0"
                    ),
                ));
            }
            let mut params = StartupParams::new();
            let mut protocol_options = Vec::new();
            loop {
                let name = take_cstr(&mut body)?;
                if name.is_empty() {
                    break;
                }
                let value = take_cstr(&mut body)?;
                if name.starts_with("_pq_.") {
                    protocol_options.push(name);
                } else {
                    params.set(&name, value);
                }
            }
            Ok(StartupPacket::Startup {
                minor,
                params,
                protocol_options,
            })
        }
    }
}

fn take_cstr(body: &mut BytesMut) -> Result<String, PgError> {
    let end = body.iter().position(|&b| b == 0).ok_or_else(|| {
        PgError::fatal(
            SqlState::PROTOCOL_VIOLATION,
            "invalid startup packet layout: expected terminator as last byte",
        )
    })?;
    let s = body.split_to(end);
    body.advance(1);
    String::from_utf8(s.to_vec()).map_err(|_| {
        PgError::fatal(
            SqlState::CHARACTER_NOT_IN_REPERTOIRE,
            "invalid byte sequence in startup packet",
        )
    })
}

/// The 8-byte SSLRequest, for Helios's own connections to the upstream.
pub fn ssl_request() -> [u8; 8] {
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&8i32.to_be_bytes());
    out[4..].copy_from_slice(&SSL_REQUEST_CODE.to_be_bytes());
    out
}

/// A CancelRequest packet for the given backend key.
pub fn cancel_request(pid: i32, secret: i32) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&16i32.to_be_bytes());
    out[4..8].copy_from_slice(&CANCEL_REQUEST_CODE.to_be_bytes());
    out[8..12].copy_from_slice(&pid.to_be_bytes());
    out[12..].copy_from_slice(&secret.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(code: i32, rest: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        b.put_i32(code);
        b.put_slice(rest);
        b
    }

    #[test]
    fn parses_startup_in_order_and_splits_protocol_options() {
        let p = parse_startup_packet(body(
            PROTOCOL_3_0 + 2,
            b"user\0bob\0_pq_.x\0y\0database\0app\0\0",
        ))
        .unwrap();
        let StartupPacket::Startup {
            minor,
            params,
            protocol_options,
        } = p
        else {
            panic!("not a startup")
        };
        assert_eq!(minor, 2);
        assert_eq!(protocol_options, vec!["_pq_.x".to_string()]);
        let names: Vec<_> = params.iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["user", "database"]);
        assert_eq!(params.database(), Some("app"));
    }

    #[test]
    fn round_trips_startup_and_refuses_bad_packets() {
        let mut params = StartupParams::new();
        params.set("user", "u");
        let mut enc = params.encode();
        enc.advance(4);
        match parse_startup_packet(enc).unwrap() {
            StartupPacket::Startup { params: p, .. } => assert_eq!(p, params),
            other => panic!("{other:?}"),
        }
        let e = parse_startup_packet(body(2 << 16, b"\0")).unwrap_err();
        assert_eq!(e.code, SqlState::FEATURE_NOT_SUPPORTED);
        let e = parse_startup_packet(body(PROTOCOL_3_0, b"user\0bob")).unwrap_err();
        assert_eq!(e.code, SqlState::PROTOCOL_VIOLATION);
    }
}
