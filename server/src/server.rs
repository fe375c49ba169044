//! Runs the server on a listener the caller bound, until `shutdown` resolves: the accept loop
//! (HTTP/1.1 with upgrades to WebSocket, header and idle timeouts, connections counted per client
//! address), the housekeeping tasks, and a graceful shutdown that flushes storage.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::ConnectInfo;
use hindsight_shared::ids::{PeerId, random_token};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service as _;

use crate::board::actor::{BoardContext, BudgetConfig};
use crate::board::core::CoreConfig;
use crate::board::replica::Limits;
use crate::clients::{ClientKey, ClientLimits, Clients, ConnectionGuard};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::connection::ConnectionContext;
use crate::http::{self, AppState, Services};
use crate::registry::Registry;
use crate::store::Store;

/// The server's peer id on every node of a cluster.
const CLUSTER_PEER_ID: &str = "hindsight-cluster";

/// Serves Hindsight on `listener` until `shutdown` resolves, then shuts down gracefully:
/// stops accepting, closes every WebSocket with a close frame, lets boards finish their turn,
/// and flushes storage before it returns.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // The errors name no URL: it may hold a password.
    let store = match &config.database_url {
        Some(url) => {
            let url = url.expose(&["postgres", "postgresql"]).map_err(|e| anyhow::anyhow!("--database-url: {e}"))?;
            let store =
                if config.nats_url.is_some() { Store::connect_shared(url).await } else { Store::connect(url).await };
            store.context("could not open storage in Postgres")?
        }
        None => Store::open(&config.data_dir)
            .with_context(|| format!("could not open storage in {}", config.data_dir.display()))?,
    };
    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    let cluster = match &config.nats_url {
        Some(url) => {
            let url = url.expose(&["nats", "tls"]).map_err(|e| anyhow::anyhow!("--nats-url: {e}"))?;
            let node = config.node_id.clone().unwrap_or_else(|| format!("node-{}", random_token::<6>()));
            Some(Cluster::connect(url, node, config.lease(), store.clone(), token.clone()).await?)
        }
        None => None,
    };
    // Every node of a cluster speaks as one server: a client's frames may be answered by any
    // node (the board's owner), under the peer id it joined with.
    let server = match &cluster {
        Some(_) => PeerId::from(CLUSTER_PEER_ID),
        None => PeerId::from(format!("hindsight-{}", random_token::<8>())),
    };
    let core = CoreConfig {
        max_document_bytes: config.max_document_bytes,
        max_board_bytes: config.max_board_bytes,
        max_participant_connections: config.max_peers_per_board,
        max_viewer_connections: config.max_viewers_per_board,
        limits: Limits { max_inflated_bytes: (4 * config.max_message_bytes).max(16 << 20) as u64, ..Limits::default() },
        roti_min_raters: config.roti_min_raters,
        max_team_retros: config.max_team_retros,
        max_team_actions: config.max_team_actions,
    };
    let registry = Registry::new(
        BoardContext {
            store: store.clone(),
            server: server.clone(),
            idle: config.board_idle(),
            core,
            budget: BudgetConfig::default(),
            max_participants: config.max_participants_per_board,
            shutdown: token.clone(),
        },
        tracker.clone(),
        cluster.clone(),
    );
    let connections = ConnectionContext {
        registry: Arc::clone(&registry),
        server,
        max_messages_per_second: config.max_messages_per_second,
        max_bytes_per_second: config.max_bytes_per_second,
        max_message_bytes: config.max_message_bytes,
        ping_interval: config.ping_interval(),
        shutdown: token.clone(),
    };
    let clients = Clients::new(ClientLimits {
        max_connections: config.max_connections_per_ip,
        board_creations_per_minute: config.board_creations_per_minute,
        joins_per_minute: config.joins_per_minute,
    });
    let behind_proxy = config.client_ip_header.is_some();
    let header_timeout = config.http_timeout();
    let retention = config.board_retention();
    let app = http::router(AppState::new(Services {
        config,
        store: store.clone(),
        registry: Arc::clone(&registry),
        connections,
        tracker: tracker.clone(),
        clients: clients.clone(),
        cluster: cluster.clone(),
    }));
    if let Some(cluster) = &cluster {
        cluster.start(&registry, app.clone(), &tracker, token.clone()).await?;
    }

    let address = listener.local_addr()?;
    tracing::info!(%address, "Hindsight is listening on http://{address}");
    let signal = token.clone();
    tokio::spawn(async move {
        shutdown.await;
        signal.cancel();
    });
    tracker.spawn(housekeeping(clients.clone(), store.clone(), Arc::clone(&registry), retention, token.clone()));

    loop {
        let (tcp, peer) = tokio::select! {
            () = token.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait a little rather than spin or stop.
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Without a proxy, every connection counts against its peer's address.
        let guard = if behind_proxy {
            None
        } else {
            match clients.connect(ClientKey::from(peer.ip())) {
                Ok(guard) => Some(Arc::new(guard)),
                Err(refused) => {
                    tracing::debug!(%refused, "refused a connection");
                    continue;
                }
            }
        };
        // No Nagle delay: sync messages are small and latency-bound, and a close frame must not
        // wait behind an unacknowledged frame.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        tracker.spawn(serve_connection(tcp, peer, app.clone(), guard, header_timeout, token.clone()));
    }

    // HTTP is done; WebSockets and boards are ours to finish.
    tracker.close();
    tracker.wait().await;
    if let Some(cluster) = &cluster {
        // Everything the boards accepted is stored: hand them over.
        cluster.drain().await;
    }
    store.close().await;
    tracing::info!("Hindsight stopped; storage flushed");
    Ok(())
}

/// One HTTP connection: requests until the client stops, with the time to send each request's
/// headers bounded (which bounds an idle keep-alive connection too), and upgrades to WebSocket.
async fn serve_connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    app: axum::Router,
    guard: Option<Arc<ConnectionGuard>>,
    header_timeout: Duration,
    shutdown: CancellationToken,
) {
    let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        // The WebSocket handler keeps the guard for as long as the upgraded socket lives.
        if let Some(guard) = &guard {
            request.extensions_mut().insert(Arc::clone(guard));
        }
        app.clone().call(request)
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(tcp), service)
        .with_upgrades();
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "an HTTP connection ended");
            }
        }
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(header_timeout, connection).await;
        }
    }
}

/// What runs beside the connections: forgetting clients that left, and deleting boards past
/// their retention.
async fn housekeeping(
    clients: Clients,
    store: Store,
    registry: Arc<Registry>,
    retention: Option<Duration>,
    shutdown: CancellationToken,
) {
    let every = retention
        .map_or(Duration::from_secs(60), |r| (r / 4).clamp(Duration::from_millis(100), Duration::from_secs(60)));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        clients.sweep();
        let Some(retention) = retention else { continue };
        let before = crate::clock::now_ms() - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        match store.expire(before, registry.in_memory()).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "deleted boards past their retention"),
            Err(e) => tracing::warn!(error = %e, "could not delete boards past their retention"),
        }
    }
}
