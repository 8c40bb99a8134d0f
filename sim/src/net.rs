//! A TCP listener whose connections can be cut from inside a request handler.
//!
//! Every accepted stream shares a per-connection "kill" flag with the request extensions (through
//! axum's `ConnectInfo`), plus a listener-wide shutdown flag. Once a flag is set, writes fail and
//! reads see end-of-file, so hyper closes the socket without sending the pending response: the
//! client observes a dropped connection, exactly what the `drop_next_connections` fault promises.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The address type of a [`KillableListener`]: the peer plus the connection's kill switch.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    /// Remote address.
    pub peer: SocketAddr,
    /// Set to cut this connection.
    pub kill: Arc<AtomicBool>,
}

impl ConnHandle {
    /// Cuts the connection: the response being produced is never delivered.
    pub fn cut(&self) {
        self.kill.store(true, Ordering::SeqCst);
    }
}

/// A TCP listener producing [`KillableStream`]s.
pub struct KillableListener {
    inner: TcpListener,
    shutdown: Arc<AtomicBool>,
}

impl KillableListener {
    /// Wraps a bound listener; `shutdown` cuts every connection when set.
    pub fn new(inner: TcpListener, shutdown: Arc<AtomicBool>) -> Self {
        KillableListener { inner, shutdown }
    }
}

/// A TCP stream that fails once its kill flag or the listener's shutdown flag is set.
pub struct KillableStream {
    inner: TcpStream,
    kill: Arc<AtomicBool>,
    shutdown: Arc<AtomicBool>,
}

impl KillableStream {
    fn dead(&self) -> bool {
        self.kill.load(Ordering::SeqCst) || self.shutdown.load(Ordering::SeqCst)
    }
}

impl AsyncRead for KillableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.dead() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.dead() {
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.dead() {
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.dead() {
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl Listener for KillableListener {
    type Io = KillableStream;
    type Addr = ConnHandle;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, peer)) => {
                    // Small responses must not wait for Nagle's algorithm on loopback.
                    let _ = stream.set_nodelay(true);
                    let kill = Arc::new(AtomicBool::new(false));
                    let io = KillableStream {
                        inner: stream,
                        kill: kill.clone(),
                        shutdown: self.shutdown.clone(),
                    };
                    return (io, ConnHandle { peer, kill });
                }
                Err(_) => {
                    // Accept errors (e.g. too many open files) are transient; back off briefly.
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(ConnHandle {
            peer: self.inner.local_addr()?,
            kill: Arc::new(AtomicBool::new(false)),
        })
    }
}

impl Connected<IncomingStream<'_, KillableListener>> for ConnHandle {
    fn connect_info(stream: IncomingStream<'_, KillableListener>) -> Self {
        stream.remote_addr().clone()
    }
}
