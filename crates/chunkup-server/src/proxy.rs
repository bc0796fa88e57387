//! A TCP failover proxy for tests: each accepted connection goes to the
//! first backend that accepts a connect, starting from the last one that
//! worked; a refused connect moves on to the next backend and is remembered.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// How long a connect to one backend may take before trying the next.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A running failover proxy. Dropping it stops it (like [`FailoverProxy::shutdown`]).
#[derive(Debug)]
pub struct FailoverProxy {
    addr: SocketAddr,
    current: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl FailoverProxy {
    /// Listens on `listen` and forwards connections to `backends`, in order.
    /// Fails with `InvalidInput` when `backends` is empty.
    pub async fn start(listen: SocketAddr, backends: Vec<SocketAddr>) -> io::Result<FailoverProxy> {
        if backends.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a failover proxy needs at least one backend",
            ));
        }
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let current = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(run(listener, Arc::new(backends), current.clone()));
        Ok(FailoverProxy {
            addr,
            current,
            task,
        })
    }

    /// The address the proxy listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` of the proxy.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Index (into the backend list) of the backend new connections try first.
    pub fn current_backend(&self) -> usize {
        self.current.load(Ordering::SeqCst)
    }

    /// Stops accepting and drops every proxied connection.
    pub async fn shutdown(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for FailoverProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(listener: TcpListener, backends: Arc<Vec<SocketAddr>>, current: Arc<AtomicUsize>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            res = listener.accept() => match res {
                Ok((client, _)) => {
                    conns.spawn(forward(client, backends.clone(), current.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "proxy accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn forward(client: TcpStream, backends: Arc<Vec<SocketAddr>>, current: Arc<AtomicUsize>) {
    let _ = client.set_nodelay(true);
    let first = current.load(Ordering::SeqCst);
    for k in 0..backends.len() {
        let i = (first + k) % backends.len();
        let backend = backends[i];
        let upstream =
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(backend)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::info!(%backend, error = %e, "proxy: backend refused, trying the next");
                    continue;
                }
                Err(_) => {
                    tracing::info!(%backend, "proxy: backend connect timed out, trying the next");
                    continue;
                }
            };
        if i != first {
            current.store(i, Ordering::SeqCst);
            tracing::info!(%backend, "proxy: failed over");
        }
        let _ = upstream.set_nodelay(true);
        relay(client, upstream).await;
        return;
    }
    tracing::warn!("proxy: no backend accepted the connection");
    let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
}

/// Copies both ways until the backend is done. A backend that answers and
/// then resets (e.g. a 416 sent without reading the request body) must not
/// lose its answer: the client side is closed gracefully once any reply
/// bytes were passed on, and reset only when the backend broke before
/// answering anything.
async fn relay(client: TcpStream, upstream: TcpStream) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let up = async {
        let _ = pump(&mut client_read, &mut upstream_write).await;
        let _ = upstream_write.shutdown().await;
    };
    let mut down = Box::pin(pump(&mut upstream_read, &mut client_write));
    tokio::pin!(up);
    let mut up_done = false;
    let (passed, outcome) = loop {
        tokio::select! {
            result = &mut down => break result,
            () = &mut up, if !up_done => up_done = true,
        }
    };
    drop(down);
    if outcome.is_err() && passed == 0 {
        tracing::debug!("proxy: backend broke before answering; resetting the client");
        let _ = socket2::SockRef::from(client_write.as_ref()).set_linger(Some(Duration::ZERO));
        return;
    }
    let _ = client_write.shutdown().await;
    if !up_done {
        // Let the client finish sending what it had in flight before closing.
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut up).await;
    }
}

/// Copies until end of stream or error; returns the bytes passed on.
async fn pump(
    reader: &mut (impl tokio::io::AsyncRead + Unpin),
    writer: &mut (impl tokio::io::AsyncWrite + Unpin),
) -> (u64, io::Result<()>) {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut passed = 0u64;
    loop {
        let n = match reader.read(&mut buffer).await {
            Ok(0) => return (passed, Ok(())),
            Ok(n) => n,
            Err(e) => return (passed, Err(e)),
        };
        if let Err(e) = writer.write_all(&buffer[..n]).await {
            return (passed, Err(e));
        }
        passed += n as u64;
    }
}
