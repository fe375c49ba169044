//! Runs the server on a listener the caller bound, until `shutdown` resolves.

use std::future::Future;

use anyhow::Context;
use axum::serve::ListenerExt;
use hindsight_shared::ids::{PeerId, random_token};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::board::actor::BoardContext;
use crate::config::Config;
use crate::connection::ConnectionContext;
use crate::http::{self, AppState};
use crate::registry::Registry;
use crate::store::Store;

/// Serves Hindsight on `listener` until `shutdown` resolves, then shuts down gracefully:
/// stops accepting, closes every WebSocket with a close frame, lets boards finish their turn,
/// and flushes storage before it returns.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = Store::open(&config.data_dir)
        .with_context(|| format!("could not open storage in {}", config.data_dir.display()))?;
    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    let server = PeerId::from(format!("hindsight-{}", random_token::<8>()));
    let registry = Registry::new(
        BoardContext {
            store: store.clone(),
            server: server.clone(),
            idle: config.board_idle(),
            max_peers: config.max_peers_per_board,
            max_document_bytes: config.max_document_bytes,
            shutdown: token.clone(),
        },
        tracker.clone(),
    );
    let connections = ConnectionContext {
        registry,
        server,
        max_messages_per_second: config.max_messages_per_second,
        shutdown: token.clone(),
    };
    let app = http::router(AppState::new(config, store.clone(), connections, tracker.clone()));

    let address = listener.local_addr()?;
    tracing::info!(%address, "Hindsight is listening on http://{address}");
    let signal = token.clone();
    tokio::spawn(async move {
        shutdown.await;
        signal.cancel();
    });
    // No Nagle delay: sync messages are small and latency-bound, and a close frame must not wait
    // behind an unacknowledged frame.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    let served = axum::serve(listener, app).with_graceful_shutdown(token.clone().cancelled_owned()).await;
    token.cancel();

    // HTTP is done; WebSockets and boards are ours to finish.
    tracker.close();
    tracker.wait().await;
    store.close().await;
    tracing::info!("Hindsight stopped; storage flushed");
    served.context("the HTTP server failed")
}
