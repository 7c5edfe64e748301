//! The HTTP server's connection loop, with the limits `axum::serve` does not set: a
//! bound on open connections (past it, new ones wait in the listen backlog), a timeout
//! on reading a request's headers and on each wait for its body, and a bounded grace
//! period for open connections at shutdown.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The connection limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HttpLimits {
    /// Connections open at once.
    pub(crate) max_connections: usize,
    /// Longest wait for a request's headers, and for each next piece of its body.
    pub(crate) read_timeout: Duration,
    /// How long open connections may finish their requests at shutdown.
    pub(crate) shutdown_grace: Duration,
}

/// `app` with its request bodies read under `limits` (a body that stalls longer than the
/// read timeout fails its request, which answers 400 as any unreadable body does).
pub(crate) fn with_body_timeout(app: Router, limits: &HttpLimits) -> Router {
    app.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        limits.read_timeout,
    ))
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open connections
/// finish for at most the grace period.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_timeout(limits.read_timeout);
    let open = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        // A place for the next connection first: past the bound, connections wait in
        // the listen backlog until one closes.
        let place = tokio::select! {
            _ = &mut shutdown => break,
            place = Arc::clone(&open).acquire_owned() => match place {
                Ok(place) => place,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait, then go on serving.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        let service = TowerToHyperService::new(app.clone());
        let watcher = graceful.watcher();
        let first_byte = limits.read_timeout;
        tokio::spawn(async move {
            let _place = place;
            // hyper's header timeout starts with the first byte: a client that sends
            // nothing at all is dropped here.
            let mut first = [0u8; 1];
            if !matches!(
                tokio::time::timeout(first_byte, stream.peek(&mut first)).await,
                Ok(Ok(1..))
            ) {
                return;
            }
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open at shutdown were closed");
    }
}
