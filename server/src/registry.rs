//! The board registry: which boards are in memory on this node, and the seam for a cluster.
//!
//! [`Registry::board`] is the one way to reach a board. On a single node it returns the handle
//! of a local actor, spawning it on first use. In a cluster (one owner node per board), it
//! finds the board's owner: this node (which then holds the board's lease, given to the actor)
//! or another, whose route it returns, a handle whose messages travel to the owner (see
//! [`crate::cluster`]). Connections only ever see a [`BoardHandle`] either way.
//!
//! Locking: the map is a `DashMap`. A shard lock is held only for the synchronous insert or
//! remove below, never across an `.await`; spawning a task inside `or_insert_with` does not wait.
//!
//! Invariant: routes and connections reach a board only through the handle this registry gives
//! ([`Registry::board`], [`Registry::resolve`]), never its actor or its core; joining, taking the
//! facilitator role and exporting are messages on that handle too, so a cluster node can forward
//! every one of them. Checked by `tidy` (tidy: handle-only).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use dashmap::DashMap;
use futures_util::FutureExt;
use hindsight_shared::ids::DocumentId;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use crate::board::actor::{BoardActor, BoardContext};
use crate::board::{BoardHandle, BoardMsg, Keeper};
use crate::cluster::{Cluster, Located};
use crate::store::Lease;

/// How many messages may wait in one board's inbox before senders wait (backpressure).
const INBOX_CAPACITY: usize = 1024;

/// The boards this node holds in memory.
#[derive(Debug)]
pub struct Registry {
    boards: DashMap<DocumentId, BoardHandle>,
    /// Desk id -> board id, for desks seen before. Desks never move, so entries never go stale.
    desks: DashMap<DocumentId, DocumentId>,
    ctx: BoardContext,
    tracker: TaskTracker,
    /// In cluster mode, who owns which board.
    cluster: Option<Arc<Cluster>>,
    /// This registry, for the tasks it spawns.
    me: std::sync::Weak<Registry>,
}

impl Registry {
    pub fn new(ctx: BoardContext, tracker: TaskTracker, cluster: Option<Arc<Cluster>>) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            boards: DashMap::new(),
            desks: DashMap::new(),
            ctx,
            tracker,
            cluster,
            me: me.clone(),
        })
    }

    /// A handle to the board, loading it into memory if it is not there yet; in cluster mode,
    /// the route to its owner if another node owns it.
    ///
    /// Unknown ids get a handle too: their actor answers every request with `doc-unavailable`.
    pub async fn board(self: &Arc<Self>, id: DocumentId) -> BoardHandle {
        if let Some(handle) = self.boards.get(&id) {
            return handle.clone();
        }
        let Some(cluster) = &self.cluster else { return self.spawn(id, None) };
        if let Some(route) = cluster.routes.get(id) {
            return route;
        }
        match cluster.locate(id).await {
            Ok(Located::Here(lease)) => self.owned(id, lease),
            Ok(Located::There(node)) => cluster.route(id, node, &self.tracker),
            Ok(Located::Nowhere) => self.spawn(id, None),
            Err(e) => {
                tracing::warn!(board = %id.tag(), error = %e, "could not find who owns a board");
                // A handle to nothing: sending fails, and the caller answers that the board failed.
                BoardHandle::new(id, mpsc::channel(1).0)
            }
        }
    }

    /// The handle of a board this node owns under `lease`, its actor started if needed.
    pub fn owned(self: &Arc<Self>, id: DocumentId, lease: Arc<Lease>) -> BoardHandle {
        self.spawn(id, Some(lease))
    }

    /// True if `handle` is a board in this node's memory (not a route to another node).
    pub fn is_local(&self, handle: &BoardHandle) -> bool {
        self.boards.get(&handle.id()).is_some_and(|h| h.same(handle))
    }

    /// The local actor's handle, the actor started (with `lease`, in cluster mode) if needed.
    fn spawn(self: &Arc<Self>, id: DocumentId, lease: Option<Arc<Lease>>) -> BoardHandle {
        if let Some(handle) = self.boards.get(&id) {
            return handle.clone();
        }
        self.boards
            .entry(id)
            .or_insert_with(|| {
                let (inbox_tx, inbox) = mpsc::channel(INBOX_CAPACITY);
                let keeper: Arc<dyn Keeper> = Arc::clone(self) as Arc<dyn Keeper>;
                let actor = BoardActor::new(id, self.ctx.clone(), keeper, inbox, lease);
                let registry = Arc::clone(self);
                self.tracker.spawn(async move {
                    // A panic (a bug here or in a library) ends only this board's actor. Its handle
                    // goes, so the next message loads the board afresh from storage, which holds
                    // everything it acknowledged; its connections ask again by themselves.
                    if AssertUnwindSafe(actor.run()).catch_unwind().await.is_err() {
                        tracing::error!(board = %id.tag(), "the board's actor panicked; it will be loaded again from storage");
                        registry.evict(id);
                    }
                });
                BoardHandle::new(id, inbox_tx)
            })
            .clone()
    }

    /// The handle of the board that holds document `doc`: the board itself, or the board a desk
    /// belongs to. Unknown documents get the handle of a board by that id, which answers
    /// `doc-unavailable`.
    pub async fn resolve(self: &Arc<Self>, doc: DocumentId) -> BoardHandle {
        if self.boards.contains_key(&doc) {
            return self.board(doc).await;
        }
        if let Some(board) = self.desks.get(&doc).map(|entry| *entry.value()) {
            return self.board(board).await;
        }
        match self.ctx.store.desk_owner(doc).await {
            Ok(Some(board)) => {
                self.desks.insert(doc, board);
                self.board(board).await
            }
            Ok(None) => self.board(doc).await,
            Err(e) => {
                tracing::warn!(doc = %doc.tag(), error = %e, "could not look up a document's board");
                self.board(doc).await
            }
        }
    }

    /// The boards in memory now.
    pub fn in_memory(&self) -> Vec<DocumentId> {
        self.boards.iter().map(|entry| *entry.key()).collect()
    }

    /// How many boards (and team ledgers) are in memory now.
    pub fn len(&self) -> usize {
        self.boards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.boards.is_empty()
    }

    /// Removes the board whatever holds it; connections still holding the old handle find it
    /// gone and ask again.
    pub(crate) fn evict(&self, id: DocumentId) {
        self.boards.remove(&id);
    }
}

impl Keeper for Registry {
    /// Removes the board if nobody but the registry holds its handle. Checked and removed under
    /// the shard's write lock, so no connection can take a new handle in between.
    fn release_if_unused(&self, id: DocumentId) -> bool {
        self.boards.remove_if(&id, |_, handle| handle.holders() == 1).is_some()
    }

    fn release(&self, id: DocumentId) {
        self.evict(id);
    }

    fn remember_desk(&self, desk: DocumentId, board: DocumentId) {
        self.desks.insert(desk, board);
    }

    /// Queued at once, in the order told, when the inbox has room; else from a task of its own,
    /// so the sender never waits on another actor's inbox (two actors waiting on each other's
    /// full inbox would never wake). What a board tells its team is bounded by its phase changes
    /// and confirmations, and idempotent there.
    fn tell(&self, doc: DocumentId, message: BoardMsg) {
        let Some(registry) = self.me.upgrade() else { return };
        // In memory: queued now, in order. Else (loaded first, or found on its owner) from a
        // task of its own.
        let message = match self.boards.get(&doc).map(|h| h.clone()) {
            Some(handle) => match handle.try_send(message) {
                Ok(()) => return,
                Err(message) => *message,
            },
            None => message,
        };
        self.tracker.spawn(async move {
            let handle = registry.board(doc).await;
            if handle.send(message).await.is_err() {
                tracing::warn!(doc = %doc.tag(), "a message to another document's actor was lost: it stopped");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use hindsight_shared::api::JoinBoard;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::board::AdmitError;
    use crate::board::actor::BudgetConfig;
    use crate::store::Store;

    /// A registry over a fresh store whose boards stay in memory for an hour when idle.
    fn registry(dir: &std::path::Path) -> Arc<Registry> {
        let ctx = BoardContext {
            store: Store::open(dir).expect("store"),
            server: "server".into(),
            idle: Duration::from_secs(3600),
            core: crate::board::testnet::test_config(),
            budget: BudgetConfig::default(),
            max_participants: 10,
            shutdown: CancellationToken::new(),
        };
        Registry::new(ctx, TaskTracker::new(), None)
    }

    #[tokio::test]
    async fn the_actor_of_a_board_that_does_not_exist_goes_within_seconds() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let registry = registry(dir.path());
        for _ in 0..20 {
            let handle = registry.board(DocumentId::random()).await;
            let refused = handle.join(JoinBoard::default()).await;
            assert!(matches!(refused, Err(AdmitError::NoBoard)), "{refused:?}");
        }
        assert!(!registry.in_memory().is_empty(), "each id got an actor");
        // They go after about a second (not the hour a real board stays); the deadline is generous.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !registry.in_memory().is_empty() {
            assert!(Instant::now() < deadline, "{} actors of no board are still in memory", registry.in_memory().len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
