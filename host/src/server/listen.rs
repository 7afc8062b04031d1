//! The HTTP accept loop, bounded so that no client can exhaust the server:
//! a connection must send a request head within
//! `weir.server.header-read-timeout` (which also bounds how long an idle
//! keep-alive connection stays open), at most `weir.server.max-connections`
//! are kept (past it the oldest idle one is closed, so a new client is
//! still served however many idle ones hold sockets), and an accept error
//! (no file descriptor left) pauses the loop instead of spinning.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tower::ServiceExt;

/// Answers 503 if the request (its body included) takes longer than
/// `limit`: a slow or stalled client cannot hold a handler for ever.
pub async fn time_limit(
    axum::extract::State(limit): axum::extract::State<Duration>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => super::error::ApiError {
            status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
            message: format!(
                "the request took longer than {} ms (weir.server.request-timeout or upload-timeout)",
                limit.as_millis()
            ),
        }
        .into_response(),
    }
}

/// The bounds of one server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time a connection has to send a request head.
    pub header_read_timeout: Duration,
    /// Connections kept at once.
    pub max_connections: usize,
}

/// One open connection: how many requests it is serving, and how to ask
/// it to close.
#[derive(Debug, Default)]
struct Slot {
    busy: AtomicUsize,
    close: Notify,
}

/// The open connections, oldest first.
type Slots = Arc<Mutex<VecDeque<Arc<Slot>>>>;

/// Serves `app` on `listener` within `limits` until `shutdown` completes;
/// then lets the connections finish their requests.
pub async fn serve_bounded(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let slots: Slots = Arc::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Most likely no file descriptor left: wait for some to
                // close rather than spin.
                tracing::warn!("cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let slot = Arc::new(Slot::default());
        admit(&slots, slot.clone(), limits.max_connections);
        tokio::spawn(serve_connection(
            stream,
            app.clone(),
            limits,
            (slot, slots.clone()),
            stop_rx.clone(),
        ));
    }
    let _ = stop_tx.send(true);
    Ok(())
}

/// Adds `slot`; past `max`, asks the oldest idle connections to close.
fn admit(slots: &Slots, slot: Arc<Slot>, max: usize) {
    let mut all = slots.lock().unwrap_or_else(|p| p.into_inner());
    all.push_back(slot);
    let mut over = all.len().saturating_sub(max.max(1));
    for s in all.iter() {
        if over == 0 {
            break;
        }
        if s.busy.load(Ordering::Acquire) == 0 {
            s.close.notify_one();
            over -= 1;
        }
    }
}

/// Serves one connection until it ends, is asked to close, or the server
/// stops.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    app: Router,
    limits: Limits,
    (slot, slots): (Arc<Slot>, Slots),
    mut stop: watch::Receiver<bool>,
) {
    let counted = slot.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let slot = counted.clone();
        slot.busy.fetch_add(1, Ordering::AcqRel);
        let response = app.clone().oneshot(req.map(axum::body::Body::new));
        async move {
            let r = response.await;
            slot.busy.fetch_sub(1, Ordering::AcqRel);
            r
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!("connection ended: {e}");
            }
        }
        () = slot.close.notified() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.as_mut().await;
        }
        () = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.as_mut().await;
        }
    }
    let mut all = slots.lock().unwrap_or_else(|p| p.into_inner());
    all.retain(|s| !Arc::ptr_eq(s, &slot));
}

/// Completes once the server is stopping (or its accept loop is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        if stop.changed().await.is_err() {
            return;
        }
    }
}
