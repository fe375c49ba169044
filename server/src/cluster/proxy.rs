//! The owner's side of a forwarded connection: a proxy per connection, which is to the board
//! just another peer (a [`PeerLink`] with its own connection id), its frames published back to
//! the node that holds the socket.
//!
//! Each proxy has two tasks: one feeds the board the connection's messages in order (waiting on
//! the board's inbox as a connection would, without holding up the node's other connections),
//! one publishes the board's frames. A proxy whose board closed it stays as a tombstone until
//! its origin says the connection left, so that frames still in flight do not open it again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;
use hindsight_shared::ids::{DocumentId, PeerId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::wire::{self, ToOrigin, ToOwner};
use super::{Cluster, next_message};
use crate::board::core::DocMessage;
use crate::board::replica::ConnId;
use crate::board::{BoardHandle, BoardMsg, Frame, FrameKind, MAX_OUTBOX_FRAMES, PeerLink};
use crate::closing::CloseReason;

/// Proxied connections get ids from here up, apart from the node's own connections'.
const FIRST_PROXY_CONN: ConnId = 1 << 62;
/// Messages of one connection waiting for its board; more close it (as its socket's rate
/// limit would have).
const QUEUE: usize = 1024;
/// The most bytes of one client message in parts.
const MAX_JOINED_BYTES: usize = 64 * 1024 * 1024;
/// How often owners check that the nodes they proxy for are alive, and how long a tombstone
/// stays.
const CHECK_EVERY: Duration = Duration::from_secs(5);
const TOMBSTONE: Duration = Duration::from_secs(60);

/// The proxies of this node, by origin node and the origin's connection id.
#[derive(Debug)]
pub struct Proxies {
    map: DashMap<(String, ConnId), Proxy>,
    next: AtomicU64,
}

impl Default for Proxies {
    fn default() -> Self {
        Self { map: DashMap::new(), next: AtomicU64::new(FIRST_PROXY_CONN) }
    }
}

#[derive(Debug, Clone)]
struct Proxy {
    link: PeerLink,
    queue: mpsc::Sender<Inbound>,
    /// The boards the connection reached here.
    boards: Arc<Mutex<Vec<DocumentId>>>,
    /// The origin said the connection left (or is gone).
    ended: CancellationToken,
    /// When the board closed it, for a tombstone.
    closed_at: Arc<Mutex<Option<Instant>>>,
}

enum Inbound {
    Message { board: DocumentId, doc: DocumentId, message: DocMessage },
}

/// Takes what origins send about their connections.
pub(super) async fn serve(
    cluster: Arc<Cluster>,
    mut inbox: async_nats::Subscriber,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    let mut partial: wire::Partial<(String, ConnId)> = wire::Partial::new();
    while let Some(message) = next_message(&mut inbox, &shutdown).await {
        let Some(headers) = message.headers.as_ref() else { continue };
        let envelope = match ToOwner::read(headers) {
            Ok(envelope) => envelope,
            Err(e) => {
                tracing::warn!(error = %e, "dropped a message from another node");
                continue;
            }
        };
        let (origin, conn, peer, board, doc) = match envelope {
            ToOwner::Left { origin, conn } => {
                tracing::debug!(node = %origin, conn, "a forwarded connection left");
                partial.retain(|((o, c), _), _| !(*o == origin && *c == conn));
                if let Some((_, proxy)) = cluster.proxies.map.remove(&(origin, conn)) {
                    proxy.ended.cancel();
                }
                continue;
            }
            ToOwner::Frame { origin, conn, peer, board, doc } => (origin, conn, peer, board, doc),
        };
        let Some(body) = wire::join(&mut partial, (origin.clone(), conn), headers, message.payload, MAX_JOINED_BYTES)
        else {
            continue;
        };
        let message = match wire::read_message(headers, body) {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!(error = %e, "dropped a message from another node");
                continue;
            }
        };
        let proxy = cluster
            .proxies
            .map
            .entry((origin.clone(), conn))
            .or_insert_with(|| open(&cluster, origin, conn, peer, &tracker, &shutdown))
            .clone();
        if proxy.closed_at.lock().is_ok_and(|at| at.is_some()) {
            continue;
        }
        if let Ok(mut boards) = proxy.boards.lock()
            && !boards.contains(&board)
        {
            boards.push(board);
        }
        if proxy.queue.try_send(Inbound::Message { board, doc, message }).is_err() {
            proxy.link.refuse("too many messages".into(), CloseReason::TOO_MANY_MESSAGES);
        }
    }
}

/// A new proxy and its two tasks.
fn open(
    cluster: &Arc<Cluster>,
    origin: String,
    origin_conn: ConnId,
    peer: PeerId,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) -> Proxy {
    let conn = cluster.proxies.next.fetch_add(1, Ordering::Relaxed);
    let (outbox_tx, outbox) = mpsc::channel::<Frame>(MAX_OUTBOX_FRAMES);
    let link = PeerLink::new(conn, peer, outbox_tx, CancellationToken::new());
    let (queue, inbound) = mpsc::channel(QUEUE);
    let proxy = Proxy {
        link: link.clone(),
        queue,
        boards: Arc::default(),
        ended: CancellationToken::new(),
        closed_at: Arc::default(),
    };
    tracker.spawn(feed(Arc::clone(cluster), origin.clone(), origin_conn, proxy.clone(), inbound, shutdown.clone()));
    tracker.spawn(pump(Arc::clone(cluster), origin, origin_conn, proxy.clone(), outbox, shutdown.clone()));
    proxy
}

/// Feeds the connection's messages to its boards, in order; tells them when it left.
async fn feed(
    cluster: Arc<Cluster>,
    origin: String,
    origin_conn: ConnId,
    proxy: Proxy,
    mut inbound: mpsc::Receiver<Inbound>,
    shutdown: CancellationToken,
) {
    let mut handles: HashMap<DocumentId, BoardHandle> = HashMap::new();
    let link = proxy.link.clone();
    loop {
        let Inbound::Message { board, doc, message } = tokio::select! {
            biased;
            () = proxy.ended.cancelled() => break,
            () = shutdown.cancelled() => return,
            item = inbound.recv() => match item {
                Some(item) => item,
                None => break,
            },
        };
        // Only boards this node owns: else the origin finds the owner.
        let handle = match handles.get(&board) {
            Some(handle) => Some(handle.clone()),
            None => owned(&cluster, board),
        };
        let Some(handle) = handle else {
            moved(&cluster, &origin, origin_conn, board).await;
            if handles.is_empty() {
                // The origin will not say it left: it resumes elsewhere. Frames still on their
                // way open a new proxy, which says the same.
                forget(&cluster, &origin, origin_conn, &proxy);
                break;
            }
            continue;
        };
        handles.insert(board, handle.clone());
        let message = BoardMsg::FromPeer { link: link.clone(), doc, message };
        if handle.send(message).await.is_err() {
            // The board stopped (it lost its lease, or failed): its close reason went out.
            handles.remove(&board);
        }
    }
    for handle in handles.values() {
        let _ = handle.send(BoardMsg::Left { conn: link.conn() }).await;
    }
}

/// The local handle of `board` if this node holds its lease.
fn owned(cluster: &Arc<Cluster>, board: DocumentId) -> Option<BoardHandle> {
    let lease = cluster.lease_of(board)?;
    Some(cluster.registry()?.owned(board, lease))
}

/// Tells the origin that this node does not serve `board`.
async fn moved(cluster: &Cluster, origin: &str, conn: ConnId, board: DocumentId) {
    let envelope = ToOrigin::Moved { conn, board, from: cluster.node.to_string() };
    cluster.publish(&wire::conn_subject(origin), envelope.headers(), Bytes::new()).await;
}

/// Publishes the board's frames to the origin; when the board closes the connection, says why
/// (or, if this node lost the board, that it moved).
async fn pump(
    cluster: Arc<Cluster>,
    origin: String,
    origin_conn: ConnId,
    proxy: Proxy,
    mut outbox: mpsc::Receiver<Frame>,
    shutdown: CancellationToken,
) {
    let subject = wire::conn_subject(&origin);
    let link = proxy.link.clone();
    loop {
        tokio::select! {
            biased;
            () = proxy.ended.cancelled() => return,
            () = shutdown.cancelled() => return,
            frame = outbox.recv() => {
                let Some(frame) = frame else { return };
                send_frame(&cluster, &subject, origin_conn, frame, &link).await;
            }
            () = link.closing().cancelled() => break,
        }
    }
    // What must still be said (an `error`), then why.
    while let Ok(frame) = outbox.try_recv() {
        if frame.kind == FrameKind::Error {
            send_frame(&cluster, &subject, origin_conn, frame, &link).await;
        } else {
            link.written(frame.bytes.len());
        }
    }
    if cluster.draining() || shutdown.is_cancelled() {
        // The drain tells every origin to resume elsewhere.
        return;
    }
    let reason = link.close_reason().unwrap_or(CloseReason::GOING_AWAY);
    if reason == CloseReason::MOVED {
        forget(&cluster, &origin, origin_conn, &proxy);
        let boards = proxy.boards.lock().map(|b| b.clone()).unwrap_or_default();
        for board in boards {
            moved(&cluster, &origin, origin_conn, board).await;
        }
    } else {
        // A tombstone: frames still on their way are dropped until the origin says it left.
        if let Ok(mut at) = proxy.closed_at.lock() {
            *at = Some(Instant::now());
        }
        let envelope = ToOrigin::Close {
            conn: origin_conn,
            code: reason.code,
            reason: reason.reason.to_owned(),
            from: cluster.node.to_string(),
        };
        cluster.publish(&subject, envelope.headers(), Bytes::new()).await;
    }
}

/// Removes the proxy (if it is still this one) and ends its tasks.
fn forget(cluster: &Cluster, origin: &str, conn: ConnId, proxy: &Proxy) {
    cluster.proxies.map.remove_if(&(origin.to_owned(), conn), |_, p| p.link.conn() == proxy.link.conn());
    proxy.ended.cancel();
}

async fn send_frame(cluster: &Cluster, subject: &str, conn: ConnId, frame: Frame, link: &PeerLink) {
    let len = frame.bytes.len();
    let envelope = ToOrigin::Frame { conn, kind: frame.kind, from: cluster.node.to_string() };
    cluster.publish(subject, envelope.headers(), frame.bytes).await;
    link.written(len);
}

/// At drain: tells every origin to resume its connections with the boards' next owners.
pub(super) async fn hand_over(cluster: &Cluster) {
    let proxies: Vec<((String, ConnId), Proxy)> =
        cluster.proxies.map.iter().map(|e| (e.key().clone(), e.value().clone())).collect();
    for ((origin, conn), proxy) in proxies {
        let boards = proxy.boards.lock().map(|b| b.clone()).unwrap_or_default();
        for board in boards {
            moved(cluster, &origin, conn, board).await;
        }
    }
    cluster.proxies.map.clear();
}

/// Forgets the proxies of nodes that are gone (no answer to a ping), and old tombstones.
pub(super) async fn forget_gone_origins(cluster: Arc<Cluster>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(CHECK_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let mut origins: Vec<String> = cluster.proxies.map.iter().map(|e| e.key().0.clone()).collect();
        origins.sort();
        origins.dedup();
        for origin in origins {
            let asked = cluster
                .nats
                .send_request(
                    wire::ping_subject(&origin),
                    async_nats::Request::new().payload(Bytes::new()).timeout(Some(Duration::from_secs(2))),
                )
                .await;
            let gone = matches!(&asked, Err(e) if e.kind() == async_nats::client::RequestErrorKind::NoResponders);
            if gone {
                tracing::info!(node = %origin, "a node is gone; forgetting its connections");
                cluster.proxies.map.retain(|(o, _), proxy| {
                    let keep = *o != origin;
                    if !keep {
                        proxy.ended.cancel();
                    }
                    keep
                });
            }
        }
        cluster.proxies.map.retain(|_, proxy| {
            let stale = proxy.closed_at.lock().ok().and_then(|at| *at).is_some_and(|at| at.elapsed() > TOMBSTONE);
            if stale {
                proxy.ended.cancel();
            }
            !stale
        });
    }
}
