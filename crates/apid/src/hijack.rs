//! Hijacked connections: `attach` and `exec start` turn the HTTP connection into the process's
//! raw stdio, as dockerd does.
//!
//! A client that sends `Upgrade: tcp` gets `101 UPGRADED`; one that does not gets `200 OK`
//! and the raw stream right after the head, with neither a length nor chunking. hyper writes
//! neither form itself (it writes a length for every 200, and upgrades only requests that ask
//! for one), so both take the same path: the handler leaves a [`Plan`] on the connection and
//! answers with `Connection: close`; the connection's [`Gate`] swallows that answer, hyper
//! ends the connection without shutting it down, and the server writes Docker's own head and
//! hands the socket, with whatever the client sent past the request, to the handler.

use crate::server::ConnGuard;
use bytes::Bytes;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::oneshot;

/// An accepted connection.
pub(crate) enum Conn {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tcp(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tcp(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Unix(s) => Pin::new(s).poll_flush(cx),
            Conn::Tcp(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tcp(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// The connection as hyper sees it: once `swallow` is set, whatever hyper writes is dropped
/// (the placeholder answer to a hijacking request).
pub(crate) struct Gate {
    conn: Conn,
    swallow: Arc<AtomicBool>,
}

impl Gate {
    pub(crate) fn new(conn: Conn, swallow: Arc<AtomicBool>) -> Gate {
        Gate { conn, swallow }
    }
}

impl AsyncRead for Gate {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().conn).poll_read(cx, buf)
    }
}

impl AsyncWrite for Gate {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        if me.swallow.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut me.conn).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if me.swallow.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut me.conn).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if me.swallow.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut me.conn).poll_shutdown(cx)
    }
}

/// Per connection: the gate's switch and the plan of a hijacking handler.
#[derive(Default)]
pub(crate) struct ConnCtx {
    pub(crate) swallow: Arc<AtomicBool>,
    plan: Mutex<Option<Plan>>,
}

impl ConnCtx {
    /// Commits the connection to a hijack: from now on hyper's writes are swallowed, and the
    /// returned receiver gets the raw stream once hyper lets go of it. The caller must answer
    /// with [`placeholder`].
    pub(crate) fn hijack(&self, upgrade: bool, content_type: &str) -> oneshot::Receiver<Hijacked> {
        let (tx, rx) = oneshot::channel();
        let head = if upgrade {
            format!(
                "HTTP/1.1 101 UPGRADED\r\nContent-Type: {content_type}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
            )
        } else {
            format!("HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n\r\n")
        };
        *self.plan.lock().expect("plan lock") = Some(Plan {
            head: head.into_bytes(),
            tx,
        });
        self.swallow.store(true, Ordering::SeqCst);
        rx
    }

    pub(crate) fn take_plan(&self) -> Option<Plan> {
        self.plan.lock().expect("plan lock").take()
    }
}

/// The answer hyper writes (and the gate swallows) for a hijacking request: it ends the
/// connection, so hyper hands the socket back.
pub(crate) fn placeholder() -> hyper::Response<crate::api::Body> {
    hyper::Response::builder()
        .header(hyper::header::CONNECTION, "close")
        .body(crate::api::empty_body())
        .expect("static response")
}

/// A hijack waiting for the connection.
pub(crate) struct Plan {
    head: Vec<u8>,
    tx: oneshot::Sender<Hijacked>,
}

impl Plan {
    /// Writes Docker's head and hands the stream over.
    pub(crate) async fn deliver(self, gate: Gate, read_buf: Bytes, guard: ConnGuard) {
        let mut conn = gate.conn;
        if conn.write_all(&self.head).await.is_err() {
            return;
        }
        let _ = self.tx.send(Hijacked {
            conn,
            prefix: read_buf,
            _guard: guard,
        });
    }
}

/// A hijacked connection: reads give first what the client sent past its request.
pub(crate) struct Hijacked {
    conn: Conn,
    prefix: Bytes,
    _guard: ConnGuard,
}

impl Hijacked {
    /// Splits into a reading and a writing half that two tasks can use.
    pub(crate) fn split(self) -> (HijackedRead, HijackedWrite) {
        let (r, w) = tokio::io::split(self.conn);
        (
            HijackedRead {
                r,
                prefix: self.prefix,
            },
            HijackedWrite {
                w,
                _guard: self._guard,
            },
        )
    }
}

/// The client's half: its stdin.
pub(crate) struct HijackedRead {
    r: tokio::io::ReadHalf<Conn>,
    prefix: Bytes,
}

impl AsyncRead for HijackedRead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if !me.prefix.is_empty() {
            let n = me.prefix.len().min(buf.remaining());
            buf.put_slice(&me.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut me.r).poll_read(cx, buf)
    }
}

/// Our half: the process's output. Holds the connection open (and so the service busy).
pub(crate) struct HijackedWrite {
    w: tokio::io::WriteHalf<Conn>,
    _guard: ConnGuard,
}

impl AsyncWrite for HijackedWrite {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().w).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().w).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().w).poll_shutdown(cx)
    }
}
