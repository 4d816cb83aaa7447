//! Helios as the server in a client's authentication exchange
//! (`authenticate_client`): password messages, SASLInitialResponse and
//! SASLResponse as a client may send them, for each method and kind of
//! credential. Shared by the `auth` fuzz target and the stable regression
//! test, like `frontend.rs` (whose allocator, reader and executor it uses).
//!
//! Input layout: one configuration byte (method, credential, read size),
//! then the client's bytes after its StartupMessage.

#![allow(dead_code)]

use std::io;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use helios_wire::auth::client::AuthContext;
use helios_wire::auth::{authenticate_client, md5_stored, AuthMethod, Credential, ScramVerifier};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::frontend::{allocation_budget, block_on, largest_allocation, reset_largest, Chunked};

/// The client: reads from the input, writes into a Vec.
struct Client<'a> {
    input: Chunked<'a>,
    written: Vec<u8>,
}

impl AsyncRead for Client<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.input).poll_read(cx, buf)
    }
}

impl AsyncWrite for Client<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.written.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

const USER: &str = "bob";
const PASSWORD: &str = "secret";

/// Credentials, derived once (a few SCRAM iterations: the exchange's parsing
/// is under test, not PBKDF2).
fn credentials() -> &'static [Credential; 3] {
    static C: OnceLock<[Credential; 3]> = OnceLock::new();
    C.get_or_init(|| {
        let scram = ScramVerifier::derive(PASSWORD, b"0123456789abcdef", 16);
        [
            Credential::Password {
                password: PASSWORD.to_string(),
                scram: scram.clone(),
            },
            Credential::Md5Hash(md5_stored(USER, PASSWORD)),
            Credential::Scram(scram),
        ]
    })
}

/// Run one authentication exchange over `data`.
pub fn decode_auth(data: &[u8]) {
    let creds = credentials();
    reset_largest();
    let Some((&c, input)) = data.split_first() else {
        return;
    };
    let method = [
        AuthMethod::Trust,
        AuthMethod::Md5,
        AuthMethod::ScramSha256,
        AuthMethod::Upstream,
    ][(c & 3) as usize];
    let credential = creds.get(((c >> 2) & 3) as usize);
    const CHUNKS: [usize; 8] = [1, 2, 3, 7, 64, 1000, 70_000, usize::MAX];
    let mut client = Client {
        input: Chunked::new(input, CHUNKS[((c >> 4) & 7) as usize]),
        written: Vec::new(),
    };
    let ctx = AuthContext {
        user: USER,
        credential,
        tls_certificate_pem: None,
        decoy_key: &[7; 32],
    };
    let r = block_on(authenticate_client(&mut client, method, ctx));
    match r {
        Ok(auth) => {
            // Without the password, the fuzzer cannot have proved anything.
            match method {
                AuthMethod::Trust => assert!(client.written.is_empty()),
                AuthMethod::Upstream => assert!(auth.password.is_some()),
                _ => panic!("{method:?} authentication succeeded on fuzzed input"),
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    // What Helios wrote is well-framed backend messages.
    let mut w = &client.written[..];
    while !w.is_empty() {
        assert!(w.len() >= 5, "a partial message written");
        let len = i32::from_be_bytes([w[1], w[2], w[3], w[4]]);
        assert!(
            len >= 4 && w.len() > len as usize,
            "a badly framed message written"
        );
        assert_eq!(w[0], b'R', "not an Authentication message");
        w = &w[1 + len as usize..];
    }
    let largest = largest_allocation();
    assert!(
        largest <= allocation_budget(data.len()),
        "one allocation of {largest} bytes while decoding {} input bytes",
        data.len()
    );
}
