//! The node that holds a client's socket, for a board another node owns: a route per board, a
//! [`BoardHandle`] whose messages a task publishes to the owner, and the owner's frames handed
//! back to the connections.
//!
//! A route ends when its owner says the board moved, or when the owner watch finds the lease
//! expired or taken (see [`super::Cluster`]). Its connections then resume with the next owner:
//! each document they had open is sent as [`DocMessage::Resume`], so the new owner's first sync
//! message makes the client send again whatever the old owner did not store. The connections'
//! own messages find the route gone and ask the registry again.

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use futures_util::FutureExt;
use hindsight_shared::ids::DocumentId;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::wire::{self, ToOrigin, ToOwner};
use super::{Cluster, next_message};
use crate::board::core::DocMessage;
use crate::board::replica::ConnId;
use crate::board::{AdmitError, AlertError, BoardHandle, BoardMsg, PeerLink};
use crate::team::TeamError;

/// How many messages wait for a route's task before connections wait.
const ROUTE_CAPACITY: usize = 1024;
/// The most bytes of one frame in parts (a board's first sync message can be large).
const MAX_JOINED_BYTES: usize = 96 * 1024 * 1024;
/// How often, and how long, resuming waits for a board's next owner to be known.
const RESUME_RETRY: Duration = Duration::from_millis(200);
const RESUME_TRIES: u32 = 100;
/// How long a route without connections stays open.
const ROUTE_IDLE: Duration = Duration::from_secs(60);

/// The routes of this node, and the connections whose frames they forwarded.
#[derive(Debug, Default)]
pub struct Routes {
    /// Board -> its route.
    routes: DashMap<DocumentId, Route>,
    /// (Connection, owner) -> the connection's link, for that owner's frames: listed while a
    /// route to the owner forwards for the connection, so frames of an owner it left (one that
    /// was paused, say) never reach it.
    forwarded: DashMap<(ConnId, String), PeerLink>,
}

#[derive(Debug, Clone)]
struct Route {
    node: String,
    handle: BoardHandle,
    ended: CancellationToken,
}

impl Routes {
    /// Every live route: board and owner.
    pub fn owners(&self) -> Vec<(DocumentId, String)> {
        self.routes.iter().filter(|r| !r.ended.is_cancelled()).map(|r| (*r.key(), r.node.clone())).collect()
    }

    /// The live route to `board`, if there is one.
    pub fn get(&self, board: DocumentId) -> Option<BoardHandle> {
        self.routes.get(&board).filter(|r| !r.ended.is_cancelled()).map(|r| r.handle.clone())
    }

    /// Ends the route to `board` if it goes to `node`.
    pub fn end(&self, board: DocumentId, node: &str) {
        if let Some((_, route)) = self.routes.remove_if(&board, |_, r| r.node == node) {
            route.ended.cancel();
        }
    }

    /// Ends the route whose handle is `handle`, if it is still listed.
    fn end_this(&self, handle: &BoardHandle) {
        if let Some((_, route)) = self.routes.remove_if(&handle.id(), |_, r| r.handle.same(handle)) {
            route.ended.cancel();
        }
    }

    /// Ends every route: their connections resume with whoever owns each board.
    pub fn end_all(&self) {
        let routes: Vec<Route> = self.routes.iter().map(|r| r.clone()).collect();
        for route in routes {
            self.end_this(&route.handle);
        }
    }
}

/// The route to `board` at `node`, opened if there is none.
pub(super) fn open(cluster: &Arc<Cluster>, board: DocumentId, node: String, tracker: &TaskTracker) -> BoardHandle {
    let mut fresh = None;
    let route = cluster
        .routes
        .routes
        .entry(board)
        .and_modify(|route| {
            if route.ended.is_cancelled() || route.node != node {
                route.ended.cancel();
                let (made, task) = make(board, &node);
                *route = made;
                fresh = Some(task);
            }
        })
        .or_insert_with(|| {
            let (made, task) = make(board, &node);
            fresh = Some(task);
            made
        })
        .clone();
    if let Some((inbox, ended)) = fresh {
        let this = route.handle.clone();
        let cluster = Arc::clone(cluster);
        let task = forward(Arc::clone(&cluster), this.clone(), node, inbox, ended, tracker.clone());
        tracker.spawn(async move {
            // A panic (a bug here or in a library) ends this route, never leaves it listed dead:
            // its connections ask the registry again.
            if AssertUnwindSafe(task).catch_unwind().await.is_err() {
                tracing::error!(board = %this.id().tag(), "a route's task panicked; it is closed");
                cluster.routes.end_this(&this);
            }
        });
    }
    route.handle
}

type Task = (mpsc::Receiver<BoardMsg>, CancellationToken);

fn make(board: DocumentId, node: &str) -> (Route, Task) {
    let (inbox_tx, inbox) = mpsc::channel(ROUTE_CAPACITY);
    let ended = CancellationToken::new();
    let route = Route { node: node.to_owned(), handle: BoardHandle::new(board, inbox_tx), ended: ended.clone() };
    (route, (inbox, ended))
}

/// The route's task: publishes what connections send to the owner, in order; when the route
/// ends, resumes its connections with the next owner.
async fn forward(
    cluster: Arc<Cluster>,
    this: BoardHandle,
    node: String,
    mut inbox: mpsc::Receiver<BoardMsg>,
    ended: CancellationToken,
    tracker: TaskTracker,
) {
    let board = this.id();
    let subject = wire::node_subject(&node);
    let origin = cluster.node.to_string();
    let mut conns: HashMap<ConnId, (PeerLink, HashSet<DocumentId>)> = HashMap::new();
    loop {
        let message = tokio::select! {
            biased;
            () = cluster.shutdown.cancelled() => return,
            () = ended.cancelled() => break,
            message = inbox.recv() => match message {
                Some(message) => message,
                None => break,
            },
            // A route nobody uses goes; the next connection opens it again.
            () = tokio::time::sleep(ROUTE_IDLE), if conns.is_empty() => {
                cluster.routes.end_this(&this);
                continue;
            }
        };
        match message {
            BoardMsg::FromPeer { link, doc, message } => {
                let conn = link.conn();
                cluster.routes.forwarded.insert((conn, node.clone()), link.clone());
                conns.entry(conn).or_insert_with(|| (link.clone(), HashSet::new())).1.insert(doc);
                let envelope = ToOwner::Frame { origin: origin.clone(), conn, peer: link.peer().clone(), board, doc };
                let mut headers = envelope.headers();
                let body = wire::write_message(&message, &mut headers);
                cluster.publish(&subject, headers, body).await;
                cluster.stats.frames_forwarded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            BoardMsg::Left { conn } => {
                conns.remove(&conn);
                cluster.routes.forwarded.remove(&(conn, node.clone()));
                let envelope = ToOwner::Left { origin: origin.clone(), conn };
                cluster.publish(&subject, envelope.headers(), Bytes::new()).await;
            }
            // HTTP calls about a board travel whole to its owner (`cluster/http.rs`); one that
            // reaches a route raced a change of owner.
            BoardMsg::Join { reply, .. } => drop(reply.send(Err(moved_admit()))),
            BoardMsg::Claim { reply, .. } => drop(reply.send(Err(moved_admit()))),
            BoardMsg::Alerts { reply, .. } => drop(reply.send(Err(AlertError::Failed(MOVED.into())))),
            BoardMsg::Team(message) => crate::team::actor::refuse(message, TeamError::Failed(MOVED.into())),
            BoardMsg::Snapshot { .. } | BoardMsg::Recurrences(_) => {}
        }
    }
    cluster.routes.end_this(&this);
    drop(this);
    inbox.close();
    // What was queued for the old owner is dropped: the resume below makes its senders send it
    // again. A connection that left meanwhile is not resumed.
    while let Some(message) = inbox.recv().await {
        match message {
            BoardMsg::FromPeer { link, doc, .. } => {
                conns.entry(link.conn()).or_insert_with(|| (link.clone(), HashSet::new())).1.insert(doc);
            }
            BoardMsg::Left { conn } => {
                conns.remove(&conn);
            }
            _ => {}
        }
    }
    for conn in conns.keys() {
        cluster.routes.forwarded.remove(&(*conn, node.clone()));
    }
    if cluster.draining() || tracker.is_closed() {
        return;
    }
    // Each connection on its own: one waiting for an owner does not hold up the others.
    let resumed = conns.into_values().map(|(link, docs)| {
        let (cluster, node) = (Arc::clone(&cluster), node.clone());
        async move {
            for doc in docs {
                resume(&cluster, &link, doc, &node).await;
            }
        }
    });
    futures_util::future::join_all(resumed).await;
}

const MOVED: &str = "the board moved to another server; try again";

fn moved_admit() -> AdmitError {
    AdmitError::Failed(MOVED.into())
}

/// Sends `doc` as resumed to whoever serves it now, waiting (bounded) while the old owner
/// `from` still holds it.
async fn resume(cluster: &Arc<Cluster>, link: &PeerLink, doc: DocumentId, from: &str) {
    let Some(registry) = cluster.registry() else { return };
    for _ in 0..RESUME_TRIES {
        if cluster.shutdown.is_cancelled() || link.closing().is_cancelled() {
            return;
        }
        let handle = registry.resolve(doc).await;
        let stale = cluster.routes.routes.get(&handle.id()).is_some_and(|r| r.node == from && r.handle.same(&handle));
        tracing::debug!(board = %handle.id().tag(), conn = link.conn(), stale, "resuming a connection");
        if !stale {
            cluster
                .stats
                .failovers
                .fetch_add(u64::from(registry.is_local(&handle)), std::sync::atomic::Ordering::Relaxed);
            let message = BoardMsg::FromPeer { link: link.clone(), doc, message: DocMessage::Resume };
            if handle.send(message).await.is_ok() {
                return;
            }
        } else {
            cluster.routes.end(handle.id(), from);
        }
        tokio::time::sleep(RESUME_RETRY).await;
    }
    // No owner came: the client connects again and starts afresh.
    link.close(crate::closing::CloseReason::MOVED);
}

/// Hands the owners' frames to this node's connections.
pub(super) async fn serve(cluster: Arc<Cluster>, mut frames: async_nats::Subscriber, shutdown: CancellationToken) {
    let mut partial: wire::Partial<ConnId> = wire::Partial::new();
    while let Some(message) = next_message(&mut frames, &shutdown).await {
        let Some(headers) = message.headers.as_ref() else { continue };
        let envelope = match ToOrigin::read(headers) {
            Ok(envelope) => envelope,
            Err(e) => {
                tracing::warn!(error = %e, "dropped a message from another node");
                continue;
            }
        };
        match envelope {
            ToOrigin::Frame { conn, kind, from } => {
                let Some(body) = wire::join(&mut partial, conn, headers, message.payload, MAX_JOINED_BYTES) else {
                    continue;
                };
                cluster.stats.frames_returned.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Some(link) = cluster.routes.forwarded.get(&(conn, from)).map(|l| l.clone()) {
                    link.deliver(body, kind);
                }
            }
            ToOrigin::Close { conn, code, reason, from } => {
                partial.retain(|(c, _), _| *c != conn);
                if let Some((_, link)) = cluster.routes.forwarded.remove(&(conn, from)) {
                    link.close(wire::close_reason(code, &reason));
                }
            }
            ToOrigin::Moved { board, from, .. } => cluster.routes.end(board, &from),
        }
    }
}
