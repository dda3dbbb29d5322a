//! The accept loop: connections, the idle timer, signals, and each connection's HTTP/1 server
//! with the hand-over of hijacked connections (see [`crate::hijack`]).

use crate::api;
use crate::backend::Backend;
use crate::hijack::{Conn, ConnCtx, Gate};
use crate::listen::{self, Listener};
use crate::{Error, ServiceOptions};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// What every request handler shares.
pub(crate) struct State {
    pub(crate) backend: Backend,
    /// Open connections, for the idle timer.
    open: AtomicUsize,
    /// Signalled when the last connection closes.
    quiet: Notify,
}

/// Counts a connection as open until dropped (a hijacked stream carries it along).
pub(crate) struct ConnGuard(Arc<State>);

impl ConnGuard {
    fn new(state: &Arc<State>) -> ConnGuard {
        state.open.fetch_add(1, Ordering::SeqCst);
        ConnGuard(state.clone())
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.quiet.notify_waiters();
        }
    }
}

pub(crate) async fn run(
    opts: ServiceOptions,
    activated: Vec<listen::StdListener>,
) -> Result<(), Error> {
    let (listeners, owned) = if activated.is_empty() {
        (
            vec![listen::bind(&opts.endpoint).await?],
            Some(&opts.endpoint),
        )
    } else {
        let mut v = Vec::new();
        for l in activated {
            v.push(l.into_tokio().map_err(|e| Error::Listen {
                what: "a socket-activation descriptor".into(),
                source: e,
            })?);
        }
        (v, None)
    };
    let state = Arc::new(State {
        backend: Backend::new(opts.root.clone(), opts.hako.clone()),
        open: AtomicUsize::new(0),
        quiet: Notify::new(),
    });
    // Before the first answer: a client that has its answer may stop the service at once
    // (a socket-activated one answered a waiting client and then died of the SIGTERM that
    // came before these were registered).
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(Error::Runtime)?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(Error::Runtime)?;
    if let Some(ready) = &opts.ready {
        let _ = ready.send(());
    }
    for l in listeners {
        tokio::spawn(accept_loop(l, state.clone()));
    }
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = idle(&state, opts.idle) => {}
    }
    if let Some(ep) = owned {
        listen::unlink(ep);
    }
    Ok(())
}

/// Returns once no connection has been open for `limit` (never with `None`).
async fn idle(state: &Arc<State>, limit: Option<Duration>) {
    let Some(limit) = limit else {
        return std::future::pending().await;
    };
    loop {
        // Registered before the count is read, so a close in between is not missed.
        let quiet = state.quiet.notified();
        if state.open.load(Ordering::SeqCst) > 0 {
            quiet.await;
            continue;
        }
        tokio::time::sleep(limit).await;
        if state.open.load(Ordering::SeqCst) == 0 && !state.backend.busy() {
            return;
        }
    }
}

async fn accept_loop(listener: Listener, state: Arc<State>) {
    loop {
        let conn = match &listener {
            Listener::Unix(l) => l.accept().await.map(|(s, _)| Conn::Unix(s)),
            Listener::Tcp(l) => l.accept().await.map(|(s, _)| {
                let _ = s.set_nodelay(true);
                Conn::Tcp(s)
            }),
        };
        match conn {
            Ok(conn) => {
                let guard = ConnGuard::new(&state);
                tokio::spawn(serve_conn(conn, state.clone(), guard));
            }
            // Out of descriptors, say: the clients already connected go on being served.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn serve_conn(conn: Conn, state: Arc<State>, guard: ConnGuard) {
    let ctx = Arc::new(ConnCtx::default());
    let gate = Gate::new(conn, ctx.swallow.clone());
    let svc = {
        let ctx = ctx.clone();
        let state = state.clone();
        service_fn(move |req| {
            let ctx = ctx.clone();
            let state = state.clone();
            async move { Ok::<_, std::convert::Infallible>(api::handle(state, ctx, req).await) }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(gate), svc)
        .without_shutdown();
    let Ok(parts) = conn.await else {
        return;
    };
    // A handler that hijacks the connection left its plan here and answered with a response
    // the gate swallowed; the stream is now the handler's.
    if let Some(plan) = ctx.take_plan() {
        let gate = parts.io.into_inner();
        plan.deliver(gate, parts.read_buf, guard).await;
    }
}
