//! A loopback HTTP/1.1 server that misbehaves on purpose: it records every request it
//! receives and answers each one as the test's handler says, including ways no real server
//! should (headers then silence, a trickled body, an endless body).

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as it arrived: its target (path and query) and its whole head.
#[derive(Debug, Clone)]
pub struct Received {
    /// `/2.0/user?x=1`.
    pub target: String,
    /// The request line and headers, as sent.
    pub head: String,
}

impl Received {
    /// Whether the request carried an `Authorization` header.
    pub fn has_authorization(&self) -> bool {
        self.head
            .lines()
            .any(|l| l.to_ascii_lowercase().starts_with("authorization:"))
    }

    /// The value of the `Authorization` header, if any.
    pub fn authorization(&self) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("authorization")
                .then(|| value.trim().to_owned())
        })
    }
}

/// How the server answers one request.
pub enum Reply {
    /// A complete answer.
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// The status line and headers (announcing a body), then nothing until the client leaves.
    HeadersThenNothing,
    /// A 200 announcing 1,000 bytes, then one byte every `every`.
    Trickle { every: Duration },
    /// A 200 without `Content-Length` whose body is `bytes` long, streamed in small chunks
    /// (the server never holds it in memory).
    Large { bytes: usize },
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: u16, body: &serde_json::Value) -> Reply {
        Reply::Full {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    /// A redirect to `location`.
    pub fn redirect(location: &str) -> Reply {
        Reply::Full {
            status: 302,
            headers: vec![("Location".into(), location.into())],
            body: Vec::new(),
        }
    }
}

type Handler = dyn Fn(&Received, &str) -> Reply + Send + Sync;

/// A running server; it stops when dropped.
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// Starts a server whose `handler` gets each request and the server's own base URL.
    pub async fn start(
        handler: impl Fn(&Received, &str) -> Reply + Send + Sync + 'static,
    ) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let received = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let task = {
            let received = Arc::clone(&received);
            let url = url.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let received = Arc::clone(&received);
                    let handler = Arc::clone(&handler);
                    let url = url.clone();
                    tokio::spawn(async move {
                        let _ = serve(stream, &received, &*handler, &url).await;
                    });
                }
            })
        };
        Server {
            url,
            received,
            task,
        }
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }
}

/// Serves one connection: one request, one answer, then close.
async fn serve(
    mut stream: TcpStream,
    received: &Mutex<Vec<Received>>,
    handler: &Handler,
    base: &str,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1024];
    let head_end = loop {
        let n = stream.read(&mut byte).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&byte[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let target = head
        .lines()
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("/")
        .to_owned();
    let request = Received { target, head };
    received.lock().expect("lock").push(request.clone());
    match handler(&request, base) {
        Reply::Full {
            status,
            headers,
            body,
        } => {
            let mut out = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (name, value) in headers {
                out.push_str(&format!("{name}: {value}\r\n"));
            }
            out.push_str("\r\n");
            stream.write_all(out.as_bytes()).await?;
            stream.write_all(&body).await?;
            stream.flush().await?;
            // Let the client read the whole answer before the socket goes away.
            let _ = stream.shutdown().await;
        }
        Reply::HeadersThenNothing => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n")
                .await?;
            stream.flush().await?;
            // Silence: wait until the client gives up and closes.
            let _ = stream.read(&mut byte).await;
        }
        Reply::Trickle { every } => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
                .await?;
            for _ in 0..1000 {
                stream.write_all(b" ").await?;
                stream.flush().await?;
                tokio::time::sleep(every).await;
            }
        }
        Reply::Large { bytes } => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
                .await?;
            let chunk = vec![b' '; 64 * 1024];
            let mut sent = 0;
            while sent < bytes {
                let n = chunk.len().min(bytes - sent);
                stream.write_all(&chunk[..n]).await?;
                sent += n;
            }
        }
    }
    Ok(())
}

/// The peak resident memory of this process so far, in KiB (Linux), if it can be read.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
