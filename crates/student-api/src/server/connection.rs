//! One client connection: HTTP/1.1 parsed and answered by hyper, with the
//! timeouts and close rules hyper does not have.
//!
//! A connection is always in one [`Phase`]: `Idle` (waiting for the first
//! byte of a request), `Head` (receiving a request's headers), `Busy` (the
//! router has the request) or `Flushing` (the response is being written).
//! Every change of phase happens while hyper polls the connection (it reads
//! the socket, calls the service, drops the response body, flushes), so
//! [`drive`] re-reads the phase after each poll and re-arms one timer:
//! `Idle` is bounded by the idle timeout (a new connection, which has sent
//! nothing yet, by the header timeout), `Head` by the header timeout,
//! `Flushing` by the idle timeout (a client that does not read), `Busy` by
//! nothing here (the router's request timeout bounds it).
//!
//! Rules: a connection is closed from here while `Idle`, or when a client
//! is too slow with its headers or its response; no request whose first
//! byte has been read is dropped by the server's own choice (evicting,
//! stopping). A request in progress is finished, and its response carries
//! `Connection: close` when the server wants the connection back
//! (draining, or at its connection cap).
//! Imports: hyper, tokio and the router as a tower service; nothing of the
//! rest of the application.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::Router;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tower::ServiceBuilder;

use super::Shared;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Phase {
    Idle = 0,
    Head = 1,
    Busy = 2,
    Flushing = 3,
}

impl Phase {
    fn from_u8(raw: u8) -> Self {
        match raw {
            0 => Self::Idle,
            1 => Self::Head,
            2 => Self::Busy,
            _ => Self::Flushing,
        }
    }
}

/// What a connection is doing, shared between its task and the server
/// (which reads it to pick a connection to close at the cap).
pub(super) struct Activity {
    phase: AtomicU8,
    /// Milliseconds from the server's epoch to the start of the current
    /// `Idle` or `Head` phase.
    since_ms: AtomicU64,
    /// At least one response has been written (so `Idle` means keep-alive).
    served: AtomicBool,
    /// The server asked for the connection back; it closes once `Idle`.
    close_requested: AtomicBool,
    wake: Notify,
}

impl Activity {
    pub(super) fn new(now_ms: u64) -> Self {
        Self {
            phase: AtomicU8::new(Phase::Idle as u8),
            since_ms: AtomicU64::new(now_ms),
            served: AtomicBool::new(false),
            close_requested: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    pub(super) fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    pub(super) fn since_ms(&self) -> u64 {
        self.since_ms.load(Ordering::Acquire)
    }

    pub(super) fn has_served(&self) -> bool {
        self.served.load(Ordering::Acquire)
    }

    fn enter(&self, phase: Phase, now_ms: u64) {
        self.since_ms.store(now_ms, Ordering::Release);
        self.phase.store(phase as u8, Ordering::Release);
    }

    /// Bytes arrived: when not already in a request, they start one. The
    /// header timeout then runs from now, except on a new connection, where
    /// it has been running since the connection opened.
    fn bytes_received(&self, now_ms: u64) {
        match self.phase() {
            Phase::Idle if !self.has_served() => {
                self.phase.store(Phase::Head as u8, Ordering::Release);
            }
            // While flushing: the next request of a client that pipelines.
            Phase::Idle | Phase::Flushing => self.enter(Phase::Head, now_ms),
            Phase::Head | Phase::Busy => {}
        }
    }

    /// Asks the connection to close as soon as it is idle (now, if it is).
    pub(super) fn request_close(&self) {
        self.close_requested.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    pub(super) fn is_close_requested(&self) -> bool {
        self.close_requested.load(Ordering::Acquire)
    }

    /// Wakes the connection's task so it looks at the server's state again.
    pub(super) fn nudge(&self) {
        self.wake.notify_one();
    }
}

/// Why a connection ended.
#[derive(Debug)]
pub(super) enum Ended {
    /// The client closed it, or a response with `Connection: close` was sent.
    Closed,
    /// hyper gave up on it: a request it could not parse (it answered
    /// 400, 414 or 431 itself), or a socket error.
    Failed(hyper::Error),
    /// A new connection, or a request's headers, took too long.
    HeaderTimeout,
    /// A keep-alive connection waited too long for its next request.
    IdleTimeout,
    /// Closed while idle to make room for a new connection.
    Evicted,
    /// Closed while idle because the server is stopping.
    Stopped,
}

/// Serves one connection until it ends, and records why it did (before
/// the socket closes, so a client that sees it closed sees it counted).
pub(super) async fn drive(
    stream: TcpStream,
    router: Router,
    http: &http1::Builder,
    shared: &Arc<Shared>,
    activity: &Arc<Activity>,
) {
    // The client's address for each request, as axum's `ConnectInfo`
    // (what `into_make_service_with_connect_info` would give): the
    // request's span names it.
    let peer = stream.peer_addr().ok().map(ConnectInfo);
    let io = TokioIo::new(Watched {
        stream,
        activity: activity.clone(),
        shared: shared.clone(),
    });
    let started = {
        let (activity, shared) = (activity.clone(), shared.clone());
        move |mut request: Request<Incoming>| {
            activity.enter(Phase::Busy, shared.now_ms());
            if let Some(peer) = peer {
                request.extensions_mut().insert(peer);
            }
            request
        }
    };
    let answered = {
        let (activity, shared) = (activity.clone(), shared.clone());
        move |mut response: Response| {
            if shared.wants_connections_back() {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            response.map(|inner| TrackedBody {
                inner,
                activity: activity.clone(),
                shared: shared.clone(),
            })
        }
    };
    let service = ServiceBuilder::new()
        .map_request(started)
        .map_response(answered)
        .service(router);
    let mut connection = pin!(http.serve_connection(io, TowerToHyperService::new(service)));
    let mut timer = pin!(tokio::time::sleep_until(Instant::now()));
    let mut woken = pin!(activity.wake.notified());

    let ended = poll_fn(|cx| {
        if let Poll::Ready(result) = connection.as_mut().poll(cx) {
            return Poll::Ready(result.map_or_else(Ended::Failed, |()| Ended::Closed));
        }
        // Register for close requests; a permit left by one sent since the
        // last poll completes at once, and is simply re-armed.
        while woken.as_mut().poll(cx).is_ready() {
            woken.set(activity.wake.notified());
        }
        // The poll above may have moved the connection to another phase.
        let since = shared.instant(activity.since_ms());
        let limits = &shared.limits;
        let (deadline, ended) = match activity.phase() {
            Phase::Idle if activity.has_served() => {
                if activity.is_close_requested() {
                    return Poll::Ready(Ended::Evicted);
                }
                if shared.is_stopping() {
                    return Poll::Ready(Ended::Stopped);
                }
                (since + limits.idle_timeout, Ended::IdleTimeout)
            }
            // A new connection is not closed at stop: its request is likely
            // on its way, and the header timeout bounds the wait.
            Phase::Idle => {
                if activity.is_close_requested() {
                    return Poll::Ready(Ended::Evicted);
                }
                (since + limits.header_timeout, Ended::HeaderTimeout)
            }
            Phase::Head => (since + limits.header_timeout, Ended::HeaderTimeout),
            // A client that does not take its response for as long as it
            // may stay idle is treated as idle.
            Phase::Flushing => (since + limits.idle_timeout, Ended::IdleTimeout),
            Phase::Busy => return Poll::Pending,
        };
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(ended);
        }
        Poll::Pending
    })
    .await;
    shared.record(&ended);
}

/// The socket, noting the first byte of each request and the end of each
/// response for [`Activity`].
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
    shared: Arc<Shared>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.bytes_received(this.shared.now_ms());
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    /// hyper flushes the socket once its own buffer is empty: after the
    /// response body is gone, that is the end of the response.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_flush(cx);
        if matches!(polled, Poll::Ready(Ok(()))) && this.activity.phase() == Phase::Flushing {
            this.activity.served.store(true, Ordering::Release);
            this.activity.enter(Phase::Idle, this.shared.now_ms());
        }
        polled
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// A response body that marks the end of `Busy` when hyper drops it
/// (written out, or abandoned with the connection).
struct TrackedBody {
    inner: Body,
    activity: Arc<Activity>,
    shared: Arc<Shared>,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        if self.activity.phase() == Phase::Busy {
            self.activity.enter(Phase::Flushing, self.shared.now_ms());
        }
    }
}
