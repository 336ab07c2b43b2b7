//! Accepting and serving connections within limits: at most `max_connections` open at once
//! (the rest wait in the kernel's listen queue, so descriptors stay free for the store and
//! the dispatcher), a request's headers complete within `header_timeout` of its first byte,
//! and a keep-alive connection idle for `idle_timeout` is closed. A request being handled
//! has no connection deadline: the request timeout bounds it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower_service::Service as _;

/// Connection limits of the HTTP server: no client can hold a connection, or all of them,
/// without sending requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// A request's headers must be complete this long after its first byte (or after the
    /// connection opened); otherwise the connection is closed.
    pub header_timeout: Duration,
    /// A keep-alive connection with no request for this long is closed.
    pub idle_timeout: Duration,
    /// Most connections open at once; further clients wait in the listen queue.
    pub max_connections: usize,
}

/// Serves `router` on `listener` within `limits` until `shutdown` completes, then lets each
/// connection finish its request in flight and closes it.
///
/// # Errors
/// None today; the accept loop outlives transient errors (a full descriptor table
/// included) by pausing.
pub(super) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (close_tx, close_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    let mut accept_failing = false;
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    if !accept_failing {
                        tracing::error!(%error, "cannot accept connections; retrying (is the open-files limit below http.max_connections?)");
                    }
                    accept_failing = true;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        accept_failing = false;
        let _ = stream.set_nodelay(true);
        connections.spawn(serve_one(
            stream,
            router.clone(),
            limits,
            close_rx.clone(),
            permit,
        ));
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = close_tx.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Serves one connection until it closes, breaks a limit, or shutdown has finished it.
async fn serve_one(
    stream: TcpStream,
    router: Router,
    limits: HttpLimits,
    mut close: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: Arc::clone(&activity),
    });
    let requests = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let mut router = router.clone();
        let in_flight = InFlight::begin(Arc::clone(&requests));
        async move {
            let response = router.call(req.map(axum::body::Body::new)).await;
            drop(in_flight);
            response
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        // Header and idle deadlines are kept here, by `Activity`, for both cases at once.
        .header_read_timeout(None)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        let deadline = activity.deadline(limits);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            () = sleep_until(deadline) => {
                if activity.deadline(limits).is_some_and(|d| d <= Instant::now()) {
                    tracing::debug!("closing a connection: headers too slow, or idle too long");
                    return;
                }
            }
            changed = close.changed(), if !closing => {
                let _ = changed;
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Where a connection is between requests, for its deadlines.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for a request: none yet since `since` (`fresh`: since the connection opened).
    Idle { since: Instant, fresh: bool },
    /// The first bytes of a request arrived at `since`; its headers are not complete yet.
    Head { since: Instant },
    /// This many requests are being handled.
    Handling(u32),
}

/// One connection's phase, updated by its reads and by its requests.
#[derive(Debug)]
struct Activity(Mutex<Phase>);

impl Activity {
    fn new() -> Self {
        Self(Mutex::new(Phase::Idle {
            since: Instant::now(),
            fresh: true,
        }))
    }

    fn update(&self, change: impl FnOnce(Phase) -> Phase) {
        if let Ok(mut phase) = self.0.lock() {
            *phase = change(*phase);
        }
    }

    /// When the connection must be closed if nothing changes; `None` while handling.
    fn deadline(&self, limits: HttpLimits) -> Option<Instant> {
        let phase = *self.0.lock().ok()?;
        match phase {
            Phase::Idle { since, fresh: true } | Phase::Head { since } => {
                Some(since + limits.header_timeout)
            }
            Phase::Idle {
                since,
                fresh: false,
            } => Some(since + limits.idle_timeout),
            Phase::Handling(_) => None,
        }
    }

    /// Bytes arrived: a new request starts, if none was under way.
    fn read_some(&self) {
        self.update(|phase| match phase {
            Phase::Idle { .. } => Phase::Head {
                since: Instant::now(),
            },
            other => other,
        });
    }
}

/// Marks a request as being handled for as long as it lives.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(activity: Arc<Activity>) -> Self {
        activity.update(|phase| match phase {
            Phase::Handling(n) => Phase::Handling(n.saturating_add(1)),
            _ => Phase::Handling(1),
        });
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.update(|phase| match phase {
            Phase::Handling(n) if n > 1 => Phase::Handling(n - 1),
            _ => Phase::Idle {
                since: Instant::now(),
                fresh: false,
            },
        });
    }
}

/// The socket, reporting each read that brings bytes to its [`Activity`].
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read_some();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
