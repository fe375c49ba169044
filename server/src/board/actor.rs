//! The one task per board: loads the board, takes peers' messages in batches, stores accepted
//! changes, then answers, and evicts the board from memory when it has been idle.
//!
//! The task is the only owner of the board's document, so the document needs no lock. Each
//! turn drains every message already queued, so N changes from P peers cost one store commit and
//! one round of sync messages instead of N.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use hindsight_shared::ids::{DocumentId, PeerId};
use hindsight_shared::protocol::WireMessage;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::core::{BoardCore, ConnError, ConnId, DocMessage, Participant};
use super::{BoardMsg, CloseReason, Delivery, PeerLink};
use crate::registry::Registry;
use crate::store::Store;

/// Milliseconds since the Unix epoch, by this server's clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The most messages one turn takes from the inbox.
const MAX_BATCH: usize = 512;

/// What a board actor needs from the server around it.
#[derive(Debug, Clone)]
pub struct BoardContext {
    pub store: Store,
    /// The server's peer id in the automerge-repo protocol.
    pub server: PeerId,
    /// How long a board without peers stays in memory.
    pub idle: Duration,
    /// How many connections the board takes at once.
    pub max_peers: usize,
    /// How large a document may grow in storage, in bytes.
    pub max_document_bytes: usize,
    pub shutdown: CancellationToken,
}

enum State {
    Ready(Box<BoardCore>),
    /// No such board in storage: every request is answered with `doc-unavailable`.
    Unavailable,
}

pub(crate) struct BoardActor {
    id: DocumentId,
    ctx: BoardContext,
    registry: Arc<Registry>,
    inbox: mpsc::Receiver<BoardMsg>,
    links: HashMap<ConnId, PeerLink>,
    /// Connections the board let go whose `Left` has not arrived yet.
    gone: HashSet<ConnId>,
}

impl BoardActor {
    pub(crate) fn new(
        id: DocumentId,
        ctx: BoardContext,
        registry: Arc<Registry>,
        inbox: mpsc::Receiver<BoardMsg>,
    ) -> Self {
        Self { id, ctx, registry, inbox, links: HashMap::new(), gone: HashSet::new() }
    }

    pub(crate) async fn run(mut self) {
        let mut state = match self.load().await {
            Ok(state) => state,
            Err(e) => {
                tracing::error!(board = %self.id, error = %e, "could not load board");
                self.fail().await;
                return;
            }
        };
        let mut idle_since = Instant::now();
        loop {
            let first = tokio::select! {
                biased;
                () = self.ctx.shutdown.cancelled() => break,
                message = self.inbox.recv() => match message {
                    Some(message) => message,
                    None => break,
                },
                () = tokio::time::sleep_until(idle_since + self.ctx.idle), if self.links.is_empty() => {
                    if self.registry.evict_if_unused(self.id) {
                        tracing::debug!(board = %self.id, "evicted idle board");
                        break;
                    }
                    idle_since = Instant::now();
                    continue;
                }
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match self.inbox.try_recv() {
                    Ok(message) => batch.push(message),
                    Err(_) => break,
                }
            }
            if let Err(e) = self.turn(&mut state, batch).await {
                tracing::error!(board = %self.id, error = %e, "could not store accepted changes; dropping the board from memory");
                self.fail().await;
                return;
            }
            if self.links.is_empty() {
                idle_since = Instant::now();
            }
        }
    }

    async fn load(&self) -> anyhow::Result<State> {
        let Some(stored) = self.ctx.store.load_board(self.id).await? else {
            return Ok(State::Unavailable);
        };
        let (id, server, max_document_bytes) = (self.id, self.ctx.server.clone(), self.ctx.max_document_bytes);
        let started = std::time::Instant::now();
        let core = tokio::task::spawn_blocking(move || {
            let desks = stored
                .desks
                .into_iter()
                .map(|(record, doc)| (Participant { id: record.id, name: record.name, desk: record.desk }, doc))
                .collect();
            BoardCore::load(id, server, &stored.doc, desks, max_document_bytes)
        })
        .await??;
        tracing::debug!(board = %self.id, elapsed_ms = started.elapsed().as_millis() as u64, "loaded board");
        Ok(State::Ready(Box::new(core)))
    }

    /// One turn: apply a batch, let the server react, store what changed, then answer.
    async fn turn(&mut self, state: &mut State, batch: Vec<BoardMsg>) -> anyhow::Result<()> {
        let mut out = Vec::new();
        let mut joined = Vec::new();
        for message in batch {
            match message {
                BoardMsg::Left { conn } => {
                    // The connection's last message: nothing of it is queued after this.
                    self.gone.remove(&conn);
                    self.links.remove(&conn);
                    if let State::Ready(core) = state {
                        core.leave(conn);
                    }
                }
                BoardMsg::Snapshot { reply } => {
                    let board = match state {
                        State::Ready(core) => Some(core.board().clone()),
                        State::Unavailable => None,
                    };
                    let _ = reply.send(board);
                }
                BoardMsg::Joined { participant, desk, facilitator, reply } => match state {
                    State::Unavailable => {
                        let _ = reply.send(Err("there is no such board".into()));
                    }
                    State::Ready(core) => {
                        let result = automerge::Automerge::load(&desk).map_err(|e| e.to_string()).and_then(|doc| {
                            core.join(participant, doc, desk.len(), facilitator).map_err(|e| e.to_string())
                        });
                        match result {
                            Ok(()) => joined.push(reply),
                            Err(e) => {
                                let _ = reply.send(Err(e));
                            }
                        }
                    }
                },
                BoardMsg::FromPeer { link, doc, message } => match state {
                    // A connection this board let go (it stopped reading, or broke the protocol)
                    // may still have messages queued here: the client keeps what it sent and sends
                    // it again when it reconnects. Taking them would bring the connection back.
                    _ if self.gone.contains(&link.conn()) => {}
                    State::Ready(core) if core.holds(doc) => {
                        let conn = link.conn();
                        let peer = link.peer().clone();
                        if !self.links.contains_key(&conn) && self.links.len() >= self.ctx.max_peers {
                            let full =
                                format!("this board is full: it takes {} connections at once", self.ctx.max_peers);
                            link.deliver(WireMessage::Error { message: full }.encode().into());
                            link.close(CloseReason::POLICY);
                            continue;
                        }
                        self.links.entry(conn).or_insert(link);
                        if let Err(e) = core.receive(conn, &peer, doc, message, &mut out) {
                            tracing::info!(board = %self.id, %peer, error = %e, "closing a peer's connection");
                            self.refuse(core, conn, &e);
                        }
                    }
                    _ => {
                        if matches!(message, DocMessage::Request(_) | DocMessage::Sync(_)) {
                            let answer = WireMessage::DocUnavailable {
                                document_id: doc,
                                sender_id: self.ctx.server.clone(),
                                target_id: link.peer().clone(),
                            };
                            link.deliver(answer.encode().into());
                        }
                    }
                },
            }
        }
        let State::Ready(core) = state else {
            return Ok(());
        };
        let now = now_ms();
        if let Err(e) = core.govern(now) {
            tracing::error!(board = %self.id, error = %e, "the server could not apply its own rules");
        }
        let changes = core.unsaved();
        if !changes.is_empty() {
            self.ctx.store.append_many(changes).await?;
            core.saved();
        }
        core.flush(now, &mut out);
        for (conn, message) in out {
            let Some(link) = self.links.get(&conn) else { continue };
            if link.deliver(message.encode().into()) == Delivery::Dropped {
                self.links.remove(&conn);
                self.gone.insert(conn);
                core.leave(conn);
            }
        }
        for reply in joined {
            let _ = reply.send(Ok(()));
        }
        Ok(())
    }

    /// Sends a peer an error and closes its connection: its message broke the protocol.
    fn refuse(&mut self, core: &mut BoardCore, conn: ConnId, why: &ConnError) {
        if let Some(link) = self.links.remove(&conn) {
            link.deliver(WireMessage::Error { message: why.to_string() }.encode().into());
            link.close(CloseReason::PROTOCOL);
        }
        self.gone.insert(conn);
        core.leave(conn);
    }

    /// Gives up on the board after a storage failure: nothing unsaved may be acknowledged, so
    /// every peer is disconnected (their clients keep their changes and resend them) and the
    /// board leaves memory, to be loaded afresh from disk by the next request.
    async fn fail(mut self) {
        self.registry.evict(self.id);
        for link in self.links.values() {
            link.close(CloseReason::INTERNAL);
        }
        self.inbox.close();
        while let Some(message) = self.inbox.recv().await {
            if let BoardMsg::FromPeer { link, .. } = message {
                link.close(CloseReason::INTERNAL);
            }
        }
    }
}
