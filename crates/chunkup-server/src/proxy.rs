//! A TCP failover proxy for tests: each accepted connection goes to the
//! first backend that accepts a connect, starting from the last one that
//! worked; a refused connect moves on to the next backend and is remembered.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

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

async fn forward(mut client: TcpStream, backends: Arc<Vec<SocketAddr>>, current: Arc<AtomicUsize>) {
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
        let mut upstream = upstream;
        let _ = upstream.set_nodelay(true);
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            // Pass a broken backend connection on as a reset.
            tracing::debug!(error = %e, "proxy: connection broke");
            let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
        }
        return;
    }
    tracing::warn!("proxy: no backend accepted the connection");
    let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
}
