//! The accept loop: every connection is served by hyper with a
//! [`KillSwitch`] in its request extensions, so a handler can drop its own
//! connection with a TCP reset (no HTTP response at all).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// How long a graceful shutdown waits for open connections.
const GRACE: Duration = Duration::from_secs(5);

/// Drops the connection it belongs to with a reset when fired.
#[derive(Debug, Clone, Default)]
pub(crate) struct KillSwitch(Arc<Notify>);

impl KillSwitch {
    /// Resets the connection; the handler that fired it is dropped with it.
    pub(crate) fn kill(&self) {
        self.0.notify_one();
    }
}

/// Accepts connections until `shutdown` changes (or its sender is dropped),
/// then shuts connections down gracefully, waiting at most [`GRACE`].
/// Dropping (aborting) this future aborts every connection.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            res = listener.accept() => match res {
                Ok((stream, _peer)) => {
                    conns.spawn(serve_conn(stream, router.clone(), shutdown.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    let drained =
        tokio::time::timeout(GRACE, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            left = conns.len(),
            "connections still open after the grace period; aborting"
        );
    }
}

async fn serve_conn(stream: TcpStream, router: Router, mut shutdown: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    // A second handle on the socket, to set SO_LINGER 0 when killing it.
    let sock = match socket2::SockRef::from(&stream).try_clone() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot duplicate the connection socket");
            return;
        }
    };
    let kill = KillSwitch::default();
    let switch = kill.clone();
    let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(switch.clone());
        router.clone().oneshot(req.map(Body::new))
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    let mut graceful = false;
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = kill.0.notified() => {
                // Dropping the connection and the last socket handle with
                // SO_LINGER 0 sends a RST instead of a FIN.
                if let Err(e) = sock.set_linger(Some(Duration::ZERO)) {
                    tracing::warn!(error = %e, "SO_LINGER failed");
                }
                tracing::debug!("connection reset on purpose");
                return;
            }
            _ = shutdown.changed(), if !graceful => {
                graceful = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
