//! The byte streams Helios speaks the protocol over: a client's (TCP, TLS over
//! TCP, or a Unix socket) and an upstream's (the same three). Each is one enum
//! so the session and relay code is written once, not per transport.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

macro_rules! delegate_io {
    ($ty:ident) => {
        impl AsyncRead for $ty {
            #[inline]
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $ty::Tcp(s) => Pin::new(s).poll_read(cx, buf),
                    $ty::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
                    $ty::Unix(s) => Pin::new(s).poll_read(cx, buf),
                }
            }
        }

        impl AsyncWrite for $ty {
            #[inline]
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    $ty::Tcp(s) => Pin::new(s).poll_write(cx, buf),
                    $ty::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
                    $ty::Unix(s) => Pin::new(s).poll_write(cx, buf),
                }
            }

            #[inline]
            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $ty::Tcp(s) => Pin::new(s).poll_flush(cx),
                    $ty::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
                    $ty::Unix(s) => Pin::new(s).poll_flush(cx),
                }
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $ty::Tcp(s) => Pin::new(s).poll_shutdown(cx),
                    $ty::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
                    $ty::Unix(s) => Pin::new(s).poll_shutdown(cx),
                }
            }
        }

        impl $ty {
            /// Whether the bytes on this stream are encrypted.
            pub fn is_tls(&self) -> bool {
                matches!(self, $ty::Tls(_))
            }

            /// Whether writes may sit in a buffer inside the stream until flushed.
            #[inline]
            pub fn needs_flush(&self) -> bool {
                self.is_tls()
            }
        }
    };
}

/// A client's connection to Helios.
#[derive(Debug)]
pub enum ClientStream {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    Unix(UnixStream),
}

/// Helios's connection to an upstream server.
#[derive(Debug)]
pub enum UpstreamStream {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Unix(UnixStream),
}

delegate_io!(ClientStream);
delegate_io!(UpstreamStream);

impl ClientStream {
    /// Whether the client connected over a Unix socket or from a loopback
    /// address: the places a cleartext password may come from unencrypted.
    pub fn is_local(&self) -> bool {
        match self {
            ClientStream::Unix(_) => true,
            ClientStream::Tcp(s) => s.peer_addr().map(|a| a.ip().is_loopback()).unwrap_or(false),
            ClientStream::Tls(s) => s
                .get_ref()
                .0
                .peer_addr()
                .map(|a| a.ip().is_loopback())
                .unwrap_or(false),
        }
    }
}
